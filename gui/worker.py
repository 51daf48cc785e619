"""Worker QObjects living in their own QThreads: InferenceWorker owns the Engine, BudgetWorker counts tokens."""
from __future__ import annotations

import gc
import sys
import threading
import time
import traceback
import weakref
from collections import deque

from PySide6.QtCore import QObject, Signal, Slot

SPEED_INTERVAL_S = 0.1  # decode-speed samples for the live plot, at most 10 per second
SPEED_WINDOW = 16  # tokens in the moving window the decode speed is measured over


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


class InferenceWorker(QObject):
    """Owns the Engine in a worker thread. Requests arrive as queued slot calls, one at a time."""

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

    def _report(self, exc: BaseException, what: str, released: str = "") -> None:
        from inference.errors import Cancelled, UserError

        if not isinstance(exc, (UserError, MemoryError, Cancelled)):
            print(f"baichuan-chat: {what} failed:", file=sys.stderr)
            traceback.print_exception(exc, file=sys.stderr)
        note = f" ({released} was unloaded first to make room for the new model)" if released else ""
        self.error.emit(user_message(exc) + note)


class BudgetWorker(QObject):
    """Counts the next send with the engine's chat rule (tokenizer work only) off the GUI thread."""

    encoded = Signal(dict)

    def __init__(self):
        super().__init__()
        self._engine = None
        self.latest_id = 0  # set by the GUI thread; older requests still queued are skipped

    @Slot(object)
    def set_engine(self, engine) -> None:
        self._engine = engine

    @Slot(object)
    def encode(self, request: dict) -> None:
        """Budget of sending request['messages'] now: prompt tokens, dropped rounds, max-new-tokens bound."""
        if request["id"] != self.latest_id or self._engine is None:
            return
        engine = self._engine
        system = request.get("system_prompt", "")
        messages = chat_messages(request["messages"], system)
        result = {"id": request["id"], "max_seq_len": engine.max_seq_len}
        counter = getattr(engine, "remote_counter", None)
        try:
            if counter is not None:  # a server's model: its tokenizer when a local folder matches, else estimated
                result.update(counter.budget(messages, int(request["max_new_tokens"])))
                self.encoded.emit(result)
                return
            newest = chat_messages(request["messages"][-1:], system)
            smallest = len(engine.encode_chat(newest, 1).input_ids)
            result["max_new_tokens_limit"] = max(1, engine.max_seq_len - smallest)
            wanted = min(int(request["max_new_tokens"]), result["max_new_tokens_limit"])
            chat = engine.encode_chat(messages, wanted)
            result.update(prompt_tokens=len(chat.input_ids), dropped_rounds=chat.dropped_rounds,
                          max_new_tokens=chat.budget["max_new_tokens"], budget=dict(chat.budget))
            # The newest round alone, uncut (no length limit): what of it does not fit is cut from its start.
            uncut = len(engine.chat_format.build(newest, 1, 1 << 40).input_ids)
            result["cut_tokens"] = max(0, uncut - (engine.max_seq_len - chat.budget["max_new_tokens"]))
            from .attachments import token_counts  # what each attached file of the new message costs
            result["attachments"] = token_counts(engine.tokenizer, request["messages"][-1]["content"])
        except Exception as exc:  # noqa: BLE001 - shown under the bar, never a crash
            result["error"] = user_message(exc)
        self.encoded.emit(result)
