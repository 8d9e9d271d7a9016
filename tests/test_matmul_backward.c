// test_matmul_backward.c: the training products of matmul_backward.c against a double-precision
// recompute: dinp += dout @ W (f32 and Q8_0 weights, every path this CPU runs and the scalar reference, tails in
// tokens, rows and columns), 1 thread == 3 threads bit for bit, AVX2 == AVX-512 bit for bit (both
// FMA chains over the rows in order); Q4_0, Q4_1, Q6_K, F16 and BF16 weights == the f32 matrix of
// their dequantized values (plm_mat_row) bit for bit on each path; dw += dout^T @ inp.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "matmul.h"
#include "test.h"

static uint64_t rng = 99;
static float frand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 40) / 8388608.0) - 1.0f;
}

static void check_input(int T, int R, int C, plm_dtype dt) {
    float *w = malloc(sizeof(float) * R * C), *g = malloc(sizeof(float) * T * R);
    float *d0 = malloc(sizeof(float) * T * C), *want = malloc(sizeof(float) * T * C);
    for (int i = 0; i < R * C; i++) w[i] = frand();
    for (int i = 0; i < T * R; i++) g[i] = frand();
    for (int i = 0; i < T * C; i++) d0[i] = frand();
    plm_mat m = {.dtype = PLM_DTYPE_F32, .rows = R, .cols = C, .f32 = w};
    int8_t *q = NULL;
    float *qd = NULL;
    if (dt == PLM_DTYPE_Q8_0) { // the reference uses the dequantized weights
        q = malloc((size_t)R * C), qd = malloc(sizeof(float) * R * C / PLM_QK);
        plm_quantize_q8_0(q, qd, w, (size_t)R * C);
        for (int i = 0; i < R * C; i++) w[i] = (float)q[i] * qd[i / PLM_QK];
        m = (plm_mat){.dtype = PLM_DTYPE_Q8_0, .rows = R, .cols = C, .q = q, .d = qd};
    }
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (int r = 0; r < R; r++) s += (double)g[t * R + r] * (double)w[r * C + c];
            want[t * C + c] = (float)((double)d0[t * C + c] + s);
        }
    plm_pool *p3 = plm_pool_create(3);
    float *a = malloc(sizeof(float) * T * C), *b = malloc(sizeof(float) * T * C);
    float *x86 = NULL; // the first x86 SIMD path's result: every x86 path runs the same FMA chains
    for (int k = 0; k < PLM_ISA_COUNT; k++) {
        const plm_isa isa = (plm_isa)k;
        if (!plm_isa_supported(isa)) continue;
        char name[96];
        snprintf(name, sizeof name, "dinp %s %s T=%d R=%d C=%d", plm_isa_name(isa),
                 dt == PLM_DTYPE_F32 ? "f32" : "q8_0", T, R, C);
        memcpy(a, d0, sizeof(float) * T * C);
        memcpy(b, d0, sizeof(float) * T * C);
        plm_matmul_backward_input_isa(isa, NULL, a, g, &m, T);
        plm_matmul_backward_input_isa(isa, p3, b, g, &m, T);
        check_close(name, a, want, (size_t)T * C, 1e-5, 1e-4);
        CHECK_MSG(!memcmp(a, b, sizeof(float) * T * C), "%s: 1 and 3 threads differ", name);
        if (!plm_isa_includes(isa, PLM_ISA_AVX2)) continue;
        if (!x86) {
            x86 = malloc(sizeof(float) * T * C);
            memcpy(x86, a, sizeof(float) * T * C);
        } else {
            CHECK_MSG(!memcmp(a, x86, sizeof(float) * T * C), "%s: differs from avx2", name);
        }
    }
    free(x86);
    plm_pool_free(p3);
    free(w), free(g), free(d0), free(want), free(a), free(b), free(q), free(qd);
}

