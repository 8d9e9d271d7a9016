// base.h: errors, allocation, files and time for every src/ file.
// The library never prints or exits: failures are reported through plm_error (see pocketlm.h).
#ifndef PLM_BASE_H
#define PLM_BASE_H

#include "pocketlm.h"

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define PLM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define PLM_PRINTF(a, b)
#endif

// plm_fail: fill *err (if not NULL) with status and a formatted message; returns status,
// so failure sites are one line: `return plm_fail(err, PLM_ERR_FORMAT, "...", ...);`
plm_status plm_fail(plm_error *err, plm_status status, const char *fmt, ...) PLM_PRINTF(3, 4);

// Allocation that cannot overflow: returns NULL on overflow or when out of memory.
void *plm_alloc(size_t n, size_t size); // zeroed, like calloc
void *plm_alloc_aligned(size_t n,
                        size_t size); // 64-byte aligned, zeroed; free with plm_free_aligned
void plm_free_aligned(void *p);
// plm_alloc_big: bytes (> 0) of zeroed, 64-byte aligned memory for a large long-lived buffer (the
// weights). On Linux, from 2 MB on: fresh pages of an anonymous map, 2 MB aligned and marked for
// transparent huge pages (hundreds of page faults instead of tens of thousands, fewer TLB misses
// when the weights stream), never memset: the kernel zeroes each page when it is first touched, by
// whichever thread writes it. Elsewhere plm_alloc_aligned. Free with plm_free_big(p, bytes).
void *plm_alloc_big(size_t bytes);
void plm_free_big(void *p, size_t bytes); // NULL ok

// plm_file_read: read a whole file into a new buffer (NUL-terminated, len excludes the NUL).
// The caller frees *out with free().
plm_status plm_file_read(const char *path, char **out, size_t *len, plm_error *err);

// A read-only view of a whole file: memory-mapped where the platform can, else read into memory.
typedef struct {
    const uint8_t *data; // file bytes
    size_t size;         // bytes
    int mapped;          // 1 = mmap (munmap on close), 0 = malloc (free on close)
} plm_file_map;
plm_status plm_file_map_open(plm_file_map *m, const char *path, plm_error *err);
void plm_file_map_close(plm_file_map *m); // accepts a zeroed map

// Atomic file writing: write to "<path>.tmp.<pid>", fsync, rename over path on commit.
// On any failure the temp file is removed and path is untouched.
typedef struct plm_writer plm_writer;
plm_status plm_writer_open(plm_writer **out, const char *path, plm_error *err);
plm_status plm_writer_write(plm_writer *w, const void *buf, size_t n, plm_error *err);
plm_status plm_writer_printf(plm_writer *w, plm_error *err, const char *fmt, ...) PLM_PRINTF(3, 4);
plm_status plm_writer_commit(plm_writer *w, plm_error *err); // closes and renames; frees w
void plm_writer_abort(plm_writer *w);                        // closes and removes; frees w; NULL ok

// Paths
int plm_path_is_dir(const char *path);
int plm_path_exists(const char *path);
// join dir and name into out (cap bytes); returns 0, or -1 when it does not fit
int plm_path_join(char *out, size_t cap, const char *dir, const char *name);
plm_status plm_mkdir(const char *path, plm_error *err); // ok if it already exists as a directory

// Seconds from a monotonic clock.
double plm_time(void);

// f16 / bf16 <-> f32 conversion (round to nearest even on the way down).
float plm_f16_to_f32(uint16_t h);
uint16_t plm_f32_to_f16(float f);
float plm_bf16_to_f32(uint16_t h);
uint16_t plm_f32_to_bf16(float f);

#endif
