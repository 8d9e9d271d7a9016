// test_quantize.c: the quantizers of GGUF export (quantize.c) against the reference
// (tests/ref/quantize.gguf, made by tests/make_ref_quant.py: PyPI gguf's quantizers for Q4_0, Q4_1,
// Q5_0, Q5_1, Q8_0 and ggml's own quantize_row_*_ref for Q4_K, Q5_K, Q6_K), byte for byte, on rows
// of many kinds (Gaussian at many scales, one-signed, outliers, half zero, on a grid, zero,
// constant); the round trip through the dequantizer (gguf.c) on Gaussian rows: each legacy value
// within its block's step, the K-quants' NMSE below that of plain rounding with each run's own
// min/max step (what their scale search is for), the K-quants more accurate than the legacy types
// of as many bits; and the writer's refusal of a row that the type's block does not divide.
#include <math.h>
#include <stdint.h>

#include "gguf.h"
#include "quantize.h"
#include "rng.h"
#include "test.h"

#define REF "tests/ref/quantize.gguf"

static const uint32_t types[] = {PLM_GGML_Q4_0, PLM_GGML_Q4_1, PLM_GGML_Q5_0, PLM_GGML_Q5_1,
                                 PLM_GGML_Q8_0, PLM_GGML_Q4_K, PLM_GGML_Q5_K, PLM_GGML_Q6_K};
#define N_TYPES (sizeof types / sizeof types[0])

// ---- against the reference ----

static void check_reference(const plm_gguf *g, uint32_t type) {
    const char *name = plm_ggml_type_name(type);
    char src_name[32];
    snprintf(src_name, sizeof src_name, "%s.src", name);
    const plm_gguf_tensor *q = plm_gguf_find_tensor(g, name),
                          *x = plm_gguf_find_tensor(g, src_name);
    CHECK_MSG(q && x && q->type == type && x->type == PLM_GGML_F32 && q->ne[0] == x->ne[0] &&
                  q->n_elems == x->n_elems,
              "%s: tensors %s and %s", REF, name, src_name);
    if (!q || !x || q->n_elems != x->n_elems || x->type != PLM_GGML_F32) return;
    const size_t cols = (size_t)x->ne[0], rows = x->n_elems / cols;
    const size_t row_bytes = plm_gguf_row_bytes(type, cols);
    uint8_t *out = malloc(row_bytes);
    float *src = malloc(cols * sizeof *src);
    size_t bad_rows = 0;
    for (size_t r = 0; r < rows; r++) {
        memcpy(src, x->data + r * cols * 4, cols * 4); // the file's data may be unaligned for f32
        memset(out, 0x55, row_bytes);
        plm_quantize_row(type, src, cols, out);
        const uint8_t *want = q->data + r * row_bytes;
        if (!memcmp(out, want, row_bytes)) continue;
        size_t k = 0;
        while (out[k] == want[k]) k++;
        if (bad_rows++ < 3)
            fprintf(
                stderr, "  %s row %zu: byte %zu (block %zu, offset %zu) is 0x%02x, want 0x%02x\n",
                name, r, k, k / plm_gguf_row_bytes(type, type >= PLM_GGML_Q2_K ? 256 : 32),
                k % plm_gguf_row_bytes(type, type >= PLM_GGML_Q2_K ? 256 : 32), out[k], want[k]);
    }
    CHECK_MSG(bad_rows == 0, "%s: %zu of %zu rows differ from the reference", name, bad_rows, rows);
    free(out), free(src);
}

static void test_reference(void) {
    plm_gguf g;
    plm_error err = {0};
    if (plm_gguf_open(&g, REF, &err) != PLM_OK) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    for (size_t k = 0; k < N_TYPES; k++) check_reference(&g, types[k]);
    plm_gguf_free(&g);
}

// ---- the round trip ----

// gauss: n standard normal values (Box-Muller on the seeded generator), times scale
static void gauss(float *x, size_t n, uint64_t *s, float scale) {
    for (size_t i = 0; i < n; i += 2) {
        double u1 = ((double)(rng_next(s) >> 11) + 1.0) / 9007199254740993.0;
        double u2 = (double)(rng_next(s) >> 11) / 9007199254740992.0, r = sqrt(-2.0 * log(u1));
        x[i] = (float)(r * cos(6.283185307179586 * u2)) * scale;
        if (i + 1 < n) x[i + 1] = (float)(r * sin(6.283185307179586 * u2)) * scale;
    }
}

// legacy_step_ok: every value of the 32-blocks of a legacy type within its block's step of the
// source: |x - y| <= f * d + |m| 2^-10 (d, m the block's f16 scale and minimum as stored; f = 0.5
// for the rounding, 1 for Q4_0 / Q5_0, whose level +half is clamped to half - 1; plus the f16
// rounding of d times the largest level, 2^-10 relative)
static int legacy_step_ok(uint32_t type, const float *x, const float *y, const uint8_t *q,
                          size_t n) {
    const int with_min = type == PLM_GGML_Q4_1 || type == PLM_GGML_Q5_1;
    const double f = type == PLM_GGML_Q4_0 || type == PLM_GGML_Q5_0 ? 1.0 : 0.5;
    const size_t bytes = plm_gguf_row_bytes(type, 32);
    for (size_t b = 0; b < n / 32; b++) {
        const uint8_t *p = q + b * bytes;
        const double d = fabs((double)plm_f16_to_f32((uint16_t)(p[0] | p[1] << 8)));
        const double m = with_min ? fabs((double)plm_f16_to_f32((uint16_t)(p[2] | p[3] << 8))) : 0;
        for (size_t j = 32 * b; j < 32 * b + 32; j++) {
            const double e = fabs((double)x[j] - (double)y[j]);
            if (e > f * d + 128 * d / 1024 + m / 1024) {
                fprintf(stderr, "  %s: value %zu is %.9g, source %.9g, block step %.9g\n",
                        plm_ggml_type_name(type), j, (double)y[j], (double)x[j], d);
                return 0;
            }
        }
    }
    return 1;
}

