"""Running a long library call (which has no cancel hook of its own) so that a load can still be cancelled."""
from __future__ import annotations

import threading
from typing import Callable, TypeVar

T = TypeVar("T")
POLL_S = 0.05


def interruptible(work: Callable[[], T], check_cancel: Callable[[], None] | None) -> T:
    """work() in a daemon thread while this one calls check_cancel() every POLL_S seconds.

    When check_cancel raises, this returns at once with its exception and the abandoned call finishes
    (or dies with the process) in the background; its result is dropped. Without check_cancel, work()
    simply runs here.
    """
    if check_cancel is None:
        return work()
    done = threading.Event()
    box: list = []

    def run() -> None:
        try:
            box.append((True, work()))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            box.append((False, exc))
        finally:
            done.set()

    threading.Thread(target=run, name="baichuan-load-step", daemon=True).start()
    while not done.wait(POLL_S):
        check_cancel()
    ok, value = box[0]
    if not ok:
        raise value
    return value
