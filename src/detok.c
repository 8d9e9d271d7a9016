// detok.c: plm_detok, Moses-style English detokenization: the rules of sacremoses'
// MosesDetokenizer.tokenize for lang "en" (sacremoses/tokenize.py: openers, closing punctuation,
// contractions, quotes by parity), plus "n't" and PTB quotes (`` '' -> "), which PAWS uses.
// Not here: XML unescaping, CJK and the other languages' rules (PAWS-Wiki English has none).
#include <string.h>

#include "detok.h"

// ---- the output, snprintf-like ----

typedef struct {
    char *p;
    size_t cap, k, total; // k bytes written (< cap), total bytes of the whole result
} sink;

static void emit(sink *o, const char *s, size_t n) {
    o->total += n;
    for (size_t i = 0; i < n && o->cap && o->k + 1 < o->cap; i++) o->p[o->k++] = s[i];
}

// ---- token classes ----

// only: 1 when the token t (n bytes) is made only of the ASCII characters in set, or of whole
// UTF-8 characters listed in wide (each NUL-separated, the list ending with an empty string).
static int only(const char *t, size_t n, const char *set, const char *wide) {
    for (size_t i = 0; i < n;) {
        if (memchr(set, t[i], strlen(set))) {
            i++;
            continue;
        }
        size_t w = 0;
        for (const char *c = wide; *c && !w; c += strlen(c) + 1)
            if (strlen(c) <= n - i && !memcmp(t + i, c, strlen(c))) w = strlen(c);
        if (!w) return 0;
        i += w;
    }
    return n > 0;
}

static int is(const char *t, size_t n, const char *word) {
    return strlen(word) == n && !memcmp(t, word, n);
}

static int alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// contraction: "'s", "'re", "'ll", ... (an apostrophe then a letter) or "n't", in any case
static int contraction(const char *t, size_t n) {
    if (n >= 2 && t[0] == '\'' && alpha(t[1])) return 1;
    return n == 3 && (t[0] == 'n' || t[0] == 'N') && t[1] == '\'' && (t[2] == 't' || t[2] == 'T');
}

// quote: the kind of quote token t (n bytes) is: 0 double (", ``, '', or one of “ ” „), 1 single
// (' or `), -1 none; *q, *nq: what it is written as (PTB's `` '' become ", ` becomes ').
static int quote(const char *t, size_t n, const char **q, size_t *nq) {
    static const char CURLY[] = "\xE2\x80\x9C\0\xE2\x80\x9D\0\xE2\x80\x9E\0";
    *q = "\"", *nq = 1;
    if (is(t, n, "\"") || is(t, n, "``") || is(t, n, "''")) return 0;
    if (n == 3 && only(t, n, "", CURLY)) return *q = t, *nq = 3, 0;
    *q = "'";
    return is(t, n, "'") || is(t, n, "`") ? 1 : -1;
}

// ---- the pass over the tokens ----

size_t plm_detok(const char *s, size_t n, char *out, size_t cap) {
    static const char OPEN[] = "([{$", OPEN_WIDE[] = "\xC2\xA3\0\xE2\x82\xAC\0\xC2\xA5\0\xC2\xBF\0"
                                                     "\xC2\xA1\0";
    static const char CLOSE[] = ",.;:!?%)]}";
    sink o = {out, cap, 0, 0};
    int space = 0;         // a space goes before the next token
    int quotes[2] = {0};   // double and single quotes seen so far (their parity)
    const char *prev = ""; // the previous token
    size_t nprev = 0;
    for (size_t i = 0; i < n;) {
        while (i < n && (s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r'))) i++;
        size_t j = i;
        while (j < n && !(s[j] == ' ' || (s[j] >= '\t' && s[j] <= '\r'))) j++;
        if (j == i) break;
        const char *t = s + i;
        size_t m = j - i;
        const char *q;
        size_t nq;
        int kind = quote(t, m, &q, &nq);
        if (only(t, m, OPEN, OPEN_WIDE)) { // an opener: no space after it
            if (space) emit(&o, " ", 1);
            emit(&o, t, m);
            space = 0;
        } else if (only(t, m, CLOSE, "") || (nprev && contraction(t, m))) { // joins the left
            emit(&o, t, m);
            space = 1;
        } else if (kind >= 0) {
            int *count = &quotes[kind];
            if (*count % 2 == 0 && kind == 1 && nprev && prev[nprev - 1] == 's') { // possessive
                emit(&o, q, nq);
                space = 1;
            } else if (*count % 2 == 0) { // opening
                if (space) emit(&o, " ", 1);
                emit(&o, q, nq);
                space = 0;
                ++*count;
            } else { // closing
                emit(&o, q, nq);
                space = 1;
                ++*count;
            }
        } else {
            if (space) emit(&o, " ", 1);
            emit(&o, t, m);
            space = 1;
        }
        prev = t, nprev = m;
        i = j;
    }
    if (cap) out[o.k] = 0;
    return o.total;
}
