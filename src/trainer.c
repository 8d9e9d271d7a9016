// trainer.c: plm_trainer, LoRA fine-tuning of a frozen base: the loop over layers of the training
// forward pass (the same layers as session.c's, layers.h and ops_mt.h, saving what backward needs)
// and of the backward pass (each layer's backward beside its forward in layers.c or ops.c),
// gradient clipping, AdamW with warmup + cosine decay (PyTorch AdamW and HF's scheduler, to match
// PEFT runs), and the optimizer state for checkpoints.
//
// A micro-batch is packed: its examples are concatenated into N = sum of lengths rows, with no
// padding. Every op works on rows except attention, which runs per example (each starts at
// position 0). The loss covers each example's target tokens: the logits are computed only for the
// M rows that predict a target token, HEAD_ROWS rows at a time (logits, cross-entropy and the
// head's backward), so the (M, vocab) logits and their gradient never exist whole.
//
// Memory: what backward needs is saved per layer only when it cannot be recomputed cheaply and
// exactly. Saved: the residual stream x and xm, the norms' rstd, q, k, v, gate, up, each adapter's
// A x, o_proj's input when o_proj is adapted, with per-head q/k norms (Qwen3, Gemma 3) their
// inputs, and with Gemma 3's post norms their inputs and rstd. Recomputed in backward with the
// forward's own functions (so with the same bits): the norms' outputs and act(gate) * up (only
// where an adapted linear reads them: the base's dx = dy W needs no input) and the attention
// probabilities (one layer at a time, per example and KV head). A layer keeps 2C + H*D + 2*K*D + 2F floats a token
// (SmolLM2-135M: 5.2k, where keeping everything took 8.4k + H * max_len), and with q/k norms
// (Qwen3) H*D + K*D + H + K more, with Gemma 3's post norms 2C + 2 more.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "ops.h"
#include "ops_mt.h"
#include "rng.h"
#include "trainer.h"

// Saved activations of one layer, (N, ...) rows of the micro-batch.
typedef struct {
    float *x;                     // (N, C) the layer's input (residual stream)
    float *rstd1;                 // (N) input_layernorm
    float *q;                     // (N, H*D) queries after RoPE
    float *k, *v;                 // (N, K*D) keys after RoPE, values
    float *qr, *kr;               // (N, H*D), (N, K*D) q_proj, k_proj outputs before their
                                  // per-head norms (qk_norm only; else NULL)
    float *rstdq, *rstdk;         // (N*H), (N*K) those norms' rstd (qk_norm only; else NULL)
    float *ao;                    // (N, H*D) attention output, o_proj input: the layer's own when
                                  // o_proj is adapted, else the trainer's scratch t->ao
    float *xo, *xd;               // (N, C) o_proj's, down_proj's outputs before their norms
                                  // (Gemma 3's post norms only; else NULL)
    float *rstdo, *rstdd;         // (N) those norms' rstd (Gemma 3 only; else NULL)
    float *xm;                    // (N, C) residual after attention
    float *rstd2;                 // (N) post_attention_layernorm
    float *gate;                  // (N, F) gate_proj output
    float *up;                    // (N, F) up_proj output
    float *u[PLM_LORA_N_TARGETS]; // (N, R) A x of each adapted target (NULL otherwise)
} layer_acts;

#define HEAD_ROWS 64 // rows of logits at a time: (64, NV) floats, 12.6 MB for SmolLM2

struct plm_trainer {
    const plm_model *model;    // frozen base, borrowed
    plm_lora *lora;            // trained in place, borrowed
    plm_train_params p;        // settings
    plm_pool *pool;            // threads
    int32_t step;              // AdamW updates done
    uint64_t n_micro;          // micro-batches run (numbers the dropout masks)
    plm_train_tensor *tensors; // (n_tensors) trainable tensors
    int32_t n_tensors;
    layer_acts *acts;        // (L) saved activations
    float *xf, *rstdf, *xnf; // (N, C), (N), (N, C) final norm
    float *xg;               // (M, C) xnf rows that predict a target
    float *logits;           // (HEAD_ROWS, NV) logits of some of the M rows, then their gradient
    // one layer's recomputable activations, in forward and again in backward
    float *xn;               // (N, C) input_layernorm or post_attention_layernorm output
    float *att;              // (sum_i T_i * H * T_i) softmax probabilities, example by example
    float *ao;               // (N, H*D) attention output, when o_proj is not adapted
    float *h;                // (N, F) silu(gate) * up, down_proj input
    int32_t *rows, *targets; // (N) the M rows' indices and their target ids
    int32_t *avoid;          // (N) the M rows' avoided tokens (plm_example.avoid), -1 for none
    double *row_loss;        // (N) each of the M rows' loss
    float *cos_t, *sin_t;    // (max_len, D/2) RoPE table
    float *cos_l, *sin_l;    // (max_len, D/2) the local layers' RoPE table (Gemma 3; else NULL)
    // backward buffers, (N, ...) rows
    float *dx, *dxn, *dq, *dk, *dv, *dao, *dh, *dgate, *dup, *dtmp;
    plm_linear_bufs lb;   // LoRA buffers (lb.dys is dtmp)
    int32_t *ids;         // (N) the packed micro-batch
    int32_t *pair_tensor; // (L * PLM_LORA_N_TARGETS) index of a pair's A in tensors, or -1
    void *block;          // the one allocation behind the tensors' g, m, v and the buffers
    size_t zeroed;        // bytes at the start of block that start at zero (g, m, v)
};

// ---- parameters ----

