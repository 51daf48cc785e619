"""History and export on the real demo engine: reopen where the user left off, export/import, kill -9 safety."""
from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from gui_harness import run_async, set_greedy, type_and_send, wait_answer

from gui.paths import history_path
from gui.store import Store

PROMPT = "What is the capital of France?"


def chat_once(window, qtbot, prompt: str = PROMPT, max_new_tokens: int = 8):
    set_greedy(window, max_new_tokens)
    type_and_send(qtbot, window, prompt)
    wait_answer(window)
    return window.store.get_conversation(window.controller.conversation_id)


def test_history_survives_closing_and_reopening_the_window(open_window, qtbot):
    first = open_window()
    conversation = chat_once(first, qtbot)
    first.settings_panel.temperature.set_value(0.77)
    first.close()  # commits pending settings
    second = open_window()
    assert second.controller.conversation_id == conversation.id
    shown = [(w.role, w.text, w.status) for w in second.chat.widgets]
    assert shown == [(m.role, m.content, m.status) for m in conversation.messages]
    assert shown[1][1].startswith("The capital of France")
    assert second.settings_panel.temperature.value() == 0.77
    assert second.sidebar.current_id() == conversation.id


def test_export_markdown_and_json_then_import_round_trip(open_window, qtbot, tmp_path):
    window = open_window()
    conversation = chat_once(window, qtbot)
    md_path, json_path = tmp_path / "chat.md", tmp_path / "chat.json"
    assert run_async(window.export_to(str(md_path), "md", False)) == 1
    assert run_async(window.export_to(str(json_path), "json", False)) == 1
    markdown = md_path.read_text(encoding="utf-8")
    assert PROMPT in markdown and conversation.messages[1].content in markdown
    document = json.loads(json_path.read_text(encoding="utf-8"))
    exported = document["conversations"][0]["messages"]
    assert [m["content"] for m in exported] == [PROMPT, conversation.messages[1].content]
    new_ids = run_async(window.import_from(str(json_path)))
    assert len(new_ids) == 1 and new_ids[0] != conversation.id
    imported = window.store.get_conversation(new_ids[0])
    fields = lambda c: [(m.role, m.content, m.status, m.metrics) for m in c.messages]  # noqa: E731
    assert fields(imported) == fields(conversation)
    assert imported.settings == conversation.settings  # a copy of a conversation here: its title says so
    assert re.fullmatch(re.escape(conversation.title) + r" \(imported [-0-9: ]{16}\)", imported.title)
    assert window.controller.conversation_id == new_ids[0]
    assert [w.text for w in window.chat.widgets] == [m.content for m in conversation.messages]
    assert run_async(window.export_to(str(tmp_path / "all.json"), "json", True)) == 2


def test_kill_9_during_an_answer_keeps_the_partial_answer(open_window, data_dir):
    env = dict(os.environ, BAICHUAN_CHAT_DATA_DIR=str(data_dir), QT_QPA_PLATFORM="offscreen")
    script = Path(__file__).with_name("gui_crash_app.py")
    process = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    saved = ""
    try:
        deadline = time.monotonic() + 300
        while not saved and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
            try:
                with sqlite3.connect(f"file:{history_path()}?mode=ro", uri=True) as db:
                    row = db.execute("SELECT content FROM messages WHERE status = 'streaming'").fetchone()
            except sqlite3.OperationalError:
                continue  # the app has not created its history yet
            saved = row[0] if row and len(row[0]) > 20 else ""
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    assert saved, "the streaming answer was saved while it streamed"
    with Store(history_path()) as store:
        assert store.recovered_messages == 1
        (conversation,) = store.list_conversations()
        user, answer = store.get_conversation(conversation.id).messages
    assert user.content.startswith("Write a very long story") and user.status == "complete"
    assert answer.status == "interrupted" and answer.content.startswith(saved)
    window = open_window()
    assert window.chat.widgets[-1].status_label.text() == "interrupted"
    assert window.chat.widgets[-1].text == answer.content
