"""Linux desktop integration and diagnostics: the packaged .desktop entry and icons, their one-command install
under XDG_DATA_HOME / HOME, the app id and window icon, the rotating log file, and the compute-path line."""
from __future__ import annotations

import configparser
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gui import desktop_entry, logging_setup
from gui.resources import APP_ID, DESKTOP_FILE, I18N_DIR, ICON_PNG, ICON_SVG, THEMES_DIR
from inference.compute_path import describe

ROOT = Path(__file__).resolve().parents[1]


def read_entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str
    parser.read_string(path.read_text(encoding="utf-8"))
    return parser["Desktop Entry"]


def test_packaged_files_are_package_data():
    gui_dir = (ROOT / "gui").resolve()
    for path in (DESKTOP_FILE, ICON_SVG, ICON_PNG, THEMES_DIR / "light.json", I18N_DIR / "baichuan_chat_zh_CN.qm"):
        assert path.is_file() and gui_dir in path.resolve().parents
    entry = read_entry(DESKTOP_FILE)
    assert entry["Type"] == "Application" and entry["Icon"] == APP_ID and entry["Exec"].startswith(APP_ID)
    assert entry["StartupWMClass"] == APP_ID and "Name[zh_CN]" in entry
    assert ICON_PNG.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and b"<svg" in ICON_SVG.read_bytes()


def test_install_desktop_entry_command(tmp_path):
    """`baichuan-chat --install-desktop-entry` under a bare HOME writes to ~/.local/share, then to
    $XDG_DATA_HOME when that is set; the entry starts this install's launcher."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k != "XDG_DATA_HOME"} | {"HOME": str(home)}
    code = "import sys; from gui.app import main; sys.exit(main(['--install-desktop-entry']))"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    share = home / ".local" / "share"
    written = [Path(line) for line in result.stdout.splitlines()]
    assert written == [share / "applications" / f"{APP_ID}.desktop",
                       share / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg",
                       share / "icons" / "hicolor" / "256x256" / "apps" / f"{APP_ID}.png"]
    assert all(path.is_file() for path in written)
    assert (share / "icons/hicolor/256x256/apps" / f"{APP_ID}.png").read_bytes() == ICON_PNG.read_bytes()
    entry = read_entry(written[0])
    assert entry["TryExec"] == APP_ID or os.access(entry["TryExec"], os.X_OK)  # on PATH, or this install's script
    assert entry["Exec"].endswith(" %U") and entry["Icon"] == APP_ID

    xdg = tmp_path / "xdg"
    env["XDG_DATA_HOME"] = str(xdg)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path,
                            timeout=120)
    assert result.returncode == 0 and (xdg / "applications" / f"{APP_ID}.desktop").is_file()
    assert desktop_entry.uninstall(xdg) and not (xdg / "applications" / f"{APP_ID}.desktop").exists()


def test_entry_points_at_an_unactivated_venv(tmp_path):
    text = desktop_entry.entry_text("/opt/my venv/bin/baichuan-chat")
    entry = read_entry(Path(tmp_path / "e.desktop").write_text(text, encoding="utf-8") and tmp_path / "e.desktop")
    assert entry["Exec"] == '"/opt/my venv/bin/baichuan-chat" %U'
    assert entry["TryExec"] == "/opt/my venv/bin/baichuan-chat"


def test_app_id_and_window_icon(qapp):
    from gui.app_identity import identify

    identify(qapp)
    assert qapp.desktopFileName() == APP_ID
    assert not qapp.windowIcon().isNull() and not qapp.windowIcon().pixmap(64, 64).isNull()


def test_log_file_rotates_in_the_log_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("BAICHUAN_CHAT_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setitem(logging_setup._state, "path", None)
    before = list(logging_setup.logger.handlers)
    try:
        path = logging_setup.setup()
        assert path == tmp_path / "logs" / "baichuan-chat.log" and logging_setup.log_path() == path
        assert logging_setup.setup() == path and len(logging_setup.logger.handlers) == len(before) + 1
        for n in range(4000):
            logging_setup.logger.info("line %d %s", n, "x" * 400)
        assert path.stat().st_size <= 1 << 20 and (path.parent / "baichuan-chat.log.1").is_file()
        assert not (path.parent / "baichuan-chat.log.4").exists()
    finally:
        for handler in logging_setup.logger.handlers[len(before):]:
            logging_setup.logger.removeHandler(handler)
            handler.close()


def test_unwritable_log_dir_runs_without_a_log(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("BAICHUAN_CHAT_LOG_DIR", str(blocker / "logs"))
    monkeypatch.setitem(logging_setup._state, "path", None)
    assert logging_setup.setup() is None


@pytest.mark.parametrize("info, expected", [
    ({"device": "cpu", "dtype": "bfloat16", "quantize": None,
      "kernels": {"cpu_kernels": True, "fused_decode": True}}, "C kernels · bf16 + fused decode"),
    ({"device": "cpu", "dtype": "bfloat16", "quantize": "int8", "kernels": {"cpu_kernels": True}}, "C kernels · int8"),
    ({"device": "cuda:0", "dtype": "float16", "quantize": None, "kernels": {"cpu_kernels": False}},
     "torch · cuda:0 fp16"),
])
def test_compute_path(info, expected):
    assert describe(info) == expected


def test_compute_path_fallback_says_why(monkeypatch):
    monkeypatch.setenv("BAICHUAN_NO_CPU_KERNELS", "1")
    text = describe({"device": "cpu", "dtype": "float32", "quantize": None, "kernels": {"cpu_kernels": False}})
    assert text == "torch fallback · fp32 (switched off by BAICHUAN_CHAT_NO_CPU_KERNELS)"
    monkeypatch.delenv("BAICHUAN_NO_CPU_KERNELS")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CC", raising=False)
    assert "no C compiler found" in describe({"device": "cpu", "dtype": "float32", "kernels": {}})
