// matmul_wasm.c: the wasm paths of matmul_kernels.h: SIMD128 (a module built with -msimd128) and
// relaxed SIMD (built with -msimd128 -mrelaxed-simd, then patched by scripts/wasm_relaxed.mjs; see
// the relaxed section below).
#include <math.h>
#include <string.h>

#include "matmul_kernels.h"

#if defined(__wasm_simd128__)
#include <wasm_simd128.h>

// ---- wasm SIMD128 ----

// hsum_wasm: (lane 0 + lane 1) + (lane 2 + lane 3).
PLM_INLINE float hsum_wasm(v128_t v) {
    return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) +
           (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
}

// load4_wasm: n (1..4) floats, zero-padded to a vector.
PLM_INLINE v128_t load4_wasm(const float *p, int n) {
    if (n == 4) return wasm_v128_load(p);
    float tmp[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    memcpy(tmp, p, (size_t)n * sizeof(float));
    return wasm_v128_load(tmp);
}

// f32_block_wasm: 4-lane accumulator per (t, r), mul then add (SIMD128 has no fused FMA); the
// tail is a zero-padded vector.
PLM_INLINE void f32_block_wasm(const matmul_job *j, int t0, int mt, int r0, int nr) {
    const int C = j->w->cols, R = j->w->rows;
    const float *x = j->inp + (size_t)t0 * C;    // (mt, C)
    const float *w = j->w->f32 + (size_t)r0 * C; // (nr, C)
    v128_t acc[2][4];
    for (int t = 0; t < mt; t++)
        for (int r = 0; r < nr; r++) acc[t][r] = wasm_f32x4_splat(0.0f);
    for (int k = 0; k < C; k += 4) {
        const int n = C - k >= 4 ? 4 : C - k;
        v128_t wv[4];
        for (int r = 0; r < nr; r++) wv[r] = load4_wasm(w + (size_t)r * C + k, n);
        for (int t = 0; t < mt; t++) {
            const v128_t xv = load4_wasm(x + (size_t)t * C + k, n);
            for (int r = 0; r < nr; r++)
                acc[t][r] = wasm_f32x4_add(acc[t][r], wasm_f32x4_mul(xv, wv[r]));
        }
    }
    for (int t = 0; t < mt; t++)
        for (int r = 0; r < nr; r++) j->out[(size_t)(t0 + t) * R + r0 + r] = hsum_wasm(acc[t][r]);
}

static void f32_tile_wasm(const matmul_job *j, int t0, int mt, int r0, int nr) {
    if (mt == 2 && nr == 4) f32_block_wasm(j, t0, 2, r0, 4);
    else if (mt == 2) f32_block_wasm(j, t0, 2, r0, 1);
    else if (nr == 4) f32_block_wasm(j, t0, 1, r0, 4);
    else f32_block_wasm(j, t0, 1, r0, 1);
}

// Q8_0 on SIMD128: 16 canonical accumulators are four vectors per output: lanes 0-3 and 4-7 of
// even blocks, of odd blocks. i32x4_dot_i16x8 adds pairs of adjacent i16, so the canonical lanes
// (sums of 4 adjacent bytes) come from splitting 16 bytes into their even and odd bytes, sign-
// extended to i16 (shl 8 then shr 8; shr 8): lane l of dot(even) + dot(odd) is bytes 4l .. 4l+3.
typedef struct {
    v128_t e0, e1, o0, o1; // accumulators 0-3, 4-7 (even blocks), 8-11, 12-15 (odd blocks)
} q8_acc_wasm;

// q8_split_wasm: the 16 bytes at p as even bytes (*ev) and odd bytes (*od), each as i16x8.
PLM_INLINE void q8_split_wasm(v128_t *ev, v128_t *od, const int8_t *p) {
    const v128_t v = wasm_v128_load(p);
    *ev = wasm_i16x8_shr(wasm_i16x8_shl(v, 8), 8);
    *od = wasm_i16x8_shr(v, 8);
}

// q8_step_wasm: *a0 (lanes 0-3), *a1 (4-7) += float(lanes of block w . x) * s, as mul then add;
// x is the block's inputs split by q8_split_wasm: x[0], x[1] bytes 0-15, x[2], x[3] bytes 16-31.
PLM_INLINE void q8_step_wasm(v128_t *a0, v128_t *a1, const v128_t x[4], const int8_t *w, float s) {
    v128_t we, wo;
    q8_split_wasm(&we, &wo, w);
    const v128_t p0 =
        wasm_i32x4_add(wasm_i32x4_dot_i16x8(x[0], we), wasm_i32x4_dot_i16x8(x[1], wo));
    q8_split_wasm(&we, &wo, w + 16);
    const v128_t p1 =
        wasm_i32x4_add(wasm_i32x4_dot_i16x8(x[2], we), wasm_i32x4_dot_i16x8(x[3], wo));
    const v128_t sv = wasm_f32x4_splat(s);
    *a0 = wasm_f32x4_add(*a0, wasm_f32x4_mul(wasm_f32x4_convert_i32x4(p0), sv));
    *a1 = wasm_f32x4_add(*a1, wasm_f32x4_mul(wasm_f32x4_convert_i32x4(p1), sv));
}

// q8_sum_wasm: the canonical end sum: h = (e0 + o0 | e1 + o1), then h0-3 + h4-7, then
// (lane 0 + lane 2) + (lane 1 + lane 3).
PLM_INLINE float q8_sum_wasm(q8_acc_wasm a) {
    const v128_t h = wasm_f32x4_add(wasm_f32x4_add(a.e0, a.o0), wasm_f32x4_add(a.e1, a.o1));
    return (wasm_f32x4_extract_lane(h, 0) + wasm_f32x4_extract_lane(h, 2)) +
           (wasm_f32x4_extract_lane(h, 1) + wasm_f32x4_extract_lane(h, 3));
}

// q8_rows_wasm: block b (odd: into the odd accumulators) of one token into nr rows (1..4).
PLM_INLINE void q8_rows_wasm(q8_acc_wasm a[4], const matmul_job *j, int t0, int r0, int nr, int b,
                             int odd) {
    const int C = j->w->cols, nb = C / PLM_QK;
    const int8_t *xq = j->xq + (size_t)t0 * C + b * PLM_QK;          // (32)
    const int8_t *w = j->w->q + (size_t)r0 * C + b * PLM_QK;          // (nr, C) from block b
    const float dx = j->xd[(size_t)t0 * nb + b], *wd = j->w->d + (size_t)r0 * nb + b;
    v128_t x[4];
    q8_split_wasm(&x[0], &x[1], xq);
    q8_split_wasm(&x[2], &x[3], xq + 16);
    for (int r = 0; r < nr; r++) {
        v128_t *a0 = odd ? &a[r].o0 : &a[r].e0, *a1 = odd ? &a[r].o1 : &a[r].e1;
        q8_step_wasm(a0, a1, x, w + (size_t)r * C, wd[(size_t)r * nb] * dx);
    }
}

// q8_block_wasm: one token times nr rows, two blocks (even, odd) per step, in the canonical order.
PLM_INLINE void q8_block_wasm(const matmul_job *j, int t0, int r0, int nr) {
    const int nb = j->w->cols / PLM_QK;
    const v128_t z = wasm_f32x4_splat(0.0f);
    q8_acc_wasm a[4];
    for (int r = 0; r < nr; r++) a[r] = (q8_acc_wasm){z, z, z, z};
    int b = 0;
    for (; b + 2 <= nb; b += 2) {
        q8_rows_wasm(a, j, t0, r0, nr, b, 0);
        q8_rows_wasm(a, j, t0, r0, nr, b + 1, 1);
    }
    if (b < nb) q8_rows_wasm(a, j, t0, r0, nr, b, 0);
    float *out = j->out + (size_t)t0 * j->w->rows + r0;
    for (int r = 0; r < nr; r++) out[r] = q8_sum_wasm(a[r]);
}

// q8_tile_wasm: mt tokens (1, 2), one after the other, times 4 rows (or 1). nr is a constant in
// each call so that the loops over rows unroll and the accumulators stay in locals (an array of
// v128 indexed at run time lives in linear memory in wasm, and every step would store it). Decode
// (T = 1 < MT) takes one row at a time (the table's dnr = 1): the weights are then one sequential
// stream, which measured 2.2x the decode speed of 4 interleaved rows in node on a busy machine
// (14:59, 2026-12-05); prefill keeps 4 rows, which share each token's split inputs.
static void q8_tile_wasm(const matmul_job *j, int t0, int mt, int r0, int nr) {
    for (int t = t0; t < t0 + mt; t++) {
        if (nr == 4) q8_block_wasm(j, t, r0, 4);
        else q8_block_wasm(j, t, r0, 1);
    }
}

// quantize_wasm: quantize_scalar with one block in eight vectors; the same float operations in
// the same order (max is exact in any order), so the same bytes.
static void quantize_wasm(int8_t *q, float *d, const float *x, size_t n) {
    const v128_t lo = wasm_f32x4_splat(-127.0f), hi = wasm_f32x4_splat(127.0f);
    for (size_t b = 0; b < n / PLM_QK; b++) {
        const float *xb = x + b * PLM_QK;
        v128_t v[8], m = wasm_f32x4_splat(0.0f);
        for (int i = 0; i < 8; i++) v[i] = wasm_v128_load(xb + 4 * i), m = wasm_f32x4_max(m, wasm_f32x4_abs(v[i]));
        float amax = fmaxf(fmaxf(wasm_f32x4_extract_lane(m, 0), wasm_f32x4_extract_lane(m, 1)),
                           fmaxf(wasm_f32x4_extract_lane(m, 2), wasm_f32x4_extract_lane(m, 3)));
        const float db = amax / 127.0f;
        const v128_t id = wasm_f32x4_splat(db != 0.0f ? 1.0f / db : 0.0f);
        d[b] = db;
        v128_t i32[8];
        for (int i = 0; i < 8; i++)
            i32[i] = wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_nearest(
                wasm_f32x4_min(wasm_f32x4_max(wasm_f32x4_mul(v[i], id), lo), hi)));
        const v128_t s0 = wasm_i16x8_narrow_i32x4(i32[0], i32[1]), s1 = wasm_i16x8_narrow_i32x4(i32[2], i32[3]);
        const v128_t s2 = wasm_i16x8_narrow_i32x4(i32[4], i32[5]), s3 = wasm_i16x8_narrow_i32x4(i32[6], i32[7]);
        wasm_v128_store(q + b * PLM_QK, wasm_i8x16_narrow_i16x8(s0, s1));
        wasm_v128_store(q + b * PLM_QK + 16, wasm_i8x16_narrow_i16x8(s2, s3));
    }
}

