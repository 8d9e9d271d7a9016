// tokenizer.c: plm_tokenizer, BPE as Hugging Face defines it: byte-level for the GPT-2 family
// (GPT-2, SmolLM/SmolLM2, StarCoder) and for Llama 3 and Qwen2/2.5/3, and SentencePiece-style with
// byte fallback for Gemma: the object and how it is built. Here: the building steps that
// tokenizer.json, GGUF arrays and added tokens share (texts, the text -> id table, decoded bytes,
// merges; the struct is in tokenizer_internal.h), GGUF pre-tokenizer names, merges from GGUF's
// SentencePiece scores, building from GGUF-style arrays, adding tokens, decode and the read-back
// accessors. Not here: the tokenizer.json reader and writer (tokenizer_json.c), encode
// (tokenizer_encode.c). Not supported at all: other normalizers (NFKC, Lowercase, ...), the
// Metaspace pre-tokenizer, Unigram, WordPiece, post-processors (encode never adds BOS/EOS): they
// load as PLM_ERR_UNSUPPORTED, never as silently wrong ids.
//
// Reference: transformers.js 3.8 src/tokenizers.js (the oracle of
// tests/fixtures/tokenizer-smollm2.jsonl and of tests/tokenizer_live.mjs), which mirrors the Rust
// `tokenizers` crate; tokenizer_encode.c lists where the two differ.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"
#include "utf8.h"

// ---- the byte-level alphabet (tokenizer_internal.h) ----

static void byte_alphabet(uint16_t byte_cp[256], int16_t cp_byte[BYTE_CP_MAX]) {
    int extra = 0;
    for (int i = 0; i < BYTE_CP_MAX; i++) cp_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        byte_cp[b] = (uint16_t)(printable ? b : 256 + extra++);
        cp_byte[byte_cp[b]] = (int16_t)b;
    }
}

// ---- the text store ----

static size_t table_size(size_t n) {
    size_t s = 16;
    while (s < 2 * n) s *= 2;
    return s;
}

// plm_tokenizer_blob_reserve: room for n more bytes; returns the offset where they go, or -1 on
// overflow/OOM.
int64_t plm_tokenizer_blob_reserve(plm_tokenizer *t, size_t n) {
    if (n > UINT32_MAX - t->blob_len) return -1; // spans are 32-bit
    if (t->blob_len + n > t->blob_cap) {
        size_t cap = t->blob_cap ? t->blob_cap : 1 << 16;
        while (cap < t->blob_len + n) cap *= 2;
        char *b = realloc(t->blob, cap);
        if (!b) return -1;
        t->blob = b, t->blob_cap = cap;
    }
    return (int64_t)t->blob_len;
}

static int blob_add(plm_tokenizer *t, const char *s, size_t n, span *out) {
    int64_t off = plm_tokenizer_blob_reserve(t, n);
    if (off < 0) return -1;
    if (n) memcpy(t->blob + off, s, n);
    t->blob_len += n;
    *out = (span){(uint32_t)off, (uint32_t)n};
    return 0;
}

void plm_tokenizer_free(plm_tokenizer *t) {
    if (!t) return;
    free(t->text);
    free(t->bytes);
    free(t->type);
    free(t->blob);
    free(t->index);
    free(t->merge_text);
    free(t->merge_left);
    free(t->pairs);
    free(t->added);
    free(t);
}

// ---- building: the same steps for tokenizer.json and GGUF arrays ----

// plm_tokenizer_build_begin: an empty tokenizer of n_vocab tokens (texts unset) with room for
// n_merges merges.
plm_status plm_tokenizer_build_begin(plm_tokenizer **out, int32_t n_vocab, int32_t n_merges,
                                     plm_error *err) {
    plm_tokenizer *t = plm_alloc(1, sizeof *t);
    if (t) {
        t->n_vocab = n_vocab;
        t->text = plm_alloc((size_t)n_vocab, sizeof *t->text);
        t->bytes = plm_alloc((size_t)n_vocab, sizeof *t->bytes);
        t->type = plm_alloc((size_t)n_vocab, sizeof *t->type);
        t->merge_text = plm_alloc((size_t)n_merges + 1, sizeof *t->merge_text);
        t->merge_left = plm_alloc((size_t)n_merges + 1, sizeof *t->merge_left);
        t->pair_mask = table_size((size_t)n_merges) - 1;
        t->pairs = plm_alloc(t->pair_mask + 1, sizeof *t->pairs);
        t->added = plm_alloc((size_t)n_vocab, sizeof *t->added);
        t->use_regex = 1;
        byte_alphabet(t->byte_cp, t->cp_byte);
    }
    if (!t || !t->text || !t->bytes || !t->type || !t->merge_text || !t->merge_left || !t->pairs ||
        !t->added) {
        plm_tokenizer_free(t);
        return plm_fail(err, PLM_ERR_NOMEM, "tokenizer: out of memory for %d tokens", (int)n_vocab);
    }
    for (int32_t i = 0; i < n_vocab; i++) t->text[i].len = UINT32_MAX; // unset
    for (size_t i = 0; i <= t->pair_mask; i++) t->pairs[i].key = EMPTY_KEY;
    *out = t;
    return PLM_OK;
}

