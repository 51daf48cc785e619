"""Tests for gui.store (SQLite history) and gui.paths: CRUD, search, WAL, recovery, corrupt/newer files."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from gui import paths
from gui.store import (DEFAULT_TITLE, MEMORY, SCHEMA_VERSION, STATE_LAST_CONVERSATION, STATE_WINDOW_GEOMETRY, Store,
                       StoreError)


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    return tmp_path / "history.sqlite3"


@pytest.fixture()
def store(db: Path):
    with Store(db) as opened:
        yield opened


def filled_store(path: Path, conversations: int = 1, pairs: int = 30) -> None:
    """A closed history file with some content (several pages)."""
    with Store(path) as store:
        for n in range(conversations):
            conversation = store.create_conversation(f"Conversation {n}")
            for i in range(pairs):
                store.add_message(conversation.id, "user", f"question {i} " * 20)
                store.add_message(conversation.id, "assistant", f"answer {i} " * 20)


def files_beside(path: Path) -> dict[str, bytes]:
    """The bytes of every file in the folder, except SQLite's -shm index (rebuilt by any reader, holds no data)."""
    return {p.name: p.read_bytes() for p in sorted(path.parent.iterdir())
            if p.is_file() and not p.name.endswith("-shm")}


# ----- conversations ------------------------------------------------------------------------------
def test_create_rename_delete_list(store: Store) -> None:
    first = store.create_conversation("First", settings={"temperature": 0.3}, model_name="Baichuan2-7B-Chat")
    second = store.create_conversation()
    assert second.title == DEFAULT_TITLE and second.messages == () and second.settings == {}
    assert first.settings == {"temperature": 0.3} and first.model_name == "Baichuan2-7B-Chat"
    assert [c.id for c in store.list_conversations()] == [second.id, first.id]  # newest first
    store.rename_conversation(first.id, "  Renamed  ")
    assert store.get_conversation(first.id).title == "Renamed"
    assert [c.id for c in store.list_conversations()] == [first.id, second.id]  # renaming updates it
    store.rename_conversation(first.id, "   ")
    assert store.get_conversation(first.id).title == DEFAULT_TITLE
    store.add_message(first.id, "user", "hi")
    assert store.delete_conversation(first.id) is True
    assert store.delete_conversation(first.id) is False
    assert store.get_conversation(first.id) is None
    assert store.counts() == (1, 0)  # its messages went with it