plm_train_params plm_train_default_params(void) {
    plm_train_params p = {0, 4096, 256, 2e-4f, 0.9f, 0.999f, 1e-8f, 0.0f, 1.0f, 0, 0, 1234, 0.0f};
    return p;
}

plm_train_tensor *plm_trainer_tensors(plm_trainer *t, int32_t *n) {
    *n = t->n_tensors;
    return t->tensors;
}

int32_t plm_trainer_n_steps(const plm_trainer *t) {
    return t->step;
}

// HF get_cosine_schedule_with_warmup: lr * step / warmup, then a half cosine to 0 at total_steps
float plm_trainer_lr_at(const plm_trainer *t, int32_t step) {
    const plm_train_params *p = &t->p;
    if (step < p->warmup_steps)
        return p->lr * (float)step / (float)(p->warmup_steps > 1 ? p->warmup_steps : 1);
    if (p->total_steps <= p->warmup_steps) return p->lr;
    double progress = (double)(step - p->warmup_steps) / (double)(p->total_steps - p->warmup_steps);
    if (progress > 1.0) progress = 1.0;
    return (float)((double)p->lr * 0.5 * (1.0 + cos(3.14159265358979323846 * progress)));
}

// list_tensors: the adapter's tensors in a fixed order (layer, target, A then B; token rows last)
static int32_t list_tensors(plm_trainer *t, plm_train_tensor *out) {
    const plm_lora *lo = t->lora;
    int32_t n = 0;
    for (int32_t l = 0; l < lo->n_layers; l++)
        for (int tg = 0; tg < PLM_LORA_N_TARGETS; tg++) {
            plm_lora_pair *pr = &lo->pairs[l * PLM_LORA_N_TARGETS + tg];
            if (!pr->A) continue;
            plm_mat a = plm_lora_mat_a(lo, l, (plm_lora_target)tg);
            plm_mat b = plm_lora_mat_b(lo, l, (plm_lora_target)tg);
            if (out) {
                const char *name = plm_lora_targets[tg].name;
                snprintf(out[n].name, sizeof out[n].name, "layers.%d.%s.lora_A", l, name);
                out[n].p = pr->A, out[n].n = (size_t)a.rows * (size_t)a.cols;
                snprintf(out[n + 1].name, sizeof out[n].name, "layers.%d.%s.lora_B", l, name);
                out[n + 1].p = pr->B, out[n + 1].n = (size_t)b.rows * (size_t)b.cols;
            }
            n += 2;
        }
    if (lo->n_tokens) {
        if (out) {
            snprintf(out[n].name, sizeof out[n].name, "token_rows");
            out[n].p = lo->token_rows, out[n].n = (size_t)lo->n_tokens * (size_t)lo->hidden_size;
        }
        n++;
    }
    return n;
}

// adapted: whether the adapter trains layer l's linear tg
static int adapted(const plm_trainer *t, int32_t l, plm_lora_target tg) {
    return t->pair_tensor[l * PLM_LORA_N_TARGETS + tg] >= 0;
}

// ---- create / free ----

void plm_trainer_free(plm_trainer *t) {
    if (!t) return;
    plm_pool_free(t->pool);
    free(t->tensors);
    free(t->acts);
    free(t->pair_tensor);
    free(t->block); // every buffer of the struct lives in block but the ones freed above
    free(t);
}

// carve: the next n floats of the arena at *at (64-byte aligned), or count them when base is NULL
static float *carve(char *base, size_t *at, size_t n) {
    float *p = base ? (float *)(void *)(base + *at) : NULL;
    *at += (n * sizeof(float) + 63) & ~(size_t)63;
    return p;
}

