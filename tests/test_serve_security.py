"""start_server's guards, in-process on a small Baichuan2 folder: bind rules, CORS, header/body limits, slow clients."""
from __future__ import annotations

import http.client
import json
import socket
import time

import pytest

from inference.engine import Engine
from inference.errors import InputError
from testkit.fixtures import write_model_folder
from inference.serve import app as serve_app
from inference.serve import server as serve_server
from inference.serve import start_server

BODY = json.dumps({"messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}).encode()


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    return Engine.load(write_model_folder(tmp_path_factory.mktemp("m") / "small"), device="cpu", dtype="float32")


@pytest.fixture
def serve(engine, monkeypatch):
    monkeypatch.setattr(serve_server, "KEEPALIVE_S", 1.0)
    monkeypatch.setattr(serve_app, "BODY_TIMEOUT_S", 1.0)
    handles = []

    def start(**kwargs):
        handles.append(start_server(lambda: engine, port=0, **kwargs))
        return handles[-1]
    yield start
    for handle in handles:
        handle.stop()


def request(handle, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", handle.port, timeout=10)
    conn.request(method, "/v1" + path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response, data


def test_other_hosts_need_a_key_or_an_explicit_flag(serve):
    with pytest.raises(InputError, match="--api-key"):
        start_server(lambda: None, host="0.0.0.0", port=0)
    handle = serve(host="0.0.0.0", allow_no_key=True)
    assert "without an API key" in handle.warning and handle.url == f"http://0.0.0.0:{handle.port}/v1"
    assert serve().warning is None  # 127.0.0.1: nothing to warn about


def test_no_cors_unless_asked(serve):
    plain = serve()
    response, _ = request(plain, "OPTIONS", "/chat/completions", headers={"Origin": "http://evil.example"})
    assert response.status == 405 and response.getheader("Access-Control-Allow-Origin") is None
    response, _ = request(plain, "GET", "/models", headers={"Origin": "http://evil.example"})
    assert response.status == 200 and response.getheader("Access-Control-Allow-Origin") is None
    allowed = serve(cors_origin="http://localhost:3000", api_key="k")
    response, _ = request(allowed, "OPTIONS", "/chat/completions", headers={"Origin": "http://localhost:3000"})
    assert response.status == 204 and response.getheader("Access-Control-Allow-Origin") == "http://localhost:3000"
    response, data = request(allowed, "GET", "/models")  # the preflight needs no key; the request does
    assert response.status == 401 and response.getheader("Access-Control-Allow-Origin") == "http://localhost:3000"


def test_header_and_message_limits(serve):
    handle = serve()
    many = {f"X-H{i}": "v" for i in range(serve_server.MAX_HEADERS + 10)}
    response, _ = request(handle, "POST", "/chat/completions", BODY, many)
    assert response.status in (400, 431)
    response, _ = request(handle, "POST", "/chat/completions", BODY, {"X-Big": "v" * (serve_server.MAX_FIELD_BYTES + 10)})
    assert response.status in (400, 431)
    messages = [{"role": "user", "content": "x"}] * 1025
    response, data = request(handle, "POST", "/chat/completions", json.dumps({"messages": messages}).encode())
    assert response.status == 400 and json.loads(data)["error"]["param"] == "messages"
    response, data = request(handle, "POST", "/chat/completions", BODY)
    assert response.status == 200 and json.loads(data)["usage"]["completion_tokens"] >= 1


def closed_within(sock: socket.socket, seconds: float) -> bytes:
    """What the server sends before it closes the connection (fails if it is still open after `seconds`)."""
    sock.settimeout(seconds)
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk


def test_slow_and_half_open_clients_time_out(serve):
    handle = serve()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", handle.port)) as sock:  # headers that never end
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        closed_within(sock, 5)
    assert time.monotonic() - started < 4
    with socket.create_connection(("127.0.0.1", handle.port)) as sock:  # a body that never arrives
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 500\r\n\r\n{\"messages\":")
        reply = closed_within(sock, 5)
    assert reply.startswith(b"HTTP/1.1 408") and b"did not arrive" in reply
