"""FairLock: threads take one engine in arrival order, and can tell how many wait."""
from __future__ import annotations

import threading
from collections import deque


class FairLock:
    """First come, first served: callers from several threads (API clients, the window) take the engine in turn.

    ``waiting`` counts those queued behind the current holder; acquire(cancel) gives up (False) when cancel
    is set while it waits.
    """

    def __init__(self):
        self._cond = threading.Condition()
        self._queue: deque = deque()
        self._held = False

    def acquire(self, cancel: threading.Event | None = None) -> bool:
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            taken = False
            try:
                while self._held or self._queue[0] is not ticket:
                    if cancel is not None and cancel.is_set():
                        return False
                    self._cond.wait(0.05 if cancel is not None else None)
                self._held = taken = True
            finally:
                self._queue.remove(ticket)
                if not taken:
                    self._cond.notify_all()  # the next in line may now be at the head
            return True

    def release(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()

    @property
    def waiting(self) -> int:
        return len(self._queue)

    @property
    def busy(self) -> bool:
        return self._held
