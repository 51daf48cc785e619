"""SQLite (WAL) chat history: conversations, messages with their streaming status, and app state; no Qt."""
from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gui.paths import new_recovered_history_path, recovered_history_paths
from gui.store_schema import MIGRATIONS, SCHEMA_VERSION, StoreError, check_file, one_line

ROLES = ("system", "user", "assistant")
STATUSES = ("complete", "streaming", "stopped", "interrupted", "error")
FINAL_STATUSES = ("complete", "stopped", "interrupted", "error")
DEFAULT_TITLE = "New conversation"
MEMORY = ":memory:"  # a path that keeps the history in memory only (nothing written to disk)

# Keys of the app_state table that the GUI uses (values are any JSON value).
STATE_LAST_CONVERSATION = "last_conversation_id"
STATE_LAST_MODEL_DIR = "last_model_dir"
STATE_THEME = "theme"
STATE_LANGUAGE = "language"
STATE_WINDOW_GEOMETRY = "window_geometry"

_SURROGATES = re.compile("[\ud800-\udfff]")
_CONV_COLUMNS = "id, title, created, updated, settings, model_name"
_MSG_COLUMNS = "id, conversation_id, position, role, content, status, metrics, created"


@dataclass(frozen=True)
class Message:
    """One stored message; `position` counts from 0 within its conversation."""

    id: int
    conversation_id: int
    position: int
    role: str
    content: str
    status: str
    metrics: dict[str, Any]
    created: str


@dataclass(frozen=True)
class Conversation:
    """One conversation; `messages` is filled by get_conversation and empty in list results."""

    id: int
    title: str
    created: str
    updated: str
    settings: dict[str, Any]
    model_name: str
    messages: tuple[Message, ...] = ()


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


def _clean(text: str) -> str:
    """Text SQLite can store: lone surrogates (never valid UTF-8) become U+FFFD."""
    if not isinstance(text, str):
        raise StoreError(f"Expected text to store, got {type(text).__name__}.")
    return _SURROGATES.sub("\ufffd", text)


def _to_json(value: Any, what: str, mapping: bool = True) -> str:
    if mapping and not isinstance(value, Mapping):
        raise StoreError(f"The {what} must be a mapping, not {type(value).__name__}.")
    try:
        return _clean(dumps_json(value))
    except (TypeError, ValueError, RecursionError) as exc:
        raise StoreError(f"The {what} cannot be stored as JSON ({one_line(exc)}).") from exc


def _timestamp(value: str) -> str:
    try:
        return normalize_timestamp(value)
    except ValueError as exc:
        raise StoreError(f"The timestamp {one_line(value, 40)!r} is not an ISO 8601 date-time.") from exc


def _check_final(status: str) -> None:
    if status not in FINAL_STATUSES:
        raise StoreError(f"A finished message's status must be one of {', '.join(FINAL_STATUSES)}, "
                         f"not {one_line(status, 40)!r}.")


def _from_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return {}


