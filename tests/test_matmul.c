// test_matmul.c: the thread pool, the Q8_0 quantizer and every matmul path (f32, Q8_0, Q4_0, Q4_1,
// Q5_0, Q5_1, Q6_K, Q4_K, Q5_K, F16, BF16; F16/BF16 == the path's f32 on the converted weights,
// bit for bit, and each path's converter == plm_half_to_f32 on every 16-bit value). Q4/Q5
// weights: Q4_0 == the Q8_0 matrix {k - 8, d} and Q5_0 == {k - 16, d} bit for bit; Q4_K (Q5_K) ==
// the Q4_1 (Q5_1) matrix of its nibbles and d * sc, -(dmin * mn) bit for bit; Q6_K: the reference
// == its canonical order written out; every path == the reference
// bit for bit, as Q8_0 (test_load checks their rows against gguf.c's dequantization).
// Oracles: a double-precision recompute for the scalar reference; the reference for each SIMD
// path this CPU runs (forced, not only the one dispatch picks): within rounding for f32, bit for
// bit (memcmp) for Q8_0, whose paths all run one canonical order (matmul.c); the f32 matmul of the
// dequantized weights for Q8_0, within the error bound of quantizing the inputs. Consistency:
// 1 thread == 2, 3 threads and T = 1 == row t of T > 1, both bit for bit on every path.
#include "base.h"
#include "matmul.h"
#include "matmul_kernels.h"
#include "pool.h"
#include "test.h"

// ---- helpers ----

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

// fill_uniform: n floats in [-1, 1).
static void fill_uniform(float *x, size_t n, uint64_t *s) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(rng_next(s) >> 40) / (float)(1 << 23) - 1.0f;
}

// q4_alloc: a random (rows, cols) Q4/Q5 matrix: every nibble value and high bit, scales in
// +-[0.002, 0.1) and Q4_1/Q5_1 minimums in [-0.5, 0.5), both f16 values as a GGUF file's (test_load
// checks the load).
static plm_mat q4_alloc(plm_dtype dtype, int rows, int cols, uint64_t *s) {
    const size_t nb = (size_t)rows * cols / PLM_QK;
    plm_mat w = {.dtype = dtype, .rows = rows, .cols = cols};
    w.q4 = malloc(nb * 16);
    w.d = malloc(nb * sizeof(float));
    w.m = plm_dtype_min(dtype) ? malloc(nb * sizeof(float)) : NULL;
    w.qh = plm_dtype_high(dtype) ? malloc(nb * sizeof(uint32_t)) : NULL;
    for (size_t i = 0; i < nb * 16; i++) w.q4[i] = (uint8_t)(rng_next(s) >> 32);
    for (size_t b = 0; w.qh && b < nb; b++) w.qh[b] = (uint32_t)(rng_next(s) >> 16);
    for (size_t b = 0; b < nb; b++) {
        float v[2];
        fill_uniform(v, 2, s);
        w.d[b] = plm_f16_to_f32(plm_f32_to_f16(v[0] * 0.098f + (v[0] < 0 ? -0.002f : 0.002f)));
        if (w.m) w.m[b] = plm_f16_to_f32(plm_f32_to_f16(v[1] * 0.5f));
    }
    return w;
}

// kq_alloc: a random (rows, cols) Q4_K/Q5_K matrix: every nibble value and high bit, every 6-bit
// sc and mn, super-block d in +-[1e-4, 2e-3) and dmin in [0, 2e-2) as f16 values (test_load checks
// the load).
static plm_mat kq_alloc(plm_dtype dtype, int rows, int cols, uint64_t *s) {
    const size_t nb = (size_t)rows * cols / PLM_QK, nsb = nb / 8;
    plm_mat w = {.dtype = dtype, .rows = rows, .cols = cols};
    w.q4 = malloc(nb * 16);
    w.scm = malloc(nb * 2);
    w.d = malloc(nsb * sizeof(float));
    w.m = malloc(nsb * sizeof(float));
    w.qh = dtype == PLM_DTYPE_Q5_K ? malloc(nb * sizeof(uint32_t)) : NULL;
    for (size_t i = 0; i < nb * 16; i++) w.q4[i] = (uint8_t)(rng_next(s) >> 32);
    for (size_t i = 0; i < nb * 2; i++) w.scm[i] = (uint8_t)(rng_next(s) >> 32 & 63);
    for (size_t b = 0; w.qh && b < nb; b++) w.qh[b] = (uint32_t)(rng_next(s) >> 16);
    for (size_t b = 0; b < nsb; b++) {
        float v[2];
        fill_uniform(v, 2, s);
        w.d[b] = plm_f16_to_f32(plm_f32_to_f16(v[0] * 0.0019f + (v[0] < 0 ? -1e-4f : 1e-4f)));
        w.m[b] = plm_f16_to_f32(plm_f32_to_f16((v[1] + 1.0f) * 0.01f));
    }
    return w;
}

// q6k_alloc: a random (rows, cols) Q6_K matrix: every 6-bit value, int8 scales over their whole
// range, super-block scales d in +-[1e-4, 2e-3) as f16 values (test_load checks the load).
static plm_mat q6k_alloc(int rows, int cols, uint64_t *s) {
    const size_t nsb = (size_t)rows * cols / PLM_QK_K;
    plm_mat w = {.dtype = PLM_DTYPE_Q6_K, .rows = rows, .cols = cols};
    w.q6 = malloc(nsb * PLM_Q6K_QS);
    w.d = malloc(nsb * sizeof(float));
    for (size_t i = 0; i < nsb * PLM_Q6K_QS; i++) w.q6[i] = (uint8_t)(rng_next(s) >> 32);
    for (size_t b = 0; b < nsb; b++) {
        float v;
        fill_uniform(&v, 1, s);
        w.d[b] = plm_f16_to_f32(plm_f32_to_f16(v * 0.0019f + (v < 0 ? -1e-4f : 1e-4f)));
    }
    return w;
}

