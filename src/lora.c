// lora.c: plm_lora, a LoRA adapter (Hu et al. 2021) in Hugging Face PEFT's format: creation with
// PEFT's init, adapter_config.json + adapter_model.safetensors load and save, and the merge of an
// adapter into a new f32 model. The run-time use of an adapter is layers.c's (linear, embed, head).
// PEFT's names (peft >= 0.15, LoraConfig + trainable_token_indices):
//   base_model.model.model.layers.{l}.self_attn.q_proj.lora_A.weight   (R, in)
//   base_model.model.model.layers.{l}.self_attn.q_proj.lora_B.weight   (out, R)
//   base_model.model.model.embed_tokens.token_adapter.trainable_tokens_delta   (n_tokens, C)
// The "delta" holds the rows' full values (TrainableTokensLayer replaces rows with index_copy; it
// does not add). With tied embeddings PEFT wraps lm_head with a tied adapter that saves nothing.
#define _POSIX_C_SOURCE 200809L // strdup, unlink
#include "lora.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
#include "model.h"
#include "rng.h"
#include "safetensors.h"
#include "tokenizer.h"

// ---- PEFT's names ----

#define PEFT_PREFIX "base_model.model.model."
#define PEFT_TOKENS PEFT_PREFIX "embed_tokens.token_adapter.trainable_tokens_delta"

// peft_name: PEFT's key of A (ab = 'A') or B of target t in layer l.
static void peft_name(char *out, size_t cap, int32_t l, plm_lora_target t, char ab) {
    snprintf(out, cap, PEFT_PREFIX "layers.%d.%s.%s.lora_%c.weight", l, plm_lora_targets[t].parent,
             plm_lora_targets[t].name, ab);
}

// ---- create and free ----

void plm_lora_free(plm_lora *l) {
    if (!l) return;
    free(l->pairs);
    free(l->token_ids);
    plm_tokenizer_free(l->tokenizer);
    plm_free_aligned(l->block);
    free(l);
}

// check_shape: rank, targets and token ids fit a base of config cfg.
static plm_status check_shape(const plm_config *cfg, int32_t rank, uint32_t targets,
                              const int32_t *ids, int32_t n, int32_t vocab_size, plm_error *err) {
    if (rank < 1 || rank > 1 << 16)
        return plm_fail(err, PLM_ERR_ARG, "LoRA rank %d: want 1 .. %d", rank, 1 << 16);
    if (!targets || targets >> PLM_LORA_N_TARGETS)
        return plm_fail(err, PLM_ERR_ARG,
                        "LoRA targets 0x%x: want a non-empty set of the %d "
                        "linear layers",
                        targets, PLM_LORA_N_TARGETS);
    if (n < 0 || (n > 0 && !ids))
        return plm_fail(err, PLM_ERR_ARG, "LoRA: %d trainable tokens without ids", n);
    for (int32_t k = 0; k < n; k++) {
        if (ids[k] < 0 || (k > 0 && ids[k] <= ids[k - 1]))
            return plm_fail(err, PLM_ERR_ARG,
                            "LoRA token id %d at index %d: ids must be >= 0, "
                            "unique and ascending",
                            ids[k], k);
        if (ids[k] >= vocab_size)
            return plm_fail(err, PLM_ERR_ARG, "LoRA token id %d: not below vocab_size %d", ids[k],
                            vocab_size);
    }
    if (vocab_size < cfg->vocab_size || vocab_size > 1 << 24)
        return plm_fail(err, PLM_ERR_ARG, "LoRA vocab_size %d: want %d (the base's) .. %d",
                        vocab_size, cfg->vocab_size, 1 << 24);
    if (vocab_size > cfg->vocab_size && !cfg->tie_word_embeddings)
        return plm_fail(
            err, PLM_ERR_UNSUPPORTED,
            "LoRA: tokens beyond the base vocabulary (%d > %d) on a model with an untied "
            "lm_head: its new rows would need their own training",
            vocab_size, cfg->vocab_size);
    return PLM_OK;
}

