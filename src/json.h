// json.h: a small strict JSON (RFC 8259) parser into a flat token array, jsmn-style but validating,
// for config.json, tokenizer.json, safetensors headers and adapter files; plus the string quoting
// of every JSON writer. Tokens are in document order; tok[i].next is the index just past i's
// subtree, so walking an object's members skips nested values in O(1).
#ifndef PLM_JSON_H
#define PLM_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"

typedef enum {
    PLM_JSON_OBJECT,
    PLM_JSON_ARRAY,
    PLM_JSON_STRING, // start/end exclude the quotes; escapes are undecoded
    PLM_JSON_NUMBER,
    PLM_JSON_TRUE,
    PLM_JSON_FALSE,
    PLM_JSON_NULL,
} plm_json_type;

typedef struct {
    plm_json_type type;
    uint32_t start, end; // byte range in the text
    int32_t size;        // members (object: key/value pairs) or elements (array)
    int32_t next;        // index of the first token after this subtree
} plm_json_tok;

typedef struct {
    const char *text;  // borrowed: must outlive the parse
    plm_json_tok *tok; // (n) tokens; object members are key token then value subtree
    int32_t n;
} plm_json;

// plm_json_parse: parse len bytes of text (one value, surrounded by optional white space).
// name is used in error messages (e.g. a file path). Free with plm_json_free.
plm_status plm_json_parse(plm_json *out, const char *text, size_t len, const char *name,
                          plm_error *err);
void plm_json_free(plm_json *j);

// plm_json_get: value token index of key in the object at obj, or -1 (also when obj is not an object).
int32_t plm_json_get(const plm_json *j, int32_t obj, const char *key);
// plm_json_at: index of element k of the array at arr, or -1.
int32_t plm_json_at(const plm_json *j, int32_t arr, int32_t k);
// plm_json_str: decode the string token i into out (cap bytes, NUL-terminated when cap > 0).
// Returns the decoded length (which may be >= cap: then out is truncated), or -1 if i is not a string.
int64_t plm_json_str(const plm_json *j, int32_t i, char *out, size_t cap);
// plm_json_eq: 1 when token i is a string whose decoded value equals s.
int plm_json_eq(const plm_json *j, int32_t i, const char *s);
// plm_json_num: the number at i into *out; returns 0, or -1 when i is not a number.
int plm_json_num(const plm_json *j, int32_t i, double *out);
// plm_json_int: like plm_json_num but requires an integer within [lo, hi].
int plm_json_int(const plm_json *j, int32_t i, int64_t lo, int64_t hi, int64_t *out);
// plm_json_bool: 1 true, 0 false, -1 not a boolean.
int plm_json_bool(const plm_json *j, int32_t i);

// plm_json_quote: s (n bytes) as a quoted JSON string into out (cap bytes, NUL-terminated when
// cap > 0): '"' and '\\' escaped, \n \r \t by name, the other control characters as \u00XX, and
// each invalid UTF-8 sequence as U+FFFD (utf8.h: its maximal subpart, as TextDecoder and Python
// do), so the result is valid JSON in valid UTF-8 whatever s holds. Returns the full length
// without the NUL (which may be >= cap). The one JSON string writer: the server, the CLI and the
// file writers all use it.
size_t plm_json_quote(const char *s, size_t n, char *out, size_t cap);
// plm_json_write_str: write s (n bytes) quoted by plm_json_quote.
plm_status plm_json_write_str(plm_writer *w, const char *s, size_t n, plm_error *err);

#endif
