// matmul_kernels.h: what a path's matmul kernels look like to the driver in matmul.c and
// matmul_backward.c (internal). Each instruction-set path fills one matmul_kernels table in its own
// file (matmul_x86.c, matmul_arm.c, matmul_wasm.c; amx: avx512's table with the AMX Q8_0 rows
// kernel of matmul_amx.c); matmul.c holds the scalar reference table and picks the table of the
// active path (cpu.h). A NULL entry means "the scalar reference".
//
// Q8_0: the canonical order (every path computes exactly this, so the bits match everywhere):
// out[t, r] = sum over blocks b of dw[r, b] * dx[t, b] * (q_w . q_x of block b), in float as:
//   P[b] = the exact int32 sum of the 32 products of block b
//   acc = +0;  for b = 0, 1, .. nb-1:
//       s = dw[r, b] * dx[t, b];  m = (float)P[b] * s;  acc = acc + m
//   out = acc
// Each step is a multiply then an add, two roundings, never an FMA: wasm SIMD128 has none, and the
// scalar path must match (-ffp-contract=off, in the Makefile's WARN, keeps the compiler from fusing
// the intrinsics' mul + add; test_matmul would catch it). Why this order: the integer part is
// exact however a path splits it (maddubs + madd, vpdpbusd, SDOT, i32x4.dot lanes summed in any
// order), so a block costs one convert, one multiply and one add whatever the vector width, and
// the float part is one chain per output. Paths that put tokens in vector lanes (prefill, batched
// steps) keep one int32 and one float register per (row, token group); paths that stream rows for
// one token (decode) compute several rows' P[b] at once and reduce them into one vector, a lane a
// row, by transposing adds, with the rows' scales in the same lanes. A path that pads a last odd
// block with zero weights and scales adds m = +-0 to an acc that is never -0 (it starts at +0), so
// the bits do not depend on the path, the tile, T or the thread count.
//
// Q4_0 and Q4_1 (the weights' nibbles k, 0..15, with block scales d and, Q4_1, minimums m): the
// inputs are quantized as for Q8_0 (xq, dx), and
// - Q4_0 (w = d (k - 8)) runs Q8_0's canonical order on the int8 weights k - 8 and the scales d:
//   the same bits as plm_matmul on the Q8_0 matrix {q = k - 8, d}, on every path;
// - Q4_1 (w = d k + m): out[t, r] = A + M, one add, where A is Q8_0's canonical order on the
//   weights k and the scales d, and M the minimums' term (llama.cpp's Q8_1 idea: the sums of the
//   inputs' blocks, per token, once per call):
//     xs[t, b] = dx[t, b] * (float)(the exact int sum of the 32 xq of block b)   (one rounding)
//     macc[8] = +0;  for b = 0, 1, .. nb-1:  p = m[r, b] * xs[t, b];  macc[b % 8] = macc[..] + p
//     h[i] = macc[i] + macc[i + 4],  M = (h[0] + h[2]) + (h[1] + h[3])
//   (a multiply then an add, as Q8_0; one 8-lane vector on x86, two on 128-bit paths; a padded
//   last vector adds +0 products to accumulators that are never -0).
// Q5_0 and Q5_1 (k = the nibble + 16 times the value's bit of qh, 0..31) are Q4_0 and Q4_1 with
// that k: Q5_0 (w = d (k - 16)) is Q8_0's canonical order on the int8 weights k - 16 and the scales
// d (the same bits as plm_matmul on the Q8_0 matrix {k - 16, d}); Q5_1 (w = d k + m) is A (Q8_0's
// order on k) + M (Q4_1's minimums' term, the same xs). Every Q4 kernel reads the high bits as one
// more step of its unpacking (an OR of 16 where the bit is set), so the code is the same.
// Q4_K and Q5_K (matmul.h: Q4_1/Q5_1 nibbles, 6-bit sc and mn a block, d and dmin a super-block)
// are Q4_1 and Q5_1 with the block's d = d_sb * sc and m = -(dmin_sb * mn) (exact): no kernel of
// their own; matmul.c's driver computes those for a few rows at a time (the table's kq_scales,
// else plm_kq_scales: the same bits) and runs the table's q4 kernels on them as a Q4_1/Q5_1
// matrix, so every path gives the bits of the exact repack into Q4_1/Q5_1.
// Q6_K (super-blocks of 256: 6-bit q and int8 sub-block scales sc per 16, an f32 d per 256): the
// inputs are quantized as for Q8_0 (xq, dx), and Q8_0's canonical order runs on the int8 weights
// q - 32 with a scale per half-block instead of per block: each block b is two steps, its halves
// h = 0, 1 (elements 16h .. 16h+15, sub-block 2b + h) in order, each
//   P = the exact int32 sum of the half's 16 products;  s = fl(ds * dx[t, b]);  m = (float)P * s;
//   acc = acc + m
// with ds = d * sc of that sub-block (exact in f32: an f16 times an int8). Every path unpacks a
// block by and/shift/or (x86: a half super-block at a time, in matmul_q6k_x86.c; arm64 and wasm in
// their files' quantized-weights sections).
// The x86 kernels (matmul_q4_x86.c) unpack panels of rows into Q8_0 form for prefill and run the
// table's q8 rows kernel on them: a q8 rows function reads only the rows [r0, r1) of j->w, and
// uses j->w->rows only as the row stride of out.
//
// f32: each path has its own order (vector width, FMA), so f32 paths agree within rounding; within
// a path out[t, r] is computed the same way whatever the tile, T or thread count. The x86 paths'
// packed GEMM and their matrix-vector kernel both compute, whichever vector lane or tile holds
// the element: per chunk of 64 columns of k an FMA chain in k order from +0 (acc = fma(x[t, k],
// w[r, k], acc)), the chunks' results added in order to a total from +0.
//
// F16 and BF16: f16 -> f32 and bf16 -> f32 are exact, so a 16-bit matrix's result is defined as the
// path's f32 kernels on the converted weights. x86 (the f16 tiles): the f32 rows kernel converts
// as it loads, in its pack (prefill) and its matrix-vector kernel (decode), so decode streams half
// the bytes. Elsewhere the driver (matmul.c) converts a thread's rows a chunk at a time with the
// table's half converter (into a thread-local buffer that stays in L2) and runs the path's f32
// tiles on the chunk: since an f32 kernel's out[t, r] does not depend on the tile, the rows of a
// call or T, the bits are those of the path on the f32 matrix either way. The backward's input
// gradient goes through f32 slices (matmul_backward.c), converted by half. Conversions: x86
// vcvtph2ps (F16C), arm64 fcvtl, wasm integer bit operations; bf16 a shift by 16 everywhere. Every converter gives plm_half_to_f32's bits, except that a signalling NaN may come
// out quiet (vcvtph2ps, fcvtl): a NaN stays a NaN of the same sign.
#ifndef PLM_MATMUL_KERNELS_H
#define PLM_MATMUL_KERNELS_H

