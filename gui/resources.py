"""Paths of the app's bundled resources (themes, translations) beside the gui package."""
from __future__ import annotations

from pathlib import Path

RESOURCES_DIR = Path(__file__).resolve().parent.parent / "resources"
THEMES_DIR = RESOURCES_DIR / "themes"
I18N_DIR = RESOURCES_DIR / "i18n"
