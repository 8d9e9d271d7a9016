// bench_matmul.c: GFLOP/s and GB/s of plm_matmul on the SmolLM2-135M shapes, f32 and q8_0, decode
// (T = 1) and prefill (T = 128), 1 and 2 threads; then the decode tok/s those timings add up to
// (30 layers of q, k, v, o, gate, up, down plus the tied lm_head). Not part of `make test`.
// Each decode run cycles through enough copies of the weights (>= 256 MB) that they come from
// DRAM, as in a real forward pass (BENCH_HOT=1: one copy, cache-resident). Each result is the
// best of 50 batches, since the machine may be shared. One stable line per result.
// Filters (environment): BENCH_DTYPE=f32|q8_0, BENCH_T=1|128|..., BENCH_THREADS=1|2, BENCH_SHAPE=name
// prefix; BENCH_REPS batches (default 50).
// Build and run (isa: scalar, avx2, avx512, wasm; default the best):
//   gcc -std=c11 -O2 -Iinclude -Isrc -pthread -o build/bench_matmul tests/bench_matmul.c
//       src/matmul.c src/pool.c src/base.c -lm && build/bench_matmul [isa]
#include "base.h"
#include "matmul.h"
#include "pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    int rows, cols;
    int per_token; // times the shape runs per decoded token
} shape;

static const shape shapes[] = {
    {"q_proj/o_proj", 576, 576, 60}, {"k_proj/v_proj", 192, 576, 60},
    {"gate/up_proj", 1536, 576, 60}, {"down_proj", 576, 1536, 30},
    {"lm_head", 49152, 576, 1},
};

// bench_one: seconds per call of plm_matmul for (T, rows, cols) on n_threads.
static double bench_one(plm_isa isa, plm_pool *pool, plm_dtype dtype, int T, int rows,
                        int cols) {
    const size_t n = (size_t)rows * cols;
    const size_t bytes = dtype == PLM_DTYPE_F32 ? n * 4 : n + n / PLM_QK * 4;
    int copies = getenv("BENCH_HOT") ? 1 : T == 1 ? (int)((256u << 20) / bytes) + 1 : 1;
    plm_mat *w = calloc((size_t)copies, sizeof(plm_mat));
    float *x = malloc((size_t)T * cols * sizeof(float)), *out = malloc((size_t)T * rows * 4);
    void *scratch = plm_alloc_aligned(plm_matmul_scratch_bytes(T, cols), 1);
    for (size_t i = 0; i < (size_t)T * cols; i++) x[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
    for (int c = 0; c < copies; c++) {
        w[c] = (plm_mat){dtype, rows, cols, NULL, NULL, NULL};
        if (dtype == PLM_DTYPE_F32) {
            w[c].f32 = malloc(n * 4);
            for (size_t i = 0; i < n; i++) w[c].f32[i] = (float)(i % 97) * 1e-2f - 0.48f;
        } else {
            w[c].q = malloc(n);
            w[c].d = malloc(n / PLM_QK * 4);
            for (size_t i = 0; i < n; i++) w[c].q[i] = (int8_t)(i % 251 - 125);
            for (size_t i = 0; i < n / PLM_QK; i++) w[c].d[i] = 1e-3f;
        }
    }
    // batches of at least 2 ms and of every copy; the best batch (the machine may be shared)
    int batch = 0;
    const double t0 = plm_time();
    do plm_matmul_isa_run(isa, pool, out, x, &w[batch % copies], T, scratch);
    while (++batch < copies || plm_time() - t0 < 0.002);
    double best = 1e30;
    const int reps = getenv("BENCH_REPS") ? atoi(getenv("BENCH_REPS")) : 50;
    for (int rep = 0; rep < reps; rep++) {
        const double t1 = plm_time();
        for (int i = 0; i < batch; i++)
            plm_matmul_isa_run(isa, pool, out, x, &w[i % copies], T, scratch);
        const double t = (plm_time() - t1) / batch;
        best = t < best ? t : best;
    }
    for (int c = 0; c < copies; c++) free(w[c].f32), free(w[c].q), free(w[c].d);
    free(w), free(x), free(out);
    plm_free_aligned(scratch);
    return best;
}

int main(int argc, char **argv) {
    plm_isa isa = plm_isa_best();
    for (int i = 0; argc > 1 && i < PLM_ISA_COUNT; i++)
        if (!strcmp(argv[1], plm_isa_name((plm_isa)i)) && plm_isa_supported((plm_isa)i)) isa = (plm_isa)i;
    printf("isa %s, cpu %s, features %s, cores %d\n", plm_isa_name(isa), plm_cpu_name(),
           plm_cpu_features(), plm_n_cores());
    printf("%-14s %-5s %3s %4s %6s %5s %9s %8s %7s\n", "shape", "dtype", "thr", "T", "rows",
           "cols", "ms", "GFLOP/s", "GB/s");
    const plm_dtype dtypes[2] = {PLM_DTYPE_F32, PLM_DTYPE_Q8_0};
    const char *f_dtype = getenv("BENCH_DTYPE"), *f_shape = getenv("BENCH_SHAPE");
    const int f_threads = getenv("BENCH_THREADS") ? atoi(getenv("BENCH_THREADS")) : 0;
    int Ts[8] = {1, 128}, nT = 2;
    if (getenv("BENCH_T")) { // a comma-separated list
        nT = 0;
        for (const char *p = getenv("BENCH_T"); *p && nT < 8; p = strchr(p, ',') ? strchr(p, ',') + 1 : "")
            Ts[nT++] = atoi(p);
    }
    for (int di = 0; di < 2; di++) {
        if (f_dtype && strcmp(f_dtype, di ? "q8_0" : "f32")) continue;
        for (int nth = 1; nth <= 2; nth++) {
            if (f_threads && nth != f_threads) continue;
            plm_pool *pool = plm_pool_create(nth);
            double token_seconds = 0;
            for (int ti = 0; ti < nT; ti++) {
                const int T = Ts[ti];
                for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
                    const shape *sh = &shapes[s];
                    if (f_shape && strncmp(sh->name, f_shape, strlen(f_shape))) continue;
                    const double sec = bench_one(isa, pool, dtypes[di], T, sh->rows, sh->cols);
                    const double n = (double)sh->rows * sh->cols;
                    const double bytes = dtypes[di] == PLM_DTYPE_F32 ? 4 * n : n + n / 8;
                    if (T == 1) token_seconds += sec * sh->per_token;
                    printf("%-14s %-5s %3d %4d %6d %5d %9.4f %8.1f %7.1f\n", sh->name,
                           di ? "q8_0" : "f32", nth, T, sh->rows, sh->cols, sec * 1e3,
                           2 * n * T / sec * 1e-9, bytes / sec * 1e-9);
                }
            }
            if (!f_shape && Ts[0] == 1)
            printf("decode matmuls of SmolLM2-135M: %s %d threads: %.2f ms/token = %.0f tok/s\n",
                   di ? "q8_0" : "f32", nth, token_seconds * 1e3, 1 / token_seconds);
            plm_pool_free(pool);
        }
    }
    return 0;
}
