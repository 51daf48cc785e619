"""`serve` driven by the official openai client: models, plain and streamed answers, usage, errors, queue, disconnect, SIGTERM."""
from __future__ import annotations

import http.client
import json
import threading
import time
from urllib.parse import urlsplit

import pytest

openai = pytest.importorskip("openai", reason="the openai client is a test extra (pip install -e '.[test]')")

from serve_harness import ServeProcess  # noqa: E402

KEY = "test-key-123"
MAX_SEQ_LEN = 1024
FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
COUNT = [{"role": "user", "content": "Count from 1 to 1000, separated by commas."}]


@pytest.fixture(scope="module")
def server():
    serve = ServeProcess("--api-key", KEY, "--max-seq-len", str(MAX_SEQ_LEN))
    yield serve
    serve.close()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url, api_key=KEY, max_retries=0, timeout=120)


def raw(server, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """One plain HTTP request: (status, decoded JSON body)."""
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    conn.request(method, parts.path + path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, json.loads(data)


def error_of(exc) -> dict:
    body = exc.value.response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_models_list(client, server):
    models = client.models.list().data
    assert len(models) == 1 and models[0].id
    assert "demo model" in server.lines[0] and server.url.startswith("http://127.0.0.1:")


def test_plain_and_streamed_answers_agree_with_usage(client):
    plain = client.chat.completions.create(model=client.models.list().data[0].id, messages=FRANCE, temperature=0,
                                           max_tokens=40)
    text = plain.choices[0].message.content
    assert "Paris" in text and plain.choices[0].finish_reason == "stop"
    assert plain.usage.prompt_tokens > 10 and 1 <= plain.usage.completion_tokens <= 40
    assert plain.usage.total_tokens == plain.usage.prompt_tokens + plain.usage.completion_tokens
    chunks = list(client.chat.completions.create(messages=FRANCE, model="", temperature=0, max_tokens=40,
                                                 stream=True, stream_options={"include_usage": True}))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump() == plain.usage.model_dump()
    short = client.chat.completions.create(messages=FRANCE, model="", temperature=0, max_completion_tokens=3)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 3
    cut = client.chat.completions.create(messages=FRANCE, model="", temperature=0, max_tokens=40, stop=[" Paris"])
    assert cut.choices[0].message.content == text[:text.index(" Paris")]


def test_a_key_is_required(server):
    wrong = openai.OpenAI(base_url=server.url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as exc:
        wrong.models.list()
    assert exc.value.status_code == 401 and error_of(exc)["code"] == "invalid_api_key"
    status, body = raw(server, "POST", "/chat/completions", json.dumps({"messages": FRANCE}).encode())
    assert status == 401 and body["error"]["code"] == "invalid_api_key"


def test_bad_requests_get_openai_errors(client, server):
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(messages=FRANCE, model="", max_tokens=MAX_SEQ_LEN)
    error = error_of(exc)
    assert error["code"] == "context_length_exceeded" and f"is {MAX_SEQ_LEN} tokens" in error["message"]
    assert f"{MAX_SEQ_LEN} in the completion" in error["message"]
    for body, param in (({"messages": []}, "messages"),
                        ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0.role"),
                        ({"messages": FRANCE, "temperature": "hot"}, "temperature"),
                        ({"messages": FRANCE, "max_tokens": 2.5}, "max_tokens"),
                        ({"messages": [{"role": "user", "content": 7}]}, "messages.0.content")):
        with pytest.raises(openai.BadRequestError) as exc:
            client.chat.completions.create(model="", **body)
        assert error_of(exc)["param"] == param, body
    served = client.models.list().data[0].id  # one model: any name reaches it, the answer names it
    assert client.chat.completions.create(messages=FRANCE, model="gpt-4o", max_tokens=2).model == served
    auth = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    status, body = raw(server, "POST", "/chat/completions", b"{" * 10, auth)
    assert status == 400 and "not valid JSON" in body["error"]["message"]
    status, body = raw(server, "POST", "/chat/completions", b" " * (5 * 1024 * 1024), auth)
    assert status == 413 and body["error"]["type"] == "invalid_request_error"


def test_four_concurrent_clients_are_served_in_turn(client, server):
    """Four streaming clients at once: all answered, identical greedy text, first come first served."""
    results: dict[int, dict] = {}

    def ask(i: int) -> None:
        sent = time.monotonic()
        first, pieces = None, []
        for chunk in client.chat.completions.create(messages=COUNT, model="", temperature=0, max_tokens=24,
                                                    stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                first = first or time.monotonic()
                pieces.append(chunk.choices[0].delta.content)
        results[i] = {"sent": sent, "first": first, "end": time.monotonic(), "text": "".join(pieces)}

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
        time.sleep(0.05)  # a known arrival order
    for t in threads:
        t.join(180)
    assert sorted(results) == [0, 1, 2, 3]
    assert len({r["text"] for r in results.values()}) == 1 and results[0]["text"]
    ends = [results[i]["end"] for i in range(4)]
    firsts = [results[i]["first"] for i in range(4)]
    assert ends == sorted(ends) and firsts == sorted(firsts)
    for i in range(1, 4):  # one answer at a time: the next one's first token comes after the previous one ended
        assert firsts[i] >= ends[i - 1] - 0.05
    assert "Traceback" not in server.stderr_text  # clients closing right after [DONE] are no server error


def test_a_disconnect_stops_the_generation(client, server):
    """The client goes away after 5 tokens of a 122-token answer: the engine stops within a few tokens."""
    stream = client.chat.completions.create(messages=COUNT, model="", temperature=0, max_tokens=900, stream=True)
    got = 0
    for chunk in stream:
        got += bool(chunk.choices and chunk.choices[0].delta.content)
        if got >= 5:
            break
    stream.close()
    deadline = time.monotonic() + 60
    while not any(", cancelled," in line for line in server.stderr_lines):  # the server's line for that answer
        assert time.monotonic() < deadline, "no cancelled answer in the log:\n" + server.stderr_text
        time.sleep(0.05)
    line = next(line for line in server.stderr_lines if ", cancelled," in line)
    generated = int(line.split(" prompt + ")[1].split()[0])
    assert generated <= got + 10, line  # the greedy answer is 122 tokens long when not stopped
    quick = client.chat.completions.create(messages=FRANCE, model="", temperature=0, max_tokens=8)
    assert quick.choices[0].message.content


def test_a_baichuan2_folder_is_served_with_its_own_chat_rule(tmp_path):
    """A small Baichuan2-format folder: typed control strings stay text, usage is the chat rule's count."""
    from inference.engine import Engine
    from testkit.fixtures import write_model_folder

    folder = write_model_folder(tmp_path / "baichuan2-small")
    serve = ServeProcess("--model", str(folder), "--dtype", "float32")
    try:
        local = openai.OpenAI(base_url=serve.url, api_key="unused", max_retries=0, timeout=60)
        assert local.models.list().data[0].id == "baichuan2-small"
        messages = [{"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "hello <reserved_12></s><|im_start|> there"}]
        plain = local.chat.completions.create(model="baichuan2-small", messages=messages, temperature=0, max_tokens=12)
        streamed = "".join(c.choices[0].delta.content or "" for c in local.chat.completions.create(
            model="baichuan2-small", messages=messages, temperature=0, max_tokens=12, stream=True) if c.choices)
        assert streamed == plain.choices[0].message.content
        engine = Engine.load(folder, device="cpu", dtype="float32")
        chat = engine.encode_chat(messages, 12)
        assert plain.usage.prompt_tokens == len(chat.input_ids)
        assert sum(i in (engine.defaults.user_token_id, engine.defaults.assistant_token_id) for i in chat.input_ids) == 2
        assert not set(engine.defaults.eos_token_ids) & set(chat.input_ids)
    finally:
        serve.close()


def test_sigterm_exits_cleanly_with_an_answer_in_flight(client, server):
    """Last in this file: it ends the module's server."""
    stream = client.chat.completions.create(messages=COUNT, model="", temperature=0, max_tokens=900, stream=True)
    first = next(iter(stream))
    assert first.choices[0].delta.role == "assistant"
    code, seconds = server.terminate()
    assert code == 0 and seconds < 10, (code, seconds, server.stderr_text)
    with pytest.raises(Exception):  # the stream is cut (no [DONE]); the client reports it
        for _ in stream:
            pass
    assert "Traceback" not in server.stderr_text
