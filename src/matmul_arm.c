// matmul_arm.c: the arm64 paths of matmul_kernels.h: neon (Advanced SIMD, every arm64 CPU) and
// dotprod (+ SDOT). Every arm64 build compiles both for the baseline armv8-a, and the driver takes
// the dotprod table only when cpu.c found SDOT: one binary runs on any arm64 CPU. The kernels are
// written once with a flag that picks the integer dot; only the dotprod table's entry function has
// the target attribute (PLM_TARGET_DOTPROD: GCC and clang spell it differently), so only it may
// hold SDOT. SDOT is inline assembly rather than vdotq_s32: clang 14's arm_neon.h declares the
// intrinsic only when the whole file is compiled for dotprod, and GCC's vdotq_s32 cannot be inlined
// into the shared helpers, which have no target attribute; the assembly reads the same to both.
//
// i8mm runs the dotprod kernels. SMMLA multiplies a 2 x 8 by an 8 x 2 byte matrix, so each int32
// it gives sums 8 adjacent bytes, and the canonical Q8_0 order (matmul_kernels.h) converts sums of
// 4 bytes to float. Zeroing half of one operand (x bytes 0-3 | 0 0 0 0 and 0 0 0 0 | bytes 4-7)
// makes SMMLA give 4-byte sums, but then one SMMLA yields 4 canonical lanes, as one SDOT does, and
// the masks and the shuffles back to canonical lanes cost more; nor is the integer dot what limits
// the kernel: per block and output, 2 SDOT against 6 float operations (convert, scale, add) that
// the canonical order fixes. So SMMLA cannot be faster here without changing Q8_0's bits.
//
// f32 order on arm64: each out[t, r] accumulates 4 lanes (k mod 4) with FMA from k = 0 up (a last
// partial vector is zero-padded), then sums them as (l0 + l1) + (l2 + l3). A lane per k, not a lane
// per row (broadcast x[t, k] against 4 rows' weights): decode (T = 1) must give a row of prefill's
// bits, and with rows in lanes every 4 x 4 block of weights would be transposed on the fly (8
// shuffles per 4 FMA) and 16 rows interleaved to hide the FMA latency; with k in lanes both decode
// and prefill are loads and FMA only, and the end sums of 4 rows share 3 pairwise adds.
#include <assert.h>
#include <string.h>

#include "matmul_kernels.h"

#if defined(__aarch64__)
#include <arm_neon.h>

#if defined(__clang__)
#define PLM_TARGET_DOTPROD __attribute__((target("dotprod")))
#else
#define PLM_TARGET_DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))
#endif

#define PF_BYTES 6144 // decode prefetches the weights at least this far ahead
#define F32_MT   4    // f32 tile: tokens x rows: 20 accumulators + 4 inputs + 5 weights fit the
#define F32_NR   5    // 32 registers (4 x 6 spills two accumulators a step); 9 loads per 20 FMA
#define F32_DNR  8    // f32 decode: rows per tile, 8 independent FMA chains (latency 4, 2 pipes)
#define Q8_MT    2    // Q8_0 tile: 4 accumulators per output (even / odd blocks, lanes 0-3 / 4-7);
#define Q8_NR    1    // the work per output is fixed, larger tiles would only save loads
#define Q8_DNR   2    // Q8_0 decode: 2 rows per tile, whose end sums share their vector ops
#define DT       4    // input gradient: tokens per tile (4 x 16 columns: 16 accumulators)

// TILE_LOOP(i, n, max): for i in [0, n), n <= max, n a constant after inlining (a tile's tokens or
// rows). The loop runs to max and skips i >= n: its bound is then a constant in the inline function
// itself, which clang optimizes before inlining it; with a run-time bound clang leaves the loop
// rolled (and marked never to unroll) and the accumulators on the stack. GCC unrolls either way.
#define TILE_LOOP(i, n, max)                                                                       \
    UNROLL                                                                                         \
    for (int i = 0; i < (max); i++)                                                                \
        if (i < (n))

// prefetch_rows: how many rows ahead decode prefetches: PF_BYTES of rows of row_bytes, and at
// least the next tile (nr rows), since the rows of a tile are read side by side.
static int prefetch_rows(size_t row_bytes, int nr) {
    const int n = (int)((PF_BYTES + row_bytes - 1) / row_bytes);
    return n > nr ? n : nr;
}

// ---- f32 ----

