"""fp16 range check (finding 5): the largest |x| where float16 could overflow, and fp16-vs-fp32 logit agreement.

Norms and NormHead run in float32, but on the NPU the residual stream, the MLP product silu(gate)·up and the
attention scores stay float16 (largest finite value 65504). RangeProbe records their maxima with forward
hooks on any loaded model (CPU or NPU path, plain or accelerated): run it on a real checkpoint with
    with RangeProbe(engine.model) as probe: engine.model(torch.tensor(ids), 0, all_logits=True)
and compare() the fp16 logits with a float32 run of the same ids.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

FP16_MAX = torch.finfo(torch.float16).max


def _inner(model):
    return getattr(model, "inner", model)  # through runtime.GraphDecode


class RangeProbe:
    """Context manager: maxima of |residual|, |silu(gate)·up| and |q·kᵀ·scale| seen during the block."""

    def __init__(self, model, chunk: int = 512):
        self.model, self.chunk = _inner(model), chunk
        self.max = {"residual": 0.0, "mlp_product": 0.0, "attention_scores": 0.0}
        self._handles = []

    def _note(self, key: str, value: float) -> None:
        self.max[key] = max(self.max[key], value)

    def __enter__(self) -> "RangeProbe":
        for layer in self.model.model.layers:
            self._handles.append(layer.register_forward_hook(
                lambda _m, _i, out: self._note("residual", out.abs().max().item())))
            self._handles.append(layer.mlp.down_proj.register_forward_pre_hook(
                lambda _m, args: self._note("mlp_product", args[0].abs().max().item())))
            self._handles.append(layer.self_attn.attend.register_forward_pre_hook(self._scores))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()

    def _scores(self, _module, args) -> None:
        q, k_cache, _v, pos = args  # q [L, H, D], k_cache [KV, S, D]
        heads, kv_heads = q.shape[1], k_cache.shape[0]
        keys = k_cache[:, :pos.end].float().repeat_interleave(heads // kv_heads, 0)  # [H, end, D]
        scale = q.shape[-1] ** -0.5
        for first in range(0, q.shape[0], self.chunk):  # rows of the causal score matrix, in chunks
            rows = q[first:first + self.chunk].float().transpose(0, 1) * scale  # [H, l, D]
            scores = torch.matmul(rows, keys.transpose(1, 2))  # [H, l, end]
            q_pos = torch.arange(pos.start + first, pos.start + first + rows.shape[1])[:, None]
            visible = torch.arange(pos.end)[None, :] <= q_pos
            self._note("attention_scores", scores.abs().masked_fill(~visible, 0).max().item())

    def margins(self) -> dict[str, float]:
        """How many times each maximum fits under float16's largest finite value."""
        return {key: FP16_MAX / max(value, 1e-30) for key, value in self.max.items()}


def compare(reference: torch.Tensor, logits: torch.Tensor) -> dict[str, float]:
    """Rows of logits [N, V] against float32 reference rows: top-1 agreement and KL(ref ‖ fp16), nats."""
    ref_logp = F.log_softmax(reference.float(), -1)
    logp = F.log_softmax(logits.float(), -1)
    kl = (ref_logp.exp() * (ref_logp - logp)).sum(-1)
    top1 = (reference.argmax(-1) == logits.argmax(-1)).float().mean().item()
    return {"top1": top1, "kl_mean": kl.mean().item(), "kl_max": kl.max().item(),
            "max_abs_diff": (reference.float() - logits.float()).abs().max().item()}
