"""GUI chat flow on the real demo engine: streaming order, greedy equality, stop, streaming off, edit, regenerate."""
from __future__ import annotations

from PySide6.QtCore import Qt

from gui_harness import reference_answer, set_greedy, type_and_send, wait_answer, wait_until

PROMPT = "What is the capital of France?"


def stored(window):
    conversation = window.store.get_conversation(window.controller.conversation_id)
    return list(conversation.messages)


def test_window_opens_with_focus_and_demo_notice(open_window):
    window = open_window()
    wait_until(window.input.hasFocus, 10, "the input box to have focus")
    assert window.banner.isVisible() and window.banner.mode == "demo"
    assert "demo model" in window.banner.text.text() and "Open model folder" in window.banner.text.text()
    assert window.settings_panel.seq_label.text().endswith("1024")


def test_send_streams_tokens_in_order_and_matches_engine_greedy(open_window, qtbot, engine, listen):
    window = open_window()
    set_greedy(window, 24)
    received = []
    listen(window.client.token, lambda text, token_id: received.append((token_id, text)))
    type_and_send(qtbot, window, PROMPT)
    assert window.input.toPlainText() == ""
    assert window.send_button.text() == "Stop"
    wait_answer(window)
    expected = reference_answer(engine, [{"role": "user", "content": PROMPT}], 24)
    assert [token_id for token_id, _ in received] == expected.output_ids
    assert "".join(text for _, text in received) == expected.text
    assert expected.text.startswith("The capital of France is Paris")
    widget = window.chat.widgets[-1]
    assert widget.role == "assistant" and widget.text == expected.text and widget.status == "complete"
    assert "Paris" in widget.body.toPlainText()
    user, answer = stored(window)
    assert (user.role, user.content, user.status) == ("user", PROMPT, "complete")
    assert (answer.role, answer.content, answer.status) == ("assistant", expected.text, "complete")
    assert answer.metrics["output_tokens"] == len(expected.output_ids)
    for key in ("ttft", "prefill", "decode", "tokens"):
        assert window.speed_panel.values[key].text() != "—"
    assert len(window.speed_panel.plot.samples) >= 1 or len(expected.output_ids) < 3
    assert window.send_button.text() == "Send"


def test_stop_ends_within_one_step_and_keeps_partial(open_window, qtbot, listen):
    window = open_window()
    set_greedy(window, 300)
    received = []
    listen(window.client.token, lambda text, token_id: received.append(token_id))
    type_and_send(qtbot, window, "Write a long story about a dragon who learns to paint.")
    wait_until(lambda: len(received) >= 4, 120, "a few tokens")
    at_stop = len(received)
    qtbot.keyClick(window.input, Qt.Key.Key_Escape)
    wait_answer(window)
    answer = stored(window)[-1]
    assert answer.status == "stopped"
    assert answer.metrics["finish_reason"] == "cancelled"
    assert at_stop <= answer.metrics["output_tokens"] <= at_stop + 2  # the step in flight, then it ends
    assert answer.content and window.chat.widgets[-1].text == answer.content
    assert window.chat.widgets[-1].status_label.text() == "stopped"


def test_streaming_off_shows_whole_answer_only_at_end(open_window, qtbot, engine, listen):
    window = open_window()
    set_greedy(window, 16)
    window.settings_panel.stream.setChecked(False)
    seen_during = []

    def during(_text, _token_id):
        widget = window.chat.widgets[-1]
        window.chat.flush()
        seen_during.append((widget.text, widget.body.toPlainText()))

    listen(window.client.token, during)
    type_and_send(qtbot, window, PROMPT)
    wait_answer(window)
    assert seen_during, "tokens were generated"
    assert all(text == "" and "Generating" in shown for text, shown in seen_during)
    expected = reference_answer(engine, [{"role": "user", "content": PROMPT}], 16)
    assert window.chat.widgets[-1].text == expected.text
    assert "Paris" in window.chat.widgets[-1].body.toPlainText()


def test_edit_and_resend_and_regenerate(open_window, qtbot, engine):
    window = open_window()
    set_greedy(window, 12)
    type_and_send(qtbot, window, "What is the capital of Italy?")
    wait_answer(window)
    user_id = stored(window)[0].id
    window.chat.widget_for(user_id).edit_button.click()
    assert window.input.toPlainText() == "What is the capital of Italy?" and window.edit_hint.isVisible()
    window.input.setPlainText(PROMPT)
    qtbot.keyClick(window.input, Qt.Key.Key_Return)
    wait_answer(window)
    messages = stored(window)
    assert [m.role for m in messages] == ["user", "assistant"] and messages[0].content == PROMPT
    expected = reference_answer(engine, [{"role": "user", "content": PROMPT}], 12)
    assert messages[1].content == expected.text
    window.chat.widget_for(messages[1].id).regenerate_button.click()
    wait_answer(window)
    again = stored(window)
    assert len(again) == 2 and again[1].id != messages[1].id and again[1].content == expected.text
    assert [w.message_id for w in window.chat.widgets] == [again[0].id, again[1].id]
