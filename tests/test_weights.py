"""inference.modeling.weights: every checkpoint layout read lazily and exactly; broken or hostile files refused."""
from __future__ import annotations

import dataclasses
import json
import pickle
import random
import types
from pathlib import Path

import pytest
import torch

from inference.modeling.config import load_folder_config
from inference.errors import ModelFolderError
from testkit.fixtures import WEIGHT_FORMATS, random_weights, write_model_folder, write_weights
from inference.modeling.weights import (checkpoint_shapes, expected_shapes, iter_checkpoint, load_weights_into,
                               validate_shapes)

SHAPE = dict(vocab_size=600, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=48)


def assert_one_sentence(message: str) -> None:
    assert message and "\n" not in message and ". " not in message and len(message) < 300, message


def refused(folder: Path, *fragments: str) -> str:
    with pytest.raises(ModelFolderError) as info:
        dict(iter_checkpoint(folder))
    message = str(info.value)
    assert_one_sentence(message)
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.fixture(scope="module")
def reference() -> dict[str, torch.Tensor]:
    return random_weights(**SHAPE, seed=3)


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    folder = write_model_folder(tmp_path_factory.mktemp("cfg") / "m", hidden_size=32, intermediate_size=48)
    cfg, _ = load_folder_config(folder)
    return dataclasses.replace(cfg, vocab_size=SHAPE["vocab_size"])


def weights_folder(root: Path, tensors: dict, fmt: str = "safetensors") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write_weights(root, tensors, fmt)
    return root


# ---- reading every layout ---------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", WEIGHT_FORMATS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_every_format_yields_exact_tensors_in_checkpoint_dtype(tmp_path, reference, fmt, dtype):
    stored = {k: v.to(dtype) for k, v in reference.items()}
    folder = weights_folder(tmp_path, stored, fmt)
    stream = iter_checkpoint(folder)
    assert isinstance(stream, types.GeneratorType)  # lazy: nothing is read before iteration
    got = dict(stream)
    assert set(got) == set(stored)
    for name, tensor in stored.items():
        assert got[name].dtype == dtype and torch.equal(got[name], tensor), name
    assert checkpoint_shapes(folder) == {k: tuple(v.shape) for k, v in stored.items()}


def test_bin_is_loaded_only_with_weights_only_and_mmap(tmp_path, reference, monkeypatch):
    folder = weights_folder(tmp_path, reference, "sharded-bin")
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    dict(iter_checkpoint(folder))
    assert len(calls) == 3
    assert all(c == {"map_location": "cpu", "weights_only": True, "mmap": True} for c in calls)


def test_safetensors_preferred_when_both_formats_exist(tmp_path, reference):
    folder = weights_folder(tmp_path, reference, "sharded-safetensors")
    write_weights(folder, {k: torch.zeros_like(v) for k, v in reference.items()}, "bin")
    assert torch.equal(dict(iter_checkpoint(folder))["model.norm.weight"], reference["model.norm.weight"])


# ---- refusing broken and hostile files --------------------------------------------------------------
def test_no_weights(tmp_path):
    refused(tmp_path, "no weights found")


def test_index_naming_a_missing_shard(tmp_path, reference):
    folder = weights_folder(tmp_path, reference, "sharded-safetensors")
    (folder / "model-00002-of-00003.safetensors").unlink()
    refused(folder, "model.safetensors.index.json", "model-00002-of-00003.safetensors", "missing")


@pytest.mark.parametrize("target", ["../outside.safetensors", "/etc/passwd", ".hidden", "sub/dir.safetensors"])
def test_index_cannot_point_outside_the_folder(tmp_path, reference, target):
    folder = weights_folder(tmp_path, reference, "sharded-safetensors")
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    index["weight_map"]["model.norm.weight"] = target
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    refused(folder, "not a file in the folder")


@pytest.mark.parametrize("text", ["{not json", "[]", '{"weight_map": {}}', '{"weight_map": [1]}'])
def test_bad_index(tmp_path, reference, text):
    folder = weights_folder(tmp_path, reference, "sharded-bin")
    (folder / "pytorch_model.bin.index.json").write_text(text)
    refused(folder, "pytorch_model.bin.index.json")


def test_index_promises_a_tensor_its_shard_lacks(tmp_path, reference):
    folder = weights_folder(tmp_path, reference, "sharded-safetensors")
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    index["weight_map"]["model.layers.9.mlp.up_proj.weight"] = "model-00001-of-00003.safetensors"
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    refused(folder, "model.layers.9.mlp.up_proj.weight", "model-00001-of-00003.safetensors")
    with pytest.raises(ModelFolderError):
        checkpoint_shapes(folder)


