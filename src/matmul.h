// matmul.h: the hot loops. out = inp @ W^T for W in HF layout (out_features, in_features), as f32,
// as 8-bit blocks (Q8_0 style: 32 int8 per block, one f32 scale per block), as 4-bit blocks
// (GGUF's Q4_0 and Q4_1: 32 nibbles per block, one f32 scale, and for Q4_1 a minimum), as 5-bit
// ones (GGUF's Q5_0 and Q5_1: Q4_x's nibbles and one more bit per value), as GGUF's Q6_K
// super-blocks (256 6-bit values, an int8 scale per 16, one f32 scale), as Q4_K/Q5_K ones (8
// blocks of Q4_1/Q5_1 nibbles, 6-bit scales and minimums, one f32 scale and minimum), or as
// 16-bit floats (F16, BF16: each path's f32 kernels on the weights converted, exactly, a few rows
// at a time; the same bits as that path on the f32 matrix of those values). Each kernel has a
// scalar reference beside its SIMD paths (one per instruction-set path of cpu.h, chosen at run
// time; the kernels themselves are in matmul_x86.c, matmul_arm.c, matmul_wasm.c); the reference is
// what tests compare against. Every output element is computed by one thread in a fixed order, so
// results are bit-identical for any number of threads.
#ifndef PLM_MATMUL_H
#define PLM_MATMUL_H

#include <stddef.h>
#include <stdint.h>

#include "cpu.h"
#include "pocketlm.h"
#include "pool.h"

#define PLM_QK            32  // values per Q8_0 block
#define PLM_QK_K          256 // values per Q6_K super-block
#define PLM_Q6K_QS        208 // bytes of a Q6_K super-block in memory: ql[128], qh[64], int8 scales[16]
#define PLM_HALF_MAX_COLS (64 << 10) // F16/BF16 matrices: cols at most (the driver converts rows)

// A weight matrix in memory. rows = out_features, cols = in_features (a multiple of PLM_QK when
// quantized). Q4_x and Q5_x keep GGUF's nibbles (and Q5_x's high bits) as they are (copied at
// load) and the f16 scales and minimums as f32 (exact) in arrays of their own: w = d * (k - 8)
// (Q4_0), d * (k - 16) (Q5_0), fl(fl(k * d) + m) (Q4_1, Q5_1: two roundings as gguf.c and ggml
// dequantize), k the nibble, or for Q5_x the nibble plus 16 times the value's bit of qh. Q6_K
// (cols a multiple of PLM_QK_K) keeps a GGUF super-block's first 208 bytes as they are and its f16
// d as f32 in d: w = fl(d * sc) * (q - 32) (d * sc exact), q the 6 bits of gguf.c's dequant_q6_k.
// Q4_K and Q5_K (cols a multiple of PLM_QK_K, at most PLM_KQ_MAX_COLS) keep their nibbles (and
// Q5_K's high bits) in Q4_1's (Q5_1's) layout, each block's two 6-bit numbers sc and mn as bytes
// and the super-block's f16 d and dmin as f32: 4.75 (5.75) bits a weight. Block b is the Q4_1
// (Q5_1) block of d' = d * sc and m' = -(dmin * mn) (plm_kq_scales; both exact), which is how the
// kernels see it (matmul.c's driver turns the scales of a few rows at a time into a Q4_1 matrix).
typedef struct {
    plm_dtype dtype;    // PLM_DTYPE_F32, _F16, _BF16, _Q8_0, _Q4_0, _Q4_1, _Q5_0, _Q5_1, _Q6_K,
                        // _Q4_K or _Q5_K
    int32_t rows, cols; // (out_features, in_features)
    float *f32;         // (rows, cols) when F32
    uint16_t *h;        // (rows, cols) when F16 or BF16: IEEE half or bfloat16 bits
    int8_t *q;          // (rows, cols) when Q8_0
    float *d;           // (rows, cols / PLM_QK) block scales when quantized: w = q * d for Q8_0;
                        // Q6_K, Q4_K, Q5_K: (rows, cols / PLM_QK_K) super-block scales
    uint8_t *q4;        // (rows, cols / 2) when Q4_x: per block 16 bytes, byte i holding element i
                        // in its low nibble and element i + 16 in its high one (GGUF's qs);
                        // also when Q5_x, for the values' low 4 bits
    float *m;           // (rows, cols / PLM_QK) block minimums when Q4_1 or Q5_1; Q4_K, Q5_K:
                        // (rows, cols / PLM_QK_K) super-block dmin
    uint32_t *qh;       // (rows, cols / PLM_QK) when Q5_x, Q5_K: bit i is bit 4 of element i
    uint8_t *q6;        // (rows, cols / PLM_QK_K * PLM_Q6K_QS) when Q6_K (GGUF's ql, qh, scales)
    uint8_t *scm;       // (rows, cols / PLM_QK_K, 16) when Q4_K, Q5_K: a super-block's 8 sc, 8 mn
} plm_mat;

