"""A whole CPU decode step in one C call (csrc/decode_step.c): the model's weights described to it once, at load.

Step by step, a decode token costs ~15 small torch ops and a kernel call per layer, each with Python and
OpenMP fork/join overhead; on a small model that is a fifth of the step. Here the embedding row, every
layer and the logits run in one parallel region. It applies to bf16 and float32 models on the CPU whose
linear layers are the C-kernel ones (CpuLinear, or Int8Linear for weight-only int8 in a bf16 model);
`FusedDecode.build` returns None for anything else and the model keeps its step-by-step path.
"""
from __future__ import annotations

import ctypes
import math

import torch

from . import cpu_kernels
from .quantize import CpuLinear, Int8Linear

i64, f32, ptr = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p


class Matrix(ctypes.Structure):
    _fields_ = [("weight", ptr), ("scales", ptr), ("rows", i64), ("cols", i64), ("packed", ctypes.c_int32)]


class Layer(ctypes.Structure):
    _fields_ = [("input_norm", ptr), ("post_attention_norm", ptr), ("qkv", Matrix), ("o", Matrix),
                ("gate", Matrix), ("up", Matrix), ("down", Matrix), ("k_cache", ptr), ("v_cache", ptr)]


class Model(ctypes.Structure):
    _fields_ = [("layers", i64), ("hidden", i64), ("heads", i64), ("kv_heads", i64), ("head_dim", i64),
                ("intermediate", i64), ("positions", i64), ("eps", f32), ("scale", f32), ("slopes", ptr),
                ("rope_cos", ptr), ("rope_sin", ptr), ("embed", ptr), ("final_norm", ptr), ("lm_head", Matrix),
                ("layer", ctypes.POINTER(Layer)), ("int8", ctypes.c_int32), ("f32", ctypes.c_int32)]


def _matrix(linear, dtype: torch.dtype, keep: list) -> Matrix | None:
    """The C description of a kernel-backed linear layer of a `dtype` model (its tensors appended to keep)."""
    if isinstance(linear, Int8Linear) and linear._lib is not None and dtype == torch.bfloat16:
        keep += [linear.qweight, linear.scales]
        return Matrix(linear.qweight.data_ptr(), linear.scales.data_ptr(), linear.out_features, linear.in_features,
                      int(linear.packed))
    if isinstance(linear, CpuLinear) and _plain(dtype, linear.weight):
        keep.append(linear.weight)
        return Matrix(linear.weight.data_ptr(), None, linear.out_features, linear.in_features, int(linear.packed))
    return None


def _plain(dtype: torch.dtype, *tensors: torch.Tensor | None) -> bool:
    """Whether every tensor given is a contiguous CPU tensor of `dtype` (bf16 or float32)."""
    return dtype in (torch.bfloat16, torch.float32) and all(
        t is None or (t.dtype == dtype and t.is_contiguous() and t.device.type == "cpu") for t in tensors)


class FusedDecode:
    """Callable (token id, position) -> float32 logits [vocab] that also writes the KV cache at position."""

    def __init__(self, lib, model: Model, keep: list):
        self._lib, self._model = lib, model
        self._keep = keep  # the ctypes arrays and tensors the C struct points into
        self.vocab = model.lm_head.rows

    @classmethod
    def build(cls, lib, decoder) -> "FusedDecode | None":
        cfg, backbone = decoder.config, decoder.model
        if lib is None or not hasattr(lib, "decode_step"):
            return None
        layers, keep, dtype = [], [], backbone.embed_tokens.weight.dtype
        for block in backbone.layers:
            attn, mlp = block.self_attn, block.mlp
            linears = (attn.W_pack, attn.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj)
            mats = [_matrix(m, dtype, keep) for m in linears]
            norms = (block.input_layernorm.weight, block.post_attention_layernorm.weight)
            if None in mats or not _plain(dtype, *norms, attn.k_cache, attn.v_cache):
                return None
            layers.append(Layer(norms[0].data_ptr(), norms[1].data_ptr(), *mats,
                                attn.k_cache.data_ptr(), attn.v_cache.data_ptr()))
            keep += [*norms, attn.k_cache, attn.v_cache]
        head = _matrix(decoder.lm_head, dtype, keep)
        embed, final_norm = backbone.embed_tokens.weight, backbone.norm.weight
        rope = (decoder.rope_cos, decoder.rope_sin) if decoder.rope_cos is not None else (None, None)
        if head is None or not _plain(dtype, embed, final_norm, *rope) or cfg.num_heads % cfg.num_kv_heads:
            return None
        slopes = None if decoder.alibi is None else decoder.alibi.float().contiguous()
        array = (Layer * len(layers))(*layers)
        int8 = any(isinstance(m, Int8Linear) for m in decoder.modules())
        model = Model(len(layers), cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim,
                      cfg.intermediate_size, decoder.max_seq_len, backbone.norm.eps, 1.0 / math.sqrt(cfg.head_dim),
                      None if slopes is None else slopes.data_ptr(),
                      *(None if t is None else t.data_ptr() for t in rope), embed.data_ptr(), final_norm.data_ptr(),
                      head, array, int(int8), int(dtype == torch.float32))
        keep += [array, slopes, embed, final_norm, *rope]
        return cls(lib, model, keep)

    def __call__(self, token: int, position: int) -> torch.Tensor:
        logits = torch.empty(self.vocab, dtype=torch.float32)
        cpu_kernels.checked(self._lib.decode_step(ctypes.byref(self._model), int(token), int(position),
                                                  logits.data_ptr()))
        return logits
