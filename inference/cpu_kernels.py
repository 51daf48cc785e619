"""Optional CPU matrix-vector kernels (bf16 and int8 weights) compiled once with the system C compiler.

Decode on a CPU multiplies one activation row by every weight matrix: it is a pure memory stream, and
stock torch's bf16 and int8-weight paths read weights well below DRAM bandwidth. These ~100 lines of C
(OpenMP, AVX-512/AVX-512-BF16 when the CPU has them, chosen by -march=native) stream them at full speed.
They are built on first use into the user cache folder and loaded with ctypes; without a C compiler, or
with BAICHUAN_NO_CPU_KERNELS=1, `load()` returns None and callers keep torch's own kernels.
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

SOURCE = r"""
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <math.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* Work (weights or cache elements) below which a call stays on one thread. Rows go to threads in
   dynamic chunks, so a thread preempted by another program does not hold the others at the barrier for
   long; small calls skip the team altogether: on a busy machine every parallel region risks such a wait. */
#define PARALLEL_MIN (1 << 20)

static inline float bf16_to_f32(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }
static inline uint16_t f32_to_bf16(float f) {
    uint32_t u; memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);  /* NaN stays NaN */
    u += 0x7fffu + ((u >> 16) & 1u);                                             /* round to nearest even */
    return (uint16_t)(u >> 16);
}
static inline void store(void* y, int out_f32, int64_t n, float v) {
    if (out_f32) ((float*)y)[n] = v; else ((uint16_t*)y)[n] = f32_to_bf16(v);
}

/* 1 when this build has a vector path (AVX-512 or AVX2); callers use torch's kernels otherwise. */
int kernels_vectorised(void) {
#if defined(__AVX512F__) && defined(__AVX512BW__) || defined(__AVX2__) && defined(__FMA__)
    return 1;
#else
    return 0;
#endif
}

/* Dot product of one bf16 weight row with bf16 x. Rows are walked one at a time, so each thread reads
   one contiguous stretch of the matrix: the access pattern hardware prefetchers stream best. */
static inline float dot_bf16(const uint16_t* w, const uint16_t* x, const float* xf, int64_t K) {
    int64_t k = 0;
    float s = 0.0f;
#if defined(__AVX512BF16__)
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (; k + 128 <= K; k += 128) {
        a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_loadu_si512(w + k), (__m512bh)_mm512_loadu_si512(x + k));
        a1 = _mm512_dpbf16_ps(a1, (__m512bh)_mm512_loadu_si512(w + k + 32), (__m512bh)_mm512_loadu_si512(x + k + 32));
        a2 = _mm512_dpbf16_ps(a2, (__m512bh)_mm512_loadu_si512(w + k + 64), (__m512bh)_mm512_loadu_si512(x + k + 64));
        a3 = _mm512_dpbf16_ps(a3, (__m512bh)_mm512_loadu_si512(w + k + 96), (__m512bh)_mm512_loadu_si512(x + k + 96));
    }
    for (; k + 32 <= K; k += 32)
        a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_loadu_si512(w + k), (__m512bh)_mm512_loadu_si512(x + k));
    s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
#elif defined(__AVX512F__)
#define BF(p) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)(p))), 16))
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
    for (; k + 32 <= K; k += 32) {
        a0 = _mm512_fmadd_ps(BF(w + k), _mm512_loadu_ps(xf + k), a0);
        a1 = _mm512_fmadd_ps(BF(w + k + 16), _mm512_loadu_ps(xf + k + 16), a1);
    }
    s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
#undef BF
#elif defined(__AVX2__) && defined(__FMA__)
#define BF(p) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)(p))), 16))
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    for (; k + 16 <= K; k += 16) {
        a0 = _mm256_fmadd_ps(BF(w + k), _mm256_loadu_ps(xf + k), a0);
        a1 = _mm256_fmadd_ps(BF(w + k + 8), _mm256_loadu_ps(xf + k + 8), a1);
    }
    float t[8];
    _mm256_storeu_ps(t, _mm256_add_ps(a0, a1));
    s = t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
