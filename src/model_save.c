// model_save.c: plm_model_save and plm_model_save_json: an HF directory (config.json as
// transformers' LlamaConfig, Qwen2Config, Qwen3Config or Gemma3TextConfig writes it, generation_config.json,
// model.safetensors, the tokenizer files) or a GGUF file (general.*, <arch>.* and tokenizer.ggml.*
// keys as convert_hf_to_gguf.py writes them, q/k rows in llama.cpp's order), both through the
// weight table. The containers are
// written by safetensors.c and gguf_write.c.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "model_internal.h"
#include "safetensors.h"

// ---- save ----

typedef struct {
    wref *w;     // the tensors, in file order
    int permute; // 1: GGUF, store q/k rows in llama.cpp's order
    int64_t D;   // head dim
    float shift; // added to norm weights: -1 for Gemma 3's HF files (model.h), else 0
} save_ctx;

// fill_weight: plm_tensor_fill over the weight list: tensor i as f32 (in file row order).
static plm_status fill_weight(void *user, int32_t i, float *buf, plm_error *err) {
    const save_ctx *c = user;
    const wref *w = &c->w[i];
    (void)err;
    if (!w->d->linear) {
        memcpy(buf, *w->vec, (size_t)w->cols * sizeof *buf);
        for (int64_t k = 0; norm_row(w->d) && k < w->cols; k++) buf[k] += c->shift;
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

// gemma3_config: the keys of config.json that Gemma3TextConfig writes (after "eos_token_id"), the
// layers' kinds both as layer_types (newer transformers) and as sliding_window_pattern (4.51).
static plm_status gemma3_config(plm_writer *f, const plm_model *m, const char *eps,
                                const char *theta, const char *rope, const char *torch,
                                plm_error *err) {
    const plm_config *c = &m->config;
    char local[32], scalar[32];
    fmt_float(local, sizeof local, c->rope_local_base_freq);
    fmt_float(scalar, sizeof scalar, c->query_pre_attn_scalar);
    plm_status s = plm_writer_printf(
        f, err,
        "  \"final_logit_softcapping\": null,\n  \"head_dim\": %d,\n"
        "  \"hidden_activation\": \"gelu_pytorch_tanh\",\n  \"hidden_size\": %d,\n"
        "  \"initializer_range\": 0.02,\n  \"intermediate_size\": %d,\n  \"layer_types\": [",
        c->head_dim, c->hidden_size, c->intermediate_size);
    for (int32_t l = 0; s == PLM_OK && l < c->num_hidden_layers; l++)
        s = plm_writer_printf(f, err, "%s\n    \"%s\"", l ? "," : "",
                              plm_layer_window(c, l) ? "sliding_attention" : "full_attention");
    if (s == PLM_OK)
        s = plm_writer_printf(
            f, err,
            "\n  ],\n  \"max_position_embeddings\": %d,\n  \"model_type\": \"gemma3_text\",\n"
            "  \"num_attention_heads\": %d,\n  \"num_hidden_layers\": %d,\n"
            "  \"num_key_value_heads\": %d,\n  \"pad_token_id\": %d,\n"
            "  \"query_pre_attn_scalar\": %s,\n  \"rms_norm_eps\": %s,\n"
            "  \"rope_local_base_freq\": %s,\n  \"rope_scaling\": %s,\n  \"rope_theta\": %s,\n"
            "  \"sliding_window\": %d,\n  \"sliding_window_pattern\": %d,\n"
            "  \"tie_word_embeddings\": %s,\n  \"torch_dtype\": \"%s\",\n"
            "  \"transformers_version\": \"4.51.3\",\n  \"use_cache\": true,\n"
            "  \"vocab_size\": %d\n}\n",
            c->max_position_embeddings, c->num_attention_heads, c->num_hidden_layers,
            c->num_key_value_heads, m->pad_token_id >= 0 ? m->pad_token_id : 0, scalar, eps, local,
            rope, theta, c->sliding_window, c->sliding_window_pattern,
            c->tie_word_embeddings ? "true" : "false", torch, c->vocab_size);
    return s;
}

// save_hf_config: config.json as transformers' LlamaConfig (Qwen2Config, Qwen3Config,
// Gemma3TextConfig) writes it.
static plm_status save_hf_config(const plm_model *m, const char *path, plm_dtype dtype,
                                 plm_error *err) {
    const plm_config *c = &m->config;
    plm_writer *f;
    char eps[32], theta[32];
    fmt_float(eps, sizeof eps, c->rms_norm_eps);
    fmt_float(theta, sizeof theta, c->rope_theta);
    char rope[256] = "null", num[3][32];
    const plm_rope_scaling *rs = &c->rope_scaling;
    if (rs->linear) {
        fmt_float(num[0], sizeof num[0], rs->factor);
        snprintf(rope, sizeof rope, "{\n    \"factor\": %s,\n    \"rope_type\": \"linear\"\n  }",
                 num[0]);
    } else if (rs->factor > 0.0f) {
        fmt_float(num[0], sizeof num[0], rs->factor);
        fmt_float(num[1], sizeof num[1], rs->high_freq_factor);
        fmt_float(num[2], sizeof num[2], rs->low_freq_factor);
        snprintf(rope, sizeof rope,
                 "{\n    \"factor\": %s,\n    \"high_freq_factor\": %s,\n"
                 "    \"low_freq_factor\": %s,\n    \"original_max_position_embeddings\": %d,\n"
                 "    \"rope_type\": \"llama3\"\n  }",
                 num[0], num[1], num[2], rs->original_max_position_embeddings);
    }
    char pad[48] = "";
    if (m->pad_token_id >= 0)
        snprintf(pad, sizeof pad, "  \"pad_token_id\": %d,\n", m->pad_token_id);
    const char *torch = dtype == PLM_DTYPE_F16    ? "float16"
                        : dtype == PLM_DTYPE_BF16 ? "bfloat16"
                                                  : "float32";
    plm_status s = plm_writer_open(&f, path, err);
    if (s != PLM_OK) return s;
    const arch_desc *a = &plm_archs[c->model_type];
    const int gemma = c->model_type == PLM_ARCH_GEMMA3;
    s = plm_writer_printf(f, err, "{\n  \"architectures\": [\n    \"%s\"\n  ],\n%s", a->cls,
                          c->model_type == PLM_ARCH_QWEN2 ? "" : "  \"attention_bias\": false,\n");
    if (s == PLM_OK) s = plm_writer_printf(f, err, "  \"attention_dropout\": 0.0,\n");
    if (s == PLM_OK && gemma)
        s = plm_writer_printf(f, err, "  \"attn_logit_softcapping\": null,\n");
    if (s == PLM_OK) s = write_json_id(f, "bos_token_id", c->bos_token_id, err);
    if (s == PLM_OK) s = write_json_id(f, "eos_token_id", c->eos_token_id, err);
    if (s == PLM_OK && gemma) s = gemma3_config(f, m, eps, theta, rope, torch, err);
    else if (s == PLM_OK)
        s = plm_writer_printf(
            f, err,
            "  \"head_dim\": %d,\n  \"hidden_act\": \"silu\",\n  \"hidden_size\": %d,\n"
            "  \"initializer_range\": 0.02,\n  \"intermediate_size\": %d,\n"
            "  \"max_position_embeddings\": %d,\n  \"mlp_bias\": false,\n"
            "  \"model_type\": \"%s\",\n  \"num_attention_heads\": %d,\n"
            "  \"num_hidden_layers\": %d,\n  \"num_key_value_heads\": %d,\n%s"
            "  \"pretraining_tp\": 1,\n  \"rms_norm_eps\": %s,\n  \"rope_scaling\": %s,\n"
            "  \"rope_theta\": %s,\n  \"tie_word_embeddings\": %s,\n  \"torch_dtype\": \"%s\",\n"
            "  \"transformers_version\": \"4.44.2\",\n  \"use_cache\": true,\n"
            "  \"vocab_size\": %d\n}\n",
            c->head_dim, c->hidden_size, c->intermediate_size, c->max_position_embeddings,
            a->model_type, c->num_attention_heads, c->num_hidden_layers, c->num_key_value_heads,
            pad, eps, rope, theta, c->tie_word_embeddings ? "true" : "false", torch, c->vocab_size);
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
    char path[4096]; // dtype is f32, f16 or bf16 (plm_model_save_ftype checks)
    const plm_config *c = &m->config;
    if (c->rope_freqs && c->rope_scaling.factor == 0.0f)
        return plm_fail(err, PLM_ERR_UNSUPPORTED,
                        "%s: the RoPE divisors of a GGUF file (rope_freqs.weight) have no "
                        "config.json form (rope_scaling's parameters are not in the file)",
                        dir);
    int32_t k = 0; // the rows HF has a tensor for (not rope_freqs: config.json gives it)
    for (int32_t i = 0; i < n; i++)
        if (w[i].hf[0]) w[k++] = w[i];
    n = k;
    plm_st_info *info = plm_alloc((size_t)n, sizeof *info);
    if (!info) return plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < n; i++)
        info[i] = (plm_st_info){.name = w[i].hf,
                                .dtype = dtype,
                                .n_dims = w[i].d->linear ? 2 : 1,
                                .shape = {w[i].d->linear ? w[i].rows : w[i].cols, w[i].cols}};
    save_ctx ctx = {w, 0, m->config.head_dim, c->model_type == PLM_ARCH_GEMMA3 ? -1.0f : 0.0f};
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

// ---- llama.cpp's file types and mixes ----

typedef struct {
    const char *name;
    uint32_t file_type; // general.file_type: llama_ftype (LLAMA_FTYPE_MOSTLY_Q4_K_M = 15, ...)
    uint32_t type;      // the ggml type of most 2-D weights
} ftype_info;

static const ftype_info ftypes[PLM_FTYPE_COUNT] = {
    {"f32", 0, PLM_GGML_F32},      {"f16", 1, PLM_GGML_F16},    {"bf16", 32, PLM_GGML_BF16},
    {"q8_0", 7, PLM_GGML_Q8_0},    {"q4_0", 2, PLM_GGML_Q4_0},  {"q4_1", 3, PLM_GGML_Q4_1},
    {"q5_0", 8, PLM_GGML_Q5_0},    {"q5_1", 9, PLM_GGML_Q5_1},  {"q4_k_m", 15, PLM_GGML_Q4_K},
    {"q5_k_m", 17, PLM_GGML_Q5_K}, {"q6_k", 18, PLM_GGML_Q6_K},
};

const char *plm_ftype_name(plm_ftype t) {
    return (unsigned)t < PLM_FTYPE_COUNT ? ftypes[t].name : "unknown";
}

plm_status plm_ftype_parse(const char *name, plm_ftype *out) {
    for (int i = 0; name && i < PLM_FTYPE_COUNT; i++)
        if (!strcmp(name, ftypes[i].name)) {
            *out = (plm_ftype)i;
            return PLM_OK;
        }
    return PLM_ERR_ARG;
}

// gguf_tokenizer_meta: tokenizer.ggml.* from the model's tokenizer, as llama.cpp reads them:
// byte-level BPE as model "gpt2" with merges, SentencePiece BPE as model "llama" with scores.
static plm_status gguf_tokenizer_meta(plm_gguf_writer *g, const plm_tokenizer *t, plm_error *err) {
    int32_t nv = plm_tokenizer_n_vocab(t), nm = plm_tokenizer_n_merges(t);
    int spm = plm_tokenizer_spm(t);
    plm_str *tok = plm_alloc((size_t)nv, sizeof *tok), *mer = plm_alloc((size_t)nm, sizeof *mer);
    int32_t *types = plm_alloc((size_t)nv, sizeof *types);
    float *scores = spm ? plm_alloc((size_t)nv, sizeof *scores) : NULL;
    if (!tok || !mer || !types || (spm && !scores)) {
        free(tok), free(mer), free(types), free(scores);
        return plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    }
    for (int32_t i = 0; i < nv; i++) {
        tok[i] = plm_tokenizer_token_text(t, i);
        types[i] = plm_tokenizer_token_type(t, i);
    }
    for (int32_t i = 0; i < nm; i++) mer[i] = plm_tokenizer_merge(t, i);
    const char *pre = plm_tokenizer_pre(t);
    plm_gguf_add_str(g, "tokenizer.ggml.model", spm ? "llama" : "gpt2", spm ? 5 : 4);
    plm_gguf_add_str(g, "tokenizer.ggml.pre", pre, strlen(pre));
    plm_gguf_add_strs(g, "tokenizer.ggml.tokens", tok, nv);
    plm_gguf_add_i32s(g, "tokenizer.ggml.token_type", types, nv);
    if (spm) plm_tokenizer_scores(t, scores);
    if (spm) plm_gguf_add_f32s(g, "tokenizer.ggml.scores", scores, nv);
    else plm_gguf_add_strs(g, "tokenizer.ggml.merges", mer, nm);
    free(tok), free(mer), free(types), free(scores);
    return PLM_OK;
}

// arch_key: "<arch>.<suffix>" in key (96 bytes): a GGUF key of the model's family
static const char *arch_key(char *key, const plm_config *c, const char *suffix) {
    snprintf(key, 96, "%s.%s", plm_archs[c->model_type].gguf, suffix);
    return key;
}

// gguf_meta: general.* and <arch>.* keys as convert_hf_to_gguf.py writes them for LlamaModel,
// Qwen2Model, Qwen3Model and Gemma3Model (qwen3 and gemma3 always give their head_dim as
// key_length), and Gemma 3's pocketlm.* keys for what llama.cpp does not read.
static plm_status gguf_meta(plm_gguf_writer *g, const plm_model *m, plm_ftype ft, plm_error *err) {
    const plm_config *c = &m->config;
    const char *arch = plm_archs[c->model_type].gguf;
    char k[96];
    plm_gguf_add_str(g, "general.architecture", arch, strlen(arch));
    if (m->name) plm_gguf_add_str(g, "general.name", m->name, strlen(m->name));
    if (m->adapter) plm_gguf_add_str(g, "pocketlm.adapter", m->adapter, strlen(m->adapter));
    plm_gguf_add_u32(g, "general.file_type", ftypes[ft].file_type);
    if (ft > PLM_FTYPE_BF16) plm_gguf_add_u32(g, "general.quantization_version", 2);
    plm_gguf_add_u32(g, arch_key(k, c, "block_count"), (uint32_t)c->num_hidden_layers);
    plm_gguf_add_u32(g, arch_key(k, c, "context_length"), (uint32_t)c->max_position_embeddings);
    plm_gguf_add_u32(g, arch_key(k, c, "embedding_length"), (uint32_t)c->hidden_size);
    plm_gguf_add_u32(g, arch_key(k, c, "feed_forward_length"), (uint32_t)c->intermediate_size);
    plm_gguf_add_u32(g, arch_key(k, c, "attention.head_count"), (uint32_t)c->num_attention_heads);
    plm_gguf_add_u32(g, arch_key(k, c, "attention.head_count_kv"),
                     (uint32_t)c->num_key_value_heads);
    plm_gguf_add_f32(g, arch_key(k, c, "rope.freq_base"), c->rope_theta);
    plm_gguf_add_f32(g, arch_key(k, c, "attention.layer_norm_rms_epsilon"), c->rms_norm_eps);
    plm_gguf_add_u32(g, arch_key(k, c, "vocab_size"), (uint32_t)c->vocab_size);
    plm_gguf_add_u32(g, arch_key(k, c, "rope.dimension_count"), (uint32_t)c->head_dim);
    if (c->rope_scaling.linear) {
        plm_gguf_add_str(g, arch_key(k, c, "rope.scaling.type"), "linear", 6);
        plm_gguf_add_f32(g, arch_key(k, c, "rope.scaling.factor"), c->rope_scaling.factor);
    }
    if (c->head_dim * c->num_attention_heads != c->hidden_size || c->qk_norm) {
        plm_gguf_add_u32(g, arch_key(k, c, "attention.key_length"), (uint32_t)c->head_dim);
        plm_gguf_add_u32(g, arch_key(k, c, "attention.value_length"), (uint32_t)c->head_dim);
    }
    if (c->model_type == PLM_ARCH_GEMMA3) { // llama.cpp fixes the other three in code (model_load)
        plm_gguf_add_u32(g, arch_key(k, c, "attention.sliding_window"),
                         (uint32_t)c->sliding_window);
        plm_gguf_add_u32(g, "pocketlm.sliding_window_pattern", (uint32_t)c->sliding_window_pattern);
        plm_gguf_add_f32(g, "pocketlm.rope_local_base_freq", c->rope_local_base_freq);
        plm_gguf_add_f32(g, "pocketlm.query_pre_attn_scalar", c->query_pre_attn_scalar);
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

// more_bits: the layers where llama.cpp's _M mixes spend more bits (use_more_bits in
// llama-quant.cpp): the first and last eighth, and every third layer between
static int more_bits(int32_t i, int32_t n) {
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

static int64_t type_block(uint32_t type) {
    return type == PLM_GGML_Q4_K || type == PLM_GGML_Q5_K || type == PLM_GGML_Q6_K ? 256 : 32;
}

// tensor_type: the ggml type of tensor w in a file of type ft, as llama.cpp's
// llama_tensor_get_type chooses it for a Llama model without an importance matrix (tied: the
// model has no output.weight, so the embedding is the head), then its fallback for rows that the
// type's block does not divide (tensor_type_fallback).
static uint32_t tensor_type(const wref *w, plm_ftype ft, int tied, int32_t n_layers) {
    uint32_t t = ftypes[ft].type;
    if (!w->d->linear) return PLM_GGML_F32;
    if (ft <= PLM_FTYPE_BF16) return t;
    const char *g = w->d->gguf;
    const int mix = ft == PLM_FTYPE_Q4_K_M || ft == PLM_FTYPE_Q5_K_M;
    if (!strcmp(g, "output.weight") || (tied && !strcmp(g, "token_embd.weight")))
        t = w->cols % type_block(t) ? PLM_GGML_Q8_0 : t == PLM_GGML_Q8_0 ? t : PLM_GGML_Q6_K;
    else if (mix && (!strcmp(g, "blk.%d.attn_v.weight") || !strcmp(g, "blk.%d.ffn_down.weight")) &&
             more_bits(w->layer, n_layers))
        t = PLM_GGML_Q6_K;
    if (w->cols % type_block(t) == 0) return t;
    t = t == PLM_GGML_Q4_K ? PLM_GGML_Q5_0 : t == PLM_GGML_Q5_K ? PLM_GGML_Q5_1 : PLM_GGML_Q8_0;
    return w->cols % type_block(t) ? PLM_GGML_F16 : t;
}

static plm_status save_gguf(const plm_model *m, wref *w, int32_t n, const char *path, plm_ftype ft,
                            plm_error *err) {
    plm_gguf_writer *g;
    plm_status s = plm_gguf_writer_create(&g, err);
    if (s != PLM_OK) return s;
    s = gguf_meta(g, m, ft, err);
    const int tied = m->config.tie_word_embeddings;
    int32_t k = 0; // llama.cpp takes linear scaling from the keys (gguf_meta), not rope_freqs
    for (int32_t i = 0; i < n; i++)
        if (!(w[i].d->when == W_ROPE && m->config.rope_scaling.linear)) w[k++] = w[i];
    n = k;
    for (int32_t i = 0; i < n; i++) {
        int64_t ne[2] = {w[i].cols, w[i].rows}; // innermost first
        plm_gguf_add_tensor(g, w[i].gguf, w[i].d->linear ? 2 : 1, ne,
                            tensor_type(&w[i], ft, tied, m->config.num_hidden_layers));
    }
    save_ctx ctx = {w, 1, m->config.head_dim, 0.0f};
    if (s == PLM_OK) s = plm_gguf_write(g, path, fill_weight, &ctx, err);
    plm_gguf_writer_free(g);
    return s;
}

plm_status plm_model_save_ftype(const plm_model *m, const char *path, plm_ftype ftype,
                                plm_error *err) {
    if (!m || !path) return plm_fail(err, PLM_ERR_ARG, "plm_model_save: NULL argument");
    if ((unsigned)ftype >= PLM_FTYPE_COUNT)
        return plm_fail(err, PLM_ERR_ARG, "%s: unknown file type %d", path, (int)ftype);
    if (!plm_gguf_path(path) && ftype > PLM_FTYPE_BF16)
        return plm_fail(err, PLM_ERR_UNSUPPORTED,
                        "%s: HF directories hold f32, f16 or bf16 weights, not %s (use .gguf)",
                        path, ftypes[ftype].name);
    int32_t n;
    wref *w =
        plm_model_weight_list((plm_model *)(uintptr_t)m, &n); // the writers only read through it
    if (!w) return plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    plm_status s = plm_gguf_path(path) ? save_gguf(m, w, n, path, ftype, err)
                                       : save_hf(m, w, n, path, (plm_dtype)ftype, err);
    free(w);
    return s;
}

plm_status plm_model_save(const plm_model *m, const char *path, plm_dtype dtype, plm_error *err) {
    if ((unsigned)dtype > PLM_DTYPE_Q4_1)
        return plm_fail(err, PLM_ERR_ARG, "%s: unknown dtype %d", path ? path : "", (int)dtype);
    return plm_model_save_ftype(m, path, (plm_ftype)dtype, err);
}
