"""The app as the desktop sees it: app id (desktop file name), window icon, the --install-desktop-entry
command, the startup log lines, and the self-timed exit used by tests ($BAICHUAN_CHAT_EXIT_AFTER_MS)."""
from __future__ import annotations

import platform
import sys

from PySide6.QtCore import QTimer
from PySide6.QtGui import QIcon

from inference.env import get_env
from inference.version import __version__

from . import desktop_entry
from .logging_setup import logger
from .resources import APP_ID, ICON_PNG, ICON_SVG


def app_icon() -> QIcon:
    icon = QIcon()
    for path in (ICON_SVG, ICON_PNG):
        icon.addFile(str(path))
    return icon


def identify(app) -> None:
    """App id (Wayland app id / X11 WM class match the .desktop entry's name) and the window icon."""
    app.setDesktopFileName(APP_ID)
    app.setWindowIcon(app_icon())


def install_desktop_entry() -> int:
    """`baichuan-chat --install-desktop-entry`: print what was written, one path per line."""
    try:
        written = desktop_entry.install()
    except OSError as exc:
        print(f"error: cannot install the desktop entry ({exc})", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


def log_startup(language: str, translated: bool, theme_name: str, themed: bool) -> None:
    logger.info("baichuan-chat %s starting (Python %s, %s); language %s%s; theme %s%s", __version__,
                platform.python_version(), sys.prefix, language, "" if translated else " (catalog not found)",
                theme_name, "" if themed else " (not applied)")


def log_window(window) -> None:
    menus = [action.text() for action in window.menuBar().actions()]
    logger.info("window shown: title %r, menus %s", window.windowTitle(), menus)


def exit_after(window) -> None:
    """With $BAICHUAN_CHAT_EXIT_AFTER_MS=N the window closes itself after N ms, once no model is loading
    (saving a picture of itself to $BAICHUAN_CHAT_SCREENSHOT first when set): a real start-to-quit run."""
    value = get_env("BAICHUAN_CHAT_EXIT_AFTER_MS")
    if not value:
        return
    try:
        delay = max(0, int(value))
    except ValueError:
        print(f"warning: BAICHUAN_CHAT_EXIT_AFTER_MS={value!r} is not a whole number; ignored", file=sys.stderr)
        return

    def finish() -> None:
        if window.client.state == "loading":  # a quit mid-load is its own case; this run ends after the load
            QTimer.singleShot(100, finish)
            return
        log_window(window)
        shot = get_env("BAICHUAN_CHAT_SCREENSHOT")
        if shot and not window.grab().save(shot):
            print(f"warning: could not save the screenshot to {shot}", file=sys.stderr)
        window.close()

    QTimer.singleShot(delay, finish)