#undef BF
#endif
    for (; k < K; k++) s += bf16_to_f32(w[k]) * xf[k];
    return s;
}

/* y[n] = sum_k W[n,k] x[k] for bf16 W (N x K, row-major) and bf16 x; y bf16 or f32. */
void gemv_bf16(const uint16_t* W, const uint16_t* x, void* y, int64_t N, int64_t K, int out_f32) {
    float* xf = (float*)malloc(sizeof(float) * (size_t)(K + 16));
    for (int64_t k = 0; k < K; k++) xf[k] = bf16_to_f32(x[k]);
    #pragma omp parallel for schedule(dynamic, 256) if (N * K >= PARALLEL_MIN)
    for (int64_t n = 0; n < N; n++) store(y, out_f32, n, dot_bf16(W + n * K, x, xf, K));
    free(xf);
}

/* Dot product of one int8 weight row with x held as int16 (exact integer arithmetic, int32 sums). */
static inline int64_t dot_int8(const int8_t* q, const int16_t* x, int64_t K) {
    int64_t k = 0, s = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__)
    __m512i a0 = _mm512_setzero_si512(), a1 = a0;
    for (; k + 64 <= K; k += 64) {
#if defined(__AVX512VNNI__)
        a0 = _mm512_dpwssd_epi32(a0, _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i*)(q + k))),
                                 _mm512_loadu_si512(x + k));
        a1 = _mm512_dpwssd_epi32(a1, _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i*)(q + k + 32))),
                                 _mm512_loadu_si512(x + k + 32));
#else
        a0 = _mm512_add_epi32(a0, _mm512_madd_epi16(_mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i*)(q + k))),
                                                    _mm512_loadu_si512(x + k)));
        a1 = _mm512_add_epi32(a1, _mm512_madd_epi16(_mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i*)(q + k + 32))),
                                                    _mm512_loadu_si512(x + k + 32)));
#endif
    }
    s = _mm512_reduce_add_epi32(_mm512_add_epi32(a0, a1));
#elif defined(__AVX2__)
    __m256i a0 = _mm256_setzero_si256();
    for (; k + 16 <= K; k += 16)
        a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)(q + k))),
                                                    _mm256_loadu_si256((const __m256i*)(x + k))));
    int32_t t[8];
    _mm256_storeu_si256((__m256i*)t, a0);
    s = (int64_t)t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
#endif
    for (; k < K; k++) s += (int32_t)q[k] * x[k];
    return s;
}

/* y[n] = scale[n] * sum_k Q[n,k] x[k] for int8 Q (N x K, row-major), f32 scales and bf16 x; y bf16 or f32.
   x is carried as int16 with one scale (max|x| -> 16383): 14 bits for the largest entries, more than
   bf16's 8; int32 sums cannot overflow for K <= 16384 (2 * 127 * 16383 * K / 32 < 2^31). */
void gemv_int8(const int8_t* Q, const float* scale, const uint16_t* x, void* y, int64_t N, int64_t K, int out_f32) {
    int16_t* xq = (int16_t*)malloc(sizeof(int16_t) * (size_t)(K + 64));
    float amax = 0.0f;
    for (int64_t k = 0; k < K; k++) { float v = fabsf(bf16_to_f32(x[k])); if (v > amax) amax = v; }
    float xs = amax > 0.0f ? amax / 16383.0f : 1.0f;
    for (int64_t k = 0; k < K; k++) xq[k] = (int16_t)lrintf(bf16_to_f32(x[k]) / xs);
    #pragma omp parallel for schedule(dynamic, 256) if (N * K >= PARALLEL_MIN)
    for (int64_t n = 0; n < N; n++) store(y, out_f32, n, (float)dot_int8(Q + n * K, xq, K) * xs * scale[n]);
    free(xq);
}