// dtype_name: model.c's names, here without model.c (the wasm build of this test links the
// kernels only).
static const char *dtype_name(plm_dtype dtype) {
    return dtype == PLM_DTYPE_F32    ? "f32"
           : dtype == PLM_DTYPE_Q8_0 ? "q8_0"
           : dtype == PLM_DTYPE_Q4_0 ? "q4_0"
           : dtype == PLM_DTYPE_Q4_1 ? "q4_1"
           : dtype == PLM_DTYPE_Q5_0 ? "q5_0"
           : dtype == PLM_DTYPE_Q6_K ? "q6_k"
           : dtype == PLM_DTYPE_F16  ? "f16"
           : dtype == PLM_DTYPE_BF16 ? "bf16"
           : dtype == PLM_DTYPE_Q4_K ? "q4_k"
           : dtype == PLM_DTYPE_Q5_K ? "q5_k"
                                     : "q5_1";
}

static plm_mat mat_alloc(plm_dtype dtype, int rows, int cols, uint64_t *s) {
    if (plm_dtype_kquant(dtype)) return kq_alloc(dtype, rows, cols, s);
    if (plm_dtype_nibbles(dtype)) return q4_alloc(dtype, rows, cols, s);
    if (dtype == PLM_DTYPE_Q6_K) return q6k_alloc(rows, cols, s);
    plm_mat w = {.dtype = dtype, .rows = rows, .cols = cols};
    float *f = malloc((size_t)rows * cols * sizeof(float));
    fill_uniform(f, (size_t)rows * cols, s);
    if (dtype == PLM_DTYPE_F32) {
        w.f32 = f;
        return w;
    }
    w.q = malloc((size_t)rows * cols);
    w.d = malloc((size_t)rows * (cols / PLM_QK) * sizeof(float));
    plm_quantize_q8_0(w.q, w.d, f, (size_t)rows * cols);
    free(f);
    return w;
}

static void mat_free(plm_mat *w) {
    free(w->f32);
    free(w->q);
    free(w->d);
    free(w->q4);
    free(w->m);
    free(w->qh);
    free(w->q6);
    free(w->scm);
}

// oracle: out (T, rows) in double from x (T, cols) and the f32 rows of w; scale[t, r] = sum |x w|,
// the size that float rounding error of a length-cols dot product is relative to.
static void oracle(double *out, double *scale, const float *x, const plm_mat *w, int T) {
    const int C = w->cols, R = w->rows;
    float *row = malloc((size_t)C * sizeof(float));
    for (int r = 0; r < R; r++) {
        plm_mat_row(row, w, r);
        for (int t = 0; t < T; t++) {
            double acc = 0, mag = 0;
            for (int k = 0; k < C; k++) {
                const double p = (double)x[(size_t)t * C + k] * (double)row[k];
                acc += p;
                mag += fabs(p);
            }
            out[(size_t)t * R + r] = acc;
            scale[(size_t)t * R + r] = mag;
        }
    }
    free(row);
}

// check_scaled: |got - want| <= atol + rtol * scale elementwise; prints the worst element.
static int check_scaled(const char *name, const float *got, const double *want, const double *scale,
                        size_t n, double atol, double rtol) {
    size_t bad = 0, worst = 0;
    double worst_ratio = 0;
    for (size_t i = 0; i < n; i++) {
        const double err = fabs((double)got[i] - want[i]), lim = atol + rtol * scale[i];
        if (!(err <= lim)) bad++;
        if (!(err / lim <= worst_ratio)) worst_ratio = err / lim, worst = i;
    }
    CHECK_MSG(bad == 0,
              "%s: %zu of %zu beyond atol %g + rtol %g * sum|xw|; worst [%zu] got %.9g "
              "want %.9g (%.3g of the limit)",
              name, bad, n, atol, rtol, worst, (double)got[worst], want[worst], worst_ratio);
    return bad == 0;
}

// ---- quantization ----

static void test_quantize(void) {
    uint64_t s = 7;
    const size_t n = 32 * 40;
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    int8_t *q = malloc(n), *q2 = malloc(n);
    float *d = malloc(n / PLM_QK * sizeof(float)), *d2 = malloc(n / PLM_QK * sizeof(float));
    fill_uniform(x, n, &s);
    for (size_t i = 0; i < 32; i++) x[i] = 0.0f;                      // an all-zero block
    for (size_t i = 32; i < 64; i++) x[i] *= 1e-30f;                  // a tiny block
    x[70] = 1000.0f;                                                  // one dominating value
    for (size_t i = 96; i < 128; i++) x[i] = (float)(i - 112) * 0.5f; // exact halves: ties
    plm_quantize_q8_0_isa(PLM_ISA_SCALAR, q, d, x, n);
    size_t bad = 0;
    for (size_t b = 0; b < n / PLM_QK; b++) {
        float amax = 0.0f;
        for (int i = 0; i < PLM_QK; i++) amax = fmaxf(amax, fabsf(x[b * PLM_QK + i]));
        if (d[b] != amax / 127.0f) bad++;
        for (int i = 0; i < PLM_QK; i++) {
            const size_t k = b * PLM_QK + i;
            // |x - q d| <= d / 2 up to the rounding of x * (1 / d)
            if (fabs((double)x[k] - (double)q[k] * (double)d[b]) > 0.5 * (double)d[b] * (1 + 1e-5))
                bad++;
            if (q[k] < -127) bad++;
        }
    }
    CHECK_MSG(bad == 0, "quantize round trip: %zu values beyond d / 2", bad);
    CHECK(d[0] == 0.0f && q[5] == 0 && q[70] == 127);
    plm_mat w = {.dtype = PLM_DTYPE_Q8_0, .rows = 1, .cols = (int32_t)n, .q = q, .d = d};
    plm_mat_row(y, &w, 0);
    CHECK(y[70] == 127.0f * d[2] && y[0] == 0.0f);
    plm_mat wf = {.dtype = PLM_DTYPE_F32, .rows = 1, .cols = (int32_t)n, .f32 = x};
    plm_mat_row(y, &wf, 0);
    check_close("f32 row", y, x, n, 0, 0);
    for (int isa = 1; isa < PLM_ISA_COUNT; isa++) {
        if (!plm_isa_supported((plm_isa)isa)) continue;
        plm_quantize_q8_0_isa((plm_isa)isa, q2, d2, x, n);
        CHECK_MSG(!memcmp(q, q2, n) && !memcmp(d, d2, n / PLM_QK * sizeof(float)),
                  "quantize on %s differs from scalar", plm_isa_name((plm_isa)isa));
    }
    free(x), free(y), free(q), free(q2), free(d), free(d2);
}

