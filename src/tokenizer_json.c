// tokenizer_json.c: plm_tokenizer from and to Hugging Face's tokenizer.json: the reader (checks
// that the pipeline is one we model: byte-level BPE (normalizer null or NFC, the supported
// pre-tokenizers, a ByteLevel decoder), or SentencePiece-style BPE with byte fallback as Gemma
// writes it (normalizer Replace ' ' -> U+2581, pre-tokenizer null or Split on ' ', decoders
// Replace, ByteFallback, Fuse); a plain BPE model; anything else is PLM_ERR_UNSUPPORTED),
// plm_tokenizer_load
// (a directory, a tokenizer.json or a .gguf), and the writer of tokenizer.json and
// tokenizer_config.json in the form Hugging Face tokenizers and transformers.js load. The object
// and its building steps are in tokenizer.c.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "json.h"
#include "tokenizer_internal.h"

// ---- tokenizer.json ----

// the Split regexes tokenizer_encode.c implements, by PRE_* kind
static const char *const split_regex[] = {
    [PRE_GPT2] =
        "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
    [PRE_LLAMA3] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                   "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    [PRE_QWEN2] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                  "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
};
#define N_SPLIT ((int)(sizeof split_regex / sizeof *split_regex))
static const char metaspace[] = "\xE2\x96\x81"; // U+2581, SentencePiece's space

// json_text: decode string token i into *buf (grown as needed); returns its length or -1.
static int64_t json_text(const plm_json *j, int32_t i, char **buf, size_t *cap) {
    if (i < 0 || j->tok[i].type != PLM_JSON_STRING) return -1;
    size_t raw = j->tok[i].end - j->tok[i].start + 1; // decoding never grows a string
    if (raw > *cap) {
        char *b = realloc(*buf, raw);
        if (!b) return -1;
        *buf = b, *cap = raw;
    }
    return plm_json_str(j, i, *buf, *cap);
}

// type_of: the "type" member of object v, for messages ("?" when absent).
static const char *type_of(const plm_json *j, int32_t v, char *buf, size_t cap) {
    if (v >= 0 && j->tok[v].type == PLM_JSON_NULL) return "null";
    if (plm_json_str(j, plm_json_get(j, v, "type"), buf, cap) < 0) return "?";
    return buf;
}

// parse_pre: one pre_tokenizer object (recursing into a Sequence). ByteLevel must come last:
// what follows it would see the byte-level alphabet, which we do not model.
static plm_status parse_pre(plm_tokenizer *t, const plm_json *j, int32_t v, int *byte_level,
                            const char *where, plm_error *err) {
    char type[32];
    type_of(j, v, type, sizeof type);
    if (!strcmp(type, "Sequence")) {
        int32_t arr = plm_json_get(j, v, "pretokenizers");
        for (int32_t k = 0, e; (e = plm_json_at(j, arr, k)) >= 0; k++) {
            plm_status st = parse_pre(t, j, e, byte_level, where, err);
            if (st) return st;
        }
        return PLM_OK;
    }
    if (*byte_level || t->n_pre == MAX_PRE)
        return plm_fail(err, PLM_ERR_UNSUPPORTED,
                        "%s: pre-tokenizer %s after ByteLevel, or more "
                        "than %d steps, is not supported",
                        where, type, MAX_PRE);
    if (!strcmp(type, "ByteLevel")) {
        *byte_level = 1;
        t->add_prefix_space = plm_json_bool(j, plm_json_get(j, v, "add_prefix_space")) == 1;
        t->use_regex = plm_json_bool(j, plm_json_get(j, v, "use_regex")) != 0; // default true
        return PLM_OK;
    }
    if (!strcmp(type, "Digits")) {
        int individual = plm_json_bool(j, plm_json_get(j, v, "individual_digits")) == 1;
        t->pre[t->n_pre++] = individual ? PRE_DIGITS : PRE_DIGIT_RUNS;
        return PLM_OK;
    }
    int32_t pat = plm_json_get(j, v, "pattern");
    int isolated = plm_json_eq(j, plm_json_get(j, v, "behavior"), "Isolated") &&
                   plm_json_bool(j, plm_json_get(j, v, "invert")) != 1;
    for (int k = 0; k < N_SPLIT && !strcmp(type, "Split") && isolated; k++)
        if (split_regex[k] && plm_json_eq(j, plm_json_get(j, pat, "Regex"), split_regex[k])) {
            t->pre[t->n_pre++] = (uint8_t)k;
            return PLM_OK;
        }
    // Gemma's Split on ' ' runs after the normalizer replaced every ' ': it never splits
    if (!strcmp(type, "Split") && t->normalizer == NORM_METASPACE &&
        plm_json_eq(j, plm_json_get(j, pat, "String"), " "))
        return PLM_OK;
    return plm_fail(err, PLM_ERR_UNSUPPORTED,
                    "%s: pre-tokenizer %s is not supported (supported: ByteLevel, Digits, "
                    "Sequence, Split with the GPT-2, Llama 3 or Qwen2 regex, Isolated)",
                    where, type);
}

