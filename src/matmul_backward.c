// matmul_backward.c: the two matrix products of training (see matmul.h): the input gradient
// through a frozen weight (f32 or Q8_0, dequantized a row slice at a time), and the gradient of a
// small f32 weight (LoRA's A and B). Plain C written so the compiler vectorizes the inner loops;
// threads split the outputs, so results do not depend on the thread count.
#include <string.h>

#include "matmul.h"

#define TB 8     // tokens updated per pass over a weight row slice
#define SLICE 256 // columns per dequantized slice

// ---- input gradient ----

typedef struct {
    float *dinp;
    const float *dout;
    const plm_mat *w;
    int32_t T;
} input_job;

// dequant: w row r, columns [c0, c1) as f32 into out
static void dequant(float *out, const plm_mat *w, int32_t r, int32_t c0, int32_t c1) {
    if (w->dtype == PLM_DTYPE_F32) {
        memcpy(out, w->f32 + (size_t)r * w->cols + c0, (size_t)(c1 - c0) * sizeof *out);
        return;
    }
    const int8_t *q = w->q + (size_t)r * w->cols;
    const float *d = w->d + (size_t)r * (w->cols / PLM_QK);
    for (int32_t c = c0; c < c1; c++) out[c - c0] = (float)q[c] * d[c / PLM_QK];
}

static void input_worker(void *ctx, int ith, int nth) {
    input_job *j = ctx;
    int32_t cols = j->w->cols, rows = j->w->rows;
    // column slices on PLM_QK boundaries, so Q8_0 blocks are never split between threads
    int32_t nb = (cols + PLM_QK - 1) / PLM_QK;
    int32_t c0 = (int32_t)((long)nb * ith / nth) * PLM_QK, c1 = (int32_t)((long)nb * (ith + 1) / nth) * PLM_QK;
    if (c1 > cols) c1 = cols;
    float wrow[SLICE];
    for (int32_t s0 = c0; s0 < c1; s0 += SLICE) {
        int32_t s1 = s0 + SLICE < c1 ? s0 + SLICE : c1, n = s1 - s0;
        for (int32_t t0 = 0; t0 < j->T; t0 += TB) {
            int32_t t1 = t0 + TB < j->T ? t0 + TB : j->T;
            for (int32_t r = 0; r < rows; r++) {
                dequant(wrow, j->w, r, s0, s1);
                for (int32_t t = t0; t < t1; t++) {
                    float a = j->dout[(size_t)t * rows + r];
                    float *o = j->dinp + (size_t)t * cols + s0;
                    for (int32_t c = 0; c < n; c++) o[c] += a * wrow[c];
                }
            }
        }
    }
}

void plm_matmul_backward_input(plm_pool *pool, float *dinp, const float *dout, const plm_mat *w,
                               int32_t T, void *scratch) {
    (void)scratch;
    input_job j = {dinp, dout, w, T};
    plm_pool_run(pool, input_worker, &j);
}

// ---- weight gradient ----

typedef struct {
    float *dw;
    const float *dout, *inp;
    int32_t T, rows, cols;
} weight_job;

static void weight_worker(void *ctx, int ith, int nth) {
    weight_job *j = ctx;
    int32_t r0 = (int32_t)((long)j->rows * ith / nth), r1 = (int32_t)((long)j->rows * (ith + 1) / nth);
    for (int32_t r = r0; r < r1; r++) {
        float *o = j->dw + (size_t)r * j->cols;
        for (int32_t t = 0; t < j->T; t++) {
            float a = j->dout[(size_t)t * j->rows + r];
            const float *x = j->inp + (size_t)t * j->cols;
            for (int32_t c = 0; c < j->cols; c++) o[c] += a * x[c];
        }
    }
}

void plm_matmul_backward_weight(plm_pool *pool, float *dw, const float *dout, const float *inp,
                                int32_t T, int32_t rows, int32_t cols) {
    weight_job j = {dw, dout, inp, T, rows, cols};
    plm_pool_run(pool, weight_worker, &j);
}