// lora_alloc: an adapter with zeroed A, B and token rows laid out in one block.
static plm_status lora_alloc(plm_lora **out, const plm_config *cfg, int32_t rank, uint32_t targets,
                             int32_t n_tokens, int32_t vocab_size, plm_error *err) {
    int32_t L = cfg->num_hidden_layers, C = cfg->hidden_size, o, in;
    size_t R = (size_t)rank, floats = (size_t)n_tokens * (size_t)C;
    for (int t = 0; t < PLM_LORA_N_TARGETS; t++)
        if (targets >> t & 1)
            plm_lora_target_shape(cfg, (plm_lora_target)t, &o, &in),
                floats += (size_t)L * R * (size_t)(o + in);
    plm_lora *l = plm_alloc(1, sizeof *l);
    if (l) {
        l->pairs = plm_alloc((size_t)L * PLM_LORA_N_TARGETS, sizeof *l->pairs);
        l->token_ids = plm_alloc(n_tokens ? (size_t)n_tokens : 1, sizeof *l->token_ids);
        l->block = plm_alloc_aligned(floats ? floats : 1, sizeof(float));
    }
    if (!l || !l->pairs || !l->token_ids || !l->block) {
        plm_lora_free(l);
        return plm_fail(err, PLM_ERR_NOMEM, "out of memory for a LoRA adapter of %zu floats",
                        floats);
    }
    *l = (plm_lora){.rank = rank,
                    .alpha = (float)rank,
                    .targets = targets,
                    .n_layers = L,
                    .hidden_size = C,
                    .pairs = l->pairs,
                    .n_tokens = n_tokens,
                    .token_ids = l->token_ids,
                    .vocab_size = vocab_size,
                    .block = l->block};
    for (int t = 0; t < PLM_LORA_N_TARGETS; t++)
        plm_lora_target_shape(cfg, (plm_lora_target)t, &l->shape[t][0], &l->shape[t][1]);
    float *p = l->block;
    for (int32_t layer = 0; layer < L; layer++)
        for (int t = 0; t < PLM_LORA_N_TARGETS; t++) {
            if (!(targets >> t & 1)) continue;
            o = l->shape[t][0], in = l->shape[t][1];
            plm_lora_pair *pr = &l->pairs[layer * PLM_LORA_N_TARGETS + t];
            pr->A = p, p += R * (size_t)in;
            pr->B = p, p += (size_t)o * R;
        }
    l->token_rows = p;
    *out = l;
    return PLM_OK;
}

plm_status plm_lora_create(plm_lora **out, const plm_config *cfg, int32_t rank, float alpha,
                           float dropout, uint32_t targets, const int32_t *token_ids,
                           int32_t n_tokens, const float *init_rows, int32_t vocab_size,
                           const plm_tokenizer *tok, uint64_t seed, plm_error *err) {
    if (!out || !cfg) return plm_fail(err, PLM_ERR_ARG, "plm_lora_create: NULL argument");
    *out = NULL;
    if (n_tokens > 0 && !init_rows)
        return plm_fail(err, PLM_ERR_ARG, "plm_lora_create: %d tokens without init_rows", n_tokens);
    if (!(alpha > 0.0f) || !(dropout >= 0.0f && dropout < 1.0f))
        return plm_fail(err, PLM_ERR_ARG, "LoRA alpha %g (want > 0), dropout %g (want [0, 1))",
                        (double)alpha, (double)dropout);
    plm_status st = check_shape(cfg, rank, targets, token_ids, n_tokens, vocab_size, err);
    plm_lora *l = NULL;
    if (st == PLM_OK) st = lora_alloc(&l, cfg, rank, targets, n_tokens, vocab_size, err);
    if (st != PLM_OK) return st;
    l->alpha = alpha;
    l->dropout = dropout;
    // PEFT: nn.init.kaiming_uniform_(lora_A, a=sqrt(5)) is U(-1/sqrt(in), 1/sqrt(in)); B = 0
    uint64_t state = seed ? seed : RNG_GOLDEN; // xorshift64 needs a non-zero state
    for (int32_t i = 0; i < l->n_layers * PLM_LORA_N_TARGETS; i++) {
        if (!l->pairs[i].A) continue;
        int32_t in = l->shape[i % PLM_LORA_N_TARGETS][1];
        float bound = 1.0f / sqrtf((float)in);
        for (size_t k = 0; k < (size_t)rank * (size_t)in; k++) {
            float u = rng_unit(rng_xorshift64(&state)); // [0, 1)
            l->pairs[i].A[k] = (2.0f * u - 1.0f) * bound;
        }
    }
    if (n_tokens > 0) {
        memcpy(l->token_ids, token_ids, (size_t)n_tokens * sizeof *token_ids);
        memcpy(l->token_rows, init_rows,
               (size_t)n_tokens * (size_t)cfg->hidden_size * sizeof(float));
    }
    if (tok) st = plm_tokenizer_add_tokens(&l->tokenizer, tok, NULL, 0, 0, err);
    if (st != PLM_OK) plm_lora_free(l);
    else *out = l;
    return st;
}

plm_mat plm_lora_mat_a(const plm_lora *l, int32_t layer, plm_lora_target t) {
    return (plm_mat){.dtype = PLM_DTYPE_F32,
                     .rows = l->rank,
                     .cols = l->shape[t][1],
                     .f32 = l->pairs[layer * PLM_LORA_N_TARGETS + t].A};
}

plm_mat plm_lora_mat_b(const plm_lora *l, int32_t layer, plm_lora_target t) {
    return (plm_mat){.dtype = PLM_DTYPE_F32,
                     .rows = l->shape[t][0],
                     .cols = l->rank,
                     .f32 = l->pairs[layer * PLM_LORA_N_TARGETS + t].B};
}

const plm_tokenizer *plm_lora_tokenizer(const plm_lora *l) {
    return l ? l->tokenizer : NULL;
}

// ---- adapter_config.json ----

