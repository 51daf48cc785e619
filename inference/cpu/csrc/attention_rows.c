/* Batch-invariant attention with AVX-512 (head size a multiple of 16, at most 256): one code for the decode
   step's attend_head (one query row) and the prefill's tiles of query rows, so that a row's output is the same
   bits in a prefill of any length, after a cached prefix, or as one decode step.

   Per row and key the order is fixed: the dot product is one chain over the head dimension (vdpbf16ps on
   bf16 pairs, 32 dimensions a step, or float32 FMAs, 16 a step) into 16 lane partials, and the 16 lanes are
   summed by one fixed tree (att_reduce16, which sums 16 keys' lanes together: a transposing reduction, no
   horizontal sum per key); score = fma(dot, scale, slope * (j - pos)); softmax by att_softmax (one
   definition); out = (sum_j p_j v_j in key order, float32 FMAs) * (1 / sum_j p_j). The prefill reuses each
   block of 16 keys across the rows of a tile (from L1) and each value vector across 4 rows (in registers). */
#include "common.h"

#if defined(__AVX512F__) && defined(__AVX512BW__)

/* One head's query as the dot product's vectors: bf16 as 32-element pair vectors (AVX-512-BF16), else float32
   vectors of 16. */
typedef struct { __m512 v[16]; int64_t n; __mmask32 tail; } AttQ;

static inline void att_load_q(AttQ* a, const void* q, int64_t D, int f32) {
#if defined(__AVX512BF16__)
    if (!f32) {
        a->n = (D + 31) / 32;
        a->tail = D % 32 ? (__mmask32)0xffffu : (__mmask32)0xffffffffu;
        for (int64_t c = 0; c < a->n; c++)
            a->v[c] = _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(c + 1 < a->n ? (__mmask32)0xffffffffu : a->tail,
                                                                  (const uint16_t*)q + 32 * c));
        return;
    }
#endif
    a->n = D / 16;
    a->tail = 0;
    for (int64_t c = 0; c < a->n; c++) a->v[c] = load16(q, 16 * c, f32);
}

/* The 16 lane partials of key row k . q: one chain over the head dimension. */
static inline __attribute__((always_inline)) __m512 att_lanes(const void* k, const AttQ* a, int f32) {
    __m512 s = _mm512_setzero_ps();
#if defined(__AVX512BF16__)
    if (!f32) {
        for (int64_t c = 0; c < a->n; c++) {
            __m512i kv = _mm512_maskz_loadu_epi16(c + 1 < a->n ? (__mmask32)0xffffffffu : a->tail, (const uint16_t*)k + 32 * c);
            s = _mm512_dpbf16_ps(s, (__m512bh)kv, (__m512bh)a->v[c]);
        }
        return s;
    }
#endif
    for (int64_t c = 0; c < a->n; c++) s = _mm512_fmadd_ps(load16(k, 16 * c, f32), a->v[c], s);
    return s;
}

static inline __m512 att_add(__m512 x, __m512 y) { __m512 s = _mm512_add_ps(x, y); PIN512(s); return s; }

/* Lane j of the result = the sum of x[j]'s 16 lanes, by one fixed tree: (l, l+8), then (l, l+4), then
   (l, l+2), then (l, l+1) partial sums. Inputs enter transposed in 4 x 4 (src) so that lane j comes out
   for key j. */
