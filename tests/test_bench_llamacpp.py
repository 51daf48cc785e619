"""The benchmark's llama.cpp subject computes our model: the GGUF conversion (q/k rotary permutation, NormHead,
vocabulary) checked against our engine's float32 logits. Skipped where llama-cpp-python is not installed
(`make llamacpp` installs it); the rest of the suite never needs it.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bench import model as bench_model, worker as bench_worker
from bench.model import Shape
from inference.engine import Engine

try:
    import llama_cpp
except (ImportError, OSError) as exc:  # not installed, or its shared library does not load here
    pytest.skip(f"llama-cpp-python unavailable: {exc}", allow_module_level=True)
pytest.importorskip("gguf")

TINY = Shape(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128, vocab_size=1200,
             model_max_length=256)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return bench_model.write_bench_folder(tmp_path_factory.mktemp("bench-llamacpp"), TINY)


def _llama(path, **kwargs):
    return llama_cpp.Llama(model_path=str(path), n_ctx=256, n_threads=2, verbose=False, **kwargs)


@pytest.mark.parametrize("kind, tolerance", [("F32", 2e-3), ("BF16", 2e-2)])
def test_gguf_gives_our_logits(folder, tmp_path, kind, tolerance):
    """Every position's logits, prompt evaluated at once. F32 differs from ours only by llama.cpp's F16 KV
    cache (~2e-4 here); BF16 also rounds activations (~5e-3). A wrong rotary permutation gives ~0.2."""
    ids = torch.randint(3, TINY.vocab_size, (24,), generator=torch.Generator().manual_seed(0)).tolist()
    with torch.no_grad():
        ours = Engine.load(folder, device="cpu", dtype="float32").model(torch.tensor(ids), 0, all_logits=True)
    ours = ours.float().numpy()
    llm = _llama(bench_model.write_gguf(folder, tmp_path / f"m-{kind}.gguf", kind), logits_all=True)
    llm.eval(ids)
    theirs = np.asarray(llm.scores[: len(ids)])
    assert np.linalg.norm(theirs - ours) / np.linalg.norm(ours) < tolerance
    assert np.abs(theirs - ours).max() / np.abs(ours).max() < 2 * tolerance
    assert (theirs.argmax(-1) == ours.argmax(-1)).all()


def test_gguf_vocabulary_tokenizes_as_ours(folder, tmp_path):
    from inference.text.tokenizer import SentencePieceTokenizer

    llm = _llama(bench_model.write_gguf(folder, tmp_path / "m.gguf", "Q8_0"), vocab_only=True)
    ours = SentencePieceTokenizer(folder / "tokenizer.model")
    for text in ["The capital of France is Paris.", "Hello\nworld 你好  x", " leading space"]:
        ids = llm.tokenize(text.encode(), add_bos=False)
        assert ids == ours.encode(text)
        assert llm.detokenize(ids).decode() == text


def test_runner_takes_prompts_longer_than_a_batch(folder, tmp_path):
    """run_llamacpp as the bench calls it, with a prompt over n_batch (512) tokens."""
    path = bench_model.write_gguf(folder, tmp_path / "m-F32.gguf", "F32")
    spec = {"gguf": str(path), "gguf_type": "F32", "threads": 2, "max_seq_len": 1024, "shapes": [[600, 3]],
            "repeats": 1}
    result = bench_worker.run_llamacpp(spec)
    row = result["shapes"]["600x3"]
    assert row["prefill_tokens_per_s"] > 0 and row["decode_tokens_per_s"] > 0
    assert result["weight_bytes"] > 0 and result["kv_cache_bytes"] == 2 * 2 * 1024 * 64 * 2  # K+V, layers, n_ctx, hidden, F16


@pytest.mark.parametrize("kind", ["Q4_0", "Q4_1"])
def test_q4_gguf_is_quantized_by_llamacpp_and_close_to_ours(folder, tmp_path, kind):
    """The Q4 GGUFs come from llama.cpp's quantizer (via the BF16 GGUF written beside them): matrices in the
    type, and logits near ours (4-bit rounding: 0.15 relative measured here, BF16 0.003; the rotary layout
    itself is checked at F32 / BF16 above)."""
    import gguf

    path = bench_model.write_gguf(folder, tmp_path / f"m-{kind}.gguf", kind)
    assert (tmp_path / f"{folder.name}-BF16.gguf").is_file()
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(path)).tensors}
    assert types["blk.0.ffn_down.weight"] == kind and types["blk.1.attn_q.weight"] == kind
    ids = torch.randint(3, TINY.vocab_size, (24,), generator=torch.Generator().manual_seed(0)).tolist()
    with torch.no_grad():
        ours = Engine.load(folder, device="cpu", dtype="float32").model(torch.tensor(ids), 0, all_logits=True)
    llm = _llama(path, logits_all=True)
    llm.eval(ids)
    theirs = np.asarray(llm.scores[: len(ids)])
    assert np.linalg.norm(theirs - ours.numpy()) / np.linalg.norm(ours.numpy()) < 0.3
