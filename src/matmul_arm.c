// matmul_arm.c: the arm64 paths of matmul_kernels.h: neon (Advanced SIMD, every arm64 CPU),
// dotprod (+ SDOT) and i8mm (+ SMMLA). Every arm64 build compiles all three for the baseline
// armv8-a, and the driver takes a table only when cpu.c found its instructions: one binary runs on
// any arm64 CPU. The kernels are written once with a flag that picks the integer dot; only the
// dotprod and i8mm tables' entry functions have target attributes (PLM_TARGET_DOTPROD,
// PLM_TARGET_I8MM: GCC and clang spell them differently), so only they may hold SDOT or SMMLA.
// SDOT and SMMLA are inline assembly rather than vdotq_s32 / vmmlaq_s32: clang 14's arm_neon.h
// declares the intrinsics only when the whole file is compiled for the feature, and GCC's cannot be
// inlined into the shared helpers, which have no target attribute; the assembly reads the same to
// both.
//
// i8mm: in the canonical Q8_0 order (matmul_kernels.h) only a block's whole int32 sum is converted
// to float, so SMMLA's sums of 8 adjacent bytes (2 tokens x 2 rows a SMMLA) are exact parts of it.
// It runs in the full tiles of prefill (4 tokens x 4 rows: 16 SMMLA a block against 32 SDOT and 12
// pairwise adds, for 16 zips); decode (one token) would waste half of each SMMLA and runs SDOT.
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
#define PLM_TARGET_I8MM    __attribute__((target("dotprod,i8mm")))
#else
#define PLM_TARGET_DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))
#define PLM_TARGET_I8MM    __attribute__((target("arch=armv8.2-a+dotprod+i8mm")))
#endif

#define PF_BYTES 6144 // decode prefetches the weights at least this far ahead
#define F32_MT   4    // f32 tile: tokens x rows: 20 accumulators + 4 inputs + 5 weights fit the
#define F32_NR   5    // 32 registers (4 x 6 spills two accumulators a step); 9 loads per 20 FMA
#define F32_DNR  8    // f32 decode: rows per tile, 8 independent FMA chains (latency 4, 2 pipes)
#define Q8_MT    4    // quantized weights' tile: tokens x rows (a lane a row); a step's 4 rows of
#define Q8_NR    4    // weights are loaded once for 4 tokens; fewer tokens stream (stream_t)
#define Q8_G     8    // quantized weights: blocks a group of scales transposed into lanes
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

// ---- quantized weights: the canonical order of matmul_kernels.h, a lane a row ----
//
// Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and Q6_K run one kernel. A tile is up to Q8_MT tokens x Q8_NR = 4
// rows, and a token's accumulator is one vector with a lane per row: one float chain per output.
// A step (a block; Q6_K: a half block) takes the 4 rows' int32 lane vectors of the integer dot
// (SDOT, or widening multiplies and pairwise adds), reduces them into one vector of the exact sums
// P, a lane a row, by two levels of pairwise adds, then converts, multiplies by the rows' scales
// times the token's dx, and adds: 3 float operations a step for 4 outputs. The rows' scales (dw;
// Q6_K: d * sc) are transposed into lanes once per group of Q8_G blocks. Decode and small steps
// (T < Q8_MT: stream_t) run the same tiles on all T tokens, 4 rows read side by side, prefetched
// pfr rows ahead. Tiles of fewer rows (the last rows) leave the other lanes' sums 0.

// q8_dot16: lane i = x[i] w[i] + x[i + 8] w[i + 8]. |x| <= 127 (the quantizer never gives -128)
// and |w| <= 128, so the sum is at most 32512: exact in int16.
PLM_INLINE int16x8_t q8_dot16(int8x16_t x, int8x16_t w) {
    return vmlal_high_s8(vmull_s8(vget_low_s8(x), vget_low_s8(w)), x, w);
}

