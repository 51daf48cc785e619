"""SQLite (WAL) chat history: conversations, messages with their streaming status, and app state; no Qt."""
from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gui.paths import new_recovered_history_path, recovered_history_paths
from gui.presets import PresetTable
from gui.store_schema import MIGRATIONS, SCHEMA_VERSION, StoreError, check_file, ensure_search_index, one_line
from gui.store_search import SearchQueries
from gui.store_tree import ACTIVE, TreeOps
from gui.store_types import (  # noqa: F401 - re-exported: the history's records and value helpers
    DEFAULT_TITLE, FINAL_STATUSES, ROLES, STATUSES, Conversation, Message, check_final, clean_text, dumps_json,
    from_json, normalize_timestamp, now_iso, stored_timestamp, to_json,
)

MEMORY = ":memory:"  # a path that keeps the history in memory only (nothing written to disk)

# Keys of the app_state table that the GUI uses (values are any JSON value).
STATE_LAST_CONVERSATION = "last_conversation_id"
STATE_LAST_MODEL_DIR = "last_model_dir"
STATE_THEME = "theme"
STATE_LANGUAGE = "language"
STATE_WINDOW_GEOMETRY = "window_geometry"

_CONV_COLUMNS = "id, title, created, updated, settings, model_name, pinned, active_id"
_MSG_COLUMNS = "id, conversation_id, position, role, content, status, metrics, created, parent_id"


