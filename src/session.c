// session.c: plm_session, the inference state of one conversation: the KV cache, the RoPE table,
// the activation buffers of one chunk of tokens, and the loop over layers (HF LlamaModel.forward).
// Prompts are processed in chunks of at most CHUNK tokens (matrix-matrix work), single tokens as
// matrix-vector work; both go through the same code, so a prompt decoded token by token gives the
// same logits as the prompt decoded at once (tested).
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "ops.h"
#include "ops_mt.h"

#define CHUNK     128 // tokens per forward call, bounds the activation buffers
#define FIRST_CAP 256 // positions the caches start with; they double as they fill, up to n_ctx

struct plm_session {
    const plm_model *model; // borrowed; outlives the session
    const plm_lora *lora;   // borrowed adapter or NULL
    int n_vocab;            // logits per position: the base's V, or the adapter's larger one
    plm_pool *pool;         // owned worker threads
    int n_ctx;              // context size (positions): the most the caches may grow to
    int cap;                // positions the caches hold now (<= n_ctx)
    int n_past;             // positions filled
    float *k_cache;         // (L, cap, K*D) keys after RoPE
    float *v_cache;         // (L, cap, K*D) values
    float *cos_t, *sin_t;   // (n_ctx, D/2) RoPE table
    float *x;               // (CHUNK, C) the residual stream
    float *xn;              // (CHUNK, C) normalized input of a sublayer, or a sublayer's output
    float *q;               // (CHUNK, H*D) queries
    float *att_out;         // (CHUNK, H*D) attention output before o_proj
    float *att;             // (CHUNK, H, cap) softmax probabilities
    float *gate, *up;       // (CHUNK, F) MLP hidden
    float *logits;          // (V) logits of the last token
    float *lora_u;          // (CHUNK, R) the adapter's A x
    float *lora_y;          // (CHUNK, max out features) the adapter's B A x
    void *scratch;          // matmul scratch (quantized activations)
};

plm_session_params plm_session_default_params(void) {
    plm_session_params p = {0, 0, NULL};
    return p;
}

void plm_session_free(plm_session *s) {
    if (!s) return;
    plm_pool_free(s->pool);
    free(s->k_cache);
    free(s->v_cache);
    free(s->cos_t);
    free(s->sin_t);
    plm_free_aligned(s->x);
    plm_free_aligned(s->xn);
    plm_free_aligned(s->q);
    plm_free_aligned(s->att_out);
    free(s->att);
    plm_free_aligned(s->gate);
    plm_free_aligned(s->up);
    plm_free_aligned(s->logits);
    plm_free_aligned(s->lora_u);
    plm_free_aligned(s->lora_y);
    plm_free_aligned(s->scratch);
    free(s);
}

// reserve: grow the caches (and the attention buffer) to hold need positions (<= n_ctx): double
// the capacity (at least), copy each layer's filled positions over. Memory follows the positions
// used, not n_ctx: a 2048-position context that holds a 100-token paraphrase costs 256 positions
// (a wasm heap never returns memory, and its calloc touches every page). On failure the session
// is unchanged.
static plm_status reserve(plm_session *s, int need) {
    if (need <= s->cap) return PLM_OK;
    const plm_config *cfg = &s->model->config;
    size_t L = (size_t)cfg->num_hidden_layers, H = (size_t)cfg->num_attention_heads;
    size_t KD = (size_t)cfg->num_key_value_heads * (size_t)cfg->head_dim;
    int cap = s->cap ? s->cap : need;
    while (cap < need) cap = cap > s->n_ctx / 2 ? s->n_ctx : 2 * cap;
    float *k = plm_alloc(L * (size_t)cap, KD * sizeof(float));
    float *v = plm_alloc(L * (size_t)cap, KD * sizeof(float));
    float *att = plm_alloc(CHUNK * H * (size_t)cap, sizeof(float));
    if (!k || !v || !att) {
        free(k), free(v), free(att);
        return PLM_ERR_NOMEM;
    }
    for (size_t l = 0; l < L && s->n_past > 0; l++) { // (n_past, K*D) of each layer
        memcpy(k + l * (size_t)cap * KD, s->k_cache + l * (size_t)s->cap * KD,
               (size_t)s->n_past * KD * sizeof(float));
        memcpy(v + l * (size_t)cap * KD, s->v_cache + l * (size_t)s->cap * KD,
               (size_t)s->n_past * KD * sizeof(float));
    }
    free(s->k_cache), free(s->v_cache), free(s->att);
    s->k_cache = k, s->v_cache = v, s->att = att, s->cap = cap;
    return PLM_OK;
}

