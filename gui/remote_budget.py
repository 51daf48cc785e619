"""The token budget of a send to a remote server, worked out off the GUI thread: exact with the model's own
tokenizer when a local Baichuan2 folder matches the served model, else estimated from the server's last `usage`
(the last exchange as the server counted it, plus ~3 characters a token for what is new) or, before any answer, from ~3 characters a token."""
from __future__ import annotations

import math
from pathlib import Path

CHARS_PER_TOKEN = 3  # the rough rule before the server has told us a real count
FALLBACK_MAX_SEQ_LEN = 4096  # Baichuan2's context, when the server does not report max_model_len


def message_chars(messages: list[dict]) -> int:
    return sum(len(str(m.get("content", ""))) for m in messages)


def remote_fields(settings: dict) -> dict:
    """The request's sampling fields from the settings panel: everything the user sees is sent (the server's own
    defaults would otherwise fill what a greedy request leaves out, e.g. its repetition penalty)."""
    from inference.remote import request_fields

    from .engine_thread import sampling_params

    fields = request_fields(sampling_params(settings))
    fields["repetition_penalty"] = float(settings["repetition_penalty"])
    return fields


class RemoteCounter:
    """Counts for one connected server: the matching folder's chat rule (loaded on first use, in the budget
    thread), the context length (the server's, the folder's, or Baichuan2's 4096 when neither says) and what the
    server's last `usage` said about the conversation so far."""

    def __init__(self, engine, tokenizer_dir: str | None = None):
        self.tokenizer_dir = tokenizer_dir
        self._format = None
        self._tokenizer = None
        self.max_seq_len = engine.max_seq_len
        self.max_seq_len_known = isinstance(engine.max_seq_len, int)
        if tokenizer_dir:
            try:
                from inference.modeling.config import load_folder_config

                config, self._defaults = load_folder_config(Path(tokenizer_dir))
                if not self.max_seq_len_known:
                    self.max_seq_len, self.max_seq_len_known = config.model_max_length, True
            except Exception:  # noqa: BLE001 - a folder that does not read: estimate instead
                self.tokenizer_dir = None
        if not self.max_seq_len_known:
            self.max_seq_len = FALLBACK_MAX_SEQ_LEN

    def chat_format(self):
        """The folder's Baichuan2 chat rule (None when no folder matches or it cannot be read)."""
        if self.tokenizer_dir and self._format is None:
            try:
                from inference.text.chat_format import Baichuan2ChatFormat
                from inference.text.tokenizer import SentencePieceTokenizer

                self._tokenizer = SentencePieceTokenizer(Path(self.tokenizer_dir) / "tokenizer.model")
                self._format = Baichuan2ChatFormat(self._tokenizer, self._defaults.user_token_id,
                                                   self._defaults.assistant_token_id)
            except Exception:  # noqa: BLE001
                self.tokenizer_dir = None
        return self._format

    def learn(self, messages: list[dict], metrics: dict, answer: str) -> None:
        """After an answer: the server's count of this prompt and answer (only when it sent a usage)."""
        prompt, output = metrics.get("prompt_tokens"), metrics.get("output_tokens")
        if metrics.get("usage_from_server") and isinstance(prompt, int) and isinstance(output, int):
            self._last = ([(m["role"], m["content"]) for m in messages] + [("assistant", answer)], prompt + output)

    _last: tuple[list, int] | None = None

    def _from_usage(self, messages: list[dict]) -> int | None:
        """The server's count of the last exchange plus ~chars/3 for what came after it, when `messages` go on
        from it (the usual next send); None otherwise."""
        if self._last is None:
            return None
        known, tokens = self._last
        pairs = [(m["role"], m["content"]) for m in messages]
        if pairs[:len(known)] != known:
            return None
        return tokens + math.ceil(message_chars(messages[len(known):]) / CHARS_PER_TOKEN)

    def budget(self, messages: list[dict], max_new_tokens: int) -> dict:
        """A budget_ready dict (without id) for sending `messages` now; `estimate` says how it was counted."""
        seq = int(self.max_seq_len)
        chat_format = self.chat_format()
        if chat_format is not None:
            prompt = len(chat_format.build(messages, 1, 1 << 40).input_ids)
            how = "tokenizer"
        elif self._from_usage(messages) is not None:
            prompt, how = self._from_usage(messages), "usage"
        else:
            prompt = math.ceil(message_chars(messages) / CHARS_PER_TOKEN)
            how = "chars"
        limit = max(1, seq - 1)  # never bound (or block) a send by a count the server may not share
        attachments = []
        if self._tokenizer is not None:
            from .attachments import token_counts

            attachments = token_counts(self._tokenizer, messages[-1]["content"])
        return {"max_seq_len": seq, "max_new_tokens_limit": limit, "prompt_tokens": prompt, "dropped_rounds": 0,
                "max_new_tokens": min(int(max_new_tokens), limit), "cut_tokens": 0, "budget": {},
                "attachments": attachments, "estimate": how, "max_seq_len_known": self.max_seq_len_known}