// ---- matmul ----

// test_shape: one weight matrix and one input, through every path and thread count.
static void test_shape(plm_pool *pools[3], plm_dtype dtype, int T, int rows, int cols,
                       uint64_t *s) {
    char name[96];
    plm_mat w = mat_alloc(dtype, rows, cols, s);
    const size_t no = (size_t)T * rows;
    float *x = malloc((size_t)T * cols * sizeof(float));
    fill_uniform(x, (size_t)T * cols, s);
    void *scratch = plm_alloc_aligned(plm_matmul_scratch_bytes(T, cols), 1);
    float *ref = malloc(no * sizeof(float)), *got = malloc(no * sizeof(float));
    float *got_n = malloc(no * sizeof(float)), *xdq = malloc((size_t)T * cols * sizeof(float));
    double *want = malloc(no * sizeof(double)), *scale = malloc(no * sizeof(double));
    const char *dt = dtype_name(dtype);

    plm_matmul_ref(ref, x, &w, T, scratch);
    if (dtype == PLM_DTYPE_F32) {
        oracle(want, scale, x, &w, T);
        snprintf(name, sizeof name, "ref f32 T=%d rows=%d cols=%d", T, rows, cols);
        check_scaled(name, ref, want, scale, no, 1e-6, 1e-5);
    } else {
        // the reference sees the quantized inputs: recompute from them in double
        plm_mat xm = {.dtype = PLM_DTYPE_Q8_0, .rows = T, .cols = cols, .q = scratch};
        xm.d = (float *)(void *)((char *)scratch + ((size_t)T * cols + 63) / 64 * 64);
        for (int t = 0; t < T; t++) plm_mat_row(xdq + (size_t)t * cols, &xm, t);
        oracle(want, scale, xdq, &w, T);
        snprintf(name, sizeof name, "ref %s T=%d rows=%d cols=%d", dt, T, rows, cols);
        check_scaled(name, ref, want, scale, no, 1e-6, 1e-5);
        // against f32 math on the dequantized weights and the original inputs: the only extra
        // error is quantizing x, at most d_x / 2 per value, so sum_b d_x[b] / 2 * sum_b |w|.
        oracle(want, scale, x, &w, T);
        double *bound = malloc(no * sizeof(double));
        float *row = malloc((size_t)cols * sizeof(float));
        for (int r = 0; r < rows; r++) {
            plm_mat_row(row, &w, r);
            for (int t = 0; t < T; t++) {
                double b = 0;
                const float *dx = xm.d + (size_t)t * (cols / PLM_QK);
                for (int k = 0; k < cols; k++)
                    b += 0.5 * (double)dx[k / PLM_QK] * fabs((double)row[k]);
                bound[(size_t)t * rows + r] = b * (1 + 1e-5) + 1e-5 * scale[(size_t)t * rows + r];
            }
        }
        snprintf(name, sizeof name, "%s vs f32 T=%d rows=%d cols=%d", dt, T, rows, cols);
        check_scaled(name, ref, want, bound, no, 0, 1);
        free(bound), free(row);
        oracle(want, scale, xdq, &w, T); // back to the quantized-input oracle for scales below
    }

    for (int isa = 0; isa < PLM_ISA_COUNT; isa++) {
        if (!plm_isa_supported((plm_isa)isa)) continue;
        const char *in = plm_isa_name((plm_isa)isa);
        plm_matmul_isa_run((plm_isa)isa, pools[0], got, x, &w, T, scratch);
        for (size_t i = 0; i < no; i++) want[i] = (double)ref[i];
        snprintf(name, sizeof name, "%s %s vs ref T=%d rows=%d cols=%d", in, dt, T, rows, cols);
        if (dtype == PLM_DTYPE_F32) {
            check_scaled(name, got, want, scale, no, 1e-5, 1e-5);
            // x86: the AVX-512 tiles (zmm) run avx2's FMA chains (ymm) lane for lane
            if (isa == PLM_ISA_AVX512 || isa == PLM_ISA_AMX) {
                plm_matmul_isa_run(PLM_ISA_AVX2, pools[0], got_n, x, &w, T, scratch);
                CHECK_MSG(!memcmp(got, got_n, no * sizeof(float)),
                          "%s f32 T=%d rows=%d cols=%d: not avx2's bits", in, T, rows, cols);
            }
        } else { // the same bits as the reference
            size_t first = 0;
            while (first < no && !memcmp(got + first, ref + first, sizeof(float))) first++;
            CHECK_MSG(first == no, "%s: not bit-identical, first at [%zu] got %.9g want %.9g", name,
                      first, first < no ? (double)got[first] : 0.0,
                      first < no ? (double)ref[first] : 0.0);
        }
        for (int p = 1; p < 3; p++) {
            memset(got_n, 0xff, no * sizeof(float));
            plm_matmul_isa_run((plm_isa)isa, pools[p], got_n, x, &w, T, scratch);
            CHECK_MSG(!memcmp(got, got_n, no * sizeof(float)),
                      "%s %s T=%d rows=%d cols=%d: %d threads differ from 1", in, dt, T, rows, cols,
                      plm_pool_size(pools[p]));
        }
        int same = 1;
        for (int t = 0; t < T && T > 1; t++) {
            plm_matmul_isa_run((plm_isa)isa, pools[1], got_n, x + (size_t)t * cols, &w, 1, scratch);
            same &= !memcmp(got_n, got + (size_t)t * rows, (size_t)rows * sizeof(float));
        }
        CHECK_MSG(same, "%s %s T=%d rows=%d cols=%d: T=1 differs from a row of T", in, dt, T, rows,
                  cols);
    }
    plm_matmul(pools[1], got, x, &w, T, scratch);
    plm_matmul_isa_run(plm_isa_active(), pools[0], got_n, x, &w, T, scratch);
    CHECK(!memcmp(got, got_n, no * sizeof(float)));

    mat_free(&w);
    plm_free_aligned(scratch);
    free(x), free(ref), free(got), free(got_n), free(xdq), free(want), free(scale);
}

