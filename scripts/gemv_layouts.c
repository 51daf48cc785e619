/* Memory-layout probe for decode's matrix-vector products (scripts/gemv_layouts.py): each function reads an
   N x K weight matrix once, the same bytes, in a different way. Not part of the app. */
#include "common.h"

/* Reading only: the bf16 matrix summed as float32 lanes (what the memory delivers to this loop shape). */
float read_only(const uint16_t* W, int64_t n) {
    float total = 0;
    #pragma omp parallel reduction(+:total)
    {
        __m512 a0 = _mm512_setzero_ps(), a1 = a0;
        #pragma omp for schedule(static)
        for (int64_t i = 0; i < n; i += 64) {
            a0 = _mm512_add_ps(a0, (__m512)_mm512_loadu_si512(W + i));
            a1 = _mm512_add_ps(a1, (__m512)_mm512_loadu_si512(W + i + 32));
        }
        total += _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    }
    return total;
}

/* Row-major W, but one 32-bit activation pair broadcast per product instead of a 64-byte activation load
   (wrong products: it shows what the activation loads cost, nothing else). */
void rows_broadcast_x(const uint16_t* W, const uint16_t* x, float* y, int64_t N, int64_t K) {
    const uint32_t* xp = (const uint32_t*)x;
    #pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const uint16_t* w = W + n * K;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0;
        for (int64_t k = 0; k < K; k += 64) {
            a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_loadu_si512(w + k), (__m512bh)_mm512_set1_epi32((int)xp[k / 32]));
            a1 = _mm512_dpbf16_ps(a1, (__m512bh)_mm512_loadu_si512(w + k + 32), (__m512bh)_mm512_set1_epi32((int)xp[k / 32 + 1]));
        }
        y[n] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    }
}

/* W packed as [N/16][K/2][16][2] bf16 (16 rows interleaved by pairs of columns): each product takes one
   broadcast activation pair, and 16 outputs come out of one vector (no horizontal sums). */
void packed_bf16(const uint16_t* W, const uint16_t* x, float* y, int64_t N, int64_t K) {
    const uint32_t* xp = (const uint32_t*)x;
    int64_t E = K / 2;
    #pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < N / 16; t++) {
        const uint32_t* w = (const uint32_t*)W + t * E * 16;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0;
        for (int64_t e = 0; e < E; e += 2) {
            a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_loadu_si512(w + e * 16), (__m512bh)_mm512_set1_epi32((int)xp[e]));
            a1 = _mm512_dpbf16_ps(a1, (__m512bh)_mm512_loadu_si512(w + e * 16 + 16), (__m512bh)_mm512_set1_epi32((int)xp[e + 1]));
        }
        _mm512_storeu_ps(y + t * 16, _mm512_add_ps(a0, a1));
    }
}

/* The same for int8 weights and int16 activations (vpdpwssd on widened int8 pairs): [N/16][K/2][16][2]. */
void packed_int8(const int8_t* Q, const int16_t* xq, int32_t* y, int64_t N, int64_t K) {
    const uint32_t* xp = (const uint32_t*)xq;
    int64_t E = K / 2;
    #pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < N / 16; t++) {
        const int8_t* w = Q + t * E * 32;
        __m512i a0 = _mm512_setzero_si512(), a1 = a0;
        for (int64_t e = 0; e < E; e += 2) {
            a0 = _mm512_dpwssd_epi32(a0, _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i*)(w + e * 32))),
                                     _mm512_set1_epi32((int)xp[e]));
            a1 = _mm512_dpwssd_epi32(a1, _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i*)(w + e * 32 + 32))),
                                     _mm512_set1_epi32((int)xp[e + 1]));
        }
        _mm512_storeu_si512(y + t * 16, _mm512_add_epi32(a0, a1));
    }
}
