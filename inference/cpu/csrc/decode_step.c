/* One whole decode step (embedding to logits) in a single parallel region: no Python or fork/join per op.

   It computes what the torch model computes for one token, rounding to bf16 wherever a torch bf16 op
   stores its result (matrix outputs, RoPE products and sums, SiLU, the gated product, residual sums),
   so it agrees with the step-by-step path to within the order of float32 summation. */
#include "int4.h"

typedef struct {              /* one weight matrix: rows in the model's dtype, int8 rows with a float32 scale each, or
                                 group-wise int4 (int4.h) */
    const void* weight;
    const void* scales;       /* NULL unless int8 (float32 per row) or int4 (fp16 per row and group) */
    int64_t rows, cols;
    int32_t packed;           /* packed by tiles of 16 rows (tile_int8, tile_bf16, tile_int4) */
    const uint16_t* mins;     /* int4 only (fp16 per row and group); NULL otherwise */
} Matrix;

/* Below, "act" tensors (norm weights, caches, RoPE tables, embedding, activations) hold bf16, or float32 in a
   float32 model (Model.f32 set); see load/store in common.h. */
typedef struct {
    const void* input_norm;
    const void* post_attention_norm;
    Matrix qkv, o, gate, up, down;
    void* k_cache;            /* [kv_heads, positions, head_dim] */
    void* v_cache;
} Layer;

typedef struct {
    int64_t layers, hidden, heads, kv_heads, head_dim, intermediate, positions;
    float eps, scale;
    const float* slopes;      /* ALiBi slopes [heads], or NULL for RoPE */
    const void* rope_cos;     /* [positions, head_dim], and the sine with its first half negated */
    const void* rope_sin;
    const void* embed;        /* [vocab, hidden] */
    const void* final_norm;
    Matrix lm_head;
    const Layer* layer;
    int32_t int8;             /* 1 when some matrix is int8 (bf16 models only): inputs then also get an int16 copy */
    int32_t f32;              /* 1 for a float32 model */
    int32_t int4;             /* 1 when some matrix is int4 (bf16 models only): inputs also get a grouped 15-bit copy */
} Model;

typedef struct {              /* a vector about to be multiplied, and its float32 or int16 copies */
    const void* x;
    float* xf;
    int16_t* xq;
    float xs;
    int f32;                  /* x is float32 (xf then equals it) */
    int8_t* xq4;              /* int4 matrices' copy: 15 bits per element (INT4_XBYTES a group), scales, scaled sums */
    float* xs4;
    float* xsum4;
} Input;

static void prepare(Input* in, const void* x, int64_t n, const Model* m) {
    in->x = x;
    in->f32 = m->f32;
    for (int64_t k = 0; k < n; k++) in->xf[k] = load(x, k, m->f32);
    if (m->int8) in->xs = quantize_activation((const uint16_t*)x, n, in->xq);
    if (m->int4) {
        int64_t kp = (n + INT4_GROUP - 1) / INT4_GROUP * INT4_GROUP;
        quantize_groups((const uint16_t*)x, n, kp, in->xq4, in->xs4, in->xsum4);
    }
}

static inline float row_dot(const Matrix* m, int64_t n, const Input* in) {
    if (m->scales)  /* int8 (int4 matrices are always packed) */
        return int_scaled((int32_t)dot_int8((const int8_t*)m->weight + n * m->cols, in->xq, m->cols), in->xs,
                          ((const float*)m->scales)[n]);
    if (in->f32)
        return dot_f32_row((const float*)m->weight + n * m->cols, in->xf, m->cols);
    return dot_bf16_row((const uint16_t*)m->weight + n * m->cols, (const uint16_t*)in->x, in->xf, m->cols);
}

