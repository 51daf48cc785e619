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

/* ---- The shared row operations (common.h): one definition each, never inlined, so the decode step, the
   one-op kernels and the prefill run the same instructions on a row and round it the same way. ---- */

/* One head of one-position attention over a cache of bf16 (or float32, f32 set) rows:
   out = softmax(scale * K q + slope * (j - (L-1))) V. q, out: [D]; k, v: [L, D] rows; p (L floats), qf and acc
   (D floats each): scratch. */
__attribute__((noinline)) void attend_head(const void* q, const void* k, const void* v, int64_t L, int64_t D,
                                           float scale, float slope, float* p, float* qf, float* acc, void* out,
                                           int f32) {
    if (attend_head_fast(q, k, v, L, D, scale, slope, p, acc, out, f32)) return;  /* attention_rows.c */
    for (int64_t d = 0; d < D; d++) qf[d] = load(q, d, f32);
    float m = -3.0e38f;
    for (int64_t j = 0; j < L; j++) {
        const void* kj = element(k, j * D, f32);
        float s = (f32 ? dot_f32((const float*)kj, qf, D) : dot_bf16((const uint16_t*)kj, (const uint16_t*)q, qf, D))
                  * scale + slope * (float)(j - (L - 1));
        p[j] = s;
        if (s > m) m = s;
    }
    float sum = exp_shift_sum(p, L, m);
    /* the vector layout (AVX-512, D % 16 == 0, D <= 256) is attend_head_fast's; this is every other case */
    for (int64_t d = 0; d < D; d++) acc[d] = 0.0f;
    for (int64_t j = 0; j < L; j++)
        for (int64_t d = 0; d < D; d++) acc[d] += p[j] * load(v, j * D + d, f32);
    float inv = 1.0f / sum;
    for (int64_t d = 0; d < D; d++) store(out, f32, d, acc[d] * inv);
}

/* HF's LlamaRMSNorm for one row: out = w * dtype(x * 1/sqrt(mean(x^2) + eps)), sums in f32; x, w and out are
   bf16 (each product rounded) or float32 (f32 set). */
__attribute__((noinline)) void rmsnorm_row(const void* x, const void* w, void* out, int64_t n, float eps, int f32) {
    float ss = 0.0f;
    #pragma omp simd reduction(+:ss)
    for (int64_t i = 0; i < n; i++) { float v = load(x, i, f32); ss += v * v; }
    float inv = 1.0f / sqrtf(ss / (float)n + eps);
    for (int64_t i = 0; i < n; i++) store(out, f32, i, load(w, i, f32) * round_to(load(x, i, f32) * inv, f32));
}

/* One row-major bf16 weight row times bf16 x (xf: x as float32): every unpacked bf16 product (decode, gemv_bf16,
   gemm_bf16_rows). */
__attribute__((noinline)) float dot_bf16_row(const uint16_t* w, const uint16_t* x, const float* xf, int64_t K) {
    return dot_bf16(w, x, xf, K);
}

/* One float32 weight row times float32 x (every float32 product: decode, gemv_f32, gemm_f32). */
__attribute__((noinline)) float dot_f32_row(const float* w, const float* x, int64_t K) { return dot_f32(w, x, K); }

/* The MLP's gated unit before its down projection: dtype(silu(g)) * u, with g and u as the model's dtype
   stores them (the result is rounded by whoever stores it). */
__attribute__((noinline)) float gated_unit(float g, float u, int f32) {
    float gr = round_to(g, f32);
    return round_to(gr / (1.0f + expf(-gr)), f32) * round_to(u, f32);
}

/* out[i] = dtype(silu(g[i]) * u[i]) for n elements (bf16, or float32 with f32 set): the prefill's gated unit,
   the decode step's arithmetic. */
void gated_rows(const void* g, const void* u, void* out, int64_t n, int f32) {
    #pragma omp parallel for schedule(static) if (n >= (1 << 16))
    for (int64_t i = 0; i < n; i++) store(out, f32, i, gated_unit(load(g, i, f32), load(u, i, f32), f32));
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
    for (int64_t n = 0; n < N; n++) store(y, out_f32, n, dot_bf16_row(W + n * K, x, xf, K));
    free(xf);
    return 0;
}

