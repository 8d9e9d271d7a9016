// tokenizer.c: plm_tokenizer, byte-level BPE as Hugging Face defines it for the GPT-2 family
// (GPT-2, SmolLM/SmolLM2, StarCoder): added tokens are matched first, the text between them goes
// through the pre-tokenizers (Digits, the GPT-2 regex), and each piece is BPE-merged by merge rank
// over its bytes. Loads tokenizer.json or GGUF-style arrays; writes tokenizer.json and
// tokenizer_config.json. Not here: normalizers (NFC, Lowercase, ...), Metaspace/SentencePiece,
// WordPiece, post-processors (encode never adds BOS/EOS): they load as PLM_ERR_UNSUPPORTED, never
// as silently wrong ids.
//
// Reference: transformers.js 3.8 src/tokenizers.js (the oracle of
// tests/fixtures/tokenizer-smollm2.jsonl and of tests/tokenizer_live.mjs), which mirrors the Rust `tokenizers` crate. Where the two differ we
// follow transformers.js, the engine of the browser deployment:
//  - \s is JavaScript's white space: U+FEFF is space, U+0085 is not (Rust's White_Space: the reverse);
//  - Digits splits ASCII 0-9 only (JS `\d`); Rust's Digits splits every \p{N} character;
//  - added tokens are found in one leftmost-longest pass; lstrip/rstrip strip JS white space;
//    single_word and normalized are kept (and saved) but do not change matching;
//  - \p{L}, \p{N} come from Unicode 17 (node 20); Rust's tables are older (new code points only).
// Invalid UTF-8 is repaired before anything else: each maximal invalid subpart becomes U+FFFD,
// exactly as TextDecoder does, which is the string transformers.js sees for the same bytes.
// Length: about 1,300 lines, over the usual 800, because the object, its two readers (tokenizer.json,
// GGUF arrays), its writer and the encoder share the private struct; the sections below keep them
// apart, and the tokenizer.json reader/writer would be the piece to move out first.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "json.h"
#include "tokenizer.h"
#include "unicode_tables.h"
#include "utf8.h"

// ---- UTF-8 (utf8.h) and character classes ----

static int in_ranges(const uint32_t (*r)[2], size_t n, uint32_t cp) {
    size_t a = 0, b = n; // binary search for the last range with lo <= cp
    while (a < b) {
        size_t m = (a + b) / 2;
        if (r[m][0] <= cp) a = m + 1;
        else b = m;
    }
    return a > 0 && cp <= r[a - 1][1];
}

// JavaScript's \s: WhiteSpace and LineTerminator of ECMA-262 (see the file header for Rust's).
static int is_space(uint32_t cp) {
    if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
    return cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

enum { CLS_LETTER, CLS_NUMBER, CLS_SPACE, CLS_OTHER }; // the four classes the GPT-2 regex sees

static int char_class(uint32_t cp) {
    if (cp < 0x80) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return CLS_LETTER;
        if (cp >= '0' && cp <= '9') return CLS_NUMBER;
        return is_space(cp) ? CLS_SPACE : CLS_OTHER;
    }
    if (is_space(cp)) return CLS_SPACE;
    if (in_ranges(plm_unicode_letter, sizeof plm_unicode_letter / sizeof plm_unicode_letter[0], cp))
        return CLS_LETTER;
    if (in_ranges(plm_unicode_number, sizeof plm_unicode_number / sizeof plm_unicode_number[0], cp))
        return CLS_NUMBER;
    return CLS_OTHER;
}

// utf8_valid: 1 when all n bytes are well-formed UTF-8 (the common case: no copy needed).
static int utf8_valid(const unsigned char *s, size_t n) {
    uint32_t cp;
    for (size_t p = 0; p < n;) {
        if (s[p] < 0x80) {
            p++;
            continue;
        }
        size_t k = utf8_next(s, n, p, &cp);
        if (cp == 0xFFFD && !(k == 3 && s[p] == 0xEF && s[p + 1] == 0xBF && s[p + 2] == 0xBD))
            return 0;
        p += k;
    }
    return 1;
}

// utf8_repair: a copy of s with each maximal invalid subpart replaced by U+FFFD (EF BF BD).
static char *utf8_repair(const unsigned char *s, size_t n, size_t *out_n) {
    char *out = plm_alloc(n, 3); // every byte grows to at most 3
    if (!out) return NULL;
    size_t o = 0;
    for (size_t p = 0; p < n;) {
        uint32_t cp;
        size_t k = utf8_next(s, n, p, &cp);
        if (cp == 0xFFFD) memcpy(out + o, "\xEF\xBF\xBD", 3), o += 3;
        else memcpy(out + o, s + p, k), o += k;
        p += k;
    }
    *out_n = o;
    return out;
}

// ---- the byte-level alphabet ----
// GPT-2's bytes_to_unicode: the 188 printable bytes ('!'..'~', U+00A1..U+00AC, U+00AE..U+00FF)
// stand for themselves; the other 68 bytes, in order, become U+0100..U+0143. So ' ' is 'Ġ' (U+0120)
// and '\n' is 'Ċ' (U+010A). Vocabulary strings are written in this alphabet.
#define BYTE_CP_MAX 0x144

