// matmul_wasm.c: the wasm paths of matmul_kernels.h: SIMD128 (a module built with -msimd128) and
// relaxed SIMD (built with -msimd128 -mrelaxed-simd, then patched by scripts/wasm_relaxed.mjs; see
// the relaxed section below).
#include <math.h>
#include <string.h>

#include "matmul_kernels.h"

#if defined(__wasm_simd128__)
#include <wasm_simd128.h>

// ---- f32 (SIMD128) ----

// hsum_wasm: (lane 0 + lane 1) + (lane 2 + lane 3).
PLM_INLINE float hsum_wasm(v128_t v) {
    return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) +
           (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
}

// load4_wasm: n (1..4) floats, zero-padded to a vector (lane loads: no copy through the stack).
PLM_INLINE v128_t load4_wasm(const float *p, int n) {
    if (n == 4) return wasm_v128_load(p);
    if (n == 1) return wasm_v128_load32_zero(p);
    const v128_t v = wasm_v128_load64_zero(p);
    return n == 2 ? v : wasm_v128_load32_lane(p + 2, v, 2);
}

#if defined(__wasm_relaxed_simd__)
// ---- relaxed SIMD: the marker functions ----
//
// The toolchain (LLVM 14) has no relaxed dot product and writes the other relaxed instructions
// with their prototype opcodes, which engines refuse. So each instruction used here is a call of a
// marker function: declared const (pure: the compiler may move or merge calls, never drop an
// operand), defined only as a JS stub that aborts (scripts/wasm_relaxed_lib.js); after the link,
// scripts/wasm_relaxed.mjs replaces every call of a marker by the instruction (final opcodes of the
// relaxed-SIMD spec). A marker has the instruction's operands in its order and its v128 result.
// i32x4.relaxed_dot_i8x16_i7x16_add_s is the path relaxed-dot's alone: node 20's baseline compiler
// (Liftoff, V8 11.3) drops its accumulator operand (it returns 2 x the dot), and engines without a
// one-instruction dot (x86 without VNNI) emulate it slower than the i16x8 form plus a widening
// (plm_relaxed_dot_probe tells these apart; the i16x8 form is right in every tier).

// i16x8.relaxed_dot_i8x16_i7x16_s: lane i = a[2i] * b[2i] + a[2i + 1] * b[2i + 1], a signed. Exact
// only when every byte of b is in [0, 127]: with the top bit set an engine may read b as signed or
// unsigned (x86 engines use pmaddubsw, which reads it as unsigned), and may saturate the pair sum.
__attribute__((const)) v128_t plm_relaxed_dot_i8x16_i7x16_s(v128_t a, v128_t b);
// f32x4.relaxed_madd: a * b + c, fused (one rounding) or not (two), as the engine chooses.
__attribute__((const)) v128_t plm_relaxed_madd_f32x4(v128_t a, v128_t b, v128_t c);
// i32x4.relaxed_dot_i8x16_i7x16_add_s: lane i = c[i] + the 4 products a[4i + k] * b[4i + k], a
// signed; exact when every byte of b is in [0, 127] (as the i16x8 form).
__attribute__((const)) v128_t plm_relaxed_dot_i8x16_i7x16_add_s(v128_t a, v128_t b, v128_t c);
#endif // __wasm_relaxed_simd__

// madd_wasm: acc + x * w: a multiply then an add (SIMD128 has no fused FMA), or with relaxed, one
// relaxed madd
PLM_INLINE v128_t madd_wasm(v128_t acc, v128_t x, v128_t w, int relaxed) {
#if defined(__wasm_relaxed_simd__)
    if (relaxed) return plm_relaxed_madd_f32x4(x, w, acc);
#endif
    (void)relaxed;
    return wasm_f32x4_add(acc, wasm_f32x4_mul(x, w));
}

// f32_block_wasm: 4-lane accumulator per (t, r) (madd_wasm); the tail is a zero-padded vector.
// With relaxed, a * b + c is relaxed madd: fused where the engine has FMA (x86-64 with FMA3,
// arm64), so one rounding per step instead of two. f32 paths agree only within rounding anyway
// (matmul_kernels.h; test_wasm.mjs holds the logits to 1e-5 of native and of the SIMD128 build);
// an engine picks fused or not once (V8 on x86-64 fuses in both its tiers, checked
// with node 20), so within a module the result still does not depend on the tile, T or threads.
PLM_INLINE void f32_block_wasm(const matmul_job *j, int t0, int mt, int r0, int nr, int relaxed) {
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
            for (int r = 0; r < nr; r++) acc[t][r] = madd_wasm(acc[t][r], xv, wv[r], relaxed);
        }
    }
    for (int t = 0; t < mt; t++)
        for (int r = 0; r < nr; r++) j->out[(size_t)(t0 + t) * R + r0 + r] = hsum_wasm(acc[t][r]);
}

// f32_tiles_wasm: the tile shapes the driver asks for, each a constant block shape
PLM_INLINE void f32_tiles_wasm(const matmul_job *j, int t0, int mt, int r0, int nr, int relaxed) {
    if (mt == 2 && nr == 4) f32_block_wasm(j, t0, 2, r0, 4, relaxed);
    else if (mt == 2) f32_block_wasm(j, t0, 2, r0, 1, relaxed);
    else if (nr == 4) f32_block_wasm(j, t0, 1, r0, 4, relaxed);
    else f32_block_wasm(j, t0, 1, r0, 1, relaxed);
}

static void f32_tile_wasm(const matmul_job *j, int t0, int mt, int r0, int nr) {
    f32_tiles_wasm(j, t0, mt, r0, nr, 0);
}

#if defined(__wasm_relaxed_simd__)
static void f32_tile_relaxed(const matmul_job *j, int t0, int mt, int r0, int nr) {
    f32_tiles_wasm(j, t0, mt, r0, nr, 1);
}
#endif

// ---- Q8_0 (both paths) ----
//
// The canonical order of matmul_kernels.h with 128-bit vectors. A path's integer part gives, for
// a block and a token, four exact int32 sums whose total is P (q8_token_lanes; any split of an
// exact sum gives the same P), from its weights as the path multiplies them (q8_weights) and the
// inputs as its q8_prepare left them (32 bytes for each 16 inputs in xc; relaxed Q4_1 and Q5_1:
// xq itself). The float steps are the same for both paths, so are the bits. Two kernels, each a
// whole output's chain in block order:
// - four tokens (q8_tile4, prefill and training): per row and block, the four tokens' lane
//   vectors are reduced into one vector, a lane a token (sum4_wasm), then one convert, one
//   multiply by dw[r, b] * dx[t, b] (dx from the transposed scales q8_prepare adds) and one add
//   step all four outputs, each in its lane;
// - one token (q8_rows, decode and the tokens past the last four): four rows side by side, per
//   block their lane vectors reduced into one vector, a lane a row, then the same convert,
//   multiply by dw[r, b] * dx[t, b] and add, each row's chain in its lane.

