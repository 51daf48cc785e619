"""GUI-side handle of the worker threads: queued requests out, asyncio futures and re-emitted signals back."""
from __future__ import annotations

import asyncio
import threading
from collections import deque

from PySide6.QtCore import QObject, QThread, Signal

from .worker import BudgetWorker, InferenceWorker


class WorkerError(Exception):
    """A request the worker could not do; the message is the one sentence the worker sent."""


class LoadCancelled(WorkerError):
    """The user cancelled a model load."""


class EngineClient(QObject):
    """Owns the inference and budget threads; every call returns at once, answers come as signals/futures."""

    token = Signal(str, int)
    speed = Signal(int, float)
    first_token = Signal(dict)
    load_progress = Signal(float, str)
    loaded = Signal(dict)
    budget_ready = Signal(dict)
    state_changed = Signal(str)  # "empty", "loading", "ready", "failed"
    queued = Signal(int)  # API requests ahead of the window's answer on the shared engine (0: its turn)
    _load_requested = Signal(object)
    _generate_requested = Signal(object)
    _encode_requested = Signal(object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.state = "empty"
        self.info: dict | None = None
        self.last_error = ""
        self._pending: deque[tuple[str, asyncio.Future, threading.Event]] = deque()
        self._load_future: asyncio.Future | None = None
        self._kept_info: dict | None = None  # the model a failed load left in use (the worker's `kept`)
        self._budget_id = 0
        self._budget_waiters: dict[int, asyncio.Future] = {}
        self.worker = InferenceWorker()
        self.budget_worker = BudgetWorker()
        self._threads = []
        for name, obj in (("inference", self.worker), ("budget", self.budget_worker)):
            thread = QThread()
            thread.setObjectName(f"baichuan-{name}")
            obj.moveToThread(thread)
            thread.finished.connect(obj.deleteLater)
            self._threads.append(thread)
        self._load_requested.connect(self.worker.load)
        self._generate_requested.connect(self.worker.generate)
        self._encode_requested.connect(self.budget_worker.encode)
        self.worker.engine_changed.connect(self.budget_worker.set_engine)
        self.worker.token.connect(self.token)
        self.worker.speed.connect(self.speed)
        self.worker.first_token.connect(self.first_token)
        self.worker.queued.connect(self.queued)
        self.worker.load_progress.connect(self.load_progress)
        self.worker.loaded.connect(self._on_loaded)
        self.worker.finished.connect(self._on_finished)
        self.worker.kept.connect(self._on_kept)
        self.worker.error.connect(self._on_error)
        self.budget_worker.encoded.connect(self._on_encoded)
        for thread in self._threads:
            thread.start()

    # ---- requests ----------------------------------------------------------------------------
    @property
    def generating(self) -> bool:
        return any(kind == "generate" for kind, _, _ in self._pending)

    def load(self, model_dir: str | None = None, device: str = "auto", dtype: str = "auto",
             max_seq_len: int | None = None, remote: dict | None = None, quantize: str = "none",
             tensor_parallel: int = 1) -> asyncio.Future:
        """Start loading (None = demo model); a running answer is stopped first. Resolves to engine info.
        remote ({"url", "api_key", "model", "tokenizer_dir"}): connect to that server instead (see connect)."""
        self.stop()
        self.cancel_load()
        cancel = threading.Event()
        future = self._future("load", cancel)
        self._load_future = future
        self.info = None
        self._set_state("loading")
        self._load_requested.emit({"model_dir": model_dir, "device": device, "dtype": dtype,
                                   "max_seq_len": max_seq_len, "cancel": cancel, "remote": remote,
                                   "quantize": quantize, "tensor_parallel": tensor_parallel})
        return future

    def connect_server(self, url: str, api_key: str | None, model: str | None,
                       tokenizer_dir: str | None = None) -> asyncio.Future:
        """Chat through an OpenAI-compatible server: the worker holds a RemoteEngine where it held the Engine
        (the local model is released once connected). Resolves to its info (remote: True)."""
        return self.load(remote={"url": url, "api_key": api_key, "model": model, "tokenizer_dir": tokenizer_dir})

    def local_engine(self):
        """The worker's local Engine or None: the API server's engine_provider (called from its thread)."""
        return self.worker.local_engine()

    async def wait_ready(self) -> dict:
        """The loaded model's info; waits for a load in progress; WorkerError when no model is there."""
        while self.state == "loading" and self._load_future is not None:
            try:
                await asyncio.shield(self._load_future)
            except WorkerError:
                pass  # the state says whether a newer load is still running
        if self.state != "ready" or self.info is None:
            raise WorkerError(self.last_error or "no model is loaded")
        return self.info

    def generate(self, messages: list[dict], settings: dict) -> asyncio.Future:
        """Answer the conversation `messages` with `settings`; resolves to the finish dict."""
        cancel = threading.Event()
        future = self._future("generate", cancel)
        self._generate_requested.emit({"messages": messages, "settings": dict(settings), "cancel": cancel})
        return future

    def stop(self) -> None:
        """Stop the running answer; the worker notices before its next decode step."""
        for kind, _, cancel in self._pending:
            if kind == "generate":
                cancel.set()

    def cancel_load(self) -> None:
        for kind, _, cancel in self._pending:
            if kind == "load":
                cancel.set()

    def request_budget(self, messages: list[dict], settings: dict) -> None:
        """Ask for the budget of sending `messages` now (answered by budget_ready; stale asks are skipped)."""
        if self.state != "ready":
            return
        self._budget_id += 1
        self.budget_worker.latest_id = self._budget_id
        self._encode_requested.emit({"id": self._budget_id, "messages": messages,
                                     "system_prompt": settings.get("system_prompt", ""),
                                     "max_new_tokens": settings["max_new_tokens"]})

    def count_budget(self, messages: list[dict], settings: dict) -> asyncio.Future:
        """The budget of sending exactly `messages` now (a budget_ready dict); None when no model is ready or a
        newer count replaced this one before the worker reached it."""
        future = asyncio.get_event_loop().create_future()
        if self.state != "ready":
            future.set_result(None)
            return future
        self.request_budget(messages, settings)
        self._budget_waiters[self._budget_id] = future
        return future

    def shutdown(self, timeout_ms: int = 15000) -> None:
        """Cancel everything and stop both threads (called once, when the app quits)."""
        for _, _, cancel in self._pending:
            cancel.set()
        for thread in self._threads:
            thread.quit()
        for thread in self._threads:
            thread.wait(timeout_ms)

    # ---- answers -----------------------------------------------------------------------------
    def _future(self, kind: str, cancel: threading.Event) -> asyncio.Future:
        future = asyncio.get_event_loop().create_future()
        future.add_done_callback(lambda f: f.cancelled() or f.exception())  # never "exception not retrieved"
        self._pending.append((kind, future, cancel))
        return future

    def _pop(self) -> tuple[str, asyncio.Future | None, threading.Event | None]:
        return self._pending.popleft() if self._pending else ("", None, None)

    def _on_loaded(self, info: dict) -> None:
        _, future, _ = self._pop()
        self.info = dict(info)
        self.last_error = ""
        if future is self._load_future or self._load_future is None or self._load_future.done():
            self._set_state("ready")
        self.loaded.emit(self.info)
        if future is not None and not future.done():
            future.set_result(self.info)

    def _on_kept(self, info: dict) -> None:
        self._kept_info = dict(info)

    def _on_finished(self, result: dict) -> None:
        _, future, _ = self._pop()
        if future is not None and not future.done():
            future.set_result(dict(result))

    def _on_error(self, message: str) -> None:
        kind, future, cancel = self._pop()
        error = LoadCancelled(message) if kind == "load" and cancel.is_set() else WorkerError(message)
        kept, self._kept_info = (self._kept_info, None) if kind == "load" else (None, self._kept_info)
        if kind == "load" and future is self._load_future:
            self.last_error = "" if isinstance(error, LoadCancelled) else message
            if kept is not None:  # the model that was working is still loaded: it stays in use
                self.info = kept
            self._set_state("ready" if kept is not None else "failed" if not isinstance(error, LoadCancelled)
                            else "empty")
        if future is not None and not future.done():
            future.set_exception(error)

    def _on_encoded(self, result: dict) -> None:
        answered = result.get("id")
        for budget_id in [i for i in self._budget_waiters if i <= answered]:
            future = self._budget_waiters.pop(budget_id)
            if not future.done():
                future.set_result(dict(result) if budget_id == answered else None)
        if answered == self._budget_id:
            self.budget_ready.emit(result)

    def _set_state(self, state: str) -> None:
        self.state = state
        self.state_changed.emit(state)
