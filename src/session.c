// session.c: plm_session, the inference state of one conversation (its KV cache, of f32 or IEEE
// half: kv_type, its adapter, the logits of its last token), and the loop over layers (HF
// LlamaModel.forward) as one forward step over the stacked token rows of one or more sequences
// (plm_step). A standalone session owns a step of CHUNK rows and its threads; a session of a
// batch (batch.c) borrows the batch's, and its decodes become rows of the batch's shared steps. In
// a step, each linear layer is one matmul over every row (the weights are read once), then each
// sequence's rows get its own adapter's A·B; the attention, RoPE and the KV cache are per
// sequence. Every kernel sums each output element in one fixed order whatever the number of rows,
// so a prompt decoded at once, token by token, or as rows of a batch beside other sequences gives
// the same logits bit for bit (tests/test_batch.c), with either kv_type.
// Gemma 3's sliding-window layers keep only the positions a query can still see (the last window
// - 1, plus room for a step's CHUNK): their caches stop growing at window - 1 + CHUNK positions
// and slide as the context fills; a truncation below what they hold decodes the kept tokens
// again (the same bits: the same rows through the same kernels).
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "ops.h"
#include "ops_mt.h"
#include "session.h"

#define CHUNK     128 // tokens per forward call of a standalone session, bounds its step buffers
#define FIRST_CAP 256 // positions the caches start with; they double as they fill, up to n_ctx
_Static_assert(PLM_BATCH_SLICE <= CHUNK, "a step's slice of a sequence must fit a local layer");

// The buffers of one forward step over `rows` stacked token rows of at most max_seqs sequences.
struct plm_step {
    const plm_model *model; // borrowed
    plm_pool *pool;         // borrowed worker threads
    int32_t rows;           // token rows a step holds
    int32_t max_seqs;       // sequences a step holds
    int32_t max_rank;       // LoRA rank lora_u holds per row
    int32_t n_ctx;          // positions of the RoPE table
    int32_t att_stride;     // positions per (row, head) in att: >= every sequence's P + T
    float *cos_t, *sin_t;   // (n_ctx, D/2) RoPE table
    float *cos_l, *sin_l;   // (n_ctx, D/2) the local layers' RoPE table (Gemma 3; else NULL)
    float *x;               // (rows, C) the residual stream
    float *xn;              // (rows, C) normalized input of a sublayer, or a sublayer's output
    float *q;               // (rows, H*D) queries
    float *kn, *vn;         // (rows, K*D) the new keys (RoPE applied) and values, before the caches
    float *att_out;         // (rows, H*D) attention output before o_proj
    float *att;             // (rows, H, att_stride) softmax probabilities
    float *gate, *up;       // (rows, F) MLP hidden
    float *logits;          // (max_seqs, V) the base head's logits of each sequence's last row
    float *lora_u;          // (rows, max_rank) the adapter's A x
    float *lora_y;          // (rows, max features) the adapter's B A x
    void *scratch;          // matmul scratch (quantized activations)
};

struct plm_session {
    const plm_model *model; // borrowed; outlives the session
    const plm_lora *lora;   // borrowed adapter or NULL
    int n_vocab;            // logits per position: the base's V, or the adapter's larger one
    plm_pool *pool;         // standalone: owned worker threads; else NULL
    plm_step *step;         // standalone: owned step buffers of CHUNK rows; else NULL
    plm_batch *batch;       // a batch's sequence: its decodes are rows of the batch's steps
    int n_ctx;              // context size (positions): the most the caches may grow to
    int cap;                // positions a layer's caches hold now (<= n_ctx)
    int hold;               // positions a local (sliding-window) layer's caches hold: <= cap and
                            // <= local_cap (0 without such layers)
    int base;               // the position in a local layer's first slot (0 until they slide)
    int n_past;             // positions in the caches
    int pending;            // tokens of hist after n_past waiting for a forward step
    int32_t *hist;          // (cap) the tokens of positions 0 .. n_past + pending
    plm_dtype kv_type;      // the caches' elements: PLM_DTYPE_F32 (float) or _F16 (IEEE half)
    void *k_cache;          // keys after RoPE, layer after layer, each (K, cap or hold, D): each
                            // KV head's keys one stream
    void *v_cache;          // values, the same layout
    float *logits;          // (n_vocab) logits of the last token
};

plm_session_params plm_session_default_params(void) {
    plm_session_params p = {0, 0, NULL, PLM_DTYPE_F32};
    return p;
}

