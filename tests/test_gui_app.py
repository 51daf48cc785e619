"""The app entry point end to end: `python -m gui --help`, and main() opening the window before the demo loads."""
from __future__ import annotations

import subprocess
import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from gui import app as gui_app
from gui.main_window import MainWindow


def test_help_runs_without_a_display():
    result = subprocess.run([sys.executable, "-m", "gui", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "--model DIR" in result.stdout and "--dtype" in result.stdout


def test_main_shows_the_window_first_then_chats_on_the_demo_model(qapp, data_dir):
    seen = {"states": []}

    def watch():
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        if not windows:
            return
        window = windows[0]
        seen["states"].append(window.client.state)
        seen["focus"] = seen.get("focus") or window.input.hasFocus()
        if window.client.state == "ready" and not window.controller.answering and "answer" not in seen:
            if window.controller.messages:
                seen["answer"] = window.controller.messages[-1].content
                window.close()
            else:
                window.settings_panel.do_sample.setChecked(False)
                window.settings_panel.max_new.set_value(8)
                window.input.setPlainText("What is the capital of France?")
                window.controller.send()

    timer = QTimer(interval=20)
    timer.timeout.connect(watch)
    timer.start()
    try:
        code = gui_app.main(["--device", "cpu", "--dtype", "float32", "--max-seq-len", "512", "--language", "en"])
    finally:
        timer.stop()
    assert code == 0
    assert seen["states"][0] in ("empty", "loading") and "loading" in seen["states"]  # window first, then the load
    assert seen["states"][-1] == "ready"
    assert seen["focus"]
    assert seen["answer"].startswith("The capital of France is Paris")


def test_platform_problem_names_the_missing_package(monkeypatch):
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setattr(gui_app.ctypes.util, "find_library", lambda name: None)
    assert "libxcb-cursor0" in gui_app.platform_problem()
    monkeypatch.setattr(gui_app.ctypes.util, "find_library", lambda name: f"lib{name}.so.0")
    assert gui_app.platform_problem() is None
    monkeypatch.delenv("DISPLAY")
    assert "xvfb-run" in gui_app.platform_problem()
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert gui_app.platform_problem() is None