// is_replace: v is {"type": "Replace", "pattern": {"String": from}, "content": to}.
static int is_replace(const plm_json *j, int32_t v, const char *from, const char *to) {
    return plm_json_eq(j, plm_json_get(j, v, "type"), "Replace") &&
           plm_json_eq(j, plm_json_get(j, plm_json_get(j, v, "pattern"), "String"), from) &&
           plm_json_eq(j, plm_json_get(j, v, "content"), to);
}

// spm_decoder: the decoder is Gemma's Sequence [Replace U+2581 -> ' ', ByteFallback, Fuse].
static int spm_decoder(const plm_json *j, int32_t dec) {
    int32_t d = plm_json_get(j, dec, "decoders");
    return plm_json_eq(j, plm_json_get(j, dec, "type"), "Sequence") && d >= 0 &&
           j->tok[d].size == 3 && is_replace(j, plm_json_at(j, d, 0), metaspace, " ") &&
           plm_json_eq(j, plm_json_get(j, plm_json_at(j, d, 1), "type"), "ByteFallback") &&
           plm_json_eq(j, plm_json_get(j, plm_json_at(j, d, 2), "type"), "Fuse");
}

// check_pipeline: the parts of tokenizer.json around the model: the normalizer (null, NFC, or
// SentencePiece's Replace), the pre-tokenizer and the decoder (ByteLevel for byte-level BPE,
// Gemma's sequence for byte fallback (t->spm, from model.byte_fallback)).
static plm_status check_pipeline(plm_tokenizer *t, const plm_json *j, const char *where,
                                 plm_error *err) {
    char type[32];
    int32_t norm = plm_json_get(j, 0, "normalizer");
    if (norm >= 0 && plm_json_eq(j, plm_json_get(j, norm, "type"), "NFC")) t->normalizer = NORM_NFC;
    else if (norm >= 0 && is_replace(j, norm, " ", metaspace)) t->normalizer = NORM_METASPACE;
    else if (norm >= 0 && j->tok[norm].type != PLM_JSON_NULL)
        return plm_fail(err, PLM_ERR_UNSUPPORTED,
                        "%s: normalizer %s is not supported (want null, NFC, or Replace ' ' with "
                        "U+2581)",
                        where, type_of(j, norm, type, sizeof type));
    int32_t dec = plm_json_get(j, 0, "decoder");
    if (t->spm ? !spm_decoder(j, dec) : strcmp(type_of(j, dec, type, sizeof type), "ByteLevel"))
        return plm_fail(err, PLM_ERR_UNSUPPORTED, "%s: decoder %s is not supported (want %s)",
                        where, type_of(j, dec, type, sizeof type),
                        t->spm ? "Sequence of Replace U+2581 -> ' ', ByteFallback, Fuse"
                               : "ByteLevel");
    if (t->spm && t->normalizer != NORM_METASPACE)
        return plm_fail(err, PLM_ERR_UNSUPPORTED,
                        "%s: byte fallback without the normalizer Replace ' ' -> U+2581 is not "
                        "supported",
                        where);
    int byte_level = 0;
    int32_t pre = plm_json_get(j, 0, "pre_tokenizer");
    plm_status st = pre >= 0 && j->tok[pre].type == PLM_JSON_NULL
                        ? PLM_OK
                        : parse_pre(t, j, pre, &byte_level, where, err);
    if (!st && byte_level == t->spm)
        return plm_fail(err, PLM_ERR_UNSUPPORTED,
                        t->spm ? "%s: ByteLevel with byte fallback is not supported"
                               : "%s: pre_tokenizer has no ByteLevel step: not a "
                                 "byte-level BPE tokenizer",
                        where);
    if (t->spm) t->use_regex = 0;
    return st;
}

