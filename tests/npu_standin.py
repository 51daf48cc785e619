"""Test-only stand-in for torch_npu: each NPU-only op as a CPU reference of its documented semantics, recorded.

The references follow torch_npu's API documentation (Ascend Extension for PyTorch, apilist):
- npu_format_cast(self, acl_format) -> Tensor: same values in another private layout (29 = FRACTAL_NZ).
- npu_rms_norm(self, gamma, epsilon=1e-6) -> (y, rstd): rstd = 1/sqrt(mean(x²) + eps) in float32,
  y = x · rstd · gamma in x's dtype.
- npu_prompt_flash_attention(q, k, v, *, atten_mask, actual_seq_lengths, num_heads, scale_value, pre_tokens,
  next_tokens, input_layout, num_key_value_heads, actual_seq_lengths_kv, sparse_mode) -> Tensor:
  softmax(scale·q·kᵀ, masked) · v. atten_mask bool/int8/uint8, True (1) = masked; with a mask and
  sparse_mode 0 the band pre_tokens/next_tokens (key j visible to query i only if i − pre ≤ j ≤ i + next)
  applies too, without a mask nothing is masked; actual_seq_lengths_kv = valid key length per batch.
- npu_incre_flash_attention(q, k, v, *, atten_mask, actual_seq_lengths, num_heads, scale_value,
  input_layout, num_key_value_heads) -> Tensor: one query row over the first actual_seq_lengths keys.
Inputs must be contiguous (documented: non-contiguous tensors are not supported) and, on a 310P, float16;
only the "BNSD" layout and sparse_mode 0 are implemented here (what inference.npu uses).
Each op is a torch library op with a CPU kernel, so an op counter (TorchDispatchMode) sees one launch per call, as on the chip.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

NS = "npu_standin"


_LIB = torch.library.Library(NS, "DEF")  # plain kernels: no torch.compile machinery imported


def _define(schema: str, kernel) -> None:
    _LIB.define(schema)
    _LIB.impl(schema.split("(")[0], kernel, "CPU")


def _format_cast(x: torch.Tensor, acl_format: int) -> torch.Tensor:
    return x.clone()  # the values are unchanged; only the device-side layout would differ


def _rms_norm(x: torch.Tensor, gamma: torch.Tensor, epsilon: float):
    xf = x.float()
    rstd = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + epsilon)
    return (xf * rstd * gamma.float()).to(x.dtype), rstd


def attention_reference(q, k, v, mask, kv_len: int, scale: float, pre: int, nxt: int) -> torch.Tensor:
    """BNSD attention of batch 1: q [1, N, Sq, D], k/v [1, KVN, Skv, D]; mask True = masked (or None)."""
    heads, kv_heads = q.shape[1], k.shape[1]
    k, v = k[:, :, :kv_len].float(), v[:, :, :kv_len].float()
    if kv_heads != heads:
        k, v = k.repeat_interleave(heads // kv_heads, 1), v.repeat_interleave(heads // kv_heads, 1)
    scores = scale * torch.matmul(q.float(), k.transpose(-1, -2))  # [1, N, Sq, kv_len]
    if mask is not None:
        hidden = mask.bool()[..., :kv_len].expand(1, 1, q.shape[2], kv_len)
        i = torch.arange(q.shape[2])[:, None]
        j = torch.arange(kv_len)[None, :]
        hidden = hidden | (j > i + nxt) | (j < i - pre)
        scores = scores.masked_fill(hidden, float("-inf"))
    return torch.matmul(torch.softmax(scores, -1), v).to(q.dtype)


def _ifa(q, k, v, mask, kv_len: int, scale: float) -> torch.Tensor:
    return attention_reference(q, k, v, mask, kv_len, scale, 2**31 - 1, 2**31 - 1)


_define("format_cast(Tensor x, int acl_format) -> Tensor", _format_cast)
_define("rms_norm(Tensor x, Tensor gamma, float epsilon) -> (Tensor, Tensor)", _rms_norm)
_define("prompt_flash_attention(Tensor q, Tensor k, Tensor v, Tensor? mask, int kv_len, float scale, int pre, "
        "int nxt) -> Tensor", attention_reference)
_define("incre_flash_attention(Tensor q, Tensor k, Tensor v, Tensor? mask, int kv_len, float scale) -> Tensor", _ifa)
OPS = torch.ops.npu_standin


@dataclass
class StandIn:
    """What inference.npu needs of torch_npu, on the CPU. `calls` records (op name, details) in order;
    strict_fp16 refuses what a 310P refuses (non-float16 attention inputs)."""

    strict_fp16: bool = True
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    calls: list = field(default_factory=list)
    compiler: object = None  # graph_compiler() result; None = no torchair
    name: str = "stand-in"

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    # ---- runtime -------------------------------------------------------------------------------------
    def set_device(self, device) -> None:
        self.calls.append(("set_device", str(device)))

    def synchronize(self) -> None:
        self.calls.append(("synchronize", None))

    def allow_internal_format(self, allow: bool) -> None:
        self.calls.append(("allow_internal_format", allow))

    def graph_compiler(self):
        return self.compiler

    # ---- ops -----------------------------------------------------------------------------------------
    def npu_format_cast(self, x: torch.Tensor, acl_format: int) -> torch.Tensor:
        self.calls.append(("npu_format_cast", (x.data_ptr(), tuple(x.shape), acl_format)))
        return OPS.format_cast(x, acl_format)

    def npu_rms_norm(self, x: torch.Tensor, gamma: torch.Tensor, epsilon: float = 1e-6):
        self.calls.append(("npu_rms_norm", x.dtype))
        _check_dtypes(self, "npu_rms_norm", x, gamma)
        return OPS.rms_norm(x, gamma, epsilon)

    def npu_prompt_flash_attention(self, query, key, value, *, atten_mask=None, actual_seq_lengths=None,
                                   num_heads=1, scale_value=1.0, pre_tokens=2147483647, next_tokens=0,
                                   input_layout="BSH", num_key_value_heads=0, actual_seq_lengths_kv=None,
                                   sparse_mode=0, **unused):
        self.calls.append(("npu_prompt_flash_attention", (tuple(query.shape), None if atten_mask is None else
                                                          atten_mask.dtype)))
        _check_attention(self, query, key, value, input_layout, num_heads, num_key_value_heads)
        if sparse_mode != 0 or unused:
            raise NotImplementedError(f"stand-in: sparse_mode {sparse_mode} / {sorted(unused)}")
        if atten_mask is not None and atten_mask.dtype not in (torch.bool, torch.int8, torch.uint8):
            raise TypeError(f"atten_mask must be bool, int8 or uint8, not {atten_mask.dtype}")
        if actual_seq_lengths is not None and actual_seq_lengths[0] != query.shape[2]:
            raise NotImplementedError("stand-in: actual_seq_lengths shorter than the query")
        kv_len = key.shape[2] if actual_seq_lengths_kv is None else int(actual_seq_lengths_kv[0])
        return OPS.prompt_flash_attention(query, key, value, atten_mask, kv_len, scale_value, pre_tokens,
                                          next_tokens)

    def npu_incre_flash_attention(self, query, key, value, *, atten_mask=None, actual_seq_lengths=None,
                                  num_heads=1, scale_value=1.0, input_layout="BSH", num_key_value_heads=0,
                                  **unused):
        self.calls.append(("npu_incre_flash_attention", tuple(query.shape)))
        _check_attention(self, query, key, value, input_layout, num_heads, num_key_value_heads)
        if unused or query.shape[2] != 1:
            raise NotImplementedError(f"stand-in: {sorted(unused)} / query length {query.shape[2]}")
        kv_len = key.shape[2] if actual_seq_lengths is None else int(actual_seq_lengths[0])
        return OPS.incre_flash_attention(query, key, value, atten_mask, kv_len, scale_value)


def _check_dtypes(standin: StandIn, op: str, *tensors) -> None:
    for t in tensors:
        if standin.strict_fp16 and t.dtype != torch.float16:
            raise TypeError(f"{op}: the 310P takes float16 here, not {t.dtype}")


def _check_attention(standin, q, k, v, layout, num_heads, num_kv_heads) -> None:
    if layout != "BNSD" or q.dim() != 4 or q.shape[1] != num_heads or k.shape[1] != (num_kv_heads or num_heads):
        raise ValueError(f"stand-in expects BNSD with matching head counts, got {layout} {tuple(q.shape)}")
    for t in (q, k, v):
        if not t.is_contiguous():
            raise ValueError("fused attention does not take non-contiguous tensors")
    _check_dtypes(standin, "fused attention", q, k, v)


class OpCounter(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts the aten (and stand-in) ops launched inside the block; views counted apart (no kernel)."""

    def __init__(self):
        super().__init__()
        self.ops: dict[str, int] = {}
        self.views = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if getattr(func, "is_view", False):
            self.views += 1
        else:
            name = str(func.overloadpacket) if hasattr(func, "overloadpacket") else str(func)
            self.ops[name] = self.ops.get(name, 0) + 1
        return func(*args, **(kwargs or {}))

    @property
    def launches(self) -> int:
        return sum(self.ops.values())


class DeviceCopies(torch.utils._python_dispatch.TorchDispatchMode):
    """Records the dtypes of every tensor copied into another (what a host-to-device copy_ hands over)."""

    def __init__(self):
        super().__init__()
        self.pairs: list[tuple[torch.dtype, torch.dtype]] = []  # (destination dtype, source dtype)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if getattr(func, "overloadpacket", None) is torch.ops.aten.copy_:
            self.pairs.append((args[0].dtype, args[1].dtype))
        return func(*args, **(kwargs or {}))
