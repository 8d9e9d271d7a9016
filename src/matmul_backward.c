// matmul_backward.c: the two matrix products of training (see matmul.h): the input gradient
// through a frozen weight (f32, F16, BF16 or quantized), dinp += dout @ W, and the gradient of a small f32 weight
// (LoRA's A and B), dw += dout^T @ inp: the threads and the scalar reference; each path's kernels
// (matmul_kernels.h) compute the same sums in the same order (per element of dinp: from zero over
// the weight's rows, then added to dinp), so paths differ only by FMA rounding. Threads split the
// outputs on fixed tile boundaries, so results do not depend on the thread count.
#include <stdlib.h>
#include <string.h>

#include "matmul_kernels.h"

#define NC   PLM_DINP_NC // columns per tile: one Q8_0 block, two 16-lane vectors
#define TT   12          // tokens per tile of the reference
#define RB   PLM_DINP_RB // weight rows per block (matmul_kernels.h)
#define WIDE 4096        // weight rows from which the row blocks go outside (input_worker)

// ---- input gradient: scalar reference ----

// w_slice: row r of w, columns [c0, c0 + n) as f32 into out (Q4/Q5, Q6_K, Q4_K/Q5_K: c0 and n
// multiples of PLM_QK; F16/BF16: exact)
static void w_slice(float *out, const plm_mat *w, int32_t r, int32_t c0, int32_t n) {
    if (w->dtype == PLM_DTYPE_F32) {
        memcpy(out, w->f32 + (size_t)r * w->cols + c0, (size_t)n * sizeof *out);
        return;
    }
    if (w->dtype == PLM_DTYPE_Q6_K) {
        for (int32_t c = c0; c < c0 + n; c += PLM_QK) plm_q6k_block(out + c - c0, w, r, c / PLM_QK);
        return;
    }
    if (plm_dtype_half(w->dtype)) {
        plm_half_to_f32(out, w->h + (size_t)r * w->cols + c0, (size_t)n, w->dtype);
        return;
    }
    if (w->dtype != PLM_DTYPE_Q8_0) { // Q4_x/Q5_x, Q4_K/Q5_K: a block at a time
        const size_t b0 = (size_t)r * (size_t)(w->cols / PLM_QK) + (size_t)c0 / PLM_QK;
        for (int32_t c = 0; c < n; c += PLM_QK) plm_q4_block(out + c, w, b0 + (size_t)c / PLM_QK);
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

// dout_block: dout (T, rows) columns r0 .. r0 + nr packed into g (T, nr); without g, dout itself
static const float *dout_block(float *g, const float *dout, int32_t rows, int32_t T, int32_t r0,
                               int32_t nr) {
    if (!g) return dout;
    for (int32_t t = 0; t < T; t++)
        memcpy(g + (size_t)t * nr, dout + (size_t)t * rows + r0, (size_t)nr * sizeof *g);
    return g;
}

typedef struct {
    float *dinp;
    const float *dout;
    const plm_mat *w;
    int32_t T;
    const matmul_kernels *k;
} input_job;

// input_worker: thread ith owns column tiles [b0, b1); every element sums the blocks of RB weight
// rows in order, for any thread count and either loop order. A short dout row (rows < WIDE):
// column tile outside, row blocks inside (the tile of dinp stays in L1). A long one (the lm_head's
// 49,152: its rows are 196,608 = 48 * 4096 bytes apart, every token's slice in the same cache
// sets, and each column tile read it again from far away): row blocks outside, and the block's
// dout columns (T, RB) copied once into a contiguous buffer that every column tile reads: the
// kernels see W's rows r0 .. r1 as a matrix of r1 - r0 rows, whose dout stride is r1 - r0.
// Q4/Q5, Q6_K, Q4_K/Q5_K, F16 and BF16 weights take the second way, each row block's columns of
// this thread turned to f32 once (w_slice; F16/BF16 with the path's converter) into a (RB, cols)
// buffer, whose rows the f32 kernels then read: the same bits as the f32 matrix of the dequantized
// weights (plm_mat_row). Out of memory: the reference tiles, w_slice a row at a time.
static void input_worker(void *ctx, int ith, int nth) {
    input_job *j = ctx;
    const plm_mat *w = j->w;
    const int32_t cols = w->cols, rows = w->rows, T = j->T, nb = (cols + NC - 1) / NC;
    const int32_t b0 = (int32_t)((long)nb * ith / nth), b1 = (int32_t)((long)nb * (ith + 1) / nth);
    if (b0 >= b1) return;
    const int q4 = plm_dtype_nibbles(w->dtype) || w->dtype == PLM_DTYPE_Q6_K ||
                   plm_dtype_half(w->dtype); // via f32 slices
    if (rows < WIDE && !q4) {
        for (int32_t b = b0; b < b1; b++) {
            const int32_t c0 = b * NC, n = cols - c0 < NC ? cols - c0 : NC;
            for (int32_t r0 = 0; r0 < rows; r0 += RB) {
                const int32_t r1 = r0 + RB < rows ? r0 + RB : rows;
                if (j->k->dinp_tiles) {
                    j->k->dinp_tiles(j->dinp, j->dout, w, T, r0, r1, c0, n);
                    continue;
                }
                for (int32_t t = 0; t < T; t += TT)
                    tile_ref(j->dinp, j->dout, w, t, t + TT < T ? t + TT : T, r0, r1, c0, n);
            }
        }
        return;
    }
    float *g = malloc((size_t)T * RB * sizeof *g); // NULL: the kernels read dout in place
    float *wf = q4 && g ? malloc((size_t)RB * (size_t)cols * sizeof *wf) : NULL; // (RB, cols)
    const matmul_kernels *k = q4 && !wf ? plm_matmul_kernels(PLM_ISA_SCALAR) : j->k;
    for (int32_t r0 = 0; r0 < rows; r0 += RB) {
        const int32_t r1 = r0 + RB < rows ? r0 + RB : rows, nr = r1 - r0;
        plm_mat wb = *w; // rows r0 .. r1
        const float *gb = dout_block(g, j->dout, rows, T, r0, nr);
        int32_t lo = 0, hi = nr; // the rows of wb the kernels read
        if (g) {
            wb.rows = nr;
            if (wf) {
                const int32_t c0 = b0 * NC, c1 = b1 * NC < cols ? b1 * NC : cols;
                for (int32_t r = 0; r < nr; r++)
                    if (plm_dtype_half(w->dtype) && k->half)
                        k->half(wf + (size_t)r * cols + c0, w->h + (size_t)(r0 + r) * cols + c0,
                                (size_t)(c1 - c0), w->dtype);
                    else w_slice(wf + (size_t)r * cols + c0, w, r0 + r, c0, c1 - c0);
                wb = (plm_mat){.dtype = PLM_DTYPE_F32, .rows = nr, .cols = cols, .f32 = wf};
            } else if (w->dtype == PLM_DTYPE_F32) {
                wb.f32 += (size_t)r0 * cols;
            } else if (plm_dtype_half(w->dtype)) {
                wb.h += (size_t)r0 * cols;
            } else if (w->dtype == PLM_DTYPE_Q8_0) {
                wb.q += (size_t)r0 * cols, wb.d += (size_t)r0 * (cols / PLM_QK);
            } else if (w->dtype == PLM_DTYPE_Q6_K) {
                wb.q6 += (size_t)r0 * (cols / PLM_QK_K) * PLM_Q6K_QS;
                wb.d += (size_t)r0 * (cols / PLM_QK_K);
            } else if (plm_dtype_kquant(w->dtype)) {
                wb.q4 += (size_t)r0 * cols / 2, wb.scm += (size_t)r0 * (cols / PLM_QK) * 2;
                wb.d += (size_t)r0 * (cols / PLM_QK_K), wb.m += (size_t)r0 * (cols / PLM_QK_K);
                if (wb.qh) wb.qh += (size_t)r0 * (cols / PLM_QK);
            } else {
                wb.q4 += (size_t)r0 * cols / 2, wb.d += (size_t)r0 * (cols / PLM_QK);
                if (wb.m) wb.m += (size_t)r0 * (cols / PLM_QK);
                if (wb.qh) wb.qh += (size_t)r0 * (cols / PLM_QK);
            }
        } else {
            lo = r0, hi = r1;
        }
        for (int32_t b = b0; b < b1; b++) {
            const int32_t c0 = b * NC, n = cols - c0 < NC ? cols - c0 : NC;
            if (k->dinp_tiles) {
                k->dinp_tiles(j->dinp, gb, &wb, T, lo, hi, c0, n);
                continue;
            }
            for (int32_t t = 0; t < T; t += TT)
                tile_ref(j->dinp, gb, &wb, t, t + TT < T ? t + TT : T, lo, hi, c0, n);
        }
    }
    free(g);
    free(wf);
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
    int32_t r0 = (int32_t)((long)j->rows * ith / nth),
            r1 = (int32_t)((long)j->rows * (ith + 1) / nth);
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