// ---- step buffers ----

void plm_step_free(plm_step *st) {
    if (!st) return;
    free(st->cos_t);
    free(st->sin_t);
    free(st->cos_l);
    free(st->sin_l);
    plm_free_aligned(st->x);
    plm_free_aligned(st->xn);
    plm_free_aligned(st->q);
    plm_free_aligned(st->kn);
    plm_free_aligned(st->vn);
    plm_free_aligned(st->att_out);
    free(st->att);
    plm_free_aligned(st->gate);
    plm_free_aligned(st->up);
    plm_free_aligned(st->logits);
    plm_free_aligned(st->lora_u);
    plm_free_aligned(st->lora_y);
    plm_free_aligned(st->scratch);
    free(st);
}

// step_att: make att hold stride positions per (row, head); on failure the step is unchanged
static plm_status step_att(plm_step *st, int32_t stride) {
    if (stride <= st->att_stride) return PLM_OK;
    size_t H = (size_t)st->model->config.num_attention_heads;
    float *att = plm_alloc((size_t)st->rows * H * (size_t)stride, sizeof(float));
    if (!att) return PLM_ERR_NOMEM;
    free(st->att);
    st->att = att, st->att_stride = stride;
    return PLM_OK;
}

plm_step *plm_step_create(const plm_model *m, plm_pool *pool, int32_t rows, int32_t max_seqs,
                          int32_t max_rank, int32_t n_ctx, int32_t att_stride) {
    const plm_config *cfg = &m->config;
    size_t C = (size_t)cfg->hidden_size, H = (size_t)cfg->num_attention_heads;
    size_t KD = (size_t)cfg->num_key_value_heads * (size_t)cfg->head_dim;
    size_t D = (size_t)cfg->head_dim, F = (size_t)cfg->intermediate_size, R = (size_t)rows;
    size_t maxin = C > H * D ? C : H * D;
    if (F > maxin) maxin = F;
    plm_step *st = plm_alloc(1, sizeof *st);
    if (!st) return NULL;
    *st = (plm_step){.model = m,
                     .pool = pool,
                     .rows = rows,
                     .max_seqs = max_seqs,
                     .max_rank = max_rank,
                     .n_ctx = n_ctx};
    st->cos_t = plm_alloc((size_t)n_ctx * (D / 2), sizeof(float));
    st->sin_t = plm_alloc((size_t)n_ctx * (D / 2), sizeof(float));
    const int local = cfg->sliding_window > 0; // Gemma 3's local layers: their own RoPE base
    if (local) st->cos_l = plm_alloc((size_t)n_ctx * (D / 2), sizeof(float));
    if (local) st->sin_l = plm_alloc((size_t)n_ctx * (D / 2), sizeof(float));
    st->x = plm_alloc_aligned(R * C, sizeof(float));
    st->xn = plm_alloc_aligned(R * C, sizeof(float));
    st->q = plm_alloc_aligned(R * H * D, sizeof(float));
    st->kn = plm_alloc_aligned(R * KD, sizeof(float));
    st->vn = plm_alloc_aligned(R * KD, sizeof(float));
    st->att_out = plm_alloc_aligned(R * H * D, sizeof(float));
    st->gate = plm_alloc_aligned(R * F, sizeof(float));
    st->up = plm_alloc_aligned(R * F, sizeof(float));
    st->logits = plm_alloc_aligned((size_t)max_seqs * (size_t)cfg->vocab_size, sizeof(float));
    st->lora_u = plm_alloc_aligned(R * (size_t)(max_rank > 0 ? max_rank : 1), sizeof(float));
    st->lora_y = plm_alloc_aligned(R * maxin, sizeof(float));
    st->scratch = plm_alloc_aligned(plm_matmul_scratch_bytes(rows, (int32_t)maxin), 1);
    if (step_att(st, att_stride) != PLM_OK || !st->cos_t || !st->sin_t ||
        (local && (!st->cos_l || !st->sin_l)) || !st->x || !st->xn || !st->q || !st->kn ||
        !st->vn || !st->att_out || !st->gate || !st->up || !st->logits || !st->lora_u ||
        !st->lora_y || !st->scratch) {
        plm_step_free(st);
        return NULL;
    }
    plm_rope_table(st->cos_t, st->sin_t, n_ctx, (int)D, cfg->rope_theta, m->rope_freqs);
    if (local) plm_rope_table(st->cos_l, st->sin_l, n_ctx, (int)D, cfg->rope_local_base_freq, NULL);
    return st;
}

