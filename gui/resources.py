"""The app's bundled files (themes, translations, icon, desktop entry): package data of gui, found with
importlib.resources so they are there however the app was installed (wheel, pipx, editable, a clone)."""
from __future__ import annotations

import atexit
import contextlib
from importlib import resources
from pathlib import Path

_keep = contextlib.ExitStack()  # holds extracted copies alive when the package lives in a zip
atexit.register(_keep.close)


def _assets_dir() -> Path:
    root = resources.files("gui") / "assets"
    return root if isinstance(root, Path) else _keep.enter_context(resources.as_file(root))


ASSETS_DIR = _assets_dir()
THEMES_DIR = ASSETS_DIR / "themes"
I18N_DIR = ASSETS_DIR / "i18n"
ICONS_DIR = ASSETS_DIR / "icons"
APP_ID = "baichuan-chat"  # the desktop file name, icon name and Wayland app id
DESKTOP_FILE = ASSETS_DIR / f"{APP_ID}.desktop"
ICON_SVG = ICONS_DIR / f"{APP_ID}.svg"
ICON_PNG = ICONS_DIR / f"{APP_ID}.png"
