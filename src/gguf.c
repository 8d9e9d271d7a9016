// gguf.c: the GGUF v2/v3 reader (from a buffer; every count, length and offset validated before
// use, since it is fuzzed), dequantization of the types in PLM_GGUF_READ_TYPES, llama.cpp's Q/K row
// permutation and the tokenizer from tokenizer.ggml.* metadata. Not here: the v3 writer and ggml's
// reference quantizers (gguf_write.c).
// Reference: ggml/docs/gguf.md, ggml/src/gguf.cpp, ggml-quants.c (dequantize_row_*).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf_internal.h"

// ---- type tables ----

static const ggml_type_info ggml_types[] = {
    {0, "F32", 1, 4},       {1, "F16", 1, 2},       {2, "Q4_0", 32, 18},    {3, "Q4_1", 32, 20},
    {6, "Q5_0", 32, 22},    {7, "Q5_1", 32, 24},    {8, "Q8_0", 32, 34},    {9, "Q8_1", 32, 36},
    {10, "Q2_K", 256, 84},  {11, "Q3_K", 256, 110}, {12, "Q4_K", 256, 144}, {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210}, {15, "Q8_K", 256, 292}, {24, "I8", 1, 1},       {25, "I16", 1, 2},
    {26, "I32", 1, 4},      {27, "I64", 1, 8},      {28, "F64", 1, 8},      {30, "BF16", 1, 2},
};

const ggml_type_info *plm_ggml_type_info(uint32_t type) {
    for (size_t i = 0; i < sizeof ggml_types / sizeof ggml_types[0]; i++)
        if (ggml_types[i].id == type) return &ggml_types[i];
    return NULL;
}

const char *plm_ggml_type_name(uint32_t type) {
    const ggml_type_info *ti = plm_ggml_type_info(type);
    return ti ? ti->name : "unknown";
}

size_t plm_gguf_row_bytes(uint32_t type, size_t n) {
    const ggml_type_info *ti = plm_ggml_type_info(type);
    return ti ? n / ti->block * ti->size : 0;
}

int plm_gguf_type_to_dtype(uint32_t type) {
    switch (type) {
    case PLM_GGML_F32: return PLM_DTYPE_F32;
    case PLM_GGML_F16: return PLM_DTYPE_F16;
    case PLM_GGML_BF16: return PLM_DTYPE_BF16;
    case PLM_GGML_Q8_0: return PLM_DTYPE_Q8_0;
    case PLM_GGML_Q4_0: return PLM_DTYPE_Q4_0;
    case PLM_GGML_Q4_1: return PLM_DTYPE_Q4_1;
    }
    return -1;
}

// bytes of one scalar metadata value; 0 for STRING and ARRAY (variable) and unknown types
static size_t scalar_size(uint32_t type) {
    static const size_t sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return type < sizeof sizes / sizeof sizes[0] ? sizes[type] : 0;
}

// ---- reading: a bounds-checked cursor ----

typedef struct {
    const uint8_t *p; // buffer
    size_t n, i;      // size, position
    const char *name; // for messages
    plm_error *err;
} cursor;

static uint64_t le(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int k = bytes - 1; k >= 0; k--) v = v << 8 | p[k];
    return v;
}

static plm_status truncated(cursor *c, const char *what) {
    return plm_fail(c->err, PLM_ERR_FORMAT,
                    "%s: truncated at byte %zu reading %s (file is %zu bytes)", c->name, c->i, what,
                    c->n);
}

static plm_status rd_uint(cursor *c, int bytes, uint64_t *v, const char *what) {
    if (c->n - c->i < (size_t)bytes) return truncated(c, what);
    *v = le(c->p + c->i, bytes);
    c->i += (size_t)bytes;
    return PLM_OK;
}

static plm_status rd_str(cursor *c, plm_str *s, const char *what) {
    uint64_t len = 0;
    plm_status st = rd_uint(c, 8, &len, what);
    if (st != PLM_OK) return st;
    if (len > c->n - c->i)
        return plm_fail(
            c->err, PLM_ERR_FORMAT,
            "%s: %s at byte %zu has length %llu, beyond the end of the file (%zu bytes)", c->name,
            what, c->i - 8, (unsigned long long)len, c->n);
    s->s = (const char *)c->p + c->i;
    s->n = (size_t)len;
    c->i += (size_t)len;
    return PLM_OK;
}

