// gguf_write.c: plm_gguf_writer, the GGUF v3 writer (alignment 32): metadata entries, tensor infos,
// then each tensor's values from a fill callback, converted to F32/F16/BF16, or quantized
// (quantize.c: ggml's reference quantizers); written atomically. The reader is gguf.c.
// Reference: ggml/docs/gguf.md.
#include <stdlib.h>
#include <string.h>

#include "gguf_internal.h"
#include "quantize.h"

// ---- writing ----

typedef struct {
    char *name;
    int32_t n_dims;
    int64_t ne[PLM_GGUF_MAX_DIMS];
    uint32_t type;
} wtensor;

struct plm_gguf_writer {
    uint8_t *kv; // serialized metadata entries
    size_t kv_n, kv_cap;
    int64_t n_kv;
    wtensor *t; // (n_t)
    int64_t n_t;
    int oom; // an append failed; reported by plm_gguf_write
    int bad; // a tensor had an unwritable type or shape
};

plm_status plm_gguf_writer_create(plm_gguf_writer **out, plm_error *err) {
    *out = plm_alloc(1, sizeof **out);
    return *out ? PLM_OK : plm_fail(err, PLM_ERR_NOMEM, "out of memory");
}

void plm_gguf_writer_free(plm_gguf_writer *w) {
    if (!w) return;
    for (int64_t k = 0; k < w->n_t; k++) free(w->t[k].name);
    free(w->t);
    free(w->kv);
    free(w);
}

static void put(plm_gguf_writer *w, const void *p, size_t n) {
    if (w->oom) return;
    if (w->kv_cap - w->kv_n < n) {
        size_t cap = (w->kv_cap + n) * 2;
        uint8_t *nk = realloc(w->kv, cap);
        if (!nk) {
            w->oom = 1;
            return;
        }
        w->kv = nk;
        w->kv_cap = cap;
    }
    memcpy(w->kv + w->kv_n, p, n);
    w->kv_n += n;
}

static void put_uint(plm_gguf_writer *w, uint64_t v, int bytes) {
    uint8_t b[8];
    for (int k = 0; k < bytes; k++) b[k] = (uint8_t)(v >> (8 * k));
    put(w, b, (size_t)bytes);
}

static void put_str(plm_gguf_writer *w, const char *s, size_t n) {
    put_uint(w, n, 8);
    put(w, s, n);
}

static void put_key(plm_gguf_writer *w, const char *key, uint32_t type) {
    put_str(w, key, strlen(key));
    put_uint(w, type, 4);
    w->n_kv++;
}

void plm_gguf_add_str(plm_gguf_writer *w, const char *key, const char *s, size_t n) {
    put_key(w, key, PLM_GGUF_STRING);
    put_str(w, s, n);
}

void plm_gguf_add_u32(plm_gguf_writer *w, const char *key, uint32_t v) {
    put_key(w, key, PLM_GGUF_UINT32);
    put_uint(w, v, 4);
}

void plm_gguf_add_f32(plm_gguf_writer *w, const char *key, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    put_key(w, key, PLM_GGUF_FLOAT32);
    put_uint(w, u, 4);
}

void plm_gguf_add_bool(plm_gguf_writer *w, const char *key, int v) {
    put_key(w, key, PLM_GGUF_BOOL);
    put_uint(w, v ? 1 : 0, 1);
}

void plm_gguf_add_strs(plm_gguf_writer *w, const char *key, const plm_str *s, int64_t n) {
    put_key(w, key, PLM_GGUF_ARRAY);
    put_uint(w, PLM_GGUF_STRING, 4);
    put_uint(w, (uint64_t)n, 8);
    for (int64_t k = 0; k < n; k++) put_str(w, s[k].s, s[k].n);
}

void plm_gguf_add_i32s(plm_gguf_writer *w, const char *key, const int32_t *v, int64_t n) {
    put_key(w, key, PLM_GGUF_ARRAY);
    put_uint(w, PLM_GGUF_INT32, 4);
    put_uint(w, (uint64_t)n, 8);
    for (int64_t k = 0; k < n; k++) put_uint(w, (uint32_t)v[k], 4);
}

void plm_gguf_add_f32s(plm_gguf_writer *w, const char *key, const float *v, int64_t n) {
    put_key(w, key, PLM_GGUF_ARRAY);
    put_uint(w, PLM_GGUF_FLOAT32, 4);
    put_uint(w, (uint64_t)n, 8);
    for (int64_t k = 0; k < n; k++) {
        uint32_t u;
        memcpy(&u, &v[k], 4);
        put_uint(w, u, 4);
    }
}

