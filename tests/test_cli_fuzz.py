"""Fuzzing the CLI's JSON inputs (--input-ids, --messages files): success, or exit >= 1 with one `error:` line."""
from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis.control import currently_in_test_context
from hypothesis import strategies as st

from inference.cli import main as cli
from inference.engine import Engine
from testkit.fixtures import write_model_folder

ROOT = Path(__file__).resolve().parents[1]
MAX_SEQ_LEN = 64
FUZZ = dict(deadline=None, derandomize=True, database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_model_folder(tmp_path_factory.mktemp("fuzz") / "model", model_max_length=MAX_SEQ_LEN, seed=4)


@pytest.fixture(scope="module")
def engine(folder) -> Engine:
    return Engine.load(folder, device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def run(engine):
    """cli.main(argv) in-process with the module's engine (loaded once); returns (exit code, stdout, stderr).

    An exception escaping main() (other than argparse's SystemExit) fails the test: in a real process it
    would be a traceback.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model, busy machine: one thread is ~10x faster per step

    def run_main(argv: list[str]) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(argv)
            except SystemExit as exit_:  # argparse usage errors
                code = exit_.code
        return code, out.getvalue(), err.getvalue()

    with mock.patch.object(cli, "load_engine", lambda args: engine):
        yield run_main
    torch.set_num_threads(threads)


def check_outcome(code, out: str, err: str, as_json: bool = True) -> dict | None:
    """Success with one JSON object (as_json) on stdout, or exit >= 1 with exactly one `error:` line on stderr."""
    if code == 0:
        assert err == "" and out.endswith("\n")
        note("success")
        return json.loads(out) if as_json else None
    assert isinstance(code, int) and code >= 1, code
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and err.endswith("\n"), err
    note(f"exit {code}: {err[7:30]}")
    return None


def note(outcome: str) -> None:
    """Counted in pytest --hypothesis-show-statistics (how often each kind of outcome was reached)."""
    if currently_in_test_context():
        event(outcome)


# ---- strategies ----------------------------------------------------------------------------------------
SPELLINGS = ["</s>", "<s>", "<reserved_195>", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "\ud800", "\x00"]
json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-2**80, max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8), st.sampled_from(SPELLINGS),
)
json_value = st.recursive(
    json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner,
                                                                                     max_size=4)),
    max_leaves=12,
)
deep = st.integers(1, 3000).map(lambda n: "[" * n + "1" + "]" * n)
huge_number = st.integers(4000, 6000).map(lambda n: "[" + "7" * n + "]")
json_oddities = st.sampled_from([
    "NaN", "[NaN]", "Infinity", "[-Infinity]", "[1e999]", "[1.0]", "[1e2]", "[true]", "[null]", "", " ", "[", "]",
    "[1,]", "[01]", "[0x10]", '["1"]', "[[1, 2]]", '{"a": 1}', "\ufeff[1]", "[1] [2]", "[-0]", "[195,196]",
    "[" + ",".join(["5"] * (MAX_SEQ_LEN + 1)) + "]",
])
id_lists = st.lists(st.integers(-3, 1003), max_size=MAX_SEQ_LEN + 2).map(json.dumps)
ids_text = st.one_of(json_value.map(json.dumps), id_lists, id_lists, st.text(max_size=30), deep, huge_number,
                     json_oddities)
max_new = st.one_of(st.none(), st.integers(-2, 6), st.sampled_from([MAX_SEQ_LEN - 1, MAX_SEQ_LEN, 10**12]))

content = st.one_of(
    st.text(max_size=30), st.lists(st.sampled_from(SPELLINGS + ["hi", "你好", " "]), max_size=6).map("".join),
    json_value,
)
role = st.one_of(st.sampled_from(["system", "user", "assistant", "tool", "User", "", " user"]), json_value)
message = st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system"]), "content": st.text(max_size=20)}),
    st.fixed_dictionaries({}, optional={"role": role, "content": content, "name": json_value}),
    json_value,
)
valid_message = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]), "content": st.one_of(
    st.text(max_size=30), st.lists(st.sampled_from(SPELLINGS[:-2] + ["hi", "你好", " "]), max_size=6).map("".join))})
conversation = st.builds(lambda system, rest: ([{"role": "system", "content": system}] if system is not None else [])
                         + rest, st.one_of(st.none(), st.text(max_size=20)), st.lists(valid_message, min_size=1,
                                                                                       max_size=8))
messages = st.one_of(conversation, conversation, st.lists(message, max_size=7))
document = st.one_of(messages, st.fixed_dictionaries({"messages": messages}), st.fixed_dictionaries(
    {}, optional={"messages": json_value, "model": json_value}), json_value)


def serialize(draw_doc, ensure_ascii: bool, bom: bool) -> bytes:
    text = json.dumps(draw_doc, ensure_ascii=ensure_ascii)
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8", "surrogatepass")  # lone surrogates: bad UTF-8


file_bytes = st.one_of(
    st.builds(serialize, document, st.booleans(), st.booleans()),
    st.builds(serialize, document, st.booleans(), st.booleans()),
    st.binary(max_size=40), deep.map(str.encode), huge_number.map(str.encode), json_oddities.map(str.encode),
)


# ---- fuzz ----------------------------------------------------------------------------------------------
@settings(max_examples=4000, **FUZZ)
@given(text=ids_text, new=max_new, greedy=st.booleans())
@example(text="[" * 100000, new=1, greedy=True)
@example(text="9" * 5000, new=1, greedy=True)
def test_fuzz_generate_input_ids(run, engine, text, new, greedy):
    argv = ["generate", "--model", "m", f"--input-ids={text}", "--json"]
    argv += [] if new is None else ["--max-new-tokens", str(new)]
    argv += ["--greedy"] if greedy else ["--seed", "3"]
    result = check_outcome(*run(argv))
    if result is not None:
        ids = json.loads(text)
        assert 1 <= len(result["output_ids"]) <= (new or MAX_SEQ_LEN) and result["finish_reason"] in ("stop", "length")
        assert len(ids) + len(result["output_ids"]) <= MAX_SEQ_LEN
        assert all(0 <= i < engine.config.vocab_size for i in result["output_ids"])


@settings(max_examples=4000, **FUZZ)
@given(data=file_bytes, new=st.one_of(st.integers(1, 12), st.integers(1, 12), max_new))
@example(data=b'[{"role": "user", "content": "\\ud800"}]', new=4)
@example(data=b'[{"role": "assistant", "content": "a"}, {"role": "system", "content": "late"}]', new=4)
@example(data=b"[]", new=4)
@example(data=b'{"messages": []}', new=4)
def test_fuzz_encode_messages_file(run, engine, tmp_path_factory, data, new):
    path = tmp_path_factory.getbasetemp() / "fuzz-messages.json"
    path.write_bytes(data)
    argv = ["encode", "--model", "m", "--messages", str(path), "--json"]
    argv += [] if new is None else ["--max-new-tokens", str(new)]
    result = check_outcome(*run(argv))
    if result is not None:
        budget = result["budget"]
        assert budget["prompt_tokens"] == len(result["input_ids"]) >= 1
        assert budget["prompt_tokens"] + budget["max_new_tokens"] <= MAX_SEQ_LEN == budget["max_seq_len"]
        assert all(0 <= i < engine.config.vocab_size for i in result["input_ids"])
        assert result["dropped_rounds"] >= 0


FLAGS = ["generate", "encode", "--model", "m", "--input-ids", "--messages", "--max-new-tokens", "--json",
         "--greedy", "--seed", "--device", "--dtype", "--max-seq-len", "-x", "--", "[1]", "[195, 5, 196]", "5", "-1",
         "cpu", "npu", "float32", "nonsense", "{}", "[1.5]"]


@settings(max_examples=2000, **FUZZ)
@given(command=st.sampled_from(["generate", "encode"]), value=st.one_of(st.sampled_from(FLAGS + ["@FILE"] * 4),
                                                                         st.text(max_size=6), ids_text),
       rest=st.lists(st.one_of(st.sampled_from(FLAGS), st.text(max_size=6)), max_size=7))
@example(command="encode", value="no\nsuch.json", rest=[])  # the file name goes into the message
@example(command="generate", value="[1]", rest=["a\nb"])  # argparse quotes the stray argument
@example(command="generate", value="[1]", rest=["a\x85b"])  # NEL: a line break to str.splitlines
def test_fuzz_argv(run, tmp_path_factory, command, value, rest):
    """Arbitrary arguments around the required one (the seed flow and bench read stdin or run benchmarks;
    --device, --dtype and --max-seq-len go to Engine.load, replaced here by the module's engine)."""
    messages = tmp_path_factory.getbasetemp() / "fuzz-argv-messages.json"
    if not messages.exists():
        messages.write_text('[{"role": "user", "content": "hi"}]')
    value = str(messages) if value == "@FILE" else value
    rest = [a for a in rest if a not in ("--device", "--dtype", "--max-seq-len")]
    check_outcome(*run([command, "--input-ids" if command == "generate" else "--messages", value] + rest),
                  as_json=False)


def test_huge_message_content(run, tmp_path):
    """A 2 MB message: the newest round is always taken and the prompt is cut from the left to the budget."""
    big = json.dumps([{"role": "system", "content": "s" * 1000}, {"role": "user", "content": "你好 hello " * 200000}])
    file = tmp_path / "big.json"
    file.write_text(big, encoding="utf-8")
    result = check_outcome(*run(["encode", "--model", "m", "--messages", str(file), "--max-new-tokens", "8",
                                 "--json"]))
    assert result["budget"]["prompt_tokens"] == MAX_SEQ_LEN - 8 and result["dropped_rounds"] == 0


# ---- a few real processes: what the user sees ----------------------------------------------------------
@pytest.mark.parametrize("kind", ["huge-int-ids", "deep-messages", "lone-surrogate-messages"])
def test_real_process_prints_one_error_line(folder, tmp_path, kind):
    messages = tmp_path / "messages.json"
    messages.write_text("[" * 50000 if kind == "deep-messages" else '[{"role": "user", "content": "a\\udc80"}]')
    args = (["generate", "--input-ids", "[" + "9" * 5000 + "]", "--max-new-tokens", "2"] if kind == "huge-int-ids"
            else ["encode", "--messages", str(messages), "--max-new-tokens", "2", "--json"])
    result = subprocess.run([sys.executable, "-m", "inference", *args[:1], "--model", str(folder), *args[1:]],
                            capture_output=True, text=True, cwd=ROOT, timeout=180)
    assert result.returncode == 1 and result.stdout == "", result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
