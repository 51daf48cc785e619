"""The Ascend NPU path, added to a built model from outside (as inference.cpu is): fused ops, NZ weights, fp16.

Entries used by Engine.load, in order:
- resolve_ops(device, given) -> the torch_npu entry points for an NPU device (or the stand-in a test gave);
- resolve_dtype / check_quantize: float16 (the 310P chips of a 300I Duo have no bfloat16), no int8 here;
- ops.set_device(device) before anything is allocated;
- accelerate(model, dtype, device, ops) -> (model, installed): FRACTAL_NZ linear weights, npu_rms_norm,
  the fused attention kernels (RoPE) or the explicit additive-mask attention (ALiBi), optional graph capture.
The model keeps its plain modules everywhere else: the NPU path differs from the CPU one only where a
documented NPU op or layout asks for it. docs/NPU.md gives the reasons and the expected speed.
"""
from __future__ import annotations

import math
import os

import torch
from torch import nn

from ..cpu import _swap
from ..device import DTYPES
from ..errors import DeviceError
from ..modeling.model import Attend, RMSNorm
from .format import cast_linear_weights
from .modules import AlibiAttend, FusedAttend, NpuRMSNorm
from .runtime import TASK_QUEUE_ENV, TorchNpuOps, ensure_task_queue, maybe_graph

__all__ = ["resolve_ops", "resolve_dtype", "check_quantize", "accelerate", "ensure_task_queue"]


def resolve_ops(device: torch.device, given=None):
    """The ops object for the NPU path: `given` (a test's stand-in), the real torch_npu on an npu device,
    else None (the CPU / CUDA path)."""
    if given is not None:
        return given
    return TorchNpuOps(device) if device.type == "npu" else None


def resolve_dtype(name: str) -> torch.dtype:
    """'auto' is float16 on the NPU; bfloat16 is refused (no bf16 on the 310P, and a bf16 cast on the device
    fails there: 'aclnnCast ... not implemented for DT_BFLOAT16')."""
    if name == "auto":
        return torch.float16
    if name == "bfloat16":
        raise DeviceError("the Ascend 310P (300I Duo) has no bfloat16; use --dtype float16 (or auto)")
    if name not in DTYPES:
        raise DeviceError(f"unknown dtype {name!r}; choose auto, float16 or float32")
    return DTYPES[name]


def check_quantize(quantize: str | None) -> None:
    """None (the weights keep float16), or a one-line DeviceError for int8."""
    if quantize not in (None, "", "none"):
        raise DeviceError("weight-only int8 runs on the CPU or a CUDA GPU, not on the NPU; use --quantize none")


def accelerate(model: nn.Module, dtype: torch.dtype, device: torch.device, ops) -> tuple[nn.Module, dict]:
    """After loading: NZ weights, fused norm and attention swapped in; returns (model, what was installed)."""
    cfg = model.config
    nz = cast_linear_weights(model, ops)
    _swap(model, RMSNorm, lambda norm: NpuRMSNorm(norm, ops))
    scale = 1.0 / math.sqrt(cfg.head_dim)
    fused = model.alibi is None  # the fused kernels take no ALiBi bias on a 310P
    if fused:
        _swap(model, Attend, lambda _: FusedAttend(ops, scale, cfg.num_heads, cfg.num_kv_heads))
    else:
        _swap(model, Attend, lambda _: AlibiAttend(scale))
    model, graph = maybe_graph(model, ops)
    installed = {"npu": True, "nz_weights": nz, "rms_norm": "npu_rms_norm",
                 "attention": "fused (prompt/incre flash attention)" if fused else "explicit (additive fp16 ALiBi mask)",
                 "graph_decode": graph, "task_queue": os.environ.get(TASK_QUEUE_ENV, "unset")}
    return model, installed