// What adapter_config.json says, before the tensors are read.
typedef struct {
    int32_t rank;
    float alpha, dropout;
    uint32_t targets;
    int32_t n_tokens;
    int32_t *token_ids; // (n_tokens) in the config's order, which is the order of the delta's rows
    char base_model[256];
} adapter_config;

// config_targets: target_modules as a list of names, one name, or "all-linear".
static plm_status config_targets(const plm_json *j, int32_t v, uint32_t *out, const char *path,
                                 plm_error *err) {
    int is_list = v >= 0 && j->tok[v].type == PLM_JSON_ARRAY;
    if (v < 0 || (!is_list && j->tok[v].type != PLM_JSON_STRING))
        return plm_fail(err, PLM_ERR_FORMAT, "%s: target_modules: want a list of module names",
                        path);
    *out = 0;
    for (int32_t k = 0; k < (is_list ? j->tok[v].size : 1); k++) {
        int32_t e = is_list ? plm_json_at(j, v, k) : v;
        char name[64] = "";
        int64_t n = plm_json_str(j, e, name, sizeof name);
        if (n < 0)
            return plm_fail(err, PLM_ERR_FORMAT, "%s: target_modules[%d] is not a string", path, k);
        uint32_t t = n < (int64_t)sizeof name ? plm_lora_target_parse(name, (size_t)n) : 0;
        if (!t)
            return plm_fail(err, PLM_ERR_UNSUPPORTED,
                            "%s: target module '%s': pocketlm adapts q_proj, k_proj, v_proj, "
                            "o_proj, gate_proj, up_proj, down_proj (or \"all-linear\")",
                            path, name);
        *out |= t;
    }
    if (!*out) return plm_fail(err, PLM_ERR_FORMAT, "%s: target_modules is empty", path);
    return PLM_OK;
}

// config_tokens: trainable_token_indices: null, a list of ids, or {"embed_tokens": [ids]}.
static plm_status config_tokens(const plm_json *j, int32_t v, adapter_config *c, const char *path,
                                plm_error *err) {
    if (v < 0 || j->tok[v].type == PLM_JSON_NULL) return PLM_OK;
    if (j->tok[v].type == PLM_JSON_OBJECT) {
        int32_t key = v + 1; // the object's only member must name the input embedding
        if (j->tok[v].size != 1 || !plm_json_eq(j, key, "embed_tokens"))
            return plm_fail(err, PLM_ERR_UNSUPPORTED,
                            "%s: trainable_token_indices: pocketlm "
                            "trains rows of embed_tokens only, want a list or {\"embed_tokens\": "
                            "[...]}",
                            path);
        v = key + 1;
    }
    if (j->tok[v].type != PLM_JSON_ARRAY)
        return plm_fail(err, PLM_ERR_FORMAT, "%s: trainable_token_indices: want a list of ids",
                        path);
    c->n_tokens = j->tok[v].size;
    c->token_ids = plm_alloc(c->n_tokens ? (size_t)c->n_tokens : 1, sizeof *c->token_ids);
    if (!c->token_ids) return plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    for (int32_t k = 0; k < c->n_tokens; k++) {
        int64_t id;
        if (plm_json_int(j, plm_json_at(j, v, k), 0, (1 << 24) - 1, &id))
            return plm_fail(err, PLM_ERR_FORMAT,
                            "%s: trainable_token_indices[%d]: want an id in "
                            "[0, %d)",
                            path, k, 1 << 24);
        c->token_ids[k] = (int32_t)id;
    }
    return PLM_OK;
}

// config_unsupported: options that change the math pocketlm does not implement.
static plm_status config_unsupported(const plm_json *j, const char *path, plm_error *err) {
    static const char *const must_be_false[] = {"fan_in_fan_out", "use_rslora", "use_dora",
                                                "lora_bias"};
    static const char *const must_be_empty[] = {"rank_pattern", "alpha_pattern", "modules_to_save",
                                                "layers_to_transform", "layer_replication"};
    for (size_t i = 0; i < sizeof must_be_false / sizeof *must_be_false; i++) {
        int32_t v = plm_json_get(j, 0, must_be_false[i]);
        if (v >= 0 && j->tok[v].type != PLM_JSON_NULL && plm_json_bool(j, v) != 0)
            return plm_fail(err, PLM_ERR_UNSUPPORTED, "%s: %s must be false", path,
                            must_be_false[i]);
    }
    for (size_t i = 0; i < sizeof must_be_empty / sizeof *must_be_empty; i++) {
        int32_t v = plm_json_get(j, 0, must_be_empty[i]);
        if (v >= 0 && j->tok[v].type != PLM_JSON_NULL && j->tok[v].size != 0)
            return plm_fail(err, PLM_ERR_UNSUPPORTED, "%s: %s is set; pocketlm supports none", path,
                            must_be_empty[i]);
    }
    int32_t b = plm_json_get(j, 0, "bias");
    if (b >= 0 && !plm_json_eq(j, b, "none"))
        return plm_fail(err, PLM_ERR_UNSUPPORTED, "%s: bias must be \"none\"", path);
    return PLM_OK;
}