// ---- sessions ----

void plm_session_free(plm_session *s) {
    if (!s) return;
    if (s->batch) plm_batch_detach(s->batch);
    plm_step_free(s->step);
    plm_pool_free(s->pool);
    free(s->k_cache);
    free(s->v_cache);
    free(s->hist);
    plm_free_aligned(s->logits);
    free(s);
}

// local_cap: the positions a local layer of a model of config c needs at most: the window - 1 a
// query sees before itself, plus a step's new ones (0: the model has no sliding-window layers)
static int local_cap(const plm_config *c) {
    return c->sliding_window > 0 ? c->sliding_window - 1 + CHUNK : 0;
}

// slots: the positions layers 0 .. l-1 hold together, hold each local layer, cap each other
static size_t slots(const plm_config *c, int l, int hold, int cap) {
    size_t n = 0;
    for (int i = 0; i < l; i++) n += (size_t)(plm_layer_window(c, i) > 0 ? hold : cap);
    return n;
}

// kv_size: the bytes of a KV cache element of type t (PLM_DTYPE_F32 or _F16)
static size_t kv_size(plm_dtype t) {
    return t == PLM_DTYPE_F16 ? sizeof(uint16_t) : sizeof(float);
}

int64_t plm_session_kv_bytes(const plm_model *m, int32_t n_ctx, plm_dtype kv_type) {
    const plm_config *c = &m->config;
    const int32_t local = n_ctx < local_cap(c) ? n_ctx : local_cap(c);
    return 2 * (int64_t)slots(c, c->num_hidden_layers, local, n_ctx) * c->num_key_value_heads *
           c->head_dim * (int64_t)kv_size(kv_type);
}

// layer_kv: where layer l's (K, *n, D) keys and values start in s's caches (in elements), *n its
// positions (cap, or hold for a local layer) and *p0 the position in its first slot
static size_t layer_kv(const plm_session *s, int l, int *n, int *p0) {
    const plm_config *cfg = &s->model->config;
    const int local = plm_layer_window(cfg, l) > 0;
    *n = local ? s->hold : s->cap, *p0 = local ? s->base : 0;
    return slots(cfg, l, s->hold, s->cap) * (size_t)cfg->num_key_value_heads *
           (size_t)cfg->head_dim;
}

// reserve: grow the caches, the token history (and a standalone session's attention buffer) to
// hold need positions (<= n_ctx): double the capacity (at least; a local layer's up to
// local_cap), copy each layer's filled positions over. Memory follows the positions used, not
// n_ctx: a 2048-position context that holds a 100-token paraphrase costs 256 positions (a wasm
// heap never returns memory, and its calloc touches every page). On failure the session is
// unchanged.
static plm_status reserve(plm_session *s, int need) {
    if (need <= s->cap) return PLM_OK;
    const plm_config *cfg = &s->model->config;
    const int L = cfg->num_hidden_layers;
    size_t K = (size_t)cfg->num_key_value_heads, D = (size_t)cfg->head_dim,
           es = kv_size(s->kv_type);
    int cap = s->cap ? s->cap : need;
    while (cap < need) cap = cap > s->n_ctx / 2 ? s->n_ctx : 2 * cap;
    plm_session grown = *s; // the new sizes, for layer_kv
    grown.cap = cap, grown.hold = cap < local_cap(cfg) ? cap : local_cap(cfg);
    const size_t all = slots(cfg, L, grown.hold, cap);
    char *k = plm_alloc(all * K, D * es);
    char *v = plm_alloc(all * K, D * es);
    int32_t *hist = plm_alloc((size_t)cap, sizeof *hist);
    if (!k || !v || !hist || (s->step && step_att(s->step, cap) != PLM_OK)) {
        free(k), free(v), free(hist);
        return PLM_ERR_NOMEM;
    }
    for (int l = 0; l < L && s->n_past > 0; l++) { // positions p0 .. n_past of each KV head
        int n, m, p0;
        const size_t from = layer_kv(s, l, &n, &p0), to = layer_kv(&grown, l, &m, &p0);
        for (size_t h = 0; h < K; h++) {
            const size_t a = (from + h * (size_t)n * D) * es, b = (to + h * (size_t)m * D) * es;
            const size_t bytes = (size_t)(s->n_past - p0) * D * es;
            memcpy(k + b, (char *)s->k_cache + a, bytes);
            memcpy(v + b, (char *)s->v_cache + a, bytes);
        }
    }
    if (s->hist) memcpy(hist, s->hist, (size_t)(s->n_past + s->pending) * sizeof *hist);
    free(s->k_cache), free(s->v_cache), free(s->hist);
    s->k_cache = k, s->v_cache = v, s->hist = hist, s->cap = cap, s->hold = grown.hold;
    return PLM_OK;
}

