// model.c: plm_model: the config (HF config.json keys, or GGUF llama.* keys), the ONE weight table
// that loading (HF safetensors or GGUF), saving (HF directory or GGUF) and parameter counting all
// iterate, the LoRA targets beside it (lora.c, layers.c and the trainer use those), and the single
// weight allocation. Mirrors transformers' LlamaConfig/LlamaForCausalLM
// tensor names and llama.cpp's convert_hf_to_gguf.py (tensor names, llama.* keys, Q/K permute).
// The formats themselves are parsed in safetensors.c and gguf.c; the forward pass is session.c's.
#define _DEFAULT_SOURCE // madvise
#include "model.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include "gguf.h"
#include "json.h"
#include "pool.h"
#include "quant.h"
#include "safetensors.h"

// ---- the weight table ----

typedef enum { DIM_V, DIM_C, DIM_F, DIM_Q, DIM_KV } wdim; // V, C, F, H*D, K*D

typedef struct {
    const char *hf;   // HF name; %d is the layer
    const char *gguf; // llama.cpp name
    int per_layer;    // 1: offset is in plm_layer, 0: in plm_model
    size_t offset;    // of the plm_mat (linear) or float * (norm) field
    int linear;       // 1: plm_mat (rows, cols); 0: norm vector (cols) kept f32
    wdim rows, cols;  // shape in config dims (norms: cols only)
    char rope;        // 'H' / 'K': rows permuted in GGUF for llama.cpp's RoPE over n_head H / K
    int lm_head;      // 1: absent when tie_word_embeddings
} weight_desc;

#define LAYER(f)  1, offsetof(plm_layer, f)
#define GLOBAL(f) 0, offsetof(plm_model, f)
static const weight_desc weight_table[] = {
    {"model.embed_tokens.weight", "token_embd.weight", GLOBAL(embed_tokens), 1, DIM_V, DIM_C, 0, 0},
    {"model.layers.%d.input_layernorm.weight", "blk.%d.attn_norm.weight", LAYER(input_layernorm), 0,
     DIM_C, DIM_C, 0, 0},
    {"model.layers.%d.self_attn.q_proj.weight", "blk.%d.attn_q.weight", LAYER(q_proj), 1, DIM_Q,
     DIM_C, 'H', 0},
    {"model.layers.%d.self_attn.k_proj.weight", "blk.%d.attn_k.weight", LAYER(k_proj), 1, DIM_KV,
     DIM_C, 'K', 0},
    {"model.layers.%d.self_attn.v_proj.weight", "blk.%d.attn_v.weight", LAYER(v_proj), 1, DIM_KV,
     DIM_C, 0, 0},
    {"model.layers.%d.self_attn.o_proj.weight", "blk.%d.attn_output.weight", LAYER(o_proj), 1,
     DIM_C, DIM_Q, 0, 0},
    {"model.layers.%d.post_attention_layernorm.weight", "blk.%d.ffn_norm.weight",
     LAYER(post_attention_layernorm), 0, DIM_C, DIM_C, 0, 0},
    {"model.layers.%d.mlp.gate_proj.weight", "blk.%d.ffn_gate.weight", LAYER(gate_proj), 1, DIM_F,
     DIM_C, 0, 0},
    {"model.layers.%d.mlp.up_proj.weight", "blk.%d.ffn_up.weight", LAYER(up_proj), 1, DIM_F, DIM_C,
     0, 0},
    {"model.layers.%d.mlp.down_proj.weight", "blk.%d.ffn_down.weight", LAYER(down_proj), 1, DIM_C,
     DIM_F, 0, 0},
    {"model.norm.weight", "output_norm.weight", GLOBAL(norm), 0, DIM_C, DIM_C, 0, 0},
    {"lm_head.weight", "output.weight", GLOBAL(lm_head), 1, DIM_V, DIM_C, 0, 1},
};
#define N_WEIGHT_DESC (sizeof weight_table / sizeof weight_table[0])

// The LoRA targets: the linear rows of the weight table inside a layer, with PEFT's module names.
const plm_lora_target_desc plm_lora_targets[PLM_LORA_N_TARGETS] = {
    {"q_proj", "self_attn", offsetof(plm_layer, q_proj)},
    {"k_proj", "self_attn", offsetof(plm_layer, k_proj)},
    {"v_proj", "self_attn", offsetof(plm_layer, v_proj)},
    {"o_proj", "self_attn", offsetof(plm_layer, o_proj)},
    {"gate_proj", "mlp", offsetof(plm_layer, gate_proj)},
    {"up_proj", "mlp", offsetof(plm_layer, up_proj)},
    {"down_proj", "mlp", offsetof(plm_layer, down_proj)},
};

// One tensor of one model: a table row bound to a layer, with its shape and destination.
typedef struct {
    const weight_desc *d;
    int32_t layer;      // -1 for global tensors
    int64_t rows, cols; // (rows, cols); norms are one row of cols
    int32_t n_head;     // heads of the RoPE permutation (0: none)
    plm_mat *mat;       // linear weights
    float **vec;        // norms
    char hf[96], gguf[64];
} wref;

static int64_t dim_of(const plm_config *c, wdim d) {
    switch (d) {
    case DIM_V: return c->vocab_size;
    case DIM_C: return c->hidden_size;
    case DIM_F: return c->intermediate_size;
    case DIM_Q: return (int64_t)c->num_attention_heads * c->head_dim;
    case DIM_KV: return (int64_t)c->num_key_value_heads * c->head_dim;
    }
    return 0;
}

const plm_mat *plm_layer_target(const plm_layer *layer, plm_lora_target t) {
    return (const plm_mat *)(const void *)((const char *)layer + plm_lora_targets[t].field);
}

void plm_lora_target_shape(const plm_config *c, plm_lora_target t, int32_t *out, int32_t *in) {
    const weight_desc *d = weight_table;
    while (!(d->per_layer && d->offset == plm_lora_targets[t].field)) d++; // every target has a row
    *out = (int32_t)dim_of(c, d->rows);
    *in = (int32_t)dim_of(c, d->cols);
}

uint32_t plm_lora_target_parse(const char *name, size_t n) {
    if ((n == 3 && !memcmp(name, "all", 3)) || (n == 10 && !memcmp(name, "all-linear", 10)))
        return (1u << PLM_LORA_N_TARGETS) - 1;
    for (int t = 0; t < PLM_LORA_N_TARGETS; t++)
        if (strlen(plm_lora_targets[t].name) == n && !memcmp(name, plm_lora_targets[t].name, n))
            return 1u << t;
    return 0;
}

// weight_list: every tensor of m in table order (layer-major within per-layer rows); lm_head is
// left out when tied. Returns a new array (free()) of *n refs, or NULL when out of memory.
static wref *weight_list(plm_model *m, int32_t *n) {
    const plm_config *c = &m->config;
    int32_t L = c->num_hidden_layers, k = 0;
    wref *w = plm_alloc(N_WEIGHT_DESC * (size_t)(L + 1), sizeof *w);
    if (!w) return NULL;
    for (size_t i = 0; i < N_WEIGHT_DESC; i++) {
        const weight_desc *d = &weight_table[i];
        if (d->lm_head && c->tie_word_embeddings) continue;
        for (int32_t l = 0; l < (d->per_layer ? L : 1); l++, k++) {
            wref *r = &w[k];
            char *base = d->per_layer ? (char *)&m->layers[l] : (char *)m;
            r->d = d;
            r->layer = d->per_layer ? l : -1;
            r->rows = d->linear ? dim_of(c, d->rows) : 1;
            r->cols = dim_of(c, d->cols);
            r->n_head = d->rope == 'H'   ? c->num_attention_heads
                        : d->rope == 'K' ? c->num_key_value_heads
                                         : 0;
            if (d->linear) r->mat = (plm_mat *)(void *)(base + d->offset);
            else r->vec = (float **)(void *)(base + d->offset);
            snprintf(r->hf, sizeof r->hf, d->hf, l);
            snprintf(r->gguf, sizeof r->gguf, d->gguf, l);
        }
    }
    *n = k;
    return w;
}

