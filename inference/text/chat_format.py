"""Chat prompt builders: Baichuan2's build_chat_input rule and the ChatML template of the demo model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

from ..errors import InputError
from .tokenizer import Tokenizer

ROLES = ("system", "user", "assistant")
#: SmolLM2-Instruct's chat template adds this system message when the conversation has none.
SMOLLM2_DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


@dataclass
class ChatInput:
    """The prompt ids of a conversation, how many old rounds did not fit, and the token budget."""

    input_ids: list[int]
    dropped_rounds: int
    budget: dict = field(default_factory=dict)


def check_lengths(max_new_tokens: int, max_seq_len: int) -> None:
    """Raise InputError unless 2 <= max_seq_len and 1 <= max_new_tokens <= max_seq_len - 1."""
    if isinstance(max_seq_len, bool) or not isinstance(max_seq_len, int) or max_seq_len < 2:
        raise InputError(f"max_seq_len must be an integer of at least 2, got {max_seq_len!r}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) \
            or not 1 <= max_new_tokens <= max_seq_len - 1:
        raise InputError(f"max_new_tokens must be an integer from 1 to {max_seq_len - 1} (the context length "
                         f"{max_seq_len} minus one), got {max_new_tokens!r}")


def split_rounds(messages: Sequence[dict]) -> tuple[str | None, list[list[dict]]]:
    """Validate messages and return (system text or None, rounds); each round starts at a user message."""
    if not isinstance(messages, (list, tuple)) or not messages:
        raise InputError("messages must be a non-empty list of {\"role\", \"content\"} objects")
    system: str | None = None
    rounds: list[list[dict]] = []
    current: list[dict] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise InputError(f"message {i} must be an object with a \"role\" and a string \"content\"")
        role = message.get("role")
        if role not in ROLES:
            raise InputError(f"message {i} has role {role!r}, expected \"system\", \"user\" or \"assistant\"")
        if role == "system":
            if i != 0:
                raise InputError(f"message {i} is a system message, but only the first message may be one")
            system = message["content"]
            continue
        if role == "user" and current:
            rounds.append(current)
            current = []
        current.append(message)
    if current:
        rounds.append(current)
    return system, rounds


def take_newest_rounds(rounds_newest_first: Iterable[list[int]], max_history_tokens: int) -> tuple[list[int], int]:
    """Baichuan2's history loop: prepend rounds newest-first while they fit (the newest always does).

    Returns (history ids, number of rounds taken). Stops at the first round that does not fit, or as
    soon as the history fills the budget exactly.
    """
    history: list[int] = []
    taken = 0
    for round_tokens in rounds_newest_first:
        if len(history) == 0 or len(history) + len(round_tokens) <= max_history_tokens:
            history = round_tokens + history
            taken += 1
            if len(history) < max_history_tokens:
                continue
        break
    return history, taken


class _RoundFormat:
    """Shared build(): system tokens, history of whole rounds within budget, suffix, cut from the left."""

    #: Whether the generation suffix counts against the history budget (Baichuan2's rule: it does not).
    suffix_in_budget = True

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer

    def _system_tokens(self, system: str | None) -> list[int]:
        raise NotImplementedError

    def _message_tokens(self, message: dict) -> list[int]:
        raise NotImplementedError

    def _suffix(self, messages: Sequence[dict]) -> list[int]:
        raise NotImplementedError

    def build(self, messages: Sequence[dict], max_new_tokens: int, max_seq_len: int) -> ChatInput:
        """Prompt ids for ``messages`` leaving room for ``max_new_tokens`` within ``max_seq_len``."""
        check_lengths(max_new_tokens, max_seq_len)
        system, rounds = split_rounds(messages)
        max_input_tokens = max_seq_len - max_new_tokens
        system_tokens = self._system_tokens(system)
        suffix = self._suffix(messages)
        max_history_tokens = max_input_tokens - len(system_tokens)
        if self.suffix_in_budget:
            max_history_tokens -= len(suffix)

        def newest_first() -> Iterator[list[int]]:
            for round_messages in reversed(rounds):
                yield [token for message in round_messages for token in self._message_tokens(message)]

        history, taken = take_newest_rounds(newest_first(), max_history_tokens)
        input_ids = (system_tokens + history + suffix)[-max_input_tokens:]
        budget = {"prompt_tokens": len(input_ids), "max_new_tokens": max_new_tokens,
                  "max_seq_len": max_seq_len, "input_budget": max_input_tokens}
        return ChatInput(input_ids=input_ids, dropped_rounds=len(rounds) - taken, budget=budget)


class Baichuan2ChatFormat(_RoundFormat):
    """Baichuan2's build_chat_input: [195] user text, [196] assistant text, a final 196 to answer."""

    suffix_in_budget = False

    def __init__(self, tokenizer: Tokenizer, user_token_id: int = 195, assistant_token_id: int = 196):
        super().__init__(tokenizer)
        self.user_token_id = user_token_id
        self.assistant_token_id = assistant_token_id

    def _system_tokens(self, system: str | None) -> list[int]:
        return self.tokenizer.encode(system or "")

    def _message_tokens(self, message: dict) -> list[int]:
        marker = self.user_token_id if message["role"] == "user" else self.assistant_token_id
        return [marker] + self.tokenizer.encode(message["content"])

    def _suffix(self, messages: Sequence[dict]) -> list[int]:
        return [] if messages[-1]["role"] == "assistant" else [self.assistant_token_id]