// test_matmul_n: three weights of one input (q, k and v) through plm_matmul_n == three plm_matmul
// calls, bit for bit, for any thread count: decode, and a prefill whose inputs are quantized over
// the threads.
static void test_matmul_n(plm_pool *pools[3], uint64_t *s) {
    static const int rows[3] = {64, 17, 9}, Ts[] = {1, 40};
    const int C = 576;
    static const plm_dtype dts[] = {PLM_DTYPE_F32,  PLM_DTYPE_Q8_0, PLM_DTYPE_Q4_0,
                                    PLM_DTYPE_Q4_1, PLM_DTYPE_Q5_0, PLM_DTYPE_Q5_1};
    for (int dt = 0; dt < 7; dt++) { // 6: a mix (q5_0, q8_0, q4_1), as a file's weights may be
        plm_mat w[3];
        for (int i = 0; i < 3; i++)
            w[i] = mat_alloc(dt < 6   ? dts[dt]
                             : i == 0 ? PLM_DTYPE_Q5_0
                             : i == 1 ? PLM_DTYPE_Q8_0
                                      : PLM_DTYPE_Q4_1,
                             rows[i], C, s);
        const plm_mat *ws[3] = {&w[0], &w[1], &w[2]};
        for (size_t a = 0; a < sizeof Ts / sizeof *Ts; a++) {
            const int T = Ts[a];
            float *x = malloc((size_t)T * C * sizeof(float)), *want[3], *got[3];
            fill_uniform(x, (size_t)T * C, s);
            void *scratch = plm_alloc_aligned(plm_matmul_scratch_bytes(T, C), 1);
            for (int i = 0; i < 3; i++) {
                want[i] = malloc((size_t)T * rows[i] * sizeof(float));
                got[i] = malloc((size_t)T * rows[i] * sizeof(float));
                plm_matmul(pools[0], want[i], x, ws[i], T, scratch);
            }
            for (int p = 0; p < 3; p++) {
                for (int i = 0; i < 3; i++)
                    memset(got[i], 0xff, (size_t)T * rows[i] * sizeof(float));
                plm_matmul_n(pools[p], 3, got, x, ws, T, scratch);
                for (int i = 0; i < 3; i++)
                    CHECK_MSG(!memcmp(got[i], want[i], (size_t)T * rows[i] * sizeof(float)),
                              "matmul_n %s T=%d weight %d, %d threads: differs from plm_matmul",
                              dt < 6 ? dtype_name(dts[dt]) : "mix", T, i, plm_pool_size(pools[p]));
            }
            for (int i = 0; i < 3; i++) free(want[i]), free(got[i]);
            free(x);
            plm_free_aligned(scratch);
        }
        for (int i = 0; i < 3; i++) mat_free(&w[i]);
    }
}

// A wasm build without pthreads (tests/wasm.test.sh runs this file in node, to test the wasm
// kernels) has one thread: its pools "of 2 and 3" have 1, and those checks compare 1 with 1.
#if defined(__EMSCRIPTEN__) && !defined(__EMSCRIPTEN_PTHREADS__)
#define MORE_THREADS 0
#else
#define MORE_THREADS 1
#endif

static void test_matmul(void) {
    plm_pool *pools[3] = {plm_pool_create(1), plm_pool_create(1 + MORE_THREADS),
                          plm_pool_create(1 + 2 * MORE_THREADS)};
    CHECK(pools[0] && pools[1] && pools[2]);
    static const int Ts[] = {1, 3, 7, 33}, rows[] = {1, 5, 17, 192};
    static const int cols[] = {32, 64, 96, 576, 1536, 67};
    uint64_t s = 42;
    for (size_t a = 0; a < sizeof Ts / sizeof *Ts; a++)
        for (size_t b = 0; b < sizeof rows / sizeof *rows; b++)
            for (size_t c = 0; c < sizeof cols / sizeof *cols; c++) {
                test_shape(pools, PLM_DTYPE_F32, Ts[a], rows[b], cols[c], &s);
                if (cols[c] % PLM_QK == 0)
                    test_shape(pools, PLM_DTYPE_Q8_0, Ts[a], rows[b], cols[c], &s);
            }
    // Q8_0 around the tiles (x86 4-row decode tiles and 7 / 4 tokens to the lanes kernels, arm64
    // 4 x 4, wasm 4-token tiles): T just below, at and above a tile, odd row counts, odd and even
    // numbers of blocks
    static const int q8_Ts[] = {2, 4, 5, 8, 9}, q8_rows[] = {3, 4, 9}, q8_cols[] = {160, 256, 800};
    for (size_t a = 0; a < sizeof q8_Ts / sizeof *q8_Ts; a++)
        for (size_t b = 0; b < sizeof q8_rows / sizeof *q8_rows; b++)
            for (size_t c = 0; c < sizeof q8_cols / sizeof *q8_cols; c++)
                test_shape(pools, PLM_DTYPE_Q8_0, q8_Ts[a], q8_rows[b], q8_cols[c], &s);
    // f32 around the x86 GEMM's blocking (6-token x 16-row tiles, AVX-512 x 64 rows, groups of 8
    // panels (AVX-512: a multiple of 4), slices of k
    // of at most 640, equal token blocks of 800 KB of inputs or 132 tokens when k has slices: 140
    // x 1,536 is two of 72 and 68) and the decode kernel (16, 8, single rows)
    static const int g_Ts[] = {2, 6, 13, 64}, g_rows[] = {16, 31, 130}, g_cols[] = {8, 641, 1000};
    for (size_t a = 0; a < sizeof g_Ts / sizeof *g_Ts; a++)
        for (size_t b = 0; b < sizeof g_rows / sizeof *g_rows; b++)
            for (size_t c = 0; c < sizeof g_cols / sizeof *g_cols; c++)
                test_shape(pools, PLM_DTYPE_F32, g_Ts[a], g_rows[b], g_cols[c], &s);
    test_shape(pools, PLM_DTYPE_F32, 140, 40, 1536, &s);
    test_shape(pools, PLM_DTYPE_F32, 300, 20, 576, &s);
    // more than one token block of the driver, and a row count that is not a tile multiple
    test_shape(pools, PLM_DTYPE_F32, 130, 37, 80, &s);
    test_shape(pools, PLM_DTYPE_Q8_0, 130, 37, 96, &s);
    // AVX2 Q8_0 scales in groups of 64 blocks: 67 blocks cross a group with an odd count
    test_shape(pools, PLM_DTYPE_Q8_0, 5, 9, 67 * PLM_QK, &s);
    // Q8_0 with tokens in lanes (x86, T >= 4 on AVX-512, 8 on AVX2: groups of 16 (AVX-512) or 8
    // (AVX2) tokens, the last padded; AVX-512 leaves its last 8 tokens or fewer to a paired group,
    // and runs tiles of 2 groups up to 768 columns, 1 above; AVX-512's weight corrections in chunks
    // of 32 blocks of a parity): T around the groups (and q8_Ts above), odd block counts, 65 blocks
    // cross a chunk
    static const int l_Ts[] = {8, 15, 16, 17, 24, 32, 33, 40, 49}, l_rows[] = {3, 10};
    static const int l_cols[] = {160, 800, 1568, 65 * PLM_QK};
    for (size_t a = 0; a < sizeof l_Ts / sizeof *l_Ts; a++)
        for (size_t b = 0; b < sizeof l_rows / sizeof *l_rows; b++)
            for (size_t c = 0; c < sizeof l_cols / sizeof *l_cols; c++)
                test_shape(pools, PLM_DTYPE_Q8_0, l_Ts[a], l_rows[b], l_cols[c], &s);
    // Q8_0 at every T up to past a driver's token block: every path's tiles, groups of 8 or 16
    // tokens and their tails (AVX-512's paired group), on an odd number of blocks
    for (int T = 1; T <= 130; T++) test_shape(pools, PLM_DTYPE_Q8_0, T, 6, 5 * PLM_QK, &s);
    // the server's steps (2 to 16 tokens) on a model's width, with enough rows that the x86 tiles
    // prefetch rows ahead, and a row count that leaves 3 rows at the end
    for (int T = 2; T <= 16; T++) test_shape(pools, PLM_DTYPE_Q8_0, T, 131, 576, &s);
    test_matmul_n(pools, &s);
    for (int i = 0; i < 3; i++) plm_pool_free(pools[i]);
}