// check_model: the model object must be plain byte-level BPE.
static plm_status check_model(const plm_json *j, int32_t model, const char *where, plm_error *err) {
    char type[32];
    if (model < 0 || j->tok[model].type != PLM_JSON_OBJECT)
        return plm_fail(err, PLM_ERR_FORMAT, "%s: no \"model\" object", where);
    if (plm_json_get(j, model, "type") >= 0 && strcmp(type_of(j, model, type, sizeof type), "BPE"))
        return plm_fail(err, PLM_ERR_UNSUPPORTED, "%s: model %s is not supported (want BPE)", where,
                        type);
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int k = 0; k < 2; k++) {
        int32_t v = plm_json_get(j, model, affixes[k]);
        if (v >= 0 && j->tok[v].type != PLM_JSON_NULL && !plm_json_eq(j, v, ""))
            return plm_fail(err, PLM_ERR_UNSUPPORTED, "%s: model.%s is not supported", where,
                            affixes[k]);
    }
    double dropout = 0;
    int32_t d = plm_json_get(j, model, "dropout");
    if (d >= 0 && j->tok[d].type != PLM_JSON_NULL && (plm_json_num(j, d, &dropout) || dropout != 0))
        return plm_fail(err, PLM_ERR_UNSUPPORTED, "%s: BPE dropout is not supported", where);
    int32_t vocab = plm_json_get(j, model, "vocab");
    if (vocab < 0 || j->tok[vocab].type != PLM_JSON_OBJECT)
        return plm_fail(err, PLM_ERR_FORMAT, "%s: model.vocab is not an object", where);
    int32_t m = plm_json_get(j, model, "merges");
    if (m < 0 || j->tok[m].type != PLM_JSON_ARRAY)
        return plm_fail(err, PLM_ERR_FORMAT, "%s: model.merges is not an array", where);
    return PLM_OK;
}

#define MAX_VOCAB (1 << 24) // a sanity bound on ids, so a corrupt file cannot ask for gigabytes

// count_ids: n_vocab = 1 + the largest id in model.vocab and added_tokens.
static plm_status count_ids(const plm_json *j, int32_t vocab, int32_t added, int32_t *n_vocab,
                            const char *where, plm_error *err) {
    int64_t id, max_id = -1;
    for (int32_t m = 0, i = vocab + 1; m < j->tok[vocab].size; m++, i = j->tok[i + 1].next) {
        if (plm_json_int(j, i + 1, 0, MAX_VOCAB - 1, &id))
            return plm_fail(err, PLM_ERR_FORMAT,
                            "%s: vocab entry %d: id is not an integer in "
                            "[0, %d)",
                            where, (int)m, MAX_VOCAB);
        if (id > max_id) max_id = id;
    }
    for (int32_t k = 0, e = added + 1; added >= 0 && k < j->tok[added].size;
         k++, e = j->tok[e].next) {
        if (plm_json_int(j, plm_json_get(j, e, "id"), 0, MAX_VOCAB - 1, &id))
            return plm_fail(err, PLM_ERR_FORMAT,
                            "%s: added_tokens[%d].id is not an integer in "
                            "[0, %d)",
                            where, (int)k, MAX_VOCAB);
        if (id > max_id) max_id = id;
    }
    if (max_id < 0) return plm_fail(err, PLM_ERR_FORMAT, "%s: empty vocabulary", where);
    // every id below max_id needs a token, so more ids than entries means a hole: refuse before
    // allocating for max_id (plm_tokenizer_build_index names the first missing id in the other
    // cases)
    int64_t entries = j->tok[vocab].size + (added >= 0 ? j->tok[added].size : 0);
    if (max_id >= entries)
        return plm_fail(err, PLM_ERR_FORMAT,
                        "%s: largest id %lld, but only %lld tokens: ids must "
                        "be 0..n-1 without holes",
                        where, (long long)max_id, (long long)entries);
    *n_vocab = (int32_t)max_id + 1;
    return PLM_OK;
}