// rd_value: step over the value of kv (whose type is set), recording where it is.
static plm_status rd_value(cursor *c, plm_gguf_kv *kv) {
    char what[80];
    snprintf(what, sizeof what, "the value of '%.*s'", (int)(kv->key.n > 40 ? 40 : kv->key.n),
             kv->key.s);
    uint32_t type = kv->type;
    uint64_t count = 1;
    plm_status st = PLM_OK;
    if (type == PLM_GGUF_ARRAY) {
        uint64_t at = 0, n = 0;
        if ((st = rd_uint(c, 4, &at, what)) != PLM_OK || (st = rd_uint(c, 8, &n, what)) != PLM_OK)
            return st;
        if (at == PLM_GGUF_ARRAY)
            return plm_fail(c->err, PLM_ERR_UNSUPPORTED, "%s: %s is a nested array", c->name, what);
        kv->arr_type = type = (uint32_t)at;
        kv->arr_n = count = n;
        if (at != PLM_GGUF_STRING && !scalar_size((uint32_t)at))
            return plm_fail(c->err, PLM_ERR_FORMAT, "%s: %s has unknown element type %llu", c->name,
                            what, (unsigned long long)at);
    }
    kv->val = c->p + c->i;
    if (type == PLM_GGUF_STRING) {
        for (uint64_t k = 0; k < count && st == PLM_OK; k++) {
            plm_str s;
            st = rd_str(c, &s, what);
        }
        return st;
    }
    size_t sz = scalar_size(type);
    if (!sz)
        return plm_fail(c->err, PLM_ERR_FORMAT, "%s: '%.*s' has unknown value type %u", c->name,
                        (int)(kv->key.n > 40 ? 40 : kv->key.n), kv->key.s, type);
    if (count > (c->n - c->i) / sz)
        return plm_fail(c->err, PLM_ERR_FORMAT,
                        "%s: %s: %llu elements of %zu bytes exceed the file", c->name, what,
                        (unsigned long long)count, sz);
    c->i += (size_t)count * sz;
    return PLM_OK;
}

// ---- reading: header, metadata, tensor infos ----

static int cmp_str(const void *a, const void *b) {
    const plm_str *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int r = memcmp(x->s, y->s, n);
    return r ? r : (x->n > y->n) - (x->n < y->n);
}

// find_duplicate: the first repeated name among n (sorted in a copy), or NULL when all differ.
static const plm_str *find_duplicate(plm_str *sorted, int64_t n) {
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_str);
    for (int64_t i = 1; i < n; i++)
        if (!cmp_str(&sorted[i - 1], &sorted[i])) return &sorted[i];
    return NULL;
}

static plm_status check_unique(cursor *c, const plm_str *names, size_t stride, int64_t n,
                               const char *what) {
    plm_str *tmp = plm_alloc((size_t)n, sizeof *tmp);
    if (!tmp) return plm_fail(c->err, PLM_ERR_NOMEM, "%s: out of memory", c->name);
    for (int64_t i = 0; i < n; i++)
        tmp[i] = *(const plm_str *)(const void *)((const char *)names + (size_t)i * stride);
    const plm_str *d = find_duplicate(tmp, n);
    plm_status st = PLM_OK;
    if (d)
        st = plm_fail(c->err, PLM_ERR_FORMAT, "%s: %s '%.*s' appears twice", c->name, what,
                      (int)(d->n > 60 ? 60 : d->n), d->s);
    free(tmp);
    return st;
}

static plm_status rd_header(plm_gguf *g, cursor *c) {
    if (c->n < 4 || memcmp(c->p, GGUF_MAGIC, 4) != 0)
        return plm_fail(c->err, PLM_ERR_FORMAT, "%s: not a GGUF file (magic is not \"GGUF\")",
                        c->name);
    c->i = 4;
    uint64_t v = 0, nt = 0, nkv = 0;
    plm_status st = rd_uint(c, 4, &v, "the version");
    if (st != PLM_OK) return st;
    if (v != 2 && v != 3)
        return plm_fail(c->err, PLM_ERR_UNSUPPORTED, "%s: GGUF version %llu, want 2 or 3", c->name,
                        (unsigned long long)v);
    g->version = (uint32_t)v;
    if ((st = rd_uint(c, 8, &nt, "the tensor count")) != PLM_OK ||
        (st = rd_uint(c, 8, &nkv, "the metadata count")) != PLM_OK)
        return st;
    // each metadata entry takes at least 13 bytes, each tensor info at least 32
    size_t left = c->n - c->i;
    if (nkv > left / 13 || nt > left / 32)
        return plm_fail(c->err, PLM_ERR_FORMAT,
                        "%s: %llu tensors and %llu metadata entries cannot fit in %zu bytes",
                        c->name, (unsigned long long)nt, (unsigned long long)nkv, c->n);
    g->n_tensors = (int64_t)nt;
    g->n_kv = (int64_t)nkv;
    g->kv = plm_alloc((size_t)nkv, sizeof *g->kv);
    g->tensors = plm_alloc((size_t)nt, sizeof *g->tensors);
    if (!g->kv || !g->tensors) return plm_fail(c->err, PLM_ERR_NOMEM, "%s: out of memory", c->name);
    for (int64_t k = 0; k < g->n_kv; k++) {
        uint64_t type = 0;
        if ((st = rd_str(c, &g->kv[k].key, "a metadata key")) != PLM_OK ||
            (st = rd_uint(c, 4, &type, "a metadata type")) != PLM_OK)
            return st;
        g->kv[k].type = (uint32_t)type;
        if ((st = rd_value(c, &g->kv[k])) != PLM_OK) return st;
    }
    return check_unique(c, &g->kv[0].key, sizeof g->kv[0], g->n_kv, "metadata key");
}

