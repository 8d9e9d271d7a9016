// model_load.c: plm_model_load and its buffer variants: the config (HF config.json keys and
// tokenizer_config.json's chat template, or GGUF <arch>.* keys), the tokenizer, and every tensor of
// the weight table found in an HF safetensors set or a GGUF file, shape-checked against the config
// and converted into the one weight block (f32 or Q8_0); GGUF's Q/K row permutation (llama) is
// undone; HF's llama3 rope_scaling becomes the divisors GGUF holds; Gemma 3's HF norm weights w
// become the 1 + w GGUF holds. GGUF tensors are converted by a pool of threads; Q8_0 GGUF tensors
// can be loaded in place. Mirrors transformers' LlamaConfig, Qwen2Config, Qwen3Config and
// Gemma3TextConfig defaults and llama.cpp's convert_hf_to_gguf.py (<arch>.* keys).
#define _DEFAULT_SOURCE // madvise
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
#include "model_internal.h"
#include "ops.h"
#include "pool.h"
#include "quant.h"
#include "safetensors.h"

// ---- config ----

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

// hf_rope_scaling: config.json's rope_scaling into c->rope_scaling: null (or rope_type "default")
// for plain RoPE, rope_type "linear" with its factor, or "llama3" with its four numbers
// (transformers' _compute_linear_scaling_rope_parameters, _compute_llama3_parameters); any other
// type is refused.
static plm_status hf_rope_scaling(plm_config *c, const plm_json *j, const char *path,
                                  plm_error *err) {
    int32_t rs = plm_json_get(j, 0, "rope_scaling");
    if (rs < 0 || j->tok[rs].type == PLM_JSON_NULL) return PLM_OK;
    int32_t ty = plm_json_get(j, rs, "rope_type");
    if (ty < 0) ty = plm_json_get(j, rs, "type"); // the older key
    if (plm_json_eq(j, ty, "default")) return PLM_OK;
    char name[64] = "(none)";
    const int linear = plm_json_eq(j, ty, "linear");
    if (!linear && !plm_json_eq(j, ty, "llama3")) {
        plm_json_str(j, ty, name, sizeof name);
        return plm_fail(err, PLM_ERR_UNSUPPORTED,
                        "%s: rope_scaling rope_type '%s' is not supported (want linear, llama3 or "
                        "none)",
                        path, name);
    }
    const char *type = linear ? "linear" : "llama3";
    const struct {
        const char *key;
        float *out;
    } keys[] = {
        {"factor", &c->rope_scaling.factor},
        {"low_freq_factor", &c->rope_scaling.low_freq_factor},
        {"high_freq_factor", &c->rope_scaling.high_freq_factor},
    };
    double x;
    for (size_t i = 0; i < (linear ? 1 : sizeof keys / sizeof keys[0]); i++) {
        if (plm_json_num(j, plm_json_get(j, rs, keys[i].key), &x) != 0)
            return plm_fail(err, PLM_ERR_FORMAT, "%s: rope_scaling of type %s has no %s", path,
                            type, keys[i].key);
        *keys[i].out = (float)x;
    }
    int64_t n = 0;
    if (!linear && plm_json_int(j, plm_json_get(j, rs, "original_max_position_embeddings"), 1,
                                INT32_MAX, &n) != 0)
        return plm_fail(err, PLM_ERR_FORMAT,
                        "%s: rope_scaling of type llama3 has no original_max_position_embeddings",
                        path);
    c->rope_scaling.original_max_position_embeddings = (int32_t)n;
    c->rope_scaling.linear = linear;
    c->rope_freqs = 1; // the divisors, computed from these after the weights (model_load)
    return PLM_OK;
}