#include "cpu.h"
#include "matmul.h"

typedef struct matmul_job matmul_job;

#define PLM_PREPARE_TOKENS 16 // q8_prepare's ranges start at multiples of this (a token group)

#define PLM_DINP_NC 32 // input gradient: columns per tile (one Q8_0 block)
#define PLM_DINP_RB                                                                                \
    256 // weight rows per block: a (RB, NC) slice of W stays in cache for all tokens

// A tile kernel writes out[t0 .. t0+mt, r0 .. r0+nr]; the driver calls it only with
// (mt, nr) in {(MT, NR), (1, NR), (MT, 1), (1, 1)} for the kernel's MT and NR, or, below
// max(MT, stream_t) tokens, with (T, DNR) and (T, 1) from t0 = 0 when stream_t is set, else
// (1, DNR) and (1, 1).
typedef void (*tile_fn)(const matmul_job *j, int t0, int mt, int r0, int nr);
// A warm function starts the memory reads of rows r0..r1 before decode's first tile (whose own
// prefetches only reach rows ahead of it).
typedef void (*warm_fn)(const matmul_job *j, int r0, int r1);
// A rows function writes out[0 .. T, r0 .. r1) in one call: a path whose kernels pack the weights
// (a GEMM micro-kernel wants W^T panels, not rows) blocks, packs and picks its decode kernel itself.
typedef void (*rows_fn)(const matmul_job *j, int r0, int r1);
// A half function converts n F16 or BF16 (dtype) values h to f32 (plm_half_to_f32's bits).
typedef void (*half_fn)(float *out, const uint16_t *h, size_t n, plm_dtype dtype);
// A kq function computes plm_kq_scales (matmul.h): the same bits.
typedef void (*kq_fn)(float *restrict d, float *restrict m, const plm_mat *w, size_t sb, size_t n);

