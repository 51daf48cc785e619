/* The CPU kernels torch calls one at a time: bf16, float32 and int8 matrix-vector products, decode attention,
   RMSNorm. */
#include "common.h"

/* 1 when this build has a vector path (AVX-512 or AVX2); callers use torch's kernels otherwise. */
int kernels_vectorised(void) {
#if defined(__AVX512F__) && defined(__AVX512BW__) || defined(__AVX2__) && defined(__FMA__)
    return 1;
#else
    return 0;
#endif
}

/* 1 when int8 matrices are best packed by tiles of 16 rows (tile_int8 has a vector path). */
int int8_packing(void) {
#if defined(__AVX512F__) && defined(__AVX512BW__)
    return 1;
#else
    return 0;
#endif
}

/* Every entry point that allocates returns 0, or -1 when an allocation failed (nothing computed): the
   Python side raises MemoryError, which the engine reports as out of memory. */

/* y[n] = sum_k W[n,k] x[k] for bf16 W (N x K, row-major or packed by 16-row tiles) and bf16 x; y bf16 or f32. */
int gemv_bf16(const uint16_t* W, const uint16_t* x, void* y, int64_t N, int64_t K, int out_f32, int packed) {
    if (packed) {
        #pragma omp parallel for schedule(dynamic, 16) if (N * K >= PARALLEL_MIN)
        for (int64_t t = 0; t < N / TILE; t++) {
            float sums[TILE];
            tile_bf16(W, t, K, x, sums);
            for (int l = 0; l < TILE; l++) store(y, out_f32, t * TILE + l, sums[l]);
        }
        return 0;
    }
    float* xf = (float*)malloc(sizeof(float) * (size_t)(K + 16));
    if (!xf) return -1;
    for (int64_t k = 0; k < K; k++) xf[k] = bf16_to_f32(x[k]);
    #pragma omp parallel for schedule(dynamic, 256) if (N * K >= PARALLEL_MIN)
    for (int64_t n = 0; n < N; n++) store(y, out_f32, n, dot_bf16(W + n * K, x, xf, K));
    free(xf);
    return 0;
}

/* y[n] = sum_k W[n,k] x[k] for float32 W (N x K, row-major), x and y. */
int gemv_f32(const float* W, const float* x, float* y, int64_t N, int64_t K) {
    #pragma omp parallel for schedule(dynamic, 256) if (N * K >= PARALLEL_MIN / 2)
    for (int64_t n = 0; n < N; n++) y[n] = dot_f32(W + n * K, x, K);
    return 0;
}

/* y[n] = scale[n] * sum_k Q[n,k] x[k] for int8 Q (N x K, row-major or packed: see tile_int8), f32 scales and
   bf16 x; y bf16 or f32. */
int gemv_int8(const int8_t* Q, const float* scale, const uint16_t* x, void* y, int64_t N, int64_t K, int out_f32,
              int packed) {
    int16_t* xq = (int16_t*)malloc(sizeof(int16_t) * (size_t)(K + 64));
    if (!xq) return -1;
    float xs = quantize_activation(x, K, xq);
    if (packed) {
        #pragma omp parallel for schedule(dynamic, 16) if (N * K >= PARALLEL_MIN)
        for (int64_t t = 0; t < N / TILE; t++) {
            int32_t sums[TILE];
            tile_int8(Q, t, K, xq, sums);
            for (int l = 0; l < TILE; l++) store(y, out_f32, t * TILE + l, (float)sums[l] * xs * scale[t * TILE + l]);
        }
    } else {
        #pragma omp parallel for schedule(dynamic, 256) if (N * K >= PARALLEL_MIN)
        for (int64_t n = 0; n < N; n++) store(y, out_f32, n, (float)dot_int8(Q + n * K, xq, K) * xs * scale[n]);
    }
    free(xq);
    return 0;
}

/* Attention of one new position (decode) over a KV cache, per head:
   out[h] = softmax(scale * K[g] q[h] + slope[h] * (j - (L-1))) V[g],  g = h / (H / KVH).
   q, out: [H, D]; k, v: cache [KVH, S, D] (S = allocated positions, L used); all bf16, or all float32 with f32
   set; slopes: [H] or NULL. */