// slide: room in s's local layers for T (<= CHUNK) more positions: when they would overflow, drop
// their oldest positions, keeping the last window - 1 at least (a query sees no further back)
static void slide(plm_session *s, int T) {
    if (!s->hold || s->n_past + T - s->base <= s->hold) return; // hold 0: no local layers
    const plm_config *cfg = &s->model->config;
    const size_t K = (size_t)cfg->num_key_value_heads, D = (size_t)cfg->head_dim,
                 es = kv_size(s->kv_type);
    const int base = s->n_past + T - s->hold, keep = s->n_past - base;
    for (int l = 0; l < cfg->num_hidden_layers; l++) {
        int n, p0;
        const size_t at = layer_kv(s, l, &n, &p0);
        if (plm_layer_window(cfg, l) <= 0) continue;
        for (size_t h = 0; h < K; h++) {
            char *k = (char *)s->k_cache + (at + h * (size_t)n * D) * es,
                 *v = (char *)s->v_cache + (at + h * (size_t)n * D) * es;
            memmove(k, k + (size_t)(base - p0) * D * es, (size_t)keep * D * es);
            memmove(v, v + (size_t)(base - p0) * D * es, (size_t)keep * D * es);
        }
    }
    s->base = base;
}

// session_new: the parts every session has: the adapter, the logits and the first caches
static plm_session *session_new(const plm_model *model, const plm_lora *lora, int n_ctx,
                                plm_dtype kv_type) {
    plm_session *s = plm_alloc(1, sizeof *s);
    if (!s) return NULL;
    s->model = model;
    s->lora = lora;
    s->kv_type = kv_type;
    s->n_vocab = lora ? lora->vocab_size : model->config.vocab_size;
    s->n_ctx = n_ctx;
    s->logits = plm_alloc_aligned((size_t)s->n_vocab, sizeof(float));
    if (!s->logits || reserve(s, n_ctx < FIRST_CAP ? n_ctx : FIRST_CAP) != PLM_OK) {
        plm_session_free(s);
        return NULL;
    }
    return s;
}

// check_ctx: the context size asked for (0 = the model's, at most 2048), validated
static plm_status check_ctx(const plm_model *model, int32_t *n_ctx, plm_error *err) {
    int max_pos = model->config.max_position_embeddings;
    if (max_pos <= 0) max_pos = 2048;
    if (*n_ctx == 0) *n_ctx = max_pos < 2048 ? max_pos : 2048;
    if (*n_ctx < 1 || *n_ctx > 1 << 20)
        return plm_fail(err, PLM_ERR_ARG, "n_ctx %d: want 1 .. %d", *n_ctx, 1 << 20);
    return PLM_OK;
}

plm_status plm_session_create(plm_session **out, const plm_model *model,
                              const plm_session_params *params, plm_error *err) {
    if (!out || !model) return plm_fail(err, PLM_ERR_ARG, "plm_session_create: NULL argument");
    *out = NULL;
    plm_session_params p = params ? *params : plm_session_default_params();
    plm_status st = check_ctx(model, &p.n_ctx, err);
    if (st != PLM_OK) return st;
    if (p.n_threads == 0) p.n_threads = plm_n_cores();
    if (p.n_threads < 1 || p.n_threads > 256)
        return plm_fail(err, PLM_ERR_ARG, "n_threads %d: want 1 .. 256", p.n_threads);
    if (p.kv_type != PLM_DTYPE_F32 && p.kv_type != PLM_DTYPE_F16)
        return plm_fail(err, PLM_ERR_ARG, "kv_type %s: want f32 or f16", plm_dtype_name(p.kv_type));
    plm_session *s = session_new(model, p.lora, p.n_ctx, p.kv_type);
    if (s) s->pool = plm_pool_create(p.n_threads);
    if (s && s->pool)
        s->step =
            plm_step_create(model, s->pool, CHUNK, 1, p.lora ? p.lora->rank : 0, p.n_ctx, s->cap);
    if (!s || !s->step) {
        plm_session_free(s);
        return plm_fail(err, PLM_ERR_NOMEM, "out of memory creating a session of %d positions",
                        p.n_ctx);
    }
    *out = s;
    return PLM_OK;
}

