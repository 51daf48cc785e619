"""The per-rank model's communication points, swapped into an ordinary CausalLM from outside.

A rank's model is a plain CausalLM of the rank's shape (sharding.RankConfig); four swaps make it one
tensor-parallel piece: o_proj and down_proj sum their partial products over the ranks (all-reduce), the
embedding looks up only its vocabulary rows (zeros elsewhere, summed over the ranks: exact), and lm_head's
logits of each vocabulary slice are gathered into the whole vocabulary. Each wrapper keeps the original
layer as `inner`, so inference.cpu's accelerate still swaps that layer for its kernel version.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ReduceSum(nn.Module):
    """inner(x), summed over every rank (the row-parallel half of a Megatron pair)."""

    def __init__(self, inner: nn.Module, group):
        super().__init__()
        self.inner, self._group = inner, group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._group.all_reduce(self.inner(x))


class ShardEmbedding(nn.Module):
    """Embedding rows [start, start + rows) of the vocabulary; other ids give zeros, then the ranks' sum."""

    def __init__(self, embedding: nn.Embedding, start: int, group):
        super().__init__()
        self.weight, self.start, self._group = embedding.weight, start, group

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        local = tokens - self.start
        outside = (local < 0) | (local >= self.weight.shape[0])
        out = F.embedding(local.masked_fill(outside, 0), self.weight)
        return self._group.all_reduce(out.masked_fill_(outside[:, None], 0))


class GatherLogits(nn.Module):
    """float32 logits of this rank's vocabulary slice, gathered from every rank and cut to the real vocabulary."""

    def __init__(self, inner: nn.Module, vocab_size: int, group):
        super().__init__()
        self.inner, self.vocab_size, self._group = inner, vocab_size, group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.inner(x).float().contiguous()
        return torch.cat(self._group.all_gather(logits), dim=-1)[..., :self.vocab_size]


def install(model: nn.Module, plan, group) -> None:
    """Swap a loaded rank model's o_proj, down_proj, embedding and lm_head for their communicating versions."""
    for layer in model.model.layers:
        layer.self_attn.o_proj = ReduceSum(layer.self_attn.o_proj, group)
        layer.mlp.down_proj = ReduceSum(layer.mlp.down_proj, group)
    model.model.embed_tokens = ShardEmbedding(model.model.embed_tokens, plan.vocab_start, group)
    model.lm_head = GatherLogits(model.lm_head, plan.full.vocab_size, group)
