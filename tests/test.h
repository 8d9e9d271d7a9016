// test.h: the test harness. CHECK(cond) records a failure with file:line; check_close() compares
// arrays with allclose |x - r| <= atol + rtol * |r| and prints max abs/rel error, NMSE, the worst index
// and the first mismatches. test_main_end() prints "N passed, N failed" and returns the exit code.
#ifndef PLM_TEST_H
#define PLM_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_passed, test_failed;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (cond) test_passed++;                                                                   \
        else {                                                                                     \
            test_failed++;                                                                         \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                        \
        }                                                                                          \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (cond) test_passed++;                                                                   \
        else {                                                                                     \
            test_failed++;                                                                         \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
        }                                                                                          \
    } while (0)

// close_report: allclose of x against reference r (n); returns 1 when every element passes.
static inline int close_report(const char *name, const float *x, const float *r, size_t n,
                               double atol, double rtol, int verbose) {
    double max_abs = 0, max_rel = 0, se = 0, sr = 0;
    size_t worst = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)x[i] - (double)r[i]);
        double rel = d / (fabs((double)r[i]) + 1e-30);
        int ok = d <= atol + rtol * fabs((double)r[i]) && !isnan(x[i]);
        if (d > max_abs || isnan(x[i])) max_abs = isnan(x[i]) ? (double)INFINITY : d, worst = i;
        if (rel > max_rel) max_rel = rel;
        se += d * d;
        sr += (double)r[i] * (double)r[i];
        if (!ok) {
            if (bad < 5 && verbose)
                fprintf(stderr, "  %s[%zu] = %.9g, want %.9g (diff %.3g)\n", name, i, (double)x[i],
                        (double)r[i], d);
            bad++;
        }
    }
    if ((bad && verbose) || verbose > 1)
        fprintf(stderr, "  %s: n=%zu bad=%zu max_abs=%.3g max_rel=%.3g nmse=%.3g worst=%zu\n", name,
                n, bad, max_abs, max_rel, sr > 0 ? se / sr : se, worst);
    return bad == 0;
}

static inline int check_close(const char *name, const float *x, const float *r, size_t n,
                              double atol, double rtol) {
    int ok = close_report(name, x, r, n, atol, rtol, 1);
    CHECK_MSG(ok, "%s not close (atol %g, rtol %g)", name, atol, rtol);
    return ok;
}

// test_self: the harness must fail on a perturbed value, or no test here means anything.
static void test_self(void) {
    float a[3] = {1.0f, 2.0f, 3.0f}, b[3] = {1.0f, 2.0f, 3.0f};
    int same = close_report("self", a, b, 3, 1e-6, 1e-6, 0);
    b[1] += 1e-3f;
    int differ = close_report("self", a, b, 3, 1e-6, 1e-6, 0);
    CHECK(same && !differ);
}

#ifdef PLM_CPU_H
// test_paths: print which kernel paths (cpu.h) a test runs here and which it skips, and why;
// avxvnni says which twin of its kernels runs (VEX: AVX-VNNI; EVEX: AVX512_VNNI + VL).
static inline void test_paths(const char *name) {
    printf("%s: paths tested:", name);
    for (int i = 0; i < PLM_ISA_COUNT; i++)
        if (plm_isa_supported((plm_isa)i))
            printf(" %s%s", plm_isa_name((plm_isa)i),
                   i != PLM_ISA_AVXVNNI    ? ""
                   : plm_cpu_avxvnni_vex() ? " (vex)"
                                           : " (evex)");
    printf("; skipped (not in this build or not on this CPU: %s):", plm_cpu_name());
    for (int i = 0; i < PLM_ISA_COUNT; i++)
        if (!plm_isa_supported((plm_isa)i)) printf(" %s", plm_isa_name((plm_isa)i));
    printf("\n");
}
#endif

#ifdef PLM_CPU_H
// test_isa_from_env: PLM_ISA=path runs a test on that kernel path, as the CLI does (the
// PyTorch-reference tests run on the best path by default; run them again with PLM_ISA=avx2 etc.).
static inline void test_isa_from_env(const char *name) {
    const char *isa = getenv("PLM_ISA");
    if (!isa || !*isa) return;
    plm_error err;
    if (plm_set_kernel_path(isa, &err) != PLM_OK) {
        fprintf(stderr, "%s: PLM_ISA: %s\n", name, err.msg);
        exit(2);
    }
    printf("%s: kernel path %s (PLM_ISA)\n", name, plm_kernel_path());
}
#endif

static int test_main_end(const char *name) {
    printf("%s: %d passed, %d failed\n", name, test_passed, test_failed);
    return test_failed ? 1 : 0;
}

#endif
