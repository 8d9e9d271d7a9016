// safetensors.c: the safetensors reader (buffer or mapped file, fully validated), sharded model
// sets, f16/bf16 <-> f32 element conversion and the atomic writer. See safetensors.h for the
// format. Model semantics (which tensor is which) live in model.c, not here.
#include "safetensors.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#define ST_MAX_HEADER (100u << 20) // the spec's limit on the JSON header

// ---- dtypes ----

typedef struct {
    const char *name; // as written in the header
    size_t size;      // bytes per element
    int dtype;        // plm_dtype, or -1 when we cannot convert it to f32
} st_dtype;

static const st_dtype st_dtypes[] = {
    {"F32", 4, PLM_DTYPE_F32},
    {"F16", 2, PLM_DTYPE_F16},
    {"BF16", 2, PLM_DTYPE_BF16},
    {"F64", 8, -1},
    {"I64", 8, -1},
    {"U64", 8, -1},
    {"I32", 4, -1},
    {"U32", 4, -1},
    {"I16", 2, -1},
    {"U16", 2, -1},
    {"I8", 1, -1},
    {"U8", 1, -1},
    {"BOOL", 1, -1},
    {"F8_E4M3", 1, -1},
    {"F8_E5M2", 1, -1},
};

// dtype_elem_size: 4 for F32, 2 for F16/BF16, 0 for block types
static size_t dtype_elem_size(plm_dtype t) {
    return t == PLM_DTYPE_F32 ? 4 : (t == PLM_DTYPE_F16 || t == PLM_DTYPE_BF16) ? 2 : 0;
}

static const char *st_dtype_name(plm_dtype t) {
    return t == PLM_DTYPE_F32 ? "F32" : t == PLM_DTYPE_F16 ? "F16" : "BF16";
}

void plm_convert_to_f32(float *out, const uint8_t *src, size_t n, plm_dtype t) {
    if (t == PLM_DTYPE_F32) {
        memcpy(out, src, n * 4); // little-endian host assumed (x86, arm, wasm)
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint16_t h = (uint16_t)(src[2 * i] | (src[2 * i + 1] << 8));
        out[i] = t == PLM_DTYPE_F16 ? plm_f16_to_f32(h) : plm_bf16_to_f32(h);
    }
}

void plm_convert_from_f32(uint8_t *dst, const float *src, size_t n, plm_dtype t) {
    if (t == PLM_DTYPE_F32) {
        memcpy(dst, src, n * 4);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint16_t h = t == PLM_DTYPE_F16 ? plm_f32_to_f16(src[i]) : plm_f32_to_bf16(src[i]);
        dst[2 * i] = (uint8_t)(h & 0xff);
        dst[2 * i + 1] = (uint8_t)(h >> 8);
    }
}

// ---- reading ----

// parse_tensor: one header entry {dtype, shape, data_offsets} at token v into *t.
static plm_status parse_tensor(plm_st_tensor *t, const plm_json *j, int32_t v, const uint8_t *data,
                               size_t data_size, const char *file, plm_error *err) {
    const char *nm = t->name;
    int32_t jd = plm_json_get(j, v, "dtype"), js = plm_json_get(j, v, "shape");
    int32_t jo = plm_json_get(j, v, "data_offsets");
    if (jd < 0 || js < 0 || jo < 0 || j->tok[js].type != PLM_JSON_ARRAY ||
        j->tok[jo].type != PLM_JSON_ARRAY || j->tok[jo].size != 2)
        return plm_fail(err, PLM_ERR_FORMAT,
                        "%s: tensor '%s' needs dtype, shape and data_offsets [begin, end]", file,
                        nm);
    char dname[32];
    int64_t dlen = plm_json_str(j, jd, dname, sizeof dname);
    const st_dtype *dt = NULL;
    for (size_t k = 0; dlen >= 0 && k < sizeof st_dtypes / sizeof st_dtypes[0]; k++)
        if (!strcmp(dname, st_dtypes[k].name)) dt = &st_dtypes[k];
    if (!dt)
        return plm_fail(err, PLM_ERR_UNSUPPORTED, "%s: tensor '%s' has unknown dtype '%s'", file,
                        nm, dlen >= 0 ? dname : "(not a string)");
    t->dtype_name = dt->name;
    t->dtype = dt->dtype;
    t->elem_size = dt->size;
    if (j->tok[js].size > PLM_ST_MAX_DIMS)
        return plm_fail(err, PLM_ERR_UNSUPPORTED, "%s: tensor '%s' has %d dims, at most %d", file,
                        nm, j->tok[js].size, PLM_ST_MAX_DIMS);
    t->n_dims = j->tok[js].size;
    size_t n = 1;
    for (int32_t d = 0; d < t->n_dims; d++) {
        int64_t s;
        if (plm_json_int(j, plm_json_at(j, js, d), 0, INT64_C(1) << 50, &s) != 0)
            return plm_fail(err, PLM_ERR_FORMAT, "%s: tensor '%s': shape[%d] is not a size", file,
                            nm, d);
        t->shape[d] = s;
        if (s && n > SIZE_MAX / (size_t)s)
            return plm_fail(err, PLM_ERR_FORMAT, "%s: tensor '%s': shape overflows", file, nm);
        n *= (size_t)s;
    }
    t->n_elems = n;
    int64_t b, e;
    if (plm_json_int(j, plm_json_at(j, jo, 0), 0, INT64_MAX / 2, &b) != 0 ||
        plm_json_int(j, plm_json_at(j, jo, 1), 0, INT64_MAX / 2, &e) != 0 || b > e ||
        (uint64_t)e > data_size)
        return plm_fail(err, PLM_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets out of range (data section is %zu bytes)",
                        file, nm, data_size);
    if (n > SIZE_MAX / t->elem_size || n * t->elem_size != (size_t)(e - b))
        return plm_fail(err, PLM_ERR_FORMAT,
                        "%s: tensor '%s': shape needs %zu elements of %zu bytes but data_offsets "
                        "span %lld bytes",
                        file, nm, n, t->elem_size, (long long)(e - b));
    t->data = data + b;
    return PLM_OK;
}

