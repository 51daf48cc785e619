"""Model loading in the window: errors are a dialog and the app stays usable; typing and sending during a load."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from gui_harness import DEMO_DTYPE, DEMO_MAX_SEQ_LEN, run_async, type_and_send, type_text, wait_answer, wait_until

from gui.engine_client import EngineClient


@pytest.fixture
def fresh_client(loop):
    """A client of its own (nothing loaded): these tests load, fail and cancel models."""
    client = EngineClient()
    yield client
    client.shutdown()


def test_bad_folder_is_a_one_line_dialog_and_the_app_stays_usable(open_window, fresh_client, tmp_path, qtbot):
    window = open_window(fresh_client)
    (tmp_path / "empty").mkdir()
    assert run_async(window.load_model(str(tmp_path / "empty")), 120) is None
    box = window.error_box
    assert box is not None and box.isVisible()
    assert box.text() and "\n" not in box.text() and "Traceback" not in box.text()
    assert fresh_client.state == "failed" and window.banner.mode == "none" and window.banner.isVisible()
    box.close()
    type_and_send(qtbot, window, "Hello?")  # no model: the answer fails cleanly, nothing crashes
    wait_answer(window, 30)
    user, answer = window.store.get_conversation(window.controller.conversation_id).messages
    assert user.content == "Hello?" and answer.status == "error"
    assert window.chat.widgets[-1].status_label.text() == "error"
    type_text(window.input, "still typing")
    assert window.input.toPlainText() == "still typing"


def test_shortcuts_new_conversation_and_quit(open_window, fresh_client, qtbot):
    window = open_window(fresh_client)
    window.store.create_conversation("Old")
    window.controller.open_conversation(window.store.list_conversations()[0].id)
    window.activateWindow()
    wait_until(window.input.hasFocus, 10, "input focus")
    QTest.keyClick(window.input, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert window.controller.conversation_id is None and not window.chat.widgets
    QTest.keyClick(window.input, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
    wait_until(lambda: not window.isVisible(), 10, "the window to close")


def test_cancel_a_load_then_type_and_send_while_the_demo_model_loads(open_window, fresh_client, qtbot):
    window = open_window(fresh_client)
    first = window.run(window.load_model(None, "cpu", DEMO_DTYPE, DEMO_MAX_SEQ_LEN))
    wait_until(lambda: window.load_status.cancel.isVisible(), 10, "the load to start")
    window.load_status.cancel.click()
    wait_until(first.done, 300, "the cancelled load")
    assert first.result() is None and fresh_client.state == "empty"
    window.run(window.load_model(None, "cpu", DEMO_DTYPE, DEMO_MAX_SEQ_LEN))
    wait_until(lambda: fresh_client.state == "loading", 10, "the second load to start")
    assert window.load_status.progress.isVisible() and not window.banner.isVisible()
    window.settings_panel.do_sample.setChecked(False)
    window.settings_panel.max_new.set_value(8)
    type_and_send(qtbot, window, "What is the capital of France?")
    wait_until(lambda: len(window.chat.widgets) == 2, 10, "the user message and the waiting answer")
    assert "Waiting for the model" in window.chat.widgets[-1].body.toPlainText()
    wait_answer(window, 600)
    assert fresh_client.state == "ready" and window.banner.mode == "demo"
    answer = window.store.get_conversation(window.controller.conversation_id).messages[-1]
    assert answer.status == "complete" and answer.content.startswith("The capital of France")