plm_status plm_session_create(plm_session **out, const plm_model *model,
                              const plm_session_params *params, plm_error *err) {
    if (!out || !model) return plm_fail(err, PLM_ERR_ARG, "plm_session_create: NULL argument");
    *out = NULL;
    plm_session_params p = params ? *params : plm_session_default_params();
    const plm_config *cfg = &model->config;
    int max_pos = cfg->max_position_embeddings > 0 ? cfg->max_position_embeddings : 2048;
    if (p.n_ctx == 0) p.n_ctx = max_pos < 2048 ? max_pos : 2048;
    if (p.n_ctx < 1 || p.n_ctx > 1 << 20)
        return plm_fail(err, PLM_ERR_ARG, "n_ctx %d: want 1 .. %d", p.n_ctx, 1 << 20);
    if (p.n_threads == 0) p.n_threads = plm_n_cores();
    if (p.n_threads < 1 || p.n_threads > 256)
        return plm_fail(err, PLM_ERR_ARG, "n_threads %d: want 1 .. 256", p.n_threads);
    size_t C = (size_t)cfg->hidden_size, H = (size_t)cfg->num_attention_heads;
    size_t D = (size_t)cfg->head_dim, F = (size_t)cfg->intermediate_size, N = (size_t)p.n_ctx;
    size_t maxin = C > H * D ? C : H * D;
    if (F > maxin) maxin = F;
    plm_session *s = plm_alloc(1, sizeof *s);
    if (!s) return plm_fail(err, PLM_ERR_NOMEM, "out of memory creating a session");
    s->model = model;
    s->lora = p.lora;
    s->n_vocab = p.lora ? p.lora->vocab_size : cfg->vocab_size;
    s->n_ctx = p.n_ctx;
    s->cos_t = plm_alloc(N * (D / 2), sizeof(float));
    s->sin_t = plm_alloc(N * (D / 2), sizeof(float));
    s->x = plm_alloc_aligned(CHUNK * C, sizeof(float));
    s->xn = plm_alloc_aligned(CHUNK * C, sizeof(float));
    s->q = plm_alloc_aligned(CHUNK * H * D, sizeof(float));
    s->att_out = plm_alloc_aligned(CHUNK * H * D, sizeof(float));
    s->gate = plm_alloc_aligned(CHUNK * F, sizeof(float));
    s->up = plm_alloc_aligned(CHUNK * F, sizeof(float));
    s->logits = plm_alloc_aligned((size_t)s->n_vocab, sizeof(float));
    s->lora_u = plm_alloc_aligned(CHUNK * (p.lora ? (size_t)p.lora->rank : 1), sizeof(float));
    s->lora_y = plm_alloc_aligned(CHUNK * maxin, sizeof(float));
    s->scratch = plm_alloc_aligned(plm_matmul_scratch_bytes(CHUNK, (int32_t)maxin), 1);
    s->pool = plm_pool_create(p.n_threads);
    if (reserve(s, p.n_ctx < FIRST_CAP ? p.n_ctx : FIRST_CAP) != PLM_OK || !s->cos_t || !s->sin_t ||
        !s->x || !s->xn || !s->q || !s->att_out || !s->gate || !s->up || !s->logits || !s->lora_u ||
        !s->lora_y || !s->scratch || !s->pool) {
        plm_session_free(s);
        return plm_fail(err, PLM_ERR_NOMEM, "out of memory creating a session of %d positions",
                        p.n_ctx);
    }
    plm_rope_table(s->cos_t, s->sin_t, p.n_ctx, (int)D, cfg->rope_theta);
    *out = s;
    return PLM_OK;
}