// qk_hf_row: the HF row of GGUF row g of a permuted q/k weight with head dim D:
// GGUF row h*D + 2i + s holds HF row h*D + s*D/2 + i (convert_hf_to_gguf.py's permute()).
static int64_t qk_hf_row(int64_t g, int64_t D) {
    int64_t h = g / D, j = g % D;
    return h * D + (j % 2) * (D / 2) + j / 2;
}

// ---- config ----

// check_config: the architecture is one pocketlm can run, with sizes that cannot overflow.
static plm_status check_config(const plm_config *c, const char *path, plm_error *err) {
    const struct {
        const char *name;
        int32_t v, max;
    } dims[] = {
        {"vocab_size", c->vocab_size, 1 << 24},
        {"hidden_size", c->hidden_size, 1 << 16},
        {"intermediate_size", c->intermediate_size, 1 << 18},
        {"num_hidden_layers", c->num_hidden_layers, 1 << 10},
        {"num_attention_heads", c->num_attention_heads, 1 << 10},
        {"num_key_value_heads", c->num_key_value_heads, 1 << 10},
        {"head_dim", c->head_dim, 1 << 12},
        {"max_position_embeddings", c->max_position_embeddings, 1 << 24},
    };
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        if (dims[i].v < 1 || dims[i].v > dims[i].max)
            return plm_fail(err, PLM_ERR_FORMAT, "%s: %s = %d, want 1 .. %d", path, dims[i].name,
                            dims[i].v, dims[i].max);
    if (c->num_attention_heads % c->num_key_value_heads != 0 || c->head_dim % 2 != 0)
        return plm_fail(err, PLM_ERR_FORMAT,
                        "%s: num_attention_heads %d must be a multiple of num_key_value_heads %d "
                        "and head_dim %d even",
                        path, c->num_attention_heads, c->num_key_value_heads, c->head_dim);
    if (!(c->rms_norm_eps > 0.0f && c->rms_norm_eps < 1.0f) || !(c->rope_theta > 1.0f))
        return plm_fail(err, PLM_ERR_FORMAT, "%s: rms_norm_eps %g or rope_theta %g out of range",
                        path, (double)c->rms_norm_eps, (double)c->rope_theta);
    return PLM_OK;
}

// json_int_key: integer key of config.json into *out; absent (or null) keeps the default unless
// required. An array takes its first element (eos_token_id may be a list).
static plm_status json_int_key(const plm_json *j, const char *key, int required, int32_t *out,
                               const char *path, plm_error *err) {
    int32_t v = plm_json_get(j, 0, key);
    if (v >= 0 && j->tok[v].type == PLM_JSON_ARRAY) v = plm_json_at(j, v, 0);
    if (v < 0 || j->tok[v].type == PLM_JSON_NULL) {
        if (required) return plm_fail(err, PLM_ERR_FORMAT, "%s: missing \"%s\"", path, key);
        return PLM_OK;
    }
    int64_t x;
    if (plm_json_int(j, v, INT32_MIN, INT32_MAX, &x) != 0)
        return plm_fail(err, PLM_ERR_FORMAT, "%s: \"%s\" is not an integer", path, key);
    *out = (int32_t)x;
    return PLM_OK;
}

// hf_check_arch: model_type llama (or LlamaForCausalLM), silu, no rope scaling, no biases.
static plm_status hf_check_arch(const plm_json *j, const char *path, plm_error *err) {
    int32_t mt = plm_json_get(j, 0, "model_type"), ar = plm_json_get(j, 0, "architectures");
    int llama = plm_json_eq(j, mt, "llama");
    for (int32_t k = 0; ar >= 0 && k < j->tok[ar].size; k++)
        llama |= plm_json_eq(j, plm_json_at(j, ar, k), "LlamaForCausalLM");
    char name[64] = "(none)";
    if (!llama) {
        plm_json_str(j, mt, name, sizeof name);
        return plm_fail(err, PLM_ERR_UNSUPPORTED,
                        "%s: model_type '%s' is not supported (want llama / LlamaForCausalLM)",
                        path, name);
    }
    int32_t act = plm_json_get(j, 0, "hidden_act"), rs = plm_json_get(j, 0, "rope_scaling");
    if (act >= 0 && !plm_json_eq(j, act, "silu")) {
        plm_json_str(j, act, name, sizeof name);
        return plm_fail(err, PLM_ERR_UNSUPPORTED, "%s: hidden_act '%s', want silu", path, name);
    }
    if (rs >= 0 && j->tok[rs].type != PLM_JSON_NULL)
        return plm_fail(err, PLM_ERR_UNSUPPORTED,
                        "%s: rope_scaling is set; only plain RoPE is "
                        "supported",
                        path);
    const char *biases[] = {"attention_bias", "mlp_bias"};
    for (int k = 0; k < 2; k++)
        if (plm_json_bool(j, plm_json_get(j, 0, biases[k])) == 1)
            return plm_fail(err, PLM_ERR_UNSUPPORTED, "%s: %s is true; Llama without biases only",
                            path, biases[k]);
    return PLM_OK;
}

// hf_config_parse: config.json text into c, with LlamaConfig's defaults.
static plm_status hf_config_parse(plm_config *c, const plm_json *j, const char *path,
                                  plm_error *err) {
    if (j->tok[0].type != PLM_JSON_OBJECT)
        return plm_fail(err, PLM_ERR_FORMAT, "%s: not a JSON object", path);
    plm_status s = hf_check_arch(j, path, err);
    const struct {
        const char *key;
        int32_t *out;
        int required;
    } ints[] = {
        {"vocab_size", &c->vocab_size, 1},
        {"hidden_size", &c->hidden_size, 1},
        {"intermediate_size", &c->intermediate_size, 1},
        {"num_hidden_layers", &c->num_hidden_layers, 1},
        {"num_attention_heads", &c->num_attention_heads, 1},
        {"num_key_value_heads", &c->num_key_value_heads, 0},
        {"head_dim", &c->head_dim, 0},
        {"max_position_embeddings", &c->max_position_embeddings, 0},
        {"bos_token_id", &c->bos_token_id, 0},
        {"eos_token_id", &c->eos_token_id, 0},
    };
    *c = (plm_config){.max_position_embeddings = 2048,
                      .rms_norm_eps = 1e-6f,
                      .rope_theta = 10000.0f,
                      .bos_token_id = -1,
                      .eos_token_id = -1};
    for (size_t i = 0; s == PLM_OK && i < sizeof ints / sizeof ints[0]; i++)
        s = json_int_key(j, ints[i].key, ints[i].required, ints[i].out, path, err);
    if (s != PLM_OK) return s;
    if (!c->num_key_value_heads) c->num_key_value_heads = c->num_attention_heads;
    if (!c->head_dim && c->num_attention_heads > 0)
        c->head_dim = c->hidden_size / c->num_attention_heads;
    double x;
    if (plm_json_num(j, plm_json_get(j, 0, "rms_norm_eps"), &x) == 0) c->rms_norm_eps = (float)x;
    if (plm_json_num(j, plm_json_get(j, 0, "rope_theta"), &x) == 0) c->rope_theta = (float)x;
    c->tie_word_embeddings = plm_json_bool(j, plm_json_get(j, 0, "tie_word_embeddings")) == 1;
    return check_config(c, path, err);
}

static plm_status hf_config_load(plm_model *m, const char *dir, plm_error *err) {
    char path[4096];
    char *text = NULL;
    size_t len;
    plm_json j = {0};
    if (plm_path_join(path, sizeof path, dir, "config.json"))
        return plm_fail(err, PLM_ERR_ARG, "%s: path too long", dir);
    plm_status s = plm_file_read(path, &text, &len, err);
    if (s == PLM_OK) s = plm_json_parse(&j, text, len, path, err);
    if (s == PLM_OK) s = hf_config_parse(&m->config, &j, path, err);
    int32_t pad = -1;
    if (s == PLM_OK) s = json_int_key(&j, "pad_token_id", 0, &pad, path, err);
    m->pad_token_id = pad;
    int32_t ni = s == PLM_OK ? plm_json_get(&j, 0, "_name_or_path") : -1; // the model's name
    int64_t n = ni >= 0 ? plm_json_str(&j, ni, NULL, 0) : -1;
    if (n > 0 && !(m->name = malloc((size_t)n + 1)))
        s = plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    else if (n > 0) plm_json_str(&j, ni, m->name, (size_t)n + 1);
    plm_json_free(&j);
    free(text);
    return s;
}

