// bleu.c: corpus BLEU exactly as sacreBLEU computes it by default (sacrebleu.corpus_bleu: tokenizer
// "13a", case-sensitive, smoothing "exp", brevity penalty, no effective order, one reference), and
// the 13a tokenizer it uses. References: sacrebleu/tokenizers/tokenizer_13a.py and tokenizer_re.py
// (mteval-v13a.pl's tokenization), sacrebleu/metrics/bleu.py (compute_bleu, segment statistics).
// Also plm_pair_distance: sentence BLEU (sacrebleu.sentence_bleu: the same with effective order)
// turned into how far a rewrite is from its source.
// Not here: reading files or running a model (cli/eval.c does both).
// The text is handled as UTF-8 bytes: every 13a regex matches ASCII only, and a byte-wise match
// inserts the same spaces at the same places as Python's code-point-wise one (tests/test_bleu.c and
// tests/bleu_sacrebleu.test.sh compare with sacreBLEU itself).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"

// ---- a growing byte buffer ----

typedef struct {
    char *p;
    size_t n, cap;
    int oom; // an append failed: the content is incomplete
} buf;

static void put(buf *b, const char *s, size_t n) {
    if (b->oom || n == 0) return;
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->n + n + 1) c *= 2;
        char *q = realloc(b->p, c);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void putc1(buf *b, char c) {
    put(b, &c, 1);
}

// ---- Unicode white space (Python's str.isspace, used by rstrip() and split()) ----

