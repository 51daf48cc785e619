"""Subprocess for test_single_instance: the real app (gui.app.main) on the demo model, scripted by a timer.

Modes: "stream" sends a long greedy question and prints STREAMING once the answer shows text, RAISED when a
second launch asks for the window (then stops the answer 1.5 s later: it must still be saved), DONE <length
of the answer text> and quits; "quit" prints STARTED once the window shows and quits at once."""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from gui import app as gui_app  # noqa: E402
from gui.main_window import MainWindow  # noqa: E402
from gui.single_instance import InstanceGuard  # noqa: E402

PROMPT = "Write a very long story about a dragon who learns to paint, with many chapters."


def main() -> int:
    mode = sys.argv[1]
    app = QApplication.instance() or QApplication(sys.argv[:1])
    seen: dict = {}

    def say(line: str) -> None:
        print(line, flush=True)

    def on_raise() -> None:
        say("RAISED")
        seen["raised_at"] = time.monotonic()

    def watch() -> None:
        guard = app.findChild(InstanceGuard)
        if guard is not None and "guard" not in seen:
            seen["guard"] = guard
            guard.raise_requested.connect(on_raise)
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        if not windows:
            return
        window, controller = windows[0], windows[0].controller
        if mode == "quit":
            say(f"STARTED recovered={window.store.recovered_messages}")
            window.close()
            return
        if "sent" not in seen:
            seen["sent"] = True
            window.settings_panel.do_sample.setChecked(False)
            window.settings_panel.max_new.set_value(900)
            window.input.setPlainText(PROMPT)
            controller.send()  # the demo model is still loading: the answer waits for it
        elif controller.answer is not None and controller.answer.text and "streaming" not in seen:
            seen["streaming"] = True
            say("STREAMING")
        if "raised_at" in seen and time.monotonic() - seen["raised_at"] > 1.5 and "stopped" not in seen:
            seen["stopped"] = True
            controller.stop()
        if "streaming" in seen and not controller.answering and "done" not in seen:
            seen["done"] = True
            say(f"DONE {len(controller.messages[-1].content)} {controller.messages[-1].status}")
            window.close()

    timer = QTimer(interval=20)
    timer.timeout.connect(watch)
    timer.start()
    return gui_app.main(["--device", "cpu", "--dtype", "float32", "--max-seq-len", "1024", "--language", "en"])


if __name__ == "__main__":
    sys.exit(main())
