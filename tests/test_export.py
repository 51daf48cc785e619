"""Tests for gui.export: Markdown/JSON export, atomic writes, all-or-nothing JSON import, and import fuzzing."""
from __future__ import annotations

import copy
import errno
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gui import atomic_write
from gui.export import (FORMAT, FORMAT_VERSION, ExportError, ImportFormatError, export_json, export_markdown,
                        import_json, to_markdown)
from gui.store import DEFAULT_TITLE, ROLES, STATUSES, Store

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def store(tmp_path: Path):
    with Store(tmp_path / "history.sqlite3") as opened:
        yield opened


def populate(store: Store) -> list[int]:
    first = store.create_conversation("Capitals 首都", settings={"temperature": 0.3, "top_k": 5,
                                                              "system_prompt": "Answer briefly.\nBe kind.",
                                                              "streaming": True}, model_name="Baichuan2-7B-Chat")
    store.add_message(first.id, "user", "What is the capital of France?")
    store.add_message(first.id, "assistant", "The capital of France is Paris.",
                      metrics={"ttft_s": 0.05, "prefill_tokens_per_s": 410.5, "decode_tokens_per_s": 31.2,
                               "prompt_tokens": 12, "output_tokens": 8, "finish_reason": "stop"})
    store.add_message(first.id, "user", "中国的首都呢？")
    answer = store.begin_assistant_message(first.id)
    store.finish_message(answer.id, "北京。\n\n```python\nprint('北京')\n```", "stopped", {"output_tokens": 3})
    second = store.create_conversation("Empty one")
    third = store.create_conversation("Failed", model_name="demo")
    store.add_message(third.id, "system", "You are terse.")
    store.add_message(third.id, "user", "hi")
    store.add_message(third.id, "assistant", "", status="error")
    return [first.id, second.id, third.id]


def load_without_stamp(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_text(encoding="utf-8"))
    document.pop("exported")
    return document


# ----- export -------------------------------------------------------------------------------------
def test_json_export_import_export_round_trips(store: Store, tmp_path: Path) -> None:
    populate(store)
    assert export_json(store, tmp_path / "all.json") == 3
    document = load_without_stamp(tmp_path / "all.json")
    assert document["format"] == FORMAT and document["version"] == FORMAT_VERSION
    assert [c["title"] for c in document["conversations"]] == ["Capitals 首都", "Empty one", "Failed"]
    first = document["conversations"][0]
    assert first["model_name"] == "Baichuan2-7B-Chat" and first["settings"]["top_k"] == 5
    assert [m["status"] for m in first["messages"]] == ["complete", "complete", "complete", "stopped"]
    assert first["messages"][1]["metrics"]["decode_tokens_per_s"] == 31.2
    with Store(tmp_path / "other.sqlite3") as other:
        new_ids = import_json(other, tmp_path / "all.json")
        assert len(new_ids) == 3 and other.counts() == store.counts()
        export_json(other, tmp_path / "again.json")
    assert load_without_stamp(tmp_path / "again.json") == document
    # Importing into the same store adds copies under new ids.
    again = import_json(store, tmp_path / "all.json")
    assert store.counts() == (6, 14) and set(again).isdisjoint({1, 2, 3})


def test_export_one_conversation(store: Store, tmp_path: Path) -> None:
    first, _, third = populate(store)
    assert export_json(store, tmp_path / "one.json", [third]) == 1
    document = load_without_stamp(tmp_path / "one.json")
    assert [c["title"] for c in document["conversations"]] == ["Failed"]
    assert [m["role"] for m in document["conversations"][0]["messages"]] == ["system", "user", "assistant"]
    with pytest.raises(ExportError, match="does not exist"):
        export_json(store, tmp_path / "none.json", [first + 100])
    assert not (tmp_path / "none.json").exists()


