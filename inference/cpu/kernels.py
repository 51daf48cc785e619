"""Optional CPU kernels (bf16, float32 and int8 weights) compiled once with the system C compiler, loaded with ctypes.

Decode on a CPU multiplies one activation row by every weight matrix: it is a pure memory stream, and
stock torch's bf16 and int8-weight paths read weights well below DRAM bandwidth. The C in inference/cpu/csrc
(OpenMP, AVX-512/AVX-512-BF16 when the CPU has them, chosen by -march=native) streams them at full speed:
matrix-vector products, decode attention and RMSNorm for torch to call one at a time, and a whole decode
step in one call (inference.cpu.fused). It is built on first use into the user cache folder; without a
C compiler, or with BAICHUAN_CHAT_NO_CPU_KERNELS=1 (old name BAICHUAN_NO_CPU_KERNELS), `load()` returns None
and callers keep torch's own kernels.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import torch

from ..env import get_env

#: The C sources (inference/cpu/csrc), compiled together into one library.
SOURCE_DIR = Path(__file__).resolve().parent / "csrc"
SOURCE_FILES = ("common.h", "int4.h", "kernels.c", "decode_step.c", "prefill_attention.c", "attention_rows.c", "packed.c", "int4.c")

#: Batch invariance: a position's logits and K/V are the same bits whether it is computed in a prefill of any
#: length, after a cached prefix, or as one decode step (same seed, same answer). The prefill products,
#: attention, RMSNorm and gated unit then run each row with the decode step's own code and summation order:
#: int8 prefill quantizes each activation row as decode does, float32 prefill leaves oneDNN for the C
#: product, attention leaves the blocked kernel for attend_head per row. False (read at each call) restores
#: the faster, order-varying prefill kernels (BAICHUAN_CHAT_FAST_PREFILL=1 chooses it at start: prefill
#: about 1.2x faster on the bench shape at 512-2048 tokens); engine.kernels["batch_invariant"] says what load chose.
BATCH_INVARIANT = get_env("BAICHUAN_CHAT_FAST_PREFILL") != "1"


#: gemv_int8 keeps int32 sums exact up to this many columns.
MAX_INT8_K = 16384

_lock = threading.Lock()
_loaded: dict[str, object] = {}


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "baichuan-chat" / "kernels"


def _cpu_signature() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        return next((line for line in text.splitlines() if line.startswith("flags")), "")
    except OSError:
        return ""


# Reassociation lets the compiler vectorise the reductions. Not -ffast-math: with it gcc links crtfastmath.o,
# whose constructor sets flush-to-zero/denormals-are-zero for the whole process when the library loads.
CFLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fassociative-math",
          "-fno-signed-zeros", "-fopenmp", "-shared", "-fPIC")


def _build(target: Path) -> None:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        raise OSError("no C compiler found")
    target.parent.mkdir(parents=True, exist_ok=True)
    sources = [str(SOURCE_DIR / name) for name in SOURCE_FILES if name.endswith(".c")]
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        out = Path(tmp) / target.name
        subprocess.run([compiler, *CFLAGS, f"-I{SOURCE_DIR}", *sources, "-o", str(out), "-lm"], check=True,
                       capture_output=True, timeout=180)
        os.replace(out, target)  # atomic: a concurrent process sees the whole library or none


def load():
    """The compiled kernel library (ctypes), or None where it cannot be built or is switched off."""
    if get_env("BAICHUAN_CHAT_NO_CPU_KERNELS") or sys.platform != "linux":
        return None
    try:
        source = "".join((SOURCE_DIR / name).read_text() for name in SOURCE_FILES)
    except OSError:
        return None
    key = hashlib.sha256((source + " ".join(CFLAGS) + _cpu_signature() + torch.__version__).encode()).hexdigest()[:16]
    with _lock:
        if key in _loaded:
            return _loaded[key]
        target = _cache_dir() / f"kernels-{key}.so"
        lib = None
        try:
            if not target.is_file():
                _build(target)
            # torch has already loaded its OpenMP runtime (libgomp.so.1): the library shares that thread pool.
            lib = ctypes.CDLL(str(target))
            i64, ptr = ctypes.c_int64, ctypes.c_void_p
            lib.gemv_bf16.argtypes = [ptr, ptr, ptr, i64, i64, ctypes.c_int, ctypes.c_int]
            lib.pack_bf16.argtypes = [ptr, i64, i64]
            lib.gemm_packed.argtypes = [ptr, ptr, ptr, ptr, i64, i64, i64, ctypes.c_int]
            lib.gemv_f32.argtypes = [ptr, ptr, ptr, i64, i64]
            lib.gemv_int8.argtypes = [ptr, ptr, ptr, ptr, i64, i64, ctypes.c_int, ctypes.c_int]
            f32 = ctypes.c_float
            lib.attn_decode.argtypes = [ptr, ptr, ptr, ptr, i64, i64, i64, i64, i64, f32, ptr, ctypes.c_int]
            lib.rmsnorm_rows.argtypes = [ptr, ptr, ptr, i64, i64, f32, ctypes.c_int]
            lib.rmsnorm_rows.restype = None
            lib.gated_rows.argtypes = [ptr, ptr, ptr, i64, ctypes.c_int]
            lib.gated_rows.restype = None
            lib.gemm_int8_rows.argtypes = [ptr, ptr, ptr, ptr, i64, i64, i64, ctypes.c_int]
            lib.gemm_f32_rows.argtypes = [ptr, ptr, ptr, i64, i64, i64]
            lib.gemm_bf16_rows.argtypes = [ptr, ptr, ptr, i64, i64, i64, ctypes.c_int]
            lib.decode_step.argtypes = [ptr, i64, i64, ptr]
            lib.attn_prefill.argtypes = [ptr, ptr, ptr, ptr, i64, i64, i64, i64, i64, i64, f32, ptr, ctypes.c_int,
                                         ctypes.c_int]
            lib.dequantize_int8_bf16.argtypes = [ptr, ptr, ptr, i64, i64, ctypes.c_int]
            lib.gemv_int4.argtypes = [ptr, ptr, ptr, ptr, ptr, i64, i64, i64, ctypes.c_int]
            lib.gemm_int4.argtypes = [ptr, ptr, ptr, ptr, ptr, i64, i64, i64, i64, ctypes.c_int]
            lib.dequantize_int4_bf16.argtypes = [ptr, ptr, ptr, ptr, i64, i64, i64]
            # Every other entry point returns an int (ctypes' default restype): a flag, or for those that
            # allocate scratch memory 0, or -1 when that failed (see checked()).
            if not lib.kernels_vectorised():
                lib = None  # a scalar build would be slower than torch's own kernels
        except (OSError, subprocess.SubprocessError, AttributeError):
            lib = None
            target.unlink(missing_ok=True)  # a broken build is retried next time, not kept
        _loaded[key] = lib
        return lib


def checked(status: int) -> None:
    """A kernel's return status: -1 means its scratch allocation failed (nothing was computed)."""
    if status != 0:
        raise MemoryError("out of memory in the CPU kernels")