// hf_chat_template: tokenizer_config.json's chat_template, when there is one (else nothing).
static plm_status hf_chat_template(plm_model *m, const char *dir, plm_error *err) {
    char path[4096];
    char *text = NULL;
    size_t len;
    plm_json j = {0};
    if (plm_path_join(path, sizeof path, dir, "tokenizer_config.json") || !plm_path_exists(path))
        return PLM_OK;
    plm_status s = plm_file_read(path, &text, &len, err);
    if (s == PLM_OK) s = plm_json_parse(&j, text, len, path, err);
    int32_t ct = s == PLM_OK ? plm_json_get(&j, 0, "chat_template") : -1;
    int64_t n = plm_json_str(&j, ct, NULL, 0);
    if (n >= 0 && (m->chat_template = malloc((size_t)n + 1)) != NULL)
        plm_json_str(&j, ct, m->chat_template, (size_t)n + 1);
    else if (n >= 0) s = plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    plm_json_free(&j);
    free(text);
    return s;
}

// dup_str: a NUL-terminated copy of s (n bytes) into *out (malloc'd).
static plm_status dup_str(char **out, const char *s, size_t n, plm_error *err) {
    if (!(*out = malloc(n + 1))) return plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    memcpy(*out, s, n);
    (*out)[n] = 0;
    return PLM_OK;
}

// gguf_config: llama.* keys into m->config; the vocabulary size falls back to the token list.
// Also the names: general.name, and pocketlm.adapter (written by a merged export).
static plm_status gguf_config(plm_model *m, const plm_gguf *g, const char *path, plm_error *err) {
    plm_config *c = &m->config;
    plm_str arch = {"", 0}, rs;
    plm_gguf_get_str(g, "general.architecture", &arch);
    if (arch.n != 5 || memcmp(arch.s, "llama", 5) != 0)
        return plm_fail(err, PLM_ERR_UNSUPPORTED,
                        "%s: general.architecture is '%.*s'; pocketlm runs 'llama'", path,
                        (int)(arch.n > 40 ? 40 : arch.n), arch.s);
    if (plm_gguf_get_str(g, "llama.rope.scaling.type", &rs) == 0 &&
        !(rs.n == 4 && !memcmp(rs.s, "none", 4)))
        return plm_fail(err, PLM_ERR_UNSUPPORTED, "%s: llama.rope.scaling.type is set", path);
    const struct {
        const char *key;
        int32_t *out;
        int required;
    } ints[] = {
        {"llama.embedding_length", &c->hidden_size, 1},
        {"llama.feed_forward_length", &c->intermediate_size, 1},
        {"llama.block_count", &c->num_hidden_layers, 1},
        {"llama.attention.head_count", &c->num_attention_heads, 1},
        {"llama.attention.head_count_kv", &c->num_key_value_heads, 0},
        {"llama.context_length", &c->max_position_embeddings, 0},
        {"llama.vocab_size", &c->vocab_size, 0},
        {"llama.attention.key_length", &c->head_dim, 0},
        {"tokenizer.ggml.bos_token_id", &c->bos_token_id, 0},
        {"tokenizer.ggml.eos_token_id", &c->eos_token_id, 0},
        {"tokenizer.ggml.padding_token_id", &m->pad_token_id, 0},
    };
    *c = (plm_config){.max_position_embeddings = 2048,
                      .rms_norm_eps = 1e-5f,
                      .rope_theta = 10000.0f,
                      .bos_token_id = -1,
                      .eos_token_id = -1};
    m->pad_token_id = -1;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int64_t v;
        if (plm_gguf_get_int(g, ints[i].key, &v) == 0 && v >= INT32_MIN && v <= INT32_MAX)
            *ints[i].out = (int32_t)v;
        else if (ints[i].required)
            return plm_fail(err, PLM_ERR_FORMAT, "%s: GGUF key %s is missing or not an integer",
                            path, ints[i].key);
    }
    const plm_gguf_kv *tokens = plm_gguf_find(g, "tokenizer.ggml.tokens");
    if (!c->vocab_size && tokens && tokens->type == PLM_GGUF_ARRAY && tokens->arr_n <= INT32_MAX)
        c->vocab_size = (int32_t)tokens->arr_n;
    const plm_gguf_tensor *emb = plm_gguf_find_tensor(g, "token_embd.weight");
    if (!c->vocab_size && emb && emb->n_dims == 2 && emb->ne[1] <= INT32_MAX)
        c->vocab_size = (int32_t)emb->ne[1];
    if (!c->num_key_value_heads) c->num_key_value_heads = c->num_attention_heads;
    if (!c->head_dim && c->num_attention_heads > 0)
        c->head_dim = c->hidden_size / c->num_attention_heads;
    double x;
    if (plm_gguf_get_float(g, "llama.attention.layer_norm_rms_epsilon", &x) == 0)
        c->rms_norm_eps = (float)x;
    if (plm_gguf_get_float(g, "llama.rope.freq_base", &x) == 0) c->rope_theta = (float)x;
    c->tie_word_embeddings = plm_gguf_find_tensor(g, "output.weight") == NULL;
    plm_str ct, name, ad;
    plm_status s = PLM_OK;
    if (plm_gguf_get_str(g, "tokenizer.chat_template", &ct) == 0)
        s = dup_str(&m->chat_template, ct.s, ct.n, err);
    if (s == PLM_OK && plm_gguf_get_str(g, "general.name", &name) == 0 && name.n)
        s = dup_str(&m->name, name.s, name.n, err);
    if (s == PLM_OK && plm_gguf_get_str(g, "pocketlm.adapter", &ad) == 0 && ad.n)
        s = dup_str(&m->adapter, ad.s, ad.n, err);
    return s == PLM_OK ? check_config(c, path, err) : s;
}

// ---- weight sources: one view over an HF safetensors set or a GGUF file ----

typedef struct {
    const char *path;
    int is_gguf;
    plm_gguf g;
    plm_st_set st;
} source;

typedef struct {
    const plm_st_tensor *st; // one of these two is set
    const plm_gguf_tensor *gg;
} src_tensor;

static void shape_str(char *out, size_t cap, int n, const int64_t *dims, int reverse) {
    size_t k = (size_t)snprintf(out, cap, "[");
    for (int i = 0; i < n && k < cap; i++)
        k += (size_t)snprintf(out + k, cap - k, "%s%lld", i ? ", " : "",
                              (long long)dims[reverse ? n - 1 - i : i]);
    if (k < cap) snprintf(out + k, cap - k, "]");
}

// source_find: the tensor of w, with its shape checked against the config; counts its dtype.
static plm_status source_find(source *s, const wref *w, src_tensor *t, plm_model *m,
                              plm_error *err) {
    const char *name = s->is_gguf ? w->gguf : w->hf;
    int want_dims = w->d->linear ? 2 : 1, n_dims;
    const int64_t *dims;
    int64_t want[2] = {w->d->linear ? w->rows : w->cols, w->cols};
    t->st = s->is_gguf ? NULL : plm_st_set_find(&s->st, name);
    t->gg = s->is_gguf ? plm_gguf_find_tensor(&s->g, name) : NULL;
    if (!t->st && !t->gg)
        return plm_fail(err, PLM_ERR_FORMAT, "%s: tensor '%s' is missing", s->path, name);
    int dt = t->st ? t->st->dtype : plm_gguf_type_to_dtype(t->gg->type);
    if (dt >= 0) m->file_tensors[dt]++;
    n_dims = t->st ? t->st->n_dims : t->gg->n_dims;
    dims = t->st ? t->st->shape : t->gg->ne;
    int same = n_dims == want_dims;
    for (int i = 0; same && i < want_dims; i++)
        same = dims[s->is_gguf ? want_dims - 1 - i : i] == want[i];
    if (!same) {
        char got[96], exp[96];
        shape_str(got, sizeof got, n_dims, dims, s->is_gguf);
        shape_str(exp, sizeof exp, want_dims, want, 0);
        return plm_fail(err, PLM_ERR_FORMAT,
                        "%s: tensor '%s' has shape %s (rows, cols), want %s from the config",
                        s->path, name, got, exp);
    }
    return PLM_OK;
}

