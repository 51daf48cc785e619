"""Model and generation configuration: parsed and validated from a model folder's JSON files."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ModelFolderError
from .safe_read import JSON_CAP, read_capped

BAICHUAN2_VOCAB = 125696
SUPPORTED_ARCHITECTURES = {
    "BaichuanForCausalLM": "baichuan2",  # Baichuan2 7B / 13B (also 13B v1, which has no NormHead)
    "BaiChuanForCausalLM": "baichuan",  # Baichuan v1 7B
}
#: Most positions a config may declare (Baichuan models have 4096); above it the position tables alone
#: would cost gigabytes for nothing. --max-seq-len is still checked against memory at load.
MAX_POSITIONS = 1 << 20
#: Token ids beyond this are never real (the largest vocabularies have ~260k pieces).
MAX_TOKEN_ID = 1 << 24


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
    """Read a JSON object from a model folder (a capped regular file), or raise a one-line ModelFolderError."""
    data = read_capped(path, what, JSON_CAP)
    try:
        data = json.loads(data.decode("utf-8"))
    except RecursionError:
        raise ModelFolderError(f"{path.name} is not valid JSON (it is nested too deeply)") from None
    except (UnicodeDecodeError, ValueError) as exc:  # ValueError: also numbers over 4300 digits
        detail = " ".join(str(exc).splitlines())
        raise ModelFolderError(f"{path.name} is not valid JSON ({exc.__class__.__name__}: {detail})") from None
    if not isinstance(data, dict):
        raise ModelFolderError(f"{path.name} must hold a JSON object")
    return data


def _shown(value) -> str:
    text = json.dumps(value) if isinstance(value, (int, float, str, bool)) or value is None else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _int(cfg: dict, key: str, name: str, minimum: int = 1, maximum: int | None = None, default=None) -> int:
    value = cfg.get(key, default)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)  # 4096.0, as some tools write it
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelFolderError(f"{name} lacks an integer '{key}'" if value is None
                               else f"{name} has '{key}' = {_shown(value)}, expected an integer")
    if value < minimum:
        raise ModelFolderError(f"{name} has '{key}' = {_shown(value)}, expected at least {minimum}")
    if maximum is not None and value > maximum:
        raise ModelFolderError(f"{name} has '{key}' = {_shown(value)}, more than the {maximum} this engine supports")
    return value


def _float(cfg: dict, key: str, name: str, default: float, low: float, high: float = math.inf,
           low_open: bool = True) -> float:
    value = cfg.get(key, default)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and (value > low if low_open else value >= low) and value < high:
        return float(value)
    bound = f"{'above' if low_open else 'at least'} {low:g}" + (f" and below {high:g}" if high < math.inf else "")
    raise ModelFolderError(f"{name} has '{key}' = {_shown(value)}, expected a finite number {bound}")


def parse_model_config(cfg: dict, name: str = "config.json") -> ModelConfig:
    """Validate a Baichuan/Baichuan2 config.json dict and return the ModelConfig it describes."""
    archs = cfg.get("architectures") or []
    archs = [a for a in archs if isinstance(a, str)] if isinstance(archs, list) else []
    arch = next((SUPPORTED_ARCHITECTURES[a] for a in archs if a in SUPPORTED_ARCHITECTURES), None)
    if arch is None:
        shown = ", ".join(_shown(a).strip('"') for a in archs) if archs else "none given"
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
    length_key = next((k for k in ("model_max_length", "max_position_embeddings") if cfg.get(k) is not None),
                      "model_max_length")
    max_len = _int(cfg, length_key, name, minimum=2, maximum=MAX_POSITIONS, default=4096)
    eps = _float(cfg, "rms_norm_eps", name, 1e-6, 0.0, 1.0)
    return ModelConfig(
        architecture=arch,
        vocab_size=vocab,
        hidden_size=hidden,
        num_layers=_int(cfg, "num_hidden_layers", name),
        num_heads=heads,
        num_kv_heads=heads,
        intermediate_size=_int(cfg, "intermediate_size", name),
        rms_norm_eps=eps,
        rope_theta=_float(cfg, "rope_theta", name, 10000.0, 0.0),
        position_embedding=position,
        norm_head=bool(norm_head),
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        model_max_length=max_len,
    )


def _token_ids(gen: dict, cfg: dict, key: str, default: int) -> tuple[int, ...]:
    source = gen if key in gen else cfg
    values = source.get(key)
    values = default if values is None else values
    name = "generation_config.json" if source is gen else "config.json"
    items = values if isinstance(values, list) and values else [values]
    return tuple(_int({key: v}, key, name, minimum=0, maximum=MAX_TOKEN_ID) for v in items)


def parse_generation_config(gen: dict, cfg: dict) -> GenerationDefaults:
    """Generation defaults from generation_config.json (missing keys fall back to Baichuan2's)."""
    base, name = GenerationDefaults(), "generation_config.json"
    return GenerationDefaults(
        do_sample=bool(gen.get("do_sample", base.do_sample)),
        temperature=_float(gen, "temperature", name, base.temperature, 0.0, low_open=False),
        top_k=_int(gen, "top_k", name, minimum=0, default=base.top_k),
        top_p=_float(gen, "top_p", name, base.top_p, 0.0, 1.0 + 1e-9, low_open=False),
        repetition_penalty=_float(gen, "repetition_penalty", name, base.repetition_penalty, 0.0),
        max_new_tokens=_int(gen, "max_new_tokens", name, default=base.max_new_tokens),
        eos_token_ids=_token_ids(gen, cfg, "eos_token_id", 2),
        bos_token_id=_token_ids(gen, cfg, "bos_token_id", 1)[0],
        pad_token_id=_token_ids(gen, cfg, "pad_token_id", 0)[0],
        user_token_id=_int(gen, "user_token_id", name, minimum=0, maximum=MAX_TOKEN_ID, default=base.user_token_id),
        assistant_token_id=_int(gen, "assistant_token_id", name, minimum=0, maximum=MAX_TOKEN_ID,
                                default=base.assistant_token_id),
    )


def load_folder_config(model_dir: Path) -> tuple[ModelConfig, GenerationDefaults]:
    """Read config.json and generation_config.json (optional) of a Baichuan model folder."""
    cfg = read_json(model_dir / "config.json", "config.json")
    model_cfg = parse_model_config(cfg)
    gen_path = model_dir / "generation_config.json"
    gen = read_json(gen_path, "generation_config.json") if gen_path.is_symlink() or gen_path.exists() else {}
    return model_cfg, parse_generation_config(gen, cfg)
