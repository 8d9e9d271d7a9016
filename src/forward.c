// forward.c: linear layers with their LoRA path, embedding and head with trainable token rows
// (see forward.h). PEFT: LoraLayer.forward computes result + lora_B(lora_A(dropout(x))) * scaling.
#include "forward.h"
#include "ops.h"

#include <string.h>

// ---- dropout ----

// mix: splitmix64's finalizer, a counter-based hash: the same inputs always give the same bits
static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int plm_dropout_keep(uint64_t seed, int32_t layer, plm_lora_target target, size_t i, float p) {
    uint64_t h = mix(seed ^ mix(((uint64_t)layer << 8 | (uint64_t)target) + 0x9E3779B97F4A7C15ull) ^
                     mix((uint64_t)i));
    return (float)(h >> 40) / 16777216.0f >= p;
}

// ---- linear ----

const plm_mat *plm_layer_mat(const plm_layer *layer, plm_lora_target t) {
    switch (t) {
    case PLM_LORA_Q_PROJ: return &layer->q_proj;
    case PLM_LORA_K_PROJ: return &layer->k_proj;
    case PLM_LORA_V_PROJ: return &layer->v_proj;
    case PLM_LORA_O_PROJ: return &layer->o_proj;
    case PLM_LORA_GATE_PROJ: return &layer->gate_proj;
    case PLM_LORA_UP_PROJ: return &layer->up_proj;
    default: return &layer->down_proj;
    }
}

void plm_linear_forward(plm_pool *pool, float *out, const float *inp, const plm_mat *w,
                        const plm_lora *lora, int32_t layer, plm_lora_target target, int32_t T,
                        int train, uint64_t seed, plm_linear_bufs *b) {
    plm_matmul(pool, out, inp, w, T, b->scratch);
    if (!lora || !lora->pairs[layer * PLM_LORA_N_TARGETS + target].A) return;
    plm_mat a = plm_lora_mat_a(lora, layer, target, w->cols);
    plm_mat bm = plm_lora_mat_b(lora, layer, target, w->rows);
    const float *x = inp;
    if (train && lora->dropout > 0.0f) { // inverted dropout: kept elements scaled by 1/(1-p)
        float keep_scale = 1.0f / (1.0f - lora->dropout);
        size_t n = (size_t)T * w->cols;
        for (size_t i = 0; i < n; i++)
            b->xd[i] = plm_dropout_keep(seed, layer, target, i, lora->dropout) ? inp[i] * keep_scale : 0.0f;
        x = b->xd;
    }
    plm_matmul(pool, b->u, x, &a, T, b->scratch);
    plm_matmul(pool, b->y, b->u, &bm, T, b->scratch);
    float scale = lora->alpha / (float)lora->rank;
    for (size_t i = 0; i < (size_t)T * w->rows; i++) out[i] += b->y[i] * scale;
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
