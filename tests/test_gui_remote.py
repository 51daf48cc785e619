"""The window connected to our own `serve` (demo model, subprocess): Connect to server… lists its models, an
answer streams equal to the server's greedy answer, stop closes the stream, history keeps the remote model's name,
the budget says it estimates, and the local API switch answers 503 while the window holds no local model."""
from __future__ import annotations

import http.client
import json
import math
import time
from urllib.parse import urlsplit

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox

from gui_harness import run_async, set_greedy, type_and_send, wait_answer, wait_until

openai = pytest.importorskip("openai", reason="the openai client is a test extra (pip install -e '.[test]')")

from serve_harness import ServeProcess  # noqa: E402

PROMPT = "What is the capital of France?"


@pytest.fixture(scope="module")
def server():
    serve = ServeProcess("--max-seq-len", "1024")
    yield serve
    serve.close()


@pytest.fixture
def remote_window(open_window, server, qtbot):
    """A window on its own EngineClient, connected through Model → Connect to server… (the dialog, as a user)."""
    from gui.engine_thread import EngineClient

    client = EngineClient()
    window = open_window(client)
    window.menus.actions["connect_server"].trigger()
    dialog = window.serving.connect_dialog
    dialog.url.setEditText(server.url)
    wait_until(lambda: dialog.models, 30, "the server's models in the dialog")
    assert dialog.model.currentText() == dialog.models[0]
    dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    wait_until(lambda: client.state == "ready", 30, "the connection")
    yield window
    window.close()
    client.shutdown()


def greedy_reference(server, max_tokens: int) -> tuple[str, int]:
    api = openai.OpenAI(base_url=server.url, api_key="none", max_retries=0, timeout=120)
    answer = api.chat.completions.create(model="", messages=[{"role": "user", "content": PROMPT}], temperature=0,
                                         max_tokens=max_tokens, extra_body={"repetition_penalty": 1.0})
    return answer.choices[0].message.content, answer.usage.completion_tokens


def test_connected_window_streams_the_servers_greedy_answer_and_keeps_it(remote_window, server, qtbot, listen):
    window = remote_window
    model = window.client.info["name"]
    host = urlsplit(server.url).netloc
    assert window.client.info["remote"] and window.load_status.label.text() == f"remote: {model} at {host}"
    assert not window.banner.isVisible()
    set_greedy(window, 24)
    window.input.setPlainText(PROMPT)
    wait_until(lambda: "estimated: ~chars/3" in window.budget.label.text(), 10, "the estimated budget")
    assert window.budget.label.text().startswith("≈ Prompt ")
    window.input.clear()
    received = []
    listen(window.client.token, lambda text, _id: received.append(text))
    type_and_send(qtbot, window, PROMPT)
    wait_answer(window, 120)
    expected, tokens = greedy_reference(server, 24)
    assert "Paris" in expected
    assert len(received) > 3 and "".join(received) == expected  # streamed piece by piece
    widget = window.chat.widgets[-1]
    assert widget.text == expected and widget.status == "complete"
    conversation = window.store.get_conversation(window.controller.conversation_id)
    question, answer = conversation.messages
    assert question.content == PROMPT and answer.content == expected and answer.status == "complete"
    assert answer.metrics["model"] == model and answer.metrics["usage_from_server"]
    assert answer.metrics["output_tokens"] == tokens and answer.metrics["ttft_s"] > 0
    assert window.speed_panel.values["ttft"].text() != "—" and window.speed_panel.values["decode"].text() != "—"
    # After an answer the server's usage calibrates the estimate.
    window.input.setPlainText("And of Italy?")
    wait_until(lambda: "server's last usage" in window.budget.label.text(), 10, "the usage-based budget")
    shown = int(window.budget.label.text().split("Prompt ")[1].split()[0])
    assert shown == answer.metrics["prompt_tokens"] + tokens + math.ceil(len("And of Italy?") / 3)
    # Remembered like a folder: the next Connect dialog offers this server and model first.
    dialog = window.serving.open_connect_dialog()
    assert dialog.url.currentText() == server.url and dialog.model.currentText() == model
    dialog.reject()


def test_stop_closes_the_stream_and_keeps_the_partial_answer(remote_window, server, qtbot, listen):
    window = remote_window
    set_greedy(window, 300)
    received = []
    listen(window.client.token, lambda text, _id: received.append(text))
    before = server.stderr_text.count(", cancelled,")
    type_and_send(qtbot, window, "Write a long story about a dragon who learns to paint.")
    wait_until(lambda: len(received) >= 4, 60, "a few tokens")
    qtbot.keyClick(window.input, Qt.Key.Key_Escape)
    wait_answer(window, 30)
    answer = window.store.get_conversation(window.controller.conversation_id).messages[-1]
    assert answer.status == "stopped" and answer.metrics["finish_reason"] == "cancelled"
    assert answer.content and answer.content == window.chat.widgets[-1].text
    assert answer.content.startswith("".join(received[:4]))
    # The server saw the stream close and stopped generating well before its 300 tokens.
    wait_until(lambda: server.stderr_text.count(", cancelled,") > before, 10, "the server to cancel")
    line = [x for x in server.stderr_text.splitlines() if ", cancelled," in x][-1]
    assert int(line.split(" + ")[1].split()[0]) < 300


def test_local_api_switch_answers_503_while_the_window_holds_a_remote_model(remote_window):
    serving = remote_window.serving
    assert run_async(serving.server.start(0, "", False))
    try:
        url = urlsplit(serving.server.url)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        conn.request("POST", "/v1/chat/completions", json.dumps({"messages": [{"role": "user", "content": "hi"}]}),
                     {"Content-Type": "application/json"})
        response = conn.getresponse()
        body = json.loads(response.read())
        assert response.status == 503 and set(body["error"]) == {"message", "type", "param", "code"}
    finally:
        run_async(serving.server.stop())
    started = time.monotonic()
    assert serving.server.state == "off" and time.monotonic() - started < 5


def test_budget_counts_with_the_local_tokenizer_of_a_folder_named_like_the_served_model(server, tmp_path):
    from gui.remote_budget import RemoteCounter
    from gui.remote_state import tokenizer_folder
    from inference.engine import Engine
    from testkit.fixtures import write_model_folder
    from inference.remote import RemoteEngine

    folder = str(write_model_folder(tmp_path / "Baichuan2-7B-Chat", model_max_length=128))
    assert tokenizer_folder("baichuan2_7b-chat", ["/nowhere/Baichuan2-7B-Chat", folder]) == folder
    assert tokenizer_folder("other-model", [folder]) is None
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there, 你好!"},
                {"role": "assistant", "content": "Hi."}, {"role": "user", "content": "What is 2 + 2?"}]
    counter = RemoteCounter(RemoteEngine(server.url), folder)
    budget = counter.budget(messages, 16)
    local = Engine.load(folder, device="cpu", dtype="float32")
    assert budget["prompt_tokens"] == len(local.encode_chat(messages, 1, truncate=False).input_ids)
    assert budget["estimate"] == "tokenizer" and budget["max_seq_len"] == 1024  # the server's own context
