"""The aiohttp application: GET /v1/models and POST /v1/chat/completions (plain and SSE) over one shared Engine."""
from __future__ import annotations

import asyncio
import hmac
import json
import sys
import threading
import time
import traceback
from typing import Callable

from aiohttp import web

from ..errors import InputError, UserError
from . import protocol as p
from .protocol import ApiError

MAX_BODY_BYTES = 4 * 1024 * 1024  # a request body over this is answered 413
BODY_TIMEOUT_S = 30.0  # a client that has not sent its whole body by then is answered 408
WRITE_TIMEOUT_S = 60.0  # a client that stops reading an answer for this long is dropped (its generation stops)
MAX_WAITING = 32  # requests queued for the engine beyond this are answered 503

EngineProvider = Callable[[], object]  # returns the Engine to serve, or None while none is loaded


class Job:
    """One request's generation in its own thread; its events reach the asyncio side through a queue."""

    def __init__(self, events, loop: asyncio.AbstractEventLoop, jobs: set, log: Callable[[str], None] | None):
        self.id = p.completion_id()
        self.cancel = threading.Event()
        self.queue: asyncio.Queue = asyncio.Queue()
        self.loop, self.jobs, self.log = loop, jobs, log
        jobs.add(self)
        threading.Thread(target=self._run, args=(events,), daemon=True, name="api-request").start()

    def _run(self, events) -> None:
        event = None
        try:
            for event in events(self.cancel):
                self._put(event)
            if self.log is not None and hasattr(event, "finish_reason"):
                self.log(self._summary(event))
        except BaseException as exc:  # noqa: BLE001 - handed to the request's task, which answers it
            self._put(exc)
        self._put(None)

    def _summary(self, finish) -> str:
        """One log line per answer, from the engine's own count (also after its client has gone)."""
        m = finish.metrics
        return (f"{self.id}: {m.get('prompt_tokens')} prompt + {len(finish.output_ids)} completion tokens, "
                f"{finish.finish_reason}, queued {m.get('queued_s', 0):.2f} s, TTFT {m.get('ttft_s', 0):.2f} s, "
                f"decode {m.get('decode_tokens_per_s', 0):.1f} tok/s")

    def _put(self, item) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: the server has stopped
            pass

    async def next(self):
        item = await self.queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self.cancel.set()
        self.jobs.discard(self)


def user_error(exc: UserError) -> ApiError:
    from ..engine import ContextLengthError

    if isinstance(exc, ContextLengthError):
        return p.bad(str(exc), "messages", "context_length_exceeded")
    if isinstance(exc, InputError):
        return p.bad(str(exc))
    return ApiError(500, str(exc), "server_error")


@web.middleware
async def errors_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except ApiError as exc:
        response = web.json_response(exc.body(), status=exc.status)
        if exc.status in (408, 413):  # the rest of that body is not read: the connection ends here
            response.force_close()
        return response
    except UserError as exc:
        err = user_error(exc)
        return web.json_response(err.body(), status=err.status)
    except web.HTTPException as exc:  # aiohttp's own (404 route, 405, 413 ...) in OpenAI's shape
        if exc.status < 400:
            raise
        kind = "invalid_request_error" if exc.status < 500 else "server_error"
        body = ApiError(exc.status, exc.reason or "error", kind).body()
        return web.json_response(body, status=exc.status, headers={k: v for k, v in exc.headers.items()
                                                                  if k.lower() == "allow"})
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception as exc:  # noqa: BLE001 - one line to the client, the traceback to the server's stderr
        traceback.print_exception(exc, file=sys.stderr)
        return web.json_response(ApiError(500, f"internal error: {exc.__class__.__name__}", "server_error").body(),
                                 status=500)


def auth_middleware(api_key: str | None):
    @web.middleware
    async def check(request: web.Request, handler):
        if api_key and request.method != "OPTIONS":
            given = request.headers.get("Authorization", "")
            token = given[7:] if given[:7].lower() == "bearer " else ""
            if not hmac.compare_digest(token.encode(), api_key.encode()):
                raise ApiError(401, "Incorrect or missing API key; send it as 'Authorization: Bearer KEY'.",
                               "invalid_request_error", None, "invalid_api_key")
        return await handler(request)
    return check


def cors_middleware(origin: str):
    @web.middleware
    async def cors(request: web.Request, handler):
        if request.method == "OPTIONS":
            response = web.Response(status=204)
        else:
            response = await handler(request)
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        return response
    return cors


