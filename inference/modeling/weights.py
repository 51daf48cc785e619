"""Checkpoint reading for Baichuan folders: lazy tensor iteration, shape checks and in-place loading."""
from __future__ import annotations

import io
import math
import pickle
import pickletools
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping

import torch

from .config import ModelConfig, read_json
from .weight_copy import copy_into, copy_pieces, release_pages, trim_heap
from ..errors import ModelFolderError
from .safe_read import check_regular
from .safetensors_header import safetensors_error, safetensors_shapes, safetensors_views
from ..torch_guard import is_out_of_memory

SAFETENSORS_INDEX = "model.safetensors.index.json"
SAFETENSORS_SINGLE = "model.safetensors"
BIN_INDEX = "pytorch_model.bin.index.json"
BIN_SINGLE = "pytorch_model.bin"

#: Buffers some Baichuan checkpoints carry that the decoder recomputes itself; skipped without complaint.
HARMLESS_EXTRA = re.compile(r"(^|\.)rotary_emb\.(inv_freq|cos_cached|sin_cached)$|^model\.(future_mask|alibi_mask)$")

#: Opcodes that make a pickle import or call something; tensors-only checkpoints never need them raw.
_CODE_OPCODES = {"GLOBAL", "STACK_GLOBAL", "REDUCE", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "BUILD"}
_LEGACY_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
_ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class _Shard:
    """One weight file and, for sharded checkpoints, the names its index promises it holds."""

    path: Path
    safetensors: bool
    promised: frozenset[str] | None = None


# ---- finding the weight files ---------------------------------------------------------------------
def _plan(model_dir: Path) -> list[_Shard]:
    """The folder's weight files in load order; safetensors preferred when both formats are present."""
    for index_name, single_name, is_safe in (
        (SAFETENSORS_INDEX, SAFETENSORS_SINGLE, True),
        (BIN_INDEX, BIN_SINGLE, False),
    ):
        if _present(model_dir / index_name):
            return _shards_from_index(model_dir, index_name, is_safe)
        if _present(model_dir / single_name):
            check_regular(model_dir / single_name, single_name)
            return [_Shard(model_dir / single_name, is_safe)]
    raise ModelFolderError(
        f"no weights found in {model_dir}: expected model.safetensors, pytorch_model.bin or a sharded *.index.json"
    )


def weight_files(model_dir: Path) -> list[Path]:
    """The folder's weight files and, for sharded checkpoints, their index (what a load reads)."""
    model_dir = Path(model_dir)
    index = [model_dir / name for name in (SAFETENSORS_INDEX, BIN_INDEX) if (model_dir / name).is_file()]
    return [*index, *(shard.path for shard in _plan(model_dir))]


def _present(path: Path) -> bool:
    """Something is there (a link to a device or a FIFO counts, and is then refused by name)."""
    return path.is_symlink() or path.exists()


def _shards_from_index(model_dir: Path, index_name: str, is_safe: bool) -> list[_Shard]:
    index = read_json(model_dir / index_name, index_name)
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise ModelFolderError(f"{index_name} has no 'weight_map' naming the tensors and their shard files")
    by_file: dict[str, set[str]] = {}
    for name, file_name in weight_map.items():
        if not isinstance(file_name, str) or not file_name or Path(file_name).name != file_name \
                or file_name.startswith(".") or "\\" in file_name:
            raise ModelFolderError(f"{index_name} names {file_name!r} for {name}, which is not a file in the folder")
        by_file.setdefault(file_name, set()).add(name)
    shards = []
    for file_name, names in by_file.items():  # dict order = first appearance in the index
        path = model_dir / file_name
        if not _present(path):
            raise ModelFolderError(f"{index_name} names shard {file_name}, which is missing from the folder")
        check_regular(path, file_name)
        shards.append(_Shard(path, is_safe, frozenset(names)))
    return shards


