"""The quantized cache at load time: a second int8 / int4 load reads the packed quantized tensors instead of
quantizing again.

The key hashes the model folder's weight, index and config files (resolved path, size, mtime_ns), the quantize
mode, dtype, device and the kernel layout (kernels present, packing flags, int4 layout, CACHE_VERSION): any
change makes a new key, and the folder's older entries for the same mode and dtype are removed. A cache file
is never trusted blindly: its metadata and every tensor's name, dtype and shape (and each layer's packing)
must match the model's layers, the scales must be finite, and any read error or mismatch means "re-quantize
and rewrite". Tensor-parallel loads and devices other than the CPU skip the cache.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path

import torch

from .. import quant_cache_dir as store
from . import kernels
from .int4 import LAYOUT as INT4_LAYOUT, Int4Linear
from .int8 import Int8Linear
from .linear import TILE

CACHE_VERSION = 1
#: Free disk space kept beyond an entry's size; below it the entry is not written.
DISK_MARGIN = 256 << 20
_DTYPES = {torch.int8: "I8", torch.uint8: "U8", torch.float16: "F16", torch.float32: "F32"}
_BUFFERS = ("qweight", "scales", "mins")

log = logging.getLogger(__name__)


def quantized_layers(model) -> dict[str, torch.nn.Module]:
    """The model's Int8Linear / Int4Linear load targets by checkpoint name."""
    return {name: t for name, t in model.weights().items() if isinstance(t, (Int8Linear, Int4Linear))}


def _tensors(layers: dict) -> dict[str, torch.Tensor]:
    return {f"{name}:{buf}": getattr(layer, buf) for name, layer in layers.items() for buf in _BUFFERS
            if isinstance(getattr(layer, buf, None), torch.Tensor)}


def _layout() -> dict:
    lib = kernels.load()
    return {"kernels": lib is not None, "int8_packing": bool(lib and lib.int8_packing()),
            "bf16_packing": bool(lib and lib.bf16_packing()), "int4_layout": lib.int4_layout() if lib else 0,
            "int4_format": INT4_LAYOUT, "tile": TILE, "max_int8_k": kernels.MAX_INT8_K, "version": CACHE_VERSION}


def _files(folder: Path) -> list[Path]:
    from ..modeling.weights import weight_files

    return sorted({folder / "config.json", *weight_files(folder)})


class QuantCache:
    """The cache entry one load would use; restore() before the weights load, store() after."""

    def __init__(self, folder: Path, quantize: str, dtype: torch.dtype, device: torch.device,
                 root: Path | None = None):
        self.root = store.cache_root() if root is None else root
        self.folder, self.quantize, self.dtype = folder, quantize, str(dtype).removeprefix("torch.")
        files = [[str(p.resolve()), (s := p.stat()).st_size, s.st_mtime_ns] for p in _files(folder)]
        ident = {"files": files, "quantize": quantize, "dtype": self.dtype, "device": device.type,
                 "layout": _layout()}
        self.key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]
        self.path = self.root / (self.key + store.SUFFIX)
        self.restored = False

    @classmethod
    def for_load(cls, model_dir, quantize: str | None, dtype: torch.dtype, device: torch.device,
                 tensor_parallel: bool) -> "QuantCache | None":
        """The entry for this load, or None when the cache does not apply (or the folder cannot be keyed)."""
        if model_dir is None or quantize is None or tensor_parallel or device.type != "cpu":
            return None
        try:
            cache = cls(Path(model_dir).expanduser().resolve(), quantize, dtype, device)
        except (OSError, ValueError, RuntimeError) as exc:  # the loader reports a broken folder itself
            log.info("quantized cache skipped: %s", exc)
            return None
        cache.remove_stale()
        return cache

    def _meta(self, layers: dict) -> dict[str, str]:
        return {"format": store.FORMAT, "key": self.key, "folder": str(self.folder), "quantize": self.quantize,
                "dtype": self.dtype, "created": str(int(time.time())),
                "packed": json.dumps({name: bool(layer.packed) for name, layer in layers.items()}, sort_keys=True)}

    def remove_stale(self) -> None:
        """Entries of the same folder, mode and dtype under another key: their files changed since."""
        for entry in store.entries(self.root):
            if entry.key != self.key and (entry.folder, entry.quantize, entry.dtype) == \
                    (str(self.folder), self.quantize, self.dtype):
                store.remove(entry.path)

    # ---- reading ------------------------------------------------------------------------------
    def restore(self, model) -> set[str]:
        """Fill the model's quantized layers from the entry: the checkpoint names restored (empty on a miss,
        or when the file does not match the model, which is then removed)."""
        if not self.path.is_file():
            return set()
        layers = quantized_layers(model)
        try:
            self._read(layers)
        except Exception as exc:  # noqa: BLE001 - any problem with the file: re-quantize and rewrite
            log.warning("quantized cache %s unusable (%s); quantizing again", self.path.name, exc)
            store.remove(self.path)
            return set()
        self.restored = True
        return set(layers)

    def _read(self, layers: dict) -> None:
        tensors = _tensors(layers)
        with open(self.path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            file_size = os.fstat(f.fileno()).st_size
            if not 0 < size <= min(store.HEADER_CAP, file_size - 8):
                raise ValueError("header length out of range")
            header = json.loads(f.read(size))
            meta = header.pop("__metadata__", {})
            expected_meta = self._meta(layers)
            for field in ("format", "key", "quantize", "dtype", "packed"):
                if meta.get(field) != expected_meta[field]:
                    raise ValueError(f"metadata {field} differs")
            if set(header) != set(tensors):
                raise ValueError("tensor names differ")
            base = 8 + size
            for name, info in sorted(header.items(), key=lambda item: item[1]["data_offsets"][0]):
                target = tensors[name]
                begin, end = info["data_offsets"]
                if info["dtype"] != _DTYPES.get(target.dtype) or list(info["shape"]) != list(target.shape) \
                        or end - begin != target.numel() * target.element_size() or base + end > file_size:
                    raise ValueError(f"{name} does not match the model")
                f.seek(base + begin)
                view = _bytes(target)
                if f.readinto(view) != len(view):
                    raise ValueError(f"{name} is truncated")
        for layer in layers.values():
            if not bool(torch.isfinite(layer.scales).all()):
                raise ValueError("non-finite scales")

    # ---- writing ------------------------------------------------------------------------------
    def store(self, model) -> bool:
        """Write the model's quantized tensors as this entry (temp file, then rename); False when skipped."""
        if self.restored:
            return False
        layers = quantized_layers(model)
        tensors = _tensors(layers)
        if not tensors:
            return False
        header, offset = {"__metadata__": self._meta(layers)}, 0
        for name, t in tensors.items():
            n = t.numel() * t.element_size()
            header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + n]}
            offset += n
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        tmp = self.root / f".{self.key}.{os.getpid()}.tmp"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            if shutil.disk_usage(self.root).free < offset + len(raw) + DISK_MARGIN:
                log.warning("quantized cache not written: %d bytes would not fit in %s", offset, self.root)
                return False
            with open(tmp, "wb") as f:
                f.write(len(raw).to_bytes(8, "little") + raw)
                for t in tensors.values():
                    f.write(_bytes(t))
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("quantized cache not written (%s)", exc)
            store.remove(tmp)
            return False
        return True


def _bytes(t: torch.Tensor) -> memoryview:
    """A writable byte view of a contiguous CPU tensor's storage (no copy)."""
    if not t.is_contiguous() or t.device.type != "cpu":
        raise ValueError("the cache takes contiguous CPU tensors")
    return memoryview(t.view(-1).view(torch.uint8).numpy()).cast("B")
