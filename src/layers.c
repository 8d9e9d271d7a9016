// layers.c: the layers with weights and their LoRA parts, forward and backward side by side (see
// layers.h). PEFT: LoraLayer.forward computes result + lora_B(lora_A(dropout(x))) * scaling;
// TrainableTokensLayer replaces embedding rows (and, tied, the head's rows) by trained values.
#include "layers.h"

#include <string.h>

#include "ops.h"
#include "ops_mt.h"

// ---- linear ----

void plm_linear_forward(plm_pool *pool, float *out, const float *inp, const plm_mat *w,
                        const float *bias, const plm_lora *lora, int32_t layer,
                        plm_lora_target target, int32_t T, int train, uint64_t seed,
                        plm_linear_bufs *b) {
    plm_matmul(pool, out, inp, w, T, b->scratch);
    if (bias) plm_bias_forward(out, bias, T, w->rows);
    plm_lora_branch_forward(pool, out, inp, w, lora, layer, target, T, train, seed, b);
}

void plm_lora_branch_forward(plm_pool *pool, float *out, const float *inp, const plm_mat *w,
                             const plm_lora *lora, int32_t layer, plm_lora_target target, int32_t T,
                             int train, uint64_t seed, plm_linear_bufs *b) {
    if (!lora || !lora->pairs[layer * PLM_LORA_N_TARGETS + target].A) return;
    plm_mat a = plm_lora_mat_a(lora, layer, target), bm = plm_lora_mat_b(lora, layer, target);
    const float *x = inp;
    if (train && lora->dropout > 0.0f) { // inverted dropout: kept elements scaled by 1/(1-p)
        plm_dropout_mt(pool, b->xd, inp, (size_t)T * w->cols, seed, layer, target, lora->dropout,
                       0);
        x = b->xd;
    }
    plm_matmul(pool, b->u, x, &a, T, b->scratch);
    plm_matmul(pool, b->y, b->u, &bm, T, b->scratch);
    plm_axpy_mt(pool, out, out, b->y, lora->alpha / (float)lora->rank, (size_t)T * w->rows);
}

// With s = alpha / r, xd = dropout(x) and u = A xd, the forward is y = W x + s B u, so:
//   dx += dy W                  (the base; W is frozen)
//   dB += s dy^T u              du = s dy B
//   dA += du^T xd               dx += dropout'(du A)   (the same mask, scaled by 1/(1-p))
void plm_linear_backward(plm_pool *pool, float *dinp, float *dA, float *dB, const float *dy,
                         const float *u, const float *inp, const plm_mat *w, const plm_lora *lora,
                         int32_t layer, plm_lora_target target, int32_t T, uint64_t seed,
                         const plm_linear_bufs *b) {
    plm_matmul_backward_input(pool, dinp, dy, w, T, b->scratch); // base: dx += dy W
    if (!lora || !lora->pairs[layer * PLM_LORA_N_TARGETS + target].A) return;
    size_t out = (size_t)w->rows, in = (size_t)w->cols, R = (size_t)lora->rank;
    float s = lora->alpha / (float)lora->rank, *dys = b->dys, *du = b->du;
    plm_axpy_mt(pool, dys, NULL, dy, s, (size_t)T * out);
    plm_mat a_m = plm_lora_mat_a(lora, layer, target), b_m = plm_lora_mat_b(lora, layer, target);
    plm_matmul_backward_weight(pool, dB, dys, u, T, (int32_t)out, (int32_t)R);
    memset(du, 0, (size_t)T * R * sizeof *du);
    plm_matmul_backward_input(pool, du, dys, &b_m, T, b->scratch);
    const float *xd = inp;
    float p = lora->dropout;
    if (p > 0.0f) { // rebuild dropout(x) from the same counter-based mask as the forward
        plm_dropout_mt(pool, b->xd, inp, (size_t)T * in, seed, layer, target, p, 0);
        xd = b->xd;
    }
    plm_matmul_backward_weight(pool, dA, du, xd, T, (int32_t)R, (int32_t)in);
    if (p == 0.0f) {
        plm_matmul_backward_input(pool, dinp, du, &a_m, T, b->scratch);
        return;
    }
    float *dxl = b->y;
    memset(dxl, 0, (size_t)T * in * sizeof *dxl);
    plm_matmul_backward_input(pool, dxl, du, &a_m, T, b->scratch);
    plm_dropout_mt(pool, dinp, dxl, (size_t)T * in, seed, layer, target, p, 1); // mask's backward
}

// ---- embedding ----