// space_len: the byte length of the white-space character at s[0 .. n) or 0 if it is not one.
// Python's set: U+0009-000D, U+001C-0020, U+0085, U+00A0, U+1680, U+2000-200A, U+2028, U+2029,
// U+202F, U+205F, U+3000.
static size_t space_len(const unsigned char *s, size_t n) {
    if (n == 0) return 0;
    if ((s[0] >= 0x09 && s[0] <= 0x0D) || (s[0] >= 0x1C && s[0] <= 0x20)) return 1;
    if (n >= 2 && s[0] == 0xC2 && (s[1] == 0x85 || s[1] == 0xA0)) return 2;
    if (n < 3) return 0;
    unsigned cp = ((unsigned)(s[0] & 0x0F) << 12) | ((unsigned)(s[1] & 0x3F) << 6) | (s[2] & 0x3Fu);
    if ((s[0] & 0xF0) != 0xE0 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
    if (cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
        cp == 0x202F || cp == 0x205F || cp == 0x3000)
        return 3;
    return 0;
}

// rstrip_len: the length of s (n bytes) without its trailing white space (Python's rstrip()).
static size_t rstrip_len(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (;;) {
        size_t k = 0; // the last character is 1, 2 or 3 bytes long
        for (size_t w = 1; w <= 3 && w <= n && !k; w++)
            if (space_len(u + n - w, w) == w) k = w;
        if (!k) return n;
        n -= k;
    }
}

// ---- the 13a tokenizer ----

// replace_all: b = s with every non-overlapping `from` (left to right) replaced by `to`, like
// Python's str.replace.
static void replace_all(buf *b, const char *s, size_t n, const char *from, const char *to) {
    size_t nf = strlen(from), nt = strlen(to);
    b->n = 0;
    for (size_t i = 0; i < n;) {
        if (i + nf <= n && !memcmp(s + i, from, nf)) {
            put(b, to, nt);
            i += nf;
        } else putc1(b, s[i++]);
    }
    put(b, "", 0);
}

static int is_digit(char c) {
    return c >= '0' && c <= '9';
}

// punct: the class of tokenizer_re.py's first regex, [\{-\~\[-\`\ -\&\(-\+\:-\@\/]: all ASCII
// punctuation and the space, except ' , - . (0x27, 0x2C, 0x2D, 0x2E).
static int punct(char c) {
    return (c >= '{' && c <= '~') || (c >= '[' && c <= '`') || (c >= ' ' && c <= '&') ||
           (c >= '(' && c <= '+') || (c >= ':' && c <= '@') || c == '/';
}

static int dot_comma(char c) {
    return c == '.' || c == ',';
}

// regex_pass: one of the four substitutions of tokenizer_re.py, b = re.sub(pattern, repl, s).
// Each pattern matches one or two fixed characters, so re.sub's scan (try a match at i; on
// success emit the replacement and jump past it, else copy s[i]) is this loop.
static void regex_pass(buf *b, const char *s, size_t n, int which) {
    b->n = 0;
    for (size_t i = 0; i < n;) {
        char c = s[i], d = i + 1 < n ? s[i + 1] : 0;
        int two = i + 1 < n;
        if (which == 1 && punct(c)) { // ([\{-\~...]) -> " \1 "
            char r[3] = {' ', c, ' '};
            put(b, r, 3);
            i += 1;
        } else if (which == 2 && two && !is_digit(c) &&
                   dot_comma(d)) { // ([^0-9])([\.,]) -> "\1 \2 "
            char r[4] = {c, ' ', d, ' '};
            put(b, r, 4);
            i += 2;
        } else if (which == 3 && two && dot_comma(c) &&
                   !is_digit(d)) { // ([\.,])([^0-9]) -> " \1 \2"
            char r[4] = {' ', c, ' ', d};
            put(b, r, 4);
            i += 2;
        } else if (which == 4 && two && is_digit(c) && d == '-') { // ([0-9])(-) -> "\1 \2 "
            char r[4] = {c, ' ', '-', ' '};
            put(b, r, 4);
            i += 2;
        } else putc1(b, s[i++]);
    }
    put(b, "", 0);
}

// split_join: ' '.join(s.split()): the tokens separated by single spaces.
static void split_join(buf *b, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    b->n = 0;
    int gap = 0; // a white-space run since the last token
    for (size_t i = 0; i < n;) {
        size_t k = space_len(u + i, n - i);
        if (k) {
            gap = 1;
            i += k;
            continue;
        }
        if (gap && b->n) putc1(b, ' ');
        gap = 0;
        putc1(b, s[i++]);
    }
    put(b, "", 0);
}

// tokenize: the 13a tokenization of text (len bytes) into *out (malloc'd, NUL-terminated);
// sacreBLEU's BLEU._preprocess_segment (rstrip) then Tokenizer13a.__call__. 0, or -1 when out of
// memory.
static int tokenize(const char *text, size_t len, char **out, size_t *out_len) {
    // Python replaces on the whole string, step after step: each step reads the previous result.
    static const char *const steps[][2] = {
        {"<skipped>", ""}, {"-\n", ""},   {"\n", " "},   {"&quot;", "\""},
        {"&amp;", "&"},    {"&lt;", "<"}, {"&gt;", ">"},
    };
    buf a = {0}, b = {0};
    put(&a, " ", 1);
    put(&a, text, rstrip_len(text, len));
    put(&a, "", 0);
    // a holds " " + the line; the leading space is harmless to every step and is the f' {line}'
    for (size_t k = 0; k < sizeof steps / sizeof steps[0] && !a.oom && !b.oom; k++) {
        replace_all(&b, a.p, a.n, steps[k][0], steps[k][1]);
        buf t = a;
        a = b;
        b = t;
    }
    put(&a, " ", 1); // f' {line} '
    for (int w = 1; w <= 4 && !a.oom && !b.oom; w++) {
        regex_pass(&b, a.p, a.n, w);
        buf t = a;
        a = b;
        b = t;
    }
    if (!a.oom && !b.oom) split_join(&b, a.p, a.n);
    free(a.p);
    if (a.oom || b.oom || !b.p) {
        free(b.p);
        return -1;
    }
    *out = b.p;
    *out_len = b.n;
    return 0;
}

int64_t plm_bleu_tokenize(const char *text, size_t len, char *out, size_t cap) {
    char *t;
    size_t n;
    if (!text) text = "", len = 0;
    if (tokenize(text, len, &t, &n)) return PLM_ERR_NOMEM;
    if (cap > 0) {
        size_t k = n < cap - 1 ? n : cap - 1;
        memcpy(out, t, k);
        out[k] = 0;
    }
    free(t);
    return (int64_t)n;
}

int plm_bleu_same_tokens(const char *a, const char *b) {
    int64_t na = plm_bleu_tokenize(a, strlen(a), NULL, 0),
            nb = plm_bleu_tokenize(b, strlen(b), NULL, 0);
    if (na < 0 || nb < 0) return -1;
    if (na != nb) return 0;
    char *ta = malloc((size_t)na + 1), *tb = malloc((size_t)nb + 1);
    int same = -1;
    if (ta && tb) {
        plm_bleu_tokenize(a, strlen(a), ta, (size_t)na + 1);
        plm_bleu_tokenize(b, strlen(b), tb, (size_t)nb + 1);
        same = !strcmp(ta, tb);
    }
    free(ta), free(tb);
    return same;
}

// ---- n-gram statistics of one segment ----

// An n-gram is a substring of the tokenized text: the tokens are separated by exactly one space
// and hold none, so two n-grams of the same order are equal exactly when their substrings are.
typedef struct {
    const char *p;
    size_t n;
} gram;

static int gram_cmp(const void *a, const void *b) {
    const gram *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->p, y->p, n);
    return c ? c : (x->n > y->n) - (x->n < y->n);
}