// ---- Q4_0, Q4_1, Q5_0 and Q5_1 ----

// test_q4_as_q8: Q4_0 runs exactly as the Q8_0 matrix {q = k - 8, d} and Q5_0 as {k - 16, d} on
// every path (test_load: plm_mat_row == gguf.c's dequantization).
static void test_q4_as_q8(plm_pool *pool, uint64_t *s) {
    // Q4_0 and Q5_0 against their int8 form, T around the tiles and token groups, odd block counts
    static const int Ts[] = {1, 2, 5, 8, 17, 40};
    for (size_t i = 0; i < 2 * sizeof Ts / sizeof *Ts; i++) {
        const int T = Ts[i % (sizeof Ts / sizeof *Ts)], R = 13, C = 160;
        const int five = i >= sizeof Ts / sizeof *Ts;
        plm_mat w = mat_alloc(five ? PLM_DTYPE_Q5_0 : PLM_DTYPE_Q4_0, R, C, s);
        plm_mat w8 = {
            .dtype = PLM_DTYPE_Q8_0, .rows = R, .cols = C, .q = malloc((size_t)R * C), .d = w.d};
        for (int k = 0; k < R * C; k++) {
            const int blk0 = k / PLM_QK * 16, e = k % PLM_QK;
            const int n = e < 16 ? w.q4[blk0 + e] & 15 : w.q4[blk0 + e - 16] >> 4;
            const int h = five ? (int)(w.qh[k / PLM_QK] >> e & 1) : 0;
            w8.q[k] = (int8_t)(n + 16 * h - (five ? 16 : 8));
        }
        float *x = malloc((size_t)T * C * sizeof(float)), *o4 = malloc((size_t)T * R * 4),
              *o8 = malloc((size_t)T * R * 4);
        fill_uniform(x, (size_t)T * C, s);
        void *scratch = plm_alloc_aligned(plm_matmul_scratch_bytes(T, C), 1);
        for (int isa = 0; isa < PLM_ISA_COUNT; isa++) {
            if (!plm_isa_supported((plm_isa)isa)) continue;
            plm_matmul_isa_run((plm_isa)isa, pool, o4, x, &w, T, scratch);
            plm_matmul_isa_run((plm_isa)isa, pool, o8, x, &w8, T, scratch);
            CHECK_MSG(!memcmp(o4, o8, (size_t)T * R * 4), "%s %s T=%d differs from its q8_0",
                      plm_isa_name((plm_isa)isa), dtype_name(w.dtype), T);
        }
        free(w8.q), free(x), free(o4), free(o8);
        plm_free_aligned(scratch);
        mat_free(&w);
    }
}

// test_q4: Q4_0, Q4_1, Q5_0 and Q5_1 through test_shape: T from 1 to 130 (decode, the small-T
// tiles, the token groups of prefill, more than one token block), odd and even block counts, odd
// row counts.
static void test_q4(void) {
    plm_pool *pools[3] = {plm_pool_create(1), plm_pool_create(1 + MORE_THREADS),
                          plm_pool_create(1 + 2 * MORE_THREADS)};
    CHECK(pools[0] && pools[1] && pools[2]);
    uint64_t s = 4;
    test_q4_as_q8(pools[1], &s);
    static const int Ts[] = {1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33, 130}, rows[] = {1, 5, 37};
    static const int cols[] = {32, 96, 576, 800};
    static const plm_dtype dts[] = {PLM_DTYPE_Q4_0, PLM_DTYPE_Q4_1, PLM_DTYPE_Q5_0, PLM_DTYPE_Q5_1};
    for (int ty = 0; ty < 4; ty++)
        for (size_t a = 0; a < sizeof Ts / sizeof *Ts; a++)
            for (size_t b = 0; b < sizeof rows / sizeof *rows; b++)
                for (size_t c = 0; c < sizeof cols / sizeof *cols; c++)
                    test_shape(pools, dts[ty], Ts[a], rows[b], cols[c], &s);
    for (int ty = 1; ty < 4; ty += 2) {
        test_shape(pools, dts[ty], 6, 200, 1536, &s);
        test_shape(pools, dts[ty], 64, 150, 65 * PLM_QK, &s);
    }
    // rows longer than a kernel's chunk of blocks (x86 small T: 256 blocks, chains carried through
    // out between chunks), 1 .. 9 tokens
    for (int ty = 0; ty < 4; ty++)
        for (int T = 1; T <= 9; T += 4) test_shape(pools, dts[ty], T, 5, 9248, &s);
    // Q5_x at every T up to past a driver's token block, on an odd number of blocks
    for (int T = 1; T <= 130; T++)
        for (int ty = 2; ty < 4; ty++) test_shape(pools, dts[ty], T, 6, 5 * PLM_QK, &s);
    for (int i = 0; i < 3; i++) plm_pool_free(pools[i]);
}

