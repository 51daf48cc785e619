"""Where the app keeps its files: platformdirs' user data dir, or $BAICHUAN_CHAT_DATA_DIR when set."""
from __future__ import annotations

import glob
import os
from datetime import datetime
from pathlib import Path

import platformdirs

APP_NAME = "baichuan-chat"
DATA_DIR_ENV = "BAICHUAN_CHAT_DATA_DIR"
HISTORY_FILENAME = "history.sqlite3"


def data_dir(create: bool = True) -> Path:
    """The app's data folder: $BAICHUAN_CHAT_DATA_DIR if set and non-empty, else the user data dir."""
    override = os.environ.get(DATA_DIR_ENV, "").strip()
    path = Path(override).expanduser() if override else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def history_path(create_dir: bool = True) -> Path:
    """The SQLite history database file inside data_dir()."""
    return data_dir(create=create_dir) / HISTORY_FILENAME


def recovered_history_paths(path: Path) -> list[Path]:
    """Earlier '<stem>-recovered-*' files beside a rejected history file, most recently written first."""
    pattern = str(path.parent / glob.escape(f"{path.stem}-recovered-")) + f"*{glob.escape(path.suffix)}"
    return sorted((Path(p) for p in glob.glob(pattern)), key=lambda p: p.stat().st_mtime, reverse=True)


def new_recovered_history_path(path: Path) -> Path:
    """A name that does not exist yet for a fresh history beside a rejected one: <stem>-recovered-<time>."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    fresh, n = path.with_name(f"{path.stem}-recovered-{stamp}{path.suffix}"), 1
    while fresh.exists():
        fresh, n = path.with_name(f"{path.stem}-recovered-{stamp}-{n}{path.suffix}"), n + 1
    return fresh