// layout: place every buffer in one arena (base NULL: only compute its size); returns the size
static size_t layout(plm_trainer *t, char *base) {
    const plm_config *c = &t->model->config;
    size_t N = (size_t)t->p.max_tokens, S = (size_t)t->p.max_len;
    size_t C = (size_t)c->hidden_size, H = (size_t)c->num_attention_heads;
    size_t KD = (size_t)c->num_key_value_heads * (size_t)c->head_dim, HD = H * (size_t)c->head_dim;
    size_t F = (size_t)c->intermediate_size, R = (size_t)t->lora->rank;
    size_t NV = (size_t)t->lora->vocab_size, big = F > HD ? F : HD, at = 0;
    size_t HR = N < HEAD_ROWS ? N : HEAD_ROWS;
    if (C > big) big = C;
    for (int32_t i = 0; i < t->n_tensors; i++) {
        t->tensors[i].g = carve(base, &at, t->tensors[i].n);
        t->tensors[i].m = carve(base, &at, t->tensors[i].n);
        t->tensors[i].v = carve(base, &at, t->tensors[i].n);
    }
    t->zeroed = at; // gradients and moments start at zero; the rest is written before it is read
    t->ao = carve(base, &at, N * HD);
    for (int32_t l = 0; l < c->num_hidden_layers; l++) {
        layer_acts *a = &t->acts[l];
        a->x = carve(base, &at, N * C), a->rstd1 = carve(base, &at, N);
        a->q = carve(base, &at, N * HD), a->k = carve(base, &at, N * KD),
        a->v = carve(base, &at, N * KD);
        a->ao = adapted(t, l, PLM_LORA_O_PROJ) ? carve(base, &at, N * HD) : t->ao;
        if (c->qk_norm) {
            a->qr = carve(base, &at, N * HD), a->kr = carve(base, &at, N * KD);
            a->rstdq = carve(base, &at, N * H);
            a->rstdk = carve(base, &at, N * (size_t)c->num_key_value_heads);
        }
        if (c->model_type == PLM_ARCH_GEMMA3) {
            a->xo = carve(base, &at, N * C), a->xd = carve(base, &at, N * C);
            a->rstdo = carve(base, &at, N), a->rstdd = carve(base, &at, N);
        }
        a->xm = carve(base, &at, N * C), a->rstd2 = carve(base, &at, N);
        a->gate = carve(base, &at, N * F), a->up = carve(base, &at, N * F);
        for (int tg = 0; tg < PLM_LORA_N_TARGETS; tg++)
            a->u[tg] = adapted(t, l, (plm_lora_target)tg) ? carve(base, &at, N * R) : NULL;
    }
    t->xn = carve(base, &at, N * C), t->att = carve(base, &at, N * H * S);
    t->h = carve(base, &at, N * F);
    t->xf = carve(base, &at, N * C), t->rstdf = carve(base, &at, N),
    t->xnf = carve(base, &at, N * C);
    t->xg = carve(base, &at, N * C), t->logits = carve(base, &at, HR * NV);
    t->rows = (int32_t *)carve(base, &at, N), t->targets = (int32_t *)carve(base, &at, N);
    t->avoid = (int32_t *)carve(base, &at, N);
    t->row_loss = (double *)(void *)carve(base, &at, 2 * N);
    t->cos_t = carve(base, &at, S * (size_t)c->head_dim / 2);
    t->sin_t = carve(base, &at, S * (size_t)c->head_dim / 2);
    if (c->sliding_window > 0) {
        t->cos_l = carve(base, &at, S * (size_t)c->head_dim / 2);
        t->sin_l = carve(base, &at, S * (size_t)c->head_dim / 2);
    }
    t->dx = carve(base, &at, N * C), t->dxn = carve(base, &at, N * C);
    t->dq = carve(base, &at, N * HD), t->dk = carve(base, &at, N * KD),
    t->dv = carve(base, &at, N * KD);
    t->dao = carve(base, &at, N * HD), t->dh = carve(base, &at, N * F);
    t->dgate = carve(base, &at, N * F), t->dup = carve(base, &at, N * F);
    t->lb.du = carve(base, &at, N * R), t->dtmp = carve(base, &at, N * big);
    t->lb.dys = t->dtmp; // scale * dy in a linear's backward, which is done with dtmp by then
    t->lb.u = carve(base, &at, N * R), t->lb.y = carve(base, &at, N * big);
    t->lb.xd = carve(base, &at, N * big);
    t->lb.scratch =
        carve(base, &at, plm_matmul_scratch_bytes((int32_t)N, (int32_t)big) / sizeof(float) + 16);
    t->ids = (int32_t *)carve(base, &at, N);
    return at;
}

plm_status plm_trainer_create(plm_trainer **out, const plm_model *base, plm_lora *lora,
                              const plm_train_params *params, plm_error *err) {
    if (!out || !base || !lora) return plm_fail(err, PLM_ERR_ARG, "trainer: NULL argument");
    *out = NULL;
    plm_train_params p = params ? *params : plm_train_default_params();
    if (p.max_tokens < 1 || p.max_len < 1 || p.max_len > p.max_tokens || !(p.lr >= 0.0f) ||
        p.warmup_steps < 0 || p.total_steps < 0 || !(p.grad_clip >= 0.0f))
        return plm_fail(err, PLM_ERR_ARG, "trainer: bad parameters (max_tokens %d, max_len %d)",
                        p.max_tokens, p.max_len);
    if (!(p.unlikelihood >= 0.0f && p.unlikelihood <= 1e6f))
        return plm_fail(err, PLM_ERR_ARG,
                        "trainer: unlikelihood must be a number in [0, 1e6], found %g",
                        (double)p.unlikelihood);
    if (lora->n_layers != base->config.num_hidden_layers ||
        lora->hidden_size != base->config.hidden_size)
        return plm_fail(err, PLM_ERR_ARG, "trainer: the adapter does not fit the model");
    if (p.n_threads == 0) p.n_threads = plm_n_cores();
    plm_trainer *t = plm_alloc(1, sizeof *t);
    if (!t) return plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    t->model = base;
    t->lora = lora;
    t->p = p;
    t->n_tensors = list_tensors(t, NULL);
    t->tensors = plm_alloc((size_t)t->n_tensors, sizeof *t->tensors);
    t->acts = plm_alloc((size_t)base->config.num_hidden_layers, sizeof *t->acts);
    t->pool = plm_pool_create(p.n_threads);
    t->pair_tensor =
        plm_alloc((size_t)base->config.num_hidden_layers * PLM_LORA_N_TARGETS, sizeof(int32_t));
    if (!t->tensors || !t->acts || !t->pool || !t->pair_tensor) goto nomem;
    list_tensors(t, t->tensors);
    for (int32_t l = 0, k = 0; l < base->config.num_hidden_layers; l++)
        for (int tg = 0; tg < PLM_LORA_N_TARGETS; tg++) {
            int on = lora->pairs[l * PLM_LORA_N_TARGETS + tg].A != NULL;
            t->pair_tensor[l * PLM_LORA_N_TARGETS + tg] = on ? k : -1;
            k += on ? 2 : 0;
        }
    size_t bytes = layout(t, NULL);
    // not calloc: Emscripten's calloc clears every byte (its malloc cannot tell fresh pages), which
    // would make the whole block resident, sized for the longest micro-batch there can be; this
    // way a page becomes resident when a micro-batch first reaches it (native and wasm alike)
    t->block = malloc(bytes + 64);
    if (!t->block) goto nomem;
    char *aligned = (char *)t->block + (64 - (uintptr_t)t->block % 64) % 64;
    layout(t, aligned);
    memset(aligned, 0, t->zeroed);
    plm_rope_table(t->cos_t, t->sin_t, p.max_len, base->config.head_dim, base->config.rope_theta,
                   base->rope_freqs);
    if (t->cos_l)
        plm_rope_table(t->cos_l, t->sin_l, p.max_len, base->config.head_dim,
                       base->config.rope_local_base_freq, NULL);
    *out = t;
    return PLM_OK;
nomem:
    plm_trainer_free(t);
    return plm_fail(err, PLM_ERR_NOMEM, "trainer: out of memory for max_tokens %d", p.max_tokens);
}

