// matmul.c: out (T, rows) = inp (T, cols) @ W^T for W in HF layout (rows, cols), f32 or Q8_0, and
// the Q8_0 quantizer: the driver that splits the work over threads, the scalar reference kernels,
// and the choice of a path's kernels (matmul_kernels.h; the SIMD kernels live in matmul_x86.c,
// matmul_arm.c and matmul_wasm.c).
//
// Determinism: out[t, r] is always computed the same way on a path, whatever the thread count, the
// tile it fell in or T, so decode (T = 1) equals prefill (T > 1) bit for bit on each path. Tile
// kernels: every tile shape runs the same per-(t, r) operation sequence (the same vector lanes, the
// same order over cols, the same final horizontal sum). Rows kernels (tile_kernel.rows: the x86 f32
// packed GEMM and its matrix-vector kernel for decode) compute each element as one FMA chain over
// k in order from +0, whichever lane or tile holds it; splitting k into packed slices carries the
// chain through memory, which does not change a float.
// Q8_0 goes further: every path runs the canonical order of matmul_kernels.h, so Q8_0 results are
// the same bits on every path, and the native and wasm builds give the same logits (the x86 Q8_0
// rows kernels for T >= rows_t hold tokens in vector lanes and run that order per lane).
// Threads split rows; Q8_0 inputs are quantized and packed (q8_prepare) once before (over the
// threads when long, each its own tokens), and once for all the weights of plm_matmul_n that share
// them (q, k and v; gate and up), which also run as one job.
// Decode is memory-bound: the weights are read as sequential streams with software prefetch (a
// tile of dnr rows at a time for tile kernels: 1 or a few rows whose block sums land in the lanes
// of one vector; 16-row panels, transposed in registers, for the x86 f32 rows kernel); prefill is
// compute-bound: register tiles of several tokens x rows reuse each loaded vector (the x86 f32
// GEMM packs 16-row panels of W^T per call into thread-local memory).
// Reference for the Q8_0 format and the VNNI/maddubs tricks: ggml-cpu's ggml_vec_dot_q8_0_q8_0.
#include "matmul.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#include "base.h"
#include "matmul_kernels.h"

// Tokens per pass over a thread's rows: their inputs stay in L2 while the weights stream once per
// pass (the lm_head's 113 MB f32 weights read from DRAM once per 128 tokens, not once per 64).
#define TOKEN_BLOCK_BYTES (512 << 10)

// ---- the driver ----

// Quantize the inputs over the threads from this many values (below, one thread's share would be
// shorter than a job's start).
#define QUANTIZE_MT_VALUES (16 * 1024)

// rows_run: out[0 .. T, r0 .. r1) of j with the tiles k (stream: decode's, of dnr rows).
static void rows_run(const matmul_job *j, tile_kernel k, int stream, int r0, int r1) {
    const int T = j->T;
    if (k.rows && T >= k.rows_t) {
        if (r0 < r1) k.rows(j, r0, r1);
        return;
    }
    if (stream && k.warm && r0 < r1) k.warm(j, r0, r1);
    if (stream) { // a row tile at a time: every token at once, or (no stream_t) one by one
        for (int r = r0; r < r1;) {
            const int nr = r1 - r >= k.nr ? k.nr : 1;
            if (k.stream_t) k.fn(j, 0, T, r, nr);
            else
                for (int t = 0; t < T; t++) k.fn(j, t, 1, r, nr);
            r += nr;
        }
        return;
    }
    // 128 or 64 tokens a pass (a multiple of every MT); the result does not depend on it
    const size_t in_bytes = (size_t)j->w->cols * (j->w->dtype == PLM_DTYPE_F32 ? 4 : 1);
    const int token_block = 128 * in_bytes <= TOKEN_BLOCK_BYTES ? 128 : 64;
    for (int tb = 0; tb < T; tb += token_block) {
        const int te = tb + token_block < T ? tb + token_block : T;
        for (int r = r0; r < r1;) {
            const int nr = r1 - r >= k.nr ? k.nr : 1;
            int t = tb;
            for (; t + k.mt <= te; t += k.mt) k.fn(j, t, k.mt, r, nr);
            for (; t < te; t++) k.fn(j, t, 1, r, nr);
            r += nr;
        }
    }
}

