"""The CPU fast path, added to a built model from outside: C kernels, kernel-backed modules, int8, huge pages.

Two entries, both optional and visible in Engine.load:
- prepare(model, quantize, device) before the weights load: int8 or int4 layers that quantize rows as they
  stream in;
- accelerate(model, dtype, device, quantize) -> (model, what was installed): swaps nn.Linear, RMSNorm and
  Attend for their kernel versions and wraps the model with the one-call decode step (FusedDecoder).
Where a piece cannot run (no C compiler, BAICHUAN_NO_CPU_KERNELS=1, another device or dtype) the model keeps
its plain torch module, and the dict returned says so.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..choices import QUANTIZE
from ..errors import DeviceError, InputError
from ..modeling.model import MLP, Attend, RMSNorm
from . import hugepages, kernels
from .fused import FusedDecoder
from .int4 import Int4Linear
from .int8 import Int8Linear
from .linear import CpuLinear, KernelLinear
from .modules import KernelAttend, KernelMLP, KernelRMSNorm

QUANTIZE_CHOICES = tuple(q for q in QUANTIZE if q != "none")
#: The layer class of each quantize mode.
QUANTIZED = {"int8": Int8Linear, "int4": Int4Linear}


def layer_type(quantize: str, is_head: bool) -> type:
    """The quantized layer class for a linear layer: int4 keeps lm_head at int8, as llama.cpp's 4-bit mixes
    keep output.weight at 6-8 bits. Measured on the demo: a 4-bit head alone costs ~+40 % perplexity and the
    France answer, an int8 head +0.2 % (docs/BENCHMARKS.md); on Baichuan2-7B it is 7 % of the weights."""
    return Int8Linear if is_head and quantize == "int4" else QUANTIZED[quantize]


def check_quantize(quantize: str | None, device: torch.device) -> str | None:
    """Validate a quantize option for a device; None means the weights keep the model dtype."""
    if quantize in (None, "", "none"):
        return None
    if quantize not in QUANTIZE_CHOICES:
        raise InputError(f"unknown quantization {quantize!r}; choose int8, int4 or none")
    if device.type not in ("cpu", "cuda"):
        raise DeviceError(f"weight-only {quantize} runs on the CPU or a CUDA GPU, not on {device.type}")
    return quantize


def weight_allocator(device: torch.device):
    """How the model should allocate its weights on `device`: large CPU tensors on huge pages."""
    return hugepages.empty


def auto_dtype() -> torch.dtype:
    """bfloat16 on the CPU when the C kernels build here, else float32 (see inference.device.resolve_dtype)."""
    return torch.bfloat16 if kernels.load() is not None else torch.float32


def prepare(model: nn.Module, quantize: str | None, device: torch.device) -> None:
    """Before loading: every bias-free linear layer whose weight no other module shares becomes an empty
    Int8Linear or Int4Linear that quantizes its rows as the loader streams them in (the bf16 matrices never
    take memory).

    Baichuan2's NormHead lm_head gets its rows L2-normalised first. A weight tied to the embedding stays for
    accelerate, which quantizes it from the loaded embedding.
    """
    if quantize not in QUANTIZED:
        return
    lib = kernels.load() if device.type == "cpu" else None
    normalized = model.lm_head if model.config.norm_head else None
    uses = _weight_uses(model)
    for parent, name, linear in list(_linears(model)):
        if uses[id(linear.weight)] == 1:
            kind = layer_type(quantize, linear is model.lm_head)
            setattr(parent, name, kind(linear.out_features, linear.in_features, lib, device,
                                       normalize_rows=linear is normalized))


def accelerate(model: nn.Module, dtype: torch.dtype, device: torch.device, quantize: str | None = None,
               check_cancel=None) -> tuple[nn.Module, dict]:
    """After loading: the model with its modules swapped for kernel ones, and a dict of what was installed.

    check_cancel(), when given, is called before each layer is converted (it raises to cancel a load)."""
    lib = kernels.load() if device.type == "cpu" else None
    installed = optimize_linears(model, dtype, device, quantize, check_cancel)
    if isinstance(model.lm_head, KernelLinear):
        model.lm_head.out_dtype = torch.float32  # logits as summed, not rounded to bf16
    attention = lib is not None and dtype in (torch.bfloat16, torch.float32)
    if attention:
        cfg = model.config
        scale = 1.0 / math.sqrt(cfg.head_dim)
        slopes = None if model.alibi is None else model.alibi.float().contiguous()
        _swap(model, Attend, lambda _: KernelAttend(lib, scale, slopes))
    if attention:  # RMSNorm: one call instead of eight small torch ops per step; both: the decode step's numerics
        _swap(model, RMSNorm, lambda norm: KernelRMSNorm(norm, lib))
        _swap(model, MLP, lambda mlp: KernelMLP(mlp, lib))
    installed["decode_attention"] = attention  # prefill attention goes with it
    installed["batch_invariant"] = attention and kernels.BATCH_INVARIANT
    fused = FusedDecoder.wrap(lib, model) if attention else None
    installed["fused_decode"] = fused is not None
    return (fused or model), installed


def optimize_linears(model: nn.Module, dtype: torch.dtype, device: torch.device, quantize: str | None = None,
                     check_cancel=None) -> dict:
    """Swap the bias-free nn.Linear layers for CpuLinear (bf16 or float32 on a CPU), Int8Linear (quantize="int8")
    or Int4Linear (quantize="int4").

    Layers are converted one at a time and each bf16 matrix is released as soon as its int8 copy exists,
    so quantizing never holds a second copy of the whole model (a tied lm_head gets its own int8 copy; the
    embedding keeps the model dtype). Returns what was done, for the UI and the benchmark.
    """
    lib = kernels.load() if device.type == "cpu" else None
    targets = [(parent, name) for parent, name, _ in _linears(model)]  # no references to the layers kept
    uses = _weight_uses(model)
    with torch.no_grad():
        for parent, name in targets:
            if check_cancel is not None:
                check_cancel()
            linear = getattr(parent, name)
            if quantize in QUANTIZED:
                new = layer_type(quantize, linear is getattr(model, "lm_head", None)).from_weight(linear.weight, lib)
            elif lib is not None and dtype in (torch.bfloat16, torch.float32):
                new = CpuLinear(linear, lib, pack=uses[id(linear.weight)] == 1)  # a shared weight stays row-major
            else:
                continue
            setattr(parent, name, new)
            del linear, new  # the bf16 matrix is freed here unless another module still holds it
    kernel_layers = sum(isinstance(m, KernelLinear) for m in model.modules())
    return {"layers": kernel_layers, "quantize": quantize, "cpu_kernels": lib is not None}


def _swap(model: nn.Module, kind: type, make) -> None:
    """Replace every submodule of exactly type `kind` by make(old)."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is kind:
                setattr(parent, name, make(child))


def _weight_uses(model: nn.Module) -> dict[int, int]:
    """How many modules hold each parameter (a tied lm_head shares the embedding's)."""
    uses: dict[int, int] = {}
    for _, param in model.named_parameters(remove_duplicate=False):
        uses[id(param)] = uses.get(id(param), 0) + 1
    return uses


def _linears(model: nn.Module):
    for parent in model.modules():
        for name, child in parent.named_children():
            if type(child) is nn.Linear and child.bias is None:
                yield parent, name, child
