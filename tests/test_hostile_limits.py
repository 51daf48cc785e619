"""Hostile folders that would exhaust memory, hang the loader or end in a traceback: one line, quickly."""
from __future__ import annotations

import json
import math
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import pytest
import torch

from inference.modeling import weight_copy
from inference.modeling.config import parse_model_config
from inference.engine import Cancelled, Engine
from inference.errors import DeviceError, ModelOutputError, UserError
from testkit.fixtures import write_model_folder
from inference.modeling.memory_plan import MemoryPlan

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(hidden_size=32, intermediate_size=48, num_layers=1, model_max_length=64)
LIMIT_S = 20.0  # a load still running after this is a hang (the loader runs in a thread we can abandon)
TIMES: dict[str, float] = {}


def set_key(file: str, key: str, raw: str) -> Callable[[Path], None]:
    """Write `raw` (JSON text as a hostile tool might, e.g. 1e400 or NaN) as the value of `key` in `file`."""
    def change(folder: Path) -> None:
        data = json.loads((folder / file).read_text())
        data[key] = "@@"
        (folder / file).write_text(json.dumps(data).replace('"@@"', raw))
    return change


def replace_with(file: str, how: str) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        path = folder / file
        path.unlink()
        if how == "fifo":
            os.mkfifo(path)
        elif how == "dev-zero":
            path.symlink_to("/dev/zero")
        elif how == "empty":
            path.write_bytes(b"")
        elif how == "sparse-200MB":
            with open(path, "wb") as f:
                f.truncate(200 << 20)
        elif how.startswith("nested"):
            path.write_text("[" * 100_000 if how == "nested-list" else '{"a": ' * 100_000)
    return change


# case -> (breaker, fragments of the one line)
CASES: dict[str, tuple[Callable[[Path], None], tuple[str, ...]]] = {
    "tokenizer->/dev/zero": (replace_with("tokenizer.model", "dev-zero"), ("tokenizer.model is a character device",)),
    "tokenizer-fifo": (replace_with("tokenizer.model", "fifo"), ("tokenizer.model is a FIFO",)),
    "tokenizer-200MB": (replace_with("tokenizer.model", "sparse-200MB"), ("tokenizer.model is 200 MB", "64 MB")),
    "tokenizer-0-bytes": (replace_with("tokenizer.model", "empty"), ("tokenizer.model is corrupt",)),
    "config-fifo": (replace_with("config.json", "fifo"), ("config.json is a FIFO",)),
    "generation-config->/dev/zero": (replace_with("generation_config.json", "dev-zero"),
                                     ("generation_config.json is a character device",)),
    "weights-fifo": (replace_with("model.safetensors", "fifo"), ("model.safetensors is a FIFO",)),
    "config-nested-100k": (replace_with("config.json", "nested-list"), ("config.json", "nested too deeply")),
    "generation-nested-100k": (replace_with("generation_config.json", "nested-object"),
                               ("generation_config.json", "nested too deeply")),
    "layers-10^6": (set_key("config.json", "num_hidden_layers", "1000000"),
                    ("num_hidden_layers = 1000000", "weights hold 1 layer")),
    "hidden-10^9": (set_key("config.json", "hidden_size", "1000000000"),
                    ("model.embed_tokens.weight has shape", "1000000000]")),
    "max-length-10^7": (set_key("config.json", "model_max_length", "10000000"),
                        ("model_max_length' = 10000000", "1048576")),
    "max-length-1e400": (set_key("config.json", "model_max_length", "1e400"), ("model_max_length' = Infinity",)),
    "max-length-[64]": (set_key("config.json", "model_max_length", "[64]"), ("model_max_length' = list",)),
    "max-length-lots": (set_key("config.json", "model_max_length", '"lots"'), ("model_max_length' = \"lots\"",)),
    "max-length--5": (set_key("config.json", "model_max_length", "-5"), ("model_max_length' = -5",)),
    "rope-theta-abc": (set_key("config.json", "rope_theta", '"abc"'), ("rope_theta' = \"abc\"",)),
    "rope-theta-0": (set_key("config.json", "rope_theta", "0"), ("rope_theta' = 0",)),
    "rope-theta--1": (set_key("config.json", "rope_theta", "-1"), ("rope_theta' = -1",)),
    "rope-theta-NaN": (set_key("config.json", "rope_theta", "NaN"), ("rope_theta' = NaN",)),
    "architectures-[[x]]": (set_key("config.json", "architectures", '[["x"]]'), ("unsupported architecture",)),
    "pad-token-1e400": (set_key("generation_config.json", "pad_token_id", "1e400"), ("pad_token_id' = Infinity",)),
}
#: Run as real processes too (what the user sees on stderr, sentencepiece's own logging included).
CLI_CASES = ["tokenizer->/dev/zero", "tokenizer-fifo", "tokenizer-0-bytes", "layers-10^6", "config-nested-100k"]


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return write_model_folder(tmp_path_factory.mktemp("limits") / "template", **SMALL)


