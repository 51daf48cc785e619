/* Causal attention of a block of new positions over a bf16 KV cache (prefill, with or without a cached
   prefix): scores over keys packed 16 at a time, then softmax in float32, then the weighted sum of values.
   With AVX-512-BF16 and a head size that is a multiple of 16, both products use vdpbf16ps on bf16 pairs
   (two dimensions or two positions per lane, float32 sums; the probabilities rounded to bf16 as SDPA's bf16
   path does), else register-blocked float32 FMAs. Torch's CPU SDPA takes an explicit mask for a prefix
   (query i at position start + i sees keys 0 .. start + i), and its masked path runs far below GEMM speed. */
#include "common.h"

#define QB 8    /* query rows per block: 8 accumulators of 16 keys each */

#define KB 16   /* keys per packed block (one AVX-512 register of float32) */

/* kt[b][d][c] = k[b*KB + c][d] as float32, zero past `keys`. */
static void pack_keys(const void* k, int64_t keys, int64_t D, float* kt, int f32) {
    for (int64_t b = 0; b * KB < keys; b++)
        for (int64_t c = 0; c < KB; c++) {
            int64_t j = b * KB + c;
            for (int64_t d = 0; d < D; d++) kt[(b * D + d) * KB + c] = j < keys ? load(k, j * D + d, f32) : 0.0f;
        }
}

/* s[r][j] = q[r] . k[j] for rows r < rows (q as float32 [rows, D]) and keys j < keys, from packed keys. */
static void block_scores(const float* qf, int64_t rows, const float* kt, int64_t keys, int64_t D, int64_t stride,
                         float* s) {
    for (int64_t b = 0; b * KB < keys; b++) {
        const float* kb = kt + b * D * KB;
#if defined(__AVX512F__)
        __m512 acc[QB];
        for (int r = 0; r < QB; r++) acc[r] = _mm512_setzero_ps();
        for (int64_t d = 0; d < D; d++) {
            __m512 kv = _mm512_loadu_ps(kb + d * KB);
            for (int r = 0; r < QB; r++)
                if (r < rows) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(qf[r * D + d]), kv, acc[r]);
        }
        for (int r = 0; r < rows; r++) _mm512_storeu_ps(s + r * stride + b * KB, acc[r]);
#else
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < KB; c++) {
                float a = 0.0f;
                for (int64_t d = 0; d < D; d++) a += qf[r * D + d] * kb[d * KB + c];
                s[r * stride + b * KB + c] = a;
            }
#endif
    }
}

/* out[r] = sum_j p[r][j] v[j] / total[r] for rows r < rows, keys j < keys (v: [keys, D]). */
static void block_values(const float* p, int64_t rows, int64_t stride, const void* v, int64_t keys, int64_t D,
                         const float* total, void* out, int64_t out_stride, int f32) {
    for (int64_t d0 = 0; d0 < D; d0 += 16) {
        int64_t width = D - d0 < 16 ? D - d0 : 16;
#if defined(__AVX512F__)
        if (width == 16) {
            __m512 acc[QB];
            for (int r = 0; r < QB; r++) acc[r] = _mm512_setzero_ps();
            for (int64_t j = 0; j < keys; j++) {
                __m512 vv = load16(v, j * D + d0, f32);
                for (int r = 0; r < QB; r++)
                    if (r < rows) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(p[r * stride + j]), vv, acc[r]);
            }
            for (int r = 0; r < rows; r++) {
                float lane[16];
                _mm512_storeu_ps(lane, _mm512_mul_ps(acc[r], _mm512_set1_ps(1.0f / total[r])));
                for (int c = 0; c < 16; c++) store(out, f32, r * out_stride + d0 + c, lane[c]);
            }
            continue;
        }
#endif
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < width; c++) {
                float a = 0.0f;
                for (int64_t j = 0; j < keys; j++) a += p[r * stride + j] * load(v, j * D + d0 + c, f32);
                store(out, f32, r * out_stride + d0 + c, a / total[r]);
            }
    }
}

#if defined(__AVX512BF16__)
#define PAIRS 1
/* kp[b][e][c] = (k[j][2e], k[j][2e+1]) for key j = b*KB + c: 16 keys x one dimension pair per vector
   (a gather of 16 rows' pair e), zero past `keys`. */