// source_rows: rows [r0, r0 + n) of t as f32 into out (n * cols).
static plm_status source_rows(const src_tensor *t, int64_t r0, int64_t n, int64_t cols, float *out,
                              plm_error *err) {
    if (t->st)
        return plm_st_tensor_to_f32(t->st, (size_t)(r0 * cols), (size_t)(n * cols), out, err);
    return plm_gguf_tensor_to_f32(t->gg, (size_t)r0, (size_t)n, out, err);
}

// source_release: drop the mapped pages of rows [r0, r0 + n) of t once converted, so that peak
// memory is the model plus one chunk rather than the model plus the file (pages come back from the
// file if read again).
static void source_release(const src_tensor *t, const source *s, int64_t r0, int64_t n) {
#if defined(__linux__)
    const plm_file_map *map = s->is_gguf ? &s->g.map : NULL;
    for (int32_t i = 0; !map && i < s->st.n_files; i++)
        if (t->st->data >= s->st.files[i].map.data &&
            t->st->data < s->st.files[i].map.data + s->st.files[i].map.size)
            map = &s->st.files[i].map;
    if (!map || !map->mapped) return;
    size_t row = t->st ? (size_t)t->st->shape[t->st->n_dims - 1] * t->st->elem_size
                       : plm_gguf_row_bytes(t->gg->type, (size_t)t->gg->ne[0]);
    const uint8_t *p = (t->st ? t->st->data : t->gg->data) + (size_t)r0 * row;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), a = (uintptr_t)p / page * page;
    uintptr_t e = ((uintptr_t)(p + (size_t)n * row) + page - 1) / page * page;
    uintptr_t lo = (uintptr_t)map->data, hi = lo + map->size;
    if (a < lo) a = lo;
    if (e > hi) e = hi;
    if (e > a) madvise((void *)a, e - a, MADV_DONTNEED);
#else
    (void)t, (void)s, (void)r0, (void)n;
#endif
}

// ---- load ----

#define CHUNK_ELEMS ((size_t)1 << 20) // f32 scratch for converting one piece of a tensor

// layout: bytes of the block for all refs at dtype; with block set, points each ref into it.
// Refs with inplace[i] set (inplace may be NULL) get only their scales d here (q stays in the file).
static size_t layout(wref *w, int32_t n, plm_dtype dtype, const char *inplace, uint8_t *block) {
    size_t off = 0;
    for (int32_t i = 0; i < n; i++) {
        size_t elems = (size_t)w[i].rows * (size_t)w[i].cols;
        int q8 = w[i].d->linear && dtype == PLM_DTYPE_Q8_0 && w[i].cols % PLM_QK == 0;
        size_t a = q8 ? (inplace && inplace[i] ? 0 : elems) : elems * 4;
        size_t b = q8 ? elems / PLM_QK * 4 : 0;
        if (block && w[i].d->linear) {
            *w[i].mat = (plm_mat){.dtype = q8 ? PLM_DTYPE_Q8_0 : PLM_DTYPE_F32,
                                  .rows = (int32_t)w[i].rows,
                                  .cols = (int32_t)w[i].cols};
            if (q8) w[i].mat->q = (int8_t *)(block + off), w[i].mat->d = (float *)(block + off + a);
            else w[i].mat->f32 = (float *)(block + off);
        } else if (block) {
            *w[i].vec = (float *)(block + off);
        }
        off += (a + 63) / 64 * 64 + (b + 63) / 64 * 64;
    }
    return off;
}

// store_row: one f32 row x (cols) into row r of w's destination (quantized for Q8_0 mats).
static void store_row(const wref *w, int64_t r, const float *x) {
    size_t cols = (size_t)w->cols;
    if (!w->d->linear) memcpy(*w->vec, x, cols * sizeof *x);
    else if (w->mat->dtype == PLM_DTYPE_F32) memcpy(w->mat->f32 + (size_t)r * cols, x, cols * 4);
    else
        plm_quantize_q8_0(w->mat->q + (size_t)r * cols, w->mat->d + (size_t)r * cols / PLM_QK, x,
                          cols);
}

// load_weight: convert w's tensor t a chunk of rows at a time through tmp (CHUNK_ELEMS), undoing
// GGUF's Q/K permutation by storing each row at its HF position.
static plm_status load_weight(const plm_model *m, const source *s, const wref *w,
                              const src_tensor *tp, float *tmp, plm_error *err) {
    src_tensor t = *tp;
    plm_status st = PLM_OK;
    int64_t per = (int64_t)(CHUNK_ELEMS / (size_t)w->cols), D = m->config.head_dim;
    if (per < 1) per = 1;
    for (int64_t r0 = 0; st == PLM_OK && r0 < w->rows; r0 += per) {
        int64_t n = w->rows - r0 < per ? w->rows - r0 : per;
        st = source_rows(&t, r0, n, w->cols, tmp, err);
        if (st != PLM_OK && err) { // the converters know the tensor, not the file
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            plm_fail(err, st, "%s: %s", s->path, msg);
        }
        for (int64_t i = 0; st == PLM_OK && i < n; i++)
            store_row(w, s->is_gguf && w->n_head ? qk_hf_row(r0 + i, D) : r0 + i,
                      tmp + (size_t)(i * w->cols));
        if (st == PLM_OK) source_release(&t, s, r0, n);
    }
    return st;
}

// ---- load: GGUF tensors, converted by a pool of threads ----

// Every conversion of a GGUF tensor that pocketlm reads cannot fail once the shapes and types are
// checked, so the tensors are cut into chunks of rows (about CONV_CHUNK_BYTES of weights each) that
// the threads take in turn from a shared counter, converting straight from the mapped file into the
// weight block (quant.c: Q4_0/Q4_1 to Q8_0 in vector registers; the same bytes as the plain
// dequantize-then-quantize route, whichever thread converts which chunk). One pool run for the
// whole model: a thread the machine leaves waiting does fewer chunks, and nobody waits for it
// tensor after tensor.

#define CONV_CHUNK_BYTES ((size_t)256 << 10)

typedef struct {
    int32_t i;      // the ref
    int64_t r0, r1; // its rows [r0, r1)
} conv_chunk;

typedef struct {
    const source *s;
    const wref *w;
    const src_tensor *t;
    const conv_chunk *chunk; // (n_chunks)
    int32_t n_chunks;
    atomic_int next; // the next chunk to take
    int64_t D;       // head dim: GGUF q/k rows go to their HF position
    plm_isa isa;     // the kernel path (the quantizer's bytes depend on nothing else)
    float *tmp;      // per thread: tmp_floats of scratch
    size_t tmp_floats;
} conv_job;

// conv_rows: rows [r0, r1) of tensor t into w's destination; then their file pages are dropped.
static void conv_rows(const conv_job *j, const conv_chunk *c, float *tmp) {
    const wref *w = &j->w[c->i];
    const plm_gguf_tensor *t = j->t[c->i].gg;
    const size_t cols = (size_t)w->cols, row_bytes = plm_gguf_row_bytes(t->type, cols);
    for (int64_t r = c->r0; r < c->r1; r++) {
        const uint8_t *src = t->data + (size_t)r * row_bytes;
        const size_t hr = (size_t)(w->n_head ? qk_hf_row(r, j->D) : r);
        if (!w->d->linear) plm_quant_row_f32(j->isa, t->type, src, cols, *w->vec);
        else if (w->mat->dtype == PLM_DTYPE_F32)
            plm_quant_row_f32(j->isa, t->type, src, cols, w->mat->f32 + hr * cols);
        else
            plm_quant_row_q8_0(j->isa, t->type, src, cols, w->mat->q + hr * cols,
                               w->mat->d + hr * cols / PLM_QK, tmp);
    }
    source_release(&j->t[c->i], j->s, c->r0, c->r1 - c->r0);
}