static plm_status config_parse(adapter_config *c, const plm_json *j, const char *path,
                               plm_error *err) {
    int64_t r;
    double alpha, dropout = 0.0;
    if (j->tok[0].type != PLM_JSON_OBJECT)
        return plm_fail(err, PLM_ERR_FORMAT, "%s: want a JSON object", path);
    int32_t v = plm_json_get(j, 0, "peft_type");
    if (!plm_json_eq(j, v, "LORA")) {
        char got[32] = "(missing)";
        plm_json_str(j, v, got, sizeof got);
        return plm_fail(err, PLM_ERR_UNSUPPORTED, "%s: peft_type '%s', want \"LORA\"", path, got);
    }
    if (plm_json_int(j, plm_json_get(j, 0, "r"), 1, 1 << 16, &r))
        return plm_fail(err, PLM_ERR_FORMAT, "%s: r: want an integer rank in [1, %d]", path,
                        1 << 16);
    if (plm_json_num(j, plm_json_get(j, 0, "lora_alpha"), &alpha) || !(alpha > 0.0))
        return plm_fail(err, PLM_ERR_FORMAT, "%s: lora_alpha: want a number > 0", path);
    v = plm_json_get(j, 0, "lora_dropout");
    if (v >= 0 && (plm_json_num(j, v, &dropout) || !(dropout >= 0.0 && dropout < 1.0)))
        return plm_fail(err, PLM_ERR_FORMAT, "%s: lora_dropout: want a number in [0, 1)", path);
    c->rank = (int32_t)r, c->alpha = (float)alpha, c->dropout = (float)dropout;
    plm_status st = config_unsupported(j, path, err);
    if (st == PLM_OK)
        st = config_targets(j, plm_json_get(j, 0, "target_modules"), &c->targets, path, err);
    if (st == PLM_OK)
        st = config_tokens(j, plm_json_get(j, 0, "trainable_token_indices"), c, path, err);
    v = plm_json_get(j, 0, "base_model_name_or_path");
    if (v >= 0 &&
        plm_json_str(j, v, c->base_model, sizeof c->base_model) >= (int64_t)sizeof c->base_model)
        c->base_model[0] = 0; // too long to keep: written back as null
    return st;
}

static plm_status config_load(adapter_config *c, const char *dir, plm_error *err) {
    char path[4096];
    if (plm_path_join(path, sizeof path, dir, "adapter_config.json"))
        return plm_fail(err, PLM_ERR_ARG, "%s: path too long", dir);
    char *text = NULL;
    size_t len = 0;
    plm_json j = {0};
    plm_status st = plm_file_read(path, &text, &len, err);
    if (st == PLM_OK) st = plm_json_parse(&j, text, len, path, err);
    if (st == PLM_OK) st = config_parse(c, &j, path, err);
    plm_json_free(&j);
    free(text);
    return st;
}

// ---- adapter_model.safetensors ----

// parse_key: the layer, target and A/B of a PEFT LoRA key (the inverse of peft_name); 0 on
// success, -1 for any other name.
static int parse_key(const char *name, int32_t *layer, plm_lora_target *t, char *ab) {
    const char *p = PEFT_PREFIX "layers.";
    if (strncmp(name, p, strlen(p))) return -1;
    char *end;
    long l = strtol(name + strlen(p), &end, 10);
    if (end == name + strlen(p) || *end != '.' || l < 0 || l > 1 << 20) return -1;
    for (int k = 0; k < PLM_LORA_N_TARGETS; k++)
        for (char c = 'A'; c <= 'B'; c++) {
            char want[160];
            peft_name(want, sizeof want, (int32_t)l, (plm_lora_target)k, c);
            if (strcmp(name, want)) continue;
            *layer = (int32_t)l, *t = (plm_lora_target)k, *ab = c;
            return 0;
        }
    return -1;
}

// read_tensor: tensor x of shape (rows, cols) into out, the shape checked first.
static plm_status read_tensor(const plm_st_tensor *x, int64_t rows, int64_t cols, float *out,
                              const char *path, plm_error *err) {
    if (x->n_dims != 2 || x->shape[0] != rows || x->shape[1] != cols) {
        char got[64] = "[";
        for (int32_t i = 0; i < x->n_dims && strlen(got) < 40; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "",
                     (long long)x->shape[i]);
        return plm_fail(err, PLM_ERR_FORMAT,
                        "%s: tensor '%s' has shape %s], want [%lld, %lld] "
                        "from adapter_config.json and the base model",
                        path, x->name, got, (long long)rows, (long long)cols);
    }
    plm_status st = plm_st_tensor_to_f32(x, 0, x->n_elems, out, err);
    if (st != PLM_OK && err) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        plm_fail(err, st, "%s: %s", path, msg);
    }
    return st;
}