typedef struct {
    tile_fn fn;
    int mt, nr;   // tile: tokens x rows
    int dnr;      // rows of a tile when T < mt (decode): 1 keeps the weights one sequential stream
    warm_fn warm; // called once per thread when T < mt; NULL: none
    rows_fn rows; // when set and T >= rows_t, the driver only splits rows (multiples of nr) and
    int rows_t;   // calls it; below rows_t tokens it runs the tiles of fn
    int stream_t; // below max(mt, stream_t) tokens the tiles have dnr rows and warm runs (0: mt)
} tile_kernel;

struct matmul_job {
    tile_kernel kernel;
    float *out;        // (T, rows)
    const float *inp;  // (T, cols) f32 inputs, for F32 weights
    const int8_t *xq;  // (T, cols) quantized inputs, for Q8_0 weights
    const float *xd;   // (T, cols / PLM_QK) their block scales
    const int32_t *xc; // from the table's q8_prepare, when it has one (its layout is the table's)
    const float *xs;   // (T, cols / PLM_QK) dx times the sum of each block of xq, for Q4_1 weights
    // F16/BF16 weights that the kernel does not read itself: the table's half, else NULL
    half_fn half;
    kq_fn kq;         // Q4_K/Q5_K weights: the table's kq_scales, else plm_kq_scales (else NULL)
    const plm_mat *w; // (rows, cols)
    int T;
};

typedef struct {
    tile_kernel f32, q8; // forward tiles
    tile_kernel q4;      // Q4_0, Q4_1, Q5_0 and Q5_1 weights (the kernels read w->dtype)
    tile_kernel q6k;     // Q6_K weights
    // f16: F16 and BF16 weights read by the kernels themselves (x86: the f32 rows kernel, which
    // converts them as it loads); unset: the f32 kernels on rows that the driver converts by half
    tile_kernel f16;
    // half: plm_half_to_f32 (matmul.h) for F16 or BF16 (dtype) weights; NULL: the scalar one
    half_fn half;
    // kq_scales: plm_kq_scales, for the driver's Q4_K/Q5_K rows; NULL: plm_kq_scales itself
    kq_fn kq_scales;
    // quantize: quantize_scalar's bytes for x (n) -> q (n), d (n / PLM_QK)
    void (*quantize)(int8_t *q, float *d, const float *x, size_t n);
    // q8_prepare: the part of xc for tokens [t0, t1) from xq (T, C) and xd (T, C / 32), computed
    // once per call before the q8 kernels run; t0 is a multiple of PLM_PREPARE_TOKENS and t1 one
    // or T, and the parts of different ranges do not overlap (each thread prepares its own); xc
    // has room for 2 n + n / 8 bytes, n = C * (T rounded up to 16) (wasm: two n-byte planes and
    // each 4 tokens' scales transposed, its layout depending on T (matmul_wasm.c); x86:
    // matmul_x86.c's token groups)
    void (*q8_prepare)(int32_t *xc, const int8_t *xq, const float *xd, int T, int C, int t0,
                       int t1);
    // dinp_tiles: dinp[t, c0 .. c0+n) += sum over r in [r0, r1) of dout[t, r] * W[r, c0 .. c0+n)
    // for t in [0, T), n <= PLM_DINP_NC, r1 - r0 <= PLM_DINP_RB; per element the sum runs over r
    // in order from zero, then is added to dinp (see matmul_backward.c)
    void (*dinp_tiles)(float *dinp, const float *dout, const plm_mat *w, int32_t T, int32_t r0,
                       int32_t r1, int32_t c0, int32_t n);
    // dw_rows: rows [r0, r1) of dw (rows, cols) += dout^T (rows, T) @ inp (T, cols), each element
    // summing tokens in order
    void (*dw_rows)(float *dw, const float *dout, const float *inp, int32_t T, int32_t rows,
                    int32_t cols, int32_t r0, int32_t r1);
} matmul_kernels;

// plm_dw_rows_generic: dw_rows as plain C whose inner loop over columns vectorizes; each element
// sums the tokens in order whatever the vector width, so every path that compiles it for its own
// width (with a target attribute) gives the same bits.
PLM_INLINE void plm_dw_rows_generic(float *dw, const float *dout, const float *inp, int32_t T,
                                    int32_t rows, int32_t cols, int32_t r0, int32_t r1) {
    for (int32_t r = r0; r < r1; r++) {
        float *o = dw + (size_t)r * cols;
        for (int32_t t = 0; t < T; t++) {
            const float a = dout[(size_t)t * rows + r];
            const float *x = inp + (size_t)t * cols;
            for (int32_t c = 0; c < cols; c++) o[c] += a * x[c];
        }
    }
}