// ---- the micro-batch ----

typedef struct {
    const plm_example *ex; // the examples
    int32_t n;             // how many
} batch;

// ex_att: offset of example i's attention probabilities (T_j * H * T_j for each j before it)
static size_t ex_att(const batch *b, int32_t i, size_t H) { // offset of example i's probabilities
    size_t off = 0;
    for (int32_t j = 0; j < i; j++) off += (size_t)b->ex[j].n * (size_t)b->ex[j].n * H;
    return off;
}

// ex_row: first row of example i in the packed batch (the sum of the lengths before it)
static size_t ex_row(const batch *b, int32_t i) {
    size_t off = 0;
    for (int32_t j = 0; j < i; j++) off += (size_t)b->ex[j].n;
    return off;
}

// ---- attention over threads: forward per (example, query rows); backward per (example, KV head),
// each first recomputing the probabilities of its query heads into the one layer's t->att

typedef struct {
    plm_trainer *t;
    const batch *b;
    const layer_acts *a;
    int32_t layer;
    int backward;
} attention_job;

static void attention_worker(void *ctx, int ith, int nth) {
    attention_job *j = ctx;
    plm_trainer *t = j->t;
    const layer_acts *a = j->a;
    const plm_config *c = &t->model->config;
    int H = c->num_attention_heads, K = c->num_key_value_heads, D = c->head_dim, G = H / K;
    size_t HD = (size_t)H * D, KD = (size_t)K * D;
    const float sc = plm_attention_scale(c);
    const int win = plm_layer_window(c, j->layer);
    for (int32_t i = 0; i < j->b->n; i++) {
        int T = j->b->ex[i].n;
        size_t r = ex_row(j->b, i);
        float *att = t->att + ex_att(j->b, i, (size_t)H);
        const float *q = a->q + r * HD, *k = a->k + r * KD, *v = a->v + r * KD;
        if (!j->backward) { // rows split over threads, each (t, h) by one thread
            int n = T * H, i0 = (int)((long)n * ith / nth), i1 = (int)((long)n * (ith + 1) / nth);
            plm_attention_forward(a->ao + r * HD, att, T, q, k, v, KD, D, T, 0, H, K, D, sc, win, 0,
                                  i0, i1);
            continue;
        }
        for (int kh = 0; kh < K; kh++) {
            if ((i * K + kh) % nth != ith) continue;
            // the probabilities of query heads kh*G .. kh*G + G-1, as the forward computed them
            // (each (t, h) on its own, from the same q and k: the same bits); the outputs they
            // give again go to the scratch t->ao, which o_proj's backward has read by now
            for (int p = 0; p < T; p++)
                plm_attention_forward(t->ao + r * HD, att, T, q, k, v, KD, D, T, 0, H, K, D, sc,
                                      win, 0, p * H + kh * G, p * H + kh * G + G);
            plm_attention_backward(t->dq + r * HD, t->dk + r * KD, t->dv + r * KD, t->dao + r * HD,
                                   att, T, q, k, v, T, H, K, D, sc, kh, kh + 1);
        }
    }
}

// rope_batch: RoPE of layer l (Gemma 3's local layers: their own table), or its backward, on x
// (N, NH*D), every example from position 0
static void rope_batch(plm_trainer *t, const batch *b, float *x, int NH, int32_t l, int backward) {
    int D = t->model->config.head_dim;
    const int local = plm_layer_window(&t->model->config, l) > 0;
    const float *cos_t = local ? t->cos_l : t->cos_t, *sin_t = local ? t->sin_l : t->sin_t;
    for (int32_t i = 0; i < b->n; i++) {
        float *xi = x + ex_row(b, i) * (size_t)NH * D;
        if (backward) plm_rope_backward(xi, cos_t, sin_t, 0, b->ex[i].n, NH, D);
        else plm_rope_forward(xi, cos_t, sin_t, 0, b->ex[i].n, NH, D);
    }
}

// ---- forward ----

// linear: a layer's linear with its LoRA path, saving A x in a->u[target] when adapted
static void linear(plm_trainer *t, float *out, const float *inp, int32_t l, plm_lora_target tg,
                   layer_acts *a, int32_t N, int train, uint64_t seed) {
    plm_linear_bufs b = t->lb;
    if (a->u[tg]) b.u = a->u[tg];
    const plm_layer *layer = &t->model->layers[l];
    plm_linear_forward(t->pool, out, inp, plm_layer_target(layer, tg), plm_layer_bias(layer, tg),
                       t->lora, l, tg, N, train, seed, &b);
}

