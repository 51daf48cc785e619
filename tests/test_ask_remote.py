"""`ask`: the demo model in-process and --remote against our own `serve` and llama.cpp's OpenAI server; clear errors."""
from __future__ import annotations

import http.server
import importlib.util
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from serve_harness import ROOT, ServeProcess

KEY = "ask-key"
QUESTION = "What is the capital of France?"


def ask(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inference", "ask", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def server():
    serve = ServeProcess("--api-key", KEY)
    yield serve
    serve.close()


def test_ask_remote_streams_the_same_answer_as_the_local_demo_model(server):
    remote = ask("--remote", server.url, "--api-key", KEY, "--greedy", "--json", QUESTION)
    assert remote.returncode == 0, remote.stderr
    result = json.loads(remote.stdout)
    assert set(result) == {"text", "finish_reason", "metrics"} and "Paris" in result["text"]
    assert result["finish_reason"] == "stop"
    m = result["metrics"]
    assert m["ttft_s"] > 0 and m["usage_from_server"] and m["prompt_tokens"] > 10 and m["output_tokens"] >= 5
    local = ask("--greedy", "--json", QUESTION)  # no --model, no --remote: the demo model
    assert local.returncode == 0, local.stderr
    assert json.loads(local.stdout)["text"] == result["text"]
    streamed = ask("--remote", server.url.removesuffix("/v1"), "--api-key", KEY, "--greedy", "--system",
                   "Answer in one sentence.", QUESTION)
    assert streamed.returncode == 0 and "Paris" in streamed.stdout
    assert streamed.stderr.startswith("[stop,") and "TTFT" in streamed.stderr


def one_line_error(result: subprocess.CompletedProcess, *parts: str) -> None:
    assert result.returncode == 1 and result.stdout == "", result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for part in parts:
        assert part in lines[0], lines[0]


def test_remote_errors_are_one_line(server):
    one_line_error(ask("--remote", server.url, "--api-key", "wrong", QUESTION), "refused the API key (401)")
    one_line_error(ask("--remote", server.url, QUESTION), "(401)")
    one_line_error(ask("--remote", server.url, "--api-key", KEY, "--remote-model", "nope", QUESTION),
                   "has no model 'nope'", "it serves:")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    one_line_error(ask("--remote", f"http://127.0.0.1:{port}/v1", QUESTION), "cannot reach", "is the server running?")
    one_line_error(ask("--remote", "ftp://example/v1", QUESTION), "must look like http://HOST:PORT/v1")
    one_line_error(ask("--remote", server.url, "--model", "x", QUESTION), "cannot be combined")
    one_line_error(ask("--api-key", KEY, QUESTION), "--api-key needs --remote")


class _Garbled(http.server.BaseHTTPRequestHandler):
    """A server that speaks HTTP but not OpenAI's protocol (a wrong URL, a proxy's error page)."""

    def do_GET(self):  # noqa: N802
        body = b'{"data": [{"id": "m"}]}' if self.server.models_ok else b"<html>proxy error</html>"
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.write(b"data: {not json\n\n")

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("models_ok, message", [(False, "not OpenAI's JSON list"), (True, "chunk that is not JSON")])
def test_a_server_that_does_not_speak_the_protocol(models_ok, message):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Garbled)
    httpd.models_ok = models_ok
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        one_line_error(ask("--remote", f"http://127.0.0.1:{httpd.server_port}/v1", QUESTION), message)
    finally:
        httpd.shutdown()


def test_ask_remote_against_llama_cpp_server(tmp_path):
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (`make llamacpp`)")
    try:
        import llama_cpp.server.app  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"llama_cpp.server is not importable ({exc}); pip install 'llama-cpp-python[server]' deps")
    from inference.modeling.gguf_model import find_demo_gguf

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path / "llama-server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(find_demo_gguf()),
                             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(url + "/models", timeout=2).read()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "llama-server.log").read_text()
                time.sleep(0.3)
        result = ask("--remote", url, "--greedy", "--max-new-tokens", "24", "--json", QUESTION)
        assert result.returncode == 0, result.stderr
        answer = json.loads(result.stdout)
        assert answer["text"].strip() and answer["finish_reason"] in ("stop", "length")
        assert answer["metrics"]["ttft_s"] > 0 and answer["metrics"]["output_tokens"] >= 1
        # The streamed text is what llama.cpp answers to the same request in one piece.
        body = json.dumps({"messages": [{"role": "user", "content": QUESTION}], "temperature": 0,
                           "max_tokens": 24}).encode()
        request = urllib.request.Request(url + "/chat/completions", body, {"Content-Type": "application/json"})
        plain = json.loads(urllib.request.urlopen(request, timeout=60).read())
        assert plain["choices"][0]["message"]["content"] == answer["text"]
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
