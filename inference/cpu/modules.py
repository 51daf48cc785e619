"""Drop-in replacements for the model's RMSNorm and Attend that run on the C kernels (same forward, same result)."""
from __future__ import annotations

import torch
from torch import nn

from ..modeling.model import Positions, RMSNorm
from . import kernels


class KernelRMSNorm(RMSNorm):
    """RMSNorm of contiguous bf16 rows in one C call (eight small torch ops otherwise); other inputs: torch."""

    def __init__(self, norm: RMSNorm, lib):
        nn.Module.__init__(self)
        self.weight, self.eps, self._lib = norm.weight, norm.eps, lib

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == self.weight.dtype == torch.bfloat16 and x.is_contiguous():
            return kernels.rmsnorm_bf16(self._lib, x, self.weight, self.eps)
        return super().forward(x)


class KernelAttend(nn.Module):
    """Causal attention over the KV cache in C: one position (decode) or several (prefill, cached prefix
    included); ALiBi slopes applied in the kernel, so no mask is built. SDPA's CPU path is ~10x slower here."""

    def __init__(self, lib, scale: float, slopes: torch.Tensor | None):
        super().__init__()
        self._lib, self.scale, self.slopes = lib, scale, slopes

    def forward(self, q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, pos: Positions) -> torch.Tensor:
        # q [L, H, D]; k_cache, v_cache [KV, S, D] -> [L, H, D]
        if pos.length == 1:
            one = q[0].contiguous()
            out = kernels.attn_decode(self._lib, one, k_cache, v_cache, pos.end, self.scale, self.slopes,
                                      torch.empty_like(one))
            return out.unsqueeze(0)
        return kernels.attn_prefill(self._lib, q, k_cache, v_cache, pos.start, self.scale, self.slopes)
