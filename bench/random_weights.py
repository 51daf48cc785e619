"""Random Baichuan2 weights of any size, produced block by block (a 7B model never exists in memory at once).

The scales are testkit.fixtures.random_weights' (linear std 0.7/sqrt(fan_in), embedding std 0.4, norms
1 + 0.1·N(0,1), lm_head rows scaled by exp(U(-1, 1)) so that NormHead's normalisation matters): attention is
neither flat nor one-hot and the bf16 model's logits stay finite and near unit scale. Each tensor has its
own generator (seed, index), so any tensor can be regenerated alone.
"""
from __future__ import annotations

import math
from typing import Iterator

import torch

from .binwriter import Entry

#: Elements per generated block (float32 while drawn: 64 MiB), whole rows.
BLOCK_ELEMENTS = 1 << 24


def _layout(shape) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, shape, kind) of every tensor, in the order Hugging Face's Baichuan2 checkpoints hold them."""
    h, i, v = shape.hidden_size, shape.intermediate_size, shape.vocab_size
    out = [("model.embed_tokens.weight", (v, h), "embedding")]
    for n in range(shape.num_layers):
        p = f"model.layers.{n}."
        out += [(p + "self_attn.W_pack.weight", (3 * h, h), "linear"),  # rows [q; k; v]
                (p + "self_attn.o_proj.weight", (h, h), "linear"),
                (p + "mlp.gate_proj.weight", (i, h), "linear"),
                (p + "mlp.down_proj.weight", (h, i), "linear"),
                (p + "mlp.up_proj.weight", (i, h), "linear"),
                (p + "input_layernorm.weight", (h,), "norm"),
                (p + "post_attention_layernorm.weight", (h,), "norm")]
    return out + [("model.norm.weight", (h,), "norm"), ("lm_head.weight", (v, h), "head")]


def _blocks(shape: tuple[int, ...], kind: str, dtype: torch.dtype, seed: int) -> Iterator[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    if kind == "norm":
        yield (1.0 + 0.1 * torch.randn(shape, generator=gen)).to(dtype)
        return
    rows, cols = shape
    step = max(1, BLOCK_ELEMENTS // cols)
    for start in range(0, rows, step):
        n = min(step, rows - start)
        block = torch.randn(n, cols, generator=gen)
        if kind == "embedding":
            block *= 0.4
        else:
            block *= 0.7 / math.sqrt(cols)
            if kind == "head":
                block *= torch.exp(torch.rand(n, 1, generator=gen) * 2 - 1)
        yield block.to(dtype)
        del block


def weight_entries(shape, dtype: torch.dtype = torch.bfloat16, seed: int = 0) -> list[Entry]:
    """Every tensor of a model of this Shape, each as an Entry whose blocks are drawn when written."""
    return [Entry(name, dims, dtype, (lambda d=dims, k=kind, s=seed * 1_000_003 + n: _blocks(d, k, dtype, s)))
            for n, (name, dims, kind) in enumerate(_layout(shape))]


def whole(entry: Entry) -> torch.Tensor:
    """One entry's tensor in full (tests; a 7B tensor is up to 1 GB)."""
    return torch.cat([b.reshape(-1) for b in entry.blocks()]).view(entry.shape)