// ---- attention over threads ----

typedef struct {
    float *out, *att;
    const float *q, *k, *v;
    int att_stride, T, P, H, K, D;
} attention_job;

static void attention_worker(void *ctx, int ith, int nth) {
    attention_job *j = ctx;
    int n = j->T * j->H;
    int i0 = (int)((long)n * ith / nth), i1 = (int)((long)n * (ith + 1) / nth);
    plm_attention_forward(j->out, j->att, j->att_stride, j->q, j->k, j->v, j->T, j->P, j->H, j->K,
                          j->D, i0, i1);
}

// linear: a linear layer of layer l with the adapter's path for target t (layers.h)
static void linear(plm_session *s, float *out, const float *inp, const plm_mat *w, int l,
                   plm_lora_target t, int T) {
    plm_linear_bufs b = {.u = s->lora_u, .y = s->lora_y, .scratch = s->scratch};
    plm_linear_forward(s->pool, out, inp, w, s->lora, l, t, T, 0, 0, &b);
}

// ---- the forward pass of one chunk ----

// forward: T (<= CHUNK) tokens at positions n_past..n_past+T-1; appends them to the cache.
// logits_out (T, V) receives every position's logits when not NULL, else s->logits the last one's.
static void forward(plm_session *s, const int32_t *ids, int T, float *logits_out) {
    const plm_model *m = s->model;
    const plm_config *cfg = &m->config;
    int C = cfg->hidden_size, H = cfg->num_attention_heads, K = cfg->num_key_value_heads;
    int D = cfg->head_dim, F = cfg->intermediate_size, L = cfg->num_hidden_layers;
    int P = s->n_past;
    float eps = cfg->rms_norm_eps;
    size_t KD = (size_t)K * D;
    plm_embed_forward(s->x, ids, T, m, s->lora);
    for (int l = 0; l < L; l++) {
        const plm_layer *w = &m->layers[l];
        float *kc = s->k_cache + (size_t)l * s->cap * KD; // (cap, K*D) this layer's keys
        float *vc = s->v_cache + (size_t)l * s->cap * KD;
        // attention block: x += o_proj(attention(rope(q), rope(k), v))
        plm_rmsnorm_forward_mt(s->pool, s->xn, NULL, s->x, w->input_layernorm, T, C, eps);
        linear(s, s->q, s->xn, &w->q_proj, l, PLM_LORA_Q_PROJ, T);
        linear(s, kc + (size_t)P * KD, s->xn, &w->k_proj, l, PLM_LORA_K_PROJ, T);
        linear(s, vc + (size_t)P * KD, s->xn, &w->v_proj, l, PLM_LORA_V_PROJ, T);
        plm_rope_forward(s->q, s->cos_t, s->sin_t, P, T, H, D);
        plm_rope_forward(kc + (size_t)P * KD, s->cos_t, s->sin_t, P, T, K, D);
        attention_job job = {s->att_out, s->att, s->q, kc, vc, s->cap, T, P, H, K, D};
        plm_pool_run(s->pool, attention_worker, &job);
        linear(s, s->xn, s->att_out, &w->o_proj, l, PLM_LORA_O_PROJ, T);
        plm_residual_forward(s->x, s->xn, (size_t)T * C);
        // MLP block: x += down_proj(silu(gate_proj(xn)) * up_proj(xn))
        plm_rmsnorm_forward_mt(s->pool, s->xn, NULL, s->x, w->post_attention_layernorm, T, C, eps);
        linear(s, s->gate, s->xn, &w->gate_proj, l, PLM_LORA_GATE_PROJ, T);
        linear(s, s->up, s->xn, &w->up_proj, l, PLM_LORA_UP_PROJ, T);
        plm_swiglu_forward_mt(s->pool, s->gate, s->gate, s->up, (size_t)T * F);
        linear(s, s->xn, s->gate, &w->down_proj, l, PLM_LORA_DOWN_PROJ, T);
        plm_residual_forward(s->x, s->xn, (size_t)T * C);
    }
    s->n_past += T;
    if (logits_out) {
        plm_rmsnorm_forward(s->xn, NULL, s->x, m->norm, T, C, eps);
        plm_head_forward(s->pool, logits_out, s->xn, T, m, s->lora, s->scratch);
    } else { // only the last position's logits are needed
        plm_rmsnorm_forward(s->xn, NULL, s->x + (size_t)(T - 1) * C, m->norm, 1, C, eps);
        plm_head_forward(s->pool, s->logits, s->xn, 1, m, s->lora, s->scratch);
    }
}

