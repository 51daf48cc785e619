"""Benchmark inputs: a Baichuan-shaped model folder, the same weights as transformers' Llama, and bandwidth."""
from __future__ import annotations

import json
import shutil
import struct
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from inference.cpu import hugepages

from .binwriter import MAX_SHARD_BYTES, write_bin_folder
from .gguf_files import GGUF_TYPES, write_gguf  # noqa: F401  (the bench's GGUFs, bench.gguf_files)
from .random_weights import weight_entries

#: The issue's reference shape: Baichuan2's vocabulary with a small body, so it runs in minutes on 2 cores.
DEFAULT_SHAPE = dict(hidden_size=1024, num_layers=8, num_heads=16, intermediate_size=2816, vocab_size=125696)
#: Baichuan2-7B itself (`--shape 7b`, and the GPU run).
SHAPE_7B = dict(hidden_size=4096, num_layers=32, num_heads=32, intermediate_size=11008, vocab_size=125696)


@dataclass(frozen=True)
class Shape:
    """Size of a Baichuan2-layout model (RoPE, NormHead, fused W_pack)."""

    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int
    model_max_length: int = 4096

    @property
    def key(self) -> str:
        return (f"h{self.hidden_size}-l{self.num_layers}-a{self.num_heads}-i{self.intermediate_size}"
                f"-v{self.vocab_size}-s{self.model_max_length}")

    def matrix_params(self) -> int:
        """Parameters read per decoded token: every linear layer and lm_head (one embedding row is noise)."""
        h, i = self.hidden_size, self.intermediate_size
        return self.num_layers * (3 * h * h + h * h + 3 * h * i) + self.vocab_size * h

    def total_params(self) -> int:
        return self.matrix_params() + self.vocab_size * self.hidden_size + (2 * self.num_layers + 1) * self.hidden_size

    def kv_bytes_per_position(self, element_size: int) -> int:
        return 2 * self.num_layers * self.hidden_size * element_size


# ---- the model folder -----------------------------------------------------------------------------
def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def pad_tokenizer(path: Path, vocab_size: int) -> None:
    """Append user-defined pieces `<bench_N>` to a SentencePiece model until it has vocab_size pieces.

    Repeated protobuf fields may be continued at the end of a message, so appending ModelProto.pieces
    entries (field 1: piece, score, type USER_DEFINED) to the serialized file extends the vocabulary.
    """
    import sentencepiece as spm

    have = spm.SentencePieceProcessor(model_file=str(path)).get_piece_size()
    extra = bytearray()
    for i in range(have, vocab_size):
        text = f"<bench_{i}>".encode()
        piece = b"\x0a" + _varint(len(text)) + text + b"\x15" + struct.pack("<f", 0.0) + b"\x18\x04"
        extra += b"\x0a" + _varint(len(piece)) + piece
    path.write_bytes(path.read_bytes() + bytes(extra))
    got = spm.SentencePieceProcessor(model_file=str(path)).get_piece_size()
    if got != vocab_size:
        raise RuntimeError(f"padded tokenizer has {got} pieces, wanted {vocab_size}")


def write_bench_folder(root: Path, shape: Shape, dtype: torch.dtype = torch.bfloat16, seed: int = 0,
                       max_shard_bytes: int = MAX_SHARD_BYTES) -> Path:
    """A Baichuan2-format folder of this shape under root (reused when already written); returns its path.

    The weights are .bin shards as the Hugging Face repos ship them (two at 7B), streamed tensor by tensor
    (bench.binwriter): the writer holds one 64 MiB block of random weights at a time, whatever the shape."""
    from testkit.fixtures import write_model_folder

    folder = Path(root) / f"baichuan2-{shape.key}-{str(dtype).removeprefix('torch.')}"
    stamp = folder / "bench-shape.json"
    want = {**asdict(shape), "weights": "bin", "seed": seed, "max_shard_bytes": max_shard_bytes}
    if stamp.is_file() and json.loads(stamp.read_text()) == want:
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    # The fixture writer makes config, generation config, tokenizer files and trap .py files; the weights
    # it writes at a toy size are then replaced by the chosen shape's, and the tokenizer padded to the vocab.
    write_model_folder(folder, hidden_size=64, num_layers=1, num_heads=4, intermediate_size=128,
                       model_max_length=shape.model_max_length, seed=seed)
    (folder / "model.safetensors").unlink()
    pad_tokenizer(folder / "tokenizer.model", shape.vocab_size)
    config = json.loads((folder / "config.json").read_text())
    config.update(hidden_size=shape.hidden_size, num_hidden_layers=shape.num_layers,
                  num_attention_heads=shape.num_heads, intermediate_size=shape.intermediate_size,
                  vocab_size=shape.vocab_size, torch_dtype=str(dtype).removeprefix("torch."))
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    write_bin_folder(folder, weight_entries(shape, dtype, seed), max_shard_bytes)
    stamp.write_text(json.dumps(want))
    return folder


