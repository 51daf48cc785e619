"""Where file dialogs open: the folder last used for a file, else the user's Documents folder, else home."""
from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QStandardPaths


def documents_dir() -> str:
    """The user's Documents folder when it exists, else the home folder (never the working directory)."""
    for location in (QStandardPaths.StandardLocation.DocumentsLocation, QStandardPaths.StandardLocation.HomeLocation):
        path = QStandardPaths.writableLocation(location)
        if path and os.path.isdir(path):
            return path
    return str(Path.home())


def start_dir(remembered: object) -> str:
    """The folder a file dialog opens in: `remembered` (a folder used before) while it exists, else Documents."""
    if isinstance(remembered, str) and remembered and os.path.isdir(remembered):
        return remembered
    return documents_dir()


def model_start_dir(folder_text: str) -> str:
    """Where the model-folder chooser opens: the folder typed in (or the nearest existing parent), else
    Documents."""
    path = Path(folder_text.strip()).expanduser() if folder_text.strip() else None
    while path is not None and path != path.parent:
        if path.is_absolute() and path.is_dir():
            return str(path)
        path = path.parent
    return documents_dir()
