"""What the walkthrough hit in the window (issue 11, 6) and the import cap (2): typed numbers above a cap, greedy
mode's sampling fields, the Rename dialog's size, file dialogs' folder, export file mode, imported duplicates,
a message too long to import, a 10,000-message import, and error notices that do not stack."""
from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from datetime import datetime
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QFileDialog, QLineEdit, QMessageBox

from gui_harness import wait_until

from gui import theme
from gui.conversation_list import ConversationList
from gui.engine_thread import EngineClient
from gui.export import FORMAT, MAX_TEXT_CHARS, ImportFormatError, distinguish_duplicates, export_json, import_json
from gui.settings_panel import SettingsPanel
from gui.store import Store

LONG_TITLE = "Write a long story about a dragon who learns to paint and then sells it"


@pytest.fixture
def themed(qapp):
    """The app's light theme (as `make run` has it) for this test only."""
    sheet, palette, style = qapp.styleSheet(), qapp.palette(), qapp.style().name()
    theme.apply(qapp, "light")
    yield
    qapp.setStyleSheet(sheet)
    qapp.setPalette(palette)
    qapp.setStyle(style)


@pytest.fixture
def window(open_window, loop):
    client = EngineClient()  # nothing loaded: these tests need the window, not a model
    yield open_window(client)
    client.shutdown()


def type_into(spin, text: str) -> None:
    spin.setFocus()
    spin.selectAll()
    QTest.keyClicks(spin, text)


# ----- settings panel -----------------------------------------------------------------------------
def test_a_number_typed_above_the_cap_becomes_the_cap(qtbot):
    panel = SettingsPanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.activateWindow()
    wait_until(panel.isActiveWindow, 10, "the panel to take the focus")
    panel.set_max_new_tokens_limit(1000)
    seen = []
    panel.changed.connect(lambda settings: seen.append(settings["max_new_tokens"]))
    type_into(panel.max_new.spin, "6000")
    assert panel.max_new.spin.text() == "6000"  # every digit kept while typing (before: "600")
    QTest.keyClick(panel.max_new.spin, Qt.Key.Key_Return)
    assert panel.settings()["max_new_tokens"] == 1000 and panel.max_new.spin.text() == "1000"
    assert seen == [1000] and "1000" in panel._labels["max_new"].text()  # the cap is shown
    type_into(panel.max_new.spin, "750")
    QTest.keyClick(panel.max_new.spin, Qt.Key.Key_Return)
    assert panel.settings()["max_new_tokens"] == 750 and seen == [1000, 750]
    type_into(panel.max_new.spin, "99999")
    panel.system_prompt.setFocus()  # leaving the field finishes the edit too
    wait_until(panel.system_prompt.hasFocus, 10, "the focus to move")
    assert panel.settings()["max_new_tokens"] == 1000
    type_into(panel.temperature.spin, "5")
    QTest.keyClick(panel.temperature.spin, Qt.Key.Key_Return)
    assert panel.settings()["temperature"] == 2.0  # before: the "5" was refused and 0.30 stayed


def test_greedy_mode_turns_the_sampling_fields_visibly_off(qtbot, themed):
    panel = SettingsPanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.do_sample.setChecked(True)
    shots = {"label": panel._labels["seed"].grab().toImage(), "field": panel.seed.grab().toImage()}
    panel.do_sample.setChecked(False)
    for key in ("temperature", "top_k", "top_p", "seed"):
        assert not panel._labels[key].isEnabled()
    assert not panel.seed.isEnabled() and panel.repetition.isEnabled()  # the penalty applies to greedy too
    # Disabled must look disabled: the style sheet's one text colour made the off fields look editable.
    assert panel._labels["seed"].grab().toImage() != shots["label"]
    assert panel.seed.grab().toImage() != shots["field"]
    panel.do_sample.setChecked(True)
    assert panel.seed.isEnabled() and panel._labels["seed"].isEnabled()


# ----- rename dialog --------------------------------------------------------------------------------
def test_rename_dialog_shows_its_title_and_the_whole_text(qtbot, themed):
    sidebar = ConversationList()
    qtbot.addWidget(sidebar)
    sidebar.set_conversations([(7, LONG_TITLE)], None)
    dialog = sidebar.rename_dialog(7)
    dialog.show()
    field = dialog.findChild(QLineEdit)
    assert field.text() == LONG_TITLE
    assert dialog.width() >= dialog.fontMetrics().horizontalAdvance(dialog.windowTitle()) + 120  # before: 200
    assert field.width() >= field.fontMetrics().horizontalAdvance(LONG_TITLE) + 12
    dialog.reject()


# ----- file dialogs ---------------------------------------------------------------------------------
def test_file_dialogs_open_in_documents_then_in_the_last_folder(window, tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "Documents").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    exports = tmp_path / "exports"
    exports.mkdir()
    asked = []

    def save_dialog(_parent, _caption, start, _filters):
        asked.append(start)
        return str(exports / "chat.json"), ""

    def open_dialog(_parent, _caption, start, _filters):
        asked.append(start)
        return "", ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(save_dialog))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(open_dialog))
    window.menus.actions["import_json"].trigger()
    window.menus.actions["export_all_json"].trigger()
    wait_until(lambda: (exports / "chat.json").exists(), 30, "the export")
    window.menus.actions["import_json"].trigger()
    # Before: "" and "conversations.json", i.e. the working directory.
    assert asked == [str(home / "Documents"), str(home / "Documents" / "conversations.json"), str(exports)]