// json_token: decode string token i as the text of id, straight into the blob.
static plm_status json_token(plm_tokenizer *t, const plm_json *j, int32_t i, int32_t id,
                             int32_t type, const char *where, plm_error *err) {
    size_t raw = j->tok[i].end - j->tok[i].start + 1;
    int64_t off = plm_tokenizer_blob_reserve(t, raw);
    if (off < 0) return plm_fail(err, PLM_ERR_NOMEM, "%s: out of memory", where);
    int64_t n = plm_json_str(j, i, t->blob + off, raw);
    if (n < 0) return plm_fail(err, PLM_ERR_FORMAT, "%s: token %d is not a string", where, (int)id);
    if (t->text[id].len == UINT32_MAX) {
        t->text[id] = (span){(uint32_t)off, (uint32_t)n};
        t->blob_len += (size_t)n;
    } else if (t->text[id].len != n || memcmp(blob_at(t, t->text[id]), t->blob + off, (size_t)n)) {
        return plm_fail(err, PLM_ERR_FORMAT, "%s: id %d is given to two different tokens", where,
                        (int)id);
    }
    t->type[id] = type;
    return PLM_OK;
}

// load_tokens: model.vocab, then added_tokens (special ones are CONTROL, the others USER_DEFINED).
static plm_status load_tokens(plm_tokenizer *t, const plm_json *j, int32_t vocab, int32_t added,
                              const char *where, plm_error *err) {
    int64_t id;
    for (int32_t m = 0, i = vocab + 1; m < j->tok[vocab].size; m++, i = j->tok[i + 1].next) {
        plm_json_int(j, i + 1, 0, MAX_VOCAB - 1, &id); // checked by count_ids
        plm_status st = json_token(t, j, i, (int32_t)id, PLM_TOKEN_TYPE_NORMAL, where, err);
        if (st) return st;
    }
    for (int32_t k = 0, e = added + 1; added >= 0 && k < j->tok[added].size;
         k++, e = j->tok[e].next) {
        int32_t content = plm_json_get(j, e, "content");
        plm_json_int(j, plm_json_get(j, e, "id"), 0, MAX_VOCAB - 1, &id);
        if (content < 0 || j->tok[content].type != PLM_JSON_STRING ||
            j->tok[content].end == j->tok[content].start)
            return plm_fail(err, PLM_ERR_FORMAT,
                            "%s: added_tokens[%d].content is not a non-empty "
                            "string",
                            where, (int)k);
        int special = plm_json_bool(j, plm_json_get(j, e, "special")) == 1;
        int32_t type = special ? PLM_TOKEN_TYPE_CONTROL : PLM_TOKEN_TYPE_USER_DEFINED;
        plm_status st = json_token(t, j, content, (int32_t)id, type, where, err);
        if (st) return st;
        plm_tokenizer_add_added(t, (int32_t)id, plm_json_bool(j, plm_json_get(j, e, "lstrip")) == 1,
                                plm_json_bool(j, plm_json_get(j, e, "rstrip")) == 1,
                                plm_json_bool(j, plm_json_get(j, e, "single_word")) == 1,
                                plm_json_bool(j, plm_json_get(j, e, "normalized")) == 1);
    }
    return PLM_OK;
}

// load_merges: "left right" strings (split at the one space) or ["left", "right"] pairs, the
// form tokenizers >= 0.20 writes so that tokens may contain spaces.
static plm_status load_merges(plm_tokenizer *t, const plm_json *j, int32_t merges,
                              const char *where, plm_error *err) {
    char *a = NULL, *b = NULL;
    size_t ca = 0, cb = 0;
    plm_status st = PLM_OK;
    for (int32_t k = 0, e = merges + 1; !st && k < j->tok[merges].size; k++, e = j->tok[e].next) {
        int64_t na, nb = -1;
        if (j->tok[e].type == PLM_JSON_ARRAY && j->tok[e].size == 2) {
            na = json_text(j, plm_json_at(j, e, 0), &a, &ca);
            nb = json_text(j, plm_json_at(j, e, 1), &b, &cb);
        } else if ((na = json_text(j, e, &a, &ca)) >= 0) {
            const char *sp = memchr(a, ' ', (size_t)na);
            if (sp && !memchr(sp + 1, ' ', (size_t)(a + na - sp - 1))) {
                nb = a + na - sp - 1;
                na = sp - a;
                b = realloc(b, (size_t)nb + 1), cb = (size_t)nb + 1;
                if (b) memcpy(b, sp + 1, (size_t)nb);
            }
        }
        if (na < 0 || nb < 0 || !b)
            st = plm_fail(err, PLM_ERR_FORMAT,
                          "%s: merges[%d] is not \"left right\" or "
                          "[\"left\", \"right\"]",
                          where, (int)k);
        else st = plm_tokenizer_add_merge(t, a, (size_t)na, b, (size_t)nb, k, where, err);
    }
    free(a);
    free(b);
    return st;
}

