/* Group-wise int4 matrices (layout in int4.h): the one-row product (decode), the several-row product
   (prefill) with the same numerics row for row, and a bf16 copy of the matrix. */
#include "int4.h"

/* The packed layout's version and group size, for inference/cpu/int4.py to check against its own. */
int int4_layout(void) { return INT4_LAYOUT_VERSION * 1000 + INT4_GROUP; }

/* y[n] = sum_k W[n, k] x[k] for a packed int4 W (N rows, K columns, Kp padded) and bf16 x; y bf16 or f32. */
int gemv_int4(const uint8_t* Q, const uint16_t* D, const uint16_t* M, const uint16_t* x, void* y, int64_t N,
              int64_t K, int64_t Kp, int out_f32) {
    const int64_t groups = Kp / INT4_GROUP;
    int8_t* xq = (int8_t*)malloc((size_t)(groups * INT4_XBYTES) + 64);
    float* xs = (float*)malloc(sizeof(float) * (size_t)(2 * groups + 2));
    if (!xq || !xs) { free(xq); free(xs); return -1; }
    quantize_groups(x, K, Kp, xq, xs, xs + groups);
    const int64_t T = (N + TILE - 1) / TILE;
    #pragma omp parallel for schedule(dynamic, 16) if (N * Kp >= 2 * PARALLEL_MIN)
    for (int64_t t = 0; t < T; t++) {
        float sums[TILE];
        tile_int4(Q, D, M, t, Kp, xq, xs, xs + groups, sums);
        for (int64_t l = 0; l < TILE && t * TILE + l < N; l++) store(y, out_f32, t * TILE + l, sums[l]);
    }
    free(xq); free(xs);
    return 0;
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
/* 16 floats stored as common.h's store() stores each one (f32_to_bf16: nearest even, NaN kept), or as f32. */
static inline void store16(void* y, int out_f32, int64_t at, __m512 v) {
    if (out_f32) { _mm512_storeu_ps((float*)y + at, v); return; }
    __m512i u = _mm512_castps_si512(v);
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                                                     _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1))));
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                            _mm512_set1_epi32(0x7f800000));
    r = _mm512_mask_or_epi32(r, nan, u, _mm512_set1_epi32(0x400000));  /* NaN: its top bits, quiet */
    _mm256_storeu_si256((__m256i*)((uint16_t*)y + at), _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16)));
}

/* One tile's sums with R rows from m0 (rows past M repeat the last; their sums are not stored). */
static inline __attribute__((always_inline)) void gemm_block(const uint8_t* Q, const uint16_t* D, const uint16_t* Mn,
                                                             int64_t t, int64_t groups, int R, const int8_t* xq,
                                                             const float* xs, const float* xsum, int64_t m0,
                                                             int64_t M, int64_t N, int64_t Kp, void* Y, int out_f32) {
    const int8_t* xr[INT4_MB];
    const float *sr[INT4_MB], *zr[INT4_MB];
    for (int r = 0; r < R; r++) {
        int64_t row = m0 + r < M ? m0 + r : M - 1;
        xr[r] = xq + row * groups * INT4_XBYTES, sr[r] = xs + row * groups, zr[r] = xsum + row * groups;
    }
    __m512 out[INT4_MB];
    int4_rows(Q + t * TILE * (Kp / 2), D + t * groups * TILE, Mn + t * groups * TILE, groups, R, xr, sr, zr, out);
    if ((t + 1) * TILE <= N) {
        for (int r = 0; r < R && m0 + r < M; r++) store16(Y, out_f32, (m0 + r) * N + t * TILE, out[r]);
        return;
    }
    for (int r = 0; r < R && m0 + r < M; r++) {  /* the last tile's rows that exist */
        float v[TILE];
        _mm512_storeu_ps(v, out[r]);
        for (int64_t l = 0; t * TILE + l < N; l++) store(Y, out_f32, (m0 + r) * N + t * TILE + l, v[l]);
    }
}
#endif

/* Y[r, n] = sum_k W[n, k] X[r, k] for a packed int4 W (N rows, K columns, Kp padded) and M bf16 rows X
   (row-major M x K); Y (M x N) bf16 or f32. Each row is bitwise what gemv_int4 gives for it alone: the same
   grouped 15-bit activation and the same float operations per group (int4_rows / tile_int4). Threads take
   tiles; a tile is applied to every block of INT4_MB rows while it sits in L1/L2. */