// F16 and BF16 weights that the path's kernels do not read themselves (matmul_kernels.h): rows of
// this thread converted to f32 a chunk of HALF_BUF floats at a time (at least one tile of nr rows;
// in L2) into a thread-local buffer, and the f32 kernels k run on the chunk as a matrix of its own.
#define HALF_BUF PLM_HALF_MAX_COLS // floats (256 KB)

static void half_rows(const matmul_job *j, tile_kernel k, int stream, int r0, int r1) {
    static _Thread_local _Alignas(64) float buf[HALF_BUF];
    const size_t C = (size_t)j->w->cols;
    assert(C <= HALF_BUF);
    int n = (int)(HALF_BUF / C) / k.nr * k.nr;
    if (n < k.nr) n = k.nr;
    if ((size_t)n * C > HALF_BUF) n = (int)(HALF_BUF / C);
    k.warm = NULL; // the chunk is in cache already
    for (int r = r0; r < r1; r += n) {
        const int m = r1 - r < n ? r1 - r : n;
        j->half(buf, j->w->h + (size_t)r * C, (size_t)m * C, j->w->dtype);
        // rows: out's row stride for several tokens; for one token (no stride) the chunk's rows,
        // so that no kernel prefetches past the buffer
        const plm_mat wc = {.dtype = PLM_DTYPE_F32,
                            .rows = j->T > 1 ? j->w->rows : m,
                            .cols = (int32_t)C,
                            .f32 = buf};
        matmul_job jc = *j;
        jc.w = &wc, jc.out = j->out + r;
        rows_run(&jc, k, stream, 0, m);
    }
}

// Q4_K and Q5_K: the blocks of rows whose scales a thread turns into Q4_1's at a time (d and m:
// 64 KB; 16 rows of PLM_KQ_MAX_COLS)
#define KQ_BLOCKS 8192

// kq_rows: rows_run on Q4_K/Q5_K rows [r0, r1) as the Q4_1 (Q5_1) matrix of the same nibbles and
// their blocks' d * sc, -(dmin * mn) (matmul.h), a few rows at a time: their scales computed into
// a thread's buffers, the rows seen as a matrix of w's row count (the stride of out) from row r.
static void kq_rows(const matmul_job *j, const tile_kernel *k, int stream, int r0, int r1) {
    static _Thread_local _Alignas(64) float d[KQ_BLOCKS], m[KQ_BLOCKS];
    const plm_mat *w = j->w;
    const int nb = w->cols / PLM_QK, per = KQ_BLOCKS / nb / k->nr * k->nr;
    assert(per >= k->nr);
    for (int r = r0; r < r1; r += per) {
        const int n = r1 - r < per ? r1 - r : per;
        const size_t b0 = (size_t)r * (size_t)nb;
        j->kq(d, m, w, b0 / 8, (size_t)n * (size_t)nb / 8);
        const plm_mat v = {.dtype = plm_kq_blocks(w->dtype),
                           .rows = w->rows,
                           .cols = w->cols,
                           .q4 = w->q4 + b0 * PLM_QK / 2,
                           .qh = w->qh ? w->qh + b0 : NULL,
                           .d = d,
                           .m = m};
        matmul_job vj = *j;
        vj.w = &v, vj.out = j->out + r;
        rows_run(&vj, *k, stream, 0, n);
    }
}

// matmul_rows: thread ith of nth takes a contiguous chunk of rows, a multiple of the tile's NR.
static void matmul_rows(const matmul_job *j, int ith, int nth) {
    const int rows = j->w->rows, T = j->T;
    // Fewer tokens than a tile or than stream_t (decode, small steps): a tile of dnr rows at a time
    // (1 for f32: interleaving 4 f32 row streams halves the DRAM bandwidth on Zen 4; the quantized
    // tiles read their few rows with software prefetch one tile ahead).
    tile_kernel k = j->kernel;
    const int stream = T < k.mt || T < k.stream_t;
    if (stream) k.nr = k.dnr;
    int per = (rows + nth - 1) / nth;
    per = (per + k.nr - 1) / k.nr * k.nr;
    const int r0 = ith * per < rows ? ith * per : rows;
    const int r1 = r0 + per < rows ? r0 + per : rows;
    if (j->half) half_rows(j, k, stream, r0, r1);
    else if (plm_dtype_kquant(j->w->dtype)) kq_rows(j, &k, stream, r0, r1);
    else rows_run(j, k, stream, r0, r1);
}

