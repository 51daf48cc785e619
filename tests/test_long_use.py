"""Long use: 200 turns through Engine.chat stay within MAX_SEQ_LEN (old rounds dropped) and memory stays flat."""
from __future__ import annotations

import gc
import time

import psutil
import pytest
import torch

from inference.engine import Engine, FinishEvent
from testkit.fixtures import write_model_folder

MAX_SEQ_LEN = 256
MAX_NEW = 24
TURNS = 200
WARM_UP = 30  # turns before the memory baseline: allocator pools, caches and the history loop settle
RSS_SLACK = 8 * 2**20  # bytes of RSS growth allowed over the last 170 turns (a leaked KV copy per turn is 44 MiB)
#: gc-tracked objects each turn may add: the user and assistant message dicts kept in the history.
OBJECTS_PER_TURN = 2
OBJECT_SLACK = 300


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Engine:
    folder = write_model_folder(tmp_path_factory.mktemp("long") / "model", model_max_length=MAX_SEQ_LEN, seed=11)
    return Engine.load(folder, device="cpu", dtype="float32", max_seq_len=MAX_SEQ_LEN)


def user_text(turn: int) -> str:
    return ["你好，今天天气怎么样？", f"What is {turn} + {turn * 7}?", f"第{turn}轮：讲一个关于猫的故事。",
            "def main():\n    return 0", "Thank you, and why?"][turn % 5]


@pytest.fixture
def one_thread():
    """One intra-op thread: on a busy 2-core machine torch's thread pool makes each tiny step ~10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def live_objects() -> int:
    gc.collect()
    return len(gc.get_objects())


def test_200_turns_stay_in_budget_and_memory_is_flat(engine, one_thread):
    tok = engine.tokenizer
    user, assistant = engine.defaults.user_token_id, engine.defaults.assistant_token_id
    sampling = engine.default_sampling(seed=1234)  # the folder's sampling defaults, seeded
    process = psutil.Process()
    messages: list[dict] = [{"role": "system", "content": "You are brief."}]
    system = tok.encode(messages[0]["content"])
    dropped, started = [], time.perf_counter()
    rss_base = objects_base = None
    for turn in range(TURNS):
        if turn == WARM_UP:
            objects_base, rss_base = live_objects(), process.memory_info().rss
        text = user_text(turn)
        messages.append({"role": "user", "content": text})
        chat = engine.encode_chat(messages, MAX_NEW)
        events = list(engine.chat(messages, MAX_NEW, sampling))
        finish = events[-1]
        assert isinstance(finish, FinishEvent) and finish.finish_reason in ("stop", "length")
        # Within the budget: SEQ_LEN + OUTPUT_SEQ_LEN <= MAX_SEQ_LEN, the prompt is what the chat rule built.
        assert chat.budget["prompt_tokens"] + MAX_NEW <= MAX_SEQ_LEN
        assert finish.metrics["prompt_tokens"] == chat.budget["prompt_tokens"] == len(chat.input_ids)
        assert 1 <= len(finish.output_ids) <= MAX_NEW
        assert len(engine._cached_ids) <= MAX_SEQ_LEN
        # Old rounds go first, whole: the newest question is there in full and the system prompt stays first
        # (Baichuan2's final left cut may take its first token when the history fills its budget exactly).
        newest = [user] + tok.encode(text) + [assistant]
        assert chat.input_ids[-len(newest):] == newest
        first_round = chat.input_ids.index(user)
        assert first_round >= len(system) - 1 and chat.input_ids[:first_round] == system[len(system) - first_round:]
        rounds = turn + 1
        kept = chat.input_ids.count(user)
        assert chat.dropped_rounds == rounds - kept and kept >= 1
        dropped.append(chat.dropped_rounds)
        messages.append({"role": "assistant", "content": finish.text})
        del events, finish, chat
    elapsed = time.perf_counter() - started
    objects_growth = live_objects() - objects_base
    rss_growth = process.memory_info().rss - rss_base
    print(f"{TURNS} turns in {elapsed:.1f}s; dropped rounds at turns 10/50/200: {dropped[9]}/{dropped[49]}/"
          f"{dropped[-1]}; after turn {WARM_UP}: +{objects_growth} gc objects, RSS {rss_growth / 2**20:+.1f} MiB")
    assert dropped[-1] >= TURNS - 20 and dropped[-1] > dropped[49] > dropped[9]  # the window slides
    assert objects_growth <= OBJECTS_PER_TURN * (TURNS - WARM_UP) + OBJECT_SLACK
    assert rss_growth <= RSS_SLACK
