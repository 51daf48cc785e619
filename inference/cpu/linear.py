"""KernelLinear: a bias-free linear layer whose products run on the CPU C kernels (bf16 or float32 weights).

Decode multiplies one activation row by each matrix; torch's bf16 path reads the weights at about half of
DRAM bandwidth here (float32: ~40 %), the kernel at about 90 %.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import kernels

#: Packed int8 matrices (the C kernels' tile_int8): 16 rows interleaved by column pairs.
TILE = 16


def packed_view(q: torch.Tensor) -> torch.Tensor:
    """The [N/16, K/2, 16, 2] view of a packed [N, K] int8 buffer: [t, e, l, c] is row 16t + l, column 2e + c."""
    return q.view(q.shape[0] // TILE, q.shape[1] // 2, TILE, 2)


def single_row(x: torch.Tensor) -> bool:
    return x.numel() == x.shape[-1] and x.device.type == "cpu"


class KernelLinear(nn.Module):
    """Base of the kernel-backed linear layers: forward(x, out_dtype) can return float32 sums directly.

    `out_dtype` set on the layer (inference.cpu sets float32 on lm_head) is its default output dtype: the
    logits are not rounded to bf16, which would turn near-ties into ties.
    """

    out_dtype: torch.dtype | None = None

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """float32 outputs, as summed."""
        return self(x, torch.float32)


def packed_product(lib, weight: torch.Tensor, x: torch.Tensor, out_dtype: torch.dtype,
                    scales: torch.Tensor | None = None) -> torch.Tensor:
    """x[..., K] @ weight.T for a packed weight (bf16, or int8 with its row scales): the C product on bf16 rows."""
    rows = x.reshape(-1, x.shape[-1]).to(torch.bfloat16).contiguous()
    kind = out_dtype if out_dtype in (torch.bfloat16, torch.float32) else torch.float32
    out = kernels.gemm_packed(lib, weight, rows, torch.empty(rows.shape[0], weight.shape[0], dtype=kind), scales)
    return out.reshape(*x.shape[:-1], weight.shape[0]).to(out_dtype)


class CpuLinear(KernelLinear):
    """A bias-free bf16 or float32 linear layer (the same weight Parameter) whose products use the C kernels.

    With pack=True a bf16 weight that
    allows it is packed in place by 16-row tiles (csrc/packed.c: ~1.4x the read rate at high bandwidth), and
    several-row products (prefill) then use the packed C product, at oneDNN's speed; otherwise they stay on
    F.linear (oneDNN).
    """

    def __init__(self, linear: nn.Linear, lib, pack: bool = False):
        super().__init__()
        self.weight = linear.weight
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self._lib = lib
        self.packed = bool(pack and lib.bf16_packing() and self.weight.dtype == torch.bfloat16
                           and self.weight.is_contiguous() and self.out_features % TILE == 0
                           and self.in_features % 2 == 0)
        if self.packed:
            with torch.no_grad():
                kernels.pack_bf16(lib, self.weight)

    def forward(self, x: torch.Tensor, out_dtype: torch.dtype | None = None) -> torch.Tensor:
        out_dtype = out_dtype or self.out_dtype or x.dtype
        if single_row(x) and x.dtype == self.weight.dtype and self.weight.is_contiguous() and (
                x.dtype == torch.bfloat16 or out_dtype == torch.float32):
            out = torch.empty(*x.shape[:-1], self.out_features, dtype=out_dtype)
            return kernels.gemv(self._lib, self.weight, x.contiguous(), out, packed=self.packed)
        if self.packed:  # F.linear cannot read the packed layout: several rows (or other dtypes) take the C product
            return packed_product(self._lib, self.weight, x, out_dtype)
        if kernels.BATCH_INVARIANT and x.dtype == self.weight.dtype and self.weight.is_contiguous():
            rows = x.reshape(-1, x.shape[-1]).contiguous()  # each row as gemv sums it, not as oneDNN blocks it
            kind = out_dtype if x.dtype == torch.bfloat16 and out_dtype in (torch.bfloat16, torch.float32) else x.dtype
            out = kernels.gemm_rows(self._lib, self.weight, rows, torch.empty(rows.shape[0], self.out_features,
                                                                               dtype=kind))
            return out.reshape(*x.shape[:-1], self.out_features).to(out_dtype)
        return F.linear(x, self.weight).to(out_dtype)


