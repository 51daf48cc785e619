"""Export conversations to Markdown and JSON (written by atomic_write.py) and import JSON exports back; no Qt.

Markdown and JSON "messages" carry the active branch; JSON adds "tree" (every version and branch, local ids,
parents first) and "active_id" for a conversation that has more than one; import restores the whole tree."""
from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NoReturn

from gui.atomic_write import ExportError, atomic_write_text
from gui.store import (
    DEFAULT_TITLE, ROLES, STATUSES, Conversation, Message, Store, dumps_json, normalize_timestamp, now_iso,
)
from gui.store_tree import TreeOps
from inference.errors import UserError

FORMAT = "baichuan-chat-export"
FORMAT_VERSION = 1
MAX_IMPORT_BYTES = 256 * 1024 * 1024
# Per text of an import (a message, a title, a setting): far above any real chat message (a 4,096-token context
# is ~16 KB), low enough that the window never has to lay out or restart with a 50 MB message.
MAX_TEXT_CHARS = 4 * 1024 * 1024
MAX_NESTING = 32  # depth allowed inside settings / metrics objects

_MISSING = object()
_METRIC_LABELS = (("ttft_s", "TTFT {:.2f} s"), ("prefill_tokens_per_s", "prefill {:.1f} tok/s"),
                  ("decode_tokens_per_s", "decode {:.1f} tok/s"), ("prompt_tokens", "{} prompt tokens"),
                  ("output_tokens", "{} output tokens"))


class ImportFormatError(UserError, ValueError):
    """A JSON file that is not a valid chat export; one sentence, and nothing was imported."""


# ----- writing ------------------------------------------------------------------------------------
def _selected(store: Store, conversation_ids: Sequence[int] | None, with_tree: bool = False) -> list[Conversation]:
    """The conversations to export with their messages: the given ids in order, or all, oldest first."""
    if conversation_ids is None:
        conversation_ids = [c.id for c in sorted(store.list_conversations(), key=lambda c: (c.created, c.id))]
    selected = []
    for conversation_id in conversation_ids:
        conversation = store.get_conversation(conversation_id, with_tree=with_tree)
        if conversation is None:
            raise ExportError(f"Conversation {conversation_id} does not exist.")
        selected.append(conversation)
    return selected


def _message_fields(m: Message) -> dict[str, Any]:
    return {"role": m.role, "content": m.content, "status": m.status, "metrics": m.metrics, "created": m.created}


def _conversation_document(c: Conversation) -> dict[str, Any]:
    document = {"title": c.title, "created": c.created, "updated": c.updated, "model_name": c.model_name,
                "settings": c.settings, "messages": [_message_fields(m) for m in c.messages]}
    if c.pinned:
        document["pinned"] = True
    if len(c.tree) > len(c.messages):  # other versions or branches: all of them, under local ids
        ordered = TreeOps.parents_first(c.tree)
        local = {m.id: number for number, m in enumerate(ordered, 1)}
        document["tree"] = [{"id": local[m.id], "parent_id": local.get(m.parent_id), **_message_fields(m)}
                            for m in ordered]
        document["active_id"] = local.get(c.messages[-1].id) if c.messages else None
    return document


def to_document(conversations: Sequence[Conversation]) -> dict[str, Any]:
    """The JSON export document of these conversations (no store ids: import assigns new ones)."""
    return {"format": FORMAT, "version": FORMAT_VERSION, "exported": now_iso(),
            "conversations": [_conversation_document(c) for c in conversations]}


def _scalar_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value


def _markdown_one(conversation: Conversation) -> str:
    lines = [f"# {' '.join(conversation.title.split())}", ""]
    if conversation.model_name:
        lines.append(f"- Model: {conversation.model_name}")
    lines.append(f"- Created: {conversation.created[:16].replace('T', ' ')} UTC")  # the store keeps UTC
    settings = {k: v for k, v in conversation.settings.items() if k != "system_prompt"}
    if settings:
        lines.append("- Settings: " + ", ".join(f"{k} {_scalar_text(v)}" for k, v in sorted(settings.items())))
    system_prompt = conversation.settings.get("system_prompt")
    if isinstance(system_prompt, str) and system_prompt.strip():
        lines += ["", "**System prompt:**", ""] + [f"> {line}" for line in system_prompt.splitlines()]
    for message in conversation.messages:
        lines += ["", f"## {message.role.capitalize()}", "", message.content]
        notes = [] if message.status == "complete" else [message.status]
        for key, label in _METRIC_LABELS:
            value = message.metrics.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                notes.append(label.format(value))
        if notes:
            lines += ["", f"*{' · '.join(notes)}*"]
    return "\n".join(lines)


