"""GUI test harness: a qasync loop, one demo-model EngineClient per session, windows over temp histories."""
from __future__ import annotations

import asyncio
import time
from contextlib import contextmanager

import pytest
import qasync
from PySide6.QtCore import QEvent, QEventLoop, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QApplication, QDialog

DEMO_DTYPE = "float32"  # fastest on CPU, and the reference answers use the very same engine
DEMO_MAX_SEQ_LEN = 1024


def wait_until(predicate, timeout: float = 120.0, what: str = "condition") -> None:
    """Spin the Qt (and so the qasync) loop until predicate() is true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 10)
        time.sleep(0.005)  # QTest.qWait keeps the GIL: the worker thread would crawl


@contextmanager
def running(loop):
    """Make the qasync loop the running asyncio loop of this thread, only for the GUI code inside."""
    previous = asyncio.events._get_running_loop()
    asyncio.events._set_running_loop(loop)
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        asyncio.events._set_running_loop(previous)


def run_async(coroutine, timeout: float = 60.0):
    """Run a coroutine on the running qasync loop and return its result."""
    task = asyncio.ensure_future(coroutine)
    wait_until(task.done, timeout, "the coroutine")
    return task.result()


@pytest.fixture(scope="session")
def qasync_loop(qapp):
    loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.events._set_running_loop(None)  # other tests may call asyncio.run(): running only inside GUI tests
    yield loop
    with running(loop):
        loop.stop()
    loop.close()


@pytest.fixture
def loop(qasync_loop):
    with running(qasync_loop):
        yield qasync_loop


@pytest.fixture(scope="session")
def demo_client(qasync_loop):
    """An EngineClient whose worker has loaded the demo model (once for the whole session)."""
    from gui.engine_thread import EngineClient

    with running(qasync_loop):
        client = EngineClient()
        future = client.load(None, "cpu", DEMO_DTYPE, DEMO_MAX_SEQ_LEN)
        wait_until(future.done, 900, "the demo model to load")
        future.result()
    yield client
    client.shutdown()


@pytest.fixture
def engine(demo_client):
    """The worker's own Engine, for reference answers (only while the worker is idle)."""
    return demo_client.worker._engine


@pytest.fixture
def open_window(loop, data_dir, request):
    """Factory: a shown MainWindow over a Store in the test's data dir; by default on the shared demo client."""
    from gui.main_window import MainWindow
    from gui.paths import history_path
    from gui.store import Store

    opened = []

    def factory(client=None):
        client = client or request.getfixturevalue("demo_client")
        store = Store(history_path())
        window = MainWindow(store, client, owns_client=False)
        window.show()
        opened.append((window, store))
        wait_until(window.isVisible, 10, "the window")
        return window

    yield factory
    for window, store in opened:
        window.close()
        store.close()
        window.deleteLater()
    # A message box a test left open (e.g. "The answer failed") must not be found by the next test's checks.
    for widget in QApplication.topLevelWidgets():
        if isinstance(widget, QDialog) and widget.isVisible():
            widget.close()
    QApplication.processEvents()


@pytest.fixture
def listen():
    """listen(signal, slot): connect for this test only (the shared client outlives the test's window)."""
    connections = []

    def connect(signal, slot):
        signal.connect(slot)
        connections.append((signal, slot))

    yield connect
    for signal, slot in connections:
        signal.disconnect(slot)


def set_greedy(window, max_new_tokens: int) -> None:
    panel = window.settings_panel
    panel.do_sample.setChecked(False)
    panel.repetition.set_value(1.0)
    panel.max_new.set_value(max_new_tokens)


def type_text(widget, text: str) -> None:
    """Key events carrying each character (QTest.keyClicks aborts on characters outside Latin-1)."""
    for char in text:
        for kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
            QApplication.sendEvent(widget, QKeyEvent(kind, Qt.Key.Key_unknown, Qt.KeyboardModifier.NoModifier, char))


def type_and_send(qtbot, window, text: str) -> None:
    """Type like a user into the input box and press Enter."""
    window.input.setFocus()
    type_text(window.input, text)
    qtbot.keyClick(window.input, Qt.Key.Key_Return)


def wait_answer(window, timeout: float = 180.0) -> None:
    wait_until(lambda: not window.controller.answering, timeout, "the answer to finish")


_references: dict = {}


def reference_answer(engine, messages: list[dict], max_new_tokens: int, sampling=None):
    """The engine's own answer (FinishEvent) for these chat messages (computed once per session)."""
    from inference.engine import FinishEvent
    from inference.sampling import SamplingParams

    sampling = sampling or SamplingParams(do_sample=False, temperature=1.0, top_k=0, top_p=1.0,
                                          repetition_penalty=1.0)
    key = (repr(messages), max_new_tokens, sampling, id(engine))
    if key not in _references:
        events = list(engine.chat(messages, max_new_tokens, sampling))
        assert isinstance(events[-1], FinishEvent)
        _references[key] = events[-1]
    return _references[key]
