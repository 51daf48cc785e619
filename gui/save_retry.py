"""History writes that failed (disk full, read-only folder): kept in memory, retried until they succeed, one notice."""
from __future__ import annotations

import sqlite3
import sys
from typing import Any, Callable

from PySide6.QtCore import QObject, QTimer, Signal

from .store import Message, Store, StoreError

RETRY_MS = 2000  # a kept answer is written again this often until the history takes it


def is_retryable(exc: StoreError) -> bool:
    """The database refused the write (full, read-only, locked, I/O), as opposed to a missing row or bad value."""
    return isinstance(exc.__cause__, sqlite3.Error)


class SaveKeeper(QObject):
    """Runs store writes for the chat flow; a failure becomes ONE notice (problem), never a dialog, and the
    final text of an answer that could not be written is kept here and retried every RETRY_MS."""

    problem = Signal(str)  # the first failure after things were fine: one sentence
    resolved = Signal()  # every kept write went through again

    def __init__(self, store: Store, parent=None):
        super().__init__(parent)
        self.store = store
        self.failing = False
        self.pending: dict[int, tuple[str, str, dict]] = {}  # message id -> final (text, status, metrics)
        self._timer = QTimer(self, interval=RETRY_MS)
        self._timer.timeout.connect(self.retry)

    def attempt(self, write: Callable[..., Any], *args) -> tuple[bool, Any]:
        """(True, result) or (False, None) when the write failed for a reason worth retrying (notice shown).
        A StoreError of any other kind (a row that no longer exists, a bad value) is raised as before."""
        try:
            result = write(*args)
        except StoreError as exc:
            if not is_retryable(exc):
                raise
            self._fail(str(exc))
            return False, None
        if self.failing and not self.pending:
            self._recover()
        return True, result

    def partial(self, message_id: int, text: str) -> bool:
        """Save a streaming answer's text so far; False when it was not saved (the text stays with the caller
        and finish() writes it whatever the row's status is)."""
        ok, updated = self.attempt(self.store.update_streaming_content, message_id, text)
        if ok and not updated:
            self._fail(self.tr("This answer's saved copy was changed outside this window; "
                               "its full text will be written when it ends."))
        return bool(ok and updated)

    def finish(self, message_id: int, text: str, status: str, metrics: dict) -> Message | None:
        """Commit an answer's final text; None when the history refused it: it is kept and retried."""
        try:
            ok, final = self.attempt(self.store.finish_message, message_id, text, status, metrics)
        except StoreError as exc:  # the message is gone (its conversation was deleted): nothing to keep
            print(f"baichuan-chat: answer {message_id} not saved: {exc}", file=sys.stderr)
            return None
        if not ok:
            self.pending[message_id] = (text, status, dict(metrics))
            self._timer.start()
        return final

    def retry(self) -> bool:
        """Write the kept answers again; True when nothing is left to write."""
        for message_id, (text, status, metrics) in list(self.pending.items()):
            try:
                ok, _ = self.attempt(self.store.finish_message, message_id, text, status, metrics)
            except StoreError:
                ok = True  # deleted meanwhile: nothing left to save
            if not ok:
                return False
            del self.pending[message_id]
        self._timer.stop()
        if self.failing:
            self._recover()
        return True

    def stop(self) -> None:
        """No more retries (the window closes; its history is about to be closed)."""
        self._timer.stop()

    def _fail(self, reason: str) -> None:
        if not self.failing:
            self.failing = True
            self.problem.emit(reason)

    def _recover(self) -> None:
        self.failing = False
        self.resolved.emit()