def test_markdown_export(store: Store, tmp_path: Path) -> None:
    first, _, _ = populate(store)
    assert export_markdown(store, tmp_path / "one.md", [first]) == 1
    text = (tmp_path / "one.md").read_text(encoding="utf-8")
    assert text.startswith("# Capitals 首都\n")
    assert "- Model: Baichuan2-7B-Chat" in text and "temperature 0.3" in text
    assert re.search(r"- Created: \d{4}-\d\d-\d\d \d\d:\d\d UTC", text)
    assert "> Answer briefly.\n> Be kind." in text
    assert "## User\n\nWhat is the capital of France?" in text
    assert "## Assistant\n\nThe capital of France is Paris." in text
    assert "TTFT 0.05 s · prefill 410.5 tok/s · decode 31.2 tok/s" in text
    assert "```python\nprint('北京')\n```" in text and "*stopped · 3 output tokens*" in text
    export_markdown(store, tmp_path / "all.md")
    assert (tmp_path / "all.md").read_text(encoding="utf-8").count("\n---\n") == 2
    assert to_markdown([]) == "\n"


# ----- atomic writes ------------------------------------------------------------------------------
def test_failed_fsync_leaves_old_file_and_no_temp(store: Store, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    populate(store)
    target = tmp_path / "out" / "export.json"
    target.parent.mkdir()
    target.write_text("old content", encoding="utf-8")

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(atomic_write.os, "fsync", no_space)
    with pytest.raises(ExportError, match="No space left"):
        export_json(store, target)
    assert target.read_text(encoding="utf-8") == "old content"
    assert os.listdir(target.parent) == ["export.json"]


def test_failed_replace_leaves_old_file(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    populate(store)
    target = tmp_path / "export.md"
    target.write_text("old", encoding="utf-8")

    def refuse(src: str, dst: str) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")
    monkeypatch.setattr(atomic_write.os, "replace", refuse)
    with pytest.raises(ExportError):
        export_markdown(store, target)
    assert target.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".export.md")) == []


def test_write_cut_short_by_the_os_leaves_old_file(store: Store, tmp_path: Path) -> None:
    """A real failing write: a child process limited to 2 KB files (RLIMIT_FSIZE) exports a large conversation."""
    pytest.importorskip("resource")
    conversation = store.create_conversation("big")
    store.add_message(conversation.id, "user", "x" * 50_000)
    store.close()
    target = tmp_path / "big.json"
    target.write_bytes(b'{"old": true}')
    child = textwrap.dedent(f"""
        import resource, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from gui.export import export_json, ExportError
        from gui.store import Store
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        store = Store({str(tmp_path / "history.sqlite3")!r})
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))
        try:
            export_json(store, {str(target)!r})
        except ExportError as exc:
            print("ExportError:", exc)
            sys.exit(0)
        sys.exit("the export did not fail")
    """)
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "ExportError" in result.stdout
    assert target.read_bytes() == b'{"old": true}'
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".big.json")] == []


def test_replacing_keeps_file_mode(store: Store, tmp_path: Path) -> None:
    populate(store)
    target = tmp_path / "shared.md"
    target.write_text("old", encoding="utf-8")
    target.chmod(0o644)
    export_markdown(store, target)
    assert target.stat().st_mode & 0o777 == 0o644


# ----- import validation --------------------------------------------------------------------------
DEEP: Any = 1
for _ in range(40):
    DEEP = [DEEP]


def valid_document() -> dict[str, Any]:
    message = {"role": "user", "content": "hi", "status": "complete", "metrics": {}, "created": "2025-01-01T00:00:00"}
    return {"format": FORMAT, "version": 1, "conversations": [
        {"title": "a", "messages": [message]},
        {"title": "b", "created": "2025-01-02T03:04:05+08:00", "settings": {"top_p": 0.85}, "messages": [message]},
    ]}


@pytest.mark.parametrize("path, value, message", [
    (("format",), "something-else", "format marker"),
    (("version",), 2, "newer than this app"),
    (("version",), True, "version must be"),
    (("conversations",), {}, "conversations must be an array"),
    (("conversations", 1, "title"), None, r"conversations\[1\].title must be text"),
    (("conversations", 1, "messages", 0, "role"), "robot", r"messages\[0\].role must be one of"),
    (("conversations", 1, "messages", 0, "status"), "done", "status must be one of"),
    (("conversations", 1, "messages", 0, "content"), "\ud800", "unpaired surrogate"),
    (("conversations", 1, "messages", 0, "metrics"), [], "metrics must be an object"),
    (("conversations", 1, "created"), "yesterday", "ISO 8601"),
    (("conversations", 1, "settings"), {"a": DEEP}, "nests deeper"),
])
def test_invalid_import_imports_nothing(store: Store, tmp_path: Path, path: tuple, value: Any,
                                        message: str) -> None:
    populate(store)
    before = store.counts()
    document = valid_document()
    container = document
    for key in path[:-1]:
        container = container[key]
    container[path[-1]] = value
    source = tmp_path / "bad.json"
    source.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ImportFormatError, match=message) as info:
        import_json(store, source)
    assert "\n" not in str(info.value) and isinstance(info.value, ValueError)
    assert store.counts() == before  # the valid first conversation was not imported either


