"""QueueWatch: while the window's answer waits for the shared engine behind API requests, report how many are
ahead of it (for 'Waiting for N API request(s)…'), from a small thread, until the answer's turn comes."""
from __future__ import annotations

import threading
from typing import Callable

POLL_S = 0.1


class QueueWatch:
    """Reports requests ahead of one answer: the count when it joined the queue (the holder and those already
    waiting), then never more than the engine's holder + waiting minus this answer itself."""

    def __init__(self, engine, report: Callable[[int], None], ahead: int):
        self._engine, self._report, self.ahead = engine, report, ahead
        self._stop = threading.Event()
        report(ahead)
        self._thread = threading.Thread(target=self._run, daemon=True, name="queue-watch")
        self._thread.start()

    @classmethod
    def start(cls, engine, report: Callable[[int], None]) -> "QueueWatch | None":
        """Call just before the answer asks for the engine; None when nothing is ahead (or a remote engine)."""
        busy, waiting = getattr(engine, "busy", None), getattr(engine, "waiting", None)
        if not isinstance(waiting, int) or busy is None:
            return None
        ahead = int(bool(busy)) + waiting
        return cls(engine, report, ahead) if ahead else None

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            busy, waiting = bool(self._engine.busy), self._engine.waiting
            if waiting == 0:  # this answer has not joined the queue yet (or holds the engine: done() follows)
                continue
            now = int(busy) + waiting - 1  # this answer waits among them
            if 0 <= now < self.ahead:
                self.ahead = now
                self._report(now)

    def done(self) -> None:
        """The answer has the engine (its first event came) or ended: report 0 once and stop."""
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join(1.0)
            if self.ahead:
                self.ahead = 0
                self._report(0)
        return None