plm_status plm_session_create_batched(plm_session **out, plm_batch *b, const plm_lora *lora,
                                      int32_t n_ctx, plm_error *err) {
    *out = NULL;
    const plm_model *model = plm_batch_model(b);
    plm_status st = check_ctx(model, &n_ctx, err);
    if (st != PLM_OK) return st;
    if (n_ctx > plm_batch_n_ctx(b) || (lora && lora->rank > PLM_BATCH_MAX_RANK))
        return plm_fail(err, PLM_ERR_ARG,
                        "batched session: n_ctx %d (the batch's: %d), LoRA rank %d (at most %d)",
                        n_ctx, plm_batch_n_ctx(b), lora ? lora->rank : 0, PLM_BATCH_MAX_RANK);
    plm_session *s = session_new(model, lora, n_ctx, plm_batch_kv_type(b));
    if (!s)
        return plm_fail(err, PLM_ERR_NOMEM, "out of memory creating a session of %d positions",
                        n_ctx);
    s->batch = b;
    plm_batch_attach(b);
    *out = s;
    return PLM_OK;
}

// ---- attention over threads ----

// The (row, head) pairs of every sequence in the step, split over the threads by their cost: the
// keys each pair reads (sequences at different positions cost differently), plus a constant for
// its softmax and output.
typedef struct {
    const plm_step *st;
    const plm_step_seq *sq;
    int32_t n, layer;
} attention_job;

// pair_cost: the work of one (row, head) pair at position pos of a layer with window w (0: none)
static long pair_cost(int pos, int w) {
    return (w > 0 && pos + 1 > w ? w : pos + 1) + 16;
}

// split_pairs: the first pair (index over the step's pairs, sequence by sequence, row by row,
// head by head) whose cost before it reaches goal
static long split_pairs(const attention_job *j, int H, int w, long goal) {
    long cost = 0, pair = 0;
    for (int32_t i = 0; i < j->n; i++)
        for (int t = 0; t < j->sq[i].T; t++) {
            const long c = pair_cost(j->sq[i].s->n_past + t, w);
            if (cost + H * c > goal) return pair + (goal - cost + c - 1) / c; // within this row
            cost += H * c, pair += H;
        }
    return pair;
}

static void attention_worker(void *ctx, int ith, int nth) {
    const attention_job *j = ctx;
    const plm_step *st = j->st;
    const plm_config *cfg = &st->model->config;
    int H = cfg->num_attention_heads, K = cfg->num_key_value_heads, D = cfg->head_dim;
    const int w = plm_layer_window(cfg, j->layer);
    size_t HD = (size_t)H * D;
    // the step's cost: this thread's share is [total ith / nth, total (ith + 1) / nth)
    long total = 0;
    for (int32_t i = 0; i < j->n; i++)
        for (int t = 0; t < j->sq[i].T; t++) total += H * pair_cost(j->sq[i].s->n_past + t, w);
    const long i0 = split_pairs(j, H, w, total * ith / nth);
    const long i1 = split_pairs(j, H, w, total * (ith + 1) / nth);
    long off = 0; // the sequence's first row
    for (int32_t i = 0; i < j->n; off += j->sq[i].T, i++) {
        const plm_session *s = j->sq[i].s;
        long a = off * H, b = a + (long)j->sq[i].T * H; // its pairs [a, b)
        long lo = i0 > a ? i0 : a, hi = i1 < b ? i1 : b;
        if (lo >= hi) continue;
        int n, p0;
        const size_t lc =
            layer_kv(s, j->layer, &n, &p0) * kv_size(s->kv_type); // its (K, n, D), bytes
        plm_attention_forward_kv(
            st->att_out + (size_t)off * HD,
            st->att + (size_t)off * (size_t)H * (size_t)st->att_stride, st->att_stride,
            st->q + (size_t)off * HD, (const char *)s->k_cache + lc, (const char *)s->v_cache + lc,
            (size_t)D, (size_t)n * D, j->sq[i].T, s->n_past, H, K, D, plm_attention_scale(cfg), w,
            p0, (int)(lo - a), (int)(hi - a), s->kv_type);
    }
}

// The targets of each linear call in a layer: those that share an input run together.
static const plm_lora_target QKV[] = {PLM_LORA_Q_PROJ, PLM_LORA_K_PROJ, PLM_LORA_V_PROJ},
                             O_PROJ[] = {PLM_LORA_O_PROJ},
                             GATE_UP[] = {PLM_LORA_GATE_PROJ, PLM_LORA_UP_PROJ},
                             DOWN_PROJ[] = {PLM_LORA_DOWN_PROJ};