@pytest.mark.parametrize("content", [b"", b"[", b"\xff\xfe\x00", b"NaN", b'{"format": 1e400}', b"[" * 100_000,
                                     b"1" * 5000])
def test_unreadable_json_files(store: Store, tmp_path: Path, content: bytes) -> None:
    source = tmp_path / "bad.json"
    source.write_bytes(content)
    with pytest.raises(ImportFormatError):
        import_json(store, source)
    assert store.counts() == (0, 0)


def test_missing_file_is_an_import_error(store: Store, tmp_path: Path) -> None:
    with pytest.raises(ImportFormatError, match="Cannot read"):
        import_json(store, tmp_path / "absent.json")


def test_import_normalizes_lenient_fields(store: Store, tmp_path: Path) -> None:
    document = valid_document()
    document["conversations"][0]["title"] = "   "
    document["conversations"][0]["messages"][0].update(status="streaming", role="assistant")
    document["conversations"][1]["extra"] = "ignored"
    source = tmp_path / "ok.json"
    source.write_text("\ufeff" + json.dumps(document), encoding="utf-8")  # a BOM is accepted
    first, second = (store.get_conversation(i) for i in import_json(store, source))
    assert first.title == DEFAULT_TITLE and first.messages[0].status == "interrupted"
    assert second.created == "2025-01-01T19:04:05.000000+00:00" and second.settings == {"top_p": 0.85}
    assert first.messages[0].created == "2025-01-01T00:00:00.000000+00:00"


# ----- fuzzing ------------------------------------------------------------------------------------
TEXT = st.text(st.characters(codec="utf-8"), max_size=16)
SCALARS = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=10)
TIMESTAMPS = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1),
                          timezones=st.sampled_from([None, timezone.utc, timezone(timedelta(hours=8)),
                                                     timezone(timedelta(hours=-5, minutes=-30))])
                          ).map(datetime.isoformat)
OBJECTS = st.dictionaries(TEXT, st.recursive(st.none() | st.booleans() | st.integers() | TEXT
                                             | st.floats(allow_nan=False, allow_infinity=False),
                                             lambda inner: st.lists(inner, max_size=3), max_leaves=4), max_size=3)
MESSAGES = st.fixed_dictionaries(
    {"role": st.sampled_from(ROLES), "content": TEXT},
    optional={"status": st.sampled_from(STATUSES), "metrics": OBJECTS, "created": TIMESTAMPS})
CONVERSATIONS = st.fixed_dictionaries(
    {"title": TEXT, "messages": st.lists(MESSAGES, max_size=3)},
    optional={"created": TIMESTAMPS, "updated": TIMESTAMPS, "settings": OBJECTS, "model_name": TEXT})
DOCUMENTS = st.fixed_dictionaries({"format": st.just(FORMAT), "version": st.just(FORMAT_VERSION),
                                   "conversations": st.lists(CONVERSATIONS, max_size=2)})
FUZZ = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                  HealthCheck.filter_too_much], database=None)


SAMPLE_FILES = [json.dumps(document, ensure_ascii=False).encode() for document in (
    {"format": FORMAT, "version": 1, "conversations": []},
    {"format": FORMAT, "version": 1, "conversations": [{"title": "t", "messages": [
        {"role": "user", "content": "你好 \\u0000 </s> <reserved_12>", "status": "complete", "metrics": {"x": 1.5}},
        {"role": "assistant", "content": "hi", "created": "2025-01-01T00:00:00+08:00"}]}]},
)]  # valid exports, cut short and followed by junk bytes in the raw-bytes fuzz


