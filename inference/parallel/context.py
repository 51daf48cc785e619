"""What Engine.load asks about tensor parallelism: this load's rank, or SINGLE (one device: every hook is a no-op).

Engine.load calls the same hooks either way: place (the rank's device), shard (the rank's config), adapt
(ALiBi slopes of the rank's heads), plan (the checkpoint slices to read), install (the collectives) and
finish (rank 0's model answers for the whole group). A rank's context is set only while it loads.
"""
from __future__ import annotations

import contextlib
import threading

import torch

from .sharding import ShardPlan

_current = threading.local()


class Single:
    """One device: the model is loaded whole."""

    active, plan, host_ranks = False, None, 1

    def place(self, device: torch.device) -> torch.device:
        return device

    def shard(self, config):
        return config

    def adapt(self, model) -> None:
        pass

    def install(self, model) -> None:
        pass

    def finish(self, model):
        return model


SINGLE = Single()


class RankContext(Single):
    """Rank `group.rank` of a tensor-parallel load."""

    active = True

    def __init__(self, group):
        self.group = group
        self.plan: ShardPlan | None = None
        self.host_ranks = group.world if group.device.type == "cpu" else 1  # ranks sharing this memory

    def place(self, device: torch.device) -> torch.device:
        return self.group.device

    def shard(self, config):
        self.plan = ShardPlan(config, self.group.world, self.group.rank)
        return self.plan.config

    def adapt(self, model) -> None:
        if model.alibi is not None:  # CausalLM made slopes for H/N heads; the rank's heads have the model's
            model.alibi = torch.tensor(self.plan.slopes(), dtype=torch.float32, device=model.alibi.device)

    def install(self, model) -> None:
        from .modules import install

        install(model, self.plan, self.group)

    def finish(self, model):
        inner = model.lm_head.inner
        if hasattr(inner, "out_dtype"):  # a C-kernel head: float32 logits as summed (inference.cpu does this
            inner.out_dtype = torch.float32  # for a plain head; ours is wrapped)
        if self.group.rank != 0:
            return model
        from .leader import Leader

        return Leader(model, self.group, self.plan.full)


def loading():
    """The tensor-parallel rank of the load running in this thread, or SINGLE."""
    return getattr(_current, "context", SINGLE)


@contextlib.contextmanager
def rank_loading(context: RankContext):
    _current.context = context
    try:
        yield context
    finally:
        _current.context = SINGLE