// set_token: give id its text and type; a second definition must agree on the text.
static plm_status set_token(plm_tokenizer *t, int32_t id, const char *s, size_t n, int32_t type,
                            const char *where, plm_error *err) {
    if (t->text[id].len != UINT32_MAX) {
        if (t->text[id].len != n || memcmp(blob_at(t, t->text[id]), s, n))
            return plm_fail(err, PLM_ERR_FORMAT, "%s: id %d is given to two different tokens",
                            where, (int)id);
    } else if (blob_add(t, s, n, &t->text[id])) {
        return plm_fail(err, PLM_ERR_NOMEM, "%s: out of memory", where);
    }
    t->type[id] = type;
    return PLM_OK;
}

// plm_tokenizer_add_added: record an added token (matched before BPE) with its tokenizer.json
// flags.
void plm_tokenizer_add_added(plm_tokenizer *t, int32_t id, int lstrip, int rstrip, int single_word,
                             int normalized) {
    for (int32_t i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) return;
    t->added[t->n_added++] = (added_token){id, (uint8_t)lstrip, (uint8_t)rstrip,
                                           (uint8_t)single_word, (uint8_t)normalized};
}

// byte_token: the byte a "<0xNN>" token stands for (SentencePiece's byte fallback), or -1.
static int byte_token(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

// decoded_bytes: what a token decodes to. Byte-level: normal tokens map each character of the
// byte-level alphabet back to its byte; added tokens, and any token with a character outside that
// alphabet, decode to their text unchanged (transformers.js ByteLevelDecoder). SentencePiece
// (spm): a byte token is its byte, any other token its text with U+2581 as ' ' (the Replace,
// ByteFallback and Fuse decoders of Gemma's tokenizer.json).
static int decoded_bytes(plm_tokenizer *t, int32_t id) {
    span s = t->text[id];
    int added = t->type[id] == PLM_TOKEN_TYPE_CONTROL || t->type[id] == PLM_TOKEN_TYPE_USER_DEFINED;
    if (plm_tokenizer_blob_reserve(t, s.len) < 0) return -1;
    const unsigned char *p = (const unsigned char *)blob_at(t, s); // valid after the reserve
    size_t o = t->blob_len;
    if (t->spm && t->type[id] == PLM_TOKEN_TYPE_BYTE) {
        t->blob[o++] = (char)byte_token((const char *)p, s.len);
    } else if (t->spm) {
        for (size_t i = 0; i < s.len; i++)
            if (i + 2 < s.len && !memcmp(p + i, "\xE2\x96\x81", 3)) t->blob[o++] = ' ', i += 2;
            else t->blob[o++] = (char)p[i];
    }
    for (size_t i = 0; i < s.len && !added && !t->spm;) {
        uint32_t cp;
        size_t k = utf8_next(p, s.len, i, &cp);
        if (cp >= BYTE_CP_MAX || t->cp_byte[cp] < 0) added = 1; // not byte-level: keep the text
        else t->blob[o++] = (char)t->cp_byte[cp];
        i += k;
    }
    if (added && !t->spm) {
        memcpy(t->blob + t->blob_len, p, s.len);
        o = t->blob_len + s.len;
    }
    t->bytes[id] = (span){(uint32_t)t->blob_len, (uint32_t)(o - t->blob_len)};
    t->blob_len = o;
    return 0;
}

// added_key_less: the matching order of added tokens: by first byte, then longest first, so the
// first one that matches at a position is the longest (leftmost-longest, like a trie).
static int added_key_less(const plm_tokenizer *t, int32_t a, int32_t b) {
    span x = t->text[a], y = t->text[b];
    unsigned char fx = x.len ? (unsigned char)t->blob[x.off] : 0;
    unsigned char fy = y.len ? (unsigned char)t->blob[y.off] : 0;
    return fx != fy ? fx < fy : x.len > y.len;
}

// sort_added: insertion sort of the added tokens (tens to a few thousand), then the buckets.
static void sort_added(plm_tokenizer *t) {
    for (int32_t i = 1; i < t->n_added; i++) {
        added_token a = t->added[i];
        int32_t j = i;
        for (; j > 0 && added_key_less(t, a.id, t->added[j - 1].id); j--)
            t->added[j] = t->added[j - 1];
        t->added[j] = a;
    }
    int32_t k = 0;
    for (int b = 0; b <= 256; b++) {
        while (k < t->n_added && t->text[t->added[k].id].len > 0 &&
               (unsigned char)t->blob[t->text[t->added[k].id].off] < b)
            k++;
        t->added_first[b] = k;
    }
}

// index_text: enter id into the text -> id table; of two tokens with one text, the later id wins.
static void index_text(plm_tokenizer *t, int32_t id) {
    span s = t->text[id];
    size_t h = hash_bytes(blob_at(t, s), s.len) & t->index_mask;
    for (; t->index[h] >= 0; h = (h + 1) & t->index_mask) {
        span o = t->text[t->index[h]];
        if (o.len == s.len && !memcmp(blob_at(t, o), blob_at(t, s), s.len)) break;
    }
    t->index[h] = id;
}

// plm_tokenizer_build_index: after every token has its text: check for holes, index texts, derive
// decoded bytes, the one-byte tokens and the added-token buckets.
plm_status plm_tokenizer_build_index(plm_tokenizer *t, const char *where, plm_error *err) {
    t->index_mask = table_size((size_t)t->n_vocab) - 1;
    t->index = malloc((t->index_mask + 1) * sizeof *t->index);
    if (!t->index) return plm_fail(err, PLM_ERR_NOMEM, "%s: out of memory", where);
    memset(t->index, 0xFF, (t->index_mask + 1) * sizeof *t->index); // all -1
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (t->text[id].len == UINT32_MAX)
            return plm_fail(err, PLM_ERR_FORMAT, "%s: no token has id %d (ids must be 0..%d)",
                            where, (int)id, (int)t->n_vocab - 1);
        if (t->spm && t->type[id] == PLM_TOKEN_TYPE_NORMAL &&
            byte_token(blob_at(t, t->text[id]), t->text[id].len) >= 0)
            t->type[id] = PLM_TOKEN_TYPE_BYTE; // tokenizer.json does not mark them
        if (decoded_bytes(t, id)) return plm_fail(err, PLM_ERR_NOMEM, "%s: out of memory", where);
        index_text(t, id);
    }
    for (int b = 0; b < 256; b++) {
        uint16_t cp = t->byte_cp[b];
        char utf8[7] = {(char)(cp < 0x80 ? cp : 0xC0 | (cp >> 6)), (char)(0x80 | (cp & 0x3F))};
        if (t->spm) snprintf(utf8, sizeof utf8, "<0x%02X>", b);
        t->byte_id[b] = find_text(t, utf8, t->spm ? 6 : cp < 0x80 ? 1 : 2); // -1: see bpe_word
        if (t->spm && t->byte_id[b] < 0)
            return plm_fail(err, PLM_ERR_UNSUPPORTED,
                            "%s: byte fallback without the token <0x%02X> is not supported", where,
                            b);
    }
    sort_added(t);
    return PLM_OK;
}