// ---- public entry points ----

// admit: check that the ids are valid and fit, then grow the caches to hold them.
static plm_status admit(plm_session *s, const int32_t *ids, int32_t n, plm_error *err) {
    if (!ids || n < 1) return plm_fail(err, PLM_ERR_ARG, "decode: no tokens");
    if (n > s->n_ctx - s->n_past)
        return plm_fail(err, PLM_ERR_ARG,
                        "decode: %d tokens do not fit in the context: %d of %d positions used", n,
                        s->n_past, s->n_ctx);
    int32_t V = s->n_vocab;
    for (int32_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return plm_fail(err, PLM_ERR_ARG, "decode: token %d at index %d out of range [0, %d)",
                            ids[i], i, V);
    if (reserve(s, s->n_past + n) != PLM_OK)
        return plm_fail(err, PLM_ERR_NOMEM,
                        "decode: out of memory growing the KV cache to %d "
                        "positions",
                        s->n_past + n);
    return PLM_OK;
}

plm_status plm_session_decode(plm_session *s, const int32_t *ids, int32_t n, plm_error *err) {
    if (!s) return plm_fail(err, PLM_ERR_ARG, "decode: NULL session");
    plm_status st = admit(s, ids, n, err);
    if (st != PLM_OK) return st;
    for (int32_t i = 0; i < n; i += CHUNK) forward(s, ids + i, n - i < CHUNK ? n - i : CHUNK, NULL);
    return PLM_OK;
}

plm_status plm_session_decode_all(plm_session *s, const int32_t *ids, int32_t n, float *out,
                                  plm_error *err) {
    if (!s || !out) return plm_fail(err, PLM_ERR_ARG, "decode_all: NULL argument");
    plm_status st = admit(s, ids, n, err);
    if (st != PLM_OK) return st;
    size_t V = (size_t)s->n_vocab;
    for (int32_t i = 0; i < n; i += CHUNK) {
        int T = n - i < CHUNK ? n - i : CHUNK;
        forward(s, ids + i, T, out + (size_t)i * V);
    }
    memcpy(s->logits, out + (size_t)(n - 1) * V, V * sizeof(float));
    return PLM_OK;
}

const float *plm_session_logits(const plm_session *s) {
    return s->logits;
}
const plm_model *plm_session_model(const plm_session *s) {
    return s->model;
}
int32_t plm_session_n_vocab(const plm_session *s) {
    return s->n_vocab;
}

const plm_tokenizer *plm_session_tokenizer(const plm_session *s) {
    const plm_tokenizer *t = s->lora ? plm_lora_tokenizer(s->lora) : NULL;
    return t ? t : s->model->tokenizer;
}
int32_t plm_session_n_past(const plm_session *s) {
    return s->n_past;
}
int32_t plm_session_n_ctx(const plm_session *s) {
    return s->n_ctx;
}
int32_t plm_session_n_threads(const plm_session *s) {
    return plm_pool_size(s->pool);
}

void plm_session_truncate(plm_session *s, int32_t n) {
    if (n >= 0 && n < s->n_past) s->n_past = n;
}