class _OpenMessage(dict):
    """The final assistant message of a ChatML prompt, left open so that the model continues it."""


class ChatMLFormat(_RoundFormat):
    """ChatML as in SmolLM2's template: ``<|im_start|>{role}\\n{content}<|im_end|>\\n`` per message.

    A default system message is added when the first message is not a system one (unless
    ``default_system`` is None), and ``<|im_start|>assistant\\n`` is appended as the generation prompt,
    unless the conversation ends with an assistant message: that one is left open (no ``<|im_end|>``) so
    the model continues it, as Hugging Face's ``continue_final_message`` does. Markers are inserted as
    ids; the text between them is encoded in the same chunks a Hugging Face tokenizer sees when it
    tokenizes the rendered template, so text spelling a marker stays text. The budget for history rounds
    leaves room for the system block and the generation prompt.
    """

    def __init__(self, tokenizer: Tokenizer, im_start_id: int, im_end_id: int,
                 default_system: str | None = SMOLLM2_DEFAULT_SYSTEM):
        super().__init__(tokenizer)
        self.im_start_id = im_start_id
        self.im_end_id = im_end_id
        self.default_system = default_system
        self._newline = tokenizer.encode("\n")

    def _block(self, role: str, content: str) -> list[int]:
        return [self.im_start_id] + self.tokenizer.encode(f"{role}\n{content}") + [self.im_end_id] + self._newline

    def _system_tokens(self, system: str | None) -> list[int]:
        if system is None:
            system = self.default_system
        return [] if system is None else self._block("system", system)

    def _message_tokens(self, message: dict) -> list[int]:
        if isinstance(message, _OpenMessage):
            return [self.im_start_id] + self.tokenizer.encode(f"{message['role']}\n{message['content']}")
        return self._block(message["role"], message["content"])

    def _suffix(self, messages: Sequence[dict]) -> list[int]:
        if messages[-1]["role"] == "assistant":
            return []  # the answer goes on in that message (Hugging Face's continue_final_message)
        return [self.im_start_id] + self.tokenizer.encode("assistant\n")

    def build(self, messages: Sequence[dict], max_new_tokens: int, max_seq_len: int) -> ChatInput:
        """As the rounds rule builds it, but a final assistant message is left open, as Baichuan2's rule leaves
        it: no <|im_end|> after it and no new assistant turn, so the model continues that text."""
        if isinstance(messages, (list, tuple)) and messages and isinstance(messages[-1], dict) \
                and messages[-1].get("role") == "assistant":
            messages = [*messages[:-1], _OpenMessage(messages[-1])]
        return super().build(messages, max_new_tokens, max_seq_len)