// plm_tokenizer_add_merge: the next merge, of priority rank, joins tokens a and b (vocabulary
// texts) into the token a+b. A pair listed twice keeps its later rank, as both HF implementations
// do (they build a map).
plm_status plm_tokenizer_add_merge(plm_tokenizer *t, const char *a, size_t na, const char *b,
                                   size_t nb, int32_t rank, const char *where, plm_error *err) {
    int32_t left = find_text(t, a, na), right = find_text(t, b, nb);
    if (left < 0 || right < 0)
        return plm_fail(err, PLM_ERR_FORMAT, "%s: merge %d: '%.*s' is not in the vocabulary", where,
                        (int)t->n_merges, (int)(left < 0 ? na : nb), left < 0 ? a : b);
    span m;
    int64_t off = plm_tokenizer_blob_reserve(t, na + nb + 1);
    if (off < 0) return plm_fail(err, PLM_ERR_NOMEM, "%s: out of memory", where);
    memcpy(t->blob + off, a, na); // "a b" for read-back, then "ab" just past it for the look-up
    t->blob[off + (int64_t)na] = ' ';
    memcpy(t->blob + off + (int64_t)na + 1, b, nb);
    t->blob_len += na + nb + 1;
    m = (span){(uint32_t)off, (uint32_t)(na + nb + 1)};
    off = plm_tokenizer_blob_reserve(t, na + nb);
    if (off < 0) return plm_fail(err, PLM_ERR_NOMEM, "%s: out of memory", where);
    memcpy(t->blob + off, t->blob + m.off, na);
    memcpy(t->blob + off + (int64_t)na, t->blob + m.off + na + 1, nb);
    int32_t merged = find_text(t, t->blob + off, na + nb); // not kept: blob_len unchanged
    if (merged < 0)
        return plm_fail(
            err, PLM_ERR_FORMAT, "%s: merge %d: '%.*s' + '%.*s' is not in the vocabulary", where,
            (int)t->n_merges, (int)na, t->blob + m.off, (int)nb, t->blob + m.off + na + 1);
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    size_t h = hash_pair(key) & t->pair_mask;
    while (t->pairs[h].key != EMPTY_KEY && t->pairs[h].key != key) h = (h + 1) & t->pair_mask;
    t->pairs[h] = (pair_slot){key, rank, merged};
    t->merge_left[t->n_merges] = left;
    t->merge_text[t->n_merges++] = m;
    return PLM_OK;
}