// forward: the micro-batch through the model's layers and final norm; the normalized rows that
// predict a target are gathered into t->xg (M, C), their rows, targets and avoided tokens into
// t->rows, t->targets, t->avoid. Returns M. (The head is head_loss's.)
static int32_t forward(plm_trainer *t, const batch *b, int32_t N, int train, uint64_t seed) {
    const plm_model *m = t->model;
    const plm_config *c = &m->config;
    int C = c->hidden_size, H = c->num_attention_heads, K = c->num_key_value_heads,
        L = c->num_hidden_layers, D = c->head_dim;
    size_t F = (size_t)c->intermediate_size;
    float eps = c->rms_norm_eps;
    const int gelu = c->model_type == PLM_ARCH_GEMMA3;
    plm_embed_forward(t->acts[0].x, t->ids, N, m, t->lora);
    for (int32_t l = 0; l < L; l++) {
        layer_acts *a = &t->acts[l];
        const plm_layer *w = &m->layers[l];
        plm_rmsnorm_forward_mt(t->pool, t->xn, a->rstd1, a->x, w->input_layernorm, N, C, eps);
        linear(t, c->qk_norm ? a->qr : a->q, t->xn, l, PLM_LORA_Q_PROJ, a, N, train, seed);
        linear(t, c->qk_norm ? a->kr : a->k, t->xn, l, PLM_LORA_K_PROJ, a, N, train, seed);
        linear(t, a->v, t->xn, l, PLM_LORA_V_PROJ, a, N, train, seed);
        if (c->qk_norm) { // RMSNorm over each head's D values of q and k, before RoPE
            plm_rmsnorm_forward_mt(t->pool, a->q, a->rstdq, a->qr, w->q_norm, N * H, D, eps);
            plm_rmsnorm_forward_mt(t->pool, a->k, a->rstdk, a->kr, w->k_norm, N * K, D, eps);
        }
        rope_batch(t, b, a->q, H, l, 0);
        rope_batch(t, b, a->k, K, l, 0);
        attention_job job = {t, b, a, l, 0};
        plm_pool_run(t->pool, attention_worker, &job);
        linear(t, a->xo ? a->xo : t->dtmp, a->ao, l, PLM_LORA_O_PROJ, a, N, train, seed);
        if (a->xo) // Gemma 3: o_proj's output normalized
            plm_rmsnorm_forward_mt(t->pool, t->dtmp, a->rstdo, a->xo, w->post_attn_norm, N, C, eps);
        plm_axpy_mt(t->pool, a->xm, a->x, t->dtmp, 1.0f, (size_t)N * C);
        plm_rmsnorm_forward_mt(t->pool, t->xn, a->rstd2, a->xm, w->post_attention_layernorm, N, C,
                               eps);
        linear(t, a->gate, t->xn, l, PLM_LORA_GATE_PROJ, a, N, train, seed);
        linear(t, a->up, t->xn, l, PLM_LORA_UP_PROJ, a, N, train, seed);
        plm_glu_forward_mt(t->pool, gelu, t->h, a->gate, a->up, (size_t)N * F);
        linear(t, a->xd ? a->xd : t->dtmp, t->h, l, PLM_LORA_DOWN_PROJ, a, N, train, seed);
        if (a->xd) // Gemma 3: down_proj's output normalized
            plm_rmsnorm_forward_mt(t->pool, t->dtmp, a->rstdd, a->xd, w->post_ffw_norm, N, C, eps);
        float *next = l + 1 < L ? t->acts[l + 1].x : t->xf;
        plm_axpy_mt(t->pool, next, a->xm, t->dtmp, 1.0f, (size_t)N * C);
    }
    plm_rmsnorm_forward_mt(t->pool, t->xnf, t->rstdf, t->xf, m->norm, N, C, eps);
    // the rows that predict a target: position p of an example predicts ids[p + 1]
    int32_t M = 0;
    for (int32_t i = 0; i < b->n; i++) {
        int32_t r = (int32_t)ex_row(b, i);
        for (int32_t p = b->ex[i].n_prompt - 1; p < b->ex[i].n - 1; p++) {
            t->rows[M] = r + p;
            t->targets[M] = b->ex[i].ids[p + 1];
            t->avoid[M] = b->ex[i].avoid ? b->ex[i].avoid[p + 1] : -1;
            memcpy(t->xg + (size_t)M * C, t->xnf + (size_t)(r + p) * C, (size_t)C * sizeof(float));
            M++;
        }
    }
    return M;
}

// ---- the head and the loss ----

// token_grad: the gradient of the adapter's token rows (the last tensor), or NULL without them
static float *token_grad(const plm_trainer *t) {
    return t->lora->n_tokens ? t->tensors[t->n_tensors - 1].g : NULL;
}

// head_loss: the summed cross-entropy of the M rows of t->xg against t->targets (*n_counted rows
// counted), plus weight times the unlikelihood of the rows' t->avoid tokens (weight 0: plain
// cross-entropy), HEAD_ROWS rows at a time: their logits (rows, NV) in t->logits, the loss (each
// row's in t->row_loss) and, with dxg (M, C) not NULL, the gradient scaled by grad_scale through
// the head: into dxg, and into the token rows' gradient. Every row is computed on its own (the
// token rows' gradient sums the rows in order), so this gives the bits of all M rows at once.
static double head_loss(plm_trainer *t, int32_t M, float weight, float grad_scale, float *dxg,
                        int *n_counted) {
    size_t C = (size_t)t->model->config.hidden_size;
    int32_t NV = t->lora->vocab_size;
    for (int32_t r0 = 0; r0 < M; r0 += HEAD_ROWS) {
        int32_t n = M - r0 < HEAD_ROWS ? M - r0 : HEAD_ROWS;
        const float *x = t->xg + (size_t)r0 * C;
        plm_head_forward(t->pool, t->logits, x, n, t->model, t->lora, t->lb.scratch);
        plm_crossentropy_mt(t->pool, t->logits, t->logits, t->targets + r0, t->avoid + r0, weight,
                            n, NV, grad_scale, t->row_loss + r0, NULL);
        if (!dxg) continue;
        memset(dxg + (size_t)r0 * C, 0, (size_t)n * C * sizeof *dxg);
        plm_head_backward(t->pool, dxg + (size_t)r0 * C, token_grad(t), t->logits, x, n, t->model,
                          t->lora, t->lb.scratch);
    }
    double sum = 0.0; // in row order, as plm_crossentropy_mt sums
    int cnt = 0;
    for (int32_t r = 0; r < M; r++)
        if (t->targets[r] >= 0) sum += t->row_loss[r], cnt++;
    *n_counted = cnt;
    return sum;
}