// linear: nw linear layers of layer l (targets t[0..nw), weights of the same input) over every
// row of the step: the base matmuls at once (the weights read once), and their biases, then each
// sequence's adapter path for each target on its own rows (plm_linear_forward's order)
static void linear(const plm_step *st, const plm_step_seq *sq, int32_t n, int nw,
                   float *const *outs, const float *inp, int l, const plm_lora_target *t, int T) {
    const plm_layer *layer = &st->model->layers[l];
    const plm_mat *ws[PLM_MATMUL_MAX_N];
    for (int k = 0; k < nw; k++) ws[k] = plm_layer_target(layer, t[k]);
    plm_matmul_n(st->pool, nw, outs, inp, ws, T, st->scratch);
    plm_linear_bufs b = {.u = st->lora_u, .y = st->lora_y, .scratch = st->scratch};
    for (int k = 0; k < nw; k++) {
        const float *bias = plm_layer_bias(layer, t[k]);
        if (bias) plm_bias_forward(outs[k], bias, T, ws[k]->rows);
        for (int32_t i = 0, off = 0; i < n; off += sq[i].T, i++)
            plm_lora_branch_forward(st->pool, outs[k] + (size_t)off * ws[k]->rows,
                                    inp + (size_t)off * ws[k]->cols, ws[k], sq[i].s->lora, l, t[k],
                                    sq[i].T, 0, 0, &b);
    }
}

// ---- the forward step ----

// store: n floats x into a cache of type t at element i: as they are, or as IEEE half (rounded to
// nearest even, plm_f32_to_f16_n)
static void store(void *cache, size_t i, const float *x, size_t n, plm_dtype t) {
    if (t == PLM_DTYPE_F16) plm_f32_to_f16_n((uint16_t *)cache + i, x, n);
    else memcpy((float *)cache + i, x, n * sizeof *x);
}

// new_keys_values: RoPE on the queries and new keys of rows [t0, t1) of sequence sq (its rows from
// row off of the step; a local layer's table for Gemma 3's), then those keys and values into its
// caches at positions P+t0 .. P+t1-1 of layer l (each row's K heads to their own streams)
static void new_keys_values(const plm_step *st, const plm_step_seq *sq, int32_t off, int t0, int t1,
                            int l) {
    const plm_config *cfg = &st->model->config;
    int H = cfg->num_attention_heads, K = cfg->num_key_value_heads, D = cfg->head_dim;
    size_t KD = (size_t)K * D;
    const int local = plm_layer_window(cfg, l) > 0;
    const float *cos_t = local ? st->cos_l : st->cos_t, *sin_t = local ? st->sin_l : st->sin_t;
    plm_session *s = sq->s;
    int P = s->n_past, slots, p0;
    const size_t lc = layer_kv(s, l, &slots, &p0);
    float *k = st->kn + (size_t)off * KD, *v = st->vn + (size_t)off * KD;
    plm_rope_forward(st->q + (size_t)(off + t0) * H * D, cos_t, sin_t, P + t0, t1 - t0, H, D);
    plm_rope_forward(k + (size_t)t0 * KD, cos_t, sin_t, P + t0, t1 - t0, K, D);
    for (int t = t0; t < t1; t++)
        for (int kh = 0; kh < K; kh++) { // (kh, P + t) of the layer's caches
            size_t at = lc + ((size_t)kh * (size_t)slots + (size_t)(P + t - p0)) * D;
            store(s->k_cache, at, k + (size_t)t * KD + (size_t)kh * D, D, s->kv_type);
            store(s->v_cache, at, v + (size_t)t * KD + (size_t)kh * D, D, s->kv_type);
        }
}

// The step's rows split evenly over the threads for new_keys_values (each row on its own).
typedef struct {
    const plm_step *st;
    const plm_step_seq *sq;
    int32_t n, layer, rows;
} kv_job;

static void kv_worker(void *ctx, int ith, int nth) {
    const kv_job *j = ctx;
    const int32_t r0 = j->rows * ith / nth, r1 = j->rows * (ith + 1) / nth;
    for (int32_t i = 0, off = 0; i < j->n; off += j->sq[i].T, i++) {
        const int32_t lo = r0 > off ? r0 : off, end = off + j->sq[i].T, hi = r1 < end ? r1 : end;
        if (lo < hi) new_keys_values(j->st, &j->sq[i], off, lo - off, hi - off, j->layer);
    }
}