// ---- pre-tokenizer names ----
// GGUF names a pre-tokenizer (tokenizer.ggml.pre); llama.cpp's llama-vocab.cpp lists which regexes
// each name means. Byte-level BPE as HF writes it: ByteLevel's GPT-2 regex alone; Digits
// (individual_digits) before it; Llama 3's regex (and ignore_merges, which llama.cpp sets for these
// names) or Qwen2's (and the NFC normalizer of Qwen's tokenizer.json, which GGUF does not record)
// before a ByteLevel without regex.

static const char *const pre_gpt2_names[] = {"gpt2", "mpt", "olmo", "jais"};
static const char *const pre_digits_names[] = {"smollm",    "starcoder", "refact",    "command-r",
                                               "codeshell", "exaone",    "minerva-7b"};
static const char *const pre_llama3_names[] = {"llama-bpe", "llama3", "llama-v3"};
static const char *const pre_qwen2_names[] = {"qwen2", "deepseek-r1-qwen"};

static int name_in(const char *name, const char *const *names, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(name, names[i])) return 1;
    return 0;
}
#define NAME_IN(name, names) name_in(name, names, sizeof names / sizeof *names)

// plm_tokenizer_set_pre_name: the GGUF name of the configured pre-tokenizer, or "custom" (no GGUF
// name). SentencePiece tokenizers are "default", as llama.cpp's converter leaves them.
void plm_tokenizer_set_pre_name(plm_tokenizer *t) {
    const char *name = "custom";
    int plain = !t->add_prefix_space && !t->spm;
    int bl = plain && t->use_regex && !t->ignore_merges && t->normalizer == NORM_NONE;
    int split = plain && !t->use_regex && t->n_pre == 1;
    if (bl && t->n_pre == 0) name = "gpt2";
    if (bl && t->n_pre == 1 && t->pre[0] == PRE_DIGITS) name = "smollm";
    if (split && t->pre[0] == PRE_LLAMA3 && t->ignore_merges && t->normalizer == NORM_NONE)
        name = "llama-bpe";
    if (split && t->pre[0] == PRE_QWEN2 && !t->ignore_merges && t->normalizer == NORM_NFC)
        name = "qwen2";
    if (t->spm && t->n_pre == 0 && !t->ignore_merges && t->normalizer == NORM_METASPACE)
        name = "default";
    strcpy(t->pre_name, name);
}

