"""Copying checkpoint tensors into a model: row blocks, file pages handed back, freed heap returned."""
from __future__ import annotations

from typing import Callable

import torch

from ..cpu.hugepages import MADV_DONTNEED, libc, madvise

#: A large tensor is copied this many bytes at a time, its file pages released after each block.
COPY_BLOCK_BYTES = 32 << 20


def copy_into(target, tensor: torch.Tensor, release: Callable[[torch.Tensor], None] | None = None,
              after_block: Callable[[int], None] | None = None) -> None:
    """Copy a checkpoint tensor into its load target in row blocks of ~32 MB.

    The target is a parameter, or a layer taking rows itself (`copy_rows(start, rows)`: int8 quantized on
    load). A block of another dtype than the target's is converted on the host first (host_cast).
    release(block), when given, hands back the source pages of each block once copied: the copy of a large
    matrix never holds its whole file-backed source and its destination at once.
    after_block(rows done), when given, is called after each block but the last (it may raise to cancel).
    """
    copy_rows = getattr(target, "copy_rows", None)
    row_bytes = tensor[0].numel() * tensor.element_size() if tensor.dim() > 1 and tensor.shape[0] else 0
    if copy_rows is None and (row_bytes == 0 or tensor.numel() * tensor.element_size() <= COPY_BLOCK_BYTES):
        target.copy_(host_cast(tensor, target.dtype))
        if release is not None:
            release(tensor)
        return
    step = max(1, COPY_BLOCK_BYTES // max(row_bytes, 1)) if row_bytes else tensor.shape[0]
    for start in range(0, tensor.shape[0], step):
        block = tensor[start:start + step]
        if copy_rows is not None:
            copy_rows(start, block)
        else:
            target[start:start + step].copy_(host_cast(block, target.dtype))
        if release is not None:
            release(block)
        if after_block is not None and start + step < tensor.shape[0]:
            after_block(start + step)


def host_cast(block: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The block in the target's dtype, converted where it lies (the host) before any copy to a device.

    A bf16 checkpoint loaded as fp16 onto an Ascend 310P must never reach the device as bf16: the chip has
    no bf16 and a device-side cast fails ("aclnnCast ... not implemented for DT_BFLOAT16"). One block at a
    time, so the converted copy costs at most COPY_BLOCK_BYTES (x2 for a widening cast) of host memory.
    """
    return block if block.dtype == dtype else block.to(dtype)


def release_pages(tensor: torch.Tensor) -> None:
    """Drop the whole memory pages under a file-backed tensor that is no longer needed (Linux madvise).

    Pages of a memory-mapped checkpoint count as resident once read; releasing each tensor's pages after
    its copy keeps peak memory at the model's size. Only pages entirely inside the tensor are touched.
    """
    if tensor.device.type != "cpu" or tensor.numel() == 0:
        return
    import mmap

    page = mmap.PAGESIZE
    begin = tensor.data_ptr()  # a strided view (a column slice) spans from its first to its last element
    end = begin + (1 + sum((n - 1) * st for n, st in zip(tensor.shape, tensor.stride()))) * tensor.element_size()
    first, last = -(-begin // page) * page, end // page * page
    if last > first:
        madvise(first, last - first, MADV_DONTNEED)  # a no-op where there is no madvise


def trim_heap() -> None:
    """Hand freed heap memory back to the OS (glibc malloc_trim). The temporaries of each tensor's copy
    (int8 quantization's float32 blocks) are freed but kept by the allocator, fragmented across tensor
    shapes: without this, 40+ MB more stay resident by the end of loading an int8 model here."""
    lib = libc()
    if lib is not None and hasattr(lib, "malloc_trim"):  # glibc only
        lib.malloc_trim(0)


class Skipped:
    """A load target whose tensor is not needed (its layer was filled from the quantized cache): rows arrive
    and are dropped, the source's pages never read."""

    def __init__(self, shape):
        self.shape = shape

    def copy_rows(self, start: int, rows: torch.Tensor) -> None:
        pass


class RowWindow:
    """Rows [offset, offset + n) of a load target that takes its rows itself (copy_rows), as a target of its own."""

    def __init__(self, target, offset: int):
        self.target, self.offset = target, offset

    def copy_rows(self, start: int, rows: torch.Tensor) -> None:
        self.target.copy_rows(self.offset + start, rows)


def copy_pieces(target, pieces, release: Callable[[torch.Tensor], None] | None = None,
                after_block: Callable[[int], None] | None = None) -> None:
    """copy_into for a tensor-parallel rank's slice: each (first target row, source view) piece into its rows."""
    for offset, piece in pieces:
        rows = piece.shape[0] if piece.dim() else 0
        if hasattr(target, "copy_rows"):
            window = target if offset == 0 else RowWindow(target, offset)
        else:
            window = target if (offset, rows) == (0, target.shape[0]) else target[offset:offset + rows]
        copy_into(window, piece, release=release, after_block=after_block)
