"""Broken and hostile model folders: a one-sentence error from Engine.load and the CLI, and nothing in them runs."""
from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import pytest
import torch

from inference.engine import Engine
from inference.errors import ModelFolderError
from testkit.fixtures import TRAP_MODULES, executed_markers, random_weights, write_model_folder, write_weights

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(hidden_size=32, intermediate_size=48, num_layers=1, model_max_length=64)


class _Payload:
    """Unpickling this runs Python code that writes the marker file next to the model folder."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


def marker_of(folder: Path) -> Path:
    return folder.parent / f"PWNED-{folder.name}"


def edit_config(folder: Path, change: Callable[[dict], None]) -> None:
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


def split_w_pack(folder: Path) -> None:
    """Llama-style q/k/v names instead of Baichuan's fused W_pack."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(folder / "model.safetensors"))
    for name in [n for n in tensors if n.endswith("W_pack.weight")]:
        q, k, v = tensors.pop(name).chunk(3)
        prefix = name.removesuffix("W_pack.weight")
        tensors.update({prefix + "q_proj.weight": q, prefix + "k_proj.weight": k, prefix + "v_proj.weight": v})
    save_file(tensors, str(folder / "model.safetensors"))


def malicious_bin(folder: Path, raw: bool) -> None:
    (folder / "model.safetensors").unlink()
    payload = _Payload(marker_of(folder))
    if raw:  # a bare pickle, as an attacker would write it
        (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"model.norm.weight": payload}))
    else:  # a genuine torch zip checkpoint whose data.pkl carries the payload beside real tensors
        torch.save({"model.embed_tokens.weight": torch.zeros(4, 4), "model.norm.weight": payload},
                   folder / "pytorch_model.bin")


def drop_shard(folder: Path) -> None:
    (folder / "model.safetensors").unlink()
    config = json.loads((folder / "config.json").read_text())
    write_weights(folder, random_weights(vocab_size=config["vocab_size"], hidden_size=32, num_layers=1,
                                         num_heads=4, intermediate_size=48), "sharded-safetensors")
    (folder / "model-00002-of-00003.safetensors").unlink()


# case id -> (how to break a good folder (None: the folder is removed), fragments the message must contain)
CASES: dict[str, tuple[Callable[[Path], None] | None, tuple[str, ...]]] = {
    "missing-folder": (None, ("model folder not found",)),
    "not-a-folder": (lambda f: (shutil.rmtree(f), f.write_text("hello")), ("not a folder",)),
    "empty-folder": (lambda f: [p.unlink() for p in f.iterdir()], ("config.json is missing",)),
    "config-not-json": (lambda f: (f / "config.json").write_text("{\"hidden_size\": 32,"), ("not valid JSON",)),
    "config-a-list": (lambda f: (f / "config.json").write_text("[1, 2]"), ("config.json",)),
    "config-lacks-keys": (lambda f: edit_config(f, lambda c: c.pop("num_hidden_layers")), ("num_hidden_layers",)),
    "unsupported-architecture": (lambda f: edit_config(f, lambda c: c.update(architectures=["LlamaForCausalLM"])),
                                 ("unsupported architecture", "LlamaForCausalLM")),
    "shapes-disagree": (lambda f: edit_config(f, lambda c: c.update(intermediate_size=64)),
                        ("model.layers.0.mlp.gate_proj.weight has shape [48, 32] but config.json implies [64, 32]",)),
    "llama-names": (split_w_pack, ("the weights lack model.layers.0.self_attn.W_pack.weight",)),
    "truncated-safetensors": (lambda f: truncate(f / "model.safetensors"), ("model.safetensors is truncated",)),
    "truncated-bin": (lambda f: truncate(f / "pytorch_model.bin"), ("pytorch_model.bin is truncated",)),
    "missing-weights": (lambda f: (f / "model.safetensors").unlink(), ("no weights found",)),
    "missing-shard": (drop_shard, ("model-00002-of-00003.safetensors", "missing")),
    "missing-tokenizer": (lambda f: (f / "tokenizer.model").unlink(), ("tokenizer.model",)),
    "corrupt-tokenizer": (lambda f: (f / "tokenizer.model").write_bytes(random.Random(0).randbytes(3000)),
                          ("tokenizer.model",)),
    "truncated-tokenizer": (lambda f: truncate(f / "tokenizer.model"), ("tokenizer.model",)),
    "pickle-runs-code": (lambda f: malicious_bin(f, raw=False),
                         ("pytorch_model.bin contains code, not just tensors; refusing to load it",)),
    "raw-pickle-runs-code": (lambda f: malicious_bin(f, raw=True),
                             ("pytorch_model.bin contains code, not just tensors; refusing to load it",)),
}
BIN_CASES = {"truncated-bin"}
#: The cases issue 6 lists, also run through the CLI (one process each); the others share its error path.
CLI_CASES = ["missing-folder", "empty-folder", "config-not-json", "config-lacks-keys", "unsupported-architecture",
             "shapes-disagree", "truncated-safetensors", "truncated-bin", "missing-weights", "missing-tokenizer",
             "corrupt-tokenizer", "pickle-runs-code", "raw-pickle-runs-code"]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict[str, Path]:
    """One folder per case, plus the intact 'good' folder (same trap .py files in all of them)."""
    root = tmp_path_factory.mktemp("hostile")
    templates = {fmt: write_model_folder(root / f"template-{fmt}", weights_format=fmt, **SMALL)
                 for fmt in ("safetensors", "bin")}
    folders = {"good": templates["safetensors"]}
    for case, (breaker, _) in CASES.items():
        folder = root / case
        shutil.copytree(templates["bin" if case in BIN_CASES else "safetensors"], folder)
        if breaker is None:
            shutil.rmtree(folder)
        else:
            breaker(folder)
        folders[case] = folder
    return folders