// token_rows: the trainable_tokens_delta (rows in the config's id order) into l's ascending order.
static plm_status token_rows(plm_lora *l, const adapter_config *c, const plm_st_tensor *x,
                             const char *path, plm_error *err) {
    size_t C = (size_t)l->hidden_size;
    float *tmp = plm_alloc((size_t)c->n_tokens * C + 1, sizeof *tmp);
    if (!tmp) return plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    plm_status st = read_tensor(x, c->n_tokens, (int64_t)C, tmp, path, err);
    for (int32_t k = 0; st == PLM_OK && k < l->n_tokens; k++) {
        int32_t src = 0;
        while (c->token_ids[src] != l->token_ids[k]) src++;
        memcpy(l->token_rows + (size_t)k * C, tmp + (size_t)src * C, C * sizeof *tmp);
    }
    free(tmp);
    return st;
}

// load_tensors: every tensor of the file into l; unknown and missing names are errors.
static plm_status load_tensors(plm_lora *l, const adapter_config *c, const plm_safetensors *f,
                               const char *path, plm_error *err) {
    int32_t L = l->n_layers, R = l->rank;
    uint8_t *seen = plm_alloc((size_t)L * PLM_LORA_N_TARGETS, 1);
    if (!seen) return plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    plm_status st = PLM_OK;
    int tokens_seen = 0;
    for (int32_t i = 0; st == PLM_OK && i < f->n; i++) {
        const plm_st_tensor *x = &f->tensors[i];
        int32_t layer;
        plm_lora_target t;
        char ab;
        if (!strcmp(x->name, PEFT_TOKENS) && c->n_tokens > 0) {
            st = token_rows(l, c, x, path, err);
            tokens_seen = 1;
            continue;
        }
        if (parse_key(x->name, &layer, &t, &ab) || layer >= L || !(l->targets >> t & 1)) {
            st = plm_fail(err, PLM_ERR_FORMAT,
                          "%s: tensor '%s' matches no LoRA target of "
                          "adapter_config.json (r %d, %d layers, target_modules 0x%x%s)",
                          path, x->name, R, L, l->targets,
                          c->n_tokens ? "" : ", no trainable tokens");
            break;
        }
        int32_t o = l->shape[t][0], in = l->shape[t][1];
        plm_lora_pair *p = &l->pairs[layer * PLM_LORA_N_TARGETS + t];
        seen[layer * PLM_LORA_N_TARGETS + t] |= ab == 'A' ? 1 : 2;
        st = ab == 'A' ? read_tensor(x, R, in, p->A, path, err)
                       : read_tensor(x, o, R, p->B, path, err);
    }
    if (st == PLM_OK && c->n_tokens > 0 && !tokens_seen)
        st = plm_fail(err, PLM_ERR_FORMAT,
                      "%s: tensor '%s' is missing (adapter_config.json lists "
                      "%d trainable tokens)",
                      path, PEFT_TOKENS, c->n_tokens);
    for (int32_t i = 0; st == PLM_OK && i < L * PLM_LORA_N_TARGETS; i++) {
        if (!(l->targets >> (i % PLM_LORA_N_TARGETS) & 1) || seen[i] == 3) continue;
        char name[128];
        peft_name(name, sizeof name, i / PLM_LORA_N_TARGETS,
                  (plm_lora_target)(i % PLM_LORA_N_TARGETS), seen[i] & 1 ? 'B' : 'A');
        st = plm_fail(err, PLM_ERR_FORMAT, "%s: tensor '%s' is missing", path, name);
    }
    free(seen);
    return st;
}

// ---- load ----

static int cmp_id(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

// adapter_tokenizer: dir/tokenizer.json, when present, as l's tokenizer; it must fit the vocabulary.
static plm_status adapter_tokenizer(plm_lora *l, const char *dir, plm_error *err) {
    char path[4096];
    if (plm_path_join(path, sizeof path, dir, "tokenizer.json") || !plm_path_exists(path))
        return PLM_OK;
    plm_status st = plm_tokenizer_load(&l->tokenizer, path, err);
    if (st == PLM_OK && plm_tokenizer_n_vocab(l->tokenizer) > l->vocab_size)
        st = plm_fail(err, PLM_ERR_FORMAT,
                      "%s: %d tokens, but the adapter has embedding rows for "
                      "%d (the base's vocabulary and trainable_token_indices)",
                      path, plm_tokenizer_n_vocab(l->tokenizer), l->vocab_size);
    return st;
}

// dir_name: the last component of the path dir ("models/paws-lora/" -> "paws-lora") into out
// (cap bytes; a longer name is cut, at a UTF-8 character boundary).
static void dir_name(char *out, size_t cap, const char *dir) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && dir[b - 1] != '/') b--;
    size_t k = n - b < cap - 1 ? n - b : cap - 1;
    while (k > 0 && k < n - b && ((unsigned char)dir[b + k] & 0xC0) == 0x80) k--;
    memcpy(out, dir + b, k);
    out[k] = 0;
}