// pre_from_name: configure the byte-level pre-tokenizer for a GGUF name; -1 when it is not one we
// know.
static int pre_from_name(plm_tokenizer *t, const char *name) {
    t->use_regex = 1, t->add_prefix_space = 0, t->n_pre = 0;
    if (NAME_IN(name, pre_digits_names)) t->pre[t->n_pre++] = PRE_DIGITS;
    if (NAME_IN(name, pre_llama3_names) || NAME_IN(name, pre_qwen2_names)) {
        int llama3 = NAME_IN(name, pre_llama3_names);
        t->pre[t->n_pre++] = llama3 ? PRE_LLAMA3 : PRE_QWEN2;
        t->use_regex = 0;
        t->ignore_merges = llama3;
        t->normalizer = llama3 ? NORM_NONE : NORM_NFC;
    }
    if (!t->n_pre && !NAME_IN(name, pre_gpt2_names)) return -1;
    plm_tokenizer_set_pre_name(t);
    return 0;
}

// ---- merges from SentencePiece scores ----
// A GGUF of tokenizer.ggml.model "llama" has scores and no merges: SentencePiece BPE (llama.cpp's
// llm_tokenizer_spm) joins the adjacent pair whose concatenation is the token of highest score,
// the leftmost of equals. As merges: every split of a token into two tokens is a merge, ranked by
// the token's score (then id); the splits of one token share its rank, so the leftmost wins.

typedef struct {
    float score;
    int32_t id;
} scored;

