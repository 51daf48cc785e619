"""The app's log file: rotating (1 MB x 3) in the user log folder (platformdirs), or $BAICHUAN_CHAT_LOG_DIR;
model loads, the device, the compute path and errors go there, and Help → About shows where it is."""
from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

import platformdirs

from inference.env import get_env

APP_NAME = "baichuan-chat"
LOG_NAME = "baichuan-chat.log"
logger = logging.getLogger("baichuan_chat")
_state: dict = {"path": None}


def log_dir() -> Path:
    override = (get_env("BAICHUAN_CHAT_LOG_DIR") or "").strip()
    return Path(override).expanduser() if override else Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))


def setup() -> Path | None:
    """Attach the rotating file handler once; returns the log file's path (None when it cannot be written:
    the app runs on without a log rather than not at all)."""
    if _state["path"] is not None:
        return _state["path"]
    path = log_dir() / LOG_NAME
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=1 << 20, backupCount=3, encoding="utf-8")
    except OSError:
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    _state["path"] = path
    return path


def log_path() -> Path | None:
    """The log file in use (None before setup() or when it could not be opened)."""
    return _state["path"]