def to_markdown(conversations: Sequence[Conversation]) -> str:
    """Readable Markdown: one '# title' section per conversation, '## Role' per message, separated by ---."""
    return "\n\n---\n\n".join(_markdown_one(c) for c in conversations) + "\n"


def export_json(store: Store, path: str | os.PathLike[str], conversation_ids: Sequence[int] | None = None) -> int:
    """Write the given conversations (None: all) as a JSON export, atomically; returns how many."""
    conversations = _selected(store, conversation_ids, with_tree=True)
    atomic_write_text(path, dumps_json(to_document(conversations), indent=2) + "\n")
    return len(conversations)


def export_markdown(store: Store, path: str | os.PathLike[str],
                    conversation_ids: Sequence[int] | None = None) -> int:
    """Write the given conversations (None: all) as Markdown, atomically; returns how many."""
    conversations = _selected(store, conversation_ids)
    atomic_write_text(path, to_markdown(conversations))
    return len(conversations)


# ----- importing ----------------------------------------------------------------------------------
def _fail(where: str, problem: str) -> NoReturn:
    raise ImportFormatError(f"Not a valid chat export: {where} {problem}.")


def _check_text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        _fail(where, f"must be text, not {_json_type(value)}")
    if len(value) > MAX_TEXT_CHARS:
        _fail(where, f"holds {_chars(len(value))}, more than the {_chars(MAX_TEXT_CHARS)} one text may have")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        _fail(where, "contains an unpaired surrogate (not valid Unicode text)")
    return value


def _check_json_object(value: Any, where: str) -> dict[str, Any]:
    """A JSON object whose keys and strings are valid text and which nests at most MAX_NESTING deep."""
    _check_object(value, where)
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_NESTING:
            _fail(where, f"nests deeper than {MAX_NESTING} levels")
        for key, child in item.items() if isinstance(item, dict) else enumerate(item):
            if isinstance(key, str):
                _check_text(key, f"{where} (a key)")
            if isinstance(child, str):
                _check_text(child, where)
            elif isinstance(child, float) and not math.isfinite(child):
                _fail(where, "holds a number too large for JSON")
            elif isinstance(child, (dict, list)):
                pending.append((child, depth + 1))
    return value


def _chars(count: int) -> str:
    return f"{count / (1024 * 1024):.1f} M characters"


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "text", bool: "true/false", type(None): "null"}
    return names.get(type(value), "a number")


def _get(obj: dict[str, Any], key: str, where: str, check: Any, default: Any = _MISSING) -> Any:
    path = f"{where}.{key}" if where else key
    if key not in obj:
        if default is _MISSING:
            _fail(path, "is missing")
        return default
    return check(obj[key], path)


def _check_timestamp(value: Any, where: str) -> str:
    try:
        return normalize_timestamp(_check_text(value, where))
    except ValueError:
        _fail(where, "is not an ISO 8601 date-time")


def _check_choice(choices: tuple[str, ...]) -> Any:
    def check(value: Any, where: str) -> str:
        if not isinstance(value, str) or value not in choices:
            _fail(where, f"must be one of {', '.join(choices)}")
        return value
    return check


def _check_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        _fail(where, f"must be an array, not {_json_type(value)}")
    return value


def _check_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        _fail(where, f"must be an object, not {_json_type(value)}")
    return value


def _check_content(title: str, number: int) -> Any:
    """The check of a message's text, naming the conversation and message when it is too long."""
    def check(value: Any, where: str) -> str:
        if isinstance(value, str) and len(value) > MAX_TEXT_CHARS:
            raise ImportFormatError(
                f"Cannot import: message {number} of \u201c{' '.join(title.split())[:60]}\u201d holds "
                f"{_chars(len(value))}, more than the {_chars(MAX_TEXT_CHARS)} a message may have; "
                "nothing was imported.")
        return _check_text(value, where)
    return check


def _message_from(value: Any, where: str, title: str, number: int) -> Message:
    obj = _check_object(value, where)
    return Message(0, 0, 0, _get(obj, "role", where, _check_choice(ROLES)),
                   _get(obj, "content", where, _check_content(title, number)),
                   _get(obj, "status", where, _check_choice(STATUSES), "complete"),
                   _get(obj, "metrics", where, _check_json_object, {}),
                   _get(obj, "created", where, _check_timestamp, ""))