// load_lanes: m (1..4) floats at p, zero-padded to a vector.
PLM_INLINE float32x4_t load_lanes(const float *p, int m) {
    if (m == 4) return vld1q_f32(p);
    float tmp[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    memcpy(tmp, p, (size_t)m * sizeof(float));
    return vld1q_f32(tmp);
}

// store_lanes: the first m (1..4) lanes of v to o.
PLM_INLINE void store_lanes(float *o, float32x4_t v, int m) {
    if (m == 4) {
        vst1q_f32(o, v);
        return;
    }
    float tmp[4];
    vst1q_f32(tmp, v);
    memcpy(o, tmp, (size_t)m * sizeof(float));
}

// f32_store: out[r] = (l0 + l1) + (l2 + l3) of acc[r] for r < nr, four rows at a time with
// pairwise adds (no horizontal sum per row); a last group of fewer rows is padded with zeros.
PLM_INLINE void f32_store(float *out, const float32x4_t *acc, int nr) {
    const float32x4_t z = vdupq_n_f32(0.0f);
    UNROLL
    for (int r = 0; r < F32_DNR; r += 4) {
        if (r >= nr) break;
        const int m = nr - r < 4 ? nr - r : 4;
        const float32x4_t a = acc[r], b = m > 1 ? acc[r + 1] : z;
        const float32x4_t c = m > 2 ? acc[r + 2] : z, d = m > 3 ? acc[r + 3] : z;
        store_lanes(out + r, vpaddq_f32(vpaddq_f32(a, b), vpaddq_f32(c, d)), m);
    }
}

// f32_block_neon: out[t0 .. t0+mt, r0 .. r0+nr] in the arm64 f32 order (top of file); mt and nr
// are constants at each call site, so the accumulators stay in registers. Decode (mt 1) prefetches
// the rows pfr ahead into L2 (8 rows of 1536 floats are 48 KB: too far ahead for L1).
PLM_INLINE void f32_block_neon(const matmul_job *j, int t0, int mt, int r0, int nr) {
    const int C = j->w->cols, R = j->w->rows;
    const float *x = j->inp + (size_t)t0 * C;    // (mt, C)
    const float *w = j->w->f32 + (size_t)r0 * C; // (nr, C)
    const int pfr = prefetch_rows((size_t)C * sizeof(float), nr);
    const float *pf = mt == 1 && r0 + nr + pfr <= R ? w + (size_t)pfr * C : NULL;
    float32x4_t acc[F32_MT][F32_DNR];
    TILE_LOOP(t, mt, F32_MT)
    TILE_LOOP(r, nr, F32_DNR) acc[t][r] = vdupq_n_f32(0.0f);
    int k = 0;
    for (; k + 4 <= C; k += 4) {
        float32x4_t xv[F32_MT];
        TILE_LOOP(t, mt, F32_MT) xv[t] = vld1q_f32(x + (size_t)t * C + k);
        TILE_LOOP(r, nr, F32_DNR) {
            const float32x4_t wv = vld1q_f32(w + (size_t)r * C + k);
            if (pf && k % 16 == 0) __builtin_prefetch(pf + (size_t)r * C + k, 0, 2);
            TILE_LOOP(t, mt, F32_MT) acc[t][r] = vfmaq_f32(acc[t][r], xv[t], wv);
        }
    }
    if (k < C) { // the last 1-3 columns, zero-padded: the padding adds +0 to each lane
        float32x4_t xv[F32_MT];
        TILE_LOOP(t, mt, F32_MT) xv[t] = load_lanes(x + (size_t)t * C + k, C - k);
        TILE_LOOP(r, nr, F32_DNR) {
            const float32x4_t wv = load_lanes(w + (size_t)r * C + k, C - k);
            TILE_LOOP(t, mt, F32_MT) acc[t][r] = vfmaq_f32(acc[t][r], xv[t], wv);
        }
    }
    TILE_LOOP(t, mt, F32_MT) f32_store(j->out + (size_t)(t0 + t) * R + r0, acc[t], nr);
}

// f32_tile_neon: the driver's tile shapes: (4, 5) prefill, (1, 8) decode, the others at the edges.
static void f32_tile_neon(const matmul_job *j, int t0, int mt, int r0, int nr) {
    if (mt == F32_MT && nr == F32_NR) f32_block_neon(j, t0, F32_MT, r0, F32_NR);
    else if (mt == F32_MT) f32_block_neon(j, t0, F32_MT, r0, 1);
    else if (nr == F32_DNR) f32_block_neon(j, t0, 1, r0, F32_DNR);
    else if (nr == F32_NR) f32_block_neon(j, t0, 1, r0, F32_NR);
    else f32_block_neon(j, t0, 1, r0, 1);
}

// f32_warm_neon: prefetch into L2 the rows that decode's first tiles read before their own
// prefetches reach (the first pfr rows of the thread's share).
static void f32_warm_neon(const matmul_job *j, int r0, int r1) {
    const size_t C = (size_t)j->w->cols;
    const int n = prefetch_rows(C * sizeof(float), F32_DNR);
    const char *p = (const char *)(j->w->f32 + (size_t)r0 * C);
    const size_t bytes = (size_t)(r1 - r0 < n ? r1 - r0 : n) * C * sizeof(float);
    for (size_t o = 0; o < bytes; o += 64) __builtin_prefetch(p + o, 0, 2);
}

// ---- Q8_0: the canonical order of matmul_kernels.h ----

// q8_dot_neon: lane l = the exact int32 sum of the products of bytes 4l .. 4l+3 of x and w.
// |x| <= 127 (the quantizer never gives -128) and |w| <= 128, so a pair of products fits int16
// (at most 32512): the pairwise sums in 16 bits are exact.
PLM_INLINE int32x4_t q8_dot_neon(int8x16_t x, int8x16_t w) {
    const int16x8_t lo = vmull_s8(vget_low_s8(x), vget_low_s8(w)), hi = vmull_high_s8(x, w);
    return vpaddlq_s16(vpaddq_s16(lo, hi));
}

// q8_dot_sdot: the same lanes, one SDOT; only for functions inlined into a PLM_TARGET_DOTPROD one
// (the assembler takes SDOT there only; see the top of the file for why inline assembly).
PLM_INLINE int32x4_t q8_dot_sdot(int8x16_t x, int8x16_t w) {
    int32x4_t acc = vdupq_n_s32(0);
    __asm__("sdot %0.4s, %1.16b, %2.16b" : "+w"(acc) : "w"(x), "w"(w));
    return acc;
}

// Q4_0, Q4_1, Q5_0 and Q5_1 (matmul_kernels.h) run the same kernels on their weights as int8: a
// block's 16 bytes give elements 0-15 (low nibbles) and 16-31 (high ones) as two vectors, Q5_x
// ORs in 16 where the element's bit of qh is set, Q4_0 and Q5_0 subtract 8 or 16, and Q4_1 and
// Q5_1 add their minimums' term to each output (the scalar reference's plm_q4_m_sum). dt: the
// weights' dtype (a constant at each call site).
#define Q4_BLOCK_BYTES(dt) ((dt) == PLM_DTYPE_Q8_0 ? PLM_QK : 16) // a row's bytes per block

// high_neon: byte i = 16 where bit i of h is set, else 0 (i = 0..15): bytes 0-7 take h's low
// byte, 8-15 its high one, and each tests its own bit.
PLM_INLINE uint8x16_t high_neon(uint32_t h) {
    const uint8x16_t bit = vreinterpretq_u8_u64(vdupq_n_u64(0x8040201008040201ULL));
    const uint8x16_t v = vcombine_u8(vdup_n_u8((uint8_t)h), vdup_n_u8((uint8_t)(h >> 8)));
    return vandq_u8(vtstq_u8(v, bit), vdupq_n_u8(16));
}

// w_block: the 32 weights of block b of the row at w (Q5_x: its high bits h) as two vectors of
// int8.
PLM_INLINE void w_block(int8x16_t *w0, int8x16_t *w1, const uint8_t *w, int b, uint32_t h,
                        plm_dtype dt) {
    if (dt == PLM_DTYPE_Q8_0) {
        *w0 = vld1q_s8((const int8_t *)w + b * PLM_QK);
        *w1 = vld1q_s8((const int8_t *)w + b * PLM_QK + 16);
        return;
    }
    const uint8x16_t v = vld1q_u8(w + b * 16);
    uint8x16_t k0 = vandq_u8(v, vdupq_n_u8(15)), k1 = vshrq_n_u8(v, 4);
    if (plm_dtype_high(dt)) k0 = vorrq_u8(k0, high_neon(h)), k1 = vorrq_u8(k1, high_neon(h >> 16));
    *w0 = vreinterpretq_s8_u8(k0), *w1 = vreinterpretq_s8_u8(k1);
    const int off = plm_q4_offset(dt);
    if (off)
        *w0 = vsubq_s8(*w0, vdupq_n_s8((int8_t)off)), *w1 = vsubq_s8(*w1, vdupq_n_s8((int8_t)off));
}

// q8_step: block b (odd: into the odd-block accumulators) of mt tokens and nr rows (rs bytes
// apart): each canonical lane converted to float, times dw * dx (lane ln of s), then added; mul and
// add stay two roundings (-std=c11 keeps the compiler from contracting them). sdot picks the
// integer dot, dt the weights' format (Q5_x: the rows' high bits at qh, nb words a row).
PLM_INLINE void q8_step(float32x4_t acc[Q8_MT][Q8_DNR][4], const int8_t *xq, const uint8_t *wq,
                        const uint32_t *qh, size_t rs, int C, int mt, int nr, int b, int odd,
                        float32x2_t s[Q8_MT][Q8_DNR], int ln, int sdot, plm_dtype dt) {
    int8x16_t xv[Q8_MT][2];
    TILE_LOOP(t, mt, Q8_MT) {
        xv[t][0] = vld1q_s8(xq + (size_t)t * C + b * PLM_QK);
        xv[t][1] = vld1q_s8(xq + (size_t)t * C + b * PLM_QK + 16);
    }
    TILE_LOOP(r, nr, Q8_DNR) {
        int8x16_t w0, w1;
        const uint32_t h = plm_dtype_high(dt) ? qh[(size_t)r * (C / PLM_QK) + b] : 0;
        w_block(&w0, &w1, wq + (size_t)r * rs, b, h, dt);
        TILE_LOOP(t, mt, Q8_MT) {
            const int32x4_t p0 = sdot ? q8_dot_sdot(xv[t][0], w0) : q8_dot_neon(xv[t][0], w0);
            const int32x4_t p1 = sdot ? q8_dot_sdot(xv[t][1], w1) : q8_dot_neon(xv[t][1], w1);
            const float sc = s[t][r][ln];
            float32x4_t *a = acc[t][r] + 2 * odd;
            a[0] = vaddq_f32(a[0], vmulq_n_f32(vcvtq_f32_s32(p0), sc));
            a[1] = vaddq_f32(a[1], vmulq_n_f32(vcvtq_f32_s32(p1), sc));
        }
    }
}

// q8_store: out[r] for r < nr (1 or 2) from the accumulators (even 0-3, even 4-7, odd 0-3, odd
// 4-7) of each row: the canonical end sum, h = even + odd, a = h(0-3) + h(4-7), then
// (a0 + a2) + (a1 + a3): for rows A, B the halves of a_A | a_B added give (A0 + A2, A1 + A3,
// B0 + B2, B1 + B3), and one pairwise add gives both sums (no horizontal sum per row).
PLM_INLINE void q8_store(float *out, float32x4_t acc[Q8_DNR][4], int nr) {
    float32x4_t a[Q8_DNR];
    TILE_LOOP(i, nr, Q8_DNR)
    a[i] = vaddq_f32(vaddq_f32(acc[i][0], acc[i][2]), vaddq_f32(acc[i][1], acc[i][3]));
    if (nr == 1) a[1] = a[0];
    const float32x4_t ab = vaddq_f32(vcombine_f32(vget_low_f32(a[0]), vget_low_f32(a[1])),
                                     vcombine_f32(vget_high_f32(a[0]), vget_high_f32(a[1])));
    store_lanes(out, vpaddq_f32(ab, ab), nr);
}

// q8_block: out[t0 .. t0+mt, r0 .. r0+nr] in the canonical order, an even and an odd block a
// step, their two scales dw * dx one vector product per (t, r); a last odd block takes a scalar
// product (the same float multiply). mt * nr <= 2 outputs (8 accumulators): with 4 outputs GCC's
// scheduler starts a step's 16 loads early and spills accumulators. Decode (mt 1) prefetches the
// weights and their scales pfr rows ahead (the scales are a second stream that the hardware
// prefetcher may not keep ahead of).
PLM_INLINE void q8_block(const matmul_job *j, int t0, int mt, int r0, int nr, int sdot,
                         plm_dtype dt) {
    const int C = j->w->cols, R = j->w->rows, nb = C / PLM_QK, q4 = dt != PLM_DTYPE_Q8_0;
    const size_t rs = (size_t)nb * Q4_BLOCK_BYTES(dt); // bytes a row of weights
    const int8_t *xq = j->xq + (size_t)t0 * C;         // (mt, C)
    const uint8_t *wq = (q4 ? j->w->q4 : (const uint8_t *)j->w->q) + r0 * rs;    // (nr, rs)
    const uint32_t *qh = plm_dtype_high(dt) ? j->w->qh + (size_t)r0 * nb : NULL; // (nr, nb)
    const float *xd = j->xd + (size_t)t0 * nb, *wd = j->w->d + (size_t)r0 * nb;  // (mt|nr, nb)
    const int pfr = prefetch_rows(rs, nr);
    const int pf = mt == 1 && r0 + nr + pfr <= R;
    float32x4_t acc[Q8_MT][Q8_DNR][4];
    float32x2_t s[Q8_MT][Q8_DNR];
    TILE_LOOP(t, mt, Q8_MT)
    TILE_LOOP(r, nr, Q8_DNR)
    UNROLL
    for (int i = 0; i < 4; i++) acc[t][r][i] = vdupq_n_f32(0.0f);
    int b = 0;
    for (; b + 2 <= nb; b += 2) {
        TILE_LOOP(r, nr, Q8_DNR) {
            const float32x2_t ws = vld1_f32(wd + (size_t)r * nb + b);
            TILE_LOOP(t, mt, Q8_MT) s[t][r] = vmul_f32(ws, vld1_f32(xd + (size_t)t * nb + b));
            if (pf) { // the line of the two blocks and, every 16 blocks, a line of scales
                __builtin_prefetch(wq + (size_t)(r + pfr) * rs + b * Q4_BLOCK_BYTES(dt), 0, 0);
                if (b % 16 == 0) __builtin_prefetch(wd + (size_t)(r + pfr) * nb + b, 0, 0);
            }
        }
        q8_step(acc, xq, wq, qh, rs, C, mt, nr, b, 0, s, 0, sdot, dt);
        q8_step(acc, xq, wq, qh, rs, C, mt, nr, b + 1, 1, s, 1, sdot, dt);
    }
    if (b < nb) {
        TILE_LOOP(r, nr, Q8_DNR)
        TILE_LOOP(t, mt, Q8_MT)
        s[t][r] = vdup_n_f32(wd[(size_t)r * nb + b] * xd[(size_t)t * nb + b]);
        q8_step(acc, xq, wq, qh, rs, C, mt, nr, b, 0, s, 0, sdot, dt);
    }
    TILE_LOOP(t, mt, Q8_MT) q8_store(j->out + (size_t)(t0 + t) * R + r0, acc[t], nr);
    for (int t = 0; plm_dtype_min(dt) && t < mt; t++)
        for (int r = 0; r < nr; r++) {
            float *o = j->out + (size_t)(t0 + t) * R + r0 + r;
            const float *m = j->w->m + (size_t)(r0 + r) * nb, *xs = j->xs + (size_t)(t0 + t) * nb;
            *o = *o + plm_q4_m_sum(m, xs, nb);
        }
}

// q8_tiles: the driver's tile shapes: (2, 1) prefill, (1, 2) decode, (1, 1) the edges.
PLM_INLINE void q8_tiles(const matmul_job *j, int t0, int mt, int r0, int nr, int sdot,
                         plm_dtype dt) {
    if (mt == Q8_MT) q8_block(j, t0, Q8_MT, r0, 1, sdot, dt);
    else if (nr == Q8_DNR) q8_block(j, t0, 1, r0, Q8_DNR, sdot, dt);
    else q8_block(j, t0, 1, r0, 1, sdot, dt);
}

// q8_tile_neon, q8_tile_dotprod, q4_tile_neon, q4_tile_dotprod: the tables' tiles; the dotprod
// ones may hold SDOT (PLM_TARGET_DOTPROD), inlined from q8_dot_sdot.
static void q8_tile_neon(const matmul_job *j, int t0, int mt, int r0, int nr) {
    q8_tiles(j, t0, mt, r0, nr, 0, PLM_DTYPE_Q8_0);
}

PLM_TARGET_DOTPROD static void q8_tile_dotprod(const matmul_job *j, int t0, int mt, int r0,
                                               int nr) {
    q8_tiles(j, t0, mt, r0, nr, 1, PLM_DTYPE_Q8_0);
}

// q4_tiles: q8_tiles on Q4/Q5 weights, the format a constant of each specialization.
PLM_INLINE void q4_tiles(const matmul_job *j, int t0, int mt, int r0, int nr, int sdot) {
    switch (j->w->dtype) {
    case PLM_DTYPE_Q4_0: q8_tiles(j, t0, mt, r0, nr, sdot, PLM_DTYPE_Q4_0); break;
    case PLM_DTYPE_Q4_1: q8_tiles(j, t0, mt, r0, nr, sdot, PLM_DTYPE_Q4_1); break;
    case PLM_DTYPE_Q5_0: q8_tiles(j, t0, mt, r0, nr, sdot, PLM_DTYPE_Q5_0); break;
    default: q8_tiles(j, t0, mt, r0, nr, sdot, PLM_DTYPE_Q5_1); break;
    }
}

static void q4_tile_neon(const matmul_job *j, int t0, int mt, int r0, int nr) {
    q4_tiles(j, t0, mt, r0, nr, 0);
}

PLM_TARGET_DOTPROD static void q4_tile_dotprod(const matmul_job *j, int t0, int mt, int r0,
                                               int nr) {
    q4_tiles(j, t0, mt, r0, nr, 1);
}

// q8_warm_neon: prefetch the weights and scales of the rows that decode's first tiles read before
// their own prefetches reach.
static void q8_warm_neon(const matmul_job *j, int r0, int r1) {
    const size_t C = (size_t)j->w->cols;
    const int n = prefetch_rows(C, Q8_DNR), rows = r1 - r0 < n ? r1 - r0 : n;
    const char *q = (const char *)(j->w->q + (size_t)r0 * C);
    const char *d = (const char *)(j->w->d + (size_t)r0 * (C / PLM_QK));
    for (size_t o = 0; o < (size_t)rows * C; o += 64) __builtin_prefetch(q + o, 0, 0);
    for (size_t o = 0; o < (size_t)rows * C / 8; o += 64) __builtin_prefetch(d + o, 0, 0);
}

// quantize_neon: quantize_scalar with one block in eight vectors; the same float operations (max
// is exact in any order; maxnm / minnm ignore a NaN as fmaxf / fminf do; vcvtnq rounds to nearest
// even as lrintf does), so the same bytes.
static void quantize_neon(int8_t *q, float *d, const float *x, size_t n) {
    const float32x4_t lo = vdupq_n_f32(-127.0f), hi = vdupq_n_f32(127.0f);
    for (size_t b = 0; b < n / PLM_QK; b++) {
        const float *xb = x + b * PLM_QK;
        float32x4_t v[8], m = vdupq_n_f32(0.0f);
        for (int i = 0; i < 8; i++) {
            v[i] = vld1q_f32(xb + 4 * i);
            m = vmaxnmq_f32(m, vabsq_f32(v[i]));
        }
        const float db = vmaxnmvq_f32(m) / 127.0f;
        const float32x4_t id = vdupq_n_f32(db != 0.0f ? 1.0f / db : 0.0f);
        d[b] = db;
        int16x8_t h[4];
        for (int i = 0; i < 4; i++) {
            int32x4_t i32[2];
            for (int k = 0; k < 2; k++) {
                const float32x4_t y = vmulq_f32(v[2 * i + k], id);
                i32[k] = vcvtnq_s32_f32(vminnmq_f32(vmaxnmq_f32(y, lo), hi));
            }
            h[i] = vcombine_s16(vmovn_s32(i32[0]), vmovn_s32(i32[1]));
        }
        vst1q_s8(q + b * PLM_QK, vcombine_s8(vmovn_s16(h[0]), vmovn_s16(h[1])));
        vst1q_s8(q + b * PLM_QK + 16, vcombine_s8(vmovn_s16(h[2]), vmovn_s16(h[3])));
    }
}

// ---- backward ----

// dinp_tile: dinp[t0 .. t0+nt, c0 + h .. c0 + h + 16) (columns below n) += the sum over rows
// r0 .. r1 of dout[t, r] * ws[r - r0, h .. h+16), each element an FMA chain over r from zero.
// Broadcast + FMA: 4 rows of dout per vector load, each lane times a row of 4 weight vectors.
PLM_INLINE void dinp_tile(float *dinp, const float *dout, int32_t R, int32_t C, const float *ws,
                          int32_t t0, int nt, int32_t r0, int32_t r1, int32_t c0, int h,
                          int32_t n) {
    float32x4_t acc[DT][4];
    TILE_LOOP(t, nt, DT)
    UNROLL
    for (int v = 0; v < 4; v++) acc[t][v] = vdupq_n_f32(0.0f);
    const float *g = dout + (size_t)t0 * R; // (nt, R)
    int32_t r = r0;
    for (; r + 4 <= r1; r += 4) {
        float32x4_t gv[DT];
        TILE_LOOP(t, nt, DT) gv[t] = vld1q_f32(g + (size_t)t * R + r);
        UNROLL
        for (int l = 0; l < 4; l++) {
            const float *wr = ws + (size_t)(r - r0 + l) * PLM_DINP_NC + h;
            float32x4_t wv[4];
            UNROLL
            for (int v = 0; v < 4; v++) wv[v] = vld1q_f32(wr + 4 * v);
            TILE_LOOP(t, nt, DT)
            UNROLL
            for (int v = 0; v < 4; v++) acc[t][v] = vfmaq_n_f32(acc[t][v], wv[v], gv[t][l]);
        }
    }
    for (; r < r1; r++) {
        const float *wr = ws + (size_t)(r - r0) * PLM_DINP_NC + h;
        TILE_LOOP(t, nt, DT)
        UNROLL
        for (int v = 0; v < 4; v++)
            acc[t][v] = vfmaq_n_f32(acc[t][v], vld1q_f32(wr + 4 * v), g[(size_t)t * R + r]);
    }
    TILE_LOOP(t, nt, DT) {
        float *o = dinp + (size_t)(t0 + t) * C + c0;
        UNROLL
        for (int v = 0; v < 4; v++) {
            const int c = h + 4 * v;
            const int m = n - c < 4 ? n - c : 4;
            if (m > 0) store_lanes(o + c, vaddq_f32(load_lanes(o + c, m), acc[t][v]), m);
        }
    }
}

// dinp_tiles_neon: the slice W[r0 .. r1, c0 .. c0+n) is copied once (Q8_0: dequantized, as
// matmul_backward.c's w_slice does; columns beyond n zero) into a contiguous (r1 - r0, 32) block
// that every token tile then reads from L1; tiles of 4 tokens x 16 columns, the last tokens one at
// a time. The sums run over the same rows in the same order for any tile, so the bits do not depend
// on T or on the thread count.
static void dinp_tiles_neon(float *dinp, const float *dout, const plm_mat *w, int32_t T, int32_t r0,
                            int32_t r1, int32_t c0, int32_t n) {
    _Alignas(16) float ws[PLM_DINP_RB * PLM_DINP_NC]; // (r1 - r0, NC): 32 KB
    assert(r1 - r0 <= PLM_DINP_RB && n <= PLM_DINP_NC);
    const int32_t R = w->rows, C = w->cols;
    for (int32_t r = r0; r < r1; r++) {
        float *o = ws + (size_t)(r - r0) * PLM_DINP_NC;
        if (w->dtype == PLM_DTYPE_F32) {
            memcpy(o, w->f32 + (size_t)r * C + c0, (size_t)n * sizeof(float));
            memset(o + n, 0, (size_t)(PLM_DINP_NC - n) * sizeof(float));
            continue;
        }
        const int8x16_t q0 = vld1q_s8(w->q + (size_t)r * C + c0); // n = 32: one block
        const int8x16_t q1 = vld1q_s8(w->q + (size_t)r * C + c0 + 16);
        const float d = w->d[(size_t)r * (C / PLM_QK) + c0 / PLM_QK];
        const int16x8_t h[4] = {vmovl_s8(vget_low_s8(q0)), vmovl_high_s8(q0),
                                vmovl_s8(vget_low_s8(q1)), vmovl_high_s8(q1)};
        for (int i = 0; i < 4; i++) {
            vst1q_f32(o + 8 * i, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(h[i]))), d));
            vst1q_f32(o + 8 * i + 4, vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(h[i])), d));
        }
    }
    for (int hc = 0; hc < n; hc += 16) {
        int32_t t = 0;
        for (; t + DT <= T; t += DT) dinp_tile(dinp, dout, R, C, ws, t, DT, r0, r1, c0, hc, n);
        for (; t < T; t++) dinp_tile(dinp, dout, R, C, ws, t, 1, r0, r1, c0, hc, n);
    }
}

