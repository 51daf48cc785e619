"""Sampling against transformers' own logits processors, seeding, greedy choice and validation."""

from __future__ import annotations

import math
import time

import pytest
import torch
from transformers.generation import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from inference.modeling.config import GenerationDefaults
from inference.errors import InputError
from inference.sampling import Sampler, SamplingParams

VOCAB = 125696


def hf_processed(logits, seen_ids, p: SamplingParams):
    """What transformers' generate() (do_sample) turns the logits into, via its own processor classes."""
    processors = LogitsProcessorList()
    if p.repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(p.repetition_penalty))
    if p.do_sample:
        if p.temperature != 1.0:
            processors.append(TemperatureLogitsWarper(p.temperature))
        if p.top_k != 0:
            processors.append(TopKLogitsWarper(p.top_k))
        if p.top_p < 1.0:
            processors.append(TopPLogitsWarper(p.top_p))
    input_ids = torch.tensor([seen_ids], dtype=torch.long)
    return processors(input_ids, logits.clone()[None])[0]


def assert_same_scores(ours, theirs):
    assert torch.equal(torch.isfinite(ours), torch.isfinite(theirs))
    finite = torch.isfinite(theirs)
    torch.testing.assert_close(ours[finite], theirs[finite], rtol=1e-6, atol=1e-6)


PARAMS = [
    SamplingParams(True, 0.3, 5, 0.85, 1.05),  # Baichuan2's defaults
    SamplingParams(True, 1.0, 0, 1.0, 1.0),  # plain sampling
    SamplingParams(True, 0.7, 0, 0.9, 1.2),  # top-p over the whole vocabulary
    SamplingParams(True, 1.5, 50, 1.0, 0.8),  # penalty below 1 boosts seen tokens
    SamplingParams(True, 0.3, 1, 0.5, 1.05),
    SamplingParams(True, 2.0, 40, 0.2, 1.3),
    SamplingParams(True, 0.9, VOCAB + 10, 0.95, 1.0),  # top_k larger than the vocabulary
]


@pytest.mark.parametrize("params", PARAMS, ids=str)
def test_processing_matches_transformers(params):
    gen = torch.Generator().manual_seed(0)
    for trial, vocab in enumerate((VOCAB, 3000, 3000)):
        logits = torch.randn(vocab, generator=gen) * (1 + 4 * trial)
        seen = torch.randint(0, vocab, (40,), generator=gen).tolist()
        sampler = Sampler(params, vocab)
        sampler.start(seen)
        assert_same_scores(sampler.processed_logits(logits), hf_processed(logits, seen, params))
        assert torch.equal(sampler.penalized(logits), hf_processed(logits, seen, SamplingParams(
            do_sample=False, repetition_penalty=params.repetition_penalty)))


def test_top_k_keeps_ties_like_transformers():
    logits = torch.tensor([5.0, 4.0, 3.0, 3.0, 3.0, 1.0, -2.0, 0.0])
    for top_k in (1, 2, 3, 4, 5):
        params = SamplingParams(True, 1.0, top_k, 1.0, 1.0)
        sampler = Sampler(params, len(logits))
        assert_same_scores(sampler.processed_logits(logits), hf_processed(logits, [], params))
    params = SamplingParams(True, 0.5, 3, 0.9, 1.1)
    sampler = Sampler(params, len(logits))
    sampler.start([2, 6])
    assert_same_scores(sampler.processed_logits(logits), hf_processed(logits, [2, 6], params))


def test_penalty_divides_positive_and_multiplies_negative():
    logits = torch.tensor([2.0, -2.0, 0.0, 1.0])
    sampler = Sampler(SamplingParams(False, repetition_penalty=2.0), 4)
    sampler.start([0, 1, 2, 0])
    assert sampler.penalized(logits).tolist() == [1.0, -4.0, 0.0, 1.0]
    assert logits.tolist() == [2.0, -2.0, 0.0, 1.0]  # the input is not modified


def test_greedy_is_argmax_after_penalty():
    gen = torch.Generator().manual_seed(1)
    params = SamplingParams(do_sample=False, repetition_penalty=1.05)
    sampler = Sampler(params, VOCAB)
    sampler.start([3, 4])
    seen = [3, 4]
    for _ in range(20):
        logits = torch.randn(VOCAB, generator=gen)
        expected = int(torch.argmax(hf_processed(logits, seen, params)))
        assert sampler.pick(logits) == expected
        seen.append(expected)


def test_greedy_penalty_changes_the_choice():
    logits = torch.tensor([1.0, 1.04, 0.5])
    sampler = Sampler(SamplingParams(do_sample=False, repetition_penalty=1.05), 3)
    sampler.start([1])
    assert sampler.pick(logits) == 0
    assert sampler.pick(logits) == 1  # 0 is now penalized too: 1/1.05 < 1.04/1.05