// q8_split_wasm: the 16 bytes v as even bytes (*ev) and odd bytes (*od), each as i16x8 (shl 8 then
// shr 8; shr 8).
PLM_INLINE void q8_split_wasm(v128_t *ev, v128_t *od, v128_t v) {
    *ev = wasm_i16x8_shr(wasm_i16x8_shl(v, 8), 8);
    *od = wasm_i16x8_shr(v, 8);
}

// q8_dx_prepare: the scales of each 4 tokens transposed, after the 2 n bytes of xc's two planes
// (matmul_kernels.h: xc has room for n / 8 more bytes, one float a block and token): dxt[(g nb +
// b) 4 + i] = xd[4 g + i, b], so a 4-token tile loads its tokens' scales of block b as one vector.
// Only whole groups of 4 are read (q8_tile4); a last partial group is written, never read.
static void q8_dx_prepare(int32_t *xc, const float *xd, int T, int C, int t0, int t1) {
    const int nb = C / PLM_QK;
    float *dxt = (float *)(void *)((int8_t *)xc + 2 * (size_t)C * (size_t)((T + 15) / 16 * 16));
    for (int t = t0; t < t1; t++)
        for (int b = 0; b < nb; b++)
            dxt[((size_t)(t / 4) * nb + b) * 4 + t % 4] = xd[(size_t)t * nb + b];
}

// q8_dxt: the transposed scales of the 4 tokens from t0 (a multiple of 4), nb of them.
PLM_INLINE const float *q8_dxt(const matmul_job *j, int t0) {
    const int C = j->w->cols;
    const int8_t *end = (const int8_t *)j->xc + 2 * (size_t)C * (size_t)((j->T + 15) / 16 * 16);
    return (const float *)(const void *)end + (size_t)t0 * (C / PLM_QK);
}

// q8_prepare_wasm (SIMD128): for each 16 inputs, their even and their odd bytes as i16x8.
static void q8_prepare_wasm(int32_t *xc, const int8_t *xq, const float *xd, int T, int C, int t0,
                            int t1) {
    int8_t *xs = (int8_t *)xc;
    for (size_t i = (size_t)t0 * (size_t)C; i < (size_t)t1 * (size_t)C; i += 16) {
        v128_t ev, od;
        q8_split_wasm(&ev, &od, wasm_v128_load(xq + i));
        wasm_v128_store(xs + 2 * i, ev);
        wasm_v128_store(xs + 2 * i + 16, od);
    }
    q8_dx_prepare(xc, xd, T, C, t0, t1);
}

// q8_quads_wasm (SIMD128): i32x4_dot_i16x8 adds pairs of adjacent i16, so the weights split like
// the inputs give dot(even) + dot(odd) = the 16 products in 4 lanes. (Q6_K's 4-token tile calls
// it with the same w for each token; the compiler splits w once.)
PLM_INLINE v128_t q8_quads_wasm(v128_t w, const int8_t *xs) {
    v128_t we, wo;
    q8_split_wasm(&we, &wo, w);
    return wasm_i32x4_add(wasm_i32x4_dot_i16x8(wasm_v128_load(xs), we),
                          wasm_i32x4_dot_i16x8(wasm_v128_load(xs + 16), wo));
}

#if defined(__wasm_relaxed_simd__)
// Q8_0, exactly (the canonical order, the same bits as every path): the relaxed dot needs its
// second operand in [0, 127], so the inputs x in [-127, 127] (the quantizer never gives -128) are
// split into two planes, pos = max(x, 0) and neg = max(-x, 0) = pos - x, both in [0, 127], once
// per call (q8_prepare_relaxed); the weights are the signed operand, any byte. Per pair of bytes,
// dot(w, pos) and dot(w, neg) are each in [-32512, 32512] (no saturation), and dot(w, pos) -
// dot(w, neg) = w . x of the pair, also in that range, so the i16 subtraction is exact; adding
// adjacent pairs in i32 gives 4 lanes. Per 16 weight bytes: 2 dots, a subtraction and a pairwise
// add, against SIMD128's 3 shifts, 2 dots and an add.

// The planes pay off below a tile's 4 tokens (decode): with 4 tokens a tile splits each block's
// weights once for all of them, and SIMD128's 4 dots a token then measured faster than the relaxed
// 4 dots, 2 subtractions and 2 widenings (prefill, training: 1.25x on Q8_0, 2026-12-06). So from
// RELAXED_T tokens the relaxed table prepares and multiplies as SIMD128 does, but for Q4_1 and
// Q5_1, which read xq itself (q8_token_lanes). Every way is exact: the same P, the same bits.
#define RELAXED_T 4

// relaxed_planes: whether a call of T tokens in the relaxed table uses the planes pos and neg.
PLM_INLINE int relaxed_planes(int T) {
    return T < RELAXED_T;
}

// q8_prepare_planes: for each 16 inputs, 16 bytes of pos then 16 of neg (the relaxed-dot table's
// q8_prepare).
static void q8_prepare_planes(int32_t *xc, const int8_t *xq, const float *xd, int T, int C, int t0,
                              int t1) {
    int8_t *pl = (int8_t *)xc;
    for (size_t i = (size_t)t0 * (size_t)C; i < (size_t)t1 * (size_t)C; i += 16) {
        const v128_t x = wasm_v128_load(xq + i), pos = wasm_i8x16_max(x, wasm_i8x16_splat(0));
        wasm_v128_store(pl + 2 * i, pos);
        wasm_v128_store(pl + 2 * i + 16, wasm_i8x16_sub(pos, x));
    }
    q8_dx_prepare(xc, xd, T, C, t0, t1);
}

// q8_prepare_relaxed: below RELAXED_T tokens the planes, else as q8_prepare_wasm.
static void q8_prepare_relaxed(int32_t *xc, const int8_t *xq, const float *xd, int T, int C, int t0,
                               int t1) {
    if (relaxed_planes(T)) q8_prepare_planes(xc, xq, xd, T, C, t0, t1);
    else q8_prepare_wasm(xc, xq, xd, T, C, t0, t1);
}

// q8_pairs_relaxed: dot(w, pos) - dot(w, neg), the 16 products in 8 i16 pairs.
PLM_INLINE v128_t q8_pairs_relaxed(v128_t wv, const int8_t *pl) {
    return wasm_i16x8_sub(plm_relaxed_dot_i8x16_i7x16_s(wv, wasm_v128_load(pl)),
                          plm_relaxed_dot_i8x16_i7x16_s(wv, wasm_v128_load(pl + 16)));
}

// q8_quads_relaxed: q8_pairs_relaxed, pairs added (V8 reads the pairwise add's constant from
// memory at each use: a constant of ones held in a register made the one-token loop keep its
// accumulator on the stack, a store and a load in its chain of adds each step: 4% slower in node 20
// on cache-resident weights, 2026-12-06).
PLM_INLINE v128_t q8_quads_relaxed(v128_t wv, const int8_t *pl) {
    return wasm_i32x4_extadd_pairwise_i16x8(q8_pairs_relaxed(wv, pl));
}
#endif // __wasm_relaxed_simd__

// q8_quads: the path's 4 lanes of the 16 weights w (relaxed: a constant at each call).
PLM_INLINE v128_t q8_quads(v128_t w, const int8_t *xs, int relaxed) {
#if defined(__wasm_relaxed_simd__)
    if (relaxed) return q8_quads_relaxed(w, xs);
#endif
    (void)relaxed;
    return q8_quads_wasm(w, xs);
}

