// forward.h: the building blocks of the Llama forward pass that involve the model's weights and an
// optional LoRA adapter, shared by the inference loop (session.c) and the training loop (trainer.c)
// so that both compute exactly the same function: the linear layers with their LoRA paths, the
// embedding lookup and the output head with trainable token rows.
#ifndef PLM_FORWARD_H
#define PLM_FORWARD_H

#include "lora.h"
#include "model.h"
#include "pool.h"

// Buffers a linear layer's LoRA path needs: sized by the caller for T rows.
typedef struct {
    float *u;       // (T, R) A x: saved for backward when training
    float *y;       // (T, max out features) B A x, before scaling
    float *xd;      // (T, max in features) dropout(x), only when dropout > 0
    void *scratch;  // plm_matmul scratch for T rows
} plm_linear_bufs;

// plm_linear_forward: out (T, w->rows) = inp (T, w->cols) @ W^T, then when lora adapts (layer,
// target): out += scale * B (A dropout(inp)) (PEFT's LoraLayer; dropout only when train != 0,
// with a mask derived from (seed, layer, target, row, col) so backward can rebuild it).
void plm_linear_forward(plm_pool *pool, float *out, const float *inp, const plm_mat *w,
                        const plm_lora *lora, int32_t layer, plm_lora_target target, int32_t T,
                        int train, uint64_t seed, plm_linear_bufs *b);


// plm_lora_row: the adapter's row for token id (C), or NULL when id is not a trainable token.
const float *plm_lora_row(const plm_lora *lora, int32_t id);

// plm_embed_forward: x (T, C) = embedding rows of ids; the adapter's token rows replace the base's.
void plm_embed_forward(float *x, const int32_t *ids, int32_t T, const plm_model *m,
                       const plm_lora *lora);

// plm_head_forward: logits (T, NV) of normalized xn (T, C): the base head (V columns), then the
// adapter's token rows when the embeddings are tied (the head rows are the embedding rows; untied,
// PEFT's trainable tokens change the embedding only). NV is the adapter's vocab_size, or V.
void plm_head_forward(plm_pool *pool, float *logits, const float *xn, int32_t T,
                      const plm_model *m, const plm_lora *lora, void *scratch);

// ---- element-wise layers split over the pool's threads (each element computed on its own, so
// results do not depend on the thread count): the ops.h functions on ranges of rows or elements

void plm_rmsnorm_forward_mt(plm_pool *pool, float *out, float *rstd, const float *inp,
                            const float *w, int32_t T, int32_t C, float eps);
void plm_rmsnorm_backward_mt(plm_pool *pool, float *dinp, const float *dout, const float *inp,
                             const float *w, const float *rstd, int32_t T, int32_t C);
void plm_swiglu_forward_mt(plm_pool *pool, float *out, const float *gate, const float *up, size_t n);
void plm_swiglu_backward_mt(plm_pool *pool, float *dgate, float *dup, const float *dout,
                            const float *gate, const float *up, size_t n);
// out (n) = a + b * scale, or b * scale when a is NULL
void plm_axpy_mt(plm_pool *pool, float *out, const float *a, const float *b, float scale, size_t n);
// out (n) = keep(i) ? x[i] / (1 - p) : 0 with the dropout decisions of (seed, layer, target);
// with add != 0, out[i] += that instead
void plm_dropout_mt(plm_pool *pool, float *out, const float *x, size_t n, uint64_t seed,
                    int32_t layer, plm_lora_target target, float p, int add);

// plm_crossentropy_mt: plm_crossentropy_forward_backward over rows split between threads; the
// per-row losses go to row_loss (T) and are summed in row order (the same for any thread count).
double plm_crossentropy_mt(plm_pool *pool, float *dlogits, const float *logits,
                           const int32_t *targets, int32_t T, int32_t V, float grad_scale,
                           double *row_loss, int *n_counted);

#endif