// step_forward: one forward step over the rows of n sequences (sum of T <= st->rows, each cache
// reserved for its T more positions): appends each sequence's tokens to its cache and leaves the
// logits of its last token in its s->logits; logits_out (T, NV), when not NULL (n == 1), receives
// every row's logits instead.
static void step_forward(const plm_step *st, const plm_step_seq *sq, int32_t n, float *logits_out) {
    const plm_model *m = st->model;
    const plm_config *cfg = &m->config;
    int C = cfg->hidden_size, F = cfg->intermediate_size, L = cfg->num_hidden_layers;
    int H = cfg->num_attention_heads, K = cfg->num_key_value_heads, D = cfg->head_dim;
    size_t V = (size_t)cfg->vocab_size;
    float eps = cfg->rms_norm_eps;
    const int gelu = cfg->model_type == PLM_ARCH_GEMMA3;
    int T = 0; // rows in the step
    for (int32_t i = 0; i < n; T += sq[i].T, i++) {
        slide(sq[i].s, sq[i].T);
        plm_embed_forward(st->x + (size_t)T * C, sq[i].ids, sq[i].T, m, sq[i].s->lora);
    }
    for (int l = 0; l < L; l++) {
        const plm_layer *w = &m->layers[l];
        // attention block: x += o_proj(attention(rope(q), rope(k), v)), q, k, v with their
        // biases (Qwen2), q, k normalized per head (Qwen3, Gemma 3), o_proj's output normalized
        // (Gemma 3)
        plm_rmsnorm_forward_mt(st->pool, st->xn, NULL, st->x, w->input_layernorm, T, C, eps);
        linear(st, sq, n, 3, (float *const[]){st->q, st->kn, st->vn}, st->xn, l, QKV, T);
        if (cfg->qk_norm) { // RMSNorm over each head's D values of q and k, before RoPE
            plm_rmsnorm_forward_mt(st->pool, st->q, NULL, st->q, w->q_norm, T * H, D, eps);
            plm_rmsnorm_forward_mt(st->pool, st->kn, NULL, st->kn, w->k_norm, T * K, D, eps);
        }
        kv_job kv = {st, sq, n, l, T};
        if (T > 1) plm_pool_run(st->pool, kv_worker, &kv);
        else kv_worker(&kv, 0, 1);
        attention_job job = {st, sq, n, l};
        plm_pool_run(st->pool, attention_worker, &job);
        linear(st, sq, n, 1, &st->xn, st->att_out, l, O_PROJ, T);
        if (w->post_attn_norm)
            plm_rmsnorm_forward_mt(st->pool, st->xn, NULL, st->xn, w->post_attn_norm, T, C, eps);
        plm_residual_forward(st->x, st->xn, (size_t)T * C);
        // MLP block: x += down_proj(act(gate_proj(xn)) * up_proj(xn)), act silu (SwiGLU) or
        // Gemma 3's tanh GELU (GeGLU), down_proj's output normalized (Gemma 3)
        plm_rmsnorm_forward_mt(st->pool, st->xn, NULL, st->x, w->post_attention_layernorm, T, C,
                               eps);
        linear(st, sq, n, 2, (float *const[]){st->gate, st->up}, st->xn, l, GATE_UP, T);
        plm_glu_forward_mt(st->pool, gelu, st->gate, st->gate, st->up, (size_t)T * F);
        linear(st, sq, n, 1, &st->xn, st->gate, l, DOWN_PROJ, T);
        if (w->post_ffw_norm)
            plm_rmsnorm_forward_mt(st->pool, st->xn, NULL, st->xn, w->post_ffw_norm, T, C, eps);
        plm_residual_forward(st->x, st->xn, (size_t)T * C);
    }
    for (int32_t i = 0; i < n; i++) sq[i].s->n_past += sq[i].T, sq[i].s->pending -= sq[i].T;
    if (logits_out) {
        plm_rmsnorm_forward(st->xn, NULL, st->x, m->norm, T, C, eps);
        plm_head_forward(st->pool, logits_out, st->xn, T, m, sq[0].s->lora, st->scratch);
        return;
    }
    // only each sequence's last row: the head (the largest weight) once for all of them
    for (int32_t i = 0, end = 0; i < n; i++) {
        end += sq[i].T;
        plm_rmsnorm_forward(st->xn + (size_t)i * C, NULL, st->x + (size_t)(end - 1) * C, m->norm, 1,
                            C, eps);
    }
    plm_matmul(st->pool, st->logits, st->xn, &m->lm_head, n, st->scratch); // (n, V)
    for (int32_t i = 0; i < n; i++) {
        memcpy(sq[i].s->logits, st->logits + (size_t)i * V, V * sizeof(float));
        plm_head_tokens_forward(sq[i].s->logits, st->xn + (size_t)i * C, m, sq[i].s->lora);
    }
}

