/* Shared helpers of the CPU kernels: bf16 conversion, row dot products, exp, one attention head, RMSNorm. */
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <math.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* Work (weights or cache elements) below which a call stays on one thread. Rows go to threads in
   dynamic chunks, so a thread preempted by another program does not hold the others at the barrier for
   long; small calls skip the team altogether: on a busy machine every parallel region risks such a wait. */
#define PARALLEL_MIN (1 << 20)

static inline float bf16_to_f32(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }
static inline uint16_t f32_to_bf16(float f) {
    uint32_t u; memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);  /* NaN stays NaN */
    u += 0x7fffu + ((u >> 16) & 1u);                                             /* round to nearest even */
    return (uint16_t)(u >> 16);
}
/* A float rounded to bf16 precision, as a torch bf16 op stores its result. */
static inline float round_bf16(float f) { return bf16_to_f32(f32_to_bf16(f)); }
/* Activations and caches hold bf16, or float32 in a float32 model (f32 set): element i as a float, element
   i stored (rounded to bf16 unless f32), a product rounded as the model's dtype stores it, element i's address. */
static inline float load(const void* p, int64_t i, int f32) {
    return f32 ? ((const float*)p)[i] : bf16_to_f32(((const uint16_t*)p)[i]);
}
static inline void store(void* y, int f32, int64_t n, float v) {
    if (f32) ((float*)y)[n] = v; else ((uint16_t*)y)[n] = f32_to_bf16(v);
}
/* Order pins. The kernels are built with -fassociative-math and fused multiply-adds allowed, so the compiler
   may regroup a float sum or product, or fuse a product into a sum, differently in each place it inlines
   the same code. A value passed through PIN is computed as written before it is used: the decode step, the
   matrix-vector products and the prefill products then round every output the same way (batch invariance:
   a position's result does not depend on how many positions are computed together). */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define PIN(v) __asm__("" : "+x"(v))
#if defined(__AVX512F__)
#define PIN512(v) __asm__("" : "+v"(v))
#endif
#else
#define PIN(v) do { volatile float pin_ = (v); (v) = pin_; } while (0)
#endif
static inline float round_to(float v, int f32) {
    if (!f32) return round_bf16(v);
    PIN(v);  /* float32: no fused multiply-add across this rounding point (torch rounds each op) */
    return v;
}
/* An exact integer sum of int8 weights and int16 activations as float: (sum * activation scale) * row scale. */
static inline float int_scaled(int32_t s, float xs, float row_scale) {
    float v = (float)s * xs;
    PIN(v);
    return v * row_scale;
}
static inline const void* element(const void* p, int64_t i, int f32) { return (const char*)p + i * (f32 ? 4 : 2); }

#if defined(__AVX512F__)
/* 16 bf16 values widened to float32 (exact: bf16 is the top half of a float32). */
static inline __m512 bf16x16_to_f32(const uint16_t* p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)p)), 16));
}
/* 16 elements from i on, as float32 (see load). */
static inline __m512 load16(const void* p, int64_t i, int f32) {
    return f32 ? _mm512_loadu_ps((const float*)p + i) : bf16x16_to_f32((const uint16_t*)p + i);
}
#endif

#if defined(__AVX512F__)
/* (a0 + a1) + (a2 + a3), grouped as written (tile_bf16's four accumulators; the prefill product repeats it). */
static inline __m512 combine4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
    __m512 s01 = _mm512_add_ps(a0, a1), s23 = _mm512_add_ps(a2, a3);
    PIN512(s01);
    PIN512(s23);
    return _mm512_add_ps(s01, s23);
}
#endif

#if defined(__AVX2__)
/* The 8 lanes' sum, in lane order. */
static inline float hsum256(__m256 v) {
    float t[8];
    _mm256_storeu_ps(t, v);
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}
#endif

/* Dot product of one float32 weight row with float32 x. */
static inline float dot_f32(const float* w, const float* x, int64_t K) {
    int64_t k = 0;
    float s = 0.0f;
#if defined(__AVX512F__)
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (; k + 64 <= K; k += 64) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + k), _mm512_loadu_ps(x + k), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + k + 16), _mm512_loadu_ps(x + k + 16), a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w + k + 32), _mm512_loadu_ps(x + k + 32), a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w + k + 48), _mm512_loadu_ps(x + k + 48), a3);
    }
    for (; k + 16 <= K; k += 16) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + k), _mm512_loadu_ps(x + k), a0);
    s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
