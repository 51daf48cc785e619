"""Engine.stream_chat, the one streaming entry: event order, TTFT measured once, no-truncation errors, FIFO queue."""
from __future__ import annotations

import threading
import time

import pytest

from inference.engine import ChatStarted, ContextLengthError, Engine, FinishEvent, TokenEvent
from testkit.fixtures import write_model_folder

QUESTION = [{"role": "user", "content": "hello there, how are you"}]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    folder = write_model_folder(tmp_path_factory.mktemp("model") / "small")
    return Engine.load(folder, device="cpu", dtype="float32")


def greedy(engine):
    return engine.default_sampling(do_sample=False, repetition_penalty=1.0)


def test_events_in_order_and_ttft_measured_once(engine):
    events = list(engine.stream_chat(QUESTION, 12, greedy(engine)))
    started, tokens, finish = events[0], events[1:-1], events[-1]
    chat = engine.encode_chat(QUESTION, 12)
    assert isinstance(started, ChatStarted) and started.input_ids == chat.input_ids
    assert started.budget == chat.budget and started.dropped_rounds == 0
    assert tokens and all(isinstance(e, TokenEvent) for e in tokens) and isinstance(finish, FinishEvent)
    assert [e.token_id for e in tokens] == finish.output_ids
    assert "".join(e.text for e in tokens) == finish.text or finish.text.startswith("".join(e.text for e in tokens))
    assert tokens[0].ttft_s == finish.metrics["ttft_s"] > 0
    assert all(e.ttft_s is None for e in tokens[1:])
    # chat() is the same stream without ChatStarted
    assert [(e.token_id, e.text) for e in engine.chat(QUESTION, 12, greedy(engine)) if isinstance(e, TokenEvent)] \
        == [(e.token_id, e.text) for e in tokens]


def test_no_truncation_names_the_numbers(engine):
    long = [{"role": "user", "content": "hello there " * 40}]
    whole = len(engine.chat_format.build(long, 1, 10**9).input_ids)
    assert 60 < whole < engine.max_seq_len - 40
    with pytest.raises(ContextLengthError) as info:
        next(engine.stream_chat(long, engine.max_seq_len - whole + 1, greedy(engine), truncate=False))
    assert f"maximum context length (MAX_SEQ_LEN) is {engine.max_seq_len} tokens" in str(info.value)
    assert f"requested {engine.max_seq_len + 1} tokens ({whole} in the messages" in str(info.value)
    fits = next(engine.stream_chat(long, engine.max_seq_len - whole, greedy(engine), truncate=False))
    assert len(fits.input_ids) == whole
    # The window's way (truncate=True) still cuts instead of failing.
    assert len(engine.encode_chat(long, engine.max_seq_len - whole + 40).input_ids) < whole


def hold_engine(engine):
    """A generation suspended after its first token: it holds the engine until closed."""
    blocker = engine.stream_chat(QUESTION, 50, greedy(engine))
    next(blocker), next(blocker)
    assert engine.busy and engine.waiting == 0
    return blocker


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_requests_are_served_first_come_first_served(engine):
    blocker = hold_engine(engine)
    finished, spans = [], {}

    def client(i):
        first = None
        for event in engine.stream_chat(QUESTION, 6, greedy(engine)):
            if isinstance(event, TokenEvent) and first is None:
                first = time.monotonic()
            if isinstance(event, FinishEvent):
                spans[i] = (first, time.monotonic())
                finished.append(i)

    threads = []
    for i in range(4):  # each queues behind the previous one: the arrival order is known
        threads.append(threading.Thread(target=client, args=(i,)))
        threads[-1].start()
        wait_for(lambda: engine.waiting == i + 1)
    blocker.close()  # the suspended generation lets go of the engine
    for t in threads:
        t.join(60)
    assert finished == [0, 1, 2, 3]
    for i in range(1, 4):  # one at a time: each starts after the previous one ended
        assert spans[i][0] >= spans[i - 1][1]
    assert engine.waiting == 0 and not engine.busy


def test_a_queued_request_leaves_the_queue_when_cancelled(engine):
    blocker = hold_engine(engine)
    cancel, events = threading.Event(), []
    thread = threading.Thread(target=lambda: events.extend(engine.stream_chat(QUESTION, 6, greedy(engine), cancel)))
    thread.start()
    wait_for(lambda: engine.waiting == 1)
    cancel.set()
    thread.join(2)
    assert not thread.is_alive() and engine.waiting == 0 and engine.busy  # the blocker still answers
    assert isinstance(events[0], ChatStarted) and isinstance(events[-1], FinishEvent) and len(events) == 2
    assert events[-1].finish_reason == "cancelled" and events[-1].output_ids == []
    blocker.close()
    assert not engine.busy
    # An uncontended request with cancel already set behaves as before: one token, then "cancelled".
    done = list(engine.stream_chat(QUESTION, 6, greedy(engine), cancel))
    assert done[-1].finish_reason == "cancelled" and len(done[-1].output_ids) == 1
