"""Ctrl+F in the conversation: the find bar marks every match in the rendered messages (answers and questions),
steps through them with Enter / Shift+Enter, counts them, and Esc closes it and removes the marks."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from gui.find_bar import CURRENT_COLOR, MATCH_COLOR
from gui_harness import wait_until

MESSAGES = [(1, "user", "Where is Paris?", "complete", {}),
            (2, "assistant", "**Paris** is the capital of France.\n\n- paris\n- Lyon\n\n```\nPARIS = 1\n```",
             "complete", {}),
            (3, "user", "Tell me more about Lyon", "complete", {})]


def _colours(body) -> list[str]:
    return [selection.format.background().color().name() for selection in body.extraSelections()]


def test_ctrl_f_finds_marks_steps_and_closes(open_window, qtbot):
    window = open_window()
    window.chat.set_messages(MESSAGES)
    bar = window.find_bar
    assert not bar.isVisible()
    window.activateWindow()
    wait_until(lambda: QApplication.activeWindow() is window, 10, "the window to be active")
    qtbot.keyClick(window.input, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    wait_until(bar.isVisible, 5, "the find bar")
    assert bar.field.hasFocus()
    qtbot.keyClicks(bar.field, "paris")
    question, answer, other = window.chat.widgets
    assert bar.count.text() == "1 of 4"  # the question, and "Paris", "paris", "PARIS" in the rendered answer
    assert question.body.textFormat() == Qt.TextFormat.RichText and CURRENT_COLOR in question.body.text()
    assert _colours(answer.body) == [MATCH_COLOR] * 3
    assert other.body.textFormat() != Qt.TextFormat.RichText
    qtbot.keyClick(bar.field, Qt.Key.Key_Return)
    assert bar.count.text() == "2 of 4" and _colours(answer.body) == [CURRENT_COLOR, MATCH_COLOR, MATCH_COLOR]
    assert MATCH_COLOR in question.body.text() and CURRENT_COLOR not in question.body.text()
    qtbot.keyClick(bar.field, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClick(bar.field, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert bar.count.text() == "4 of 4"  # wraps around
    bar.field.setText("Lyon")
    assert bar.count.text() == "1 of 2" and question.body.textFormat() != Qt.TextFormat.RichText
    bar.field.setText("nowhere")
    assert bar.count.text() == "No matches"
    bar.field.setText("paris")
    qtbot.keyClick(bar.field, Qt.Key.Key_Escape)
    assert not bar.isVisible() and _colours(answer.body) == []
    assert question.body.textFormat() == Qt.TextFormat.PlainText and question.body.text() == "Where is Paris?"
