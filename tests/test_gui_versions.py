"""Answer versions and branches in the real window on the demo model: Regenerate keeps the old answer (‹ 1/2 ›),
editing a question branches the conversation, both survive a restart and a JSON export / import."""
from __future__ import annotations

import json

from gui_harness import reference_answer, run_async, set_greedy, type_and_send, wait_answer, wait_until

QUESTION = "What is the capital of France?"
EDITED = "What is the capital of Italy?"


def ask(window, qtbot, text: str, tokens: int) -> None:
    set_greedy(window, tokens)
    type_and_send(qtbot, window, text)
    wait_answer(window)


def regenerate_longer(window, tokens: int) -> None:
    window.settings_panel.max_new.set_value(tokens)
    window.chat.widgets[-1].regenerate_button.click()
    wait_until(lambda: window.controller.answering, 10, "the regenerate to start")
    wait_answer(window)


def shown(window) -> list[tuple[str, str]]:
    return [(w.role, w.text) for w in window.chat.widgets]


def test_regenerate_makes_version_2_and_switching_shows_version_1(open_window, qtbot, engine):
    window = open_window()
    ask(window, qtbot, QUESTION, 3)
    first = window.chat.widgets[-1]
    first_text, first_tokens = first.text, first.metrics["output_tokens"]
    assert not first.switcher.isVisibleTo(first)  # one version: no switcher
    regenerate_longer(window, 7)
    second = window.chat.widgets[-1]
    expected = reference_answer(engine, [{"role": "user", "content": QUESTION}], 7).text
    assert second.text == expected != first_text
    assert second.switcher.isVisibleTo(second) and second.switcher.label.text() == "2/2"
    assert not second.switcher.next.isEnabled() and second.switcher.previous.isEnabled()
    second.switcher.previous.click()  # ‹
    version_1 = window.chat.widgets[-1]
    assert version_1.text == first_text and version_1.switcher.label.text() == "1/2"
    assert version_1.metrics["output_tokens"] == first_tokens == 3
    assert str(first_tokens) in version_1.metrics_label.text()  # its own metrics
    assert [m["content"] for m in window.controller.prompt_history()] == [QUESTION, first_text]
    version_1.switcher.next.click()  # ›
    assert window.chat.widgets[-1].text == expected
    conversation = window.store.get_conversation(window.controller.conversation_id, with_tree=True)
    assert len(conversation.tree) == 3 and conversation.messages[-1].content == expected


def test_edit_branches_and_the_old_branch_stays_reachable(open_window, qtbot):
    window = open_window()
    ask(window, qtbot, QUESTION, 4)
    old = shown(window)
    window.chat.widgets[0].edit_button.click()
    window.input.clear()
    type_and_send(qtbot, window, EDITED)
    wait_answer(window)
    new = shown(window)
    assert new[0] == ("user", EDITED) and len(new) == 2 and new[1] != old[1]
    question = window.chat.widgets[0]
    assert question.switcher.isVisibleTo(question) and question.switcher.label.text() == "2/2"
    assert question.switcher.kind.text() == "branch"
    question.switcher.previous.click()
    assert shown(window) == old  # the old question with its answer
    assert window.chat.widgets[0].switcher.label.text() == "1/2"
    assert window.controller.prompt_history()[0]["content"] == QUESTION
    window.chat.widgets[0].switcher.next.click()
    assert shown(window) == new


def test_versions_survive_a_restart_and_export_import(open_window, qtbot, tmp_path):
    window = open_window()
    ask(window, qtbot, QUESTION, 3)
    first_text = window.chat.widgets[-1].text
    regenerate_longer(window, 6)
    second_text = window.chat.widgets[-1].text
    conversation_id = window.controller.conversation_id
    window.close()
    window = open_window()  # a restart: a new window over the same history file
    assert window.controller.conversation_id == conversation_id
    answer = window.chat.widgets[-1]
    assert answer.text == second_text and answer.switcher.label.text() == "2/2"
    answer.switcher.previous.click()
    assert window.chat.widgets[-1].text == first_text  # version 1 is active now
    md, js = tmp_path / "chat.md", tmp_path / "chat.json"
    run_async(window.export_to(str(md), "md", False))
    run_async(window.export_to(str(js), "json", False))
    markdown = md.read_text(encoding="utf-8")
    assert first_text in markdown and second_text not in markdown  # the active branch
    document = json.loads(js.read_text(encoding="utf-8"))["conversations"][0]
    assert [m["content"] for m in document["messages"]] == [QUESTION, first_text]
    assert sorted(m["content"] for m in document["tree"]) == sorted([QUESTION, first_text, second_text])
    (new_id,) = run_async(window.import_from(str(js)))
    imported = window.store.get_conversation(new_id, with_tree=True)
    assert [m.content for m in imported.messages] == [QUESTION, first_text]
    assert len(imported.tree) == 3 and imported.versions[imported.messages[-1].id] == (1, 2)
    assert window.controller.conversation_id == new_id
    window.chat.widgets[-1].switcher.next.click()
    assert window.chat.widgets[-1].text == second_text