// dw_rows_neon: plm_dw_rows_generic, 4 tokens x 4 columns a step (GCC -O2 leaves the generic loop
// scalar: its cost model does not vectorize a loop that needs a scalar tail). Each element runs the
// generic's statement, o += a * x, once per token in token order, as a vector expression: both
// compilers contract it (clang: to an FMA) or not (GCC -std=c11) exactly as they do the scalar
// one, so the bits are the reference's.
static void dw_rows_neon(float *dw, const float *dout, const float *inp, int32_t T, int32_t rows,
                         int32_t cols, int32_t r0, int32_t r1) {
    typedef float v4 __attribute__((vector_size(16)));
    for (int32_t r = r0; r < r1; r++) {
        float *o = dw + (size_t)r * cols;
        int32_t t = 0;
        for (; t + 4 <= T; t += 4) {
            const float *x = inp + (size_t)t * cols; // (4, cols)
            float a[4];
            for (int i = 0; i < 4; i++) a[i] = dout[(size_t)(t + i) * rows + r];
            int32_t c = 0;
            for (; c + 4 <= cols; c += 4) {
                v4 ov, xv[4];
                memcpy(&ov, o + c, sizeof ov);
                for (int i = 0; i < 4; i++) memcpy(&xv[i], x + (size_t)i * cols + c, sizeof ov);
                ov += a[0] * xv[0];
                ov += a[1] * xv[1];
                ov += a[2] * xv[2];
                ov += a[3] * xv[3];
                memcpy(o + c, &ov, sizeof ov);
            }
            for (; c < cols; c++)
                for (int i = 0; i < 4; i++) o[c] += a[i] * x[(size_t)i * cols + c];
        }
        for (; t < T; t++) {
            const float a = dout[(size_t)t * rows + r], *x = inp + (size_t)t * cols;
            int32_t c = 0;
            for (; c + 4 <= cols; c += 4) {
                v4 ov, xv;
                memcpy(&ov, o + c, sizeof ov);
                memcpy(&xv, x + c, sizeof xv);
                ov += a * xv;
                memcpy(o + c, &ov, sizeof ov);
            }
            for (; c < cols; c++) o[c] += a * x[c];
        }
    }
}

