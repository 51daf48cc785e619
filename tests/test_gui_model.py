"""Model loading in the window: errors are a dialog and the app stays usable; typing and sending during a load."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from gui_harness import DEMO_DTYPE, DEMO_MAX_SEQ_LEN, run_async, type_and_send, type_text, wait_answer, wait_until

from gui.engine_thread import EngineClient


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


def test_sidebar_search_rename_delete_copy_theme_and_model_dialog(open_window, fresh_client):
    from PySide6.QtGui import QGuiApplication

    from gui.model_dialog import ModelDialog

    window = open_window(fresh_client)
    store, controller, sidebar = window.store, window.controller, window.sidebar
    apples = store.create_conversation("Apples")
    store.add_message(apples.id, "user", "Tell me about 苹果 please")
    store.create_conversation("Bananas")
    controller.conversations_changed.emit()
    assert [sidebar.list.item(i).text() for i in range(sidebar.list.count())] == ["Bananas", "Apples"]
    sidebar.search.setText("苹果")
    wait_until(lambda: sidebar.list.count() == 1, 5, "the search to filter")
    assert sidebar.list.item(0).text() == "Apples"
    sidebar.list.setCurrentRow(0)
    assert controller.conversation_id == apples.id and window.chat.widgets[0].text == "Tell me about 苹果 please"
    window.chat.widgets[0].copy_button.click()
    assert QGuiApplication.clipboard().text() == "Tell me about 苹果 please"
    sidebar.rename_requested.emit(apples.id, "Fruit")
    assert store.get_conversation(apples.id).title == "Fruit"
    sidebar.search.setText("")
    wait_until(lambda: sidebar.list.count() == 2, 5, "the search to clear")
    sidebar.delete_requested.emit(apples.id)
    assert store.get_conversation(apples.id) is None and controller.conversation_id != apples.id
    assert [sidebar.list.item(i).text() for i in range(sidebar.list.count())] == ["Bananas"]
    window.set_theme("dark")
    try:
        assert window.chat.renderer.dark and QGuiApplication.palette().base().color().name() == "#222328"
    finally:
        window.set_theme("light")
    assert not window.chat.renderer.dark
    dialog = ModelDialog("/models/Baichuan2-7B-Chat", "npu", "float16", window)
    dialog.max_seq_len.setValue(2048)
    assert dialog.choice() == {"model_dir": "/models/Baichuan2-7B-Chat", "device": "npu", "dtype": "float16",
                               "max_seq_len": 2048, "quantize": "none", "tensor_parallel": 1}


def test_language_switch_retranslates_the_whole_window(open_window, fresh_client):
    from PySide6.QtWidgets import QApplication

    window = open_window(fresh_client)
    window.set_language("zh_CN")
    try:
        QApplication.processEvents()
        assert window.send_button.text() == "发送" and window.menus.file.title() == "文件(&F)"
        assert window.settings_panel.title.text() == "设置" and window.sidebar.new_button.text() == "+  新对话"
        assert window.banner.open_button.text() == "打开模型文件夹…" and window.windowTitle() == "百川对话"
        assert window.store.get_state("language") == "zh_CN"
    finally:
        window.set_language("en")
        QApplication.processEvents()
    assert window.send_button.text() == "Send" and window.menus.file.title() == "&File"
