"""Fast linear layers for CPU decode: bf16 matrix-vector kernels, and weight-only int8 (per-output-row scales)."""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from . import cpu_kernels, hugepages
from .errors import DeviceError, InputError

QUANTIZE_CHOICES = ("int8",)


def check_quantize(quantize: str | None, device: torch.device) -> str | None:
    """Validate a quantize option for a device; None means the weights keep the model dtype."""
    if quantize in (None, "", "none"):
        return None
    if quantize not in QUANTIZE_CHOICES:
        raise InputError(f"unknown quantization {quantize!r}; choose int8 or none")
    if device.type not in ("cpu", "cuda"):
        raise DeviceError(f"weight-only int8 runs on the CPU or a CUDA GPU, not on {device.type}")
    return quantize


def quantize_rows(rows: torch.Tensor, normalize: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8 of a block of rows, in float32: rows ≈ q * scale[:, None], q in [-127, 127].

    normalize=True quantizes the L2-normalised rows (Baichuan2's NormHead) straight from float32.
    """
    w = rows.float()
    if normalize:
        w = F.normalize(w, dim=-1)
    scale = (w.abs().amax(dim=1) / 127.0).clamp_(min=1e-12)
    return torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8), scale


def quantize_into(store_q, scale: torch.Tensor, start: int, rows: torch.Tensor, normalize: bool = False,
                  block_rows: int = 512) -> None:
    """store_q(start + i, q block) and scale[start:] = quantize_rows(rows), block_rows at a time (the float32
    temporaries stay small)."""
    for i in range(0, rows.shape[0], block_rows):
        block_q, block_scale = quantize_rows(rows[i:i + block_rows].to(scale.device), normalize)
        store_q(start + i, block_q)
        scale[start + i:start + i + block_q.shape[0]] = block_scale


def quantize_int8(weight: torch.Tensor, block_rows: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole matrix as per-row int8 (row-major) and its float32 scales."""
    q = torch.empty(weight.shape, dtype=torch.int8, device=weight.device)
    scale = torch.empty(weight.shape[0], dtype=torch.float32, device=weight.device)
    quantize_into(lambda at, block: q[at:at + block.shape[0]].copy_(block), scale, 0, weight, block_rows=block_rows)
    return q, scale


#: Packed int8 matrices (the C kernels' tile_int8): 16 rows interleaved by column pairs.
TILE = 16


def packed_view(q: torch.Tensor) -> torch.Tensor:
    """The [N/16, K/2, 16, 2] view of a packed [N, K] int8 buffer: [t, e, l, c] is row 16t + l, column 2e + c."""
    return q.view(q.shape[0] // TILE, q.shape[1] // 2, TILE, 2)


def _single_row(x: torch.Tensor) -> bool:
    return x.numel() == x.shape[-1] and x.device.type == "cpu"


class _KernelLinear(nn.Module):
    """A linear layer whose forward(x, out_dtype) can return float32 sums directly."""

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """float32 outputs, as summed (lm_head: not rounded to bf16, which would turn near-ties into ties)."""
        return self(x, torch.float32)


def _packed_product(lib, weight: torch.Tensor, x: torch.Tensor, out_dtype: torch.dtype,
                    scales: torch.Tensor | None = None) -> torch.Tensor:
    """x[..., K] @ weight.T for a packed weight (bf16, or int8 with its row scales): the C product on bf16 rows."""
    rows = x.reshape(-1, x.shape[-1]).to(torch.bfloat16).contiguous()
    kind = out_dtype if out_dtype in (torch.bfloat16, torch.float32) else torch.float32
    out = cpu_kernels.gemm_packed(lib, weight, rows, torch.empty(rows.shape[0], weight.shape[0], dtype=kind), scales)
    return out.reshape(*x.shape[:-1], weight.shape[0]).to(out_dtype)


class CpuLinear(_KernelLinear):
    """A bias-free bf16 or float32 linear layer (the same weight Parameter) whose products use the C kernels.

    Decode multiplies a single activation row by each matrix; torch's bf16 path reads the weights at about
    half of DRAM bandwidth here (float32: ~40 %), the kernel at about 90 %. With pack=True a bf16 weight that
    allows it is packed in place by 16-row tiles (csrc/packed.c: ~1.4x the read rate at high bandwidth), and
    several-row products (prefill) then use the packed C product, at oneDNN's speed; otherwise they stay on
    F.linear (oneDNN).
    """

    def __init__(self, linear: nn.Linear, lib, pack: bool = False):
        super().__init__()
        self.weight = linear.weight
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self._lib = lib
        self.packed = bool(pack and lib.bf16_packing() and self.weight.dtype == torch.bfloat16
                           and self.weight.is_contiguous() and self.out_features % TILE == 0
                           and self.in_features % 2 == 0)
        if self.packed:
            with torch.no_grad():
                cpu_kernels.pack_bf16(lib, self.weight)

    def forward(self, x: torch.Tensor, out_dtype: torch.dtype | None = None) -> torch.Tensor:
        out_dtype = out_dtype or x.dtype
        if _single_row(x) and x.dtype == self.weight.dtype and self.weight.is_contiguous() and (
                x.dtype == torch.bfloat16 or out_dtype == torch.float32):
            out = torch.empty(*x.shape[:-1], self.out_features, dtype=out_dtype)
            return cpu_kernels.gemv(self._lib, self.weight, x.contiguous(), out, packed=self.packed)
        if self.packed:  # F.linear cannot read the packed layout: several rows (or other dtypes) take the C product
            return _packed_product(self._lib, self.weight, x, out_dtype)
        return F.linear(x, self.weight).to(out_dtype)


class Int8Linear(_KernelLinear):
    """Weight-only int8: int8 rows with one float32 scale each; activations and outputs keep the model dtype.

    One-row products (decode) use the C kernel when it is available, else aten's _weight_int8pack_mm;
    several bf16 rows (prefill, compute-bound) use the packed C product where the weights are packed, else
    the matrix dequantized to the activation dtype and F.linear.
    """

    def __init__(self, out_features: int, in_features: int, lib=None, device: torch.device | str = "cpu",
                 normalize_rows: bool = False):
        super().__init__()
        self.register_buffer("qweight", hugepages.empty((out_features, in_features), torch.int8, device))
        self.register_buffer("scales", torch.empty(out_features, dtype=torch.float32, device=device))
        self.in_features, self.out_features = in_features, out_features
        self.normalize_rows = normalize_rows  # NormHead: rows L2-normalised as they are quantized
        self._lib = lib if self.in_features <= cpu_kernels.MAX_INT8_K else None
        #: qweight packed by 16-row tiles for the C kernels (scripts/gemv_layouts.py: ~1.4x the read rate at
        #: high bandwidth), else row-major
        self.packed = bool(self._lib is not None and self._lib.int8_packing() and out_features % TILE == 0
                           and in_features % 2 == 0)

    @classmethod
    def from_weight(cls, weight: torch.Tensor, lib=None) -> "Int8Linear":
        layer = cls(weight.shape[0], weight.shape[1], lib, weight.device)
        layer.copy_rows(0, weight)
        return layer

    # The loader's target protocol (inference.weight_copy.copy_into): the checkpoint matrix's shape, and its
    # rows arriving block by block, so a bf16 copy of the matrix never exists.
    @property
    def shape(self) -> torch.Size:
        return torch.Size((self.out_features, self.in_features))

    def copy_rows(self, start: int, rows: torch.Tensor) -> None:
        quantize_into(self._store_rows, self.scales, start, rows, self.normalize_rows)

    def _store_rows(self, start: int, q: torch.Tensor) -> None:
        """qweight rows start .. start + len(q) = q (row-major int8), packed when the layer is."""
        end = start + q.shape[0]
        if not self.packed:
            self.qweight[start:end] = q
            return
        tiles = packed_view(self.qweight)
        first, last = -(-start // TILE) * TILE, end // TILE * TILE  # the whole tiles among the rows: [first, last)
        if first < last:
            whole = q[first - start:last - start]
            tiles[first // TILE:last // TILE] = whole.view(-1, TILE, q.shape[1] // 2, 2).transpose(1, 2)
        else:
            first = last = end
        for row in (*range(start, first), *range(last, end)):  # rows of tiles that other blocks share
            tiles[row // TILE, :, row % TILE] = q[row - start].view(-1, 2)

    def row_major(self) -> torch.Tensor:
        """qweight as row-major int8 rows (a copy when packed)."""
        if not self.packed:
            return self.qweight
        return packed_view(self.qweight).transpose(1, 2).reshape(self.out_features, self.in_features)

    def dequantized(self, dtype: torch.dtype) -> torch.Tensor:
        if self._lib is not None and dtype == torch.bfloat16 and self.qweight.device.type == "cpu":  # one pass
            return cpu_kernels.dequantize_int8_bf16(self._lib, self.qweight, self.scales, self.packed)
        return (self.row_major().to(torch.float32) * self.scales[:, None]).to(dtype)

    def forward(self, x: torch.Tensor, out_dtype: torch.dtype | None = None) -> torch.Tensor:
        if _single_row(x):
            if self._lib is not None and x.dtype in (torch.bfloat16, torch.float32):
                out = torch.empty(*x.shape[:-1], self.out_features, dtype=out_dtype or x.dtype)
                xb = x.to(torch.bfloat16).contiguous()  # the kernel carries it as int16 with one scale
                return cpu_kernels.gemv_int8(self._lib, self.qweight, self.scales, xb, out, self.packed)
            if x.dtype in (torch.bfloat16, torch.float16) and self.in_features % 32 == 0:  # aten needs K % 32 == 0
                y = torch.ops.aten._weight_int8pack_mm(x.reshape(1, -1).contiguous(), self.qweight,
                                                       self.scales.to(x.dtype))
                return y.reshape(*x.shape[:-1], self.out_features).to(out_dtype or x.dtype)
        if self.packed and x.dtype == torch.bfloat16 and self._lib.bf16_packing():  # no dequantized copy
            return _packed_product(self._lib, self.qweight, x, out_dtype or x.dtype, self.scales)
        return F.linear(x, self.dequantized(x.dtype)).to(out_dtype or x.dtype)


def prepare_int8(model: nn.Module, device: torch.device, normalized: nn.Module | None = None) -> None:
    """Before loading: every bias-free linear layer whose weight no other module shares becomes an empty
    Int8Linear that quantizes its rows as the loader streams them in (the bf16 matrices never take memory).

    `normalized` (Baichuan2's NormHead lm_head) gets its rows L2-normalised first. A weight tied to the
    embedding stays for optimize_linears, which quantizes it from the loaded embedding.
    """
    lib = cpu_kernels.load() if device.type == "cpu" else None
    uses = _weight_uses(model)
    for parent, name, linear in list(_linears(model)):
        if uses[id(linear.weight)] == 1:
            setattr(parent, name, Int8Linear(linear.out_features, linear.in_features, lib, device,
                                             normalize_rows=linear is normalized))


def _weight_uses(model: nn.Module) -> dict[int, int]:
    """How many modules hold each parameter (a tied lm_head shares the embedding's)."""
    uses: dict[int, int] = {}
    for _, param in model.named_parameters(remove_duplicate=False):
        uses[id(param)] = uses.get(id(param), 0) + 1
    return uses


def _linears(model: nn.Module):
    for parent in model.modules():
        for name, child in parent.named_children():
            if type(child) is nn.Linear and child.bias is None:
                yield parent, name, child


def optimize_linears(model: nn.Module, dtype: torch.dtype, device: torch.device, quantize: str | None = None,
                     check_cancel=None) -> dict:
    """Swap the bias-free nn.Linear layers for CpuLinear (bf16 or float32 on a CPU) or Int8Linear (quantize="int8").

    Layers are converted one at a time and each bf16 matrix is released as soon as its int8 copy exists,
    so quantizing never holds a second copy of the whole model (a tied lm_head gets its own int8 copy; the
    embedding keeps the model dtype). Returns what was done, for the UI and the benchmark. check_cancel(),
    when given, is called before each layer (it raises to cancel a load).
    """
    lib = cpu_kernels.load() if device.type == "cpu" else None
    targets = [(parent, name) for parent, name, _ in _linears(model)]  # no references to the layers kept
    uses = _weight_uses(model)
    with torch.no_grad():
        for parent, name in targets:
            if check_cancel is not None:
                check_cancel()
            linear = getattr(parent, name)
            if quantize == "int8":
                new = Int8Linear.from_weight(linear.weight, lib)
            elif lib is not None and dtype in (torch.bfloat16, torch.float32):
                new = CpuLinear(linear, lib, pack=uses[id(linear.weight)] == 1)  # a shared weight stays row-major
            else:
                continue
            setattr(parent, name, new)
            del linear, new  # the bf16 matrix is freed here unless another module still holds it
    usable = lib is not None and hasattr(model, "use_attention_kernels")
    attention = usable and dtype in (torch.bfloat16, torch.float32)
    if attention:
        model.use_attention_kernels(functools.partial(_attend, lib), functools.partial(cpu_kernels.attn_prefill, lib))
    if attention and dtype == torch.bfloat16:
        for module in model.modules():  # RMSNorm: one call instead of eight small torch ops per step
            if hasattr(module, "kernel") and hasattr(module, "eps"):
                module.kernel = functools.partial(cpu_kernels.rmsnorm_bf16, lib)
    kernel_layers = sum(isinstance(m, (CpuLinear, Int8Linear)) for m in model.modules())
    return {"layers": kernel_layers, "quantize": quantize, "cpu_kernels": lib is not None,
            "decode_attention": attention}  # prefill attention goes with it


def _attend(lib, q, k_cache, v_cache, length, *, scale, slopes):
    """One-position attention over the KV cache with the C kernel (SDPA's CPU path is ~10x slower here)."""
    return cpu_kernels.attn_decode(lib, q, k_cache, v_cache, length, scale, slopes, torch.empty_like(q))
