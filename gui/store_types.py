"""The history's records (Message, Conversation) and how values become SQLite text and back; no Qt."""
from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from gui.store_schema import StoreError, one_line

ROLES = ("system", "user", "assistant")
STATUSES = ("complete", "streaming", "stopped", "interrupted", "error")
FINAL_STATUSES = ("complete", "stopped", "interrupted", "error")
DEFAULT_TITLE = "New conversation"

_SURROGATES = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Message:
    """One stored message; `position` is its depth in the conversation's tree (0 = a first message), which on
    the active path is its index; `parent_id` is the message it answers or follows (None for a first one)."""

    id: int
    conversation_id: int
    position: int
    role: str
    content: str
    status: str
    metrics: dict[str, Any]
    created: str
    parent_id: int | None = None


@dataclass(frozen=True)
class Conversation:
    """One conversation; `messages` (the active path: what is shown and what the model gets) is filled by
    get_conversation and empty in list results. `versions` maps each message of the path to (its number, how
    many siblings it has) when it has siblings; `tree` holds every message (all versions) when asked for or
    when importing one, with `active_id` the leaf of the active path."""

    id: int
    title: str
    created: str
    updated: str
    settings: dict[str, Any]
    model_name: str
    messages: tuple[Message, ...] = ()
    pinned: bool = False
    active_id: int | None = None
    versions: Mapping[int, tuple[int, int]] = field(default_factory=dict)
    tree: tuple[Message, ...] = ()


def now_iso() -> str:
    """The current time as an ISO 8601 UTC string with microseconds (the store's timestamp format)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def normalize_timestamp(value: str) -> str:
    """An ISO 8601 date-time in the store's format (naive means UTC); ValueError if it is not one."""
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError("is not an ISO 8601 date-time") from exc


def dumps_json(value: Any, indent: int | None = None) -> str:
    """Strict JSON text (non-finite floats become null), UTF-8 friendly, keys sorted."""
    def finite(obj: Any) -> Any:
        if isinstance(obj, float) and not math.isfinite(obj):
            return None
        if isinstance(obj, Mapping):
            return {str(k): finite(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [finite(v) for v in obj]
        return obj
    return json.dumps(finite(value), ensure_ascii=False, allow_nan=False, sort_keys=True, indent=indent)


def clean_text(text: str) -> str:
    """Text SQLite can store: lone surrogates (never valid UTF-8) become U+FFFD."""
    if not isinstance(text, str):
        raise StoreError(f"Expected text to store, got {type(text).__name__}.")
    return _SURROGATES.sub("\ufffd", text)


def to_json(value: Any, what: str, mapping: bool = True) -> str:
    if mapping and not isinstance(value, Mapping):
        raise StoreError(f"The {what} must be a mapping, not {type(value).__name__}.")
    try:
        return clean_text(dumps_json(value))
    except (TypeError, ValueError, RecursionError) as exc:
        raise StoreError(f"The {what} cannot be stored as JSON ({one_line(exc)}).") from exc


def stored_timestamp(value: str) -> str:
    try:
        return normalize_timestamp(value)
    except ValueError as exc:
        raise StoreError(f"The timestamp {one_line(value, 40)!r} is not an ISO 8601 date-time.") from exc


def check_final(status: str) -> None:
    if status not in FINAL_STATUSES:
        raise StoreError(f"A finished message's status must be one of {', '.join(FINAL_STATUSES)}, "
                         f"not {one_line(status, 40)!r}.")


def from_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return {}