def gemv(lib, weight: torch.Tensor, x: torch.Tensor, out: torch.Tensor, packed: bool = False) -> torch.Tensor:
    """out[N] = weight[N, K] @ x[K] (both contiguous): bf16 weight (row-major or packed) and x with out bf16 or
    f32, or all float32."""
    n, k = weight.shape
    if weight.dtype == torch.float32:
        checked(lib.gemv_f32(weight.data_ptr(), x.data_ptr(), out.data_ptr(), n, k))
    else:
        checked(lib.gemv_bf16(weight.data_ptr(), x.data_ptr(), out.data_ptr(), n, k, int(out.dtype == torch.float32),
                              int(packed)))
    return out


def pack_bf16(lib, weight: torch.Tensor) -> None:
    """Pack a contiguous bf16 [N, K] matrix (N % 16 == 0, K even) in place by 16-row tiles (csrc/packed.c)."""
    checked(lib.pack_bf16(weight.data_ptr(), *weight.shape))


def gemm_packed(lib, weight: torch.Tensor, x: torch.Tensor, out: torch.Tensor,
                scales: torch.Tensor | None = None) -> torch.Tensor:
    """out[M, N] (bf16 or f32) = x[M, K] (bf16, contiguous) @ weight.T for a packed weight [N, K]: bf16, or int8
    with per-row float32 scales (out = scales * the int8 products). Needs lib.bf16_packing()."""
    checked(lib.gemm_packed(weight.data_ptr(), None if scales is None else scales.data_ptr(), x.data_ptr(),
                            out.data_ptr(), x.shape[0], *weight.shape, int(out.dtype == torch.float32)))
    return out


def gemv_int8(lib, qweight: torch.Tensor, scales: torch.Tensor, x: torch.Tensor, out: torch.Tensor,
              packed: bool = False) -> torch.Tensor:
    """out[N] = scales[N] (f32) * (qweight[N, K] (int8, row-major or packed by 16-row tiles) @ x[K] (bf16))."""
    n, k = qweight.shape
    checked(lib.gemv_int8(qweight.data_ptr(), scales.data_ptr(), x.data_ptr(), out.data_ptr(), n, k,
                          int(out.dtype == torch.float32), int(packed)))
    return out


def attn_decode(lib, q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, length: int,
                scale: float, slopes: torch.Tensor | None, out: torch.Tensor) -> torch.Tensor:
    """out[H, D] = attention of q[H, D] over the first `length` positions of k/v_cache[KVH, S, D].

    All bf16, or all float32. slopes (float32 [H]) adds ALiBi's slope * (j - (length - 1)) to the scores;
    None for RoPE models.
    """
    heads, dim = q.shape
    kv_heads, positions, _ = k_cache.shape
    checked(lib.attn_decode(q.data_ptr(), k_cache.data_ptr(), v_cache.data_ptr(), out.data_ptr(), heads, kv_heads,
                            positions, length, dim, scale, None if slopes is None else slopes.data_ptr(),
                            int(q.dtype == torch.float32)))
    return out