plm_status plm_lora_load(plm_lora **out, const char *dir, const plm_model *base, plm_error *err) {
    if (!out || !dir || !base) return plm_fail(err, PLM_ERR_ARG, "plm_lora_load: NULL argument");
    *out = NULL;
    const plm_config *cfg = &base->config;
    adapter_config c = {0};
    plm_safetensors f = {0};
    plm_lora *l = NULL;
    char path[4096];
    plm_status st = config_load(&c, dir, err);
    int32_t *sorted = c.n_tokens ? plm_alloc((size_t)c.n_tokens, sizeof *sorted) : NULL;
    if (st == PLM_OK && c.n_tokens && !sorted) st = plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    int32_t V = cfg->vocab_size;
    for (int32_t k = 0; st == PLM_OK && k < c.n_tokens; k++) {
        sorted[k] = c.token_ids[k];
        if (sorted[k] >= V) V = sorted[k] + 1;
    }
    if (sorted) qsort(sorted, (size_t)c.n_tokens, sizeof *sorted, cmp_id);
    if (st == PLM_OK) st = check_shape(cfg, c.rank, c.targets, sorted, c.n_tokens, V, err);
    if (st == PLM_OK) st = lora_alloc(&l, cfg, c.rank, c.targets, c.n_tokens, V, err);
    if (st == PLM_OK) {
        l->alpha = c.alpha, l->dropout = c.dropout;
        memcpy(l->base_model, c.base_model, sizeof l->base_model);
        dir_name(l->name, sizeof l->name, dir);
        if (c.n_tokens) memcpy(l->token_ids, sorted, (size_t)c.n_tokens * sizeof *sorted);
        if (plm_path_join(path, sizeof path, dir, "adapter_model.safetensors"))
            st = plm_fail(err, PLM_ERR_ARG, "%s: path too long", dir);
    }
    if (st == PLM_OK) st = plm_safetensors_open(&f, path, err);
    if (st == PLM_OK) st = load_tensors(l, &c, &f, path, err);
    if (st == PLM_OK) st = adapter_tokenizer(l, dir, err);
    plm_safetensors_free(&f);
    free(sorted);
    free(c.token_ids);
    if (st != PLM_OK) plm_lora_free(l);
    else *out = l;
    return st;
}

// ---- save ----

// write_number: v as Python's json writes a float: the shortest text that reads back ("0.05",
// "0.0"), or an integer when as_int and v is whole (PEFT's lora_alpha is an int by default).
static plm_status write_number(plm_writer *w, const char *key, float v, int as_int,
                               plm_error *err) {
    char s[32];
    if (as_int && v == (float)(int32_t)v) snprintf(s, sizeof s, "%d", (int32_t)v);
    else {
        for (int p = 1; p <= 9; p++)
            if (snprintf(s, sizeof s, "%.*g", p, (double)v), strtof(s, NULL) == v) break;
        if (!strpbrk(s, ".e")) strcat(s, ".0");
    }
    return plm_writer_printf(w, err, "  \"%s\": %s,\n", key, s);
}

// write_config_body: the keys of adapter_config.json in PEFT's order (json.dumps sort_keys=True).
static plm_status write_config_body(const plm_lora *l, plm_writer *w, plm_error *err) {
    plm_status st = plm_writer_printf(w, err,
                                      "{\n  \"alpha_pattern\": {},\n  \"auto_mapping\": "
                                      "null,\n  \"base_model_name_or_path\": ");
    if (st == PLM_OK && l->base_model[0])
        st = plm_json_write_str(w, l->base_model, strlen(l->base_model), err);
    else if (st == PLM_OK) st = plm_writer_printf(w, err, "null");
    if (st == PLM_OK)
        st = plm_writer_printf(w, err,
                               ",\n  \"bias\": \"none\",\n  \"fan_in_fan_out\": false,\n"
                               "  \"inference_mode\": true,\n  \"init_lora_weights\": true,\n"
                               "  \"layers_pattern\": null,\n  \"layers_to_transform\": null,\n");
    if (st == PLM_OK) st = write_number(w, "lora_alpha", l->alpha, 1, err);
    if (st == PLM_OK) st = write_number(w, "lora_dropout", l->dropout, 0, err);
    if (st == PLM_OK)
        st = plm_writer_printf(w, err,
                               "  \"modules_to_save\": null,\n  \"peft_type\": \"LORA\",\n"
                               "  \"r\": %d,\n  \"rank_pattern\": {},\n  \"revision\": null,\n"
                               "  \"target_modules\": [",
                               l->rank);
    for (int t = 0, n = 0; st == PLM_OK && t < PLM_LORA_N_TARGETS; t++)
        if (l->targets >> t & 1)
            st = plm_writer_printf(w, err, "%s\n    \"%s\"", n++ ? "," : "",
                                   plm_lora_targets[t].name);
    if (st == PLM_OK)
        st = plm_writer_printf(w, err,
                               "\n  ],\n  \"task_type\": \"CAUSAL_LM\",\n"
                               "  \"trainable_token_indices\": %s",
                               l->n_tokens ? "[" : "null");
    for (int32_t k = 0; st == PLM_OK && k < l->n_tokens; k++)
        st = plm_writer_printf(w, err, "%s\n    %d", k ? "," : "", l->token_ids[k]);
    if (st == PLM_OK)
        st = plm_writer_printf(w, err, "%s,\n  \"use_dora\": false,\n  \"use_rslora\": false\n}\n",
                               l->n_tokens ? "\n  ]" : "");
    return st;
}

