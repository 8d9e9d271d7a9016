// ops_mt.h: the element-wise layers that session.c and trainer.c run over the pool's threads: the
// ops.h kernels on ranges of rows or elements (each element computed on its own, so results do
// not depend on the thread count), LoRA's dropout with counter-based masks, and the loss.
#ifndef PLM_OPS_MT_H
#define PLM_OPS_MT_H

#include "model.h"
#include "pool.h"

// plm_rmsnorm_forward_mt, plm_rmsnorm_backward_mt: over rows; out, inp, dinp, dout (T, C), w (C),
// rstd (T) saved by the forward (may be NULL there). The backward adds into dinp, as ops.h's do.
void plm_rmsnorm_forward_mt(plm_pool *pool, float *out, float *rstd, const float *inp,
                            const float *w, int32_t T, int32_t C, float eps);
void plm_rmsnorm_backward_mt(plm_pool *pool, float *dinp, const float *dout, const float *inp,
                             const float *w, const float *rstd, int32_t T, int32_t C);
// plm_glu_forward_mt, plm_glu_backward_mt: the gated MLP's activation, SwiGLU (gelu 0) or Gemma's
// GeGLU (gelu 1), over elements; every array (n); the backward adds into dgate and dup
void plm_glu_forward_mt(plm_pool *pool, int gelu, float *out, const float *gate, const float *up,
                        size_t n);
void plm_glu_backward_mt(plm_pool *pool, int gelu, float *dgate, float *dup, const float *dout,
                         const float *gate, const float *up, size_t n);
// out (n) = a + b * scale, or b * scale when a is NULL
void plm_axpy_mt(plm_pool *pool, float *out, const float *a, const float *b, float scale, size_t n);
// out (n) = keep(i) ? x[i] / (1 - p) : 0 with the dropout decisions of (seed, layer, target);
// with add != 0, out[i] += that instead
void plm_dropout_mt(plm_pool *pool, float *out, const float *x, size_t n, uint64_t seed,
                    int32_t layer, plm_lora_target target, float p, int add);

// plm_crossentropy_mt: plm_crossentropy_forward_backward over rows split between threads (with
// its unlikelihood on avoid (T, or NULL) at weight); the per-row losses go to row_loss (T) and are
// summed in row order (the same for any thread count).
double plm_crossentropy_mt(plm_pool *pool, float *dlogits, const float *logits,
                           const int32_t *targets, const int32_t *avoid, float weight, int32_t T,
                           int32_t V, float grad_scale, double *row_loss, int *n_counted);

#endif