// plm_q4_m_sum: Q4_1's (and Q5_1's) minimums' term M (above) of one row's m (nb) and one token's
// xs (nb), in the canonical order (the scalar reference, and the tails of the SIMD paths' rows).
float plm_q4_m_sum(const float *m, const float *xs, int nb);

// plm_q6k_sb: the in-memory Q6_K super-block (PLM_Q6K_QS bytes) of row r holding block b (of 32).
PLM_INLINE const uint8_t *plm_q6k_sb(const plm_mat *w, int32_t r, int b) {
    return w->q6 + ((size_t)r * (size_t)(w->cols / PLM_QK_K) + (size_t)b / 8) * PLM_Q6K_QS;
}

// plm_q6k_scales: ds = d * sc (exact) of the two sub-blocks of 16 of block b of row r.
PLM_INLINE void plm_q6k_scales(float ds[2], const plm_mat *w, int32_t r, int b) {
    const int8_t *sc = (const int8_t *)plm_q6k_sb(w, r, b) + 192 + 2 * (b % 8);
    const float d = w->d[(size_t)r * (size_t)(w->cols / PLM_QK_K) + (size_t)b / 8];
    ds[0] = d * (float)sc[0], ds[1] = d * (float)sc[1];
}

// plm_q6k_block: block b (of 32 values) of row r of Q6_K matrix w as f32, as gguf.c's
// dequant_q6_k bit for bit (plm_mat_row, the backward's row slices).
void plm_q6k_block(float out[PLM_QK], const plm_mat *w, int32_t r, int b);

// plm_matmul_kernels: the table of the widest path that isa includes (the scalar one at least).
const matmul_kernels *plm_matmul_kernels(plm_isa isa);

// The tables of each file, for plm_matmul_kernels. Declared for the architecture being compiled.
#if defined(__x86_64__)
extern const matmul_kernels plm_kernels_avx2, plm_kernels_avx512, plm_kernels_amx;
// avxvnni: VEX (AVX-VNNI) and EVEX (AVX512_VNNI + VL) twins of one source; cpu.c's choice
extern const matmul_kernels plm_kernels_avxvnni, plm_kernels_avxvnni_evex;
// the Q4 rows kernels of matmul_q4_x86.c, one for each of those tables (its Q8_0 rows kernel)
void plm_q4_rows_avx2(const matmul_job *j, int r0, int r1);
void plm_q4_rows_avx512(const matmul_job *j, int r0, int r1);
void plm_q4_rows_avxvnni(const matmul_job *j, int r0, int r1);
void plm_q4_rows_avxvnni_evex(const matmul_job *j, int r0, int r1);
void plm_q4_rows_amx(const matmul_job *j, int r0, int r1);
// the amx path's Q8_0 rows kernel (matmul_amx.c), from PLM_AMX_ROWS_T tokens, on the groups of 16
// tokens that matmul_x86.c's q8_prepare_amx lays out (plm_lane_group_bytes(C, 16, 1) bytes each)
#define PLM_AMX_ROWS_T 4
void plm_q8_rows_amx(const matmul_job *j, int r0, int r1);
// up to PLM_AMX_PAIRS_T tokens its inputs are pairs of blocks instead (plm_q8_pairs_amx, its layout)
#define PLM_AMX_PAIRS_T 8
void plm_q8_pairs_amx(int32_t *xc, const int8_t *xq, const float *xd, int T, int C);
// plm_lane_group_bytes: the bytes in xc of one group of G tokens with planes planes of inputs
// (matmul_x86.c: the inputs, G bytes for each column and plane, then the scales dx, G per block)
PLM_INLINE size_t plm_lane_group_bytes(int C, int G, int planes) {
    return (size_t)(G * planes) * (size_t)C + (size_t)(C / PLM_QK) * (size_t)G * sizeof(float);
}
// the Q6_K rows kernel of matmul_q6k_x86.c (AVX2 code), in every x86 table
void plm_q6k_rows_avx2(const matmul_job *j, int r0, int r1);
#endif
#if defined(__aarch64__)
extern const matmul_kernels plm_kernels_neon, plm_kernels_dotprod, plm_kernels_i8mm;
#endif
#if defined(__wasm_simd128__)
extern const matmul_kernels plm_kernels_wasm;
#endif
#if defined(__wasm_relaxed_simd__)
extern const matmul_kernels plm_kernels_relaxed, plm_kernels_relaxed_dot;
#endif

#endif