class Store(TreeOps, SearchQueries, PresetTable):
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
                    statement(conn) if callable(statement) else conn.execute(statement)
            if version != SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self.full_text = ensure_search_index(conn)  # a SQLite that gained FTS5 since gets its index now

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
        return Message(*row[:6], from_json(row[6]), row[7], row[8])

    @staticmethod
    def _conversation(row: tuple[Any, ...], messages: tuple[Message, ...] = (), **extra: Any) -> Conversation:
        return Conversation(row[0], row[1], row[2], row[3], from_json(row[4]), row[5], messages,
                            pinned=row[6] is not None, active_id=row[7], **extra)

    def _get_message(self, conn: sqlite3.Connection, message_id: int) -> Message:
        row = conn.execute(f"SELECT {_MSG_COLUMNS} FROM messages WHERE id = ?", (message_id,)).fetchone()
        if row is None:
            raise StoreError(f"Message {message_id} does not exist.")
        return self._message(row)

    def _insert_message(self, conn: sqlite3.Connection, conversation_id: int, role: str, content: str,
                        status: str, metrics: Mapping[str, Any] | None, created: str | None = None,
                        parent_id: Any = ACTIVE) -> int:
        """Insert a message under `parent_id` (ACTIVE: the active leaf; None: a first message) and make it the
        conversation's active leaf."""
        if parent_id is ACTIVE:
            row = conn.execute("SELECT active_id FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
            parent_id = row[0] if row else None
        position = 0
        if parent_id is not None:
            parent = conn.execute("SELECT position FROM messages WHERE id = ? AND conversation_id = ?",
                                  (parent_id, conversation_id)).fetchone()
            if parent is None:
                raise StoreError(f"Message {parent_id} is not in conversation {conversation_id}.")
            position = parent[0] + 1
        cursor = conn.execute(
            f"INSERT INTO messages ({_MSG_COLUMNS}) VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?)",
            (conversation_id, position, role, clean_text(content), status, to_json(metrics or {}, "message metrics"),
             stored_timestamp(created) if created else now_iso(), parent_id))
        new_id = int(cursor.lastrowid)
        conn.execute("UPDATE conversations SET active_id = ? WHERE id = ?", (new_id, conversation_id))
        return new_id

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
        self._set_column(conversation_id, "title", clean_text(str(title).strip() or DEFAULT_TITLE))

    def update_settings(self, conversation_id: int, settings: Mapping[str, Any]) -> None:
        """Replace a conversation's settings (sampling values, system prompt, streaming flag...)."""
        self._set_column(conversation_id, "settings", to_json(settings, "conversation settings"))

    def set_model_name(self, conversation_id: int, model_name: str) -> None:
        """Record which model a conversation is talking to."""
        self._set_column(conversation_id, "model_name", clean_text(str(model_name)))

    def delete_conversation(self, conversation_id: int) -> bool:
        """Delete a conversation and its messages; False if there was none."""
        with self._tx() as conn:
            return conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,)).rowcount == 1

    def list_conversations(self, query: str = "") -> list[Conversation]:
        """Conversations, most recently updated first, without messages; `query` keeps those whose title or
        message text holds every word of it (see search)."""
        if query.strip():
            wanted = {hit.conversation_id for hit in self.search(query)}
        with self._tx("") as conn:
            rows = conn.execute(f"SELECT {_CONV_COLUMNS} FROM conversations c ORDER BY c.updated DESC, c.id DESC")
            return [self._conversation(row) for row in rows if not query.strip() or row[0] in wanted]

    def titles_in_use(self, titles: Iterable[str]) -> set[tuple[str, str]]:
        """(title, created) of the conversations whose title is exactly one of `titles` (import's duplicates)."""
        titles, found = [clean_text(t) for t in set(titles)], set()
        with self._tx("") as conn:
            for start in range(0, len(titles), 500):  # bound values: exact even for text holding NUL
                chunk = titles[start:start + 500]
                found.update(conn.execute("SELECT title, created FROM conversations WHERE title IN "
                                          f"({', '.join('?' * len(chunk))})", chunk))
        return found

    def get_conversation(self, conversation_id: int, with_tree: bool = False) -> Conversation | None:
        """A conversation with the messages of its active path in order (and every message as `tree` when
        asked), or None if it does not exist."""
        with self._tx("") as conn:
            row = conn.execute(f"SELECT {_CONV_COLUMNS} FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
            if row is None:
                return None
            tree = [self._message(m) for m in conn.execute(
                f"SELECT {_MSG_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY id", (conversation_id,))]
        path, versions = self.active_path(tree, row[7])
        return self._conversation(row, path, versions=versions, tree=tuple(tree) if with_tree else ())

    def import_conversations(self, conversations: Iterable[Conversation]) -> list[int]:
        """Insert whole conversations in ONE transaction (all or nothing) under new ids. A conversation with a
        `tree` gets all its messages (parent ids refer to the tree's own ids; `active_id` is its active leaf),
        else `messages` are one path in order; 'streaming' is stored as 'interrupted'."""
        ids: list[int] = []
        with self._tx() as conn:
            for conv in conversations:
                title = clean_text(str(conv.title).strip() or DEFAULT_TITLE)
                cursor = conn.execute(
                    f"INSERT INTO conversations ({_CONV_COLUMNS}) VALUES (NULL, ?, ?, ?, ?, ?, ?, NULL)",
                    (title, stored_timestamp(conv.created), stored_timestamp(conv.updated),
                     to_json(conv.settings, "conversation settings"), clean_text(str(conv.model_name)),
                     now_iso() if conv.pinned else None))
                ids.append(int(cursor.lastrowid))
                self._import_messages(conn, ids[-1], conv)
        return ids

    def _import_messages(self, conn: sqlite3.Connection, conversation_id: int, conv: Conversation) -> None:
        def insert(msg: Message, parent: Any) -> int:
            status = "interrupted" if msg.status == "streaming" else msg.status
            return self._insert_message(conn, conversation_id, msg.role, msg.content, status, msg.metrics,
                                        msg.created, parent)
        if not conv.tree:
            for msg in conv.messages:
                insert(msg, ACTIVE)
            return
        new_ids: dict[int, int] = {}
        for msg in self.parents_first(conv.tree):
            new_ids[msg.id] = insert(msg, None if msg.parent_id is None else new_ids[msg.parent_id])
        if conv.active_id in new_ids:
            conn.execute("UPDATE conversations SET active_id = ? WHERE id = ?", (new_ids[conv.active_id],
                                                                                 conversation_id))

    # ----- messages -------------------------------------------------------------------------------
    def add_message(self, conversation_id: int, role: str, content: str, *, status: str = "complete",
                    metrics: Mapping[str, Any] | None = None, parent_id: Any = ACTIVE) -> Message:
        """Append a finished message after the active leaf (or under `parent_id`: None makes it a first
        message, a sibling of the others: an edit's branch); it becomes the active leaf; committed durably."""
        check_final(status)
        with self._tx() as conn:
            self._touch(conn, conversation_id)
            return self._get_message(conn, self._insert_message(conn, conversation_id, role, content, status, metrics,
                                                                parent_id=parent_id))

    def begin_assistant_message(self, conversation_id: int, parent_id: Any = ACTIVE) -> Message:
        """Append an empty assistant message with status 'streaming' after the active leaf (or under
        `parent_id`: a regenerated answer is a new version beside the old ones); committed."""
        with self._tx() as conn:
            self._touch(conn, conversation_id)
            return self._get_message(conn, self._insert_message(conn, conversation_id, "assistant", "", "streaming",
                                                                None, parent_id=parent_id))

    def update_streaming_content(self, message_id: int, text: str) -> bool:
        """Save the partial text of a 'streaming' answer (call at most every ~0.5 s); the commit survives a
        kill of the app. False if the message is no longer streaming."""
        with self._tx("NORMAL") as conn:
            return conn.execute("UPDATE messages SET content = ? WHERE id = ? AND status = 'streaming'",
                                (clean_text(text), message_id)).rowcount == 1

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
        check_final(status)
        with self._tx() as conn:
            conversation_id = self._get_message(conn, message_id).conversation_id
            conn.execute("UPDATE messages SET content = ?, status = ?, metrics = ? WHERE id = ?",
                         (clean_text(text), status, to_json(metrics or {}, "message metrics"), message_id))
            self._touch(conn, conversation_id)
            return self._get_message(conn, message_id)

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
                         (key, to_json(value, f"app-state value {key!r}", mapping=False)))

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