/* v[l] = the product of row 16t + l with the input, for the rows of tile t that exist; returns how many. */
static inline int64_t tile_dot(const Matrix* m, int64_t t, const Input* in, float* v) {
    int64_t n0 = t * TILE, count = m->rows - n0 < TILE ? m->rows - n0 : TILE;
    if (m->mins) {
        float sums[TILE];
        int64_t kp = (m->cols + INT4_GROUP - 1) / INT4_GROUP * INT4_GROUP;
        tile_int4((const uint8_t*)m->weight, (const uint16_t*)m->scales, m->mins, t, kp, in->xq4, in->xs4, in->xsum4,
                  sums);
        for (int64_t l = 0; l < count; l++) v[l] = sums[l];
    } else if (m->packed && m->scales) {
        int32_t sums[TILE];
        tile_int8((const int8_t*)m->weight, t, m->cols, in->xq, sums);
        for (int64_t l = 0; l < count; l++) v[l] = int_scaled(sums[l], in->xs, ((const float*)m->scales)[n0 + l]);
    } else if (m->packed) {  /* bf16 */
        tile_bf16((const uint16_t*)m->weight, t, m->cols, (const uint16_t*)in->x, v);
    } else {
        for (int64_t l = 0; l < count; l++) v[l] = row_dot(m, n0 + l, in);
    }
    return count;
}

static inline int64_t tiles(int64_t rows) { return (rows + TILE - 1) / TILE; }

/* RoPE (rotate-half) of one head in place: x * cos + swap_halves(x) * signed_sin, each product rounded. */
static void rope_head(void* x, const void* cos, const void* sin, int64_t D, float* tmp, int f32) {
    int64_t half = D / 2;
    for (int64_t d = 0; d < D; d++) tmp[d] = load(x, d, f32);
    for (int64_t d = 0; d < D; d++) {
        float swapped = tmp[d < half ? d + half : d - half];
        store(x, f32, d, round_to(tmp[d] * load(cos, d, f32), f32) + round_to(swapped * load(sin, d, f32), f32));
    }
}

/* x[n] += the product of row n with the input (rounded as the model's dtype stores it), for tile t's rows. */
static inline void residual_tile(void* x, const Matrix* m, int64_t t, const Input* in, int f32) {
    float v[TILE];
    for (int64_t l = 0, c = tile_dot(m, t, in, v); l < c; l++) {
        int64_t n = t * TILE + l;
        store(x, f32, n, load(x, n, f32) + round_to(v[l], f32));
    }
}

/* logits[vocab] (float32, as summed: the step-by-step path's lm_head gives the same) for `token` at position
   `pos`; writes the KV cache at pos. */
