"""Environment faults: a torch_npu without CANN breaking `import torch`, out of memory, absent devices, odd stdout."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from inference.cli import main as cli
from testkit.fixtures import write_model_folder
from inference.torch_guard import CANN_ADVICE

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 180


def run_python(args: list[str], env_extra: dict | None = None, timeout: float = TIMEOUT,
               drop: tuple[str, ...] = ("TORCH_DEVICE_BACKEND_AUTOLOAD",)) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=timeout)


def assert_one_error_line(result: subprocess.CompletedProcess, *needles: str) -> str:
    assert result.returncode >= 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_model_folder(tmp_path_factory.mktemp("env") / "model", model_max_length=128, seed=7)


# ---- torch_npu installed without CANN ------------------------------------------------------------------
@pytest.fixture(scope="module")
def broken_npu(tmp_path_factory) -> dict:
    """PYTHONPATH holding a stand-in for torch_npu on a machine without CANN.

    What the real thing does (checked by hand with torch_npu-2.13.0-cp311 installed with
    `pip install --no-deps --target DIR` next to this torch 2.13.0 CPU build, no CANN on the machine):
    torch_npu's dist-info declares `[torch.backends] torch_npu = torch_npu:_autoload`; at the end of
    `import torch`, torch._import_device_backends() loads every entry point of that group; importing
    torch_npu fails inside torch_npu/npu/utils.py (`import torch_npu._C`) with
        ImportError: libhccl.so: cannot open shared object file: No such file or directory
    and torch re-raises it as
        RuntimeError: Failed to load the backend extension: torch_npu. You can disable extension
        auto-loading with TORCH_DEVICE_BACKEND_AUTOLOAD=0.
    so `import torch` itself fails. Here a real (tiny) distribution of the same name and entry point, whose
    module raises that ImportError, reproduces this without the 43 MB wheel; nothing is installed.
    """
    site = tmp_path_factory.mktemp("broken-npu") / "site"
    package = site / "torch_npu"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        '"""Stand-in for torch_npu on a machine without CANN: its native part cannot be loaded."""\n'
        'raise ImportError("libhccl.so: cannot open shared object file: No such file or directory")\n')
    info = site / "torch_npu-2.13.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: torch_npu\nVersion: 2.13.0\n")
    (info / "entry_points.txt").write_text("[torch.backends]\ntorch_npu = torch_npu:_autoload\n")
    (info / "top_level.txt").write_text("torch_npu\n")
    return {"PYTHONPATH": str(site)}


def test_stand_in_breaks_import_torch_as_torch_npu_does(broken_npu):
    result = run_python(["-c", "import torch"], broken_npu)
    assert result.returncode != 0
    assert ("RuntimeError: Failed to load the backend extension: torch_npu. You can disable extension "
            "auto-loading with TORCH_DEVICE_BACKEND_AUTOLOAD=0.") in result.stderr
    assert "ImportError: libhccl.so: cannot open shared object file" in result.stderr


@pytest.mark.parametrize("command", ["generate", "encode"])
def test_cli_says_to_source_cann_or_disable_autoload(broken_npu, folder, tmp_path, command):
    messages = tmp_path / "messages.json"
    messages.write_text('[{"role": "user", "content": "hi"}]')
    args = (["--input-ids", "[195, 40, 196]", "--max-new-tokens", "2"] if command == "generate"
            else ["--messages", str(messages), "--max-new-tokens", "2"])
    result = run_python(["-m", "inference", command, "--model", str(folder), *args], broken_npu)
    line = assert_one_error_line(result, "set_env.sh", "TORCH_DEVICE_BACKEND_AUTOLOAD=0")
    assert line == f"error: {CANN_ADVICE}"


def test_guard_gives_the_same_advice_when_asked_again(broken_npu):
    """A second `import torch` after the failed one fails differently ("Only a single TORCH_LIBRARY..."):
    the GUI asks again on every model load, and must still name CANN."""
    script = "import json; from inference.torch_guard import torch_import_problem as p; print(json.dumps([p(), p()]))"
    result = run_python(["-c", script], broken_npu)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [CANN_ADVICE, CANN_ADVICE]


def test_gui_start_says_what_to_do(broken_npu, tmp_path):
    env = {**broken_npu, "QT_QPA_PLATFORM": "offscreen", "BAICHUAN_CHAT_DATA_DIR": str(tmp_path / "data")}
    result = run_python(["-m", "gui"], env, timeout=90)  # without the check the window opens and waits
    assert_one_error_line(result, "set_env.sh", "TORCH_DEVICE_BACKEND_AUTOLOAD=0")
    helped = run_python(["-m", "gui", "--help"], env)
    assert helped.returncode == 0 and "usage:" in helped.stdout and not helped.stderr


def test_autoload_off_runs_on_the_cpu_and_npu_request_is_one_line(broken_npu, folder, tmp_path):
    """The advice works: with TORCH_DEVICE_BACKEND_AUTOLOAD=0 the CLI runs on the CPU; asking for the NPU
    (whose torch_npu cannot import) is one error line."""
    messages = tmp_path / "messages.json"
    messages.write_text('[{"role": "user", "content": "hi"}]')
    script = textwrap.dedent(f"""
        import contextlib, io, json
        from inference.cli.main import main
        out = []
        for argv in (["encode", "--model", {str(folder)!r}, "--messages", {str(messages)!r}, "--max-new-tokens",
                      "2", "--json"],
                     ["generate", "--model", {str(folder)!r}, "--input-ids", "[5]", "--max-new-tokens", "1",
                      "--device", "npu"]):
            stdout, stderr = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                rc = main(argv)
            out.append([rc, stdout.getvalue(), stderr.getvalue()])
        print(json.dumps(out))
    """)
    result = run_python(["-c", script], {**broken_npu, "TORCH_DEVICE_BACKEND_AUTOLOAD": "0"})
    assert result.returncode == 0, result.stderr
    (rc_encode, out_encode, err_encode), (rc_npu, out_npu, err_npu) = json.loads(result.stdout)
    assert rc_encode == 0 and not err_encode and json.loads(out_encode)["input_ids"][0] == 195
    assert rc_npu == 1 and not out_npu and len(err_npu.splitlines()) == 1
    assert err_npu.startswith("error: no Ascend NPU is available") and "set_env.sh" in err_npu


# ---- devices that are not there ------------------------------------------------------------------------
@pytest.mark.parametrize("device, needle", [("npu", "no Ascend NPU is available"), ("cuda", "no CUDA GPU")])
def test_absent_device_is_one_line(folder, capsys, device, needle):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    rc = cli.main(["generate", "--model", str(folder), "--input-ids", "[5]", "--max-new-tokens", "1",
                   "--device", device])
    captured = capsys.readouterr()
    assert rc == 1 and not captured.out
    assert len(captured.err.splitlines()) == 1 and captured.err.startswith(f"error: {needle}")


# ---- out of memory -------------------------------------------------------------------------------------
def test_cpu_allocator_failure_counts_as_out_of_memory():
    from inference.torch_guard import is_out_of_memory

    with pytest.raises(RuntimeError) as failure:
        torch.empty(1 << 62, dtype=torch.uint8)  # torch's CPU allocator: RuntimeError, not OutOfMemoryError
    assert not isinstance(failure.value, torch.OutOfMemoryError)
    assert is_out_of_memory(failure.value)
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("shape mismatch")) and not is_out_of_memory(ValueError("memory"))


OOM_SCRIPT = '''
import contextlib, io, json, resource, sys
import torch
from inference.cli import main as cli
from inference.engine import Engine

big_folder, alibi_folder, headroom = sys.argv[1], sys.argv[2], int(sys.argv[3])
engine = Engine.load(alibi_folder, device="cpu", dtype="float32", max_seq_len=4096)
greedy = engine.default_sampling(do_sample=False, repetition_penalty=1.0)
short = [195, 40, 41, 42, 196]
long_prompt = [3 + i % 900 for i in range(4000)]  # ALiBi prefill: 4 heads x 4000 x 4000 float32 bias = 256 MB

def answer(ids):
    return list(engine.generate(ids, 4, greedy))[-1].output_ids

def attempt(fn):
    try:
        return {"ok": fn()}
    except Exception as exc:
        return {"error": type(exc).__name__, "message": str(exc)}

def cli_run(argv):
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        rc = cli.main(argv)
    return {"rc": rc, "stderr": err.getvalue()}

results = {"before": answer(short)}  # everything imported and warmed up before the limit
vm = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (vm + headroom, resource.RLIM_INFINITY))
# KV cache for model_max_length 2**20: 2 layers x (k, v) x 2**20 x 64 float32 = 1 GiB.
results["load_big"] = attempt(lambda: Engine.load(big_folder, device="cpu", dtype="float32").max_seq_len)
results["load_small"] = attempt(lambda: Engine.load(big_folder, device="cpu", dtype="float32",
                                                    max_seq_len=256).max_seq_len)
results["prefill_big"] = attempt(lambda: answer(long_prompt))
results["after"] = attempt(lambda: answer(short))
results["cli_load_big"] = cli_run(["generate", "--model", big_folder, "--input-ids", "[5]", "--max-new-tokens",
                                   "1", "--dtype", "float32"])
print(json.dumps(results))
'''


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux's")
def test_out_of_memory_in_load_and_prefill_is_reported_and_engine_recovers(tmp_path):
    """Real allocation failures under an address-space limit (RLIMIT_AS), in a subprocess: loading a model
    whose KV cache cannot be allocated and a prefill whose attention bias cannot be allocated are each a
    one-sentence DeviceError, and afterwards a smaller load and a short request work (same answer as before)."""
    big = write_model_folder(tmp_path / "big", model_max_length=1 << 20, seed=1)
    alibi = write_model_folder(tmp_path / "alibi", position_embedding="alibi", model_max_length=4096, seed=2)
    script = tmp_path / "oom.py"
    script.write_text(OOM_SCRIPT)
    # Without the C kernels: the ALiBi prefill then builds its float32 bias (the kernels need none; their own
    # allocation failures are tested in tests/test_attention_kernels.py).
    env = {"OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2", "PYTHONPATH": str(ROOT), "BAICHUAN_NO_CPU_KERNELS": "1"}
    result = run_python([str(script), str(big), str(alibi), str(128 << 20)], env)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout)
    for key, during in (("load_big", "while loading the model"), ("prefill_big", "during prefill")):
        assert out[key].get("error") == "DeviceError", out[key]
        message = out[key]["message"]
        assert message.startswith("out of memory on cpu") and during in message and "\n" not in message
    assert out["load_small"] == {"ok": 256}
    assert out["after"] == {"ok": out["before"]}
    assert out["cli_load_big"]["rc"] == 1
    assert out["cli_load_big"]["stderr"].startswith("error: out of memory on cpu while loading the model")
    assert len(out["cli_load_big"]["stderr"].splitlines()) == 1


# ---- a console that cannot show the text ---------------------------------------------------------------
def test_stdout_without_unicode_gets_escapes_not_a_traceback(folder):
    """E.g. PYTHONIOENCODING=ascii or a legacy console code page: the answer's Chinese cannot be printed."""
    script = textwrap.dedent(f"""
        import torch
        from inference.cli.main import main
        from inference.engine import Engine
        engine = Engine.load({str(folder)!r}, device="cpu", dtype="float32")
        greedy = engine.default_sampling(do_sample=False, repetition_penalty=1.0)
        prompt = next(p for p in ([195, i, 196] for i in range(300, 1000))
                      if not list(engine.generate(p, 6, greedy))[-1].text.isascii())
        base = ["generate", "--model", {str(folder)!r}, "--input-ids", str(prompt), "--max-new-tokens", "6",
                "--greedy", "--dtype", "float32"]
        assert main(base + ["--json"]) == 0
        assert main(base) == 0
    """)
    result = run_python(["-c", script], {"PYTHONIOENCODING": "ascii"})
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    json_line, text_output = result.stdout.split("\n", 1)
    answer = json.loads(json_line)["text"]
    assert not answer.isascii()
    assert text_output == answer.encode("ascii", "backslashreplace").decode("ascii") + "\n"