static plm_status write_config(const plm_lora *l, const char *path, plm_error *err) {
    plm_writer *w;
    plm_status st = plm_writer_open(&w, path, err);
    if (st != PLM_OK) return st;
    st = write_config_body(l, w, err);
    if (st != PLM_OK) {
        plm_writer_abort(w);
        return st;
    }
    return plm_writer_commit(w, err);
}

// The tensors of adapter_model.safetensors, each with the f32 values it is filled from.
typedef struct {
    plm_st_info *info;  // (n)
    const float **src;  // (n)
    char (*names)[128]; // (n)
    int32_t n;
} save_list;

static plm_status fill_tensor(void *user, int32_t i, float *buf, plm_error *err) {
    const save_list *s = user;
    size_t n = (size_t)s->info[i].shape[0] * (size_t)s->info[i].shape[1];
    (void)err;
    memcpy(buf, s->src[i], n * sizeof *buf);
    return PLM_OK;
}

// save_tensors: A and B of every adapted (layer, target), then the token rows, in PEFT's names.
static plm_status save_tensors(const plm_lora *l, const char *path, plm_error *err) {
    int32_t cap = l->n_layers * PLM_LORA_N_TARGETS * 2 + 1, n = 0;
    save_list s = {plm_alloc((size_t)cap, sizeof *s.info), plm_alloc((size_t)cap, sizeof *s.src),
                   plm_alloc((size_t)cap, sizeof *s.names), 0};
    plm_status st = PLM_OK;
    if (!s.info || !s.src || !s.names) st = plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; st == PLM_OK && i < l->n_layers * PLM_LORA_N_TARGETS; i++) {
        const plm_lora_pair *p = &l->pairs[i];
        int t = i % PLM_LORA_N_TARGETS;
        if (!p->A) continue;
        for (int k = 0; k < 2; k++, n++) {
            peft_name(s.names[n], sizeof s.names[n], i / PLM_LORA_N_TARGETS, (plm_lora_target)t,
                      k ? 'B' : 'A');
            int32_t rows = k ? l->shape[t][0] : l->rank, cols = k ? l->rank : l->shape[t][1];
            s.info[n] = (plm_st_info){
                .name = s.names[n], .dtype = PLM_DTYPE_F32, .n_dims = 2, .shape = {rows, cols}};
            s.src[n] = k ? p->B : p->A;
        }
    }
    if (st == PLM_OK && l->n_tokens > 0) {
        s.info[n] = (plm_st_info){.name = PEFT_TOKENS,
                                  .dtype = PLM_DTYPE_F32,
                                  .n_dims = 2,
                                  .shape = {l->n_tokens, l->hidden_size}};
        s.src[n++] = l->token_rows;
    }
    s.n = n;
    if (st == PLM_OK) st = plm_safetensors_write(path, s.info, n, 1, fill_tensor, &s, err);
    free(s.info);
    free(s.src);
    free(s.names);
    return st;
}

plm_status plm_lora_save(const plm_lora *l, const char *dir, plm_error *err) {
    if (!l || !dir) return plm_fail(err, PLM_ERR_ARG, "plm_lora_save: NULL argument");
    char cfg_path[4096], st_path[4096];
    if (plm_path_join(cfg_path, sizeof cfg_path, dir, "adapter_config.json") ||
        plm_path_join(st_path, sizeof st_path, dir, "adapter_model.safetensors"))
        return plm_fail(err, PLM_ERR_ARG, "%s: path too long", dir);
    plm_status st = plm_mkdir(dir, err);
    // the config goes first and comes back last: a failure in between leaves no loadable adapter
    if (st == PLM_OK && plm_path_exists(cfg_path) && unlink(cfg_path))
        st = plm_fail(err, PLM_ERR_IO, "%s: cannot remove the old adapter_config.json", dir);
    if (st == PLM_OK && l->tokenizer) st = plm_tokenizer_save_dir(l->tokenizer, dir, -1, -1, err);
    if (st == PLM_OK) st = save_tensors(l, st_path, err);
    if (st == PLM_OK) st = write_config(l, cfg_path, err);
    return st;
}

// ---- merge ----

// copy_mat: dst (f32, at least src's rows) = src, dequantized row by row.
static void copy_mat(plm_mat *dst, const plm_mat *src) {
    for (int32_t r = 0; r < src->rows; r++) plm_mat_row(dst->f32 + (size_t)r * src->cols, src, r);
}