def _check_id(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        _fail(where, "must be a positive whole number")
    return value


def _tree_from(obj: dict[str, Any], where: str, title: str) -> tuple[tuple[Message, ...], int | None]:
    """The "tree" of a conversation (every version and branch) and its active leaf; () when there is none."""
    entries = _get(obj, "tree", where, _check_list, [])
    tree: list[Message] = []
    for i, entry in enumerate(entries):
        place = f"{where}.tree[{i}]"
        message = _message_from(entry, place, title, i + 1)
        message_id = _get(entry, "id", place, _check_id)
        parent_id = _get(entry, "parent_id", place, lambda v, w: None if v is None else _check_id(v, w), None)
        tree.append(dataclasses.replace(message, id=message_id, parent_id=parent_id))
    ids = [m.id for m in tree]
    if len(set(ids)) != len(ids):
        _fail(f"{where}.tree", "holds the same id twice")
    if any(m.parent_id is not None and m.parent_id not in set(ids) for m in tree):
        _fail(f"{where}.tree", "has a parent_id that is no message's id")
    if len(TreeOps.parents_first(tree)) != len(tree):
        _fail(f"{where}.tree", "has a loop of parent_ids")
    active = _get(obj, "active_id", where, lambda v, w: None if v is None else _check_id(v, w), None)
    if active is not None and active not in set(ids):
        _fail(f"{where}.active_id", "is no message's id")
    return tuple(tree), active


def _conversation_from(value: Any, where: str) -> Conversation:
    obj = _check_object(value, where)
    title = _get(obj, "title", where, _check_text)
    messages = _get(obj, "messages", where, _check_list)
    tree, active = _tree_from(obj, where, title)
    now = now_iso()
    return Conversation(
        0, title, _get(obj, "created", where, _check_timestamp, now),
        _get(obj, "updated", where, _check_timestamp, now), _get(obj, "settings", where, _check_json_object, {}),
        _get(obj, "model_name", where, _check_text, ""),
        tuple(_message_from(m, f"{where}.messages[{i}]", title, i + 1) for i, m in enumerate(messages)),
        pinned=_get(obj, "pinned", where, _check_bool, False), active_id=active, tree=tree)


def _check_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        _fail(where, "must be true or false")
    return value


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not allowed in JSON")


def parse_document(text: str) -> list[Conversation]:
    """Validate a whole JSON export and return its conversations (ids 0); ImportFormatError on any fault."""
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        _fail("the file", "nests too deeply to be JSON we can read")
    except ValueError as exc:
        _fail("the file", f"is not JSON ({' '.join(str(exc).split())[:160]})")
    document = _check_object(document, "the document")
    if document.get("format") != FORMAT:
        _fail("the document", f"lacks the format marker \"format\": \"{FORMAT}\"")
    version = document.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        _fail("version", "must be a positive whole number")
    if version > FORMAT_VERSION:
        _fail("version", f"is {version}, newer than this app reads ({FORMAT_VERSION}); update the app")
    conversations = _get(document, "conversations", "", _check_list)
    return [_conversation_from(c, f"conversations[{i}]") for i, c in enumerate(conversations)]


def read_export_text(path: str | os.PathLike[str]) -> str:
    """The text of a JSON export file (UTF-8, optional BOM, at most MAX_IMPORT_BYTES)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_IMPORT_BYTES + 1)
    except OSError as exc:
        raise ImportFormatError(f"Cannot read {path} ({exc.strerror or exc}).") from exc
    if len(data) > MAX_IMPORT_BYTES:
        _fail(str(path), f"is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MiB")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        _fail(str(path), "is not UTF-8 text")


def distinguish_duplicates(store: Store, conversations: Sequence[Conversation],
                           when: datetime | None = None) -> list[Conversation]:
    """The conversations, those already in the store (same title and created time) retitled
    "<title> (imported <local time>)", with " (2)", " (3)"… where that title is taken too."""
    def stored(title: str) -> str:
        return title.strip() or DEFAULT_TITLE  # the title as the store keeps it

    existing = store.titles_in_use({stored(c.title) for c in conversations})
    duplicates = [i for i, c in enumerate(conversations) if (stored(c.title), c.created) in existing]
    if not duplicates:
        return list(conversations)
    stamp = (when or datetime.now()).strftime("%Y-%m-%d %H:%M")
    result, used, n = list(conversations), set(), 1
    while duplicates:
        names = {i: f"{stored(result[i].title)} (imported {stamp})" + (f" ({n})" if n > 1 else "")
                 for i in duplicates}
        taken = {title for title, _created in store.titles_in_use(set(names.values()))}
        left = []
        for i in duplicates:
            if names[i] in taken or names[i] in used:
                left.append(i)
            else:
                result[i] = dataclasses.replace(result[i], title=names[i])
                used.add(names[i])
        duplicates, n = left, n + 1
    return result


def import_json(store: Store, path: str | os.PathLike[str]) -> list[int]:
    """Import a JSON export: everything is validated first, then written in one transaction (all or
    nothing) under new ids, a copy of a conversation already here under a distinguishing title; returns
    the new conversation ids."""
    conversations = parse_document(read_export_text(path))
    return store.import_conversations(distinguish_duplicates(store, conversations))
