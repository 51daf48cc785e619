"""The history database's schema, its migrations, and the read-only check that a file is ours and sound."""
from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from inference.errors import UserError

SCHEMA_VERSION = 2
_SQLITE_MAGIC = b"SQLite format 3\x00"
_OUR_TABLES = {"conversations", "messages", "app_state"}
MIGRATIONS: dict[int, tuple[str | Callable[[sqlite3.Connection], None], ...]] = {
    1: (
        """CREATE TABLE conversations (id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT NOT NULL,
            created TEXT NOT NULL, updated TEXT NOT NULL, settings TEXT NOT NULL DEFAULT '{}',
            model_name TEXT NOT NULL DEFAULT '')""",
        """CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            position INTEGER NOT NULL, role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
            content TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('complete', 'streaming', 'stopped', 'interrupted', 'error')),
            metrics TEXT NOT NULL DEFAULT '{}', created TEXT NOT NULL, UNIQUE (conversation_id, position))""",
        "CREATE INDEX messages_by_status ON messages(status)",
        "CREATE INDEX conversations_by_updated ON conversations(updated)",
        "CREATE TABLE app_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ),
    # 2: answer versions and branches (messages form a tree: parent_id, position = depth; the conversation keeps
    # its active leaf), pins, presets, and the full-text index. Every message and conversation is kept.
    2: (
        "DROP INDEX messages_by_status",
        "ALTER TABLE messages RENAME TO messages_v1",
        """CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            parent_id INTEGER, position INTEGER NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')), content TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('complete', 'streaming', 'stopped', 'interrupted', 'error')),
            metrics TEXT NOT NULL DEFAULT '{}', created TEXT NOT NULL)""",
        """INSERT INTO messages (id, conversation_id, parent_id, position, role, content, status, metrics, created)
            SELECT id, conversation_id, LAG(id) OVER w, ROW_NUMBER() OVER w - 1, role, content, status, metrics,
                   created FROM messages_v1 WINDOW w AS (PARTITION BY conversation_id ORDER BY position)""",
        "DROP TABLE messages_v1",
        "CREATE INDEX messages_by_status ON messages(status)",
        "CREATE INDEX messages_by_parent ON messages(conversation_id, parent_id)",
        "ALTER TABLE conversations ADD COLUMN active_id INTEGER",
        "ALTER TABLE conversations ADD COLUMN pinned TEXT",  # when it was pinned; NULL: not pinned
        """UPDATE conversations SET active_id = (SELECT m.id FROM messages m WHERE m.conversation_id = conversations.id
            ORDER BY m.position DESC LIMIT 1)""",
        "CREATE TABLE presets (name TEXT PRIMARY KEY, settings TEXT NOT NULL, updated TEXT NOT NULL)",
        lambda conn: ensure_search_index(conn),
    ),
}
# The full-text index (FTS5, trigram: any substring of 3+ characters, Chinese included, case-insensitive) is
# kept by triggers. A SQLite without FTS5 or trigram gets none; search then scans the text (LIKE).
_SEARCH_INDEX = (
    """CREATE VIRTUAL TABLE messages_fts USING fts5(content, content='messages', content_rowid='id',
        tokenize='trigram')""",
    """CREATE VIRTUAL TABLE titles_fts USING fts5(title, content='conversations', content_rowid='id',
        tokenize='trigram')""",
    """CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content); END""",
    """CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content); END""",
    """CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
        INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content); END""",
    """CREATE TRIGGER titles_fts_insert AFTER INSERT ON conversations BEGIN
        INSERT INTO titles_fts (rowid, title) VALUES (new.id, new.title); END""",
    """CREATE TRIGGER titles_fts_delete AFTER DELETE ON conversations BEGIN
        INSERT INTO titles_fts (titles_fts, rowid, title) VALUES ('delete', old.id, old.title); END""",
    """CREATE TRIGGER titles_fts_update AFTER UPDATE OF title ON conversations BEGIN
        INSERT INTO titles_fts (titles_fts, rowid, title) VALUES ('delete', old.id, old.title);
        INSERT INTO titles_fts (rowid, title) VALUES (new.id, new.title); END""",
    "INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')",
    "INSERT INTO titles_fts (titles_fts) VALUES ('rebuild')",
)


def trigram_supported() -> bool:
    """Whether this Python's SQLite has FTS5 with the trigram tokenizer (SQLite >= 3.34 built with FTS5)."""
    try:
        probe = sqlite3.connect(":memory:")
        try:
            probe.execute("CREATE VIRTUAL TABLE probe USING fts5(x, tokenize='trigram')")
            return True
        finally:
            probe.close()
    except sqlite3.Error:
        return False


def has_search_index(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'messages_fts'").fetchone() is not None


def ensure_search_index(conn: sqlite3.Connection) -> bool:
    """Create and fill the full-text index if this SQLite can and it is not there yet (inside the caller's
    transaction); whether there is one now."""
    if has_search_index(conn):
        return True
    if not trigram_supported():
        return False
    for statement in _SEARCH_INDEX:
        conn.execute(statement)
    return True

class StoreError(UserError):
    """The history database cannot be used (corrupt, newer schema, unwritable); one sentence."""


def one_line(text: object, limit: int = 200) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def check_file(path: Path) -> None:
    """Raise StoreError if `path` exists but is not a usable history of ours; never writes to it."""
    try:
        size = path.stat().st_size
        if size == 0:
            return
        with open(path, "rb") as handle:
            magic = handle.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"The history database {path} cannot be read ({exc.strerror}).") from exc
    if magic != _SQLITE_MAGIC:
        raise StoreError(f"The history database {path} is not an SQLite database (corrupt or another kind of file).")
    # Read-only; without a -wal file there is nothing beyond the main file to read, so open it immutable
    # (no -wal/-shm files are created beside a file we may reject).
    mode = "ro" if Path(f"{path}-wal").exists() else "ro&immutable=1"
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode={mode}", uri=True)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"The history database {path} was written by a newer version of this app "
                                 f"(schema {version}; this one knows up to {SCHEMA_VERSION}).")
            check = conn.execute("PRAGMA integrity_check").fetchall()
            if check != [("ok",)]:
                raise StoreError(f"The history database {path} is corrupt (integrity check: "
                                 f"{one_line(check[0][0] if check else 'no result')}).")
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if (version == 0 and tables - {"sqlite_sequence"}) or (version > 0 and not _OUR_TABLES <= tables):
                raise StoreError(f"The file {path} is an SQLite database but not a chat history of this app.")
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StoreError(f"The history database {path} is corrupt ({one_line(exc)}).") from exc