static void pack_key_pairs(const uint16_t* k, int64_t keys, int64_t D, uint32_t* kp) {
    int64_t E = D / 2;
    const __m512i rows = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                            _mm512_set1_epi32((int)E));
    for (int64_t b = 0; b * KB < keys; b++) {
        int64_t left = keys - b * KB;
        __mmask16 valid = left >= KB ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
        for (int64_t e = 0; e < E; e++)
            _mm512_storeu_si512(kp + (b * E + e) * KB, _mm512_mask_i32gather_epi32(
                _mm512_setzero_si512(), valid, rows, (const void*)(k + b * KB * D + 2 * e), 4));
    }
}

/* vp[i][d] = (v[2i][d], v[2i+1][d]): two positions per lane (rows 2i and 2i+1 interleaved), zero past `keys`. */
static void pack_value_pairs(const uint16_t* v, int64_t keys, int64_t D, uint32_t* vp) {
    const __m512i lo = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8,
                                        39, 7, 38, 6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
    const __m512i hi = _mm512_add_epi16(lo, _mm512_set1_epi16(16));
    for (int64_t i = 0; 2 * i < keys; i++) {
        const uint16_t* a = v + 2 * i * D;
        for (int64_t d = 0; d < D; d += 32) {  /* D % 16 == 0: a 16-wide tail is handled by the mask */
            __mmask32 m = D - d >= 32 ? (__mmask32)0xffffffffu : (__mmask32)0xffffu;
            __m512i x = _mm512_maskz_loadu_epi16(m, a + d);
            __m512i y = 2 * i + 1 < keys ? _mm512_maskz_loadu_epi16(m, a + D + d) : _mm512_setzero_si512();
            _mm512_storeu_si512(vp + i * D + d, _mm512_permutex2var_epi16(x, lo, y));
            if (D - d >= 32) _mm512_storeu_si512(vp + i * D + d + 16, _mm512_permutex2var_epi16(x, hi, y));
        }
    }
}

/* acc[c * QB + r] = sum_i bcast pair (i, r) x m's 16 lanes of block c at i (bf16 pairs, vdpbf16ps), for the
   nb (1 or 2: a constant where this is inlined) blocks: block c's lanes at m + i * mstride + c * moff, pair
   (i, r) at bcast[i * bi + r * br]. Each broadcast serves both blocks, and 2 x QB independent sums keep the
   vdpbf16ps pipeline full. */
static inline __attribute__((always_inline)) void pair_products(const uint32_t* bcast, int64_t bi, int64_t br,
                                                                const uint32_t* m, int64_t mstride, int64_t moff,
                                                                int64_t n, int nb, __m512* acc) {
    for (int r = 0; r < nb * QB; r++) acc[r] = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i++) {
        __m512bh m0 = (__m512bh)_mm512_loadu_si512(m + i * mstride);
        __m512bh m1 = nb == 2 ? (__m512bh)_mm512_loadu_si512(m + i * mstride + moff) : m0;
        for (int r = 0; r < QB; r++) {
            __m512bh b = (__m512bh)_mm512_set1_epi32((int)bcast[i * bi + r * br]);
            acc[r] = _mm512_dpbf16_ps(acc[r], b, m0);
            if (nb == 2) acc[QB + r] = _mm512_dpbf16_ps(acc[QB + r], b, m1);
        }
    }
}

/* s[r][j] = scale * q[r] . k[j] (q: bf16 rows, row stride q_stride) from packed key pairs (block b's pair e
   at kp[(b * E + e) * KB]). */
static void pair_scores(const uint16_t* q, int64_t q_stride, int64_t rows, const uint32_t* kp, int64_t keys,
                        int64_t D, float scale, int64_t stride, float* s) {
    int64_t E = D / 2, blocks = (keys + KB - 1) / KB;
    uint32_t qp[128 * QB];  /* qp[e][r] = q[r]'s pair e, zero for r >= rows (D <= 256) */
    for (int64_t e = 0; e < E; e++)
        for (int r = 0; r < QB; r++) {
            uint32_t v = 0;
            if (r < rows) memcpy(&v, q + r * q_stride + 2 * e, 4);
            qp[e * QB + r] = v;
        }
    const __m512 vs = _mm512_set1_ps(scale);
    for (int64_t b = 0; b < blocks; b += 2) {
        __m512 acc[2 * QB];
        int nb = b + 1 < blocks ? 2 : 1;
        if (nb == 2) pair_products(qp, QB, 1, kp + b * E * KB, KB, E * KB, E, 2, acc);
        else pair_products(qp, QB, 1, kp + b * E * KB, KB, E * KB, E, 1, acc);
        for (int c = 0; c < nb; c++)
            for (int r = 0; r < rows; r++)
                _mm512_storeu_ps(s + r * stride + (b + c) * KB, _mm512_mul_ps(acc[c * QB + r], vs));
    }
}

