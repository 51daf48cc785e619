"""Atomic UTF-8 file writes for exports: the destination holds either its old content or all of the new."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from inference.errors import UserError


class ExportError(UserError):
    """An export could not be written; any earlier file at the destination is left as it was."""


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 text so that `path` holds either its old content or all of the new (temp file in the
    same folder, fsync, os.replace, fsync of the folder); raises ExportError. A new file gets the usual mode
    (0666 less the umask, e.g. 0644), a replaced one keeps its mode."""
    path = Path(path)
    try:
        fd, tmp = _create_temp(path)
    except OSError as exc:
        raise ExportError(f"Cannot write {path} ({exc.strerror or exc}).") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)  # keep the mode of the file being replaced
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise ExportError(f"Cannot write {path} ({exc.strerror or exc}).") from exc
        raise
    if os.name == "posix":
        try:
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError:
            pass  # the file itself is complete; some file systems cannot sync a folder


def _create_temp(path: Path) -> tuple[int, str]:
    """A new, exclusive temp file beside `path`, created with mode 0666 for the kernel to apply the umask
    (tempfile.mkstemp makes 0600 files, which left every export unreadable to the user's other accounts)."""
    while True:
        tmp = str(path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp"))
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue
