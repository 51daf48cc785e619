"""The history refuses writes during an answer (a really full disk, or a read-only database): the real window
keeps the streamed text, shows ONE non-modal notice (no dialogs), keeps a question it could not store in the
input box, and writes the answer once the history takes writes again."""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication, QMessageBox

from gui_harness import set_greedy, type_and_send, wait_answer, wait_until

PROMPT = "Write a long story about a dragon who learns to paint."


class FullDisk:
    """A 16 MiB tmpfs as the data folder, filled to the last byte on demand (needs root to mount)."""

    def __init__(self, mount: Path):
        self.mount, self.filler = mount, mount / "filler"

    def fill(self, _window) -> None:
        with open(self.filler, "wb", buffering=0) as handle:
            try:
                while True:
                    handle.write(b"\0" * 4096)
            except OSError:
                pass
        assert shutil.disk_usage(self.mount).free < 8192

    def free(self, _window) -> None:
        self.filler.unlink()


class ReadOnlyHistory:
    """The history's connection set read-only (PRAGMA query_only): sqlite itself refuses every write."""

    def fill(self, window) -> None:
        window.store._conn.execute("PRAGMA query_only = ON")

    def free(self, window) -> None:
        window.store._conn.execute("PRAGMA query_only = OFF")


@pytest.fixture(params=["full-disk", "read-only"])
def refusal(request, tmp_path, monkeypatch, data_dir):
    if request.param == "read-only":
        yield ReadOnlyHistory()
        return
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (the read-only case still runs)")
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    monkeypatch.setenv("BAICHUAN_CHAT_DATA_DIR", str(mount / "data"))  # after data_dir set its own
    yield FullDisk(mount)
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _stored_answers(window) -> list[tuple[str, str]]:
    conn = sqlite3.connect(f"file:{window.store.path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT content, status FROM messages WHERE role = 'assistant'").fetchall()
    finally:
        conn.close()


def _dialogs() -> list:
    return [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]


def test_refused_writes_keep_the_answer_and_the_question_then_save_them(refusal, open_window, qtbot):
    window = open_window()
    controller, notice = window.controller, window.budget.save_notice
    set_greedy(window, 60)
    problems = []
    controller.saver.problem.connect(problems.append)
    type_and_send(qtbot, window, PROMPT)
    wait_until(lambda: controller.answer is not None and controller.answer.text, 120, "the first token")
    refusal.fill(window)
    wait_answer(window)
    shown = controller.messages[-1].content
    assert len(shown) > 30 and controller.view.widgets[-1].text == shown
    ((kept, status),) = _stored_answers(window)  # only what was saved before the history refused writes
    assert status == "streaming" and shown.startswith(kept) and len(kept) < len(shown)
    assert len(problems) == 1 and not _dialogs()  # one notice for every failed save, no dialog
    assert notice.isVisible() and "kept in this window" in notice.text()

    type_and_send(qtbot, window, "And then what happened?")
    wait_until(lambda: not controller.answering, 30, "the send to give up")
    assert window.input.toPlainText() == "And then what happened?"  # not stored, so not lost
    assert "could not be saved" in notice.text() and not _dialogs()
    assert [m.role for m in controller.messages] == ["user", "assistant"]

    refusal.free(window)
    wait_until(lambda: _stored_answers(window)[0][1] != "streaming", 10, "the kept answer to be written")
    assert _stored_answers(window) == [(shown, "complete")]
    wait_until(lambda: not notice.isVisible(), 5, "the notice to go")
    assert len(problems) == 1 and not _dialogs()
