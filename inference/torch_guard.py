"""torch environment faults: a broken torch_npu (no CANN) failing `import torch`, and out-of-memory errors."""
from __future__ import annotations

import os
import sys

CANN_ADVICE = (
    "torch could not be imported because torch_npu is installed but the Ascend CANN toolkit is not set up: "
    "run `source /usr/local/Ascend/ascend-toolkit/set_env.sh` first, or start with "
    "TORCH_DEVICE_BACKEND_AUTOLOAD=0 to use the CPU"
)
#: Messages of allocator failures that torch raises as a plain RuntimeError (CPU, older CUDA, torch_npu).
_OOM_TEXTS = ("can't allocate memory", "out of memory", "cannot allocate memory")

_import_result: list[str | None] = []  # memo: a failed `import torch` cannot be retried in the same process


def torch_import_problem() -> str | None:
    """None when torch imports; otherwise one sentence saying what to do.

    The answer is remembered: after a failed `import torch`, a second import in the same process fails
    differently ("Only a single TORCH_LIBRARY can be used..."), which would hide the real cause.
    """
    if not _import_result:
        _import_result.append(_check_import())
    return _import_result[0]


def _check_import() -> str | None:
    try:
        import torch  # noqa: F401
    except Exception as exc:  # torch_npu's backend auto-load raises from inside `import torch`
        text = f"{exc.__class__.__name__}: {exc}"
        if "npu" in text.lower() or "ascend" in text.lower() or "cann" in text.lower():
            return CANN_ADVICE
        autoload = os.environ.get("TORCH_DEVICE_BACKEND_AUTOLOAD")
        hint = "" if autoload == "0" else " (if torch_npu is installed, try TORCH_DEVICE_BACKEND_AUTOLOAD=0)"
        return f"torch could not be imported ({text.splitlines()[0] if text else 'unknown error'}){hint}"
    return None


def autoload_backends() -> list[str]:
    """Names of the device backends `import torch` will auto-load (entry points of group `torch.backends`)."""
    if os.environ.get("TORCH_DEVICE_BACKEND_AUTOLOAD", "1") != "1":  # torch's own test of the switch
        return []
    try:
        from importlib.metadata import entry_points

        return sorted({ep.name for ep in entry_points(group="torch.backends")})
    except Exception:  # noqa: BLE001 - a broken distribution's metadata: torch itself will tell
        return []


def startup_torch_problem() -> str | None:
    """torch_import_problem(), but without importing torch unless a backend would be auto-loaded.

    For the GUI's start: the window must not wait for `import torch`, yet a broken torch_npu should be
    reported before the window opens.
    """
    if "torch" in sys.modules or not autoload_backends():
        return None
    return torch_import_problem()


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a failed device or host allocation: torch.OutOfMemoryError (CUDA, NPU), MemoryError, or the
    RuntimeError that torch's CPU allocator raises ("DefaultCPUAllocator: can't allocate memory")."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    if isinstance(exc, RuntimeError):
        text = str(exc).lower()
        return any(marker in text for marker in _OOM_TEXTS)
    return False
