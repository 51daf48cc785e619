"""Reproduce docs/screenshot.png: the real window on the demo model, captured while an answer streams."""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROMPTS = (
    ("你好！请用一句话介绍你自己。(Hello! Introduce yourself in one sentence.)", 40),
    ("Write a short Python function that checks whether a number is prime, in a code block.", 200),
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshot.png"))
    parser.add_argument("--theme", default="light", choices=("light", "dark"))
    parser.add_argument("--language", default="en", choices=("en", "zh_CN"))
    parser.add_argument("--tokens", type=int, default=90, help="capture after this many tokens of the last answer")
    parser.add_argument("--size", default="1440x900")
    return parser.parse_args()


def wait_until(app, predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the window did not reach the expected state in time")
        app.processEvents()
        time.sleep(0.01)


def main() -> int:
    args = parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["BAICHUAN_CHAT_DATA_DIR"] = tempfile.mkdtemp(prefix="baichuan-shot-")
    import qasync
    from PySide6.QtWidgets import QApplication

    from gui import i18n, theme
    from gui.main_window import MainWindow
    from gui.paths import history_path
    from gui.store import Store

    app = QApplication([])
    theme.apply_fonts(app)
    dark = theme.apply(app, args.theme)
    i18n.install(args.language)
    loop = qasync.QEventLoop(app, already_running=True)
    asyncio.set_event_loop(loop)
    store = Store(history_path())
    window = MainWindow(store)
    window.chat.set_dark(dark)
    width, height = (int(v) for v in args.size.split("x"))
    window.resize(width, height)
    window.show()
    window.run(window.load_model(None, "cpu", "auto"))  # what `make run` picks: bf16 with the C kernels
    wait_until(app, lambda: window.client.state == "ready", 600)
    panel = window.settings_panel
    panel.system_prompt.setPlainText("You are a helpful assistant.")
    panel.do_sample.setChecked(False)  # greedy: the same answers every run
    tokens = []
    window.client.token.connect(lambda text, token_id: tokens.append(token_id))
    for index, (prompt, max_new) in enumerate(PROMPTS):
        panel.max_new.set_value(max_new)
        window.input.setPlainText(prompt)
        tokens.clear()
        window.controller.send()
        last = index == len(PROMPTS) - 1
        if not last:
            wait_until(app, lambda: not window.controller.answering, 600)
    wait_until(app, lambda: len(tokens) >= args.tokens or not window.controller.answering, 600)
    window.input.setPlainText("这个函数的时间复杂度是多少？")
    window.chat.flush()
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(args.out)
    print(f"saved {args.out} ({len(tokens)} tokens into the last answer)")
    window.controller.stop()
    wait_until(app, lambda: not window.controller.answering, 120)
    window.close()
    store.close()
    loop.stop()
    loop.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