// sum4_wasm: lane i = the sum of the lanes of the i-th vector (a transposing reduction: exact,
// int32).
PLM_INLINE v128_t sum4_wasm(v128_t a, v128_t b, v128_t c, v128_t d) {
    const v128_t ab =
        wasm_i32x4_add(wasm_i32x4_shuffle(a, b, 0, 4, 1, 5), // a0+a2 b0+b2 a1+a3 b1+b3
                       wasm_i32x4_shuffle(a, b, 2, 6, 3, 7));
    const v128_t cd =
        wasm_i32x4_add(wasm_i32x4_shuffle(c, d, 0, 4, 1, 5), wasm_i32x4_shuffle(c, d, 2, 6, 3, 7));
    return wasm_i32x4_add(wasm_i32x4_shuffle(ab, cd, 0, 1, 4, 5),
                          wasm_i32x4_shuffle(ab, cd, 2, 3, 6, 7));
}

// chain4_wasm: acc + m0 + m1 + m2 + m3, one add at a time (an output's chain over 4 steps).
PLM_INLINE float chain4_wasm(float acc, v128_t m) {
    acc = acc + wasm_f32x4_extract_lane(m, 0);
    acc = acc + wasm_f32x4_extract_lane(m, 1);
    acc = acc + wasm_f32x4_extract_lane(m, 2);
    return acc + wasm_f32x4_extract_lane(m, 3);
}

// Q4_0, Q4_1, Q5_0 and Q5_1 (matmul_kernels.h) run the same kernels on their weights as int8: a
// block's 16 bytes give elements 0-15 (low nibbles) and 16-31 (high ones), Q5_x ORs in 16 where
// the element's bit of qh is set, Q4_0 and Q5_0 subtract 8 or 16, and Q4_1 and Q5_1 add their
// minimums' term to each output (the scalar reference's plm_q4_m_sum). dt: the weights' dtype (a
// constant at each call).

// high_wasm: byte i = 16 where bit i of h is set, else 0 (i = 0..15): bytes 0-7 take h's low
// byte, 8-15 its high one, and each tests its own bit.
PLM_INLINE v128_t high_wasm(uint32_t h) {
    const v128_t bit = wasm_i64x2_splat((int64_t)0x8040201008040201LL);
    const v128_t v =
        wasm_i8x16_swizzle(wasm_i32x4_splat((int32_t)h),
                           wasm_i8x16_const(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1));
    return wasm_v128_and(wasm_i8x16_eq(wasm_v128_and(v, bit), bit), wasm_i8x16_splat(16));
}

// q8_wrow: where row r's weights start, and its scales and (Q5_x) high bits.
typedef struct {
    const int8_t *w;
    const float *d;
    const uint32_t *qh;
} q8_wrow;

PLM_INLINE q8_wrow q8_row_of(const matmul_job *j, int r, plm_dtype dt) {
    const int C = j->w->cols, nb = C / PLM_QK;
    q8_wrow o = {dt != PLM_DTYPE_Q8_0 ? (const int8_t *)j->w->q4 + (size_t)r * nb * 16
                                      : j->w->q + (size_t)r * C,
                 j->w->d + (size_t)r * nb, plm_dtype_high(dt) ? j->w->qh + (size_t)r * nb : NULL};
    return o;
}

// q8_wv: a block's weights as the path multiplies them: relaxed, int8 elements 0-15 (v[0]) and
// 16-31 (v[1]); SIMD128, split like the inputs, the even and odd bytes of elements 0-15 (v[0],
// v[1]) and of 16-31 (v[2], v[3]) as i16x8, once for every token of a tile.
typedef struct {
    v128_t v[4];
} q8_wv;

// q8_weights: block b of row w as the path multiplies it (relaxed: a constant at each call).
PLM_INLINE q8_wv q8_weights(q8_wrow w, int b, int relaxed, plm_dtype dt) {
    q8_wv o;
    v128_t w0, w1;
    if (dt == PLM_DTYPE_Q8_0) {
        w0 = wasm_v128_load(w.w + (size_t)b * PLM_QK);
        w1 = wasm_v128_load(w.w + (size_t)b * PLM_QK + 16);
    } else {
        const v128_t v = wasm_v128_load(w.w + (size_t)b * 16);
        if (!relaxed && dt == PLM_DTYPE_Q4_1) { // SIMD128, plain nibbles: i16 lanes straight away
            const v128_t m = wasm_i16x8_splat(15);
            o.v[0] = wasm_v128_and(v, m), o.v[1] = wasm_v128_and(wasm_u16x8_shr(v, 8), m);
            o.v[2] = wasm_v128_and(wasm_u16x8_shr(v, 4), m), o.v[3] = wasm_u16x8_shr(v, 12);
            return o;
        }
        w0 = wasm_v128_and(v, wasm_i8x16_splat(15));
        w1 = wasm_u8x16_shr(v, 4);
        if (plm_dtype_high(dt)) {
            const uint32_t h = w.qh[b];
            w0 = wasm_v128_or(w0, high_wasm(h)), w1 = wasm_v128_or(w1, high_wasm(h >> 16));
        }
        const int8_t off = (int8_t)plm_q4_offset(dt);
        if (off)
            w0 = wasm_i8x16_sub(w0, wasm_i8x16_splat(off)),
            w1 = wasm_i8x16_sub(w1, wasm_i8x16_splat(off));
    }
    if (relaxed) {
        o.v[0] = o.v[2] = w0, o.v[1] = o.v[3] = w1;
        return o;
    }
    q8_split_wasm(&o.v[0], &o.v[1], w0);
    q8_split_wasm(&o.v[2], &o.v[3], w1);
    return o;
}

// q8_xrow: where a token's inputs start: as q8_prepare left them (64 bytes a block), xq itself,
// and their scales.
typedef struct {
    const int8_t *xs, *xq;
    const float *xd;
} q8_xrow;

PLM_INLINE q8_xrow q8_x_of(const matmul_job *j, int t) {
    const size_t C = (size_t)j->w->cols;
    q8_xrow o = {(const int8_t *)j->xc + (size_t)t * C * 2, j->xq + (size_t)t * C,
                 j->xd + (size_t)t * (C / PLM_QK)};
    return o;
}