// q8_sdot: acc + SDOT (lane l += the products of bytes 4l .. 4l+3 of x and w); only for functions
// inlined into a PLM_TARGET_DOTPROD one (the assembler takes SDOT there only; see the top of the
// file for why inline assembly).
PLM_INLINE int32x4_t q8_sdot(int32x4_t acc, int8x16_t x, int8x16_t w) {
    __asm__("sdot %0.4s, %1.16b, %2.16b" : "+w"(acc) : "w"(x), "w"(w));
    return acc;
}

// q8_smmla: acc + SMMLA: x and w each 2 rows of 8 bytes (bytes 0-7, 8-15), lane 2i + k += the dot
// of x's row i and w's row k; only for functions inlined into a PLM_TARGET_I8MM one.
PLM_INLINE int32x4_t q8_smmla(int32x4_t acc, int8x16_t x, int8x16_t w) {
    __asm__("smmla %0.4s, %1.16b, %2.16b" : "+w"(acc) : "w"(x), "w"(w));
    return acc;
}

// The integer dot of a table's kernels (the dot argument): widening multiplies, SDOT, or SMMLA in
// the full tiles of prefill (SDOT elsewhere).
enum { DOT_NEON, DOT_SDOT, DOT_SMMLA };

// q8_dot: int32 lanes whose sum is the exact dot of x and w; q8_dot_acc: the same added to acc's
// lanes. dot picks SDOT, else widening multiplies (q8_dot16) and pairwise adds.
PLM_INLINE int32x4_t q8_dot(int8x16_t x, int8x16_t w, int dot) {
    return dot ? q8_sdot(vdupq_n_s32(0), x, w) : vpaddlq_s16(q8_dot16(x, w));
}

PLM_INLINE int32x4_t q8_dot_acc(int32x4_t acc, int8x16_t x, int8x16_t w, int dot) {
    return dot ? q8_sdot(acc, x, w) : vpadalq_s16(acc, q8_dot16(x, w));
}

// q8_lanes: lane i = the sum of p[i]'s lanes (exact: |P| < 2^17).
PLM_INLINE int32x4_t q8_lanes(const int32x4_t p[Q8_NR]) {
    return vpaddq_s32(vpaddq_s32(p[0], p[1]), vpaddq_s32(p[2], p[3]));
}

// q8_step: one step of the canonical order for 4 outputs: acc + (float)P * (sw * dx), each a
// multiply then an add (-ffp-contract=off keeps the compiler from fusing them).
PLM_INLINE float32x4_t q8_step(float32x4_t acc, int32x4_t P, float32x4_t sw, float dx) {
    const float32x4_t s = vmulq_n_f32(sw, dx);
    return vaddq_f32(acc, vmulq_f32(vcvtq_f32_s32(P), s));
}

// transpose4: lane i of out[k] = lane k of v[i].
PLM_INLINE void transpose4(float32x4_t out[4], const float32x4_t v[4]) {
    const float32x4_t a = vtrn1q_f32(v[0], v[1]), b = vtrn2q_f32(v[0], v[1]);
    const float32x4_t c = vtrn1q_f32(v[2], v[3]), d = vtrn2q_f32(v[2], v[3]);
#define TRN64(f, x, y) vreinterpretq_f32_f64(f(vreinterpretq_f64_f32(x), vreinterpretq_f64_f32(y)))
    out[0] = TRN64(vtrn1q_f64, a, c), out[1] = TRN64(vtrn1q_f64, b, d);
    out[2] = TRN64(vtrn2q_f64, a, c), out[3] = TRN64(vtrn2q_f64, b, d);
#undef TRN64
}

// high_neon: byte i = 16 where bit i of h is set, else 0 (i = 0..15): bytes 0-7 take h's low
// byte, 8-15 its high one, and each tests its own bit.
PLM_INLINE uint8x16_t high_neon(uint32_t h) {
    const uint8x16_t bit = vreinterpretq_u8_u64(vdupq_n_u64(0x8040201008040201ULL));
    const uint8x16_t v = vcombine_u8(vdup_n_u8((uint8_t)h), vdup_n_u8((uint8_t)(h >> 8)));
    return vandq_u8(vtstq_u8(v, bit), vdupq_n_u8(16));
}

