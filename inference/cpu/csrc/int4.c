/* Group-wise int4 matrices (layout in int4.h): the one-row product (decode) and the bf16 copy a several-row
   product (prefill) multiplies. */
#include "int4.h"

/* The packed layout's version and group size, for inference/cpu/int4.py to check against its own. */
int int4_layout(void) { return INT4_LAYOUT_VERSION * 1000 + INT4_GROUP; }

/* y[n] = sum_k W[n, k] x[k] for a packed int4 W (N rows, K columns, Kp padded) and bf16 x; y bf16 or f32. */
int gemv_int4(const uint8_t* Q, const uint16_t* D, const uint16_t* M, const uint16_t* x, void* y, int64_t N,
              int64_t K, int64_t Kp, int out_f32) {
    const int64_t groups = Kp / INT4_GROUP;
    int8_t* xq = (int8_t*)malloc((size_t)Kp + 64);
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