// q8_lanes: block b (weights w) times the token x: 4 lanes whose total is P. Relaxed, with Q4_1
// or Q5_1 weights k in [0, 31] (no offset), k is the relaxed dot's 7-bit operand and the inputs xq
// (any byte) its signed one: no planes, one dot per 16 bytes; with Q4_0 or Q5_0 (|w| <= 16), the
// two halves' pairs add in i16 before they widen; in both, |sum| <= 4 * 31 * 127 = 15748.
PLM_INLINE v128_t q8_lanes(q8_wv w, q8_xrow x, int b, int relaxed, plm_dtype dt) {
    const int8_t *xs = x.xs + (size_t)b * 2 * PLM_QK;
#if defined(__wasm_relaxed_simd__)
    if (relaxed) {
        const v128_t one = wasm_i16x8_splat(1);
        if (plm_dtype_min(dt)) {
            const int8_t *xq = x.xq + (size_t)b * PLM_QK;
            return wasm_i32x4_dot_i16x8(
                wasm_i16x8_add(plm_relaxed_dot_i8x16_i7x16_s(wasm_v128_load(xq), w.v[0]),
                               plm_relaxed_dot_i8x16_i7x16_s(wasm_v128_load(xq + 16), w.v[1])),
                one);
        }
        if (dt != PLM_DTYPE_Q8_0)
            return wasm_i32x4_dot_i16x8(
                wasm_i16x8_add(q8_pairs_relaxed(w.v[0], xs), q8_pairs_relaxed(w.v[1], xs + 32)),
                one);
        if (relaxed == 2) { // relaxed-dot: dot(w, pos) - dot(w, neg), each accumulated in i32
            const v128_t z = wasm_i32x4_splat(0);
            const v128_t pos = plm_relaxed_dot_i8x16_i7x16_add_s(
                w.v[1], wasm_v128_load(xs + 32),
                plm_relaxed_dot_i8x16_i7x16_add_s(w.v[0], wasm_v128_load(xs), z));
            const v128_t neg = plm_relaxed_dot_i8x16_i7x16_add_s(
                w.v[1], wasm_v128_load(xs + 48),
                plm_relaxed_dot_i8x16_i7x16_add_s(w.v[0], wasm_v128_load(xs + 16), z));
            return wasm_i32x4_sub(pos, neg);
        }
        return wasm_i32x4_add(q8_quads_relaxed(w.v[0], xs), q8_quads_relaxed(w.v[1], xs + 32));
    }
#endif
    (void)relaxed, (void)dt;
    return wasm_i32x4_add(wasm_i32x4_add(wasm_i32x4_dot_i16x8(wasm_v128_load(xs), w.v[0]),
                                         wasm_i32x4_dot_i16x8(wasm_v128_load(xs + 16), w.v[1])),
                          wasm_i32x4_add(wasm_i32x4_dot_i16x8(wasm_v128_load(xs + 32), w.v[2]),
                                         wasm_i32x4_dot_i16x8(wasm_v128_load(xs + 48), w.v[3])));
}

// q8_token_lanes: block b (weights w) times token t: 4 lanes whose total is P.
PLM_INLINE v128_t q8_token_lanes(const matmul_job *j, q8_wv w, int t, int b, int relaxed,
                                 plm_dtype dt) {
    return q8_lanes(w, q8_x_of(j, t), b, relaxed, dt);
}

// q8_m: Q4_1 and Q5_1's minimums' term of row r and token t, added to a (else a).
PLM_INLINE float q8_m(float a, const matmul_job *j, int t, int r, plm_dtype dt) {
    const int nb = j->w->cols / PLM_QK;
    if (!plm_dtype_min(dt)) return a;
    return a + plm_q4_m_sum(j->w->m + (size_t)r * nb, j->xs + (size_t)t * nb, nb);
}

// q8_wrow_next, q8_xrow_next: the row's and the token's pointers n blocks on. q8_rows moves
// them on every step, so that the loads' addresses are constant offsets from them (the
// toolchain's wasm builds turn off loop strength reduction: an index times a stride would be
// computed again for every load).
PLM_INLINE q8_wrow q8_wrow_next(q8_wrow w, int n, plm_dtype dt) {
    w.w += (size_t)n * (dt == PLM_DTYPE_Q8_0 ? PLM_QK : 16), w.d += n;
    if (plm_dtype_high(dt)) w.qh += n;
    return w;
}

PLM_INLINE q8_xrow q8_xrow_next(q8_xrow x, int n) {
    x.xs += (size_t)n * 2 * PLM_QK, x.xq += (size_t)n * PLM_QK, x.xd += n;
    return x;
}

// Q8_TOUCH: how far ahead (bytes) q8_rows reads the weights. wasm has no prefetch instruction, and
// the one-token loop, ~60 instructions a 64-byte line of weights (8 dots, the planes' loads and
// subtractions, the float step), keeps too few lines in flight for the hardware prefetcher to run
// ahead (50% of the samples on one load of the weights). A plain load of a byte of every line
// ~2 KB on (the step's own lines in a group of rows a whole number of groups later) brings them in
// while the step computes: decode of the real q8_0 model in node, 1 thread, 40.1 -> 45.7 tok/s a
// row at a time; every other line only: no gain; 1, 2, 4 or 8 KB ahead: the same; with 4 rows a
// step, one group ahead (2 KB) against two (4 KB): 47.4-47.9 against 46.2-46.5 (Intel Xeon with
// AVX-512, 2026-12-07). Touching a whole group at once at the start of a group was slower (44.3).
#define Q8_TOUCH 2048

// q8_rows_block: acc + block u (from w and x) of the nr rows (nr = 4 or 1): their P in the lanes of
// one vector (sum4_wasm), converted, times dw[r, u] * dx[t, u], one add: lane i is row i's chain.
PLM_INLINE v128_t q8_rows_block(v128_t acc, const q8_wrow *w, q8_xrow x, int u, int nr, int relaxed,
                                plm_dtype dt) {
    v128_t p[4], d = wasm_f32x4_splat(0.0f);
    for (int i = 0; i < 4; i++)
        p[i] = i < nr ? q8_lanes(q8_weights(w[i], u, relaxed, dt), x, u, relaxed, dt)
                      : wasm_i32x4_splat(0);
    d = wasm_v128_load32_lane(w[0].d + u, d, 0);
    if (nr == 4)
        d = wasm_v128_load32_lane(w[1].d + u, d, 1), d = wasm_v128_load32_lane(w[2].d + u, d, 2),
        d = wasm_v128_load32_lane(w[3].d + u, d, 3);
    const v128_t m = wasm_f32x4_convert_i32x4(sum4_wasm(p[0], p[1], p[2], p[3]));
    return wasm_f32x4_add(acc,
                          wasm_f32x4_mul(m, wasm_f32x4_mul(d, wasm_v128_load32_splat(x.xd + u))));
}

// q8_rows_step: blocks a step of q8_rows (fewer pointer steps and loop checks a block): relaxed, 1,
// 2, 3 or 4 measured 46.6, 50.4, 52.3-53.0, 50.3-51.7 tok/s; SIMD128 (4 weight vectors a block), 1
// or 2: 46.4-46.5, 45.2-45.9 (3: 40.4-40.7, spilled).
PLM_INLINE int q8_rows_step(int relaxed) {
    return relaxed ? 3 : 1;
}

