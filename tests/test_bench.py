"""Smoke test of `python -m bench` on a toy model, and of the pieces that make its comparison fair.

No timing assertions: only that every code path runs and the subjects compute the same model.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench import model as bench_model, pairs as bench_pairs, report as bench_report, run as bench
from bench.model import Shape
from bench.random_weights import weight_entries, whole
from inference.modeling.weights import iter_checkpoint
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


def test_streamed_bin_shards_round_trip_through_our_loader(tmp_path):
    """The streaming .bin writer: shards + index as Hugging Face ships them, every tensor equal to what was
    generated, readable by our loader (mmap) and by a plain torch.load (CRCs right)."""
    folder = bench_model.write_bench_folder(tmp_path, TINY, max_shard_bytes=400_000)
    shards = sorted(folder.glob("pytorch_model-*.bin"))
    assert len(shards) >= 2 and (folder / "pytorch_model.bin.index.json").is_file()
    got = dict(iter_checkpoint(folder))
    entries = weight_entries(TINY, torch.bfloat16)
    assert list(got) == [e.name for e in entries]
    for entry in entries:
        assert got[entry.name].dtype == torch.bfloat16 and torch.equal(got[entry.name], whole(entry)), entry.name
    assert torch.isfinite(whole(entries[-1]).float()).all()
    plain = torch.load(shards[0], weights_only=True)  # not mmap'd: zip CRCs checked
    assert torch.equal(plain[entries[0].name], got[entries[0].name])
    engine = Engine.load(folder, device="cpu", dtype="bfloat16")
    logits = engine.model(torch.arange(3, 15), 0, all_logits=True)
    assert torch.isfinite(logits).all() and 0.1 < logits.float().std() < 30


_MEMORY_PROBE = """
import json, sys
from pathlib import Path
from bench import worker
from bench.model import Shape, write_bench_folder
shape = Shape(hidden_size=256, num_layers=48, num_heads=4, intermediate_size=1024, vocab_size=1200,
              model_max_length=256)
worker.reset_peak_rss()
base = worker.rss_bytes()
folder = write_bench_folder(Path(sys.argv[1]), shape)
print(json.dumps({"growth": worker.peak_rss_bytes() - base,
                  "written": sum(f.stat().st_size for f in folder.glob("*.bin"))}))
"""


def test_bin_writer_memory_stays_bounded(tmp_path):
    """~100 MB of bf16 weights (each tensor ≤ 0.5 MB) written with far less memory than the weights: the
    old writer (every weight in float32, then bf16 copies) grew by 3.4× the weights here, this one by ~0.2×."""
    proc = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(tmp_path)], capture_output=True, text=True,
                          cwd=str(Path(__file__).resolve().parent.parent), timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["written"] > 90e6
    assert figures["growth"] < 0.4 * figures["written"], figures


def test_same_phase_ratios_pair_adjacent_subjects():
    names = ["ours-bf16", "ours-int8", "ours-int4", "llamacpp-bf16", "llamacpp-q8_0", "llamacpp-q4_0"]
    order = bench_pairs.order_subjects(names)
    assert sorted(order) == sorted(names)
    adjacent = {p for p in bench_pairs.present_pairs(names) if bench_pairs.adjacent(order, *p)}
    assert {("ours-bf16", "llamacpp-bf16"), ("ours-int8", "llamacpp-q8_0"), ("ours-int4", "llamacpp-q4_0")} <= adjacent
    assert len(adjacent) == 4  # ours-int8 has three partners: one of its pairs cannot be adjacent
    rounds = [{"ours-bf16": {"8x4": {"decode_tokens_per_s": 10.0, "prefill_tokens_per_s": 100.0}},
               "llamacpp-bf16": {"8x4": {"decode_tokens_per_s": 8.0, "prefill_tokens_per_s": 50.0}}},
              {"ours-bf16": {"8x4": {"decode_tokens_per_s": 20.0, "prefill_tokens_per_s": 100.0}},
               "llamacpp-bf16": {"8x4": {"decode_tokens_per_s": 10.0, "prefill_tokens_per_s": 100.0}}},
              {"ours-bf16": {"8x4": {"decode_tokens_per_s": 30.0, "prefill_tokens_per_s": 90.0}},
               "llamacpp-bf16": {"8x4": {"decode_tokens_per_s": 20.0, "prefill_tokens_per_s": 60.0}}}]
    (row,) = bench_pairs.pair_ratios(rounds, ["ours-bf16", "llamacpp-bf16"])
    assert row["pair"] == ("ours-bf16", "llamacpp-bf16") and row["adjacent"]
    assert row["decode_tokens_per_s"]["rounds"] == [1.25, 2.0, 1.5]
    assert row["decode_tokens_per_s"]["median"] == 1.5  # median of per-round ratios, not 20 / 10 of medians
    assert row["prefill_tokens_per_s"]["median"] == 1.5


def test_roofline_counts_kv_cache_bytes():
    shape = Shape(**bench_model.DEFAULT_SHAPE)
    weights = shape.matrix_params() * 2.0
    kv = 2 * 8 * 1024 * 2  # K and V, layers, hidden, bf16
    assert shape.kv_bytes_per_position(2) == kv
    at_2048 = bench_report.roofline_tokens_per_s(33.0, shape, 2.0, context=2048 + 32)
    assert at_2048 == pytest.approx(33e9 / (weights + 2080 * kv))
    assert at_2048 < 0.9 * bench_report.roofline_tokens_per_s(33.0, shape, 2.0)  # KV: 13 % of the bytes at 2048 in
    # a row: prompt + new / 2 positions, the subject's KV element size (fp32: 4 bytes)
    assert bench_report.row_roofline("ours-fp32", shape, 2048, 64, 33.0) == pytest.approx(
        33e9 / (shape.matrix_params() * 4.0 + 2080 * 2 * kv))


def test_seven_b_shape_and_memory_guard():
    args = bench.parse_args(["--shape", "7b"])
    device, shape, shapes, names = bench.choose(args)
    if device == "cpu":
        assert (shape.hidden_size, shape.num_layers, shape.intermediate_size, shape.vocab_size) == \
            (4096, 32, 11008, 125696)
        assert shapes == [(128, 16)] and names[:3] == ["ours-bf16", "ours-int8", "ours-int4"]
    assert 14.5e9 < bench.weight_bytes("ours-bf16", Shape(**bench_model.SHAPE_7B)) < 15.5e9
    assert bench.memory_guard("ours-bf16", TINY) is None
    huge = Shape(hidden_size=1 << 17, num_layers=64, num_heads=1024, intermediate_size=1 << 19, vocab_size=1 << 20)
    assert bench.memory_guard("ours-fp32", huge).startswith("skipped: needs")


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
    assert "| ours int8 weight-only / ours bf16 | 16 → 4 |" in out and "KV cache" in out  # same-phase table
    assert results["per_round"][0]["ours-int8"]["16x4"]["decode_tokens_per_s"] > 0
    assert (tmp_path / "latest.md").read_text().startswith("| engine |")


def test_bench_rejects_bad_options(tmp_path):
    with pytest.raises(SystemExit):
        bench.main(["--tiny", "--out", str(tmp_path), "--shapes", "12by4"])
    with pytest.raises(SystemExit):
        bench.main(["--tiny", "--out", str(tmp_path), "--engines", "nope"])
    with pytest.raises(SystemExit):
        bench.main(["--out", str(tmp_path), "--engines", "ours-bf16", "--shapes", "8x2", "--prefix-shape", "4096,2"])
