/* One whole decode step (embedding to logits) in a single parallel region: no Python or fork/join per op.

   It computes what the torch model computes for one token, rounding to bf16 wherever a torch bf16 op
   stores its result (matrix outputs, RoPE products and sums, SiLU, the gated product, residual sums),
   so it agrees with the step-by-step path to within the order of float32 summation. */
#include "common.h"

typedef struct {              /* one weight matrix: bf16 rows, or int8 rows with one float32 scale each */
    const void* weight;
    const float* scales;      /* NULL for bf16 */
    int64_t rows, cols;
} Matrix;

typedef struct {
    const uint16_t* input_norm;
    const uint16_t* post_attention_norm;
    Matrix qkv, o, gate, up, down;
    uint16_t* k_cache;        /* [kv_heads, positions, head_dim] */
    uint16_t* v_cache;
} Layer;

typedef struct {
    int64_t layers, hidden, heads, kv_heads, head_dim, intermediate, positions;
    float eps, scale;
    const float* slopes;      /* ALiBi slopes [heads], or NULL for RoPE */
    const uint16_t* rope_cos; /* [positions, head_dim] bf16, and the sine with its first half negated */
    const uint16_t* rope_sin;
    const uint16_t* embed;    /* [vocab, hidden] bf16 */
    const uint16_t* final_norm;
    Matrix lm_head;
    const Layer* layer;
    int32_t int8;             /* 1 when some matrix is int8: inputs then also get their int16 copy */
} Model;

typedef struct {              /* a vector about to be multiplied: bf16, and float32 or int16 copies */
    const uint16_t* x;
    float* xf;
    int16_t* xq;
    float xs;
} Input;

static void prepare(Input* in, const uint16_t* x, int64_t n, int int8) {
    in->x = x;
    for (int64_t k = 0; k < n; k++) in->xf[k] = bf16_to_f32(x[k]);
    if (int8) in->xs = quantize_activation(x, n, in->xq);
}

static inline float row_dot(const Matrix* m, int64_t n, const Input* in) {
    if (m->scales)
        return (float)dot_int8((const int8_t*)m->weight + n * m->cols, in->xq, m->cols) * in->xs * m->scales[n];
    return dot_bf16((const uint16_t*)m->weight + n * m->cols, in->x, in->xf, m->cols);
}

/* RoPE (rotate-half) of one head in place: x * cos + swap_halves(x) * signed_sin, each product rounded. */
static void rope_head(uint16_t* x, const uint16_t* cos, const uint16_t* sin, int64_t D, float* tmp) {
    int64_t half = D / 2;
    for (int64_t d = 0; d < D; d++) tmp[d] = bf16_to_f32(x[d]);
    for (int64_t d = 0; d < D; d++) {
        float swapped = tmp[d < half ? d + half : d - half];
        x[d] = f32_to_bf16(round_bf16(tmp[d] * bf16_to_f32(cos[d])) + round_bf16(swapped * bf16_to_f32(sin[d])));
    }
}

static inline float silu(float g) { return g / (1.0f + expf(-g)); }

/* logits[vocab] (float32, as summed: the step-by-step path's lm_head gives the same) for `token` at position
   `pos`; writes the KV cache at pos. */
int decode_step(const Model* m, int64_t token, int64_t pos, float* logits) {
    const int64_t H = m->heads, KVH = m->kv_heads, D = m->head_dim, hidden = m->hidden, inter = m->intermediate;
    const int64_t widest = (hidden > inter ? hidden : inter) > H * D ? (hidden > inter ? hidden : inter) : H * D;
    const int64_t L = pos + 1, group = H / KVH;
    uint16_t* x = (uint16_t*)malloc(sizeof(uint16_t) * (size_t)hidden);
    uint16_t* normed = (uint16_t*)malloc(sizeof(uint16_t) * (size_t)hidden);
    uint16_t* qkv = (uint16_t*)malloc(sizeof(uint16_t) * (size_t)((H + 2 * KVH) * D));
    uint16_t* attn = (uint16_t*)malloc(sizeof(uint16_t) * (size_t)(H * D));
    uint16_t* gated = (uint16_t*)malloc(sizeof(uint16_t) * (size_t)inter);
    Input in = {NULL, (float*)malloc(sizeof(float) * (size_t)(widest + 16)),
                (int16_t*)malloc(sizeof(int16_t) * (size_t)(widest + 64)), 1.0f};
    int failed = !x || !normed || !qkv || !attn || !gated || !in.xf || !in.xq;
    if (!failed) memcpy(x, m->embed + token * hidden, sizeof(uint16_t) * (size_t)hidden);
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
            { rmsnorm_row(x, ly->input_norm, normed, hidden, m->eps); prepare(&in, normed, hidden, m->int8); }
            #pragma omp for schedule(guided, 32)
            for (int64_t n = 0; n < ly->qkv.rows; n++) qkv[n] = f32_to_bf16(row_dot(&ly->qkv, n, &in));
            #pragma omp single
            {
                for (int64_t h = 0; m->rope_cos && h < H + KVH; h++)
                    rope_head(qkv + h * D, m->rope_cos + pos * D, m->rope_sin + pos * D, D, t.qf);
                for (int64_t g = 0; g < KVH; g++) {
                    memcpy(ly->k_cache + (g * m->positions + pos) * D, qkv + (H + g) * D, sizeof(uint16_t) * (size_t)D);
                    memcpy(ly->v_cache + (g * m->positions + pos) * D, qkv + (H + KVH + g) * D, sizeof(uint16_t) * (size_t)D);
                }
            }
            #pragma omp for schedule(dynamic, 1)
            for (int64_t h = 0; h < H; h++)
                attend_head(qkv + h * D, ly->k_cache + (h / group) * m->positions * D,
                            ly->v_cache + (h / group) * m->positions * D, L, D, m->scale,
                            m->slopes ? m->slopes[h] : 0.0f, t.p, t.qf, t.acc, attn + h * D);
            #pragma omp single
            prepare(&in, attn, H * D, m->int8);
            #pragma omp for schedule(guided, 32)
            for (int64_t n = 0; n < hidden; n++)
                x[n] = f32_to_bf16(bf16_to_f32(x[n]) + round_bf16(row_dot(&ly->o, n, &in)));
            #pragma omp single
            { rmsnorm_row(x, ly->post_attention_norm, normed, hidden, m->eps); prepare(&in, normed, hidden, m->int8); }
            #pragma omp for schedule(guided, 32)
            for (int64_t n = 0; n < inter; n++) {
                float g = round_bf16(row_dot(&ly->gate, n, &in)), u = round_bf16(row_dot(&ly->up, n, &in));
                gated[n] = f32_to_bf16(round_bf16(silu(g)) * u);
            }
            #pragma omp single
            prepare(&in, gated, inter, m->int8);
            #pragma omp for schedule(guided, 32)
            for (int64_t n = 0; n < hidden; n++)
                x[n] = f32_to_bf16(bf16_to_f32(x[n]) + round_bf16(row_dot(&ly->down, n, &in)));
        }
        if (!failed) {
            #pragma omp single
            { rmsnorm_row(x, m->final_norm, normed, hidden, m->eps); prepare(&in, normed, hidden, m->int8); }
            #pragma omp for schedule(guided, 64)
            for (int64_t n = 0; n < m->lm_head.rows; n++) logits[n] = row_dot(&m->lm_head, n, &in);
        }
        head_scratch_free(&t);
    }
    free(x); free(normed); free(qkv); free(attn); free(gated); free(in.xf); free(in.xq);
    return failed ? -1 : 0;
}
