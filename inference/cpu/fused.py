"""FusedDecoder: wraps a CausalLM so a one-token decode step is one C call (csrc/decode_step.c).

Step by step, a decode token costs ~15 small torch ops and a kernel call per layer, each with Python and
OpenMP fork/join overhead; on a small model that is a fifth of the step. Here the embedding row, every
layer and the logits run in one parallel region. It applies to bf16 and float32 models on the CPU whose
linear layers are the C-kernel ones (CpuLinear, or Int8Linear / Int4Linear for weight-only int8 / int4 in a
bf16 model);
`FusedDecoder.wrap` returns None for anything else and the model keeps its step-by-step path. Prefill
(several positions) and all-logits calls go to the wrapped model.
"""
from __future__ import annotations

import ctypes
import math

import torch

from torch import nn

from . import kernels
from .int4 import Int4Linear
from .int8 import Int8Linear
from .linear import CpuLinear

i64, f32, ptr = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p


class Matrix(ctypes.Structure):
    _fields_ = [("weight", ptr), ("scales", ptr), ("rows", i64), ("cols", i64), ("packed", ctypes.c_int32),
                ("mins", ptr)]


class Layer(ctypes.Structure):
    _fields_ = [("input_norm", ptr), ("post_attention_norm", ptr), ("qkv", Matrix), ("o", Matrix),
                ("gate", Matrix), ("up", Matrix), ("down", Matrix), ("k_cache", ptr), ("v_cache", ptr)]


class CModel(ctypes.Structure):
    """csrc/decode_step.c's description of the whole model (pointers into the torch tensors)."""

    _fields_ = [("layers", i64), ("hidden", i64), ("heads", i64), ("kv_heads", i64), ("head_dim", i64),
                ("intermediate", i64), ("positions", i64), ("eps", f32), ("scale", f32), ("slopes", ptr),
                ("rope_cos", ptr), ("rope_sin", ptr), ("embed", ptr), ("final_norm", ptr), ("lm_head", Matrix),
                ("layer", ctypes.POINTER(Layer)), ("int8", ctypes.c_int32), ("f32", ctypes.c_int32),
                ("int4", ctypes.c_int32)]


def _matrix(linear, dtype: torch.dtype, keep: list) -> Matrix | None:
    """The C description of a kernel-backed linear layer of a `dtype` model (its tensors appended to keep)."""
    if isinstance(linear, Int8Linear) and linear._lib is not None and dtype == torch.bfloat16:
        keep += [linear.qweight, linear.scales]
        return Matrix(linear.qweight.data_ptr(), linear.scales.data_ptr(), linear.out_features, linear.in_features,
                      int(linear.packed))
    if isinstance(linear, Int4Linear) and linear.packed and dtype == torch.bfloat16:
        keep += [linear.qweight, linear.scales, linear.mins]
        return Matrix(linear.qweight.data_ptr(), linear.scales.data_ptr(), linear.out_features, linear.in_features,
                      1, linear.mins.data_ptr())
    if isinstance(linear, CpuLinear) and _plain(dtype, linear.weight):
        keep.append(linear.weight)
        return Matrix(linear.weight.data_ptr(), None, linear.out_features, linear.in_features, int(linear.packed))
    return None


def _plain(dtype: torch.dtype, *tensors: torch.Tensor | None) -> bool:
    """Whether every tensor given is a contiguous CPU tensor of `dtype` (bf16 or float32)."""
    return dtype in (torch.bfloat16, torch.float32) and all(
        t is None or (t.dtype == dtype and t.is_contiguous() and t.device.type == "cpu") for t in tensors)


class FusedDecoder(nn.Module):
    """The model with its decode step in C: forward(tokens, start, all_logits) like the model's own."""

    def __init__(self, decoder: nn.Module, lib, c_model: CModel, keep: list):
        super().__init__()
        self.decoder = decoder
        self._lib, self._c_model = lib, c_model
        self._keep = keep  # the ctypes arrays and tensors the C struct points into
        self.vocab = c_model.lm_head.rows

    def __getattr__(self, name: str):
        """Everything else is the wrapped model's (config, max_seq_len, model, lm_head…), as torch.compile's
        wrapper does it."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.decoder, name)

    def forward(self, tokens: torch.Tensor, start: int = 0, all_logits: bool = False) -> torch.Tensor:
        if tokens.shape[0] != 1 or all_logits:
            return self.decoder(tokens, start, all_logits)
        self.decoder.check_span(start, 1)
        return self.step(int(tokens[0]), start)

    def step(self, token: int, position: int) -> torch.Tensor:
        """float32 logits [V] after `token` at `position`; writes the KV cache at `position`."""
        logits = torch.empty(self.vocab, dtype=torch.float32)
        kernels.checked(self._lib.decode_step(ctypes.byref(self._c_model), int(token), int(position),
                                              logits.data_ptr()))
        return logits

    @classmethod
    def wrap(cls, lib, decoder) -> "FusedDecoder | None":
        """The wrapped model, or None when some part of it is not on the C kernels."""
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
        int4 = any(isinstance(m, Int4Linear) for m in decoder.modules())
        c_model = CModel(len(layers), cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim,
                      cfg.intermediate_size, decoder.max_seq_len, backbone.norm.eps, 1.0 / math.sqrt(cfg.head_dim),
                      None if slopes is None else slopes.data_ptr(),
                      *(None if t is None else t.data_ptr() for t in rope), embed.data_ptr(), final_norm.data_ptr(),
                      head, array, int(int8), int(dtype == torch.float32), int(int4))
        keep += [array, slopes, embed, final_norm, *rope]
        return cls(decoder, lib, c_model, keep)
