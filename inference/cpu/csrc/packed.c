/* Matrices packed by 16-row tiles (see common.h): bf16 packing in place, and the several-row product
   (prefill) on packed bf16 or int8 matrices, so a packed matrix needs no row-major copy. */
#include "common.h"

/* 1 when bf16 matrices are best packed and gemm_packed runs (tile_bf16 and it have a vdpbf16ps path). */
int bf16_packing(void) {
#if defined(__AVX512BF16__)
    return 1;
#else
    return 0;
#endif
}

/* W (N x K bf16, row-major, N % 16 == 0, K even) packed in place: each tile's 16 rows occupy the same bytes
   before and after. 0, or -1 when a thread's one-tile scratch could not be allocated (W unchanged). */
int pack_bf16(uint16_t* W, int64_t N, int64_t K) {
    int failed = 0;
    #pragma omp parallel if (N * K >= PARALLEL_MIN)
    {
        uint32_t* tile = (uint32_t*)malloc(sizeof(uint16_t) * (size_t)(TILE * K));
        if (!tile) {
            #pragma omp atomic write
            failed = 1;
        }
        #pragma omp barrier
        #pragma omp for schedule(static)
        for (int64_t t = 0; t < (failed ? 0 : N / TILE); t++) {
            uint32_t* rows = (uint32_t*)(W + t * TILE * K);  /* rows[l * K/2 + e]: row l's pair e */
            memcpy(tile, rows, sizeof(uint16_t) * (size_t)(TILE * K));
            for (int64_t e = 0; e < K / 2; e++)
                for (int l = 0; l < TILE; l++) rows[e * TILE + l] = tile[l * (K / 2) + e];
        }
        free(tile);
    }
    return failed ? -1 : 0;
}

#define MB 12   /* activation rows per block: 2 tiles x 12 rows = 24 accumulators */

#if defined(__AVX512BF16__)

/* Pairs e of a packed tile as 16 bf16 pairs: loaded (bf16), or converted from int8, exactly (|q| <= 127). */
static inline __attribute__((always_inline)) __m512bh tile_pairs(const char* tile, int64_t e, int int8) {
    if (!int8) return (__m512bh)_mm512_loadu_si512(tile + e * TILE * 4);
    const int8_t* q = (const int8_t*)tile + e * TILE * 2;
    __m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)q)));
    __m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(q + 16))));
    return _mm512_cvtne2ps_pbh(hi, lo);  /* lo's 16 values first: the pairs keep their order */
}

/* acc[c * MB + m] += tile c's pairs e with activation row m's pair e. */
static inline __attribute__((always_inline)) void pair_step(const char* w0, const char* w1, int nb, int int8,
                                                            const uint32_t* const* xr, int64_t e, __m512* acc) {
    __m512bh a = tile_pairs(w0, e, int8);
    __m512bh b = nb == 2 ? tile_pairs(w1, e, int8) : a;
    for (int m = 0; m < MB; m++) {
        __m512bh x = (__m512bh)_mm512_set1_epi32((int)xr[m][e]);
        acc[m] = _mm512_dpbf16_ps(acc[m], x, a);
        if (nb == 2) acc[MB + m] = _mm512_dpbf16_ps(acc[MB + m], x, b);
    }
}

/* acc[c * MB + m] = tile c's 16 sums with activation row m, for nb (1 or 2) tiles of `tile_bytes` each, bf16
   or int8 (constants where inlined). Each sum is grouped exactly as tile_bf16 (the decode product) groups it:
   four partial sums over the pairs e = j mod 4 (j = 0..3) of the first E - E % 4 pairs, the last E % 4 pairs
   added to the first, then (s0 + s1) + (s2 + s3); a row's outputs are therefore the same bits whether it is
   multiplied alone (decode) or among others (prefill). The four phases each walk the tile with a stride of
   four pairs while it sits in L1/L2. */