// uniform_mse: the mean squared error step^2 / 12 of rounding to a uniform grid, with each run's
// step as a plain fit would set it without any search: Q4_K / Q5_K: runs of 32, step (max -
// min(min, 0)) / 15 or 31; Q6_K: runs of 16, step max|x| / 32. The K-quants' fitted scales must
// do better than that.
static double uniform_mse(uint32_t type, const float *x, size_t n) {
    const size_t run = type == PLM_GGML_Q6_K ? 16 : 32;
    const double levels = type == PLM_GGML_Q4_K ? 15 : type == PLM_GGML_Q5_K ? 31 : 32;
    double sum = 0;
    for (size_t b = 0; b < n; b += run) {
        double lo = 0, hi = -(double)INFINITY, amax = 0;
        for (size_t i = b; i < b + run; i++) {
            lo = fmin(lo, (double)x[i]), hi = fmax(hi, (double)x[i]);
            amax = fmax(amax, fabs((double)x[i]));
        }
        const double step = (type == PLM_GGML_Q6_K ? amax : hi - lo) / levels;
        sum += step * step / 12 * (double)run;
    }
    return sum / (double)n;
}

static void test_round_trip(void) {
    const size_t n = 256 * 512; // one long row: 4096 legacy blocks, 512 super-blocks
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    uint8_t *q = malloc(plm_gguf_row_bytes(PLM_GGML_Q8_0, n));
    double nmse[N_TYPES];
    uint64_t s = rng_seed(15);
    gauss(x, n, &s, 0.02f); // the scale of a weight matrix
    for (size_t k = 0; k < N_TYPES; k++) {
        const uint32_t t = types[k];
        plm_quantize_row(t, x, n, q);
        plm_gguf_dequant_row(t, q, n, y);
        double se = 0, sx = 0;
        for (size_t i = 0; i < n; i++) {
            se += ((double)x[i] - (double)y[i]) * ((double)x[i] - (double)y[i]);
            sx += (double)x[i] * (double)x[i];
        }
        nmse[k] = se / sx;
        if (t < PLM_GGML_Q2_K) {
            printf("  %s: NMSE %.3g\n", plm_ggml_type_name(t), nmse[k]);
        } else {
            const double bound = uniform_mse(t, x, n) / (sx / (double)n);
            printf("  %s: NMSE %.3g (plain uniform rounding: %.3g)\n", plm_ggml_type_name(t),
                   nmse[k], bound);
            CHECK_MSG(nmse[k] < bound, "%s: NMSE %.3g, want below %.3g", plm_ggml_type_name(t),
                      nmse[k], bound);
        }
        if (t < PLM_GGML_Q2_K)
            CHECK_MSG(legacy_step_ok(t, x, y, q, n), "%s: a value beyond its block's step",
                      plm_ggml_type_name(t));
    }
    // the K-quants against the legacy types of as many bits (indices in types[])
    CHECK_MSG(nmse[5] < nmse[0] && nmse[5] < nmse[1], "Q4_K no better than Q4_0 / Q4_1");
    CHECK_MSG(nmse[6] < nmse[2] && nmse[6] < nmse[3], "Q5_K no better than Q5_0 / Q5_1");
    CHECK_MSG(nmse[7] < nmse[6] && nmse[4] < nmse[7], "not Q8_0 < Q6_K < Q5_K in NMSE");
    free(x), free(y), free(q);
}

// ---- what cannot be written ----

static plm_status fill_zero(void *user, int32_t i, float *buf, plm_error *err) {
    (void)user, (void)i, (void)err;
    buf[0] = 0;
    return PLM_OK;
}

static void test_refusals(void) {
    for (size_t k = 0; k < N_TYPES; k++) CHECK(plm_quantize_writable(types[k]));
    const uint32_t not_written[] = {PLM_GGML_F32,
                                    PLM_GGML_F16,
                                    PLM_GGML_BF16,
                                    PLM_GGML_Q2_K,
                                    PLM_GGML_Q3_K,
                                    15 /* Q8_K */,
                                    9 /* Q8_1 */};
    for (size_t k = 0; k < sizeof not_written / sizeof not_written[0]; k++)
        CHECK_MSG(!plm_quantize_writable(not_written[k]), "type %u writable",
                  (unsigned)not_written[k]);
    // a Q4_K tensor of 576 columns (SmolLM2's rows): refused, naming the path, nothing written
    const char *path = "build/tests/test_quantize_refused.gguf";
    plm_gguf_writer *w;
    plm_error err = {0};
    CHECK(plm_gguf_writer_create(&w, &err) == PLM_OK);
    const int64_t ne[2] = {576, 2};
    plm_gguf_add_tensor(w, "w", 2, ne, PLM_GGML_Q4_K);
    remove(path);
    CHECK_MSG(plm_gguf_write(w, path, fill_zero, NULL, &err) == PLM_ERR_ARG &&
                  strstr(err.msg, path) && strstr(err.msg, "multiple of its block"),
              "576-wide Q4_K: %s", err.msg);
    FILE *f = fopen(path, "rb");
    CHECK_MSG(!f, "%s was written", path);
    if (f) fclose(f);
    plm_gguf_writer_free(w);
}

int main(void) {
    test_self();
    test_reference();
    test_round_trip();
    test_refusals();
    return test_main_end("test_quantize");
}
