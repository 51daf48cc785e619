"""The events of a streamed chat answer (torch-free: the remote backend and the window use them too)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ChatStarted:
    """The first event of stream_chat: the prompt ids the chat rule built, its budget and dropped rounds."""

    input_ids: list[int]
    budget: dict
    dropped_rounds: int


@dataclass
class TokenEvent:
    """One generated token and the text it completes (may be '' while a UTF-8 character is incomplete).

    The first token of an answer carries the time to it (ttft_s, measured here once); later ones None.
    """

    token_id: int
    text: str
    ttft_s: float | None = None


@dataclass
class FinishEvent:
    """The end of one generation: all new ids (EOS included when it ended the answer), text, reason, metrics."""

    output_ids: list[int]
    text: str
    finish_reason: str  # "stop" (EOS), "length" (max_new_tokens) or "cancelled"
    metrics: dict = field(default_factory=dict)