// The weights of one plm_matmul_n call (same input): thread ith does its rows of each.
typedef struct {
    const matmul_job *jobs;
    int n;
} matmul_jobs;

static void matmul_worker(void *ctx, int ith, int nth) {
    const matmul_jobs *js = ctx;
    for (int i = 0; i < js->n; i++) matmul_rows(&js->jobs[i], ith, nth);
}

// ---- quantization: scalar reference ----

static size_t round_up64(size_t n) {
    return (n + 63) & ~(size_t)63;
}

// Rounding is to nearest even (lrintf, cvtps2dq), q is clamped to [-127, 127] (never -128, which
// the AVX2 sign trick needs), and q = round(x * (1/d)): each SIMD path gives the same bytes.
static void quantize_scalar(int8_t *q, float *d, const float *x, size_t n) {
    for (size_t b = 0; b < n / PLM_QK; b++) {
        const float *xb = x + b * PLM_QK;
        float amax = 0.0f;
        for (int i = 0; i < PLM_QK; i++) amax = fmaxf(amax, fabsf(xb[i]));
        const float db = amax / 127.0f;
        const float id = db != 0.0f ? 1.0f / db : 0.0f;
        d[b] = db;
        for (int i = 0; i < PLM_QK; i++)
            q[b * PLM_QK + i] = (int8_t)lrintf(fminf(fmaxf(xb[i] * id, -127.0f), 127.0f));
    }
}

// ---- scalar reference kernels ----

// f32_tile_scalar: out[t, r] = sum_k inp[t, k] * w[r, k], summed in k order in float.
static void f32_tile_scalar(const matmul_job *j, int t0, int mt, int r0, int nr) {
    const int C = j->w->cols, R = j->w->rows;
    for (int t = t0; t < t0 + mt; t++) {
        for (int r = r0; r < r0 + nr; r++) {
            const float *x = j->inp + (size_t)t * C, *w = j->w->f32 + (size_t)r * C;
            float acc = 0.0f;
            for (int k = 0; k < C; k++) acc += x[k] * w[k];
            j->out[(size_t)t * R + r] = acc;
        }
    }
}

// ---- Q8_0: the canonical order of matmul_kernels.h, one block at a time ----

// q8_dot_scalar: the exact int32 sum of the n products of xq and wq.
static int32_t q8_dot_scalar(const int8_t *xq, const int8_t *wq, int n) {
    int32_t p = 0;
    for (int i = 0; i < n; i++) p += (int32_t)xq[i] * wq[i];
    return p;
}

// q8_block2_scalar: block b (32 inputs xq, 32 weights wq) into the canonical sum acc, its first
// 16 products scaled by s0 and the last 16 by s1 (Q6_K's two sub-blocks of 16).
static float q8_block2_scalar(float acc, const int8_t *xq, const int8_t *wq, float s0, float s1) {
    const float m0 = (float)q8_dot_scalar(xq, wq, 16) * s0; // its own statement: never an FMA
    acc = acc + m0;
    const float m1 = (float)q8_dot_scalar(xq + 16, wq + 16, 16) * s1;
    return acc + m1;
}

// q8_block_scalar: block b (32 inputs xq, 32 weights wq, s = dw * dx) into the canonical sum acc.
static float q8_block_scalar(float acc, const int8_t *xq, const int8_t *wq, float s) {
    const float m = (float)q8_dot_scalar(xq, wq, PLM_QK) * s; // its own statement: never an FMA
    return acc + m;
}

