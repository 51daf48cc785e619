"""Which part of each checkpoint tensor a tensor-parallel rank holds (Megatron's split), and the rank's config.

Rank r of N holds: W_pack's q, k and v rows of heads [r·H/N, (r+1)·H/N) (k and v: of its KV/N key/value
heads); o_proj's and down_proj's input columns of its heads / its intermediate slice (their products are
partial sums, added by an all-reduce); gate_proj's and up_proj's rows of its intermediate slice; the
embedding's and lm_head's rows of its vocabulary slice (ceil(V/N) rows, the last rank's tail zero-padded).
Norm weights are whole on every rank. The rank's model is an ordinary CausalLM built from rank_config.
"""
from __future__ import annotations

import dataclasses
import math

import torch

from ..modeling.config import ModelConfig
from ..errors import InputError
from ..modeling.model import alibi_slopes


@dataclasses.dataclass(frozen=True)
class RankConfig(ModelConfig):
    """A rank's shape: heads, key/value heads, intermediate size and vocabulary rows divided by the world size.

    head_dim stays the whole model's (hidden_size over all heads), so every model part sized by it is right.
    """

    full_heads: int = 0

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.full_heads


def check_split(config: ModelConfig, world: int) -> None:
    """A one-line InputError when the model cannot be split over `world` ranks."""
    if isinstance(world, bool) or not isinstance(world, int) or world < 1:
        raise InputError(f"--tensor-parallel must be a positive integer, got {world!r}")
    for what, count in (("attention heads", config.num_heads), ("key/value heads", config.num_kv_heads),
                        ("intermediate size", config.intermediate_size)):
        if count % world:
            raise InputError(f"cannot split the model over {world} devices: its {count} {what} are not "
                             f"divisible by {world} (--tensor-parallel must divide the head count)")


class ShardPlan:
    """Rank `rank` of `world`: its config, its ALiBi slopes and the slice of each checkpoint tensor it loads."""

    def __init__(self, config: ModelConfig, world: int, rank: int):
        check_split(config, world)
        self.full, self.world, self.rank = config, world, rank
        self.heads, self.kv_heads = config.num_heads // world, config.num_kv_heads // world
        self.inter = config.intermediate_size // world
        self.vocab_rows = math.ceil(config.vocab_size / world)
        self.vocab_start = rank * self.vocab_rows
        self.vocab_end = min(config.vocab_size, self.vocab_start + self.vocab_rows)  # may equal start (tiny vocab)
        self.config = RankConfig(**{**dataclasses.asdict(config), "num_heads": self.heads,
                                    "num_kv_heads": self.kv_heads, "intermediate_size": self.inter,
                                    "vocab_size": self.vocab_rows, "full_heads": config.num_heads})

    def slopes(self) -> list[float]:
        """This rank's heads' ALiBi slopes: the whole model's list, sliced (not the slopes of H/N heads)."""
        return alibi_slopes(self.full.num_heads)[self.rank * self.heads:(self.rank + 1) * self.heads]

    def pieces(self, name: str, tensor: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
        """(first target row, source view) pairs that fill this rank's copy of checkpoint tensor `name`.

        Views of the (memory-mapped) checkpoint: only the rank's rows or columns are ever read.
        """
        d, r = self.full.head_dim, self.rank
        kind = name.rsplit(".", 2)[-2] if name.count(".") >= 2 else name
        if kind == "W_pack":
            q, kv = self.full.num_heads * d, self.full.num_kv_heads * d
            mine_q, mine_kv = self.heads * d, self.kv_heads * d
            return [(0, tensor[r * mine_q:(r + 1) * mine_q]),
                    (mine_q, tensor[q + r * mine_kv:q + (r + 1) * mine_kv]),
                    (mine_q + mine_kv, tensor[q + kv + r * mine_kv:q + kv + (r + 1) * mine_kv])]
        if kind == "q_proj":
            return [(0, tensor[r * self.heads * d:(r + 1) * self.heads * d])]
        if kind in ("k_proj", "v_proj"):
            return [(0, tensor[r * self.kv_heads * d:(r + 1) * self.kv_heads * d])]
        if kind == "o_proj":
            return [(0, tensor[:, r * self.heads * d:(r + 1) * self.heads * d])]
        if kind in ("gate_proj", "up_proj"):
            return [(0, tensor[r * self.inter:(r + 1) * self.inter])]
        if kind == "down_proj":
            return [(0, tensor[:, r * self.inter:(r + 1) * self.inter])]
        if name in ("model.embed_tokens.weight", "lm_head.weight"):
            held = self.vocab_end - self.vocab_start
            out = [(0, tensor[self.vocab_start:self.vocab_end])] if held else []
            if held < self.vocab_rows:  # the padded tail: zero rows (never looked up; their logits are cut off)
                out.append((held, torch.zeros(self.vocab_rows - held, tensor.shape[1], dtype=tensor.dtype)))
            return out
        return [(0, tensor)]  # norms: whole on every rank
