"""Shared pytest set-up: Qt runs headless and the app never touches the user's real data folder."""
from __future__ import annotations

import os
import tempfile

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("BAICHUAN_CHAT_DATA_DIR", tempfile.mkdtemp(prefix="baichuan-chat-tests-"))
os.environ.setdefault("BAICHUAN_CHAT_CACHE_DIR", tempfile.mkdtemp(prefix="baichuan-chat-cache-tests-"))  # quantized cache


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A private, empty app data folder (BAICHUAN_CHAT_DATA_DIR) for one test."""
    path = tmp_path / "app-data"
    monkeypatch.setenv("BAICHUAN_CHAT_DATA_DIR", str(path))
    return path

pytest_plugins = ["gui_harness"]  # GUI fixtures (qasync loop, one demo-model client per session)


@pytest.fixture(scope="session")
def quant_folders(tmp_path_factory):
    """Two small Baichuan2-format folders (RoPE; ALiBi with 6 heads) the int8 and int4 tests quantize."""
    from testkit.fixtures import write_model_folder

    root = tmp_path_factory.mktemp("quant")
    return {
        "rope": write_model_folder(root / "rope", hidden_size=128, num_heads=4, intermediate_size=320, seed=3),
        "alibi": write_model_folder(root / "alibi", position_embedding="alibi", hidden_size=96, num_heads=6,
                                    intermediate_size=256, seed=4),
    }
