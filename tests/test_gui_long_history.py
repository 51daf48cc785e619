"""Long histories in the real window: 5,000 messages open fast and lean; older ones load on scroll to the top."""
from __future__ import annotations

import time

import psutil
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from gui_harness import wait_until

from gui.chat_view import INITIAL_WIDGETS, PAGE_WIDGETS
from gui.engine_thread import EngineClient
from gui.store import Conversation, Message, now_iso

MESSAGES = 5000
# The target is 2 s and 300 MB (it took 17 s / 1.57 GB); this CI machine is a slow shared 2-core
# box (here the old code took 101 s / +550 MB), so time gets some room and memory none.
OPEN_LIMIT_S = 4.0
MEMORY_LIMIT_MB = 300


def conversation(count: int) -> Conversation:
    """A long chat of Markdown answers with code, lists and metrics, like real use."""
    answer = ("Here is **how** it works, with `inline code`:\n\n1. first\n2. second\n\n"
              "```python\ndef f(x):\n    return x * 2\n```\n\nThat is all for step {i}.")
    messages = []
    for i in range(count):
        if i % 2 == 0:
            messages.append(Message(0, 0, i, "user", f"Question {i}: what about step {i}?", "complete", {}, now_iso()))
        else:
            metrics = {"ttft_s": 0.1, "decode_tokens_per_s": 20.0, "prompt_tokens": 30, "output_tokens": 40,
                       "finish_reason": "stop"}
            messages.append(Message(0, 0, i, "assistant", answer.format(i=i), "complete", metrics, now_iso()))
    return Conversation(0, "long", now_iso(), now_iso(), {}, "", tuple(messages))


@pytest.fixture
def no_model(loop):
    """A client with nothing loaded: opening history needs no model."""
    client = EngineClient()
    yield client
    client.shutdown()


def settle(rounds: int = 20) -> None:
    for _ in range(rounds):
        QApplication.processEvents()
        time.sleep(0.002)


def wheel_up(view) -> None:
    """One notch of the mouse wheel towards the top, as the user scrolls."""
    position = QPointF(50, 50)
    event = QWheelEvent(position, QPointF(view.viewport().mapToGlobal(QPoint(50, 50))), QPoint(0, 0),
                        QPoint(0, 120), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(view.viewport(), event)


def test_5000_messages_open_fast_and_older_ones_load_at_the_top(open_window, no_model):
    window = open_window(no_model)
    [long_id] = window.store.import_conversations([conversation(MESSAGES)])
    settle()
    process = psutil.Process()
    rss_before = process.memory_info().rss
    started = time.monotonic()
    window.controller.open_conversation(long_id)
    settle(5)
    seconds = time.monotonic() - started
    grown_mb = (process.memory_info().rss - rss_before) / 2**20
    print(f"\n{MESSAGES} messages opened in {seconds:.2f} s, RSS +{grown_mb:.0f} MB")
    view = window.chat
    stored = window.store.get_conversation(long_id).messages
    assert seconds <= OPEN_LIMIT_S and grown_mb <= MEMORY_LIMIT_MB
    assert [w.message_id for w in view.widgets] == [m.id for m in stored[-INITIAL_WIDGETS:]]
    assert view.widgets[-1].text == stored[-1].content and view.widget_for(stored[0].id) is None
    assert view.load_button.isVisible() and f"({MESSAGES - INITIAL_WIDGETS} more)" in view.load_button.text()

    bar = view.verticalScrollBar()
    wait_until(lambda: bar.maximum() > 0 and bar.value() == bar.maximum(), 10, "the view at the bottom")
    bar.setValue(0)
    settle()
    top = view.widgets[0]
    on_screen = top.mapTo(view.widget(), QPoint(0, 0)).y() - bar.value()
    wheel_up(view)  # already at the top: the wheel asks for older messages
    wait_until(lambda: len(view.widgets) == INITIAL_WIDGETS + PAGE_WIDGETS, 10, "older messages")
    settle()
    assert [w.message_id for w in view.widgets[:PAGE_WIDGETS]] == \
        [m.id for m in stored[-INITIAL_WIDGETS - PAGE_WIDGETS:-INITIAL_WIDGETS]]
    moved = top.mapTo(view.widget(), QPoint(0, 0)).y() - bar.value() - on_screen
    assert abs(moved) <= 2, f"the message the user was looking at moved {moved} px"
    view.load_button.click()
    assert len(view.widgets) == INITIAL_WIDGETS + 2 * PAGE_WIDGETS
    assert view.hidden_count == MESSAGES - len(view.widgets)


def test_remove_from_a_message_not_rendered_yet(qtbot):
    from gui.chat_view import ChatView

    view = ChatView()
    qtbot.addWidget(view)
    messages = [(10 + i, "user" if i % 2 == 0 else "assistant", f"m{i}", "complete", {}) for i in range(200)]
    view.set_messages(messages)
    continued = []
    view.continue_requested.connect(continued.append)
    assert view.widget_for(12) is None and len(view.widgets) == INITIAL_WIDGETS
    view.remove_from(150)  # not rendered: it and everything after it go; the newest left get widgets
    assert [w.message_id for w in view.widgets] == list(range(150 - INITIAL_WIDGETS, 150))
    assert view.hidden_count == 140 - INITIAL_WIDGETS and view.load_button.isVisibleTo(view)
    view.remove_from(205)  # a rendered one, as regenerate passes it
    assert view.widgets[-1].message_id == 149 and len(view.widgets) == INITIAL_WIDGETS
    view.remove_from(10)
    assert view.widgets == [] and view.hidden_count == 0 and view.empty_label.isVisibleTo(view)
    assert not view.load_button.isVisibleTo(view)
    cut = view.add_message(300, "assistant", "a b c", "complete", {"finish_reason": "length", "output_tokens": 3})
    cut.continue_button.click()
    assert continued == [300]