static inline __attribute__((always_inline)) void block_product(const char* w0, int64_t tile_bytes, int nb, int int8,
                                                                const uint32_t* const* xr, int64_t E, __m512* acc) {
    const char* w1 = w0 + tile_bytes;
    const int64_t E4 = E - E % 4;
    __m512 part[3][2 * MB];
    for (int j = 3; j >= 0; j--) {  /* phase 0 last: its sums stay in acc */
        for (int i = 0; i < nb * MB; i++) acc[i] = _mm512_setzero_ps();
        for (int64_t e = j; e < E4; e += 4) pair_step(w0, w1, nb, int8, xr, e, acc);
        if (j == 0)
            for (int64_t e = E4; e < E; e++) pair_step(w0, w1, nb, int8, xr, e, acc);
        else
            for (int i = 0; i < nb * MB; i++) part[j - 1][i] = acc[i];
    }
    for (int i = 0; i < nb * MB; i++) acc[i] = combine4(acc[i], part[0][i], part[1][i], part[2][i]);
}
#endif

/* Y[m, n] = sum_k X[m, k] W[n, k] for a packed W (N x K): bf16, or int8 with one float32 scale per row
   (scales non-NULL: Y = scale[n] * the int8 sums, no dequantized copy of W). X: row-major bf16 (M x K);
   Y (M x N) bf16 or f32. Threads take pairs of tiles; each pair is applied to every block of 12 rows while it
   sits in L2. */
int gemm_packed(const void* W, const float* scales, const uint16_t* X, void* Y, int64_t M, int64_t N, int64_t K,
                int out_f32) {
#if defined(__AVX512BF16__)
    const int64_t E = K / 2, T = N / TILE, tile_bytes = TILE * K * (scales ? 1 : 2);
    const int int8 = scales != NULL;
    #pragma omp parallel for schedule(dynamic, 1) if (M * N * K >= PARALLEL_MIN)
    for (int64_t t = 0; t < T; t += 2) {
        int nb = t + 1 < T ? 2 : 1;
        const char* w = (const char*)W + t * tile_bytes;
        for (int64_t m0 = 0; m0 < M; m0 += MB) {
            const uint32_t* xr[MB];  /* rows past M repeat the last one; their sums are not stored */
            for (int m = 0; m < MB; m++) xr[m] = (const uint32_t*)(X + (m0 + m < M ? m0 + m : M - 1) * K);
            __m512 acc[2 * MB];
            if (int8 && nb == 2) block_product(w, tile_bytes, 2, 1, xr, E, acc);
            else if (int8) block_product(w, tile_bytes, 1, 1, xr, E, acc);
            else if (nb == 2) block_product(w, tile_bytes, 2, 0, xr, E, acc);
            else block_product(w, tile_bytes, 1, 0, xr, E, acc);
            for (int c = 0; c < nb; c++) {
                __m512 scale = int8 ? _mm512_loadu_ps(scales + (t + c) * TILE) : _mm512_set1_ps(1.0f);
                for (int m = 0; m < MB && m0 + m < M; m++) {
                    int64_t at = (m0 + m) * N + (t + c) * TILE;
                    __m512 sums = _mm512_mul_ps(acc[c * MB + m], scale);
                    if (out_f32) _mm512_storeu_ps((float*)Y + at, sums);
                    else _mm256_storeu_si256((__m256i*)((uint16_t*)Y + at), (__m256i)_mm512_cvtneps_pbh(sums));
                }
            }
        }
    }
    return 0;
#else
    (void)W; (void)scales; (void)X; (void)Y; (void)M; (void)N; (void)K; (void)out_f32;
    return -2;  /* not built for this CPU: callers check bf16_packing() first */
#endif
}

#if defined(__AVX512F__) && defined(__AVX512BW__)
/* f32_to_bf16 of 16 lanes, bit for bit (round to nearest even; a NaN keeps its top half with the quiet bit set;
   denormals rounded as any value, where vcvtneps2bf16 would flush them). */
static inline __m256i bf16x16_rounded(__m512 v) {
    __m512i u = _mm512_castps_si512(v);
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                                                     _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1))));
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                            _mm512_set1_epi32(0x7f800000));
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(u, _mm512_set1_epi32(0x400000)));
    return _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16));
}

/* sums[c * MB + m] = the exact int32 sums of tile c (at w0, w1) with int16 activation row m (pairs xr[m][e]).
   The accumulators are only indexed by constants here, so they stay in registers (indexed at run time, as
   the caller's store loop would, they are kept in memory and every product waits on a load and a store). */