int attn_decode(const void* q, const void* kc, const void* vc, void* out, int64_t H, int64_t KVH, int64_t S,
                int64_t L, int64_t D, float scale, const float* slopes, int f32) {
    int64_t group = H / KVH;
    int failed = 0;
    #pragma omp parallel if (H * L * D >= PARALLEL_MIN / 4)
    {
        HeadScratch t;
        if (!head_scratch_alloc(&t, L, D)) {
            #pragma omp atomic write
            failed = 1;
        }
        #pragma omp barrier
        if (!failed) {
            #pragma omp for schedule(dynamic, 1)
            for (int64_t h = 0; h < H; h++)
                attend_head(element(q, h * D, f32), element(kc, (h / group) * S * D, f32),
                            element(vc, (h / group) * S * D, f32), L, D, scale, slopes ? slopes[h] : 0.0f,
                            t.p, t.qf, t.acc, (void*)element(out, h * D, f32), f32);
        }
        head_scratch_free(&t);
    }
    return failed ? -1 : 0;
}

/* RMSNorm of each row of x (rows x n, bf16) by the bf16 weight w, as HF's LlamaRMSNorm computes it. */
void rmsnorm_bf16(const uint16_t* x, const uint16_t* w, uint16_t* out, int64_t rows, int64_t n, float eps) {
    #pragma omp parallel for schedule(static) if (rows > 8)
    for (int64_t r = 0; r < rows; r++) rmsnorm_row(x + r * n, w, out + r * n, n, eps, 0);
}

/* One int8 row as bf16 with its scale: w[k] = bf16(q[k] * s). */
static void dequantize_row(const int8_t* q, float s, uint16_t* w, int64_t K) {
    int64_t k = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__)
    const __m512 vs = _mm512_set1_ps(s);
    for (; k + 16 <= K; k += 16) {
        __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(q + k)))), vs);
#if defined(__AVX512BF16__)
        _mm256_storeu_si256((__m256i*)(w + k), (__m256i)_mm512_cvtneps_pbh(v));  /* round to nearest even */
#else
        float lane[16];
        _mm512_storeu_ps(lane, v);
        for (int c = 0; c < 16; c++) w[k + c] = f32_to_bf16(lane[c]);
#endif
    }
#endif
    for (; k < K; k++) w[k] = f32_to_bf16((float)q[k] * s);
}

/* W[n, k] = bf16(Q[n, k] * scale[n]) for int8 Q (N x K, row-major or packed): the matrix a several-row
   (prefill) product uses. A packed tile is first put back into 16 row-major rows (per-thread scratch). */
int dequantize_int8_bf16(const int8_t* Q, const float* scale, uint16_t* W, int64_t N, int64_t K, int packed) {
    int failed = 0;
    #pragma omp parallel if (N * K >= PARALLEL_MIN)
    {
        int8_t* rows = packed ? (int8_t*)malloc((size_t)(TILE * K)) : NULL;
        if (packed && !rows) {
            #pragma omp atomic write
            failed = 1;
        }
        #pragma omp barrier
        if (!failed && packed) {
            #pragma omp for schedule(static)
            for (int64_t t = 0; t < N / TILE; t++) {
                const uint16_t* pairs = (const uint16_t*)(Q + t * TILE * K);  /* pairs[e * TILE + l]: row l's pair e */
                for (int64_t e = 0; e < K / 2; e++)
                    for (int l = 0; l < TILE; l++) memcpy(rows + l * K + 2 * e, pairs + e * TILE + l, 2);
                for (int l = 0; l < TILE; l++)
                    dequantize_row(rows + l * K, scale[t * TILE + l], W + (t * TILE + l) * K, K);
            }
        } else if (!failed) {
            #pragma omp for schedule(static)
            for (int64_t n = 0; n < N; n++) dequantize_row(Q + n * K, scale[n], W + n * K, K);
        }
        free(rows);
    }
    return failed ? -1 : 0;
}