const matmul_kernels plm_kernels_wasm = {
    .f32 = {f32_tile_wasm, 2, 4, 1, NULL},
    .q8 = {q8_tile_wasm, 2, 4, 1, NULL},
    .quantize = quantize_wasm,
};

#if defined(__wasm_relaxed_simd__)
// ---- wasm relaxed SIMD ----
//
// The toolchain (LLVM 14) has no relaxed dot product and writes the other relaxed instructions
// with their prototype opcodes, which engines refuse. So each instruction used here is a call of a
// marker function: declared const (pure: the compiler may move or merge calls, never drop an
// operand), defined only as a JS stub that aborts (scripts/wasm_relaxed_lib.js); after the link,
// scripts/wasm_relaxed.mjs replaces every call of a marker by the instruction (final opcodes of the
// relaxed-SIMD spec). A marker has the instruction's operands in its order and its v128 result.
// i32x4.relaxed_dot_i8x16_i7x16_add_s is not used: node 20's baseline compiler (Liftoff, V8 11.3)
// drops its accumulator operand (it returns 2 x the dot); the i16x8 form is right in every tier.

// i16x8.relaxed_dot_i8x16_i7x16_s: lane i = a[2i] * b[2i] + a[2i + 1] * b[2i + 1], a signed. Exact
// only when every byte of b is in [0, 127]: with the top bit set an engine may read b as signed or
// unsigned (x86 engines use pmaddubsw, which reads it as unsigned), and may saturate the pair sum.
__attribute__((const)) v128_t plm_relaxed_dot_i8x16_i7x16_s(v128_t a, v128_t b);
// f32x4.relaxed_madd: a * b + c, fused (one rounding) or not (two), as the engine chooses.
__attribute__((const)) v128_t plm_relaxed_madd_f32x4(v128_t a, v128_t b, v128_t c);