// ---- backward ----

// linear_backward: plm_linear_backward of a layer's linear, into the gradients of its A and B
// (inp, the linear's input, is read only when it is adapted)
static void linear_backward(plm_trainer *t, float *dinp, const float *dy, const float *inp,
                            int32_t l, plm_lora_target tg, const layer_acts *a, int32_t N,
                            uint64_t seed) {
    int32_t k = t->pair_tensor[l * PLM_LORA_N_TARGETS + tg]; // A's index, B's is k + 1
    float *dA = k < 0 ? NULL : t->tensors[k].g, *dB = k < 0 ? NULL : t->tensors[k + 1].g;
    const plm_mat *w = plm_layer_target(&t->model->layers[l], tg);
    plm_linear_backward(t->pool, dinp, dA, dB, dy, a->u[tg], inp, w, t->lora, l, tg, N, seed,
                        &t->lb);
}

// qk_norm_backward: dx (rows, D), the gradient of a per-head norm's output, becomes that of its
// input inp (rows, D) (the norm weight w (D) is frozen); through t->dtmp
static void qk_norm_backward(plm_trainer *t, float *dx, const float *inp, const float *w,
                             const float *rstd, int32_t rows) {
    size_t n = (size_t)rows * (size_t)t->model->config.head_dim;
    memset(t->dtmp, 0, n * sizeof *t->dtmp);
    plm_rmsnorm_backward_mt(t->pool, t->dtmp, dx, inp, w, rstd, rows, t->model->config.head_dim);
    memcpy(dx, t->dtmp, n * sizeof *dx);
}

// post_norm_backward: the gradient of a sublayer's output before Gemma 3's post norm w (frozen)
// given dy (N, C), that of the norm's output; inp (N, C) and rstd (N) from the forward. Returns
// dy itself without the norm (w NULL), else t->dxn holding it.
static const float *post_norm_backward(plm_trainer *t, const float *dy, const float *inp,
                                       const float *w, const float *rstd, int32_t N) {
    if (!w) return dy;
    int32_t C = t->model->config.hidden_size;
    memset(t->dxn, 0, (size_t)N * (size_t)C * sizeof *t->dxn);
    plm_rmsnorm_backward_mt(t->pool, t->dxn, dy, inp, w, rstd, N, C);
    return t->dxn;
}

// backward: given the head's gradient dxg (M, C) in t->dx (head_loss), the gradients of the
// adapter's tensors from the activations forward saved, recomputing the rest
static void backward(plm_trainer *t, const batch *b, int32_t N, int32_t M, uint64_t seed) {
    const plm_model *m = t->model;
    const plm_config *c = &m->config;
    int C = c->hidden_size, H = c->num_attention_heads, K = c->num_key_value_heads;
    size_t F = (size_t)c->intermediate_size, NC = (size_t)N * C;
    size_t HD = (size_t)H * c->head_dim, KD = (size_t)K * c->head_dim;
    float eps = c->rms_norm_eps;
    const int gelu = c->model_type == PLM_ARCH_GEMMA3;
    memset(t->dxn, 0, NC * sizeof *t->dxn); // dxn: dxg at the M rows that have logits
    for (int32_t r = 0; r < M; r++)
        memcpy(t->dxn + (size_t)t->rows[r] * C, t->dx + (size_t)r * C, C * sizeof *t->dx);
    memset(t->dx, 0, NC * sizeof *t->dx);
    plm_rmsnorm_backward_mt(t->pool, t->dx, t->dxn, t->xf, m->norm, t->rstdf, N, C);
    for (int32_t l = c->num_hidden_layers - 1; l >= 0; l--) {
        layer_acts *a = &t->acts[l];
        const plm_layer *w = &m->layers[l];
        // MLP block: xout = xm + down(act(gate) * up) (Gemma 3: + norm(down(...))); dx holds
        // d(xout) and becomes d(xm)
        if (adapted(t, l, PLM_LORA_DOWN_PROJ)) // down_proj's input, for its adapter
            plm_glu_forward_mt(t->pool, gelu, t->h, a->gate, a->up, (size_t)N * F);
        const float *dy = post_norm_backward(t, t->dx, a->xd, w->post_ffw_norm, a->rstdd, N);
        memset(t->dh, 0, (size_t)N * F * sizeof *t->dh);
        linear_backward(t, t->dh, dy, t->h, l, PLM_LORA_DOWN_PROJ, a, N, seed);
        memset(t->dgate, 0, (size_t)N * F * sizeof *t->dgate);
        memset(t->dup, 0, (size_t)N * F * sizeof *t->dup);
        plm_glu_backward_mt(t->pool, gelu, t->dgate, t->dup, t->dh, a->gate, a->up, (size_t)N * F);
        if (adapted(t, l, PLM_LORA_GATE_PROJ) || adapted(t, l, PLM_LORA_UP_PROJ))
            plm_rmsnorm_forward_mt(t->pool, t->xn, NULL, a->xm, w->post_attention_layernorm, N, C,
                                   eps);
        memset(t->dxn, 0, NC * sizeof *t->dxn);
        linear_backward(t, t->dxn, t->dgate, t->xn, l, PLM_LORA_GATE_PROJ, a, N, seed);
        linear_backward(t, t->dxn, t->dup, t->xn, l, PLM_LORA_UP_PROJ, a, N, seed);
        plm_rmsnorm_backward_mt(t->pool, t->dx, t->dxn, a->xm, w->post_attention_layernorm,
                                a->rstd2, N, C);
        // attention block: xm = x + o(attention(rope(q), rope(k), v)) (Gemma 3: + norm(o(...)));
        // dx becomes d(x)
        dy = post_norm_backward(t, t->dx, a->xo, w->post_attn_norm, a->rstdo, N);
        memset(t->dao, 0, (size_t)N * HD * sizeof *t->dao);
        linear_backward(t, t->dao, dy, a->ao, l, PLM_LORA_O_PROJ, a, N, seed);
        memset(t->dq, 0, (size_t)N * HD * sizeof *t->dq);
        memset(t->dk, 0, (size_t)N * KD * sizeof *t->dk);
        memset(t->dv, 0, (size_t)N * KD * sizeof *t->dv);
        attention_job job = {t, b, a, l, 1};
        plm_pool_run(t->pool, attention_worker, &job);
        rope_batch(t, b, t->dq, H, l, 1);
        rope_batch(t, b, t->dk, K, l, 1);
        if (c->qk_norm) { // dq, dk become the gradients of q_proj's and k_proj's outputs
            qk_norm_backward(t, t->dq, a->qr, w->q_norm, a->rstdq, N * H);
            qk_norm_backward(t, t->dk, a->kr, w->k_norm, a->rstdk, N * K);
        }
        if (adapted(t, l, PLM_LORA_Q_PROJ) || adapted(t, l, PLM_LORA_K_PROJ) ||
            adapted(t, l, PLM_LORA_V_PROJ))
            plm_rmsnorm_forward_mt(t->pool, t->xn, NULL, a->x, w->input_layernorm, N, C, eps);
        memset(t->dxn, 0, NC * sizeof *t->dxn);
        linear_backward(t, t->dxn, t->dq, t->xn, l, PLM_LORA_Q_PROJ, a, N, seed);
        linear_backward(t, t->dxn, t->dk, t->xn, l, PLM_LORA_K_PROJ, a, N, seed);
        linear_backward(t, t->dxn, t->dv, t->xn, l, PLM_LORA_V_PROJ, a, N, seed);
        plm_rmsnorm_backward_mt(t->pool, t->dx, t->dxn, a->x, w->input_layernorm, a->rstd1, N, C);
    }
    if (t->lora->n_tokens)
        plm_embed_backward(token_grad(t), t->dx, t->ids, N, t->lora, plm_embed_scale(c));
}

