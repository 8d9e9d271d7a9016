// base.c: the error type, allocation helpers, whole-file reading and mapping, atomic writes,
// a monotonic clock and half-precision conversions. No printing, no exits.
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE // MAP_ANONYMOUS, MADV_HUGEPAGE
#include "base.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#if !defined(__EMSCRIPTEN__)
#include <sys/mman.h>
#endif

// ---- errors ----

const char *plm_status_name(plm_status s) {
    switch (s) {
    case PLM_OK: return "ok";
    case PLM_ERR_ARG: return "bad argument";
    case PLM_ERR_NOMEM: return "out of memory";
    case PLM_ERR_IO: return "i/o error";
    case PLM_ERR_FORMAT: return "bad format";
    case PLM_ERR_UNSUPPORTED: return "unsupported";
    case PLM_ERR_CANCELLED: return "cancelled";
    }
    return "unknown status";
}

plm_status plm_fail(plm_error *err, plm_status status, const char *fmt, ...) {
    if (err) {
        err->status = status;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return status;
}

// ---- allocation ----

void *plm_alloc(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    return calloc(n ? n : 1, size ? size : 1);
}

void *plm_alloc_aligned(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    size_t bytes = n * size;
    bytes = (bytes + 63) & ~(size_t)63;
    if (bytes == 0) bytes = 64;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes) != 0) return NULL;
    memset(p, 0, bytes);
    return p;
}

void plm_free_aligned(void *p) {
    free(p);
}

#if defined(__linux__)
#define BIG_PAGE ((size_t)2 << 20) // an x86-64 / arm64 transparent huge page

