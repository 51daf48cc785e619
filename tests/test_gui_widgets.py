"""GUI pieces without a model: Markdown rendering, ≤ 60 Hz re-rendering, keys, languages, themes, budget, plot."""
from __future__ import annotations

import time

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from gui_harness import wait_until

from gui import i18n
from gui.budget_bar import BudgetBar
from gui.chat_view import ChatView
from gui.input_box import InputBox
from gui.markdown_render import IncrementalRenderer, MarkdownRenderer, settled_prefix_length
from gui.resources import I18N_DIR
from gui.settings_panel import SettingsPanel
from gui.speed_plot import SpeedPanel

SAMPLE = (
    "Here is **bold** text, `inline code` and 中文。\n\n"
    "1. first\n2. second\n\n"
    "```python\ndef add(a, b):\n    return a + b  # <tag>\n```\n\n"
    "| a | b |\n|---|---|\n| 1 | 2 |\n\n"
    "Done <script>alert(1)</script>\n"
)


def test_markdown_highlights_code_and_escapes_html():
    env: dict = {}
    html = MarkdownRenderer().render(SAMPLE, env)
    assert "<strong>bold</strong>" in html and "中文" in html and "<table" in html
    assert 'href="copy:0"' in html and env["code_blocks"] == ["def add(a, b):\n    return a + b  # <tag>\n"]
    assert '<span style="color: #008000; font-weight: bold">def</span>' in html  # pygments colours
    assert "&lt;tag&gt;" in html and "<script>" not in html and "&lt;script&gt;" in html


def test_incremental_render_equals_full_render_at_every_prefix():
    renderer = MarkdownRenderer()
    incremental = IncrementalRenderer(renderer)
    for end in range(1, len(SAMPLE) + 1):
        streamed = incremental.render(SAMPLE[:end])
        assert streamed == renderer.render(SAMPLE[:end]), end
    assert incremental.render(SAMPLE) == renderer.render(SAMPLE)
    assert incremental.code_blocks == ["def add(a, b):\n    return a + b  # <tag>\n"]
    assert settled_prefix_length("para\n\n```\ncode\n\nmore\n") == len("para\n\n")  # never inside a fence


def test_chat_view_re_renders_at_most_60_times_a_second(qtbot):
    view = ChatView()
    qtbot.addWidget(view)
    view.resize(700, 500)
    view.show()
    widget = view.add_message(1, "assistant", "", "streaming")
    before = widget.render_count
    text = ""
    started = time.monotonic()
    for i in range(3000):  # far more updates than frames, as a fast model streaming into the view
        text += f"word{i} "
        widget.stream_text(text)
        if i % 10 == 0:
            QApplication.processEvents()
            time.sleep(0.001)
    wait_until(lambda: widget.body.toPlainText().strip().endswith("word2999"), 5, "the last frame")
    elapsed = time.monotonic() - started
    renders = widget.render_count - before
    assert 2 <= renders <= elapsed * 60 + 2, (renders, elapsed)


