/* Group-wise 4-bit weights (inference/cpu/int4.py): the packed layout, the activation copy they multiply,
   and the 16-row tile product shared by gemv_int4 (int4.c), the fused decode step (decode_step.c) and, for
   blocks of rows with the same float operations per row (int4_rows), the prefill product gemm_int4.

   A weight is w = d * q + m, q in 0..15, with one fp16 scale d and one fp16 minimum m per row and group of
   INT4_GROUP columns (K padded with zero nibbles to Kp, a multiple of the group; rows padded to whole tiles).
   Packed by 16-row tiles and groups: tile t, group g is QUADS = INT4_GROUP / 8 vectors of 64 bytes; byte
   [j][l][c] of it holds row 16t + l, column g * INT4_GROUP + 4j + c in its low nibble and column
   g * INT4_GROUP + INT4_GROUP / 2 + 4j + c in its high nibble. The
   scales and minimums are [tiles][groups][16] fp16, so one 32-byte load gives a group's 16 rows.
   The product quantizes the activation to 15 bits per group (x ~ xs[g] * a, |a| <= INT4_AMAX) held as two int8
   planes a = 128 h + l (h in -128..127, l in 0..127: both fit vpdpbusd's signed byte) and sums q * a = 128 sum q h
   + sum q l with vpdpbusd (u8 x s8, exact int32): per row and group
   sum_k w x = d * xs[g] * sum q a + m * xsum[g], xsum[g] = xs[g] * sum a. (int8 per group, as llama.cpp's Q8_0,
   erred 0.5 % on a product and flipped the demo's near-tied first answer token; 15 bits err 0.004 %.) */
#ifndef INT4_H
#define INT4_H
#include "common.h"

#define INT4_GROUP 32
#define QUADS (INT4_GROUP / 8)   /* 64-byte vectors per tile and group */
#define INT4_AMAX 16383          /* the activation's integer range per group: 15 bits */
#define INT4_XBYTES (2 * INT4_GROUP)  /* bytes of the activation copy per group: h[INT4_GROUP], then l[INT4_GROUP] */
/* Bumped whenever the packed layout or the quantization changes (quantized caches are keyed on it). */
#define INT4_LAYOUT_VERSION 2

static inline float half_to_f32(uint16_t h) {
#if defined(__F16C__)
    return _cvtsh_ss(h);
#else
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0) {  /* zero or subnormal */
        float f = (float)man * (1.0f / 16777216.0f);
        return sign ? -f : f;
    }
    u = exp == 31 ? sign | 0x7f800000u | (man << 13) : sign | ((exp + 112) << 23) | (man << 13);
    float f;
    memcpy(&f, &u, 4);
    return f;
#endif
}

/* x (K bf16 values) as 15-bit integers per group of INT4_GROUP, zero-padded to Kp: a[k] = round(x[k] / xs[g]) (to
   nearest even) within +-INT4_AMAX, xs[g] = max|x in g| / INT4_AMAX, xsum[g] = xs[g] * sum of the group's a.
   Stored per group as INT4_XBYTES bytes: h = a >> 7 (floor), then l = a & 127. The AVX-512 path does the same
   IEEE operations 16 lanes at a time (same results). */