int gemm_int4(const uint8_t* Q, const uint16_t* D, const uint16_t* Mn, const uint16_t* X, void* Y, int64_t M,
              int64_t N, int64_t K, int64_t Kp, int out_f32) {
    const int64_t groups = Kp / INT4_GROUP, T = (N + TILE - 1) / TILE;
    int8_t* xq = (int8_t*)malloc((size_t)(M * groups * INT4_XBYTES) + 64);
    float* xs = (float*)malloc(sizeof(float) * (size_t)(2 * M * groups + 2));
    if (!xq || !xs) { free(xq); free(xs); return -1; }
    float* xsum = xs + M * groups;
    #pragma omp parallel for schedule(static) if (M * K >= PARALLEL_MIN / 16)
    for (int64_t r = 0; r < M; r++)
        quantize_groups(X + r * K, K, Kp, xq + r * groups * INT4_XBYTES, xs + r * groups, xsum + r * groups);
    #pragma omp parallel for schedule(dynamic, 1) if (M * N * Kp >= PARALLEL_MIN)
    for (int64_t t = 0; t < T; t++) {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
        int64_t m0 = 0;
        for (; m0 + INT4_MB <= M; m0 += INT4_MB)
            gemm_block(Q, D, Mn, t, groups, INT4_MB, xq, xs, xsum, m0, M, N, Kp, Y, out_f32);
        if (M - m0 > INT4_MB / 2)
            gemm_block(Q, D, Mn, t, groups, INT4_MB, xq, xs, xsum, m0, M, N, Kp, Y, out_f32);
        else if (M - m0 > 1)
            gemm_block(Q, D, Mn, t, groups, INT4_MB / 2, xq, xs, xsum, m0, M, N, Kp, Y, out_f32);
        else if (M - m0 == 1)
            gemm_block(Q, D, Mn, t, groups, 1, xq, xs, xsum, m0, M, N, Kp, Y, out_f32);
#else
        for (int64_t r = 0; r < M; r++) {
            float sums[TILE];
            tile_int4(Q, D, Mn, t, Kp, xq + r * groups * INT4_XBYTES, xs + r * groups, xsum + r * groups, sums);
            for (int64_t l = 0; l < TILE && t * TILE + l < N; l++) store(Y, out_f32, r * N + t * TILE + l, sums[l]);
        }
#endif
    }
    free(xq); free(xs);
    return 0;
}

/* W[n, k] = bf16(d * q + m) for a packed int4 matrix: row-major N x K bf16. */
int dequantize_int4_bf16(const uint8_t* Q, const uint16_t* D, const uint16_t* M, uint16_t* W, int64_t N,
                         int64_t K, int64_t Kp) {
    const int64_t groups = Kp / INT4_GROUP, T = (N + TILE - 1) / TILE;
    #pragma omp parallel for schedule(static) if (N * Kp >= PARALLEL_MIN)
    for (int64_t t = 0; t < T; t++) {
        for (int64_t g = 0; g < groups; g++) {
            const uint32_t* wg = (const uint32_t*)(Q + t * TILE * (Kp / 2) + g * (TILE * INT4_GROUP / 2));
            for (int l = 0; l < TILE && t * TILE + l < N; l++) {
                const float d = half_to_f32(D[(t * groups + g) * TILE + l]), m = half_to_f32(M[(t * groups + g) * TILE + l]);
                uint8_t bytes[INT4_GROUP / 2];  /* row l's quads: low nibbles the group's first half, high the second */
                for (int j = 0; j < QUADS; j++) memcpy(bytes + 4 * j, wg + j * TILE + l, 4);
                uint16_t* out = W + (t * TILE + l) * K + g * INT4_GROUP;
                int64_t cols = K - g * INT4_GROUP < INT4_GROUP ? K - g * INT4_GROUP : INT4_GROUP;
#if defined(__AVX512F__) && defined(__AVX512BF16__)
                if (cols == INT4_GROUP) {
                    const __m512 vd = _mm512_set1_ps(d), vm = _mm512_set1_ps(m);
                    for (int p = 0; p < INT4_GROUP / 32; p++) {  /* 16 bytes: 16 low nibbles, 16 high */
                        __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(bytes + 16 * p)));
                        __m512 lo = _mm512_cvtepi32_ps(_mm512_and_si512(b, _mm512_set1_epi32(15)));
                        __m512 hi = _mm512_cvtepi32_ps(_mm512_srli_epi32(b, 4));
                        _mm256_storeu_si256((__m256i*)(out + 16 * p), (__m256i)_mm512_cvtneps_pbh(_mm512_fmadd_ps(lo, vd, vm)));
                        _mm256_storeu_si256((__m256i*)(out + INT4_GROUP / 2 + 16 * p),
                                            (__m256i)_mm512_cvtneps_pbh(_mm512_fmadd_ps(hi, vd, vm)));
                    }
                    continue;
                }
#endif
                for (int64_t c = 0; c < cols; c++) {
                    uint8_t b = bytes[c % (INT4_GROUP / 2)];
                    out[c] = f32_to_bf16(d * (float)(c < INT4_GROUP / 2 ? b & 15 : b >> 4) + m);
                }
            }
        }
    }
    return 0;
}
