"""What `generate --stream-json` and a plain `encode` print: one JSON line per token then the result, and a
tokenization a person can read (each id with the text it adds, control tokens marked)."""
from __future__ import annotations

import json


def stream_json(events, json_text, rounded) -> None:
    """One line {"token_id", "text"} per generated token as it comes (flushed), then one line
    {"output_ids", "finish_reason", "metrics"}. json_text turns a dict into one line for stdout."""
    finish = None
    for event in events:
        if hasattr(event, "token_id"):
            print(json_text({"token_id": event.token_id, "text": event.text}), flush=True)
        else:
            finish = event
    print(json_text({"output_ids": finish.output_ids, "finish_reason": finish.finish_reason,
                     "metrics": rounded(finish.metrics)}), flush=True)


def piece(tokenizer, token_id: int) -> str:
    """The text one token adds, quoted (escapes for line breaks and partial UTF-8), or <control>."""
    if tokenizer.is_control(token_id):
        return "<control>"
    return repr(tokenizer.token_bytes(token_id).decode("utf-8", errors="backslashreplace"))


def encode_text(chat, tokenizer) -> str:
    """A summary line, one line per token (id and its text), and the ids as a JSON list to copy."""
    budget = chat.budget
    lines = [f"{budget.get('prompt_tokens', len(chat.input_ids))} prompt tokens, up to "
             f"{budget.get('max_new_tokens')} new (MAX_SEQ_LEN {budget.get('max_seq_len')}, input budget "
             f"{budget.get('input_budget')}); {chat.dropped_rounds} earlier round(s) dropped to fit"]
    width = max((len(str(i)) for i in chat.input_ids), default=1)
    lines += [f"  {token_id:>{width}}  {piece(tokenizer, token_id)}" for token_id in chat.input_ids]
    lines.append("input ids: " + json.dumps(chat.input_ids))
    return "\n".join(lines)
