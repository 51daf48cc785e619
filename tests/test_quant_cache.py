"""The quantized cache: a second int8 / int4 load reads the cached tensors (no quantization, same logits bit for
bit), a changed weight file or a corrupted cache file means quantizing again, and `cache list / clear`."""
from __future__ import annotations

import os

import pytest
import torch

from inference import quant_cache_dir as store
from inference.cli.main import main
from inference.cpu import int4, int8
from inference.engine import Engine
from testkit.fixtures import write_model_folder

PROMPT = [5, 17, 42, 99, 7, 300]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_model_folder(tmp_path_factory.mktemp("qcache") / "model", hidden_size=128, num_heads=4,
                              intermediate_size=320, seed=7)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("BAICHUAN_CHAT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "quantized"


@pytest.fixture
def quantizations(monkeypatch):
    """Counts the calls of the int8 and int4 row quantizers (a cache hit makes none)."""
    calls = []
    for module, name in ((int8, "quantize_rows"), (int4, "quantize_groups")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _real=real, **k: (calls.append(1), _real(*a, **k))[1])
    return calls


def no_quantization(monkeypatch):
    def refuse(*_a, **_k):
        raise AssertionError("quantized again instead of reading the cache")
    monkeypatch.setattr(int8, "quantize_rows", refuse)
    monkeypatch.setattr(int4, "quantize_groups", refuse)


def load(folder, mode):
    return Engine.load(folder, device="cpu", dtype="bfloat16", max_seq_len=64, quantize=mode)


def logits_and_answer(engine):
    with torch.no_grad():
        logits = engine.model(torch.tensor(PROMPT), 0).clone()
    answer = list(engine.generate(PROMPT, 8, engine.default_sampling(do_sample=False)))[-1].output_ids
    return logits, answer


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_second_load_reads_the_cache(folder, cache_dir, monkeypatch, mode):
    first = load(folder, mode)
    expected = logits_and_answer(first)
    [entry] = store.entries(cache_dir)
    assert (entry.quantize, entry.dtype, entry.folder) == (mode, "bfloat16", str(folder.resolve()))
    del first
    no_quantization(monkeypatch)
    second = load(folder, mode)
    logits, answer = logits_and_answer(second)
    assert torch.equal(logits, expected[0]) and answer == expected[1]
    assert [e.key for e in store.entries(cache_dir)] == [entry.key]


def test_a_changed_weight_file_means_a_new_entry(folder, cache_dir, quantizations):
    expected = logits_and_answer(load(folder, "int8"))
    [old] = store.entries(cache_dir)
    weights = folder / "model.safetensors"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # "touched": same bytes
    quantizations.clear()
    again = logits_and_answer(load(folder, "int8"))
    assert quantizations, "the touched folder was not quantized again"
    [new] = store.entries(cache_dir)
    assert new.key != old.key and not old.path.exists()
    assert torch.equal(again[0], expected[0])


@pytest.mark.parametrize("damage", ["header", "truncated", "scales"])
def test_a_corrupted_cache_file_is_quantized_again(folder, cache_dir, quantizations, damage):
    expected = logits_and_answer(load(folder, "int4"))
    [entry] = store.entries(cache_dir)
    data = bytearray(entry.path.read_bytes())
    if damage == "header":
        data[8:40] = b"#" * 32  # the JSON header no longer parses
    elif damage == "truncated":
        del data[len(data) // 2:]
    else:  # lm_head's int8 scales (float32): NaN bytes in place
        meta = store.read_metadata(entry.path)
        assert meta["quantize"] == "int4"
        import json
        header_len = int.from_bytes(data[:8], "little")
        begin, end = json.loads(data[8:8 + header_len])["lm_head.weight:scales"]["data_offsets"]
        data[8 + header_len + begin:8 + header_len + end] = b"\xff" * (end - begin)
    entry.path.write_bytes(bytes(data))
    quantizations.clear()
    again = logits_and_answer(load(folder, "int4"))  # no error
    assert quantizations, "a damaged cache file was trusted"
    assert torch.equal(again[0], expected[0]) and again[1] == expected[1]
    [rewritten] = store.entries(cache_dir)
    assert rewritten.quantize == "int4" and rewritten.size == entry.size  # rewritten whole


def test_cache_list_and_clear(folder, cache_dir, capsys):
    load(folder, "int8")
    load(folder, "int4")
    key8, key4 = (e.key for e in sorted(store.entries(cache_dir), key=lambda e: e.quantize != "int8"))
    assert main(["cache", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[-1].startswith("2 entries, ")
    assert any(line.startswith(key8) and " int8 " in line and line.endswith(str(folder.resolve())) for line in lines)
    assert main(["cache", "clear", key8]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("removed 1 entry (")
    assert [e.key for e in store.entries(cache_dir)] == [key4]
    assert main(["cache", "clear", "nosuchkey"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: no quantized cache entry 'nosuchkey'")
    assert main(["cache", "clear", "--all"]) == 0
    assert capsys.readouterr().out.startswith("removed 1 entry (")
    assert store.entries(cache_dir) == []
    assert main(["cache", "list"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"0 entries, 0.0 MB in {cache_dir}"]


def test_model_dialog_shows_the_cache_size_and_clears_it(folder, cache_dir, qtbot):
    from PySide6.QtCore import Qt

    from gui.model_dialog import ModelDialog
    from gui.model_finder import format_size

    load(folder, "int8")
    [entry] = store.entries(cache_dir)
    dialog = ModelDialog(str(folder), "cpu", "auto")
    qtbot.addWidget(dialog)
    assert format_size(entry.size) in dialog.cache_size.text() and dialog.clear_cache.isEnabled()
    qtbot.mouseClick(dialog.clear_cache, Qt.MouseButton.LeftButton)
    assert store.entries(cache_dir) == [] and not entry.path.exists()
    assert dialog.cache_size.text().endswith("empty") and not dialog.clear_cache.isEnabled()