def test_tensor_in_two_shards(tmp_path):
    torch.save({"x": torch.ones(2), "y": torch.ones(2)}, tmp_path / "a.bin")
    torch.save({"y": torch.zeros(2)}, tmp_path / "b.bin")
    index = {"weight_map": {"x": "a.bin", "y": "b.bin"}}
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    refused(tmp_path, "tensor y appears twice", "b.bin")


@pytest.mark.parametrize("fmt,cut", [("safetensors", 0.5), ("safetensors", 0.999), ("safetensors", 0.0),
                                     ("bin", 0.5), ("bin", 0.99), ("bin", 0.0)])
def test_truncated_file(tmp_path, reference, fmt, cut):
    folder = weights_folder(tmp_path, reference, fmt)
    path = folder / ("model.safetensors" if fmt == "safetensors" else "pytorch_model.bin")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    message = refused(folder, path.name)
    assert "truncated" in message or "empty" in message


@pytest.mark.parametrize("junk", [b"hello, this is not a checkpoint\n" * 10, random.Random(0).randbytes(4096),
                                  b"\x80\x04K\x01."])
def test_bin_that_is_not_a_checkpoint(tmp_path, junk):
    (tmp_path / "pytorch_model.bin").write_bytes(junk)
    refused(tmp_path, "pytorch_model.bin")