#elif defined(__AVX2__) && defined(__FMA__)
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    for (; k + 16 <= K; k += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k), _mm256_loadu_ps(x + k), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k + 8), _mm256_loadu_ps(x + k + 8), a1);
    }
    s = hsum256(_mm256_add_ps(a0, a1));
#endif
    for (; k < K; k++) s += w[k] * x[k];
    return s;
}

/* Dot product of one bf16 weight row with bf16 x (xf: the same x in float32, for CPUs without
   AVX-512-BF16). Rows are walked one at a time, so each thread reads one contiguous stretch of the
   matrix: the access pattern hardware prefetchers stream best. */
static inline float dot_bf16(const uint16_t* w, const uint16_t* x, const float* xf, int64_t K) {
    int64_t k = 0;
    float s = 0.0f;
#if defined(__AVX512BF16__)
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (; k + 128 <= K; k += 128) {
        a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_loadu_si512(w + k), (__m512bh)_mm512_loadu_si512(x + k));
        a1 = _mm512_dpbf16_ps(a1, (__m512bh)_mm512_loadu_si512(w + k + 32), (__m512bh)_mm512_loadu_si512(x + k + 32));
        a2 = _mm512_dpbf16_ps(a2, (__m512bh)_mm512_loadu_si512(w + k + 64), (__m512bh)_mm512_loadu_si512(x + k + 64));
        a3 = _mm512_dpbf16_ps(a3, (__m512bh)_mm512_loadu_si512(w + k + 96), (__m512bh)_mm512_loadu_si512(x + k + 96));
    }
    for (; k + 32 <= K; k += 32)
        a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_loadu_si512(w + k), (__m512bh)_mm512_loadu_si512(x + k));
    s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
#elif defined(__AVX512F__)
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
    for (; k + 32 <= K; k += 32) {
        a0 = _mm512_fmadd_ps(bf16x16_to_f32(w + k), _mm512_loadu_ps(xf + k), a0);
        a1 = _mm512_fmadd_ps(bf16x16_to_f32(w + k + 16), _mm512_loadu_ps(xf + k + 16), a1);
    }
    s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
#elif defined(__AVX2__) && defined(__FMA__)
#define BF(p) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)(p))), 16))
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    for (; k + 16 <= K; k += 16) {
        a0 = _mm256_fmadd_ps(BF(w + k), _mm256_loadu_ps(xf + k), a0);
        a1 = _mm256_fmadd_ps(BF(w + k + 8), _mm256_loadu_ps(xf + k + 8), a1);
    }
    s = hsum256(_mm256_add_ps(a0, a1));
#undef BF
#endif
    for (; k < K; k++) s += bf16_to_f32(w[k]) * xf[k];
    return s;
}

/* Dot product of one int8 weight row with x held as int16 (exact integer arithmetic, int32 sums). */
static inline int64_t dot_int8(const int8_t* q, const int16_t* x, int64_t K) {
    int64_t k = 0, s = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__)
    __m512i a0 = _mm512_setzero_si512(), a1 = a0;
    for (; k + 64 <= K; k += 64) {
#if defined(__AVX512VNNI__)
        a0 = _mm512_dpwssd_epi32(a0, _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i*)(q + k))),
                                 _mm512_loadu_si512(x + k));
        a1 = _mm512_dpwssd_epi32(a1, _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i*)(q + k + 32))),
                                 _mm512_loadu_si512(x + k + 32));
#else
        a0 = _mm512_add_epi32(a0, _mm512_madd_epi16(_mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i*)(q + k))),
                                                    _mm512_loadu_si512(x + k)));
        a1 = _mm512_add_epi32(a1, _mm512_madd_epi16(_mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i*)(q + k + 32))),
                                                    _mm512_loadu_si512(x + k + 32)));
#endif
    }
    s = _mm512_reduce_add_epi32(_mm512_add_epi32(a0, a1));
#elif defined(__AVX2__)
    __m256i a0 = _mm256_setzero_si256();
    for (; k + 16 <= K; k += 16)
        a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)(q + k))),
                                                    _mm256_loadu_si256((const __m256i*)(x + k))));
    int32_t t[8];
    _mm256_storeu_si256((__m256i*)t, a0);
    s = (int64_t)t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
#endif
    for (; k < K; k++) s += (int32_t)q[k] * x[k];
    return s;
}

/* Packed matrices (int8, or bf16 on CPUs with AVX-512-BF16): 16 rows at a time, interleaved by column pairs,
   Q[t][e][l][c] = W[16t + l][2e + c] (N % 16 == 0, K even). A product then takes one broadcast activation
   pair, and the 16 rows' sums come out of one vector: a row-major dot product needs a 64-byte activation
   load per weight vector instead, and at high bandwidth those loads hold a core well below the bus
   (scripts/gemv_layouts.py). */