// hf_gemma3: what Gemma3TextConfig adds (its defaults where a key is absent): the sliding window
// and which layers have it (layer_types, else sliding_window_pattern as transformers 4.51 reads
// it), the local layers' RoPE base, the attention scale (a rope_scaling, linear on the global
// layers of the 4B and larger, is hf_rope_scaling's); refuses what pocketlm does not compute:
// soft-capping, biases, bidirectional attention.
static plm_status hf_gemma3(plm_config *c, const plm_json *j, const char *path, plm_error *err) {
    const char *null_keys[] = {"attn_logit_softcapping", "final_logit_softcapping"};
    for (size_t k = 0; k < sizeof null_keys / sizeof null_keys[0]; k++) {
        int32_t v = plm_json_get(j, 0, null_keys[k]);
        if (v >= 0 && j->tok[v].type != PLM_JSON_NULL)
            return plm_fail(err, PLM_ERR_UNSUPPORTED,
                            "%s: %s is set; pocketlm runs gemma3_text without it (want null)", path,
                            null_keys[k]);
    }
    const char *false_keys[] = {"attention_bias", "use_bidirectional_attention"};
    for (size_t k = 0; k < sizeof false_keys / sizeof false_keys[0]; k++)
        if (plm_json_bool(j, plm_json_get(j, 0, false_keys[k])) == 1)
            return plm_fail(err, PLM_ERR_UNSUPPORTED,
                            "%s: %s is true; pocketlm runs gemma3_text without it", path,
                            false_keys[k]);
    c->sliding_window = 4096, c->sliding_window_pattern = 6;
    c->rope_local_base_freq = 10000.0f, c->query_pre_attn_scalar = 256.0f;
    plm_status s = json_int_key(j, "sliding_window", 0, &c->sliding_window, path, err);
    if (s == PLM_OK && plm_json_get(j, 0, "sliding_window_pattern") < 0) // newer configs' name
        s = json_int_key(j, "_sliding_window_pattern", 0, &c->sliding_window_pattern, path, err);
    if (s == PLM_OK)
        s = json_int_key(j, "sliding_window_pattern", 0, &c->sliding_window_pattern, path, err);
    if (s != PLM_OK) return s;
    double x;
    if (plm_json_num(j, plm_json_get(j, 0, "rope_local_base_freq"), &x) == 0)
        c->rope_local_base_freq = (float)x;
    if (plm_json_num(j, plm_json_get(j, 0, "query_pre_attn_scalar"), &x) == 0)
        c->query_pre_attn_scalar = (float)x;
    int32_t lt = plm_json_get(j, 0, "layer_types"), n = lt >= 0 ? j->tok[lt].size : 0;
    if (lt >= 0 && j->tok[lt].type == PLM_JSON_ARRAY && n > 0) { // periodic: the last of the
        int32_t p = 0;                                           // first period is the global
        while (p < n && plm_json_eq(j, plm_json_at(j, lt, p), "sliding_attention")) p++;
        c->sliding_window_pattern = p + 1;
        for (int32_t l = 0; l < n; l++) {
            const char *kind = (l + 1) % (p + 1) ? "sliding_attention" : "full_attention";
            if (!plm_json_eq(j, plm_json_at(j, lt, l), kind))
                return plm_fail(err, PLM_ERR_UNSUPPORTED,
                                "%s: layer_types[%d] is not '%s': pocketlm runs layer_types of "
                                "one period (sliding layers then one full layer)",
                                path, l, kind);
        }
    }
    return PLM_OK;
}

