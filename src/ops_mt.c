// ops_mt.c: the element-wise layers of ops.h (and LoRA's dropout) split over the pool's threads
// (see ops_mt.h). Each element or row is computed by one thread on its own, so results do not
// depend on the thread count. Not here: the layers with weights (layers.c), the kernels (ops.c).
#include "ops_mt.h"

#include "ops.h"
#include "rng.h"

// ---- dropout masks ----

// dropout_key: the stream of decisions of one (seed, layer, target)
static uint64_t dropout_key(uint64_t seed, int32_t layer, plm_lora_target target) {
    return rng_mix(seed ^ rng_mix(((uint64_t)layer << 8 | (uint64_t)target) + RNG_GOLDEN));
}

// ---- the wrappers ----

typedef struct {
    float *o, *o2;                 // outputs
    const float *a, *b, *c, *w;    // inputs
    const float *rstd_in;          // rstd for the backward
    float *rstd;                   // rstd out
    float x;                       // eps, scale or p
    int32_t C, layer, target, add; // add: dropout's; the GLU's: 1 GeGLU, 0 SwiGLU
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

static void glu_fwd_range(void *ctx, size_t i0, size_t i1) {
    ew *e = ctx;
    (e->add ? plm_geglu_forward : plm_swiglu_forward)(e->o + i0, e->a + i0, e->b + i0, i1 - i0);
}

void plm_glu_forward_mt(plm_pool *pool, int gelu, float *out, const float *gate, const float *up,
                        size_t n) {
    ew e = {out, NULL, gate, up, NULL, NULL, NULL, NULL, 0.0f, 0, 0, 0, gelu, 0};
    plm_pool_for(pool, n, glu_fwd_range, &e);
}

static void glu_bwd_range(void *ctx, size_t i0, size_t i1) {
    ew *e = ctx;
    (e->add ? plm_geglu_backward : plm_swiglu_backward)(e->o + i0, e->o2 + i0, e->a + i0, e->b + i0,
                                                        e->c + i0, i1 - i0);
}

void plm_glu_backward_mt(plm_pool *pool, int gelu, float *dgate, float *dup, const float *dout,
                         const float *gate, const float *up, size_t n) {
    ew e = {dgate, dup, dout, gate, up, NULL, NULL, NULL, 0.0f, 0, 0, 0, gelu, 0};
    plm_pool_for(pool, n, glu_bwd_range, &e);
}

static void axpy_range(void *ctx, size_t i0, size_t i1) {
    ew *e = ctx;
    if (!e->a)
        for (size_t i = i0; i < i1; i++) e->o[i] = e->b[i] * e->x;
    else
        for (size_t i = i0; i < i1; i++) e->o[i] = e->a[i] + e->b[i] * e->x;
}

void plm_axpy_mt(plm_pool *pool, float *out, const float *a, const float *b, float scale,
                 size_t n) {
    ew e = {out, NULL, a, b, NULL, NULL, NULL, NULL, scale, 0, 0, 0, 0, 0};
    plm_pool_for(pool, n, axpy_range, &e);
}

// dropout_range: element i is kept when its 16 bits of rng_mix(key ^ i/4) are >= p * 65536: one
// hash for four elements, the same decisions for any range split (ranges start at multiples of 64)
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
    const int32_t *y, *avoid;
    float weight;
    int32_t V;
    float scale;
    double *loss;
} ce_job;

static void ce_range(void *ctx, size_t i0, size_t i1) {
    ce_job *j = ctx;
    for (size_t r = i0; r < i1; r++)
        j->loss[r] = plm_crossentropy_forward_backward(
            j->dl + r * (size_t)j->V, j->l + r * (size_t)j->V, j->y + r,
            j->avoid ? j->avoid + r : NULL, j->weight, 1, j->V, j->scale, NULL);
}

double plm_crossentropy_mt(plm_pool *pool, float *dlogits, const float *logits,
                           const int32_t *targets, const int32_t *avoid, float weight, int32_t T,
                           int32_t V, float grad_scale, double *row_loss, int *n_counted) {
    ce_job j = {dlogits, logits, targets, avoid, weight, V, grad_scale, row_loss};
    plm_pool_for(pool, (size_t)T, ce_range, &j);
    double sum = 0.0;
    int n = 0;
    for (int32_t r = 0; r < T; r++)
        if (targets[r] >= 0) sum += row_loss[r], n++;
    if (n_counted) *n_counted = n;
    return sum;
}
