"""One decoder for Baichuan2 (RoPE or ALiBi, NormHead), Baichuan v1 and Llama-family models, with a static KV cache."""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from . import hugepages
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
        #: Optional fused version fn(x, weight, eps) for bf16 (the CPU C kernel, set by inference.quantize).
        self.kernel = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel is not None and x.dtype == self.weight.dtype == torch.bfloat16 and x.is_contiguous():
            return self.kernel(x, self.weight, self.eps)
        x = x.float()
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)).to(self.weight.dtype)


class Attention(nn.Module):
    """Self-attention with fused W_pack (q; k; v rows), grouped-query heads and a static KV cache."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        qkv_rows = (cfg.num_heads + 2 * cfg.num_kv_heads) * cfg.head_dim
        self.W_pack = nn.Linear(cfg.hidden_size, qkv_rows, bias=False)
        self.o_proj = nn.Linear(cfg.num_heads * cfg.head_dim, cfg.hidden_size, bias=False)
        self.k_cache: torch.Tensor | None = None
        self.v_cache: torch.Tensor | None = None
        #: Optional one-position attention over the cache, fn(q[H, D], k_cache, v_cache, length) -> [H, D],
        #: and causal attention of several new positions, fn(q[L, H, D], k_cache, v_cache, start) -> [L, H, D];
        #: set by Decoder.use_attention_kernels (the CPU C kernels); None keeps SDPA.
        self.decode_attention = self.prefill_attention = None

    def forward(self, x: torch.Tensor, start: int, rope: tuple | None, bias: torch.Tensor | None) -> torch.Tensor:
        seq = x.shape[0]
        heads, kv_heads, dim = self.num_heads, self.num_kv_heads, self.head_dim
        qkv = self.W_pack(x)
        qk = qkv[:, :(heads + kv_heads) * dim].view(seq, heads + kv_heads, dim)
        if rope is not None:  # q and k rotated together: one pass of elementwise ops instead of two
            qk = apply_rope(qk, (rope[0][:, None], rope[1][:, None]))
        q, k = qk[:, :heads], qk[:, heads:]
        v = qkv[:, (heads + kv_heads) * dim:].view(seq, kv_heads, dim)
        end = start + seq
        self.k_cache[:, start:end] = k.transpose(0, 1)
        self.v_cache[:, start:end] = v.transpose(0, 1)
        if seq == 1 and self.decode_attention is not None:
            out = self.decode_attention(q[0].contiguous(), self.k_cache, self.v_cache, end)
            return self.o_proj(out.view(1, heads * dim))
        if seq > 1 and self.prefill_attention is not None:
            out = self.prefill_attention(q, self.k_cache, self.v_cache, start)
            return self.o_proj(out.view(seq, heads * dim))
        q = q.transpose(0, 1)
        keys, values = self.k_cache[:, :end], self.v_cache[:, :end]
        causal = bias is None and seq > 1 and start == 0
        out = F.scaled_dot_product_attention(
            q.unsqueeze(0), keys.unsqueeze(0), values.unsqueeze(0),
            attn_mask=None if bias is None else bias.unsqueeze(0), is_causal=causal,
            enable_gqa=self.num_kv_heads != self.num_heads,
        )
        return self.o_proj(out.squeeze(0).transpose(0, 1).reshape(seq, heads * dim))


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

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.self_attn = Attention(cfg)
        self.mlp = MLP(cfg)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, x, start, rope, bias):
        x = x + self.self_attn(self.input_layernorm(x), start, rope, bias)
        return x + self.mlp(self.post_attention_layernorm(x))


class Backbone(nn.Module):
    """Embedding, decoder layers and final norm (the checkpoint's `model.` prefix)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        # _weight: no random initialisation (it is about to be overwritten, and on the meta device it would
        # import torch's Python decompositions, ~80 MB and a second, for nothing).
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size,
                                         _weight=torch.empty(cfg.vocab_size, cfg.hidden_size))
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


def _materialize(module: nn.Module, dtype: torch.dtype, device: torch.device) -> None:
    """Give every meta parameter real, uninitialised storage of `dtype` on `device` (the loader fills it),
    large ones on huge pages (inference.hugepages).

    What Module.to(dtype).to_empty(device) does, without the Python meta kernels those calls import.
    """
    for owner in module.modules():
        for name, param in list(owner.named_parameters(recurse=False)):
            if param.is_meta:
                setattr(owner, name, nn.Parameter(hugepages.empty(param.shape, dtype, device),
                                                  requires_grad=param.requires_grad))