static inline __attribute__((always_inline)) __m512 att_reduce16(const __m512* x) {
#define SRC(i) x[((i) & 3) * 4 + ((i) >> 2)]
    __m512 b[8], c[4], d[2];
    for (int i = 0; i < 8; i++)  /* b[i] = 128-bit chunks [A(q0+q2), A(q1+q3), B(q0+q2), B(q1+q3)] */
        b[i] = att_add(_mm512_shuffle_f32x4(SRC(2 * i), SRC(2 * i + 1), 0x44),
                       _mm512_shuffle_f32x4(SRC(2 * i), SRC(2 * i + 1), 0xEE));
    for (int i = 0; i < 4; i++)  /* one 4-lane chunk per source */
        c[i] = att_add(_mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    for (int i = 0; i < 2; i++)  /* two lanes per source */
        d[i] = att_add(_mm512_shuffle_ps(c[2 * i], c[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                       _mm512_shuffle_ps(c[2 * i], c[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    return att_add(_mm512_shuffle_ps(d[0], d[1], _MM_SHUFFLE(2, 0, 2, 0)),
                   _mm512_shuffle_ps(d[0], d[1], _MM_SHUFFLE(3, 1, 3, 1)));
#undef SRC
}

/* out[j] = fma(k_j . q, scale, slope * (j + rel0)) for the n <= 16 keys at k (rel0: the first key's position
   minus the query's). */
static inline __attribute__((always_inline)) void att_scores(const void* k, const AttQ* a, int64_t n, int64_t D,
                                                             int f32, float scale, float slope, int64_t rel0,
                                                             float* out) {
    __m512 l[16];
    for (int j = 0; j < 16; j++) l[j] = j < n ? att_lanes(element(k, j * D, f32), a, f32) : _mm512_setzero_ps();
    __m512 dots = att_reduce16(l);
    __m512 rel = _mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_set1_epi32((int)rel0),
                                                     _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)));
    __m512 bias = _mm512_mul_ps(_mm512_set1_ps(slope), rel);
    PIN512(bias);
    _mm512_mask_storeu_ps(out, (__mmask16)((1u << n) - 1), _mm512_fmadd_ps(dots, _mm512_set1_ps(scale), bias));
}

/* Scores of keys 0 .. n-1 (key block j0 of a row at position n - 1). */
static inline __attribute__((always_inline)) void att_score_block(const void* k, const AttQ* a, int64_t j0, int64_t n,
                                                                  int64_t D, int f32, float scale, float slope, float* p) {
    att_scores(element(k, j0 * D, f32), a, n - j0 < 16 ? n - j0 : 16, D, f32, scale, slope, j0 - (n - 1), p + j0);
}

/* p[j] = exp(p[j] - max p) for j < n; returns their sum. One definition for every row. */
__attribute__((noinline)) static float att_softmax(float* p, int64_t n) { return exp_shift_sum(p, n, row_max(p, n)); }

/* out[d] = acc[d] * inv, stored as the model's dtype. */
__attribute__((noinline)) static void att_store(void* out, const float* acc, int64_t D, float inv, int f32) {
    for (int64_t d = 0; d < D; d++) store(out, f32, d, acc[d] * inv);
}

/* attend_head (kernels.c) for D % 16 == 0, D <= 256 with AVX-512: returns 1 when it computed out, else 0. */
__attribute__((noinline)) int attend_head_fast(const void* q, const void* k, const void* v, int64_t L, int64_t D,
                                               float scale, float slope, float* p, float* acc, void* out, int f32) {
    if (D % 16 || D > 256) return 0;
    AttQ a;
    att_load_q(&a, q, D, f32);
    for (int64_t j0 = 0; j0 < L; j0 += 16) att_score_block(k, &a, j0, L, D, f32, scale, slope, p);
    float sum = att_softmax(p, L);
    __m512 s[16];
    int64_t nv = D / 16;
    for (int64_t i = 0; i < nv; i++) s[i] = _mm512_setzero_ps();
    for (int64_t j = 0; j < L; j++) {
        __m512 pj = _mm512_set1_ps(p[j]);
        for (int64_t i = 0; i < nv; i++) s[i] = _mm512_fmadd_ps(pj, load16(v, j * D + 16 * i, f32), s[i]);
    }
    for (int64_t i = 0; i < nv; i++) _mm512_storeu_ps(acc + 16 * i, s[i]);
    att_store(out, acc, D, 1.0f / sum, f32);
    return 1;
}

#define TR 4  /* query rows per tile */

/* One tile: rows i0 .. i0 + R - 1 (R <= TR) of head h, at positions pos0 .. pos0 + R - 1; q, out: their first
   row's head h (row stride qs elements); k, v: the head's cache rows; P: TR score rows of stride ps; acc: TR x D. */
static void att_tile(const void* q, int64_t qs, const void* k, const void* v, int64_t pos0, int64_t R, int64_t D,
                     float scale, float slope, float* P, int64_t ps, float* acc, void* out, int f32) {
    AttQ a[TR];
    float sum[TR];
    for (int64_t r = 0; r < R; r++) att_load_q(&a[r], element(q, r * qs, f32), D, f32);
    int64_t last = pos0 + R;  /* keys of the last row */
    for (int64_t j0 = 0; j0 < last; j0 += 16)  /* each block of keys from L1 for every row */
        for (int64_t r = 0; r < R; r++)
            if (j0 <= pos0 + r) att_score_block(k, &a[r], j0, pos0 + r + 1, D, f32, scale, slope, P + r * ps);
    for (int64_t r = 0; r < R; r++) sum[r] = att_softmax(P + r * ps, pos0 + r + 1);
    for (int64_t w0 = 0; w0 < D / 16; w0 += 4) {  /* 4 value vectors x TR rows of sums in registers */
        int64_t W = D / 16 - w0 < 4 ? D / 16 - w0 : 4;
        __m512 s[TR][4];
        for (int r = 0; r < TR; r++)
            for (int w = 0; w < 4; w++) s[r][w] = _mm512_setzero_ps();
        for (int64_t j = 0; j <= pos0; j++) {  /* keys every row sees */
            for (int w = 0; w < 4; w++) {
                if (w >= W) break;
                __m512 vv = load16(v, j * D + 16 * (w0 + w), f32);
                for (int r = 0; r < TR; r++)
                    if (r < R) s[r][w] = _mm512_fmadd_ps(_mm512_set1_ps(P[r * ps + j]), vv, s[r][w]);
            }
        }
        for (int r = 1; r < TR; r++)  /* the keys only the later rows see */
            for (int64_t j = pos0 + 1; r < R && j <= pos0 + r; j++)
                for (int w = 0; w < 4; w++)
                    if (w < W) s[r][w] = _mm512_fmadd_ps(_mm512_set1_ps(P[r * ps + j]), load16(v, j * D + 16 * (w0 + w), f32), s[r][w]);
        for (int r = 0; r < TR; r++)
            for (int w = 0; w < 4; w++)
                if (r < R && w < W) _mm512_storeu_ps(acc + r * D + 16 * (w0 + w), s[r][w]);
    }
    for (int64_t r = 0; r < R; r++) att_store((void*)element(out, r * qs, f32), acc + r * D, D, 1.0f / sum[r], f32);
}

/* attn_prefill's invariant form (see there) by tiles of TR rows, threads over (head, tile); -2 when this build
   or head size has no tiled path (the caller runs attend_head per row), -1 when scratch allocation failed. */
int attn_prefill_tiles(const void* q, const void* kc, const void* vc, void* out, int64_t H, int64_t KVH, int64_t S,
                       int64_t start, int64_t L, int64_t D, float scale, const float* slopes, int f32) {
    if (D % 16 || D > 256) return -2;
    int64_t group = H / KVH, end = start + L, ps = end + 16, tiles = (L + TR - 1) / TR;
    int failed = 0;
    #pragma omp parallel if (H * L * end * D >= PARALLEL_MIN)
    {
        float* P = (float*)malloc(sizeof(float) * (size_t)(TR * ps));
        float* acc = (float*)malloc(sizeof(float) * (size_t)(TR * D));
        if (!P || !acc) {
            #pragma omp atomic write
            failed = 1;
        }
        #pragma omp barrier
        #pragma omp for collapse(2) schedule(dynamic, 1)
        for (int64_t h = 0; h < H; h++)
            for (int64_t t = tiles - 1; t >= 0; t--) {  /* the longest tiles first */
                if (failed) continue;
                int64_t i0 = t * TR, R = L - i0 < TR ? L - i0 : TR, g = h / group;
                att_tile(element(q, (i0 * H + h) * D, f32), H * D, element(kc, g * S * D, f32),
                         element(vc, g * S * D, f32), start + i0, R, D, scale, slopes ? slopes[h] : 0.0f, P, ps, acc,
                         (void*)element(out, (i0 * H + h) * D, f32), f32);
            }
        free(P); free(acc);
    }
    return failed ? -1 : 0;
}

#else
int attend_head_fast(const void* q, const void* k, const void* v, int64_t L, int64_t D, float scale, float slope,
                     float* p, float* acc, void* out, int f32) {
    (void)q; (void)k; (void)v; (void)L; (void)D; (void)scale; (void)slope; (void)p; (void)acc; (void)out; (void)f32;
    return 0;
}
int attn_prefill_tiles(const void* q, const void* kc, const void* vc, void* out, int64_t H, int64_t KVH, int64_t S,
                       int64_t start, int64_t L, int64_t D, float scale, const float* slopes, int f32) {
    (void)q; (void)kc; (void)vc; (void)out; (void)H; (void)KVH; (void)S; (void)start; (void)L; (void)D; (void)scale;
    (void)slopes; (void)f32;
    return -2;
}
#endif
