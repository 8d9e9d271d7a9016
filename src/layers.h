// layers.h: the layers of the Llama model that hold weights, with their LoRA parts, each as a
// _forward / _backward pair (llm.c style): the linear layers with their LoRA paths, the embedding
// lookup and the output head with the adapter's trainable token rows. The inference loop
// (session.c) and the training loop (trainer.c) both call these, so both compute exactly the same
// function. Backward passes add into their d* outputs (the caller zeroes them); the base weights
// are frozen: only the adapter gets gradients. Not here: the element-wise layers over threads
// (ops_mt.h), the kernels (ops.h, matmul.h).
#ifndef PLM_LAYERS_H
#define PLM_LAYERS_H

#include "lora.h"
#include "model.h"
#include "pool.h"

// Buffers a linear layer's LoRA path needs: sized by the caller for T rows.
typedef struct {
    float *u;      // (T, R) A x: saved for backward when training
    float *y;      // (T, max out or in features) B A x before scaling; backward: du A
    float *xd;     // (T, max in features) dropout(x), only when dropout > 0
    float *dys;    // (T, max out features) backward only: scale * dy
    float *du;     // (T, R) backward only: the gradient of u
    void *scratch; // plm_matmul scratch for T rows
} plm_linear_bufs;

// ---- linear: y = W x + scale * B A dropout(x) (PEFT's LoraLayer) ----

// plm_linear_forward: out (T, w->rows) = inp (T, w->cols) @ W^T (+ bias (w->rows) when not NULL),
// then when lora adapts (layer, target): out += scale * B (A dropout(inp)), scale = alpha / r, with
// A dropout(inp) saved in b->u (dropout only when train != 0, with a mask derived from (seed,
// layer, target, element) so the backward can rebuild it). The bias is frozen: the backward is the
// same with or without it.
void plm_linear_forward(plm_pool *pool, float *out, const float *inp, const plm_mat *w,
                        const float *bias, const plm_lora *lora, int32_t layer,
                        plm_lora_target target, int32_t T, int train, uint64_t seed,
                        plm_linear_bufs *b);

// plm_lora_branch_forward: only the adapter's part of plm_linear_forward: out (T, w->rows) +=
// scale * B (A dropout(inp)) when lora adapts (layer, target), else nothing. A batch of sequences
// runs the base matmul once for all its rows, then this on each sequence's rows with its adapter.
void plm_lora_branch_forward(plm_pool *pool, float *out, const float *inp, const plm_mat *w,
                             const plm_lora *lora, int32_t layer, plm_lora_target target, int32_t T,
                             int train, uint64_t seed, plm_linear_bufs *b);

// plm_linear_backward: given dy (T, out) of plm_linear_forward (train != 0, the same seed), add
// the gradient of inp (T, in) into dinp and, when lora adapts (layer, target), those of A and B
// into dA (R, in) and dB (out, R). u (T, R) is the forward's b->u. b's dys, du, xd, y are scratch.
void plm_linear_backward(plm_pool *pool, float *dinp, float *dA, float *dB, const float *dy,
                         const float *u, const float *inp, const plm_mat *w, const plm_lora *lora,
                         int32_t layer, plm_lora_target target, int32_t T, uint64_t seed,
                         const plm_linear_bufs *b);

// ---- embedding: the base's rows, with the adapter's token rows in place of theirs ----

// plm_embed_forward: x (T, C) = embedding rows of ids, times plm_embed_scale (Gemma's sqrt(C));
// the adapter's token rows replace the base's.
void plm_embed_forward(float *x, const int32_t *ids, int32_t T, const plm_model *m,
                       const plm_lora *lora);

// plm_embed_backward: add into dtok (n_tokens, C) the gradient of the adapter's token rows: the
// rows of dx (T, C) at the positions whose id is that token's, times the forward's scale.
void plm_embed_backward(float *dtok, const float *dx, const int32_t *ids, int32_t T,
                        const plm_lora *lora, float scale);

// ---- head: logits of the final normalized rows ----

// plm_head_forward: logits (T, NV) of normalized xn (T, C): the base head (V columns), then the
// adapter's token rows when the embeddings are tied (the head rows are the embedding rows; untied,
// PEFT's trainable tokens change the embedding only). NV is the adapter's vocab_size, or V.
void plm_head_forward(plm_pool *pool, float *logits, const float *xn, int32_t T, const plm_model *m,
                      const plm_lora *lora, void *scratch);

// plm_head_tokens_forward: what the adapter changes in one row of logits (NV) whose first V
// columns hold the base head's: the added columns (zero, or xn . row when the embeddings are tied)
// and the trainable tokens' columns. xn (C). Nothing without token rows.
void plm_head_tokens_forward(float *logits, const float *xn, const plm_model *m,
                             const plm_lora *lora);

// plm_head_backward: given dlogits (T, NV) of plm_head_forward on xn (T, C), add the gradient of xn
// into dxn (T, C) and, when the embeddings are tied and dtok is not NULL, the token rows' into
// dtok (n_tokens, C). dlogits is clobbered (re-strided to (T, V) in place).
void plm_head_backward(plm_pool *pool, float *dxn, float *dtok, float *dlogits, const float *xn,
                       int32_t T, const plm_model *m, const plm_lora *lora, void *scratch);

#endif
