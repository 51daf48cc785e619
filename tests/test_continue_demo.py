"""Continue on the demo model (ChatML): the prompt of [question, partial answer] ends with the partial answer's own
tokens, with no <|im_end|> after it and no new assistant turn, so the model goes on from where it stopped."""
from __future__ import annotations


def test_demo_prompt_leaves_the_partial_answer_open(engine):
    fmt = engine.chat_format
    partial = "The capital of France is"
    ids = engine.encode_chat([{"role": "user", "content": "What is the capital of France?"},
                              {"role": "assistant", "content": partial}], 8).input_ids
    tail = [fmt.im_start_id] + engine.tokenizer.encode("assistant\n" + partial)
    assert ids[-len(tail):] == tail
    assert ids.count(fmt.im_end_id) == 2  # the system and user blocks are closed; the answer is not
    assert engine.tokenizer.decode(ids).endswith(partial)
    fresh = engine.encode_chat([{"role": "user", "content": "What is the capital of France?"}], 8).input_ids
    assert fresh[-len(engine.tokenizer.encode("assistant\n")) - 1:] == \
        [fmt.im_start_id] + engine.tokenizer.encode("assistant\n")
