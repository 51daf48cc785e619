"""Rank 0: starts the worker ranks and the group, loads its own shard in the caller's thread, and leads each step.

Every forward call on rank 0 first broadcasts (start, length, all_logits) and the token ids, so the workers
run the same step on their shards: the prefix cache, cancel and sampling are decided here alone.
"""
from __future__ import annotations

import weakref
from pathlib import Path

import torch
from torch import nn

from ..env import get_env
from ..errors import InputError
from .backend import check_devices, choose_backend, place, select, threads_per_rank
from .context import RankContext, rank_loading
from .group import Group
from .ranks import Workers
from .sharding import check_split

HOST = "127.0.0.1"
#: Seconds a collective may wait for another rank before the group is declared broken.
DEFAULT_TIMEOUT_S = 30.0
#: Seconds for the workers to start (import torch) and to load their shards.
JOIN_TIMEOUT_S, LOAD_TIMEOUT_S = 120.0, 3600.0


class Leader(nn.Module):
    """Rank 0's model: forward(tokens, start, all_logits) like CausalLM's, run by every rank at once."""

    def __init__(self, model: nn.Module, group: Group, config):
        super().__init__()
        self.inner, self.group, self.config = model, group, config  # config: the whole model's (vocabulary)
        self._finalizer = weakref.finalize(self, group.close)  # workers stop when the engine is dropped

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.inner, name)

    def forward(self, tokens: torch.Tensor, start: int = 0, all_logits: bool = False) -> torch.Tensor:
        self.inner.check_span(start, tokens.shape[0])  # refused here, before any rank is told
        self.group.check()
        header = torch.tensor([start, tokens.shape[0], int(all_logits)], dtype=torch.int64, device=tokens.device)
        self.group.broadcast(header)
        self.group.broadcast(tokens.to(torch.int64).contiguous())
        return self.inner(tokens, start, all_logits)

    def memory(self) -> dict[int, dict]:
        """Each rank's resident memory after loading (bytes): rss_before (before the weights), rss, peak_rss."""
        return {0: self.group.loaded_memory, **self.group.workers.status}

    def close(self) -> None:
        self._finalizer()


def timeout_s() -> float:
    text = get_env("BAICHUAN_CHAT_TP_TIMEOUT", str(DEFAULT_TIMEOUT_S))
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1e6:
        raise InputError(f"BAICHUAN_CHAT_TP_TIMEOUT must be a number of seconds above 0, got {text!r}")
    return value


def load_leader(load, model_dir, *, tensor_parallel, device="auto", dtype="auto", max_seq_len=None,
                quantize=None, cancel=None, npu_ops=None, **options):
    """Engine.load over `tensor_parallel` ranks: checks, worker processes, the group, then rank 0's own load."""
    import torch.distributed as dist

    from ..modeling.config import load_folder_config
    from ..device import resolve_device
    from ..errors import Cancelled
    from .ranks import memory_stats

    world = tensor_parallel
    if isinstance(world, bool) or not isinstance(world, int) or world < 1:
        raise InputError(f"--tensor-parallel must be a positive integer, got {world!r}")
    if model_dir is None:
        raise InputError("tensor parallel needs a model folder; the demo model runs on one device")
    if npu_ops is not None:
        raise InputError("tensor parallel needs real devices (not an NPU stand-in)")
    folder = Path(model_dir).expanduser().resolve()
    config, _ = load_folder_config(folder) if folder.is_dir() else (None, None)
    if config is not None:
        check_split(config, world)  # else Engine.load names the folder's problem
    base = resolve_device(device)
    backend = choose_backend(base)
    check_devices(base, world)
    if dist.is_initialized():
        from ..errors import DeviceError

        raise DeviceError("a tensor-parallel model is already loaded in this process; unload it first")
    wait = timeout_s()
    threads = threads_per_rank(base, world)

    def check_cancel():
        if cancel is not None and cancel.is_set():
            raise Cancelled("loading was cancelled")

    store = dist.TCPStore(HOST, 0, None, True, timeout=_delta(JOIN_TIMEOUT_S), wait_for_workers=False)
    spec = {"model_dir": str(folder), "device": device, "device_type": base.type, "dtype": dtype,
            "max_seq_len": max_seq_len, "quantize": quantize, "world": world, "backend": backend,
            "host": HOST, "port": store.port, "threads": threads, "join_timeout": JOIN_TIMEOUT_S}
    workers = Workers(world, spec, threads)
    group = Group(backend, 0, world, place(base, 0), wait, workers)
    try:
        workers.wait_stage("joining", JOIN_TIMEOUT_S, check_cancel)
        select(group.device)
        group.start(store)
        if base.type == "cpu":
            group.restore_threads = torch.get_num_threads()
            torch.set_num_threads(threads)
        group.loaded_memory = {"rss_before": memory_stats()["rss"]}
        with rank_loading(RankContext(group)):
            engine = load(folder, device=device, dtype=dtype, max_seq_len=max_seq_len, quantize=quantize,
                          cancel=cancel, tensor_parallel=world, **options)
        group.loaded_memory.update(memory_stats())
        workers.wait_stage("ready", LOAD_TIMEOUT_S, check_cancel)
    except BaseException:
        group.close()
        raise
    return engine


def _delta(seconds: float):
    import datetime

    return datetime.timedelta(seconds=seconds)