// token_starts: the start offset of each token of t (n bytes) into starts (cap n/2 + 1), and the
// count; the tokens end before the next start - 1 or at n.
static size_t token_starts(const char *t, size_t n, size_t *starts) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || t[i - 1] == ' ') starts[k++] = i;
    return k;
}

// grams: the order-o n-grams of t (tokens at starts[0 .. k)) into g, sorted; returns their count.
static size_t grams(gram *g, const char *t, size_t n, const size_t *starts, size_t k, int o) {
    size_t m = 0;
    for (size_t i = 0; i + (size_t)o <= k; i++) {
        size_t end = i + (size_t)o < k ? starts[i + (size_t)o] - 1 : n;
        g[m++] = (gram){t + starts[i], end - starts[i]};
    }
    qsort(g, m, sizeof *g, gram_cmp);
    return m;
}

// segment_stats: add one tokenized segment's statistics to r (sys_len, ref_len, and per order the
// hypothesis n-grams and the matches clipped by the reference counts). 0, or -1 when out of memory.
static int segment_stats(plm_bleu_result *r, const char *h, size_t nh, const char *f, size_t nf) {
    size_t *sh = malloc((nh / 2 + 1) * sizeof *sh), *sf = malloc((nf / 2 + 1) * sizeof *sf);
    gram *gh = malloc((nh / 2 + 1) * sizeof *gh), *gf = malloc((nf / 2 + 1) * sizeof *gf);
    if (!sh || !sf || !gh || !gf) {
        free(sh), free(sf), free(gh), free(gf);
        return -1;
    }
    size_t kh = token_starts(h, nh, sh), kf = token_starts(f, nf, sf);
    r->sys_len += (int64_t)kh;
    r->ref_len += (int64_t)kf; // one reference: the closest reference length is its length
    for (int o = 1; o <= 4; o++) {
        size_t mh = grams(gh, h, nh, sh, kh, o), mf = grams(gf, f, nf, sf, kf, o);
        r->total[o - 1] += (int64_t)mh;
        // walk both sorted lists: each distinct n-gram matches min(its count, the ref's count)
        for (size_t i = 0, j = 0; i < mh;) {
            size_t i2 = i + 1;
            while (i2 < mh && !gram_cmp(&gh[i], &gh[i2])) i2++;
            while (j < mf && gram_cmp(&gf[j], &gh[i]) < 0) j++;
            size_t j2 = j;
            while (j2 < mf && !gram_cmp(&gf[j2], &gh[i])) j2++;
            r->correct[o - 1] += (int64_t)((i2 - i) < (j2 - j) ? (i2 - i) : (j2 - j));
            i = i2;
            j = j2;
        }
    }
    free(sh), free(sf), free(gh), free(gf);
    return 0;
}