class Store:
    """The chat history in one SQLite file (WAL); safe to share between threads (one lock)."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 5.0) -> None:
        self.path = Path(path)
        if str(path) != MEMORY:
            check_file(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"The history database {self.path} cannot be opened ({one_line(exc)}).") from exc
        self._lock = threading.RLock()
        self._sync = ""
        try:
            self._conn.execute("PRAGMA foreign_keys = ON")
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != ("memory" if str(path) == MEMORY else "wal"):
                raise StoreError(f"The history database {self.path} cannot use write-ahead logging.")
            self._migrate()
            self.recovered_messages = self._recover_streaming()
        except BaseException as exc:
            self._conn.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"The history database {self.path} cannot be opened ({one_line(exc)}).") from exc
            raise

    @classmethod
    def open_or_fallback(cls, path: str | os.PathLike[str]) -> tuple[Store, str | None]:
        """Open `path`; if it is unusable, leave it untouched and open a recovered-* file beside it (or, if
        no file can be written there, keep this session's history in memory); the warning is one line."""
        path = Path(path)
        try:
            return cls(path), None
        except StoreError as exc:
            problem = str(exc)
        untouched = "the original file was left untouched."
        for candidate in recovered_history_paths(path):
            try:
                return cls(candidate), f"{problem} Using {candidate.name} beside it instead; {untouched}"
            except StoreError:
                continue
        fresh = new_recovered_history_path(path)
        try:
            return cls(fresh), f"{problem} Started a new history in {fresh.name}; {untouched}"
        except StoreError as exc:
            return cls(MEMORY), f"{problem} {exc} This session's history is kept in memory only."

    # ----- plumbing -------------------------------------------------------------------------------
    @contextmanager
    def _tx(self, sync: str = "FULL") -> Iterator[sqlite3.Connection]:
        """One transaction: sync "FULL" (durable commit), "NORMAL" (survives a crash of the app) or "" (read)."""
        with self._lock:
            conn = self._conn
            try:
                if sync and sync != self._sync:
                    conn.execute(f"PRAGMA synchronous = {sync}")
                    self._sync = sync
                conn.execute("BEGIN IMMEDIATE" if sync else "BEGIN")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreError(f"The history database could not be used ({one_line(exc)}).") from exc

    def _migrate(self) -> None:
        with self._tx() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # newer ones were refused by _check_file
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[step]:
                    conn.execute(statement)
            if version != SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _recover_streaming(self) -> int:
        """Answers left 'streaming' by a crash or kill become 'interrupted'; returns how many."""
        with self._tx() as conn:
            return conn.execute("UPDATE messages SET status = 'interrupted' WHERE status = 'streaming'").rowcount

    @staticmethod
    def _touch(conn: sqlite3.Connection, conversation_id: int) -> None:
        if conn.execute("UPDATE conversations SET updated = ? WHERE id = ?",
                        (now_iso(), conversation_id)).rowcount != 1:
            raise StoreError(f"Conversation {conversation_id} does not exist.")

    @staticmethod
    def _message(row: tuple[Any, ...]) -> Message:
        return Message(*row[:6], _from_json(row[6]), row[7])

    @staticmethod
    def _conversation(row: tuple[Any, ...], messages: tuple[Message, ...] = ()) -> Conversation:
        return Conversation(row[0], row[1], row[2], row[3], _from_json(row[4]), row[5], messages)

    def _get_message(self, conn: sqlite3.Connection, message_id: int) -> Message:
        row = conn.execute(f"SELECT {_MSG_COLUMNS} FROM messages WHERE id = ?", (message_id,)).fetchone()
        if row is None:
            raise StoreError(f"Message {message_id} does not exist.")
        return self._message(row)

    def _insert_message(self, conn: sqlite3.Connection, conversation_id: int, role: str, content: str,
                        status: str, metrics: Mapping[str, Any] | None, created: str | None = None) -> int:
        position = conn.execute("SELECT COALESCE(MAX(position) + 1, 0) FROM messages WHERE conversation_id = ?",
                                (conversation_id,)).fetchone()[0]
        cursor = conn.execute(
            f"INSERT INTO messages ({_MSG_COLUMNS}) VALUES (NULL, ?, ?, ?, ?, ?, ?, ?)",
            (conversation_id, position, role, _clean(content), status, _to_json(metrics or {}, "message metrics"),
             _timestamp(created) if created else now_iso()))
        return int(cursor.lastrowid)

    # ----- conversations --------------------------------------------------------------------------
    def create_conversation(self, title: str = DEFAULT_TITLE, *, settings: Mapping[str, Any] | None = None,
                            model_name: str = "") -> Conversation:
        """A new empty conversation (committed)."""
        now = now_iso()
        new_id = self.import_conversations([Conversation(0, title, now, now, dict(settings or {}), model_name)])[0]
        created = self.get_conversation(new_id)
        assert created is not None
        return created

    def _set_column(self, conversation_id: int, column: str, value: str) -> None:
        with self._tx() as conn:
            conn.execute(f"UPDATE conversations SET {column} = ? WHERE id = ?", (value, conversation_id))
            self._touch(conn, conversation_id)

    def rename_conversation(self, conversation_id: int, title: str) -> None:
        """Set a conversation's title (blank means DEFAULT_TITLE)."""
        self._set_column(conversation_id, "title", _clean(str(title).strip() or DEFAULT_TITLE))

    def update_settings(self, conversation_id: int, settings: Mapping[str, Any]) -> None:
        """Replace a conversation's settings (sampling values, system prompt, streaming flag...)."""
        self._set_column(conversation_id, "settings", _to_json(settings, "conversation settings"))

    def set_model_name(self, conversation_id: int, model_name: str) -> None:
        """Record which model a conversation is talking to."""
        self._set_column(conversation_id, "model_name", _clean(str(model_name)))

    def delete_conversation(self, conversation_id: int) -> bool:
        """Delete a conversation and its messages; False if there was none."""
        with self._tx() as conn:
            return conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,)).rowcount == 1

    def list_conversations(self, query: str = "") -> list[Conversation]:
        """Conversations, most recently updated first, without messages; `query` searches titles and
        message text (substring, case-insensitive for ASCII)."""
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self._tx("") as conn:
            rows = conn.execute(
                f"SELECT {_CONV_COLUMNS} FROM conversations c WHERE ?1 = '' OR c.title LIKE ?2 ESCAPE '\\' "
                "OR EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.content LIKE ?2 ESCAPE '\\') "
                "ORDER BY c.updated DESC, c.id DESC", (_clean(query), _clean(pattern))).fetchall()
        return [self._conversation(row) for row in rows]

    def titles_in_use(self, titles: Iterable[str]) -> set[tuple[str, str]]:
        """(title, created) of the conversations whose title is exactly one of `titles` (import's duplicates)."""
        titles, found = [_clean(t) for t in set(titles)], set()
        with self._tx("") as conn:
            for start in range(0, len(titles), 500):  # bound values: exact even for text holding NUL
                chunk = titles[start:start + 500]
                found.update(conn.execute("SELECT title, created FROM conversations WHERE title IN "
                                          f"({', '.join('?' * len(chunk))})", chunk))
        return found

    def get_conversation(self, conversation_id: int) -> Conversation | None:
        """A conversation with its messages in order, or None if it does not exist."""
        with self._tx("") as conn:
            row = conn.execute(f"SELECT {_CONV_COLUMNS} FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
            if row is None:
                return None
            messages = conn.execute(f"SELECT {_MSG_COLUMNS} FROM messages WHERE conversation_id = ? "
                                    "ORDER BY position", (conversation_id,)).fetchall()
        return self._conversation(row, tuple(self._message(m) for m in messages))

    def import_conversations(self, conversations: Iterable[Conversation]) -> list[int]:
        """Insert whole conversations in ONE transaction (all or nothing); their ids, conversation ids and
        positions are ignored (new ones assigned in order); 'streaming' is stored as 'interrupted'."""
        ids: list[int] = []
        with self._tx() as conn:
            for conv in conversations:
                title = _clean(str(conv.title).strip() or DEFAULT_TITLE)
                cursor = conn.execute(
                    f"INSERT INTO conversations ({_CONV_COLUMNS}) VALUES (NULL, ?, ?, ?, ?, ?)",
                    (title, _timestamp(conv.created), _timestamp(conv.updated),
                     _to_json(conv.settings, "conversation settings"), _clean(str(conv.model_name))))
                ids.append(int(cursor.lastrowid))
                for msg in conv.messages:
                    status = "interrupted" if msg.status == "streaming" else msg.status
                    self._insert_message(conn, ids[-1], msg.role, msg.content, status, msg.metrics, msg.created)
        return ids

    # ----- messages -------------------------------------------------------------------------------
    def add_message(self, conversation_id: int, role: str, content: str, *, status: str = "complete",
                    metrics: Mapping[str, Any] | None = None) -> Message:
        """Append a finished message to a conversation; committed durably before returning."""
        _check_final(status)
        with self._tx() as conn:
            self._touch(conn, conversation_id)
            return self._get_message(conn, self._insert_message(conn, conversation_id, role, content, status, metrics))

    def begin_assistant_message(self, conversation_id: int) -> Message:
        """Append an empty assistant message with status 'streaming' (committed)."""
        with self._tx() as conn:
            self._touch(conn, conversation_id)
            return self._get_message(conn, self._insert_message(conn, conversation_id, "assistant", "", "streaming",
                                                                None))

    def update_streaming_content(self, message_id: int, text: str) -> bool:
        """Save the partial text of a 'streaming' answer (call at most every ~0.5 s); the commit survives a
        kill of the app. False if the message is no longer streaming."""
        with self._tx("NORMAL") as conn:
            return conn.execute("UPDATE messages SET content = ? WHERE id = ? AND status = 'streaming'",
                                (_clean(text), message_id)).rowcount == 1

    def resume_streaming(self, message_id: int) -> Message:
        """Set a finished assistant message back to 'streaming' (Continue appends to it); committed."""
        with self._tx() as conn:
            message = self._get_message(conn, message_id)
            if message.role != "assistant":
                raise StoreError(f"Message {message_id} is not an answer; only answers can be continued.")
            conn.execute("UPDATE messages SET status = 'streaming' WHERE id = ?", (message_id,))
            return self._get_message(conn, message_id)

    def finish_message(self, message_id: int, text: str, status: str = "complete",
                       metrics: Mapping[str, Any] | None = None) -> Message:
        """Set a message's final text, status (complete/stopped/interrupted/error) and metrics; durable."""
        _check_final(status)
        with self._tx() as conn:
            conversation_id = self._get_message(conn, message_id).conversation_id
            conn.execute("UPDATE messages SET content = ?, status = ?, metrics = ? WHERE id = ?",
                         (_clean(text), status, _to_json(metrics or {}, "message metrics"), message_id))
            self._touch(conn, conversation_id)
            return self._get_message(conn, message_id)

    def delete_messages_from(self, conversation_id: int, position: int) -> int:
        """Delete the messages at `position` and after (regenerate, edit-and-resend); returns how many."""
        with self._tx() as conn:
            self._touch(conn, conversation_id)
            return conn.execute("DELETE FROM messages WHERE conversation_id = ? AND position >= ?",
                                (conversation_id, position)).rowcount

    # ----- app state and housekeeping -------------------------------------------------------------
    def get_state(self, key: str, default: Any = None) -> Any:
        """A remembered app-state value (last conversation, model folder, theme, language, geometry...)."""
        with self._tx("") as conn:
            row = conn.execute("SELECT value FROM app_state WHERE key = ?", (key,)).fetchone()
        if row is None:
            return default
        try:
            return json.loads(row[0])
        except ValueError:
            return default

    def set_state(self, key: str, value: Any) -> None:
        """Remember an app-state value (any JSON value; None deletes the key)."""
        with self._tx() as conn:
            if value is None:
                conn.execute("DELETE FROM app_state WHERE key = ?", (key,))
                return
            conn.execute("INSERT OR REPLACE INTO app_state (key, value) VALUES (?, ?)",
                         (key, _to_json(value, f"app-state value {key!r}", mapping=False)))

    def counts(self) -> tuple[int, int]:
        """(number of conversations, number of messages)."""
        with self._tx("") as conn:
            return (conn.execute("SELECT COUNT(*) FROM conversations").fetchone()[0],
                    conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0])

    def close(self) -> None:
        """Close the database (idempotent)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
