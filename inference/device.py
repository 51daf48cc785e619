"""Device and dtype choice: Ascend NPU (torch_npu, imported lazily) → CUDA → CPU; fp16 on NPU, bf16 on CUDA."""
from __future__ import annotations

import importlib.util

import torch

from .errors import DeviceError

from .choices import DEVICES

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}  # choices.DTYPES but auto


def npu_available() -> bool:
    """True when torch_npu is installed, imports, and sees at least one NPU."""
    if importlib.util.find_spec("torch_npu") is None:
        return False
    from .npu.runtime import ensure_task_queue

    ensure_task_queue()  # TASK_QUEUE_ENABLE=2 unless set: torch_npu reads it at import
    try:
        import torch_npu  # noqa: F401  (registers the "npu" device with torch)
    except Exception:
        return False
    return bool(getattr(torch, "npu", None) and torch.npu.is_available())


def resolve_device(name: str = "auto") -> torch.device:
    """Map 'auto'|'npu'|'cuda'|'cpu' to a usable torch.device, or raise a one-line DeviceError."""
    if name not in DEVICES:
        raise DeviceError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    if name == "auto":
        if npu_available():
            return torch.device("npu:0")
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if name == "npu" and not npu_available():
        raise DeviceError(
            "no Ascend NPU is available: install CANN, run `source /usr/local/Ascend/ascend-toolkit/set_env.sh`, "
            "then `pip install .[npu]`"
        )
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("no CUDA GPU is available; use --device cpu")
    return torch.device("npu:0" if name == "npu" else "cuda:0" if name == "cuda" else "cpu")


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """Map 'auto'|'float16'|'bfloat16'|'float32' to a dtype the device supports."""
    if name == "auto":
        if device.type == "npu":
            return torch.float16  # 310P (300I Duo) has no bf16
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return cpu_auto_dtype()
    if name not in DTYPES:
        raise DeviceError(f"unknown dtype {name!r}; choose auto, float16, bfloat16 or float32")
    return DTYPES[name]


def cpu_auto_dtype() -> torch.dtype:
    """bfloat16 on the CPU: it halves the bytes each decoded token reads, which sets decode speed.

    Measured with `python -m bench` (AMD EPYC Zen 4, 2 cores, AVX-512-BF16; docs/BENCHMARKS.md):
    bf16 decodes ~4x faster than float32 (59 vs 15 tok/s, 512 in / 64 out) and prefills ~2x faster
    (1316 vs 672 tok/s); on the demo model 55 vs 15 tok/s. On CPUs without native bf16 dot products prefill
    is slower than float32, but decode, what a chat waits on, still reads half the bytes.
    That holds with our C kernels only: stock torch's bf16 decode path was ~5x slower than float32 here on the
    demo model (0.7 vs 3.9 tok/s, same loaded machine, BAICHUAN_NO_CPU_KERNELS=1), so without them: float32.
    """
    from .cpu import auto_dtype  # builds the C kernels on first use (cached): the choice depends on them

    return auto_dtype()


def synchronizer(device: torch.device):
    """A call that waits for the device's queued work (a no-op on the CPU): timings read after it are real.

    Kernels on CUDA and on an NPU run asynchronously; without a sync a timer measures the launches only.
    """
    if device.type == "cuda":
        return torch.cuda.synchronize
    if device.type == "npu":
        return torch.npu.synchronize
    return lambda: None


def dtype_name(dtype: torch.dtype) -> str:
    return {v: k for k, v in DTYPES.items()}[dtype]