class Decoder(nn.Module):
    """The whole causal LM. forward(tokens, start) -> float32 logits of the last position."""

    def __init__(self, cfg: ModelConfig, max_seq_len: int, dtype: torch.dtype, device: torch.device | str):
        super().__init__()
        self.config, self.max_seq_len = cfg, max_seq_len
        with torch.device("meta"):
            self.model = Backbone(cfg)
            self.lm_head = None if cfg.tie_word_embeddings else nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        _materialize(self, dtype, torch.device(device))
        if self.lm_head is None:
            self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False, device="meta")
            self.lm_head.weight = self.model.embed_tokens.weight
        self._build_position_tables(dtype, torch.device(device))
        #: Optional whole decode step, fn(token id, position) -> logits (inference.fused_decode, set at load).
        self.fused_step = None
        for layer in self.model.layers:
            attn = layer.self_attn
            shape = (cfg.num_kv_heads, max_seq_len, cfg.head_dim)
            # Uninitialised: only positions already written are ever read, and untouched pages of a large
            # cache cost no resident memory until a conversation reaches them.
            attn.k_cache = torch.empty(shape, dtype=dtype, device=device)
            attn.v_cache = torch.empty(shape, dtype=dtype, device=device)

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

        A head without a plain weight (int8, inference.quantize) normalised its rows as they loaded.
        """
        if self.config.norm_head and isinstance(getattr(self.lm_head, "weight", None), torch.Tensor):
            with torch.no_grad():
                w = self.lm_head.weight
                for start in range(0, w.shape[0], 1024):  # in row blocks: no float32 copy of the whole head
                    rows = w[start:start + 1024]
                    rows.copy_(F.normalize(rows.float(), dim=-1).to(w.dtype))

    def use_attention_kernels(self, decode, prefill) -> None:
        """Route attention through kernels: decode(q[H, D], k_cache, v_cache, length, scale=, slopes=) -> [H, D]
        for one-position steps, prefill(q[L, H, D], k_cache, v_cache, start, scale=, slopes=) -> [L, H, D]
        for several. They get the softmax scale and, for ALiBi models, the float32 head slopes; None: SDPA.
        """
        scale = 1.0 / math.sqrt(self.config.head_dim)
        slopes = None if self.alibi is None else self.alibi.float().contiguous()
        for layer in self.model.layers:
            attn = layer.self_attn
            attn.decode_attention, attn.prefill_attention = (
                None if kernel is None else functools.partial(kernel, scale=scale, slopes=slopes)
                for kernel in (decode, prefill))

    def _alibi_bias(self, start: int, seq: int, dtype: torch.dtype) -> torch.Tensor:
        end = start + seq
        q_pos = torch.arange(start, end, device=self.alibi.device)[:, None]
        k_pos = torch.arange(end, device=self.alibi.device)[None, :]
        rel = (k_pos - q_pos).float()
        bias = self.alibi[:, None, None] * rel
        bias = bias.masked_fill(k_pos > q_pos, float("-inf"))
        return bias.to(dtype)

    @torch.inference_mode()
    def forward(self, tokens: torch.Tensor, start: int = 0, all_logits: bool = False) -> torch.Tensor:
        seq = tokens.shape[0]
        if start + seq > self.max_seq_len:
            raise ValueError(f"sequence of {start + seq} tokens exceeds MAX_SEQ_LEN {self.max_seq_len}")
        if seq == 1 and not all_logits and self.fused_step is not None:
            return self.fused_step(int(tokens[0]), start)
        x = self.model.embed_tokens(tokens)
        rope = bias = None
        attn = self.model.layers[0].self_attn
        kernel = attn.decode_attention if seq == 1 else attn.prefill_attention  # kernels mask and bias themselves
        if self.rope_cos is not None:
            rope = (self.rope_cos[start:start + seq], self.rope_sin[start:start + seq])
            if start > 0 and seq > 1 and kernel is None:
                bias = self._causal_mask(start, seq)
        elif kernel is None:
            bias = self._alibi_bias(start, seq, x.dtype)
        for layer in self.model.layers:
            x = layer(x, start, rope, bias)
        x = self.model.norm(x if all_logits else x[-1:])
        head = getattr(self.lm_head, "logits", None)  # the kernels' float32 output, when there is one
        logits = head(x) if head is not None else self.lm_head(x).float()
        return logits if all_logits else logits[0]

    def _causal_mask(self, start: int, seq: int) -> torch.Tensor:
        q_pos = torch.arange(start, start + seq, device=self.rope_cos.device)[:, None]
        k_pos = torch.arange(start + seq, device=self.rope_cos.device)[None, :]
        return (k_pos <= q_pos).unsqueeze(0)