def test_input_box_keys(qtbot):
    box = InputBox()
    qtbot.addWidget(box)
    sends, stops = [], []
    box.send_requested.connect(lambda: sends.append(box.toPlainText()))
    box.stop_requested.connect(lambda: stops.append(True))
    qtbot.keyClicks(box, "line one")
    qtbot.keyClick(box, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(box, "line two")
    assert box.toPlainText() == "line one\nline two" and not sends
    qtbot.keyClick(box, Qt.Key.Key_Return)
    qtbot.keyClick(box, Qt.Key.Key_Escape)
    assert sends == ["line one\nline two"] and stops == [True]


def test_chinese_catalog_is_compiled_and_switches_the_ui(qtbot):
    assert (I18N_DIR / "baichuan_chat_zh_CN.ts").is_file() and (I18N_DIR / "baichuan_chat_zh_CN.qm").is_file()
    panel = SettingsPanel()
    qtbot.addWidget(panel)
    try:
        assert i18n.install("zh_CN")
        QApplication.processEvents()
        assert panel.title.text() == "设置"
        assert panel.reset_button.text() == "恢复模型默认值"
    finally:
        i18n.install("en")
        QApplication.processEvents()
    assert panel.title.text() == "Settings"


def test_budget_bar_and_speed_panel_show_numbers(qtbot):
    bar = BudgetBar()
    qtbot.addWidget(bar)
    bar.set_budget(120, 512, 4096, 2)
    assert "120" in bar.label.text() and "512" in bar.label.text() and "4096" in bar.label.text()
    assert "2" in bar.notice.text() and "dropped" in bar.notice.text()
    assert bar.bar.fractions == pytest.approx((120 / 4096, 512 / 4096))
    bar.clear()
    assert bar.values is None and bar.notice.text() == ""
    panel = SpeedPanel()
    qtbot.addWidget(panel)
    panel.start()
    for n in range(2, 40):
        panel.add_sample(n, 20 + n % 5)
    assert not panel.plot.grab().isNull()
    panel.show_metrics({"ttft_s": 0.25, "prefill_tokens_per_s": 800.0, "decode_tokens_per_s": 21.5,
                        "prompt_tokens": 40, "cached_prompt_tokens": 30, "output_tokens": 39})
    assert panel.values["ttft"].text() == "0.25 s" and panel.values["decode"].text() == "21.5 tok/s"
    assert panel.values["tokens"].text() == "40 (30 cached) in · 39 out"


def test_settings_panel_bounds_and_defaults(qtbot):
    panel = SettingsPanel()
    qtbot.addWidget(panel)
    panel.set_model_info({"name": "m", "device": "cpu", "dtype": "float32", "max_seq_len": 4096,
                          "defaults": {"do_sample": True, "temperature": 0.3, "top_k": 5, "top_p": 0.85,
                                       "repetition_penalty": 1.05, "max_new_tokens": 2048}})
    panel.reset_to_defaults()
    assert panel.settings()["max_new_tokens"] == 2048 and panel.seq_label.text() == "MAX_SEQ_LEN: 4096"
    panel.set_max_new_tokens_limit(1000)
    assert panel.settings()["max_new_tokens"] == 1000
    panel.set_max_new_tokens_limit(3000)
    assert panel.settings()["max_new_tokens"] == 2048  # the user's choice comes back when it fits again
    panel.do_sample.setChecked(False)
    assert not panel.temperature.isEnabled() and panel.settings()["seed"] is None


def test_speed_panel_live_values_before_the_final_metrics(qtbot):
    panel = SpeedPanel()
    qtbot.addWidget(panel)
    panel.start()
    panel.show_first_token({"ttft_s": 0.5, "prompt_tokens": 119})
    panel.add_sample(10, 12.34)
    assert panel.values["ttft"].text() == "0.50 s" and panel.values["decode"].text() == "12.3 tok/s"
    assert panel.values["tokens"].text() == "119 in · 10 out" and panel.values["prefill"].text() == "—"


def test_code_block_copy_link_copies_that_block(qtbot):
    from PySide6.QtCore import QUrl
    from PySide6.QtGui import QGuiApplication

    view = ChatView()
    qtbot.addWidget(view)
    widget = view.add_message(7, "assistant", SAMPLE + "\n```sh\necho hi\n```\n", "complete")
    widget.body.anchorClicked.emit(QUrl("copy:1"))
    assert QGuiApplication.clipboard().text() == "echo hi\n"
    widget.copy_button.click()
    assert QGuiApplication.clipboard().text() == widget.text


@pytest.mark.parametrize("locale, expected", [("zh_CN.UTF-8", "zh_CN"), ("en_US.UTF-8", "en")])
def test_ui_language_follows_the_system_locale(locale, expected):
    import os
    import subprocess
    import sys

    env = dict(os.environ, LC_ALL=locale, LANG=locale)
    code = "from gui.i18n import resolve; print(resolve(None))"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == expected