static inline void quantize_groups(const uint16_t* x, int64_t K, int64_t Kp, int8_t* xq, float* xs, float* xsum) {
    for (int64_t g = 0; g * INT4_GROUP < Kp; g++) {
        int64_t k0 = g * INT4_GROUP, k1 = k0 + INT4_GROUP < K ? k0 + INT4_GROUP : K;
        int8_t* xh = xq + g * INT4_XBYTES;
        int8_t* xl = xh + INT4_GROUP;
#if defined(__AVX512F__) && defined(__AVX512BW__)
        if (k1 - k0 == INT4_GROUP) {
            __m512 a = bf16x16_to_f32(x + k0), b = bf16x16_to_f32(x + k0 + 16);
            float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
            float s = amax > 0.0f ? amax / (float)INT4_AMAX : 1.0f, inv = 1.0f / s;
            const __m512i lim = _mm512_set1_epi32(INT4_AMAX), nlim = _mm512_set1_epi32(-INT4_AMAX);
            const __m512i low7 = _mm512_set1_epi32(127);
            __m512i qa = _mm512_cvtps_epi32(_mm512_mul_ps(a, _mm512_set1_ps(inv)));  /* MXCSR: nearest even */
            __m512i qb = _mm512_cvtps_epi32(_mm512_mul_ps(b, _mm512_set1_ps(inv)));
            qa = _mm512_max_epi32(_mm512_min_epi32(qa, lim), nlim);
            qb = _mm512_max_epi32(_mm512_min_epi32(qb, lim), nlim);
            _mm_storeu_si128((__m128i*)xh, _mm512_cvtepi32_epi8(_mm512_srai_epi32(qa, 7)));
            _mm_storeu_si128((__m128i*)(xh + 16), _mm512_cvtepi32_epi8(_mm512_srai_epi32(qb, 7)));
            _mm_storeu_si128((__m128i*)xl, _mm512_cvtepi32_epi8(_mm512_and_si512(qa, low7)));
            _mm_storeu_si128((__m128i*)(xl + 16), _mm512_cvtepi32_epi8(_mm512_and_si512(qb, low7)));
            xs[g] = s;
            xsum[g] = s * (float)_mm512_reduce_add_epi32(_mm512_add_epi32(qa, qb));
            continue;
        }
#endif
        float amax = 0.0f;
        for (int64_t k = k0; k < k1; k++) { float v = fabsf(bf16_to_f32(x[k])); amax = v > amax ? v : amax; }
        float s = amax > 0.0f ? amax / (float)INT4_AMAX : 1.0f, inv = 1.0f / s;
        int32_t sum = 0;
        for (int64_t k = k0; k < k0 + INT4_GROUP; k++) {
            int32_t v = k < k1 ? (int32_t)lrintf(bf16_to_f32(x[k]) * inv) : 0;
            v = v > INT4_AMAX ? INT4_AMAX : v < -INT4_AMAX ? -INT4_AMAX : v;
            xh[k - k0] = (int8_t)(v >> 7);  /* arithmetic shift: floor */
            xl[k - k0] = (int8_t)(v & 127);
            sum += v;
        }
        xs[g] = s;
        xsum[g] = s * (float)sum;
    }
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#define INT4_MB 8   /* activation rows per block of int4_rows (gemm_int4): 16 accumulators + 8 unpacked vectors */

/* acc + the u8 x s8 dot products of w's 16 lanes with the 4 int8 at x (vpdpbusd with its broadcast from memory:
   gcc 12 loads the broadcast into a register of its own otherwise). */
static inline __attribute__((always_inline)) __m512i dpbusd_bcast(__m512i acc, __m512i w, const int32_t* x) {
#if defined(__GNUC__)
    __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(w), "m"(*x));
    return acc;
#else
    return _mm512_dpbusd_epi32(acc, w, _mm512_set1_epi32(*x));
#endif
}

/* out[r] = the float32 sums of one packed tile's 16 rows (w: its nibbles, d and m: its scales and minimums)
   with R grouped 15-bit activation rows (xq[r], xs[r], xsum[r]). Per row and group, whatever R: the exact int32
   sum s of q * a (= 128 sum q h + sum q l, |s| < 2^23), then acc = fma(float(s), d * xs, acc),
   accm = fma(m, xsum, accm); out = acc + accm. So a row's sums are bitwise the same in a block of rows
   (prefill) as alone (decode). R is a constant where inlined; the integer sums are split over more
   accumulators when R is small (exact either way). */
static inline __attribute__((always_inline)) void int4_rows(const uint8_t* w, const uint16_t* d, const uint16_t* m,
                                                            int64_t groups, int R, const int8_t* const* xq,
                                                            const float* const* xs, const float* const* xsum,
                                                            __m512* out) {
    const __m512i low = _mm512_set1_epi8(0x0F);
    __m512 acc[INT4_MB], accm[INT4_MB];
    for (int r = 0; r < R; r++) acc[r] = accm[r] = _mm512_setzero_ps();
    for (int64_t g = 0; g < groups; g++) {
        const uint8_t* wg = w + g * (TILE * INT4_GROUP / 2);
        __m512i lo[QUADS], hi[QUADS];  /* quad j: columns 4j + c (lo), INT4_GROUP / 2 + 4j + c (hi) */
        for (int j = 0; j < QUADS; j++) {
            __m512i v = _mm512_loadu_si512(wg + 64 * j);
            lo[j] = _mm512_and_si512(v, low);
            /* one row: the high nibbles in place (16 q), their sums shifted back once per group */
            hi[j] = R == 1 ? _mm512_andnot_si512(low, v) : _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
        }
        const __m512 dv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(d + g * TILE)));
        const __m512 mv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(m + g * TILE)));
        for (int r = 0; r < R; r++) {
            const int32_t* xh = (const int32_t*)(xq[r] + g * INT4_XBYTES);  /* quads of h, then of l */
            const int32_t* xl = xh + INT4_GROUP / 4;
            __m512i s;
            if (R == 1) {  /* decode: the high sums are 16 x theirs, exactly (groups overlap out of order) */
                __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
                for (int j = 0; j < QUADS; j++) {
                    s0 = dpbusd_bcast(s0, lo[j], xh + j);
                    s1 = dpbusd_bcast(s1, hi[j], xh + j + QUADS);
                    s2 = dpbusd_bcast(s2, lo[j], xl + j);
                    s3 = dpbusd_bcast(s3, hi[j], xl + j + QUADS);
                }
                s = _mm512_add_epi32(_mm512_slli_epi32(_mm512_add_epi32(s0, _mm512_srai_epi32(s1, 4)), 7),
                                     _mm512_add_epi32(s2, _mm512_srai_epi32(s3, 4)));
            } else {  /* a block of rows: the rows are the independent chains */
                __m512i s0 = _mm512_setzero_si512(), s1 = s0;
                for (int j = 0; j < QUADS; j++) {
                    s0 = dpbusd_bcast(s0, lo[j], xh + j);
                    s0 = dpbusd_bcast(s0, hi[j], xh + j + QUADS);
                }
                for (int j = 0; j < QUADS; j++) {
                    s1 = dpbusd_bcast(s1, lo[j], xl + j);
                    s1 = dpbusd_bcast(s1, hi[j], xl + j + QUADS);
                }
                s = _mm512_add_epi32(_mm512_slli_epi32(s0, 7), s1);
            }
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dv, _mm512_set1_ps(xs[r][g])), acc[r]);
            accm[r] = _mm512_fmadd_ps(mv, _mm512_set1_ps(xsum[r][g]), accm[r]);
        }
    }
    for (int r = 0; r < R; r++) out[r] = _mm512_add_ps(acc[r], accm[r]);
}
#endif