// q8_tile_scalar: out[t, r] in the canonical order, one block at a time.
static void q8_tile_scalar(const matmul_job *j, int t0, int mt, int r0, int nr) {
    const int C = j->w->cols, R = j->w->rows, nb = C / PLM_QK;
    for (int t = t0; t < t0 + mt; t++) {
        for (int r = r0; r < r0 + nr; r++) {
            const int8_t *xq = j->xq + (size_t)t * C, *wq = j->w->q + (size_t)r * C;
            const float *xd = j->xd + (size_t)t * nb, *wd = j->w->d + (size_t)r * nb;
            float acc = 0;
            for (int b = 0; b < nb; b++)
                acc = q8_block_scalar(acc, xq + b * PLM_QK, wq + b * PLM_QK, wd[b] * xd[b]);
            j->out[(size_t)t * R + r] = acc;
        }
    }
}

// ---- Q4_0, Q4_1, Q5_0 and Q5_1: matmul_kernels.h's order ----

// q4_unpack: the 32 int8 weights k - plm_q4_offset of block blk (counted from row 0) of w: k the
// nibble and, Q5_x, plus 16 times its bit of qh.
static void q4_unpack(int8_t k[PLM_QK], const plm_mat *w, size_t blk) {
    const uint8_t *qs = w->q4 + blk * PLM_QK / 2;
    const uint32_t h = plm_dtype_high(w->dtype) ? w->qh[blk] : 0;
    const int off = plm_q4_offset(w->dtype);
    for (int i = 0; i < 16; i++) {
        k[i] = (int8_t)((qs[i] & 15) + (int)(h >> i & 1) * 16 - off);
        k[i + 16] = (int8_t)((qs[i] >> 4) + (int)(h >> (i + 16) & 1) * 16 - off);
    }
}

float plm_q4_m_sum(const float *m, const float *xs, int nb) {
    float acc[8] = {0};
    for (int b = 0; b < nb; b++) {
        const float p = m[b] * xs[b]; // its own statement: never contracted to an FMA
        acc[b % 8] = acc[b % 8] + p;
    }
    const float h0 = acc[0] + acc[4], h1 = acc[1] + acc[5], h2 = acc[2] + acc[6],
                h3 = acc[3] + acc[7];
    return (h0 + h2) + (h1 + h3);
}

// kq_scales8: the Q4_1 scales d and minimums m of the 8 blocks of a Q4_K/Q5_K super-block of d_sb
// ds, dmin_sb dm and 6-bit numbers s (8 sc, then 8 mn). m = -(dm * mn), but a NaN dm * mn stays
// itself (repack_k in quant.c); a finite dm never gives one, so that case is one branch-free loop,
// which the compiler vectorizes (at T = 1 these scales are a large share of a Q4_K matmul: x86 has
// its own, matmul_x86.c's kq_scales_avx2).
static inline void kq_scales8(float *restrict d, float *restrict m, float ds, float dm,
                              const uint8_t *restrict s) {
    if (isfinite(dm)) {
        for (int j = 0; j < 8; j++) {
            d[j] = ds * (float)s[j];
            m[j] = -(dm * (float)s[8 + j]);
        }
        return;
    }
    for (int j = 0; j < 8; j++) {
        const float ml = dm * (float)s[8 + j];
        d[j] = ds * (float)s[j];
        m[j] = isnan(ml) ? ml : -ml;
    }
}

void plm_kq_scales(float *restrict d, float *restrict m, const plm_mat *w, size_t sb, size_t n) {
    for (size_t s = 0; s < n; s++)
        kq_scales8(d + 8 * s, m + 8 * s, w->d[sb + s], w->m[sb + s], w->scm + 16 * (sb + s));
}

void plm_q4_block(float out[PLM_QK], const plm_mat *w, size_t blk) {
    int8_t k[PLM_QK];
    float d = 0, m = 0;
    q4_unpack(k, w, blk);
    if (plm_dtype_kquant(w->dtype)) {
        float d8[8], m8[8];
        plm_kq_scales(d8, m8, w, blk / 8, 1);
        d = d8[blk % 8], m = m8[blk % 8];
    } else {
        d = w->d[blk], m = plm_dtype_min(w->dtype) ? w->m[blk] : 0;
    }
    for (int i = 0; i < PLM_QK; i++) {
        const float x = (float)k[i] * d;
        out[i] = plm_dtype_min(w->dtype) ? x + m : x;
    }
}