// plm_dtype_half: dtype keeps its weights in h (F16, BF16).
PLM_INLINE int plm_dtype_half(plm_dtype t) {
    return t == PLM_DTYPE_F16 || t == PLM_DTYPE_BF16;
}
#define PLM_KQ_MAX_COLS 16384 // Q4_K/Q5_K kept as such up to this many columns (else as Q4_1/Q5_1)

// plm_dtype_kquant: dtype is Q4_K or Q5_K.
PLM_INLINE int plm_dtype_kquant(plm_dtype t) {
    return t == PLM_DTYPE_Q4_K || t == PLM_DTYPE_Q5_K;
}
// plm_dtype_nibbles: dtype keeps its weights in q4 (Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K).
PLM_INLINE int plm_dtype_nibbles(plm_dtype t) {
    return t == PLM_DTYPE_Q4_0 || t == PLM_DTYPE_Q4_1 || t == PLM_DTYPE_Q5_0 ||
           t == PLM_DTYPE_Q5_1 || plm_dtype_kquant(t);
}
// plm_dtype_min: dtype has minimums m (Q4_1, Q5_1, Q4_K, Q5_K).
PLM_INLINE int plm_dtype_min(plm_dtype t) {
    return t == PLM_DTYPE_Q4_1 || t == PLM_DTYPE_Q5_1 || plm_dtype_kquant(t);
}
// plm_dtype_high: dtype has high bits qh (Q5_0, Q5_1, Q5_K).
PLM_INLINE int plm_dtype_high(plm_dtype t) {
    return t == PLM_DTYPE_Q5_0 || t == PLM_DTYPE_Q5_1 || t == PLM_DTYPE_Q5_K;
}
// plm_kq_blocks: the dtype whose blocks a Q4_K (Q5_K) matrix's are: Q4_1 (Q5_1).
PLM_INLINE plm_dtype plm_kq_blocks(plm_dtype t) {
    return t == PLM_DTYPE_Q4_K ? PLM_DTYPE_Q4_1 : PLM_DTYPE_Q5_1;
}
// plm_q4_offset: what w = d * (k - offset) subtracts from the 4/5-bit value k: 8 (Q4_0), 16
// (Q5_0), 0 (Q4_1, Q5_1: their minimums instead).
PLM_INLINE int plm_q4_offset(plm_dtype t) {
    return t == PLM_DTYPE_Q4_0 ? 8 : t == PLM_DTYPE_Q5_0 ? 16 : 0;
}

// plm_mat_bytes: bytes of a (rows, cols) matrix of dtype (F32, F16, BF16, Q8_0, Q4_x, Q5_x, Q6_K,
// Q4_K, Q5_K) in memory.
size_t plm_mat_bytes(plm_dtype dtype, size_t rows, size_t cols);

// plm_quantize_q8_0: x (n) -> q (n), d (n / PLM_QK); d = max|x| / 127 per block, q = round(x / d).
void plm_quantize_q8_0(int8_t *q, float *d, const float *x, size_t n);
// plm_mat_row: row r of w as f32 into out (cols); Q4_x, Q5_x, Q6_K, Q4_K, Q5_K as GGUF's
// dequantization, bit for bit; F16 and BF16 exactly (plm_half_to_f32).
void plm_mat_row(float *out, const plm_mat *w, int32_t r);
// plm_q4_block: block blk (of 32 values, counted from row 0) of w (Q4_x, Q5_x, Q4_K, Q5_K) as f32,
// as plm_mat_row.
void plm_q4_block(float out[PLM_QK], const plm_mat *w, size_t blk);
// plm_kq_scales: Q4_K/Q5_K w's super-blocks [sb, sb + n) (counted from row 0) as the Q4_1 scales d
// and minimums m of their 8 n blocks: d = d_sb * sc, m = -(dmin_sb * mn) (a NaN kept as it is:
// quant.c's repack_k), both exact in f32.
void plm_kq_scales(float *restrict d, float *restrict m, const plm_mat *w, size_t sb, size_t n);