static plm_status rd_tensor_info(plm_gguf_tensor *t, cursor *c) {
    uint64_t nd = 0, type = 0, v = 0;
    plm_status st;
    if ((st = rd_str(c, &t->name, "a tensor name")) != PLM_OK ||
        (st = rd_uint(c, 4, &nd, "a tensor's n_dims")) != PLM_OK)
        return st;
    int nl = (int)(t->name.n > 60 ? 60 : t->name.n);
    if (nd < 1 || nd > PLM_GGUF_MAX_DIMS)
        return plm_fail(c->err, PLM_ERR_FORMAT, "%s: tensor '%.*s' has %llu dims, want 1..4",
                        c->name, nl, t->name.s, (unsigned long long)nd);
    t->n_dims = (int32_t)nd;
    size_t n = 1;
    for (int d = 0; d < PLM_GGUF_MAX_DIMS; d++) {
        t->ne[d] = 1;
        if (d >= t->n_dims) continue;
        if ((st = rd_uint(c, 8, &v, "a tensor dim")) != PLM_OK) return st;
        if (v > (uint64_t)INT64_MAX || (v && n > SIZE_MAX / v))
            return plm_fail(c->err, PLM_ERR_FORMAT, "%s: tensor '%.*s': dims overflow", c->name, nl,
                            t->name.s);
        t->ne[d] = (int64_t)v;
        n *= (size_t)v;
    }
    t->n_elems = n;
    if ((st = rd_uint(c, 4, &type, "a tensor type")) != PLM_OK ||
        (st = rd_uint(c, 8, &v, "a tensor offset")) != PLM_OK)
        return st;
    t->type = (uint32_t)type;
    const ggml_type_info *ti = plm_ggml_type_info(t->type);
    if (!ti)
        return plm_fail(c->err, PLM_ERR_UNSUPPORTED, "%s: tensor '%.*s' has unknown ggml type %u",
                        c->name, nl, t->name.s, t->type);
    if (t->ne[0] % (int64_t)ti->block != 0)
        return plm_fail(c->err, PLM_ERR_FORMAT,
                        "%s: tensor '%.*s': ne[0] = %lld is not a multiple of %s's block of %zu",
                        c->name, nl, t->name.s, (long long)t->ne[0], ti->name, ti->block);
    t->n_bytes = n / ti->block * ti->size; // n / block <= SIZE_MAX / size since size <= block * 8
    if (ti->size > ti->block && n / ti->block > SIZE_MAX / ti->size)
        return plm_fail(c->err, PLM_ERR_FORMAT, "%s: tensor '%.*s': size overflows", c->name, nl,
                        t->name.s);
    t->data = (const uint8_t *)(uintptr_t)v; // the offset, until the data section is known
    return PLM_OK;
}

// place_tensors: turn offsets into pointers after checking them against the data section.
static plm_status place_tensors(plm_gguf *g, cursor *c) {
    size_t data_size = g->data_offset <= c->n ? c->n - g->data_offset : 0;
    for (int64_t k = 0; k < g->n_tensors; k++) {
        plm_gguf_tensor *t = &g->tensors[k];
        uint64_t off = (uint64_t)(uintptr_t)t->data;
        int nl = (int)(t->name.n > 60 ? 60 : t->name.n);
        if (off % g->alignment != 0)
            return plm_fail(c->err, PLM_ERR_FORMAT,
                            "%s: tensor '%.*s' offset %llu is not a multiple of the alignment %zu",
                            c->name, nl, t->name.s, (unsigned long long)off, g->alignment);
        if (g->data_offset > c->n || off > data_size || t->n_bytes > data_size - off)
            return plm_fail(c->err, PLM_ERR_FORMAT,
                            "%s: tensor '%.*s' data [%llu, +%zu) is beyond the data section (%zu "
                            "bytes)",
                            c->name, nl, t->name.s, (unsigned long long)off, t->n_bytes, data_size);
        t->data = c->p + g->data_offset + off;
    }
    return PLM_OK;
}

// parse_buf: the parse into a zeroed *out (whose map plm_gguf_open may have set).
static plm_status parse_buf(plm_gguf *out, const uint8_t *buf, size_t size, const char *name,
                            plm_error *err) {
    cursor c = {buf, size, 0, name, err};
    plm_status st = rd_header(out, &c);
    for (int64_t k = 0; st == PLM_OK && k < out->n_tensors; k++)
        st = rd_tensor_info(&out->tensors[k], &c);
    if (st == PLM_OK)
        st = check_unique(&c, &out->tensors[0].name, sizeof out->tensors[0], out->n_tensors,
                          "tensor");
    out->alignment = GGUF_DEFAULT_ALIGNMENT;
    const plm_gguf_kv *al = st == PLM_OK ? plm_gguf_find(out, "general.alignment") : NULL;
    if (al) {
        uint64_t a = al->type == PLM_GGUF_UINT32 ? le(al->val, 4) : 0;
        if (a == 0 || (a & (a - 1)) != 0 || a > 65536)
            st = plm_fail(err, PLM_ERR_FORMAT,
                          "%s: general.alignment must be a uint32 power of two up to 65536", name);
        out->alignment = (size_t)a;
    }
    if (st == PLM_OK) {
        out->data_offset = (c.i + out->alignment - 1) / out->alignment * out->alignment;
        st = place_tensors(out, &c);
    }
    return st;
}