// row_block: block b of row r of w (dtype dt, a constant at each call site) as int8 weights,
// elements 0-15 in v[0] and 16-31 in v[1]: Q8_0 as they are; Q4_x and Q5_x as k - offset
// (matmul_kernels.h: the nibbles, Q5_x ORing in 16 where the element's bit of qh is set).
PLM_INLINE void row_block(int8x16_t v[2], const plm_mat *w, int r, int b, plm_dtype dt) {
    const size_t blk = (size_t)r * (size_t)(w->cols / PLM_QK) + (size_t)b;
    if (dt == PLM_DTYPE_Q8_0) {
        v[0] = vld1q_s8(w->q + blk * PLM_QK), v[1] = vld1q_s8(w->q + blk * PLM_QK + 16);
        return;
    }
    const uint8x16_t q = vld1q_u8(w->q4 + blk * 16);
    uint8x16_t k0 = vandq_u8(q, vdupq_n_u8(15)), k1 = vshrq_n_u8(q, 4);
    if (plm_dtype_high(dt)) {
        const uint32_t h = w->qh[blk];
        k0 = vorrq_u8(k0, high_neon(h)), k1 = vorrq_u8(k1, high_neon(h >> 16));
    }
    const int8x16_t off = vdupq_n_s8((int8_t)plm_q4_offset(dt));
    v[0] = vsubq_s8(vreinterpretq_s8_u8(k0), off), v[1] = vsubq_s8(vreinterpretq_s8_u8(k1), off);
}

// q6k_row_block: block k (0..7) of the Q6_K super-block at sb as int8 q - 32, as row_block,
// following matmul.c's q6k_unpack: ql's group of 32 bytes k % 2 of half k / 4, shifted right by
// lo_shift (4 when k % 4 >= 2), ORed with qh's 2 bits 2 (k % 4) of that half shifted to bits 4-5
// by hi_shift (vector shifts, negative to the right).
PLM_INLINE void q6k_row_block(int8x16_t v[2], const uint8_t *sb, int k, int8x16_t lo_shift,
                              int8x16_t hi_shift) {
    const uint8_t *ql = sb + 64 * (k / 4) + 32 * (k % 2), *qh = sb + 128 + 32 * (k / 4);
    UNROLL
    for (int i = 0; i < 2; i++) {
        const uint8x16_t lo = vandq_u8(vshlq_u8(vld1q_u8(ql + 16 * i), lo_shift), vdupq_n_u8(15));
        const uint8x16_t hi = vandq_u8(vshlq_u8(vld1q_u8(qh + 16 * i), hi_shift), vdupq_n_u8(48));
        v[i] = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lo, hi)), vdupq_n_s8(32));
    }
}

// rows_lanes: lane i of out[k] = v[r0 + i, b0 + k] of v (rows, nb), for the rows i < nr and the
// blocks k < n <= 8 (other lanes 0): the rows' per-block floats (dw, Q4_1's m) a vector a block.
PLM_INLINE void rows_lanes(float32x4_t out[8], const float *v, int nb, int r0, int nr, int b0,
                           int n) {
    float32x4_t f[2][Q8_NR]; // f[q][i]: blocks b0 + 4q .. b0 + 4q + 3 of row r0 + i
    UNROLL
    for (int i = 0; i < Q8_NR; i++) f[0][i] = f[1][i] = vdupq_n_f32(0.0f);
    TILE_LOOP(i, nr, Q8_NR) {
        const float *p = v + (size_t)(r0 + i) * nb + b0;
        f[0][i] = load_lanes(p, n < 4 ? n : 4);
        if (n > 4) f[1][i] = load_lanes(p + 4, n - 4);
    }
    transpose4(out, f[0]), transpose4(out + 4, f[1]);
}

