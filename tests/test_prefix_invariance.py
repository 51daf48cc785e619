"""Same seed, same answer: a position's logits and K/V do not depend on how many positions are computed together
or on what came from the prefix cache (issue 14 §4; inference.cpu.kernels.BATCH_INVARIANT).

Two levels, both on the real engine: the public streaming entry (a seeded, sampled answer is the same token ids
fresh, after a cached prefix, and on a regenerate), and the logits of position t bit for bit from (a) one prefill
of the whole sequence, (b) a prefix prefill then the rest as a cached-suffix prefill, (c) a prefix prefill then
one fused decode step per token. Small RoPE and ALiBi folders with head size 128 (the real models' head size);
bf16 (packed C products), int8, int4 (15-bit activations, integer sums), float32; the demo model where it is installed.
"""
from __future__ import annotations

import pytest
import torch

from inference.engine import Engine, FinishEvent
from testkit.fixtures import write_model_folder
from testkit.markers import needs_demo_model

CONVERSATION = ["Tell me something about the sea and the mountains.", "And what about the rivers, in a few words?"]
MODES = {"bf16": ("bfloat16", None), "int8": ("bfloat16", "int8"), "int4": ("bfloat16", "int4"),
         "fp32": ("float32", None)}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    base = tmp_path_factory.mktemp("invariance")
    return {pe: write_model_folder(base / pe, position_embedding=pe, hidden_size=256, num_heads=2,
                                   intermediate_size=512, num_layers=2, model_max_length=512)
            for pe in ("rope", "alibi")}


def load(folder, mode: str) -> Engine:
    dtype, quantize = MODES[mode]
    engine = Engine.load(folder, device="cpu", dtype=dtype, quantize=quantize)
    if engine.kernels.get("cpu_kernels"):
        assert engine.kernels["batch_invariant"] and engine.kernels["fused_decode"]
    return engine


def answer(engine: Engine, messages: list[dict], seed: int = 1234, tokens: int = 40) -> FinishEvent:
    sampling = engine.default_sampling(do_sample=True, temperature=1.3, top_p=0.95, top_k=0,
                                       repetition_penalty=1.0, seed=seed)
    events = list(engine.stream_chat(messages, tokens, sampling))
    return events[-1]


def second_turn(first: FinishEvent) -> list[dict]:
    return [{"role": "user", "content": CONVERSATION[0]}, {"role": "assistant", "content": first.text},
            {"role": "user", "content": CONVERSATION[1]}]


def check_seeded_answers(make_engine, tokens: int = 40) -> None:
    """Turn two's seeded answer: fresh, after turn one left its prefix in the cache, and regenerated."""
    engine = make_engine()
    first = answer(engine, [{"role": "user", "content": CONVERSATION[0]}], tokens=tokens)
    messages = second_turn(first)
    cached = answer(engine, messages, tokens=tokens)
    regenerated = answer(engine, messages, tokens=tokens)
    fresh = answer(make_engine(), messages, tokens=tokens)
    assert fresh.metrics["cached_prompt_tokens"] == 0
    assert cached.metrics["cached_prompt_tokens"] > 10  # turn one's prompt and answer came from the cache
    assert regenerated.metrics["cached_prompt_tokens"] == regenerated.metrics["prompt_tokens"] - 1
    assert len(fresh.output_ids) >= min(tokens, 10)
    assert cached.output_ids == fresh.output_ids
    assert regenerated.output_ids == fresh.output_ids


@pytest.mark.parametrize("pe, mode", [("rope", "bf16"), ("alibi", "bf16"), ("rope", "int8"), ("alibi", "fp32")])
def test_seeded_answer_is_the_same_fresh_cached_and_regenerated(folders, pe, mode):
    check_seeded_answers(lambda: load(folders[pe], mode))


def caches(model) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(layer.self_attn.k_cache, layer.self_attn.v_cache) for layer in model.model.layers]


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("pe", ["rope", "alibi"])
def test_position_logits_and_kv_are_bitwise_independent_of_the_split(folders, pe, mode):
    model = load(folders[pe], mode).model
    ids = torch.randint(3, model.config.vocab_size, (48,), generator=torch.Generator().manual_seed(7))
    prefix = 29
    for t in (prefix, prefix + 1, prefix + 7, 47):
        whole = model(ids[:t + 1], 0)  # (a) one prefill of t + 1 positions
        kv_whole = [(k[:, :t + 1].clone(), v[:, :t + 1].clone()) for k, v in caches(model)]
        model(ids[:prefix], 0)
        suffix = model(ids[prefix:t + 1], prefix)  # (b) prefix, then the rest with the prefix cached
        model(ids[:prefix], 0)
        for i in range(prefix, t + 1):  # (c) prefix, then one decode step per token
            step = model(ids[i:i + 1], i)
        assert torch.equal(whole, suffix), f"position {t}: prefill vs cached-suffix prefill"
        assert torch.equal(whole, step), f"position {t}: prefill vs decode steps"
        for (k, v), (k0, v0) in zip(caches(model), kv_whole):
            assert torch.equal(k[:, :t + 1], k0) and torch.equal(v[:, :t + 1], v0), f"K/V up to {t}"
    # every row of an all-logits prefill, as each row alone
    rows = model(ids[:40], 0, all_logits=True)
    assert torch.equal(rows[-1], model(ids[:40], 0)) and torch.equal(rows[prefix], model(ids[:prefix + 1], 0))


@needs_demo_model
def test_demo_model_seeded_answer_is_the_same_fresh_cached_and_regenerated():
    check_seeded_answers(lambda: Engine.load(None, device="cpu", dtype="bfloat16", max_seq_len=512), tokens=12)


def test_fast_prefill_switch_turns_batch_invariance_off_at_start():
    """BAICHUAN_CHAT_FAST_PREFILL=1 chooses the faster, order-varying prefill kernels; unset keeps invariance."""
    import os
    import subprocess
    import sys

    code = "from inference.cpu import kernels; print(kernels.BATCH_INVARIANT)"
    env = {k: v for k, v in os.environ.items() if k != "BAICHUAN_CHAT_FAST_PREFILL"}
    default = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    fast = subprocess.run([sys.executable, "-c", code], env={**env, "BAICHUAN_CHAT_FAST_PREFILL": "1"},
                          capture_output=True, text=True, check=True)
    assert (default.stdout.strip(), fast.stdout.strip()) == ("True", "False")
