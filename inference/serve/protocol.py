"""OpenAI's chat-completions wire format: request checks, error bodies, response objects, SSE chunks, stop strings."""
from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass, field

MAX_MESSAGES = 1024  # messages in one request
MAX_STOP = 4  # stop strings (OpenAI's limit)
MAX_STOP_CHARS = 256  # characters in one stop string
ROLE_ALIASES = {"developer": "system"}  # OpenAI's newer name for the system role


class ApiError(Exception):
    """An error answered in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, "invalid_request_error", param, code)


@dataclass
class ChatRequest:
    """What one /v1/chat/completions body asks for, checked."""

    messages: list[dict]
    model: str | None = None
    max_tokens: int | None = None
    sampling: dict = field(default_factory=dict)  # SamplingParams overrides (do_sample, temperature, ...)
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False


def _number(body: dict, name: str, low: float | None = None, high: float | None = None, integer: bool = False):
    value = body.get(name)
    if value is None:
        return None
    kind = "an integer" if integer else "a number"
    ok = (isinstance(value, int) if integer else isinstance(value, (int, float))) and not isinstance(value, bool)
    if not ok or not math.isfinite(value):
        raise bad(f"'{name}' must be {kind}, got {json.dumps(value)[:40]}", name, "invalid_type")
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise bad(f"'{name}' must be {span}, got {value}", name, "invalid_value")
    return value


def _content(message: dict, i: int) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: only text parts are understood
        texts = []
        for part in content:
            if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
                raise bad(f"messages[{i}].content: only text parts are supported", f"messages.{i}.content")
            texts.append(part["text"])
        return "".join(texts)
    raise bad(f"messages[{i}].content must be a string or a list of text parts", f"messages.{i}.content",
              "invalid_type")


def _messages(value) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise bad("'messages' must be a non-empty list of {\"role\", \"content\"} objects", "messages")
    if len(value) > MAX_MESSAGES:
        raise bad(f"'messages' holds {len(value)} messages; at most {MAX_MESSAGES} are accepted", "messages")
    out = []
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise bad(f"messages[{i}] must be an object with a role and content", f"messages.{i}")
        role = ROLE_ALIASES.get(message.get("role"), message.get("role"))
        if role not in ("system", "user", "assistant"):
            raise bad(f"messages[{i}].role {json.dumps(message.get('role'))[:40]} is not supported; use "
                      "'system', 'user' or 'assistant'", f"messages.{i}.role")
        out.append({"role": role, "content": _content(message, i)})
    return out


def _unsupported(body: dict) -> None:
    """Features this server does not have: refused clearly instead of silently ignored."""
    if body.get("n") not in (None, 1):
        raise bad("only n=1 is supported", "n")
    for name in ("presence_penalty", "frequency_penalty"):
        if _number(body, name, -2, 2) not in (None, 0):
            raise bad(f"'{name}' is not supported; use repetition_penalty", name)
    for name in ("logprobs", "tools", "functions", "tool_choice", "logit_bias"):
        if body.get(name) not in (None, False, [], {}, "none"):
            raise bad(f"'{name}' is not supported by this server", name)
    fmt = body.get("response_format")
    if fmt not in (None, {"type": "text"}):
        raise bad("only response_format {\"type\": \"text\"} is supported", "response_format")


def parse_chat_request(body) -> ChatRequest:
    """Check a decoded JSON body; ApiError(400) names the field. Unknown fields are ignored (as vLLM does)."""
    if not isinstance(body, dict):
        raise bad("the request body must be a JSON object")
    messages = _messages(body.get("messages"))
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise bad("'model' must be a string", "model", "invalid_type")
    _unsupported(body)
    max_tokens = _number(body, "max_completion_tokens", 1, integer=True)
    if max_tokens is None:
        max_tokens = _number(body, "max_tokens", 1, integer=True)
    sampling = {}
    temperature = _number(body, "temperature", 0, 2)
    if temperature is not None:
        sampling.update(do_sample=temperature > 0, **({"temperature": float(temperature)} if temperature > 0 else {}))
    for name, low, high, integer in (("top_p", 0, 1, False), ("top_k", -1, None, True),
                                     ("repetition_penalty", 0, None, False), ("seed", 0, 2**64 - 1, True)):
        value = _number(body, name, low, high, integer)
        if value is not None:
            sampling[name] = 0 if name == "top_k" and value == -1 else value  # vLLM: -1 turns top-k off
    if sampling.get("top_p") == 0:
        raise bad("'top_p' must be greater than 0", "top_p", "invalid_value")
    if sampling.get("repetition_penalty") == 0:
        raise bad("'repetition_penalty' must be greater than 0", "repetition_penalty", "invalid_value")
    stop = body.get("stop")
    stop = [stop] if isinstance(stop, str) else stop
    if stop is None:
        stop = []
    if not (isinstance(stop, list) and len(stop) <= MAX_STOP
            and all(isinstance(s, str) and 0 < len(s) <= MAX_STOP_CHARS for s in stop)):
        raise bad(f"'stop' must be a string or a list of at most {MAX_STOP} non-empty strings "
                  f"(each at most {MAX_STOP_CHARS} characters)", "stop")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise bad("'stream' must be true or false", "stream", "invalid_type")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise bad("'stream_options' must be an object", "stream_options", "invalid_type")
    include_usage = bool((options or {}).get("include_usage", False))
    return ChatRequest(messages, model, max_tokens, sampling, list(stop), stream, include_usage)


class StopMatcher:
    """Cuts streamed text at the first stop string, holding back a tail that may be the start of one."""

    def __init__(self, stops: list[str]):
        self.stops = stops
        self.pending = ""

    def push(self, text: str) -> tuple[str, bool]:
        """(text safe to send now, whether a stop string was reached)."""
        if not self.stops:
            return text, False
        self.pending += text
        hits = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if hits:
            out, self.pending = self.pending[:min(hits)], ""
            return out, True
        keep = 0
        for s in self.stops:  # the longest tail of pending that starts a stop string
            for n in range(min(len(s) - 1, len(self.pending)), keep, -1):
                if self.pending.endswith(s[:n]):
                    keep = n
                    break
        out = self.pending[:len(self.pending) - keep]
        self.pending = self.pending[len(self.pending) - keep:]
        return out, False

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


def completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def completion(cid: str, model: str, text: str, finish_reason: str, use: dict) -> dict:
    return {"id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "logprobs": None, "finish_reason": finish_reason}],
            "usage": use}


def chunk(cid: str, model: str, delta: dict, finish_reason: str | None = None, with_usage: bool = False) -> dict:
    body = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
    if with_usage:
        body["usage"] = None  # OpenAI: null on every chunk but the final usage one
    return body


def usage_chunk(cid: str, model: str, use: dict) -> dict:
    return {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [], "usage": use}


def sse(data: dict | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {text}\n\n".encode("utf-8")


def models_list(model_id: str, created: int, max_seq_len: int) -> dict:
    return {"object": "list", "data": [{"id": model_id, "object": "model", "created": created,
                                        "owned_by": "baichuan-chat", "max_model_len": max_seq_len}]}