@pytest.fixture(scope="module")
def cli_runs(hostile) -> dict[str, subprocess.CompletedProcess]:
    """Every case through `python -m inference generate`, two processes at a time to keep the suite fast."""
    def run(folder: Path) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "inference", "generate", "--model", str(folder), "--input-ids", "[1,2]",
               "--max-new-tokens", "2", "--json"]
        return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "PYTHONPATH": str(REPO)})

    cases = [*CLI_CASES, "good"]
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(cases, pool.map(run, [hostile[case] for case in cases])))


def load_error(folder: Path) -> str:
    with pytest.raises(ModelFolderError) as info:
        Engine.load(folder, device="cpu", dtype="float32")
    return str(info.value)


def assert_nothing_ran(folder: Path) -> None:
    assert not marker_of(folder).exists(), "the pickle's code ran"
    if folder.is_dir():
        assert executed_markers(folder) == [], "a .py file from the model folder ran"
    assert not set(TRAP_MODULES) & set(sys.modules), "a module from the model folder was imported"


@pytest.mark.parametrize("case", list(CASES))
def test_engine_load_refuses_in_one_sentence(hostile, case):
    message = load_error(hostile[case])
    assert message and "\n" not in message and len(message) < 300, message
    assert message.count(". ") == 0 and "Traceback" not in message, message
    for fragment in CASES[case][1]:
        assert fragment in message, message
    assert_nothing_ran(hostile[case])


@pytest.mark.parametrize("case", CLI_CASES)
def test_cli_refuses_with_one_error_line(hostile, cli_runs, case):
    run = cli_runs[case]
    assert run.returncode >= 1, run
    assert run.stdout == ""
    assert run.stderr == f"error: {load_error(hostile[case])}\n", run.stderr  # the same sentence, nothing else
    assert_nothing_ran(hostile[case])


def test_good_folder_loads_and_never_imports_its_python_files(hostile, cli_runs):
    folder = hostile["good"]
    assert sorted(p.stem for p in folder.glob("*.py")) == sorted(TRAP_MODULES)
    engine = Engine.load(folder, device="cpu", dtype="float32")
    finish = list(engine.generate([1, 2], 2, engine.default_sampling(do_sample=False)))[-1]
    assert len(finish.output_ids) >= 1
    assert_nothing_ran(folder)
    assert str(folder) not in sys.path
    run = cli_runs["good"]  # the CLI control case: same command, intact folder
    assert run.returncode == 0 and run.stderr == "", run.stderr
    assert len(json.loads(run.stdout)["output_ids"]) >= 1
    assert_nothing_ran(folder)


def test_trap_files_really_leave_a_marker_when_imported(tmp_path):
    """The traps would catch an import: running one leaves its marker (in a child process, not here)."""
    folder = write_model_folder(tmp_path / "m", **SMALL)
    run = subprocess.run([sys.executable, "-c", "import modeling_baichuan"], cwd=folder, capture_output=True,
                         text=True)
    assert run.returncode != 0 and "model-folder code was executed" in run.stderr
    assert [p.name for p in executed_markers(folder)] == ["EXECUTED_modeling_baichuan"]
