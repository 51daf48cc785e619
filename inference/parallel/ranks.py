"""Ranks 1..N-1 as worker processes: started with the engine, watched, and stopped with it.

Each worker is `python -m inference.parallel.worker SPEC` with three pipes: its stdin is a lifeline (when it
closes, because rank 0 ended or died, the worker exits at once), its stdout carries one JSON status line per
stage ({"stage": "joining"}, {"stage": "ready", ...} or {"error": ...}), its stderr goes to a file whose last
line explains a crash. Tensors never travel here: they go over torch.distributed.
"""
from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..errors import DeviceError, InputError, ModelFolderError

#: Error kinds a worker may report that keep their class on rank 0 (anything else becomes a DeviceError).
KINDS = {cls.__name__: cls for cls in (InputError, ModelFolderError, DeviceError)}


def memory_stats() -> dict:
    """This process's resident memory now and at its peak, in bytes (Linux /proc: VmRSS and VmHWM; getrusage's
    peak is no use here, since a process keeps its parent's peak from before exec)."""
    values = {"rss": 0, "peak_rss": 0}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key = {"VmRSS:": "rss", "VmHWM:": "peak_rss"}.get(line.split(" ", 1)[0].split("\t", 1)[0])
                if key:
                    values[key] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return values


class Workers:
    """The worker processes of one group, seen from rank 0."""

    def __init__(self, world: int, spec: dict, threads: int):
        root = str(Path(__file__).resolve().parents[2])  # the folder holding the `inference` package
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), TORCH_CPP_LOG_LEVEL="ERROR",
                   PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
        self.procs: list[subprocess.Popen] = []
        self.logs = []
        self.status: dict[int, dict] = {}
        self._closed = False
        try:
            for rank in range(1, world):
                log = tempfile.TemporaryFile()
                self.logs.append(log)
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-m", "inference.parallel.worker", json.dumps({**spec, "rank": rank})],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env, close_fds=True))
        except OSError as exc:
            self.close()
            raise DeviceError(f"could not start a tensor-parallel worker process: {exc.strerror or exc}") from None

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def wait_stage(self, stage: str, timeout_s: float, check_cancel=None) -> None:
        """Wait until every worker reported `stage`; a worker's error, death or silence becomes one error."""
        waiting = {p.stdout.fileno(): rank for rank, p in enumerate(self.procs, start=1)}
        selector = selectors.DefaultSelector()
        for fd in waiting:
            selector.register(fd, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout_s
        try:
            while waiting:
                if check_cancel is not None:
                    check_cancel()
                for key, _ in selector.select(timeout=0.2):
                    rank = waiting[key.fd]
                    line = self.procs[rank - 1].stdout.readline()
                    message = _parse(line)
                    if message is None:  # end of file: the worker died
                        raise DeviceError(f"tensor-parallel {self._death(rank, wait=2.0)}")
                    if "error" in message:
                        kind = KINDS.get(message.get("kind"), DeviceError)
                        text = message["error"]
                        raise kind(text if kind is not DeviceError else f"tensor-parallel rank {rank}: {text}")
                    if message.get("stage") == stage:
                        self.status[rank] = message
                        selector.unregister(key.fd)
                        del waiting[key.fd]
                if time.monotonic() > deadline:
                    late = sorted(waiting.values())
                    raise DeviceError(f"tensor-parallel rank {late[0]} did not get {stage} within {timeout_s:g} s")
        finally:
            selector.close()

    def describe_failure(self, wait: float = 0.0) -> str | None:
        """'rank R (pid P) was killed by signal S' for the first worker that ended, else None."""
        deadline = time.monotonic() + wait
        while True:
            for rank, proc in enumerate(self.procs, start=1):
                if proc.poll() is not None:
                    return self._death(rank)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def _death(self, rank: int, wait: float = 0.0) -> str:
        proc = self.procs[rank - 1]
        try:
            code = proc.wait(timeout=wait) if wait else proc.poll()
        except subprocess.TimeoutExpired:
            code = None
        if code is None:
            return f"rank {rank} (pid {proc.pid}) closed its pipe"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            return f"rank {rank} (pid {proc.pid}) was killed by {name}"
        last = _last_line(self.logs[rank - 1])
        return f"rank {rank} (pid {proc.pid}) exited with status {code}" + (f": {last}" if last else "")

    def close(self, grace_s: float = 3.0) -> None:
        """Close the lifelines (workers exit by themselves), then kill any that have not after grace_s."""
        if self._closed:
            return
        self._closed = True
        for proc in self.procs:
            for pipe in (proc.stdin, proc.stdout):
                try:
                    pipe.close()
                except OSError:
                    pass
        deadline = time.monotonic() + grace_s
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in self.logs:
            log.close()


def _parse(line: bytes) -> dict | None:
    if not line:
        return None
    try:
        message = json.loads(line)
    except ValueError:
        return {}
    return message if isinstance(message, dict) else {}


def _last_line(log) -> str:
    try:
        log.seek(0)
        lines = [line.strip() for line in log.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except (OSError, ValueError):
        return ""
    return lines[-1][:200] if lines else ""


