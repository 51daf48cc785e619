"""BudgetWorker: counts the next send with the engine's chat rule (tokenizer work only) off the GUI thread."""
from __future__ import annotations

from PySide6.QtCore import QObject, Signal, Slot

from .engine_loading import user_message


class BudgetWorker(QObject):
    """Lives in its own QThread (EngineClient starts it); holds the engine the InferenceWorker last announced."""

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
        """Budget of sending request['messages'] (the chat rule's messages, system prompt first) now: prompt tokens,
        dropped rounds, max-new-tokens bound; request['newest']: the newest round alone, as the chat rule sees it."""
        if request["id"] != self.latest_id or self._engine is None:
            return
        engine = self._engine
        messages, newest = request["messages"], request["newest"]
        result = {"id": request["id"], "max_seq_len": engine.max_seq_len}
        counter = getattr(engine, "remote_counter", None)
        try:
            if counter is not None:  # a server's model: its tokenizer when a local folder matches, else estimated
                result.update(counter.budget(messages, int(request["max_new_tokens"])))
                self.encoded.emit(result)
                return
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
            result["attachments"] = token_counts(engine.tokenizer, newest[-1]["content"])
        except Exception as exc:  # noqa: BLE001 - shown under the bar, never a crash
            result["error"] = user_message(exc)
        self.encoded.emit(result)
