"""`baichuan-chat --install-desktop-entry`: the packaged .desktop entry and icons copied into the user's
XDG data folder (~/.local/share), so the app appears in the desktop's launcher under its app id."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from .resources import APP_ID, DESKTOP_FILE, ICON_PNG, ICON_SVG


def data_home() -> Path:
    """$XDG_DATA_HOME, else ~/.local/share (the XDG base directory default)."""
    value = os.environ.get("XDG_DATA_HOME", "").strip()
    return Path(value) if value and os.path.isabs(value) else Path.home() / ".local" / "share"


def launcher() -> str | None:
    """This install's `baichuan-chat` script: None when the one on PATH is it (the entry keeps the plain name)."""
    beside = Path(sys.executable).parent / APP_ID  # a venv's bin, pipx's venv, /usr/bin
    on_path = shutil.which(APP_ID)
    if on_path and (not beside.is_file() or Path(on_path).resolve() == beside.resolve()):
        return None
    if beside.is_file():
        return str(beside)
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    return str(script.resolve()) if script is not None and script.name == APP_ID and script.is_file() else None


def _quoted(arg: str) -> str:
    """An Exec argument quoted as the desktop entry spec asks (only when it needs it)."""
    if not any(ch in arg for ch in ' \t"\'\\$`'):
        return arg
    return '"' + "".join("\\" + ch if ch in '"`$\\' else ch for ch in arg) + '"'


def entry_text(executable: str | None = None) -> str:
    """The packaged entry, with Exec/TryExec pointing at this install's launcher when the one on PATH is not
    it (a venv that is not activated), so the menu entry starts this very install."""
    text = DESKTOP_FILE.read_text(encoding="utf-8")
    target = executable or launcher()
    if target:
        text = text.replace(f"Exec={APP_ID} %U", f"Exec={_quoted(target)} %U")
        text = text.replace(f"TryExec={APP_ID}", f"TryExec={target}")
    return text


def install(target: Path | None = None, executable: str | None = None) -> list[Path]:
    """Write the entry and the icons under target (default: data_home()); returns the files written."""
    root = target or data_home()
    files = {
        root / "applications" / f"{APP_ID}.desktop": entry_text(executable).encode("utf-8"),
        root / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg": ICON_SVG.read_bytes(),
        root / "icons" / "hicolor" / "256x256" / "apps" / f"{APP_ID}.png": ICON_PNG.read_bytes(),
    }
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return list(files)


def uninstall(target: Path | None = None) -> list[Path]:
    """Remove what install() wrote; returns the files removed."""
    root = target or data_home()
    removed = []
    for path in (root / "applications" / f"{APP_ID}.desktop",
                 root / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg",
                 root / "icons" / "hicolor" / "256x256" / "apps" / f"{APP_ID}.png"):
        if path.is_file():
            path.unlink()
            removed.append(path)
    return removed
