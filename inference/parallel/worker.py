"""A worker rank (1..N-1): `python -m inference.parallel.worker SPEC`, started by rank 0 (ranks.Workers).

It joins the group, loads its shard through the same Engine.load as rank 0, says ready, then runs every
step rank 0 broadcasts until its stdin (the lifeline) closes or the group breaks.
"""
from __future__ import annotations

import json
import os
import sys
import threading

#: A worker waits this long in a collective for rank 0's next step (an idle chat); rank 0's own wait is short.
IDLE_TIMEOUT_S = 365 * 24 * 3600.0


def _lifeline() -> None:
    """Exit the moment stdin closes: rank 0 stopped the group, ended or died."""
    try:
        sys.stdin.buffer.read()
    finally:
        os._exit(0)


def main() -> int:
    spec = json.loads(sys.argv[1])
    status = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # nothing else may write on the status pipe

    def say(message: dict) -> None:
        status.write(json.dumps(message) + "\n")

    threading.Thread(target=_lifeline, daemon=True).start()
    try:
        import datetime

        import torch
        import torch.distributed as dist

        from ..engine import Engine
        from .backend import place, select
        from .context import RankContext, rank_loading
        from .group import Group
        from .ranks import memory_stats

        torch.set_num_threads(spec["threads"])
        rank, world = spec["rank"], spec["world"]
        device = place(torch.device(spec["device_type"]), rank)
        select(device)
        say({"stage": "joining"})
        store = dist.TCPStore(spec["host"], spec["port"], None, False,
                              timeout=datetime.timedelta(seconds=spec["join_timeout"]))
        group = Group(spec["backend"], rank, world, device, IDLE_TIMEOUT_S)
        group.start(store)
        before = memory_stats()["rss"]
        with rank_loading(RankContext(group)):
            engine = Engine.load(spec["model_dir"], device=spec["device"], dtype=spec["dtype"],
                                 max_seq_len=spec["max_seq_len"], quantize=spec["quantize"], tensor_parallel=world)
        say({"stage": "ready", "rss_before": before, **memory_stats()})
    except Exception as exc:  # noqa: BLE001 - reported to rank 0 as one line
        say({"error": " ".join(str(exc).split()) or type(exc).__name__, "kind": type(exc).__name__})
        return 1
    follow(engine.model, group, device)
    return 0


def follow(model, group, device) -> None:
    """Run each step rank 0 broadcasts: (start, length, all_logits), then the token ids."""
    import torch

    header = torch.empty(3, dtype=torch.int64, device=device)
    while True:
        try:
            start, length, all_logits = group.broadcast(header).tolist()
            tokens = group.broadcast(torch.empty(length, dtype=torch.int64, device=device))
            model(tokens, start, bool(all_logits))
        except Exception:  # noqa: BLE001 - the group broke (rank 0 reports it); this rank is done
            os._exit(1)


if __name__ == "__main__":
    sys.exit(main())