#define TILE 16

/* The int32 sums of tile t's 16 rows with x held as int16 (exact, as dot_int8). */
static inline void tile_int8(const int8_t* Q, int64_t t, int64_t K, const int16_t* x, int32_t* out) {
    const int8_t* w = Q + t * TILE * K;
    const int64_t E = K / 2;
    int64_t e = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__)
    const uint32_t* xp = (const uint32_t*)x;
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
#if defined(__AVX512VNNI__)
#define PAIR_DOT(acc, i) acc = _mm512_dpwssd_epi32(acc, _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i*)(w + (i) * 32))), \
                                                 _mm512_set1_epi32((int)xp[i]))
#else
#define PAIR_DOT(acc, i) acc = _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i*)(w + (i) * 32))), \
                                                                     _mm512_set1_epi32((int)xp[i])))
#endif
    for (; e + 4 <= E; e += 4) { PAIR_DOT(a0, e); PAIR_DOT(a1, e + 1); PAIR_DOT(a2, e + 2); PAIR_DOT(a3, e + 3); }
    for (; e < E; e++) PAIR_DOT(a0, e);
#undef PAIR_DOT
    _mm512_storeu_si512(out, _mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)));
    return;
#endif
    for (int l = 0; l < TILE; l++) out[l] = 0;
    for (; e < E; e++)
        for (int l = 0; l < TILE; l++)
            out[l] += (int32_t)w[(e * TILE + l) * 2] * x[2 * e] + (int32_t)w[(e * TILE + l) * 2 + 1] * x[2 * e + 1];
}

/* The float32 sums of packed bf16 tile t's 16 rows (W[t][e][l][c] = row 16t + l, column 2e + c) with bf16 x. */
static inline void tile_bf16(const uint16_t* W, int64_t t, int64_t K, const uint16_t* x, float* out) {
    const uint32_t* w = (const uint32_t*)(W + t * TILE * K);
    const int64_t E = K / 2;
    int64_t e = 0;
#if defined(__AVX512BF16__)
    const uint32_t* xp = (const uint32_t*)x;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
#define PAIR_DOT(acc, i) acc = _mm512_dpbf16_ps(acc, (__m512bh)_mm512_loadu_si512(w + (i) * TILE), \
                                                (__m512bh)_mm512_set1_epi32((int)xp[i]))
    for (; e + 4 <= E; e += 4) { PAIR_DOT(a0, e); PAIR_DOT(a1, e + 1); PAIR_DOT(a2, e + 2); PAIR_DOT(a3, e + 3); }
    for (; e < E; e++) PAIR_DOT(a0, e);
#undef PAIR_DOT
    _mm512_storeu_ps(out, combine4(a0, a1, a2, a3));
    return;
#endif
    const uint16_t* h = (const uint16_t*)w;
    for (int l = 0; l < TILE; l++) out[l] = 0.0f;
    for (; e < E; e++)
        for (int l = 0; l < TILE; l++)
            out[l] += bf16_to_f32(h[(e * TILE + l) * 2]) * bf16_to_f32(x[2 * e])
                      + bf16_to_f32(h[(e * TILE + l) * 2 + 1]) * bf16_to_f32(x[2 * e + 1]);
}

/* bf16 x as int16 with one scale (max|x| -> 16383), for dot_int8; returns the scale. 14 bits for the
   largest entries, more than bf16's 8; int32 sums cannot overflow for K <= 16384
   (2 * 127 * 16383 * K / 32 < 2^31). */
static inline float quantize_activation(const uint16_t* x, int64_t K, int16_t* xq) {
    float amax = 0.0f;
    int64_t k = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__)
    __m512 m = _mm512_setzero_ps();
    for (; k + 16 <= K; k += 16) m = _mm512_max_ps(m, _mm512_abs_ps(bf16x16_to_f32(x + k)));
    amax = _mm512_reduce_max_ps(m);
#endif
    for (; k < K; k++) { float v = fabsf(bf16_to_f32(x[k])); if (v > amax) amax = v; }
    float xs = amax > 0.0f ? amax / 16383.0f : 1.0f, inv = 1.0f / xs;
    k = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__)
    const __m512 vinv = _mm512_set1_ps(inv);
    for (; k + 16 <= K; k += 16)  /* round to nearest even, as lrintf does in the default mode */
        _mm256_storeu_si256((__m256i*)(xq + k),
                            _mm512_cvtsepi32_epi16(_mm512_cvtps_epi32(_mm512_mul_ps(bf16x16_to_f32(x + k), vinv))));
