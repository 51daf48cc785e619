"""Subprocess for test_crash_safety: writes finished messages, then streams an answer into the store until killed."""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gui.store import Store  # noqa: E402

FINISHED_PAIRS = [("What is 2 + 2?", "4."), ("用中文说你好。", "你好！"), ("Name a prime.", "7 is prime.")]
SYNTHETIC_WORDS = "the quick brown fox jumps over the lazy dog 天气 很好 ".split(" ")
QUESTION = "Write a very long story about a dragon who learns to paint, with many chapters."


def say(kind: str, message_id: int, text: str) -> None:
    """One line the test reads: KIND <message id> <JSON text>; printed only after the commit."""
    print(kind, message_id, json.dumps(text), flush=True)


def synthetic_events() -> Iterator[tuple[str, object]]:
    """An endless deterministic 'answer': ('token', text) events that never finish."""
    for i in itertools.count():
        time.sleep(0.002)
        yield "token", SYNTHETIC_WORDS[i % len(SYNTHETIC_WORDS)] + " "


def engine_events(engine, history: list[dict]) -> Iterator[tuple[str, object]]:
    """A real engine answer: ('token', text) events, then ('finish', FinishEvent)."""
    from inference.engine import FinishEvent
    for event in engine.chat(history, max_new_tokens=512):
        yield ("finish", event) if isinstance(event, FinishEvent) else ("token", event.text)


def stream_answer(store: Store, conversation_id: int, events: Iterator[tuple[str, object]], every_s: float) -> str:
    """What the GUI does: begin an answer, save its partial text at most every `every_s` seconds, and
    commit it whole when it ends; returns the final text."""
    message = store.begin_assistant_message(conversation_id)
    text, last = "", time.monotonic()
    for kind, value in events:
        if kind == "finish":
            store.finish_message(message.id, value.text, "complete", value.metrics)
            say("FINISHED", message.id, value.text)
            return value.text
        text += value
        if time.monotonic() - last >= every_s and text:
            store.update_streaming_content(message.id, text)
            say("PARTIAL", message.id, text)
            last = time.monotonic()
    raise AssertionError("the event stream ended without a finish event")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("--source", choices=("synthetic", "engine"), default="synthetic")
    parser.add_argument("--every", type=float, default=0.05)
    args = parser.parse_args()
    engine = None
    if args.source == "engine":
        try:
            from inference.engine import Engine
            engine = Engine.load(None, max_seq_len=1024)
        except Exception as exc:  # the engine is optional for this test; report why and stop
            print("ENGINE-UNAVAILABLE", " ".join(f"{type(exc).__name__}: {exc}".split())[:300], flush=True)
            return 3
    store = Store(args.db)
    conversation = store.create_conversation("Crash test", model_name=engine.name if engine else "synthetic")
    history: list[dict] = []
    for question, answer in FINISHED_PAIRS:
        for role, text in (("user", question), ("assistant", answer)):
            say("FINISHED", store.add_message(conversation.id, role, text).id, text)
            history.append({"role": role, "content": text})
    if engine is not None:  # one real, finished engine answer with its metrics
        question = "What is the capital of France?"
        say("FINISHED", store.add_message(conversation.id, "user", question).id, question)
        *_, finish = engine.chat(history + [{"role": "user", "content": question}], max_new_tokens=8)
        say("FINISHED", store.add_message(conversation.id, "assistant", finish.text, metrics=finish.metrics).id,
            finish.text)
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": finish.text}]
    question = QUESTION
    while True:  # an answer that ends before the kill is committed, and the conversation goes on
        user = store.add_message(conversation.id, "user", question)
        say("FINISHED", user.id, question)
        history.append({"role": "user", "content": question})
        events = engine_events(engine, history) if engine is not None else synthetic_events()
        history.append({"role": "assistant", "content": stream_answer(store, conversation.id, events, args.every)})
        question = "Go on."


if __name__ == "__main__":
    sys.exit(main())
