"""The history database's schema, its migrations, and the read-only check that a file is ours and sound."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from inference.errors import UserError

SCHEMA_VERSION = 1
_SQLITE_MAGIC = b"SQLite format 3\x00"
_OUR_TABLES = {"conversations", "messages", "app_state"}
MIGRATIONS: dict[int, tuple[str, ...]] = {
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
}

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