// q8_rows: out[t, r0 .. r0 + nr) (nr = 4, or 1: a constant at each call): the rows side by side,
// q8_rows_step blocks a step (q8_rows_block each, in block order), then the last blocks one at a
// time. The nr rows are one contiguous range of weights; each step reads a byte of each of its
// lines in the group of rows Q8_TOUCH bytes on (volatile: kept though unused), or of its own group
// near the matrix's end. Measured (node, 1 thread, q8_0 decode, Intel Xeon with AVX-512,
// 2026-12-07): 4 rows side by side (a stream a row) against a row at a time, both with the touch,
// a block a step: 47.3 against 45.7 tok/s (40.3 against 40.1 without the touch; on Zen 4 without
// it, 2026-12-06, 2 or 4 rows a step were 1.8-2.2x slower than a row at a time from DRAM).
PLM_INLINE void q8_rows(const matmul_job *j, int t, int r0, int nr, int relaxed, plm_dtype dt) {
    const int nb = j->w->cols / PLM_QK, R = j->w->rows;
    const int bytes = nr * (dt == PLM_DTYPE_Q8_0 ? PLM_QK : 16);  // the rows' bytes of a block
    const int ahead = (Q8_TOUCH + bytes * nb - 1) / (bytes * nb); // groups of nr rows
    q8_wrow w[4];
    for (int i = 0; i < nr; i++) w[i] = q8_row_of(j, r0 + i, dt);
    q8_xrow x = q8_x_of(j, t);
    const int8_t *touch = r0 + nr * (ahead + 1) <= R ? w[0].w + (size_t)ahead * bytes * nb : w[0].w;
    v128_t acc = wasm_f32x4_splat(0.0f);
    const int n = q8_rows_step(relaxed);
    int b = 0;
    for (; b + n <= nb; b += n, touch += n * bytes) {
        for (int k = 0; k < n * bytes; k += 64) (void)*(const volatile int8_t *)(touch + k);
        for (int u = 0; u < n; u++) acc = q8_rows_block(acc, w, x, u, nr, relaxed, dt);
        for (int i = 0; i < nr; i++) w[i] = q8_wrow_next(w[i], n, dt);
        x = q8_xrow_next(x, n);
    }
    for (; b < nb; b++) {
        acc = q8_rows_block(acc, w, x, 0, nr, relaxed, dt);
        for (int i = 0; i < nr; i++) w[i] = q8_wrow_next(w[i], 1, dt);
        x = q8_xrow_next(x, 1);
    }
    float o[4];
    wasm_v128_store(o, acc);
    for (int i = 0; i < nr; i++) j->out[(size_t)t * R + r0 + i] = q8_m(o[i], j, t, r0 + i, dt);
}

// q8_tile4: out[t0 .. t0+4, r0 .. r0+nr] (t0 a multiple of 4; nr a constant at each call, so
// that the loops over rows unroll and the accumulators stay in locals: an array of v128 indexed
// at run time lives in linear memory in wasm, and every step would store it): per block, each
// row's weights once for the 4 tokens, the tokens' P in one vector, one accumulator a row.
PLM_INLINE void q8_tile4(const matmul_job *j, int t0, int r0, int nr, int relaxed, plm_dtype dt) {
    const int nb = j->w->cols / PLM_QK;
    const float *dxt = q8_dxt(j, t0);
    q8_wrow w[2];
    v128_t acc[2];
    for (int r = 0; r < nr; r++) w[r] = q8_row_of(j, r0 + r, dt), acc[r] = wasm_f32x4_splat(0.0f);
    for (int b = 0; b < nb; b++) {
        const v128_t dx = wasm_v128_load(dxt + 4 * b);
        for (int r = 0; r < nr; r++) {
            const q8_wv wv = q8_weights(w[r], b, relaxed, dt);
            v128_t p[4];
            for (int k = 0; k < 4; k++) p[k] = q8_token_lanes(j, wv, t0 + k, b, relaxed, dt);
            const v128_t s = wasm_f32x4_mul(wasm_v128_load32_splat(w[r].d + b), dx);
            const v128_t m =
                wasm_f32x4_mul(wasm_f32x4_convert_i32x4(sum4_wasm(p[0], p[1], p[2], p[3])), s);
            acc[r] = wasm_f32x4_add(acc[r], m);
        }
    }
    float o[4];
    for (int r = 0; r < nr; r++) {
        wasm_v128_store(o, acc[r]);
        for (int k = 0; k < 4; k++)
            j->out[(size_t)(t0 + k) * j->w->rows + r0 + r] = q8_m(o[k], j, t0 + k, r0 + r, dt);
    }
}

// q8_tile: prefill (MT 4, NR 2): q8_tile4. One token (T < MT: the tables' dnr, 4 rows; the tokens
// past the last 4, NR rows) takes 4 rows side by side, or a row at a time (q8_rows).
PLM_INLINE void q8_tile(const matmul_job *j, int t0, int mt, int r0, int nr, int relaxed,
                        plm_dtype dt) {
    if (mt == 4 && nr == 2) q8_tile4(j, t0, r0, 2, relaxed, dt);
    else if (mt == 4) q8_tile4(j, t0, r0, 1, relaxed, dt);
    else if (nr == 4) q8_rows(j, t0, r0, 4, relaxed, dt);
    else
        for (int r = r0; r < r0 + nr; r++) q8_rows(j, t0, r, 1, relaxed, dt);
}

// q4_tile: q8_tile on Q4/Q5 weights, the format a constant of each specialization.
PLM_INLINE void q4_tile(const matmul_job *j, int t0, int mt, int r0, int nr, int relaxed) {
    switch (j->w->dtype) {
    case PLM_DTYPE_Q4_0: q8_tile(j, t0, mt, r0, nr, relaxed, PLM_DTYPE_Q4_0); break;
    case PLM_DTYPE_Q4_1: q8_tile(j, t0, mt, r0, nr, relaxed, PLM_DTYPE_Q4_1); break;
    case PLM_DTYPE_Q5_0: q8_tile(j, t0, mt, r0, nr, relaxed, PLM_DTYPE_Q5_0); break;
    default: q8_tile(j, t0, mt, r0, nr, relaxed, PLM_DTYPE_Q5_1); break;
    }
}

// Q6_K (matmul_kernels.h): Q8_0's order with a scale per half block. A super-block's half (4
// blocks) is unpacked to int8 q - 32 (GGUF's layout: byte l of ql's two groups of 32 and of qh's
// holds element l of its blocks, so and/shift/or give the blocks in element order); a block's two
// vectors are its two halves of 16. Two blocks a step: their four halves' P in one vector (a lane
// a half, in order), times d * sc * dx (the four int8 sc of the two blocks are adjacent bytes),
// added to the output's accumulator lane by lane (q6k_row1: decode, the tokens past the last 4);
// or, with 4 tokens (q6k_tile4), a half block's 4 P in one vector, a lane a token.

// q6k_half: the 4 blocks of half h of the super-block at sb as int8 q - 32, block k in w[k][0..1].
PLM_INLINE void q6k_half(v128_t w[4][2], const uint8_t *sb, int h) {
    const v128_t lo = wasm_i8x16_splat(15), hi = wasm_i8x16_splat(0x30);
    for (int i = 0; i < 2; i++) { // elements 16 i .. 16 i + 15 of each block
        const v128_t l0 = wasm_v128_load(sb + 64 * h + 16 * i);
        const v128_t l1 = wasm_v128_load(sb + 64 * h + 32 + 16 * i);
        const v128_t qh = wasm_v128_load(sb + 128 + 32 * h + 16 * i);
        const v128_t q[4] = {
            wasm_v128_or(wasm_v128_and(l0, lo), wasm_v128_and(wasm_i8x16_shl(qh, 4), hi)),
            wasm_v128_or(wasm_v128_and(l1, lo), wasm_v128_and(wasm_i8x16_shl(qh, 2), hi)),
            wasm_v128_or(wasm_u8x16_shr(l0, 4), wasm_v128_and(qh, hi)),
            wasm_v128_or(wasm_u8x16_shr(l1, 4), wasm_v128_and(wasm_u8x16_shr(qh, 2), hi))};
        for (int k = 0; k < 4; k++) w[k][i] = wasm_i8x16_sub(q[k], wasm_i8x16_splat(32));
    }
}

