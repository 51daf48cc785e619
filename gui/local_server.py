"""LocalServer: the window's switch for the OpenAI-compatible API over the model the worker already holds (no
second copy): start / stop off the GUI thread, status polled for the panel and the status bar."""
from __future__ import annotations

import asyncio
import socket

from PySide6.QtCore import QObject, QTimer, Signal

POLL_MS = 300
LOOPBACK, ANY = "127.0.0.1", "0.0.0.0"


def lan_address() -> str:
    """This computer's address on its network (no packet is sent), for the URL other computers use."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("10.255.255.255", 1))
            return probe.getsockname()[0]
    except OSError:
        return socket.gethostname()


class LocalServer(QObject):
    """state: 'off', 'starting', 'on', 'stopping' or 'error' (then `error` says why, e.g. the port is in use).
    `changed` fires on every state or status change (requests answering and waiting, the last answer's line)."""

    changed = Signal()

    def __init__(self, client, parent=None):
        super().__init__(parent)
        self.client = client
        self.handle = None
        self.state, self.error, self.lan = "off", "", False
        self.active = 0  # API requests being answered or queued
        self.last_line = ""  # the server's line about the last answer (tokens, TTFT, tok/s)
        self._timer = QTimer(self, interval=POLL_MS)
        self._timer.timeout.connect(self._poll)

    # ---- switching ---------------------------------------------------------------------------
    def starting(self) -> None:
        """Show 'Starting…' at once (the click's feedback), before start() runs on the loop."""
        self.error = ""
        self._set("starting")

    async def start(self, port: int, api_key: str = "", lan: bool = False) -> bool:
        """Listen on 127.0.0.1 (or every address when lan, which needs a key); False with `error` set."""
        if self.handle is not None:
            await self.stop()
        from inference.errors import UserError

        self.lan, self.error = lan, ""
        if lan and not api_key.strip():
            return self._failed(self.tr("Set an API key first: other computers may only connect with one."))
        self._set("starting")
        try:
            from inference.serve import start_server

            self.handle = await asyncio.to_thread(
                start_server, self.client.local_engine, ANY if lan else LOOPBACK, int(port),
                api_key.strip() or None, log=self._log)
        except UserError as exc:
            return self._failed(str(exc))
        except OSError as exc:
            return self._failed(f"cannot listen on port {port}: {exc.strerror or exc}")
        self.active = 0
        self._timer.start()
        self._set("on")
        return True

    async def stop(self) -> None:
        """Close the port; API answers in flight are cancelled (their clients get an error event or a 503)."""
        handle, self.handle = self.handle, None
        self._timer.stop()
        if handle is not None:
            self._set("stopping")
            await asyncio.to_thread(handle.stop)
        self.active = 0
        self._set("off")

    def shutdown(self) -> None:
        """The app quits: stop now, synchronously (answers in flight are cancelled first)."""
        handle, self.handle = self.handle, None
        self._timer.stop()
        if handle is not None:
            handle.stop()
        self.state = "off"

    # ---- what is shown -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The URL other programs use: 127.0.0.1, or this computer's network address when others may connect."""
        if self.handle is None:
            return ""
        host = lan_address() if self.lan else LOOPBACK
        return f"http://{host}:{self.handle.port}/v1"

    @property
    def port(self) -> int | None:
        return self.handle.port if self.handle is not None else None

    def _poll(self) -> None:
        if self.handle is None:
            return
        active = self.handle.active
        if active != self.active or self._fresh_line:
            self.active, self._fresh_line = active, False
            self.changed.emit()

    _fresh_line = False

    def _log(self, line: str) -> None:  # the server's thread: picked up by the next poll
        self.last_line, self._fresh_line = line, True

    def _failed(self, message: str) -> bool:
        self.error = message
        self._set("error")
        return False

    def _set(self, state: str) -> None:
        self.state = state
        self.changed.emit()