static void byte_alphabet(uint16_t byte_cp[256], int16_t cp_byte[BYTE_CP_MAX]) {
    int extra = 0;
    for (int i = 0; i < BYTE_CP_MAX; i++) cp_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        byte_cp[b] = (uint16_t)(printable ? b : 256 + extra++);
        cp_byte[byte_cp[b]] = (int16_t)b;
    }
}

// ---- the object ----

typedef struct {
    uint32_t off, len; // a byte range of plm_tokenizer.blob
} span;

typedef struct {
    int32_t id;                                      // the token
    uint8_t lstrip, rstrip, single_word, normalized; // tokenizer.json flags
} added_token;

typedef struct {
    uint64_t key; // left id << 32 | right id; EMPTY_KEY when free
    int32_t rank; // merge priority, lower merges first
    int32_t id;   // the merged token
} pair_slot;
#define EMPTY_KEY UINT64_MAX

enum { PRE_DIGITS, PRE_DIGIT_RUNS, PRE_GPT2 }; // steps before ByteLevel (Digits, Split)
#define MAX_PRE 4

struct plm_tokenizer {
    int32_t n_vocab;
    span *text;    // (n_vocab) the vocabulary form ("Ġthe"), or an added token's content
    span *bytes;   // (n_vocab) what the token decodes to
    int32_t *type; // (n_vocab) PLM_TOKEN_TYPE_*
    char *blob;    // every string above, and the merges' "left right" texts
    size_t blob_len, blob_cap;
    int32_t *index; // (index_mask + 1) open addressing: vocabulary text -> id, -1 free
    size_t index_mask;
    int32_t n_merges;
    span *merge_text;    // (n_merges) "left right", rank order
    int32_t *merge_left; // (n_merges) the left token: where merge_text splits
    pair_slot *pairs;    // (pair_mask + 1) open addressing: (left, right) -> rank, merged id
    size_t pair_mask;
    int32_t byte_id[256]; // the one-byte token of each byte, where BPE starts; -1 if none
    added_token *added;   // (n_added) sorted by first byte, then longest first
    int32_t n_added;
    int32_t added_first[257]; // added[added_first[b] .. added_first[b+1]) start with byte b
    uint8_t pre[MAX_PRE];     // (n_pre) PRE_* steps run before ByteLevel
    int n_pre;
    int add_prefix_space;         // ByteLevel: prepend ' ' to a piece that does not start with one
    int use_regex;                // ByteLevel: split with the GPT-2 regex
    int ignore_merges;            // BPE: a word that is a whole token skips merging
    char pre_name[24];            // GGUF tokenizer.ggml.pre
    uint16_t byte_cp[256];        // byte -> code point of the byte-level alphabet
    int16_t cp_byte[BYTE_CP_MAX]; // and back, -1 for code points outside it
};

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603u; // FNV-1a
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211u;
    return h;
}

static uint64_t hash_pair(uint64_t key) {
    return (key * 0x9E3779B97F4A7C15u) >> 17;
}

static size_t table_size(size_t n) {
    size_t s = 16;
    while (s < 2 * n) s *= 2;
    return s;
}

static const char *blob_at(const plm_tokenizer *t, span s) {
    return t->blob + s.off;
}

// blob_reserve: room for n more bytes; returns the offset where they go, or -1 on overflow/OOM.
static int64_t blob_reserve(plm_tokenizer *t, size_t n) {
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
    int64_t off = blob_reserve(t, n);
    if (off < 0) return -1;
    if (n) memcpy(t->blob + off, s, n);
    t->blob_len += n;
    *out = (span){(uint32_t)off, (uint32_t)n};
    return 0;
}

// find_text: id of the token whose vocabulary text is s (n bytes), or -1.
static int32_t find_text(const plm_tokenizer *t, const char *s, size_t n) {
    for (size_t h = hash_bytes(s, n) & t->index_mask;; h = (h + 1) & t->index_mask) {
        int32_t id = t->index[h];
        if (id < 0) return -1;
        if (t->text[id].len == n && !memcmp(blob_at(t, t->text[id]), s, n)) return id;
    }
}