// q6k_row1: out[t, r], one token and one row.
PLM_INLINE void q6k_row1(const matmul_job *j, int t, int r, int relaxed) {
    const int C = j->w->cols, nb = C / PLM_QK, nsb = C / PLM_QK_K;
    const int8_t *xs = (const int8_t *)j->xc + (size_t)t * C * 2;
    const float *xd = j->xd + (size_t)t * nb;
    const uint8_t *row = j->w->q6 + (size_t)r * nsb * PLM_Q6K_QS;
    float acc = 0.0f;
    for (int s = 0; s < nsb; s++) {
        const uint8_t *sb = row + (size_t)s * PLM_Q6K_QS;
        const v128_t d = wasm_f32x4_splat(j->w->d[(size_t)r * nsb + s]);
        for (int h = 0; h < 2; h++) {
            v128_t w[4][2];
            q6k_half(w, sb, h);
            for (int k = 0; k < 4; k += 2) {
                const int b = 8 * s + 4 * h + k;
                const int8_t *x = xs + (size_t)b * 2 * PLM_QK;
                const v128_t p = sum4_wasm(
                    q8_quads(w[k][0], x, relaxed), q8_quads(w[k][1], x + 32, relaxed),
                    q8_quads(w[k + 1][0], x + 64, relaxed), q8_quads(w[k + 1][1], x + 96, relaxed));
                // ds = d * sc of the halves (exact), times dx of their block
                const v128_t sc = wasm_i32x4_extend_low_i16x8(
                    wasm_i16x8_extend_low_i8x16(wasm_v128_load32_zero(sb + 192 + 8 * h + 2 * k)));
                const v128_t dx = wasm_v128_load64_zero(xd + b);
                const v128_t ds = wasm_f32x4_mul(d, wasm_f32x4_convert_i32x4(sc));
                const v128_t sv = wasm_f32x4_mul(ds, wasm_i32x4_shuffle(dx, dx, 0, 0, 1, 1));
                acc = chain4_wasm(acc, wasm_f32x4_mul(wasm_f32x4_convert_i32x4(p), sv));
            }
        }
    }
    j->out[(size_t)t * j->w->rows + r] = acc;
}

// q6k_tile4: out[t0 .. t0+4, r] (t0 a multiple of 4): each half super-block unpacked once for the
// 4 tokens, a half block's 4 P in one vector (a lane a token), times ds * dx[t, b], one add.
PLM_INLINE void q6k_tile4(const matmul_job *j, int t0, int r, int relaxed) {
    const int C = j->w->cols, nsb = C / PLM_QK_K;
    const int8_t *xs = (const int8_t *)j->xc + (size_t)t0 * C * 2;
    const float *dxt = q8_dxt(j, t0);
    const uint8_t *row = j->w->q6 + (size_t)r * nsb * PLM_Q6K_QS;
    v128_t acc = wasm_f32x4_splat(0.0f);
    for (int s = 0; s < nsb; s++) {
        const uint8_t *sb = row + (size_t)s * PLM_Q6K_QS;
        const float d = j->w->d[(size_t)r * nsb + s];
        for (int h = 0; h < 2; h++) {
            v128_t w[4][2];
            q6k_half(w, sb, h);
            for (int k = 0; k < 4; k++) {
                const int b = 8 * s + 4 * h + k;
                const int8_t *sc = (const int8_t *)sb + 192 + 8 * h + 2 * k;
                const v128_t dx = wasm_v128_load(dxt + 4 * b);
                for (int i = 0; i < 2; i++) { // the block's halves, in order
                    const int8_t *x = xs + (size_t)b * 2 * PLM_QK + 32 * i;
                    const v128_t p = sum4_wasm(q8_quads(w[k][i], x, relaxed),
                                               q8_quads(w[k][i], x + 2 * C, relaxed),
                                               q8_quads(w[k][i], x + 4 * C, relaxed),
                                               q8_quads(w[k][i], x + 6 * C, relaxed));
                    const v128_t sv = wasm_f32x4_mul(wasm_f32x4_splat(d * (float)sc[i]), dx);
                    acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_f32x4_convert_i32x4(p), sv));
                }
            }
        }
    }
    float o[4];
    wasm_v128_store(o, acc);
    for (int k = 0; k < 4; k++) j->out[(size_t)(t0 + k) * j->w->rows + r] = o[k];
}

// q6k_tile: the tables' tiles are 4 x 1 and 1 x 1.
PLM_INLINE void q6k_tile(const matmul_job *j, int t0, int mt, int r0, int relaxed) {
    if (mt == 4) q6k_tile4(j, t0, r0, relaxed);
    else q6k_row1(j, t0, r0, relaxed);
}

static void q6k_tile_wasm(const matmul_job *j, int t0, int mt, int r0, int nr) {
    (void)nr;
    q6k_tile(j, t0, mt, r0, 0);
}

static void q8_tile_wasm(const matmul_job *j, int t0, int mt, int r0, int nr) {
    q8_tile(j, t0, mt, r0, nr, 0, PLM_DTYPE_Q8_0);
}

static void q4_tile_wasm(const matmul_job *j, int t0, int mt, int r0, int nr) {
    q4_tile(j, t0, mt, r0, nr, 0);
}

// quantize_wasm: quantize_scalar with one block in eight vectors; the same float operations in
// the same order (max is exact in any order), so the same bytes.
static void quantize_wasm(int8_t *q, float *d, const float *x, size_t n) {
    const v128_t lo = wasm_f32x4_splat(-127.0f), hi = wasm_f32x4_splat(127.0f);
    for (size_t b = 0; b < n / PLM_QK; b++) {
        const float *xb = x + b * PLM_QK;
        v128_t v[8], m = wasm_f32x4_splat(0.0f);
        for (int i = 0; i < 8; i++)
            v[i] = wasm_v128_load(xb + 4 * i), m = wasm_f32x4_max(m, wasm_f32x4_abs(v[i]));
        float amax = fmaxf(fmaxf(wasm_f32x4_extract_lane(m, 0), wasm_f32x4_extract_lane(m, 1)),
                           fmaxf(wasm_f32x4_extract_lane(m, 2), wasm_f32x4_extract_lane(m, 3)));
        const float db = amax / 127.0f;
        const v128_t id = wasm_f32x4_splat(db != 0.0f ? 1.0f / db : 0.0f);
        d[b] = db;
        v128_t i32[8];
        for (int i = 0; i < 8; i++)
            i32[i] = wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_nearest(
                wasm_f32x4_min(wasm_f32x4_max(wasm_f32x4_mul(v[i], id), lo), hi)));
        const v128_t s0 = wasm_i16x8_narrow_i32x4(i32[0], i32[1]),
                     s1 = wasm_i16x8_narrow_i32x4(i32[2], i32[3]);
        const v128_t s2 = wasm_i16x8_narrow_i32x4(i32[4], i32[5]),
                     s3 = wasm_i16x8_narrow_i32x4(i32[6], i32[7]);
        wasm_v128_store(q + b * PLM_QK, wasm_i8x16_narrow_i16x8(s0, s1));
        wasm_v128_store(q + b * PLM_QK + 16, wasm_i8x16_narrow_i16x8(s2, s3));
    }
}

