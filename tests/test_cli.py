"""The CLI contract: `generate` and `encode` JSON, the seed flow over stdin, one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from inference.engine import Engine
from testkit.fixtures import write_model_folder

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, stdin: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inference", *args], input=stdin, capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_model_folder(tmp_path_factory.mktemp("cli") / "model", model_max_length=128, seed=3)


@pytest.fixture(scope="module")
def engine(folder) -> Engine:
    return Engine.load(folder, device="cpu", dtype="float32")


def test_generate_json_matches_engine_greedy(folder, engine):
    ids = [195, 40, 41, 42, 196]
    result = run_cli("generate", "--model", str(folder), "--input-ids", json.dumps(ids), "--max-new-tokens", "6",
                     "--greedy", "--dtype", "float32", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    events = list(engine.generate(ids, 6, engine.default_sampling(do_sample=False, repetition_penalty=1.0)))
    assert out["output_ids"] == events[-1].output_ids
    assert len(out["output_ids"]) <= 6 and out["finish_reason"] in ("stop", "length")
    for key in ("ttft_s", "prefill_tokens_per_s", "decode_tokens_per_s", "prompt_tokens", "output_tokens"):
        assert key in out["metrics"]
    assert out["metrics"]["prompt_tokens"] == len(ids)


def test_generate_sampling_is_seeded(folder):
    args = ["generate", "--model", str(folder), "--input-ids", "[195, 50, 196]", "--max-new-tokens", "8",
            "--temperature", "1.5", "--top-k", "50", "--top-p", "0.95", "--seed", "7", "--json"]
    first, second = run_cli(*args), run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["output_ids"] == json.loads(second.stdout)["output_ids"]


def test_encode_json_uses_baichuan2_chat_rule(folder, engine, tmp_path):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"},
                {"role": "assistant", "content": "hi"}, {"role": "user", "content": "你好"}]
    path = tmp_path / "messages.json"
    path.write_text(json.dumps(messages, ensure_ascii=False), encoding="utf-8")
    result = run_cli("encode", "--model", str(folder), "--messages", str(path), "--max-new-tokens", "16", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    tok = engine.tokenizer
    expected = (tok.encode("Be brief.") + [195] + tok.encode("hello") + [196] + tok.encode("hi") + [195]
                + tok.encode("你好") + [196])
    assert out["input_ids"] == expected
    assert out["dropped_rounds"] == 0
    assert out["budget"]["prompt_tokens"] == len(expected) and out["budget"]["max_new_tokens"] == 16


def test_seed_flow_stream_toggle_clear_exit(folder):
    script = "hello\nstream\nhow are you\nclear\nexit\nnever reached\n"
    result = run_cli("--model", str(folder), "--dtype", "float32", "--max-seq-len", "128", stdin=script)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("Assistant:") == 4  # two offline inferences + two chat answers
    assert "streaming off" in out and "history cleared" in out
    assert out.count("tok/s") >= 4


@pytest.mark.parametrize("args, needle", [
    (["--input-ids", "[1, 99999999]"], "outside the vocabulary"),
    (["--input-ids", "[-1]"], "outside the vocabulary"),
    (["--input-ids", "{\"a\": 1}"], "JSON list"),
    (["--input-ids", "[]"], "empty"),
    (["--input-ids", "[1, 2]", "--max-new-tokens", "0"], "positive"),
    (["--input-ids", "[1, 2]", "--max-new-tokens", "500"], "MAX_SEQ_LEN"),
    (["--input-ids", "[1, 2]", "--temperature", "-1"], "temperature"),
    (["--input-ids", "[1, 2]", "--top-p", "1.5"], "top_p"),
])
def test_bad_generate_input_is_one_error_line(folder, args, needle):
    result = run_cli("generate", "--model", str(folder), "--max-new-tokens", "4", *args, "--json")
    assert result.returncode >= 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert needle.lower() in lines[0].lower()
    assert "Traceback" not in result.stderr


def test_missing_model_folder_is_one_error_line(tmp_path):
    result = run_cli("generate", "--model", str(tmp_path / "nope"), "--input-ids", "[1]", "--json")
    assert result.returncode >= 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error:")
