"""Drop-in replacements for the model's RMSNorm, MLP and Attend that run on the C kernels (same forward, same result)."""
from __future__ import annotations

import torch
from torch import nn

from ..modeling.model import MLP, Positions, RMSNorm
from . import kernels


class KernelRMSNorm(RMSNorm):
    """RMSNorm of contiguous rows in one C call, the decode step's code (eight small torch ops otherwise): bf16
    rows, and float32 rows while kernels.BATCH_INVARIANT holds; other inputs: torch."""

    def __init__(self, norm: RMSNorm, lib):
        nn.Module.__init__(self)
        self.weight, self.eps, self._lib = norm.weight, norm.eps, lib

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == self.weight.dtype and x.is_contiguous() and (
                x.dtype == torch.bfloat16 or x.dtype == torch.float32 and kernels.BATCH_INVARIANT):
            return kernels.rmsnorm(self._lib, x, self.weight, self.eps)
        return super().forward(x)


class KernelMLP(MLP):
    """The MLP with its gated unit dtype(silu(gate) * up) in C, the decode step's arithmetic (torch's SiLU rounds
    differently now and then), while kernels.BATCH_INVARIANT holds; otherwise the model's own forward."""

    def __init__(self, mlp: MLP, lib):
        nn.Module.__init__(self)
        self.gate_proj, self.up_proj, self.down_proj, self._lib = mlp.gate_proj, mlp.up_proj, mlp.down_proj, lib

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not kernels.BATCH_INVARIANT or x.dtype not in (torch.bfloat16, torch.float32):
            return super().forward(x)
        g, u = self.gate_proj(x), self.up_proj(x)
        if g.dtype != u.dtype or not (g.is_contiguous() and u.is_contiguous()):
            return super().forward(x)
        return self.down_proj(kernels.gated(self._lib, g, u))


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
