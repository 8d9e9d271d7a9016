// bench_matmul.c: GFLOP/s and GB/s of plm_matmul on the SmolLM2-135M shapes, f32, q8_0, q4_0,
// q4_1, q5_0, q5_1 and q6_k, q4_k, q5_k (down_proj only: the shapes whose columns are a multiple
// of 256), decode
// (T = 1) and prefill / training (T = 64, 128, 256, 512), 1 and 2 threads, on each kernel path
// asked for; then the decode tok/s those timings add up to (30 layers of q, k, v, o, gate, up,
// down plus the tied lm_head). Not part of `make test`. scripts/bench_gemm.sh (make bench-gemm)
// puts OpenBLAS sgemm (numpy) on the same f32 shapes beside it.
// Each decode run cycles through enough copies of the weights (>= 256 MB) that they come from
// DRAM, as in a real forward pass (BENCH_HOT=1: one copy, cache-resident; BENCH_COLD=1: at every
// T, as in the server's steps of a few tokens). Each result is the
// best of up to 50 batches (about 2 s a result at most), since the machine may be shared; cpu% is
// that batch's CPU time over its wall time x threads (well under 100: other processes took the
// cores, the figure is low). One stable line per result.
// Filters (environment): BENCH_DTYPE=f32|f16|bf16|q8_0|q4_0|q4_1|q5_0|q5_1|q6_k|q4_k|q5_k, BENCH_T=1,64,... (a list),
// BENCH_THREADS=1|2, BENCH_SHAPE=name prefix; BENCH_REPS batches at most (default 50).
// Build and run (paths: scalar, avx2, avx512, wasm, ...; default every SIMD path this CPU runs):
//   make build/libpocketlm.a && gcc -std=c11 -O2 -Iinclude -Isrc -pthread -o build/bench_matmul
//       tests/bench_matmul.c build/libpocketlm.a -lm && build/bench_matmul [path ...]
#include "base.h"
#include "matmul.h"
#include "pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// cpu_seconds: this process's CPU time (every thread)
static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

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

