"""RemoteEngine: chat through any OpenAI-compatible server (vLLM, vllm-ascend, MindIE, llama.cpp, ours) with the Engine's events."""
from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from typing import Iterator
from urllib.parse import urlsplit

import aiohttp

from .modeling.config import GenerationDefaults
from .events import ChatStarted, FinishEvent, TokenEvent
from .errors import UserError

CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 600.0  # longest silence between two chunks (a long prefill on a busy server)


class RemoteError(UserError):
    """The server could not be reached, refused us, or answered something that is not OpenAI's protocol."""


def base_url(url: str) -> str:
    """http(s)://host:port[/prefix] ending in /v1 ('http://h:8000' and 'http://h:8000/v1/' both work)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RemoteError(f"server URL must look like http://HOST:PORT/v1, got {url!r}")
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    return f"{parts.scheme}://{parts.netloc}{path}"


def request_fields(sampling) -> dict:
    """OpenAI (and vLLM extension) fields for SamplingParams, or a dict of only the fields the user chose."""
    if sampling is None:
        return {}
    if isinstance(sampling, dict):
        return dict(sampling)
    if not sampling.do_sample:  # greedy, as the local engine's --greedy: no penalty unless one was set
        fields = {"temperature": 0}
    else:
        fields = {"temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": sampling.top_k or -1}
    if sampling.repetition_penalty != 1.0:
        fields["repetition_penalty"] = sampling.repetition_penalty
    if sampling.seed is not None:
        fields["seed"] = sampling.seed
    return fields


def _cancel(loop: asyncio.AbstractEventLoop, task: asyncio.Task) -> None:
    try:
        loop.call_soon_threadsafe(task.cancel)
    except RuntimeError:  # the stream's loop has already finished
        pass


async def _error_text(response: aiohttp.ClientResponse) -> str:
    raw = await response.read()
    try:
        body = json.loads(raw)
        error = body.get("error", body) if isinstance(body, dict) else body
        message = error.get("message") or error.get("detail") if isinstance(error, dict) else str(error)
    except ValueError:
        message = raw[:200].decode("utf-8", "replace")
    return " ".join(str(message or response.reason).split())


class RemoteEngine:
    """Stands where an Engine stands (stream_chat / chat / default_sampling / info), over HTTP and SSE.

    Stop = closing the stream; metrics come from the stream (TTFT, decode tok/s) and from the server's
    usage when it sends one. Errors are one-line RemoteErrors.
    """

    is_demo = False
    device = "remote"
    dtype = "remote"
    tokenizer = None

    def __init__(self, url: str, api_key: str | None = None, model: str | None = None):
        self.url = base_url(url)
        self.api_key = api_key
        self.defaults = GenerationDefaults()
        self.models = [m for m in self._run(self._get_models()) if isinstance(m, dict) and m.get("id")]
        ids = [m["id"] for m in self.models]
        if model is None and not ids:
            raise RemoteError(f"the server at {self.url} lists no models; give one with --remote-model")
        if model is not None and ids and model not in ids:
            raise RemoteError(f"the server at {self.url} has no model '{model}'; it serves: {', '.join(ids)}")
        self.name = model or ids[0]
        served = next((m for m in self.models if m["id"] == self.name), {})
        self.max_seq_len = served.get("max_model_len") if isinstance(served.get("max_model_len"), int) else None
        self.source = self.url

    # ---- HTTP ----------------------------------------------------------------------------------
    def _headers(self) -> dict:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _session(self) -> aiohttp.ClientSession:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S, sock_read=READ_TIMEOUT_S)
        return aiohttp.ClientSession(timeout=timeout, headers=self._headers())

    def _connection_error(self, exc: BaseException) -> RemoteError:
        if isinstance(exc, aiohttp.ClientConnectorError):
            return RemoteError(f"cannot reach {self.url}: {exc.os_error.strerror or exc.os_error} "
                               "(is the server running?)")
        if isinstance(exc, asyncio.TimeoutError):
            return RemoteError(f"the server at {self.url} did not answer in time")
        return RemoteError(f"the connection to {self.url} failed: {exc.__class__.__name__} {exc}".strip())

    def _run(self, coroutine):
        try:
            return asyncio.run(coroutine)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise self._connection_error(exc) from None

    async def _check(self, response: aiohttp.ClientResponse, what: str) -> None:
        if response.status == 200:
            return
        message = await _error_text(response)
        if response.status == 401:
            raise RemoteError(f"the server at {self.url} refused the API key (401): {message}")
        if response.status == 404:
            raise RemoteError(f"the server at {self.url} has no {what} (404): {message}")
        raise RemoteError(f"the server at {self.url} answered {response.status}: {message}")

    async def _get_models(self) -> list:
        async with self._session() as session, session.get(self.url + "/models") as response:
            await self._check(response, "/v1/models")
            try:
                data = json.loads(await response.read())
                return list(data["data"])
            except (ValueError, KeyError, TypeError):
                raise RemoteError(f"the server at {self.url} sent a /v1/models reply that is not OpenAI's "
                                  "JSON list") from None

    # ---- the Engine's interface -----------------------------------------------------------------
    def default_sampling(self, **overrides):
        from .sampling import SamplingParams  # torch: only when asked (ask --remote runs without it)

        return SamplingParams.from_defaults(self.defaults, **overrides)

    def info(self) -> dict:
        return {"name": self.name, "is_demo": False, "device": self.device, "dtype": self.dtype,
                "max_seq_len": self.max_seq_len, "source": self.url, "remote": True}

    def chat(self, messages, max_new_tokens=None, sampling=None, cancel=None):
        return (e for e in self.stream_chat(messages, max_new_tokens, sampling, cancel)
                if not isinstance(e, ChatStarted))

    def stream_chat(self, messages: list[dict], max_new_tokens: int | None = None, sampling=None,
                    cancel: threading.Event | None = None, truncate: bool = True
                    ) -> Iterator[ChatStarted | TokenEvent | FinishEvent]:
        """ChatStarted when the server accepted the request, a TokenEvent per streamed piece, FinishEvent."""
        body = {"model": self.name, "messages": messages, "stream": True, "stream_options": {"include_usage": True},
                **request_fields(sampling)}
        if max_new_tokens is not None:
            body["max_tokens"] = max_new_tokens
        events: queue.Queue = queue.Queue()
        loop = asyncio.new_event_loop()
        task = loop.create_task(self._stream(body, events))
        thread = threading.Thread(target=self._drive, args=(loop, task, events), daemon=True, name="remote-chat")
        thread.start()
        state = {"started": time.perf_counter(), "first": None, "last": None, "pieces": [], "usage": None,
                 "reason": None, "count": 0}
        try:
            while True:
                try:
                    item = events.get(timeout=0.05)
                except queue.Empty:
                    if cancel is not None and cancel.is_set():
                        _cancel(loop, task)  # closes the stream: the server stops generating
                        state["reason"] = "cancelled"
                        break
                    continue
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                kind, value = item
                if kind == "started":
                    yield ChatStarted([], {"max_new_tokens": max_new_tokens, "max_seq_len": self.max_seq_len}, 0)
                elif kind == "text":
                    now = time.perf_counter()
                    state["count"] += 1
                    state["first"] = state["first"] or now
                    state["last"] = now
                    state["pieces"].append(value)
                    yield TokenEvent(-1, value, now - state["started"] if state["count"] == 1 else None)
                    if cancel is not None and cancel.is_set():
                        _cancel(loop, task)
                        state["reason"] = "cancelled"
                        break
                elif kind == "usage":
                    state["usage"] = value
                elif kind == "finish":
                    state["reason"] = state["reason"] or value
        finally:
            _cancel(loop, task)
            thread.join(5)
        yield self._finish(state)

    @staticmethod
    def _finish(state: dict) -> FinishEvent:
        finished = time.perf_counter()
        usage = state["usage"] or {}
        output = usage.get("completion_tokens") if isinstance(usage.get("completion_tokens"), int) else state["count"]
        first, last = state["first"], state["last"]
        decode = (output - 1) / (last - first) if first and last and last > first and output > 1 else 0.0
        reason = state["reason"] or "stop"
        metrics = {"ttft_s": (first - state["started"]) if first else 0.0, "decode_tokens_per_s": decode,
                   "prompt_tokens": usage.get("prompt_tokens"), "output_tokens": output,
                   "total_s": finished - state["started"], "finish_reason": reason,
                   "usage_from_server": bool(state["usage"])}
        return FinishEvent([], "".join(state["pieces"]), reason, metrics)

    def _drive(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task, events: queue.Queue) -> None:
        """The stream's own thread and loop; every outcome ends in the events queue (None last)."""
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(task)
        except asyncio.CancelledError:
            pass
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            events.put(self._connection_error(exc))
        except BaseException as exc:  # noqa: BLE001 - RemoteError and anything else reach the caller
            events.put(exc)
        finally:
            events.put(None)
            loop.close()

    async def _stream(self, body: dict, events: queue.Queue) -> None:
        async with self._session() as session, \
                session.post(self.url + "/chat/completions", json=body) as response:
            await self._check(response, f"model '{self.name}'")
            events.put(("started", None))
            async for line in response.content:
                line = line.strip()
                if not line.startswith(b"data:"):
                    continue  # comments (": ping"), event names, blank separators
                data = line[5:].strip()
                if data == b"[DONE]":
                    return
                try:
                    chunk = json.loads(data)
                except ValueError:
                    raise RemoteError(f"the server at {self.url} sent a stream chunk that is not JSON: "
                                      f"{data[:80].decode('utf-8', 'replace')}") from None
                if not isinstance(chunk, dict):
                    raise RemoteError(f"the server at {self.url} sent a stream chunk that is not an object")
                if isinstance(chunk.get("error"), dict):
                    raise RemoteError(f"the server at {self.url} reported: {chunk['error'].get('message')}")
                if isinstance(chunk.get("usage"), dict):
                    events.put(("usage", chunk["usage"]))
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    if isinstance(delta.get("content"), str) and delta["content"]:
                        events.put(("text", delta["content"]))
                    if choice.get("finish_reason"):
                        events.put(("finish", choice["finish_reason"]))