class Routes:
    """Request handlers bound to the engine provider and the set of running jobs."""

    def __init__(self, engine_provider: EngineProvider, log: Callable[[str], None] | None = None):
        self.engine_provider, self.log = engine_provider, log
        self.jobs: set[Job] = set()
        self.created = int(time.time())

    def engine(self):
        engine = self.engine_provider()
        if engine is None:
            raise ApiError(503, "no model is loaded", "server_error", None, "model_not_loaded")
        return engine

    async def models(self, request: web.Request) -> web.Response:
        engine = self.engine()
        return web.json_response(p.models_list(engine.name, self.created, engine.max_seq_len))

    async def read_json(self, request: web.Request):
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            raise ApiError(413, f"the request body is over {MAX_BODY_BYTES} bytes", "invalid_request_error")
        try:
            raw = await asyncio.wait_for(request.read(), BODY_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise ApiError(408, f"the request body did not arrive within {BODY_TIMEOUT_S:.0f} s") from None
        except web.HTTPRequestEntityTooLarge:
            raise ApiError(413, f"the request body is over {MAX_BODY_BYTES} bytes", "invalid_request_error") from None
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise p.bad("the request body is not valid JSON") from None

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        engine = self.engine()
        req = p.parse_chat_request(await self.read_json(request))
        # One model is served: any name reaches it (tools insist on sending one); answers carry its real id.
        sampling = engine.default_sampling(**req.sampling).validate()
        if engine.waiting >= MAX_WAITING:
            raise ApiError(503, f"the server is busy ({engine.waiting} requests waiting); try again later",
                           "server_error", None, "server_busy")

        def events(cancel):
            return engine.stream_chat(req.messages, req.max_tokens, sampling, cancel, truncate=False)

        job = Job(events, asyncio.get_running_loop(), self.jobs, self.log)
        try:
            started = await job.next()  # ChatStarted, or the input error the engine found
            answer = _Answer(req, engine.name, len(started.input_ids), job.id)
            if req.stream:
                return await self._stream(request, job, answer)
            while not answer.take(await job.next(), job):
                pass
            return web.json_response(p.completion(answer.id, answer.model, answer.text, answer.reason, answer.usage()))
        finally:
            job.close()  # a client gone mid-answer (handler cancelled) stops its generation here

    async def _stream(self, request: web.Request, job: Job, answer: "_Answer") -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                               "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        await response.prepare(request)

        async def send(data) -> None:
            try:
                await asyncio.wait_for(response.write(p.sse(data)), WRITE_TIMEOUT_S)
            except asyncio.TimeoutError:  # a client that stopped reading is dropped like one that left
                raise ConnectionResetError("the client stopped reading") from None

        try:
            await self._send_events(send, job, answer)
            await response.write_eof()
        except ConnectionError:  # the client left (some close right after [DONE]): its job is cancelled on return
            pass
        return response

    @staticmethod
    async def _send_events(send, job: Job, answer: "_Answer") -> None:
        with_usage = answer.req.include_usage
        await send(p.chunk(answer.id, answer.model, {"role": "assistant", "content": ""}, None, with_usage))
        done = False
        while not done:
            try:
                done = answer.take(await job.next(), job)
            except (ApiError, UserError) as exc:  # after the headers went out: an error event, no [DONE]
                await send((exc if isinstance(exc, ApiError) else user_error(exc)).body())
                return
            if answer.fresh:
                await send(p.chunk(answer.id, answer.model, {"content": answer.fresh}, None, with_usage))
        await send(p.chunk(answer.id, answer.model, {}, answer.reason, with_usage))
        if with_usage:
            await send(p.usage_chunk(answer.id, answer.model, answer.usage()))
        await send("[DONE]")


class _Answer:
    """One completion as it grows: text cut at stop strings, finish reason, token counts."""

    def __init__(self, req: p.ChatRequest, model: str, prompt_tokens: int, cid: str):
        self.req, self.model, self.prompt_tokens, self.id = req, model, prompt_tokens, cid
        self.stop = p.StopMatcher(req.stop)
        self.text, self.fresh, self.reason, self.tokens = "", "", "stop", 0

    def take(self, event, job: Job) -> bool:
        """Fold one engine event in; True when the answer is complete."""
        from ..engine import FinishEvent

        if isinstance(event, FinishEvent) or event is None:
            self.fresh = self.stop.flush()
            self.text += self.fresh
            if event is not None:
                if event.finish_reason == "cancelled":  # only the server's own shutdown cancels a listened answer
                    raise ApiError(503, "the server stopped before the answer was complete", "server_error",
                                   None, "server_shutdown")
                self.tokens = len(event.output_ids)
                self.reason = "length" if event.finish_reason == "length" else "stop"
            return True
        self.tokens += 1
        self.fresh, hit = self.stop.push(event.text)
        self.text += self.fresh
        if hit:
            job.cancel.set()  # the engine stops after this token; the rest of its events are not awaited
            self.reason = "stop"
        return hit

    def usage(self) -> dict:
        return p.usage(self.prompt_tokens, self.tokens)


def build_app(engine_provider: EngineProvider, api_key: str | None = None, cors_origin: str | None = None,
              log: Callable[[str], None] | None = None) -> tuple[web.Application, Routes]:
    middlewares = [errors_middleware, auth_middleware(api_key)]
    if cors_origin:
        middlewares.insert(0, cors_middleware(cors_origin))
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY_BYTES)
    routes = Routes(engine_provider, log)
    app.router.add_get("/v1/models", routes.models)
    app.router.add_post("/v1/chat/completions", routes.chat_completions)
    return app, routes
