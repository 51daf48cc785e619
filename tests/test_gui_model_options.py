"""The model dialog's quantization and tensor-parallel choices reach the engine the window loads."""
from __future__ import annotations

import os
import time

import pytest

from gui_harness import run_async, type_and_send, wait_answer

from gui.engine_thread import EngineClient
from gui.model_dialog import ModelDialog
from testkit.fixtures import write_model_folder


@pytest.fixture
def fresh_client(loop):
    client = EngineClient()
    yield client
    client.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_model_folder(tmp_path_factory.mktemp("options") / "model", hidden_size=64, num_heads=4,
                              model_max_length=256, seed=3)


def choose(folder, quantize: str, devices: int) -> dict:
    dialog = ModelDialog(str(folder), "cpu", "float32")
    dialog.quantize.setCurrentText(quantize)
    dialog.tensor_parallel.setValue(devices)
    choice = dialog.choice()
    dialog.deleteLater()
    return choice


def test_dialog_quantize_choice_loads_an_int8_model_and_is_remembered(open_window, fresh_client, folder, qtbot):
    window = open_window(fresh_client)
    choice = choose(folder, "int8", 1)
    assert choice["quantize"] == "int8" and choice["tensor_parallel"] == 1
    info = run_async(window.load_model(**choice), 120)
    assert info["quantize"] == "int8" and fresh_client.worker._engine.quantize == "int8"
    reopened = ModelDialog("", "auto", "auto", quantize=window.store.get_state("quantize"))
    assert reopened.quantize.currentText() == "int8"  # the next dialog starts from the last choice
    reopened.deleteLater()
    type_and_send(qtbot, window, "hello")
    wait_answer(window, 60)
    assert window.store.get_conversation(window.controller.conversation_id).messages[-1].status == "complete"


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="tensor parallel on the CPU needs 2 cores")
def test_dialog_two_devices_split_the_model_and_a_reload_on_one_stops_the_ranks(open_window, fresh_client, folder):
    window = open_window(fresh_client)
    info = run_async(window.load_model(**choose(folder, "none", 2)), 180)
    assert info["tensor_parallel"] == 2
    ranks = fresh_client.worker._engine.model.group.workers.procs
    assert len(ranks) == 1 and ranks[0].poll() is None
    info = run_async(window.load_model(**choose(folder, "none", 1)), 120)
    assert info["tensor_parallel"] == 1
    deadline = time.monotonic() + 10
    while ranks[0].poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ranks[0].poll() is not None, "the worker rank outlived its model"
