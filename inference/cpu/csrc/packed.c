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

#if defined(__AVX512BF16__)
#define MB 12   /* activation rows per block: 2 tiles x 12 rows = 24 accumulators */

/* Pairs e of a packed tile as 16 bf16 pairs: loaded (bf16), or converted from int8, exactly (|q| <= 127). */
static inline __attribute__((always_inline)) __m512bh tile_pairs(const char* tile, int64_t e, int int8) {
    if (!int8) return (__m512bh)_mm512_loadu_si512(tile + e * TILE * 4);
    const int8_t* q = (const int8_t*)tile + e * TILE * 2;
    __m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)q)));
    __m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(q + 16))));
    return _mm512_cvtne2ps_pbh(hi, lo);  /* lo's 16 values first: the pairs keep their order */
}

/* acc[c * MB + m] = tile c's 16 sums with activation row m, for nb (1 or 2) tiles of `tile_bytes` each, bf16
   or int8 (constants where inlined). */
static inline __attribute__((always_inline)) void block_product(const char* w0, int64_t tile_bytes, int nb, int int8,
                                                                const uint32_t* const* xr, int64_t E, __m512* acc) {
    const char* w1 = w0 + tile_bytes;
    for (int i = 0; i < nb * MB; i++) acc[i] = _mm512_setzero_ps();
    for (int64_t e = 0; e < E; e++) {
        __m512bh a = tile_pairs(w0, e, int8);
        __m512bh b = nb == 2 ? tile_pairs(w1, e, int8) : a;
        for (int m = 0; m < MB; m++) {
            __m512bh x = (__m512bh)_mm512_set1_epi32((int)xr[m][e]);
            acc[m] = _mm512_dpbf16_ps(acc[m], x, a);
            if (nb == 2) acc[MB + m] = _mm512_dpbf16_ps(acc[MB + m], x, b);
        }
    }
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