static int by_score(const void *x, const void *y) { // highest score first, then lowest id
    const scored *a = x, *b = y;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

// split_merges: count the splits of token id into two tokens, and with rank >= 0 add each as a
// merge of that rank; returns how many.
static int32_t split_merges(plm_tokenizer *t, int32_t id, int32_t rank, plm_status *st,
                            plm_error *err) {
    span s = t->text[id];
    char *p = malloc(s.len + 1); // a copy: adding a merge may move the blob
    if (!p) return *st = plm_fail(err, PLM_ERR_NOMEM, "GGUF tokenizer: out of memory"), 0;
    memcpy(p, blob_at(t, s), s.len);
    int32_t n = 0;
    for (uint32_t k = 1; k < s.len && !*st; k++) {
        if (((unsigned char)p[k] & 0xC0) == 0x80) continue; // inside a character
        if (find_text(t, p, k) < 0 || find_text(t, p + k, s.len - k) < 0) continue;
        n++;
        if (rank >= 0)
            *st = plm_tokenizer_add_merge(t, p, k, p + k, s.len - k, rank, "GGUF tokenizer", err);
    }
    free(p);
    return n;
}

// merges_from_scores: the merges of a SentencePiece vocabulary (after plm_tokenizer_build_index).
static plm_status merges_from_scores(plm_tokenizer *t, const float *scores, plm_error *err) {
    plm_status st = PLM_OK;
    int32_t n = 0;
    scored *order = plm_alloc((size_t)t->n_vocab, sizeof *order);
    for (int32_t id = 0; id < t->n_vocab && order; id++) order[id] = (scored){scores[id], id};
    if (order) qsort(order, (size_t)t->n_vocab, sizeof *order, by_score);
    for (int32_t id = 0; id < t->n_vocab && !st; id++) n += split_merges(t, id, -1, &st, err);
    free(t->merge_text), free(t->merge_left), free(t->pairs);
    t->merge_text = plm_alloc((size_t)n + 1, sizeof *t->merge_text);
    t->merge_left = plm_alloc((size_t)n + 1, sizeof *t->merge_left);
    t->pair_mask = table_size((size_t)n) - 1;
    t->pairs = plm_alloc(t->pair_mask + 1, sizeof *t->pairs);
    if (!st && (!order || !t->merge_text || !t->merge_left || !t->pairs))
        st = plm_fail(err, PLM_ERR_NOMEM, "GGUF tokenizer: out of memory for %d merges", (int)n);
    for (size_t i = 0; !st && i <= t->pair_mask; i++) t->pairs[i].key = EMPTY_KEY;
    for (int32_t r = 0; r < t->n_vocab && !st; r++) split_merges(t, order[r].id, r, &st, err);
    free(order);
    return st;
}

// ---- GGUF arrays ----

plm_status plm_tokenizer_from_vocab(plm_tokenizer **out, const plm_str *tokens, int32_t n_tokens,
                                    const plm_str *merges, int32_t n_merges,
                                    const int32_t *token_types, const float *scores,
                                    const char *pre, plm_error *err) {
    if (!out || !tokens || n_tokens <= 0 || n_merges < 0 || (n_merges && !merges) || !pre)
        return plm_fail(err, PLM_ERR_ARG, "plm_tokenizer_from_vocab: bad arguments");
    *out = NULL;
    const char *where = "GGUF tokenizer";
    plm_tokenizer *t;
    plm_status st = plm_tokenizer_build_begin(&t, n_tokens, scores ? 0 : n_merges, err);
    if (st) return st;
    if (scores) { // SentencePiece: whatever pre says, llama.cpp's converter only replaces spaces
        t->spm = 1, t->use_regex = 0, t->normalizer = NORM_METASPACE;
        plm_tokenizer_set_pre_name(t);
    } else if (pre_from_name(t, pre)) {
        plm_tokenizer_free(t);
        return plm_fail(err, PLM_ERR_UNSUPPORTED,
                        "%s: pre-tokenizer '%s' is not supported (want gpt2, smollm, llama-bpe, "
                        "qwen2 or another name with the same regexes in llama.cpp)",
                        where, pre);
    }
    for (int32_t i = 0; i < n_tokens && !st; i++) {
        int32_t type = token_types ? token_types[i] : PLM_TOKEN_TYPE_NORMAL;
        int added = type == PLM_TOKEN_TYPE_CONTROL || type == PLM_TOKEN_TYPE_USER_DEFINED;
        if (added && tokens[i].n == 0)
            st = plm_fail(err, PLM_ERR_FORMAT, "%s: token %d is an empty added token", where,
                          (int)i);
        else st = set_token(t, i, tokens[i].s, tokens[i].n, type, where, err);
        if (added) plm_tokenizer_add_added(t, i, 0, 0, 0, type == PLM_TOKEN_TYPE_USER_DEFINED);
    }
    if (!st) st = plm_tokenizer_build_index(t, where, err);
    if (!st && scores) st = merges_from_scores(t, scores, err);
    for (int32_t i = 0; i < n_merges && !st && !scores; i++) {
        const char *sp = merges[i].n ? memchr(merges[i].s, ' ', merges[i].n) : NULL;
        if (!sp) st = plm_fail(err, PLM_ERR_FORMAT, "%s: merge %d has no space", where, (int)i);
        else
            st = plm_tokenizer_add_merge(t, merges[i].s, (size_t)(sp - merges[i].s), sp + 1,
                                         merges[i].n - (size_t)(sp - merges[i].s) - 1, i, where,
                                         err);
    }
    if (st) {
        plm_tokenizer_free(t);
        return st;
    }
    *out = t;
    return PLM_OK;
}

// ---- adding tokens ----

// is_new: texts[i] is neither in t nor an earlier entry of texts, so it gets a new id.
static int is_new(const plm_tokenizer *t, const char *const *texts, int32_t i) {
    if (find_text(t, texts[i], strlen(texts[i])) >= 0) return 0;
    for (int32_t k = 0; k < i; k++)
        if (!strcmp(texts[k], texts[i])) return 0;
    return 1;
}

// copy_tokens: c (built for at least t's tokens and merges) gets every token, added token, merge
// and pre-tokenizer setting of t; the caller then adds more tokens and calls
// plm_tokenizer_build_index.
static plm_status copy_tokens(plm_tokenizer *c, const plm_tokenizer *t, const char *where,
                              plm_error *err) {
    memcpy(c->pre, t->pre, sizeof c->pre);
    c->n_pre = t->n_pre, c->add_prefix_space = t->add_prefix_space, c->use_regex = t->use_regex;
    c->ignore_merges = t->ignore_merges, c->normalizer = t->normalizer, c->spm = t->spm;
    memcpy(c->pre_name, t->pre_name, sizeof c->pre_name);
    for (int32_t id = 0; id < t->n_vocab; id++) {
        plm_status st =
            set_token(c, id, blob_at(t, t->text[id]), t->text[id].len, t->type[id], where, err);
        if (st) return st;
    }
    for (int32_t k = 0; k < t->n_added; k++) {
        const added_token *a = &t->added[k];
        plm_tokenizer_add_added(c, a->id, a->lstrip, a->rstrip, a->single_word, a->normalized);
    }
    return PLM_OK;
}

plm_status plm_tokenizer_add_tokens(plm_tokenizer **out, const plm_tokenizer *t,
                                    const char *const *texts, int32_t n, int special,
                                    plm_error *err) {
    if (!out || !t || n < 0 || (n && !texts))
        return plm_fail(err, PLM_ERR_ARG, "plm_tokenizer_add_tokens: bad arguments");
    *out = NULL;
    const char *where = "plm_tokenizer_add_tokens";
    int32_t n_new = 0;
    for (int32_t i = 0; i < n; i++) {
        if (!texts[i] || !texts[i][0])
            return plm_fail(err, PLM_ERR_ARG, "%s: text %d is empty", where, (int)i);
        n_new += is_new(t, texts, i);
    }
    plm_tokenizer *c;
    plm_status st = plm_tokenizer_build_begin(&c, t->n_vocab + n_new, t->n_merges, err);
    if (!st) st = copy_tokens(c, t, where, err);
    int32_t type = special ? PLM_TOKEN_TYPE_CONTROL : PLM_TOKEN_TYPE_USER_DEFINED;
    for (int32_t i = 0, id = t->n_vocab; i < n && !st; i++) {
        if (!is_new(t, texts, i)) continue;
        st = set_token(c, id, texts[i], strlen(texts[i]), type, where, err);
        plm_tokenizer_add_added(c, id++, 0, 0, 0,
                                !special); // HF's defaults: normalized unless special
    }
    if (!st) st = plm_tokenizer_build_index(c, where, err);
    for (int32_t i = 0; i < t->n_merges && !st; i++) {
        span m = t->merge_text[i];
        size_t nl = t->text[t->merge_left[i]].len;
        int32_t rank =
            find_pair(t, t->merge_left[i], find_text(t, blob_at(t, m) + nl + 1, m.len - nl - 1))
                ->rank;
        st = plm_tokenizer_add_merge(c, blob_at(t, m), nl, blob_at(t, m) + nl + 1, m.len - nl - 1,
                                     rank, where, err);
    }
    if (st) {
        plm_tokenizer_free(c);
        return st;
    }
    *out = c;
    return PLM_OK;
}

// ---- decode and read back ----

int64_t plm_tokenizer_decode(const plm_tokenizer *t, const int32_t *ids, int32_t n, char *out,
                             size_t cap) {
    if (!t || n < 0 || (n && !ids) || (cap && !out)) return PLM_ERR_ARG;
    size_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab) return PLM_ERR_ARG;
        span b = t->bytes[ids[i]];
        if (total < cap)
            memcpy(out + total, blob_at(t, b), b.len < cap - total ? b.len : cap - total);
        total += b.len;
    }
    return (int64_t)total;
}