// merge_mat: dst = W + scale * B A (PEFT's get_delta_weight: (B @ A) * scaling, added to W).
static void merge_mat(plm_mat *dst, const plm_mat *w, const plm_lora_pair *p, int32_t R,
                      float scale) {
    copy_mat(dst, w);
    if (!p->A) return;
    size_t in = (size_t)w->cols;
    for (int32_t o = 0; o < w->rows; o++) {
        float *row = dst->f32 + (size_t)o * in;
        const float *b = p->B + (size_t)o * (size_t)R;
        for (size_t i = 0; i < in; i++) {
            float delta = 0.0f;
            for (int32_t r = 0; r < R; r++) delta += b[r] * p->A[(size_t)r * in + i];
            row[i] += delta * scale;
        }
    }
}

// copy_vec: dst (n) = src when the model has that vector (src not NULL)
static void copy_vec(float *dst, const float *src, size_t n) {
    if (src) memcpy(dst, src, n * sizeof *dst);
}

// merge_weights: every weight of m from base and l (m has l's vocabulary).
static void merge_weights(plm_model *m, const plm_model *base, const plm_lora *l) {
    const plm_config *c = &base->config;
    size_t C = (size_t)c->hidden_size, D = (size_t)c->head_dim;
    size_t HD = (size_t)c->num_attention_heads * D, KD = (size_t)c->num_key_value_heads * D;
    float scale = l->alpha / (float)l->rank;
    copy_mat(&m->embed_tokens, &base->embed_tokens); // rows past the base's V stay zero
    for (int32_t k = 0; k < l->n_tokens; k++)        // PEFT replaces rows (index_copy)
        memcpy(m->embed_tokens.f32 + (size_t)l->token_ids[k] * C, l->token_rows + (size_t)k * C,
               C * sizeof(float));
    for (int32_t layer = 0; layer < c->num_hidden_layers; layer++) {
        plm_layer *d = &m->layers[layer], *s = &base->layers[layer];
        memcpy(d->input_layernorm, s->input_layernorm, C * sizeof(float));
        memcpy(d->post_attention_layernorm, s->post_attention_layernorm, C * sizeof(float));
        copy_vec(d->q_bias, s->q_bias, HD), copy_vec(d->k_bias, s->k_bias, KD);
        copy_vec(d->v_bias, s->v_bias, KD);
        copy_vec(d->q_norm, s->q_norm, D), copy_vec(d->k_norm, s->k_norm, D);
        copy_vec(d->post_attn_norm, s->post_attn_norm, C);
        copy_vec(d->post_ffw_norm, s->post_ffw_norm, C);
        for (int t = 0; t < PLM_LORA_N_TARGETS; t++) // d's weight: where s's is, in d
            merge_mat((plm_mat *)(void *)((char *)d + plm_lora_targets[t].field),
                      plm_layer_target(s, (plm_lora_target)t),
                      &l->pairs[layer * PLM_LORA_N_TARGETS + t], l->rank, scale);
    }
    memcpy(m->norm, base->norm, C * sizeof(float));
    copy_vec(m->rope_freqs, base->rope_freqs, D / 2);
    // an untied head keeps the base's rows: PEFT's trainable tokens change embed_tokens only
    if (!c->tie_word_embeddings) copy_mat(&m->lm_head, &base->lm_head);
}

plm_status plm_model_merge(plm_model **out, const plm_model *base, const plm_lora *l,
                           plm_error *err) {
    if (!out || !base || !l) return plm_fail(err, PLM_ERR_ARG, "plm_model_merge: NULL argument");
    *out = NULL;
    plm_config cfg = base->config;
    if (l->n_layers != cfg.num_hidden_layers || l->hidden_size != cfg.hidden_size ||
        l->vocab_size < cfg.vocab_size)
        return plm_fail(err, PLM_ERR_ARG,
                        "plm_model_merge: adapter for %d layers, hidden %d, "
                        "vocab %d; base has %d, %d, %d",
                        l->n_layers, l->hidden_size, l->vocab_size, cfg.num_hidden_layers,
                        cfg.hidden_size, cfg.vocab_size);
    cfg.vocab_size = l->vocab_size;
    plm_model *m;
    plm_status st = plm_model_alloc(&m, &cfg, err);
    if (st != PLM_OK) return st;
    merge_weights(m, base, l);
    m->pad_token_id = base->pad_token_id;
    const plm_tokenizer *tok = l->tokenizer ? l->tokenizer : base->tokenizer;
    if (tok) st = plm_tokenizer_add_tokens(&m->tokenizer, tok, NULL, 0, 0, err);
    if (st == PLM_OK && base->chat_template && !(m->chat_template = strdup(base->chat_template)))
        st = plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    // the names: the base's, and the adapter's (an adapter merged into an already merged model
    // is named after the last one)
    if (st == PLM_OK && base->name && !(m->name = strdup(base->name)))
        st = plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    if (st == PLM_OK && l->name[0] && !(m->adapter = strdup(l->name)))
        st = plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    if (st != PLM_OK) plm_model_free(m);
    else *out = m;
    return st;
}
