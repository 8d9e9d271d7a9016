// utf8.h: decoding UTF-8 one character at a time, the way the WHATWG Encoding Standard (and so
// JavaScript's TextDecoder, and Python's errors="replace") does: an invalid sequence becomes one
// U+FFFD for its maximal subpart. The tokenizer (tokenizer.c, tokenizer_encode.c) and the JSON writer
// (json.c) use it.
#ifndef PLM_UTF8_H
#define PLM_UTF8_H

#include <stddef.h>
#include <stdint.h>

// utf8_next: decode the character at s[p] (p < n) into *cp and return its length. An invalid
// sequence gives U+FFFD and the length of its maximal subpart (WHATWG "UTF-8 decode"): the lead
// byte plus the continuation bytes that were still valid, at least 1.
static inline size_t utf8_next(const unsigned char *s, size_t n, size_t p, uint32_t *cp) {
    unsigned c = s[p];
    if (c < 0x80) return *cp = c, 1;
    size_t need;
    unsigned lo = 0x80, hi = 0xBF; // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) need = 1, *cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) need = 2, *cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) need = 3, *cp = c & 0x07;
    else return *cp = 0xFFFD, 1;
    if (c == 0xE0) lo = 0xA0; // overlong
    if (c == 0xED) hi = 0x9F; // surrogates
    if (c == 0xF0) lo = 0x90; // overlong
    if (c == 0xF4) hi = 0x8F; // above U+10FFFF
    for (size_t k = 1; k <= need; k++) {
        unsigned b = p + k < n ? s[p + k] : 0;
        if (b < lo || b > hi) return *cp = 0xFFFD, k;
        *cp = (*cp << 6) | (b & 0x3F);
        lo = 0x80, hi = 0xBF;
    }
    return need + 1;
}

// utf8_put: encode cp (a Unicode scalar value) into out (room for 4 bytes); returns its length.
static inline size_t utf8_put(char *out, uint32_t cp) {
    if (cp < 0x80) return out[0] = (char)cp, 1;
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

#endif