int32_t plm_tokenizer_n_vocab(const plm_tokenizer *t) {
    return t ? t->n_vocab : 0;
}

int32_t plm_tokenizer_token_id(const plm_tokenizer *t, const char *text) {
    return t && text ? find_text(t, text, strlen(text)) : -1;
}

plm_str plm_tokenizer_token_text(const plm_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_vocab) return (plm_str){"", 0};
    return (plm_str){blob_at(t, t->text[id]), t->text[id].len};
}

int32_t plm_tokenizer_token_type(const plm_tokenizer *t, int32_t id) {
    return t && id >= 0 && id < t->n_vocab ? t->type[id] : 0;
}

int32_t plm_tokenizer_n_merges(const plm_tokenizer *t) {
    return t ? t->n_merges : 0;
}

plm_str plm_tokenizer_merge(const plm_tokenizer *t, int32_t i) {
    if (!t || i < 0 || i >= t->n_merges) return (plm_str){"", 0};
    return (plm_str){blob_at(t, t->merge_text[i]), t->merge_text[i].len};
}

int plm_tokenizer_spm(const plm_tokenizer *t) {
    return t ? t->spm : 0;
}

void plm_tokenizer_scores(const plm_tokenizer *t, float *out) {
    for (int32_t id = 0; id < t->n_vocab; id++) out[id] = -(float)t->n_merges;
    for (int32_t i = t->n_merges - 1; i >= 0; i--) { // down, so the first merge's rank stays
        span m = t->merge_text[i];
        size_t nl = t->text[t->merge_left[i]].len;
        const pair_slot *p =
            find_pair(t, t->merge_left[i], find_text(t, blob_at(t, m) + nl + 1, m.len - nl - 1));
        out[p->id] = -(float)p->rank;
    }
}

const char *plm_tokenizer_pre(const plm_tokenizer *t) {
    return t ? t->pre_name : "";
}
