"""Tensor parallelism: one model split over N devices (Megatron-style) on torch.distributed.

gloo between CPU processes, NCCL between CUDA GPUs, HCCL between Ascend NPUs. Rank 0 is the caller's
thread; ranks 1..N-1 are worker processes (worker.py) the engine starts, feeds and stops. Engine.load calls
`loading()`'s hooks (context.py) and hands a tensor-parallel request to `load_leader` (leader.py).
See docs/PARALLEL.md.
"""
from __future__ import annotations

from .context import SINGLE, loading
from .leader import load_leader
from .sharding import ShardPlan, check_split

__all__ = ["SINGLE", "ShardPlan", "check_split", "load_leader", "loading"]
