"""Drop-in replacements for the model's RMSNorm and Attend that call Ascend's fused ops (same forward, same result).

Every torch_npu entry point is reached through `ops` (inference.npu.runtime.TorchNpuOps on a real NPU, a
recording stand-in in the tests). Shapes follow inference.modeling.model: q [L, H, D], caches [KV, S, D].
- NpuRMSNorm: torch_npu.npu_rms_norm (one op instead of eight; the norm is computed in float32 inside).
- FusedAttend (RoPE models): npu_prompt_flash_attention for prefill, npu_incre_flash_attention for decode,
  float16, BNSD layout, over the whole static cache with its valid length given (fixed shapes).
- AlibiAttend (ALiBi models, Baichuan2-13B): neither fused op takes an ALiBi bias on a 310P (pse_shift must
  be None on inference cards), so scores are computed explicitly with the additive float16 mask of
  Positions.bias. No boolean mask ever reaches SDPA on the NPU (finding 4).
"""
from __future__ import annotations

import torch
from torch import nn

from ..modeling.model import Positions, RMSNorm

#: pre_tokens / next_tokens that leave the band unlimited: the explicit mask alone decides (sparse_mode 0).
UNLIMITED = 2147483647


class NpuRMSNorm(RMSNorm):
    """RMSNorm through torch_npu.npu_rms_norm(x, gamma, epsilon) -> (y, rstd); y keeps x's dtype."""

    def __init__(self, norm: RMSNorm, ops):
        nn.Module.__init__(self)
        self.weight, self.eps, self._ops = norm.weight, norm.eps, ops

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._ops.npu_rms_norm(x, self.weight, epsilon=self.eps)[0]


def _shared(pos: Positions, key, build):
    """A tensor built once per forward pass and shared by every layer (as Positions.bias is)."""
    store = pos.__dict__.setdefault("_npu_shared", {})
    if key not in store:
        store[key] = build()
    return store[key]


def prefill_mask(pos: Positions, cache_len: int, device) -> torch.Tensor:
    """atten_mask of npu_prompt_flash_attention: bool [1, 1, L, S], True where a key is masked (later than
    the query). Positions beyond the valid length are cut by actual_seq_lengths_kv as well."""
    q_pos = torch.arange(pos.start, pos.end, device=device)[:, None]
    k_pos = torch.arange(cache_len, device=device)[None, :]
    return (k_pos > q_pos)[None, None]


class FusedAttend(nn.Module):
    """Causal attention of the new positions over the static cache with Ascend's two fused kernels."""

    def __init__(self, ops, scale: float, num_heads: int, num_kv_heads: int):
        super().__init__()
        self._ops, self.scale, self.num_heads, self.num_kv_heads = ops, scale, num_heads, num_kv_heads

    def forward(self, q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, pos: Positions) -> torch.Tensor:
        heads, dim = q.shape[1], q.shape[2]
        keys, values = k_cache.unsqueeze(0), v_cache.unsqueeze(0)  # BNSD [1, KV, S, D], contiguous
        if pos.length == 1:  # decode: one query row, the valid cache length as a host-side list
            out = self._ops.npu_incre_flash_attention(
                q.reshape(1, heads, 1, dim), keys, values, actual_seq_lengths=[pos.end], num_heads=heads,
                scale_value=self.scale, input_layout="BNSD", num_key_value_heads=self.num_kv_heads)
            return out.view(1, heads, dim)
        mask = _shared(pos, ("prefill_mask", k_cache.shape[1]), lambda: prefill_mask(pos, k_cache.shape[1], q.device))
        out = self._ops.npu_prompt_flash_attention(
            q.transpose(0, 1).unsqueeze(0).contiguous(), keys, values, atten_mask=mask,
            actual_seq_lengths=[pos.length], actual_seq_lengths_kv=[pos.end], num_heads=heads,
            scale_value=self.scale, pre_tokens=UNLIMITED, next_tokens=UNLIMITED, input_layout="BNSD",
            num_key_value_heads=self.num_kv_heads, sparse_mode=0)
        return out[0].transpose(0, 1)  # [L, H, D]


class AlibiAttend(nn.Module):
    """softmax(q·kᵀ/√D + ALiBi bias) · v with plain matmuls: the additive float16 bias of Positions.bias
    (−inf above the diagonal) and the softmax in float32; heads grouped for GQA."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, pos: Positions) -> torch.Tensor:
        heads, kv_heads = q.shape[1], k_cache.shape[0]
        keys, values = k_cache[:, :pos.end], v_cache[:, :pos.end]  # [KV, end, D]
        if kv_heads != heads:
            keys = keys.repeat_interleave(heads // kv_heads, dim=0)
            values = values.repeat_interleave(heads // kv_heads, dim=0)
        scores = torch.matmul((q * self.scale).transpose(0, 1), keys.transpose(1, 2))  # [H, L, end]
        scores = scores + pos.bias(q.dtype)  # additive: slopes·(k − q), −inf where k > q
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        return torch.matmul(probs, values).transpose(0, 1)  # [L, H, D]
