// forward.c: linear layers with their LoRA path, embedding and head with trainable token rows
// (see forward.h). PEFT: LoraLayer.forward computes result + lora_B(lora_A(dropout(x))) * scaling.
#include "forward.h"
#include "ops.h"
#include "rng.h"

#include <string.h>

// ---- dropout ----

// dropout_key: the stream of decisions of one (seed, layer, target)
static uint64_t dropout_key(uint64_t seed, int32_t layer, plm_lora_target target) {
    return rng_mix(seed ^ rng_mix(((uint64_t)layer << 8 | (uint64_t)target) + RNG_GOLDEN));
}

// ---- linear ----

void plm_linear_forward(plm_pool *pool, float *out, const float *inp, const plm_mat *w,
                        const plm_lora *lora, int32_t layer, plm_lora_target target, int32_t T,
                        int train, uint64_t seed, plm_linear_bufs *b) {
    plm_matmul(pool, out, inp, w, T, b->scratch);
    if (!lora || !lora->pairs[layer * PLM_LORA_N_TARGETS + target].A) return;
    plm_mat a = plm_lora_mat_a(lora, layer, target), bm = plm_lora_mat_b(lora, layer, target);
    const float *x = inp;
    if (train && lora->dropout > 0.0f) { // inverted dropout: kept elements scaled by 1/(1-p)
        plm_dropout_mt(pool, b->xd, inp, (size_t)T * w->cols, seed, layer, target, lora->dropout, 0);
        x = b->xd;
    }
    plm_matmul(pool, b->u, x, &a, T, b->scratch);
    plm_matmul(pool, b->y, b->u, &bm, T, b->scratch);
    plm_axpy_mt(pool, out, out, b->y, lora->alpha / (float)lora->rank, (size_t)T * w->rows);
}

// ---- embedding and head ----

const float *plm_lora_row(const plm_lora *lora, int32_t id) {
    for (int32_t k = 0; lora && k < lora->n_tokens; k++)
        if (lora->token_ids[k] == id) return lora->token_rows + (size_t)k * lora->hidden_size;
    return NULL;
}

void plm_embed_forward(float *x, const int32_t *ids, int32_t T, const plm_model *m,
                       const plm_lora *lora) {
    size_t C = (size_t)m->config.hidden_size;
    for (int32_t t = 0; t < T; t++) {
        const float *row = plm_lora_row(lora, ids[t]);
        if (row) memcpy(x + t * C, row, C * sizeof(float));
        else plm_embedding_forward(x + t * C, ids + t, &m->embed_tokens, 1);
    }
}

void plm_head_forward(plm_pool *pool, float *logits, const float *xn, int32_t T,
                      const plm_model *m, const plm_lora *lora, void *scratch) {
    size_t V = (size_t)m->config.vocab_size, C = (size_t)m->config.hidden_size;
    plm_matmul(pool, logits, xn, &m->lm_head, T, scratch); // (T, V) packed
    if (!lora || !lora->n_tokens) return;
    size_t NV = (size_t)lora->vocab_size;
    int tied = m->config.tie_word_embeddings; // untied: the rows change the embedding only
    for (int32_t t = T - 1; t >= 0; t--) { // re-stride the rows from V to NV, last row first
        memmove(logits + t * NV, logits + t * V, V * sizeof(float));
        for (size_t v = V; v < NV; v++) logits[t * NV + v] = 0.0f;
        for (int32_t k = 0; tied && k < lora->n_tokens; k++) {
            const float *row = lora->token_rows + k * C, *x = xn + t * C;
            float dot = 0.0f;
            for (size_t c = 0; c < C; c++) dot += x[c] * row[c];
            logits[t * NV + (size_t)lora->token_ids[k]] = dot;
        }
    }
}

// ---- element-wise layers over threads ----

typedef struct {
    float *o, *o2;             // outputs
    const float *a, *b, *c, *w; // inputs
    const float *rstd_in;      // rstd for the backward
    float *rstd;               // rstd out
    float x;                   // eps, scale or p
    int32_t C, layer, target, add;
    uint64_t seed;
} ew;

static void rmsnorm_fwd_range(void *ctx, size_t i0, size_t i1) {
    ew *e = ctx;
    size_t C = (size_t)e->C;
    plm_rmsnorm_forward(e->o + i0 * C, e->rstd ? e->rstd + i0 : NULL, e->a + i0 * C, e->w,
                        (int)(i1 - i0), e->C, e->x);
}

void plm_rmsnorm_forward_mt(plm_pool *pool, float *out, float *rstd, const float *inp,
                            const float *w, int32_t T, int32_t C, float eps) {
    ew e = {out, NULL, inp, NULL, NULL, w, NULL, rstd, eps, C, 0, 0, 0, 0};
    plm_pool_for(pool, (size_t)T, rmsnorm_fwd_range, &e);
}