// parse_header: the JSON object of the header into st->tensors.
static plm_status parse_header(plm_safetensors *st, const plm_json *j, const uint8_t *data,
                               size_t data_size, const char *name, plm_error *err) {
    if (j->n == 0 || j->tok[0].type != PLM_JSON_OBJECT)
        return plm_fail(err, PLM_ERR_FORMAT, "%s: header is not a JSON object", name);
    st->tensors = plm_alloc((size_t)j->tok[0].size, sizeof *st->tensors);
    if (!st->tensors) return plm_fail(err, PLM_ERR_NOMEM, "%s: out of memory", name);
    int32_t k = 1;
    for (int32_t m = 0; m < j->tok[0].size; m++, k = j->tok[k + 1].next) {
        int32_t v = k + 1;
        if (plm_json_eq(j, k, "__metadata__")) {
            if (j->tok[v].type != PLM_JSON_OBJECT)
                return plm_fail(err, PLM_ERR_FORMAT, "%s: __metadata__ is not an object", name);
            st->has_metadata = 1;
            continue;
        }
        if (j->tok[v].type != PLM_JSON_OBJECT)
            return plm_fail(err, PLM_ERR_FORMAT, "%s: header entry %d is not an object", name, m);
        int64_t len = plm_json_str(j, k, NULL, 0);
        plm_st_tensor *t = &st->tensors[st->n];
        t->name = malloc((size_t)len + 1);
        if (!t->name) return plm_fail(err, PLM_ERR_NOMEM, "%s: out of memory", name);
        plm_json_str(j, k, t->name, (size_t)len + 1);
        st->n++;
        if (memchr(t->name, 0, (size_t)len) || plm_safetensors_find(st, t->name) != t)
            return plm_fail(err, PLM_ERR_FORMAT, "%s: tensor name '%s' is repeated or has NUL",
                            name, t->name);
        plm_status s = parse_tensor(t, j, v, data, data_size, name, err);
        if (s != PLM_OK) return s;
    }
    return PLM_OK;
}

