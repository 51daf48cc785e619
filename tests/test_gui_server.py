"""The window's Local API server switch on the demo model: the official openai client against the URL the panel
shows, the window's own answer waiting its turn behind an API request, Copy, errors (port in use, other computers
without a key), and off / window closed = connection refused."""
from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit

import pytest
from PySide6.QtGui import QGuiApplication

from gui_harness import reference_answer, set_greedy, type_and_send, wait_answer, wait_until

openai = pytest.importorskip("openai", reason="the openai client is a test extra (pip install -e '.[test]')")

PROMPT = "What is the capital of France?"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def refused(url: str) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def switch_on(window, port: int, key: str = ""):
    panel = window.serving.open_server_panel()
    panel.port.setValue(port)
    panel.key.setText(key)
    panel.toggle.click()
    wait_until(lambda: window.serving.server.state in ("on", "error"), 20, "the server to start")
    return panel


def test_local_server_serves_the_windows_model_and_shares_its_queue(open_window, qtbot, engine, listen):
    window = open_window()
    panel = switch_on(window, free_port(), "k-123")
    server = window.serving.server
    assert server.state == "on", panel.status.text()
    url = panel.url.text()
    assert url == f"http://127.0.0.1:{server.port}/v1" and window.serving.indicator.isVisible()
    assert "Listening" in panel.status.text()
    panel.copy.click()
    assert QGuiApplication.clipboard().text() == url and panel.copy.text() == "Copied"
    api = openai.OpenAI(base_url=url, api_key="k-123", max_retries=0, timeout=120)
    answer = api.chat.completions.create(model="", messages=[{"role": "user", "content": PROMPT}], temperature=0,
                                         max_tokens=16)
    assert "Paris" in answer.choices[0].message.content
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=url, api_key="wrong", max_retries=0).models.list()

    # An API request holds the engine: the window's answer says it waits, and starts only after it.
    api_chunks, api_done = [], threading.Event()

    def api_request():
        stream = api.chat.completions.create(
            model="", messages=[{"role": "user", "content": "Count from 1 to 1000, separated by commas."}],
            temperature=0, max_tokens=400, stream=True)  # seconds of work: the window queues behind it
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                api_chunks.append(chunk.choices[0].delta.content)
        api_done.set()

    threading.Thread(target=api_request, daemon=True).start()
    wait_until(lambda: len(api_chunks) >= 2, 60, "the API answer to stream")
    set_greedy(window, 16)
    window_tokens = []
    listen(window.client.token, lambda text, _id: window_tokens.append(api_done.is_set()))
    type_and_send(qtbot, window, PROMPT)
    wait_until(lambda: window.controller.answer is not None, 20, "the window's answer to begin")
    widget = window.controller.answer.widget
    # "request(s)" is the source text; the English plural translation (installed once a test has switched
    # the language) says "request".
    try:
        wait_until(lambda: widget.placeholder.startswith("Waiting for 1 API request"), 20, "the waiting placeholder")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; placeholder is {widget.placeholder!r}") from None
    wait_until(lambda: "1 API request" in panel.status.text() and "· 1" in window.serving.indicator.text(), 5,
               "the panel and the status bar to count the API request")  # polled every 0.3 s
    wait_answer(window, 120)
    assert api_done.is_set() and len(api_chunks) > 40
    assert window_tokens and all(window_tokens)  # every token of the window came after the API answer ended
    expected = reference_answer(engine, [{"role": "user", "content": PROMPT}], 16)
    assert widget.text == expected.text and widget.status == "complete" and widget.placeholder == ""
    assert "Last API answer" in panel.last.text()

    panel.toggle.click()  # off: the port closes
    wait_until(lambda: server.state == "off", 20, "the server to stop")
    assert refused(url) and not window.serving.indicator.isVisible() and panel.url.text() == ""


def test_closing_the_window_stops_the_server_and_errors_are_one_line(open_window):
    window = open_window()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        panel = switch_on(window, busy.getsockname()[1])
        assert window.serving.server.state == "error"
        assert "cannot listen on 127.0.0.1" in panel.status.text() and "in use" in panel.status.text()
    panel.lan.setChecked(True)
    panel.toggle.click()  # other computers, no key: refused before listening
    wait_until(lambda: "API key" in panel.status.text(), 10, "the refusal")
    assert window.serving.server.state == "error" and window.serving.server.handle is None
    panel.lan.setChecked(False)
    panel = switch_on(window, free_port())
    url = panel.url.text()
    assert window.serving.server.state == "on" and not refused(url)
    window.close()
    assert refused(url)