// find_pair: the slot of merge (left, right), or NULL.
static const pair_slot *find_pair(const plm_tokenizer *t, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return NULL; // a byte without a token merges with nothing
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    for (size_t h = hash_pair(key) & t->pair_mask;; h = (h + 1) & t->pair_mask) {
        if (t->pairs[h].key == key) return &t->pairs[h];
        if (t->pairs[h].key == EMPTY_KEY) return NULL;
    }
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

// build_begin: an empty tokenizer of n_vocab tokens (texts unset) with room for n_merges merges.
static plm_status build_begin(plm_tokenizer **out, int32_t n_vocab, int32_t n_merges,
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

// add_added: record an added token (matched before BPE) with its tokenizer.json flags.
static void add_added(plm_tokenizer *t, int32_t id, int lstrip, int rstrip, int single_word,
                      int normalized) {
    for (int32_t i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) return;
    t->added[t->n_added++] = (added_token){id, (uint8_t)lstrip, (uint8_t)rstrip,
                                           (uint8_t)single_word, (uint8_t)normalized};
}

// decoded_bytes: what a token decodes to. Normal tokens map each character of the byte-level
// alphabet back to its byte; added tokens, and any token with a character outside that alphabet,
// decode to their text unchanged (transformers.js ByteLevelDecoder).
static int decoded_bytes(plm_tokenizer *t, int32_t id) {
    span s = t->text[id];
    int added = t->type[id] == PLM_TOKEN_TYPE_CONTROL || t->type[id] == PLM_TOKEN_TYPE_USER_DEFINED;
    if (blob_reserve(t, s.len) < 0) return -1;
    const unsigned char *p = (const unsigned char *)blob_at(t, s); // valid after the reserve
    size_t o = t->blob_len;
    for (size_t i = 0; i < s.len && !added;) {
        uint32_t cp;
        size_t k = utf8_next(p, s.len, i, &cp);
        if (cp >= BYTE_CP_MAX || t->cp_byte[cp] < 0) added = 1; // not byte-level: keep the text
        else t->blob[o++] = (char)t->cp_byte[cp];
        i += k;
    }
    if (added) {
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

// build_index: after every token has its text: check for holes, index texts, derive decoded
// bytes, the one-byte tokens and the added-token buckets.
static plm_status build_index(plm_tokenizer *t, const char *where, plm_error *err) {
    t->index_mask = table_size((size_t)t->n_vocab) - 1;
    t->index = malloc((t->index_mask + 1) * sizeof *t->index);
    if (!t->index) return plm_fail(err, PLM_ERR_NOMEM, "%s: out of memory", where);
    memset(t->index, 0xFF, (t->index_mask + 1) * sizeof *t->index); // all -1
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (t->text[id].len == UINT32_MAX)
            return plm_fail(err, PLM_ERR_FORMAT, "%s: no token has id %d (ids must be 0..%d)",
                            where, (int)id, (int)t->n_vocab - 1);
        if (decoded_bytes(t, id)) return plm_fail(err, PLM_ERR_NOMEM, "%s: out of memory", where);
        index_text(t, id);
    }
    for (int b = 0; b < 256; b++) {
        uint16_t cp = t->byte_cp[b];
        char utf8[2] = {(char)(cp < 0x80 ? cp : 0xC0 | (cp >> 6)), (char)(0x80 | (cp & 0x3F))};
        t->byte_id[b] = find_text(t, utf8, cp < 0x80 ? 1 : 2); // -1: see bpe_word
    }
    sort_added(t);
    return PLM_OK;
}

// add_merge: merge number rank joins tokens a and b (vocabulary texts) into the token a+b. A pair
// listed twice keeps its later rank, as both HF implementations do (they build a map).
static plm_status add_merge(plm_tokenizer *t, const char *a, size_t na, const char *b, size_t nb,
                            const char *where, plm_error *err) {
    int32_t rank = t->n_merges;
    int32_t left = find_text(t, a, na), right = find_text(t, b, nb);
    if (left < 0 || right < 0)
        return plm_fail(err, PLM_ERR_FORMAT, "%s: merge %d: '%.*s' is not in the vocabulary", where,
                        (int)rank, (int)(left < 0 ? na : nb), left < 0 ? a : b);
    span m;
    int64_t off = blob_reserve(t, na + nb + 1);
    if (off < 0) return plm_fail(err, PLM_ERR_NOMEM, "%s: out of memory", where);
    memcpy(t->blob + off, a, na); // "a b" for read-back, then "ab" just past it for the look-up
    t->blob[off + (int64_t)na] = ' ';
    memcpy(t->blob + off + (int64_t)na + 1, b, nb);
    t->blob_len += na + nb + 1;
    m = (span){(uint32_t)off, (uint32_t)(na + nb + 1)};
    off = blob_reserve(t, na + nb);
    if (off < 0) return plm_fail(err, PLM_ERR_NOMEM, "%s: out of memory", where);
    memcpy(t->blob + off, t->blob + m.off, na);
    memcpy(t->blob + off + (int64_t)na, t->blob + m.off + na + 1, nb);
    int32_t merged = find_text(t, t->blob + off, na + nb); // not kept: blob_len unchanged
    if (merged < 0)
        return plm_fail(err, PLM_ERR_FORMAT,
                        "%s: merge %d: '%.*s' + '%.*s' is not in the vocabulary", where, (int)rank,
                        (int)na, t->blob + m.off, (int)nb, t->blob + m.off + na + 1);
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
// each name means. Two shapes are byte-level BPE as HF writes it: ByteLevel's GPT-2 regex alone,
// and Digits(individual_digits) before it.

static const char *const pre_gpt2_names[] = {"gpt2", "mpt", "olmo", "jais"};
static const char *const pre_digits_names[] = {"smollm",    "starcoder", "refact",    "command-r",
                                               "codeshell", "exaone",    "minerva-7b"};

// set_pre_name: the GGUF name of the configured pre-tokenizer, or "custom" (no GGUF name).
static void set_pre_name(plm_tokenizer *t) {
    const char *name = "custom";
    if (t->use_regex && !t->add_prefix_space && t->n_pre == 0) name = "gpt2";
    if (t->use_regex && !t->add_prefix_space && t->n_pre == 1 && t->pre[0] == PRE_DIGITS)
        name = "smollm";
    strcpy(t->pre_name, name);
}

// pre_from_name: configure the pre-tokenizer for a GGUF name; -1 when it is not one we know.
static int pre_from_name(plm_tokenizer *t, const char *name) {
    t->use_regex = 1, t->add_prefix_space = 0, t->n_pre = 0;
    for (size_t i = 0; i < sizeof pre_gpt2_names / sizeof *pre_gpt2_names; i++)
        if (!strcmp(name, pre_gpt2_names[i])) return set_pre_name(t), 0;
    for (size_t i = 0; i < sizeof pre_digits_names / sizeof *pre_digits_names; i++)
        if (!strcmp(name, pre_digits_names[i])) {
            t->pre[t->n_pre++] = PRE_DIGITS;
            return set_pre_name(t), 0;
        }
    return -1;
}

// ---- GGUF arrays ----

plm_status plm_tokenizer_from_vocab(plm_tokenizer **out, const plm_str *tokens, int32_t n_tokens,
                                    const plm_str *merges, int32_t n_merges,
                                    const int32_t *token_types, const char *pre, plm_error *err) {
    if (!out || !tokens || n_tokens <= 0 || n_merges < 0 || (n_merges && !merges) || !pre)
        return plm_fail(err, PLM_ERR_ARG, "plm_tokenizer_from_vocab: bad arguments");
    *out = NULL;
    const char *where = "GGUF tokenizer";
    plm_tokenizer *t;
    plm_status st = build_begin(&t, n_tokens, n_merges, err);
    if (st) return st;
    if (pre_from_name(t, pre)) {
        plm_tokenizer_free(t);
        return plm_fail(err, PLM_ERR_UNSUPPORTED,
                        "%s: pre-tokenizer '%s' is not supported (want gpt2, smollm or another "
                        "name with the same regexes in llama.cpp)",
                        where, pre);
    }
    for (int32_t i = 0; i < n_tokens && !st; i++) {
        int32_t type = token_types ? token_types[i] : PLM_TOKEN_TYPE_NORMAL;
        int added = type == PLM_TOKEN_TYPE_CONTROL || type == PLM_TOKEN_TYPE_USER_DEFINED;
        if (added && tokens[i].n == 0)
            st = plm_fail(err, PLM_ERR_FORMAT, "%s: token %d is an empty added token", where,
                          (int)i);
        else st = set_token(t, i, tokens[i].s, tokens[i].n, type, where, err);
        if (added) add_added(t, i, 0, 0, 0, type == PLM_TOKEN_TYPE_USER_DEFINED);
    }
    if (!st) st = build_index(t, where, err);
    for (int32_t i = 0; i < n_merges && !st; i++) {
        const char *sp = merges[i].n ? memchr(merges[i].s, ' ', merges[i].n) : NULL;
        if (!sp) st = plm_fail(err, PLM_ERR_FORMAT, "%s: merge %d has no space", where, (int)i);
        else
            st = add_merge(t, merges[i].s, (size_t)(sp - merges[i].s), sp + 1,
                           merges[i].n - (size_t)(sp - merges[i].s) - 1, where, err);
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
// and pre-tokenizer setting of t; the caller then adds more tokens and calls build_index.
static plm_status copy_tokens(plm_tokenizer *c, const plm_tokenizer *t, const char *where,
                              plm_error *err) {
    memcpy(c->pre, t->pre, sizeof c->pre);
    c->n_pre = t->n_pre, c->add_prefix_space = t->add_prefix_space, c->use_regex = t->use_regex;
    c->ignore_merges = t->ignore_merges;
    memcpy(c->pre_name, t->pre_name, sizeof c->pre_name);
    for (int32_t id = 0; id < t->n_vocab; id++) {
        plm_status st =
            set_token(c, id, blob_at(t, t->text[id]), t->text[id].len, t->type[id], where, err);
        if (st) return st;
    }
    for (int32_t k = 0; k < t->n_added; k++) {
        const added_token *a = &t->added[k];
        add_added(c, a->id, a->lstrip, a->rstrip, a->single_word, a->normalized);
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
    plm_status st = build_begin(&c, t->n_vocab + n_new, t->n_merges, err);
    if (!st) st = copy_tokens(c, t, where, err);
    int32_t type = special ? PLM_TOKEN_TYPE_CONTROL : PLM_TOKEN_TYPE_USER_DEFINED;
    for (int32_t i = 0, id = t->n_vocab; i < n && !st; i++) {
        if (!is_new(t, texts, i)) continue;
        st = set_token(c, id, texts[i], strlen(texts[i]), type, where, err);
        add_added(c, id++, 0, 0, 0, !special); // HF's defaults: normalized unless special
    }
    if (!st) st = build_index(c, where, err);
    for (int32_t i = 0; i < t->n_merges && !st; i++) {
        span m = t->merge_text[i];
        size_t nl = t->text[t->merge_left[i]].len;
        st = add_merge(c, blob_at(t, m), nl, blob_at(t, m) + nl + 1, m.len - nl - 1, where, err);
    }
    if (st) {
        plm_tokenizer_free(c);
        return st;
    }
    *out = c;
    return PLM_OK;
}

// ---- tokenizer.json ----

static const char gpt2_regex[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

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
    if (!strcmp(type, "Split") && plm_json_eq(j, plm_json_get(j, pat, "Regex"), gpt2_regex) &&
        plm_json_eq(j, plm_json_get(j, v, "behavior"), "Isolated") &&
        plm_json_bool(j, plm_json_get(j, v, "invert")) != 1) {
        t->pre[t->n_pre++] = PRE_GPT2;
        return PLM_OK;
    }
    return plm_fail(err, PLM_ERR_UNSUPPORTED,
                    "%s: pre-tokenizer %s is not supported (supported: "
                    "ByteLevel, Digits, Sequence, Split with the GPT-2 regex, Isolated)",
                    where, type);
}

// check_pipeline: the parts of tokenizer.json around the model: normalizer null, a ByteLevel
// pre-tokenizer and decoder.
static plm_status check_pipeline(plm_tokenizer *t, const plm_json *j, const char *where,
                                 plm_error *err) {
    char type[32];
    int32_t norm = plm_json_get(j, 0, "normalizer");
    if (norm >= 0 && j->tok[norm].type != PLM_JSON_NULL)
        return plm_fail(err, PLM_ERR_UNSUPPORTED, "%s: normalizer %s is not supported (want null)",
                        where, type_of(j, norm, type, sizeof type));
    int32_t dec = plm_json_get(j, 0, "decoder");
    if (strcmp(type_of(j, dec, type, sizeof type), "ByteLevel"))
        return plm_fail(err, PLM_ERR_UNSUPPORTED,
                        "%s: decoder %s is not supported (want ByteLevel)", where, type);
    int byte_level = 0;
    plm_status st = parse_pre(t, j, plm_json_get(j, 0, "pre_tokenizer"), &byte_level, where, err);
    if (!st && !byte_level)
        return plm_fail(err, PLM_ERR_UNSUPPORTED,
                        "%s: pre_tokenizer has no ByteLevel step: not a "
                        "byte-level BPE tokenizer",
                        where);
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
    // allocating for max_id (build_index names the first missing id in the other cases)
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
    int64_t off = blob_reserve(t, raw);
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
        add_added(t, (int32_t)id, plm_json_bool(j, plm_json_get(j, e, "lstrip")) == 1,
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
        else st = add_merge(t, a, (size_t)na, b, (size_t)nb, where, err);
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
    if (!st) st = build_begin(&t, n_vocab, j.tok[merges].size, err);
    if (!st) st = check_pipeline(t, &j, name, err);
    if (!st) t->ignore_merges = plm_json_bool(&j, plm_json_get(&j, model, "ignore_merges")) == 1;
    if (!st) st = load_tokens(t, &j, vocab, added, name, err);
    if (!st) st = build_index(t, name, err);
    if (!st) st = load_merges(t, &j, merges, name, err);
    plm_json_free(&j);
    if (st) {
        plm_tokenizer_free(t);
        return st;
    }
    set_pre_name(t);
    *out = t;
    return PLM_OK;
}

static int has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

plm_status plm_tokenizer_load(plm_tokenizer **out, const char *path, plm_error *err) {
    if (!out || !path) return plm_fail(err, PLM_ERR_ARG, "plm_tokenizer_load: bad arguments");
    *out = NULL;
    if (has_suffix(path, ".gguf")) return plm_gguf_load_tokenizer(out, path, err);
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

// ---- encode: BPE of one word ----

typedef struct {
    int32_t rank; // of the pair (sym[pos], sym[next[pos]]) when pushed
    int32_t pos;  // the left symbol; ties go to the leftmost pair, as in both HF implementations
} heap_item;

// A word cache for one encode call: most words of a long text repeat, and looking up the word
// is several times cheaper than merging it again. Direct-mapped (a collision replaces the slot),
// short words only; allocated only for long texts, so short calls pay nothing.
#define CACHE_SLOTS    4096
#define CACHE_WORD     15 // bytes of a cached word, and so at most as many ids
#define CACHE_MIN_TEXT 4096

typedef struct {
    uint8_t len;             // bytes of word; 0 = empty slot
    uint8_t n_ids;           // ids of the word
    char word[CACHE_WORD];   // the word
    int32_t ids[CACHE_WORD]; // its tokens
} cache_slot;

typedef struct {
    const plm_tokenizer *t;
    cache_slot *cache; // (CACHE_SLOTS) or NULL
    int32_t *ids;      // (cap) the caller's output
    int32_t cap;
    int64_t n;       // ids of the text so far (may exceed cap)
    int oom;         // an allocation failed: the result is PLM_ERR_NOMEM
    int32_t *sym;    // (word_cap) token of each symbol of the word, or SYM_UNKNOWN, SYM_MERGED
    int32_t *prev;   // (word_cap) linked list of live symbols
    int32_t *next;   // (word_cap)
    heap_item *heap; // (3 * word_cap) candidate merges: n-1 at the start, 2 more per merge
    size_t word_cap;
    char *prefixed; // a piece with the ByteLevel prefix space
    size_t prefixed_cap;
    char *vocab_form; // a word in the byte-level alphabet (ignore_merges)
    size_t vocab_form_cap;
} enc;

enum { SYM_UNKNOWN = -1, SYM_MERGED = -2 };

// emit: append id; SYM_UNKNOWN (a byte without a token) gives no id. transformers.js gives an
// undefined id there and Rust's tokenizers drops the byte; neither can be an int32 id.
static void emit(enc *e, int32_t id) {
    if (id < 0) return;
    if (e->n < e->cap) e->ids[e->n] = id;
    e->n++;
}

static int grow(void **p, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return 0;
    void *q = realloc(*p, need * size);
    if (!q) return -1;
    *p = q, *cap = need;
    return 0;
}

static int heap_less(heap_item a, heap_item b) {
    return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos;
}

// heap_push: add the pair starting at symbol pos if it has a merge.
static void heap_push(enc *e, size_t *nh, int32_t pos) {
    const pair_slot *m = find_pair(e->t, e->sym[pos], e->sym[e->next[pos]]);
    if (!m) return;
    heap_item it = {m->rank, pos};
    size_t i = (*nh)++;
    for (; i > 0 && heap_less(it, e->heap[(i - 1) / 2]); i = (i - 1) / 2)
        e->heap[i] = e->heap[(i - 1) / 2];
    e->heap[i] = it;
}

static heap_item heap_pop(enc *e, size_t *nh) {
    heap_item top = e->heap[0], last = e->heap[--*nh];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *nh) break;
        if (c + 1 < *nh && heap_less(e->heap[c + 1], e->heap[c])) c++;
        if (!heap_less(e->heap[c], last)) break;
        e->heap[i] = e->heap[c];
        i = c;
    }
    e->heap[i] = last;
    return top;
}

// grow_word: room for a word of n bytes in the BPE arrays.
static int grow_word(enc *e, size_t n) {
    if (n <= e->word_cap) return 0;
    size_t c = n < 64 ? 64 : n;
    void *p;
    if (!(p = realloc(e->sym, c * sizeof *e->sym))) return -1;
    e->sym = p;
    if (!(p = realloc(e->prev, c * sizeof *e->prev))) return -1;
    e->prev = p;
    if (!(p = realloc(e->next, c * sizeof *e->next))) return -1;
    e->next = p;
    if (!(p = realloc(e->heap, 3 * c * sizeof *e->heap))) return -1;
    e->heap = p;
    e->word_cap = c;
    return 0;
}

// whole_word: with ignore_merges, the token that is the whole word, or -1.
static int32_t whole_word(enc *e, const unsigned char *s, size_t n) {
    if (grow((void **)&e->vocab_form, &e->vocab_form_cap, 2 * n, 1)) return e->oom = 1, -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t cp = e->t->byte_cp[s[i]];
        if (cp < 0x80) e->vocab_form[o++] = (char)cp;
        else
            e->vocab_form[o++] = (char)(0xC0 | (cp >> 6)),
            e->vocab_form[o++] = (char)(0x80 | (cp & 0x3F));
    }
    return find_text(e->t, e->vocab_form, o);
}

// bpe_word: the tokens of one pre-tokenized piece. Start from one symbol per byte and apply the
// lowest-ranked merge present anywhere in the word until none applies. A min-heap of candidate
// pairs, checked lazily when popped, makes this O(n log n), so 10k bytes of 'a' stay fast.
// Some vocabularies lack a few bytes (SmolLM2 has no token for 0x04, 0xC0, 0xF5..0xFF, ...): such
// a byte stays a symbol that never merges, as in transformers.js, and yields no id (see emit).
static void bpe_word(enc *e, const unsigned char *s, size_t n) {
    const plm_tokenizer *t = e->t;
    if (n == 1) {
        emit(e, t->byte_id[s[0]]);
        return;
    }
    if (t->ignore_merges) {
        int32_t id = whole_word(e, s, n);
        if (id >= 0) emit(e, id);
        if (id >= 0 || e->oom) return;
    }
    cache_slot *c = NULL;
    if (e->cache && n <= CACHE_WORD) {
        c = &e->cache[hash_bytes((const char *)s, n) & (CACHE_SLOTS - 1)];
        if (c->len == n && !memcmp(c->word, s, n)) {
            for (int k = 0; k < c->n_ids; k++) emit(e, c->ids[k]);
            return;
        }
    }
    if (grow_word(e, n)) {
        e->oom = 1;
        return;
    }
    size_t nh = 0;
    for (size_t i = 0; i < n; i++) {
        e->sym[i] = t->byte_id[s[i]];
        e->prev[i] = (int32_t)i - 1;
        e->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    for (size_t i = 0; i + 1 < n; i++) heap_push(e, &nh, (int32_t)i);
    while (nh) {
        heap_item top = heap_pop(e, &nh);
        int32_t pos = top.pos, right = e->next[pos];
        if (e->sym[pos] == SYM_MERGED || right < 0) continue; // merged away, or now last
        const pair_slot *m = find_pair(t, e->sym[pos], e->sym[right]);
        if (!m || m->rank != top.rank) continue; // the pair here changed since it was pushed
        e->sym[pos] = m->id;
        e->sym[right] = SYM_MERGED;
        e->next[pos] = e->next[right];
        if (e->next[pos] >= 0) e->prev[e->next[pos]] = pos;
        if (e->prev[pos] >= 0) heap_push(e, &nh, e->prev[pos]);
        if (e->next[pos] >= 0) heap_push(e, &nh, pos);
    }
    uint8_t n_ids = 0;
    for (int32_t i = 0; i >= 0; i = e->next[i]) {
        emit(e, e->sym[i]);
        if (c && e->sym[i] >= 0) c->ids[n_ids++] = e->sym[i];
    }
    if (c) c->len = (uint8_t)n, c->n_ids = n_ids, memcpy(c->word, s, n);
}

// ---- encode: pre-tokenizers ----

// gpt2_match: the end of the GPT-2 regex's match at p (< n), alternative by alternative:
//   's|'t|'re|'ve|'m|'ll|'d | ?\p{L}+ | ?\p{N}+ | ?[^\s\p{L}\p{N}]+ | \s+(?!\S) | \s+
static size_t gpt2_match(const unsigned char *s, size_t n, size_t p) {
    uint32_t cp;
    size_t k = utf8_next(s, n, p, &cp);
    if (cp == '\'' && p + 1 < n) {
        unsigned char c1 = s[p + 1], c2 = p + 2 < n ? s[p + 2] : 0;
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return p + 2;
        if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
            return p + 3;
    }
    int cls = char_class(cp);
    size_t q = p; // where the run of one class starts
    if (cp == ' ' && p + 1 < n) {
        uint32_t cp1;
        utf8_next(s, n, p + 1, &cp1);
        if (char_class(cp1) != CLS_SPACE) cls = char_class(cp1), q = p + 1; // the optional ' '
    }
    if (cls != CLS_SPACE) {
        for (; q < n; q += k) {
            k = utf8_next(s, n, q, &cp);
            if (char_class(cp) != cls) break;
        }
        return q;
    }
    size_t end = p, last = p; // a run of white space; last = where its last character starts
    for (; end < n && (k = utf8_next(s, n, end, &cp), is_space(cp)); end += k) last = end;
    // \s+(?!\S) backs off one character so that it may lead the next word (" word"); at the end
    // of the text, or for a single character, plain \s+ takes the whole run.
    return end == n || last == p ? end : last;
}

static void pre_step(enc *e, int step, const unsigned char *s, size_t n);

// byte_level: the ByteLevel pre-tokenizer: the prefix space, the GPT-2 regex, then BPE.
static void byte_level(enc *e, const unsigned char *s, size_t n) {
    const plm_tokenizer *t = e->t;
    if (t->add_prefix_space && s[0] != ' ') {
        if (grow((void **)&e->prefixed, &e->prefixed_cap, n + 1, 1)) {
            e->oom = 1;
            return;
        }
        e->prefixed[0] = ' ';
        memcpy(e->prefixed + 1, s, n);
        s = (const unsigned char *)e->prefixed, n++;
    }
    if (!t->use_regex) {
        bpe_word(e, s, n);
        return;
    }
    for (size_t p = 0, q; p < n; p = q) {
        q = gpt2_match(s, n, p);
        bpe_word(e, s + p, q - p);
    }
}

// pre_step: run pre-tokenizer step (and the ones after it) on a non-empty piece.
static void pre_step(enc *e, int step, const unsigned char *s, size_t n) {
    if (step == e->t->n_pre) {
        byte_level(e, s, n);
        return;
    }
    int kind = e->t->pre[step];
    if (kind == PRE_GPT2) {
        for (size_t p = 0, q; p < n; p = q) {
            q = gpt2_match(s, n, p);
            pre_step(e, step + 1, s + p, q - p);
        }
        return;
    }
    // Digits: runs of non-digits, and each digit alone (or runs of digits). JS `\d` is ASCII 0-9.
    for (size_t p = 0, q; p < n; p = q) {
        int digit = s[p] >= '0' && s[p] <= '9';
        q = p + 1;
        if (!digit || kind == PRE_DIGIT_RUNS)
            while (q < n && (s[q] >= '0' && s[q] <= '9') == digit) q++;
        pre_step(e, step + 1, s + p, q - p);
    }
}

// ---- encode: added tokens ----

// match_added: the longest added token at s[p], or NULL.
static const added_token *match_added(const plm_tokenizer *t, const unsigned char *s, size_t n,
                                      size_t p) {
    for (int32_t k = t->added_first[s[p]]; k < t->added_first[s[p] + 1]; k++) {
        span c = t->text[t->added[k].id];
        if (c.len <= n - p && !memcmp(s + p, blob_at(t, c), c.len)) return &t->added[k];
    }
    return NULL;
}

// trim_end: the end of s[start, end) without its trailing white space (JS trimEnd).
static size_t trim_end(const unsigned char *s, size_t start, size_t end) {
    while (end > start) {
        size_t b = end - 1;
        while (b > start && (s[b] & 0xC0) == 0x80) b--; // back to the lead byte
        uint32_t cp;
        utf8_next(s, end, b, &cp);
        if (!is_space(cp)) break;
        end = b;
    }
    return end;
}

// skip_space: the first position at or after p that is not white space (JS trimStart).
static size_t skip_space(const unsigned char *s, size_t n, size_t p) {
    uint32_t cp;
    for (size_t k; p < n && (k = utf8_next(s, n, p, &cp), is_space(cp)); p += k) {}
    return p;
}

// encode_text: split valid UTF-8 at added tokens (leftmost, longest first) and pre-tokenize the
// sections between them. lstrip/rstrip eat the white space before/after their token.
static void encode_text(enc *e, const unsigned char *s, size_t n) {
    const plm_tokenizer *t = e->t;
    size_t start = 0; // where the pending section begins
    for (size_t p = 0; p < n;) {
        const added_token *a = t->n_added ? match_added(t, s, n, p) : NULL;
        if (!a) {
            p++;
            continue;
        }
        size_t end = a->lstrip ? trim_end(s, start, p) : p;
        if (end > start) pre_step(e, 0, s + start, end - start);
        emit(e, a->id);
        p += t->text[a->id].len;
        start = p = a->rstrip ? skip_space(s, n, p) : p;
    }
    if (n > start) pre_step(e, 0, s + start, n - start);
}

int32_t plm_tokenizer_encode(const plm_tokenizer *t, const char *text, size_t len, int32_t *ids,
                             int32_t cap) {
    if (!t || (!text && len) || cap < 0 || (!ids && cap > 0)) return PLM_ERR_ARG;
    enc e = {.t = t, .ids = ids, .cap = cap};
    const unsigned char *s = (const unsigned char *)text;
    char *repaired = NULL;
    if (!utf8_valid(s, len)) {
        repaired = utf8_repair(s, len, &len);
        if (!repaired) return PLM_ERR_NOMEM;
        s = (const unsigned char *)repaired;
    }
    if (len >= CACHE_MIN_TEXT) e.cache = plm_alloc(CACHE_SLOTS, sizeof *e.cache); // NULL: no cache
    encode_text(&e, s, len);
    free(e.cache);
    free(repaired);
    free(e.sym);
    free(e.prev);
    free(e.next);
    free(e.heap);
    free(e.prefixed);
    free(e.vocab_form);
    if (e.oom) return PLM_ERR_NOMEM;
    return e.n > INT32_MAX ? INT32_MAX : (int32_t)e.n;
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

const char *plm_tokenizer_pre(const plm_tokenizer *t) {
    return t ? t->pre_name : "";
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

static plm_status write_pre(plm_writer *w, const plm_tokenizer *t, plm_error *err) {
    plm_status st = plm_writer_printf(w, err, "  \"pre_tokenizer\": ");
    if (!st && t->n_pre)
        st = plm_writer_printf(w, err, "{\"type\": \"Sequence\", \"pretokenizers\": [");
    for (int i = 0; i < t->n_pre && !st; i++) {
        if (t->pre[i] == PRE_GPT2) {
            st = plm_writer_printf(w, err, "{\"type\": \"Split\", \"pattern\": {\"Regex\": ");
            if (!st) st = plm_json_write_str(w, gpt2_regex, strlen(gpt2_regex), err);
            if (!st)
                st = plm_writer_printf(w, err,
                                       "}, \"behavior\": \"Isolated\", \"invert\": false}, ");
        } else {
            st = plm_writer_printf(w, err, "{\"type\": \"Digits\", \"individual_digits\": %s}, ",
                                   json_bool(t->pre[i] == PRE_DIGITS));
        }
    }
    if (!st)
        st = plm_writer_printf(w, err,
                               "{\"type\": \"ByteLevel\", \"add_prefix_space\": %s, "
                               "\"trim_offsets\": true, \"use_regex\": %s}%s,\n",
                               json_bool(t->add_prefix_space), json_bool(t->use_regex),
                               t->n_pre ? "]}" : "");
    return st;
}

// write_model: the BPE model: the whole vocabulary in id order, then the merges in rank order,
// as "left right" strings (readable by every tokenizers version) unless a token has a space.
static plm_status write_model(plm_writer *w, const plm_tokenizer *t, plm_error *err) {
    plm_status st = plm_writer_printf(
        w, err,
        "  \"model\": {\"type\": \"BPE\", \"dropout\": null, "
        "\"unk_token\": null, \"continuing_subword_prefix\": null, \"end_of_word_suffix\": null, "
        "\"fuse_unk\": false, \"byte_fallback\": false, \"ignore_merges\": %s, \"vocab\": {",
        json_bool(t->ignore_merges));
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
    if (!st) st = plm_writer_printf(w, err, "\n  ],\n  \"normalizer\": null,\n");
    if (!st) st = write_pre(w, t, err);
    if (!st)
        st = plm_writer_printf(w, err,
                               "  \"post_processor\": null,\n  \"decoder\": {\"type\": "
                               "\"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true, "
                               "\"use_regex\": true},\n");
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