// ---- Q4_K, Q5_K and Q6_K ----

// k_shapes: test_shape for a K-quant dtype: T from 1 to 130 (decode, the small-T tiles, the token
// groups of prefill, more than one token block), odd super-block counts, odd row counts, more rows
// than the driver's chunk of Q4_K scales (8,192 blocks: 1,024 rows of 256), long rows.
static void k_shapes(plm_pool *pools[3], plm_dtype dt, uint64_t *s) {
    static const int Ts[] = {1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33, 130}, rows[] = {1, 5, 37};
    static const int cols[] = {256, 768, 1536};
    for (size_t a = 0; a < sizeof Ts / sizeof *Ts; a++)
        for (size_t b = 0; b < sizeof rows / sizeof *rows; b++)
            for (size_t c = 0; c < sizeof cols / sizeof *cols; c++)
                test_shape(pools, dt, Ts[a], rows[b], cols[c], s);
    for (int T = 1; T <= 130; T += 3) test_shape(pools, dt, T, 6, 1280, s);
    test_shape(pools, dt, 64, 150, 2304, s);
    test_shape(pools, dt, 3, 1100, 256, s);
    for (int T = 1; T <= 9; T += 4) test_shape(pools, dt, T, 5, 9216, s);
}

// test_kq_scales: each path's kq_scales == plm_kq_scales bit for bit, from odd super-blocks, with
// d and dmin over every kind of f32 an f16 gives (+-0, subnormal, normal, +-inf, NaN of either
// sign) beside mn = 0 (inf * 0 is a NaN, whose sign the reference keeps).
static void test_kq_scales(void) {
    enum { NSB = 67 };
    static const uint16_t kinds[] = {0x0000, 0x8000, 0x0001, 0x3c00, 0xbc00, 0x7bff,
                                     0x7c00, 0xfc00, 0x7e00, 0xfe00, 0x2e66};
    const int nk = (int)(sizeof kinds / sizeof *kinds);
    uint64_t s = 9;
    plm_mat w = {.dtype = PLM_DTYPE_Q4_K, .rows = 1, .cols = NSB * PLM_QK_K};
    float d[NSB], m[NSB];
    uint8_t scm[16 * NSB];
    for (int i = 0; i < NSB; i++) {
        d[i] = plm_f16_to_f32(kinds[i % nk]);
        m[i] = plm_f16_to_f32(kinds[(i / nk + 3 * i) % nk]);
    }
    for (int i = 0; i < 16 * NSB; i++) scm[i] = i % 5 ? (uint8_t)(rng_next(&s) >> 32 & 63) : 0;
    w.d = d, w.m = m, w.scm = scm;
    float want[2][8 * NSB], got[2][8 * NSB];
    plm_kq_scales(want[0], want[1], &w, 1, NSB - 1);
    for (int isa = 0; isa < PLM_ISA_COUNT; isa++) {
        if (!plm_isa_supported((plm_isa)isa)) continue;
        const matmul_kernels *k = plm_matmul_kernels((plm_isa)isa);
        if (!k->kq_scales) continue;
        memset(got, 0xff, sizeof got);
        k->kq_scales(got[0], got[1], &w, 1, NSB - 1);
        CHECK_MSG(!memcmp(got[0], want[0], 8 * (NSB - 1) * sizeof(float)) &&
                      !memcmp(got[1], want[1], 8 * (NSB - 1) * sizeof(float)),
                  "%s kq_scales differs from plm_kq_scales", plm_isa_name((plm_isa)isa));
    }
}

// test_kq: Q4_K (Q5_K) == the Q4_1 (Q5_1) matrix of the same nibbles (and high bits) with d' = d *
// sc and m' = -(dmin * mn) bit for bit on every path (so their order is Q4_1's, matmul_kernels.h),
// rows around the driver's chunks of scales (8,192 blocks: 1,024 rows of 256 columns, 64 of
// 4,096), then k_shapes (every path and thread count == the reference).
static void test_kq(void) {
    plm_pool *pools[3] = {plm_pool_create(1), plm_pool_create(1 + MORE_THREADS),
                          plm_pool_create(1 + 2 * MORE_THREADS)};
    CHECK(pools[0] && pools[1] && pools[2]);
    uint64_t s = 5;
    static const int twin[][3] = {{1, 13, 512},   {2, 9, 768},     {5, 1030, 256}, {8, 70, 4096},
                                  {17, 40, 1536}, {40, 150, 4096}, {1, 3, 16384}};
    for (int five = 0; five < 2; five++) {
        const plm_dtype dt = five ? PLM_DTYPE_Q5_K : PLM_DTYPE_Q4_K;
        for (size_t i = 0; i < sizeof twin / sizeof *twin; i++) {
            const int T = twin[i][0], R = twin[i][1], C = twin[i][2], nb = R * C / PLM_QK;
            plm_mat w = mat_alloc(dt, R, C, &s);
            plm_mat w1 = {.dtype = five ? PLM_DTYPE_Q5_1 : PLM_DTYPE_Q4_1,
                          .rows = R,
                          .cols = C,
                          .q4 = w.q4,
                          .qh = w.qh,
                          .d = malloc((size_t)nb * sizeof(float)),
                          .m = malloc((size_t)nb * sizeof(float))};
            for (int b = 0; b < nb; b++) {
                const float ml = w.m[b / 8] * (float)w.scm[b / 8 * 16 + 8 + b % 8];
                w1.d[b] = w.d[b / 8] * (float)w.scm[b / 8 * 16 + b % 8], w1.m[b] = -ml;
            }
            float *x = malloc((size_t)T * C * sizeof(float)), *ok = malloc((size_t)T * R * 4),
                  *o1 = malloc((size_t)T * R * 4);
            fill_uniform(x, (size_t)T * C, &s);
            void *scratch = plm_alloc_aligned(plm_matmul_scratch_bytes(T, C), 1);
            for (int isa = 0; isa < PLM_ISA_COUNT; isa++) {
                if (!plm_isa_supported((plm_isa)isa)) continue;
                plm_matmul_isa_run((plm_isa)isa, pools[2], ok, x, &w, T, scratch);
                plm_matmul_isa_run((plm_isa)isa, pools[0], o1, x, &w1, T, scratch);
                CHECK_MSG(!memcmp(ok, o1, (size_t)T * R * 4),
                          "%s %s T=%d rows=%d cols=%d differs from its %s",
                          plm_isa_name((plm_isa)isa), dtype_name(dt), T, R, C,
                          dtype_name(w1.dtype));
            }
            float *rk = malloc((size_t)C * 4), *r1 = malloc((size_t)C * 4);
            int same = 1;
            for (int r = 0; r < R; r++) {
                plm_mat_row(rk, &w, r);
                plm_mat_row(r1, &w1, r);
                same &= !memcmp(rk, r1, (size_t)C * 4);
            }
            CHECK_MSG(same, "%s rows=%d cols=%d: plm_mat_row differs from its %s", dtype_name(dt),
                      R, C, dtype_name(w1.dtype));
            free(w1.d), free(w1.m), free(x), free(ok), free(o1), free(rk), free(r1);
            plm_free_aligned(scratch);
            mat_free(&w);
        }
        k_shapes(pools, dt, &s);
    }
    for (int i = 0; i < 3; i++) plm_pool_free(pools[i]);
}