// group_scales: sw[i] = the scales of step i of the group of n blocks from b0, lane i the row
// r0 + i (i < nr; other lanes 0): dw[r, b] a step a block, or, Q6_K (a group is one super-block),
// ds = d * sc (exact) of its 16 sub-blocks, two steps a block.
PLM_INLINE void group_scales(float32x4_t sw[2 * Q8_G], const plm_mat *w, int r0, int nr, int b0,
                             int n, plm_dtype dt) {
    const int nb = w->cols / PLM_QK;
    if (dt != PLM_DTYPE_Q6_K) {
        rows_lanes(sw, w->d, nb, r0, nr, b0, n);
        return;
    }
    float32x4_t f[4][Q8_NR]; // f[q][i]: steps 4q .. 4q + 3 of row r0 + i
    UNROLL
    for (int q = 0; q < 4; q++) {
        UNROLL
        for (int i = 0; i < Q8_NR; i++) f[q][i] = vdupq_n_f32(0.0f);
    }
    TILE_LOOP(i, nr, Q8_NR) {
        const int8x16_t sc = vld1q_s8((const int8_t *)plm_q6k_sb(w, r0 + i, b0) + 192);
        const float d = w->d[(size_t)(r0 + i) * (size_t)(nb / 8) + (size_t)b0 / 8];
        const int16x8_t lo = vmovl_s8(vget_low_s8(sc)), hi = vmovl_high_s8(sc);
        const int32x4_t s32[4] = {vmovl_s16(vget_low_s16(lo)), vmovl_high_s16(lo),
                                  vmovl_s16(vget_low_s16(hi)), vmovl_high_s16(hi)};
        UNROLL
        for (int q = 0; q < 4; q++) f[q][i] = vmulq_n_f32(vcvtq_f32_s32(s32[q]), d);
    }
    UNROLL
    for (int q = 0; q < 4; q++) transpose4(sw + 4 * q, f[q]);
}

// m_sum_lanes: Q4_1's and Q5_1's minimums' term M (matmul_kernels.h) of token t, lane i the row
// r0 + i (i < nr): plm_q4_m_sum's order (macc[b % 8], then its end sum) in each lane, the rows'
// minimums transposed into lanes 8 blocks at a time.
PLM_INLINE float32x4_t m_sum_lanes(const matmul_job *j, int t, int r0, int nr) {
    const int nb = j->w->cols / PLM_QK;
    const float *xs = j->xs + (size_t)t * nb; // (nb)
    float32x4_t macc[8];
    UNROLL
    for (int k = 0; k < 8; k++) macc[k] = vdupq_n_f32(0.0f);
    for (int b0 = 0; b0 < nb; b0 += 8) {
        const int n = nb - b0 < 8 ? nb - b0 : 8;
        float32x4_t mw[8];
        rows_lanes(mw, j->w->m, nb, r0, nr, b0, n);
        UNROLL
        for (int k = 0; k < 8; k++) { // unrolled, so macc and mw stay in registers
            if (k >= n) break;
            const float32x4_t p = vmulq_n_f32(mw[k], xs[b0 + k]); // m * xs: never an FMA
            macc[k] = vaddq_f32(macc[k], p);
        }
    }
    float32x4_t h[4];
    UNROLL
    for (int i = 0; i < 4; i++) h[i] = vaddq_f32(macc[i], macc[i + 4]);
    return vaddq_f32(vaddq_f32(h[0], h[2]), vaddq_f32(h[1], h[3]));
}

// q8_row_bytes: the bytes of a row of w's weights (without its scales).
static size_t q8_row_bytes(const plm_mat *w, plm_dtype dt) {
    const size_t C = (size_t)w->cols;
    return dt == PLM_DTYPE_Q8_0 ? C : dt == PLM_DTYPE_Q6_K ? C / PLM_QK_K * PLM_Q6K_QS : C / 2;
}