/* Attention of one new position (decode) over a bf16 KV cache, per head:
   out[h] = softmax(scale * K[g] q[h] + slope[h] * (j - (L-1))) V[g],  g = h / (H / KVH).
   q, out: [H, D] bf16; k, v: cache [KVH, S, D] bf16 (S = allocated positions, L used); slopes: [H] or NULL. */
void attn_decode_bf16(const uint16_t* q, const uint16_t* kc, const uint16_t* vc, uint16_t* out,
                      int64_t H, int64_t KVH, int64_t S, int64_t L, int64_t D, float scale, const float* slopes) {
    int64_t group = H / KVH;
    #pragma omp parallel if (H * L * D >= PARALLEL_MIN / 4)
    {
        float* p = (float*)malloc(sizeof(float) * (size_t)(L + 16));
        float* qf = (float*)malloc(sizeof(float) * (size_t)(D + 16));
        float* acc = (float*)malloc(sizeof(float) * (size_t)(D + 16));
        #pragma omp for schedule(dynamic, 1)
        for (int64_t h = 0; h < H; h++) {
            const uint16_t* qh = q + h * D;
            const uint16_t* kh = kc + (h / group) * S * D;
            const uint16_t* vh = vc + (h / group) * S * D;
            for (int64_t d = 0; d < D; d++) qf[d] = bf16_to_f32(qh[d]);
            float m = -3.0e38f, slope = slopes ? slopes[h] : 0.0f;
            for (int64_t j = 0; j < L; j++) {
                float s = dot_bf16(kh + j * D, qh, qf, D) * scale + slope * (float)(j - (L - 1));
                p[j] = s;
                if (s > m) m = s;
            }
            float sum = 0.0f;
            #pragma omp simd reduction(+:sum)
            for (int64_t j = 0; j < L; j++) { float e = expf(p[j] - m); p[j] = e; sum += e; }
            for (int64_t d = 0; d < D; d++) acc[d] = 0.0f;
            int64_t d0 = 0;
#if defined(__AVX512F__)
            if (D % 16 == 0 && D <= 256) {
                __m512 a[16];
                int64_t nv = D / 16;
                for (int64_t i = 0; i < nv; i++) a[i] = _mm512_setzero_ps();
                for (int64_t j = 0; j < L; j++) {
                    __m512 pj = _mm512_set1_ps(p[j]);
                    const uint16_t* vj = vh + j * D;
                    for (int64_t i = 0; i < nv; i++) {
                        __m512 vv = _mm512_castsi512_ps(_mm512_slli_epi32(
                            _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)(vj + 16 * i))), 16));
                        a[i] = _mm512_fmadd_ps(pj, vv, a[i]);
                    }
                }
                for (int64_t i = 0; i < nv; i++) _mm512_storeu_ps(acc + 16 * i, a[i]);
                d0 = D;
            }
#endif
            if (d0 == 0)
                for (int64_t j = 0; j < L; j++)
                    for (int64_t d = 0; d < D; d++) acc[d] += p[j] * bf16_to_f32(vh[j * D + d]);
            float inv = 1.0f / sum;
            for (int64_t d = 0; d < D; d++) out[h * D + d] = f32_to_bf16(acc[d] * inv);
        }
        free(p); free(qf); free(acc);
    }
}

