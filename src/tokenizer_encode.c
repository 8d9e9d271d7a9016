// tokenizer_encode.c: plm_tokenizer_encode: added tokens are matched first, the text between them
// goes through the normalizer (NFC, or SentencePiece's ' ' -> U+2581), the pre-tokenizers (Digits,
// Split with the GPT-2, Llama 3 or Qwen2 regex, ByteLevel), and each piece is BPE-merged by merge
// rank over its bytes (byte-level) or its characters (SentencePiece, whose characters without a
// token become <0xNN> byte tokens). The tables it reads are built in tokenizer.c.
//
// Reference: transformers.js 3.8 src/tokenizers.js (the oracle of
// tests/fixtures/tokenizer-smollm2.jsonl and of tests/tokenizer_live.mjs), which mirrors the Rust
// `tokenizers` crate. Where the two differ we follow transformers.js, the engine of the browser
// deployment:
//  - \s is JavaScript's white space: U+FEFF is space, U+0085 is not (Rust's White_Space: the
//    reverse);
//  - Digits splits ASCII 0-9 only (JS `\d`); Rust's Digits splits every \p{N} character;
//  - added tokens are found in one leftmost-longest pass; lstrip/rstrip strip JS white space;
//    single_word and normalized are kept (and saved) but do not change matching;
//  - \p{L}, \p{N} and NFC come from Unicode 17 (node 20); Rust's tables are older (new code points
//    only);
//  - Llama 3's (?i:'s|'t|...) matches ASCII letters of either case only (transformers.js rewrites
//    it as [sS], [tT], ...); Rust's case folding may also let U+017F (long s) match 's'.
// Invalid UTF-8 is repaired before anything else: each maximal invalid subpart becomes U+FFFD,
// exactly as TextDecoder does, which is the string transformers.js sees for the same bytes.
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"
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
    uint32_t *at;    // (word_cap) the byte offset of each symbol in the word
    heap_item *heap; // (3 * word_cap) candidate merges: n-1 at the start, 2 more per merge
    size_t word_cap;
    char *prefixed; // a piece with the ByteLevel prefix space
    size_t prefixed_cap;
    char *vocab_form; // a word in the byte-level alphabet (ignore_merges)
    size_t vocab_form_cap;
    char *norm; // a section after the normalizer
    size_t norm_cap;
    uint32_t *cps; // (cps_cap) code points of a section (NFC)
    size_t cps_cap;
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
    if (!(p = realloc(e->at, c * sizeof *e->at))) return -1;
    e->at = p;
    if (!(p = realloc(e->heap, 3 * c * sizeof *e->heap))) return -1;
    e->heap = p;
    e->word_cap = c;
    return 0;
}