/* out[r] = sum_j p[r][j] v[j] / total[r] from value pairs (vp[i][d] = (v[2i][d], v[2i+1][d])); p rounded to
   bf16 pairs into pp (scratch, QB rows of keys / 2 + 1 pairs; rows past `rows` zero). */
static void pair_values(const float* p, int64_t rows, int64_t stride, const uint32_t* vp, int64_t keys, int64_t D,
                        const float* total, uint32_t* pp, uint16_t* out, int64_t out_stride) {
    int64_t half = (keys + 1) / 2;
    for (int64_t r = 0; r < QB; r++) {  /* bf16 probabilities in order: pair i = (p[2i], p[2i+1]) */
        uint16_t* row = (uint16_t*)(pp + r * half);
        int64_t j = 0;
        for (; r < rows && j + 16 <= keys; j += 16)
            _mm256_storeu_si256((__m256i*)(row + j), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(p + r * stride + j)));
        for (; j < 2 * half; j++) row[j] = r < rows && j < keys ? f32_to_bf16(p[r * stride + j]) : 0;
    }
    for (int64_t d0 = 0; d0 < D; d0 += 2 * KB) {
        __m512 acc[2 * QB];
        int nb = D - d0 >= 2 * KB ? 2 : 1;
        if (nb == 2) pair_products(pp, 1, half, vp + d0, D, KB, half, 2, acc);
        else pair_products(pp, 1, half, vp + d0, D, KB, half, 1, acc);
        for (int c = 0; c < nb; c++)
            for (int r = 0; r < rows; r++)
                _mm256_storeu_si256((__m256i*)(out + r * out_stride + d0 + c * KB),
                                    (__m256i)_mm512_cvtneps_pbh(_mm512_mul_ps(acc[c * QB + r], _mm512_set1_ps(1.0f / total[r]))));
    }
}
#else
#define PAIRS 0
#endif

/* invariant set: each row by attend_head, the decode step's own attention (see attn_prefill_rows); else the
   blocked kernels above.
   q: [L, H, D] rows of the new positions start .. start+L-1 (their keys/values already in the cache);
   k, v cache: [KVH, S, D]; out: [L, H, D]; all bf16, or all float32 with f32 set. out[i, h] = softmax_j<=start+i(scale * q.k_j
   + slope[h] * (j - (start + i))) . v_j, with g = h / (H / KVH); slopes: [H] (ALiBi) or NULL. */
static int attn_prefill_rows(const void* q, const void* kc, const void* vc, void* out, int64_t H, int64_t KVH,
                             int64_t S, int64_t start, int64_t L, int64_t D, float scale, const float* slopes, int f32);