# ----- error notices --------------------------------------------------------------------------------
def test_repeated_errors_share_one_non_modal_notice(window):
    for _ in range(30):  # e.g. a save failing every half second
        window.show_error("Saving failed", "The disk is full.")
    boxes = [b for b in window.findChildren(QMessageBox) if b.isVisible()]
    assert len(boxes) == 1 and "30" in boxes[0].informativeText()  # before: 30 stacked dialogs
    assert boxes[0].windowModality() == Qt.WindowModality.NonModal
    window.show_error("Something went wrong", "Another thing.")
    boxes = [b for b in window.findChildren(QMessageBox) if b.isVisible()]
    assert len(boxes) == 1 and boxes[0].text() == "Another thing." and not boxes[0].informativeText()
    boxes[0].close()
    assert window.show_error("Saving failed", "The disk is full.").isVisible()


# ----- export and import ----------------------------------------------------------------------------
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_exports_get_the_usual_file_mode(tmp_path, umask, mode):
    store = Store(tmp_path / "h.sqlite3")
    store.create_conversation("One")
    old = os.umask(umask)
    try:
        export_json(store, tmp_path / "new.json")
    finally:
        os.umask(old)
    assert (tmp_path / "new.json").stat().st_mode & 0o777 == mode  # before: always 0600
    (tmp_path / "new.json").chmod(0o640)
    export_json(store, tmp_path / "new.json")
    assert (tmp_path / "new.json").stat().st_mode & 0o777 == 0o640  # a replaced file keeps its mode
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    store.close()


def test_importing_a_conversation_already_here_marks_the_copy(tmp_path):
    store = Store(tmp_path / "h.sqlite3")
    first = store.create_conversation("Dragons")
    store.add_message(first.id, "user", "Tell me about dragons.")
    export_json(store, tmp_path / "all.json")
    import_json(store, tmp_path / "all.json")
    import_json(store, tmp_path / "all.json")
    titles = sorted(c.title for c in store.list_conversations())
    assert titles[0] == "Dragons" and len(set(titles)) == 3  # before: three "Dragons"
    assert re.fullmatch(r"Dragons \(imported \d{4}-\d\d-\d\d \d\d:\d\d\)", titles[1])
    assert titles[2] == titles[1] + " (2)"
    # The rule at a fixed time: copies of a conversation here (same title and created time) are marked, each
    # differently; another conversation that only shares the title is not.
    original = store.get_conversation(first.id)
    namesake = dataclasses.replace(original, created="2020-01-01T00:00:00.000000+00:00")
    copies = distinguish_duplicates(store, [original, namesake, original], datetime(2031, 5, 6, 7, 8))
    assert [c.title for c in copies] == ["Dragons (imported 2031-05-06 07:08)", "Dragons",
                                         "Dragons (imported 2031-05-06 07:08) (2)"]
    store.close()


def _document(conversations: list[dict]) -> str:
    return json.dumps({"format": FORMAT, "version": 1, "conversations": conversations}, ensure_ascii=False)


def test_a_message_above_the_cap_is_refused_in_one_sentence(tmp_path):
    store = Store(tmp_path / "h.sqlite3")
    store.create_conversation("Kept")
    source = tmp_path / "big.json"
    big = {"role": "user", "content": "x" * (MAX_TEXT_CHARS + 1)}
    source.write_text(_document([{"title": "Fine", "messages": [{"role": "user", "content": "hi"}]},
                                 {"title": "Huge paste", "messages": [{"role": "user", "content": "a"}, big]}]))
    with pytest.raises(ImportFormatError) as caught:
        import_json(store, source)
    message = str(caught.value)
    assert "\n" not in message and "message 2 of \u201cHuge paste\u201d" in message and "4.0 M characters" in message
    assert store.counts() == (1, 0)  # all or nothing
    big["content"] = "x" * MAX_TEXT_CHARS  # at the cap: accepted
    source.write_text(_document([{"title": "At the cap", "messages": [big]}]))
    assert len(import_json(store, source)) == 1
    store.close()


def test_a_ten_thousand_message_export_imports_quickly(tmp_path):
    store = Store(tmp_path / "h.sqlite3")
    messages = [{"role": ("user", "assistant")[i % 2], "content": f"message {i} " + "words " * 20,
                 "metrics": {"output_tokens": 20} if i % 2 else {}} for i in range(10_000)]
    source = tmp_path / "long.json"
    source.write_text(_document([{"title": "Long", "created": "2026-01-01T00:00:00Z", "messages": messages}]))
    start = time.perf_counter()
    (new_id,) = import_json(store, source)
    elapsed = time.perf_counter() - start
    conversation = store.get_conversation(new_id)
    assert len(conversation.messages) == 10_000 and conversation.messages[-1].content.startswith("message 9999 ")
    assert elapsed < 10, f"{elapsed:.1f} s"
    store.close()


def test_file_start_dir_falls_back_to_home(tmp_path, monkeypatch):
    from gui.file_dirs import documents_dir, model_start_dir, start_dir

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ".config"))
    assert documents_dir() == str(tmp_path)  # no Documents folder
    assert start_dir(str(tmp_path / "gone")) == str(tmp_path)
    (tmp_path / "models").mkdir()
    assert model_start_dir(str(tmp_path / "models" / "Baichuan2-7B-Chat")) == str(tmp_path / "models")
    assert model_start_dir("relative/path") == str(tmp_path)
    assert Path(start_dir(None)).is_dir() and QApplication.instance() is not None
