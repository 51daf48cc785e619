"""start_server: the OpenAI-compatible API in its own thread and asyncio loop, for the CLI and the window alike."""
from __future__ import annotations

import asyncio
import ipaddress
import threading
from typing import Callable

from aiohttp import web

from ..errors import InputError
from .app import EngineProvider, build_app

KEEPALIVE_S = 15.0  # an idle or half-sent connection (headers never finished) is closed after this
SHUTDOWN_S = 5.0  # answers still running when stopping get this long to end (they are cancelled first)
LINGER_S = 2.0  # after an early answer (408, 413) the unread rest of a body is drained this long at most
MAX_HEADERS = 64  # header lines in one request
MAX_FIELD_BYTES = 8190  # one header line / the request line


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, api_key: str | None, allow_no_key: bool) -> str | None:
    """InputError when a non-loopback address is asked for without a key or the explicit flag; else a warning."""
    if is_loopback(host):
        return None
    if not api_key and not allow_no_key:
        raise InputError(f"serving on {host} lets other machines use the model: set --api-key KEY, or pass "
                         "--allow-no-key to serve without one")
    if not api_key:
        return f"warning: serving on {host} without an API key; anyone who can reach this port can use the model"
    return f"warning: serving on {host}; the API key travels unencrypted (plain HTTP)"


def url_for(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/v1"


class ServerHandle:
    """A running server: url, host, port; stop() cancels answers in flight and closes it (idempotent)."""

    def __init__(self, engine_provider: EngineProvider, host: str, port: int, api_key: str | None,
                 cors_origin: str | None, log: Callable[[str], None] | None = None):
        self.host, self.port = host, port
        self._app, self._routes = build_app(engine_provider, api_key, cors_origin, log)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="api-server")
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error

    @property
    def url(self) -> str:
        return url_for(self.host, self.port)

    @property
    def active(self) -> int:
        """Requests being answered or queued right now."""
        return len(self._routes.jobs)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._start())
        except OSError as exc:
            self._error = InputError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}")
        except BaseException as exc:  # noqa: BLE001 - handed to the caller of start_server
            self._error = exc
        self._ready.set()
        if self._error is None:
            self._loop.run_forever()
        self._loop.close()

    async def _start(self) -> None:
        self._runner = web.AppRunner(self._app, handler_cancellation=True, keepalive_timeout=KEEPALIVE_S,
                                     max_headers=MAX_HEADERS, max_line_size=MAX_FIELD_BYTES,
                                     max_field_size=MAX_FIELD_BYTES, access_log=None,
                                     shutdown_timeout=SHUTDOWN_S, lingering_time=LINGER_S)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            raise
        self.port = self._runner.addresses[0][1]  # the real port when 0 was asked for

    async def _shutdown(self) -> None:
        for job in list(self._routes.jobs):
            job.cancel.set()  # every generation in flight or queued ends within a token
        await self._runner.cleanup()

    def stop(self, timeout: float = 10.0) -> None:
        if not self._thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        try:
            future.result(timeout)
        except Exception:  # noqa: BLE001 - stopping goes on regardless
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)


def start_server(engine_provider: EngineProvider, host: str = "127.0.0.1", port: int = 8000,
                 api_key: str | None = None, cors_origin: str | None = None,
                 allow_no_key: bool = False, log: Callable[[str], None] | None = None) -> ServerHandle:
    """Serve engine_provider()'s Engine (None: answered 503) until handle.stop(); returns once listening.

    Raises InputError for a refused bind (another machine's address without a key) or a busy port. The
    handle's `warning` holds the line to show for a non-loopback address (None on 127.0.0.1). log, when
    given, receives one line per answer (tokens, finish reason, queue wait, TTFT, decode speed).
    """
    warning = check_bind(host, api_key, allow_no_key)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InputError(f"port must be an integer from 0 to 65535, got {port!r}")
    handle = ServerHandle(engine_provider, host, port, api_key, cors_origin, log)
    handle.warning = warning
    return handle