static void conv_worker(void *ctx, int ith, int nth) {
    conv_job *j = ctx;
    (void)nth;
    float *tmp = j->tmp + (size_t)ith * j->tmp_floats;
    for (int k; (k = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed)) < j->n_chunks;)
        conv_rows(j, &j->chunk[k], tmp);
}

// load_threads: the threads params asks for; 0: every core natively, 1 in wasm (a page's Web
// Workers are the page's to start).
static int load_threads(const plm_load_params *params) {
    int n = params ? params->n_threads : 0;
#if defined(__EMSCRIPTEN__)
    return n > 0 ? n : 1;
#else
    return n > 0 ? n : plm_n_cores();
#endif
}

// load_gguf: every tensor of w not loaded in place (in[i]) from the GGUF file, over n_threads.
static plm_status load_gguf(const plm_model *m, const source *s, const wref *w, const src_tensor *t,
                            const char *in, int32_t n, int n_threads, plm_error *err) {
    size_t cols = 1, n_chunks = 0;
    for (int32_t i = 0; i < n; i++) {
        if (in[i]) continue;
        const plm_gguf_tensor *g = t[i].gg;
        if (plm_gguf_type_to_dtype(g->type) < 0)
            return plm_fail(err, PLM_ERR_UNSUPPORTED,
                            "%s: tensor '%.*s' has type %s; pocketlm reads F32, F16, BF16, Q8_0, "
                            "Q4_0, Q4_1",
                            s->path, (int)g->name.n, g->name.s, plm_ggml_type_name(g->type));
        if ((size_t)w[i].cols > cols) cols = (size_t)w[i].cols;
        size_t per = CONV_CHUNK_BYTES / ((size_t)w[i].cols * 4) + 1; // rows a chunk
        n_chunks += ((size_t)w[i].rows + per - 1) / per;
    }
    plm_pool *pool = n_threads > 1 ? plm_pool_create(n_threads) : NULL; // NULL: run inline
    conv_job *j = plm_alloc(1, sizeof *j);
    conv_chunk *chunk = plm_alloc(n_chunks, sizeof *chunk);
    float *tmp = NULL;
    if (j) j->tmp_floats = (cols + 15) / 16 * 16;
    if (j && chunk)
        tmp = plm_alloc_aligned((size_t)plm_pool_size(pool) * j->tmp_floats, sizeof *tmp);
    if (!tmp || n_chunks > INT32_MAX) {
        free(j), free(chunk);
        plm_pool_free(pool);
        return plm_fail(err, PLM_ERR_NOMEM, "%s: out of memory", s->path);
    }
    int32_t k = 0;
    for (int32_t i = 0; i < n; i++) {
        int64_t per = (int64_t)(CONV_CHUNK_BYTES / ((size_t)w[i].cols * 4) + 1);
        for (int64_t r = 0; !in[i] && r < w[i].rows; r += per)
            chunk[k++] = (conv_chunk){i, r, r + per < w[i].rows ? r + per : w[i].rows};
    }
    j->s = s, j->w = w, j->t = t, j->chunk = chunk, j->n_chunks = k, j->tmp = tmp;
    j->D = m->config.head_dim, j->isa = plm_isa_active();
    atomic_init(&j->next, 0);
    plm_pool_run(pool, conv_worker, j);
    plm_free_aligned(tmp);
    free(chunk);
    free(j);
    plm_pool_free(pool);
    return PLM_OK;
}

// ---- load: Q8_0 GGUF tensors in place ----

// A Q8_0 block in GGUF is {f16 d; int8 q[32]} (34 bytes); in memory q and d are two arrays. So a
// tensor's q can be made inside its own file bytes: block k's 32 q move from byte 34k + 2 down to
// 32k (always toward lower addresses, so a memmove in increasing k never overwrites a block not yet
// moved), and only d (f16 -> f32, 4 bytes per 32 weights) needs new memory.

