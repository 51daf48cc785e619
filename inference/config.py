"""Model and generation configuration: parsed and validated from a model folder's JSON files."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ModelFolderError

BAICHUAN2_VOCAB = 125696
SUPPORTED_ARCHITECTURES = {
    "BaichuanForCausalLM": "baichuan2",  # Baichuan2 7B / 13B (also 13B v1, which has no NormHead)
    "BaiChuanForCausalLM": "baichuan",  # Baichuan v1 7B
}


@dataclass(frozen=True)
class ModelConfig:
    """Shape and variant of one decoder; every model the engine runs is described by one of these."""

    architecture: str  # "baichuan2", "baichuan" or "llama" (the demo model)
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    position_embedding: str = "rope"  # "rope" or "alibi"
    norm_head: bool = False  # Baichuan2's NormHead: lm_head rows normalised once at load
    tie_word_embeddings: bool = False
    model_max_length: int = 4096
    fused_qkv: bool = True  # Baichuan's W_pack; the demo model stores q, k, v apart

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


@dataclass(frozen=True)
class GenerationDefaults:
    """Sampling defaults and special ids, as in a folder's generation_config.json."""

    do_sample: bool = True
    temperature: float = 0.3
    top_k: int = 5
    top_p: float = 0.85
    repetition_penalty: float = 1.05
    max_new_tokens: int = 2048
    eos_token_ids: tuple[int, ...] = (2,)
    bos_token_id: int = 1
    pad_token_id: int = 0
    user_token_id: int = 195
    assistant_token_id: int = 196
    extra: dict = field(default_factory=dict, compare=False)


def read_json(path: Path, what: str) -> dict:
    """Read a JSON object from a model folder, or raise a one-line ModelFolderError."""
    if not path.is_file():
        raise ModelFolderError(f"{what} is missing: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFolderError(f"{path.name} is not valid JSON ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise ModelFolderError(f"{path.name} must hold a JSON object")
    return data


def _int(cfg: dict, key: str, name: str, minimum: int = 1) -> int:
    value = cfg.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelFolderError(f"{name} lacks an integer '{key}'")
    if value < minimum:
        raise ModelFolderError(f"{name} has '{key}' = {value}, expected at least {minimum}")
    return value


def parse_model_config(cfg: dict, name: str = "config.json") -> ModelConfig:
    """Validate a Baichuan/Baichuan2 config.json dict and return the ModelConfig it describes."""
    archs = cfg.get("architectures") or []
    arch = next((SUPPORTED_ARCHITECTURES[a] for a in archs if a in SUPPORTED_ARCHITECTURES), None)
    if arch is None:
        shown = ", ".join(map(str, archs)) if isinstance(archs, list) and archs else "none given"
        raise ModelFolderError(
            f"unsupported architecture ({shown}); expected BaichuanForCausalLM or BaiChuanForCausalLM"
        )
    hidden = _int(cfg, "hidden_size", name)
    heads = _int(cfg, "num_attention_heads", name)
    vocab = _int(cfg, "vocab_size", name)
    if hidden % heads:
        raise ModelFolderError(f"{name}: hidden_size {hidden} is not divisible by num_attention_heads {heads}")
    if (hidden // heads) % 2:
        raise ModelFolderError(f"{name}: head size {hidden // heads} must be even")
    position = cfg.get("position_embedding")
    if position is None:
        position = "alibi" if hidden == 5120 else "rope"
    if position not in ("rope", "alibi"):
        raise ModelFolderError(f"{name}: position_embedding must be 'rope' or 'alibi', not {position!r}")
    norm_head = cfg.get("norm_head")
    if norm_head is None:
        norm_head = arch == "baichuan2" and vocab == BAICHUAN2_VOCAB
    max_len = cfg.get("model_max_length") or cfg.get("max_position_embeddings") or 4096
    eps = cfg.get("rms_norm_eps", 1e-6)
    if not isinstance(eps, (int, float)) or not 0 < eps < 1:
        raise ModelFolderError(f"{name}: rms_norm_eps must be a small positive number")
    return ModelConfig(
        architecture=arch,
        vocab_size=vocab,
        hidden_size=hidden,
        num_layers=_int(cfg, "num_hidden_layers", name),
        num_heads=heads,
        num_kv_heads=heads,
        intermediate_size=_int(cfg, "intermediate_size", name),
        rms_norm_eps=float(eps),
        rope_theta=float(cfg.get("rope_theta", 10000.0)),
        position_embedding=position,
        norm_head=bool(norm_head),
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        model_max_length=int(max_len),
        fused_qkv=True,
    )


def parse_generation_config(gen: dict, cfg: dict) -> GenerationDefaults:
    """Generation defaults from generation_config.json (missing keys fall back to Baichuan2's)."""
    base = GenerationDefaults()
    eos = gen.get("eos_token_id", cfg.get("eos_token_id", 2))
    eos_ids = tuple(eos) if isinstance(eos, list) else (eos,)
    return GenerationDefaults(
        do_sample=bool(gen.get("do_sample", base.do_sample)),
        temperature=float(gen.get("temperature", base.temperature)),
        top_k=int(gen.get("top_k", base.top_k)),
        top_p=float(gen.get("top_p", base.top_p)),
        repetition_penalty=float(gen.get("repetition_penalty", base.repetition_penalty)),
        max_new_tokens=int(gen.get("max_new_tokens", base.max_new_tokens)),
        eos_token_ids=tuple(int(e) for e in eos_ids),
        bos_token_id=int(gen.get("bos_token_id", cfg.get("bos_token_id", 1))),
        pad_token_id=int(gen.get("pad_token_id", cfg.get("pad_token_id", 0))),
        user_token_id=int(gen.get("user_token_id", base.user_token_id)),
        assistant_token_id=int(gen.get("assistant_token_id", base.assistant_token_id)),
    )


def load_folder_config(model_dir: Path) -> tuple[ModelConfig, GenerationDefaults]:
    """Read config.json and generation_config.json (optional) of a Baichuan model folder."""
    cfg = read_json(model_dir / "config.json", "config.json")
    model_cfg = parse_model_config(cfg)
    gen_path = model_dir / "generation_config.json"
    gen = read_json(gen_path, "generation_config.json") if gen_path.exists() else {}
    try:
        defaults = parse_generation_config(gen, cfg)
    except (TypeError, ValueError) as exc:
        raise ModelFolderError(f"generation_config.json has a bad value ({exc})") from None
    return model_cfg, defaults