// f32: f32_block_wasm with a * b + c as relaxed madd: fused where the engine has FMA (x86-64 with
// FMA3, arm64), so one rounding per step instead of two. f32 paths agree only within rounding
// anyway (matmul_kernels.h); an engine picks fused or not once, so within a module the result
// still does not depend on the tile, T or the thread count.
PLM_INLINE void f32_block_relaxed(const matmul_job *j, int t0, int mt, int r0, int nr) {
    const int C = j->w->cols, R = j->w->rows;
    const float *x = j->inp + (size_t)t0 * C;    // (mt, C)
    const float *w = j->w->f32 + (size_t)r0 * C; // (nr, C)
    v128_t acc[2][4];
    for (int t = 0; t < mt; t++)
        for (int r = 0; r < nr; r++) acc[t][r] = wasm_f32x4_splat(0.0f);
    for (int k = 0; k < C; k += 4) {
        const int n = C - k >= 4 ? 4 : C - k;
        v128_t wv[4];
        for (int r = 0; r < nr; r++) wv[r] = load4_wasm(w + (size_t)r * C + k, n);
        for (int t = 0; t < mt; t++) {
            const v128_t xv = load4_wasm(x + (size_t)t * C + k, n);
            for (int r = 0; r < nr; r++) acc[t][r] = plm_relaxed_madd_f32x4(xv, wv[r], acc[t][r]);
        }
    }
    for (int t = 0; t < mt; t++)
        for (int r = 0; r < nr; r++) j->out[(size_t)(t0 + t) * R + r0 + r] = hsum_wasm(acc[t][r]);
}