plm_status plm_tokenizer_load_json_buffer(plm_tokenizer **out, const char *text, size_t len,
                                          const char *name, plm_error *err) {
    if (!out || (!text && len) || !name)
        return plm_fail(err, PLM_ERR_ARG, "plm_tokenizer_load_json_buffer: bad arguments");
    *out = NULL;
    plm_json j = {0};
    plm_tokenizer *t = NULL;
    int32_t n_vocab = 0;
    plm_status st = plm_json_parse(&j, text, len, name, err);
    if (st) return st;
    int32_t model = plm_json_get(&j, 0, "model");
    int32_t vocab = plm_json_get(&j, model, "vocab"), merges = plm_json_get(&j, model, "merges");
    int32_t added = plm_json_get(&j, 0, "added_tokens");
    if (j.tok[0].type != PLM_JSON_OBJECT)
        st = plm_fail(err, PLM_ERR_FORMAT, "%s: not a JSON object", name);
    if (!st) st = check_model(&j, model, name, err);
    if (!st && added >= 0 && j.tok[added].type != PLM_JSON_ARRAY) added = -1; // null: none
    if (!st) st = count_ids(&j, vocab, added, &n_vocab, name, err);
    if (!st) st = plm_tokenizer_build_begin(&t, n_vocab, j.tok[merges].size, err);
    if (!st) t->spm = plm_json_bool(&j, plm_json_get(&j, model, "byte_fallback")) == 1;
    if (!st) st = check_pipeline(t, &j, name, err);
    if (!st) t->ignore_merges = plm_json_bool(&j, plm_json_get(&j, model, "ignore_merges")) == 1;
    if (!st) st = load_tokens(t, &j, vocab, added, name, err);
    if (!st) st = plm_tokenizer_build_index(t, name, err);
    if (!st) st = load_merges(t, &j, merges, name, err);
    plm_json_free(&j);
    if (st) {
        plm_tokenizer_free(t);
        return st;
    }
    plm_tokenizer_set_pre_name(t);
    *out = t;
    return PLM_OK;
}

plm_status plm_tokenizer_load(plm_tokenizer **out, const char *path, plm_error *err) {
    if (!out || !path) return plm_fail(err, PLM_ERR_ARG, "plm_tokenizer_load: bad arguments");
    *out = NULL;
    if (plm_gguf_path(path)) return plm_gguf_load_tokenizer(out, path, err);
    char file[4096];
    int too_long = plm_path_is_dir(path)
                       ? plm_path_join(file, sizeof file, path, "tokenizer.json")
                       : snprintf(file, sizeof file, "%s", path) >= (int)sizeof file;
    if (too_long) return plm_fail(err, PLM_ERR_ARG, "%s: path too long", path);
    char *text;
    size_t len;
    plm_status st = plm_file_read(file, &text, &len, err);
    if (st) return st;
    st = plm_tokenizer_load_json_buffer(out, text, len, file, err);
    free(text);
    return st;
}

// ---- save: tokenizer.json and tokenizer_config.json ----

static const added_token *find_added(const plm_tokenizer *t, int32_t id) {
    for (int32_t k = 0; k < t->n_added; k++)
        if (t->added[k].id == id) return &t->added[k];
    return NULL;
}

static const char *json_bool(int b) {
    return b ? "true" : "false";
}

// write_added: the flags of added token a as tokenizer.json and tokenizer_config.json spell them.
static plm_status write_added_flags(plm_writer *w, const plm_tokenizer *t, const added_token *a,
                                    plm_error *err) {
    return plm_writer_printf(w, err,
                             ", \"single_word\": %s, \"lstrip\": %s, \"rstrip\": %s, "
                             "\"normalized\": %s, \"special\": %s}",
                             json_bool(a->single_word), json_bool(a->lstrip), json_bool(a->rstrip),
                             json_bool(a->normalized),
                             json_bool(t->type[a->id] == PLM_TOKEN_TYPE_CONTROL));
}

