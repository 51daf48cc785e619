/* Causal attention of a block of new positions over a bf16 KV cache (prefill, with or without a cached
   prefix), in float32: scores by register-blocked FMAs over keys packed 16 at a time, then softmax, then
   the weighted sum of values. Torch's CPU SDPA takes an explicit mask for a prefix (query i at position
   start + i sees keys 0 .. start + i), and its masked and bf16 paths run far below GEMM speed here. */
#include "common.h"

#define QB 8    /* query rows per block: 8 accumulators of 16 keys each */
#define KB 16   /* keys per packed block (one AVX-512 register of float32) */

/* kt[b][d][c] = k[b*KB + c][d] as float32, zero past `keys`. */
static void pack_keys(const uint16_t* k, int64_t keys, int64_t D, float* kt) {
    for (int64_t b = 0; b * KB < keys; b++)
        for (int64_t c = 0; c < KB; c++) {
            int64_t j = b * KB + c;
            for (int64_t d = 0; d < D; d++) kt[(b * D + d) * KB + c] = j < keys ? bf16_to_f32(k[j * D + d]) : 0.0f;
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

/* out[r] = sum_j p[r][j] v[j] / total[r] for rows r < rows, keys j < keys (v: bf16 [keys, D]). */
static void block_values(const float* p, int64_t rows, int64_t stride, const uint16_t* v, int64_t keys, int64_t D,
                         const float* total, uint16_t* out, int64_t out_stride) {
    for (int64_t d0 = 0; d0 < D; d0 += 16) {
        int64_t width = D - d0 < 16 ? D - d0 : 16;
#if defined(__AVX512F__)
        if (width == 16) {
            __m512 acc[QB];
            for (int r = 0; r < QB; r++) acc[r] = _mm512_setzero_ps();
            for (int64_t j = 0; j < keys; j++) {
                __m512 vv = _mm512_castsi512_ps(_mm512_slli_epi32(
                    _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)(v + j * D + d0))), 16));
                for (int r = 0; r < QB; r++)
                    if (r < rows) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(p[r * stride + j]), vv, acc[r]);
            }
            for (int r = 0; r < rows; r++) {
                float lane[16];
                _mm512_storeu_ps(lane, _mm512_mul_ps(acc[r], _mm512_set1_ps(1.0f / total[r])));
                for (int c = 0; c < 16; c++) out[r * out_stride + d0 + c] = f32_to_bf16(lane[c]);
            }
            continue;
        }
#endif
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < width; c++) {
                float a = 0.0f;
                for (int64_t j = 0; j < keys; j++) a += p[r * stride + j] * bf16_to_f32(v[j * D + d0 + c]);
                out[r * out_stride + d0 + c] = f32_to_bf16(a / total[r]);
            }
    }
}

/* q: [L, H, D] bf16 rows of the new positions start .. start+L-1 (their keys/values already in the cache);
   k, v cache: [KVH, S, D] bf16; out: [L, H, D] bf16. out[i, h] = softmax_j<=start+i(scale * q.k_j
   + slope[h] * (j - (start + i))) . v_j, with g = h / (H / KVH); slopes: [H] (ALiBi) or NULL. */
void attn_prefill_bf16(const uint16_t* q, const uint16_t* kc, const uint16_t* vc, uint16_t* out, int64_t H,
                       int64_t KVH, int64_t S, int64_t start, int64_t L, int64_t D, float scale, const float* slopes) {
    int64_t group = H / KVH, end = start + L, padded = (end + KB - 1) / KB * KB;
    #pragma omp parallel
    {
        float* kt = (float*)malloc(sizeof(float) * (size_t)(padded * D));
        float* s = (float*)malloc(sizeof(float) * (size_t)(QB * padded));
        float* qf = (float*)malloc(sizeof(float) * (size_t)(QB * D));
        float total[QB];
        int64_t packed_group = -1;
        #pragma omp for schedule(dynamic, 1)
        for (int64_t h = 0; h < H; h++) {
            int64_t g = h / group;
            const uint16_t* kh = kc + g * S * D;
            const uint16_t* vh = vc + g * S * D;
            if (g != packed_group) { pack_keys(kh, end, D, kt); packed_group = g; }
            float slope = slopes ? slopes[h] : 0.0f;
            for (int64_t i0 = 0; i0 < L; i0 += QB) {
                int64_t rows = L - i0 < QB ? L - i0 : QB, keys = start + i0 + rows;
                for (int64_t r = 0; r < rows; r++)
                    for (int64_t d = 0; d < D; d++) qf[r * D + d] = bf16_to_f32(q[((i0 + r) * H + h) * D + d]) * scale;
                block_scores(qf, rows, kt, keys, D, padded, s);
                for (int64_t r = 0; r < rows; r++) {
                    float* sr = s + r * padded;
                    int64_t pos = start + i0 + r;
                    float m = -3.0e38f;
                    for (int64_t j = 0; j <= pos; j++) {
                        if (slopes) sr[j] += slope * (float)(j - pos);
                        if (sr[j] > m) m = sr[j];
                    }
                    total[r] = exp_shift_sum(sr, pos + 1, m);
                    for (int64_t j = pos + 1; j < keys; j++) sr[j] = 0.0f;  /* the causal mask */
                }
                block_values(s, rows, padded, vh, keys, D, total, out + (i0 * H + h) * D, H * D);
            }
        }
        free(kt); free(s); free(qf);
    }
}
