"""Light and dark themes: a Fusion palette plus the app style sheet filled from a theme's colours."""
from __future__ import annotations

import json
import re
import sys

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QGuiApplication, QPalette

from .logging_setup import logger
from .resources import THEMES_DIR

THEMES = ("light", "dark")
_applied: dict[str, bool] = {}  # theme name -> whether its last apply() succeeded
UI_FONTS = ["Inter", "Noto Sans", "Segoe UI", "Helvetica Neue", "PingFang SC", "Microsoft YaHei",
            "Noto Sans CJK SC", "WenQuanYi Micro Hei", "DejaVu Sans", "sans-serif"]


def system_theme() -> str:
    """'dark' when the platform says it prefers a dark scheme, else 'light'."""
    scheme = QGuiApplication.styleHints().colorScheme()
    return "dark" if scheme == Qt.ColorScheme.Dark else "light"


def resolve(choice: str | None) -> str:
    return choice if choice in THEMES else system_theme()


def colors(name: str) -> dict:
    return json.loads((THEMES_DIR / f"{name}.json").read_text(encoding="utf-8"))


def style_sheet(name: str) -> str:
    """The app style sheet with this theme's colours."""
    values = colors(name)
    template = (THEMES_DIR / "app.qss").read_text(encoding="utf-8")
    return re.sub(r"\{\{(\w+)\}\}", lambda m: str(values[m.group(1)]), template)


def palette(name: str) -> QPalette:
    c = colors(name)
    pal = QPalette()
    roles = {
        QPalette.ColorRole.Window: c["window"], QPalette.ColorRole.WindowText: c["text"],
        QPalette.ColorRole.Base: c["canvas"], QPalette.ColorRole.AlternateBase: c["panel"],
        QPalette.ColorRole.Text: c["text"], QPalette.ColorRole.Button: c["panel"],
        QPalette.ColorRole.ButtonText: c["text"], QPalette.ColorRole.Highlight: c["accent"],
        QPalette.ColorRole.HighlightedText: c["highlight_text"], QPalette.ColorRole.ToolTipBase: c["panel"],
        QPalette.ColorRole.ToolTipText: c["text"], QPalette.ColorRole.PlaceholderText: c["muted"],
        QPalette.ColorRole.Link: c["accent"], QPalette.ColorRole.Mid: c["border"],
    }
    for role, value in roles.items():
        pal.setColor(role, QColor(value))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor(c["muted"]))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText, QColor(c["muted"]))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor(c["muted"]))
    return pal


def apply(app, name: str) -> bool:
    """Apply a theme to the application; returns whether it is dark (plain Fusion if the files are missing)."""
    app.setStyle("Fusion")
    try:
        app.setPalette(palette(name))
        app.setStyleSheet(style_sheet(name))
        _applied[name] = True
        return bool(colors(name)["dark"])
    except (OSError, ValueError, KeyError) as exc:
        _applied[name] = False
        print(f"baichuan-chat: theme {name!r} not applied ({exc})", file=sys.stderr)
        logger.error("theme %r not applied (%s)", name, exc)
        return False


def applied(name: str) -> bool:
    """Whether the last apply(name) set the theme's palette and style sheet."""
    return _applied.get(name, False)


def apply_fonts(app) -> None:
    """Readable UI font with CJK fallbacks, and a monospace family for code."""
    font = QFont(app.font())
    font.setFamilies(UI_FONTS)
    font.setPointSizeF(10.5)
    app.setFont(font)