def folder_tensors(folder: Path):
    """The folder's tensors (mmap'd, checkpoint dtype)."""
    from inference.modeling.weights import iter_checkpoint

    return iter_checkpoint(folder)


# ---- the same weights for transformers ------------------------------------------------------------
def hf_llama(folder: Path, dtype: torch.dtype):
    """transformers' LlamaForCausalLM holding the folder's weights: W_pack split, lm_head rows normalised.

    With rotate-half RoPE, SiLU MLP and RMSNorm this is Baichuan2-7B's computation exactly.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = json.loads((Path(folder) / "config.json").read_text())
    hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    config = LlamaConfig(vocab_size=cfg["vocab_size"], hidden_size=hidden, intermediate_size=cfg["intermediate_size"],
                         num_hidden_layers=cfg["num_hidden_layers"], num_attention_heads=heads,
                         num_key_value_heads=heads, rms_norm_eps=cfg["rms_norm_eps"],
                         max_position_embeddings=cfg["model_max_length"], tie_word_embeddings=False,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                         bos_token_id=1, eos_token_id=2, pad_token_id=0, dtype=dtype)
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    state = {}
    for name, tensor in folder_tensors(folder):
        if name.endswith("self_attn.W_pack.weight"):
            prefix = name.removesuffix("W_pack.weight")
            for part, rows in zip("qkv", tensor.split(hidden, dim=0)):
                state[f"{prefix}{part}_proj.weight"] = rows.to(dtype).contiguous()
        elif name == "lm_head.weight":
            state[name] = torch.nn.functional.normalize(tensor.float(), dim=-1).to(dtype)
        else:
            state[name] = tensor.to(dtype).contiguous()
    model.load_state_dict(state, strict=True, assign=True)
    # RoPE inverse frequencies are a non-persistent buffer: recompute it off the meta device.
    for module in model.modules():
        if hasattr(module, "inv_freq"):
            dim = hidden // heads
            module.inv_freq = 1.0 / (10000.0 ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
            module.original_inv_freq = module.inv_freq
    return model.eval()


# ---- memory bandwidth -----------------------------------------------------------------------------
def best_seconds(fn, reps: int) -> float:
    """Shortest of `reps` timed calls of fn, after one untimed call (first-touch costs left out)."""
    fn()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def measure_bandwidth(gib: float = 1.0, reps: int = 7) -> dict:
    """DRAM bandwidth as torch sees it, over `gib` GiB: an fp32 matrix-vector product and a plain sum (reads),
    the same sum on huge pages (how our weights are held, inference.cpu.hugepages), and a STREAM triad (two
    reads, one write, reported only). Decode only reads weights, so the roofline takes the best *read*
    probe; a triad mixes in writes, which 2 cores can drive faster than reads alone."""
    n = int(gib * (1 << 30) / 4) // 16384 * 16384
    a = torch.randn(n // 16384, 16384)
    v = torch.randn(16384)
    mv = a.numel() * 4 / best_seconds(lambda: torch.mv(a, v), reps)
    total = a.numel() * 4 / best_seconds(lambda: a.sum(), reps)
    del a
    h = hugepages.empty((n,), torch.float32)
    h.fill_(1.0)
    huge = n * 4 / best_seconds(lambda: h.sum(), reps)
    del h
    m = n // 4  # three arrays of gib/4 each
    x, y, z = torch.empty(m), torch.randn(m), torch.randn(m)
    triad = 3 * m * 4 / best_seconds(lambda: torch.add(y, z, alpha=3.0, out=x), reps)
    return {"mv_fp32_GBps": mv / 1e9, "sum_fp32_GBps": total / 1e9, "sum_fp32_hugepages_GBps": huge / 1e9,
            "triad_GBps": triad / 1e9, "bandwidth_GBps": max(mv, total, huge) / 1e9,
            "threads": torch.get_num_threads()}


def measure_gpu_bandwidth(device: str = "cuda", gib: float = 2.0, reps: int = 10) -> dict:
    """HBM bandwidth on a GPU: a device-to-device copy (read + write) and an fp16 matrix-vector product."""
    n = int(gib * (1 << 30) / 2) // 8192 * 8192
    a = torch.randn(n // 8192, 8192, device=device, dtype=torch.float16)
    v = torch.randn(8192, device=device, dtype=torch.float16)

    def timed(fn):
        torch.cuda.synchronize()
        return best_seconds(lambda: (fn(), torch.cuda.synchronize()), reps)

    mv = a.numel() * 2 / timed(lambda: torch.mv(a, v))
    b = torch.empty_like(a)
    copy = 2 * a.numel() * 2 / timed(lambda: b.copy_(a))
    return {"mv_fp16_GBps": mv / 1e9, "copy_GBps": copy / 1e9, "bandwidth_GBps": max(mv, copy) / 1e9}