// ---- backward: the input gradient through a frozen weight (training) ----

// A tile: DINP_DT tokens x DINP_DV vectors of 4 columns: 8 accumulators, 2 weight vectors and a
// broadcast stay in the 16 vector registers an x86 engine has (16 columns spilled).
#define DINP_DT 4
#define DINP_DV 2

// dinp_tile_wasm: dinp[t0 .. t0+nt, c0 + h .. c0 + h + 8) (columns below n) += the sum over rows
// r0 .. r1 of dout[t, r] * ws[r - r0, h .. h+8), each element summed over r in order from zero
// (madd_wasm: SIMD128 multiplies then adds, as the scalar reference does in wasm, which has no
// scalar FMA; relaxed may fuse), then added to dinp.
PLM_INLINE void dinp_tile_wasm(float *dinp, const float *dout, int32_t R, int32_t C,
                               const float *ws, int32_t t0, int nt, int32_t r0, int32_t r1,
                               int32_t c0, int h, int32_t n, int relaxed) {
    v128_t acc[DINP_DT][DINP_DV];
    for (int t = 0; t < nt; t++)
        for (int v = 0; v < DINP_DV; v++) acc[t][v] = wasm_f32x4_splat(0.0f);
    const float *g = dout + (size_t)t0 * R; // (nt, R)
    for (int32_t r = r0; r < r1; r++) {
        const float *wr = ws + (size_t)(r - r0) * PLM_DINP_NC + h;
        v128_t wv[DINP_DV];
        for (int v = 0; v < DINP_DV; v++) wv[v] = wasm_v128_load(wr + 4 * v);
        for (int t = 0; t < nt; t++) {
            const v128_t gv = wasm_f32x4_splat(g[(size_t)t * R + r]);
            for (int v = 0; v < DINP_DV; v++) acc[t][v] = madd_wasm(acc[t][v], gv, wv[v], relaxed);
        }
    }
    for (int t = 0; t < nt; t++) {
        float *o = dinp + (size_t)(t0 + t) * C + c0;
        for (int v = 0; v < DINP_DV; v++) {
            const int c = h + 4 * v, m = n - c < 4 ? n - c : 4;
            if (m <= 0) continue;
            float sum[4];
            wasm_v128_store(sum, wasm_f32x4_add(load4_wasm(o + c, m), acc[t][v]));
            memcpy(o + c, sum, (size_t)m * sizeof(float));
        }
    }
}

// dinp_tiles_wasm: matmul_kernels.h's dinp_tiles. The slice W[r0 .. r1, c0 .. c0+n) is copied once
// (Q8_0: dequantized, (float)q * d as matmul_backward.c's w_slice; columns beyond n zero) into a
// contiguous (r1 - r0, 32) block that every token tile then reads; tiles of 4 tokens x 8 columns,
// the last tokens one at a time. Each element sums the same rows in the same order whatever the
// tile, so the bits do not depend on T or on the thread count.
PLM_INLINE void dinp_tiles(float *dinp, const float *dout, const plm_mat *w, int32_t T, int32_t r0,
                           int32_t r1, int32_t c0, int32_t n, int relaxed) {
    _Alignas(16) float ws[PLM_DINP_RB * PLM_DINP_NC]; // (r1 - r0, NC): 32 KB
    const int32_t R = w->rows, C = w->cols;
    for (int32_t r = r0; r < r1; r++) {
        float *o = ws + (size_t)(r - r0) * PLM_DINP_NC;
        if (w->dtype == PLM_DTYPE_F32) {
            memcpy(o, w->f32 + (size_t)r * C + c0, (size_t)n * sizeof(float));
            memset(o + n, 0, (size_t)(PLM_DINP_NC - n) * sizeof(float));
            continue;
        }
        const int8_t *q = w->q + (size_t)r * C + c0; // n = 32: one block
        const v128_t d = wasm_f32x4_splat(w->d[(size_t)r * (C / PLM_QK) + c0 / PLM_QK]);
        for (int i = 0; i < 2; i++) {
            const v128_t b = wasm_v128_load(q + 16 * i);
            const v128_t h16[2] = {wasm_i16x8_extend_low_i8x16(b), wasm_i16x8_extend_high_i8x16(b)};
            for (int k = 0; k < 2; k++) {
                const v128_t lo = wasm_i32x4_extend_low_i16x8(h16[k]);
                const v128_t hi = wasm_i32x4_extend_high_i16x8(h16[k]);
                wasm_v128_store(o + 16 * i + 8 * k,
                                wasm_f32x4_mul(wasm_f32x4_convert_i32x4(lo), d));
                wasm_v128_store(o + 16 * i + 8 * k + 4,
                                wasm_f32x4_mul(wasm_f32x4_convert_i32x4(hi), d));
            }
        }
    }
    for (int hc = 0; hc < n; hc += 4 * DINP_DV) {
        int32_t t = 0;
        for (; t + DINP_DT <= T; t += DINP_DT)
            dinp_tile_wasm(dinp, dout, R, C, ws, t, DINP_DT, r0, r1, c0, hc, n, relaxed);
        for (; t < T; t++) dinp_tile_wasm(dinp, dout, R, C, ws, t, 1, r0, r1, c0, hc, n, relaxed);
    }
}

static void dinp_tiles_wasm(float *dinp, const float *dout, const plm_mat *w, int32_t T, int32_t r0,
                            int32_t r1, int32_t c0, int32_t n) {
    dinp_tiles(dinp, dout, w, T, r0, r1, c0, n, 0);
}

// ---- F16 and BF16 weights: the converter (matmul_kernels.h's half) ----

// f16_wasm: 4 f16 values (the low 16 bits of each lane) as f32. SIMD128 has no conversion: the
// exponent and mantissa moved into f32's places (<< 13) and multiplied by 2^112, which rebases
// the exponent (15 -> 127) and turns a subnormal half (exponent 0) into its normal f32 exactly, a
// power of two times a value with at most 11 significant bits; inf and NaN (exponent 31) get
// exponent 255 and keep their mantissa; the sign goes back on last.
PLM_INLINE v128_t f16_wasm(v128_t x) {
    const v128_t sign = wasm_i32x4_shl(wasm_v128_and(x, wasm_i32x4_splat(0x8000)), 16);
    const v128_t em = wasm_i32x4_shl(wasm_v128_and(x, wasm_i32x4_splat(0x7fff)), 13);
    const v128_t finite = wasm_f32x4_mul(em, wasm_f32x4_splat(0x1p112f));
    const v128_t special = wasm_v128_or(em, wasm_i32x4_splat(0x7f800000));
    const v128_t big = wasm_i32x4_gt(em, wasm_i32x4_splat(0x0f7fe000)); // exponent 31
    return wasm_v128_or(sign, wasm_v128_bitselect(special, finite, big));
}