def dequantize_int8_bf16(lib, qweight: torch.Tensor, scales: torch.Tensor, packed: bool = False) -> torch.Tensor:
    """bf16(qweight[N, K] (int8, row-major or packed) * scales[N, None] (f32)), row-major, in one pass."""
    out = torch.empty(qweight.shape, dtype=torch.bfloat16)
    checked(lib.dequantize_int8_bf16(qweight.data_ptr(), scales.data_ptr(), out.data_ptr(), *qweight.shape,
                                     int(packed)))
    return out


def gemv_int4(lib, layer, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out[N] (bf16 or f32) = the packed int4 matrix of `layer` (inference.cpu.int4.Int4Linear) @ x[K] (bf16)."""
    checked(lib.gemv_int4(layer.qweight.data_ptr(), layer.scales.data_ptr(), layer.mins.data_ptr(), x.data_ptr(),
                          out.data_ptr(), layer.out_features, layer.in_features, layer.padded_in,
                          int(out.dtype == torch.float32)))
    return out


def gemm_int4(lib, layer, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out[M, N] (bf16 or f32) = x[M, K] (bf16, contiguous) @ the packed int4 matrix of `layer`.T, each row bitwise
    what gemv_int4 gives it (csrc/int4.c)."""
    checked(lib.gemm_int4(layer.qweight.data_ptr(), layer.scales.data_ptr(), layer.mins.data_ptr(), x.data_ptr(),
                          out.data_ptr(), x.shape[0], layer.out_features, layer.in_features, layer.padded_in,
                          int(out.dtype == torch.float32)))
    return out


def dequantize_int4_bf16(lib, layer) -> torch.Tensor:
    """The packed int4 matrix of `layer` as row-major bf16 [N, K] (d * q + m, rounded once), in one pass."""
    out = torch.empty(layer.out_features, layer.in_features, dtype=torch.bfloat16)
    checked(lib.dequantize_int4_bf16(layer.qweight.data_ptr(), layer.scales.data_ptr(), layer.mins.data_ptr(),
                                     out.data_ptr(), layer.out_features, layer.in_features, layer.padded_in))
    return out


def attn_prefill(lib, q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, start: int,
                 scale: float, slopes: torch.Tensor | None) -> torch.Tensor:
    """Causal attention of q[L, H, D] (positions start .. start+L-1, already in the cache) over
    k/v_cache[KVH, S, D]; all bf16 or all float32, returns [L, H, D]. slopes (float32 [H]): ALiBi biases."""
    length, heads, dim = q.shape
    kv_heads, positions, _ = k_cache.shape
    q = q.contiguous()
    out = torch.empty_like(q)
    checked(lib.attn_prefill(q.data_ptr(), k_cache.data_ptr(), v_cache.data_ptr(), out.data_ptr(), heads, kv_heads,
                             positions, start, length, dim, scale, None if slopes is None else slopes.data_ptr(),
                             int(q.dtype == torch.float32), int(BATCH_INVARIANT)))
    return out


def rmsnorm(lib, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm of each row of a contiguous x by a weight of its dtype (bf16 or float32), as HF's LlamaRMSNorm
    computes it, with the decode step's code."""
    out = torch.empty_like(x)
    n = x.shape[-1]
    lib.rmsnorm_rows(x.data_ptr(), weight.data_ptr(), out.data_ptr(), x.numel() // n, n, eps,
                     int(x.dtype == torch.float32))
    return out



def gated(lib, g: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """dtype(silu(g) * u) of two contiguous tensors of one dtype (bf16 or float32), the decode step's arithmetic."""
    out = torch.empty_like(g)
    lib.gated_rows(g.data_ptr(), u.data_ptr(), out.data_ptr(), g.numel(), int(g.dtype == torch.float32))
    return out


def gemm_int8_rows(lib, qweight: torch.Tensor, scales: torch.Tensor, x: torch.Tensor,
                   out: torch.Tensor) -> torch.Tensor:
    """out[M, N] (bf16 or f32) = each bf16 row of x[M, K] as gemv_int8 multiplies it (int16 with its own scale,
    exact integer sums) by a packed int8 qweight [N, K] with float32 row scales."""
    checked(lib.gemm_int8_rows(qweight.data_ptr(), scales.data_ptr(), x.data_ptr(), out.data_ptr(), x.shape[0],
                               *qweight.shape, int(out.dtype == torch.float32)))
    return out


def gemm_rows(lib, weight: torch.Tensor, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out[M, N] = x[M, K] @ weight[N, K].T for a row-major weight, each output as the one-row kernel (gemv,
    unpacked) sums it: all float32, or bf16 weight and x with out bf16 or f32; contiguous."""
    if weight.dtype == torch.float32:
        checked(lib.gemm_f32_rows(weight.data_ptr(), x.data_ptr(), out.data_ptr(), x.shape[0], *weight.shape))
    else:
        checked(lib.gemm_bf16_rows(weight.data_ptr(), x.data_ptr(), out.data_ptr(), x.shape[0], *weight.shape,
                                   int(out.dtype == torch.float32)))
    return out
