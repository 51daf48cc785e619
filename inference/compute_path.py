"""Which compute path a loaded engine uses (the C kernels with bf16 / int8 weights, or torch, and why torch),
in one short line for the status bar, the log and the CLI; built from engine.info()."""
from __future__ import annotations

import os
import shutil
import sys

from .env import get_env


_SHORT = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}


def fallback_reason() -> str:
    """Why the C kernels are not in use on this CPU, as far as can be told without building them."""
    if get_env("BAICHUAN_CHAT_NO_CPU_KERNELS"):
        return "switched off by BAICHUAN_CHAT_NO_CPU_KERNELS"
    if sys.platform != "linux":
        return f"the C kernels are built on Linux only (this is {sys.platform})"
    if not (os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")):
        return "no C compiler found (install gcc)"
    return "the kernels did not build or this CPU has no AVX2/AVX-512"


def describe(info: dict) -> str:
    """E.g. 'C kernels · bf16', 'C kernels · int8', 'torch · cuda fp16',
    'torch fallback (no C compiler found (install gcc))'."""
    kernels = info.get("kernels") or {}
    device = str(info.get("device", ""))
    dtype = str(info.get("dtype", ""))
    weights = info.get("quantize") or kernels.get("quantize") or _SHORT.get(dtype, dtype)
    if kernels.get("cpu_kernels"):
        extra = " + fused decode" if kernels.get("fused_decode") else ""
        return f"C kernels · {weights}{extra}"
    if device.startswith("cpu"):
        return f"torch fallback · {weights} ({fallback_reason()})"
    return f"torch · {device} {weights}"