class _Payload:
    """Unpickling this runs Python code that writes the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


@pytest.mark.parametrize("container", ["torch-zip", "raw-pickle", "shard"])
def test_pickle_that_would_run_code_is_refused_and_never_runs(tmp_path, reference, container):
    marker = tmp_path / "PWNED"
    folder = tmp_path / "model"
    folder.mkdir()
    evil = {"model.norm.weight": torch.ones(4), "payload": _Payload(marker)}
    if container == "torch-zip":
        torch.save(evil, folder / "pytorch_model.bin")
    elif container == "raw-pickle":
        (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(marker)))
    else:
        write_weights(folder, reference, "sharded-bin")
        torch.save(evil, folder / "pytorch_model-00002-of-00003.bin")
    name = "pytorch_model-00002-of-00003.bin" if container == "shard" else "pytorch_model.bin"
    assert refused(folder) == f"{name} contains code, not just tensors; refusing to load it"
    with pytest.raises(ModelFolderError):
        checkpoint_shapes(folder)
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_archive_is_refused(tmp_path):
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), tmp_path / "pytorch_model.bin")
    refused(tmp_path, "TorchScript")


def test_legacy_torch_format_is_refused_with_advice(tmp_path):
    torch.save({"a": torch.ones(2)}, tmp_path / "pytorch_model.bin", _use_new_zipfile_serialization=False)
    refused(tmp_path, "legacy PyTorch format", "safetensors")


@pytest.mark.parametrize("content,fragment", [
    ({"model.norm.weight": torch.ones(2), "step": 3}, "'step' is a int"),
    ({"model.norm.weight": torch.ones(2), "nested": {"a": torch.ones(1)}}, "'nested' is a dict"),
    ([torch.ones(2)], "holds a list"),
])
def test_non_tensor_entries_are_refused(tmp_path, content, fragment):
    torch.save(content, tmp_path / "pytorch_model.bin")
    refused(tmp_path, fragment)


# ---- shapes against config.json ---------------------------------------------------------------------
def test_expected_shapes_cover_the_baichuan_layout(config, reference):
    shapes = expected_shapes(config)
    assert shapes == {k: tuple(v.shape) for k, v in reference.items()}
    gqa = dataclasses.replace(config, num_kv_heads=2)  # head_dim 8: q 4 heads, k and v 2 heads each
    assert expected_shapes(gqa)["model.layers.0.self_attn.W_pack.weight"] == ((4 + 2 * 2) * 8, 32)
    assert expected_shapes(gqa)["model.layers.1.self_attn.o_proj.weight"] == (32, 32)
    assert "lm_head.weight" not in expected_shapes(dataclasses.replace(config, tie_word_embeddings=True))


def test_validate_shapes_messages(config, reference):
    good = {k: tuple(v.shape) for k, v in reference.items()}
    validate_shapes(good, config)
    cases = [
        ({**good, "model.layers.1.mlp.up_proj.weight": (47, 32)},
         "model.layers.1.mlp.up_proj.weight has shape [47, 32] but config.json implies [48, 32]"),
        ({k: v for k, v in good.items() if k != "model.norm.weight"},
         "the weights lack model.norm.weight, which config.json requires"),
        ({k: v for k, v in good.items() if "layers.1" not in k},
         "the weights lack model.layers.1.self_attn.W_pack.weight (and 6 more), which config.json requires"),
        ({**good, "model.layers.2.mlp.up_proj.weight": (48, 32)},
         "the weights hold model.layers.2.mlp.up_proj.weight, which config.json does not describe"),
    ]
    for shapes, expected in cases:
        with pytest.raises(ModelFolderError) as info:
            validate_shapes(shapes, config)
        assert str(info.value) == expected
        assert_one_sentence(str(info.value))


def test_validate_shapes_ignores_known_harmless_buffers(config, reference):
    shapes = {k: tuple(v.shape) for k, v in reference.items()}
    shapes["model.layers.0.self_attn.rotary_emb.inv_freq"] = (4,)
    validate_shapes(shapes, config)
    tied = dataclasses.replace(config, tie_word_embeddings=True)
    validate_shapes(shapes, tied)  # a tied model's checkpoint may still carry lm_head.weight


# ---- copying into a model's parameters --------------------------------------------------------------
def empty_state(config, dtype=torch.float32) -> dict[str, torch.Tensor]:
    return {k: torch.full(s, float("nan"), dtype=dtype) for k, s in expected_shapes(config).items()}


@pytest.mark.parametrize("fmt", ["sharded-safetensors", "bin"])
def test_load_weights_into_converts_dtype_and_reports_progress(tmp_path, config, reference, fmt):
    folder = weights_folder(tmp_path, {**reference, "model.layers.1.self_attn.rotary_emb.inv_freq": torch.ones(4)},
                            fmt)
    state = empty_state(config, torch.bfloat16)
    seen = []
    load_weights_into(state, folder, config, progress=seen.append)
    for name, tensor in reference.items():
        assert torch.equal(state[name], tensor.to(torch.bfloat16)), name
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) == len(reference)


def test_shape_mismatch_refused_before_anything_is_copied(tmp_path, config, reference):
    bad = dict(reference)
    bad["model.layers.1.mlp.down_proj.weight"] = torch.zeros(32, 40)
    folder = weights_folder(tmp_path, bad, "sharded-safetensors")
    state = empty_state(config)
    with pytest.raises(ModelFolderError, match=r"down_proj.weight has shape \[32, 40\] but config.json implies"):
        load_weights_into(state, folder, config)
    assert all(t.isnan().all() for t in state.values())


def test_missing_and_integer_tensors_refused(tmp_path, config, reference):
    partial = {k: v for k, v in reference.items() if k != "lm_head.weight"}
    with pytest.raises(ModelFolderError, match="the weights lack lm_head.weight"):
        load_weights_into(empty_state(config), weights_folder(tmp_path / "a", partial), config)
    ints = {**reference, "model.norm.weight": torch.ones(32, dtype=torch.int64)}
    with pytest.raises(ModelFolderError, match="model.norm.weight has dtype int64, not a floating-point type"):
        load_weights_into(empty_state(config), weights_folder(tmp_path / "b", ints), config)


def test_decoder_parameter_mismatch_is_a_bug_not_a_folder_error(tmp_path, config, reference):
    state = empty_state(config)
    state["model.norm.weight"] = torch.zeros(31)
    with pytest.raises(RuntimeError, match="decoder parameter model.norm.weight"):
        load_weights_into(state, weights_folder(tmp_path, reference), config)


def test_fixture_folder_is_deterministic(tmp_path):
    a = write_model_folder(tmp_path / "a", weights_format="bin", seed=7, hidden_size=32, intermediate_size=48)
    b = write_model_folder(tmp_path / "b", weights_format="bin", seed=7, hidden_size=32, intermediate_size=48)
    for name in ("config.json", "generation_config.json", "tokenizer.model"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    ta, tb = dict(iter_checkpoint(a)), dict(iter_checkpoint(b))
    assert all(torch.equal(ta[k], tb[k]) for k in ta) and set(ta) == set(tb)
    generation = json.loads((a / "generation_config.json").read_text())
    assert generation["max_new_tokens"] == 64 and generation["user_token_id"] == 195


def test_block_wise_copy_gives_the_same_parameters(tmp_path, monkeypatch):
    """Large tensors are copied ~32 MB at a time (file pages released per block): same result as one copy."""
    from inference.modeling import weight_copy
    from inference.engine import Engine

    folder = write_model_folder(tmp_path / "m", hidden_size=64, num_heads=4, intermediate_size=160, seed=9)
    whole = Engine.load(folder, device="cpu", dtype="float32").model.weights()
    monkeypatch.setattr(weight_copy, "COPY_BLOCK_BYTES", 1000)  # a few rows per block for every matrix
    blocks = Engine.load(folder, device="cpu", dtype="float32").model.weights()
    assert whole.keys() == blocks.keys()
    assert all(torch.equal(whole[name], blocks[name]) for name in whole)