// q6k_direct: out[t, r] of Q6_K matrix w in the canonical order of matmul_kernels.h, written out
// from the bytes (GGUF's element layout) and the quantized inputs xq, xd in plain float.
static float q6k_direct(const plm_mat *w, const int8_t *xq, const float *xd, int r) {
    const int C = w->cols, nsb = C / PLM_QK_K;
    float acc = 0;
    for (int b = 0; b < C / PLM_QK; b++) {
        const uint8_t *sb = w->q6 + ((size_t)r * nsb + b / 8) * PLM_Q6K_QS;
        for (int half = 0; half < 2; half++) {
            int32_t p = 0;
            for (int i = 16 * half; i < 16 * half + 16; i++) {
                const int e = (b % 8) * 32 + i, h = e / 128, g = e % 128 / 32, k = e % 32;
                const int lo = sb[64 * h + 32 * (g % 2) + k] >> (g / 2 ? 4 : 0) & 15;
                const int hi = sb[128 + 32 * h + k] >> 2 * g & 3;
                p += ((lo | hi << 4) - 32) * xq[b * PLM_QK + i];
            }
            const float ds =
                w->d[(size_t)r * nsb + b / 8] * (float)(int8_t)sb[192 + 2 * (b % 8) + half];
            const float sc = ds * xd[b], m = (float)p * sc;
            acc = acc + m;
        }
    }
    return acc;
}

// test_q6k: the reference == q6k_direct bit for bit; then k_shapes (every path and thread count ==
// the reference).
static void test_q6k(void) {
    plm_pool *pools[3] = {plm_pool_create(1), plm_pool_create(1 + MORE_THREADS),
                          plm_pool_create(1 + 2 * MORE_THREADS)};
    CHECK(pools[0] && pools[1] && pools[2]);
    uint64_t s = 6;
    {
        const int T = 5, R = 7, C = 768;
        plm_mat w = mat_alloc(PLM_DTYPE_Q6_K, R, C, &s);
        float *x = malloc((size_t)T * C * sizeof(float)), *o = malloc((size_t)T * R * 4);
        int8_t *xq = malloc((size_t)T * C);
        float *xd = malloc((size_t)T * C / PLM_QK * sizeof(float));
        fill_uniform(x, (size_t)T * C, &s);
        plm_quantize_q8_0_isa(PLM_ISA_SCALAR, xq, xd, x, (size_t)T * C);
        void *scratch = plm_alloc_aligned(plm_matmul_scratch_bytes(T, C), 1);
        plm_matmul_ref(o, x, &w, T, scratch);
        int same = 1;
        for (int t = 0; t < T; t++)
            for (int r = 0; r < R; r++) {
                const float want = q6k_direct(&w, xq + (size_t)t * C, xd + t * C / PLM_QK, r);
                same &= !memcmp(&want, o + (size_t)t * R + r, sizeof want);
            }
        CHECK_MSG(same, "q6_k reference differs from the canonical order written out");
        free(x), free(o), free(xq), free(xd);
        plm_free_aligned(scratch);
        mat_free(&w);
    }
    k_shapes(pools, PLM_DTYPE_Q6_K, &s);
    for (int i = 0; i < 3; i++) plm_pool_free(pools[i]);
}

// ---- F16 and BF16 ----

