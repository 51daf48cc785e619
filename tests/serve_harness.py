"""`python -m inference serve` as a subprocess on a free port (--port 0): start, read its URL, stop."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class ServeProcess:
    """A running `serve`; .url is the http://127.0.0.1:PORT/v1 it printed, .stderr_text what it said there."""

    def __init__(self, *args: str, timeout: float = 180.0):
        self.proc = subprocess.Popen([sys.executable, "-m", "inference", "serve", "--port", "0", *args], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: list[str] = []
        self.stderr_lines: list[str] = []
        threading.Thread(target=self._drain, args=(self.proc.stderr, self.stderr_lines), daemon=True).start()
        deadline = time.monotonic() + timeout
        self.url = None
        while self.url is None:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("serve exited before it was ready: " + "".join(self.stderr_lines)[-2000:])
            self.lines.append(line)
            if "http://" in line:
                self.url = line[line.index("http://"):].split()[0]
            if time.monotonic() > deadline:
                raise RuntimeError("serve did not print its URL in time")
        threading.Thread(target=self._drain, args=(self.proc.stdout, self.lines), daemon=True).start()

    @staticmethod
    def _drain(stream, into: list[str]) -> None:
        for line in stream:
            into.append(line)

    @property
    def stderr_text(self) -> str:
        return "".join(self.stderr_lines)

    def terminate(self, timeout: float = 20.0) -> tuple[int, float]:
        """SIGTERM; (exit code, seconds it took to exit)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        return code, time.monotonic() - started

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
