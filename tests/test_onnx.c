// test_onnx.c: the ONNX export (src/onnx.c) on the C side: files written for tied and untied tiny
// models in every mode, byte-identical on a second export; the int8 / int4 graphs read back (a small
// protobuf walk): weight-only MatMulNBits nodes and their initializers, no integer activation op,
// every weight decoded from its planes, scales and offsets within half a step of the model's, and
// exactly when the model's weights are on a Q8_0, Q4_0 or Q4_1 grid; bad input refused without
// leaving anything behind (existing directory, shapes int8/int4 cannot hold, an unwritable place).
// The numbers are checked by onnxruntime in tests/onnx.test.sh, against what this program writes with
//   test_onnx --export DIR MODEL [--quant none,int8,int4] [--text TEXT] [--greedy N] [--lora A]
// : DIR (the export; with --lora, plm_onnx_export_lora) plus DIR/ref.json {prompt, greedy, vocab}
// and DIR/ref_logits.f32, the session's logits (n_prompt, vocab) of every prompt position (the
// adapter applied at run time), the oracle onnx_check.mjs compares.
#define _DEFAULT_SOURCE // mkdtemp
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lora.h"
#include "onnx.h"
#include "test.h"

static char tmpdir[64];

static const char *tmp(const char *name) {
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static plm_model *load(const char *path) {
    plm_model *m = NULL;
    plm_error err;
    plm_load_params lp = plm_load_default_params();
    if (plm_model_load(&m, path, &lp, &err) != PLM_OK) CHECK_MSG(0, "%s: %s", path, err.msg);
    return m;
}

static long file_size(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

static int same_file(const char *a, const char *b) {
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    int same = plm_file_read(a, &x, &nx, NULL) == PLM_OK &&
               plm_file_read(b, &y, &ny, NULL) == PLM_OK && nx == ny && !memcmp(x, y, nx);
    free(x), free(y);
    return same;
}

// ---- the files ----

static void test_files(const char *model, const char *name) {
    plm_model *m = load(model);
    if (!m) return;
    plm_onnx_quant qs[] = {PLM_ONNX_QUANT_NONE, PLM_ONNX_QUANT_INT8, PLM_ONNX_QUANT_INT4,
                           PLM_ONNX_QUANT_INT8_QDQ};
    plm_error err;
    char a[128], b[128];
    snprintf(a, sizeof a, "%s/%s", tmpdir, name);
    snprintf(b, sizeof b, "%s/%s-again", tmpdir, name);
    CHECK_MSG(plm_onnx_export(m, a, qs, 4, 0, &err) == PLM_OK, "%s: %s", name, err.msg);
    CHECK(plm_onnx_export(m, b, qs, 4, 0, &err) == PLM_OK);
    char p[256], q[256];
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/onnx/%s", a, plm_onnx_file_name(qs[i]));
        snprintf(q, sizeof q, "%s/onnx/%s", b, plm_onnx_file_name(qs[i]));
        CHECK_MSG(file_size(p) > 10000, "%s: %ld bytes", p, file_size(p));
        CHECK_MSG(same_file(p, q), "%s: a second export differs", p);
    }
    snprintf(p, sizeof p, "%s/config.json", a);
    CHECK(file_size(p) > 100);
    snprintf(p, sizeof p, "%s/tokenizer.json", a);
    CHECK(file_size(p) < 0); // the tiny models have no tokenizer: no tokenizer files
    snprintf(p, sizeof p, "%s.tmp", a);
    CHECK(!plm_path_exists(p));
    // f32 weights are stored once: the fp32 file is about the f32 parameter bytes, not more
    const plm_config *c = plm_model_config(m);
    snprintf(p, sizeof p, "%s/onnx/model.onnx", a);
    double ratio = (double)file_size(p) / (4.0 * (double)plm_model_n_params(m));
    CHECK_MSG(ratio > 1.0 && ratio < 1.05, "%s: file / f32 params = %.3f (tied %d)", p, ratio,
              c->tie_word_embeddings);
    plm_model_free(m);
}

// ---- reading an exported file back: the few ONNX fields the checks need ----

typedef struct {
    const uint8_t *p;
    size_t n;
} span;

typedef struct {
    char op[32], domain[32], in[3][160];
    int n_in;
    int64_t K, N, bits, block_size; // MatMulNBits attributes (-1 when absent)
} rnode;

typedef struct {
    char name[160];
    int32_t dtype;
    int n_dims;
    int64_t dims[4];
    span data;
} rtensor;

typedef struct {
    char *file; // the whole file (the spans point into it)
    rnode *nodes;
    rtensor *inits;
    int n_nodes, n_inits;
} rmodel;

static int pb_varint(span *s, uint64_t *v) {
    *v = 0;
    for (int sh = 0; sh < 64; sh += 7) {
        if (!s->n) return 0;
        uint8_t c = *s->p++;
        s->n--;
        *v |= (uint64_t)(c & 0x7f) << sh;
        if (!(c & 0x80)) return 1;
    }
    return 0;
}

// pb_next: the next field of s: number, wire type, and its varint value or bytes (fixed32 fields
// are skipped over); 0 at the end or on malformed input.
static int pb_next(span *s, int *field, int *wire, uint64_t *v, span *bytes) {
    uint64_t key;
    if (!pb_varint(s, &key)) return 0;
    *field = (int)(key >> 3), *wire = (int)(key & 7);
    if (*wire == 0) return pb_varint(s, v);
    if (*wire == 5 && s->n >= 4) return s->p += 4, s->n -= 4, 1;
    if (*wire != 2 || !pb_varint(s, v) || *v > s->n) return 0;
    *bytes = (span){s->p, (size_t)*v};
    s->p += *v, s->n -= (size_t)*v;
    return 1;
}

static void span_str(char *dst, size_t cap, span b) {
    size_t n = b.n < cap - 1 ? b.n : cap - 1;
    memcpy(dst, b.p, n);
    dst[n] = 0;
}

static void read_node(rnode *nd, span s) {
    int f, w;
    uint64_t v = 0;
    span b = {0};
    *nd = (rnode){.K = -1, .N = -1, .bits = -1, .block_size = -1};
    while (pb_next(&s, &f, &w, &v, &b)) {
        if (f == 1 && nd->n_in < 3) span_str(nd->in[nd->n_in++], sizeof nd->in[0], b);
        if (f == 4) span_str(nd->op, sizeof nd->op, b);
        if (f == 7) span_str(nd->domain, sizeof nd->domain, b);
        if (f != 5) continue;
        char name[32] = "";
        int64_t i = -1;
        span a = b;
        while (pb_next(&a, &f, &w, &v, &b)) {
            if (f == 1) span_str(name, sizeof name, b);
            if (f == 3) i = (int64_t)v;
        }
        if (!strcmp(name, "K")) nd->K = i;
        if (!strcmp(name, "N")) nd->N = i;
        if (!strcmp(name, "bits")) nd->bits = i;
        if (!strcmp(name, "block_size")) nd->block_size = i;
    }
}

static void read_tensor(rtensor *t, span s) {
    int f, w;
    uint64_t v = 0;
    span b = {0};
    *t = (rtensor){0};
    while (pb_next(&s, &f, &w, &v, &b)) {
        if (f == 1 && t->n_dims < 4) t->dims[t->n_dims++] = (int64_t)v;
        if (f == 2) t->dtype = (int32_t)v;
        if (f == 8) span_str(t->name, sizeof t->name, b);
        if (f == 9) t->data = b;
    }
}

static void rmodel_free(rmodel *r) {
    free(r->file), free(r->nodes), free(r->inits);
}

// read_model: the nodes and initializers of the ONNX file at path; 0 on failure (then free r too).
static int read_model(rmodel *r, const char *path) {
    size_t n = 0;
    *r = (rmodel){0};
    if (plm_file_read(path, &r->file, &n, NULL) != PLM_OK) return 0;
    span s = {(const uint8_t *)r->file, n}, b = {0}, g = {0};
    int f, w, cap_n = 0, cap_i = 0;
    uint64_t v = 0;
    while (pb_next(&s, &f, &w, &v, &b))
        if (f == 7) g = b;
    while (pb_next(&g, &f, &w, &v, &b)) {
        if (f == 1 && r->n_nodes == cap_n) {
            rnode *p = realloc(r->nodes, (size_t)(cap_n = cap_n * 2 + 256) * sizeof *p);
            if (!p) return 0;
            r->nodes = p;
        }
        if (f == 5 && r->n_inits == cap_i) {
            rtensor *p = realloc(r->inits, (size_t)(cap_i = cap_i * 2 + 256) * sizeof *p);
            if (!p) return 0;
            r->inits = p;
        }
        if (f == 1) read_node(&r->nodes[r->n_nodes++], b);
        if (f == 5) read_tensor(&r->inits[r->n_inits++], b);
    }
    return r->n_nodes > 0;
}

static const rtensor *rinit(const rmodel *r, const char *name) {
    for (int i = 0; i < r->n_inits; i++)
        if (!strcmp(r->inits[i].name, name)) return &r->inits[i];
    return NULL;
}

static int count_op(const rmodel *r, const char *op) {
    int n = 0;
    for (int i = 0; i < r->n_nodes; i++) n += !strcmp(r->nodes[i].op, op);
    return n;
}

static float f32_at(span d, int64_t i) {
    float x;
    memcpy(&x, d.p + 4 * i, 4);
    return x;
}

// ---- the int8 / int4 weights ----

typedef struct {
    double se, sr;   // squared error and squared reference over the weights checked
    double worst;    // max |decoded - weight| / |scale| over elements (0.5 = half a step)
    double exact[2]; // max |decoded - weight| / (|weight| + 256 |scale|), [0] the layers, [1] the
                     // embedding and head: ~1e-7 when on a grid
    int bad;         // missing or misshapen initializers
} wstats;

// check_weight: weight w (rows N, cols K) as the file r stores it under wname in `bits` bits:
// decoded[n, k] = s * (u - zero) + offset, u = 16 hi + lo (bits 8) or the 4-bit code, zero 136 or 8.
static void check_weight(const rmodel *r, const plm_mat *w, const char *wname, int bits, int head,
                         wstats *st) {
    char nm[200];
    int64_t N = w->rows, K = w->cols, nb = K / 32;
    const rtensor *planes[2], *sc, *off;
    snprintf(nm, sizeof nm, bits == 8 ? "%s_lo" : "%s_q4", wname);
    planes[0] = rinit(r, nm);
    snprintf(nm, sizeof nm, "%s_hi", wname);
    planes[1] = bits == 8 ? rinit(r, nm) : NULL;
    snprintf(nm, sizeof nm, "%s_scale", wname);
    sc = rinit(r, nm);
    snprintf(nm, sizeof nm, "%s_offset", wname);
    off = rinit(r, nm);
    int ok = planes[0] && (bits == 4 || planes[1]) && sc && off;
    for (int p = 0; ok && p < (bits == 8 ? 2 : 1); p++)
        ok = planes[p]->dtype == 2 && planes[p]->n_dims == 3 && planes[p]->dims[0] == N &&
             planes[p]->dims[1] == nb && planes[p]->dims[2] == 16 &&
             planes[p]->data.n == (size_t)(N * nb * 16);
    ok = ok && sc->dtype == 1 && sc->n_dims == 1 && sc->dims[0] == N * nb &&
         sc->data.n == (size_t)(N * nb * 4) && off->dtype == 1 && off->n_dims == 2 &&
         off->dims[0] == nb && off->dims[1] == N && off->data.n == (size_t)(N * nb * 4);
    CHECK_MSG(ok, "%s (%d bits): missing or misshapen initializers", wname, bits);
    if (!ok) {
        st->bad++;
        return;
    }
    float *row = malloc((size_t)K * sizeof *row);
    for (int64_t n = 0; row && n < N; n++) {
        plm_mat_row(row, w, (int32_t)n);
        for (int64_t k = 0; k < K; k++) {
            int64_t b = k / 32, byte = (n * nb + b) * 16 + (k % 32) / 2, sh = (k % 2) * 4;
            int u = planes[0]->data.p[byte] >> sh & 15;
            if (bits == 8) u += 16 * (planes[1]->data.p[byte] >> sh & 15);
            double s = f32_at(sc->data, n * nb + b), o = f32_at(off->data, b * N + n);
            double ref = (double)row[k], x = s * (u - (bits == 8 ? 136 : 8)) + o, d = fabs(x - ref);
            st->se += d * d, st->sr += ref * ref;
            if (s != 0.0 && d / fabs(s) > st->worst) st->worst = d / fabs(s);
            double rel = d / (fabs(ref) + 256.0 * fabs(s) + 1e-30);
            if (rel > st->exact[head]) st->exact[head] = rel;
        }
    }
    free(row);
}

// check_branch: the f32 low-rank branch of an adapted linear: A^T (in, R) and B^T (R, out) as the
// adapter holds A (R, in) and B (out, R).
static void check_branch(const rmodel *r, const plm_lora *l, int layer, int t, const char *wname,
                         int32_t in, int32_t out) {
    const plm_lora_pair *p = &l->pairs[layer * PLM_LORA_N_TARGETS + t];
    char nm[200];
    snprintf(nm, sizeof nm, "%s_lora_A_T", wname);
    const rtensor *a = rinit(r, nm);
    snprintf(nm, sizeof nm, "%s_lora_B_T", wname);
    const rtensor *b = rinit(r, nm);
    if (!p->A) {
        CHECK_MSG(!a && !b, "%s: a branch for a target the adapter leaves alone", wname);
        return;
    }
    int32_t R = l->rank;
    int ok = a && b && a->dtype == 1 && b->dtype == 1 && a->dims[0] == in && a->dims[1] == R &&
             b->dims[0] == R && b->dims[1] == out;
    for (int64_t i = 0; ok && i < (int64_t)R * in; i++) // A^T[k, r] = A[r, k]
        ok = f32_at(a->data, (i % in) * R + i / in) == p->A[i];
    for (int64_t i = 0; ok && i < (int64_t)out * R; i++) // B^T[r, o] = B[o, r]
        ok = f32_at(b->data, (i % R) * out + i / R) == p->B[i];
    CHECK_MSG(ok, "%s: the adapter's branch is missing or differs", wname);
}

// check_blocks: the int8 (bits 8) or int4 file at path of model m: MatMulNBits only (two 4-bit
// planes per 8-bit weight), the attributes and initializers MatMulNBits reads, every weight
// decoded; returns the stats. Layers are `bits`, the output head 8-bit. With an adapter l, m is
// base with l merged: the layers hold base's weights and l's branches, the embedding m's.
static wstats check_blocks(const plm_model *m, const plm_model *base, const plm_lora *l,
                           const char *path, int bits) {
    wstats st = {0};
    rmodel r;
    const plm_config *c = &m->config;
    if (!base) base = m;
    if (!read_model(&r, path)) {
        CHECK_MSG(0, "%s: cannot read back", path);
        rmodel_free(&r);
        st.bad = 1;
        return st;
    }
    int L = c->num_hidden_layers, per = bits == 8 ? 2 : 1;
    CHECK_MSG(count_op(&r, "MatMulNBits") == 7 * L * per + 2, "%s: %d MatMulNBits", path,
              count_op(&r, "MatMulNBits"));
    CHECK(count_op(&r, "MatMulInteger") == 0 && count_op(&r, "DynamicQuantizeLinear") == 0 &&
          count_op(&r, "DequantizeLinear") == 0);
    for (int i = 0; i < r.n_nodes; i++) {
        const rnode *nd = &r.nodes[i];
        if (strcmp(nd->op, "MatMulNBits")) continue;
        const rtensor *bq = nd->n_in == 3 ? rinit(&r, nd->in[1]) : NULL;
        const rtensor *sc = nd->n_in == 3 ? rinit(&r, nd->in[2]) : NULL;
        int ok = !strcmp(nd->domain, "com.microsoft") && nd->bits == 4 && nd->block_size == 32 &&
                 bq && sc && bq->dims[0] == nd->N && bq->dims[1] * 32 == nd->K &&
                 sc->dims[0] == nd->N * (nd->K / 32);
        CHECK_MSG(ok, "%s: MatMulNBits %s: domain %s bits %lld block %lld K %lld N %lld", path,
                  nd->in[1], nd->domain, (long long)nd->bits, (long long)nd->block_size,
                  (long long)nd->K, (long long)nd->N);
    }
    static const char *const names[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                         "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                         "mlp.down_proj"};
    char nm[160];
    for (int i = 0; i < L; i++) {
        const plm_layer *ly = &base->layers[i];
        const plm_mat *ws[7] = {&ly->q_proj,    &ly->k_proj,  &ly->v_proj,   &ly->o_proj,
                                &ly->gate_proj, &ly->up_proj, &ly->down_proj};
        for (int k = 0; k < 7; k++) {
            snprintf(nm, sizeof nm, "model.layers.%d.%s.weight", i, names[k]);
            check_weight(&r, ws[k], nm, bits, 0, &st);
            if (l) check_branch(&r, l, i, k, nm, ws[k]->cols, ws[k]->rows);
        }
    }
    check_weight(&r, &m->embed_tokens, "model.embed_tokens.weight", 8, 1, &st);
    if (!c->tie_word_embeddings) check_weight(&r, &m->lm_head, "lm_head.weight", 8, 1, &st);
    rmodel_free(&r);
    return st;
}

// test_blocks: the int8 and int4 files of model m: the graph, and each weight within a rounding
// step of the model's (8-bit: half a step; 4-bit: a step, Q4_0's grid clamps its largest value)
// with the weights' NMSE below max_nmse8 / max_nmse4; exact (a few ulps) where the mask `grid` says
// the weights are on a grid of 8 bits (Q8_0 or Q4_1: every 8-bit weight) or of 4 bits (Q4_0 or
// Q4_1: the int4 layers).
static void test_blocks(plm_model *m, const char *name, double max_nmse8, double max_nmse4,
                        int grid) {
    plm_onnx_quant qs[2] = {PLM_ONNX_QUANT_INT8, PLM_ONNX_QUANT_INT4};
    plm_error err;
    char d[160], p[200];
    snprintf(d, sizeof d, "%s/%s", tmpdir, name);
    CHECK_MSG(plm_onnx_export(m, d, qs, 2, 0, &err) == PLM_OK, "%s: %s", name, err.msg);
    for (int i = 0; i < 2; i++) {
        int bits = i ? 4 : 8;
        snprintf(p, sizeof p, "%s/onnx/%s", d, plm_onnx_file_name(qs[i]));
        wstats st = check_blocks(m, NULL, NULL, p, bits);
        double nmse = st.sr > 0 ? st.se / st.sr : st.se;
        CHECK_MSG(!st.bad && st.worst <= (bits == 8 ? 0.5 : 1.0) + 1e-3,
                  "%s %d-bit: worst error "
                  "%.4f steps",
                  name, bits, st.worst);
        CHECK_MSG(nmse <= (bits == 8 ? max_nmse8 : max_nmse4), "%s %d-bit: weights nmse %.3g", name,
                  bits, nmse);
        for (int h = 0; h < 2; h++) // h 1: the embedding and head, 8-bit in both files
            if (grid & (h ? 8 : bits))
                CHECK_MSG(st.exact[h] < 1e-6, "%s %d-bit: %s not exact on the model's grid (%.3g)",
                          name, bits, h ? "embedding" : "layers", st.exact[h]);
    }
}

// q4_1_model: a tiny model whose every block of 32 weights is on a Q4_1 grid, m + d * q, q 0..15,
// both ends present (as ggml quantizes: the block's min and max).
static plm_model *q4_1_model(void) {
    plm_config cfg = {.vocab_size = 96,
                      .hidden_size = 64,
                      .intermediate_size = 96,
                      .num_hidden_layers = 2,
                      .num_attention_heads = 2,
                      .num_key_value_heads = 1,
                      .head_dim = 32,
                      .max_position_embeddings = 64,
                      .rms_norm_eps = 1e-5f,
                      .rope_theta = 10000.0f,
                      .tie_word_embeddings = 1,
                      .bos_token_id = -1,
                      .eos_token_id = -1};
    plm_model *m = NULL;
    plm_error err;
    if (plm_model_alloc(&m, &cfg, &err) != PLM_OK) {
        CHECK_MSG(0, "%s", err.msg);
        return NULL;
    }
    uint32_t seed = 12345;
    plm_mat *ws[1 + 7 * 2];
    int n = 0;
    ws[n++] = &m->embed_tokens;
    for (int l = 0; l < 2; l++) {
        plm_layer *ly = &m->layers[l];
        ws[n++] = &ly->q_proj, ws[n++] = &ly->k_proj, ws[n++] = &ly->v_proj, ws[n++] = &ly->o_proj;
        ws[n++] = &ly->gate_proj, ws[n++] = &ly->up_proj, ws[n++] = &ly->down_proj;
    }
    for (int i = 0; i < n; i++) {
        size_t count = (size_t)ws[i]->rows * (size_t)ws[i]->cols;
        for (size_t b = 0; b < count; b += 32) {
            seed = seed * 1664525u + 1013904223u;
            float d = 0.001f + (float)(seed >> 8) / 16777216.0f * 0.01f;
            seed = seed * 1664525u + 1013904223u;
            float mn = -d * (2.0f + (float)(seed >> 8) / 16777216.0f * 11.0f);
            for (int k = 0; k < 32; k++) {
                seed = seed * 1664525u + 1013904223u;
                int q = k == 3 ? 0 : k == 17 ? 15 : (int)(seed >> 28);
                ws[i]->f32[b + (size_t)k] = mn + d * (float)q;
            }
        }
    }
    return m;
}

// test_lora_blocks: int8 / int4 of a tiny model with an adapter: base's weights quantized, the
// adapter's A and B as f32 branches, the embedding the merged one's; an adapter without its base
// refused.
static void test_lora_blocks(const char *model, const char *adapter, const char *name) {
    plm_model *base = load(model), *merged = NULL;
    plm_lora *l = NULL;
    plm_error err;
    if (!base) return;
    CHECK_MSG(plm_lora_load(&l, adapter, base, &err) == PLM_OK &&
                  plm_model_merge(&merged, base, l, &err) == PLM_OK,
              "%s: %s", adapter, err.msg);
    plm_onnx_quant qs[2] = {PLM_ONNX_QUANT_INT8, PLM_ONNX_QUANT_INT4};
    char d[160], p[200];
    snprintf(d, sizeof d, "%s/%s", tmpdir, name);
    CHECK_MSG(merged && plm_onnx_export_lora(merged, base, l, d, qs, 2, 0, &err) == PLM_OK,
              "%s: %s", name, err.msg);
    for (int i = 0; merged && i < 2; i++) {
        snprintf(p, sizeof p, "%s/onnx/%s", d, plm_onnx_file_name(qs[i]));
        wstats st = check_blocks(merged, base, l, p, i ? 4 : 8);
        double nmse = st.sr > 0 ? st.se / st.sr : st.se;
        CHECK_MSG(!st.bad && st.worst <= (i ? 1.0 : 0.5) + 1e-3 && nmse <= (i ? 2e-2 : 1e-4),
                  "%s %d-bit: worst %.4f steps, nmse %.3g", name, i ? 4 : 8, st.worst, nmse);
    }
    snprintf(d, sizeof d, "%s/%s-bad", tmpdir, name);
    CHECK(plm_onnx_export_lora(merged, NULL, l, d, qs, 2, 0, &err) == PLM_ERR_ARG);
    CHECK(!plm_path_exists(d));
    plm_model_free(merged), plm_lora_free(l), plm_model_free(base);
}

static void test_quantized(void) {
    // random f32 weights (0.2 * randn): 8-bit within 1/255 of a block's range, 4-bit within 1/15
    plm_model *m = load("tests/ref/tiny-tied");
    if (m) test_blocks(m, "blocks-tied", 1e-4, 2e-2, 0);
    plm_model_free(m);
    m = load("tests/ref/tiny-untied");
    if (m) test_blocks(m, "blocks-untied", 1e-4, 2e-2, 0);
    plm_model_free(m);
    // the same models through a Q8_0 GGUF: on Q8_0's grid, int8 exact
    plm_error err;
    const char *g = tmp("tiny-q8_0.gguf");
    m = load("tests/ref/tiny-untied");
    CHECK(m && plm_model_save(m, g, PLM_DTYPE_Q8_0, &err) == PLM_OK);
    plm_model_free(m);
    if ((m = load(g))) test_blocks(m, "blocks-q8_0", 1e-4, 2e-2, 8);
    plm_model_free(m);
    // through a Q4_0 GGUF: the int4 layers exact
    g = tmp("tiny-q4_0.gguf");
    m = load("tests/ref/tiny-tied");
    CHECK(m && plm_model_save(m, g, PLM_DTYPE_Q4_0, &err) == PLM_OK);
    plm_model_free(m);
    if ((m = load(g))) test_blocks(m, "blocks-q4_0", 1e-4, 2e-2, 4);
    plm_model_free(m);
    // on Q4_1's grid: int8 and int4 exact (u = 17 q in 8 bits)
    if ((m = q4_1_model())) test_blocks(m, "blocks-q4_1", 1e-4, 2e-2, 8 | 4);
    plm_model_free(m);
    test_lora_blocks("tests/ref/tiny-tied", "tests/ref/lora-tied-all", "lora-tied-all");
    test_lora_blocks("tests/ref/tiny-untied", "tests/ref/lora-untied-qv", "lora-untied-qv");
}

// ---- bad input ----

static void test_refusals(void) {
    plm_model *m = load("tests/ref/tiny-tied");
    if (!m) return;
    plm_onnx_quant none = PLM_ONNX_QUANT_NONE, int4 = PLM_ONNX_QUANT_INT4;
    plm_error err;
    const char *d = tmp("exists");
    CHECK(plm_onnx_export(m, d, &none, 1, 0, &err) == PLM_OK);
    char p[256];
    snprintf(p, sizeof p, "%s/onnx/model.onnx", d);
    long before = file_size(p);
    // an existing directory without force
    CHECK(plm_onnx_export(m, d, &int4, 1, 0, &err) == PLM_ERR_ARG);
    CHECK_MSG(strstr(err.msg, "exists") != NULL, "message: %s", err.msg);
    // with force: the new file joins the old ones
    CHECK(plm_onnx_export(m, d, &int4, 1, 1, &err) == PLM_OK);
    CHECK(file_size(p) == before);
    snprintf(p, sizeof p, "%s/onnx/model_q4.onnx", d);
    CHECK(file_size(p) > 0);
    // an unwritable place (a path under a regular file): an error, nothing left behind
    snprintf(p, sizeof p, "%s/config.json/out", d);
    CHECK(plm_onnx_export(m, p, &none, 1, 0, &err) == PLM_ERR_IO);
    snprintf(p, sizeof p, "%s/config.json/out.tmp", d);
    CHECK(!plm_path_exists(p));
    plm_model_free(m);

    // int8 and int4 need rows of whole 32-value blocks: hidden 48 cannot be represented
    plm_config cfg = {.vocab_size = 40,
                      .hidden_size = 48,
                      .intermediate_size = 96,
                      .num_hidden_layers = 1,
                      .num_attention_heads = 3,
                      .num_key_value_heads = 1,
                      .head_dim = 16,
                      .max_position_embeddings = 64,
                      .rms_norm_eps = 1e-5f,
                      .rope_theta = 10000.0f,
                      .tie_word_embeddings = 1,
                      .bos_token_id = -1,
                      .eos_token_id = -1};
    CHECK(plm_model_alloc(&m, &cfg, &err) == PLM_OK);
    d = tmp("odd");
    CHECK(plm_onnx_export(m, d, &int4, 1, 0, &err) == PLM_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(err.msg, "multiples of 32") != NULL, "message: %s", err.msg);
    plm_onnx_quant int8 = PLM_ONNX_QUANT_INT8;
    CHECK(plm_onnx_export(m, d, &int8, 1, 0, &err) == PLM_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(err.msg, "int8 export") != NULL, "message: %s", err.msg);
    CHECK(!plm_path_exists(d));
    CHECK(plm_onnx_export(m, d, &none, 1, 0, &err) == PLM_OK); // f32 holds any shape
    plm_model_free(m);
}

// ---- --export: the reference for onnx_check.mjs ----

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

static int write_ref(const plm_model *m, const plm_lora *l, const char *dir, const int32_t *ids,
                     int n, int n_greedy) {
    plm_session *s = NULL;
    plm_session_params sp = plm_session_default_params();
    sp.n_ctx = n + n_greedy + 1;
    sp.lora = l;
    plm_error err;
    if (plm_session_create(&s, m, &sp, &err) != PLM_OK) return fprintf(stderr, "%s\n", err.msg), 1;
    int V = plm_session_n_vocab(s);
    float *lg = malloc((size_t)n * (size_t)V * sizeof *lg);
    int32_t greedy[256];
    if (!lg || plm_session_decode_all(s, ids, n, lg, &err) != PLM_OK) return free(lg), 1;
    greedy[0] = argmax(lg + (size_t)(n - 1) * (size_t)V, V);
    for (int i = 1; i < n_greedy; i++) {
        if (plm_session_decode(s, &greedy[i - 1], 1, &err) != PLM_OK) return free(lg), 1;
        greedy[i] = argmax(plm_session_logits(s), V);
    }
    char p[512];
    snprintf(p, sizeof p, "%s/ref_logits.f32", dir);
    FILE *f = fopen(p, "wb");
    int bad = !f || fwrite(lg, sizeof *lg, (size_t)n * (size_t)V, f) != (size_t)n * (size_t)V;
    if (f) fclose(f);
    snprintf(p, sizeof p, "%s/ref.json", dir);
    if (!bad && (f = fopen(p, "w"))) {
        fprintf(f, "{\"vocab\": %d, \"prompt\": [", V);
        for (int i = 0; i < n; i++) fprintf(f, "%s%d", i ? ", " : "", ids[i]);
        fprintf(f, "], \"greedy\": [");
        for (int i = 0; i < n_greedy; i++) fprintf(f, "%s%d", i ? ", " : "", greedy[i]);
        fprintf(f, "]}\n");
        bad = fclose(f) != 0;
    } else bad = 1;
    free(lg);
    plm_session_free(s);
    return bad;
}

static int export_main(int argc, char **argv) {
    const char *dir = argv[2], *model = argv[3], *quant = "none,int8,int4", *text = NULL,
               *lora = NULL;
    int n_greedy = 10;
    for (int i = 4; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--quant")) quant = argv[i + 1];
        else if (!strcmp(argv[i], "--text")) text = argv[i + 1];
        else if (!strcmp(argv[i], "--greedy")) n_greedy = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--lora")) lora = argv[i + 1];
    }
    if (n_greedy < 1 || n_greedy > 256) return fprintf(stderr, "--greedy 1..256\n"), 2;
    plm_onnx_quant qs[PLM_ONNX_QUANT_N];
    int nq = 0;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", quant);
    for (char *t = strtok(buf, ","); t && nq < PLM_ONNX_QUANT_N; t = strtok(NULL, ","))
        if (plm_onnx_quant_parse(t, &qs[nq++]) != PLM_OK) return fprintf(stderr, "bad %s\n", t), 2;
    plm_model *m = load(model), *merged = NULL;
    plm_lora *l = NULL;
    plm_error err;
    if (!m) return 1;
    if (lora && (plm_lora_load(&l, lora, m, &err) != PLM_OK ||
                 plm_model_merge(&merged, m, l, &err) != PLM_OK)) {
        fprintf(stderr, "%s: %s\n", lora, err.msg);
        plm_lora_free(l), plm_model_free(m);
        return 1;
    }
    int32_t ids[512] = {1, 17, 42, 99, 3, 250, 77}, n = 7; // the tiny models' prompt
    const plm_tokenizer *tok =
        l && plm_lora_tokenizer(l) ? plm_lora_tokenizer(l) : plm_model_tokenizer(m);
    if (text) n = plm_tokenizer_encode(tok, text, strlen(text), ids, 512);
    int rc = n < 1 || n > 512;
    if (rc) fprintf(stderr, "prompt of %d tokens\n", n);
    // the reference: the session with the adapter applied at run time (not merged)
    if (!rc && (rc = plm_onnx_export_lora(merged ? merged : m, l ? m : NULL, l, dir, qs, nq, 1,
                                          &err) != PLM_OK))
        fprintf(stderr, "%s\n", err.msg);
    if (!rc) rc = write_ref(m, l, dir, ids, n, n_greedy);
    plm_model_free(merged), plm_lora_free(l), plm_model_free(m);
    return rc;
}

int main(int argc, char **argv) {
    if (argc >= 4 && !strcmp(argv[1], "--export")) return export_main(argc, argv);
    test_self();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/plm_onnx_XXXXXX");
    if (!mkdtemp(tmpdir)) return fprintf(stderr, "mkdtemp failed\n"), 1;
    test_files("tests/ref/tiny-tied", "tied");
    test_files("tests/ref/tiny-untied", "untied");
    test_quantized();
    test_refusals();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_main_end("test_onnx");
}