// ---- entry points ----

// pack: check the examples and copy their ids into t->ids; returns N or a negative status
static int32_t pack(plm_trainer *t, const plm_example *ex, int32_t n, plm_error *err) {
    int32_t N = 0, NV = t->lora->vocab_size;
    if (!ex || n < 1) return plm_fail(err, PLM_ERR_ARG, "trainer: no examples");
    for (int32_t i = 0; i < n; i++) {
        if (ex[i].n < 2 || ex[i].n_prompt < 1 || ex[i].n_prompt >= ex[i].n ||
            ex[i].n > t->p.max_len)
            return plm_fail(err, PLM_ERR_ARG,
                            "trainer: example %d has %d tokens, %d of prompt "
                            "(want 1 <= prompt < tokens <= %d)",
                            i, ex[i].n, ex[i].n_prompt, t->p.max_len);
        if (N + ex[i].n > t->p.max_tokens)
            return plm_fail(err, PLM_ERR_ARG, "trainer: the micro-batch has more than %d tokens",
                            t->p.max_tokens);
        for (int32_t k = 0; k < ex[i].n; k++) {
            if (ex[i].ids[k] < 0 || ex[i].ids[k] >= NV)
                return plm_fail(err, PLM_ERR_ARG,
                                "trainer: example %d token %d: id %d not in [0, %d)", i, k,
                                ex[i].ids[k], NV);
            t->ids[N + k] = ex[i].ids[k];
        }
        N += ex[i].n;
    }
    return N;
}

// micro_seed: the dropout seed of the next micro-batch, from the run's seed and the micro-batches
// done (saved in checkpoints, so a resumed run draws the same masks)
static uint64_t micro_seed(const plm_trainer *t) {
    return rng_mix_half(t->p.seed * RNG_GOLDEN + t->n_micro);
}

plm_status plm_trainer_accumulate(plm_trainer *t, const plm_example *ex, int32_t n,
                                  float grad_scale, double *loss, int32_t *n_tokens,
                                  plm_error *err) {
    if (!t) return plm_fail(err, PLM_ERR_ARG, "trainer: NULL");
    int32_t N = pack(t, ex, n, err);
    if (N < 0) return (plm_status)N;
    batch b = {ex, n};
    uint64_t seed = micro_seed(t);
    int32_t M = forward(t, &b, N, 1, seed);
    int cnt;
    double l = head_loss(t, M, t->p.unlikelihood, grad_scale, t->dx, &cnt); // dx free till backward
    backward(t, &b, N, M, seed);
    t->n_micro++;
    if (loss) *loss = l;
    if (n_tokens) *n_tokens = cnt;
    return PLM_OK;
}

plm_status plm_trainer_loss(plm_trainer *t, const plm_example *ex, int32_t n, double *loss,
                            int32_t *n_tokens, plm_error *err) {
    if (!t) return plm_fail(err, PLM_ERR_ARG, "trainer: NULL");
    int32_t N = pack(t, ex, n, err);
    if (N < 0) return (plm_status)N;
    batch b = {ex, n};
    int32_t M = forward(t, &b, N, 0, 0);
    int cnt;
    double l = head_loss(t, M, 0.0f, 1.0f, NULL, &cnt); // plain cross-entropy: comparable runs
    if (loss) *loss = l;
    if (n_tokens) *n_tokens = cnt;
    return PLM_OK;
}