# ---- reading one file -----------------------------------------------------------------------------
def _safetensors_tensors(path: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """Tensors as zero-copy views of a memory map (the safetensors library validates the file first).

    A view costs no memory of its own: the loader copies it into a parameter and then hands its pages
    back (release_pages), so loading never holds the file's pages and the model at once.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            names = list(f.keys())
            views = safetensors_views(path)
            if views is None:  # a dtype torch.frombuffer does not take: let the library read it
                for name in names:
                    yield name, f.get_tensor(name)
                return
    except (SafetensorError, OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise safetensors_error(path, exc) from None
    mapping, layout = views
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # frombuffer's note about buffers it cannot track
        for name in names:
            dtype, shape, offset = layout[name]
            count = math.prod(shape)
            if count == 0:
                yield name, torch.empty(shape, dtype=dtype)
            else:
                yield name, torch.frombuffer(mapping, dtype=dtype, count=count, offset=offset).view(shape)


def _classify_non_zip(path: Path) -> ModelFolderError:
    """Say what a non-zip .bin is by reading its pickle opcodes (never running them)."""
    with open(path, "rb") as f:
        head = f.read(1 << 20)
    if not head:
        return ModelFolderError(f"{path.name} is empty")
    opcodes, first_value = [], None
    try:
        for op, arg, _pos in pickletools.genops(io.BytesIO(head)):
            opcodes.append(op.name)
            if first_value is None and isinstance(arg, int) and not isinstance(arg, bool) and op.name != "PROTO":
                first_value = arg
            if op.name == "STOP":
                break
    except Exception:  # noqa: BLE001 - any parse failure means "not a pickle" (or a truncated one)
        pass
    if "STOP" not in opcodes:  # garbage, a truncated pickle, or one too big to be a checkpoint header
        return ModelFolderError(f"{path.name} is truncated or not a PyTorch checkpoint")
    if _CODE_OPCODES.intersection(opcodes):
        return ModelFolderError(f"{path.name} contains code, not just tensors; refusing to load it")
    if first_value == _LEGACY_TORCH_MAGIC:
        return ModelFolderError(
            f"{path.name} uses the legacy PyTorch format, which cannot be memory-mapped safely; "
            "convert it to safetensors or re-save it with a current PyTorch"
        )
    return ModelFolderError(f"{path.name} is not a PyTorch checkpoint")


def _load_bin(path: Path) -> dict[str, torch.Tensor]:
    """A pytorch_model.bin through weights_only + mmap loading; anything but a dict of tensors is refused."""
    with open(path, "rb") as f:
        is_zip = f.read(4) == _ZIP_MAGIC
    if not is_zip:
        raise _classify_non_zip(path)
    try:
        with warnings.catch_warnings():  # e.g. torch's TorchScript notice: only our one-line error may reach stderr
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "GLOBAL" in text or "Can only build" in text or "Can only create new object" in text:
            raise ModelFolderError(f"{path.name} contains code, not just tensors; refusing to load it") from None
        raise ModelFolderError(f"{path.name} is corrupt (its pickle cannot be read)") from None
    except RuntimeError as exc:
        if is_out_of_memory(exc):
            raise  # not the file's fault: the engine reports it as out of memory
        if "TorchScript" in str(exc):
            raise ModelFolderError(f"{path.name} is a TorchScript program, not just tensors; refusing to load it") \
                from None
        raise ModelFolderError(f"{path.name} is truncated or corrupt (not a readable PyTorch zip archive)") from None
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise ModelFolderError(f"{path.name} is truncated or corrupt (not a readable PyTorch zip archive)") from None
    if not isinstance(obj, dict):
        raise ModelFolderError(f"{path.name} holds a {type(obj).__name__}, not a dictionary of named tensors")
    for name, value in obj.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise ModelFolderError(f"{path.name} entry {name!r} is a {type(value).__name__}, not a tensor")
    return obj


def _shard_tensors(shard: _Shard) -> Iterator[tuple[str, torch.Tensor]]:
    if shard.safetensors:
        yield from _safetensors_tensors(shard.path)
    else:
        state = _load_bin(shard.path)
        while state:  # hand each tensor over and drop our reference, so only the consumer keeps it
            name = next(iter(state))
            yield name, state.pop(name)


def _check_promise(shard: _Shard, names: set[str]) -> None:
    if shard.promised is not None and not shard.promised <= names:
        missing = sorted(shard.promised - names)
        raise ModelFolderError(f"the index says {missing[0]} is in {shard.path.name}, but that shard lacks it")


def _duplicate(name: str, shard: _Shard) -> ModelFolderError:
    return ModelFolderError(f"tensor {name} appears twice in the weights (again in {shard.path.name})")


def _iter_plan(plan: list[_Shard]) -> Iterator[tuple[str, torch.Tensor]]:
    seen: set[str] = set()
    for shard in plan:
        in_shard: set[str] = set()
        for name, tensor in _shard_tensors(shard):
            if name in seen:
                raise _duplicate(name, shard)
            seen.add(name)
            in_shard.add(name)
            yield name, tensor
        _check_promise(shard, in_shard)


def iter_checkpoint(model_dir: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """Every (name, tensor) of a folder's weights, lazily and memory-mapped, in the checkpoint's dtype."""
    return _iter_plan(_plan(Path(model_dir)))


def checkpoint_shapes(model_dir: Path) -> dict[str, tuple[int, ...]]:
    """Names and shapes of a folder's weights without reading tensor data (file headers / mmap only)."""
    return _plan_shapes(_plan(Path(model_dir)))


def _plan_shapes(plan: list[_Shard]) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for shard in plan:
        if shard.safetensors:
            found = safetensors_shapes(shard.path)
        else:
            found = {name: tuple(t.shape) for name, t in _load_bin(shard.path).items()}
        for name in found:
            if name in shapes:
                raise _duplicate(name, shard)
        _check_promise(shard, set(found))
        shapes.update(found)
    return shapes


# ---- what the config implies ----------------------------------------------------------------------
def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Shape of every tensor the decoder needs, by checkpoint name (Baichuan layout, fused W_pack)."""
    hidden, head_dim, inter = config.hidden_size, config.head_dim, config.intermediate_size
    q_rows, kv_rows = config.num_heads * head_dim, config.num_kv_heads * head_dim
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (config.vocab_size, hidden)}
    for i in range(config.num_layers):
        p = f"model.layers.{i}."
        shapes[p + "self_attn.W_pack.weight"] = (q_rows + 2 * kv_rows, hidden)  # q; k; v rows (the demo's fused)
        shapes[p + "self_attn.o_proj.weight"] = (hidden, q_rows)
        shapes[p + "mlp.gate_proj.weight"] = (inter, hidden)
        shapes[p + "mlp.up_proj.weight"] = (inter, hidden)
        shapes[p + "mlp.down_proj.weight"] = (hidden, inter)
        shapes[p + "input_layernorm.weight"] = (hidden,)
        shapes[p + "post_attention_layernorm.weight"] = (hidden,)
    shapes["model.norm.weight"] = (hidden,)
    if not config.tie_word_embeddings:
        shapes["lm_head.weight"] = (config.vocab_size, hidden)
    return shapes


def _ignorable(name: str, config: ModelConfig) -> bool:
    return bool(HARMLESS_EXTRA.search(name)) or (config.tie_word_embeddings and name == "lm_head.weight")


def _more(items: list) -> str:
    return f" (and {len(items) - 1} more)" if len(items) > 1 else ""


_LAYER_NAME = re.compile(r"^model\.layers\.(\d{1,9})\.")


#: More layers than the weights hold by this much are refused before the expected names are listed.
_LAYER_SLACK = 1024


def _check_counts(names_to_shapes: Mapping[str, tuple[int, ...]], config: ModelConfig) -> None:
    """num_hidden_layers against the layers the weights hold, before the config's expected names are listed
    (a config claiming a million layers must not make a list of nine million names first; a few layers
    too many get validate_shapes' message naming the first missing tensor)."""
    layers = {int(m.group(1)) for name in names_to_shapes if (m := _LAYER_NAME.match(name))}
    held = max(layers) + 1 if layers else 0
    if config.num_layers > held + _LAYER_SLACK:
        raise ModelFolderError(f"config.json says num_hidden_layers = {config.num_layers}, "
                               f"but the weights hold {held} layer{'s' if held != 1 else ''}")


def validate_shapes(names_to_shapes: Mapping[str, tuple[int, ...]], config: ModelConfig) -> None:
    """Raise a one-sentence ModelFolderError unless the checkpoint's tensors are exactly what config.json implies."""
    _check_counts(names_to_shapes, config)
    expected = expected_shapes(config)
    wrong = [n for n, s in expected.items() if n in names_to_shapes and tuple(names_to_shapes[n]) != s]
    if wrong:
        name = wrong[0]
        raise ModelFolderError(
            f"{name} has shape {list(names_to_shapes[name])} but config.json implies {list(expected[name])}"
            + _more(wrong)
        )
    missing = [n for n in expected if n not in names_to_shapes]
    if missing:
        raise ModelFolderError(f"the weights lack {missing[0]}{_more(missing)}, which config.json requires")
    unexpected = [n for n in names_to_shapes if n not in expected and not _ignorable(n, config)]
    if unexpected:
        raise ModelFolderError(
            f"the weights hold {unexpected[0]}{_more(unexpected)}, which config.json does not describe"
        )


# ---- loading into a model -------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckedWeights:
    """A folder's weight files whose headers were checked against config.json (no tensor data read yet)."""

    plan: list[_Shard]
    config: ModelConfig


def check_weights(model_dir: Path, config: ModelConfig) -> CheckedWeights:
    """Names and shapes of the folder's weight headers checked against config.json, before any allocation."""
    plan = _plan(Path(model_dir))
    validate_shapes(_plan_shapes(plan), config)
    return CheckedWeights(plan, config)


def load_weights_into(module_state: dict[str, torch.Tensor], model_dir: Path, config: ModelConfig,
                      progress: Callable[[float], None] | None = None,
                      checked: CheckedWeights | None = None, shard=None) -> None:
    """Copy a folder's weights tensor by tensor into pre-allocated parameters (dtype converted by copy_).

    Names and shapes are checked against config.json before anything is copied (unless `checked` says
    check_weights did it); progress(fraction) is called after each tensor and after each ~32 MB block of
    a large one (it may raise to cancel). NormHead normalisation is the model's job, not done here.
    shard (inference.parallel's ShardPlan), when given: the parameters are one tensor-parallel rank's, and only
    its slice of each checkpoint tensor is read and copied.
    """
    model_dir = Path(model_dir)
    expected = expected_shapes(config if shard is None else shard.config)
    for name, shape in expected.items():  # a mismatch here is a bug in the decoder, not in the folder
        target = module_state.get(name)
        if target is None or tuple(target.shape) != shape:
            raise RuntimeError(f"decoder parameter {name} is missing or not shaped {list(shape)}")
    if checked is None or checked.config != config:
        checked = check_weights(model_dir, config)
    plan = checked.plan
    total = sum(math.prod(s) for s in expected.values())
    done = 0
    with torch.no_grad():
        for name, tensor in _iter_plan(plan):
            if name not in expected:
                continue  # a harmless extra buffer (validate_shapes refused everything else)
            if not tensor.is_floating_point():
                raise ModelFolderError(f"{name} has dtype {str(tensor.dtype).removeprefix('torch.')}, "
                                       "not a floating-point type")
            pieces = [(0, tensor)] if shard is None else shard.pieces(name, tensor)
            block = (lambda rows: progress((done + rows * pieces[0][1][0].numel()) / total)) if progress else None
            copy_pieces(module_state[name], pieces, release=release_pages, after_block=block)
            done += sum(piece.numel() for _, piece in pieces)
            del tensor, pieces
            trim_heap()
            if progress is not None:
                progress(done / total)