def test_settings_and_model_name(store: Store) -> None:
    conversation = store.create_conversation("s")
    settings = {"temperature": 0.7, "top_k": 5, "system_prompt": "你是助手。", "streaming": False, "seed": None}
    store.update_settings(conversation.id, settings)
    store.set_model_name(conversation.id, "demo")
    loaded = store.get_conversation(conversation.id)
    assert loaded.settings == settings and loaded.model_name == "demo"
    with pytest.raises(StoreError):
        store.update_settings(conversation.id, ["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="does not exist"):
        store.update_settings(conversation.id + 100, {})


def test_search_titles_and_message_text(store: Store) -> None:
    travel = store.create_conversation("Trip to Paris")
    code = store.create_conversation("Python help")
    store.add_message(code.id, "user", "How do I sort a list? 用 sorted() 吗？")
    store.add_message(travel.id, "user", "100% sure_thing")
    assert [c.id for c in store.list_conversations("paris")] == [travel.id]  # case-insensitive title
    assert [c.id for c in store.list_conversations("SORT")] == [code.id]  # message text
    assert [c.id for c in store.list_conversations("sorted()")] == [code.id]
    assert [c.id for c in store.list_conversations("用")] == [code.id]  # Chinese substring
    assert [c.id for c in store.list_conversations("0% s")] == [travel.id]  # % is literal
    assert store.list_conversations("1_0") == []  # _ is literal, not a wildcard
    assert store.list_conversations("nothing like this") == []
    assert len(store.list_conversations("")) == 2


# ----- messages -----------------------------------------------------------------------------------
def test_messages_positions_finish_and_truncate(store: Store) -> None:
    conversation = store.create_conversation("m")
    user = store.add_message(conversation.id, "user", "Hello")
    answer = store.begin_assistant_message(conversation.id)
    assert (user.position, answer.position) == (0, 1)
    assert answer.status == "streaming" and answer.content == ""
    assert store.update_streaming_content(answer.id, "Hel") is True
    assert store.get_conversation(conversation.id).messages[1].content == "Hel"
    metrics = {"ttft_s": 0.12, "decode_tokens_per_s": float("inf"), "output_tokens": 3}
    done = store.finish_message(answer.id, "Hello there", "stopped", metrics)
    assert done.status == "stopped" and done.content == "Hello there"
    assert done.metrics == {"ttft_s": 0.12, "decode_tokens_per_s": None, "output_tokens": 3}  # strict JSON
    assert store.update_streaming_content(answer.id, "late token") is False  # no longer streaming
    assert store.get_conversation(conversation.id).messages[1].content == "Hello there"
    store.add_message(conversation.id, "user", "again")
    assert store.delete_messages_from(conversation.id, 1) == 2  # regenerate from the first answer
    assert store.add_message(conversation.id, "assistant", "new", status="error").position == 1
    assert [m.content for m in store.get_conversation(conversation.id).messages] == ["Hello", "new"]


def test_bad_message_arguments_raise_store_error(store: Store) -> None:
    conversation = store.create_conversation("m")
    with pytest.raises(StoreError):
        store.add_message(conversation.id, "robot", "x")
    with pytest.raises(StoreError):
        store.add_message(conversation.id, "user", "x", status="streaming")  # only begin_assistant_message
    with pytest.raises(StoreError, match="does not exist"):
        store.add_message(conversation.id + 1, "user", "x")
    answer = store.begin_assistant_message(conversation.id)
    with pytest.raises(StoreError):
        store.finish_message(answer.id, "x", "finished")
    with pytest.raises(StoreError, match="does not exist"):
        store.finish_message(answer.id + 10, "x")
    assert store.counts() == (1, 1)  # failed calls wrote nothing


def test_unpaired_surrogates_are_stored_as_replacement_characters(store: Store) -> None:
    conversation = store.create_conversation("s")
    message = store.add_message(conversation.id, "user", "bad \ud800 text")
    assert message.content == "bad \ufffd text"


def test_app_state(store: Store) -> None:
    assert store.get_state(STATE_LAST_CONVERSATION) is None
    assert store.get_state("theme", "light") == "light"
    store.set_state(STATE_LAST_CONVERSATION, 7)
    store.set_state(STATE_WINDOW_GEOMETRY, {"x": 10, "y": 20, "w": 800, "h": 600})
    assert store.get_state(STATE_LAST_CONVERSATION) == 7
    assert store.get_state(STATE_WINDOW_GEOMETRY)["w"] == 800
    store.set_state(STATE_LAST_CONVERSATION, None)
    assert store.get_state(STATE_LAST_CONVERSATION, -1) == -1


def test_usable_from_another_thread(store: Store) -> None:
    conversation = store.create_conversation("t")
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for i in range(20):
                store.add_message(conversation.id, "user", str(i))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [m.position for m in store.get_conversation(conversation.id).messages] == list(range(60))


# ----- the file: WAL, schema, recovery ------------------------------------------------------------
def test_wal_mode_and_schema_version(db: Path) -> None:
    with Store(db) as store:
        store.create_conversation("x")
        check = sqlite3.connect(db)
        assert check.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        check.close()


def test_history_survives_reopen(db: Path) -> None:
    with Store(db) as store:
        conversation = store.create_conversation("keep me")
        store.add_message(conversation.id, "user", "persist")
        store.set_state(STATE_LAST_CONVERSATION, conversation.id)
    with Store(db) as store:
        last = store.get_state(STATE_LAST_CONVERSATION)
        assert store.get_conversation(last).messages[0].content == "persist"
        assert store.recovered_messages == 0


def test_streaming_message_becomes_interrupted_on_open(db: Path) -> None:
    store = Store(db)
    conversation = store.create_conversation("x")
    store.add_message(conversation.id, "user", "question")
    answer = store.begin_assistant_message(conversation.id)
    store.update_streaming_content(answer.id, "partial ans")
    store.close()  # never finished, as after a crash
    with Store(db) as reopened:
        assert reopened.recovered_messages == 1
        message = reopened.get_conversation(conversation.id).messages[1]
        assert (message.status, message.content) == ("interrupted", "partial ans")
    with Store(db) as again:
        assert again.recovered_messages == 0


def test_empty_file_is_a_new_history(db: Path) -> None:
    db.write_bytes(b"")
    with Store(db) as store:
        assert store.counts() == (0, 0)


@pytest.mark.parametrize("content", [b"this is not a database at all\n" * 10, bytes(range(256)) * 64,
                                     b"SQLite format 3"], ids=["text", "binary", "short-header"])
def test_not_sqlite_is_reported_and_preserved(db: Path, content: bytes) -> None:
    db.write_bytes(content)
    with pytest.raises(StoreError) as info:
        Store(db)
    assert "\n" not in str(info.value) and str(db) in str(info.value)
    assert files_beside(db) == {db.name: content}  # untouched, and nothing created beside it


def test_corrupt_sqlite_is_reported_and_preserved(db: Path) -> None:
    filled_store(db)
    data = bytearray(db.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    data[3 * page_size: 3 * page_size + 64] = b"\xff" * 64  # a b-tree page header that cannot be valid
    db.write_bytes(bytes(data))
    before = files_beside(db)
    with pytest.raises(StoreError, match="corrupt") as info:
        Store(db)
    assert "\n" not in str(info.value)
    assert files_beside(db) == before


def test_newer_schema_is_reported_and_preserved(db: Path) -> None:
    filled_store(db)
    raw = sqlite3.connect(db)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    before = files_beside(db)
    with pytest.raises(StoreError, match="newer version") as info:
        Store(db)
    assert "\n" not in str(info.value)
    assert files_beside(db) == before


def test_newer_schema_with_pending_wal_is_preserved(db: Path) -> None:
    filled_store(db)
    # A newer app that crashed: its last transaction is still in the -wal file.
    code = ("import sqlite3, os, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
            "c.execute('PRAGMA wal_autocheckpoint = 0'); c.execute('PRAGMA user_version = 99'); os._exit(0)")
    subprocess.run([sys.executable, "-c", code, str(db)], check=True)
    assert Path(f"{db}-wal").stat().st_size > 0
    before = files_beside(db)
    with pytest.raises(StoreError, match="newer version"):
        Store(db)
    assert files_beside(db) == before


def test_foreign_sqlite_database_is_refused(db: Path) -> None:
    raw = sqlite3.connect(db)
    raw.execute("CREATE TABLE photos (id INTEGER)")
    raw.commit()
    raw.close()
    before = db.read_bytes()
    with pytest.raises(StoreError, match="not a chat history"):
        Store(db)
    assert db.read_bytes() == before


def test_open_or_fallback(db: Path) -> None:
    store, warning = Store.open_or_fallback(db)
    assert warning is None and store.path == db
    store.close()
    db.write_bytes(b"garbage" * 100)
    store, warning = Store.open_or_fallback(db)
    assert warning is not None and "\n" not in warning
    assert store.path != db and store.path.name.startswith("history-recovered-") and store.path.name in warning
    assert "untouched" in warning
    conversation = store.create_conversation("made while the main file is broken")
    store.close()
    assert db.read_bytes() == b"garbage" * 100
    # The next launch finds the same recovered history again instead of starting yet another one.
    again, warning = Store.open_or_fallback(db)
    assert again.path == store.path and again.get_conversation(conversation.id) is not None
    assert warning is not None and "Using" in warning
    again.close()
    assert db.read_bytes() == b"garbage" * 100


def test_unwritable_location_is_a_store_error_and_falls_back_to_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(StoreError) as info:
        Store(blocker / "history.sqlite3")
    assert "\n" not in str(info.value)
    store, warning = Store.open_or_fallback(blocker / "history.sqlite3")
    assert str(store.path) == MEMORY and "memory only" in warning and "\n" not in warning
    store.add_message(store.create_conversation("still works").id, "user", "hi")
    assert store.counts() == (1, 1)
    store.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_closed_store_raises_store_error(store: Store) -> None:
    store.close()
    with pytest.raises(StoreError):
        store.list_conversations()


# ----- paths --------------------------------------------------------------------------------------
def test_data_dir_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "data" / "nested"
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(target))
    assert paths.data_dir() == target and target.is_dir()
    assert paths.history_path() == target / paths.HISTORY_FILENAME


def test_data_dir_default_is_platformdirs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(paths.DATA_DIR_ENV, raising=False)
    import platformdirs
    expected = Path(platformdirs.user_data_dir(paths.APP_NAME, appauthor=False))
    assert paths.data_dir(create=False) == expected