// check_input_q4: dinp through a Q4/Q5 (or Q6_K, Q4_K, Q5_K, F16, BF16) matrix == through the f32
// matrix of its rows, on every path, for 1 and 3 threads, bit for bit.
static void check_input_q4(int T, int R, int C, plm_dtype dt) {
    const size_t nb = (size_t)R * C / PLM_QK, nsb = (size_t)R * C / PLM_QK_K;
    const int q6k = dt == PLM_DTYPE_Q6_K;
    plm_mat m = {.dtype = dt, .rows = R, .cols = C, .d = malloc(nb * 4)};
    m.h = plm_dtype_half(dt) ? malloc(sizeof(uint16_t) * R * C) : NULL;
    for (int i = 0; m.h && i < R * C; i++) { // every 5th value 2^-18 smaller: f16 subnormals
        const float v = frand() * (i % 5 ? 1.0f : 0x1p-18f);
        m.h[i] = dt == PLM_DTYPE_F16 ? plm_f32_to_f16(v) : plm_f32_to_bf16(v);
    }
    m.m = plm_dtype_min(dt) ? malloc(nb * 4) : NULL;
    m.qh = plm_dtype_high(dt) ? malloc(nb * 4) : NULL;
    m.q4 = q6k || m.h ? NULL : malloc(nb * 16);
    m.q6 = q6k ? malloc(nsb * PLM_Q6K_QS) : NULL;
    m.scm = plm_dtype_kquant(dt) ? malloc(nb * 2) : NULL; // d and m: per super-block, nsb of nb
    for (size_t i = 0; m.scm && i < nb * 2; i++) m.scm[i] = (uint8_t)(frand() * 32.0f + 32.0f);
    for (size_t i = 0; !m.h && i < (q6k ? nsb * PLM_Q6K_QS : nb * 16); i++)
        (q6k ? m.q6 : m.q4)[i] = (uint8_t)(frand() * 128.0f + 128.0f);
    for (size_t b = 0; b < nb; b++) {
        m.d[b] = frand() * (q6k ? 1e-3f : 0.1f);
        if (m.m) m.m[b] = frand() * 0.5f;
        if (m.qh) // 32 bits from two draws of 16
            m.qh[b] = (uint32_t)(frand() * 32768.0f + 32768.0f) << 16 |
                      (uint32_t)(frand() * 32768.0f + 32768.0f);
    }
    float *w = malloc(sizeof(float) * R * C), *g = malloc(sizeof(float) * T * R);
    float *d0 = malloc(sizeof(float) * T * C), *a = malloc(sizeof(float) * T * C);
    float *b = malloc(sizeof(float) * T * C), *want = malloc(sizeof(float) * T * C);
    for (int r = 0; r < R; r++) plm_mat_row(w + (size_t)r * C, &m, r);
    for (int i = 0; i < T * R; i++) g[i] = frand();
    for (int i = 0; i < T * C; i++) d0[i] = frand();
    const plm_mat mf = {.dtype = PLM_DTYPE_F32, .rows = R, .cols = C, .f32 = w};
    plm_pool *p3 = plm_pool_create(3);
    for (int k = 0; k < PLM_ISA_COUNT; k++) {
        const plm_isa isa = (plm_isa)k;
        if (!plm_isa_supported(isa)) continue;
        memcpy(want, d0, sizeof(float) * T * C);
        memcpy(a, d0, sizeof(float) * T * C);
        memcpy(b, d0, sizeof(float) * T * C);
        plm_matmul_backward_input_isa(isa, NULL, want, g, &mf, T);
        plm_matmul_backward_input_isa(isa, NULL, a, g, &m, T);
        plm_matmul_backward_input_isa(isa, p3, b, g, &m, T);
        CHECK_MSG(!memcmp(a, want, sizeof(float) * T * C) &&
                      !memcmp(b, want, sizeof(float) * T * C),
                  "dinp %s dtype %d T=%d R=%d C=%d: differs from its f32 matrix", plm_isa_name(isa),
                  (int)dt, T, R, C);
    }
    plm_pool_free(p3);
    free(m.q4), free(m.q6), free(m.h), free(m.scm), free(m.d), free(m.m), free(m.qh), free(w),
        free(g), free(d0), free(a), free(b), free(want);
}