void plm_gguf_add_tensor(plm_gguf_writer *w, const char *name, int32_t n_dims, const int64_t *ne,
                         uint32_t type) {
    wtensor *nt = realloc(w->t, (size_t)(w->n_t + 1) * sizeof *nt);
    char *nm = malloc(strlen(name) + 1);
    if (!nt || !nm) {
        if (nt) w->t = nt;
        free(nm);
        w->oom = 1;
        return;
    }
    w->t = nt;
    wtensor *t = &w->t[w->n_t++];
    strcpy(nm, name);
    t->name = nm;
    t->n_dims = n_dims;
    t->type = type;
    for (int d = 0; d < PLM_GGUF_MAX_DIMS; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    int ok_type = type == PLM_GGML_F32 || type == PLM_GGML_F16 || type == PLM_GGML_BF16 ||
                  plm_quantize_writable(type);
    const ggml_type_info *ti = plm_ggml_type_info(type);
    if (!ok_type || n_dims < 1 || n_dims > PLM_GGUF_MAX_DIMS || ne[0] % (int64_t)ti->block)
        w->bad = 1;
}

static size_t wtensor_elems(const wtensor *t) {
    size_t n = 1;
    for (int d = 0; d < PLM_GGUF_MAX_DIMS; d++) n *= (size_t)t->ne[d];
    return n;
}

static size_t align_up(size_t x) {
    return (x + GGUF_DEFAULT_ALIGNMENT - 1) / GGUF_DEFAULT_ALIGNMENT * GGUF_DEFAULT_ALIGNMENT;
}

// write_infos: header, metadata and tensor infos, padded to the alignment.
static plm_status write_infos(plm_gguf_writer *w, plm_writer *f, plm_error *err) {
    plm_gguf_writer info = {0}; // reuse the byte appender for the fixed part
    put(&info, GGUF_MAGIC, 4);
    put_uint(&info, 3, 4);
    put_uint(&info, (uint64_t)w->n_t, 8);
    put_uint(&info, (uint64_t)w->n_kv, 8);
    put(&info, w->kv, w->kv_n);
    size_t off = 0;
    for (int64_t k = 0; k < w->n_t; k++) {
        const wtensor *t = &w->t[k];
        put_str(&info, t->name, strlen(t->name));
        put_uint(&info, (uint64_t)t->n_dims, 4);
        for (int d = 0; d < t->n_dims; d++) put_uint(&info, (uint64_t)t->ne[d], 8);
        put_uint(&info, t->type, 4);
        put_uint(&info, off, 8);
        off = align_up(off + plm_gguf_row_bytes(t->type, wtensor_elems(t)));
    }
    static const uint8_t zeros[GGUF_DEFAULT_ALIGNMENT] = {0};
    put(&info, zeros, align_up(info.kv_n) - info.kv_n);
    plm_status st = info.oom ? plm_fail(err, PLM_ERR_NOMEM, "out of memory")
                             : plm_writer_write(f, info.kv, info.kv_n, err);
    free(info.kv);
    return st;
}

// write_tensor: tensor k's values from fill, converted to its type, padded to the alignment.
static plm_status write_tensor(const wtensor *t, int32_t k, plm_writer *f, plm_tensor_fill fill,
                               void *user, plm_error *err) {
    size_t n = wtensor_elems(t), bytes = plm_gguf_row_bytes(t->type, n);
    float *x = plm_alloc(n, sizeof *x);
    uint8_t *q = plm_alloc(align_up(bytes), 1);
    plm_status st = x && q ? fill(user, k, x, err) : plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    if (st == PLM_OK) {
        if (plm_quantize_writable(t->type)) plm_quantize_row(t->type, x, n, q);
        else plm_convert_from_f32(q, x, n, (plm_dtype)plm_gguf_type_to_dtype(t->type));
        st = plm_writer_write(f, q, align_up(bytes), err); // q is zeroed past bytes
    }
    free(x);
    free(q);
    return st;
}

plm_status plm_gguf_write(plm_gguf_writer *w, const char *path, plm_tensor_fill fill, void *user,
                          plm_error *err) {
    if (w->oom) return plm_fail(err, PLM_ERR_NOMEM, "%s: out of memory", path);
    if (w->bad)
        return plm_fail(err, PLM_ERR_ARG,
                        "%s: a tensor has a type pocketlm cannot write or a row length that is not "
                        "a multiple of its block",
                        path);
    plm_writer *f;
    plm_status st = plm_writer_open(&f, path, err);
    if (st != PLM_OK) return st;
    st = write_infos(w, f, err);
    for (int64_t k = 0; st == PLM_OK && k < w->n_t; k++)
        st = write_tensor(&w->t[k], (int32_t)k, f, fill, user, err);
    if (st != PLM_OK) {
        plm_writer_abort(f);
        return st;
    }
    return plm_writer_commit(f, err);
}