// ---- optimizer ----

void plm_trainer_step(plm_trainer *t, float *lr_out, float *norm_out) {
    const plm_train_params *p = &t->p;
    // global norm as torch.nn.utils.clip_grad_norm_: the norm of the per-tensor norms
    double sq = 0.0;
    for (int32_t i = 0; i < t->n_tensors; i++) {
        double s = 0.0;
        const float *g = t->tensors[i].g;
        for (size_t k = 0; k < t->tensors[i].n; k++) s += (double)g[k] * (double)g[k];
        sq += s;
    }
    float norm = (float)sqrt(sq), clip = 1.0f;
    if (p->grad_clip > 0.0f) {
        clip = p->grad_clip / (norm + 1e-6f);
        if (clip > 1.0f) clip = 1.0f;
    }
    float lr = plm_trainer_lr_at(t, t->step);
    t->step++;
    // torch.optim.AdamW (not amsgrad, not maximize), in its order of operations
    float bc1 = 1.0f - powf(p->beta1, (float)t->step), bc2 = 1.0f - powf(p->beta2, (float)t->step);
    float step_size = lr / bc1, bc2_sqrt = sqrtf(bc2);
    for (int32_t i = 0; i < t->n_tensors; i++) {
        plm_train_tensor *q = &t->tensors[i];
        for (size_t k = 0; k < q->n; k++) {
            float g = q->g[k] * clip;
            q->p[k] *= 1.0f - lr * p->weight_decay;
            q->m[k] += (g - q->m[k]) * (1.0f - p->beta1);
            q->v[k] = q->v[k] * p->beta2 + g * g * (1.0f - p->beta2);
            float denom = sqrtf(q->v[k]) / bc2_sqrt + p->eps;
            q->p[k] -= step_size * q->m[k] / denom;
            q->g[k] = 0.0f;
        }
    }
    if (lr_out) *lr_out = lr;
    if (norm_out) *norm_out = norm;
}

// ---- optimizer state ----

// The file: "PLMADAM1", step (u32), micro-batches (u64), tensor count (u32), then per tensor its
// element count (u64), m and v (f32 each), all little-endian as the machine writes them.
static const char state_magic[8] = {'P', 'L', 'M', 'A', 'D', 'A', 'M', '1'};

plm_status plm_trainer_save_state(const plm_trainer *t, const char *path, plm_error *err) {
    plm_writer *w;
    plm_status s = plm_writer_open(&w, path, err);
    if (s != PLM_OK) return s;
    uint32_t step = (uint32_t)t->step, np = (uint32_t)t->n_tensors;
    uint64_t micro = t->n_micro;
    s = plm_writer_write(w, state_magic, 8, err);
    if (s == PLM_OK) s = plm_writer_write(w, &step, 4, err);
    if (s == PLM_OK) s = plm_writer_write(w, &micro, 8, err);
    if (s == PLM_OK) s = plm_writer_write(w, &np, 4, err);
    for (int32_t i = 0; s == PLM_OK && i < t->n_tensors; i++) {
        uint64_t n = t->tensors[i].n;
        s = plm_writer_write(w, &n, 8, err);
        if (s == PLM_OK) s = plm_writer_write(w, t->tensors[i].m, n * sizeof(float), err);
        if (s == PLM_OK) s = plm_writer_write(w, t->tensors[i].v, n * sizeof(float), err);
    }
    if (s != PLM_OK) {
        plm_writer_abort(w);
        return s;
    }
    return plm_writer_commit(w, err);
}

plm_status plm_trainer_load_state(plm_trainer *t, const char *path, plm_error *err) {
    char *buf;
    size_t len, at = 24;
    plm_status s = plm_file_read(path, &buf, &len, err);
    if (s != PLM_OK) return s;
    uint32_t step, np;
    uint64_t micro;
    if (len < 24 || memcmp(buf, state_magic, 8)) {
        free(buf);
        return plm_fail(err, PLM_ERR_FORMAT, "%s: not an optimizer state file", path);
    }
    memcpy(&step, buf + 8, 4);
    memcpy(&micro, buf + 12, 8);
    memcpy(&np, buf + 20, 4);
    if (np != (uint32_t)t->n_tensors) {
        free(buf);
        return plm_fail(err, PLM_ERR_FORMAT, "%s: %u tensors, the adapter has %d", path, np,
                        t->n_tensors);
    }
    for (int32_t i = 0; i < t->n_tensors; i++) {
        uint64_t n;
        size_t bytes = t->tensors[i].n * sizeof(float);
        if (len - at < 8 || (memcpy(&n, buf + at, 8), n != t->tensors[i].n) ||
            len - at - 8 < 2 * bytes) {
            free(buf);
            return plm_fail(err, PLM_ERR_FORMAT,
                            "%s: tensor %d (%s) truncated or of the wrong size", path, i,
                            t->tensors[i].name);
        }
        memcpy(t->tensors[i].m, buf + at + 8, bytes);
        memcpy(t->tensors[i].v, buf + at + 8 + bytes, bytes);
        at += 8 + 2 * bytes;
    }
    if (at != len) {
        free(buf);
        return plm_fail(err, PLM_ERR_FORMAT, "%s: %zu trailing bytes", path, len - at);
    }
    t->step = (int32_t)step;
    t->n_micro = micro;
    free(buf);
    return PLM_OK;
}
