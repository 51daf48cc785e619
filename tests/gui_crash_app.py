"""Subprocess for test_gui_history: the real window streams a long answer until the test kills it (-9)."""
from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import qasync  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from gui.main_window import MainWindow  # noqa: E402
from gui.paths import history_path  # noqa: E402
from gui.store import Store  # noqa: E402

PROMPT = "Write a very long story about a dragon who learns to paint, with many chapters."


def main() -> None:
    app = QApplication([])
    loop = qasync.QEventLoop(app, already_running=True)
    asyncio.set_event_loop(loop)
    window = MainWindow(Store(history_path()))
    window.show()
    window.run(window.load_model(None, "cpu", "float32", 1024))
    panel = window.settings_panel
    panel.do_sample.setChecked(False)
    panel.max_new.set_value(800)
    window.input.setPlainText(PROMPT)
    window.controller.send()  # sent while the model loads: the answer waits for it
    while True:  # stream until killed
        app.processEvents()
        time.sleep(0.02)


if __name__ == "__main__":
    main()