static inline __attribute__((always_inline)) void int8_block(const int8_t* w0, const int8_t* w1,
                                                             const uint32_t* const* xr, int64_t E,
                                                             int32_t sums[2 * MB][TILE]) {
    __m512i acc[2 * MB];
    #pragma GCC unroll 24
    for (int i = 0; i < 2 * MB; i++) acc[i] = _mm512_setzero_si512();
    for (int64_t e = 0; e < E; e++) {
        __m512i a = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i*)(w0 + e * 32)));
        __m512i b = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i*)(w1 + e * 32)));
        #pragma GCC unroll 12
        for (int m = 0; m < MB; m++) {
            __m512i x = _mm512_set1_epi32((int)xr[m][e]);
#if defined(__AVX512VNNI__)
            acc[m] = _mm512_dpwssd_epi32(acc[m], a, x);
            acc[MB + m] = _mm512_dpwssd_epi32(acc[MB + m], b, x);
#else
            acc[m] = _mm512_add_epi32(acc[m], _mm512_madd_epi16(a, x));
            acc[MB + m] = _mm512_add_epi32(acc[MB + m], _mm512_madd_epi16(b, x));
#endif
        }
    }
    #pragma GCC unroll 24
    for (int i = 0; i < 2 * MB; i++) _mm512_storeu_si512(sums[i], acc[i]);
}
#endif

/* Y[m, n] = scale[n] * sum_k Q[n, k] xq_m[k] * xs_m for a packed int8 Q (N x K) and bf16 X (M x K): each row of X
   quantized to int16 with its own scale (quantize_activation) and multiplied in exact integer sums, as the
   decode product (gemv_int8, tile_int8) does it, so a row's outputs do not depend on the rows beside it. Y bf16
   or f32. 0, -1 when the int16 copy could not be allocated, -2 where this build has no AVX-512BW path. */
int gemm_int8_rows(const int8_t* Q, const float* scales, const uint16_t* X, void* Y, int64_t M, int64_t N, int64_t K,
                   int out_f32) {
#if defined(__AVX512F__) && defined(__AVX512BW__)
    const int64_t E = K / 2, T = N / TILE, stride = (K + 64) / 32 * 32;
    int16_t* xq = (int16_t*)malloc(sizeof(int16_t) * (size_t)(M * stride));
    float* xs = (float*)malloc(sizeof(float) * (size_t)M);
    if (!xq || !xs) { free(xq); free(xs); return -1; }
    #pragma omp parallel if (M * N * K >= PARALLEL_MIN)
    {
        #pragma omp for schedule(static)
        for (int64_t m = 0; m < M; m++) xs[m] = quantize_activation(X + m * K, K, xq + m * stride);
        #pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < T; t += 2) {
            int nb = t + 1 < T ? 2 : 1;
            const int8_t* w0 = Q + t * TILE * K;
            const int8_t* w1 = nb == 2 ? w0 + TILE * K : w0;  /* one tile: its sums twice, the second unstored */
            for (int64_t m0 = 0; m0 < M; m0 += MB) {
                const uint32_t* xr[MB];  /* rows past M repeat the last one; their sums are not stored */
                for (int m = 0; m < MB; m++) xr[m] = (const uint32_t*)(xq + (m0 + m < M ? m0 + m : M - 1) * stride);
                int32_t sums[2 * MB][TILE];
                int8_block(w0, w1, xr, E, sums);
                for (int c = 0; c < nb; c++) {
                    __m512 scale = _mm512_loadu_ps(scales + (t + c) * TILE);
                    for (int m = 0; m < MB && m0 + m < M; m++) {
                        int64_t at = (m0 + m) * N + (t + c) * TILE;
                        __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_loadu_si512(sums[c * MB + m])),
                                                 _mm512_set1_ps(xs[m0 + m]));
                        PIN512(v);  /* int_scaled's order: (sum * xs) * scale */
                        v = _mm512_mul_ps(v, scale);
                        if (out_f32) { _mm512_storeu_ps((float*)Y + at, v); continue; }
                        _mm256_storeu_si256((__m256i*)((uint16_t*)Y + at), bf16x16_rounded(v));
                    }
                }
            }
        }
    }
    free(xq); free(xs);
    return 0;
#else
    (void)Q; (void)scales; (void)X; (void)Y; (void)M; (void)N; (void)K; (void)out_f32;
    return -2;
#endif
}
