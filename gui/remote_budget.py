"""The token budget of a send to a remote server, worked out off the GUI thread: exact with the model's own
tokenizer when a local Baichuan2 folder matches the served model, else estimated from the server's last `usage`
(tokens per character of the last prompt) or, before any answer, from ~3 characters a token."""
from __future__ import annotations

import math

CHARS_PER_TOKEN = 3  # the rough rule before the server has told us a real count
FALLBACK_MAX_SEQ_LEN = 4096  # Baichuan2's context, when the server does not report max_model_len


def message_chars(messages: list[dict]) -> int:
    return sum(len(str(m.get("content", ""))) for m in messages)


def remote_fields(settings: dict) -> dict:
    """The request's sampling fields from the settings panel: everything the user sees is sent (the server's own
    defaults would otherwise fill what a greedy request leaves out, e.g. its repetition penalty)."""
    from inference.remote import request_fields

    from .worker import sampling_params

    fields = request_fields(sampling_params(settings))
    fields["repetition_penalty"] = float(settings["repetition_penalty"])
    return fields


class RemoteCounter:
    """Counts for one connected server: the matching folder's chat rule (loaded on first use, in the budget
    thread), the context length (the server's, the folder's, or Baichuan2's 4096 when neither says) and what the
    server's last `usage` taught about tokens per character."""

    def __init__(self, engine, tokenizer_dir: str | None = None):
        self.tokenizer_dir = tokenizer_dir
        self._format = None
        self._tokenizer = None
        self.tokens_per_char: float | None = None
        self.max_seq_len = engine.max_seq_len
        self.max_seq_len_known = isinstance(engine.max_seq_len, int)
        if tokenizer_dir:
            try:
                from inference.config import load_folder_config

                config, self._defaults = load_folder_config(tokenizer_dir)
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
                from pathlib import Path

                from inference.chat_format import Baichuan2ChatFormat
                from inference.tokenizer import SentencePieceTokenizer

                self._tokenizer = SentencePieceTokenizer(Path(self.tokenizer_dir) / "tokenizer.model")
                self._format = Baichuan2ChatFormat(self._tokenizer, self._defaults.user_token_id,
                                                   self._defaults.assistant_token_id)
            except Exception:  # noqa: BLE001
                self.tokenizer_dir = None
        return self._format

    def learn(self, messages: list[dict], metrics: dict) -> None:
        """After an answer: the server's prompt_tokens for these messages (only when it sent a usage)."""
        chars = message_chars(messages)
        tokens = metrics.get("prompt_tokens")
        if metrics.get("usage_from_server") and isinstance(tokens, int) and tokens > 0 and chars > 0:
            self.tokens_per_char = tokens / chars

    def budget(self, messages: list[dict], max_new_tokens: int) -> dict:
        """A budget_ready dict (without id) for sending `messages` now; `estimate` says how it was counted."""
        seq = int(self.max_seq_len)
        chat_format = self.chat_format()
        if chat_format is not None:
            prompt = len(chat_format.build(messages, 1, 1 << 40).input_ids)
            how = "tokenizer"
        elif self.tokens_per_char is not None:
            prompt = math.ceil(message_chars(messages) * self.tokens_per_char)
            how = "usage"
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
