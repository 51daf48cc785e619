"""The ranks' collectives over torch.distributed, with every failure turned into one clear DeviceError.

A rank that dies makes the next collective fail at once (the connection closes); one that hangs makes it
fail after the group's timeout. Rank 0 then says which rank and why, stops the others and refuses
further work, so the app can load the model again (on one device or several).
"""
from __future__ import annotations

import datetime

import torch

from ..errors import DeviceError


class Group:
    """This process's rank in a tensor-parallel group: all_reduce, all_gather and broadcast, or one error."""

    def __init__(self, backend: str, rank: int, world: int, device: torch.device, timeout_s: float,
                 workers=None):
        self.backend, self.rank, self.world, self.device = backend, rank, world, device
        self.timeout_s = timeout_s
        self.workers = workers  # rank 0: the worker processes (ranks.Workers); None in a worker
        self.failure: str | None = None
        self.restore_threads: int | None = None  # rank 0 on the CPU: torch's thread count before the group
        self.loaded_memory: dict = {}  # rank 0: its resident memory before and after loading

    def start(self, store) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            raise DeviceError("a tensor-parallel model is already loaded in this process; unload it first")
        dist.init_process_group(self.backend, store=store, rank=self.rank, world_size=self.world,
                                timeout=datetime.timedelta(seconds=self.timeout_s))

    # ---- collectives ----------------------------------------------------------------------------
    def all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        self._run(lambda: dist.all_reduce(tensor))
        return tensor

    def all_gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        import torch.distributed as dist

        parts = [torch.empty_like(tensor) for _ in range(self.world)]
        self._run(lambda: dist.all_gather(parts, tensor))
        return parts

    def broadcast(self, tensor: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        self._run(lambda: dist.broadcast(tensor, src=0))
        return tensor

    def _run(self, collective) -> None:
        if self.failure:
            raise DeviceError(self.failure)
        try:
            collective()
        except Exception as exc:  # noqa: BLE001 - gloo/NCCL/HCCL raise RuntimeError or DistBackendError
            self.fail(exc)
            raise DeviceError(self.failure) from None

    # ---- failure and shutdown --------------------------------------------------------------------
    def fail(self, exc: BaseException | None = None) -> None:
        """Record why the group broke (the dead or silent rank, when known), then stop it."""
        if self.failure:
            return
        # a closed connection comes before the dead process is seen: give it a moment to be reaped
        cause = self.workers.describe_failure(wait=2.0) if self.workers is not None else None
        if cause is None:
            text = " ".join(str(exc).split()) if exc is not None else "stopped"
            timed_out = "timed out" in text.lower() or "timeout" in text.lower()
            cause = (f"a rank did not answer within {self.timeout_s:g} s" if timed_out
                     else f"a rank failed ({text[:160]})")
        self.failure = (f"the tensor-parallel group stopped: {cause}; the model was unloaded - "
                        "load it again (on one device, or on several)")
        self.close()

    def check(self) -> None:
        """Before a step: refuse at once when the group broke or a worker is already gone."""
        if self.failure:
            raise DeviceError(self.failure)
        if self.workers is not None and self.workers.describe_failure() is not None:
            self.fail()
            raise DeviceError(self.failure)

    def close(self) -> None:
        """Stop the worker processes (rank 0) and leave torch.distributed; safe to call twice."""
        if self.workers is not None:
            self.workers.close()
        if self.restore_threads is not None:
            torch.set_num_threads(self.restore_threads)
            self.restore_threads = None
        import torch.distributed as dist

        try:
            if dist.is_initialized():
                dist.destroy_process_group()
        except Exception:  # noqa: BLE001 - a broken group may fail to tear down; it is gone either way
            pass
