#!/usr/bin/env python3
"""Reproduce docs/screenshot-features.png: an answer with math shown as version 2 of 2, a question with an
attachment and a file in the composer, in the real window on the demo model (the conversation is written to
a fresh history first). Run from the repository root: QT_QPA_PLATFORM=offscreen .venv/bin/python
scripts/screenshot_features.py docs/screenshot-features.png"""
import os, sys, time, shutil
sys.path.insert(0, "tests"); sys.path.insert(0, ".")
shutil.rmtree("/tmp/baichuan-screenshot-features", ignore_errors=True)
os.makedirs("/tmp/baichuan-screenshot-features")
os.environ["BAICHUAN_CHAT_DATA_DIR"] = "/tmp/baichuan-screenshot-features/data"
from PySide6.QtWidgets import QApplication
import qasync
app = QApplication([])
from gui import theme
theme.apply_fonts(app)
dark = theme.apply(app, "light")
loop = qasync.QEventLoop(app, already_running=True)
from gui_harness import running, wait_until
from gui.engine_thread import EngineClient
from gui.main_window import MainWindow
from gui.paths import history_path
from gui.store import Store
from gui.attachments import Attachment, compose
with running(loop):
    client = EngineClient()
    fut = client.load(None, "cpu", "bfloat16", 2048)
    wait_until(fut.done, 600, "demo")
    store = Store(history_path())
    notes = Attachment("orbits.md", "# Orbits\n\nKepler's third law: T^2 is proportional to a^3.\n" * 3, "markdown")
    question = compose("Using my notes, what is the orbital period formula?", [notes])
    conv = store.create_conversation("Orbital period")
    q = store.add_message(conv.id, "user", question)
    first = store.begin_assistant_message(conv.id)
    store.finish_message(first.id, "The period grows with the orbit's size.", "complete",
                         {"model": "SmolLM2-135M-Instruct", "output_tokens": 9})
    second = store.begin_assistant_message(conv.id, q.id)  # Regenerate: a second version beside the first
    answer = ("By Kepler's third law, the period $T$ of an orbit with semi-major axis $a$ around a mass $M$ is\n\n"
              "$$T = 2\\pi\\sqrt{\\frac{a^3}{G M}}$$\n\n"
              "so doubling $a$ multiplies $T$ by $2^{3/2} \\approx 2.83$.")
    store.finish_message(second.id, answer, "complete", {"model": "SmolLM2-135M-Instruct", "output_tokens": 60, "prompt_tokens": 92,
                                                          "ttft_s": 0.05, "decode_tokens_per_s": 96.0})
    window = MainWindow(store, client, owns_client=False)
    window.resize(1360, 860)
    window.show(); window.chat.set_dark(dark)
    window.controller.open_conversation(conv.id)
    open("/tmp/baichuan-screenshot-features/report.txt", "w").write("Quarterly report\n" + "numbers " * 200)
    window.input.add_files(["/tmp/baichuan-screenshot-features/report.txt"])
    window.input.setPlainText("Summarize the attached report")
    wait_until(lambda: window.budget.attachments, 30, "budget")
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        app.processEvents(); time.sleep(0.02)
    window.grab().save(sys.argv[1])
    print("saved")
    window.close()
    client.shutdown()