// plm_half_to_f32: n F16 or BF16 (dtype) values h as f32 into out: exact (f16: subnormals, inf
// and NaN payloads too, as plm_f16_to_f32; bf16: the bits shifted up 16). The scalar reference of
// every path's converter (matmul_kernels.h's f16).
void plm_half_to_f32(float *out, const uint16_t *h, size_t n, plm_dtype dtype);

// plm_matmul_scratch_bytes: bytes of scratch that plm_matmul needs for T rows of cols inputs.
size_t plm_matmul_scratch_bytes(int32_t T, int32_t cols);

// plm_matmul: out (T, w->rows) = inp (T, w->cols) @ W^T, split over pool's threads.
// scratch holds plm_matmul_scratch_bytes(T, w->cols) bytes, 64-byte aligned (quantized inputs).
void plm_matmul(plm_pool *pool, float *out, const float *inp, const plm_mat *w, int32_t T,
                void *scratch);

// plm_matmul_n: outs[i] (T, ws[i]->rows) = inp (T, cols) @ W_i^T for n <= PLM_MATMUL_MAX_N weights
// of the same cols (q, k and v; gate and up): the same bits as n plm_matmul calls; weights of one
// dtype run with the input quantized once and one start of the threads.
#define PLM_MATMUL_MAX_N 3
void plm_matmul_n(plm_pool *pool, int n, float *const *outs, const float *inp,
                  const plm_mat *const *ws, int32_t T, void *scratch);

// plm_matmul_ref: the scalar reference of plm_matmul, single-threaded, same numerics contract.
void plm_matmul_ref(float *out, const float *inp, const plm_mat *w, int32_t T, void *scratch);

// ---- backward (training): both accumulate, and split their outputs over threads ----

// plm_matmul_backward_input: dinp (T, w->cols) += dout (T, w->rows) @ W, the gradient of
// plm_matmul's input. Threads own column slices of dinp; each element sums rows in order.
void plm_matmul_backward_input(plm_pool *pool, float *dinp, const float *dout, const plm_mat *w,
                               int32_t T, void *scratch);
// plm_matmul_backward_weight: dw (rows, cols) += dout^T (rows, T) @ inp (T, cols), the gradient of
// an f32 weight. Threads own rows of dw; each element sums tokens in order.
void plm_matmul_backward_weight(plm_pool *pool, float *dw, const float *dout, const float *inp,
                                int32_t T, int32_t rows, int32_t cols);

// ---- paths (cpu.h): plm_matmul and the backward run on plm_isa_active(); tests force each ----

// plm_matmul_isa_run: plm_matmul on path isa (the widest kernels that isa includes; it must be
// supported). Any path gives bit-identical results for any pool size; Q8_0 gives the same bits on
// every path, f32 paths agree within float rounding.
void plm_matmul_isa_run(plm_isa isa, plm_pool *pool, float *out, const float *inp, const plm_mat *w,
                        int32_t T, void *scratch);
// plm_matmul_backward_input_isa, plm_matmul_backward_weight_isa: the backward on path isa.
void plm_matmul_backward_input_isa(plm_isa isa, plm_pool *pool, float *dinp, const float *dout,
                                   const plm_mat *w, int32_t T);
void plm_matmul_backward_weight_isa(plm_isa isa, plm_pool *pool, float *dw, const float *dout,
                                    const float *inp, int32_t T, int32_t rows, int32_t cols);
// plm_quantize_q8_0_isa: plm_quantize_q8_0 on path isa; every path gives identical bytes.
void plm_quantize_q8_0_isa(plm_isa isa, int8_t *q, float *d, const float *x, size_t n);

#endif
