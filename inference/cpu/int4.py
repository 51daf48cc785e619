"""Weight-only group-wise int4 (`--quantize int4`): quantized as the rows stream in, packed for csrc/int4.c.

Format: w ~ d * q + m, q in 0..15, one fp16 scale d and one fp16 minimum m per row and group of 32 columns
along K (asymmetric; llama.cpp's Q4_1 numbers in our own tile layout): 5 bits a weight, 0.62 of int8's
bytes. lm_head stays int8 (inference.cpu.layer_type). Why, measured on the demo (docs/BENCHMARKS.md, int4):
- groups of 64 (4.5 bits) cost +42 % perplexity and groups of 128 more: SmolLM2's source weights are Q4_1
  blocks of 32, and a wider group merges two blocks' grids; MSE-fitted ranges did not help (+55 %);
- symmetric scales (Q4_0-like) at groups of 32 cost +90 %: asymmetric uses all 16 levels whatever the signs;
- fp16 rather than bf16 scales: bf16's 8-bit mantissa moves m by up to 1/30 of a step, fp16's by 1/250.
A K that is not a multiple of 32 is padded with zero-activation columns; rows are padded to whole tiles.
The C product (csrc/int4.h) quantizes the activation to 15-bit integers per group of 32, held as two int8
planes (a = 128 h + l), and multiplies with two vpdpbusd per nibble vector (AVX-512 VNNI; AVX2 maddubs; scalar
elsewhere): exact integer sums, 0.004 % product error where int8 activations (llama.cpp's Q8_0) erred 0.5 % and
flipped the demo's near-tied first answer token; prefill runs the same product on blocks of rows
(gemm_int4: each tile reused from cache across 8 rows, no dequantized copy), so a row's result is bitwise the
same in a prefill as in a decode step. Without the kernels (another device, no compiler) the rows stay
row-major and each product dequantizes its matrix in torch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import hugepages, kernels
from .linear import TILE, KernelLinear, single_row

GROUP = 32
#: Must equal csrc/int4.h's INT4_LAYOUT_VERSION * 1000 + INT4_GROUP (checked when the kernels load).
LAYOUT = 2000 + GROUP
FP16_MAX = 65504.0


def padded(k: int) -> int:
    return -(-k // GROUP) * GROUP


def quantize_groups(rows: torch.Tensor, normalize: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q (uint8 0..15, [b, Kp]), d and m (fp16, [b, Kp / GROUP]) of a block of rows: rows ~ d * q + m per group.

    normalize=True quantizes the L2-normalised rows (Baichuan2's NormHead). Columns past K repeat the last
    one (they do not widen a group's range); their nibbles are multiplied by zero activations.
    """
    b, k = rows.shape
    kp = padded(k)
    w = torch.empty(b, kp, dtype=torch.float32, device=rows.device)  # the block's one float32 temporary
    w[:, :k] = rows
    if normalize:
        w[:, :k] = F.normalize(w[:, :k], dim=-1)
    w[:, k:] = w[:, k - 1:k]
    groups = w.clamp_(-FP16_MAX, FP16_MAX).view(b, kp // GROUP, GROUP)
    lo, hi = groups.amin(dim=2), groups.amax(dim=2)
    m = lo.to(torch.float16)
    d = ((hi - m.float()) / 15.0).clamp(max=FP16_MAX).to(torch.float16)
    step = torch.where(d > 0, d.float(), torch.ones_like(lo))
    q = groups.sub_(m.float()[..., None]).div_(step[..., None]).round_().clamp_(0, 15).to(torch.uint8)
    return q.view(b, kp), d, m


def pack_bytes(q: torch.Tensor) -> torch.Tensor:
    """Nibbles q [b, Kp] as bytes [b, Kp / 2] in csrc/int4.h's per-row order: per group, quad j's 4 bytes hold
    columns 4j + c (low nibble) and GROUP / 2 + 4j + c (high nibble)."""
    qq = q.view(q.shape[0], -1, 2, GROUP // 8, 4)
    return (qq[:, :, 0] | (qq[:, :, 1] << 4)).reshape(q.shape[0], -1)


def unpack_bytes(data: torch.Tensor) -> torch.Tensor:
    """pack_bytes inverted: bytes [b, Kp / 2] -> nibbles [b, Kp]."""
    qq = data.view(data.shape[0], -1, 1, GROUP // 8, 4)
    return torch.cat([qq & 15, qq >> 4], dim=2).reshape(data.shape[0], -1)


def dequantize(q: torch.Tensor, d: torch.Tensor, m: torch.Tensor, k: int, dtype: torch.dtype) -> torch.Tensor:
    """d * q + m (float32, then `dtype`) for nibbles q [N, Kp] and per-group d, m [N, Kp / GROUP]: [N, k]."""
    n, kp = q.shape
    w = q.view(n, kp // GROUP, GROUP).float() * d.float()[..., None] + m.float()[..., None]
    return w.view(n, kp)[:, :k].to(dtype)


class Int4Linear(KernelLinear):
    """Weight-only group-wise int4; activations and outputs keep the model dtype.

    With the C kernels the matrix is packed by 16-row tiles (rows padded to a whole tile): one-row products
    (decode) run gemv_int4, several rows (prefill) gemm_int4, which gives each row bitwise gemv_int4's result.
    Without them the bytes stay row-major and every product dequantizes the matrix in torch.
    """

    def __init__(self, out_features: int, in_features: int, lib=None, device: torch.device | str = "cpu",
                 normalize_rows: bool = False):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.padded_in = padded(in_features)
        self.normalize_rows = normalize_rows
        device = torch.device(device)
        self._lib = lib if device.type == "cpu" and (lib is None or lib.int4_layout() == LAYOUT) else None
        self.packed = self._lib is not None
        rows = -(-out_features // TILE) * TILE if self.packed else out_features
        groups = self.padded_in // GROUP
        self.register_buffer("qweight", hugepages.empty((rows, self.padded_in // 2), torch.uint8, device))
        shape = (rows // TILE, groups, TILE) if self.packed else (rows, groups)
        self.register_buffer("scales", torch.empty(shape, dtype=torch.float16, device=device))
        self.register_buffer("mins", torch.empty(shape, dtype=torch.float16, device=device))
        if rows != out_features:  # the last tile's padding rows: zero weights (their sums are never stored)
            self.qweight[out_features:] = 0
            self.scales[-1].zero_()
            self.mins[-1].zero_()

    @classmethod
    def from_weight(cls, weight: torch.Tensor, lib=None, normalize_rows: bool = False) -> "Int4Linear":
        layer = cls(weight.shape[0], weight.shape[1], lib, weight.device, normalize_rows)
        layer.copy_rows(0, weight)
        return layer

    @property
    def shape(self) -> torch.Size:
        """The checkpoint matrix's shape (the loader's target protocol, as Int8Linear)."""
        return torch.Size((self.out_features, self.in_features))

    def copy_rows(self, start: int, rows: torch.Tensor, block_rows: int = 512) -> None:
        """Quantize rows start .. start + len(rows) of the matrix, block_rows at a time (small float32 temporaries)."""
        for i in range(0, rows.shape[0], block_rows):
            q, d, m = quantize_groups(rows[i:i + block_rows].to(self.qweight.device), self.normalize_rows)
            self._store(start + i, pack_bytes(q), d, m)

    def _views(self):
        """qweight as [tiles, groups, 8, 16, 4] and scales, mins as [tiles, groups, 16] (packed layers)."""
        t, g = self.scales.shape[:2]
        return self.qweight.view(t, g, GROUP // 8, TILE, 4), self.scales, self.mins

    def _store(self, start: int, data: torch.Tensor, d: torch.Tensor, m: torch.Tensor) -> None:
        end = start + data.shape[0]
        if not self.packed:
            self.qweight[start:end], self.scales[start:end], self.mins[start:end] = data, d, m
            return
        qv, sv, mv = self._views()
        groups = sv.shape[1]
        first, last = -(-start // TILE) * TILE, end // TILE * TILE  # whole tiles among the rows: [first, last)
        if first < last:
            a, b, tiles = first - start, last - start, slice(first // TILE, last // TILE)
            qv[tiles] = data[a:b].view(-1, TILE, groups, GROUP // 8, 4).permute(0, 2, 3, 1, 4)
            sv[tiles] = d[a:b].view(-1, TILE, groups).transpose(1, 2)
            mv[tiles] = m[a:b].view(-1, TILE, groups).transpose(1, 2)
        else:
            first = last = end
        for row in (*range(start, first), *range(last, end)):  # rows of tiles that other blocks share
            t, lane, i = row // TILE, row % TILE, row - start
            qv[t, :, :, lane, :] = data[i].view(groups, GROUP // 8, 4)
            sv[t, :, lane], mv[t, :, lane] = d[i], m[i]

    def row_major(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(nibbles [N, Kp], d, m [N, Kp / GROUP]) in row order (copies when packed)."""
        if not self.packed:
            return unpack_bytes(self.qweight), self.scales, self.mins
        qv, sv, mv = self._views()
        n = self.out_features
        data = qv.permute(0, 3, 1, 2, 4).reshape(-1, self.padded_in // 2)[:n]
        return (unpack_bytes(data), sv.transpose(1, 2).reshape(-1, sv.shape[1])[:n],
                mv.transpose(1, 2).reshape(-1, mv.shape[1])[:n])

    def dequantized(self, dtype: torch.dtype) -> torch.Tensor:
        """The matrix [N, K] as `dtype`: d * q + m (one C pass for bf16 on the CPU kernels)."""
        if self.packed and dtype == torch.bfloat16:
            return kernels.dequantize_int4_bf16(self._lib, self)
        q, d, m = self.row_major()
        return dequantize(q, d, m, self.in_features, dtype)

    def nbytes(self) -> int:
        """Bytes the quantized matrix holds (nibbles, scales, minimums)."""
        return sum(t.numel() * t.element_size() for t in (self.qweight, self.scales, self.mins))

    def forward(self, x: torch.Tensor, out_dtype: torch.dtype | None = None) -> torch.Tensor:
        out_dtype = out_dtype or self.out_dtype or x.dtype
        if self.packed and x.dtype in (torch.bfloat16, torch.float32) and x.device.type == "cpu":
            kind = out_dtype if out_dtype in (torch.bfloat16, torch.float32) else torch.float32
            out = torch.empty(*x.shape[:-1], self.out_features, dtype=kind)
            xb = x.to(torch.bfloat16).contiguous()  # the kernel quantizes it to 15 bits per group
            if single_row(x):
                return kernels.gemv_int4(self._lib, self, xb, out).to(out_dtype)
            rows = kernels.gemm_int4(self._lib, self, xb.view(-1, self.in_features), out.view(-1, self.out_features))
            return rows.view(out.shape).to(out_dtype)
        compute = torch.bfloat16 if self.packed and x.dtype == torch.bfloat16 else x.dtype
        return F.linear(x.to(compute), self.dequantized(compute)).to(out_dtype)