plm_status plm_gguf_parse(plm_gguf *out, const uint8_t *buf, size_t size, const char *name,
                          plm_error *err) {
    memset(out, 0, sizeof *out);
    plm_status st = parse_buf(out, buf, size, name, err);
    if (st != PLM_OK) plm_gguf_free(out);
    return st;
}

plm_status plm_gguf_open(plm_gguf *out, const char *path, plm_error *err) {
    memset(out, 0, sizeof *out);
    plm_status st = plm_file_map_open(&out->map, path, err);
    if (st != PLM_OK) return st;
    st = parse_buf(out, out->map.data, out->map.size, path, err);
    if (st != PLM_OK) plm_gguf_free(out);
    return st;
}

void plm_gguf_free(plm_gguf *g) {
    if (!g) return;
    free(g->kv);
    free(g->tensors);
    plm_file_map_close(&g->map);
    memset(g, 0, sizeof *g);
}

// ---- metadata access ----

static int str_is(plm_str s, const char *z) {
    return strlen(z) == s.n && !memcmp(s.s, z, s.n);
}

const plm_gguf_kv *plm_gguf_find(const plm_gguf *g, const char *key) {
    for (int64_t k = 0; k < g->n_kv; k++)
        if (str_is(g->kv[k].key, key)) return &g->kv[k];
    return NULL;
}

// scalar_int: an integer-typed scalar at p as int64 (uint64 above INT64_MAX saturates); -1 if not
static int scalar_int(uint32_t type, const uint8_t *p, int64_t *out) {
    switch (type) {
    case PLM_GGUF_UINT8:
    case PLM_GGUF_BOOL: *out = p[0]; return 0;
    case PLM_GGUF_INT8: *out = (int8_t)p[0]; return 0;
    case PLM_GGUF_UINT16: *out = (int64_t)le(p, 2); return 0;
    case PLM_GGUF_INT16: *out = (int16_t)le(p, 2); return 0;
    case PLM_GGUF_UINT32: *out = (int64_t)le(p, 4); return 0;
    case PLM_GGUF_INT32: *out = (int32_t)le(p, 4); return 0;
    case PLM_GGUF_UINT64: {
        uint64_t u = le(p, 8);
        *out = u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)u;
        return 0;
    }
    case PLM_GGUF_INT64: *out = (int64_t)le(p, 8); return 0;
    }
    return -1;
}

int plm_gguf_get_int(const plm_gguf *g, const char *key, int64_t *out) {
    const plm_gguf_kv *kv = plm_gguf_find(g, key);
    return kv ? scalar_int(kv->type, kv->val, out) : -1;
}

int plm_gguf_get_float(const plm_gguf *g, const char *key, double *out) {
    const plm_gguf_kv *kv = plm_gguf_find(g, key);
    if (!kv) return -1;
    if (kv->type == PLM_GGUF_FLOAT32 || kv->type == PLM_GGUF_FLOAT64) {
        uint64_t u = le(kv->val, kv->type == PLM_GGUF_FLOAT32 ? 4 : 8);
        if (kv->type == PLM_GGUF_FLOAT32) {
            uint32_t u32 = (uint32_t)u;
            float f;
            memcpy(&f, &u32, 4);
            *out = (double)f;
        } else {
            memcpy(out, &u, 8);
        }
        return 0;
    }
    int64_t i;
    if (scalar_int(kv->type, kv->val, &i) != 0) return -1;
    *out = (double)i;
    return 0;
}

int plm_gguf_get_str(const plm_gguf *g, const char *key, plm_str *out) {
    const plm_gguf_kv *kv = plm_gguf_find(g, key);
    if (!kv || kv->type != PLM_GGUF_STRING) return -1;
    out->n = (size_t)le(kv->val, 8); // validated by the parser
    out->s = (const char *)kv->val + 8;
    return 0;
}