// q4_tile_scalar: out[t, r] in the order of matmul_kernels.h, one block at a time.
static void q4_tile_scalar(const matmul_job *j, int t0, int mt, int r0, int nr) {
    const int C = j->w->cols, R = j->w->rows, nb = C / PLM_QK;
    for (int t = t0; t < t0 + mt; t++) {
        for (int r = r0; r < r0 + nr; r++) {
            const int8_t *xq = j->xq + (size_t)t * C;
            const float *xd = j->xd + (size_t)t * nb, *wd = j->w->d + (size_t)r * nb;
            float o = 0;
            for (int b = 0; b < nb; b++) {
                int8_t wq[PLM_QK];
                q4_unpack(wq, j->w, (size_t)r * nb + b);
                o = q8_block_scalar(o, xq + b * PLM_QK, wq, wd[b] * xd[b]);
            }
            if (plm_dtype_min(j->w->dtype))
                o = o + plm_q4_m_sum(j->w->m + (size_t)r * nb, j->xs + (size_t)t * nb, nb);
            j->out[(size_t)t * R + r] = o;
        }
    }
}

// ---- Q6_K: matmul_kernels.h's order ----

// q6k_unpack: the 32 weights q - 32 of block k (0..7) of the Q6_K super-block at sb, as gguf.c's
// dequant_q6_k (elements 128h + 32s + l, h = k / 4, s = k % 4).
static void q6k_unpack(int8_t w[PLM_QK], const uint8_t *sb, int k) {
    const int h = k / 4, s = k % 4;
    const uint8_t *ql = sb + 64 * h + 32 * (s % 2), *qh = sb + 128 + 32 * h;
    for (int l = 0; l < PLM_QK; l++)
        w[l] = (int8_t)(((ql[l] >> 4 * (s / 2) & 15) | (qh[l] >> 2 * s & 3) << 4) - 32);
}

void plm_q6k_block(float out[PLM_QK], const plm_mat *w, int32_t r, int b) {
    int8_t k[PLM_QK];
    float ds[2];
    q6k_unpack(k, plm_q6k_sb(w, r, b), b % 8);
    plm_q6k_scales(ds, w, r, b);
    for (int i = 0; i < PLM_QK; i++) out[i] = ds[i / 16] * (float)k[i];
}

// q6k_tile_scalar: out[t, r] in the order of matmul_kernels.h, one block at a time.
static void q6k_tile_scalar(const matmul_job *j, int t0, int mt, int r0, int nr) {
    const int C = j->w->cols, R = j->w->rows, nb = C / PLM_QK;
    for (int t = t0; t < t0 + mt; t++) {
        for (int r = r0; r < r0 + nr; r++) {
            const int8_t *xq = j->xq + (size_t)t * C;
            const float *xd = j->xd + (size_t)t * nb;
            float acc = 0;
            for (int b = 0; b < nb; b++) {
                int8_t wq[PLM_QK];
                float ds[2];
                q6k_unpack(wq, plm_q6k_sb(j->w, r, b), b % 8);
                plm_q6k_scales(ds, j->w, r, b);
                acc = q8_block2_scalar(acc, xq + b * PLM_QK, wq, ds[0] * xd[b], ds[1] * xd[b]);
            }
            j->out[(size_t)t * R + r] = acc;
        }
    }
}

// ---- dispatch ----

static const matmul_kernels kernels_scalar = {
    .f32 = {f32_tile_scalar, 1, 1, 1, NULL, NULL, 0, 0},
    .q8 = {q8_tile_scalar, 1, 1, 1, NULL, NULL, 0, 0},
    .q4 = {q4_tile_scalar, 1, 1, 1, NULL, NULL, 0, 0},
    .q6k = {q6k_tile_scalar, 1, 1, 1, NULL, NULL, 0, 0},
};