def test_pick_records_ids_for_the_penalty():
    params = SamplingParams(True, 1.0, 0, 1.0, 3.0, seed=5)
    sampler = Sampler(params, 50)
    sampler.start([1, 2])
    logits = torch.linspace(-1, 1, 50)
    seen = [1, 2]
    for _ in range(10):
        seen.append(sampler.pick(logits))
        assert_same_scores(sampler.processed_logits(logits), hf_processed(logits, seen, params))


def draw(params, logits, steps=30, prompt=(1, 2, 3)):
    sampler = Sampler(params, logits.shape[0])
    sampler.start(prompt)
    return [sampler.pick(logits) for _ in range(steps)]


@pytest.mark.parametrize("params", PARAMS[:4], ids=str)
def test_same_seed_same_tokens(params):
    logits = torch.randn(5000, generator=torch.Generator().manual_seed(3))
    seeded = SamplingParams(**{**params.__dict__, "seed": 1234})
    first = draw(seeded, logits)
    assert draw(seeded, logits) == first
    sampler = Sampler(seeded, 5000)  # start() reseeds: a second generation repeats the first
    sampler.start((1, 2, 3))
    again = [sampler.pick(logits) for _ in range(30)]
    sampler.start((1, 2, 3))
    assert [sampler.pick(logits) for _ in range(30)] == again == first


def test_different_or_no_seed_varies():
    logits = torch.zeros(1000)
    params = SamplingParams(True, 1.0, 0, 1.0, 1.0)
    assert draw(SamplingParams(**{**params.__dict__, "seed": 1}), logits) != \
        draw(SamplingParams(**{**params.__dict__, "seed": 2}), logits)
    sampler = Sampler(params, 1000)
    sampler.start([])
    assert sampler.seed is not None and 0 <= sampler.seed < 2**64


def test_draws_follow_the_processed_distribution():
    logits = torch.tensor([2.0, 1.5, 1.0, 0.5, 0.0, -1.0, -3.0, 0.2])
    params = SamplingParams(True, 0.8, 6, 0.9, 1.0, seed=99)
    expected = torch.softmax(hf_processed(logits, [], params), dim=-1)
    sampler = Sampler(params, len(logits))
    counts = torch.zeros(len(logits))
    n = 6000
    for _ in range(n):
        counts[sampler.pick(logits)] += 1
    assert torch.all(counts[expected == 0] == 0)
    assert torch.allclose(counts / n, expected, atol=0.025)


def test_pick_is_fast_on_full_vocabulary():
    """Baichuan2's defaults (top_k=5) need no full sort: well under a millisecond or two per token.

    One torch thread: on a busy two-core machine, thread hand-offs, not the work, dominate timings.
    """
    logits = torch.randn(VOCAB)
    sampler = Sampler(SamplingParams(True, 0.3, 5, 0.85, 1.05, seed=0), VOCAB)
    sampler.start(range(0, 4000, 3))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sampler.pick(logits)
        start = time.perf_counter()
        for _ in range(50):
            sampler.pick(logits)
        elapsed = (time.perf_counter() - start) / 50
    finally:
        torch.set_num_threads(threads)
    assert elapsed < 0.02


def test_from_defaults_and_overrides():
    defaults = GenerationDefaults()
    params = SamplingParams.from_defaults(defaults)
    assert params == SamplingParams(True, 0.3, 5, 0.85, 1.05, None)
    params = SamplingParams.from_defaults(defaults, do_sample=False, top_k=None, seed=7)
    assert params.do_sample is False and params.top_k == 5 and params.seed == 7
    with pytest.raises(TypeError):
        SamplingParams.from_defaults(defaults, temprature=1.0)


@pytest.mark.parametrize("changes, match", [
    ({"temperature": 0}, "temperature must be a number from"),
    ({"temperature": -1.0}, "temperature"),
    ({"temperature": 1e-300}, "temperature must be a number from 0.0001"),
    ({"temperature": math.inf}, "temperature"),
    ({"top_k": -1}, "top_k must be an integer of at least 0"),
    ({"top_k": 2.5}, "top_k"),
    ({"top_p": 0}, "top_p must be a number greater than 0 and at most 1"),
    ({"top_p": 1.01}, "top_p"),
    ({"top_p": math.nan}, "top_p"),
    ({"repetition_penalty": 0}, "repetition_penalty must be a number greater than 0"),
    ({"seed": -1}, "seed must be an integer from 0"),
    ({"seed": 2**64}, "seed"),
    ({"seed": 1.5}, "seed"),
    ({"do_sample": "yes"}, "do_sample"),
])
def test_validation(changes, match):
    params = SamplingParams(**{**SamplingParams().__dict__, **changes})
    with pytest.raises(InputError, match=match):
        params.validate()
    with pytest.raises(InputError, match=match):
        Sampler(params, 10)


def test_greedy_ignores_temperature():
    SamplingParams(do_sample=False, temperature=0).validate()


def test_bad_prompt_ids_and_logits():
    sampler = Sampler(SamplingParams(), 10)
    with pytest.raises(InputError, match="outside the vocabulary"):
        sampler.start([3, 10])
    with pytest.raises(ValueError):
        sampler.pick(torch.zeros(11))