typedef struct {
    const uint8_t *lo, *hi; // the tensor's bytes in the file
    int32_t i;              // its ref
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

// mark_inplace: in[i] = 1 for the refs whose tensor t[i] can stay where it is: linear, q8_0 in
// memory (dtype), Q8_0 in the file, and not overlapping the bytes of another such tensor (which the
// move would corrupt; a well-formed file has no overlaps). Tensors converted by copy are read before
// anything moves, so they may overlap. Returns the scratch bytes the q/k ones need to undo GGUF's
// row permutation (the largest of them), or SIZE_MAX when out of memory.
static size_t mark_inplace(char *in, const wref *w, const src_tensor *t, int32_t n,
                           plm_dtype dtype) {
    span *sp = plm_alloc((size_t)n, sizeof *sp);
    if (!sp) return SIZE_MAX;
    int32_t k = 0;
    for (int32_t i = 0; i < n; i++)
        if (t[i].gg && w[i].d->linear && dtype == PLM_DTYPE_Q8_0 &&
            t[i].gg->type == PLM_GGML_Q8_0 && w[i].cols % PLM_QK == 0)
            sp[k++] = (span){t[i].gg->data, t[i].gg->data + t[i].gg->n_bytes, i};
    qsort(sp, (size_t)k, sizeof *sp, cmp_span);
    const uint8_t *end = NULL; // the end of the in-place tensors so far, in address order
    size_t scratch = 0;
    for (int32_t j = 0; j < k; j++) {
        if (end && sp[j].lo < end) continue;
        in[sp[j].i] = 1;
        end = sp[j].hi;
        size_t elems = (size_t)w[sp[j].i].rows * (size_t)w[sp[j].i].cols;
        if (w[sp[j].i].n_head && elems > scratch) scratch = elems;
    }
    free(sp);
    return scratch;
}

// load_q8_0: w's Q8_0 blocks at p into q (rows * cols) and w->mat->d, as they are (no round trip
// through f32), with q/k rows put in HF order. In place (q == p): through scratch (rows * cols
// bytes) for q/k. Cannot fail.
static void load_q8_0(const wref *w, const uint8_t *p, int8_t *q, int64_t D, int8_t *scratch) {
    size_t rows = (size_t)w->rows, cols = (size_t)w->cols, nb = cols / PLM_QK; // blocks per row
    int inplace = (const void *)q == (const void *)p;
    int8_t *dst = inplace && w->n_head ? scratch : q;
    for (size_t r = 0; r < rows; r++) {
        size_t hr = w->n_head ? (size_t)qk_hf_row((int64_t)r, D) : r;
        for (size_t j = 0; j < nb; j++) {
            const uint8_t *blk = p + (r * nb + j) * 34; // read d before q moves over it
            w->mat->d[hr * nb + j] = plm_f16_to_f32((uint16_t)(blk[0] | blk[1] << 8));
            memmove(dst + hr * cols + j * PLM_QK, blk + 2, PLM_QK);
        }
    }
    if (dst != q) memcpy(q, scratch, rows * cols);
    w->mat->q = q;
}

// source_open: the config, tokenizer and weight files of path (HF directory or GGUF file), or the
// GGUF file held in buf (size bytes; then path only names it in messages).
static plm_status source_open(source *s, plm_model *m, const char *path, const uint8_t *buf,
                              size_t size, plm_error *err) {
    char tok[4096];
    s->path = path;
    s->is_gguf = buf || !plm_path_is_dir(path);
    m->from_gguf = s->is_gguf;
    if (s->is_gguf) {
        plm_status st =
            buf ? plm_gguf_parse(&s->g, buf, size, path, err) : plm_gguf_open(&s->g, path, err);
        if (st == PLM_OK) st = gguf_config(m, &s->g, path, err);
        if (st == PLM_OK && plm_gguf_find(&s->g, "tokenizer.ggml.tokens"))
            st = plm_gguf_tokenizer(&m->tokenizer, &s->g, path, err);
        return st;
    }
    plm_status st = hf_config_load(m, path, err);
    if (st == PLM_OK) st = hf_chat_template(m, path, err);
    if (st == PLM_OK) st = plm_st_set_open(&s->st, path, err);
    if (st == PLM_OK && !plm_path_join(tok, sizeof tok, path, "tokenizer.json") &&
        plm_path_exists(tok))
        st = plm_tokenizer_load(&m->tokenizer, path, err);
    return st;
}

plm_load_params plm_load_default_params(void) {
    return (plm_load_params){PLM_DTYPE_F32, 0};
}

// model_load: plm_model_load of path, or of the GGUF bytes in buf when buf is not NULL. With file
// (the same bytes as buf, writable and malloc'd) Q8_0 tensors are loaded in place, and on success
// the model owns file. Everything that can fail happens before the first byte of file changes.
static plm_status model_load(plm_model **out, const char *path, const uint8_t *buf, uint8_t *file,
                             size_t size, const plm_load_params *params, plm_error *err) {
    *out = NULL;
    plm_dtype dtype = params ? params->dtype : PLM_DTYPE_F32;
    if (dtype != PLM_DTYPE_F32 && dtype != PLM_DTYPE_Q8_0)
        return plm_fail(err, PLM_ERR_ARG, "plm_model_load: in-memory dtype %s, want f32 or q8_0",
                        plm_dtype_name(dtype));
    source s = {0};
    wref *w = NULL;
    src_tensor *t = NULL;
    char *in = NULL;     // (n) 1: loaded in place
    int8_t *perm = NULL; // scratch of the in-place q/k permutation
    float *tmp = NULL;
    size_t perm_bytes = 0;
    int32_t n = 0;
    plm_model *m = plm_alloc(1, sizeof *m);
    if (!m) return plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    m->dtype = dtype;
    plm_status st = source_open(&s, m, path, buf, size, err);
    if (st != PLM_OK) goto fail;
    m->layers = plm_alloc((size_t)m->config.num_hidden_layers, sizeof *m->layers);
    w = m->layers ? weight_list(m, &n) : NULL;
    t = w ? plm_alloc((size_t)n, sizeof *t) : NULL;
    in = t ? plm_alloc((size_t)n, 1) : NULL;
    if (!in) {
        st = plm_fail(err, PLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int32_t i = 0; st == PLM_OK && i < n; i++) st = source_find(&s, &w[i], &t[i], m, err);
    if (st != PLM_OK) goto fail;
    if (file) perm_bytes = mark_inplace(in, w, t, n, dtype);
    if (!s.is_gguf)
        tmp = plm_alloc(CHUNK_ELEMS > (size_t)m->config.hidden_size ? CHUNK_ELEMS
                                                                    : (size_t)m->config.hidden_size,
                        sizeof *tmp);
    if (perm_bytes && perm_bytes != SIZE_MAX) perm = malloc(perm_bytes);
    m->block_bytes = layout(w, n, dtype, in, NULL);
    if ((tmp || s.is_gguf) && perm_bytes != SIZE_MAX && (perm || !perm_bytes))
        m->block = plm_alloc_big(m->block_bytes);
    if (!m->block) {
        st = plm_fail(err, PLM_ERR_NOMEM, "%s: out of memory for %zu bytes of weights", path,
                      m->block_bytes);
        goto fail;
    }
    layout(w, n, dtype, in, m->block);
    if (s.is_gguf) st = load_gguf(m, &s, w, t, in, n, load_threads(params), err);
    for (int32_t i = 0; !s.is_gguf && st == PLM_OK && i < n; i++)
        st = load_weight(m, &s, &w[i], &t[i], tmp, err);
    if (st != PLM_OK) goto fail;
    // nothing fails from here on: only now does file change
    for (int32_t i = 0; i < n; i++)
        if (in[i]) {
            uint8_t *p = file + (t[i].gg->data - buf); // t[i] in the caller's writable view
            load_q8_0(&w[i], p, (int8_t *)(void *)p, m->config.head_dim, perm);
            m->file_weight_bytes += (size_t)w[i].rows * (size_t)w[i].cols;
        }
    if (m->file_weight_bytes) m->file = file;
    else free(file); // nothing points into it
    if (m->config.tie_word_embeddings) m->lm_head = m->embed_tokens;
fail:
    free(w);
    free(t);
    free(in);
    free(perm);
    free(tmp);
    plm_gguf_free(&s.g);
    plm_st_set_free(&s.st);
    if (st != PLM_OK) plm_model_free(m);
    else *out = m;
    return st;
}

plm_status plm_model_load(plm_model **out, const char *path, const plm_load_params *params,
                          plm_error *err) {
    if (!out || !path) return plm_fail(err, PLM_ERR_ARG, "plm_model_load: NULL argument");
    return model_load(out, path, NULL, NULL, 0, params, err);
}

plm_status plm_model_load_gguf_buffer(plm_model **out, const uint8_t *buf, size_t size,
                                      const plm_load_params *params, plm_error *err) {
    if (!out || !buf)
        return plm_fail(err, PLM_ERR_ARG, "plm_model_load_gguf_buffer: NULL argument");
    return model_load(out, "<gguf buffer>", buf, NULL, size, params, err);
}

plm_status plm_model_load_gguf_inplace(plm_model **out, uint8_t *buf, size_t size,
                                       const plm_load_params *params, plm_error *err) {
    if (!out || !buf)
        return plm_fail(err, PLM_ERR_ARG, "plm_model_load_gguf_inplace: NULL argument");
    return model_load(out, "<gguf buffer>", buf, buf, size, params, err);
}

void plm_model_free(plm_model *m) {
    if (!m) return;
    plm_tokenizer_free(m->tokenizer);
    plm_free_big(m->block, m->block_bytes);
    free(m->file);
    free(m->layers);
    free(m->chat_template);
    free(m->name);
    free(m->adapter);
    free(m);
}

// plm_model_alloc: an f32 model of config cfg with every weight zero, in one block like a loaded
// one (the tied head shares the embedding); no tokenizer. For plm_model_merge and other builders.
plm_status plm_model_alloc(plm_model **out, const plm_config *cfg, plm_error *err) {
    *out = NULL;
    plm_status st = check_config(cfg, "plm_model_alloc", err);
    if (st != PLM_OK) return st;
    int32_t n = 0;
    wref *w = NULL;
    plm_model *m = plm_alloc(1, sizeof *m);
    if (m) m->config = *cfg, m->dtype = PLM_DTYPE_F32, m->pad_token_id = -1;
    if (m) m->layers = plm_alloc((size_t)cfg->num_hidden_layers, sizeof *m->layers);
    if (m && m->layers) w = weight_list(m, &n);
    if (w) m->block_bytes = layout(w, n, PLM_DTYPE_F32, NULL, NULL);
    if (w) m->block = plm_alloc_big(m->block_bytes);
    if (!m || !m->block) {
        free(w);
        plm_model_free(m);
        return plm_fail(err, PLM_ERR_NOMEM, "out of memory for a model of %d layers",
                        cfg->num_hidden_layers);
    }
    layout(w, n, PLM_DTYPE_F32, NULL, m->block);
    if (cfg->tie_word_embeddings) m->lm_head = m->embed_tokens;
    free(w);
    *out = m;
    return PLM_OK;
}

// ---- accessors ----

const plm_config *plm_model_config(const plm_model *m) {
    return &m->config;
}
const plm_tokenizer *plm_model_tokenizer(const plm_model *m) {
    return m->tokenizer;
}
plm_dtype plm_model_dtype(const plm_model *m) {
    return m->dtype;
}
const char *plm_model_name(const plm_model *m) {
    return m->name ? m->name : "";
}
const char *plm_model_adapter(const plm_model *m) {
    return m->adapter ? m->adapter : "";
}
size_t plm_model_weight_bytes(const plm_model *m) {
    return m->block_bytes + m->file_weight_bytes;
}

size_t plm_model_decode_bytes(const plm_model *m) {
    int32_t n;
    size_t total = 0;
    wref *w = weight_list((plm_model *)(uintptr_t)m, &n); // reads shapes and dtypes only
    for (int32_t i = 0; w && i < n; i++) {
        if (!w[i].d->linear || w[i].mat == &m->embed_tokens) continue; // one row of it a token
        size_t e = (size_t)w[i].rows * (size_t)w[i].cols;
        total += w[i].mat->dtype == PLM_DTYPE_Q8_0 ? e + e / PLM_QK * 4 : e * 4;
    }
    if (w && m->config.tie_word_embeddings) { // the head is the embedding, read whole
        size_t e = (size_t)m->lm_head.rows * (size_t)m->lm_head.cols;
        total += m->lm_head.dtype == PLM_DTYPE_Q8_0 ? e + e / PLM_QK * 4 : e * 4;
    }
    free(w);
    return total;
}

size_t plm_model_n_params(const plm_model *m) {
    int32_t n;
    size_t total = 0;
    wref *w = weight_list((plm_model *)(uintptr_t)m, &n); // reads shapes only
    for (int32_t i = 0; w && i < n; i++) total += (size_t)w[i].rows * (size_t)w[i].cols;
    free(w);
    return total;
}

static const char *const dtype_names[] = {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_1"};

const char *plm_dtype_name(plm_dtype t) {
    return (unsigned)t < sizeof dtype_names / sizeof dtype_names[0] ? dtype_names[t] : "unknown";
}

plm_status plm_dtype_parse(const char *name, plm_dtype *out) {
    for (size_t i = 0; name && i < sizeof dtype_names / sizeof dtype_names[0]; i++)
        if (!strcmp(name, dtype_names[i])) {
            *out = (plm_dtype)i;
            return PLM_OK;
        }
    return PLM_ERR_ARG;
}

// ---- save ----

typedef struct {
    wref *w;     // the tensors, in file order
    int permute; // 1: GGUF, store q/k rows in llama.cpp's order
    int64_t D;   // head dim
} save_ctx;

// fill_weight: plm_tensor_fill over the weight list: tensor i as f32 (in file row order).
static plm_status fill_weight(void *user, int32_t i, float *buf, plm_error *err) {
    const save_ctx *c = user;
    const wref *w = &c->w[i];
    (void)err;
    if (!w->d->linear) {
        memcpy(buf, *w->vec, (size_t)w->cols * sizeof *buf);
        return PLM_OK;
    }
    for (int64_t r = 0; r < w->rows; r++)
        plm_mat_row(buf + (size_t)(r * w->cols), w->mat,
                    (int32_t)(c->permute && w->n_head ? qk_hf_row(r, c->D) : r));
    return PLM_OK;
}

// fmt_float: the shortest text that reads back as v (Python's repr style: "1e-05", "100000.0").
static void fmt_float(char *out, size_t cap, float v) {
    if (v == (float)(int64_t)v && v < 1e15f && v > -1e15f) {
        snprintf(out, cap, "%.1f", (double)v);
        return;
    }
    for (int p = 1; p <= 9; p++) {
        snprintf(out, cap, "%.*g", p, (double)v);
        if (strtof(out, NULL) == v) break;
    }
    if (!strpbrk(out, ".e") && strlen(out) + 3 <= cap) strcat(out, ".0");
}

static plm_status write_json_id(plm_writer *f, const char *key, int32_t id, plm_error *err) {
    return id >= 0 ? plm_writer_printf(f, err, "  \"%s\": %d,\n", key, id)
                   : plm_writer_printf(f, err, "  \"%s\": null,\n", key);
}

// save_hf_config: config.json as transformers' LlamaConfig writes it.
static plm_status save_hf_config(const plm_model *m, const char *path, plm_dtype dtype,
                                 plm_error *err) {
    const plm_config *c = &m->config;
    plm_writer *f;
    char eps[32], theta[32];
    fmt_float(eps, sizeof eps, c->rms_norm_eps);
    fmt_float(theta, sizeof theta, c->rope_theta);
    char pad[48] = "";
    if (m->pad_token_id >= 0)
        snprintf(pad, sizeof pad, "  \"pad_token_id\": %d,\n", m->pad_token_id);
    const char *torch = dtype == PLM_DTYPE_F16    ? "float16"
                        : dtype == PLM_DTYPE_BF16 ? "bfloat16"
                                                  : "float32";
    plm_status s = plm_writer_open(&f, path, err);
    if (s != PLM_OK) return s;
    s = plm_writer_printf(f, err,
                          "{\n  \"architectures\": [\n    \"LlamaForCausalLM\"\n  ],\n"
                          "  \"attention_bias\": false,\n  \"attention_dropout\": 0.0,\n");
    if (s == PLM_OK) s = write_json_id(f, "bos_token_id", c->bos_token_id, err);
    if (s == PLM_OK) s = write_json_id(f, "eos_token_id", c->eos_token_id, err);
    if (s == PLM_OK)
        s = plm_writer_printf(
            f, err,
            "  \"head_dim\": %d,\n  \"hidden_act\": \"silu\",\n  \"hidden_size\": %d,\n"
            "  \"initializer_range\": 0.02,\n  \"intermediate_size\": %d,\n"
            "  \"max_position_embeddings\": %d,\n  \"mlp_bias\": false,\n"
            "  \"model_type\": \"llama\",\n  \"num_attention_heads\": %d,\n"
            "  \"num_hidden_layers\": %d,\n  \"num_key_value_heads\": %d,\n%s"
            "  \"pretraining_tp\": 1,\n  \"rms_norm_eps\": %s,\n  \"rope_scaling\": null,\n"
            "  \"rope_theta\": %s,\n  \"tie_word_embeddings\": %s,\n  \"torch_dtype\": \"%s\",\n"
            "  \"transformers_version\": \"4.44.2\",\n  \"use_cache\": true,\n"
            "  \"vocab_size\": %d\n}\n",
            c->head_dim, c->hidden_size, c->intermediate_size, c->max_position_embeddings,
            c->num_attention_heads, c->num_hidden_layers, c->num_key_value_heads, pad, eps, theta,
            c->tie_word_embeddings ? "true" : "false", torch, c->vocab_size);
    if (s != PLM_OK) {
        plm_writer_abort(f);
        return s;
    }
    return plm_writer_commit(f, err);
}

static plm_status save_generation_config(const plm_config *c, const char *path, plm_error *err) {
    plm_writer *f;
    plm_status s = plm_writer_open(&f, path, err);
    if (s != PLM_OK) return s;
    s = plm_writer_printf(f, err, "{\n  \"_from_model_config\": true,\n");
    if (s == PLM_OK) s = write_json_id(f, "bos_token_id", c->bos_token_id, err);
    if (s == PLM_OK) s = write_json_id(f, "eos_token_id", c->eos_token_id, err);
    if (s == PLM_OK) s = plm_writer_printf(f, err, "  \"transformers_version\": \"4.44.2\"\n}\n");
    if (s != PLM_OK) {
        plm_writer_abort(f);
        return s;
    }
    return plm_writer_commit(f, err);
}

// save_hf_json: config.json, generation_config.json and (with a tokenizer) the tokenizer files.
static plm_status save_hf_json(const plm_model *m, const char *dir, plm_dtype dtype,
                               plm_error *err) {
    char path[4096];
    if (plm_path_join(path, sizeof path, dir, "generation_config.json"))
        return plm_fail(err, PLM_ERR_ARG, "%s: path too long", dir);
    plm_status s = save_generation_config(&m->config, path, err);
    if (s == PLM_OK) {
        plm_path_join(path, sizeof path, dir, "config.json");
        s = save_hf_config(m, path, dtype, err);
    }
    if (s == PLM_OK && m->tokenizer)
        s = plm_tokenizer_save_dir(m->tokenizer, dir, m->config.bos_token_id,
                                   m->config.eos_token_id, err);
    return s;
}

static plm_status save_hf(const plm_model *m, wref *w, int32_t n, const char *dir, plm_dtype dtype,
                          plm_error *err) {
    char path[4096];
    if (dtype != PLM_DTYPE_F32 && dtype != PLM_DTYPE_F16 && dtype != PLM_DTYPE_BF16)
        return plm_fail(err, PLM_ERR_UNSUPPORTED,
                        "%s: HF directories hold f32, f16 or bf16 weights, not %s (use .gguf)", dir,
                        plm_dtype_name(dtype));
    plm_st_info *info = plm_alloc((size_t)n, sizeof *info);
    if (!info) return plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < n; i++)
        info[i] = (plm_st_info){.name = w[i].hf,
                                .dtype = dtype,
                                .n_dims = w[i].d->linear ? 2 : 1,
                                .shape = {w[i].d->linear ? w[i].rows : w[i].cols, w[i].cols}};
    save_ctx ctx = {w, 0, m->config.head_dim};
    plm_status s = plm_mkdir(dir, err);
    if (s == PLM_OK && plm_path_join(path, sizeof path, dir, "model.safetensors"))
        s = plm_fail(err, PLM_ERR_ARG, "%s: path too long", dir);
    if (s == PLM_OK) s = plm_safetensors_write(path, info, n, 1, fill_weight, &ctx, err);
    if (s == PLM_OK) s = save_hf_json(m, dir, dtype, err);
    free(info);
    return s;
}

plm_status plm_model_save_json(const plm_model *m, const char *dir, plm_error *err) {
    if (!m || !dir) return plm_fail(err, PLM_ERR_ARG, "plm_model_save_json: NULL argument");
    plm_status s = plm_mkdir(dir, err);
    return s == PLM_OK ? save_hf_json(m, dir, PLM_DTYPE_F32, err) : s;
}

// gguf_tokenizer_meta: tokenizer.ggml.* from the model's tokenizer, as llama.cpp reads them.
static plm_status gguf_tokenizer_meta(plm_gguf_writer *g, const plm_tokenizer *t, plm_error *err) {
    int32_t nv = plm_tokenizer_n_vocab(t), nm = plm_tokenizer_n_merges(t);
    plm_str *tok = plm_alloc((size_t)nv, sizeof *tok), *mer = plm_alloc((size_t)nm, sizeof *mer);
    int32_t *types = plm_alloc((size_t)nv, sizeof *types);
    if (!tok || !mer || !types) {
        free(tok), free(mer), free(types);
        return plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    }
    for (int32_t i = 0; i < nv; i++) {
        tok[i] = plm_tokenizer_token_text(t, i);
        types[i] = plm_tokenizer_token_type(t, i);
    }
    for (int32_t i = 0; i < nm; i++) mer[i] = plm_tokenizer_merge(t, i);
    const char *pre = plm_tokenizer_pre(t);
    plm_gguf_add_str(g, "tokenizer.ggml.model", "gpt2", 4);
    plm_gguf_add_str(g, "tokenizer.ggml.pre", pre, strlen(pre));
    plm_gguf_add_strs(g, "tokenizer.ggml.tokens", tok, nv);
    plm_gguf_add_i32s(g, "tokenizer.ggml.token_type", types, nv);
    plm_gguf_add_strs(g, "tokenizer.ggml.merges", mer, nm);
    free(tok), free(mer), free(types);
    return PLM_OK;
}

// gguf_meta: general.* and llama.* keys as convert_hf_to_gguf.py writes them for LlamaModel.
static plm_status gguf_meta(plm_gguf_writer *g, const plm_model *m, plm_dtype dtype,
                            plm_error *err) {
    const plm_config *c = &m->config;
    static const uint32_t file_type[] = {0, 1, 32, 7, 2, 3}; // LLAMA_FTYPE_ALL_F32, MOSTLY_F16...
    plm_gguf_add_str(g, "general.architecture", "llama", 5);
    if (m->name) plm_gguf_add_str(g, "general.name", m->name, strlen(m->name));
    if (m->adapter) plm_gguf_add_str(g, "pocketlm.adapter", m->adapter, strlen(m->adapter));
    plm_gguf_add_u32(g, "general.file_type", file_type[dtype]);
    plm_gguf_add_u32(g, "llama.block_count", (uint32_t)c->num_hidden_layers);
    plm_gguf_add_u32(g, "llama.context_length", (uint32_t)c->max_position_embeddings);
    plm_gguf_add_u32(g, "llama.embedding_length", (uint32_t)c->hidden_size);
    plm_gguf_add_u32(g, "llama.feed_forward_length", (uint32_t)c->intermediate_size);
    plm_gguf_add_u32(g, "llama.attention.head_count", (uint32_t)c->num_attention_heads);
    plm_gguf_add_u32(g, "llama.attention.head_count_kv", (uint32_t)c->num_key_value_heads);
    plm_gguf_add_f32(g, "llama.rope.freq_base", c->rope_theta);
    plm_gguf_add_f32(g, "llama.attention.layer_norm_rms_epsilon", c->rms_norm_eps);
    plm_gguf_add_u32(g, "llama.vocab_size", (uint32_t)c->vocab_size);
    plm_gguf_add_u32(g, "llama.rope.dimension_count", (uint32_t)c->head_dim);
    if (c->head_dim * c->num_attention_heads != c->hidden_size) {
        plm_gguf_add_u32(g, "llama.attention.key_length", (uint32_t)c->head_dim);
        plm_gguf_add_u32(g, "llama.attention.value_length", (uint32_t)c->head_dim);
    }
    plm_status s = m->tokenizer ? gguf_tokenizer_meta(g, m->tokenizer, err) : PLM_OK;
    const struct {
        const char *key;
        int32_t id;
    } ids[] = {{"tokenizer.ggml.bos_token_id", c->bos_token_id},
               {"tokenizer.ggml.eos_token_id", c->eos_token_id},
               {"tokenizer.ggml.padding_token_id", m->pad_token_id}};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if (ids[i].id >= 0) plm_gguf_add_u32(g, ids[i].key, (uint32_t)ids[i].id);
    if (m->tokenizer) {
        plm_gguf_add_bool(g, "tokenizer.ggml.add_bos_token", 0); // pocketlm never adds BOS
        plm_gguf_add_bool(g, "tokenizer.ggml.add_space_prefix", 0);
    }
    if (m->chat_template)
        plm_gguf_add_str(g, "tokenizer.chat_template", m->chat_template, strlen(m->chat_template));
    return s;
}

static plm_status save_gguf(const plm_model *m, wref *w, int32_t n, const char *path,
                            plm_dtype dtype, plm_error *err) {
    static const uint32_t ggml_type[] = {PLM_GGML_F32,  PLM_GGML_F16,  PLM_GGML_BF16,
                                         PLM_GGML_Q8_0, PLM_GGML_Q4_0, PLM_GGML_Q4_1};
    if (dtype == PLM_DTYPE_Q4_1 || (unsigned)dtype > PLM_DTYPE_Q4_1)
        return plm_fail(err, PLM_ERR_UNSUPPORTED,
                        "%s: GGUF export writes f32, f16, bf16, q8_0 or "
                        "q4_0, not %s",
                        path, plm_dtype_name(dtype));
    plm_gguf_writer *g;
    plm_status s = plm_gguf_writer_create(&g, err);
    if (s != PLM_OK) return s;
    s = gguf_meta(g, m, dtype, err);
    for (int32_t i = 0; i < n; i++) {
        int64_t ne[2] = {w[i].cols, w[i].rows}; // innermost first
        int block = dtype == PLM_DTYPE_Q8_0 || dtype == PLM_DTYPE_Q4_0 ? 32 : 1;
        uint32_t type = w[i].d->linear && w[i].cols % block == 0 ? ggml_type[dtype] : PLM_GGML_F32;
        plm_gguf_add_tensor(g, w[i].gguf, w[i].d->linear ? 2 : 1, ne, type);
    }
    save_ctx ctx = {w, 1, m->config.head_dim};
    if (s == PLM_OK) s = plm_gguf_write(g, path, fill_weight, &ctx, err);
    plm_gguf_writer_free(g);
    return s;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

plm_status plm_model_save(const plm_model *m, const char *path, plm_dtype dtype, plm_error *err) {
    if (!m || !path) return plm_fail(err, PLM_ERR_ARG, "plm_model_save: NULL argument");
    int32_t n;
    wref *w = weight_list((plm_model *)(uintptr_t)m, &n); // the writers only read through it
    if (!w) return plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    plm_status s = ends_with(path, ".gguf") ? save_gguf(m, w, n, path, dtype, err)
                                            : save_hf(m, w, n, path, dtype, err);
    free(w);
    return s;
}
