// bandwidth.c: memory read bandwidth (bandwidth.h). One loop body, written with GCC vector
// extensions (vectors of the target's width, four independent accumulators, a software prefetch
// every 256 bytes), compiled for each x86-64 width with target attributes (AVX-512: 64-byte
// vectors, AVX2: 32, the SSE2 baseline: 16) and plainly elsewhere (NEON, wasm SIMD128: 16). A pass
// XORs every 64-byte line of a thread's part.
#include "bandwidth.h"

#include <stdint.h>

#include "base.h"
#include "cpu.h"

typedef uint64_t u64x8 __attribute__((vector_size(64)));
typedef uint64_t u64x4 __attribute__((vector_size(32)));
typedef uint64_t u64x2 __attribute__((vector_size(16)));

// Software prefetch this far ahead, as the decode kernels do (Zen 4, 4 KB pages: 16 -> 19 GB/s on
// one thread; with the weights' 2 MB pages it changes nothing); a prefetch past the end is harmless.
#define PREFETCH_BYTES 16384

// READ_LINES: the XOR of the n bytes (a multiple of 256) at p (64-byte aligned), as 8 bytes, read
// in vectors of type V: the target's own width (GCC lowers a vector wider than the target's
// through the stack: the AVX2 copy of a 64-byte loop read 8 GB/s where AVX-512's read 16).
#define READ_LINES(name, attr, V)                                                                  \
    attr static uint64_t name(const uint8_t *p, size_t n) {                                        \
        const size_t w = sizeof(V), per = 256 / sizeof(V); /* vectors in 256 bytes */              \
        const V *v = (const V *)(const void *)p;                                                   \
        V a = {0}, b = {0}, c = {0}, d = {0};                                                      \
        for (size_t i = 0; i < n / w; i += per) {                                                  \
            __builtin_prefetch(p + i * w + PREFETCH_BYTES);                                        \
            UNROLL                                                                                 \
            for (size_t k = i; k < i + per; k += 4) {                                              \
                a ^= v[k];                                                                         \
                b ^= v[k + 1];                                                                     \
                c ^= v[k + 2];                                                                     \
                d ^= v[k + 3];                                                                     \
            }                                                                                      \
        }                                                                                          \
        a ^= b ^ c ^ d;                                                                            \
        uint64_t s = 0;                                                                            \
        for (size_t k = 0; k < w / 8; k++) s ^= a[k];                                              \
        return s;                                                                                  \
    }

READ_LINES(read_plain, , u64x2)
#if defined(__x86_64__)
READ_LINES(read_avx2, __attribute__((target("avx2"))), u64x4)
READ_LINES(read_avx512, __attribute__((target("avx512f"))), u64x8)
#endif

typedef struct {
    const uint8_t *p; // 64-byte aligned
    size_t n;         // a multiple of 256
    int nth;          // the threads of the last pass
    uint64_t sum[64]; // per thread (up to 64 counted)
} read_job;

static void read_part(void *ctx, int ith, int nth) {
    read_job *j = ctx;
    size_t lines = j->n / 256; // cut at 256-byte multiples
    size_t a = lines * (size_t)ith / (size_t)nth * 256,
           b = lines * (size_t)(ith + 1) / (size_t)nth * 256;
    plm_isa isa = plm_isa_active();
    uint64_t s;
#if defined(__x86_64__)
    if (plm_isa_includes(isa, PLM_ISA_AVX512)) s = read_avx512(j->p + a, b - a);
    else if (plm_isa_includes(isa, PLM_ISA_AVX2)) s = read_avx2(j->p + a, b - a);
    else
#endif
        s = read_plain(j->p + a, b - a);
    (void)isa;
    if (ith < 64) j->sum[ith] = s;
    if (ith == 0) j->nth = nth;
}

static volatile uint64_t sink; // the checksums go here, so no pass can be left out

double plm_read_bandwidth(plm_pool *pool, const void *p, size_t n, int reps, int *threads_used) {
    const uint8_t *b = p;
    size_t skip = (64 - (uintptr_t)b % 64) % 64;
    read_job j = {0};
    j.p = b + skip;
    j.n = n > skip ? (n - skip) / 256 * 256 : 0;
    double best = 0;
    int used = 0;
    for (int r = -1; r < (reps < 1 ? 1 : reps) && j.n; r++) { // pass -1: the warm-up
        double t0 = plm_time();
        plm_pool_run(pool, read_part, &j);
        double t = plm_time() - t0;
        uint64_t s = 0;
        for (int k = 0; k < j.nth && k < 64; k++) s ^= j.sum[k];
        sink ^= s;
        if (r >= 0 && t > 0 && (best == 0 || t < best)) best = t, used = j.nth;
    }
    if (threads_used) *threads_used = used;
    return best > 0 ? (double)j.n / best * 1e-9 : 0.0;
}

double plm_decode_ceiling(double gbs, size_t bytes_per_token) {
    return bytes_per_token ? gbs * 1e9 / (double)bytes_per_token : 0.0;
}
