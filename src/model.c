// model.c: plm_model: the ONE weight table that loading (HF safetensors or GGUF), saving (HF
// directory or GGUF) and parameter counting all iterate, the LoRA targets beside it (lora.c,
// layers.c and the trainer use those), the config check, the single weight allocation, and the
// accessors. Mirrors transformers' Llama/Qwen2/Qwen3/Gemma3 ForCausalLM tensor names and llama.cpp's
// convert_hf_to_gguf.py (tensor names, Q/K permute for llama, rope_freqs). Not here: reading the config and the weights
// (model_load.c), writing them (model_save.c); the formats themselves are parsed in safetensors.c
// and gguf.c; the forward pass is session.c's.
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

// ---- the families ----

const arch_desc plm_archs[N_ARCHS] = {
    [PLM_ARCH_LLAMA] = {"llama", "LlamaForCausalLM", "llama"},
    [PLM_ARCH_QWEN2] = {"qwen2", "Qwen2ForCausalLM", "qwen2"},
    [PLM_ARCH_QWEN3] = {"qwen3", "Qwen3ForCausalLM", "qwen3"},
    [PLM_ARCH_GEMMA3] = {"gemma3_text", "Gemma3ForCausalLM", "gemma3"},
};

const char *plm_arch_name(plm_arch a) {
    return (unsigned)a < N_ARCHS ? plm_archs[a].model_type : "unknown";
}

// ---- the weight table ----