int attn_prefill(const void* q, const void* kc, const void* vc, void* out, int64_t H, int64_t KVH, int64_t S,
                  int64_t start, int64_t L, int64_t D, float scale, const float* slopes, int f32, int invariant) {
    if (invariant) {
        int tiled = attn_prefill_tiles(q, kc, vc, out, H, KVH, S, start, L, D, scale, slopes, f32);
        return tiled != -2 ? tiled : attn_prefill_rows(q, kc, vc, out, H, KVH, S, start, L, D, scale, slopes, f32);
    }
    int64_t group = H / KVH, end = start + L, padded = (end + KB - 1) / KB * KB;
    int pairs = PAIRS && !f32 && D % 16 == 0 && D <= 256;
    const int64_t elem = f32 ? 4 : 2;
    int failed = 0;
    #pragma omp parallel
    {
        float* kt = (float*)malloc(sizeof(float) * (size_t)(padded * D));  /* packed keys (either form) */
        uint32_t* vp = pairs ? (uint32_t*)malloc(sizeof(uint32_t) * (size_t)((padded / 2 + 1) * D)) : NULL;
        uint32_t* pp = pairs ? (uint32_t*)malloc(sizeof(uint32_t) * (size_t)(QB * (padded / 2 + 1))) : NULL;
        float* s = (float*)malloc(sizeof(float) * (size_t)(QB * padded));
        float* qf = (float*)malloc(sizeof(float) * (size_t)(QB * D));
        float total[QB];
        int64_t packed_group = -1;
        if (!kt || !s || !qf || (pairs && (!vp || !pp))) {
            #pragma omp atomic write
            failed = 1;
        }
        #pragma omp barrier
        #pragma omp for schedule(dynamic, 1)
        for (int64_t h = 0; h < (failed ? 0 : H); h++) {
            int64_t g = h / group;
            const char* kh = (const char*)kc + g * S * D * elem;
            const char* vh = (const char*)vc + g * S * D * elem;
            if (g != packed_group) {
#if PAIRS
                if (pairs) {
                    pack_key_pairs((const uint16_t*)kh, end, D, (uint32_t*)kt);
                    pack_value_pairs((const uint16_t*)vh, end, D, vp);
                } else
#endif
                pack_keys(kh, end, D, kt, f32);
                packed_group = g;
            }
            float slope = slopes ? slopes[h] : 0.0f;
            for (int64_t i0 = 0; i0 < L; i0 += QB) {
                int64_t rows = L - i0 < QB ? L - i0 : QB, keys = start + i0 + rows;
                const char* qb = (const char*)q + (i0 * H + h) * D * elem;
                char* ob = (char*)out + (i0 * H + h) * D * elem;
#if PAIRS
                if (pairs) pair_scores((const uint16_t*)qb, H * D, rows, (const uint32_t*)kt, keys, D, scale, padded, s);
                else
#endif
                {
                    for (int64_t r = 0; r < rows; r++)
                        for (int64_t d = 0; d < D; d++) qf[r * D + d] = load(qb, r * H * D + d, f32) * scale;
                    block_scores(qf, rows, kt, keys, D, padded, s);
                }
                for (int64_t r = 0; r < rows; r++) {
                    float* sr = s + r * padded;
                    int64_t pos = start + i0 + r;
                    if (slopes)
                        for (int64_t j = 0; j <= pos; j++) sr[j] += slope * (float)(j - pos);
                    total[r] = exp_shift_sum(sr, pos + 1, row_max(sr, pos + 1));
                    for (int64_t j = pos + 1; j < keys; j++) sr[j] = 0.0f;  /* the causal mask */
                }
#if PAIRS
                if (pairs) pair_values(s, rows, padded, vp, keys, D, total, pp, (uint16_t*)ob, H * D);
                else
#endif
                block_values(s, rows, padded, vh, keys, D, total, ob, H * D, f32);
            }
        }
        free(kt); free(vp); free(pp); free(s); free(qf);
    }
    return failed ? -1 : 0;
}

/* The batch-invariant form of attn_prefill: every (row, head) is one call of attend_head over its keys
   0 .. start + i, the decode step's code, so a position's attention output is the same bits whether it is
   computed in a prefill of any length, after a cached prefix, or as one decode step. Slower than the blocked
   kernels on long prompts (no key or query blocking); the linear layers dominate prefill up to a few
   thousand positions. */
static int attn_prefill_rows(const void* q, const void* kc, const void* vc, void* out, int64_t H, int64_t KVH,
                             int64_t S, int64_t start, int64_t L, int64_t D, float scale, const float* slopes, int f32) {
    int64_t group = H / KVH, end = start + L;
    int failed = 0;
    #pragma omp parallel if (H * L * end * D >= PARALLEL_MIN)
    {
        HeadScratch t;
        if (!head_scratch_alloc(&t, end, D)) {
            #pragma omp atomic write
            failed = 1;
        }
        #pragma omp barrier
        #pragma omp for collapse(2) schedule(dynamic, 4)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < L; i++) {
                if (failed) continue;
                int64_t g = h / group;
                attend_head(element(q, (i * H + h) * D, f32), element(kc, g * S * D, f32), element(vc, g * S * D, f32),
                            start + i + 1, D, scale, slopes ? slopes[h] : 0.0f, t.p, t.qf, t.acc,
                            (void*)element(out, (i * H + h) * D, f32), f32);
            }
        head_scratch_free(&t);
    }
    return failed ? -1 : 0;
}