// token_row: the adapter's row for token id (C), or NULL when id is not a trainable token
static const float *token_row(const plm_lora *lora, int32_t id) {
    for (int32_t k = 0; lora && k < lora->n_tokens; k++)
        if (lora->token_ids[k] == id) return lora->token_rows + (size_t)k * lora->hidden_size;
    return NULL;
}

void plm_embed_forward(float *x, const int32_t *ids, int32_t T, const plm_model *m,
                       const plm_lora *lora) {
    size_t C = (size_t)m->config.hidden_size;
    const float scale = plm_embed_scale(&m->config);
    for (int32_t t = 0; t < T; t++) {
        const float *row = token_row(lora, ids[t]);
        if (row) memcpy(x + t * C, row, C * sizeof(float));
        else plm_embedding_forward(x + t * C, ids + t, &m->embed_tokens, 1);
        for (size_t c = 0; scale != 1.0f && c < C; c++) x[t * C + c] *= scale;
    }
}

void plm_embed_backward(float *dtok, const float *dx, const int32_t *ids, int32_t T,
                        const plm_lora *lora, float scale) {
    size_t C = (size_t)lora->hidden_size;
    for (int32_t r = 0; r < T; r++) // x[r] = row k * scale when ids[r] is token k
        for (int32_t k = 0; k < lora->n_tokens; k++)
            if (ids[r] == lora->token_ids[k])
                for (size_t c = 0; c < C; c++)
                    dtok[(size_t)k * C + c] += dx[(size_t)r * C + c] * scale;
}

// ---- head ----

void plm_head_forward(plm_pool *pool, float *logits, const float *xn, int32_t T, const plm_model *m,
                      const plm_lora *lora, void *scratch) {
    size_t V = (size_t)m->config.vocab_size, C = (size_t)m->config.hidden_size;
    plm_matmul(pool, logits, xn, &m->lm_head, T, scratch); // (T, V) packed
    if (!lora || !lora->n_tokens) return;
    size_t NV = (size_t)lora->vocab_size;
    for (int32_t t = T - 1; t >= 0; t--) { // re-stride the rows from V to NV, last row first
        memmove(logits + t * NV, logits + t * V, V * sizeof(float));
        plm_head_tokens_forward(logits + t * NV, xn + t * C, m, lora);
    }
}

void plm_head_tokens_forward(float *logits, const float *xn, const plm_model *m,
                             const plm_lora *lora) {
    if (!lora || !lora->n_tokens) return;
    size_t V = (size_t)m->config.vocab_size, C = (size_t)m->config.hidden_size;
    size_t NV = (size_t)lora->vocab_size;
    int tied = m->config.tie_word_embeddings; // untied: the rows change the embedding only
    for (size_t v = V; v < NV; v++) logits[v] = 0.0f;
    for (int32_t k = 0; tied && k < lora->n_tokens; k++) {
        const float *row = lora->token_rows + k * C;
        float dot = 0.0f;
        for (size_t c = 0; c < C; c++) dot += xn[c] * row[c];
        logits[(size_t)lora->token_ids[k]] = dot;
    }
}

// The logit of token k's column is xn . row_k (tied), the others xn . W_v, so:
//   drow_k += dlogit_k xn       dxn += dlogit_k row_k       (token rows, then their column is done)
//   dxn += dlogits[:, :V] W     (the base head; W is frozen)
void plm_head_backward(plm_pool *pool, float *dxn, float *dtok, float *dlogits, const float *xn,
                       int32_t T, const plm_model *m, const plm_lora *lora, void *scratch) {
    size_t C = (size_t)m->config.hidden_size, V = (size_t)m->config.vocab_size;
    size_t NV = lora ? (size_t)lora->vocab_size : V;
    float *dl = dlogits;
    if (m->config.tie_word_embeddings && lora && lora->n_tokens && dtok) {
        for (int32_t k = 0; k < lora->n_tokens; k++) {
            size_t v = (size_t)lora->token_ids[k];
            const float *row = lora->token_rows + k * C;
            for (int32_t r = 0; r < T; r++) {
                float g = dl[r * NV + v];
                for (size_t c = 0; c < C; c++) {
                    dtok[k * C + c] += g * xn[r * C + c];
                    dxn[r * C + c] += g * row[c];
                }
                dl[r * NV + v] = 0.0f; // so the base head's row for v adds nothing below
            }
        }
    }
    for (int32_t r = 0; r < T; r++) // re-stride from NV to V columns for the base head
        memmove(dl + r * V, dl + r * NV, V * sizeof *dl);
    plm_matmul_backward_input(pool, dxn, dl, &m->lm_head, T, scratch);
}
