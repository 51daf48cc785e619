"""Presets in the real window on the demo model: built-ins resolve against the model, a chosen preset reaches the
engine, a saved preset made default is what Ctrl+N starts from; Help → Keyboard shortcuts lists the keys."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from gui_harness import reference_answer, type_and_send, wait_answer, wait_until

from gui.presets import BALANCED, CREATIVE, PRECISE, PRESET_KEY


def choose(window, preset_id: str) -> None:
    """Pick a preset in the combo as a user does (activated)."""
    picker = window.settings_panel.presets
    picker.combo.setCurrentIndex(picker._ids.index(preset_id))
    picker.combo.activated.emit(picker.combo.currentIndex())


def test_built_in_presets_apply_and_reach_the_engine(open_window, qtbot, engine):
    window = open_window()
    panel, defaults = window.settings_panel, engine.info()["defaults"]
    choose(window, CREATIVE)
    shown = panel.settings()
    assert (shown["do_sample"], shown["temperature"], shown["top_p"], shown["top_k"]) == (True, 0.9, 0.95, 50)
    assert shown[PRESET_KEY] == CREATIVE
    choose(window, BALANCED)  # the loaded model's generation_config
    shown = panel.settings()
    for key in ("do_sample", "temperature", "top_k", "top_p", "repetition_penalty"):
        assert shown[key] == defaults[key], key
    choose(window, PRECISE)
    assert panel.settings()["do_sample"] is False
    panel.max_new.set_value(5)
    panel.repetition.set_value(1.0)
    type_and_send(qtbot, window, "Name a colour.")
    wait_answer(window)
    answer = window.store.get_conversation(window.controller.conversation_id).messages[-1]
    assert answer.content == reference_answer(engine, [{"role": "user", "content": "Name a colour."}], 5).text
    assert window.store.get_conversation(window.controller.conversation_id).settings[PRESET_KEY] == PRECISE


def test_a_saved_default_preset_is_what_ctrl_n_starts_from(open_window, qtbot):
    window = open_window()
    panel, controller, store = window.settings_panel, window.controller, window.store
    panel.system_prompt.setPlainText("Answer in French.")
    panel.temperature.set_value(1.25)
    panel.top_k.set_value(33)
    controller.save_preset("Français")
    assert "Français" in store.list_presets() and panel.presets.current() == "user:Français"
    panel.presets.default_action.trigger()  # Make default
    assert store.default_preset() == "user:Français"
    assert "(default)" in panel.presets.combo.currentText()
    type_and_send(qtbot, window, "Hi")  # a stored conversation, then change its settings
    wait_answer(window)
    choose(window, PRECISE)
    panel.system_prompt.setPlainText("Something else")
    window.activateWindow()
    wait_until(window.input.hasFocus, 10, "input focus")
    QTest.keyClick(window.input, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)  # a new conversation
    assert controller.conversation_id is None
    shown = panel.settings()
    assert shown["system_prompt"] == "Answer in French." and shown["temperature"] == 1.25 and shown["top_k"] == 33
    assert shown[PRESET_KEY] == "user:Français"
    controller.delete_preset("user:Français")  # gone: new conversations fall back to Balanced
    assert store.default_preset() == BALANCED and "Français" not in store.list_presets()


def test_help_lists_every_shortcut(open_window, no_model_client):
    from gui.shortcuts_dialog import show_shortcuts

    window = open_window(no_model_client)
    window.menus.actions["shortcuts"].trigger()
    dialog = window.shortcuts_dialog
    assert dialog.isVisible()
    keys = {keys for keys, _text in dialog.rows()}
    for key in ("Ctrl+N", "Ctrl+Q", "Ctrl+O", "Ctrl+,", "Esc", "Enter", "Shift+Enter", "F1", "Del"):
        assert key in keys, key
    assert all(text for _keys, text in dialog.rows())
    assert show_shortcuts(window) is dialog  # one dialog, refreshed


@pytest.fixture
def no_model_client(loop):
    from gui.engine_thread import EngineClient

    client = EngineClient()
    yield client
    client.shutdown()