// ---- the score from the statistics (sacrebleu BLEU.compute_bleu, smooth_method "exp") ----

// compute: r's bleu, precisions and bp from its counts, in the order of operations of
// compute_bleu so that the doubles come out the same. effective: sacreBLEU's effective order
// (sentence_bleu's default): the mean is over the orders the hypothesis has n-grams of, so that a
// segment shorter than 4 tokens is not 0.
static void compute(plm_bleu_result *r, int effective) {
    r->bp = 1.0;
    if (r->sys_len < r->ref_len)
        r->bp = r->sys_len > 0 ? exp(1.0 - (double)r->ref_len / (double)r->sys_len) : 0.0;
    for (int k = 0; k < 4; k++) r->precisions[k] = 0.0;
    r->bleu = 0.0;
    if (!r->correct[0] && !r->correct[1] && !r->correct[2] && !r->correct[3]) return;
    double smooth = 1.0;
    int order = 4;
    for (int k = 0; k < 4; k++) {
        if (r->total[k] == 0) break; // the remaining precisions stay 0: log floors them
        if (effective) order = k + 1;
        if (r->correct[k] == 0) {
            smooth *= 2; // "exp": 1 / 2^k for the k-th order without a match (NIST)
            r->precisions[k] = 100.0 / (smooth * (double)r->total[k]);
        } else {
            r->precisions[k] = 100.0 * (double)r->correct[k] / (double)r->total[k];
        }
    }
    double sum = 0; // sacrebleu's my_log: log(0) is floored at -9999999999
    for (int k = 0; k < order; k++)
        sum += r->precisions[k] == 0.0 ? -9999999999.0 : log(r->precisions[k]);
    r->bleu = r->bp * exp(sum / order);
}

// stats: the statistics of n segments into out (zeroed first); PLM_OK or PLM_ERR_NOMEM.
static plm_status stats(const char *const *hyps, const char *const *refs, int32_t n,
                        plm_bleu_result *out, plm_error *err) {
    memset(out, 0, sizeof *out);
    for (int32_t i = 0; i < n; i++) {
        const char *h = hyps[i] ? hyps[i] : "", *f = refs[i] ? refs[i] : "";
        char *th = NULL, *tf = NULL;
        size_t nh, nf;
        int bad = tokenize(h, strlen(h), &th, &nh) || tokenize(f, strlen(f), &tf, &nf) ||
                  segment_stats(out, th, nh, tf, nf);
        free(th);
        free(tf);
        if (bad)
            return plm_fail(err, PLM_ERR_NOMEM, "plm_bleu: out of memory at segment %d", (int)i);
    }
    return PLM_OK;
}

plm_status plm_bleu(const char *const *hyps, const char *const *refs, int32_t n,
                    plm_bleu_result *out, plm_error *err) {
    if (!out || n < 0 || (n > 0 && (!hyps || !refs)))
        return plm_fail(err, PLM_ERR_ARG, "plm_bleu: out, hyps and refs must be set, n >= 0");
    plm_status st = stats(hyps, refs, n, out, err);
    if (st == PLM_OK) compute(out, 0);
    return st;
}

double plm_pair_distance(const char *source, const char *target) {
    plm_bleu_result r;
    if (!source) source = "";
    if (!target) target = "";
    if (stats(&target, &source, 1, &r, NULL) != PLM_OK) return -1.0;
    compute(&r, 1);
    double d = 100.0 - r.bleu;
    return d < 1e-9 ? 0.0 : d; // a copy is 0, not the last bit of exp(log(100))
}