// parse_buf: the parse into a zeroed *out (whose map plm_safetensors_open may have set).
static plm_status parse_buf(plm_safetensors *out, const uint8_t *buf, size_t size, const char *name,
                            plm_error *err) {
    if (size < 8)
        return plm_fail(err, PLM_ERR_FORMAT,
                        "%s: %zu bytes, too short for the 8-byte header length", name, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | buf[i];
    if (hlen > size - 8)
        return plm_fail(err, PLM_ERR_FORMAT,
                        "%s: header length %llu exceeds the file (%zu bytes after the length)",
                        name, (unsigned long long)hlen, size - 8);
    if (hlen > ST_MAX_HEADER)
        return plm_fail(err, PLM_ERR_FORMAT, "%s: header length %llu is over the 100 MB limit",
                        name, (unsigned long long)hlen);
    plm_json j;
    plm_status s = plm_json_parse(&j, (const char *)buf + 8, (size_t)hlen, name, err);
    if (s != PLM_OK) return s;
    s = parse_header(out, &j, buf + 8 + hlen, size - 8 - (size_t)hlen, name, err);
    plm_json_free(&j);
    return s;
}

plm_status plm_safetensors_parse(plm_safetensors *out, const uint8_t *buf, size_t size,
                                 const char *name, plm_error *err) {
    memset(out, 0, sizeof *out);
    plm_status s = parse_buf(out, buf, size, name, err);
    if (s != PLM_OK) plm_safetensors_free(out);
    return s;
}

plm_status plm_safetensors_open(plm_safetensors *out, const char *path, plm_error *err) {
    memset(out, 0, sizeof *out);
    plm_status s = plm_file_map_open(&out->map, path, err);
    if (s != PLM_OK) return s;
    s = parse_buf(out, out->map.data, out->map.size, path, err);
    if (s != PLM_OK) plm_safetensors_free(out);
    return s;
}

void plm_safetensors_free(plm_safetensors *st) {
    if (!st) return;
    for (int32_t i = 0; i < st->n; i++) free(st->tensors[i].name);
    free(st->tensors);
    plm_file_map_close(&st->map);
    memset(st, 0, sizeof *st);
}

const plm_st_tensor *plm_safetensors_find(const plm_safetensors *st, const char *name) {
    for (int32_t i = 0; i < st->n; i++)
        if (!strcmp(st->tensors[i].name, name)) return &st->tensors[i];
    return NULL;
}

plm_status plm_st_tensor_to_f32(const plm_st_tensor *t, size_t first, size_t n, float *out,
                                plm_error *err) {
    if (t->dtype < 0)
        return plm_fail(err, PLM_ERR_UNSUPPORTED,
                        "tensor '%s' has dtype %s; only F32, F16 and BF16 convert to f32", t->name,
                        t->dtype_name);
    if (first > t->n_elems || n > t->n_elems - first)
        return plm_fail(err, PLM_ERR_ARG, "tensor '%s': elements [%zu, +%zu) beyond %zu", t->name,
                        first, n, t->n_elems);
    plm_convert_to_f32(out, t->data + first * t->elem_size, n, (plm_dtype)t->dtype);
    return PLM_OK;
}

// ---- sharded sets ----

// set_add: open dir/file unless already in the set.
static plm_status set_add(plm_st_set *s, const char *dir, const char *file, plm_error *err) {
    char path[4096];
    if (strchr(file, '/') || !strcmp(file, "..") || plm_path_join(path, sizeof path, dir, file))
        return plm_fail(err, PLM_ERR_FORMAT, "%s: bad shard file name '%s'", dir, file);
    plm_safetensors *nf = realloc(s->files, (size_t)(s->n_files + 1) * sizeof *nf);
    if (!nf) return plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    s->files = nf;
    plm_status st = plm_safetensors_open(&s->files[s->n_files], path, err);
    if (st == PLM_OK) s->n_files++;
    return st;
}

// set_open_index: the distinct files named by the index's weight_map, in order of appearance.
static plm_status set_open_index(plm_st_set *s, const char *dir, const char *index,
                                 plm_error *err) {
    char *text;
    size_t len;
    plm_json j;
    plm_status st = plm_file_read(index, &text, &len, err);
    if (st != PLM_OK) return st;
    st = plm_json_parse(&j, text, len, index, err);
    int32_t wm = st == PLM_OK ? plm_json_get(&j, 0, "weight_map") : -1;
    if (st == PLM_OK && (wm < 0 || j.tok[wm].type != PLM_JSON_OBJECT))
        st = plm_fail(err, PLM_ERR_FORMAT, "%s: no weight_map object", index);
    char **seen = st == PLM_OK ? plm_alloc((size_t)j.tok[wm].size, sizeof *seen) : NULL;
    int32_t n_seen = 0;
    if (st == PLM_OK && !seen) st = plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    for (int32_t m = 0, k = wm + 1; st == PLM_OK && m < j.tok[wm].size; m++) {
        char file[1024];
        if (plm_json_str(&j, k + 1, file, sizeof file) < 0 || strlen(file) + 1 >= sizeof file) {
            st = plm_fail(err, PLM_ERR_FORMAT, "%s: weight_map value %d is not a file name", index,
                          m);
            break;
        }
        int32_t i = 0;
        while (i < n_seen && strcmp(seen[i], file)) i++;
        if (i == n_seen && !(seen[n_seen] = malloc(strlen(file) + 1)))
            st = plm_fail(err, PLM_ERR_NOMEM, "out of memory");
        else if (i == n_seen) {
            strcpy(seen[n_seen++], file);
            st = set_add(s, dir, file, err);
        }
        k = j.tok[k + 1].next;
    }
    for (int32_t i = 0; i < n_seen; i++) free(seen[i]);
    free(seen);
    if (j.tok) plm_json_free(&j);
    free(text);
    return st;
}

plm_status plm_st_set_open(plm_st_set *out, const char *dir, plm_error *err) {
    memset(out, 0, sizeof *out);
    char index[4096];
    if (plm_path_join(index, sizeof index, dir, "model.safetensors.index.json"))
        return plm_fail(err, PLM_ERR_ARG, "%s: path too long", dir);
    plm_status s = plm_path_exists(index) ? set_open_index(out, dir, index, err)
                                          : set_add(out, dir, "model.safetensors", err);
    if (s == PLM_OK && out->n_files == 0)
        s = plm_fail(err, PLM_ERR_FORMAT, "%s: the index lists no files", index);
    if (s != PLM_OK) plm_st_set_free(out);
    return s;
}

void plm_st_set_free(plm_st_set *s) {
    if (!s) return;
    for (int32_t i = 0; i < s->n_files; i++) plm_safetensors_free(&s->files[i]);
    free(s->files);
    memset(s, 0, sizeof *s);
}

const plm_st_tensor *plm_st_set_find(const plm_st_set *s, const char *name) {
    for (int32_t i = 0; i < s->n_files; i++) {
        const plm_st_tensor *t = plm_safetensors_find(&s->files[i], name);
        if (t) return t;
    }
    return NULL;
}

// ---- writing ----

// A growing string for the JSON header.
typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} strbuf;

