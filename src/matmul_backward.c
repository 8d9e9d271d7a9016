// matmul_backward.c: the two matrix products of training (see matmul.h): the input gradient
// through a frozen weight (f32 or Q8_0), dinp += dout @ W, and the gradient of a small f32 weight
// (LoRA's A and B), dw += dout^T @ inp: the threads and the scalar reference; each path's kernels
// (matmul_kernels.h) compute the same sums in the same order (per element of dinp: from zero over
// the weight's rows, then added to dinp), so paths differ only by FMA rounding. Threads split the
// outputs on fixed tile boundaries, so results do not depend on the thread count.
#include <string.h>

#include "matmul_kernels.h"

#define NC PLM_DINP_NC // columns per tile: one Q8_0 block, two 16-lane vectors
#define TT 12  // tokens per tile of the reference
#define RB PLM_DINP_RB // weight rows per block (matmul_kernels.h)

// ---- input gradient: scalar reference ----

// w_slice: row r of w, columns [c0, c0 + n) as f32 into out
static void w_slice(float *out, const plm_mat *w, int32_t r, int32_t c0, int32_t n) {
    if (w->dtype == PLM_DTYPE_F32) {
        memcpy(out, w->f32 + (size_t)r * w->cols + c0, (size_t)n * sizeof *out);
        return;
    }
    const int8_t *q = w->q + (size_t)r * w->cols;
    const float *d = w->d + (size_t)r * (w->cols / PLM_QK);
    for (int32_t c = c0; c < c0 + n; c++) out[c - c0] = (float)q[c] * d[c / PLM_QK];
}

// tile_ref: dinp[t, c0 .. c0+n) += sum over r in [r0, r1) of dout[t, r] * W[r, c0 .. c0+n),
// t in [t0, t1): the sum from zero, then added to dinp
static void tile_ref(float *dinp, const float *dout, const plm_mat *w, int32_t t0, int32_t t1,
                     int32_t r0, int32_t r1, int32_t c0, int32_t n) {
    float acc[TT][NC], wr[NC];
    memset(acc, 0, sizeof acc);
    for (int32_t r = r0; r < r1; r++) {
        w_slice(wr, w, r, c0, n);
        for (int32_t t = t0; t < t1; t++) {
            float a = dout[(size_t)t * w->rows + r];
            for (int32_t c = 0; c < n; c++) acc[t - t0][c] += a * wr[c];
        }
    }
    for (int32_t t = t0; t < t1; t++)
        for (int32_t c = 0; c < n; c++) dinp[(size_t)t * w->cols + c0 + c] += acc[t - t0][c];
}

// ---- input gradient: threads ----

typedef struct {
    float *dinp;
    const float *dout;
    const plm_mat *w;
    int32_t T;
    const matmul_kernels *k;
} input_job;

static void input_worker(void *ctx, int ith, int nth) {
    input_job *j = ctx;
    int32_t cols = j->w->cols, nb = (cols + NC - 1) / NC; // column tiles
    for (int32_t b = (int32_t)((long)nb * ith / nth); b < (int32_t)((long)nb * (ith + 1) / nth); b++) {
        int32_t c0 = b * NC, n = cols - c0 < NC ? cols - c0 : NC;
        for (int32_t r0 = 0; r0 < j->w->rows; r0 += RB) { // the same blocks for any thread count
            int32_t r1 = r0 + RB < j->w->rows ? r0 + RB : j->w->rows;
            if (j->k->dinp_tiles) {
                j->k->dinp_tiles(j->dinp, j->dout, j->w, j->T, r0, r1, c0, n);
                continue;
            }
            for (int32_t t = 0; t < j->T; t += TT)
                tile_ref(j->dinp, j->dout, j->w, t, t + TT < j->T ? t + TT : j->T, r0, r1, c0, n);
        }
    }
}

void plm_matmul_backward_input_isa(plm_isa isa, plm_pool *pool, float *dinp, const float *dout,
                                   const plm_mat *w, int32_t T) {
    input_job j = {dinp, dout, w, T, plm_matmul_kernels(isa)};
    plm_pool_run(pool, input_worker, &j);
}

void plm_matmul_backward_input(plm_pool *pool, float *dinp, const float *dout, const plm_mat *w,
                               int32_t T, void *scratch) {
    (void)scratch;
    plm_matmul_backward_input_isa(plm_isa_active(), pool, dinp, dout, w, T);
}

// ---- weight gradient ----

typedef struct {
    float *dw;
    const float *dout, *inp;
    int32_t T, rows, cols;
    const matmul_kernels *k;
} weight_job;

static void weight_worker(void *ctx, int ith, int nth) {
    weight_job *j = ctx;
    int32_t r0 = (int32_t)((long)j->rows * ith / nth), r1 = (int32_t)((long)j->rows * (ith + 1) / nth);
    if (j->k->dw_rows) j->k->dw_rows(j->dw, j->dout, j->inp, j->T, j->rows, j->cols, r0, r1);
    else plm_dw_rows_generic(j->dw, j->dout, j->inp, j->T, j->rows, j->cols, r0, r1);
}

void plm_matmul_backward_weight_isa(plm_isa isa, plm_pool *pool, float *dw, const float *dout,
                                    const float *inp, int32_t T, int32_t rows, int32_t cols) {
    weight_job j = {dw, dout, inp, T, rows, cols, plm_matmul_kernels(isa)};
    plm_pool_run(pool, weight_worker, &j);
}

void plm_matmul_backward_weight(plm_pool *pool, float *dw, const float *dout, const float *inp,
                                int32_t T, int32_t rows, int32_t cols) {
    plm_matmul_backward_weight_isa(plm_isa_active(), pool, dw, dout, inp, T, rows, cols);
}