// group_prefetch: row r's weights of the group from block b0 and, every 16 blocks (Q6_K: every
// super-block), a line of its scales, Q5_x's high bits and Q4_1/Q5_1's minimums.
PLM_INLINE void group_prefetch(const plm_mat *w, int r, int b0, plm_dtype dt) {
    const size_t blk = (size_t)r * (size_t)(w->cols / PLM_QK) + (size_t)b0;
    const uint8_t *p = dt == PLM_DTYPE_Q6_K   ? plm_q6k_sb(w, r, b0)
                       : dt == PLM_DTYPE_Q8_0 ? (const uint8_t *)w->q + blk * PLM_QK
                                              : w->q4 + blk * 16;
    const size_t bytes = q8_row_bytes(w, dt) / (size_t)(w->cols / PLM_QK) * Q8_G;
    for (size_t o = 0; o < bytes; o += 64) __builtin_prefetch(p + o, 0, 0);
    if (dt == PLM_DTYPE_Q6_K) __builtin_prefetch(w->d + blk / 8, 0, 0);
    else if (b0 % 16 == 0) {
        __builtin_prefetch(w->d + blk, 0, 0);
        if (plm_dtype_high(dt)) __builtin_prefetch(w->qh + blk, 0, 0);
        if (plm_dtype_min(dt)) __builtin_prefetch(w->m + blk, 0, 0);
    }
}

// pair_chunk: bytes 8c .. 8c+8 of the 32 of a and of b (two halves each) as one vector, a's in
// bytes 0-7: the 2 x 8 operand of SMMLA.
PLM_INLINE int8x16_t pair_chunk(const int8x16_t a[2], const int8x16_t b[2], int c) {
    const int64x2_t a64 = vreinterpretq_s64_s8(a[c / 2]), b64 = vreinterpretq_s64_s8(b[c / 2]);
    return vreinterpretq_s8_s64(c % 2 ? vzip2q_s64(a64, b64) : vzip1q_s64(a64, b64));
}

// block_steps_smmla: block_steps of a full tile (Q8_MT tokens, Q8_NR rows) with SMMLA: tokens
// (2u, 2u + 1) against rows (2v, 2v + 1), 8 bytes a SMMLA, give the exact sums of each step for 2
// tokens x 2 rows; two 64-bit zips then put each token's 4 rows in lanes.
PLM_INLINE void block_steps_smmla(float32x4_t acc[Q8_MT], int8x16_t wv[Q8_NR][2],
                                  const float32x4_t *sw, const int8_t *xq, const float *xd, int C,
                                  int b, int q6) {
    int8x16_t xv[Q8_MT][2], xp[Q8_MT / 2][4], wp[Q8_NR / 2][4];
    UNROLL
    for (int t = 0; t < Q8_MT; t++) {
        xv[t][0] = vld1q_s8(xq + (size_t)t * C + b * PLM_QK);
        xv[t][1] = vld1q_s8(xq + (size_t)t * C + b * PLM_QK + 16);
    }
    UNROLL
    for (int c = 0; c < 4; c++) {
        UNROLL
        for (int u = 0; u < Q8_MT / 2; u++) xp[u][c] = pair_chunk(xv[2 * u], xv[2 * u + 1], c);
        UNROLL
        for (int v = 0; v < Q8_NR / 2; v++) wp[v][c] = pair_chunk(wv[2 * v], wv[2 * v + 1], c);
    }
    UNROLL
    for (int h = 0; h < 1 + q6; h++) { // the block, or Q6_K's halves (chunks 0-1, 2-3)
        UNROLL
        for (int u = 0; u < Q8_MT / 2; u++) {
            int64x2_t m[Q8_NR / 2]; // tokens 2u, 2u + 1 x rows 2v, 2v + 1
            UNROLL
            for (int v = 0; v < Q8_NR / 2; v++) {
                int32x4_t p = vdupq_n_s32(0);
                UNROLL
                for (int c = 0; c < 4; c++)
                    if (!q6 || c / 2 == h) p = q8_smmla(p, xp[u][c], wp[v][c]);
                m[v] = vreinterpretq_s64_s32(p);
            }
            const int32x4_t P0 = vreinterpretq_s32_s64(vzip1q_s64(m[0], m[1]));
            const int32x4_t P1 = vreinterpretq_s32_s64(vzip2q_s64(m[0], m[1]));
            const float *dx = xd + (size_t)(2 * u) * (C / PLM_QK) + b;
            acc[2 * u] = q8_step(acc[2 * u], P0, sw[h], dx[0]);
            acc[2 * u + 1] = q8_step(acc[2 * u + 1], P1, sw[h], dx[C / PLM_QK]);
        }
    }
}