static void sb_printf(strbuf *b, const char *fmt, ...) PLM_PRINTF(2, 3);
static void sb_printf(strbuf *b, const char *fmt, ...) {
    for (int tries = 0; tries < 2 && !b->oom; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k >= 0 && b->p && (size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return;
        }
        size_t ncap = (b->cap + (size_t)(k > 0 ? k : 0) + 1) * 2;
        char *np = realloc(b->p, ncap);
        if (!np) b->oom = 1;
        else b->p = np, b->cap = ncap;
    }
}

// write_header: the length and the JSON header, padded with spaces so the data starts at a
// multiple of 8 bytes.
static plm_status write_header(plm_writer *w, const plm_st_info *t, int32_t n, int pt_metadata,
                               plm_error *err) {
    strbuf b = {0};
    size_t off = 0;
    sb_printf(&b, "{");
    if (pt_metadata) sb_printf(&b, "\"__metadata__\":{\"format\":\"pt\"}%s", n ? "," : "");
    for (int32_t i = 0; i < n; i++) {
        size_t cnt = 1;
        for (int32_t d = 0; d < t[i].n_dims; d++) cnt *= (size_t)t[i].shape[d];
        size_t bytes = cnt * dtype_elem_size(t[i].dtype);
        sb_printf(&b, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", i ? "," : "", t[i].name,
                  st_dtype_name(t[i].dtype));
        for (int32_t d = 0; d < t[i].n_dims; d++)
            sb_printf(&b, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
        sb_printf(&b, "],\"data_offsets\":[%zu,%zu]}", off, off + bytes);
        off += bytes;
    }
    sb_printf(&b, "}");
    while (!b.oom && b.n % 8) sb_printf(&b, " ");
    if (b.oom) {
        free(b.p);
        return plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)b.n >> (8 * i));
    plm_status s = plm_writer_write(w, len8, 8, err);
    if (s == PLM_OK) s = plm_writer_write(w, b.p, b.n, err);
    free(b.p);
    return s;
}

plm_status plm_safetensors_write(const char *path, const plm_st_info *t, int32_t n, int pt_metadata,
                                 plm_tensor_fill fill, void *user, plm_error *err) {
    for (int32_t i = 0; i < n; i++) {
        if (!dtype_elem_size(t[i].dtype) || t[i].n_dims < 1 || t[i].n_dims > PLM_ST_MAX_DIMS ||
            strlen(t[i].name) > 400 || strpbrk(t[i].name, "\"\\"))
            return plm_fail(err, PLM_ERR_ARG, "%s: cannot write tensor '%s' (dtype %s, %d dims)",
                            path, t[i].name, plm_dtype_name(t[i].dtype), t[i].n_dims);
    }
    plm_writer *w;
    plm_status s = plm_writer_open(&w, path, err);
    if (s != PLM_OK) return s;
    s = write_header(w, t, n, pt_metadata, err);
    float *buf = NULL;
    uint8_t *bytes = NULL;
    for (int32_t i = 0; s == PLM_OK && i < n; i++) {
        size_t cnt = 1;
        for (int32_t d = 0; d < t[i].n_dims; d++) cnt *= (size_t)t[i].shape[d];
        free(buf);
        free(bytes);
        buf = plm_alloc(cnt, sizeof *buf);
        bytes = plm_alloc(cnt, dtype_elem_size(t[i].dtype));
        if (!buf || !bytes) s = plm_fail(err, PLM_ERR_NOMEM, "%s: out of memory", path);
        if (s == PLM_OK) s = fill(user, i, buf, err);
        if (s != PLM_OK) break;
        plm_convert_from_f32(bytes, buf, cnt, t[i].dtype);
        s = plm_writer_write(w, bytes, cnt * dtype_elem_size(t[i].dtype), err);
    }
    free(buf);
    free(bytes);
    if (s != PLM_OK) {
        plm_writer_abort(w);
        return s;
    }
    return plm_writer_commit(w, err);
}