// ---- Q6_K (matmul_kernels.h): Q8_0's order with a scale per half block ----
//
// A super-block's half (4 blocks) is unpacked to int8 q - 32 once for the tile's tokens (GGUF's
// layout: byte l of ql's two groups of 32 and of qh's holds element l of its blocks, so and/shift/or
// give the blocks in element order); a block's two vectors are its two sub-blocks of 16, so lanes
// 0-3 take the first one's scale d * sc * dx and lanes 4-7 the second's, one vmulq_n_f32 each.

// q6k_half: the 4 blocks of half h of the super-block at sb as int8 q - 32, block k in w[k][0..1].
PLM_INLINE void q6k_half(int8x16_t w[4][2], const uint8_t *sb, int h) {
    const uint8x16_t lo = vdupq_n_u8(15), hi = vdupq_n_u8(0x30);
    UNROLL
    for (int i = 0; i < 2; i++) { // elements 16 i .. 16 i + 15 of each block
        const uint8x16_t l0 = vld1q_u8(sb + 64 * h + 16 * i),
                         l1 = vld1q_u8(sb + 64 * h + 32 + 16 * i);
        const uint8x16_t qh = vld1q_u8(sb + 128 + 32 * h + 16 * i);
        const uint8x16_t q[4] = {vorrq_u8(vandq_u8(l0, lo), vandq_u8(vshlq_n_u8(qh, 4), hi)),
                                 vorrq_u8(vandq_u8(l1, lo), vandq_u8(vshlq_n_u8(qh, 2), hi)),
                                 vorrq_u8(vshrq_n_u8(l0, 4), vandq_u8(qh, hi)),
                                 vorrq_u8(vshrq_n_u8(l1, 4), vandq_u8(vshrq_n_u8(qh, 2), hi))};
        UNROLL
        for (int k = 0; k < 4; k++) w[k][i] = vsubq_s8(vreinterpretq_s8_u8(q[k]), vdupq_n_s8(32));
    }
}

