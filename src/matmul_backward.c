// matmul_backward.c: the two matrix products of training (see matmul.h): the input gradient
// through a frozen weight (f32 or Q8_0), dinp += dout @ W, and the gradient of a small f32 weight
// (LoRA's A and B), dw += dout^T @ inp. The input gradient has a scalar reference and an AVX-512
// path that computes the same sums in the same order (per element: from zero over the weight's
// rows, then added to dinp), so they differ only by FMA rounding. Threads split the outputs on
// fixed tile boundaries, so results do not depend on the thread count.
#include <string.h>

#include "matmul.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_AVX512_PATH 1
#define TARGET_AVX512 __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl")))
#endif

#define NC 32  // columns per tile: one Q8_0 block, two 16-lane vectors
#define TT 12  // tokens per tile: 24 accumulators
#define RB 256 // weight rows per block: a (RB, NC) slice of W stays in cache for all tokens

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

// ---- input gradient: AVX-512 ----

#ifdef HAVE_AVX512_PATH
// load the 32 weights of row r at column c0 (n <= 32 valid) as two vectors
TARGET_AVX512 static inline void w_load(__m512 *w0, __m512 *w1, const plm_mat *w, int32_t r,
                                        int32_t c0, __mmask16 m0, __mmask16 m1) {
    if (w->dtype == PLM_DTYPE_F32) {
        const float *p = w->f32 + (size_t)r * w->cols + c0;
        *w0 = _mm512_maskz_loadu_ps(m0, p);
        *w1 = _mm512_maskz_loadu_ps(m1, p + 16);
        return;
    }
    const int8_t *q = w->q + (size_t)r * w->cols + c0;
    __m512 d = _mm512_set1_ps(w->d[(size_t)r * (w->cols / PLM_QK) + c0 / PLM_QK]);
    __m128i q0 = _mm_loadu_si128((const __m128i *)(const void *)q);
    __m128i q1 = _mm_loadu_si128((const __m128i *)(const void *)(q + 16));
    *w0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0)), d);
    *w1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1)), d);
}

// tile_avx512: as tile_ref for nt (a constant after inlining) tokens from t0
TARGET_AVX512 static inline __attribute__((always_inline)) void
tile_avx512(float *dinp, const float *dout, const plm_mat *w, int32_t t0, const int nt,
            int32_t r0, int32_t r1, int32_t c0, int32_t n) {
    __mmask16 m0 = (__mmask16)(n >= 16 ? 0xFFFF : (1u << n) - 1);
    __mmask16 m1 = (__mmask16)(n >= 32 ? 0xFFFF : n > 16 ? (1u << (n - 16)) - 1 : 0);
    // The loops over t are unrolled (nt is a constant here) so that acc lives in registers: as a
    // loop, GCC keeps acc on the stack and every FMA waits on a store and a load.
    __m512 acc[TT][2];
#pragma GCC unroll 12
    for (int t = 0; t < nt; t++) acc[t][0] = acc[t][1] = _mm512_setzero_ps();
    const float *g = dout + (size_t)t0 * w->rows;
    for (int32_t r = r0; r < r1; r++) {
        __m512 w0, w1;
        w_load(&w0, &w1, w, r, c0, m0, m1);
#pragma GCC unroll 12
        for (int t = 0; t < nt; t++) {
            __m512 a = _mm512_set1_ps(g[(size_t)t * w->rows + r]);
            acc[t][0] = _mm512_fmadd_ps(a, w0, acc[t][0]);
            acc[t][1] = _mm512_fmadd_ps(a, w1, acc[t][1]);
        }
    }
#pragma GCC unroll 12
    for (int t = 0; t < nt; t++) {
        float *o = dinp + (size_t)(t0 + t) * w->cols + c0;
        _mm512_mask_storeu_ps(o, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, o), acc[t][0]));
        _mm512_mask_storeu_ps(o + 16, m1, _mm512_add_ps(_mm512_maskz_loadu_ps(m1, o + 16), acc[t][1]));
    }
}

