"""What loading a model will allocate (weights, KV cache, position tables), checked against free memory first."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .config import ModelConfig
from ..errors import DeviceError

GB = 1 << 30
#: Kept free beside the model: the interpreter, the tokenizer, activations and the allocator's slack.
HEADROOM = 256 << 20


def available_bytes(device: torch.device) -> int | None:
    """Memory free for a new allocation on `device` (None where it cannot be told, e.g. an NPU)."""
    if device.type == "cpu":
        import psutil

        return int(psutil.virtual_memory().available)
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except (RuntimeError, AssertionError):
            return None
    return None


def quantized_matrix_bytes(rows: int, cols: int, quantize: str) -> int:
    """Bytes of one [rows, cols] matrix as weight-only int8 (a float32 scale per row) or int4 (inference.cpu.int4:
    nibbles and two fp16 per row and group of 32, rows padded to 16, columns to 32)."""
    if quantize == "int8":
        return rows * cols + 4 * rows
    rows, groups = -(-rows // 16) * 16, -(-cols // 32)
    return rows * groups * (16 + 4)


def _weight_bytes(config: ModelConfig, element: int, quantize: str | None) -> int:
    from .weights import expected_shapes  # the layer count was checked against the weights already

    total = 0
    for name, shape in expected_shapes(config).items():
        if quantize in ("int8", "int4") and len(shape) == 2 and name != "model.embed_tokens.weight":
            total += quantized_matrix_bytes(*shape, "int8" if name == "lm_head.weight" else quantize)
        else:
            total += math.prod(shape) * element
    if config.tie_word_embeddings and quantize in ("int8", "int4"):  # the tied head gets its own quantized copy
        total += quantized_matrix_bytes(config.vocab_size, config.hidden_size, "int8")  # int4 keeps the head int8
    return total


@dataclass(frozen=True)
class MemoryPlan:
    """Bytes a load will take on `device`, and the bytes free there when it was measured."""

    device: torch.device
    seq_len: int
    weights: int
    kv_cache: int
    tables: int
    available: int | None
    per_position: int
    ranks: int = 1  # tensor-parallel ranks sharing this memory (CPU processes): each needs the bytes above

    @classmethod
    def measure(cls, config: ModelConfig, seq_len: int, dtype: torch.dtype, quantize: str | None,
                device: torch.device, ranks: int = 1) -> "MemoryPlan":
        """config: the model's, or one tensor-parallel rank's (inference.parallel: its 1/N shape)."""
        element = torch.empty((), dtype=dtype).element_size()
        kv = 2 * config.num_layers * config.num_kv_heads * config.head_dim * element  # per position
        # RoPE cos and sin in the model dtype, built from float32 positions x frequencies, angles, cos, sin
        table = config.head_dim * (2 * element + 16) if config.position_embedding == "rope" else 0
        return cls(device, seq_len, _weight_bytes(config, element, quantize), kv * seq_len, table * seq_len,
                   available_bytes(device), kv + table, ranks)

    def remeasured(self) -> "MemoryPlan":
        """The same need against what is free now (after the caller released something)."""
        return MemoryPlan(self.device, self.seq_len, self.weights, self.kv_cache, self.tables,
                          available_bytes(self.device), self.per_position, self.ranks)

    @property
    def need(self) -> int:
        return (self.weights + self.kv_cache + self.tables + HEADROOM) * self.ranks

    @property
    def fits(self) -> bool:
        return self.available is None or self.need <= self.available

    def check(self) -> None:
        """A one-line DeviceError naming the numbers when the load would not fit."""
        if self.fits:
            return
        room = (self.available // self.ranks - self.weights - HEADROOM) // max(self.per_position, 1)
        hint = (f"try a smaller MAX_SEQ_LEN (at most about {room} fits)" if room >= 64
                else "try int8 or int4 quantization, a smaller dtype or another device")
        raise DeviceError(
            f"the model needs about {self.need / GB:.1f} GB on {self.device}"
            + (f" ({self.ranks} tensor-parallel ranks, each " if self.ranks > 1 else " (") +
            f"weights {self.weights / GB:.1f} GB, "
            f"KV cache and position tables for MAX_SEQ_LEN {self.seq_len} {(self.kv_cache + self.tables) / GB:.1f} GB) "
            f"but only {self.available / GB:.1f} GB is free; {hint}")