/* The float32 sums of packed int4 tile t's 16 rows with the grouped 15-bit activation (Kp columns). */
static inline void tile_int4(const uint8_t* Q, const uint16_t* D, const uint16_t* M, int64_t t, int64_t Kp,
                             const int8_t* xq, const float* xs, const float* xsum, float* out) {
    const int64_t groups = Kp / INT4_GROUP;
    const uint8_t* w = Q + t * TILE * (Kp / 2);
    const uint16_t* d = D + t * groups * TILE;
    const uint16_t* m = M + t * groups * TILE;
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
    __m512 sums;
    int4_rows(w, d, m, groups, 1, &xq, &xs, &xsum, &sums);
    _mm512_storeu_ps(out, sums);
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
    const __m256i low = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1), h128 = _mm256_set1_epi16(128);
    for (int half = 0; half < 2; half++) {  /* rows 0-7, then 8-15: the two 32-byte halves of each vector */
        __m256 acc = _mm256_setzero_ps(), accm = acc;
        for (int64_t g = 0; g < groups; g++) {
            const uint8_t* wg = w + g * (TILE * INT4_GROUP / 2) + 32 * half;
            const int32_t* xh = (const int32_t*)(xq + g * INT4_XBYTES);
            const int32_t* xl = xh + INT4_GROUP / 4;
            __m256i s = _mm256_setzero_si256();
            for (int j = 0; j < QUADS; j++) {
                __m256i v = _mm256_loadu_si256((const __m256i*)(wg + 64 * j));
                __m256i vl = _mm256_and_si256(v, low), vh = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
                __m256i ph = _mm256_add_epi16(_mm256_maddubs_epi16(vl, _mm256_set1_epi32(xh[j])),  /* |.| <= 7680 */
                                              _mm256_maddubs_epi16(vh, _mm256_set1_epi32(xh[j + QUADS])));
                __m256i pl = _mm256_add_epi16(_mm256_maddubs_epi16(vl, _mm256_set1_epi32(xl[j])),
                                              _mm256_maddubs_epi16(vh, _mm256_set1_epi32(xl[j + QUADS])));
                s = _mm256_add_epi32(s, _mm256_add_epi32(_mm256_madd_epi16(ph, h128), _mm256_madd_epi16(pl, ones)));
            }
            __m256 dv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(d + g * TILE + 8 * half)));
            __m256 mv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(m + g * TILE + 8 * half)));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dv, _mm256_set1_ps(xs[g])), acc);
            accm = _mm256_fmadd_ps(mv, _mm256_set1_ps(xsum[g]), accm);
        }
        _mm256_storeu_ps(out + 8 * half, _mm256_add_ps(acc, accm));
    }
#else
    for (int l = 0; l < TILE; l++) out[l] = 0.0f;
    for (int64_t g = 0; g < groups; g++) {
        const uint8_t* wg = w + g * (TILE * INT4_GROUP / 2);
        const int8_t* xh = xq + g * INT4_XBYTES;
        int32_t a[INT4_GROUP];
        for (int k = 0; k < INT4_GROUP; k++) a[k] = 128 * xh[k] + xh[INT4_GROUP + k];
        for (int l = 0; l < TILE; l++) {
            int32_t s = 0;
            for (int j = 0; j < QUADS; j++)
                for (int c = 0; c < 4; c++) {
                    uint8_t b = wg[(j * TILE + l) * 4 + c];
                    s += (int32_t)(b & 15) * a[4 * j + c] + (int32_t)(b >> 4) * a[INT4_GROUP / 2 + 4 * j + c];
                }
            out[l] += half_to_f32(d[g * TILE + l]) * xs[g] * (float)s + half_to_f32(m[g * TILE + l]) * xsum[g];
        }
    }
#endif
}
#endif
