"""One decoder for Baichuan2 (RoPE or ALiBi, NormHead), Baichuan v1 and Llama-family models, with a static KV cache.

Plain torch, read top to bottom: configuration in, float32 logits out. Nothing here knows about the C
kernels; inference.cpu.accelerate swaps modules of a built model for faster ones with the same forward
(gpt-fast's way), and wraps the whole model with its one-call decode step.

Shapes: L new positions, H query heads, KV key/value heads, D head size, S = MAX_SEQ_LEN, E = hidden size.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig


def alibi_slopes(num_heads: int) -> list[float]:
    """ALiBi head slopes (Press et al.), with Baichuan2-13B's interleave for non-power-of-two head counts."""
    def power_of_2(n: int) -> list[float]:
        start = 2.0 ** (-(2.0 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(num_heads).is_integer():
        return power_of_2(num_heads)
    closest = 2 ** math.floor(math.log2(num_heads))
    return power_of_2(closest) + alibi_slopes(2 * closest)[0::2][: num_heads - closest]


class RMSNorm(nn.Module):
    """Root-mean-square norm computed in float32, scaled by a learned weight in the model dtype."""

    def __init__(self, size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)).to(self.weight.dtype)


class Positions:
    """Where the L new tokens of one forward pass sit (start .. start + L - 1) and the model's position tables.

    The mask an attention module may need is built on first use and shared by every layer of the pass.
    """

    def __init__(self, start: int, length: int, rope: tuple | None, slopes: torch.Tensor | None):
        self.start, self.length, self.end = start, length, start + length
        self.rope = rope  # (cos, signed sin) rows of these positions [L, D], or None (ALiBi)
        self.slopes = slopes  # ALiBi head slopes, float32 [H], or None (RoPE)
        self._bias: dict = {}

    def bias(self, dtype: torch.dtype) -> torch.Tensor | None:
        """SDPA's attn_mask over the first `end` cached positions: None where is_causal (or nothing) does."""
        if dtype not in self._bias:
            self._bias[dtype] = self._build_bias(dtype)
        return self._bias[dtype]

    def _build_bias(self, dtype: torch.dtype) -> torch.Tensor | None:
        if self.slopes is None and (self.length == 1 or self.start == 0):
            return None  # one position sees every cached one; a fresh prompt is plain causal
        device = self.slopes.device if self.slopes is not None else self.rope[0].device
        q_pos = torch.arange(self.start, self.end, device=device)[:, None]
        k_pos = torch.arange(self.end, device=device)[None, :]
        if self.slopes is None:
            return (k_pos <= q_pos).unsqueeze(0)  # [1, L, end] boolean
        bias = self.slopes[:, None, None] * (k_pos - q_pos).float()  # [H, L, end]
        return bias.masked_fill(k_pos > q_pos, float("-inf")).to(dtype)


class Attend(nn.Module):
    """softmax(q·kᵀ/√D + ALiBi bias, causal) · v of the new positions over the cache (torch's SDPA).

    The module inference.cpu swaps for its C kernels (same arguments, same result)."""

    def forward(self, q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, pos: Positions) -> torch.Tensor:
        # q [L, H, D]; k_cache, v_cache [KV, S, D] -> [L, H, D]
        keys, values = k_cache[:, :pos.end], v_cache[:, :pos.end]
        bias = pos.bias(q.dtype)
        out = F.scaled_dot_product_attention(
            q.transpose(0, 1).unsqueeze(0), keys.unsqueeze(0), values.unsqueeze(0),
            attn_mask=None if bias is None else bias.unsqueeze(0),
            is_causal=bias is None and pos.length > 1, enable_gqa=k_cache.shape[0] != q.shape[1],
        )
        return out.squeeze(0).transpose(0, 1)


class Attention(nn.Module):
    """Self-attention with fused W_pack (q; k; v rows), grouped-query heads and a static KV cache."""

    def __init__(self, cfg: ModelConfig, max_seq_len: int):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        qkv_rows = (cfg.num_heads + 2 * cfg.num_kv_heads) * cfg.head_dim
        self.W_pack = nn.Linear(cfg.hidden_size, qkv_rows, bias=False)
        self.o_proj = nn.Linear(cfg.num_heads * cfg.head_dim, cfg.hidden_size, bias=False)
        self.attend = Attend()
        self.cache_shape = (cfg.num_kv_heads, max_seq_len, cfg.head_dim)  # [KV, S, D], allocated by the model
        self.k_cache: torch.Tensor | None = None
        self.v_cache: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, pos: Positions) -> torch.Tensor:
        seq = x.shape[0]  # x [L, E]
        heads, kv_heads, dim = self.num_heads, self.num_kv_heads, self.head_dim
        qkv = self.W_pack(x)  # [L, (H + 2 KV) D]
        qk = qkv[:, :(heads + kv_heads) * dim].view(seq, heads + kv_heads, dim)
        if pos.rope is not None:  # q and k rotated together: one pass of elementwise ops instead of two
            qk = apply_rope(qk, (pos.rope[0][:, None], pos.rope[1][:, None]))
        q, k = qk[:, :heads], qk[:, heads:]
        v = qkv[:, (heads + kv_heads) * dim:].view(seq, kv_heads, dim)
        self.k_cache[:, pos.start:pos.end] = k.transpose(0, 1)
        self.v_cache[:, pos.start:pos.end] = v.transpose(0, 1)
        out = self.attend(q, self.k_cache, self.v_cache, pos)  # [L, H, D]
        return self.o_proj(out.reshape(seq, heads * dim))


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """x * cos + rotate_half(x) * sin, with rope = (cos, signed_sin) where signed_sin = [-sin_1, sin_2].

    Swapping the two halves (a flip of a [2, D/2] view) times the signed sine equals rotate_half(x) * sin
    exactly (negation is exact), in fewer elementwise passes.
    """
    cos, signed_sin = rope
    swapped = x.unflatten(-1, (2, x.shape[-1] // 2)).flip(-2).flatten(-2)
    return x * cos + swapped * signed_sin


class MLP(nn.Module):
    """SiLU-gated feed-forward: down(silu(gate(x)) * up(x))."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)).mul_(self.up_proj(x)))


class DecoderLayer(nn.Module):
    """Pre-norm transformer block: attention then MLP, each with a residual."""

    def __init__(self, cfg: ModelConfig, max_seq_len: int):
        super().__init__()
        self.self_attn = Attention(cfg, max_seq_len)
        self.mlp = MLP(cfg)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, x: torch.Tensor, pos: Positions) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), pos)
        return x + self.mlp(self.post_attention_layernorm(x))


class Transformer(nn.Module):
    """Embedding, decoder layers and final norm: what checkpoints name `model.` (as in Hugging Face's models)."""

    def __init__(self, cfg: ModelConfig, max_seq_len: int):
        super().__init__()
        # _weight: no random initialisation (it is about to be overwritten, and on the meta device it would
        # import torch's Python decompositions, ~80 MB and a second, for nothing).
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size,
                                         _weight=torch.empty(cfg.vocab_size, cfg.hidden_size))
        self.layers = nn.ModuleList(DecoderLayer(cfg, max_seq_len) for _ in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


Allocator = Callable[..., torch.Tensor]  # (shape, dtype, device) -> an uninitialised tensor


def _materialize(module: nn.Module, dtype: torch.dtype, device: torch.device, empty: Allocator) -> None:
    """Give every meta parameter real, uninitialised storage of `dtype` on `device` (the loader fills it).

    What Module.to(dtype).to_empty(device) does, without the Python meta kernels those calls import.
    """
    for owner in module.modules():
        for name, param in list(owner.named_parameters(recurse=False)):
            if param.is_meta:
                setattr(owner, name, nn.Parameter(empty(param.shape, dtype, device), requires_grad=param.requires_grad))


def _empty(shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device=device)


class CausalLM(nn.Module):
    """The whole causal LM: transformer (`model`) and `lm_head`. forward(tokens, start) -> float32 logits."""

    def __init__(self, cfg: ModelConfig, max_seq_len: int, dtype: torch.dtype, device: torch.device | str,
                 empty: Allocator = _empty):
        """empty allocates the weights (inference.cpu.hugepages.empty puts large ones on huge pages)."""
        super().__init__()
        self.config, self.max_seq_len = cfg, max_seq_len
        with torch.device("meta"):
            self.model = Transformer(cfg, max_seq_len)
            self.lm_head = None if cfg.tie_word_embeddings else nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        _materialize(self, dtype, torch.device(device), empty)
        if self.lm_head is None:
            self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False, device="meta")
            self.lm_head.weight = self.model.embed_tokens.weight
        self._build_position_tables(dtype, torch.device(device))
        for layer in self.model.layers:
            attn = layer.self_attn
            # Uninitialised: only positions already written are ever read, and untouched pages of a large
            # cache cost no resident memory until a conversation reaches them.
            attn.k_cache = torch.empty(attn.cache_shape, dtype=dtype, device=device)
            attn.v_cache = torch.empty(attn.cache_shape, dtype=dtype, device=device)

    def weights(self) -> dict[str, torch.Tensor]:
        """Load targets by checkpoint name: parameters, and layers that take their matrix row block by row
        block (int8 quantized as it loads: anything with `copy_rows`); the tied lm_head excluded."""
        names = dict(self.named_parameters(remove_duplicate=True))
        for prefix, module in self.named_modules():
            if hasattr(module, "copy_rows"):
                names[f"{prefix}.weight"] = module
        if self.config.tie_word_embeddings:
            names.pop("lm_head.weight", None)
        return names

    def _build_position_tables(self, dtype: torch.dtype, device: torch.device) -> None:
        cfg = self.config
        self.rope_cos = self.rope_sin = self.alibi = None
        if cfg.position_embedding == "rope":
            dim = cfg.head_dim
            inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
            freqs = torch.outer(torch.arange(self.max_seq_len, dtype=torch.float32), inv_freq)
            emb = torch.cat((freqs, freqs), dim=-1)
            self.rope_cos = emb.cos().to(dtype=dtype, device=device)
            sin = emb.sin()
            half = dim // 2
            self.rope_sin = torch.cat((-sin[:, :half], sin[:, half:]), dim=-1).to(dtype=dtype, device=device)
        else:
            self.alibi = torch.tensor(alibi_slopes(cfg.num_heads), dtype=torch.float32, device=device)

    def finish_loading(self) -> None:
        """After the weights are copied in: NormHead rows normalised once (Baichuan2).

        A head without a plain weight (int8, inference.cpu.int8) normalised its rows as they loaded.
        """
        if self.config.norm_head and isinstance(getattr(self.lm_head, "weight", None), torch.Tensor):
            with torch.no_grad():
                w = self.lm_head.weight
                for start in range(0, w.shape[0], 1024):  # in row blocks: no float32 copy of the whole head
                    rows = w[start:start + 1024]
                    rows.copy_(F.normalize(rows.float(), dim=-1).to(w.dtype))

    def check_span(self, start: int, length: int) -> None:
        if start + length > self.max_seq_len:
            raise ValueError(f"sequence of {start + length} tokens exceeds MAX_SEQ_LEN {self.max_seq_len}")

    @torch.inference_mode()
    def forward(self, tokens: torch.Tensor, start: int = 0, all_logits: bool = False) -> torch.Tensor:
        """tokens [L] at positions start .. start + L - 1 -> float32 logits [V] of the last (or [L, V], all)."""
        seq = tokens.shape[0]
        self.check_span(start, seq)
        rope = None if self.rope_cos is None else (self.rope_cos[start:start + seq], self.rope_sin[start:start + seq])
        pos = Positions(start, seq, rope, self.alibi)
        x = self.model.embed_tokens(tokens)  # [L, E]
        for layer in self.model.layers:
            x = layer(x, pos)
        x = self.model.norm(x if all_logits else x[-1:])
        logits = self.lm_head(x).float()  # [L or 1, V]
        return logits if all_logits else logits[0]