// test_half_convert: every path's converter (matmul_kernels.h's half) on all 65,536 values of each
// 16-bit type, from an odd start (the SIMD loops' tails): plm_half_to_f32's bits, a NaN for a NaN
// (vcvtph2ps and fcvtl quiet a signalling one); and the reference against the values' definition.
static void test_half_convert(void) {
    uint16_t *h = malloc(65537 * sizeof *h);
    float *want = malloc(65537 * sizeof *want), *got = malloc(65537 * sizeof *got);
    for (int i = 0; i < 65537; i++) h[i] = (uint16_t)(i + 65535); // 65535, 0, 1, .., 65535
    for (int bf = 0; bf < 2; bf++) {
        const plm_dtype dt = bf ? PLM_DTYPE_BF16 : PLM_DTYPE_F16;
        plm_half_to_f32(want, h, 65537, dt);
        int bad = 0;
        for (int i = 1; i < 65537; i++) { // sign * 2^(e - bias) * significand, or inf / NaN
            const int e = bf ? h[i] >> 7 & 255 : h[i] >> 10 & 31, emax = bf ? 255 : 31;
            const int m = bf ? h[i] & 127 : h[i] & 1023, mb = bf ? 7 : 10, bias = bf ? 127 : 15;
            const double v =
                (h[i] >> 15 ? -1 : 1) * ldexp(e ? m + (1 << mb) : m, (e ? e : 1) - bias - mb);
            if (e == emax) bad += m ? !isnan(want[i]) : !isinf(want[i]) || (want[i] < 0) != (v < 0);
            else bad += (double)want[i] != v || !signbit(want[i]) != !signbit(v);
        }
        CHECK_MSG(bad == 0, "plm_half_to_f32 %s: %d values wrong", bf ? "bf16" : "f16", bad);
        for (int isa = 0; isa < PLM_ISA_COUNT; isa++) {
            if (!plm_isa_supported((plm_isa)isa)) continue;
            const matmul_kernels *k = plm_matmul_kernels((plm_isa)isa);
            if (!k->half) continue;
            memset(got, 0xff, 65537 * sizeof *got);
            k->half(got + 1, h + 1, 65536, dt);
            int diff = 0;
            for (int i = 1; i < 65537; i++)
                diff += isnan(want[i]) ? !isnan(got[i]) || !signbit(got[i]) != !signbit(want[i])
                                       : memcmp(&got[i], &want[i], sizeof *got) != 0;
            CHECK_MSG(diff == 0, "%s converter on %s: %d values differ", plm_isa_name((plm_isa)isa),
                      bf ? "bf16" : "f16", diff);
        }
    }
    free(h), free(want), free(got);
}

// test_half_shape: a random F16 or BF16 (rows, cols) matrix (with f16 subnormals) through every
// path, 1, 2 and 3 threads: the path's f32 matmul on the converted weights bit for bit, and the
// double-precision oracle within f32 rounding.
static void test_half_shape(plm_pool *pools[3], plm_dtype dtype, int T, int rows, int cols,
                            uint64_t *s) {
    const size_t n = (size_t)rows * cols, no = (size_t)T * rows;
    float *f = malloc(n * sizeof(float)), *x = malloc((size_t)T * cols * sizeof(float));
    plm_mat w = {.dtype = dtype, .rows = rows, .cols = cols, .h = malloc(n * sizeof(uint16_t))};
    fill_uniform(f, n, s);
    for (size_t i = 0; i < n; i++) { // every 7th value 2^-18 smaller: f16 subnormals
        const float v = i % 7 ? f[i] : f[i] * 0x1p-18f;
        w.h[i] = dtype == PLM_DTYPE_F16 ? plm_f32_to_f16(v) : plm_f32_to_bf16(v);
    }
    plm_half_to_f32(f, w.h, n, dtype);
    const plm_mat wf = {.dtype = PLM_DTYPE_F32, .rows = rows, .cols = cols, .f32 = f};
    fill_uniform(x, (size_t)T * cols, s);
    void *scratch = plm_alloc_aligned(plm_matmul_scratch_bytes(T, cols), 1);
    float *want = malloc(no * sizeof(float)), *got = malloc(no * sizeof(float));
    double *oref = malloc(no * sizeof(double)), *scale = malloc(no * sizeof(double));
    oracle(oref, scale, x, &w, T);
    for (int isa = 0; isa < PLM_ISA_COUNT; isa++) {
        if (!plm_isa_supported((plm_isa)isa)) continue;
        char name[96];
        snprintf(name, sizeof name, "%s %s T=%d rows=%d cols=%d", plm_isa_name((plm_isa)isa),
                 dtype == PLM_DTYPE_F16 ? "f16" : "bf16", T, rows, cols);
        plm_matmul_isa_run((plm_isa)isa, pools[0], want, x, &wf, T, scratch);
        for (int p = 0; p < 3; p++) {
            memset(got, 0xff, no * sizeof(float));
            plm_matmul_isa_run((plm_isa)isa, pools[p], got, x, &w, T, scratch);
            CHECK_MSG(!memcmp(got, want, no * sizeof(float)),
                      "%s, %d threads: differs from the f32 matrix of its values", name,
                      plm_pool_size(pools[p]));
        }
        check_scaled(name, got, oref, scale, no, 1e-5, 1e-5);
    }
    plm_free_aligned(scratch);
    free(w.h), free(f), free(x), free(want), free(got), free(oref), free(scale);
}

// test_half: F16 and BF16 at T from decode to past a driver's token block, around the x86 GEMM's
// tiles and decode kernel (its converting loads: 8 columns, single columns, 16 and 8 rows, single
// rows) and the driver's chunks of converted rows elsewhere (64 K floats: 130 rows of 576 are 2),
// odd cols and row counts, and cols whose chunk is fewer rows than a tile (5,000: 13 rows).
static void test_half(void) {
    plm_pool *pools[3] = {plm_pool_create(1), plm_pool_create(1 + MORE_THREADS),
                          plm_pool_create(1 + 2 * MORE_THREADS)};
    CHECK(pools[0] && pools[1] && pools[2]);
    uint64_t s = 16;
    test_half_convert();
    static const int Ts[] = {1, 2, 5, 7, 13, 64, 130}, rows[] = {1, 17, 130}, cols[] = {8, 67, 576};
    for (int dt = 0; dt < 2; dt++) {
        const plm_dtype dtype = dt ? PLM_DTYPE_BF16 : PLM_DTYPE_F16;
        for (int i = 0; i < 7 * 3 * 3; i++) // every (T, rows, cols)
            test_half_shape(pools, dtype, Ts[i % 7], rows[i / 7 % 3], cols[i / 21], &s);
        test_half_shape(pools, dtype, 1, 300, 1536, &s);
        test_half_shape(pools, dtype, 40, 300, 1536, &s);
        test_half_shape(pools, dtype, 1, 40, 5000, &s);
        test_half_shape(pools, dtype, 3, 40, 5000, &s);
    }
    for (int i = 0; i < 3; i++) plm_pool_free(pools[i]);
}

int main(void) {
    test_self();
    test_paths("test_matmul");
    test_quantize();
    test_matmul();
    test_q4();
    test_kq_scales();
    test_kq();
    test_q6k();
    test_half();
    return test_main_end("test_matmul");
}
