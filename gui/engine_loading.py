"""Off the answer path, in the inference thread: loading, connecting and releasing the worker's engine, and the
one line a failure shows."""
from __future__ import annotations

import gc
import sys
import time
import traceback
import weakref


def user_message(exc: BaseException) -> str:
    """One line for a dialog: UserError messages as they are, anything else with its type."""
    from inference.errors import UserError
    from inference.torch_guard import is_out_of_memory

    if isinstance(exc, UserError):
        return str(exc)
    if is_out_of_memory(exc):
        return ("out of memory; close other programs, shorten the conversation, "
                "or load the model with a smaller dtype or MAX_SEQ_LEN")
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0]}" if text else exc.__class__.__name__


class EngineLoading:
    """Mixed into InferenceWorker: needs _engine, _released and the signals loaded, kept, engine_changed,
    load_progress and error."""

    def _swap(self, engine, info: dict) -> None:
        previous, self._engine = self._engine, None  # the previous engine goes before the new one is announced
        if previous is not None and previous is not engine and hasattr(previous, "close"):
            previous.close()  # tensor-parallel worker ranks stop with it
        del previous
        gc.collect()
        self._engine = engine
        self.engine_changed.emit(engine)
        self.loaded.emit(info)

    def _connect(self, remote: dict) -> None:
        """Stand a RemoteEngine where the Engine stands (its constructor asks the server for /v1/models)."""
        from inference.remote import RemoteEngine

        from .remote_budget import RemoteCounter

        engine = RemoteEngine(remote["url"], remote.get("api_key") or None, remote.get("model") or None)
        engine.remote_counter = RemoteCounter(engine, remote.get("tokenizer_dir"))
        from .remote_state import host_of

        info = engine.info()
        info.update(device=host_of(engine.url), dtype="OpenAI API", max_seq_len=engine.remote_counter.max_seq_len,
                    max_seq_len_known=engine.remote_counter.max_seq_len_known,
                    exact_budget=bool(engine.remote_counter.tokenizer_dir))
        self._swap(engine, info)

    def _make_room(self, plan) -> None:
        """Engine.load's hook before it allocates: release the working model if the new one does not fit beside it."""
        if self._engine is None or plan.fits:
            return
        old = weakref.ref(self._engine)
        self._released = self._engine.name
        self._engine = None
        self.engine_changed.emit(None)  # the budget worker drops its reference in its own thread
        deadline = time.monotonic() + 2.0
        while old() is not None and time.monotonic() < deadline:
            gc.collect()
            time.sleep(0.01)
        self.load_progress.emit(0.09, f"unloaded {self._released} to make room for the new model")

    def _report(self, exc: BaseException, what: str, released: str = "") -> None:
        from inference.errors import Cancelled, UserError

        if not isinstance(exc, (UserError, MemoryError, Cancelled)):
            print(f"baichuan-chat: {what} failed:", file=sys.stderr)
            traceback.print_exception(exc, file=sys.stderr)
        note = f" ({released} was unloaded first to make room for the new model)" if released else ""
        self.error.emit(user_message(exc) + note)