/* HF's LlamaRMSNorm in bf16, per row: out = bf16(w * bf16(x * 1/sqrt(mean(x^2) + eps))), sums in f32. */
void rmsnorm_bf16(const uint16_t* x, const uint16_t* w, uint16_t* out, int64_t rows, int64_t n, float eps) {
    #pragma omp parallel for schedule(static) if (rows > 8)
    for (int64_t r = 0; r < rows; r++) {
        const uint16_t* xr = x + r * n;
        uint16_t* o = out + r * n;
        float ss = 0.0f;
        #pragma omp simd reduction(+:ss)
        for (int64_t i = 0; i < n; i++) { float v = bf16_to_f32(xr[i]); ss += v * v; }
        float inv = 1.0f / sqrtf(ss / (float)n + eps);
        for (int64_t i = 0; i < n; i++)
            o[i] = f32_to_bf16(bf16_to_f32(w[i]) * bf16_to_f32(f32_to_bf16(bf16_to_f32(xr[i]) * inv)));
    }
}
"""

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
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src, out = Path(tmp) / "kernels.c", Path(tmp) / target.name
        src.write_text(SOURCE)
        subprocess.run([compiler, *CFLAGS, str(src), "-o", str(out), "-lm"], check=True, capture_output=True,
                       timeout=120)
        os.replace(out, target)  # atomic: a concurrent process sees the whole library or none


def load():
    """The compiled kernel library (ctypes), or None where it cannot be built or is switched off."""
    if os.environ.get("BAICHUAN_NO_CPU_KERNELS") or sys.platform != "linux":
        return None
    key = hashlib.sha256((SOURCE + " ".join(CFLAGS) + _cpu_signature() + torch.__version__).encode()).hexdigest()[:16]
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
            lib.gemv_bf16.argtypes = [ptr, ptr, ptr, i64, i64, ctypes.c_int]
            lib.gemv_int8.argtypes = [ptr, ptr, ptr, ptr, i64, i64, ctypes.c_int]
            f32 = ctypes.c_float
            lib.attn_decode_bf16.argtypes = [ptr, ptr, ptr, ptr, i64, i64, i64, i64, i64, f32, ptr]
            lib.rmsnorm_bf16.argtypes = [ptr, ptr, ptr, i64, i64, f32]
            lib.rmsnorm_bf16.restype = None
            lib.gemv_bf16.restype = lib.gemv_int8.restype = lib.attn_decode_bf16.restype = None
            if not lib.kernels_vectorised():
                lib = None  # a scalar build would be slower than torch's own kernels
        except (OSError, subprocess.SubprocessError, AttributeError):
            lib = None
            target.unlink(missing_ok=True)  # a broken build is retried next time, not kept
        _loaded[key] = lib
        return lib


def gemv_bf16(lib, weight: torch.Tensor, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out[N] (bf16 or f32) = weight[N, K] (bf16, contiguous) @ x[K] (bf16, contiguous)."""
    n, k = weight.shape
    lib.gemv_bf16(weight.data_ptr(), x.data_ptr(), out.data_ptr(), n, k, int(out.dtype == torch.float32))
    return out


def gemv_int8(lib, qweight: torch.Tensor, scales: torch.Tensor, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out[N] = scales[N] (f32) * (qweight[N, K] (int8) @ x[K] (bf16))."""
    n, k = qweight.shape
    lib.gemv_int8(qweight.data_ptr(), scales.data_ptr(), x.data_ptr(), out.data_ptr(), n, k,
                  int(out.dtype == torch.float32))
    return out


def attn_decode_bf16(lib, q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, length: int,
                     scale: float, slopes: torch.Tensor | None, out: torch.Tensor) -> torch.Tensor:
    """out[H, D] = attention of q[H, D] over the first `length` positions of k/v_cache[KVH, S, D] (all bf16).

    slopes (float32 [H]) adds ALiBi's slope * (j - (length - 1)) to the scores; None for RoPE models.
    """
    heads, dim = q.shape
    kv_heads, positions, _ = k_cache.shape
    lib.attn_decode_bf16(q.data_ptr(), k_cache.data_ptr(), v_cache.data_ptr(), out.data_ptr(), heads, kv_heads,
                         positions, length, dim, scale, None if slopes is None else slopes.data_ptr())
    return out


def rmsnorm_bf16(lib, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm of each row of a contiguous bf16 x by a bf16 weight, as HF's LlamaRMSNorm computes it."""
    out = torch.empty_like(x)
    n = x.shape[-1]
    lib.rmsnorm_bf16(x.data_ptr(), weight.data_ptr(), out.data_ptr(), x.numel() // n, n, eps)
    return out
