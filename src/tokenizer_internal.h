// tokenizer_internal.h: the private struct of plm_tokenizer and the building steps its readers
// share (internal). The tokenizer is three files: tokenizer.c (the object: building, GGUF arrays,
// added tokens, read back), tokenizer_json.c (tokenizer.json reader and writer) and
// tokenizer_encode.c (the pre-tokenizers and BPE). Other src/ files use tokenizer.h only.
#ifndef PLM_TOKENIZER_INTERNAL_H
#define PLM_TOKENIZER_INTERNAL_H

#include <string.h>

#include "tokenizer.h"

// ---- the byte-level alphabet ----
// GPT-2's bytes_to_unicode: the 188 printable bytes ('!'..'~', U+00A1..U+00AC, U+00AE..U+00FF)
// stand for themselves; the other 68 bytes, in order, become U+0100..U+0143. So ' ' is 'Ġ' (U+0120)
// and '\n' is 'Ċ' (U+010A). Vocabulary strings are written in this alphabet.
#define BYTE_CP_MAX 0x144

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

// steps before ByteLevel (Digits, Split with one of the regexes tokenizer_encode.c implements)
enum { PRE_DIGITS, PRE_DIGIT_RUNS, PRE_GPT2, PRE_LLAMA3, PRE_QWEN2 };
#define MAX_PRE 4

// normalizers, run on the text between added tokens before the pre-tokenizers
enum {
    NORM_NONE,
    NORM_NFC,       // Unicode NFC (Qwen)
    NORM_METASPACE, // Replace ' ' with U+2581 (SentencePiece's space, Gemma)
};

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
    int32_t byte_id[256]; // the one-byte token of each byte (spm: "<0xNN>"); -1 if none
    added_token *added;   // (n_added) sorted by first byte, then longest first
    int32_t n_added;
    int32_t added_first[257]; // added[added_first[b] .. added_first[b+1]) start with byte b
    uint8_t pre[MAX_PRE];     // (n_pre) PRE_* steps run before ByteLevel
    int n_pre;
    int add_prefix_space;         // ByteLevel: prepend ' ' to a piece that does not start with one
    int use_regex;                // ByteLevel: split with the GPT-2 regex
    int ignore_merges;            // BPE: a word that is a whole token skips merging
    int normalizer;               // NORM_*
    int spm;                      // SentencePiece-style BPE: symbols are characters, not bytes;
                                  // a character without a token becomes its <0xNN> byte tokens
    char pre_name[24];            // GGUF tokenizer.ggml.pre
    uint16_t byte_cp[256];        // byte -> code point of the byte-level alphabet
    int16_t cp_byte[BYTE_CP_MAX]; // and back, -1 for code points outside it
};

static inline uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603u; // FNV-1a
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211u;
    return h;
}

static inline uint64_t hash_pair(uint64_t key) {
    return (key * 0x9E3779B97F4A7C15u) >> 17;
}

static inline const char *blob_at(const plm_tokenizer *t, span s) {
    return t->blob + s.off;
}

// find_text: id of the token whose vocabulary text is s (n bytes), or -1.
static inline int32_t find_text(const plm_tokenizer *t, const char *s, size_t n) {
    for (size_t h = hash_bytes(s, n) & t->index_mask;; h = (h + 1) & t->index_mask) {
        int32_t id = t->index[h];
        if (id < 0) return -1;
        if (t->text[id].len == n && !memcmp(blob_at(t, t->text[id]), s, n)) return id;
    }
}

// find_pair: the slot of merge (left, right), or NULL.
static inline const pair_slot *find_pair(const plm_tokenizer *t, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return NULL; // a byte without a token merges with nothing
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    for (size_t h = hash_pair(key) & t->pair_mask;; h = (h + 1) & t->pair_mask) {
        if (t->pairs[h].key == key) return &t->pairs[h];
        if (t->pairs[h].key == EMPTY_KEY) return NULL;
    }
}

// ---- building (tokenizer.c): the same steps for tokenizer.json, GGUF arrays and added tokens ----
// Each returns PLM_OK or fails with a message naming where (a file name or the caller).

// plm_tokenizer_blob_reserve: room for n more bytes in t->blob; returns the offset where they go,
// or -1 on overflow/OOM. t->blob_len is left to the caller to advance.
int64_t plm_tokenizer_blob_reserve(plm_tokenizer *t, size_t n);
// plm_tokenizer_build_begin: an empty tokenizer of n_vocab tokens (texts unset) with room for
// n_merges merges; the caller sets every token's text, then calls plm_tokenizer_build_index, then
// adds the merges in rank order.
plm_status plm_tokenizer_build_begin(plm_tokenizer **out, int32_t n_vocab, int32_t n_merges,
                                     plm_error *err);
// plm_tokenizer_add_added: record an added token (matched before BPE) with its tokenizer.json
// flags.
void plm_tokenizer_add_added(plm_tokenizer *t, int32_t id, int lstrip, int rstrip, int single_word,
                             int normalized);
// plm_tokenizer_build_index: after every token has its text: holes, the text -> id table, decoded
// bytes, the one-byte tokens and the added-token buckets.
plm_status plm_tokenizer_build_index(plm_tokenizer *t, const char *where, plm_error *err);
// plm_tokenizer_add_merge: the next merge joins tokens a and b (vocabulary texts); rank is its
// priority (lower first): the merge's index, except where merges tie (SentencePiece scores).
plm_status plm_tokenizer_add_merge(plm_tokenizer *t, const char *a, size_t na, const char *b,
                                   size_t nb, int32_t rank, const char *where, plm_error *err);
// plm_tokenizer_set_pre_name: pre_name = the GGUF name of the configured pre-tokenizer, or
// "custom".
void plm_tokenizer_set_pre_name(plm_tokenizer *t);

#endif