const matmul_kernels *plm_matmul_kernels(plm_isa isa) {
#if defined(__x86_64__)
    if (plm_isa_includes(isa, PLM_ISA_AMX)) return &plm_kernels_amx;
    if (plm_isa_includes(isa, PLM_ISA_AVX512)) return &plm_kernels_avx512;
    if (plm_isa_includes(isa, PLM_ISA_AVXVNNI))
        return plm_cpu_avxvnni_vex() ? &plm_kernels_avxvnni : &plm_kernels_avxvnni_evex;
    if (plm_isa_includes(isa, PLM_ISA_AVX2)) return &plm_kernels_avx2;
#endif
#if defined(__aarch64__)
    if (plm_isa_includes(isa, PLM_ISA_I8MM)) return &plm_kernels_i8mm;
    if (plm_isa_includes(isa, PLM_ISA_DOTPROD)) return &plm_kernels_dotprod;
    if (plm_isa_includes(isa, PLM_ISA_NEON)) return &plm_kernels_neon;
#endif
#if defined(__wasm_relaxed_simd__)
    if (plm_isa_includes(isa, PLM_ISA_RELAXED_DOT)) return &plm_kernels_relaxed_dot;
    if (plm_isa_includes(isa, PLM_ISA_RELAXED)) return &plm_kernels_relaxed;
#endif
#if defined(__wasm_simd128__)
    if (plm_isa_includes(isa, PLM_ISA_WASM)) return &plm_kernels_wasm;
#endif
    (void)isa;
    return &kernels_scalar;
}

// ---- public entry points ----

void plm_quantize_q8_0_isa(plm_isa isa, int8_t *q, float *d, const float *x, size_t n) {
    assert(n % PLM_QK == 0 && plm_isa_supported(isa));
    const matmul_kernels *k = plm_matmul_kernels(isa);
    (k->quantize ? k->quantize : quantize_scalar)(q, d, x, n);
}

void plm_quantize_q8_0(int8_t *q, float *d, const float *x, size_t n) {
    plm_quantize_q8_0_isa(plm_isa_active(), q, d, x, n);
}

size_t plm_mat_bytes(plm_dtype dtype, size_t rows, size_t cols) {
    const size_t e = rows * cols, nb = e / PLM_QK;
    switch (dtype) {
    case PLM_DTYPE_Q8_0: return e + nb * sizeof(float);
    case PLM_DTYPE_Q4_0: return e / 2 + nb * sizeof(float);
    case PLM_DTYPE_Q4_1: return e / 2 + 2 * nb * sizeof(float);
    case PLM_DTYPE_Q5_0: return e / 2 + nb * (sizeof(float) + sizeof(uint32_t));
    case PLM_DTYPE_Q5_1: return e / 2 + nb * (2 * sizeof(float) + sizeof(uint32_t));
    case PLM_DTYPE_Q6_K: return e / PLM_QK_K * (PLM_Q6K_QS + sizeof(float));
    case PLM_DTYPE_F16:
    case PLM_DTYPE_BF16: return e * sizeof(uint16_t);
    case PLM_DTYPE_Q4_K: return e / 2 + 2 * nb + e / PLM_QK_K * 2 * sizeof(float);
    case PLM_DTYPE_Q5_K:
        return e / 2 + nb * (2 + sizeof(uint32_t)) + e / PLM_QK_K * 2 * sizeof(float);
    default: return e * sizeof(float);
    }
}

void plm_half_to_f32(float *out, const uint16_t *h, size_t n, plm_dtype dtype) {
    if (dtype == PLM_DTYPE_BF16)
        for (size_t i = 0; i < n; i++) out[i] = plm_bf16_to_f32(h[i]);
    else
        for (size_t i = 0; i < n; i++) out[i] = plm_f16_to_f32(h[i]);
}

