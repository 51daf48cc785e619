"""The engine's thread, worker and controller in one place (the PySide6 Worker/Controller pattern): InferenceWorker
owns the Engine in a QThread (slots in, signals out, no widgets); EngineClient, on the GUI thread, owns the threads
and turns requests into queued signals and the answers into asyncio futures and signals."""
from __future__ import annotations

import asyncio
import threading
import time
from collections import deque

from PySide6.QtCore import QObject, QThread, Signal, Slot

from .budget_worker import BudgetWorker
from .engine_loading import EngineLoading

SPEED_INTERVAL_S = 0.1  # decode-speed samples for the live plot, at most 10 per second
SPEED_WINDOW = 16  # tokens in the moving window the decode speed is measured over


def chat_messages(history: list[dict], system_prompt: str) -> list[dict]:
    """The messages the chat rule sees: the system prompt (when given) then the conversation."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
    return messages + [{"role": m["role"], "content": m["content"]} for m in history]


def sampling_params(settings: dict):
    """SamplingParams for one request from the settings panel's values."""
    from inference.sampling import SamplingParams

    return SamplingParams(
        do_sample=bool(settings["do_sample"]), temperature=float(settings["temperature"]),
        top_k=int(settings["top_k"]), top_p=float(settings["top_p"]),
        repetition_penalty=float(settings["repetition_penalty"]), seed=settings.get("seed"),
    )


class _SpeedMeter:
    """Decode tok/s over a moving window of token arrival times, sampled at most every SPEED_INTERVAL_S."""

    def __init__(self):
        self.times: deque[float] = deque(maxlen=SPEED_WINDOW)
        self.count = 0
        self.last_sample = 0.0

    def tick(self, now: float) -> float | None:
        self.count += 1
        self.times.append(now)
        if len(self.times) < 2 or now - self.last_sample < SPEED_INTERVAL_S:
            return None
        self.last_sample = now
        return (len(self.times) - 1) / max(self.times[-1] - self.times[0], 1e-9)


class WorkerError(Exception):
    """A request the worker could not do; the message is the one sentence the worker sent."""


class LoadCancelled(WorkerError):
    """The user cancelled a model load."""


class InferenceWorker(EngineLoading, QObject):
    """Owns the Engine in a worker thread. Requests arrive as queued slot calls, one at a time; loading,
    connecting and error reports come from EngineLoading (off the answer path)."""

    token = Signal(str, int)  # text the token completes (may be ''), token id
    finished = Signal(dict)  # text, output_ids, finish_reason, metrics, dropped_rounds, budget
    error = Signal(str)  # one sentence; ends the current request
    load_progress = Signal(float, str)
    loaded = Signal(dict)  # engine.info()
    speed = Signal(int, float)  # output tokens so far, decode tok/s
    first_token = Signal(dict)  # ttft_s, prompt_tokens: shown before the answer's final metrics
    engine_changed = Signal(object)  # the Engine (or None), for the BudgetWorker only: never to the GUI
    kept = Signal(dict)  # a load failed or was cancelled: engine.info() of the model still in use (before error)
    queued = Signal(int)  # requests ahead of the window's answer on the shared engine (API clients); 0: its turn

    def __init__(self):
        super().__init__()
        self._engine = None
        self._released = ""  # the model a load unloaded to make room, for its error message

    def local_engine(self):
        """The loaded local Engine, for the API server's threads (None between models or when connected to a
        server: the local API then answers 503)."""
        engine = self._engine
        return None if engine is None or getattr(engine, "remote_counter", None) is not None else engine

    @Slot(object)
    def load(self, request: dict) -> None:
        """Load a model folder (None = the demo model). The working model stays until the new one is loaded:
        a failed or cancelled load leaves it in use (`kept` carries its info, just before `error`). Only when
        the new model would not fit in memory beside it is it released first, and the progress says so."""
        cancel: threading.Event = request["cancel"]
        self._released = ""
        try:
            from inference.torch_guard import torch_import_problem

            problem = torch_import_problem()
            if problem:
                self.error.emit(problem)
                return
            if request.get("remote"):
                self._connect(request["remote"])
                return
            from inference.engine import Engine

            engine = Engine.load(
                request.get("model_dir"), device=request.get("device") or "auto",
                dtype=request.get("dtype") or "auto", max_seq_len=request.get("max_seq_len"),
                quantize=request.get("quantize") or "none", tensor_parallel=request.get("tensor_parallel") or 1,
                progress=self.load_progress.emit, cancel=cancel, before_allocate=self._make_room,
            )
        except Exception as exc:  # noqa: BLE001 - every failure becomes a dialog, the app stays up
            if self._engine is not None:
                self.kept.emit(self._engine.info())
            self._report(exc, "loading", self._released)
            return
        self._swap(engine, engine.info())

    @Slot(object)
    def generate(self, request: dict) -> None:
        """Answer request['messages'] with request['settings']; stop when request['cancel'] is set."""
        if self._engine is None:
            self.error.emit("no model is loaded; open a model folder or load the demo model")
            return
        from inference.engine import ChatStarted, FinishEvent

        settings = request["settings"]
        engine = self._engine
        counter = getattr(engine, "remote_counter", None)
        messages = chat_messages(request["messages"], settings.get("system_prompt", ""))
        watch = None
        try:
            from .remote_budget import remote_fields
            from .queue_watch import QueueWatch

            sampling = remote_fields(settings) if counter is not None else sampling_params(settings)
            events = engine.stream_chat(messages, int(settings["max_new_tokens"]), sampling, request["cancel"])
            meter = _SpeedMeter()
            chat = finish = None
            for event in events:
                if isinstance(event, ChatStarted):
                    chat = event
                    watch = QueueWatch.start(engine, self.queued.emit)  # API requests ahead of this answer
                    continue
                if watch is not None:
                    watch = watch.done()
                if isinstance(event, FinishEvent):
                    finish = event
                    break
                if event.ttft_s is not None:
                    self.first_token.emit({"ttft_s": event.ttft_s, "prompt_tokens": len(chat.input_ids) or None})
                self.token.emit(event.text, event.token_id)
                rate = meter.tick(time.perf_counter())
                if rate is not None:
                    self.speed.emit(meter.count, rate)
        except Exception as exc:  # noqa: BLE001
            self._report(exc, "generation")
            return
        finally:
            if watch is not None:
                watch.done()
        if counter is not None:
            counter.learn(messages, finish.metrics, finish.text)
        self.finished.emit({
            "text": finish.text, "output_ids": list(finish.output_ids), "finish_reason": finish.finish_reason,
            "metrics": dict(finish.metrics), "dropped_rounds": chat.dropped_rounds, "budget": dict(chat.budget),
        })


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
        system = settings.get("system_prompt", "")
        self._encode_requested.emit({"id": self._budget_id, "messages": chat_messages(messages, system),
                                     "newest": chat_messages(messages[-1:], system),
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
