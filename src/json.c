// json.c: strict JSON parsing into plm_json tokens (see json.h), with an explicit stack (no
// recursion, bounded depth) so that fuzzed input cannot overflow the C stack.
#include "json.h"
#include "utf8.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 256

// ---- parser ----

typedef struct {
    const char *s;     // text
    size_t n, i;       // length, cursor
    plm_json_tok *tok; // growing token array
    int32_t ntok, cap;
} parser;

static void skip_ws(parser *p) {
    while (p->i < p->n &&
           (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static int32_t push_tok(parser *p, plm_json_type type, size_t start) {
    if (p->ntok == p->cap) {
        int32_t ncap = p->cap ? p->cap * 2 : 256;
        if (ncap < 0) return -1;
        plm_json_tok *nt = realloc(p->tok, (size_t)ncap * sizeof *nt);
        if (!nt) return -1;
        p->tok = nt;
        p->cap = ncap;
    }
    plm_json_tok *t = &p->tok[p->ntok];
    t->type = type;
    t->start = t->end = (uint32_t)start;
    t->size = 0;
    t->next = p->ntok + 1;
    return p->ntok++;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// scan a string starting at the opening quote; leaves p->i after the closing quote.
static const char *scan_string(parser *p) {
    p->i++;
    while (p->i < p->n) {
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == '"') {
            p->i++;
            return NULL;
        }
        if (c < 0x20) return "control character in string";
        if (c == '\\') {
            if (++p->i >= p->n) break;
            char e = p->s[p->i];
            if (e == 'u') {
                if (p->i + 4 >= p->n) break;
                for (int k = 1; k <= 4; k++)
                    if (hexval(p->s[p->i + k]) < 0) return "bad \\u escape";
                p->i += 4;
            } else if (!strchr("\"\\/bfnrt", e) || e == 0) {
                return "bad escape";
            }
        }
        p->i++;
    }
    return "unterminated string";
}

static const char *scan_number(parser *p) {
    size_t i = p->i;
    if (i < p->n && p->s[i] == '-') i++;
    if (i >= p->n) return "bad number";
    if (p->s[i] == '0') i++;
    else if (p->s[i] >= '1' && p->s[i] <= '9')
        while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9') i++;
    else return "bad number";
    if (i < p->n && p->s[i] == '.') {
        i++;
        if (i >= p->n || p->s[i] < '0' || p->s[i] > '9') return "bad number";
        while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9') i++;
    }
    if (i < p->n && (p->s[i] == 'e' || p->s[i] == 'E')) {
        i++;
        if (i < p->n && (p->s[i] == '+' || p->s[i] == '-')) i++;
        if (i >= p->n || p->s[i] < '0' || p->s[i] > '9') return "bad number";
        while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9') i++;
    }
    p->i = i;
    return NULL;
}

static const char *scan_literal(parser *p, const char *lit) {
    size_t k = strlen(lit);
    if (p->n - p->i < k || memcmp(p->s + p->i, lit, k) != 0) return "unexpected character";
    p->i += k;
    return NULL;
}

plm_status plm_json_parse(plm_json *out, const char *text, size_t len, const char *name,
                          plm_error *err) {
    memset(out, 0, sizeof *out);
    if (len > UINT32_MAX - 1) return plm_fail(err, PLM_ERR_UNSUPPORTED, "%s: JSON too large", name);
    parser p = {text, len, 0, NULL, 0, 0};
    int32_t stack[JSON_MAX_DEPTH]; // open containers
    int depth = 0;
    const char *why = NULL;
    // state: expecting a value (after '[', ',' in array, ':' in object, or at top level)
    skip_ws(&p);
    for (;;) {
        // ---- one value ----
        if (p.i >= p.n) {
            why = "unexpected end of input";
            goto bad;
        }
        char c = p.s[p.i];
        int32_t t;
        if (depth > 0) p.tok[stack[depth - 1]].size++; // a member's value or an element
        if (c == '{' || c == '[') {
            if (depth == JSON_MAX_DEPTH) {
                why = "nesting too deep";
                goto bad;
            }
            t = push_tok(&p, c == '{' ? PLM_JSON_OBJECT : PLM_JSON_ARRAY, p.i);
            if (t < 0) goto nomem;
            stack[depth++] = t;
            p.i++;
            skip_ws(&p);
            if (p.i < p.n && p.s[p.i] == (c == '{' ? '}' : ']')) {
                p.i++;
                depth--;
                p.tok[t].end = (uint32_t)p.i;
                p.tok[t].next = p.ntok;
            } else if (c == '{') {
                goto key;
            } else {
                continue; // first array element
            }
        } else {
            size_t start = p.i;
            plm_json_type type;
            if (c == '"') type = PLM_JSON_STRING, why = scan_string(&p);
            else if (c == 't') type = PLM_JSON_TRUE, why = scan_literal(&p, "true");
            else if (c == 'f') type = PLM_JSON_FALSE, why = scan_literal(&p, "false");
            else if (c == 'n') type = PLM_JSON_NULL, why = scan_literal(&p, "null");
            else type = PLM_JSON_NUMBER, why = scan_number(&p);
            if (why) goto bad;
            t = push_tok(&p, type, start);
            if (t < 0) goto nomem;
            if (type == PLM_JSON_STRING)
                p.tok[t].start = (uint32_t)start + 1, p.tok[t].end = (uint32_t)p.i - 1;
            else p.tok[t].end = (uint32_t)p.i;
        }
        // ---- after a value: close containers or move to the next member ----
        for (;;) {
            skip_ws(&p);
            if (depth == 0) {
                if (p.i != p.n) {
                    why = "trailing characters after the value";
                    goto bad;
                }
                out->text = text;
                out->tok = p.tok;
                out->n = p.ntok;
                return PLM_OK;
            }
            plm_json_tok *top = &p.tok[stack[depth - 1]];
            char close = top->type == PLM_JSON_OBJECT ? '}' : ']';
            if (p.i < p.n && p.s[p.i] == close) {
                p.i++;
                top->end = (uint32_t)p.i;
                top->next = p.ntok;
                depth--;
                continue;
            }
            if (p.i < p.n && p.s[p.i] == ',') {
                p.i++;
                skip_ws(&p);
                if (top->type == PLM_JSON_OBJECT) goto key;
                break; // next array element
            }
            why = top->type == PLM_JSON_OBJECT ? "expected ',' or '}'" : "expected ',' or ']'";
            goto bad;
        }
        continue;
    key:
        // ---- an object key and its ':' (the key token does not count in size) ----
        if (p.i >= p.n || p.s[p.i] != '"') {
            why = "expected a string key";
            goto bad;
        }
        {
            size_t start = p.i;
            if ((why = scan_string(&p)) != NULL) goto bad;
            int32_t k = push_tok(&p, PLM_JSON_STRING, start + 1);
            if (k < 0) goto nomem;
            p.tok[k].end = (uint32_t)p.i - 1;
        }
        skip_ws(&p);
        if (p.i >= p.n || p.s[p.i] != ':') {
            why = "expected ':'";
            goto bad;
        }
        p.i++;
        skip_ws(&p);
    }
bad:
    free(p.tok);
    return plm_fail(err, PLM_ERR_FORMAT, "%s: invalid JSON at byte %zu: %s", name, p.i, why);
nomem:
    free(p.tok);
    return plm_fail(err, PLM_ERR_NOMEM, "%s: out of memory parsing JSON", name);
}

void plm_json_free(plm_json *j) {
    if (!j) return;
    free(j->tok);
    memset(j, 0, sizeof *j);
}

// ---- access ----

int32_t plm_json_get(const plm_json *j, int32_t obj, const char *key) {
    if (obj < 0 || obj >= j->n || j->tok[obj].type != PLM_JSON_OBJECT) return -1;
    int32_t i = obj + 1;
    for (int32_t m = 0; m < j->tok[obj].size; m++) {
        int32_t v = i + 1;
        if (plm_json_eq(j, i, key)) return v;
        i = j->tok[v].next;
    }
    return -1;
}

int32_t plm_json_at(const plm_json *j, int32_t arr, int32_t k) {
    if (arr < 0 || arr >= j->n || j->tok[arr].type != PLM_JSON_ARRAY || k < 0 ||
        k >= j->tok[arr].size)
        return -1;
    int32_t i = arr + 1;
    while (k-- > 0) i = j->tok[i].next;
    return i;
}

// decode one character of a string body at *pos (< end): returns its UTF-8 bytes in buf, count.
static int decode_char(const char *s, uint32_t *pos, uint32_t end, char buf[4]) {
    uint32_t i = *pos;
    if (s[i] != '\\') {
        buf[0] = s[i];
        *pos = i + 1;
        return 1;
    }
    char e = s[i + 1];
    *pos = i + 2;
    switch (e) {
    case 'b': buf[0] = '\b'; return 1;
    case 'f': buf[0] = '\f'; return 1;
    case 'n': buf[0] = '\n'; return 1;
    case 'r': buf[0] = '\r'; return 1;
    case 't': buf[0] = '\t'; return 1;
    case 'u': break;
    default: buf[0] = e; return 1;
    }
    uint32_t cp = 0;
    for (int k = 0; k < 4; k++) cp = cp * 16 + (uint32_t)hexval(s[i + 2 + k]);
    *pos = i + 6;
    // a high surrogate followed by an escaped low surrogate forms one code point
    if (cp >= 0xD800 && cp < 0xDC00 && *pos + 6 <= end && s[*pos] == '\\' && s[*pos + 1] == 'u') {
        uint32_t lo = 0;
        for (int k = 0; k < 4; k++) lo = lo * 16 + (uint32_t)hexval(s[*pos + 2 + k]);
        if (lo >= 0xDC00 && lo < 0xE000) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            *pos += 6;
        }
    }
    if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD; // lone surrogate
    return (int)utf8_put(buf, cp);
}

int64_t plm_json_str(const plm_json *j, int32_t i, char *out, size_t cap) {
    if (i < 0 || i >= j->n || j->tok[i].type != PLM_JSON_STRING) return -1;
    uint32_t pos = j->tok[i].start, end = j->tok[i].end;
    size_t n = 0;
    char buf[4];
    while (pos < end) {
        int k = decode_char(j->text, &pos, end, buf);
        for (int b = 0; b < k; b++, n++)
            if (n + 1 < cap) out[n] = buf[b];
    }
    if (cap) out[n < cap ? n : cap - 1] = 0;
    return (int64_t)n;
}

int plm_json_eq(const plm_json *j, int32_t i, const char *s) {
    if (i < 0 || i >= j->n || j->tok[i].type != PLM_JSON_STRING) return 0;
    uint32_t pos = j->tok[i].start, end = j->tok[i].end;
    size_t n = 0;
    char buf[4];
    while (pos < end) {
        int k = decode_char(j->text, &pos, end, buf);
        for (int b = 0; b < k; b++, n++) // s ended (a "\u0000" in the text is no match for it)
            if (s[n] == 0 || s[n] != buf[b]) return 0;
    }
    return s[n] == 0;
}

int plm_json_num(const plm_json *j, int32_t i, double *out) {
    if (i < 0 || i >= j->n || j->tok[i].type != PLM_JSON_NUMBER) return -1;
    char buf[64];
    uint32_t len = j->tok[i].end - j->tok[i].start;
    if (len >= sizeof buf) len = sizeof buf - 1; // longer numbers lose only insignificant digits
    memcpy(buf, j->text + j->tok[i].start, len);
    buf[len] = 0;
    *out = strtod(buf, NULL);
    return 0;
}

int plm_json_int(const plm_json *j, int32_t i, int64_t lo, int64_t hi, int64_t *out) {
    double v;
    if (plm_json_num(j, i, &v) != 0 || v != floor(v) || v < (double)lo || v > (double)hi) return -1;
    *out = (int64_t)v;
    return 0;
}

int plm_json_bool(const plm_json *j, int32_t i) {
    if (i < 0 || i >= j->n) return -1;
    if (j->tok[i].type == PLM_JSON_TRUE) return 1;
    if (j->tok[i].type == PLM_JSON_FALSE) return 0;
    return -1;
}

// ---- writing ----

// put: n bytes at out + *k as far as they fit before the NUL's place, counted either way
static void put(char *out, size_t cap, size_t *k, const char *bytes, size_t n) {
    for (size_t i = 0; i < n; i++, (*k)++)
        if (*k + 1 < cap) out[*k] = bytes[i];
}

size_t plm_json_quote(const char *s, size_t n, char *out, size_t cap) {
    const unsigned char *u = (const unsigned char *)s;
    size_t k = 0;
    put(out, cap, &k, "\"", 1);
    for (size_t i = 0, len; i < n; i += len) {
        unsigned char c = u[i];
        uint32_t cp = c;
        len = c < 0x80 ? 1 : utf8_next(u, n, i, &cp);
        if (cp == 0xFFFD && !(len == 3 && !memcmp(u + i, "\xEF\xBF\xBD", 3))) {
            put(out, cap, &k, "\xEF\xBF\xBD", 3); // an invalid sequence: U+FFFD in its place
        } else if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t') {
            char e[2] = {'\\', c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : (char)c};
            put(out, cap, &k, e, 2);
        } else if (c < 0x20) { // the other control characters
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", c);
            put(out, cap, &k, e, 6);
        } else {
            put(out, cap, &k, s + i, len);
        }
    }
    put(out, cap, &k, "\"", 1);
    if (cap > 0) out[k < cap ? k : cap - 1] = 0;
    return k;
}

plm_status plm_json_write_str(plm_writer *w, const char *s, size_t n, plm_error *err) {
    char small[512];
    size_t len = plm_json_quote(s, n, small, sizeof small);
    char *buf = len < sizeof small ? small : malloc(len + 1);
    if (!buf) return plm_fail(err, PLM_ERR_NOMEM, "out of memory writing a JSON string");
    if (buf != small) plm_json_quote(s, n, buf, len + 1);
    plm_status st = plm_writer_write(w, buf, len, err);
    if (buf != small) free(buf);
    return st;
}
