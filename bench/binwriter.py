"""PyTorch checkpoint (.bin) shards written tensor by tensor: torch's zip format, never all weights in memory.

torch.save needs every tensor in memory at once; a 7B checkpoint in bf16 is 15 GB. This writes the same
archive torch.save would (data.pkl naming each tensor's storage, then one stored, 64-byte-aligned record per
storage, so torch.load(mmap=True) maps them in place) from row blocks that a generator produces one at a time.
"""
from __future__ import annotations

import collections
import json
import math
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

ALIGN = 64  # torch's own record alignment (.storage_alignment), so mmap'd storages are aligned
#: Hugging Face's default max_shard_size ("10GB") when the 7B repos were saved.
MAX_SHARD_BYTES = 10 * 10**9


@dataclass(frozen=True)
class Entry:
    """One tensor to write: name, shape, dtype, and a callable yielding its row blocks in order."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    blocks: Callable[[], Iterator[torch.Tensor]]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


#: The storage class torch.save names for each dtype (what torch.load's weights_only unpickler accepts).
_STORAGE_TYPES = {torch.float32: "FloatStorage", torch.float16: "HalfStorage", torch.bfloat16: "BFloat16Storage",
                  torch.int8: "CharStorage", torch.uint8: "ByteStorage", torch.int32: "IntStorage",
                  torch.int64: "LongStorage"}


class _Storage:
    def __init__(self, key: str, dtype: torch.dtype, numel: int):
        self.key, self.dtype, self.numel = key, dtype, numel


class _Tensor:
    """Pickles as torch.save pickles a contiguous CPU tensor whose storage is record data/<key>."""

    def __init__(self, storage: _Storage, shape: tuple[int, ...]):
        self.storage, self.shape = storage, shape

    def __reduce_ex__(self, protocol):
        stride = tuple(math.prod(self.shape[i + 1:]) for i in range(len(self.shape)))
        return torch._utils._rebuild_tensor_v2, (self.storage, 0, self.shape, stride, False,
                                                 collections.OrderedDict())


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return "storage", getattr(torch, _STORAGE_TYPES[obj.dtype]), obj.key, "cpu", obj.numel
        return None


def _data_pkl(entries: list[Entry]) -> bytes:
    import io

    state = {e.name: _Tensor(_Storage(str(i), e.dtype, math.prod(e.shape)), tuple(e.shape))
             for i, e in enumerate(entries)}
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=2).dump(state)
    return buffer.getvalue()


def _aligned_info(zf: zipfile.ZipFile, name: str) -> zipfile.ZipInfo:
    """A stored entry whose data will start on an ALIGN boundary (padding in the local header's extra field)."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    header = zipfile.sizeFileHeader + len(name.encode()) + 20  # + the zip64 extra field zipfile adds (force_zip64)
    pad = -(zf.fp.tell() + header + 4) % ALIGN
    info.extra = struct.pack("<HH", 0x4246, pad) + b"\0" * pad  # the id torch's writer uses for padding ("FB")
    return info


def write_bin(path: Path, entries: list[Entry]) -> None:
    """One .bin file holding entries, each streamed block by block (blocks must be contiguous, right dtype)."""
    archive = Path(path).stem.replace(".", "_") or "archive"
    tmp = Path(str(path) + ".part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.writestr(f"{archive}/data.pkl", _data_pkl(entries))
        zf.writestr(f"{archive}/.format_version", "1")
        zf.writestr(f"{archive}/.storage_alignment", str(ALIGN))
        zf.writestr(f"{archive}/byteorder", "little")
        for i, entry in enumerate(entries):
            info = _aligned_info(zf, f"{archive}/data/{i}")
            written = 0
            with zf.open(info, "w", force_zip64=True) as out:
                for block in entry.blocks():
                    if block.dtype != entry.dtype or not block.is_contiguous():
                        raise ValueError(f"{entry.name}: blocks must be contiguous {entry.dtype}")
                    out.write(memoryview(block.view(-1).view(torch.uint8).numpy()))
                    written += block.nbytes
            if written != entry.nbytes:
                raise ValueError(f"{entry.name}: blocks gave {written} bytes, its shape needs {entry.nbytes}")
        zf.writestr(f"{archive}/version", "3\n")
        zf.writestr(f"{archive}/.data/serialization_id", "0" * 40)
    tmp.rename(path)


def plan_shards(entries: list[Entry], max_shard_bytes: int = MAX_SHARD_BYTES) -> list[list[Entry]]:
    """Entries in order, cut into shards of at most max_shard_bytes (a bigger tensor gets a shard alone)."""
    shards: list[list[Entry]] = [[]]
    size = 0
    for entry in entries:
        if shards[-1] and size + entry.nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(entry)
        size += entry.nbytes
    return shards


def write_bin_folder(folder: Path, entries: list[Entry], max_shard_bytes: int = MAX_SHARD_BYTES) -> list[Path]:
    """The checkpoint as Hugging Face ships it: pytorch_model.bin, or numbered shards plus
    pytorch_model.bin.index.json when it exceeds max_shard_bytes. Returns the files written."""
    folder = Path(folder)
    shards = plan_shards(entries, max_shard_bytes)
    if len(shards) == 1:
        write_bin(folder / "pytorch_model.bin", entries)
        return [folder / "pytorch_model.bin"]
    files, weight_map = [], {}
    for i, shard in enumerate(shards):
        name = f"pytorch_model-{i + 1:05d}-of-{len(shards):05d}.bin"
        write_bin(folder / name, shard)
        weight_map.update({e.name: name for e in shard})
        files.append(folder / name)
    index = {"metadata": {"total_size": sum(e.nbytes for e in entries)}, "weight_map": weight_map}
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return files