// write_pipeline: the normalizer, pre_tokenizer, post_processor and decoder.
static plm_status write_pipeline(plm_writer *w, const plm_tokenizer *t, plm_error *err) {
    static const char *const norms[] = {
        [NORM_NONE] = "null",
        [NORM_NFC] = "{\"type\": \"NFC\"}",
        [NORM_METASPACE] = ("{\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, "
                            "\"content\": \"\xE2\x96\x81\"}"),
    };
    plm_status st = plm_writer_printf(
        w, err, "  \"normalizer\": %s,\n  \"pre_tokenizer\": ", norms[t->normalizer]);
    if (t->spm) {
        if (!st)
            st = plm_writer_printf(w, err,
                                   "{\"type\": \"Split\", \"pattern\": {\"String\": \" \"}, "
                                   "\"behavior\": \"MergedWithPrevious\", \"invert\": false},\n"
                                   "  \"post_processor\": null,\n  \"decoder\": {\"type\": "
                                   "\"Sequence\", \"decoders\": [{\"type\": \"Replace\", "
                                   "\"pattern\": {\"String\": \"%s\"}, \"content\": \" \"}, "
                                   "{\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}]},\n",
                                   metaspace);
        return st;
    }
    if (!st && t->n_pre)
        st = plm_writer_printf(w, err, "{\"type\": \"Sequence\", \"pretokenizers\": [");
    for (int i = 0; i < t->n_pre && !st; i++) {
        int k = t->pre[i];
        if (k < N_SPLIT && split_regex[k]) {
            st = plm_writer_printf(w, err, "{\"type\": \"Split\", \"pattern\": {\"Regex\": ");
            if (!st) st = plm_json_write_str(w, split_regex[k], strlen(split_regex[k]), err);
            if (!st)
                st = plm_writer_printf(w, err,
                                       "}, \"behavior\": \"Isolated\", \"invert\": false}, ");
        } else {
            st = plm_writer_printf(w, err, "{\"type\": \"Digits\", \"individual_digits\": %s}, ",
                                   json_bool(k == PRE_DIGITS));
        }
    }
    if (!st)
        st = plm_writer_printf(w, err,
                               "{\"type\": \"ByteLevel\", \"add_prefix_space\": %s, "
                               "\"trim_offsets\": true, \"use_regex\": %s}%s,\n",
                               json_bool(t->add_prefix_space), json_bool(t->use_regex),
                               t->n_pre ? "]}" : "");
    if (!st)
        st = plm_writer_printf(w, err,
                               "  \"post_processor\": null,\n  \"decoder\": {\"type\": "
                               "\"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true, "
                               "\"use_regex\": true},\n");
    return st;
}

// write_model: the BPE model: the whole vocabulary in id order, then the merges in rank order,
// as "left right" strings (readable by every tokenizers version) unless a token has a space.
static plm_status write_model(plm_writer *w, const plm_tokenizer *t, plm_error *err) {
    plm_status st = plm_writer_printf(
        w, err,
        "  \"model\": {\"type\": \"BPE\", \"dropout\": null, "
        "\"unk_token\": null, \"continuing_subword_prefix\": null, \"end_of_word_suffix\": null, "
        "\"fuse_unk\": false, \"byte_fallback\": %s, \"ignore_merges\": %s, \"vocab\": {",
        json_bool(t->spm), json_bool(t->ignore_merges));
    for (int32_t id = 0; id < t->n_vocab && !st; id++) {
        st = plm_writer_printf(w, err, "%s\n    ", id ? "," : "");
        if (!st) st = plm_json_write_str(w, blob_at(t, t->text[id]), t->text[id].len, err);
        if (!st) st = plm_writer_printf(w, err, ": %d", (int)id);
    }
    int arrays = 0;
    for (int32_t i = 0; i < t->n_merges; i++)
        if (memchr(blob_at(t, t->text[t->merge_left[i]]), ' ', t->text[t->merge_left[i]].len) ||
            memchr(blob_at(t, t->merge_text[i]) + t->text[t->merge_left[i]].len + 1, ' ',
                   t->merge_text[i].len - t->text[t->merge_left[i]].len - 1))
            arrays = 1;
    if (!st) st = plm_writer_printf(w, err, "\n  }, \"merges\": [");
    for (int32_t i = 0; i < t->n_merges && !st; i++) {
        span m = t->merge_text[i];
        size_t nl = t->text[t->merge_left[i]].len;
        st = plm_writer_printf(w, err, "%s\n    %s", i ? "," : "", arrays ? "[" : "");
        if (!st && !arrays) st = plm_json_write_str(w, blob_at(t, m), m.len, err);
        if (!st && arrays) st = plm_json_write_str(w, blob_at(t, m), nl, err);
        if (!st && arrays) st = plm_writer_printf(w, err, ", ");
        if (!st && arrays) st = plm_json_write_str(w, blob_at(t, m) + nl + 1, m.len - nl - 1, err);
        if (!st && arrays) st = plm_writer_printf(w, err, "]");
    }
    if (!st) st = plm_writer_printf(w, err, "\n  ]}\n}\n");
    return st;
}