// whole_word: with ignore_merges, the token that is the whole word, or -1.
static int32_t whole_word(enc *e, const unsigned char *s, size_t n) {
    if (e->t->spm) return find_text(e->t, (const char *)s, n);
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

// emit_symbol: the ids of a symbol left after merging, n bytes at s: its token; or, for a
// SentencePiece character without a token, the byte fallback tokens of its bytes. Appends them to
// the cache slot c, if any.
static void emit_symbol(enc *e, cache_slot *c, int32_t sym, const unsigned char *s, size_t n) {
    for (size_t i = 0; i < (sym < 0 && e->t->spm ? n : 1); i++) {
        int32_t id = sym < 0 && e->t->spm ? e->t->byte_id[s[i]] : sym;
        emit(e, id);
        if (c && id >= 0) c->ids[c->n_ids++] = id;
    }
}

// bpe_word: the tokens of one pre-tokenized piece. Start from one symbol per byte (byte-level) or
// per character (SentencePiece) and apply the lowest-ranked merge present anywhere in the word
// until none applies. A min-heap of candidate pairs, checked lazily when popped, makes this
// O(n log n), so 10k bytes of 'a' stay fast. Some vocabularies lack a few bytes (SmolLM2 has no
// token for 0x04, 0xC0, 0xF5..0xFF, ...): such a byte stays a symbol that never merges, as in
// transformers.js, and yields no id (see emit).
static void bpe_word(enc *e, const unsigned char *s, size_t n) {
    const plm_tokenizer *t = e->t;
    if (n == 1 && !t->spm) {
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
        c->len = 0, c->n_ids = 0; // refilled below
    }
    if (grow_word(e, n)) {
        e->oom = 1;
        return;
    }
    size_t nh = 0, m = 0; // m symbols
    for (size_t i = 0, k; i < n; i += k, m++) {
        uint32_t cp;
        k = t->spm ? utf8_next(s, n, i, &cp) : 1;
        e->sym[m] = t->spm ? find_text(t, (const char *)s + i, k) : t->byte_id[s[i]];
        e->at[m] = (uint32_t)i;
        e->prev[m] = (int32_t)m - 1;
        e->next[m] = i + k < n ? (int32_t)m + 1 : -1;
    }
    for (size_t i = 0; i + 1 < m; i++) heap_push(e, &nh, (int32_t)i);
    while (nh) {
        heap_item top = heap_pop(e, &nh);
        int32_t pos = top.pos, right = e->next[pos];
        if (e->sym[pos] == SYM_MERGED || right < 0) continue; // merged away, or now last
        const pair_slot *mp = find_pair(t, e->sym[pos], e->sym[right]);
        if (!mp || mp->rank != top.rank) continue; // the pair here changed since it was pushed
        e->sym[pos] = mp->id;
        e->sym[right] = SYM_MERGED;
        e->next[pos] = e->next[right];
        if (e->next[pos] >= 0) e->prev[e->next[pos]] = pos;
        if (e->prev[pos] >= 0) heap_push(e, &nh, e->prev[pos]);
        if (e->next[pos] >= 0) heap_push(e, &nh, pos);
    }
    for (int32_t i = 0; i >= 0; i = e->next[i]) {
        size_t end = e->next[i] >= 0 ? e->at[e->next[i]] : n;
        emit_symbol(e, c, e->sym[i], s + e->at[i], end - e->at[i]);
    }
    if (c) c->len = (uint8_t)n, memcpy(c->word, s, n);
}

// ---- encode: pre-tokenizers ----

// class_run: the end of the run of characters of class cls that starts at q.
static size_t class_run(const unsigned char *s, size_t n, size_t q, int cls) {
    uint32_t cp;
    for (size_t k; q < n; q += k) {
        k = utf8_next(s, n, q, &cp);
        if (char_class(cp) != cls) break;
    }
    return q;
}

// space_end: the end of \s+(?!\S)|\s+ at p (white space): \s+(?!\S) backs off one character so
// that it may lead the next word (" word"); at the end of the text, or for a single character,
// plain \s+ takes the whole run. With newlines (Llama 3, Qwen2), \s*[\r\n]+ comes first: the run
// up to its last '\r' or '\n'.
static size_t space_end(const unsigned char *s, size_t n, size_t p, int newlines) {
    uint32_t cp;
    size_t end = p, last = p, nl = 0; // last: where the run's last character starts
    for (size_t k; end < n && (k = utf8_next(s, n, end, &cp), is_space(cp)); end += k) {
        last = end;
        if (cp == '\r' || cp == '\n') nl = end + 1;
    }
    if (newlines && nl) return nl;
    return end == n || last == p ? end : last;
}

// gpt2_match: the end of the GPT-2 regex's match at p (< n), alternative by alternative:
//   's|'t|'re|'ve|'m|'ll|'d | ?\p{L}+ | ?\p{N}+ | ?[^\s\p{L}\p{N}]+ | \s+(?!\S) | \s+
static size_t gpt2_match(const unsigned char *s, size_t n, size_t p) {
    uint32_t cp;
    utf8_next(s, n, p, &cp);
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
    return cls != CLS_SPACE ? class_run(s, n, q, cls) : space_end(s, n, p, 0);
}

// llama3_match: the end of the Llama 3 regex's match at p (< n), alternative by alternative
// (Qwen2's is the same with max_digits 1, \p{N} for \p{N}{1,3}):
//   (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N}{1,3} |
//   ' ?[^\s\p{L}\p{N}]+[\r\n]*' | \s*[\r\n]+ | \s+(?!\S) | \s+
static size_t llama3_match(const unsigned char *s, size_t n, size_t p, int max_digits) {
    uint32_t cp, cp1 = 0;
    size_t k = utf8_next(s, n, p, &cp);
    if (p + k < n) utf8_next(s, n, p + k, &cp1);
    if (cp == '\'' && p + 1 < n) { // ASCII case-insensitive: | 0x20 lowers a letter
        unsigned char c1 = s[p + 1] | 0x20, c2 = p + 2 < n ? s[p + 2] | 0x20 : 0;
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return p + 2;
        if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
            return p + 3;
    }
    int cls = char_class(cp), cls1 = p + k < n ? char_class(cp1) : -1;
    if (cls == CLS_LETTER) return class_run(s, n, p, CLS_LETTER);
    if (cls != CLS_NUMBER && cp != '\r' && cp != '\n' && cls1 == CLS_LETTER)
        return class_run(s, n, p + k, CLS_LETTER); // one leading character, then letters
    if (cls == CLS_NUMBER) {
        size_t q = p;
        for (int d = 0; d < max_digits && q < n; d++, q += k) {
            k = utf8_next(s, n, q, &cp);
            if (char_class(cp) != CLS_NUMBER) break;
        }
        return q;
    }
    size_t q = cp == ' ' && cls1 == CLS_OTHER ? p + 1 : p; // the optional ' '
    if (cls == CLS_OTHER || q > p) {
        q = class_run(s, n, q, CLS_OTHER);
        while (q < n && (s[q] == '\r' || s[q] == '\n')) q++;
        return q;
    }
    return space_end(s, n, p, 1);
}

// split_match: the end of pre-tokenizer step kind's regex match at p (< n).
static size_t split_match(int kind, const unsigned char *s, size_t n, size_t p) {
    if (kind == PRE_GPT2) return gpt2_match(s, n, p);
    return llama3_match(s, n, p, kind == PRE_LLAMA3 ? 3 : 1);
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
    if (kind != PRE_DIGITS && kind != PRE_DIGIT_RUNS) {
        for (size_t p = 0, q; p < n; p = q) {
            q = split_match(kind, s, n, p);
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

// ---- encode: normalizers ----

// ccc: the canonical combining class of cp (0 for most).
static int ccc(uint32_t cp) {
    size_t a = 0, b = sizeof plm_unicode_ccc / sizeof plm_unicode_ccc[0];
    while (cp >= 0x300 && a < b) {
        size_t m = (a + b) / 2;
        if (plm_unicode_ccc[m][0] == cp) return (int)plm_unicode_ccc[m][1];
        if (plm_unicode_ccc[m][0] < cp) a = m + 1;
        else b = m;
    }
    return 0;
}

// Hangul syllables are composed and decomposed by arithmetic (Unicode 3.12).
enum { S_BASE = 0xAC00, L_BASE = 0x1100, V_BASE = 0x1161, T_BASE = 0x11A7 };
enum { L_COUNT = 19, V_COUNT = 21, T_COUNT = 28, N_COUNT = 588, S_COUNT = 11172 };

// decompose: the full canonical decomposition of cp into out (at most 4); returns its length.
static size_t decompose(uint32_t cp, uint32_t *out) {
    if (cp - S_BASE < S_COUNT) {
        uint32_t si = cp - S_BASE;
        out[0] = L_BASE + si / N_COUNT, out[1] = V_BASE + si % N_COUNT / T_COUNT;
        if (si % T_COUNT) out[2] = T_BASE + si % T_COUNT;
        return si % T_COUNT ? 3 : 2;
    }
    size_t a = 0, b = sizeof plm_unicode_decomp / sizeof plm_unicode_decomp[0];
    while (cp >= 0xC0 && a < b) {
        size_t m = (a + b) / 2;
        const uint32_t *d = plm_unicode_decomp[m];
        if (d[0] == cp) {
            size_t k = 0;
            while (k < 4 && d[k + 1]) out[k] = d[k + 1], k++;
            return k;
        }
        if (d[0] < cp) a = m + 1;
        else b = m;
    }
    out[0] = cp;
    return 1;
}

// compose: the primary composite of x and y, or 0.
static uint32_t compose(uint32_t x, uint32_t y) {
    if (x - L_BASE < L_COUNT && y - V_BASE < V_COUNT)
        return S_BASE + ((x - L_BASE) * V_COUNT + (y - V_BASE)) * T_COUNT;
    if (x - S_BASE < S_COUNT && (x - S_BASE) % T_COUNT == 0 && y - T_BASE - 1 < T_COUNT - 1)
        return x + (y - T_BASE);
    size_t a = 0, b = sizeof plm_unicode_comp / sizeof plm_unicode_comp[0];
    while (a < b) {
        size_t m = (a + b) / 2;
        const uint32_t *c = plm_unicode_comp[m];
        if (c[0] == x && c[1] == y) return c[2];
        if (c[0] < x || (c[0] == x && c[1] < y)) a = m + 1;
        else b = m;
    }
    return 0;
}

// nfc: e->norm = the NFC form of s (n bytes) (UAX #15: decompose, order marks by combining class,
// compose each mark with the last starter unless blocked); returns its length, or 0 on OOM.
static size_t nfc(enc *e, const unsigned char *s, size_t n) {
    if (grow((void **)&e->cps, &e->cps_cap, 4 * n, sizeof *e->cps) ||
        grow((void **)&e->norm, &e->norm_cap, 4 * n, 1))
        return e->oom = 1, 0;
    uint32_t *c = e->cps, cp;
    size_t m = 0, o = 0, starter = SIZE_MAX;
    for (size_t p = 0; p < n; p += utf8_next(s, n, p, &cp)) {
        utf8_next(s, n, p, &cp);
        m += decompose(cp, c + m);
    }
    for (size_t i = 1; i < m; i++) // stable insertion sort of each run of marks
        for (size_t j = i; j > 0 && ccc(c[j]) && ccc(c[j - 1]) > ccc(c[j]); j--)
            cp = c[j], c[j] = c[j - 1], c[j - 1] = cp;
    int last = 0; // class of the last character kept
    for (size_t i = 0; i < m; i++) {
        int k = ccc(c[i]);
        uint32_t x = starter != SIZE_MAX && (last < k || last == 0) ? compose(c[starter], c[i]) : 0;
        if (x) {
            c[starter] = x;
            continue;
        }
        if (k == 0) starter = o;
        last = k;
        c[o++] = c[i];
    }
    size_t len = 0;
    for (size_t i = 0; i < o; i++) len += utf8_put(e->norm + len, c[i]);
    return len;
}

// section: the normalizer, then the pre-tokenizers, on a non-empty section between added tokens.
static void section(enc *e, const unsigned char *s, size_t n) {
    size_t any_mark = 0; // text below U+0300 is its own NFC form (0xCC leads U+0300)
    for (size_t i = 0; i < n && e->t->normalizer == NORM_NFC && !any_mark; i++)
        any_mark = s[i] >= 0xCC;
    if (any_mark) {
        n = nfc(e, s, n);
        s = (const unsigned char *)e->norm;
    } else if (e->t->normalizer == NORM_METASPACE) { // ' ' -> U+2581
        if (grow((void **)&e->norm, &e->norm_cap, 3 * n, 1)) {
            e->oom = 1;
            return;
        }
        size_t o = 0;
        for (size_t i = 0; i < n; i++)
            if (s[i] == ' ') memcpy(e->norm + o, "\xE2\x96\x81", 3), o += 3;
            else e->norm[o++] = (char)s[i];
        s = (const unsigned char *)e->norm, n = o;
    }
    if (n) pre_step(e, 0, s, n);
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

// encode_text: split valid UTF-8 at added tokens (leftmost, longest first) and normalize and
// pre-tokenize the sections between them. lstrip/rstrip eat the white space before/after their token.
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
        if (end > start) section(e, s + start, end - start);
        emit(e, a->id);
        p += t->text[a->id].len;
        start = p = a->rstrip ? skip_space(s, n, p) : p;
    }
    if (n > start) section(e, s + start, n - start);
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
    free(e.at);
    free(e.heap);
    free(e.norm);
    free(e.cps);
    free(e.prefixed);
    free(e.vocab_form);
    if (e.oom) return PLM_ERR_NOMEM;
    return e.n > INT32_MAX ? INT32_MAX : (int32_t)e.n;
}
