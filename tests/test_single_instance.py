"""Two launches on one data folder: the second raises the first's window and exits; the first's live answer is
never marked interrupted and is saved whole; a lock left by a killed instance does not block the next start."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("gui_instance_app.py")
ROOT = SCRIPT.parent.parent


def _env(folder: Path) -> dict:
    return {**os.environ, "BAICHUAN_CHAT_DATA_DIR": str(folder), "QT_QPA_PLATFORM": "offscreen"}


def _start(folder: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(SCRIPT), mode], cwd=ROOT, env=_env(folder), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _read_until(process: subprocess.Popen, prefix: str, timeout: float = 240.0) -> str:
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith(prefix):
            return line.strip()
    process.kill()
    raise AssertionError(f"no {prefix!r} from the app; it printed:\n{''.join(lines)[-3000:]}")


def _answers(folder: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(f"file:{folder / 'history.sqlite3'}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT status, content FROM messages WHERE role = 'assistant'").fetchall()
    finally:
        conn.close()


@pytest.fixture
def first(tmp_path):
    folder = tmp_path / "data"
    process = _start(folder, "stream")
    yield folder, process
    if process.poll() is None:
        process.kill()
    process.wait(30)


def test_second_launch_raises_the_first_and_never_touches_its_answer(first):
    folder, process = first
    _read_until(process, "STREAMING")
    second = subprocess.run([sys.executable, "-m", "gui", "--device", "cpu"], cwd=ROOT, env=_env(folder),
                            capture_output=True, text=True, timeout=90)
    assert second.returncode == 0, second.stdout + second.stderr
    lines = (second.stdout + second.stderr).strip().splitlines()
    assert len(lines) == 1 and "already running" in lines[0] and "raised its window" in lines[0], lines
    _read_until(process, "RAISED", 30)
    assert _answers(folder)[0][0] == "streaming"  # the second launch did not mark the live answer interrupted
    done = _read_until(process, "DONE", 120).split()
    assert process.wait(60) == 0
    ((status, content),) = _answers(folder)
    assert (status, done[2]) == ("stopped", "stopped")
    assert len(content) == int(done[1]) > 0  # everything the first window showed was saved


def test_a_lock_left_by_a_killed_instance_does_not_block_the_next_start(first):
    folder, process = first
    _read_until(process, "STREAMING")
    assert (folder / "instance.lock").exists()
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    again = _start(folder, "quit")
    try:
        assert _read_until(again, "STARTED", 120) == "STARTED recovered=1"  # it opened the history itself
        assert again.wait(60) == 0
    finally:
        if again.poll() is None:
            again.kill()
    assert _answers(folder)[0][0] == "interrupted"
