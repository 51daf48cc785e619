"""History that scales: FTS5 search in a 5,000-message history (timed, hit highlighted), date groups, pins,
multi-select delete, and the migration of a history written by schema 1 (nothing lost)."""
from __future__ import annotations

import sqlite3
import time
from datetime import datetime, timedelta, timezone

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox

from gui_harness import wait_until

from gui.engine_thread import EngineClient
from gui.conversation_delegate import HEADER_ROLE, SNIPPET_ROLE
from gui.store import Conversation, Message, Store, now_iso
from gui.store_schema import MIGRATIONS, SCHEMA_VERSION
from gui.store_search import MARK_END, MARK_START

SEARCH_LIMIT_S = 0.100
RARE = "zanzibarite"


@pytest.fixture
def no_model(loop):
    """A client with nothing loaded: the history needs no model."""
    client = EngineClient()
    yield client
    client.shutdown()


def long_conversation(count: int, rare_at: int) -> Conversation:
    messages = []
    for i in range(count):
        role = "user" if i % 2 == 0 else "assistant"
        text = (f"Message {i} about the weather, rivers and 天气预报 number {i}."
                + (f" The word {RARE} appears only here." if i == rare_at else ""))
        messages.append(Message(0, 0, i, role, text, "complete", {}, now_iso()))
    return Conversation(0, "Long history", now_iso(), now_iso(), {}, "", tuple(messages))


def test_fts_finds_a_word_in_5000_messages_fast_and_highlights_the_hit(open_window, no_model):
    window = open_window(no_model)
    store = window.store
    (long_id,) = store.import_conversations([long_conversation(5000, rare_at=4801)])
    other = store.create_conversation("Shopping")
    store.add_message(other.id, "user", "Buy bread")
    assert store.full_text  # this SQLite has FTS5 with the trigram tokenizer
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        hits = store.search(RARE)
        timings.append(time.perf_counter() - start)
    print(f"\nFTS search for one word in 5,000 messages: best {min(timings) * 1000:.1f} ms, "
          f"worst {max(timings) * 1000:.1f} ms")
    assert max(timings) < SEARCH_LIMIT_S
    assert len(hits) == 1 and hits[0].conversation_id == long_id
    assert f"{MARK_START}{RARE}{MARK_END}" in hits[0].snippet
    start = time.perf_counter()
    assert [h.conversation_id for h in store.search("预报")] == [long_id]  # 2 Chinese characters: scanned
    print(f"two-character Chinese search (LIKE scan): {(time.perf_counter() - start) * 1000:.1f} ms")
    assert [h.conversation_id for h in store.search("天气预报 RIVERS")] == [long_id]  # words, any case
    window.sidebar.search.setText(RARE)
    wait_until(lambda: window.sidebar.list.count() == 1, 5, "the search to filter")
    item = window.sidebar.list.item(0)
    assert item.text() == "Long history" and f"{MARK_START}{RARE}{MARK_END}" in item.data(SNIPPET_ROLE)
    window.sidebar.list.setCurrentRow(0)  # open the hit: the message is rendered, shown and marked
    assert window.controller.conversation_id == long_id
    hit = window.chat.widget_for(hits[0].message_id)
    assert hit is not None and RARE in hit.text
    selections = hit.body.extraSelections()
    assert len(selections) == 1 and selections[0].cursor.selectedText() == RARE
    wait_until(lambda: hit.visibleRegion().isEmpty() is False, 5, "the hit to be scrolled into view")


def test_date_groups_pin_and_multi_select_delete(open_window, no_model, monkeypatch):
    window = open_window(no_model)
    store, sidebar = window.store, window.sidebar
    now = datetime.now(timezone.utc)
    ids = {}
    for title, age in (("Fresh", 0), ("Day old", 1), ("This week", 4), ("This month", 20), ("Ancient", 400)):
        stamp = (now - timedelta(days=age)).isoformat()
        (ids[title],) = store.import_conversations([Conversation(0, title, stamp, stamp, {}, "")])
    window.controller.conversations_changed.emit()
    headers = {sidebar.list.item(i).text(): sidebar.list.item(i).data(HEADER_ROLE) for i in range(sidebar.list.count())}
    assert headers["Fresh"] == "Today" and headers["Day old"] == "Yesterday"
    assert headers["This week"] == "Previous 7 days" and headers["This month"] == "Previous 30 days"
    assert headers["Ancient"] and headers["Ancient"][-4:].isdigit()  # its month and year
    sidebar.pin_requested.emit(ids["Ancient"], True)
    first = sidebar.list.item(0)
    assert first.text() == "Ancient" and first.data(HEADER_ROLE) == "Pinned"
    assert store.get_conversation(ids["Ancient"]).pinned
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *args: asked.append(args) or QMessageBox.StandardButton.Yes)
    sidebar.list.clearSelection()
    for row in range(sidebar.list.count()):
        if sidebar.list.item(row).text() in ("Day old", "This month", "Ancient"):
            sidebar.list.item(row).setSelected(True)
    sidebar.list.setFocus()
    QTest.keyClick(sidebar.list, Qt.Key.Key_Delete)
    assert len(asked) == 1  # one confirmation for all three
    assert sorted(c.title for c in store.list_conversations()) == ["Fresh", "This week"]


def v1_history(path) -> None:
    """A history file as the app wrote it before versions (schema 1), with a conversation of 3 messages."""
    conn = sqlite3.connect(path)
    for statement in MIGRATIONS[1]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO conversations VALUES (1, 'Old chat 旧', '2024-01-01T00:00:00+00:00', "
                 "'2024-01-02T00:00:00+00:00', '{\"top_k\": 7}', 'Baichuan2-7B-Chat')")
    conn.execute("INSERT INTO conversations VALUES (2, 'Empty', '2024-01-01T00:00:00+00:00', "
                 "'2024-01-01T00:00:00+00:00', '{}', '')")
    for position, (role, text) in enumerate((("user", "你好，北京的天气怎么样？"), ("assistant", "Sunny in Beijing."),
                                             ("user", "And tomorrow?"))):
        conn.execute("INSERT INTO messages (conversation_id, position, role, content, status, metrics, created) "
                     "VALUES (1, ?, ?, ?, 'complete', '{\"output_tokens\": 4}', '2024-01-01T00:00:00+00:00')",
                     (position, role, text))
    conn.execute("INSERT INTO app_state VALUES ('theme', '\"dark\"')")
    conn.commit()
    conn.close()


def test_a_schema_1_history_migrates_and_keeps_everything(tmp_path):
    path = tmp_path / "history.sqlite3"
    v1_history(path)
    with Store(path) as store:
        conversation = store.get_conversation(1)
        assert [(m.position, m.role, m.content, m.metrics) for m in conversation.messages] == [
            (0, "user", "你好，北京的天气怎么样？", {"output_tokens": 4}),
            (1, "assistant", "Sunny in Beijing.", {"output_tokens": 4}),
            (2, "user", "And tomorrow?", {"output_tokens": 4})]
        assert conversation.title == "Old chat 旧" and conversation.settings == {"top_k": 7}
        assert conversation.model_name == "Baichuan2-7B-Chat" and not conversation.pinned
        assert store.get_state("theme") == "dark" and store.counts() == (2, 3)
        assert [h.conversation_id for h in store.search("北京的天气")] == [1]  # the old text is indexed
        assert [h.conversation_id for h in store.search("old chat")] == [1]  # and the titles
        answer = store.begin_assistant_message(1)  # it goes on after the last message
        assert answer.position == 3 and answer.parent_id == conversation.messages[-1].id
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()