// hf_check_arch: the family (model_type, or a class of architectures) into c->model_type with what
// it adds (Qwen2's q/k/v biases, Qwen3's and Gemma 3's q/k norms, a llama3 rope_scaling, Gemma 3's
// keys); refuses what pocketlm does not compute: another family or activation, an MLP or o_proj
// bias, Qwen's sliding windows.
static plm_status hf_check_arch(plm_config *c, const plm_json *j, const char *path,
                                plm_error *err) {
    int32_t mt = plm_json_get(j, 0, "model_type"), ar = plm_json_get(j, 0, "architectures");
    int a = 0;
    for (; a < N_ARCHS; a++) {
        int found = plm_json_eq(j, mt, plm_archs[a].model_type);
        for (int32_t k = 0; ar >= 0 && k < j->tok[ar].size; k++)
            found |= plm_json_eq(j, plm_json_at(j, ar, k), plm_archs[a].cls);
        if (found) break;
    }
    char name[64] = "(none)";
    if (a == N_ARCHS) {
        plm_json_str(j, mt, name, sizeof name);
        return plm_fail(err, PLM_ERR_UNSUPPORTED,
                        "%s: model_type '%s' is not supported (want llama, qwen2 or qwen3)", path,
                        name);
    }
    c->model_type = (plm_arch)a;
    c->attention_bias = c->model_type == PLM_ARCH_QWEN2; // Qwen2Attention: bias on q, k, v only
    c->qk_norm = c->model_type == PLM_ARCH_QWEN3 || c->model_type == PLM_ARCH_GEMMA3;
    const int gemma = c->model_type == PLM_ARCH_GEMMA3;
    const char *want = gemma ? "gelu_pytorch_tanh" : "silu";
    int32_t act = plm_json_get(j, 0, gemma ? "hidden_activation" : "hidden_act");
    if (act >= 0 && !plm_json_eq(j, act, want)) {
        plm_json_str(j, act, name, sizeof name);
        return plm_fail(err, PLM_ERR_UNSUPPORTED, "%s: %s '%s', want %s", path,
                        gemma ? "hidden_activation" : "hidden_act", name, want);
    }
    if (gemma) {
        plm_status s = hf_gemma3(c, j, path, err);
        return s == PLM_OK ? hf_rope_scaling(c, j, path, err) : s;
    }
    // Llama's and Qwen3's attention_bias also puts a bias on o_proj, which pocketlm does not have
    const char *off[] = {"attention_bias", "mlp_bias", "use_sliding_window"};
    for (int k = c->model_type == PLM_ARCH_QWEN2; k < 3; k++)
        if (plm_json_bool(j, plm_json_get(j, 0, off[k])) == 1)
            return plm_fail(err, PLM_ERR_UNSUPPORTED, "%s: %s is true; pocketlm runs %s without it",
                            path, off[k], plm_archs[a].model_type);
    return hf_rope_scaling(c, j, path, err);
}

