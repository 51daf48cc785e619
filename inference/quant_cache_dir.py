"""The quantized-weight cache's folder and entries: where it lives, what each entry holds, list and clear (no torch).

An entry is one safetensors file, <key>.safetensors, whose header metadata names the model folder, the
quantize mode and dtype it was made for (inference.cpu.quant_cache writes and reads them).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .env import get_env

APP_NAME = "baichuan-chat"
SUFFIX = ".safetensors"
FORMAT = "baichuan-chat quantized cache"
HEADER_CAP = 16 << 20


def cache_root() -> Path:
    """$BAICHUAN_CHAT_CACHE_DIR/quantized, else the user cache folder's baichuan-chat/quantized."""
    override = get_env("BAICHUAN_CHAT_CACHE_DIR")
    if override:
        return Path(override).expanduser() / "quantized"
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)) / "quantized"


@dataclass(frozen=True)
class Entry:
    """One cache file: its key, size, and what its header says (empty strings when the header is unreadable)."""

    key: str
    path: Path
    size: int
    folder: str = ""
    quantize: str = ""
    dtype: str = ""


def read_metadata(path: Path) -> dict:
    """The __metadata__ of a safetensors file ({} when there is none); OSError / ValueError when unreadable."""
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        if not 0 < size <= min(HEADER_CAP, os.fstat(f.fileno()).st_size - 8):
            raise ValueError("header length out of range")
        header = json.loads(f.read(size))
    if not isinstance(header, dict):
        raise ValueError("header is not an object")
    meta = header.get("__metadata__") or {}
    return meta if isinstance(meta, dict) else {}


def entries(root: Path | None = None) -> list[Entry]:
    """Every entry of the cache, oldest first (an unreadable one is listed with empty fields)."""
    root = cache_root() if root is None else root
    found = []
    for path in sorted(root.glob("*" + SUFFIX), key=_mtime):
        try:
            size = path.stat().st_size
        except OSError:
            continue
        try:
            meta = read_metadata(path)
        except (OSError, ValueError, UnicodeDecodeError, RecursionError):
            meta = {}
        if meta.get("format") not in (None, FORMAT):
            continue
        found.append(Entry(path.name[:-len(SUFFIX)], path, size, str(meta.get("folder", "")),
                           str(meta.get("quantize", "")), str(meta.get("dtype", ""))))
    return found


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def total_size(root: Path | None = None) -> int:
    """Bytes the cache's entries take."""
    return sum(entry.size for entry in entries(root))


def remove(path: Path) -> int:
    """Delete one entry file; the bytes freed (0 when it was already gone)."""
    try:
        size = path.stat().st_size
        path.unlink()
        return size
    except FileNotFoundError:
        return 0


def clear(key: str | None = None, root: Path | None = None) -> tuple[int, int]:
    """Remove the entry `key` (every entry and leftover temporary file when None): (entries removed, bytes freed).
    An unknown key raises KeyError."""
    root = cache_root() if root is None else root
    if key is not None:
        match = [e for e in entries(root) if e.key == key]
        if not match:
            raise KeyError(key)
        return 1, remove(match[0].path)
    count = freed = 0
    for entry in entries(root):
        freed += remove(entry.path)
        count += 1
    for leftover in root.glob(".*.tmp"):  # a write that was interrupted
        freed += remove(leftover)
    return count, freed