void plm_step_run(const plm_step *st, const plm_step_seq *sq, int32_t n) {
    step_forward(st, sq, n, NULL);
}

// ---- public entry points ----

plm_status plm_session_admit(plm_session *s, const int32_t *ids, int32_t n, plm_error *err) {
    const int32_t used = s->n_past + s->pending;
    if (!ids || n < 1) return plm_fail(err, PLM_ERR_ARG, "decode: no tokens");
    if (n > s->n_ctx - used)
        return plm_fail(err, PLM_ERR_ARG,
                        "decode: %d tokens do not fit in the context: %d of %d positions used", n,
                        used, s->n_ctx);
    int32_t V = s->n_vocab;
    for (int32_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return plm_fail(err, PLM_ERR_ARG, "decode: token %d at index %d out of range [0, %d)",
                            ids[i], i, V);
    if (reserve(s, used + n) != PLM_OK)
        return plm_fail(err, PLM_ERR_NOMEM,
                        "decode: out of memory growing the KV cache to %d "
                        "positions",
                        used + n);
    memcpy(s->hist + used, ids, (size_t)n * sizeof *ids);
    s->pending += n;
    return PLM_OK;
}

// run: forward steps of a standalone session over the next n of its pending tokens, CHUNK at a
// time; out (n, n_vocab), when not NULL, receives every row's logits
static void run(plm_session *s, int32_t n, float *out) {
    for (int32_t i = 0; i < n; i += CHUNK) {
        plm_step_seq sq = {s, s->hist + s->n_past, n - i < CHUNK ? n - i : CHUNK};
        step_forward(s->step, &sq, 1, out ? out + (size_t)i * (size_t)s->n_vocab : NULL);
    }
}

plm_status plm_session_decode(plm_session *s, const int32_t *ids, int32_t n, plm_error *err) {
    if (!s) return plm_fail(err, PLM_ERR_ARG, "decode: NULL session");
    plm_status st = plm_session_admit(s, ids, n, err);
    if (st != PLM_OK) return st;
    if (s->batch)
        return plm_batch_decode(s->batch, s, s->hist + s->n_past, s->pending) == PLM_OK
                   ? PLM_OK
                   : plm_fail(err, PLM_ERR_CANCELLED, "decode: the batch has stopped");
    run(s, s->pending, NULL);
    return PLM_OK;
}

plm_status plm_session_decode_all(plm_session *s, const int32_t *ids, int32_t n, float *out,
                                  plm_error *err) {
    if (!s || !out) return plm_fail(err, PLM_ERR_ARG, "decode_all: NULL argument");
    if (s->batch)
        return plm_fail(err, PLM_ERR_UNSUPPORTED, "decode_all: not for a session of a batch");
    plm_status st = plm_session_admit(s, ids, n, err);
    if (st != PLM_OK) return st;
    run(s, s->pending - n, NULL); // what a truncation left to decode again, if anything
    run(s, n, out);
    size_t V = (size_t)s->n_vocab;
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
int32_t plm_session_pending(const plm_session *s) {
    return s->pending;
}
int32_t plm_session_n_past(const plm_session *s) {
    return s->n_past + s->pending;
}
int32_t plm_session_n_ctx(const plm_session *s) {
    return s->n_ctx;
}
int32_t plm_session_n_threads(const plm_session *s) {
    return s->pool ? plm_pool_size(s->pool) : plm_batch_n_threads(s->batch);
}

// Below what the local layers still hold for position n (the window - 1 before it), the first n
// tokens become pending again: the next decode runs them before its own.
void plm_session_truncate(plm_session *s, int32_t n) {
    if (n < 0 || n >= s->n_past + s->pending) return;
    if (n >= s->n_past) {
        s->pending = n - s->n_past;
        return;
    }
    s->pending = 0;
    if (s->base > 0 && n - s->model->config.sliding_window + 1 < s->base)
        s->pending = n, s->n_past = 0, s->base = 0;
    else s->n_past = n;
}