// hf_config_parse: config.json text into c, with LlamaConfig's defaults (Qwen2Config's and
// Qwen3Config's are the same but for Qwen3's head_dim).
static plm_status hf_config_parse(plm_config *c, const plm_json *j, const char *path,
                                  plm_error *err) {
    if (j->tok[0].type != PLM_JSON_OBJECT)
        return plm_fail(err, PLM_ERR_FORMAT, "%s: not a JSON object", path);
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
    plm_status s = hf_check_arch(c, j, path, err);
    if (s == PLM_OK && c->model_type == PLM_ARCH_QWEN3) c->head_dim = 128; // Qwen3Config's default
    const int gemma = c->model_type == PLM_ARCH_GEMMA3;
    if (gemma) // Gemma3TextConfig's defaults
        c->head_dim = 256, c->rope_theta = 1e6f, c->max_position_embeddings = 131072;
    for (size_t i = 0; s == PLM_OK && i < sizeof ints / sizeof ints[0]; i++)
        s = json_int_key(j, ints[i].key, ints[i].required, ints[i].out, path, err);
    if (s != PLM_OK) return s;
    if (!c->num_key_value_heads) c->num_key_value_heads = c->num_attention_heads;
    if (!c->head_dim && c->num_attention_heads > 0)
        c->head_dim = c->hidden_size / c->num_attention_heads;
    double x;
    if (plm_json_num(j, plm_json_get(j, 0, "rms_norm_eps"), &x) == 0) c->rms_norm_eps = (float)x;
    if (plm_json_num(j, plm_json_get(j, 0, "rope_theta"), &x) == 0) c->rope_theta = (float)x;
    int tie = plm_json_bool(j, plm_json_get(j, 0, "tie_word_embeddings"));
    c->tie_word_embeddings = tie == 1 || (gemma && tie == -1); // Gemma3TextConfig ties by default
    return plm_config_check(c, path, err);
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

// gguf_config: general.architecture (llama, qwen2, qwen3 or gemma3) and its <arch>.* keys into
// m->config, as convert_hf_to_gguf.py writes them; the vocabulary size falls back to the token
// list. Gemma 3: what llama.cpp fixes in code rather than reads (every 6th layer global, local RoPE
// base 10000, attention scale head_dim^-0.5) unless pocketlm.* keys (model_save.c's gguf_meta)
// say otherwise. Also the names: general.name, and pocketlm.adapter (written by a merged export).
static plm_status gguf_config(plm_model *m, const plm_gguf *g, const char *path, plm_error *err) {
    plm_config *c = &m->config;
    plm_str arch = {"", 0}, rs;
    plm_gguf_get_str(g, "general.architecture", &arch);
    int a = 0;
    while (a < N_ARCHS &&
           !(arch.n == strlen(plm_archs[a].gguf) && !memcmp(arch.s, plm_archs[a].gguf, arch.n)))
        a++;
    if (a == N_ARCHS)
        return plm_fail(err, PLM_ERR_UNSUPPORTED,
                        "%s: general.architecture is '%.*s'; pocketlm runs llama, qwen2, qwen3 and "
                        "gemma3",
                        path, (int)(arch.n > 40 ? 40 : arch.n), arch.s);
    const char *an = plm_archs[a].gguf;
    const int gemma = a == PLM_ARCH_GEMMA3;
    char key[96];
    snprintf(key, sizeof key, "%s.rope.scaling.type", an);
    // llama.cpp's form of linear rope_scaling: these keys (llama3's is the rope_freqs tensor)
    const int has_type = plm_gguf_get_str(g, key, &rs) == 0;
    const int linear = has_type && rs.n == 6 && !memcmp(rs.s, "linear", 6);
    if (has_type && !linear && !(rs.n == 4 && !memcmp(rs.s, "none", 4)))
        return plm_fail(err, PLM_ERR_UNSUPPORTED, "%s: %s is '%.*s'; pocketlm runs none or linear",
                        path, key, (int)(rs.n > 40 ? 40 : rs.n), rs.s);
    const struct {
        const char *key; // after "<arch>." unless it starts with "tokenizer." or "pocketlm."
        int32_t *out;
        int required;
    } ints[] = {
        {"embedding_length", &c->hidden_size, 1},
        {"feed_forward_length", &c->intermediate_size, 1},
        {"block_count", &c->num_hidden_layers, 1},
        {"attention.head_count", &c->num_attention_heads, 1},
        {"attention.head_count_kv", &c->num_key_value_heads, 0},
        {"context_length", &c->max_position_embeddings, 0},
        {"vocab_size", &c->vocab_size, 0},
        {"attention.key_length", &c->head_dim, 0},
        {"attention.sliding_window", &c->sliding_window, gemma},
        {"pocketlm.sliding_window_pattern", &c->sliding_window_pattern, 0},
        {"tokenizer.ggml.bos_token_id", &c->bos_token_id, 0},
        {"tokenizer.ggml.eos_token_id", &c->eos_token_id, 0},
        {"tokenizer.ggml.padding_token_id", &m->pad_token_id, 0},
    };
    *c = (plm_config){.model_type = (plm_arch)a,
                      .max_position_embeddings = 2048,
                      .rms_norm_eps = 1e-5f,
                      .rope_theta = 10000.0f,
                      .attention_bias = a == PLM_ARCH_QWEN2,
                      .qk_norm = a == PLM_ARCH_QWEN3 || gemma,
                      .sliding_window_pattern = gemma ? 6 : 0,
                      .rope_local_base_freq = gemma ? 10000.0f : 0.0f,
                      // llama.cpp's form of llama3 rope_scaling: the divisors, not the parameters
                      .rope_freqs = plm_gguf_find_tensor(g, "rope_freqs.weight") != NULL,
                      .bos_token_id = -1,
                      .eos_token_id = -1};
    m->pad_token_id = -1;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int64_t v;
        if (!strncmp(ints[i].key, "tokenizer.", 10) || !strncmp(ints[i].key, "pocketlm.", 9))
            snprintf(key, sizeof key, "%s", ints[i].key);
        else snprintf(key, sizeof key, "%s.%s", an, ints[i].key);
        if (plm_gguf_get_int(g, key, &v) == 0 && v >= INT32_MIN && v <= INT32_MAX)
            *ints[i].out = (int32_t)v;
        else if (ints[i].required)
            return plm_fail(err, PLM_ERR_FORMAT, "%s: GGUF key %s is missing or not an integer",
                            path, key);
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
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", an);
    if (plm_gguf_get_float(g, key, &x) == 0) c->rms_norm_eps = (float)x;
    snprintf(key, sizeof key, "%s.rope.freq_base", an);
    if (plm_gguf_get_float(g, key, &x) == 0) c->rope_theta = (float)x;
    snprintf(key, sizeof key, "%s.rope.scaling.factor", an);
    if (linear && (c->rope_freqs || plm_gguf_get_float(g, key, &x) != 0))
        return plm_fail(err, PLM_ERR_FORMAT,
                        "%s: rope.scaling.type linear wants %s and no rope_freqs.weight", path,
                        key);
    if (linear) // the divisors, computed from the factor after the weights (model_load)
        c->rope_scaling = (plm_rope_scaling){.factor = (float)x, .linear = 1}, c->rope_freqs = 1;
    c->tie_word_embeddings = plm_gguf_find_tensor(g, "output.weight") == NULL;
    if (gemma && plm_gguf_get_float(g, "pocketlm.rope_local_base_freq", &x) == 0)
        c->rope_local_base_freq = (float)x;
    if (gemma && plm_gguf_get_float(g, "pocketlm.query_pre_attn_scalar", &x) == 0)
        c->query_pre_attn_scalar = (float)x;
    plm_str ct, name, ad;
    plm_status s = PLM_OK;
    if (plm_gguf_get_str(g, "tokenizer.chat_template", &ct) == 0)
        s = dup_str(&m->chat_template, ct.s, ct.n, err);
    if (s == PLM_OK && plm_gguf_get_str(g, "general.name", &name) == 0 && name.n)
        s = dup_str(&m->name, name.s, name.n, err);
    if (s == PLM_OK && plm_gguf_get_str(g, "pocketlm.adapter", &ad) == 0 && ad.n)
        s = dup_str(&m->adapter, ad.s, ad.n, err);
    return s == PLM_OK ? plm_config_check(c, path, err) : s;
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
// derived: the one row computed from the config, not read: rope_freqs from HF's rope_scaling (no
// HF tensor has it) or from a GGUF file's linear one (llama.cpp writes only llama3's as a tensor)
static int derived(const source *s, const wref *w, const plm_config *c) {
    return w->d->when == W_ROPE && (!s->is_gguf || c->rope_scaling.linear);
}

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
    // counted by ggml type, so that every GGUF type shows (Q5_0, Q4_K, ...)
    uint32_t gt = t->gg                            ? t->gg->type
                  : t->st->dtype == PLM_DTYPE_F16  ? PLM_GGML_F16
                  : t->st->dtype == PLM_DTYPE_BF16 ? PLM_GGML_BF16
                                                   : PLM_GGML_F32;
    if (gt < PLM_MODEL_FILE_TYPES) m->file_tensors[gt]++;
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
// file if read again). With AROUND more bytes on each side: on a fault Linux maps the cached pages
// around it too (fault-around, 64 KB), so a chunk's first read brings back pages of the rows before
// it that were dropped already; without the margins the file's pages piled up to 56 MB of the
// SmolLM2 Q4_1 file while it converted (peak RSS 210 MB, 1 thread; 171 MB with them).
#define AROUND ((size_t)64 << 10)
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
    size_t off = (size_t)((t->st ? t->st->data : t->gg->data) - map->data) + (size_t)r0 * row;
    size_t page = (size_t)sysconf(_SC_PAGESIZE), end = off + (size_t)n * row + AROUND;
    size_t a = (off > AROUND ? off - AROUND : 0) / page * page; // the map starts on a page
    end = end < map->size ? (end + page - 1) / page * page : map->size;
    if (end > a) madvise((void *)(uintptr_t)(map->data + a), end - a, MADV_DONTNEED);
#else
    (void)t, (void)s, (void)r0, (void)n;
#endif
}

// ---- load ----

#define CHUNK_ELEMS ((size_t)1 << 20) // f32 scratch for converting one piece of a tensor

// store_row: one f32 row x (cols) into row r of w's destination (quantized for Q8_0, Q4, Q5 and
// Q6_K mats, rounded to nearest even for F16 and BF16 ones: exact for a row of that type; tmp:
// scratch of 2 cols floats).
static void store_row(const wref *w, int64_t r, const float *x, float *tmp) {
    size_t cols = (size_t)w->cols;
    if (!w->d->linear) memcpy(*w->vec, x, cols * sizeof *x);
    else if (w->mat->dtype == PLM_DTYPE_F32) memcpy(w->mat->f32 + (size_t)r * cols, x, cols * 4);
    else if (plm_dtype_half(w->mat->dtype))
        plm_convert_from_f32((uint8_t *)(w->mat->h + (size_t)r * cols), x, cols, w->mat->dtype);
    else if (w->mat->dtype == PLM_DTYPE_Q8_0)
        plm_quantize_q8_0(w->mat->q + (size_t)r * cols, w->mat->d + (size_t)r * cols / PLM_QK, x,
                          cols);
    else
        plm_quant_row_mat(plm_isa_active(), PLM_GGML_F32, (const uint8_t *)x, w->mat, (size_t)r,
                          tmp);
}

// load_weight: convert w's tensor t a chunk of rows at a time through tmp (CHUNK_ELEMS or one row,
// then 2 cols floats for store_row), undoing GGUF's Q/K permutation by storing each row at its HF
// position.
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
                      tmp + (size_t)(i * w->cols), tmp + (size_t)(per * w->cols));
        if (st == PLM_OK) source_release(&t, s, r0, n);
    }
    // Gemma3RMSNorm multiplies by 1 + w: held as 1 + w, as GGUF files hold it (model.h)
    if (st == PLM_OK && !s->is_gguf && m->config.model_type == PLM_ARCH_GEMMA3 && norm_row(w->d))
        for (int64_t i = 0; i < w->cols; i++) (*w->vec)[i] += 1.0f;
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
    float *tmp;      // per thread: tmp_floats of scratch (2 cols)
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
        else if (plm_dtype_half(w->mat->dtype) &&
                 t->type == (w->mat->dtype == PLM_DTYPE_F16 ? PLM_GGML_F16 : PLM_GGML_BF16))
            memcpy(w->mat->h + hr * cols, src, cols * sizeof(uint16_t)); // kept as it is
        else if (plm_dtype_half(w->mat->dtype)) { // another type: through f32, rounded
            plm_quant_row_f32(j->isa, t->type, src, cols, tmp);
            plm_convert_from_f32((uint8_t *)(w->mat->h + hr * cols), tmp, cols, w->mat->dtype);
        } else if (w->mat->dtype == PLM_DTYPE_Q8_0)
            plm_quant_row_q8_0(j->isa, t->type, src, cols, w->mat->q + hr * cols,
                               w->mat->d + hr * cols / PLM_QK, tmp);
        else plm_quant_row_mat(j->isa, t->type, src, w->mat, hr, tmp);
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
        if (in[i] || !t[i].gg) continue; // in place, or derived
        const plm_gguf_tensor *g = t[i].gg;
        if (!plm_gguf_type_readable(g->type))
            return plm_fail(err, PLM_ERR_UNSUPPORTED,
                            "%s: tensor '%.*s' has type %s; pocketlm reads %s", s->path,
                            (int)g->name.n, g->name.s, plm_ggml_type_name(g->type),
                            PLM_GGUF_READ_TYPES);
        if ((size_t)w[i].cols > cols) cols = (size_t)w[i].cols;
        size_t per = CONV_CHUNK_BYTES / ((size_t)w[i].cols * 4) + 1; // rows a chunk
        n_chunks += ((size_t)w[i].rows + per - 1) / per;
    }
    plm_pool *pool = n_threads > 1 ? plm_pool_create(n_threads) : NULL; // NULL: run inline
    conv_job *j = plm_alloc(1, sizeof *j);
    conv_chunk *chunk = plm_alloc(n_chunks, sizeof *chunk);
    float *tmp = NULL;
    if (j) j->tmp_floats = (2 * cols + 15) / 16 * 16;
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
        for (int64_t r = 0; !in[i] && t[i].gg && r < w[i].rows; r += per)
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
// memory (w[i].dtype), Q8_0 in the file, and not overlapping the bytes of another such tensor (which the
// move would corrupt; a well-formed file has no overlaps). Tensors converted by copy are read
// before anything moves, so they may overlap. Returns the scratch bytes the q/k ones need to undo
// GGUF's row permutation (the largest of them), or SIZE_MAX when out of memory.
static size_t mark_inplace(char *in, const wref *w, const src_tensor *t, int32_t n) {
    span *sp = plm_alloc((size_t)n, sizeof *sp);
    if (!sp) return SIZE_MAX;
    int32_t k = 0;
    for (int32_t i = 0; i < n; i++)
        if (t[i].gg && w[i].d->linear && w[i].dtype == PLM_DTYPE_Q8_0 &&
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

// mem_dtype: the dtype in memory of a linear weight stored as t, for the dtype asked (AUTO: the
// file's own where a kernel exists, else the nearest one). Q6_K needs cols a multiple of 256 (as
// llama.cpp, Q8_0 instead); Q4_K and Q5_K too, and at most PLM_KQ_MAX_COLS (Q4_1 and Q5_1
// instead: a Q4_K/Q5_K tensor repacked exactly, quant.h); F16 and BF16 at most PLM_HALF_MAX_COLS
// (f32 instead).
static plm_dtype mem_dtype(plm_dtype asked, const src_tensor *t, int32_t cols) {
    if (asked == PLM_DTYPE_Q6_K) return cols % PLM_QK_K ? PLM_DTYPE_Q8_0 : asked;
    if (plm_dtype_kquant(asked))
        return cols % PLM_QK_K || cols > PLM_KQ_MAX_COLS ? plm_kq_blocks(asked) : asked;
    if (plm_dtype_half(asked)) return cols > PLM_HALF_MAX_COLS ? PLM_DTYPE_F32 : asked;
    if (asked != PLM_DTYPE_AUTO) return asked;
    if (t->st) // safetensors: F16 and BF16 stay, the rest is f32
        return plm_dtype_half((plm_dtype)t->st->dtype) ? mem_dtype((plm_dtype)t->st->dtype, t, cols)
                                                       : PLM_DTYPE_F32;
    switch (t->gg ? t->gg->type : PLM_GGML_F32) {
    case PLM_GGML_F32: return PLM_DTYPE_F32;
    case PLM_GGML_F16: return mem_dtype(PLM_DTYPE_F16, t, cols);
    case PLM_GGML_BF16: return mem_dtype(PLM_DTYPE_BF16, t, cols);
    case PLM_GGML_Q4_0: return PLM_DTYPE_Q4_0;
    case PLM_GGML_Q4_1: return PLM_DTYPE_Q4_1;
    case PLM_GGML_Q4_K: return mem_dtype(PLM_DTYPE_Q4_K, t, cols);
    case PLM_GGML_Q5_0: return PLM_DTYPE_Q5_0;
    case PLM_GGML_Q5_1: return PLM_DTYPE_Q5_1;
    case PLM_GGML_Q5_K: return mem_dtype(PLM_DTYPE_Q5_K, t, cols);
    case PLM_GGML_Q6_K: return mem_dtype(PLM_DTYPE_Q6_K, t, cols);
    default: return PLM_DTYPE_Q8_0; // Q8_0 itself and the other K-quants
    }
}

// main_dtype: the dtype in memory of most of the linear weights' elements (plm_model_dtype).
static plm_dtype main_dtype(const wref *w, int32_t n) {
    size_t count[PLM_DTYPE_Q5_K + 1] = {0}; // AUTO's stays 0
    int best = PLM_DTYPE_F32;
    for (int32_t i = 0; i < n; i++)
        if (w[i].d->linear) count[w[i].mat->dtype] += (size_t)(w[i].rows * w[i].cols);
    for (int d = 0; d <= PLM_DTYPE_Q5_K; d++)
        if (count[d] > count[best]) best = d;
    return (plm_dtype)best;
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
    if (dtype != PLM_DTYPE_F32 && dtype != PLM_DTYPE_Q8_0 && !plm_dtype_nibbles(dtype) &&
        dtype != PLM_DTYPE_Q6_K && !plm_dtype_half(dtype) && dtype != PLM_DTYPE_AUTO)
        return plm_fail(err, PLM_ERR_ARG,
                        "plm_model_load: in-memory dtype %s, want f32, f16, bf16, q8_0, q4_0, "
                        "q4_1, q5_0, q5_1, q6_k, q4_k, q5_k or auto",
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
    plm_status st = source_open(&s, m, path, buf, size, err);
    if (st != PLM_OK) goto fail;
    m->layers = plm_alloc((size_t)m->config.num_hidden_layers, sizeof *m->layers);
    w = m->layers ? plm_model_weight_list(m, &n) : NULL;
    t = w ? plm_alloc((size_t)n, sizeof *t) : NULL;
    in = t ? plm_alloc((size_t)n, 1) : NULL;
    if (!in) {
        st = plm_fail(err, PLM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int32_t i = 0; st == PLM_OK && i < n; i++) // no tensor of a derived row (t[i] stays 0)
        st = derived(&s, &w[i], &m->config) ? PLM_OK : source_find(&s, &w[i], &t[i], m, err);
    if (st != PLM_OK) goto fail;
    size_t max_cols = 0;
    for (int32_t i = 0; i < n; i++) {
        if (w[i].d->linear) w[i].dtype = mem_dtype(dtype, &t[i], w[i].cols);
        if ((size_t)w[i].cols > max_cols) max_cols = (size_t)w[i].cols;
    }
    if (file) perm_bytes = mark_inplace(in, w, t, n);
    if (!s.is_gguf) // CHUNK_ELEMS or one row, then store_row's 2 cols
        tmp = plm_alloc((CHUNK_ELEMS > max_cols ? CHUNK_ELEMS : max_cols) + 2 * max_cols,
                        sizeof *tmp);
    if (perm_bytes && perm_bytes != SIZE_MAX) perm = malloc(perm_bytes);
    m->block_bytes = plm_model_layout(w, n, in, NULL);
    if ((tmp || s.is_gguf) && perm_bytes != SIZE_MAX && (perm || !perm_bytes))
        m->block = plm_alloc_big(m->block_bytes);
    if (!m->block) {
        st = plm_fail(err, PLM_ERR_NOMEM, "%s: out of memory for %zu bytes of weights", path,
                      m->block_bytes);
        goto fail;
    }
    plm_model_layout(w, n, in, m->block);
    m->dtype = main_dtype(w, n);
    if (s.is_gguf) st = load_gguf(m, &s, w, t, in, n, load_threads(params), err);
    for (int32_t i = 0; st == PLM_OK && i < n; i++)
        if (derived(&s, &w[i], &m->config))
            plm_rope_divisors(*w[i].vec, m->config.head_dim, m->config.rope_theta,
                              &m->config.rope_scaling);
        else if (!s.is_gguf) st = load_weight(m, &s, &w[i], &t[i], tmp, err);
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
