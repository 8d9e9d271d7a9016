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

// load4_wasm: n (1..4) floats, zero-padded to a vector.
PLM_INLINE v128_t load4_wasm(const float *p, int n) {
    if (n == 4) return wasm_v128_load(p);
    float tmp[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    memcpy(tmp, p, (size_t)n * sizeof(float));
    return wasm_v128_load(tmp);
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
// i32x4.relaxed_dot_i8x16_i7x16_add_s is not used: node 20's baseline compiler (Liftoff, V8 11.3)
// drops its accumulator operand (it returns 2 x the dot); the i16x8 form is right in every tier.

// i16x8.relaxed_dot_i8x16_i7x16_s: lane i = a[2i] * b[2i] + a[2i + 1] * b[2i + 1], a signed. Exact
// only when every byte of b is in [0, 127]: with the top bit set an engine may read b as signed or
// unsigned (x86 engines use pmaddubsw, which reads it as unsigned), and may saturate the pair sum.
__attribute__((const)) v128_t plm_relaxed_dot_i8x16_i7x16_s(v128_t a, v128_t b);
// f32x4.relaxed_madd: a * b + c, fused (one rounding) or not (two), as the engine chooses.
__attribute__((const)) v128_t plm_relaxed_madd_f32x4(v128_t a, v128_t b, v128_t c);
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
// The canonical order of matmul_kernels.h with 128-bit vectors: the 16 accumulators of an output
// are four vectors, lanes 0-3 and 4-7 of even blocks, of odd blocks. A path gives one function:
// the exact int32 sums of each 4 bytes of 16 weight bytes times their 16 inputs (the canonical
// lanes l, l+1, l+2, l+3 of a block's half), from the inputs as its q8_prepare left them, 32 bytes
// for each 16 inputs in xc. The float steps are the same for both, so are the bits.

// q8_split_wasm: the 16 bytes v as even bytes (*ev) and odd bytes (*od), each as i16x8 (shl 8 then
// shr 8; shr 8).
PLM_INLINE void q8_split_wasm(v128_t *ev, v128_t *od, v128_t v) {
    *ev = wasm_i16x8_shr(wasm_i16x8_shl(v, 8), 8);
    *od = wasm_i16x8_shr(v, 8);
}

// q8_prepare_wasm (SIMD128): for each 16 inputs, their even and their odd bytes as i16x8.
static void q8_prepare_wasm(int32_t *xc, const int8_t *xq, const float *xd, int T, int C, int t0,
                            int t1) {
    (void)xd, (void)T;
    int8_t *xs = (int8_t *)xc;
    for (size_t i = (size_t)t0 * (size_t)C; i < (size_t)t1 * (size_t)C; i += 16) {
        v128_t ev, od;
        q8_split_wasm(&ev, &od, wasm_v128_load(xq + i));
        wasm_v128_store(xs + 2 * i, ev);
        wasm_v128_store(xs + 2 * i + 16, od);
    }
}

// q8_quads_wasm (SIMD128): i32x4_dot_i16x8 adds pairs of adjacent i16, so the weights split like
// the inputs give lane l of dot(even) + dot(odd) = bytes 4l .. 4l+3.
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
// adjacent pairs in i32 gives the canonical 4-byte lanes. Per 16 weight bytes: 2 dots, a
// subtraction and a pairwise add, against SIMD128's 3 shifts, 2 dots and an add.

// q8_prepare_relaxed: for each 16 inputs, 16 bytes of pos then 16 of neg.
static void q8_prepare_relaxed(int32_t *xc, const int8_t *xq, const float *xd, int T, int C, int t0,
                               int t1) {
    (void)xd, (void)T;
    int8_t *pl = (int8_t *)xc;
    for (size_t i = (size_t)t0 * (size_t)C; i < (size_t)t1 * (size_t)C; i += 16) {
        const v128_t x = wasm_v128_load(xq + i), pos = wasm_i8x16_max(x, wasm_i8x16_splat(0));
        wasm_v128_store(pl + 2 * i, pos);
        wasm_v128_store(pl + 2 * i + 16, wasm_i8x16_sub(pos, x));
    }
}

// q8_quads_relaxed: dot(w, pos) - dot(w, neg), pairs added (the ones stay in a register; V8's
// pairwise add reloads its constant each time).
PLM_INLINE v128_t q8_quads_relaxed(v128_t wv, const int8_t *pl) {
    const v128_t d = wasm_i16x8_sub(plm_relaxed_dot_i8x16_i7x16_s(wv, wasm_v128_load(pl)),
                                    plm_relaxed_dot_i8x16_i7x16_s(wv, wasm_v128_load(pl + 16)));
    return wasm_i32x4_dot_i16x8(d, wasm_i16x8_splat(1));
}
#endif // __wasm_relaxed_simd__

// q8_quads: the path's 4-byte sums of the 16 weights w (relaxed: a constant at each call).
PLM_INLINE v128_t q8_quads(v128_t w, const int8_t *xs, int relaxed) {
#if defined(__wasm_relaxed_simd__)
    if (relaxed) return q8_quads_relaxed(w, xs);
#endif
    (void)relaxed;
    return q8_quads_wasm(w, xs);
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

// q8_rows: block b (its weights at w[r] + off, Q5_x: its high bits h[r], its prepared inputs at
// xs) of one token into nr rows, with their scales sv (dw * dx, one per row) and the accumulators
// of the block's parity (lanes 0-3, 4-7 per row): acc += float(lanes) * s, a multiply then an add.
PLM_INLINE void q8_rows(v128_t *lo, v128_t *hi, const int8_t *const *w, const uint32_t *h,
                        const v128_t *sv, int nr, const int8_t *xs, int off, int relaxed,
                        plm_dtype dt) {
    for (int r = 0; r < nr; r++) {
        v128_t w0 = wasm_v128_load(w[r] + off), w1;
        if (dt != PLM_DTYPE_Q8_0) {
            w1 = wasm_u8x16_shr(w0, 4);
            w0 = wasm_v128_and(w0, wasm_i8x16_splat(15));
            if (plm_dtype_high(dt))
                w0 = wasm_v128_or(w0, high_wasm(h[r])),
                w1 = wasm_v128_or(w1, high_wasm(h[r] >> 16));
            const int8_t o = (int8_t)plm_q4_offset(dt);
            if (o)
                w0 = wasm_i8x16_sub(w0, wasm_i8x16_splat(o)),
                w1 = wasm_i8x16_sub(w1, wasm_i8x16_splat(o));
        } else {
            w1 = wasm_v128_load(w[r] + off + 16);
        }
        const v128_t p0 = q8_quads(w0, xs, relaxed);
        lo[r] = wasm_f32x4_add(lo[r], wasm_f32x4_mul(wasm_f32x4_convert_i32x4(p0), sv[r]));
        const v128_t p1 = q8_quads(w1, xs + 32, relaxed);
        hi[r] = wasm_f32x4_add(hi[r], wasm_f32x4_mul(wasm_f32x4_convert_i32x4(p1), sv[r]));
    }
}

// q8_sum: the canonical end sum: h = (e0 + o0 | e1 + o1), then h0-3 + h4-7, then
// (lane 0 + lane 2) + (lane 1 + lane 3).
PLM_INLINE float q8_sum(v128_t e0, v128_t e1, v128_t o0, v128_t o1) {
    const v128_t h = wasm_f32x4_add(wasm_f32x4_add(e0, o0), wasm_f32x4_add(e1, o1));
    return (wasm_f32x4_extract_lane(h, 0) + wasm_f32x4_extract_lane(h, 2)) +
           (wasm_f32x4_extract_lane(h, 1) + wasm_f32x4_extract_lane(h, 3));
}

// q8_block: one token times nr rows (a constant at each call, so that the loops over rows unroll
// and the accumulators stay in locals: an array of v128 indexed at run time lives in linear
// memory in wasm, and every step would store it). Blocks go in pairs (even, odd); the scales of a
// pair are one vector multiply per row. (4 blocks a step measured no faster in Chromium and
// slower in node 20, whose V8 moves every load of a loop body to its top, where 4 blocks' spill.)
PLM_INLINE void q8_block(const matmul_job *j, int t0, int r0, int nr, int relaxed, plm_dtype dt) {
    const int C = j->w->cols, nb = C / PLM_QK, q4 = dt != PLM_DTYPE_Q8_0;
    const int bb = q4 ? 16 : PLM_QK; // bytes a block
    const int8_t *xs = (const int8_t *)j->xc + (size_t)t0 * C * 2;
    const float *xd = j->xd + (size_t)t0 * nb;
    const int8_t *w[2];
    const float *wd[2];
    const uint32_t *qh[2];
    uint32_t he[2] = {0, 0}, ho[2] = {0, 0}; // Q5_x: the high bits of the even and odd block
    v128_t e0[2], e1[2], o0[2], o1[2];
    for (int r = 0; r < nr; r++) {
        w[r] = q4 ? (const int8_t *)j->w->q4 + (size_t)(r0 + r) * nb * 16
                  : j->w->q + (size_t)(r0 + r) * C;
        wd[r] = j->w->d + (size_t)(r0 + r) * nb;
        qh[r] = plm_dtype_high(dt) ? j->w->qh + (size_t)(r0 + r) * nb : NULL;
        e0[r] = e1[r] = o0[r] = o1[r] = wasm_f32x4_splat(0.0f);
    }
    int b = 0;
    for (; b + 2 <= nb; b += 2) {
        const v128_t dx = wasm_v128_load64_zero(xd + b);
        v128_t se[2], so[2];
        for (int r = 0; r < nr; r++) {
            const v128_t s = wasm_f32x4_mul(wasm_v128_load64_zero(wd[r] + b), dx);
            se[r] = wasm_i32x4_shuffle(s, s, 0, 0, 0, 0);
            so[r] = wasm_i32x4_shuffle(s, s, 1, 1, 1, 1);
            if (plm_dtype_high(dt)) he[r] = qh[r][b], ho[r] = qh[r][b + 1];
        }
        q8_rows(e0, e1, w, he, se, nr, xs, 0, relaxed, dt);
        q8_rows(o0, o1, w, ho, so, nr, xs + 2 * PLM_QK, bb, relaxed, dt);
        for (int r = 0; r < nr; r++) w[r] += 2 * bb;
        xs += 4 * PLM_QK;
    }
    if (b < nb) {
        v128_t se[2];
        for (int r = 0; r < nr; r++) {
            se[r] = wasm_f32x4_splat(wd[r][b] * xd[b]);
            if (plm_dtype_high(dt)) he[r] = qh[r][b];
        }
        q8_rows(e0, e1, w, he, se, nr, xs, 0, relaxed, dt);
    }
    float *out = j->out + (size_t)t0 * j->w->rows + r0;
    for (int r = 0; r < nr; r++) {
        out[r] = q8_sum(e0[r], e1[r], o0[r], o1[r]);
        if (plm_dtype_min(dt))
            out[r] =
                out[r] + plm_q4_m_sum(j->w->m + (size_t)(r0 + r) * nb, j->xs + (size_t)t0 * nb, nb);
    }
}

// q8_tile: prefill (MT 2, NR 2): mt tokens, one after the other, times 2 rows (or 1); 4 rows'
// 16 accumulators would spill. Decode (T = 1 < MT: the tables' dnr, 4 rows) takes the rows one
// after the other, each a whole row before the next: the weights are then one sequential stream,
// which measured 2.2x the decode speed of 4 interleaved rows in node on a busy machine
// (2026-12-05); 4 rows a call rather than 1 spend less on calls and set-up.
PLM_INLINE void q8_tile(const matmul_job *j, int t0, int mt, int r0, int nr, int relaxed,
                        plm_dtype dt) {
    if (nr == 4) {
        for (int r = r0; r < r0 + 4; r++) q8_block(j, t0, r, 1, relaxed, dt);
        return;
    }
    for (int t = t0; t < t0 + mt; t++) {
        if (nr == 2) q8_block(j, t, r0, 2, relaxed, dt);
        else q8_block(j, t, r0, 1, relaxed, dt);
    }
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
// vectors are its two sub-blocks of 16: lanes 0-3 take the first one's d * sc * dx, lanes 4-7 the
// second's. One token and one row a call.

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

// q6k_tile: out[t0, r0] (the tables' tiles are 1 x 1).
PLM_INLINE void q6k_tile(const matmul_job *j, int t0, int r0, int relaxed) {
    const int C = j->w->cols, nb = C / PLM_QK, nsb = C / PLM_QK_K;
    const int8_t *xs = (const int8_t *)j->xc + (size_t)t0 * C * 2;
    const float *xd = j->xd + (size_t)t0 * nb;
    const uint8_t *row = j->w->q6 + (size_t)r0 * nsb * PLM_Q6K_QS;
    v128_t acc[2][2] = {{wasm_f32x4_splat(0.0f), wasm_f32x4_splat(0.0f)},
                        {wasm_f32x4_splat(0.0f), wasm_f32x4_splat(0.0f)}};
    for (int s = 0; s < nsb; s++) {
        const uint8_t *sb = row + (size_t)s * PLM_Q6K_QS;
        const float d = j->w->d[(size_t)r0 * nsb + s];
        for (int h = 0; h < 2; h++) {
            v128_t w[4][2];
            q6k_half(w, sb, h);
            for (int k = 0; k < 4; k++) {
                const int b = 8 * s + 4 * h + k;
                const int8_t *sc = (const int8_t *)sb + 192 + 8 * h + 2 * k;
                const v128_t s0 = wasm_f32x4_splat(d * (float)sc[0] * xd[b]);
                const v128_t s1 = wasm_f32x4_splat(d * (float)sc[1] * xd[b]);
                const v128_t p0 = q8_quads(w[k][0], xs + 2 * b * PLM_QK, relaxed);
                const v128_t p1 = q8_quads(w[k][1], xs + 2 * b * PLM_QK + 32, relaxed);
                v128_t *a = acc[k % 2];
                a[0] = wasm_f32x4_add(a[0], wasm_f32x4_mul(wasm_f32x4_convert_i32x4(p0), s0));
                a[1] = wasm_f32x4_add(a[1], wasm_f32x4_mul(wasm_f32x4_convert_i32x4(p1), s1));
            }
        }
    }
    j->out[(size_t)t0 * j->w->rows + r0] = q8_sum(acc[0][0], acc[0][1], acc[1][0], acc[1][1]);
}

static void q6k_tile_wasm(const matmul_job *j, int t0, int mt, int r0, int nr) {
    (void)mt, (void)nr;
    q6k_tile(j, t0, r0, 0);
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

const matmul_kernels plm_kernels_wasm = {
    .f32 = {f32_tile_wasm, 2, 4, 1, NULL, NULL, 0, 0},
    .q8 = {q8_tile_wasm, 2, 2, 4, NULL, NULL, 0, 0},
    .q4 = {q4_tile_wasm, 2, 2, 4, NULL, NULL, 0, 0},
    .q6k = {q6k_tile_wasm, 1, 1, 1, NULL, NULL, 0, 0},
    .quantize = quantize_wasm,
    .q8_prepare = q8_prepare_wasm,
    .dinp_tiles = dinp_tiles_wasm,
};

#if defined(__wasm_relaxed_simd__)
static void q8_tile_relaxed(const matmul_job *j, int t0, int mt, int r0, int nr) {
    q8_tile(j, t0, mt, r0, nr, 1, PLM_DTYPE_Q8_0);
}

static void q4_tile_relaxed(const matmul_job *j, int t0, int mt, int r0, int nr) {
    q4_tile(j, t0, mt, r0, nr, 1);
}

static void q6k_tile_relaxed(const matmul_job *j, int t0, int mt, int r0, int nr) {
    (void)mt, (void)nr;
    q6k_tile(j, t0, r0, 1);
}

static void dinp_tiles_relaxed(float *dinp, const float *dout, const plm_mat *w, int32_t T,
                               int32_t r0, int32_t r1, int32_t c0, int32_t n) {
    dinp_tiles(dinp, dout, w, T, r0, r1, c0, n, 1);
}

const matmul_kernels plm_kernels_relaxed = {
    .f32 = {f32_tile_relaxed, 2, 4, 1, NULL, NULL, 0, 0},
    .q8 = {q8_tile_relaxed, 2, 2, 4, NULL, NULL, 0, 0},
    .q4 = {q4_tile_relaxed, 2, 2, 4, NULL, NULL, 0, 0},
    .q6k = {q6k_tile_relaxed, 1, 1, 1, NULL, NULL, 0, 0},
    .quantize = quantize_wasm,
    .q8_prepare = q8_prepare_relaxed,
    .dinp_tiles = dinp_tiles_relaxed,
};
#endif // __wasm_relaxed_simd__
#endif // __wasm_simd128__