// block_steps: block b of a tile of mt tokens (xq (mt, C), xd (mt, C / 32)) and nr rows, whose
// weights wv hold the rows in lanes: each token's step into acc[t], with the block's scales sw
// (lanes rows); Q6_K (q6) two steps, its halves' P and sw[0], sw[1].
PLM_INLINE void block_steps(float32x4_t acc[Q8_MT], int8x16_t wv[Q8_NR][2], const float32x4_t *sw,
                            const int8_t *xq, const float *xd, int C, int mt, int nr, int b,
                            int dot, int q6) {
    if (dot == DOT_SMMLA && mt == Q8_MT && nr == Q8_NR) {
        block_steps_smmla(acc, wv, sw, xq, xd, C, b, q6);
        return;
    }
    TILE_LOOP(t, mt, Q8_MT) {
        const int8x16_t x0 = vld1q_s8(xq + (size_t)t * C + b * PLM_QK);
        const int8x16_t x1 = vld1q_s8(xq + (size_t)t * C + b * PLM_QK + 16);
        const float dx = xd[(size_t)t * (C / PLM_QK) + b];
        int32x4_t p[2][Q8_NR]; // the steps' lanes of each row (Q6_K: the two halves)
        UNROLL
        for (int i = 0; i < Q8_NR; i++) p[0][i] = p[1][i] = vdupq_n_s32(0);
        TILE_LOOP(i, nr, Q8_NR) {
            p[0][i] = q8_dot(x0, wv[i][0], dot);
            if (q6) p[1][i] = q8_dot(x1, wv[i][1], dot);
            else p[0][i] = q8_dot_acc(p[0][i], x1, wv[i][1], dot);
        }
        acc[t] = q8_step(acc[t], q8_lanes(p[0]), sw[0], dx);
        if (q6) acc[t] = q8_step(acc[t], q8_lanes(p[1]), sw[1], dx);
    }
}

// q8_block: out[t0 .. t0+mt, r0 .. r0+nr] (mt <= Q8_MT, nr <= Q8_NR) in the canonical order; mt
// and nr are constants at each call site, so the accumulators stay in registers. dot picks the
// integer dot, dt the weights' format. Q4_1 and Q5_1 add their minimums' term to each output
// (out = A + M: m_sum_lanes).
PLM_INLINE void q8_block(const matmul_job *j, int t0, int mt, int r0, int nr, int dot,
                         plm_dtype dt) {
    const plm_mat *w = j->w;
    const int C = w->cols, R = w->rows, nb = C / PLM_QK, q6 = dt == PLM_DTYPE_Q6_K;
    const int8_t *xq = j->xq + (size_t)t0 * C; // (mt, C)
    const float *xd = j->xd + (size_t)t0 * nb; // (mt, nb)
    const int pfr = prefetch_rows(q8_row_bytes(w, dt), nr);
    const int pf = j->T < Q8_MT && r0 + nr + pfr <= R;
    float32x4_t acc[Q8_MT];
    TILE_LOOP(t, mt, Q8_MT) acc[t] = vdupq_n_f32(0.0f);
    for (int b0 = 0; b0 < nb; b0 += Q8_G) {
        const int n = nb - b0 < Q8_G ? nb - b0 : Q8_G;
        float32x4_t sw[2 * Q8_G];
        group_scales(sw, w, r0, nr, b0, n, dt);
        TILE_LOOP(i, nr, Q8_NR) if (pf) group_prefetch(w, r0 + i + pfr, b0, dt);
        if (q6) { // a super-block: each row's pointer once, a block's shifts shared by the rows
            const uint8_t *sb[Q8_NR];
            TILE_LOOP(i, nr, Q8_NR) sb[i] = plm_q6k_sb(w, r0 + i, b0);
            for (int k = 0; k < Q8_G; k++) {
                const int8x16_t lo_shift = vdupq_n_s8((int8_t)(k % 4 < 2 ? 0 : -4));
                const int8x16_t hi_shift = vdupq_n_s8((int8_t)(4 - 2 * (k % 4)));
                int8x16_t wv[Q8_NR][2];
                TILE_LOOP(i, nr, Q8_NR) q6k_row_block(wv[i], sb[i], k, lo_shift, hi_shift);
                block_steps(acc, wv, sw + 2 * k, xq, xd, C, mt, nr, b0 + k, dot, 1);
            }
            continue;
        }
        for (int k = 0; k < n; k++) {
            int8x16_t wv[Q8_NR][2];
            TILE_LOOP(i, nr, Q8_NR) row_block(wv[i], w, r0 + i, b0 + k, dt);
            block_steps(acc, wv, sw + k, xq, xd, C, mt, nr, b0 + k, dot, 0);
        }
    }
    TILE_LOOP(t, mt, Q8_MT) {
        const float32x4_t o =
            plm_dtype_min(dt) ? vaddq_f32(acc[t], m_sum_lanes(j, t0 + t, r0, nr)) : acc[t];
        store_lanes(j->out + (size_t)(t0 + t) * R + r0, o, nr);
    }
}