// half_wasm: plm_half_to_f32, 8 values a step: f16_wasm, or BF16 widened and shifted up 16.
static void half_wasm(float *out, const uint16_t *h, size_t n, plm_dtype dtype) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const v128_t v = wasm_v128_load(h + i);
        v128_t lo = wasm_u32x4_extend_low_u16x8(v), hi = wasm_u32x4_extend_high_u16x8(v);
        if (dtype == PLM_DTYPE_BF16) lo = wasm_i32x4_shl(lo, 16), hi = wasm_i32x4_shl(hi, 16);
        else lo = f16_wasm(lo), hi = f16_wasm(hi);
        wasm_v128_store(out + i, lo);
        wasm_v128_store(out + i + 4, hi);
    }
    plm_half_to_f32(out + i, h + i, n - i, dtype);
}

const matmul_kernels plm_kernels_wasm = {
    .f32 = {f32_tile_wasm, 2, 4, 1, NULL, NULL, 0, 0},
    .q8 = {q8_tile_wasm, 4, 2, 4, NULL, NULL, 0, 0},
    .q4 = {q4_tile_wasm, 4, 2, 4, NULL, NULL, 0, 0},
    .q6k = {q6k_tile_wasm, 4, 1, 1, NULL, NULL, 0, 0},
    .half = half_wasm,
    .quantize = quantize_wasm,
    .q8_prepare = q8_prepare_wasm,
    .dinp_tiles = dinp_tiles_wasm,
};

#if defined(__wasm_relaxed_simd__)
static void q8_tile_relaxed(const matmul_job *j, int t0, int mt, int r0, int nr) {
    if (relaxed_planes(j->T)) q8_tile(j, t0, mt, r0, nr, 1, PLM_DTYPE_Q8_0);
    else q8_tile(j, t0, mt, r0, nr, 0, PLM_DTYPE_Q8_0);
}

static void q4_tile_relaxed(const matmul_job *j, int t0, int mt, int r0, int nr) {
    if (relaxed_planes(j->T) || plm_dtype_min(j->w->dtype)) q4_tile(j, t0, mt, r0, nr, 1);
    else q4_tile(j, t0, mt, r0, nr, 0);
}

static void q6k_tile_relaxed(const matmul_job *j, int t0, int mt, int r0, int nr) {
    (void)nr;
    if (relaxed_planes(j->T)) q6k_tile(j, t0, mt, r0, 1);
    else q6k_tile(j, t0, mt, r0, 0);
}

static void dinp_tiles_relaxed(float *dinp, const float *dout, const plm_mat *w, int32_t T,
                               int32_t r0, int32_t r1, int32_t c0, int32_t n) {
    dinp_tiles(dinp, dout, w, T, r0, r1, c0, n, 1);
}

#define TABLE_RELAXED(name, prepare)                                                               \
    {                                                                                              \
        .f32 = {f32_tile_relaxed, 2, 4, 1, NULL, NULL, 0, 0},                                      \
        .q8 = {q8_tile_##name, 4, 2, 4, NULL, NULL, 0, 0},                                         \
        .q4 = {q4_tile_##name, 4, 2, 4, NULL, NULL, 0, 0},                                         \
        .q6k = {q6k_tile_##name, 4, 1, 1, NULL, NULL, 0, 0}, .half = half_wasm,                    \
        .quantize = quantize_wasm, .q8_prepare = prepare, .dinp_tiles = dinp_tiles_relaxed,        \
    }

const matmul_kernels plm_kernels_relaxed = TABLE_RELAXED(relaxed, q8_prepare_relaxed);

// ---- relaxed-dot: the relaxed path with Q8_0's dots as i32x4 dot-adds, on the planes at every T
// (with the dot-add the planes beat SIMD128's split at 4 tokens and more too: prefill of 128 tokens
// in Chromium 176 -> 199 tok/s, LoRA training 58.6-58.9 -> 60.6-60.9, 1 thread, 2026-12-07) ----

static void q8_tile_relaxed_dot(const matmul_job *j, int t0, int mt, int r0, int nr) {
    q8_tile(j, t0, mt, r0, nr, 2, PLM_DTYPE_Q8_0);
}

static void q4_tile_relaxed_dot(const matmul_job *j, int t0, int mt, int r0, int nr) {
    q4_tile(j, t0, mt, r0, nr, 1);
}

static void q6k_tile_relaxed_dot(const matmul_job *j, int t0, int mt, int r0, int nr) {
    (void)nr;
    q6k_tile(j, t0, mt, r0, 1);
}

const matmul_kernels plm_kernels_relaxed_dot = TABLE_RELAXED(relaxed_dot, q8_prepare_planes);

// probe_dot: lane 0 of the dot-add of a, b and c, each 16 bytes from memory the compiler cannot see
// through.
static int32_t probe_dot(const volatile int8_t *a, const volatile int8_t *b,
                         const volatile int32_t *c) {
    int8_t va[16], vb[16];
    int32_t vc[4];
    for (int i = 0; i < 16; i++) va[i] = a[i], vb[i] = b[i];
    for (int i = 0; i < 4; i++) vc[i] = c[i];
    const v128_t r = plm_relaxed_dot_i8x16_i7x16_add_s(wasm_v128_load(va), wasm_v128_load(vb),
                                                       wasm_v128_load(vc));
    return wasm_i32x4_extract_lane(r, 0);
}

// plm_relaxed_dot_probe (cpu.h): first the dot-add on operands in its exact range (b in [0, 127]),
// against the sum in C; then on b = 255, whose result the spec leaves to the engine: a VNNI
// vpdpbusd reads it as unsigned without saturating (c + 4 * 127 * 255), an arm64 sdot as signed -1
// (c - 4 * 127), x86's emulation saturates each pair's pmaddubsw at 32767 (c + 65534).
int plm_relaxed_dot_probe(void) {
    static const int8_t a[16] = {-128, 127, -7, 99, 1, -1, 64, -64, 127, 127, -128, 0, 5, 6, 7, -8};
    static const int8_t b[16] = {127, 127, 3, 0, 100, 1, 2, 127, 127, 127, 127, 9, 0, 1, 2, 3};
    static const int32_t c[4] = {1000, -3, 7, 0}, ones[4] = {1000, 1000, 1000, 1000};
    int32_t want = c[0];
    for (int k = 0; k < 4; k++) want += a[k] * b[k];
    if (probe_dot(a, b, c) != want) return 0;
    static const int8_t max[16] = {127, 127, 127, 127, 127, 127, 127, 127,
                                   127, 127, 127, 127, 127, 127, 127, 127};
    static const int8_t all[16] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};
    const int32_t r = probe_dot(max, all, ones);
    return r == 1000 + 4 * 127 * 255 || r == 1000 - 4 * 127 ? 2 : 1;
}
#endif // __wasm_relaxed_simd__
#endif // __wasm_simd128__
