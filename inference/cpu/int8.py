"""Weight-only int8: per-output-row symmetric quantization and the Int8Linear layer that holds it.

Int8Linear runs its products on the C kernels (inference.cpu.kernels) on a CPU, and on aten's
_weight_int8pack_mm or a dequantized copy elsewhere (CUDA).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import hugepages, kernels
from .linear import TILE, KernelLinear, packed_product, packed_view, single_row


def quantize_rows(rows: torch.Tensor, normalize: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8 of a block of rows, in float32: rows ≈ q * scale[:, None], q in [-127, 127].

    normalize=True quantizes the L2-normalised rows (Baichuan2's NormHead) straight from float32.
    """
    w = rows.float()
    if normalize:
        w = F.normalize(w, dim=-1)
    scale = (w.abs().amax(dim=1) / 127.0).clamp_(min=1e-12)
    return torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8), scale


def quantize_into(store_q, scale: torch.Tensor, start: int, rows: torch.Tensor, normalize: bool = False,
                  block_rows: int = 512) -> None:
    """store_q(start + i, q block) and scale[start:] = quantize_rows(rows), block_rows at a time (the float32
    temporaries stay small)."""
    for i in range(0, rows.shape[0], block_rows):
        block_q, block_scale = quantize_rows(rows[i:i + block_rows].to(scale.device), normalize)
        store_q(start + i, block_q)
        scale[start + i:start + i + block_q.shape[0]] = block_scale


def quantize_int8(weight: torch.Tensor, block_rows: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole matrix as per-row int8 (row-major) and its float32 scales."""
    q = torch.empty(weight.shape, dtype=torch.int8, device=weight.device)
    scale = torch.empty(weight.shape[0], dtype=torch.float32, device=weight.device)
    quantize_into(lambda at, block: q[at:at + block.shape[0]].copy_(block), scale, 0, weight, block_rows=block_rows)
    return q, scale


class Int8Linear(KernelLinear):
    """Weight-only int8: int8 rows with one float32 scale each; activations and outputs keep the model dtype.

    One-row products (decode) use the C kernel when it is available, else aten's _weight_int8pack_mm;
    several bf16 rows (prefill, compute-bound) use the packed C product where the weights are packed, else
    the matrix dequantized to the activation dtype and F.linear.
    """

    def __init__(self, out_features: int, in_features: int, lib=None, device: torch.device | str = "cpu",
                 normalize_rows: bool = False):
        super().__init__()
        self.register_buffer("qweight", hugepages.empty((out_features, in_features), torch.int8, device))
        self.register_buffer("scales", torch.empty(out_features, dtype=torch.float32, device=device))
        self.in_features, self.out_features = in_features, out_features
        self.normalize_rows = normalize_rows  # NormHead: rows L2-normalised as they are quantized
        self._lib = lib if self.in_features <= kernels.MAX_INT8_K else None
        #: qweight packed by 16-row tiles for the C kernels (scripts/gemv_layouts.py: ~1.4x the read rate at
        #: high bandwidth), else row-major
        self.packed = bool(self._lib is not None and self._lib.int8_packing() and out_features % TILE == 0
                           and in_features % 2 == 0)

    @classmethod
    def from_weight(cls, weight: torch.Tensor, lib=None) -> "Int8Linear":
        layer = cls(weight.shape[0], weight.shape[1], lib, weight.device)
        layer.copy_rows(0, weight)
        return layer

    # The loader's target protocol (inference.modeling.weight_copy.copy_into): the checkpoint matrix's shape, and its
    # rows arriving block by block, so a bf16 copy of the matrix never exists.
    @property
    def shape(self) -> torch.Size:
        return torch.Size((self.out_features, self.in_features))

    def copy_rows(self, start: int, rows: torch.Tensor) -> None:
        quantize_into(self._store_rows, self.scales, start, rows, self.normalize_rows)

    def _store_rows(self, start: int, q: torch.Tensor) -> None:
        """qweight rows start .. start + len(q) = q (row-major int8), packed when the layer is."""
        end = start + q.shape[0]
        if not self.packed:
            self.qweight[start:end] = q
            return
        tiles = packed_view(self.qweight)
        first, last = -(-start // TILE) * TILE, end // TILE * TILE  # the whole tiles among the rows: [first, last)
        if first < last:
            whole = q[first - start:last - start]
            tiles[first // TILE:last // TILE] = whole.view(-1, TILE, q.shape[1] // 2, 2).transpose(1, 2)
        else:
            first = last = end
        for row in (*range(start, first), *range(last, end)):  # rows of tiles that other blocks share
            tiles[row // TILE, :, row % TILE] = q[row - start].view(-1, 2)

    def row_major(self) -> torch.Tensor:
        """qweight as row-major int8 rows (a copy when packed)."""
        if not self.packed:
            return self.qweight
        return packed_view(self.qweight).transpose(1, 2).reshape(self.out_features, self.in_features)

    def dequantized(self, dtype: torch.dtype) -> torch.Tensor:
        if self._lib is not None and dtype == torch.bfloat16 and self.qweight.device.type == "cpu":  # one pass
            return kernels.dequantize_int8_bf16(self._lib, self.qweight, self.scales, self.packed)
        return (self.row_major().to(torch.float32) * self.scales[:, None]).to(dtype)

    def forward(self, x: torch.Tensor, out_dtype: torch.dtype | None = None) -> torch.Tensor:
        out_dtype = out_dtype or self.out_dtype or x.dtype
        if single_row(x):
            if self._lib is not None and x.dtype in (torch.bfloat16, torch.float32):
                out = torch.empty(*x.shape[:-1], self.out_features, dtype=out_dtype)
                xb = x.to(torch.bfloat16).contiguous()  # the kernel carries it as int16 with one scale
                return kernels.gemv_int8(self._lib, self.qweight, self.scales, xb, out, self.packed)
            if x.dtype in (torch.bfloat16, torch.float16) and self.in_features % 32 == 0:  # aten needs K % 32 == 0
                y = torch.ops.aten._weight_int8pack_mm(x.reshape(1, -1).contiguous(), self.qweight,
                                                       self.scales.to(x.dtype))
                return y.reshape(*x.shape[:-1], self.out_features).to(out_dtype)
        if self.packed and x.dtype == torch.bfloat16 and kernels.BATCH_INVARIANT:  # each row as decode multiplies it
            rows = x.reshape(-1, x.shape[-1]).contiguous()
            kind = out_dtype if out_dtype in (torch.bfloat16, torch.float32) else torch.float32
            out = kernels.gemm_int8_rows(self._lib, self.qweight, self.scales, rows,
                                         torch.empty(rows.shape[0], self.out_features, dtype=kind))
            return out.reshape(*x.shape[:-1], self.out_features).to(out_dtype)
        if self._lib is not None and x.dtype in (torch.bfloat16, torch.float32) and kernels.BATCH_INVARIANT:
            rows = x.reshape(-1, x.shape[-1])  # unpacked (rows not a multiple of 16): the one-row kernel, row by row
            out = torch.stack([self(row, out_dtype) for row in rows])
            return out.reshape(*x.shape[:-1], self.out_features)
        if self.packed and x.dtype == torch.bfloat16 and self._lib.bf16_packing():  # no dequantized copy
            return packed_product(self._lib, self.qweight, x, out_dtype, self.scales)
        return F.linear(x, self.dequantized(x.dtype)).to(out_dtype)


