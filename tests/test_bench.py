"""Smoke test of `python -m bench` on a toy model, and of the pieces that make its comparison fair.

No timing assertions: only that every code path runs and the subjects compute the same model.
"""
from __future__ import annotations

import json

import pytest
import torch

from bench import model as bench_model, report as bench_report, run as bench
from bench.model import Shape
from inference.engine import Engine
from inference.text.tokenizer import SentencePieceTokenizer

TINY = Shape(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128, vocab_size=1200,
             model_max_length=256)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return bench_model.write_bench_folder(tmp_path_factory.mktemp("bench"), TINY)


def test_bench_folder_has_the_shape_and_a_padded_tokenizer(folder):
    config = json.loads((folder / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]) == (64, 2, 1200)
    assert SentencePieceTokenizer(folder / "tokenizer.model").vocab_size == 1200
    assert bench_model.write_bench_folder(folder.parent, TINY) == folder  # reused, not rewritten
    engine = Engine.load(folder, device="cpu", dtype="float32")
    assert engine.config.norm_head and engine.config.position_embedding == "rope"


def test_transformers_subject_computes_the_same_model(folder):
    """The bench's LlamaForCausalLM (W_pack split, lm_head normalised) gives our engine's logits."""
    engine = Engine.load(folder, device="cpu", dtype="float32")
    ids = torch.randint(3, 1200, (12,), generator=torch.Generator().manual_seed(0))
    ours = engine.model(ids, 0, all_logits=True)
    with torch.no_grad():
        theirs = bench_model.hf_llama(folder, torch.float32)(ids[None]).logits[0].float()
    assert torch.allclose(ours, theirs, atol=1e-4, rtol=1e-4)


def test_gguf_writer_names_every_tensor(folder, tmp_path):
    gguf = pytest.importorskip("gguf")
    path = bench_model.write_gguf(folder, tmp_path / "m.gguf", "BF16")
    reader = gguf.GGUFReader(str(path))
    names = {t.name for t in reader.tensors}
    assert {"token_embd.weight", "output.weight", "output_norm.weight", "blk.1.attn_q.weight",
            "blk.1.ffn_down.weight"} <= names
    assert len(names) == 3 + 9 * TINY.num_layers


def test_roofline_arithmetic():
    shape = Shape(**bench_model.DEFAULT_SHAPE)
    assert shape.matrix_params() == 8 * (4 * 1024 * 1024 + 3 * 1024 * 2816) + 125696 * 1024
    # the figure: about 70 tok/s at bf16 for 33 GB/s on this shape
    assert 65 < bench_report.roofline_tokens_per_s(33.0, shape, 2.0) < 75
    assert bench_report.roofline_tokens_per_s(33.0, shape, (2.0, 2.0)) == bench_report.roofline_tokens_per_s(33.0, shape, 2.0)
    # int4 layers with an int8 head: slower than if the head were int4 too, faster than all int8
    int4 = bench_report.roofline_tokens_per_s(33.0, shape, (20 / 32, 1.0))
    assert bench_report.roofline_tokens_per_s(33.0, shape, 1.0) < int4 < bench_report.roofline_tokens_per_s(33.0, shape, 20 / 32)


def test_bench_runs_end_to_end_on_a_toy_model(tmp_path, capsys):
    code = bench.main(["--tiny", "--out", str(tmp_path), "--repeats", "1",
                       "--engines", "ours-bf16,ours-int8,hf-fp32"])
    out = capsys.readouterr().out
    assert code == 0, out
    results = json.loads((tmp_path / "latest.json").read_text())
    assert set(results["subjects"]) == {"ours-bf16", "ours-int8", "hf-fp32"}
    for name, res in results["subjects"].items():
        row = res["shapes"]["16x4"]
        assert row["ttft_s"] > 0 and row["decode_tokens_per_s"] > 0 and res["peak_rss"] > 0, name
        assert row["bandwidth_GBps"] > 0, name  # the read probe beside each row's runs
    assert results["subjects"]["ours-bf16"]["prefix_cache"]["cached_tokens"] > 0
    wide = results["prefix_cache_wide"]  # the prefix cache on the second (wider) model
    assert wide["cached_tokens"] > 0 and wide["shape"]["hidden_size"] == 128 and wide["ratio"] > 0
    assert results["bandwidth"]["bandwidth_GBps"] > 0
    assert "| ours | bf16 |" in out and "Prefix cache" in out
    assert (tmp_path / "latest.md").read_text().startswith("| engine |")


def test_bench_rejects_bad_options(tmp_path):
    with pytest.raises(SystemExit):
        bench.main(["--tiny", "--out", str(tmp_path), "--shapes", "12by4"])
    with pytest.raises(SystemExit):
        bench.main(["--tiny", "--out", str(tmp_path), "--engines", "nope"])
    with pytest.raises(SystemExit):
        bench.main(["--out", str(tmp_path), "--engines", "ours-bf16", "--shapes", "8x2", "--prefix-shape", "4096,2"])