static void f32_tile_relaxed(const matmul_job *j, int t0, int mt, int r0, int nr) {
    if (mt == 2 && nr == 4) f32_block_relaxed(j, t0, 2, r0, 4);
    else if (mt == 2) f32_block_relaxed(j, t0, 2, r0, 1);
    else if (nr == 4) f32_block_relaxed(j, t0, 1, r0, 4);
    else f32_block_relaxed(j, t0, 1, r0, 1);
}

// Q8_0, exactly (the canonical order, the same bits as every path): the relaxed dot needs its
// second operand in [0, 127], so the inputs x in [-127, 127] (the quantizer never gives -128) are
// split into two planes, pos = max(x, 0) and neg = max(-x, 0) = pos - x, both in [0, 127], once
// per call (q8_prepare_relaxed); the weights are the signed operand, any byte. Per pair of bytes,
// dot(w, pos) and dot(w, neg) are each in [-32512, 32512] (no saturation), and dot(w, pos) -
// dot(w, neg) = w . x of the pair, also in that range, so the i16 subtraction is exact; adding
// adjacent pairs in i32 gives the canonical 4-byte lanes. Then the float steps of q8_step_wasm,
// unchanged. Per 16 weight bytes: 2 dots, a subtraction and a pairwise add, against SIMD128's 3
// shifts, 2 dots and an add.

// q8_prepare_relaxed: the planes of xq (n) in xc: for each 16 inputs, 16 bytes of pos then 16 of
// neg (one 32-byte line, read by q8_quads_relaxed).
static void q8_prepare_relaxed(int32_t *xc, const int8_t *xq, size_t n) {
    int8_t *pl = (int8_t *)xc;
    for (size_t i = 0; i < n; i += 16) {
        const v128_t x = wasm_v128_load(xq + i), pos = wasm_i8x16_max(x, wasm_i8x16_splat(0));
        wasm_v128_store(pl + 2 * i, pos);
        wasm_v128_store(pl + 2 * i + 16, wasm_i8x16_sub(pos, x));
    }
}

// q8_quads_relaxed: lane l = the exact int32 sum of bytes 4l .. 4l+3 of (16 bytes at w) . x, for
// the planes of those 16 inputs at pl.
PLM_INLINE v128_t q8_quads_relaxed(const int8_t *w, const int8_t *pl) {
    const v128_t wv = wasm_v128_load(w);
    const v128_t d = wasm_i16x8_sub(plm_relaxed_dot_i8x16_i7x16_s(wv, wasm_v128_load(pl)),
                                    plm_relaxed_dot_i8x16_i7x16_s(wv, wasm_v128_load(pl + 16)));
    return wasm_i32x4_dot_i16x8(d, wasm_i16x8_splat(1));
}

