"""Tensor parallel over two CPU processes (gloo) gives the one-device model's greedy tokens and logits.

fp32 throughout; the C kernels stay on (float32 products, C decode attention per rank). Logits of the split
model differ from one device only by summation order (two partial sums added by the all-reduce): the
tolerance is 2e-5 absolute on logits of unit scale. Folders: RoPE and ALiBi, 40 heads split in two (13B's
head count: non-power-of-two slopes, 20 per rank), an odd vocabulary (the last rank's slice padded),
NormHead on, weights as .bin, safetensors and sharded files of both kinds.
"""
from __future__ import annotations

import threading

import pytest
import torch

from inference.engine import Engine
from testkit.fixtures import write_model_folder

IDS = [195, 31, 47, 59, 61, 67, 71, 73, 79, 83, 196]
TOLERANCE = 2e-5

FOLDERS = {
    "rope-safetensors": dict(position_embedding="rope", weights_format="safetensors"),
    "alibi40-bin": dict(position_embedding="alibi", num_heads=40, hidden_size=160, weights_format="bin"),
    "alibi40-sharded-safetensors-odd-vocab": dict(position_embedding="alibi", num_heads=40, hidden_size=160,
                                                  vocab_size=999, weights_format="sharded-safetensors"),
    "rope-sharded-bin": dict(position_embedding="rope", weights_format="sharded-bin", num_layers=3),
}


def greedy(engine):
    return engine.default_sampling(do_sample=False, repetition_penalty=1.0)


def answer(engine, ids, max_new=12, cancel=None):
    return list(engine.generate(ids, max_new, greedy(engine), cancel))[-1]


@pytest.mark.parametrize("name", list(FOLDERS))
def test_split_model_matches_one_device(tmp_path, name):
    folder = write_model_folder(tmp_path / name, **FOLDERS[name])
    one = Engine.load(folder, device="cpu", dtype="float32")
    two = Engine.load(folder, device="cpu", dtype="float32", tensor_parallel=2)
    try:
        assert two.info()["tensor_parallel"] == 2 and two.config.vocab_size == one.config.vocab_size
        ids = torch.tensor(IDS)
        expected, got = one.model(ids, 0, True), two.model(ids, 0, True)
        assert got.shape == expected.shape
        assert (got - expected).abs().max().item() < TOLERANCE
        assert answer(two, IDS).output_ids == answer(one, IDS).output_ids
    finally:
        two.close()


def test_prefix_cache_and_cancel_across_ranks(tmp_path):
    """Rank 0 decides what the KV cache reuses and when to stop; the workers' caches follow."""
    folder = write_model_folder(tmp_path / "m", position_embedding="alibi", num_heads=40, hidden_size=160)
    one = Engine.load(folder, device="cpu", dtype="float32")
    two = Engine.load(folder, device="cpu", dtype="float32", tensor_parallel=2)
    try:
        first_one, first_two = answer(one, IDS), answer(two, IDS)
        assert first_two.output_ids == first_one.output_ids
        follow_up = IDS + first_one.output_ids + [195, 101, 103, 196]
        again_one, again_two = answer(one, follow_up), answer(two, follow_up)
        assert again_two.metrics["cached_prompt_tokens"] == again_one.metrics["cached_prompt_tokens"] > len(IDS)
        assert again_two.output_ids == again_one.output_ids

        cancel = threading.Event()
        seen = []
        for event in two.generate(follow_up + [7], 40, greedy(two), cancel):
            seen.append(event)
            if len(seen) == 3:
                cancel.set()
        assert seen[-1].finish_reason == "cancelled" and len(seen[-1].output_ids) == 3
        # the ranks stayed in step: a branch from an earlier point of the cache still matches one device
        branch = IDS + [5, 9, 196]
        assert answer(two, branch).output_ids == answer(one, branch).output_ids
    finally:
        two.close()