// q6k_block: out[t0 .. t0 + mt, r] (mt <= Q8_MT) in the canonical order; decode prefetches the
// weights PF_BYTES ahead (the rows follow each other: one stream).
PLM_INLINE void q6k_block(const matmul_job *j, int t0, int mt, int r, int sdot) {
    const int C = j->w->cols, R = j->w->rows, nb = C / PLM_QK, nsb = C / PLM_QK_K;
    const uint8_t *row = j->w->q6 + (size_t)r * nsb * PLM_Q6K_QS;
    const uint8_t *end = j->w->q6 + (size_t)R * nsb * PLM_Q6K_QS;
    float32x4_t acc[Q8_MT][4];
    TILE_LOOP(t, mt, Q8_MT)
    UNROLL
    for (int i = 0; i < 4; i++) acc[t][i] = vdupq_n_f32(0.0f);
    for (int s = 0; s < nsb; s++) {
        const uint8_t *sb = row + (size_t)s * PLM_Q6K_QS;
        for (int o = 0; mt == 1 && o < PLM_Q6K_QS; o += 64)
            if (sb + PF_BYTES + o < end) __builtin_prefetch(sb + PF_BYTES + o, 0, 0);
        const float d = j->w->d[(size_t)r * nsb + s];
        UNROLL
        for (int h = 0; h < 2; h++) {
            int8x16_t w[4][2];
            q6k_half(w, sb, h);
            UNROLL
            for (int k = 0; k < 4; k++) {
                const int b = 8 * s + 4 * h + k;
                const int8_t *sc = (const int8_t *)sb + 192 + 8 * h + 2 * k;
                const float ds0 = d * (float)sc[0], ds1 = d * (float)sc[1];
                TILE_LOOP(t, mt, Q8_MT) {
                    const int8_t *x = j->xq + (size_t)(t0 + t) * C + b * PLM_QK;
                    const int8x16_t x0 = vld1q_s8(x), x1 = vld1q_s8(x + 16);
                    const int32x4_t p0 = sdot ? q8_dot_sdot(x0, w[k][0]) : q8_dot_neon(x0, w[k][0]);
                    const int32x4_t p1 = sdot ? q8_dot_sdot(x1, w[k][1]) : q8_dot_neon(x1, w[k][1]);
                    const float dx = j->xd[(size_t)(t0 + t) * nb + b];
                    float32x4_t *a = acc[t] + 2 * (k % 2);
                    a[0] = vaddq_f32(a[0], vmulq_n_f32(vcvtq_f32_s32(p0), ds0 * dx));
                    a[1] = vaddq_f32(a[1], vmulq_n_f32(vcvtq_f32_s32(p1), ds1 * dx));
                }
            }
        }
    }
    TILE_LOOP(t, mt, Q8_MT) { // h = even + odd, a = h(0-3) + h(4-7), (a0 + a2) + (a1 + a3)
        const float32x4_t a =
            vaddq_f32(vaddq_f32(acc[t][0], acc[t][2]), vaddq_f32(acc[t][1], acc[t][3]));
        j->out[(size_t)(t0 + t) * R + r] = vpadds_f32(vadd_f32(vget_low_f32(a), vget_high_f32(a)));
    }
}

