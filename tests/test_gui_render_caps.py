"""What a message shows: a render cap for huge texts, Copied feedback, cut answers, metrics, labels, Tokens row."""
from __future__ import annotations

import time

import pytest
from PySide6.QtCore import QPoint
from PySide6.QtGui import QFont, QGuiApplication
from PySide6.QtWidgets import QApplication

from gui_harness import set_greedy, type_and_send, wait_answer, wait_until

from gui import i18n
from gui.chat_view import ChatView
from gui.engine_thread import EngineClient
from gui.message_widget import RENDER_CAP
from gui.paths import history_path
from gui.speed_plot import SpeedPanel
from gui.store import Store

HUGE = 50_000_000
START_LIMIT_S = 5.0  # the window with a 50 MB message took 123 s to start, and froze 170 s at 7 GB


@pytest.fixture
def no_model(loop):
    client = EngineClient()
    yield client
    client.shutdown()


def test_50_mb_messages_start_fast_show_a_cap_note_show_all_and_copy_everything(open_window, no_model, data_dir):
    pasted = ("A pasted log line with some words in it. " * (HUGE // 41 + 1))[:HUGE]
    answer = ("An answer **paragraph** with `code`.\n\n" * (HUGE // 38 + 1))[:HUGE]
    with Store(history_path()) as store:
        conversation = store.create_conversation("huge")
        store.add_message(conversation.id, "user", pasted)
        store.add_message(conversation.id, "assistant", answer)
    started = time.monotonic()
    window = open_window(no_model)  # reopens the last conversation: the huge one
    QApplication.processEvents()
    seconds = time.monotonic() - started
    print(f"\nwindow with two 50 MB messages started in {seconds:.2f} s")
    assert seconds <= START_LIMIT_S
    user, assistant = window.chat.widgets
    assert user.text == pasted and assistant.text == answer  # the full texts are kept, only the view is cut
    for widget in (user, assistant):
        assert widget.cap_note.isVisible() and widget.show_all_button.isVisible()
        assert widget.cap_note.text() == f"Showing the first {RENDER_CAP:,} of {HUGE:,} characters."
    assert len(user.body.text()) == RENDER_CAP and len(assistant.body.toPlainText()) < RENDER_CAP
    assistant.copy_button.click()
    assert QGuiApplication.clipboard().text() == answer
    started = time.monotonic()
    user.show_all_button.click()
    viewer = user.viewer
    assert viewer.isVisible() and viewer.pages == -(-HUGE // viewer.page_chars)
    assert viewer.editor.toPlainText() == pasted[:viewer.page_chars]
    viewer.next_button.click()
    assert viewer.editor.toPlainText() == pasted[viewer.page_chars:2 * viewer.page_chars]
    assert time.monotonic() - started < START_LIMIT_S
    viewer.close()


def test_a_stream_past_the_cap_stays_incremental(qtbot):
    view = ChatView()
    qtbot.addWidget(view)
    view.resize(700, 500)
    view.show()
    widget = view.add_message(1, "assistant", "", "streaming")
    chunk = "streamed words go on and on. " * 3000  # ~90 k characters per frame
    text = ""
    started = time.monotonic()
    for _ in range(40):
        text += chunk
        widget.stream_text(text)
        view.flush()
    seconds = time.monotonic() - started
    assert seconds < 3.0, f"40 frames of a 3.6 M character stream took {seconds:.1f} s"
    QApplication.processEvents()
    assert widget.cap_note.isVisible() and f"of {len(text):,} characters" in widget.cap_note.text()
    assert len(widget.body.toPlainText()) <= RENDER_CAP + 1  # (a paragraph end)
    widget.finish(text, "complete", {"output_tokens": 9000})
    assert widget.text == text and len(widget.body.toPlainText()) <= RENDER_CAP + 1


def test_copy_says_copied_for_a_moment(qtbot):
    view = ChatView()
    qtbot.addWidget(view)
    widget = view.add_message(1, "user", "copy me")
    assert widget.copy_button.text() == "Copy"
    widget.copy_button.click()
    assert QGuiApplication.clipboard().text() == "copy me" and widget.copy_button.text() == "Copied"
    wait_until(lambda: widget.copy_button.text() == "Copy", 5, "the Copy label to come back")


def test_one_token_answer_has_no_decode_speed(qtbot):
    metrics = {"ttft_s": 0.4, "prefill_tokens_per_s": 90.0, "decode_tokens_per_s": 0.0, "prompt_tokens": 12,
               "output_tokens": 1, "finish_reason": "stop"}
    view = ChatView()
    qtbot.addWidget(view)
    widget = view.add_message(1, "assistant", "Yes", "complete", metrics)
    assert widget.metrics_label.text() == "TTFT 0.40 s · 12 in · 1 out"
    panel = SpeedPanel()
    qtbot.addWidget(panel)
    panel.show_metrics(metrics)
    assert panel.values["decode"].text() == "—" and panel.values["tokens"].text() == "12 in · 1 out"
    two = view.add_message(2, "assistant", "Yes sir", "complete", {**metrics, "output_tokens": 2,
                                                                   "decode_tokens_per_s": 8.0})
    assert two.metrics_label.text() == "TTFT 0.40 s · decode 8.0 tok/s · 12 in · 2 out"


def test_answer_cut_at_max_new_tokens_is_marked_and_offers_continue(open_window, qtbot):
    window = open_window()  # the demo model: a real answer cut by max new tokens
    set_greedy(window, 3)
    type_and_send(qtbot, window, "Tell me a long story about the sea.")
    wait_answer(window)
    view = window.chat
    answer = view.widgets[-1]
    assert answer.metrics["finish_reason"] == "length"
    assert answer.status_label.isVisible() and answer.status_label.text() == "cut at max new tokens"
    assert answer.continue_button.isVisible() and answer.continue_button.isEnabled()
    asked = []
    view.continue_requested.connect(asked.append)
    answer.continue_button.click()
    assert asked == [answer.message_id]
    later = view.add_message(answer.message_id + 1, "user", "next")
    assert not answer.continue_button.isVisible() and not later.continue_button  # only the last answer
    view.remove_from(later.message_id)
    assert answer.continue_button.isVisible()


def test_code_block_copy_label_follows_the_language(qtbot):
    view = ChatView()
    qtbot.addWidget(view)
    widget = view.add_message(1, "assistant", "Code:\n\n```python\nprint(1)\n```\n", "complete")
    try:
        assert i18n.install("zh_CN")
        QApplication.processEvents()
        assert "复制" in widget.body.toPlainText()
        streaming = view.add_message(2, "assistant", "", "streaming")
        streaming.stream_text("Run:\n\n```sh\necho hi\n```\n\nand")
        view.flush()
        assert "复制" in streaming.body.toPlainText()
    finally:
        i18n.install("en")
        QApplication.processEvents()
    assert "Copy" in widget.body.toPlainText() and "复制" not in widget.body.toPlainText()
    assert "复制" not in streaming.body.toPlainText()  # the cached part of a stream follows too


def test_tokens_row_is_visible_at_the_default_size(open_window, no_model, tmp_path):
    """With the theme and a font as tall as Noto Sans / CJK fonts, the side panel's Tokens row was cut off."""
    from gui import theme

    app = QApplication.instance()
    font, palette, sheet = QFont(app.font()), app.palette(), app.styleSheet()
    theme.apply_fonts(app)
    theme.apply(app, "light")
    big = QFont(app.font())
    big.setPointSizeF(13.5)
    app.setFont(big)
    try:
        window = open_window(no_model)
        window.speed_panel.show_metrics({"ttft_s": 0.2, "prefill_tokens_per_s": 100.0, "decode_tokens_per_s": 9.0,
                                         "prompt_tokens": 119, "cached_prompt_tokens": 90, "output_tokens": 105})
        QApplication.processEvents()
        window.grab().save(str(tmp_path / "default-size.png"))
        viewport = window.right_panel.viewport()
        for key in ("ttft", "prefill", "decode", "tokens"):
            label = window.speed_panel.values[key]
            top = label.mapTo(viewport, QPoint(0, 0)).y()
            assert 0 <= top and top + label.height() <= viewport.height(), f"{key} row is cut off"
    finally:
        app.setFont(font)
        app.setPalette(palette)
        app.setStyleSheet(sheet)