@pytest.fixture(scope="module")
def hostile(template) -> dict[str, Path]:
    folders = {}
    for i, (case, (breaker, _)) in enumerate(CASES.items()):
        folder = template.parent / f"case{i}"
        shutil.copytree(template, folder)
        breaker(folder)
        folders[case] = folder
    return folders


def load_in_thread(folder, **kwargs) -> tuple[BaseException | Engine | None, float]:
    """Engine.load in a daemon thread: (its exception or engine, seconds), or (None, LIMIT_S) if it hangs."""
    box: list = []

    def target():
        try:
            box.append(Engine.load(folder, device="cpu", dtype="float32", **kwargs))
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            box.append(exc)

    started = time.perf_counter()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(LIMIT_S)
    return (box[0] if box else None), time.perf_counter() - started


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_folder_is_one_line_quickly(hostile, case):
    outcome, seconds = load_in_thread(hostile[case])
    assert outcome is not None, f"the load still runs after {LIMIT_S:.0f} s"
    assert isinstance(outcome, UserError), f"{type(outcome).__name__}: {outcome}"
    message = str(outcome)
    assert message and "\n" not in message and len(message) < 300, message
    for fragment in CASES[case][1]:
        assert fragment in message, message
    TIMES[case] = seconds
    assert seconds < 5, f"{seconds:.1f} s to refuse"


@pytest.mark.parametrize("case", CLI_CASES)
def test_cli_prints_only_the_one_line(hostile, case):
    cmd = [sys.executable, "-m", "inference", "generate", "--model", str(hostile[case]), "--input-ids", "[1,2]",
           "--max-new-tokens", "2"]
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and run.stdout == "", run
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr  # no sentencepiece log lines


# ---- memory: checked before anything is allocated --------------------------------------------------
BAICHUAN2_13B = {"architectures": ["BaichuanForCausalLM"], "hidden_size": 5120, "num_attention_heads": 40,
                 "num_hidden_layers": 40, "intermediate_size": 13696, "vocab_size": 125696,
                 "model_max_length": 4096}


def test_memory_plan_names_the_numbers():
    config = parse_model_config({**BAICHUAN2_13B, "model_max_length": 1 << 20})
    plan = MemoryPlan.measure(config, 1 << 20, torch.float32, None, torch.device("cpu"))
    assert plan.weights == pytest.approx(13.9e9 * 4, rel=0.03)
    assert plan.kv_cache == 2 * 40 * 5120 * (1 << 20) * 4  # 1.7 TB: refused on any machine
    with pytest.raises(DeviceError) as info:
        plan.check()
    message = str(info.value)
    assert "MAX_SEQ_LEN 1048576" in message and "GB is free" in message and "\n" not in message, message
    small = MemoryPlan.measure(parse_model_config(BAICHUAN2_13B), 64, torch.int8, "int8", torch.device("cpu"))
    assert small.weights < plan.weights / 3