static plm_status write_tokenizer_json(plm_writer *w, const plm_tokenizer *t, plm_error *err) {
    plm_status st = plm_writer_printf(w, err,
                                      "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n"
                                      "  \"padding\": null,\n  \"added_tokens\": [");
    int first = 1;
    for (int32_t id = 0; id < t->n_vocab && !st; id++) {
        const added_token *a = find_added(t, id);
        if (!a) continue;
        st = plm_writer_printf(w, err, "%s\n    {\"id\": %d, \"content\": ", first ? "" : ",",
                               (int)id);
        if (!st) st = plm_json_write_str(w, blob_at(t, t->text[id]), t->text[id].len, err);
        if (!st) st = write_added_flags(w, t, a, err);
        first = 0;
    }
    if (!st) st = plm_writer_printf(w, err, "\n  ],\n");
    if (!st) st = write_pipeline(w, t, err);
    if (!st) st = write_model(w, t, err);
    return st;
}

// write_token_or_null: a token's text as a JSON string, or null for id < 0.
static plm_status write_token_or_null(plm_writer *w, const plm_tokenizer *t, int32_t id,
                                      plm_error *err) {
    if (id < 0 || id >= t->n_vocab) return plm_writer_printf(w, err, "null");
    return plm_json_write_str(w, blob_at(t, t->text[id]), t->text[id].len, err);
}

static plm_status write_config_json(plm_writer *w, const plm_tokenizer *t, int32_t bos_id,
                                    int32_t eos_id, plm_error *err) {
    plm_status st = plm_writer_printf(w, err,
                                      "{\n  \"add_prefix_space\": %s,\n"
                                      "  \"added_tokens_decoder\": {",
                                      json_bool(t->add_prefix_space));
    int first = 1;
    for (int32_t id = 0; id < t->n_vocab && !st; id++) {
        const added_token *a = find_added(t, id);
        if (!a) continue;
        st = plm_writer_printf(w, err, "%s\n    \"%d\": {\"content\": ", first ? "" : ",", (int)id);
        if (!st) st = plm_json_write_str(w, blob_at(t, t->text[id]), t->text[id].len, err);
        if (!st) st = write_added_flags(w, t, a, err);
        first = 0;
    }
    if (!st) st = plm_writer_printf(w, err, "\n  },\n  \"bos_token\": ");
    if (!st) st = write_token_or_null(w, t, bos_id, err);
    if (!st)
        st = plm_writer_printf(w, err,
                               ",\n  \"clean_up_tokenization_spaces\": false,\n"
                               "  \"eos_token\": ");
    if (!st) st = write_token_or_null(w, t, eos_id, err);
    if (!st) st = plm_writer_printf(w, err, ",\n  \"tokenizer_class\": \"GPT2Tokenizer\"\n}\n");
    return st;
}

plm_status plm_tokenizer_save_dir(const plm_tokenizer *t, const char *dir, int32_t bos_id,
                                  int32_t eos_id, plm_error *err) {
    if (!t || !dir) return plm_fail(err, PLM_ERR_ARG, "plm_tokenizer_save_dir: bad arguments");
    char path[4096];
    plm_writer *w = NULL;
    plm_status st = plm_mkdir(dir, err);
    for (int k = 0; k < 2 && !st; k++) {
        const char *name = k == 0 ? "tokenizer.json" : "tokenizer_config.json";
        if (plm_path_join(path, sizeof path, dir, name))
            return plm_fail(err, PLM_ERR_ARG, "%s: path too long", dir);
        st = plm_writer_open(&w, path, err);
        if (st) break;
        st =
            k == 0 ? write_tokenizer_json(w, t, err) : write_config_json(w, t, bos_id, eos_id, err);
        if (st) plm_writer_abort(w);
        else st = plm_writer_commit(w, err);
    }
    return st;
}
