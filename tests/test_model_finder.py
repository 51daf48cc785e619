"""Models at hand: the model dialog lists recently opened folders and the Baichuan snapshots of the Hugging Face
cache (HF_HOME), with variant, size on disk and what fits in memory per dtype / quantization; only config.json is
read, and other architectures are left out."""
from __future__ import annotations

import json
import os

import psutil
import pytest

from gui import model_dialog
from gui.model_finder import LOAD_KINDS, add_recent, find_models, format_size, hub_dir, memory_fits
from gui_harness import run_async, wait_until
from testkit.fixtures import TRAP_MARKER_PREFIX, write_model_folder

SEVEN_B = {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "intermediate_size": 11008,
           "vocab_size": 125696, "model_max_length": 4096}


def _snapshot(hub, repo: str, source, config_changes: dict | None = None):
    """A hub-cache snapshot as huggingface_hub lays it out: files are links into blobs/."""
    repo_dir = hub / f"models--{repo.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (repo_dir / "blobs").mkdir()
    for file in source.iterdir():
        blob = repo_dir / "blobs" / file.name
        blob.write_bytes(file.read_bytes())
        os.symlink(blob, snapshot / file.name)
    if config_changes:
        config = json.loads((snapshot / "config.json").read_text())
        (snapshot / "config.json").unlink()
        (snapshot / "config.json").write_text(json.dumps({**config, **config_changes}))
    return snapshot


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory):
    return write_model_folder(tmp_path_factory.mktemp("src") / "model", model_max_length=128)


@pytest.fixture
def hf_home(tmp_path, monkeypatch, small_folder):
    home = tmp_path / "hf"
    hub = home / "hub"
    seven = _snapshot(hub, "baichuan-inc/Baichuan2-7B-Chat", small_folder, SEVEN_B)
    v1 = _snapshot(hub, "baichuan-inc/Baichuan-7B", small_folder,
                   {**SEVEN_B, "vocab_size": 64000, "architectures": ["BaiChuanForCausalLM"]})
    _snapshot(hub, "someone/llama", small_folder, {"architectures": ["LlamaForCausalLM"]})
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return {"seven": seven, "v1": v1}


def _size(folder) -> int:
    return sum(os.stat(entry).st_size for entry in folder.iterdir())


def test_hub_dir_follows_the_hugging_face_variables(tmp_path):
    assert hub_dir({"HF_HUB_CACHE": "/x/hub2", "HF_HOME": "/y"}) == type(tmp_path)("/x/hub2")
    assert hub_dir({"HF_HOME": "/y"}) == type(tmp_path)("/y/hub")
    assert hub_dir({"XDG_CACHE_HOME": "/c"}) == type(tmp_path)("/c/huggingface/hub")
    assert add_recent(["a", "b"], "b") == ["b", "a"] and add_recent(None, "x") == ["x"]


def test_finds_recent_and_cached_baichuan_folders(hf_home, small_folder, tmp_path):
    gone = str(tmp_path / "deleted")
    models = find_models([str(small_folder), gone])
    by_name = {m.name: m for m in models}
    assert list(by_name) == ["model", "deleted", "baichuan-inc/Baichuan-7B", "baichuan-inc/Baichuan2-7B-Chat"]
    assert by_name["baichuan-inc/Baichuan2-7B-Chat"].variant == "Baichuan2 7B"
    assert by_name["baichuan-inc/Baichuan-7B"].variant == "Baichuan 7B (v1)"
    assert by_name["model"].variant == "Baichuan2-format, hidden size 64" and by_name["model"].source == "recent"
    assert "config.json is missing" in by_name["deleted"].problem
    seven = by_name["baichuan-inc/Baichuan2-7B-Chat"]
    assert seven.size == _size(hf_home["seven"]) > 0  # the blobs the links point at
    fp32, bf16, int8 = (seven.fits[label][0] for label, _, _ in LOAD_KINDS)
    # 7.5 G parameters, plus the KV cache for 4096 positions (4.3 GB in fp32, 2.1 GB in bf16)
    assert 30e9 < fp32 < 36e9 and 15e9 < bf16 < 18e9 and int8 < 0.7 * bf16
    assert not any(p.name.startswith(TRAP_MARKER_PREFIX) for p in tmp_path.rglob("*"))  # no code was run


def test_the_model_dialog_lists_them(open_window, hf_home, small_folder, monkeypatch, qtbot):
    window = open_window()
    window.store.set_state("recent_model_dirs", [str(small_folder)])
    seen = {}

    def fake_exec(dialog):
        wait_until(lambda: dialog.models is not None, 60, "the scan")
        seen["rows"] = [[item.text(c) for c in range(5)] for item in
                        (dialog.found.topLevelItem(i) for i in range(dialog.found.topLevelItemCount()))]
        dialog.found.itemClicked.emit(dialog.found.topLevelItem(2), 0)
        seen["folder"] = dialog.folder.text()
        return model_dialog.ModelDialog.DialogCode.Rejected

    monkeypatch.setattr(model_dialog.ModelDialog, "exec", fake_exec)
    window.open_model_dialog()
    rows = {row[0]: row for row in seen["rows"]}
    assert set(rows) == {"model", "baichuan-inc/Baichuan-7B", "baichuan-inc/Baichuan2-7B-Chat"}
    name, variant, size, fits, where = rows["baichuan-inc/Baichuan2-7B-Chat"]
    assert (variant, size, where) == ("Baichuan2 7B", format_size(_size(hf_home["seven"])), "Hugging Face cache")
    needs = memory_fits(json.loads((hf_home["seven"] / "config.json").read_text()),
                        psutil.virtual_memory().available)
    bf16_need, bf16_fits = needs["bf16/fp16"]
    assert f"bf16/fp16 {format_size(bf16_need)} {'✓' if bf16_fits else '✗'}" in fits
    assert rows["baichuan-inc/Baichuan-7B"][1] == "Baichuan 7B (v1)" and rows["model"][4] == "recent"
    assert seen["folder"] == str(hf_home["seven"])  # picking a row fills in the folder


def test_a_loaded_folder_becomes_recent(open_window, small_folder, loop):
    from gui.engine_thread import EngineClient

    client = EngineClient()
    try:
        window = open_window(client)
        assert run_async(window.load_model(str(small_folder), "cpu", "float32", 128), 120) is not None
        assert window.store.get_state("recent_model_dirs") == [str(small_folder)]
    finally:
        client.shutdown()