// q6k_tile_neon, q6k_tile_dotprod: the driver's (Q8_MT, 1) and (1, 1) tiles.
static void q6k_tile_neon(const matmul_job *j, int t0, int mt, int r0, int nr) {
    (void)nr;
    if (mt == Q8_MT) q6k_block(j, t0, Q8_MT, r0, 0);
    else q6k_block(j, t0, 1, r0, 0);
}

PLM_TARGET_DOTPROD static void q6k_tile_dotprod(const matmul_job *j, int t0, int mt, int r0,
                                                int nr) {
    (void)nr;
    if (mt == Q8_MT) q6k_block(j, t0, Q8_MT, r0, 1);
    else q6k_block(j, t0, 1, r0, 1);
}

// ---- the tables (i8mm takes plm_kernels_dotprod: see the top of the file) ----

const matmul_kernels plm_kernels_neon = {
    .f32 = {f32_tile_neon, F32_MT, F32_NR, F32_DNR, f32_warm_neon, NULL, 0, 0},
    .q8 = {q8_tile_neon, Q8_MT, Q8_NR, Q8_DNR, q8_warm_neon, NULL, 0, 0},
    .q4 = {q4_tile_neon, Q8_MT, Q8_NR, Q8_DNR, NULL, NULL, 0, 0},
    .q6k = {q6k_tile_neon, Q8_MT, 1, 1, NULL, NULL, 0, 0},
    .quantize = quantize_neon,
    .dinp_tiles = dinp_tiles_neon,
    .dw_rows = dw_rows_neon,
};

const matmul_kernels plm_kernels_dotprod = {
    .f32 = {f32_tile_neon, F32_MT, F32_NR, F32_DNR, f32_warm_neon, NULL, 0, 0},
    .q8 = {q8_tile_dotprod, Q8_MT, Q8_NR, Q8_DNR, q8_warm_neon, NULL, 0, 0},
    .q4 = {q4_tile_dotprod, Q8_MT, Q8_NR, Q8_DNR, NULL, NULL, 0, 0},
    .q6k = {q6k_tile_dotprod, Q8_MT, 1, 1, NULL, NULL, 0, 0},
    .quantize = quantize_neon,
    .dinp_tiles = dinp_tiles_neon,
    .dw_rows = dw_rows_neon,
};
#endif // __aarch64__