static void rmsnorm_bwd_range(void *ctx, size_t i0, size_t i1) {
    ew *e = ctx;
    size_t C = (size_t)e->C;
    plm_rmsnorm_backward(e->o + i0 * C, NULL, e->a + i0 * C, e->b + i0 * C, e->w, e->rstd_in + i0,
                         (int)(i1 - i0), e->C);
}

void plm_rmsnorm_backward_mt(plm_pool *pool, float *dinp, const float *dout, const float *inp,
                             const float *w, const float *rstd, int32_t T, int32_t C) {
    ew e = {dinp, NULL, dout, inp, NULL, w, rstd, NULL, 0.0f, C, 0, 0, 0, 0};
    plm_pool_for(pool, (size_t)T, rmsnorm_bwd_range, &e);
}

static void swiglu_fwd_range(void *ctx, size_t i0, size_t i1) {
    ew *e = ctx;
    plm_swiglu_forward(e->o + i0, e->a + i0, e->b + i0, i1 - i0);
}

void plm_swiglu_forward_mt(plm_pool *pool, float *out, const float *gate, const float *up, size_t n) {
    ew e = {out, NULL, gate, up, NULL, NULL, NULL, NULL, 0.0f, 0, 0, 0, 0, 0};
    plm_pool_for(pool, n, swiglu_fwd_range, &e);
}

static void swiglu_bwd_range(void *ctx, size_t i0, size_t i1) {
    ew *e = ctx;
    plm_swiglu_backward(e->o + i0, e->o2 + i0, e->a + i0, e->b + i0, e->c + i0, i1 - i0);
}

void plm_swiglu_backward_mt(plm_pool *pool, float *dgate, float *dup, const float *dout,
                            const float *gate, const float *up, size_t n) {
    ew e = {dgate, dup, dout, gate, up, NULL, NULL, NULL, 0.0f, 0, 0, 0, 0, 0};
    plm_pool_for(pool, n, swiglu_bwd_range, &e);
}

static void axpy_range(void *ctx, size_t i0, size_t i1) {
    ew *e = ctx;
    if (!e->a) for (size_t i = i0; i < i1; i++) e->o[i] = e->b[i] * e->x;
    else for (size_t i = i0; i < i1; i++) e->o[i] = e->a[i] + e->b[i] * e->x;
}

void plm_axpy_mt(plm_pool *pool, float *out, const float *a, const float *b, float scale, size_t n) {
    ew e = {out, NULL, a, b, NULL, NULL, NULL, NULL, scale, 0, 0, 0, 0, 0};
    plm_pool_for(pool, n, axpy_range, &e);
}

// dropout_range: element i is kept when its 16 bits of rng_mix(key ^ i/4) are >= p * 65536: one hash
// for four elements, the same decisions for any range split (ranges start at multiples of 64)
static void dropout_range(void *ctx, size_t i0, size_t i1) {
    ew *e = ctx;
    float keep = 1.0f / (1.0f - e->x);
    uint64_t key = dropout_key(e->seed, e->layer, (plm_lora_target)e->target), h = 0;
    uint32_t cut = (uint32_t)(e->x * 65536.0f);
    for (size_t i = i0; i < i1; i++) {
        if (i % 4 == 0 || i == i0) h = rng_mix(key ^ (uint64_t)(i / 4));
        float v = ((h >> (i % 4 * 16)) & 0xFFFF) >= cut ? e->a[i] * keep : 0.0f;
        e->o[i] = e->add ? e->o[i] + v : v;
    }
}

void plm_dropout_mt(plm_pool *pool, float *out, const float *x, size_t n, uint64_t seed,
                    int32_t layer, plm_lora_target target, float p, int add) {
    ew e = {out, NULL, x, NULL, NULL, NULL, NULL, NULL, p, 0, layer, (int32_t)target, add, seed};
    plm_pool_for(pool, n, dropout_range, &e);
}

typedef struct {
    float *dl;
    const float *l;
    const int32_t *y;
    int32_t V;
    float scale;
    double *loss;
} ce_job;

static void ce_range(void *ctx, size_t i0, size_t i1) {
    ce_job *j = ctx;
    for (size_t r = i0; r < i1; r++)
        j->loss[r] = plm_crossentropy_forward_backward(j->dl + r * (size_t)j->V, j->l + r * (size_t)j->V,
                                                       j->y + r, 1, j->V, j->scale, NULL);
}

double plm_crossentropy_mt(plm_pool *pool, float *dlogits, const float *logits,
                           const int32_t *targets, int32_t T, int32_t V, float grad_scale,
                           double *row_loss, int *n_counted) {
    ce_job j = {dlogits, logits, targets, V, grad_scale, row_loss};
    plm_pool_for(pool, (size_t)T, ce_range, &j);
    double sum = 0.0;
    int n = 0;
    for (int32_t r = 0; r < T; r++)
        if (targets[r] >= 0) sum += row_loss[r], n++;
    if (n_counted) *n_counted = n;
    return sum;
}