// bench_one: seconds per call of plm_matmul for (T, rows, cols) on the pool; *cpu: the CPU
// seconds per call of the best batch.
static double bench_one(plm_isa isa, plm_pool *pool, plm_dtype dtype, int T, int rows, int cols,
                        double *cpu) {
    const size_t n = (size_t)rows * cols;
    const size_t bytes = plm_mat_bytes(dtype, (size_t)rows, (size_t)cols);
    const int cold = T == 1 || getenv("BENCH_COLD");
    int copies = getenv("BENCH_HOT") ? 1 : cold ? (int)((256u << 20) / bytes) + 1 : 1;
    plm_mat *w = calloc((size_t)copies, sizeof(plm_mat));
    float *x = malloc((size_t)T * cols * sizeof(float)), *out = malloc((size_t)T * rows * 4);
    void *scratch = plm_alloc_aligned(plm_matmul_scratch_bytes(T, cols), 1);
    for (size_t i = 0; i < (size_t)T * cols; i++) x[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
    for (int c = 0; c < copies; c++) {
        w[c] = (plm_mat){.dtype = dtype, .rows = rows, .cols = cols};
        if (dtype == PLM_DTYPE_F32) {
            w[c].f32 = malloc(n * 4);
            for (size_t i = 0; i < n; i++) w[c].f32[i] = (float)(i % 97) * 1e-2f - 0.48f;
        } else if (plm_dtype_half(dtype)) {
            w[c].h = malloc(n * 2);
            for (size_t i = 0; i < n; i++) w[c].h[i] = (uint16_t)(0x3000 + i % 97);
        } else if (dtype == PLM_DTYPE_Q6_K) {
            w[c].q6 = malloc(n / PLM_QK_K * PLM_Q6K_QS);
            w[c].d = malloc(n / PLM_QK_K * 4);
            for (size_t i = 0; i < n / PLM_QK_K * PLM_Q6K_QS; i++) w[c].q6[i] = (uint8_t)(i * 37);
            for (size_t i = 0; i < n / PLM_QK_K; i++) w[c].d[i] = 1e-4f;
        } else if (plm_dtype_kquant(dtype)) {
            w[c].q4 = malloc(n / 2);
            w[c].scm = malloc(n / PLM_QK * 2);
            w[c].d = malloc(n / PLM_QK_K * 4);
            w[c].m = malloc(n / PLM_QK_K * 4);
            w[c].qh = dtype == PLM_DTYPE_Q5_K ? malloc(n / PLM_QK * 4) : NULL;
            for (size_t i = 0; i < n / 2; i++) w[c].q4[i] = (uint8_t)(i * 37 % 256);
            for (size_t i = 0; i < n / PLM_QK * 2; i++) w[c].scm[i] = (uint8_t)(i * 7 % 64);
            for (size_t i = 0; w[c].qh && i < n / PLM_QK; i++)
                w[c].qh[i] = (uint32_t)i * 2654435761u;
            for (size_t i = 0; i < n / PLM_QK_K; i++) w[c].d[i] = 1e-4f, w[c].m[i] = 1e-3f;
        } else if (dtype != PLM_DTYPE_Q8_0) {
            w[c].q4 = malloc(n / 2);
            w[c].d = malloc(n / PLM_QK * 4);
            w[c].m = plm_dtype_min(dtype) ? malloc(n / PLM_QK * 4) : NULL;
            w[c].qh = plm_dtype_high(dtype) ? malloc(n / PLM_QK * 4) : NULL;
            for (size_t i = 0; i < n / 2; i++) w[c].q4[i] = (uint8_t)(i * 37 % 256);
            for (size_t i = 0; w[c].qh && i < n / PLM_QK; i++)
                w[c].qh[i] = (uint32_t)i * 2654435761u;
            for (size_t i = 0; i < n / PLM_QK; i++) w[c].d[i] = 1e-3f;
            for (size_t i = 0; w[c].m && i < n / PLM_QK; i++) w[c].m[i] = -1e-2f;
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
    int reps = getenv("BENCH_REPS") ? atoi(getenv("BENCH_REPS")) : 50;
    const double per_batch = (plm_time() - t0) / batch * batch;
    if (reps > 3 && reps * per_batch > 2.0) reps = per_batch * 3 > 2.0 ? 3 : (int)(2.0 / per_batch);
    for (int rep = 0; rep < reps; rep++) {
        const double t1 = plm_time(), c1 = cpu_seconds();
        for (int i = 0; i < batch; i++)
            plm_matmul_isa_run(isa, pool, out, x, &w[i % copies], T, scratch);
        const double t = (plm_time() - t1) / batch;
        if (t < best) best = t, *cpu = (cpu_seconds() - c1) / batch;
    }
    for (int c = 0; c < copies; c++)
        free(w[c].f32), free(w[c].q), free(w[c].d), free(w[c].q4), free(w[c].m), free(w[c].qh),
            free(w[c].q6), free(w[c].h), free(w[c].scm);
    free(w), free(x), free(out);
    plm_free_aligned(scratch);
    return best;
}

int main(int argc, char **argv) {
    plm_isa isas[PLM_ISA_COUNT];
    int n_isa = 0;
    for (int a = 1; a < argc; a++) {
        int found = 0;
        for (int i = 0; i < PLM_ISA_COUNT; i++)
            if (!strcmp(argv[a], plm_isa_name((plm_isa)i)) && plm_isa_supported((plm_isa)i))
                isas[n_isa++] = (plm_isa)i, found = 1;
        if (!found) fprintf(stderr, "bench_matmul: path %s: not on this CPU, skipped\n", argv[a]);
    }
    for (int i = 1; argc == 1 && i < PLM_ISA_COUNT; i++)
        if (plm_isa_supported((plm_isa)i)) isas[n_isa++] = (plm_isa)i;
    if (!n_isa) isas[n_isa++] = PLM_ISA_SCALAR;
    printf("cpu %s (%s), cores %d\n", plm_cpu_name(), plm_cpu_features(), plm_n_cores());
    printf("%-7s %-14s %-5s %3s %4s %6s %5s %9s %8s %7s %5s\n", "path", "shape", "dtype", "thr",
           "T", "rows", "cols", "ms", "GFLOP/s", "GB/s", "cpu%");
    const plm_dtype dtypes[] = {PLM_DTYPE_F32,  PLM_DTYPE_Q8_0, PLM_DTYPE_Q4_0, PLM_DTYPE_Q4_1,
                                PLM_DTYPE_Q5_0, PLM_DTYPE_Q5_1, PLM_DTYPE_Q6_K, PLM_DTYPE_F16,
                                PLM_DTYPE_BF16, PLM_DTYPE_Q4_K, PLM_DTYPE_Q5_K};
    const char *f_dtype = getenv("BENCH_DTYPE"), *f_shape = getenv("BENCH_SHAPE");
    const int f_threads = getenv("BENCH_THREADS") ? atoi(getenv("BENCH_THREADS")) : 0;
    int Ts[8] = {1, 64, 128, 256, 512}, nT = 5;
    if (getenv("BENCH_T")) { // a comma-separated list
        nT = 0;
        for (const char *p = getenv("BENCH_T"); *p && nT < 8;
             p = strchr(p, ',') ? strchr(p, ',') + 1 : "")
            Ts[nT++] = atoi(p);
    }
    for (int ii = 0; ii < n_isa; ii++) {
        const plm_isa isa = isas[ii];
        for (size_t di = 0; di < sizeof dtypes / sizeof *dtypes; di++) {
            const char *dn = plm_dtype_name(dtypes[di]);
            if (f_dtype && strcmp(f_dtype, dn)) continue;
            for (int nth = 1; nth <= 2; nth++) {
                if (f_threads && nth != f_threads) continue;
                plm_pool *pool = plm_pool_create(nth);
                double token_seconds = 0;
                for (int ti = 0; ti < nT; ti++) {
                    const int T = Ts[ti];
                    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
                        const shape *sh = &shapes[s];
                        if (f_shape && strncmp(sh->name, f_shape, strlen(f_shape))) continue;
                        const int k = dtypes[di] == PLM_DTYPE_Q6_K || plm_dtype_kquant(dtypes[di]);
                        if (k && sh->cols % PLM_QK_K) continue;
                        double cpu = 0;
                        const double sec =
                            bench_one(isa, pool, dtypes[di], T, sh->rows, sh->cols, &cpu);
                        const double n = (double)sh->rows * sh->cols;
                        const double bytes =
                            (double)plm_mat_bytes(dtypes[di], (size_t)sh->rows, (size_t)sh->cols);
                        if (T == 1) token_seconds += sec * sh->per_token;
                        printf("%-7s %-14s %-5s %3d %4d %6d %5d %9.4f %8.1f %7.1f %5.0f\n",
                               plm_isa_name(isa), sh->name, dn, nth, T, sh->rows, sh->cols,
                               sec * 1e3, 2 * n * T / sec * 1e-9, bytes / sec * 1e-9,
                               100 * cpu / (sec * nth));
                        fflush(stdout);
                    }
                }
                if (!f_shape && Ts[0] == 1 && dtypes[di] != PLM_DTYPE_Q6_K &&
                    !plm_dtype_kquant(dtypes[di]))
                    printf("%-7s decode matmuls of SmolLM2-135M: %s %d threads: %.2f ms/token = "
                           "%.0f tok/s\n",
                           plm_isa_name(isa), dn, nth, token_seconds * 1e3, 1 / token_seconds);
                plm_pool_free(pool);
            }
        }
    }
    return 0;
}