// find_array: the array at key with elements of type want (-1: any integer type).
static plm_status find_array(const plm_gguf *g, const char *key, int want, const plm_gguf_kv **out,
                             plm_error *err) {
    const plm_gguf_kv *kv = plm_gguf_find(g, key);
    int64_t dummy;
    uint8_t zero[8] = {0};
    if (!kv) return plm_fail(err, PLM_ERR_FORMAT, "GGUF metadata '%s' is missing", key);
    if (kv->type != PLM_GGUF_ARRAY ||
        (want >= 0 ? kv->arr_type != (uint32_t)want : scalar_int(kv->arr_type, zero, &dummy) != 0))
        return plm_fail(err, PLM_ERR_FORMAT, "GGUF metadata '%s' is not an array of %s", key,
                        want == PLM_GGUF_STRING    ? "strings"
                        : want == PLM_GGUF_FLOAT32 ? "float32"
                                                   : "integers");
    if (kv->arr_n > INT32_MAX)
        return plm_fail(err, PLM_ERR_UNSUPPORTED, "GGUF metadata '%s' has %llu elements", key,
                        (unsigned long long)kv->arr_n);
    *out = kv;
    return PLM_OK;
}

plm_status plm_gguf_get_strs(const plm_gguf *g, const char *key, plm_str **out, int64_t *n,
                             plm_error *err) {
    const plm_gguf_kv *kv;
    *out = NULL;
    plm_status st = find_array(g, key, PLM_GGUF_STRING, &kv, err);
    if (st != PLM_OK) return st;
    plm_str *s = plm_alloc((size_t)kv->arr_n, sizeof *s);
    if (!s) return plm_fail(err, PLM_ERR_NOMEM, "out of memory reading '%s'", key);
    const uint8_t *p = kv->val; // every length was checked by the parser
    for (uint64_t k = 0; k < kv->arr_n; k++) {
        s[k].n = (size_t)le(p, 8);
        s[k].s = (const char *)p + 8;
        p += 8 + s[k].n;
    }
    *out = s;
    *n = (int64_t)kv->arr_n;
    return PLM_OK;
}

plm_status plm_gguf_get_ints(const plm_gguf *g, const char *key, int32_t **out, int64_t *n,
                             plm_error *err) {
    const plm_gguf_kv *kv;
    *out = NULL;
    plm_status st = find_array(g, key, -1, &kv, err);
    if (st != PLM_OK) return st;
    int32_t *v = plm_alloc((size_t)kv->arr_n, sizeof *v);
    if (!v) return plm_fail(err, PLM_ERR_NOMEM, "out of memory reading '%s'", key);
    size_t sz = scalar_size(kv->arr_type);
    for (uint64_t k = 0; k < kv->arr_n; k++) {
        int64_t x = 0;
        scalar_int(kv->arr_type, kv->val + k * sz, &x);
        v[k] = x > INT32_MAX ? INT32_MAX : x < INT32_MIN ? INT32_MIN : (int32_t)x;
    }
    *out = v;
    *n = (int64_t)kv->arr_n;
    return PLM_OK;
}

plm_status plm_gguf_get_floats(const plm_gguf *g, const char *key, float **out, int64_t *n,
                               plm_error *err) {
    const plm_gguf_kv *kv;
    *out = NULL;
    plm_status st = find_array(g, key, PLM_GGUF_FLOAT32, &kv, err);
    if (st != PLM_OK) return st;
    float *v = plm_alloc((size_t)kv->arr_n, sizeof *v);
    if (!v) return plm_fail(err, PLM_ERR_NOMEM, "out of memory reading '%s'", key);
    for (uint64_t k = 0; k < kv->arr_n; k++) {
        uint32_t u = (uint32_t)le(kv->val + 4 * k, 4);
        memcpy(&v[k], &u, 4);
    }
    *out = v;
    *n = (int64_t)kv->arr_n;
    return PLM_OK;
}

// ---- tensors and dequantization ----

const plm_gguf_tensor *plm_gguf_find_tensor(const plm_gguf *g, const char *name) {
    for (int64_t k = 0; k < g->n_tensors; k++)
        if (str_is(g->tensors[k].name, name)) return &g->tensors[k];
    return NULL;
}

static float f16_at(const uint8_t *p) {
    return plm_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

// ---- dequantization, as ggml's dequantize_row_* (ggml-quants.c) ----
// Each function turns nb blocks at p into y. A value that ggml computes as a * q + b or a * q - b
// is written as two statements here, a multiply then an add: two roundings, never an FMA whatever
// the compiler's contraction default (ggml's reference rounds twice too, and quant.c's SIMD
// computes the same values and must match).

// {f16 d; int8 qs[32]}: x = q * d
static void dequant_q8_0(float *y, const uint8_t *p, size_t nb) {
    for (size_t b = 0; b < nb; b++, p += 34, y += 32) {
        const float d = f16_at(p);
        for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)p[2 + j] * d;
    }
}

// {f16 d; u8 qs[16]}: x = (q - 8) * d, low nibbles are elements 0-15, high ones 16-31
static void dequant_q4_0(float *y, const uint8_t *p, size_t nb) {
    for (size_t b = 0; b < nb; b++, p += 18, y += 32) {
        const float d = f16_at(p);
        for (int j = 0; j < 16; j++) {
            y[j] = (float)((p[2 + j] & 0x0f) - 8) * d;
            y[j + 16] = (float)((p[2 + j] >> 4) - 8) * d;
        }
    }
}