def sparse_checkpoint(folder: Path, hidden: int, heads: int) -> None:
    """A safetensors file whose header promises ~80 GB of float32 (a sparse file: nothing is on the disk)."""
    config = json.loads((folder / "config.json").read_text())
    vocab, inter = config["vocab_size"], 4 * hidden
    config.update(hidden_size=hidden, num_attention_heads=heads, intermediate_size=inter)
    (folder / "config.json").write_text(json.dumps(config))
    p = "model.layers.0."
    shapes = {"model.embed_tokens.weight": [vocab, hidden], p + "self_attn.W_pack.weight": [3 * hidden, hidden],
              p + "self_attn.o_proj.weight": [hidden, hidden], p + "mlp.gate_proj.weight": [inter, hidden],
              p + "mlp.up_proj.weight": [inter, hidden], p + "mlp.down_proj.weight": [hidden, inter],
              p + "input_layernorm.weight": [hidden], p + "post_attention_layernorm.weight": [hidden],
              "model.norm.weight": [hidden], "lm_head.weight": [vocab, hidden]}
    header, offset = {}, 0
    for name, shape in shapes.items():
        size = math.prod(shape) * 4
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(folder / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + offset)


def test_a_model_bigger_than_memory_is_refused_before_allocating(template, tmp_path):
    folder = tmp_path / "huge"
    shutil.copytree(template, folder)
    sparse_checkpoint(folder, hidden=1 << 15, heads=256)
    outcome, seconds = load_in_thread(folder)
    assert isinstance(outcome, DeviceError), outcome
    assert "the model needs about" in str(outcome) and "GB is free" in str(outcome), outcome
    TIMES["weights-80GB-sparse"] = seconds


# ---- non-finite weights -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nan_engine(template) -> Engine:
    from safetensors.torch import load_file, save_file

    folder = template.parent / "nan"
    shutil.copytree(template, folder)
    tensors = load_file(str(folder / "model.safetensors"))
    tensors["model.layers.0.mlp.down_proj.weight"][0, 0] = float("nan")
    save_file(tensors, str(folder / "model.safetensors"))
    return Engine.load(folder, device="cpu", dtype="float32")


@pytest.mark.parametrize("greedy", [True, False])
def test_non_finite_logits_are_an_error_not_an_empty_answer(nan_engine, greedy):
    sampling = nan_engine.default_sampling(do_sample=not greedy, seed=1)
    with pytest.raises(ModelOutputError, match="the model produced non-finite values"):
        list(nan_engine.generate([1, 2, 3], 4, sampling))


# ---- cancelling ---------------------------------------------------------------------------------------
STAGES = ["reading config.json", "reading tokenizer.model", "checking the weight files", "checking free memory",
          "allocating the model", "loading weights", "preparing the fast kernels"]


@pytest.mark.parametrize("stage", STAGES)
def test_cancel_is_noticed_at_every_stage(template, monkeypatch, stage):
    monkeypatch.setattr(weight_copy, "COPY_BLOCK_BYTES", 1024)  # several blocks per matrix: a check between each
    cancel, seen = threading.Event(), []

    def progress(_fraction, message):
        seen.append(message)
        if message == stage:
            cancel.set()

    with pytest.raises(Cancelled):
        Engine.load(template, device="cpu", dtype="bfloat16", progress=progress, cancel=cancel)
    assert seen[-1] == stage and seen.count(stage) == 1, seen  # stopped before the next step reported


def test_large_tensors_report_and_check_cancel_per_block(template, monkeypatch):
    monkeypatch.setattr(weight_copy, "COPY_BLOCK_BYTES", 1024)  # 32 float32 rows of 32: W_pack has 3 blocks
    seen = []
    Engine.load(template, device="cpu", dtype="float32", progress=lambda _f, message: seen.append(message))
    tensors = len(json.loads((template / "model.safetensors").read_bytes()[8:8 + struct.unpack(
        "<Q", (template / "model.safetensors").read_bytes()[:8])[0]]))
    assert seen.count("loading weights") > tensors, seen.count("loading weights")