/* y[n] = sum_k W[n,k] x[k] for float32 W (N x K, row-major), x and y. */
int gemv_f32(const float* W, const float* x, float* y, int64_t N, int64_t K) {
    #pragma omp parallel for schedule(dynamic, 256) if (N * K >= PARALLEL_MIN / 2)
    for (int64_t n = 0; n < N; n++) y[n] = dot_f32_row(W + n * K, x, K);
    return 0;
}

/* Y[m, n] = sum_k W[n,k] X[m,k] for row-major bf16 W (N x K) and X (M x K), Y (M x N) bf16 or f32: each output
   is dot_bf16_row, as gemv_bf16 (unpacked) and the decode step compute it. Blocks of 16 weight rows x 32
   activation rows. 0, or -1 when X's float32 copy could not be allocated. */
int gemm_bf16_rows(const uint16_t* W, const uint16_t* X, void* Y, int64_t M, int64_t N, int64_t K, int out_f32) {
    const int64_t NB = 16, MB32 = 32, nblocks = (N + NB - 1) / NB, mblocks = (M + MB32 - 1) / MB32;
    float* xf = (float*)malloc(sizeof(float) * (size_t)(M * K + 16));
    if (!xf) return -1;
    for (int64_t i = 0; i < M * K; i++) xf[i] = bf16_to_f32(X[i]);
    #pragma omp parallel for collapse(2) schedule(dynamic, 1) if (M * N * K >= PARALLEL_MIN)
    for (int64_t b = 0; b < nblocks; b++)
        for (int64_t c = 0; c < mblocks; c++)
            for (int64_t n = b * NB; n < N && n < (b + 1) * NB; n++)
                for (int64_t m = c * MB32; m < M && m < (c + 1) * MB32; m++)
                    store(Y, out_f32, m * N + n, dot_bf16_row(W + n * K, X + m * K, xf + m * K, K));
    free(xf);
    return 0;
}

/* Y[m, n] = sum_k W[n,k] X[m,k] for float32 W (N x K), X (M x K) and Y (M x N): each output is dot_f32_row,
   as gemv_f32 and the decode step compute it, so a row's outputs do not depend on the rows beside it (slower
   than a blocked GEMM: two loads per multiply-add). Blocks of 16 weight rows x 32 activation rows. */
int gemm_f32_rows(const float* W, const float* X, float* Y, int64_t M, int64_t N, int64_t K) {
    const int64_t NB = 16, MB32 = 32, nblocks = (N + NB - 1) / NB, mblocks = (M + MB32 - 1) / MB32;
    #pragma omp parallel for collapse(2) schedule(dynamic, 1) if (M * N * K >= PARALLEL_MIN / 2)
    for (int64_t b = 0; b < nblocks; b++)
        for (int64_t c = 0; c < mblocks; c++)
            for (int64_t n = b * NB; n < N && n < (b + 1) * NB; n++)
                for (int64_t m = c * MB32; m < M && m < (c + 1) * MB32; m++) Y[m * N + n] = dot_f32_row(W + n * K, X + m * K, K);
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
            for (int l = 0; l < TILE; l++) store(y, out_f32, t * TILE + l, int_scaled(sums[l], xs, scale[t * TILE + l]));
        }
    } else {
        #pragma omp parallel for schedule(dynamic, 256) if (N * K >= PARALLEL_MIN)
        for (int64_t n = 0; n < N; n++) store(y, out_f32, n, int_scaled((int32_t)dot_int8(Q + n * K, xq, K), xs, scale[n]));
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

/* RMSNorm of each row of x (rows x n; bf16, or float32 with f32 set) by the weight w, as HF's LlamaRMSNorm
   computes it (the decode step's rmsnorm_row). */
void rmsnorm_rows(const void* x, const void* w, void* out, int64_t rows, int64_t n, float eps, int f32) {
    #pragma omp parallel for schedule(static) if (rows > 8)
    for (int64_t r = 0; r < rows; r++) rmsnorm_row(element(x, r * n, f32), w, (void*)element(out, r * n, f32), n, eps, f32);
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
