"""Settings panel and budget bar on the real demo engine: values reach the engine, counts match encode_chat."""
from __future__ import annotations

from gui_harness import (
    DEMO_MAX_SEQ_LEN, reference_answer, set_greedy, type_and_send, type_text, wait_answer, wait_until,
)

from gui.settings_panel import default_settings
from inference.sampling import SamplingParams

STORY = "Write a long story about a dragon who learns to paint."


def last_answer(window):
    return window.store.get_conversation(window.controller.conversation_id).messages[-1]


def test_max_new_tokens_limits_the_answer(open_window, qtbot, engine):
    window = open_window()
    set_greedy(window, 5)
    type_and_send(qtbot, window, STORY)
    wait_answer(window)
    answer = last_answer(window)
    assert answer.metrics["output_tokens"] == 5 and answer.metrics["finish_reason"] == "length"
    assert answer.content == reference_answer(engine, [{"role": "user", "content": STORY}], 5).text


def test_sampling_sliders_and_seed_reach_the_engine(open_window, qtbot, engine):
    window = open_window()
    panel = window.settings_panel
    panel.do_sample.setChecked(True)
    panel.temperature.set_value(1.3)
    panel.top_k.set_value(40)
    panel.top_p.set_value(0.95)
    panel.repetition.set_value(1.1)
    panel.seed.setValue(1234)
    panel.max_new.set_value(8)
    type_and_send(qtbot, window, STORY)
    wait_answer(window)
    messages = [{"role": "user", "content": STORY}]
    sampled = reference_answer(engine, messages, 8, SamplingParams(True, 1.3, 40, 0.95, 1.1, seed=1234))
    assert last_answer(window).content == sampled.text
    assert sampled.text != reference_answer(engine, messages, 8).text  # the sliders changed the answer


def test_system_prompt_reaches_the_chat_rule(open_window, qtbot, engine):
    window = open_window()
    set_greedy(window, 6)
    window.settings_panel.system_prompt.setPlainText("You are a pirate. Always talk like a pirate.")
    type_and_send(qtbot, window, "Who are you?")
    wait_answer(window)
    messages = [{"role": "system", "content": "You are a pirate. Always talk like a pirate."},
                {"role": "user", "content": "Who are you?"}]
    assert last_answer(window).content == reference_answer(engine, messages, 6).text


def test_budget_bar_matches_encode_chat_as_the_user_types(open_window, qtbot, engine):
    window = open_window()
    set_greedy(window, 100)
    window.settings_panel.system_prompt.setPlainText("Be brief.")
    type_text(window.input, "Explain how a rainbow forms, 用中文回答。")
    chat = engine.encode_chat([{"role": "system", "content": "Be brief."},
                               {"role": "user", "content": "Explain how a rainbow forms, 用中文回答。"}], 100)
    expected = {"prompt_tokens": len(chat.input_ids), "max_new_tokens": 100, "max_seq_len": DEMO_MAX_SEQ_LEN,
                "dropped_rounds": chat.dropped_rounds}
    wait_until(lambda: window.budget.values == expected, 20, f"budget {expected}, shown {window.budget.values}")
    assert str(expected["prompt_tokens"]) in window.budget.label.text()
    assert window.budget.notice.text() == ""


def test_budget_shows_dropped_rounds_and_bounds_max_new_tokens(open_window, qtbot, engine):
    window = open_window()
    store = window.store
    long_text = "The quick brown fox jumps over the lazy dog near the river bank. " * 12
    conversation = store.create_conversation("Long", settings={"max_new_tokens": 300, "do_sample": False})
    history = []
    for i in range(6):
        for role in ("user", "assistant"):
            content = f"Round {i} {role}: {long_text}"
            store.add_message(conversation.id, role, content)
            history.append({"role": role, "content": content})
    window.controller.open_conversation(conversation.id)
    type_text(window.input, "Summarise our chat.")
    messages = history + [{"role": "user", "content": "Summarise our chat."}]
    chat = engine.encode_chat(messages, 300)
    assert chat.dropped_rounds > 0
    limit = DEMO_MAX_SEQ_LEN - len(engine.encode_chat(messages[-1:], 1).input_ids)
    expected = {"prompt_tokens": len(chat.input_ids), "max_new_tokens": 300, "max_seq_len": DEMO_MAX_SEQ_LEN,
                "dropped_rounds": chat.dropped_rounds}
    wait_until(lambda: window.budget.values == expected, 20, f"budget {expected}, shown {window.budget.values}")
    assert str(chat.dropped_rounds) in window.budget.notice.text()
    wait_until(lambda: window.settings_panel.max_new.maximum() == limit, 10, "the max-new-tokens bound")
    window.settings_panel.max_new.set_value(limit + 500)
    assert window.settings_panel.settings()["max_new_tokens"] == limit


def test_reset_restores_model_defaults_and_settings_persist(open_window, engine):
    window = open_window()
    panel, store = window.settings_panel, window.store
    conversation = store.create_conversation("Saved", settings={"temperature": 0.9, "top_k": 7, "stream": False})
    window.controller.open_conversation(conversation.id)
    assert panel.temperature.value() == 0.9 and panel.top_k.value() == 7 and not panel.stream.isChecked()
    panel.top_p.set_value(0.5)
    wait_until(lambda: store.get_conversation(conversation.id).settings.get("top_p") == 0.5, 10, "settings saved")
    panel.reset_button.click()
    defaults = default_settings(engine.info()["defaults"])
    shown = panel.settings()
    for key in ("do_sample", "temperature", "top_k", "top_p", "repetition_penalty", "max_new_tokens"):
        assert shown[key] == defaults[key], key
    assert shown["temperature"] == engine.defaults.temperature and shown["top_k"] == engine.defaults.top_k