#endif
    for (; k < K; k++) xq[k] = (int16_t)lrintf(bf16_to_f32(x[k]) * inv);
    return xs;
}

/* max of p[0 .. n-1] (n >= 1). */
static inline float row_max(const float* p, int64_t n) {
    float m = p[0];
    int64_t j = 0;
#if defined(__AVX512F__)
    if (n >= 16) {
        __m512 v = _mm512_loadu_ps(p);
        for (j = 16; j + 16 <= n; j += 16) v = _mm512_max_ps(v, _mm512_loadu_ps(p + j));
        m = _mm512_reduce_max_ps(v);
    }
#endif
    for (; j < n; j++) m = p[j] > m ? p[j] : m;
    return m;
}

/* p[j] = exp(p[j] - m) for j < n; returns the sum. AVX-512: range reduction to [-ln2/2, ln2/2] and a
   degree-6 polynomial (relative error ~2e-7), 16 lanes at a time; elsewhere the C library's expf. */
static inline float exp_shift_sum(float* p, int64_t n, float m) {
    int64_t j = 0;
    float sum = 0.0f;
#if defined(__AVX512F__)
    const __m512 mm = _mm512_set1_ps(m), lo = _mm512_set1_ps(-87.0f), log2e = _mm512_set1_ps(1.44269504088896341f);
    const __m512 ln2_hi = _mm512_set1_ps(0.693145751953125f), ln2_lo = _mm512_set1_ps(1.42860682030941723e-6f);
    __m512 total = _mm512_setzero_ps();
    for (; j + 16 <= n; j += 16) {
        __m512 x = _mm512_max_ps(_mm512_sub_ps(_mm512_loadu_ps(p + j), mm), lo);
        __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m512 r = _mm512_fnmadd_ps(k, ln2_lo, _mm512_fnmadd_ps(k, ln2_hi, x));
        __m512 e = _mm512_set1_ps(1.0f / 720.0f);
        e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(1.0f / 120.0f));
        e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(1.0f / 24.0f));
        e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(1.0f / 6.0f));
        e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(0.5f));
        e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(1.0f));
        e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(1.0f));
        e = _mm512_scalef_ps(e, k);
        _mm512_storeu_ps(p + j, e);
        total = _mm512_add_ps(total, e);
    }
    sum = _mm512_reduce_add_ps(total);
#endif
    for (; j < n; j++) { float e = expf(p[j] - m); p[j] = e; sum += e; }
    return sum;
}

/* Per-thread scratch of attend_head: scores for L positions, the query and the accumulator in float32. */
typedef struct { float *p, *qf, *acc; } HeadScratch;

/* 1 when all three buffers were allocated (free with head_scratch_free either way). */
static inline int head_scratch_alloc(HeadScratch* h, int64_t L, int64_t D) {
    h->p = (float*)malloc(sizeof(float) * (size_t)(L + 16));
    h->qf = (float*)malloc(sizeof(float) * (size_t)(D + 16));
    h->acc = (float*)malloc(sizeof(float) * (size_t)(D + 16));
    return h->p && h->qf && h->acc;
}
static inline void head_scratch_free(HeadScratch* h) { free(h->p); free(h->qf); free(h->acc); }

/* The operations every path shares, defined once (kernels.c) so that each is the same machine code wherever it
   runs: one row of attention (decode, and each row of the invariant prefill), RMSNorm of one row, a float32 dot
   product, and the SiLU-gated unit. See kernels.c. */
void attend_head(const void* q, const void* k, const void* v, int64_t L, int64_t D, float scale, float slope,
                 float* p, float* qf, float* acc, void* out, int f32);
void rmsnorm_row(const void* x, const void* w, void* out, int64_t n, float eps, int f32);
float dot_f32_row(const float* w, const float* x, int64_t K);
float dot_bf16_row(const uint16_t* w, const uint16_t* x, const float* xf, int64_t K);
float gated_unit(float g, float u, int f32);
/* attention_rows.c: attend_head's AVX-512 form (1 when it ran) and the prefill's tiled twin of it. */
int attend_head_fast(const void* q, const void* k, const void* v, int64_t L, int64_t D, float scale, float slope,
                     float* p, float* acc, void* out, int f32);
int attn_prefill_tiles(const void* q, const void* kc, const void* vc, void* out, int64_t H, int64_t KVH, int64_t S,
                       int64_t start, int64_t L, int64_t D, float scale, const float* slopes, int f32);