#define LAYER(f)  1, offsetof(plm_layer, f)
#define GLOBAL(f) 0, offsetof(plm_model, f)
static const weight_desc weight_table[] = {
    {"model.embed_tokens.weight", "token_embd.weight", GLOBAL(embed_tokens), 1, DIM_V, DIM_C, 0,
     W_ALWAYS},
    {"model.layers.%d.input_layernorm.weight", "blk.%d.attn_norm.weight", LAYER(input_layernorm), 0,
     DIM_C, DIM_C, 0, W_ALWAYS},
    {"model.layers.%d.self_attn.q_proj.weight", "blk.%d.attn_q.weight", LAYER(q_proj), 1, DIM_Q,
     DIM_C, 'H', W_ALWAYS},
    {"model.layers.%d.self_attn.k_proj.weight", "blk.%d.attn_k.weight", LAYER(k_proj), 1, DIM_KV,
     DIM_C, 'K', W_ALWAYS},
    {"model.layers.%d.self_attn.v_proj.weight", "blk.%d.attn_v.weight", LAYER(v_proj), 1, DIM_KV,
     DIM_C, 0, W_ALWAYS},
    {"model.layers.%d.self_attn.q_proj.bias", "blk.%d.attn_q.bias", LAYER(q_bias), 0, DIM_Q, DIM_Q,
     0, W_BIAS},
    {"model.layers.%d.self_attn.k_proj.bias", "blk.%d.attn_k.bias", LAYER(k_bias), 0, DIM_KV,
     DIM_KV, 0, W_BIAS},
    {"model.layers.%d.self_attn.v_proj.bias", "blk.%d.attn_v.bias", LAYER(v_bias), 0, DIM_KV,
     DIM_KV, 0, W_BIAS},
    {"model.layers.%d.self_attn.q_norm.weight", "blk.%d.attn_q_norm.weight", LAYER(q_norm), 0,
     DIM_D, DIM_D, 0, W_QKNORM},
    {"model.layers.%d.self_attn.k_norm.weight", "blk.%d.attn_k_norm.weight", LAYER(k_norm), 0,
     DIM_D, DIM_D, 0, W_QKNORM},
    {"model.layers.%d.self_attn.o_proj.weight", "blk.%d.attn_output.weight", LAYER(o_proj), 1,
     DIM_C, DIM_Q, 0, W_ALWAYS},
    {"model.layers.%d.post_attention_layernorm.weight", "blk.%d.post_attention_norm.weight",
     LAYER(post_attn_norm), 0, DIM_C, DIM_C, 0, W_GEMMA},
    {"model.layers.%d.post_attention_layernorm.weight", "blk.%d.ffn_norm.weight",
     LAYER(post_attention_layernorm), 0, DIM_C, DIM_C, 0, W_OTHER},
    {"model.layers.%d.pre_feedforward_layernorm.weight", "blk.%d.ffn_norm.weight",
     LAYER(post_attention_layernorm), 0, DIM_C, DIM_C, 0, W_GEMMA},
    {"model.layers.%d.mlp.gate_proj.weight", "blk.%d.ffn_gate.weight", LAYER(gate_proj), 1, DIM_F,
     DIM_C, 0, W_ALWAYS},
    {"model.layers.%d.mlp.up_proj.weight", "blk.%d.ffn_up.weight", LAYER(up_proj), 1, DIM_F, DIM_C,
     0, W_ALWAYS},
    {"model.layers.%d.mlp.down_proj.weight", "blk.%d.ffn_down.weight", LAYER(down_proj), 1, DIM_C,
     DIM_F, 0, W_ALWAYS},
    {"model.layers.%d.post_feedforward_layernorm.weight", "blk.%d.post_ffw_norm.weight",
     LAYER(post_ffw_norm), 0, DIM_C, DIM_C, 0, W_GEMMA},
    {"model.norm.weight", "output_norm.weight", GLOBAL(norm), 0, DIM_C, DIM_C, 0, W_ALWAYS},
    {"", "rope_freqs.weight", GLOBAL(rope_freqs), 0, DIM_HALF, DIM_HALF, 0, W_ROPE},
    {"lm_head.weight", "output.weight", GLOBAL(lm_head), 1, DIM_V, DIM_C, 0, W_UNTIED},
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

static int64_t dim_of(const plm_config *c, wdim d) {
    switch (d) {
    case DIM_V: return c->vocab_size;
    case DIM_C: return c->hidden_size;
    case DIM_F: return c->intermediate_size;
    case DIM_Q: return (int64_t)c->num_attention_heads * c->head_dim;
    case DIM_KV: return (int64_t)c->num_key_value_heads * c->head_dim;
    case DIM_D: return c->head_dim;
    case DIM_HALF: return c->head_dim / 2;
    }
    return 0;
}

int32_t plm_layer_window(const plm_config *c, int32_t l) {
    int32_t p = c->sliding_window_pattern;
    return p > 0 && (l + 1) % p != 0 ? c->sliding_window : 0;
}

float plm_attention_scale(const plm_config *c) {
    float s = c->query_pre_attn_scalar > 0.0f ? c->query_pre_attn_scalar : (float)c->head_dim;
    return (float)(1.0 / sqrt((double)s)); // HF: a Python float, s ** -0.5
}

float plm_embed_scale(const plm_config *c) {
    return c->model_type == PLM_ARCH_GEMMA3 ? (float)sqrt((double)c->hidden_size) : 1.0f;
}

const plm_mat *plm_layer_target(const plm_layer *layer, plm_lora_target t) {
    return (const plm_mat *)(const void *)((const char *)layer + plm_lora_targets[t].field);
}

const float *plm_layer_bias(const plm_layer *layer, plm_lora_target t) {
    return t == PLM_LORA_Q_PROJ   ? layer->q_bias
           : t == PLM_LORA_K_PROJ ? layer->k_bias
           : t == PLM_LORA_V_PROJ ? layer->v_bias
                                  : NULL;
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

// has_weight: whether the model of config c has the tensors of table row d
static int has_weight(const plm_config *c, const weight_desc *d) {
    switch (d->when) {
    case W_ALWAYS: return 1;
    case W_UNTIED: return !c->tie_word_embeddings;
    case W_BIAS: return c->attention_bias;
    case W_QKNORM: return c->qk_norm;
    case W_ROPE: return c->rope_freqs;
    case W_GEMMA: return c->model_type == PLM_ARCH_GEMMA3;
    case W_OTHER: return c->model_type != PLM_ARCH_GEMMA3;
    }
    return 0;
}

// plm_model_weight_list: every tensor of m in table order (layer-major within per-layer rows);
// lm_head is left out when tied, the optional rows when the config has none. Returns a new array (free()) of *n refs, or NULL when out of
// memory.
wref *plm_model_weight_list(plm_model *m, int32_t *n) {
    const plm_config *c = &m->config;
    int32_t L = c->num_hidden_layers, k = 0;
    wref *w = plm_alloc(N_WEIGHT_DESC * (size_t)(L + 1), sizeof *w);
    if (!w) return NULL;
    for (size_t i = 0; i < N_WEIGHT_DESC; i++) {
        const weight_desc *d = &weight_table[i];
        if (!has_weight(c, d)) continue;
        for (int32_t l = 0; l < (d->per_layer ? L : 1); l++, k++) {
            wref *r = &w[k];
            char *base = d->per_layer ? (char *)&m->layers[l] : (char *)m;
            r->d = d;
            r->layer = d->per_layer ? l : -1;
            r->rows = d->linear ? dim_of(c, d->rows) : 1;
            r->cols = dim_of(c, d->cols);
            r->n_head = c->model_type != PLM_ARCH_LLAMA ? 0
                        : d->rope == 'H'                ? c->num_attention_heads
                        : d->rope == 'K'                ? c->num_key_value_heads
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

// ---- config ----

// plm_config_check: the architecture is one pocketlm can run, with sizes that cannot overflow.
plm_status plm_config_check(const plm_config *c, const char *path, plm_error *err) {
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
    const plm_rope_scaling *rs = &c->rope_scaling;
    if (rs->linear && !(rs->linear == 1 && rs->factor >= 1.0f && rs->factor < 1e9f))
        return plm_fail(err, PLM_ERR_FORMAT, "%s: rope_scaling linear: factor %g; want >= 1", path,
                        (double)rs->factor);
    if (!rs->linear && rs->factor != 0.0f &&
        !(rs->factor >= 1.0f && rs->low_freq_factor > 0.0f &&
          rs->high_freq_factor > rs->low_freq_factor && rs->original_max_position_embeddings > 0))
        return plm_fail(err, PLM_ERR_FORMAT,
                        "%s: rope_scaling llama3: factor %g, low_freq_factor %g, high_freq_factor "
                        "%g, original_max_position_embeddings %d; want factor >= 1, 0 < low < high",
                        path, (double)rs->factor, (double)rs->low_freq_factor,
                        (double)rs->high_freq_factor, rs->original_max_position_embeddings);
    if ((c->rope_freqs != 0 && c->rope_freqs != 1) || (rs->factor != 0.0f && !c->rope_freqs))
        return plm_fail(err, PLM_ERR_FORMAT, "%s: rope_freqs %d with rope_scaling factor %g", path,
                        c->rope_freqs, (double)rs->factor);
    if (c->sliding_window < 0 || c->sliding_window_pattern < 0 ||
        (c->sliding_window_pattern > 0) != (c->sliding_window > 0) ||
        c->query_pre_attn_scalar < 0.0f || !(c->query_pre_attn_scalar < 1e9f) ||
        (c->sliding_window > 0 && !(c->rope_local_base_freq > 1.0f)))
        return plm_fail(
            err, PLM_ERR_FORMAT,
            "%s: sliding_window %d, sliding_window_pattern %d, rope_local_base_freq %g, "
            "query_pre_attn_scalar %g out of range",
            path, c->sliding_window, c->sliding_window_pattern, (double)c->rope_local_base_freq,
            (double)c->query_pre_attn_scalar);
    if ((unsigned)c->model_type >= N_ARCHS)
        return plm_fail(err, PLM_ERR_FORMAT, "%s: model_type %d, want 0 .. %d", path,
                        (int)c->model_type, N_ARCHS - 1);
    return PLM_OK;
}

// ---- the weight block ----

static size_t up64(size_t n) {
    return (n + 63) / 64 * 64;
}

// plm_model_layout: bytes of the block for all refs, each linear one at its dtype (w[i].dtype,
// quantized only when cols is a multiple of PLM_QK; F16 and BF16 always); with block set, points each ref into it. Refs
// with inplace[i] set (inplace may be NULL) get only their scales d here (q stays in the file).
size_t plm_model_layout(wref *w, int32_t n, const char *inplace, uint8_t *block) {
    size_t off = 0;
    for (int32_t i = 0; i < n; i++) {
        const size_t rows = (size_t)w[i].rows, cols = (size_t)w[i].cols, nb = rows * cols / PLM_QK;
        const plm_dtype dt = w[i].d->linear && (cols % PLM_QK == 0 || plm_dtype_half(w[i].dtype))
                                 ? w[i].dtype
                                 : PLM_DTYPE_F32;
        // the parts, each from a multiple of 64 bytes: weights (f32, q or q4), scales d,
        // minimums m, high bits qh, Q4_K/Q5_K's 6-bit scales scm
        size_t a = plm_mat_bytes(dt, rows, cols), b = 0, c = 0, h = 0, k = 0;
        if (dt != PLM_DTYPE_F32 && !plm_dtype_half(dt)) b = nb * sizeof(float), a -= b;
        if (plm_dtype_min(dt)) c = b, a -= c;
        if (plm_dtype_high(dt)) h = nb * sizeof(uint32_t), a -= h;
        if (dt == PLM_DTYPE_Q6_K) b /= 8, a = plm_mat_bytes(dt, rows, cols) - b;  // d per 256
        if (plm_dtype_kquant(dt)) b = c = b / 8, k = 2 * nb, a = nb * PLM_QK / 2; // d, dmin per 256
        if (inplace && inplace[i]) a = 0;
        const size_t ob = up64(a), oc = ob + up64(b), oh = oc + up64(c), ok = oh + up64(h);
        if (block && w[i].d->linear) {
            plm_mat *mt = w[i].mat;
            *mt = (plm_mat){.dtype = dt, .rows = (int32_t)rows, .cols = (int32_t)cols};
            if (dt == PLM_DTYPE_F32) mt->f32 = (float *)(block + off);
            else if (dt == PLM_DTYPE_Q8_0) mt->q = (int8_t *)(block + off);
            else if (dt == PLM_DTYPE_Q6_K) mt->q6 = block + off;
            else if (plm_dtype_half(dt)) mt->h = (uint16_t *)(void *)(block + off);
            else mt->q4 = block + off;
            if (b) mt->d = (float *)(block + off + ob);
            if (c) mt->m = (float *)(block + off + oc);
            if (h) mt->qh = (uint32_t *)(block + off + oh);
            if (k) mt->scm = block + off + ok;
        } else if (block) {
            *w[i].vec = (float *)(block + off);
        }
        off += ok + up64(k);
    }
    return off;
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
    plm_status st = plm_config_check(cfg, "plm_model_alloc", err);
    if (st != PLM_OK) return st;
    int32_t n = 0;
    wref *w = NULL;
    plm_model *m = plm_alloc(1, sizeof *m);
    if (m) m->config = *cfg, m->dtype = PLM_DTYPE_F32, m->pad_token_id = -1;
    if (m) m->layers = plm_alloc((size_t)cfg->num_hidden_layers, sizeof *m->layers);
    if (m && m->layers) w = plm_model_weight_list(m, &n);
    if (w) m->block_bytes = plm_model_layout(w, n, NULL, NULL);
    if (w) m->block = plm_alloc_big(m->block_bytes);
    if (!m || !m->block) {
        free(w);
        plm_model_free(m);
        return plm_fail(err, PLM_ERR_NOMEM, "out of memory for a model of %d layers",
                        cfg->num_hidden_layers);
    }
    plm_model_layout(w, n, NULL, m->block);
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
const char *plm_model_chat_template(const plm_model *m) {
    return m ? m->chat_template : NULL;
}
size_t plm_model_weight_bytes(const plm_model *m) {
    return m->block_bytes + m->file_weight_bytes;
}

size_t plm_model_decode_bytes(const plm_model *m) {
    int32_t n;
    size_t total = 0;
    wref *w = plm_model_weight_list((plm_model *)(uintptr_t)m, &n); // reads shapes and dtypes only
    for (int32_t i = 0; w && i < n; i++) {
        if (!w[i].d->linear || w[i].mat == &m->embed_tokens) continue; // one row of it a token
        total += plm_mat_bytes(w[i].mat->dtype, (size_t)w[i].rows, (size_t)w[i].cols);
    }
    if (w && m->config.tie_word_embeddings) // the head is the embedding, read whole
        total += plm_mat_bytes(m->lm_head.dtype, (size_t)m->lm_head.rows, (size_t)m->lm_head.cols);
    free(w);
    return total;
}

size_t plm_model_n_params(const plm_model *m) {
    int32_t n;
    size_t total = 0;
    wref *w = plm_model_weight_list((plm_model *)(uintptr_t)m, &n); // reads shapes only
    for (int32_t i = 0; w && i < n; i++) // not rope_freqs: a buffer derived from the config
        if (w[i].d->when != W_ROPE) total += (size_t)w[i].rows * (size_t)w[i].cols;
    free(w);
    return total;
}

static const char *const dtype_names[] = {"f32",  "f16",  "bf16", "q8_0", "q4_0", "q4_1",
                                          "auto", "q5_0", "q5_1", "q6_k", "q4_k", "q5_k"};

const char *plm_dtype_name(plm_dtype t) {
    return (unsigned)t < sizeof dtype_names / sizeof dtype_names[0] && dtype_names[t]
               ? dtype_names[t]
               : "unknown";
}

plm_status plm_dtype_parse(const char *name, plm_dtype *out) {
    for (size_t i = 0; name && i < sizeof dtype_names / sizeof dtype_names[0]; i++)
        if (dtype_names[i] && !strcmp(name, dtype_names[i])) {
            *out = (plm_dtype)i;
            return PLM_OK;
        }
    return PLM_ERR_ARG;
}
