"""Test-model writer: small Baichuan2-format folders (config, tokenizer, trap .py files, random weights)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch

ARCHITECTURES = {"BaichuanForCausalLM": "Baichuan", "BaiChuanForCausalLM": "BaiChuan"}
WEIGHT_FORMATS = ("safetensors", "bin", "sharded-safetensors", "sharded-bin")
NUM_SHARDS = 3
#: Files shipped in Baichuan2's Hugging Face repos that this project must never import or execute.
TRAP_MODULES = ("modeling_baichuan", "configuration_baichuan", "tokenization_baichuan", "generation_utils")
#: A trap module that gets imported leaves a file named TRAP_MARKER_PREFIX + module name beside itself.
TRAP_MARKER_PREFIX = "EXECUTED_"

_TRAP_SOURCE = '''"""Test-fixture trap: importing this file leaves a marker and fails; the app must never do it."""
import pathlib

_me = pathlib.Path(__file__)
_me.with_name("{prefix}" + _me.stem).write_text("this module was executed\\n")
raise RuntimeError("model-folder code was executed: " + _me.name)
'''
_DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}


def executed_markers(folder: Path) -> list[Path]:
    """Marker files left by trap modules that ran (empty when nothing in the folder was executed)."""
    return sorted(Path(folder).glob(TRAP_MARKER_PREFIX + "*"))


def random_weights(*, vocab_size: int, hidden_size: int, num_layers: int, num_heads: int, intermediate_size: int,
                   seed: int = 0, extra_buffers: bool = False) -> dict[str, torch.Tensor]:
    """Float32 weights in Baichuan2's exact names and layout, deterministic by seed.

    Linear layers use std 0.7/sqrt(fan_in) and the embedding std 0.4, so attention is neither flat nor
    one-hot and logits stay near unit scale; norm weights are 1 + 0.1·N(0,1); lm_head rows get random
    norms (0.37x to 2.7x) so that NormHead's normalisation changes the logits.
    """
    gen = torch.Generator().manual_seed(seed)
    head_dim = hidden_size // num_heads

    def linear(rows: int, cols: int) -> torch.Tensor:
        return torch.randn(rows, cols, generator=gen) * (0.7 / math.sqrt(cols))

    def norm() -> torch.Tensor:
        return 1.0 + 0.1 * torch.randn(hidden_size, generator=gen)

    weights = {"model.embed_tokens.weight": 0.4 * torch.randn(vocab_size, hidden_size, generator=gen)}
    for i in range(num_layers):
        p = f"model.layers.{i}."
        weights[p + "self_attn.W_pack.weight"] = linear(3 * hidden_size, hidden_size)  # rows [q; k; v]
        weights[p + "self_attn.o_proj.weight"] = linear(hidden_size, hidden_size)
        weights[p + "mlp.gate_proj.weight"] = linear(intermediate_size, hidden_size)
        weights[p + "mlp.down_proj.weight"] = linear(hidden_size, intermediate_size)
        weights[p + "mlp.up_proj.weight"] = linear(intermediate_size, hidden_size)
        weights[p + "input_layernorm.weight"] = norm()
        weights[p + "post_attention_layernorm.weight"] = norm()
        if extra_buffers:  # as in some Baichuan checkpoints: a buffer the loader must skip
            weights[p + "self_attn.rotary_emb.inv_freq"] = 1.0 / (
                10000.0 ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    weights["model.norm.weight"] = norm()
    row_scale = torch.exp(torch.rand(vocab_size, 1, generator=gen) * 2 - 1)
    weights["lm_head.weight"] = linear(vocab_size, hidden_size) * row_scale
    return weights


def _config_json(*, architecture, vocab_size, hidden_size, num_layers, num_heads, intermediate_size,
                 model_max_length, dtype, position_embedding, norm_head) -> dict:
    prefix = ARCHITECTURES.get(architecture, "Baichuan")
    config = {
        "_from_model_config": True,
        "architectures": [architecture],
        "auto_map": {
            "AutoConfig": f"configuration_baichuan.{prefix}Config",
            "AutoModelForCausalLM": f"modeling_baichuan.{architecture}",
        },
        "tokenizer_class": "BaichuanTokenizer",
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
        "hidden_act": "silu",
        "hidden_size": hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": intermediate_size,
        "max_position_embeddings": model_max_length,
        "model_max_length": model_max_length,
        "model_type": "baichuan",
        "num_attention_heads": num_heads,
        "num_hidden_layers": num_layers,
        "rms_norm_eps": 1e-06,
        "tie_word_embeddings": False,
        "torch_dtype": _DTYPE_NAMES.get(dtype, str(dtype).removeprefix("torch.")),
        "transformers_version": "4.29.2",
        "use_cache": True,
        "vocab_size": vocab_size,
        "z_loss_weight": 0,
    }
    if position_embedding is not None:
        config["position_embedding"] = position_embedding
    if norm_head is not None:
        config["norm_head"] = norm_head
    return config


def _generation_config_json(model_max_length: int) -> dict:
    return {
        "_from_model_config": False,
        "assistant_token_id": 196,
        "bos_token_id": 1,
        "do_sample": True,
        "eos_token_id": 2,
        "max_new_tokens": min(2048, max(1, model_max_length // 4)),
        "pad_token_id": 0,
        "repetition_penalty": 1.05,
        "temperature": 0.3,
        "top_k": 5,
        "top_p": 0.85,
        "transformers_version": "4.29.2",
        "user_token_id": 195,
    }


def _special(content: str) -> dict:
    return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": True, "rstrip": False,
            "single_word": True}


def _tokenizer_files(path: Path, model_max_length: int) -> None:
    tokenizer_config = {
        "add_bos_token": False,
        "add_eos_token": False,
        "auto_map": {"AutoTokenizer": ["tokenization_baichuan.BaichuanTokenizer", None]},
        "bos_token": _special("<s>"),
        "clean_up_tokenization_spaces": False,
        "eos_token": _special("</s>"),
        "model_max_length": model_max_length,
        "pad_token": _special("<unk>"),
        "sp_model_kwargs": {},
        "tokenizer_class": "BaichuanTokenizer",
        "unk_token": _special("<unk>"),
        "use_fast": False,
    }
    special_map = {name: {k: v for k, v in _special(text).items() if k != "__type"}
                   for name, text in (("bos_token", "<s>"), ("eos_token", "</s>"), ("pad_token", "<unk>"),
                                      ("unk_token", "<unk>"))}
    _write_json(path / "tokenizer_config.json", tokenizer_config)
    _write_json(path / "special_tokens_map.json", special_map)


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_weights(path: Path, weights: dict[str, torch.Tensor], weights_format: str = "safetensors") -> None:
    """Save weights as Hugging Face does: one file, or NUM_SHARDS shards plus a *.index.json weight map."""
    from safetensors.torch import save_file

    if weights_format not in WEIGHT_FORMATS:
        raise ValueError(f"weights_format must be one of {WEIGHT_FORMATS}, not {weights_format!r}")
    safe = weights_format.endswith("safetensors")

    def save(tensors: dict[str, torch.Tensor], file_name: str) -> None:
        tensors = {k: v.contiguous() for k, v in tensors.items()}
        if safe:
            save_file(tensors, str(path / file_name), metadata={"format": "pt"})
        else:
            torch.save(tensors, path / file_name)

    if not weights_format.startswith("sharded"):
        save(weights, "model.safetensors" if safe else "pytorch_model.bin")
        return
    names = list(weights)
    per_shard = math.ceil(len(names) / NUM_SHARDS)
    weight_map: dict[str, str] = {}
    for i in range(NUM_SHARDS):
        chunk = names[i * per_shard:(i + 1) * per_shard]
        stem = "model" if safe else "pytorch_model"
        file_name = f"{stem}-{i + 1:05d}-of-{NUM_SHARDS:05d}.{'safetensors' if safe else 'bin'}"
        save({n: weights[n] for n in chunk}, file_name)
        weight_map.update({n: file_name for n in chunk})
    total = sum(t.numel() * t.element_size() for t in weights.values())
    index_name = "model.safetensors.index.json" if safe else "pytorch_model.bin.index.json"
    _write_json(path / index_name, {"metadata": {"total_size": total}, "weight_map": weight_map})


def write_model_folder(path: Path, *, position_embedding: str | None = "rope", norm_head: bool | None = True,
                       vocab_size: int | None = None, hidden_size: int = 64, num_layers: int = 2,
                       num_heads: int = 4, intermediate_size: int = 128, model_max_length: int = 256,
                       weights_format: str = "safetensors", dtype: torch.dtype = torch.float32, seed: int = 0,
                       architecture: str = "BaichuanForCausalLM", extra_buffers: bool = False) -> Path:
    """Write a complete small Baichuan2-format model folder at path and return it.

    position_embedding / norm_head of None leave those optional keys out of config.json (the loader then
    infers them as for real checkpoints). vocab_size None takes the fixture tokenizer's default size; the
    config's vocab_size is always the tokenizer's piece count. The folder also holds trap .py files named
    like Baichuan2's (see TRAP_MODULES) that leave a marker if anything ever imports them.
    """
    import sentencepiece as spm

    from .tokenizer_model import DEFAULT_VOCAB_SIZE, train_tokenizer_model

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer_path = train_tokenizer_model(path / "tokenizer.model", vocab_size or DEFAULT_VOCAB_SIZE)
    vocab = spm.SentencePieceProcessor(model_file=str(tokenizer_path)).get_piece_size()
    _write_json(path / "config.json", _config_json(
        architecture=architecture, vocab_size=vocab, hidden_size=hidden_size, num_layers=num_layers,
        num_heads=num_heads, intermediate_size=intermediate_size, model_max_length=model_max_length,
        dtype=dtype, position_embedding=position_embedding, norm_head=norm_head,
    ))
    _write_json(path / "generation_config.json", _generation_config_json(model_max_length))
    _tokenizer_files(path, model_max_length)
    for module in TRAP_MODULES:
        (path / f"{module}.py").write_text(_TRAP_SOURCE.replace("{prefix}", TRAP_MARKER_PREFIX), encoding="utf-8")
    weights = random_weights(vocab_size=vocab, hidden_size=hidden_size, num_layers=num_layers, num_heads=num_heads,
                             intermediate_size=intermediate_size, seed=seed, extra_buffers=extra_buffers)
    write_weights(path, {name: t.to(dtype) for name, t in weights.items()}, weights_format)
    return path
