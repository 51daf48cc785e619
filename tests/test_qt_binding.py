"""The pinned Qt binding keeps Python's reference counts: many emits and slot calls leave True/None untouched.

PySide6-Essentials 6.12.0 (as our package index ships it) drops one reference to True per Signal.emit() and
one to None per Python slot call or Python override of a Qt virtual; the process then aborts once a count
reaches zero. Each check runs in a child process so a broken binding fails the test instead of killing pytest.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

CALLS = 20_000  # well past the ~1,500 tokens after which 6.12.0 aborted the app; still < 1 s

_CHILD = textwrap.dedent(f"""
    import sys
    from PySide6.QtCore import QCoreApplication, QEvent, QObject, Signal, Slot

    app = QCoreApplication([])

    class Source(QObject):
        plain = Signal()
        token = Signal(str, int)
        payload = Signal(dict)

    class Sink(QObject):
        def __init__(self):
            super().__init__()
            self.count = 0

        @Slot(str, int)
        def on_token(self, text, token_id):
            self.count += 1

        def on_payload(self, value):  # undecorated Python slot, as many of the app's are
            self.count += 1

        def event(self, event):  # a Python override of a Qt virtual, called by Qt
            self.count += 1
            return super().event(event)

    source, sink = Source(), Sink()
    source.token.connect(sink.on_token)
    source.payload.connect(sink.on_payload)
    true_before, none_before = sys.getrefcount(True), sys.getrefcount(None)
    for i in range({CALLS}):
        source.plain.emit()
        source.token.emit("x", i)
        source.payload.emit({{"i": i}})
        QCoreApplication.sendEvent(sink, QEvent(QEvent.Type.User))
    assert sink.count == 3 * {CALLS}, sink.count
    print(sys.getrefcount(True) - true_before, sys.getrefcount(None) - none_before)
""")


def test_emits_and_slot_calls_keep_true_and_none_refcounts():
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, f"the Qt binding aborted the process (exit {done.returncode}): {done.stderr[-500:]}"
    true_delta, none_delta = (int(x) for x in done.stdout.split())
    # A leak of one reference per call would show as -CALLS or worse; a few stray references are harmless.
    assert abs(true_delta) < 100, f"sys.getrefcount(True) changed by {true_delta} over {CALLS} emits"
    assert abs(none_delta) < 100, f"sys.getrefcount(None) changed by {none_delta} over {CALLS} slot calls"


def test_pinned_binding_is_installed():
    """pyproject pins the binding; a different one in the venv means the refcount check above tested another."""
    from importlib.metadata import version

    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    pins = {d.split("==")[0].lower(): d.split("==")[1] for d in project["project"]["dependencies"] if "==" in d}
    for name in ("pyside6-essentials", "shiboken6"):
        if name not in pins:
            pytest.fail(f"{name} is not pinned in pyproject.toml")
        assert version(name) == pins[name], f"{name} {version(name)} installed, {pins[name]} pinned"
