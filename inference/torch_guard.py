"""Imports torch with a clear message when a broken torch_npu (no CANN) makes `import torch` itself fail."""
from __future__ import annotations

import os

CANN_ADVICE = (
    "torch could not be imported because torch_npu is installed but the Ascend CANN toolkit is not set up: "
    "run `source /usr/local/Ascend/ascend-toolkit/set_env.sh` first, or start with "
    "TORCH_DEVICE_BACKEND_AUTOLOAD=0 to use the CPU"
)


def torch_import_problem() -> str | None:
    """None when torch imports; otherwise one sentence saying what to do."""
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
