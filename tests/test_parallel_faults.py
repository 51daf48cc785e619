"""Tensor parallel when things go wrong: a killed or hung rank is one clear error within seconds and the model
loads again on one device; what cannot split is a one-line error before any process starts."""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch.distributed as dist

from inference.engine import Engine
from inference.errors import DeviceError, InputError
from testkit.fixtures import write_model_folder
from inference.parallel.backend import device_count

IDS = [195, 31, 47, 59, 196]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_model_folder(tmp_path_factory.mktemp("tp") / "m", position_embedding="alibi")


def greedy_ids(engine, ids=IDS, max_new=8):
    sampling = engine.default_sampling(do_sample=False, repetition_penalty=1.0)
    return list(engine.generate(ids, max_new, sampling))[-1].output_ids


def fails_within(engine, seconds):
    started = time.monotonic()
    with pytest.raises(DeviceError) as caught:
        greedy_ids(engine)
    assert time.monotonic() - started < seconds
    return str(caught.value)


def test_killed_rank_is_one_error_then_one_device_works(folder):
    one = Engine.load(folder, device="cpu", dtype="float32")
    expected = greedy_ids(one)
    two = Engine.load(folder, device="cpu", dtype="float32", tensor_parallel=2)
    assert greedy_ids(two) == expected
    worker = two.model.group.workers.procs[0]
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=5)
    message = fails_within(two, 5)
    assert "rank 1" in message and "SIGKILL" in message and "\n" not in message, message
    assert fails_within(two, 1) == message  # the engine keeps saying so, and holds no group any more
    assert not dist.is_initialized()
    again = Engine.load(folder, device="cpu", dtype="float32")  # the app stays usable
    assert greedy_ids(again) == expected


def test_rank_killed_mid_answer(folder):
    two = Engine.load(folder, device="cpu", dtype="float32", tensor_parallel=2)
    sampling = two.default_sampling(do_sample=False, repetition_penalty=1.0)
    started = None
    with pytest.raises(DeviceError, match="rank 1"):
        for i, _event in enumerate(two.generate(IDS, 200, sampling)):
            if i == 2:
                os.kill(two.model.group.workers.pids[0], signal.SIGKILL)
                started = time.monotonic()
    assert time.monotonic() - started < 5
    reloaded = Engine.load(folder, device="cpu", dtype="float32", tensor_parallel=2)  # and two ranks again
    try:
        assert greedy_ids(reloaded) == greedy_ids(Engine.load(folder, device="cpu", dtype="float32"))
    finally:
        reloaded.close()


def test_hung_rank_times_out(folder, monkeypatch):
    monkeypatch.setenv("BAICHUAN_CHAT_TP_TIMEOUT", "3")
    two = Engine.load(folder, device="cpu", dtype="float32", tensor_parallel=2)
    pid = two.model.group.workers.pids[0]
    os.kill(pid, signal.SIGSTOP)
    try:
        message = fails_within(two, 10)
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    assert "did not answer within 3 s" in message, message
    assert two.model.group.workers.procs[0].poll() is not None  # the silent rank was stopped


def test_what_cannot_split(folder, monkeypatch):
    with pytest.raises(InputError, match="4 attention heads are not divisible by 3"):
        Engine.load(folder, device="cpu", tensor_parallel=3)
    with pytest.raises(InputError, match="positive integer"):
        Engine.load(folder, device="cpu", tensor_parallel=0)
    with pytest.raises(InputError, match="model folder"):
        Engine.load(None, device="cpu", tensor_parallel=2)
    monkeypatch.setenv("BAICHUAN_CHAT_TP_BACKEND", "carrier-pigeon")
    with pytest.raises(DeviceError, match="unknown tensor-parallel backend 'carrier-pigeon'"):
        Engine.load(folder, device="cpu", tensor_parallel=2)
    monkeypatch.setenv("BAICHUAN_CHAT_TP_BACKEND", "nccl")
    if not dist.is_nccl_available():
        with pytest.raises(DeviceError, match="no NCCL backend"):
            Engine.load(folder, device="cpu", tensor_parallel=2)
    assert not dist.is_initialized()


def test_too_few_devices_is_one_cli_line(tmp_path):
    """More ranks than CPU cores: `generate --tensor-parallel N` ends with one error line, exit status 1."""
    world = 2 ** math.ceil(math.log2(device_count("cpu") + 1))
    small = write_model_folder(tmp_path / "wide", num_heads=world, hidden_size=2 * world, intermediate_size=2 * world)
    run = subprocess.run([sys.executable, "-m", "inference", "generate", "--model", str(small), "--device", "cpu",
                          "--input-ids", "[195, 5, 196]", "--max-new-tokens", "2", "--tensor-parallel", str(world)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.startswith(f"error: --tensor-parallel {world} needs {world} CPU cores but only ")
    assert run.stderr.count("\n") == 1, run.stderr