void plm_mat_row(float *out, const plm_mat *w, int32_t r) {
    const size_t C = (size_t)w->cols;
    if (w->dtype == PLM_DTYPE_F32) {
        memcpy(out, w->f32 + (size_t)r * C, C * sizeof(float));
        return;
    }
    if (w->dtype == PLM_DTYPE_Q6_K) {
        for (int b = 0; b < w->cols / PLM_QK; b++) plm_q6k_block(out + b * PLM_QK, w, r, b);
        return;
    }
    if (plm_dtype_half(w->dtype)) {
        plm_half_to_f32(out, w->h + (size_t)r * C, C, w->dtype);
        return;
    }
    if (w->dtype != PLM_DTYPE_Q8_0) { // gguf.c's dequant_q4_0 .. dequant_q5_1, dequant_q45_k
        const size_t b0 = (size_t)r * (C / PLM_QK);
        for (size_t b = 0; b < C / PLM_QK; b++) plm_q4_block(out + b * PLM_QK, w, b0 + b);
        return;
    }
    const int8_t *q = w->q + (size_t)r * C;
    const float *d = w->d + (size_t)r * (C / PLM_QK);
    for (size_t i = 0; i < C; i++) out[i] = (float)q[i] * d[i / PLM_QK];
}

size_t plm_matmul_scratch_bytes(int32_t T, int32_t cols) {
    const size_t n = (size_t)T * (size_t)cols, np = (size_t)(T + 15) / 16 * 16 * (size_t)cols;
    // xq, xd, xs, then xc (2 np + np / 8 bytes, matmul_kernels.h)
    return round_up64(n) + 2 * round_up64(n / PLM_QK * sizeof(float)) + round_up64(2 * np + np / 8);
}

// The inputs to quantize and pack: thread ith takes its tokens, PLM_PREPARE_TOKENS at a time.
typedef struct {
    const matmul_kernels *k;
    int8_t *xq;
    float *xd;
    float *xs;   // NULL unless a weight is Q4_1 or Q5_1
    int32_t *xc; // NULL without q8_prepare
    const float *inp;
    int32_t T, cols;
} quantize_job;

// block_sums: xs[t, b] = xd[t, b] * (the sum of block b of xq[t]) for n blocks (matmul_kernels.h).
static void block_sums(float *xs, const int8_t *xq, const float *xd, size_t n) {
    for (size_t b = 0; b < n; b++) {
        int32_t sum = 0;
        for (int i = 0; i < PLM_QK; i++) sum += xq[b * PLM_QK + i];
        xs[b] = xd[b] * (float)sum;
    }
}

static void quantize_worker(void *ctx, int ith, int nth) {
    const quantize_job *q = ctx;
    const int G = PLM_PREPARE_TOKENS, ng = (q->T + G - 1) / G;
    int t0 = G * (ng * ith / nth), t1 = G * (ng * (ith + 1) / nth);
    if (t1 > q->T) t1 = q->T;
    if (t0 >= t1) return;
    const size_t C = (size_t)q->cols;
    (q->k->quantize ? q->k->quantize
                    : quantize_scalar)(q->xq + (size_t)t0 * C, q->xd + (size_t)t0 * (C / PLM_QK),
                                       q->inp + (size_t)t0 * C, (size_t)(t1 - t0) * C);
    if (q->xc) q->k->q8_prepare(q->xc, q->xq, q->xd, q->T, q->cols, t0, t1);
    if (q->xs)
        block_sums(q->xs + (size_t)t0 * (C / PLM_QK), q->xq + (size_t)t0 * C,
                   q->xd + (size_t)t0 * (C / PLM_QK), (size_t)(t1 - t0) * (C / PLM_QK));
}

// has_tiles: whether t is set (an unset tile_kernel means the scalar reference's)
static int has_tiles(tile_kernel t) {
    return t.fn || t.rows;
}

// kernel_of: the tiles of path k for dtype, the scalar reference's when k has none.
static tile_kernel kernel_of(const matmul_kernels *k, plm_dtype dtype) {
    const tile_kernel t = dtype == PLM_DTYPE_F32    ? k->f32
                          : plm_dtype_half(dtype)   ? has_tiles(k->f16) ? k->f16 : k->f32
                          : dtype == PLM_DTYPE_Q8_0 ? k->q8
                          : dtype == PLM_DTYPE_Q6_K ? k->q6k
                                                    : k->q4;
    return has_tiles(t) ? t : kernel_of(&kernels_scalar, dtype);
}