def test_generate_into_a_closed_pipe_exits_quietly(template):
    read_end, write_end = os.pipe()
    os.close(read_end)  # `... | head` that already quit
    cmd = [sys.executable, "-m", "inference", "generate", "--model", str(template), "--input-ids", "[1,2]",
           "--max-new-tokens", "2", "--greedy"]
    run = subprocess.run(cmd, cwd=REPO, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    os.close(write_end)
    assert run.stderr == "" and run.returncode == 141, run.stderr


def test_failed_or_cancelled_load_keeps_the_working_model(loop, template, tmp_path):
    from gui_harness import run_async

    from gui.engine_thread import EngineClient, LoadCancelled, WorkerError

    client = EngineClient()
    try:
        info = run_async(client.load(str(template), "cpu", "float32"), 120)
        broken = tmp_path / "broken"
        shutil.copytree(template, broken)
        (broken / "model.safetensors").unlink()
        with pytest.raises(WorkerError, match="no weights found"):
            run_async(client.load(str(broken), "cpu", "float32"), 120)
        assert client.state == "ready" and client.info["name"] == info["name"]
        cancel_during = client.load(str(template), "cpu", "float32")
        client.cancel_load()
        with pytest.raises(LoadCancelled):
            run_async(cancel_during, 120)
        assert client.state == "ready" and client.info["name"] == info["name"]
        settings = {"do_sample": False, "temperature": 1.0, "top_k": 0, "top_p": 1.0, "repetition_penalty": 1.0,
                    "max_new_tokens": 3}
        answer = run_async(client.generate([{"role": "user", "content": "hi"}], settings), 120)
        assert answer["output_ids"], answer  # the old model still answers
    finally:
        client.shutdown()


def test_a_model_that_does_not_fit_beside_the_old_one_releases_it_first(template):
    import gc
    import weakref

    from gui.engine_thread import InferenceWorker

    worker, notes = InferenceWorker(), []
    worker.load_progress.connect(lambda _f, message: notes.append(message))
    worker.load({"model_dir": str(template), "device": "cpu", "dtype": "float32", "cancel": threading.Event()})
    old = weakref.ref(worker._engine)
    fits = MemoryPlan(torch.device("cpu"), 64, 1 << 20, 0, 0, available=1 << 40, per_position=1)
    worker._make_room(fits)
    assert worker._engine is old()  # fits beside it: kept
    worker._make_room(MemoryPlan(torch.device("cpu"), 64, 1 << 50, 0, 0, available=1 << 30, per_position=1))
    gc.collect()
    assert worker._engine is None and old() is None
    assert notes[-1] == f"unloaded {template.name} to make room for the new model"


def test_closing_during_a_load_stops_the_thread_at_once(loop, tmp_path):
    """EngineClient.shutdown() while the demo model loads (17 s here): the worker thread ends within a second."""
    from gui_harness import wait_until

    from gui.engine_thread import EngineClient

    client = EngineClient()
    messages = []
    client.load_progress.connect(lambda _f, message: messages.append(message))
    client.load(None, "cpu", "float32", 256)
    wait_until(lambda: messages, 60, "the load to start")
    started = time.perf_counter()
    client.shutdown(timeout_ms=15000)
    seconds = time.perf_counter() - started
    assert all(thread.isFinished() for thread in client._threads)
    TIMES["close during demo load"] = seconds
    assert seconds < 1.5, f"shutdown took {seconds:.1f} s"


def test_report_times(capsys):
    """Not a check: the time each hostile folder took to its one line (pytest -s shows it)."""
    with capsys.disabled():
        for case, seconds in TIMES.items():
            print(f"  {case:32s} {seconds * 1000:8.0f} ms")