def locations(value: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) inside a JSON value, for mutating one spot of a document."""
    found: list[tuple[Any, Any]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        found.append((value, key))
        found += locations(child)
    return found


@st.composite
def mutated_documents(draw: st.DrawFn) -> Any:
    document = copy.deepcopy(draw(DOCUMENTS))
    spots = locations(document)
    for _ in range(draw(st.integers(1, 3))):
        container, key = draw(st.sampled_from(spots))
        if isinstance(container, dict) and draw(st.booleans()):
            container.pop(key, None)
        elif isinstance(container, list) or key in container:
            container[key] = draw(JSON_VALUES | TEXT | st.sampled_from(["\ud800", "NaN", "2025-13-01", "user"]))
    return document


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory: pytest.TempPathFactory):
    """One store for all fuzz examples, in RAM (/dev/shm) where there is one: the fuzz tests validation and
    atomicity of the transaction, not the disk, and thousands of fsyncs would dominate its time."""
    shm = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() and os.access(shm, os.W_OK) \
        else tmp_path_factory.mktemp("fuzz")
    try:
        with Store(folder / "history.sqlite3") as opened:
            opened.create_conversation("already here")
            yield opened, folder / "input.json"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def import_all_or_nothing(store: Store, source: Path) -> bool:
    """Import; on ImportFormatError nothing changed, on success exactly the document's rows were added."""
    before = store.counts()
    try:
        new_ids = import_json(store, source)
    except ImportFormatError as exc:
        assert "\n" not in str(exc)
        assert store.counts() == before
        event("rejected")
        return False
    conversations = json.loads(source.read_text(encoding="utf-8-sig"))["conversations"]
    assert len(new_ids) == len(conversations)
    assert store.counts() == (before[0] + len(conversations),
                              before[1] + sum(len(c["messages"]) for c in conversations))
    event("imported")
    return True


@settings(max_examples=2500, **FUZZ)
@given(content=st.binary(max_size=200) | TEXT.map(str.encode)
       | st.tuples(st.sampled_from(SAMPLE_FILES), st.integers(0, 10**6), st.binary(max_size=3))
       .map(lambda t: t[0][: t[1] % (len(t[0]) + 1)] + t[2]))
def test_fuzz_import_raw_bytes(fuzz_store: tuple[Store, Path], content: bytes) -> None:
    store, source = fuzz_store
    source.write_bytes(content)
    import_all_or_nothing(store, source)


@settings(max_examples=2500, **FUZZ)
@given(document=JSON_VALUES | st.fixed_dictionaries({"format": st.just(FORMAT), "version": st.just(1),
                                                     "conversations": JSON_VALUES}))
def test_fuzz_import_arbitrary_json(fuzz_store: tuple[Store, Path], document: Any) -> None:
    store, source = fuzz_store
    source.write_text(json.dumps(document), encoding="utf-8")
    import_all_or_nothing(store, source)


@settings(max_examples=3500, **FUZZ)
@given(document=mutated_documents())
def test_fuzz_import_mutated_documents(fuzz_store: tuple[Store, Path], document: Any) -> None:
    store, source = fuzz_store
    source.write_text(json.dumps(document), encoding="utf-8")
    import_all_or_nothing(store, source)


@settings(max_examples=1500, **FUZZ)
@given(document=DOCUMENTS)
def test_fuzz_valid_documents_import_and_round_trip(fuzz_store: tuple[Store, Path], document: Any) -> None:
    store, source = fuzz_store
    source.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    assert import_all_or_nothing(store, source)
    new_ids = import_json(store, source)
    exported = source.with_name("exported.json")
    export_json(store, exported, new_ids)
    first = load_without_stamp(exported)
    for original, stored in zip(document["conversations"], first["conversations"]):
        assert is_copy_title(stored["title"], original["title"].strip() or DEFAULT_TITLE)
        assert [(m["role"], m["content"]) for m in stored["messages"]] == \
            [(m["role"], m["content"]) for m in original["messages"]]
    export_json(store, exported, import_json(store, exported))
    again = load_without_stamp(exported)
    for before, after in zip(first["conversations"], again["conversations"]):  # copies: distinguished
        old, new = before.pop("title"), after.pop("title")
        assert new != old and is_copy_title(new, old)
    assert again == first


def is_copy_title(title: str, original: str) -> bool:
    """The title of an imported conversation: the original, or the original marked as an imported copy."""
    return title == original or re.fullmatch(re.escape(original) + r" \(imported [-0-9: ]{16}\)( \(\d+\))?",
                                             title) is not None