// half_of: the converter the driver runs on F16/BF16 rows before path k's f32 tiles (half_rows):
// k's own, else the scalar one; NULL when dtype is not 16-bit or k's f16 tiles read it themselves.
static half_fn half_of(const matmul_kernels *k, plm_dtype dtype) {
    if (!plm_dtype_half(dtype) || has_tiles(k->f16)) return NULL;
    return k->half ? k->half : plm_half_to_f32;
}

// matmul_n: out_i = inp @ W_i^T for the n weights ws (same cols) on path isa.
static void matmul_n(plm_isa isa, plm_pool *pool, int n, float *const *outs, const float *inp,
                     const plm_mat *const *ws, int32_t T, void *scratch) {
    assert(n >= 1 && n <= PLM_MATMUL_MAX_N && plm_isa_supported(isa));
    const matmul_kernels *k = plm_matmul_kernels(isa);
    const plm_mat *w = ws[0];
    for (int i = 1; i < n; i++) // weights of several dtypes (a file's mix): one at a time
        if (ws[i]->dtype != w->dtype) {
            for (int h = 0; h < n; h++) matmul_n(isa, pool, 1, outs + h, inp, ws + h, T, scratch);
            return;
        }
    const int quant = w->dtype != PLM_DTYPE_F32 && !plm_dtype_half(w->dtype);
    matmul_job jobs[PLM_MATMUL_MAX_N];
    for (int i = 0; i < n; i++) {
        assert(ws[i]->cols == w->cols);
        jobs[i] = (matmul_job){.kernel = kernel_of(k, w->dtype),
                               .out = outs[i],
                               .inp = inp,
                               .w = ws[i],
                               .T = T,
                               .half = half_of(k, w->dtype),
                               .kq = !plm_dtype_kquant(w->dtype) ? NULL
                                     : k->kq_scales              ? k->kq_scales
                                                                 : plm_kq_scales};
    }
    if (quant) {
        assert(w->cols % PLM_QK == 0 && scratch != NULL);
        const size_t N = (size_t)T * (size_t)w->cols, nd = round_up64(N / PLM_QK * sizeof(float));
        quantize_job qj = {k,    scratch, (float *)(void *)((char *)scratch + round_up64(N)),
                           NULL, NULL,    inp,
                           T,    w->cols};
        if (plm_dtype_min(w->dtype)) qj.xs = (float *)(void *)((char *)qj.xd + nd);
        if (k->q8_prepare) qj.xc = (int32_t *)(void *)((char *)qj.xd + 2 * nd);
        if (N >= QUANTIZE_MT_VALUES) plm_pool_run(pool, quantize_worker, &qj);
        else quantize_worker(&qj, 0, 1);
        for (int i = 0; i < n; i++)
            jobs[i].xq = qj.xq, jobs[i].xd = qj.xd, jobs[i].xc = qj.xc, jobs[i].xs = qj.xs;
    }
    matmul_jobs js = {jobs, n};
    plm_pool_run(pool, matmul_worker, &js);
}

void plm_matmul_isa_run(plm_isa isa, plm_pool *pool, float *out, const float *inp, const plm_mat *w,
                        int32_t T, void *scratch) {
    matmul_n(isa, pool, 1, &out, inp, &w, T, scratch);
}

void plm_matmul(plm_pool *pool, float *out, const float *inp, const plm_mat *w, int32_t T,
                void *scratch) {
    matmul_n(plm_isa_active(), pool, 1, &out, inp, &w, T, scratch);
}

void plm_matmul_n(plm_pool *pool, int n, float *const *outs, const float *inp,
                  const plm_mat *const *ws, int32_t T, void *scratch) {
    matmul_n(plm_isa_active(), pool, n, outs, inp, ws, T, scratch);
}

void plm_matmul_ref(float *out, const float *inp, const plm_mat *w, int32_t T, void *scratch) {
    plm_matmul_isa_run(PLM_ISA_SCALAR, NULL, out, inp, w, T, scratch);
}