static void check_weight(int T, int R, int C) {
    float *g = malloc(sizeof(float) * T * R), *x = malloc(sizeof(float) * T * C);
    float *dw = calloc((size_t)R * C, sizeof(float)), *want = malloc(sizeof(float) * R * C);
    for (int i = 0; i < T * R; i++) g[i] = frand();
    for (int i = 0; i < T * C; i++) x[i] = frand();
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (int t = 0; t < T; t++) s += (double)g[t * R + r] * (double)x[t * C + c];
            want[r * C + c] = (float)s;
        }
    plm_pool *p2 = plm_pool_create(2);
    float *dw1 = calloc((size_t)R * C, sizeof(float));
    plm_matmul_backward_weight_isa(PLM_ISA_SCALAR, NULL, dw1, g, x, T, R, C);
    check_close("dw scalar", dw1, want, (size_t)R * C, 1e-5, 1e-4);
    for (int k = 1; k < PLM_ISA_COUNT;
         k++) { // every path: the reference's bits (see matmul_kernels.h)
        if (!plm_isa_supported((plm_isa)k)) continue;
        memset(dw, 0, sizeof(float) * R * C);
        plm_matmul_backward_weight_isa((plm_isa)k, p2, dw, g, x, T, R, C);
        CHECK_MSG(!memcmp(dw, dw1, sizeof(float) * R * C),
                  "dw %s T=%d R=%d C=%d: differs from scalar", plm_isa_name((plm_isa)k), T, R, C);
    }
    free(dw1);
    plm_pool_free(p2);
    free(g), free(x), free(dw), free(want);
}

int main(void) {
    test_self();
    test_paths("test_matmul_backward");
    const int shapes
        []
        [3] = {{1, 5, 32},     {7, 17, 64},  {13, 40, 96},  {33, 64, 576},
               {25, 192, 67},  {9, 600, 64}, {20, 300, 70}, {6, 33, 48},
               {17, 515, 576}, {2, 7, 1536}, {7, 4100, 40}}; // from 4096 rows: row blocks outside, dout packed
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        check_input(shapes[i][0], shapes[i][1], shapes[i][2], PLM_DTYPE_F32);
        check_input_q4(shapes[i][0], shapes[i][1], shapes[i][2], PLM_DTYPE_F16);
        check_input_q4(shapes[i][0], shapes[i][1], shapes[i][2], PLM_DTYPE_BF16);
        if (shapes[i][2] % PLM_QK != 0) continue;
        check_input(shapes[i][0], shapes[i][1], shapes[i][2], PLM_DTYPE_Q8_0);
        check_input_q4(shapes[i][0], shapes[i][1], shapes[i][2], PLM_DTYPE_Q4_0);
        check_input_q4(shapes[i][0], shapes[i][1], shapes[i][2], PLM_DTYPE_Q4_1);
        check_input_q4(shapes[i][0], shapes[i][1], shapes[i][2], PLM_DTYPE_Q5_0);
        check_input_q4(shapes[i][0], shapes[i][1], shapes[i][2], PLM_DTYPE_Q5_1);
    }
    const int q6k_shapes[][3] = {{2, 7, 1536}, {13, 40, 256}, {17, 515, 768}, {3, 4100, 256}};
    for (size_t i = 0; i < sizeof q6k_shapes / sizeof q6k_shapes[0]; i++) {
        check_input_q4(q6k_shapes[i][0], q6k_shapes[i][1], q6k_shapes[i][2], PLM_DTYPE_Q6_K);
        check_input_q4(q6k_shapes[i][0], q6k_shapes[i][1], q6k_shapes[i][2], PLM_DTYPE_Q4_K);
        check_input_q4(q6k_shapes[i][0], q6k_shapes[i][1], q6k_shapes[i][2], PLM_DTYPE_Q5_K);
    }
    check_weight(9, 8, 576);
    check_weight(33, 1536, 8);
    return test_main_end("test_matmul_backward");
}