// {f16 d; f16 m; u8 qs[16]}: x = q * d + m
static void dequant_q4_1(float *y, const uint8_t *p, size_t nb) {
    for (size_t b = 0; b < nb; b++, p += 20, y += 32) {
        const float d = f16_at(p), m = f16_at(p + 2);
        for (int j = 0; j < 16; j++) {
            const float lo = (float)(p[4 + j] & 0x0f) * d, hi = (float)(p[4 + j] >> 4) * d;
            y[j] = lo + m;
            y[j + 16] = hi + m;
        }
    }
}

// q5: the 32 5-bit values of a Q5_0/Q5_1 block: the nibbles of qs (as Q4_x) with bit j of the
// little-endian uint32 qh as bit 4 of element j.
static void q5(int q[32], const uint8_t *qh, const uint8_t *qs) {
    const uint32_t h = (uint32_t)le(qh, 4);
    for (int j = 0; j < 16; j++) {
        q[j] = (qs[j] & 0x0f) | (int)((h >> j & 1) << 4);
        q[j + 16] = (qs[j] >> 4) | (int)((h >> (j + 16) & 1) << 4);
    }
}

// {f16 d; u8 qh[4]; u8 qs[16]}: x = (q - 16) * d
static void dequant_q5_0(float *y, const uint8_t *p, size_t nb) {
    for (size_t b = 0; b < nb; b++, p += 22, y += 32) {
        const float d = f16_at(p);
        int q[32];
        q5(q, p + 2, p + 6);
        for (int j = 0; j < 32; j++) y[j] = (float)(q[j] - 16) * d;
    }
}

// {f16 d; f16 m; u8 qh[4]; u8 qs[16]}: x = q * d + m
static void dequant_q5_1(float *y, const uint8_t *p, size_t nb) {
    for (size_t b = 0; b < nb; b++, p += 24, y += 32) {
        const float d = f16_at(p), m = f16_at(p + 2);
        int q[32];
        q5(q, p + 4, p + 8);
        for (int j = 0; j < 32; j++) {
            const float qd = (float)q[j] * d;
            y[j] = qd + m;
        }
    }
}

// The K-quants: super-blocks of 256 values in sub-blocks of 16 or 32, each with its own scale (and
// minimum) quantized against the super-block's f16 d (and dmin).

// Q2_K, Q3_K and Q6_K: 16 sub-blocks of 16; element 128h + 32s + l (h < 2, s < 4, l < 32) is in
// sub-block 8h + 2s + l / 16 and takes its bits from byte l of the h-th group of 32 (or 64).

// {u8 scales[16]; u8 qs[64]; f16 d; f16 dmin}: scale byte c: scale c & 15, minimum c >> 4; q is
// bits 2s, 2s+1 of qs[32h + l]. x = (d * sc) * q - dmin * m
static void dequant_q2_k(float *y, const uint8_t *p, size_t nb) {
    for (size_t b = 0; b < nb; b++, p += 84) {
        const float d = f16_at(p + 80), dmin = f16_at(p + 82);
        for (int h = 0; h < 2; h++)
            for (int s = 0; s < 4; s++)
                for (int half = 0; half < 2; half++, y += 16) {
                    const int c = p[8 * h + 2 * s + half];
                    const float dl = d * (float)(c & 15), ml = dmin * (float)(c >> 4);
                    const uint8_t *qs = p + 16 + 32 * h + 16 * half;
                    for (int l = 0; l < 16; l++) {
                        const float qd = dl * (float)(qs[l] >> 2 * s & 3);
                        y[l] = qd - ml;
                    }
                }
    }
}

// {u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d}: 6-bit scales stored + 32, sub-block k's low
// nibble in byte k (k < 8) or the high one of byte k - 8, its top two bits at bit 2(k / 4) of byte
// 8 + k % 4. q is bits 2s, 2s+1 of qs[32h + l], minus 4 unless bit 4h + s of hmask[l] is set.
// x = (d * (sc - 32)) * q
static void dequant_q3_k(float *y, const uint8_t *p, size_t nb) {
    for (size_t b = 0; b < nb; b++, p += 110) {
        const uint8_t *sc = p + 96;
        const float d = f16_at(p + 108);
        for (int h = 0; h < 2; h++)
            for (int s = 0; s < 4; s++)
                for (int half = 0; half < 2; half++, y += 16) {
                    const int k = 8 * h + 2 * s + half;
                    const int lo = (k < 8 ? sc[k] : sc[k - 8] >> 4) & 15;
                    const float dl =
                        d * (float)((lo | (sc[8 + k % 4] >> 2 * (k / 4) & 3) << 4) - 32);
                    const uint8_t *hm = p + 16 * half, *qs = p + 32 + 32 * h + 16 * half;
                    for (int l = 0; l < 16; l++) {
                        const int q = (qs[l] >> 2 * s & 3) - (hm[l] >> (4 * h + s) & 1 ? 0 : 4);
                        y[l] = dl * (float)q;
                    }
                }
    }
}