TARGET_AVX512 static void tiles_avx512(float *dinp, const float *dout, const plm_mat *w,
                                       int32_t T, int32_t r0, int32_t r1, int32_t c0, int32_t n) {
    int32_t t = 0;
    for (; t + TT <= T; t += TT) tile_avx512(dinp, dout, w, t, TT, r0, r1, c0, n);
    for (; t + 4 <= T; t += 4) tile_avx512(dinp, dout, w, t, 4, r0, r1, c0, n);
    for (; t < T; t++) tile_avx512(dinp, dout, w, t, 1, r0, r1, c0, n);
}
#endif

// ---- input gradient: threads ----

typedef struct {
    float *dinp;
    const float *dout;
    const plm_mat *w;
    int32_t T;
    int use_ref;
} input_job;

static void input_worker(void *ctx, int ith, int nth) {
    input_job *j = ctx;
    int32_t cols = j->w->cols, nb = (cols + NC - 1) / NC; // column tiles
    for (int32_t b = (int32_t)((long)nb * ith / nth); b < (int32_t)((long)nb * (ith + 1) / nth); b++) {
        int32_t c0 = b * NC, n = cols - c0 < NC ? cols - c0 : NC;
        for (int32_t r0 = 0; r0 < j->w->rows; r0 += RB) { // the same blocks for any thread count
            int32_t r1 = r0 + RB < j->w->rows ? r0 + RB : j->w->rows;
#ifdef HAVE_AVX512_PATH
            if (!j->use_ref) {
                tiles_avx512(j->dinp, j->dout, j->w, j->T, r0, r1, c0, n);
                continue;
            }
#endif
            for (int32_t t = 0; t < j->T; t += TT)
                tile_ref(j->dinp, j->dout, j->w, t, t + TT < j->T ? t + TT : j->T, r0, r1, c0, n);
        }
    }
}

void plm_matmul_backward_input_isa(plm_matmul_isa isa, plm_pool *pool, float *dinp,
                                   const float *dout, const plm_mat *w, int32_t T) {
    input_job j = {dinp, dout, w, T, isa != PLM_MATMUL_ISA_AVX512};
    plm_pool_run(pool, input_worker, &j);
}

void plm_matmul_backward_input(plm_pool *pool, float *dinp, const float *dout, const plm_mat *w,
                               int32_t T, void *scratch) {
    (void)scratch;
    plm_matmul_backward_input_isa(plm_matmul_isa_best(), pool, dinp, dout, w, T);
}

// ---- weight gradient ----

typedef struct {
    float *dw;
    const float *dout, *inp;
    int32_t T, rows, cols;
} weight_job;

// weight_rows: rows [r0, r1) of dw += dout^T @ inp; the inner loop over columns vectorizes, and
// each element sums the tokens in order whatever the vector width
static inline __attribute__((always_inline)) void weight_rows(const weight_job *j, int32_t r0,
                                                              int32_t r1) {
    for (int32_t r = r0; r < r1; r++) {
        float *o = j->dw + (size_t)r * j->cols;
        for (int32_t t = 0; t < j->T; t++) {
            float a = j->dout[(size_t)t * j->rows + r];
            const float *x = j->inp + (size_t)t * j->cols;
            for (int32_t c = 0; c < j->cols; c++) o[c] += a * x[c];
        }
    }
}

#ifdef HAVE_AVX512_PATH
TARGET_AVX512 static void weight_rows_avx512(const weight_job *j, int32_t r0, int32_t r1) {
    weight_rows(j, r0, r1);
}
#endif

static void weight_worker(void *ctx, int ith, int nth) {
    weight_job *j = ctx;
    int32_t r0 = (int32_t)((long)j->rows * ith / nth), r1 = (int32_t)((long)j->rows * (ith + 1) / nth);
#ifdef HAVE_AVX512_PATH
    if (__builtin_cpu_supports("avx512f")) {
        weight_rows_avx512(j, r0, r1);
        return;
    }
#endif
    weight_rows(j, r0, r1);
}

void plm_matmul_backward_weight(plm_pool *pool, float *dw, const float *dout, const float *inp,
                                int32_t T, int32_t rows, int32_t cols) {
    weight_job j = {dw, dout, inp, T, rows, cols};
    plm_pool_run(pool, weight_worker, &j);
}
