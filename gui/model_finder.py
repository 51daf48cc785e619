"""Model folders already on this computer: recently opened ones and Baichuan folders in the Hugging Face cache,
with variant, size on disk and whether each dtype / quantization fits in memory. Only config.json is read (capped,
regular files only); nothing in a folder is ever imported or run. No Qt here."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

RECENT_LIMIT = 8
#: (label, dtype, quantize) of each way to load a model whose memory need is shown.
LOAD_KINDS = (("fp32", "float32", None), ("bf16/fp16", "bfloat16", None), ("int8", "bfloat16", "int8"))
MAX_SNAPSHOTS = 200  # folders looked at in the cache (a cache can hold many models)


@dataclass
class FoundModel:
    """One folder: where it is, what it is, its size on disk and what fits (None: not told)."""

    path: str
    source: str  # "recent" or "hf"
    name: str
    variant: str = ""
    size: int = 0
    fits: dict = field(default_factory=dict)  # label -> (bytes needed, fits or None)
    problem: str = ""  # why its config could not be read (shown instead of the variant)


def hub_dir(env=os.environ) -> Path:
    """The Hugging Face hub cache: HF_HUB_CACHE, else HF_HOME/hub, else XDG_CACHE_HOME or ~/.cache /huggingface/hub."""
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    cache = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return cache / "huggingface" / "hub"


def add_recent(recent, folder: str) -> list[str]:
    """The recent-folders list (newest first, at most RECENT_LIMIT) after opening folder."""
    kept = [f for f in (recent if isinstance(recent, list) else []) if isinstance(f, str) and f != folder]
    return ([folder] + kept)[:RECENT_LIMIT]


def hf_snapshots(hub: Path) -> list[tuple[str, Path]]:
    """(repo id, snapshot folder) of every snapshot in the cache that has a config.json."""
    found = []
    try:
        repos = sorted(p for p in hub.iterdir() if p.name.startswith("models--"))
    except OSError:
        return []
    for repo in repos:
        repo_id = repo.name[len("models--"):].replace("--", "/")
        try:
            snapshots = sorted((repo / "snapshots").iterdir())
        except OSError:
            continue
        for snapshot in snapshots:
            if (snapshot / "config.json").is_file():
                found.append((repo_id, snapshot))
            if len(found) >= MAX_SNAPSHOTS:
                return found
    return found


def variant_of(config: dict) -> str:
    """'Baichuan2 7B', 'Baichuan2 13B', 'Baichuan 7B (v1)', or the hidden size of another shape."""
    archs = config.get("architectures") or []
    hidden = config.get("hidden_size")
    if "BaiChuanForCausalLM" in archs:
        return "Baichuan 7B (v1)"
    sizes = {4096: "7B", 5120: "13B"}
    return f"Baichuan2 {sizes[hidden]}" if hidden in sizes else f"Baichuan2-format, hidden size {hidden}"


def folder_size(folder: Path) -> int:
    """Bytes of the files in a model folder (links followed, as in the hub cache's snapshots)."""
    total = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        try:
            if entry.is_file():  # follows links; a FIFO or device is not a file
                total += entry.stat().st_size
        except OSError:
            continue
    return total


def memory_fits(config_dict: dict, available: int | None) -> dict:
    """label -> (bytes a CPU load at the model's MAX_SEQ_LEN needs, whether that fits in `available`)."""
    import torch

    from inference.modeling.config import parse_model_config
    from inference.modeling.memory_plan import HEADROOM, MemoryPlan

    config = parse_model_config(config_dict)
    result = {}
    for label, dtype, quantize in LOAD_KINDS:
        plan = MemoryPlan.measure(config, config.model_max_length, getattr(torch, dtype), quantize,
                                  torch.device("cpu"))
        need = plan.weights + plan.kv_cache + plan.tables + HEADROOM
        result[label] = (need, None if available is None else need <= available)
    return result


def describe(path: Path, source: str, name: str, available: int | None) -> FoundModel | None:
    """A FoundModel for a folder; None when it is not a Baichuan folder (a recent one that is gone is kept, with
    its problem, so the user sees why it is not offered)."""
    from inference.modeling.config import read_json
    from inference.errors import ModelFolderError

    found = FoundModel(str(path), source, name)
    try:
        config = read_json(path / "config.json", "config.json")
        archs = config.get("architectures") or []
        if not isinstance(archs, list) or not any(isinstance(a, str) and a.lower() == "baichuanforcausallm"
                                                  for a in archs):
            if source == "hf":
                return None
            found.problem = "not a Baichuan folder"
            return found
        found.variant = variant_of(config)
        found.size = folder_size(path)
        found.fits = memory_fits(config, available)
    except ModelFolderError as exc:
        if source == "hf":
            return None
        found.problem = str(exc)
    except (ValueError, TypeError, KeyError) as exc:  # a config the memory estimate cannot use
        found.problem = str(exc) or exc.__class__.__name__
    return found


def find_models(recent, env=os.environ) -> list[FoundModel]:
    """Recent folders first (as opened), then the hub cache's Baichuan snapshots not already listed."""
    import psutil

    available = int(psutil.virtual_memory().available)
    models, seen = [], set()
    for folder in recent if isinstance(recent, list) else []:
        if isinstance(folder, str) and folder and folder not in seen:
            seen.add(folder)
            model = describe(Path(folder), "recent", Path(folder).name or folder, available)
            if model is not None:
                models.append(model)
    for repo_id, snapshot in hf_snapshots(hub_dir(env)):
        if str(snapshot) not in seen:
            seen.add(str(snapshot))
            model = describe(snapshot, "hf", repo_id, available)
            if model is not None:
                models.append(model)
    return models


def format_size(size: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"