// q8_half_relaxed: *acc += float(lanes of (16 bytes at w) . x) * sv, mul then add.
PLM_INLINE void q8_half_relaxed(v128_t *acc, const int8_t *w, const int8_t *pl, v128_t sv) {
    const v128_t p = q8_quads_relaxed(w, pl);
    *acc = wasm_f32x4_add(*acc, wasm_f32x4_mul(wasm_f32x4_convert_i32x4(p), sv));
}

// q8_rows_relaxed: block b (its input planes at pl) of one token into nr rows, with their scales
// sv (dw * dx, one per row) and the accumulators of the block's parity (lanes 0-3, 4-7 per row).
PLM_INLINE void q8_rows_relaxed(v128_t *lo, v128_t *hi, const int8_t *const *w, const v128_t *sv,
                                int nr, const int8_t *pl) {
    for (int r = 0; r < nr; r++) {
        q8_half_relaxed(&lo[r], w[r], pl, sv[r]);
        q8_half_relaxed(&hi[r], w[r] + 16, pl + 32, sv[r]);
    }
}

// q8_block_relaxed: one token times nr rows (a constant at each call), in the canonical order.
// Blocks go in pairs (even, odd); the scales of a pair are one vector multiply per row.
PLM_INLINE void q8_block_relaxed(const matmul_job *j, int t0, int r0, int nr) {
    const int C = j->w->cols, nb = C / PLM_QK;
    const int8_t *x = (const int8_t *)j->xc + (size_t)t0 * C * 2; // planes
    const float *xd = j->xd + (size_t)t0 * nb;
    const int8_t *w[4];
    const float *wd[4];
    v128_t e0[4], e1[4], o0[4], o1[4];
    for (int r = 0; r < nr; r++) {
        w[r] = j->w->q + (size_t)(r0 + r) * C;
        wd[r] = j->w->d + (size_t)(r0 + r) * nb;
        e0[r] = e1[r] = o0[r] = o1[r] = wasm_f32x4_splat(0.0f);
    }
    int b = 0;
    for (; b + 2 <= nb; b += 2) {
        const v128_t dx = wasm_v128_load64_zero(xd + b);
        v128_t se[4], so[4];
        for (int r = 0; r < nr; r++) {
            const v128_t s = wasm_f32x4_mul(wasm_v128_load64_zero(wd[r] + b), dx);
            se[r] = wasm_i32x4_shuffle(s, s, 0, 0, 0, 0);
            so[r] = wasm_i32x4_shuffle(s, s, 1, 1, 1, 1);
        }
        q8_rows_relaxed(e0, e1, w, se, nr, x);
        for (int r = 0; r < nr; r++) w[r] += PLM_QK;
        q8_rows_relaxed(o0, o1, w, so, nr, x + 2 * PLM_QK);
        for (int r = 0; r < nr; r++) w[r] += PLM_QK;
        x += 4 * PLM_QK;
    }
    if (b < nb) {
        v128_t se[4];
        for (int r = 0; r < nr; r++) se[r] = wasm_f32x4_splat(wd[r][b] * xd[b]);
        q8_rows_relaxed(e0, e1, w, se, nr, x);
    }
    float *out = j->out + (size_t)t0 * j->w->rows + r0;
    for (int r = 0; r < nr; r++) out[r] = q8_sum_wasm((q8_acc_wasm){e0[r], e1[r], o0[r], o1[r]});
}

// q8_tile_relaxed: mt tokens (1, 2), one after the other, times 2 rows (or 1); decode (T = 1)
// takes 1 row at a time (the table's dnr), as q8_tile_wasm does.
static void q8_tile_relaxed(const matmul_job *j, int t0, int mt, int r0, int nr) {
    for (int t = t0; t < t0 + mt; t++) {
        if (nr == 2) q8_block_relaxed(j, t, r0, 2);
        else q8_block_relaxed(j, t, r0, 1);
    }
}

const matmul_kernels plm_kernels_relaxed = {
    .f32 = {f32_tile_relaxed, 2, 4, 1, NULL},
    .q8 = {q8_tile_relaxed, 2, 2, 1, NULL},
    .quantize = quantize_wasm,
    .q8_prepare = q8_prepare_relaxed,
};
#endif // __wasm_relaxed_simd__
#endif // __wasm_simd128__
