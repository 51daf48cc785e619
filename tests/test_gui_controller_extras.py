"""Controller items of the long-use walkthrough, in the real window: the loaded model's defaults for a message
typed while it loads, the caret at the end on Edit, drafts kept across restarts, the model's name on answers after
a relaunch, a warning and a question before a message is sent cut, and Continue on an answer cut at max new tokens."""
from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from gui_harness import DEMO_MAX_SEQ_LEN, reference_answer, set_greedy, type_and_send, type_text, wait_answer, \
    wait_until

B2_DEFAULTS = {"do_sample": False, "temperature": 0.77, "top_k": 3, "top_p": 0.5, "repetition_penalty": 1.0,
               "max_new_tokens": 7}


@pytest.fixture(scope="module")
def b2_model(tmp_path_factory):
    """A small Baichuan2-format folder whose generation_config.json differs from Baichuan2's defaults."""
    from testkit.fixtures import write_model_folder

    folder = write_model_folder(tmp_path_factory.mktemp("b2") / "model", model_max_length=256)
    config = json.loads((folder / "generation_config.json").read_text())
    (folder / "generation_config.json").write_text(json.dumps({**config, **B2_DEFAULTS}))
    return folder


@pytest.fixture
def fresh_client(loop):
    """An EngineClient with nothing loaded (as at start-up)."""
    from gui.engine_thread import EngineClient

    client = EngineClient()
    yield client
    client.shutdown()


def _requests(client, listen) -> list[dict]:
    seen = []
    listen(client._generate_requested, lambda request: seen.append(request))
    return seen


def test_a_message_sent_while_the_model_loads_uses_that_models_defaults(open_window, fresh_client, b2_model,
                                                                         listen, qtbot):
    window = open_window(fresh_client)
    requests = _requests(fresh_client, listen)
    fresh_client.load(str(b2_model), "cpu", "float32", 256)
    assert fresh_client.state == "loading"
    type_and_send(qtbot, window, "Hello there")
    wait_answer(window, 120)
    used = requests[0]["settings"]
    assert {k: used[k] for k in B2_DEFAULTS} == B2_DEFAULTS
    stored = window.store.get_conversation(window.controller.conversation_id).settings
    assert {k: stored[k] for k in B2_DEFAULTS} == B2_DEFAULTS


def test_continue_appends_to_an_answer_cut_at_max_new_tokens(open_window, fresh_client, b2_model, listen, qtbot):
    wait_until(fresh_client.load(str(b2_model), "cpu", "float32", 256).done, 120, "the model to load")
    window = open_window(fresh_client)
    requests = _requests(fresh_client, listen)
    type_and_send(qtbot, window, "Tell me a story")
    wait_answer(window, 120)
    first = window.controller.messages[-1]
    assert first.metrics["finish_reason"] == "length" and first.content
    continue_requested = getattr(window.chat, "continue_requested", None)
    if continue_requested is not None:
        continue_requested.emit(first.id)  # the answer's Continue button
    else:
        window.controller.continue_answer(first.id)
    wait_until(lambda: len(requests) == 2, 10, "the continuation request")
    wait_answer(window, 120)
    history = [{"role": "user", "content": "Tell me a story"}, {"role": "assistant", "content": first.content}]
    assert requests[1]["messages"] == history  # ends with the answer: the chat rule adds no new turn
    more = reference_answer(fresh_client.worker._engine, history, 7).text
    stored = window.store.get_conversation(window.controller.conversation_id).messages
    assert [(m.id, m.status, m.content) for m in stored[1:]] == [(first.id, "complete", first.content + more)]
    assert window.chat.widget_for(first.id).text == first.content + more


def test_edit_puts_the_caret_at_the_end(open_window):
    window = open_window()
    conversation = window.store.create_conversation("Edit me")
    message = window.store.add_message(conversation.id, "user", "Fix the last word here")
    window.controller.open_conversation(conversation.id)
    window.controller.edit(message.id)
    assert window.input.textCursor().position() == len("Fix the last word here")


def test_drafts_are_kept_per_conversation_across_restarts(open_window, qtbot):
    window = open_window()
    conversation = window.store.create_conversation("Old one")
    type_text(window.input, "a draft for a new chat")
    window.controller.open_conversation(conversation.id)
    assert window.input.toPlainText() == ""
    type_text(window.input, "half a question")
    window.close()  # quit with both drafts unsent
    window = open_window()
    assert window.controller.conversation_id == conversation.id
    assert window.input.toPlainText() == "half a question"
    assert window.input.textCursor().position() == len("half a question")
    window.controller.new_conversation()
    assert window.input.toPlainText() == "a draft for a new chat"


def test_answers_keep_their_models_name_after_a_relaunch(open_window, fresh_client, qtbot):
    window = open_window()
    name = window.client.info["name"]
    set_greedy(window, 3)
    type_and_send(qtbot, window, "Hi")
    wait_answer(window)
    window.close()
    window = open_window(fresh_client)  # relaunched: no model loaded yet
    answer = window.chat.widgets[-1]
    assert answer.role == "assistant" and answer.author_label.text() == name


def test_a_message_that_will_be_cut_is_flagged_and_needs_a_yes(open_window, engine, qtbot):
    window = open_window()
    set_greedy(window, 8)
    text = " ".join(f"word{i}" for i in range(700))
    window.input.setPlainText(text)
    wait_until(lambda: window.budget.cut_tokens > 0, 20, "the budget bar to see the cut")
    max_new = window.settings_panel.settings()["max_new_tokens"]
    full = len(engine.chat_format.build([{"role": "user", "content": text}], 1, 1 << 30).input_ids)
    cut = full - (DEMO_MAX_SEQ_LEN - max_new)
    assert window.budget.cut_tokens == cut and window.budget.notice.text().startswith(f"{cut} token")
    assert "will be cut" in window.budget.notice.text()
    assert window.budget.bar.warning

    qtbot.keyClick(window.input, Qt.Key.Key_Return)
    wait_until(lambda: window.controller.confirm_box is not None, 20, "the question")
    assert f"{cut} token" in window.controller.confirm_box.text()
    window.controller.confirm_box.button(QMessageBox.StandardButton.Cancel).click()
    wait_answer(window, 20)
    assert window.input.toPlainText() == text and window.controller.messages == []  # nothing sent

    qtbot.keyClick(window.input, Qt.Key.Key_Return)
    wait_until(lambda: window.controller.confirm_box is not None, 20, "the question again")
    window.controller.confirm_box.button(QMessageBox.StandardButton.Yes).click()
    wait_answer(window, 180)
    assert [m.role for m in window.controller.messages] == ["user", "assistant"]
    assert window.controller.messages[-1].metrics["prompt_tokens"] == DEMO_MAX_SEQ_LEN - max_new
