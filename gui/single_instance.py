"""One app instance per data folder: a QLockFile in the folder, and a QLocalServer a second launch asks to raise
the running window (the second launch then exits, never opening the history)."""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

from PySide6.QtCore import QLockFile, QObject, Qt, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

LOCK_FILENAME = "instance.lock"
RAISE_REQUEST = b"raise\n"
RAISED_REPLY = b"raised\n"
CONNECT_TRIES, CONNECT_WAIT_MS = 20, 250  # the first instance may still be starting its server: ~5 s in all


def server_name(folder: Path) -> str:
    """The local-server name of a data folder (a short hash of its resolved path: same folder, same name)."""
    digest = hashlib.sha256(str(Path(folder).resolve()).encode("utf-8", "surrogatepass")).hexdigest()[:20]
    return f"baichuan-chat-{digest}"


class InstanceGuard(QObject):
    """Hold the data folder for this process, or hand over to the instance that holds it."""

    raise_requested = Signal()  # a second launch on this folder asked for the window

    def __init__(self, folder: Path, parent=None):
        super().__init__(parent)
        self.folder = Path(folder)
        self.name = server_name(self.folder)
        self.lock = QLockFile(str(self.folder / LOCK_FILENAME))
        # Only a dead owner makes a lock stale (QLockFile checks its PID); an old lock of a live one never does.
        self.lock.setStaleLockTime(0)
        self.server: QLocalServer | None = None

    def acquire(self) -> str:
        """"owner": this process now owns the folder and listens for raise requests; "taken": another running
        instance owns it; "unlocked": no lock can be made there (read-only folder...): go on without one."""
        if not self.lock.tryLock(0):
            if self.lock.error() != QLockFile.LockError.LockFailedError:
                return "unlocked"
            # tryLock already removed a lock whose owner is dead; one more look for a lock that just went stale.
            if not (self.lock.removeStaleLockFile() and self.lock.tryLock(0)):
                return "taken"
        QLocalServer.removeServer(self.name)  # a socket left by a killed owner would make listen() fail
        self.server = QLocalServer(self)
        self.server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self.server.newConnection.connect(self._accept)
        self.server.listen(self.name)  # without it a second launch still exits (it is told no one answered)
        return "owner"

    def ask_owner_to_raise(self) -> bool:
        """From a second launch: ask the owner to raise its window; True once it said it did."""
        for _ in range(CONNECT_TRIES):
            socket = QLocalSocket()
            socket.connectToServer(self.name)
            if socket.waitForConnected(CONNECT_WAIT_MS):
                socket.write(RAISE_REQUEST)
                socket.waitForBytesWritten(1000)
                reply = socket.readAll().data() if socket.waitForReadyRead(3000) else b""
                socket.disconnectFromServer()
                return reply.startswith(RAISED_REPLY)
            socket.abort()
            time.sleep(CONNECT_WAIT_MS / 1000)
        return False

    def release(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        if self.lock.isLocked():
            self.lock.unlock()

    def _accept(self) -> None:
        while self.server is not None and self.server.hasPendingConnections():
            socket = self.server.nextPendingConnection()
            socket.readyRead.connect(lambda s=socket: self._read(s))
            socket.disconnected.connect(socket.deleteLater)

    def _read(self, socket: QLocalSocket) -> None:
        if bytes(socket.readAll().data()).startswith(RAISE_REQUEST):
            self.raise_requested.emit()
            socket.write(RAISED_REPLY)
            socket.flush()


def raise_window(window) -> None:
    """Bring the window to the front (un-minimized, active)."""
    window.setWindowState(window.windowState() & ~Qt.WindowState.WindowMinimized)
    window.show()
    window.raise_()
    window.activateWindow()