int decode_step(const Model* m, int64_t token, int64_t pos, float* logits) {
    const int64_t H = m->heads, KVH = m->kv_heads, D = m->head_dim, hidden = m->hidden, inter = m->intermediate;
    const int64_t widest = (hidden > inter ? hidden : inter) > H * D ? (hidden > inter ? hidden : inter) : H * D;
    const int f32 = m->f32;
    const int64_t L = pos + 1, group = H / KVH, elt = f32 ? 4 : 2, row = D * elt;  /* bytes: one element, one head */
    char* x = (char*)malloc((size_t)(elt * hidden));
    char* normed = (char*)malloc((size_t)(elt * hidden));
    char* qkv = (char*)malloc((size_t)(row * (H + 2 * KVH)));
    char* attn = (char*)malloc((size_t)(row * H));
    char* gated = (char*)malloc((size_t)(elt * inter));
    const int64_t widest_groups = (widest + INT4_GROUP - 1) / INT4_GROUP;
    Input in = {NULL, (float*)malloc(sizeof(float) * (size_t)(widest + 16)),
                (int16_t*)malloc(sizeof(int16_t) * (size_t)(widest + 64)), 1.0f, f32,
                (int8_t*)malloc((size_t)(widest_groups * INT4_XBYTES + 64)),
                (float*)malloc(sizeof(float) * (size_t)(widest_groups + 1)),
                (float*)malloc(sizeof(float) * (size_t)(widest_groups + 1))};
    int failed = !x || !normed || !qkv || !attn || !gated || !in.xf || !in.xq || !in.xq4 || !in.xs4 || !in.xsum4;
    if (!failed) memcpy(x, element(m->embed, token * hidden, f32), (size_t)(elt * hidden));
    #pragma omp parallel if (!failed)
    {
        HeadScratch t;
        if (!head_scratch_alloc(&t, L, D)) {
            #pragma omp atomic write
            failed = 1;
        }
        #pragma omp barrier
        for (int64_t l = 0; l < (failed ? 0 : m->layers); l++) {
            const Layer* ly = &m->layer[l];
            #pragma omp single
            { rmsnorm_row(x, ly->input_norm, normed, hidden, m->eps, f32); prepare(&in, normed, hidden, m); }
            #pragma omp for schedule(guided, 2)
            for (int64_t t = 0; t < tiles(ly->qkv.rows); t++) {
                float v[TILE];
                for (int64_t l = 0, c = tile_dot(&ly->qkv, t, &in, v); l < c; l++) store(qkv, f32, t * TILE + l, v[l]);
            }
            #pragma omp single
            {
                for (int64_t h = 0; m->rope_cos && h < H + KVH; h++)
                    rope_head(qkv + h * row, element(m->rope_cos, pos * D, f32), element(m->rope_sin, pos * D, f32),
                              D, t.qf, f32);
                for (int64_t g = 0; g < KVH; g++) {
                    memcpy((char*)ly->k_cache + (g * m->positions + pos) * row, qkv + (H + g) * row, (size_t)row);
                    memcpy((char*)ly->v_cache + (g * m->positions + pos) * row, qkv + (H + KVH + g) * row, (size_t)row);
                }
            }
            #pragma omp for schedule(dynamic, 1)
            for (int64_t h = 0; h < H; h++)
                attend_head(qkv + h * row, (const char*)ly->k_cache + (h / group) * m->positions * row,
                            (const char*)ly->v_cache + (h / group) * m->positions * row, L, D, m->scale,
                            m->slopes ? m->slopes[h] : 0.0f, t.p, t.qf, t.acc, attn + h * row, f32);
            #pragma omp single
            prepare(&in, attn, H * D, m);
            #pragma omp for schedule(guided, 2)
            for (int64_t t = 0; t < tiles(hidden); t++) residual_tile(x, &ly->o, t, &in, f32);
            #pragma omp single
            { rmsnorm_row(x, ly->post_attention_norm, normed, hidden, m->eps, f32); prepare(&in, normed, hidden, m); }
            #pragma omp for schedule(guided, 2)
            for (int64_t t = 0; t < tiles(inter); t++) {
                float g[TILE], u[TILE];
                int64_t c = tile_dot(&ly->gate, t, &in, g);
                tile_dot(&ly->up, t, &in, u);
                for (int64_t l = 0; l < c; l++)
                    store(gated, f32, t * TILE + l, gated_unit(g[l], u[l], f32));
            }
            #pragma omp single
            prepare(&in, gated, inter, m);
            #pragma omp for schedule(guided, 2)
            for (int64_t t = 0; t < tiles(hidden); t++) residual_tile(x, &ly->down, t, &in, f32);
        }
        if (!failed) {
            #pragma omp single
            { rmsnorm_row(x, m->final_norm, normed, hidden, m->eps, f32); prepare(&in, normed, hidden, m); }
            #pragma omp for schedule(guided, 4)
            for (int64_t t = 0; t < tiles(m->lm_head.rows); t++) tile_dot(&m->lm_head, t, &in, logits + t * TILE);
        }
        head_scratch_free(&t);
    }
    free(x); free(normed); free(qkv); free(attn); free(gated); free(in.xf); free(in.xq); free(in.xq4); free(in.xs4); free(in.xsum4);
    return failed ? -1 : 0;
}