// plm_gguf_k4_scale: for j < 4 the low 6 bits of bytes j and j + 4; else the nibbles of byte j + 4
// with the top two bits of bytes j - 4 and j as bits 4, 5.
void plm_gguf_k4_scale(const uint8_t *s, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
        *m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

// {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]} (Q4_K), {...; u8 qh[32]; u8 qs[128]} (Q5_K): 8
// sub-blocks of 32; sub-block j takes the low (j even) or high nibbles of qs[32(j / 2) ..], and for
// Q5_K bit j of qh[l] as bit 4. x = (d * sc) * q - dmin * m
static void dequant_q45_k(float *y, const uint8_t *p, size_t nb, int five) {
    const size_t bs = five ? 176 : 144;
    for (size_t b = 0; b < nb; b++, p += bs, y += 256) {
        const float d = f16_at(p), dmin = f16_at(p + 2);
        const uint8_t *qh = p + 16, *qs = p + (five ? 48 : 16);
        for (int j = 0; j < 8; j++) {
            int sc, m;
            plm_gguf_k4_scale(p + 4, j, &sc, &m);
            const float dl = d * (float)sc, ml = dmin * (float)m;
            for (int l = 0; l < 32; l++) {
                const int q =
                    (qs[32 * (j / 2) + l] >> 4 * (j % 2) & 15) | (five ? (qh[l] >> j & 1) << 4 : 0);
                const float qd = dl * (float)q;
                y[32 * j + l] = qd - ml;
            }
        }
    }
}

// {u8 ql[128]; u8 qh[64]; int8 scales[16]; f16 d}: q's low 4 bits from ql[64h + 32(s % 2) + l]
// (low nibble for s < 2, high for s >= 2), bits 4-5 from bits 2s, 2s+1 of qh[32h + l], minus 32.
// x = (d * sc) * q
static void dequant_q6_k(float *y, const uint8_t *p, size_t nb) {
    for (size_t b = 0; b < nb; b++, p += 210) {
        const float d = f16_at(p + 208);
        for (int h = 0; h < 2; h++)
            for (int s = 0; s < 4; s++)
                for (int half = 0; half < 2; half++, y += 16) {
                    const float dl = d * (float)(int8_t)p[192 + 8 * h + 2 * s + half];
                    const uint8_t *ql = p + 64 * h + 32 * (s % 2) + 16 * half;
                    const uint8_t *qh = p + 128 + 32 * h + 16 * half;
                    for (int l = 0; l < 16; l++) {
                        const int q = (ql[l] >> 4 * (s / 2) & 15) | (qh[l] >> 2 * s & 3) << 4;
                        y[l] = dl * (float)(q - 32);
                    }
                }
    }
}

int plm_gguf_type_readable(uint32_t type) {
    switch (type) {
    case PLM_GGML_F32:
    case PLM_GGML_F16:
    case PLM_GGML_BF16:
    case PLM_GGML_Q8_0:
    case PLM_GGML_Q4_0:
    case PLM_GGML_Q4_1:
    case PLM_GGML_Q5_0:
    case PLM_GGML_Q5_1:
    case PLM_GGML_Q2_K:
    case PLM_GGML_Q3_K:
    case PLM_GGML_Q4_K:
    case PLM_GGML_Q5_K:
    case PLM_GGML_Q6_K: return 1;
    }
    return 0;
}

void plm_gguf_dequant_row(uint32_t type, const uint8_t *src, size_t n, float *out) {
    switch (type) {
    case PLM_GGML_F32:
    case PLM_GGML_F16:
    case PLM_GGML_BF16:
        plm_convert_to_f32(out, src, n, (plm_dtype)plm_gguf_type_to_dtype(type));
        break;
    case PLM_GGML_Q8_0: dequant_q8_0(out, src, n / 32); break;
    case PLM_GGML_Q4_0: dequant_q4_0(out, src, n / 32); break;
    case PLM_GGML_Q4_1: dequant_q4_1(out, src, n / 32); break;
    case PLM_GGML_Q5_0: dequant_q5_0(out, src, n / 32); break;
    case PLM_GGML_Q5_1: dequant_q5_1(out, src, n / 32); break;
    case PLM_GGML_Q2_K: dequant_q2_k(out, src, n / 256); break;
    case PLM_GGML_Q3_K: dequant_q3_k(out, src, n / 256); break;
    case PLM_GGML_Q4_K: dequant_q45_k(out, src, n / 256, 0); break;
    case PLM_GGML_Q5_K: dequant_q45_k(out, src, n / 256, 1); break;
    case PLM_GGML_Q6_K: dequant_q6_k(out, src, n / 256); break;
    }
}

plm_status plm_gguf_tensor_to_f32(const plm_gguf_tensor *t, size_t row0, size_t n_rows, float *out,
                                  plm_error *err) {
    size_t cols = (size_t)t->ne[0], rows = cols ? t->n_elems / cols : 0;
    if (!plm_gguf_type_readable(t->type))
        return plm_fail(err, PLM_ERR_UNSUPPORTED, "tensor '%.*s' has type %s; pocketlm reads %s",
                        (int)t->name.n, t->name.s, plm_ggml_type_name(t->type),
                        PLM_GGUF_READ_TYPES);
    if (row0 > rows || n_rows > rows - row0)
        return plm_fail(err, PLM_ERR_ARG, "tensor '%.*s': rows [%zu, +%zu) beyond %zu",
                        (int)t->name.n, t->name.s, row0, n_rows, rows);
    plm_gguf_dequant_row(t->type, t->data + row0 * plm_gguf_row_bytes(t->type, cols), n_rows * cols,
                         out);
    return PLM_OK;
}

// ---- llama.cpp's Q/K permutation ----

void plm_gguf_permute_qk(float *out, const float *w, int32_t n_head, int32_t rows, int32_t cols,
                         int inverse) {
    // HF row h*D + s*D/2 + i  <->  GGUF row h*D + 2*i + s   (s in {0, 1}, i < D/2)
    size_t D = (size_t)(rows / n_head), half = D / 2;
    for (size_t h = 0; h < (size_t)n_head; h++)
        for (size_t s = 0; s < 2; s++)
            for (size_t i = 0; i < half; i++) {
                size_t hf = h * D + s * half + i, gg = h * D + 2 * i + s;
                size_t to = inverse ? hf : gg, from = inverse ? gg : hf;
                memcpy(out + to * (size_t)cols, w + from * (size_t)cols, (size_t)cols * sizeof *w);
            }
}

// ---- tokenizer ----

plm_status plm_gguf_tokenizer(plm_tokenizer **out, const plm_gguf *g, const char *name,
                              plm_error *err) {
    *out = NULL;
    plm_str model = {0}, pre_s = {0};
    int spm = plm_gguf_get_str(g, "tokenizer.ggml.model", &model) == 0 && str_is(model, "llama");
    if (model.s && !spm && !str_is(model, "gpt2"))
        return plm_fail(err, PLM_ERR_UNSUPPORTED,
                        "%s: tokenizer.ggml.model is '%.*s'; pocketlm handles 'gpt2' (byte-level "
                        "BPE) and 'llama' (SentencePiece BPE)",
                        name, (int)(model.n > 40 ? 40 : model.n), model.s);
    char pre[64] = "default";
    if (plm_gguf_get_str(g, "tokenizer.ggml.pre", &pre_s) == 0 && pre_s.n < sizeof pre) {
        memcpy(pre, pre_s.s, pre_s.n);
        pre[pre_s.n] = 0;
    }
    plm_str *tokens = NULL, *merges = NULL;
    int32_t *types = NULL;
    float *scores = NULL;
    int64_t n_tokens = 0, n_merges = 0, n_types = 0, n_scores = 0;
    plm_status st = plm_gguf_get_strs(g, "tokenizer.ggml.tokens", &tokens, &n_tokens, err);
    if (st == PLM_OK && !spm && plm_gguf_find(g, "tokenizer.ggml.merges"))
        st = plm_gguf_get_strs(g, "tokenizer.ggml.merges", &merges, &n_merges, err);
    if (st == PLM_OK && spm) {
        st = plm_gguf_get_floats(g, "tokenizer.ggml.scores", &scores, &n_scores, err);
        if (st == PLM_OK && n_scores != n_tokens)
            st = plm_fail(err, PLM_ERR_FORMAT, "%s: %lld scores for %lld tokens", name,
                          (long long)n_scores, (long long)n_tokens);
    }
    if (st == PLM_OK && plm_gguf_find(g, "tokenizer.ggml.token_type")) {
        st = plm_gguf_get_ints(g, "tokenizer.ggml.token_type", &types, &n_types, err);
        if (st == PLM_OK && n_types != n_tokens)
            st = plm_fail(err, PLM_ERR_FORMAT, "%s: %lld token types for %lld tokens", name,
                          (long long)n_types, (long long)n_tokens);
    } else if (st == PLM_OK) {
        types = plm_alloc((size_t)n_tokens, sizeof *types);
        if (!types) st = plm_fail(err, PLM_ERR_NOMEM, "out of memory");
        for (int64_t k = 0; types && k < n_tokens; k++) types[k] = PLM_TOKEN_TYPE_NORMAL;
    }
    if (st == PLM_OK)
        st = plm_tokenizer_from_vocab(out, tokens, (int32_t)n_tokens, merges, (int32_t)n_merges,
                                      types, scores, pre, err);
    free(tokens);
    free(scores);
    free(merges);
    free(types);
    return st;
}

plm_status plm_gguf_load_tokenizer(plm_tokenizer **out, const char *path, plm_error *err) {
    plm_gguf g;
    *out = NULL;
    plm_status st = plm_gguf_open(&g, path, err);
    if (st != PLM_OK) return st;
    st = plm_gguf_tokenizer(out, &g, path, err);
    plm_gguf_free(&g);
    return st;
}
