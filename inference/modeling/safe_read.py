"""Reading files of a model folder: regular files only, never blocking on a FIFO, never more than a size cap."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import ModelFolderError

#: Caps on what is read whole into memory (real Baichuan2 files: config ~1 KB, index ~25 KB, tokenizer 2 MB).
JSON_CAP = 16 << 20
TOKENIZER_CAP = 64 << 20

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))


def _megabytes(size: int) -> str:
    return f"{size / (1 << 20):.0f} MB" if size >= 1 << 20 else f"{size} bytes"


def _refuse_irregular(mode: int, path: Path, what: str) -> None:
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        raise ModelFolderError(f"{what} is {kind}, not a regular file: {path}")


def check_regular(path: Path, what: str) -> int:
    """The size of `path` after following links; a one-line error unless it is a regular file."""
    try:
        info = os.stat(path)  # stat never opens: a FIFO cannot block here
    except FileNotFoundError:
        raise ModelFolderError(f"{what} is missing: {path}") from None
    except OSError as exc:
        raise ModelFolderError(f"{what} cannot be read ({exc.strerror or exc.__class__.__name__}): {path}") from None
    _refuse_irregular(info.st_mode, path, what)
    return info.st_size


def read_capped(path: Path, what: str, cap: int) -> bytes:
    """The bytes of a regular file of at most `cap` bytes (opened non-blocking, checked again once open)."""
    path = Path(path)
    check_regular(path, what)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ModelFolderError(f"{what} cannot be read ({exc.strerror or exc.__class__.__name__}): {path}") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())  # the file opened may differ from the one checked (a swapped link)
        _refuse_irregular(info.st_mode, path, what)
        if info.st_size > cap:
            raise ModelFolderError(f"{what} is {_megabytes(info.st_size)}, more than the {_megabytes(cap)} "
                                   f"such a file can be: {path}")
        try:
            data = f.read(cap + 1)
        except OSError as exc:
            raise ModelFolderError(f"{what} cannot be read ({exc.strerror or exc.__class__.__name__}): {path}") \
                from None
    if len(data) > cap:  # grew while being read
        raise ModelFolderError(f"{what} is more than the {_megabytes(cap)} such a file can be: {path}")
    return data