// q8_tiles: the driver's tile shapes: (Q8_MT, Q8_NR) prefill, (1, Q8_NR), (Q8_MT, 1) and (1, 1)
// at its edges, and below Q8_MT tokens (stream_t) all T tokens a tile: (T, Q8_NR) and (T, 1).
PLM_INLINE void q8_tiles(const matmul_job *j, int t0, int mt, int r0, int nr, int dot,
                         plm_dtype dt) {
    if (nr == Q8_NR) {
        if (mt == Q8_MT) q8_block(j, t0, Q8_MT, r0, Q8_NR, dot, dt);
        else if (mt == 1) q8_block(j, t0, 1, r0, Q8_NR, dot, dt);
        else q8_block(j, t0, mt, r0, Q8_NR, dot, dt);
    } else {
        if (mt == Q8_MT) q8_block(j, t0, Q8_MT, r0, 1, dot, dt);
        else if (mt == 1) q8_block(j, t0, 1, r0, 1, dot, dt);
        else q8_block(j, t0, mt, r0, 1, dot, dt);
    }
}

// q4_tiles: q8_tiles on Q4/Q5 weights, the format a constant of each specialization.
PLM_INLINE void q4_tiles(const matmul_job *j, int t0, int mt, int r0, int nr, int dot) {
    switch (j->w->dtype) {
    case PLM_DTYPE_Q4_0: q8_tiles(j, t0, mt, r0, nr, dot, PLM_DTYPE_Q4_0); break;
    case PLM_DTYPE_Q4_1: q8_tiles(j, t0, mt, r0, nr, dot, PLM_DTYPE_Q4_1); break;
    case PLM_DTYPE_Q5_0: q8_tiles(j, t0, mt, r0, nr, dot, PLM_DTYPE_Q5_0); break;
    default: q8_tiles(j, t0, mt, r0, nr, dot, PLM_DTYPE_Q5_1); break;
    }
}

// q8_tile_neon, q8_tile_dotprod, q4_tile_neon, q4_tile_dotprod, q6k_tile_neon, q6k_tile_dotprod:
// the tables' tiles; the dotprod ones may hold SDOT (PLM_TARGET_DOTPROD), inlined from q8_sdot.
static void q8_tile_neon(const matmul_job *j, int t0, int mt, int r0, int nr) {
    q8_tiles(j, t0, mt, r0, nr, DOT_NEON, PLM_DTYPE_Q8_0);
}

PLM_TARGET_DOTPROD static void q8_tile_dotprod(const matmul_job *j, int t0, int mt, int r0,
                                               int nr) {
    q8_tiles(j, t0, mt, r0, nr, DOT_SDOT, PLM_DTYPE_Q8_0);
}

static void q4_tile_neon(const matmul_job *j, int t0, int mt, int r0, int nr) {
    q4_tiles(j, t0, mt, r0, nr, DOT_NEON);
}