void *plm_alloc_big(size_t bytes) {
    if (bytes < BIG_PAGE) return plm_alloc_aligned(bytes, 1);
    if (bytes > SIZE_MAX - 2 * BIG_PAGE) return NULL;
    size_t len = (bytes + BIG_PAGE - 1) & ~(BIG_PAGE - 1);
    uint8_t *raw =
        mmap(NULL, len + BIG_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return NULL;
    uint8_t *p = raw + ((BIG_PAGE - (uintptr_t)raw % BIG_PAGE) % BIG_PAGE);
    if (p > raw) munmap(raw, (size_t)(p - raw));
    if (raw + len + BIG_PAGE > p + len) munmap(p + len, (size_t)(raw + len + BIG_PAGE - (p + len)));
    madvise(p, len, MADV_HUGEPAGE); // a hint: without it (or without THP) 4 KB pages
    return p;
}

void plm_free_big(void *p, size_t bytes) {
    if (!p) return;
    if (bytes < BIG_PAGE) plm_free_aligned(p);
    else munmap(p, (bytes + BIG_PAGE - 1) & ~(BIG_PAGE - 1));
}
#else
void *plm_alloc_big(size_t bytes) {
    return plm_alloc_aligned(bytes, 1);
}
void plm_free_big(void *p, size_t bytes) {
    (void)bytes;
    plm_free_aligned(p);
}
#endif

// ---- files ----

plm_status plm_file_read(const char *path, char **out, size_t *len, plm_error *err) {
    *out = NULL;
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return plm_fail(err, PLM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (cap - n < 65536) {
            size_t ncap = cap ? cap * 2 : 1 << 20;
            char *nb = realloc(buf, ncap + 1);
            if (!nb) {
                free(buf);
                fclose(f);
                return plm_fail(err, PLM_ERR_NOMEM, "%s: out of memory reading file", path);
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return plm_fail(err, PLM_ERR_IO, "%s: read error", path);
    }
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return PLM_OK;
}

plm_status plm_file_map_open(plm_file_map *m, const char *path, plm_error *err) {
    memset(m, 0, sizeof *m);
#if !defined(__EMSCRIPTEN__)
    int fd = open(path, O_RDONLY);
    if (fd < 0) return plm_fail(err, PLM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return plm_fail(err, PLM_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p != MAP_FAILED) {
            close(fd);
            m->data = p;
            m->size = (size_t)st.st_size;
            m->mapped = 1;
            return PLM_OK;
        }
    }
    close(fd);
#endif
    char *buf;
    size_t n;
    plm_status s = plm_file_read(path, &buf, &n, err);
    if (s != PLM_OK) return s;
    m->data = (const uint8_t *)buf;
    m->size = n;
    return PLM_OK;
}

void plm_file_map_close(plm_file_map *m) {
    if (!m || !m->data) return;
#if !defined(__EMSCRIPTEN__)
    if (m->mapped) munmap((void *)(uintptr_t)m->data, m->size);
    else free((void *)(uintptr_t)m->data);
#else
    free((void *)(uintptr_t)m->data);
#endif
    memset(m, 0, sizeof *m);
}

// ---- atomic writer ----

struct plm_writer {
    FILE *f;         // the temp file
    char *path;      // final path
    char *tmp;       // temp path
    uint64_t offset; // bytes written so far
};

plm_status plm_writer_open(plm_writer **out, const char *path, plm_error *err) {
    *out = NULL;
    plm_writer *w = plm_alloc(1, sizeof *w);
    size_t n = strlen(path);
    if (!w) return plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    w->path = malloc(n + 1);
    w->tmp = malloc(n + 32);
    if (!w->path || !w->tmp) {
        plm_writer_abort(w);
        return plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    }
    memcpy(w->path, path, n + 1);
    snprintf(w->tmp, n + 32, "%s.tmp.%ld", path, (long)getpid());
    w->f = fopen(w->tmp, "wb");
    if (!w->f) {
        plm_status s = plm_fail(err, PLM_ERR_IO, "%s: cannot create: %s", w->tmp, strerror(errno));
        free(w->path);
        free(w->tmp);
        free(w);
        return s;
    }
    *out = w;
    return PLM_OK;
}

plm_status plm_writer_write(plm_writer *w, const void *buf, size_t n, plm_error *err) {
    if (n && fwrite(buf, 1, n, w->f) != n)
        return plm_fail(err, PLM_ERR_IO, "%s: write failed: %s", w->tmp, strerror(errno));
    w->offset += n;
    return PLM_OK;
}

plm_status plm_writer_printf(plm_writer *w, plm_error *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vfprintf(w->f, fmt, ap);
    va_end(ap);
    if (n < 0) return plm_fail(err, PLM_ERR_IO, "%s: write failed: %s", w->tmp, strerror(errno));
    w->offset += (uint64_t)n;
    return PLM_OK;
}

plm_status plm_writer_commit(plm_writer *w, plm_error *err) {
    plm_status s = PLM_OK;
    if (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0)
        s = plm_fail(err, PLM_ERR_IO, "%s: write failed: %s", w->tmp, strerror(errno));
    if (fclose(w->f) != 0 && s == PLM_OK)
        s = plm_fail(err, PLM_ERR_IO, "%s: close failed: %s", w->tmp, strerror(errno));
    w->f = NULL;
    if (s == PLM_OK && rename(w->tmp, w->path) != 0)
        s = plm_fail(err, PLM_ERR_IO, "%s: rename failed: %s", w->path, strerror(errno));
    if (s != PLM_OK) remove(w->tmp);
    free(w->path);
    free(w->tmp);
    free(w);
    return s;
}

void plm_writer_abort(plm_writer *w) {
    if (!w) return;
    if (w->f) {
        fclose(w->f);
        remove(w->tmp);
    }
    free(w->path);
    free(w->tmp);
    free(w);
}

// ---- paths ----

int plm_path_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int plm_path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int plm_path_join(char *out, size_t cap, const char *dir, const char *name) {
    int n = snprintf(out, cap, "%s/%s", dir, name);
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

plm_status plm_mkdir(const char *path, plm_error *err) {
    if (mkdir(path, 0755) == 0) return PLM_OK;
    if (errno == EEXIST && plm_path_is_dir(path)) return PLM_OK;
    return plm_fail(err, PLM_ERR_IO, "%s: cannot create directory: %s", path, strerror(errno));
}

// ---- time ----

double plm_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

// ---- half precision ----

static float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

float plm_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    if (exp == 0) { // zero or subnormal: mant * 2^-24
        float f = (float)mant * f32_from_bits(0x33800000u);
        return sign ? -f : f;
    }
    if (exp == 31) return f32_from_bits(sign | 0x7f800000u | (mant << 13));
    return f32_from_bits(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t plm_f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint32_t sign = (u >> 16) & 0x8000;
    uint32_t abs = u & 0x7fffffffu;
    if (abs >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (abs > 0x7f800000u ? 0x200 : 0));
    if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); // rounds to >= 65520: inf
    if (abs < 0x38800000u) { // below the smallest normal: subnormal, rounded to nearest even
        float a = f32_from_bits(abs);
        float q = a * 16777216.0f; // in units of 2^-24
        uint32_t m = (uint32_t)q;
        float rem = q - (float)m;
        if (rem > 0.5f || (rem == 0.5f && (m & 1))) m++;
        return (uint16_t)(sign | m);
    }
    uint32_t mant = abs & 0x7fffff, exp = (abs >> 23) - 112;
    uint32_t h = (exp << 10) | (mant >> 13);
    uint32_t rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

float plm_bf16_to_f32(uint16_t h) {
    return f32_from_bits((uint32_t)h << 16);
}

uint16_t plm_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); // quiet NaN
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}
