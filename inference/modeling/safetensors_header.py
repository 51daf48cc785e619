"""Safetensors headers read directly: shapes checked against the file's size, and the data's memory map."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch

from ..errors import ModelFolderError

SAFETENSORS_HEADER_CAP = 100 << 20  # the safetensors library's own limit
SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                      "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
                      "U8": torch.uint8, "BOOL": torch.bool}


def safetensors_error(path: Path, exc: Exception) -> ModelFolderError:
    detail = str(exc).splitlines()[0].rstrip(".") if str(exc) else exc.__class__.__name__
    return ModelFolderError(f"{path.name} is truncated or not a valid safetensors file ({detail})")


def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Names and shapes from the file's header alone (read with a cap, checked against the file's size):
    nothing is mapped, so a checkpoint bigger than memory is measured before anything would fail."""
    with open(path, "rb") as f:  # a regular file: _plan checked it
        file_size = os.fstat(f.fileno()).st_size
        size = int.from_bytes(f.read(8), "little")
        if file_size < 8 or size > min(SAFETENSORS_HEADER_CAP, file_size - 8):
            raise safetensors_error(path, ValueError("its header length is past the end of the file"))
        raw = f.read(size)
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise safetensors_error(path, ValueError("its header is not valid JSON")) from None
    if not isinstance(header, dict):
        raise safetensors_error(path, ValueError("its header is not a JSON object"))
    shapes, data_size = {}, file_size - 8 - size
    for name, info in header.items():
        if name == "__metadata__":
            continue
        shape = info.get("shape") if isinstance(info, dict) else None
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)
                and isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
            raise safetensors_error(path, ValueError(f"its header entry {name!r} is malformed"))
        dtype = SAFETENSORS_DTYPES.get(info.get("dtype"))
        if not 0 <= offsets[0] <= offsets[1] <= data_size or (
                dtype is not None and offsets[1] - offsets[0] != math.prod(shape) * dtype.itemsize):
            raise safetensors_error(path, ValueError(f"tensor {name} lies past the end of the file"))
        shapes[name] = tuple(shape)
    return shapes


def safetensors_views(path: Path) -> tuple[object, dict] | None:
    """A private read-only mapping of the file and each tensor's (dtype, shape, offset), or None if unusual."""
    import mmap

    with open(path, "rb") as f:  # safe_open has checked the file and its header already
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(min(size, SAFETENSORS_HEADER_CAP)))
        mapping = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    layout = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = SAFETENSORS_DTYPES.get(info.get("dtype"))
        if dtype is None:
            return None
        layout[name] = (dtype, tuple(info["shape"]), 8 + size + info["data_offsets"][0])
    return mapping, layout