PLM_TARGET_DOTPROD static void q4_tile_dotprod(const matmul_job *j, int t0, int mt, int r0,
                                               int nr) {
    q4_tiles(j, t0, mt, r0, nr, DOT_SDOT);
}

PLM_TARGET_I8MM static void q8_tile_i8mm(const matmul_job *j, int t0, int mt, int r0, int nr) {
    q8_tiles(j, t0, mt, r0, nr, DOT_SMMLA, PLM_DTYPE_Q8_0);
}

PLM_TARGET_I8MM static void q4_tile_i8mm(const matmul_job *j, int t0, int mt, int r0, int nr) {
    q4_tiles(j, t0, mt, r0, nr, DOT_SMMLA);
}

PLM_TARGET_I8MM static void q6k_tile_i8mm(const matmul_job *j, int t0, int mt, int r0, int nr) {
    q8_tiles(j, t0, mt, r0, nr, DOT_SMMLA, PLM_DTYPE_Q6_K);
}

static void q6k_tile_neon(const matmul_job *j, int t0, int mt, int r0, int nr) {
    q8_tiles(j, t0, mt, r0, nr, DOT_NEON, PLM_DTYPE_Q6_K);
}

PLM_TARGET_DOTPROD static void q6k_tile_dotprod(const matmul_job *j, int t0, int mt, int r0,
                                                int nr) {
    q8_tiles(j, t0, mt, r0, nr, DOT_SDOT, PLM_DTYPE_Q6_K);
}

// q8_warm_neon: prefetch the weights and scales of the rows that decode's first tiles read before
// their own prefetches reach.
static void q8_warm_neon(const matmul_job *j, int r0, int r1) {
    const size_t C = (size_t)j->w->cols;
    const int n = prefetch_rows(C, Q8_NR), rows = r1 - r0 < n ? r1 - r0 : n;
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

// ---- F16 and BF16 weights: the converter (matmul_kernels.h's half) ----

// half_neon: plm_half_to_f32, 8 values a step: fcvtl (F16), or BF16 widened and shifted up 16.
static void half_neon(float *out, const uint16_t *h, size_t n, plm_dtype dtype) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const uint16x8_t v = vld1q_u16(h + i);
        if (dtype == PLM_DTYPE_BF16) {
            vst1q_f32(out + i, vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(v), 16)));
            vst1q_f32(out + i + 4, vreinterpretq_f32_u32(vshll_high_n_u16(v, 16)));
        } else {
            vst1q_f32(out + i, vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(v))));
            vst1q_f32(out + i + 4, vcvt_high_f32_f16(vreinterpretq_f16_u16(v)));
        }
    }
    plm_half_to_f32(out + i, h + i, n - i, dtype);
}

// ---- the tables ----

// ARM_TABLE(v): the table whose quantized tiles are q8_tile_v, q4_tile_v and q6k_tile_v.
#define ARM_TABLE(v)                                                                               \
    {                                                                                              \
        .f32 = {f32_tile_neon, F32_MT, F32_NR, F32_DNR, f32_warm_neon, NULL, 0, 0},                \
        .q8 = {q8_tile_##v, Q8_MT, Q8_NR, Q8_NR, q8_warm_neon, NULL, 0, Q8_MT},                    \
        .q4 = {q4_tile_##v, Q8_MT, Q8_NR, Q8_NR, NULL, NULL, 0, Q8_MT},                            \
        .q6k = {q6k_tile_##v, Q8_MT, Q8_NR, Q8_NR, NULL, NULL, 0, Q8_MT}, .half = half_neon,       \
        .quantize = quantize_neon, .dinp_tiles = dinp_tiles_neon, .dw_rows = dw_rows_neon,         \
    }

const matmul_kernels plm_kernels_neon = ARM_TABLE(neon);
const matmul_kernels plm_kernels_dotprod = ARM_TABLE(dotprod);
const matmul_kernels plm_kernels_i8mm = ARM_TABLE(i8mm);
#endif // __aarch64__
