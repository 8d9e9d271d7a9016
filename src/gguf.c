// gguf.c: the GGUF v2/v3 reader (from a buffer; every count, length and offset validated before
// use, since it is fuzzed), dequantization of F32/F16/BF16/Q8_0/Q4_0/Q4_1, llama.cpp's Q/K row
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
                        want == PLM_GGUF_STRING ? "strings" : "integers");
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

// ---- tensors and dequantization ----

const plm_gguf_tensor *plm_gguf_find_tensor(const plm_gguf *g, const char *name) {
    for (int64_t k = 0; k < g->n_tensors; k++)
        if (str_is(g->tensors[k].name, name)) return &g->tensors[k];
    return NULL;
}

static float f16_at(const uint8_t *p) {
    return plm_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

// dequant_blocks: nb blocks of 32 at src -> y (nb * 32), as ggml's dequantize_row_{q8_0,q4_0,q4_1}.
// Q4_1's q * d + m is two statements: a multiply then an add, two roundings, never an FMA whatever
// the compiler's contraction default (quant.c computes the same values with SIMD and must match).
static void dequant_blocks(float *y, const uint8_t *src, size_t nb, uint32_t type) {
    for (size_t b = 0; b < nb; b++, y += 32) {
        if (type == PLM_GGML_Q8_0) { // {f16 d; int8 qs[32]}: x = q * d
            const uint8_t *p = src + b * 34;
            float d = f16_at(p);
            for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)p[2 + j] * d;
        } else if (type ==
                   PLM_GGML_Q4_0) { // {f16 d; u8 qs[16]}: x = (q - 8) * d, low nibbles first
            const uint8_t *p = src + b * 18;
            float d = f16_at(p);
            for (int j = 0; j < 16; j++) {
                y[j] = (float)((p[2 + j] & 0x0f) - 8) * d;
                y[j + 16] = (float)((p[2 + j] >> 4) - 8) * d;
            }
        } else { // Q4_1 {f16 d; f16 m; u8 qs[16]}: x = q * d + m
            const uint8_t *p = src + b * 20;
            float d = f16_at(p), m = f16_at(p + 2);
            for (int j = 0; j < 16; j++) {
                const float lo = (float)(p[4 + j] & 0x0f) * d, hi = (float)(p[4 + j] >> 4) * d;
                y[j] = lo + m;
                y[j + 16] = hi + m;
            }
        }
    }
}

void plm_gguf_dequant_row(uint32_t type, const uint8_t *src, size_t n, float *out) {
    int dt = plm_gguf_type_to_dtype(type);
    if (dt == PLM_DTYPE_F32 || dt == PLM_DTYPE_F16 || dt == PLM_DTYPE_BF16)
        plm_convert_to_f32(out, src, n, (plm_dtype)dt);
    else if (dt >= 0) dequant_blocks(out, src, n / 32, type);
}

plm_status plm_gguf_tensor_to_f32(const plm_gguf_tensor *t, size_t row0, size_t n_rows, float *out,
                                  plm_error *err) {
    size_t cols = (size_t)t->ne[0], rows = cols ? t->n_elems / cols : 0;
    int dt = plm_gguf_type_to_dtype(t->type);
    if (dt < 0)
        return plm_fail(
            err, PLM_ERR_UNSUPPORTED,
            "tensor '%.*s' has type %s; pocketlm reads F32, F16, BF16, Q8_0, Q4_0, Q4_1",
            (int)t->name.n, t->name.s, plm_ggml_type_name(t->type));
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
    if (plm_gguf_get_str(g, "tokenizer.ggml.model", &model) == 0 && !str_is(model, "gpt2"))
        return plm_fail(
            err, PLM_ERR_UNSUPPORTED,
            "%s: tokenizer.ggml.model is '%.*s'; pocketlm handles 'gpt2' (byte-level BPE)", name,
            (int)(model.n > 40 ? 40 : model.n), model.s);
    char pre[64] = "default";
    if (plm_gguf_get_str(g, "tokenizer.ggml.pre", &pre_s) == 0 && pre_s.n < sizeof pre) {
        memcpy(pre, pre_s.s, pre_s.n);
        pre[pre_s.n] = 0;
    }
    plm_str *tokens = NULL, *merges = NULL;
    int32_t *types = NULL;
    int64_t n_tokens = 0, n_merges = 0, n_types = 0;
    plm_status st = plm_gguf_get_strs(g, "tokenizer.ggml.tokens", &tokens, &n_tokens, err);
    if (st == PLM_OK && plm_gguf_find(g, "tokenizer.ggml.merges"))
        st = plm_gguf_get_strs(g, "tokenizer.ggml.merges", &merges, &n_merges, err);
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
                                      types, pre, err);
    free(tokens);
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
