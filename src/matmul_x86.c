// matmul_x86.c: the x86-64 paths of matmul_kernels.h: AVX2 + FMA, and AVX-512 (F, BW, VL, VNNI).
// Compiled into every x86-64 build with target attributes (the binary stays portable); the driver
// takes a table only when cpu.c found the instructions.
#include <string.h>

#include "matmul_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define PLM_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define PLM_TARGET_AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#ifndef PF_BYTES
#define PF_BYTES 6144 // decode prefetches the weights about this far ahead (AVX-512)
#endif
#define F32_MT 4 // AVX-512 f32 tile: tokens x rows; 24 accumulators + 6 weight vectors + 1 input
#define F32_NR 6 // fit 32 registers (1 thread, T = 128: 4 x 4 gets ~185 GFLOP/s, 4 x 6 ~210)
#define TT 12    // input gradient: tokens per tile (24 accumulators)

// hsum_avx2: (lanes 0-3 + lanes 4-7), then pairs, then the last two; for Q8_0 the last three
// levels of the canonical end sum (h[i] + h[i + 4], then pairs, then the last two).
PLM_INLINE PLM_TARGET_AVX2 float hsum_avx2(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// ---- AVX-512 (F, BW, VL, VNNI) ----

// prefetch_rows: how many rows of row_bytes make PF_BYTES (at least 1).
static int prefetch_rows(size_t row_bytes) { return (int)((PF_BYTES + row_bytes - 1) / row_bytes); }

// f32_block_avx512: 16-lane accumulator per (t, r), FMA over cols (a masked load for the tail),
// then _mm512_reduce_add_ps. mt, nr are constants at each call site so acc stays in registers.
PLM_INLINE PLM_TARGET_AVX512 void f32_block_avx512(const matmul_job *j, int t0, int mt, int r0,
                                                   int nr) {
    const int C = j->w->cols, R = j->w->rows;
    const float *x = j->inp + (size_t)t0 * C; // (mt, C)
    const float *w = j->w->f32 + (size_t)r0 * C; // (nr, C)
    const int pfr = prefetch_rows((size_t)C * sizeof(float));
    const int pf = mt == 1 && r0 + nr + pfr <= R;
    __m512 acc[F32_MT][F32_NR];
    UNROLL
    for (int t = 0; t < mt; t++)
        UNROLL
        for (int r = 0; r < nr; r++) acc[t][r] = _mm512_setzero_ps();
    for (int k = 0; k < C; k += 16) {
        const __mmask16 m = C - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (C - k)) - 1);
        __m512 wv[F32_NR];
        UNROLL
        for (int r = 0; r < nr; r++) {
            wv[r] = _mm512_maskz_loadu_ps(m, w + (size_t)r * C + k);
            if (pf) _mm_prefetch((const char *)(w + (size_t)(r + pfr) * C + k), _MM_HINT_T0);
        }
        UNROLL
        for (int t = 0; t < mt; t++) {
            const __m512 xv = _mm512_maskz_loadu_ps(m, x + (size_t)t * C + k);
            UNROLL
            for (int r = 0; r < nr; r++) acc[t][r] = _mm512_fmadd_ps(xv, wv[r], acc[t][r]);
        }
    }
    UNROLL
    for (int t = 0; t < mt; t++)
        UNROLL
        for (int r = 0; r < nr; r++)
            j->out[(size_t)(t0 + t) * R + r0 + r] = _mm512_reduce_add_ps(acc[t][r]);
}

PLM_TARGET_AVX512 static void f32_tile_avx512(const matmul_job *j, int t0, int mt, int r0, int nr) {
    if (mt == F32_MT && nr == F32_NR) f32_block_avx512(j, t0, F32_MT, r0, F32_NR);
    else if (mt == F32_MT) f32_block_avx512(j, t0, F32_MT, r0, 1);
    else if (nr == F32_NR) f32_block_avx512(j, t0, 1, r0, F32_NR);
    else f32_block_avx512(j, t0, 1, r0, 1);
}

// q8_sum_avx512: the canonical end sum of the 16 lane accumulators: lanes i + lanes i + 8 first.
PLM_INLINE PLM_TARGET_AVX512 float q8_sum_avx512(__m512 acc) {
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1));
    return hsum_avx2(_mm256_add_ps(_mm512_castps512_ps256(acc), hi));
}

// q8_block_avx512: two blocks (64 bytes) per step, in the canonical order. vpdpbusd multiplies
// unsigned by signed bytes, so w is made unsigned (w ^ 0x80 = w + 128) and each lane starts from
// xc, -128 * (sum of its 4 x bytes, from q8_prepare_avx512), which makes the int32 lane sums exact.
// Lanes 0-7 hold block b, lanes 8-15 block b+1; each lane is converted to float, multiplied by
// dw * dx of its block and added (no FMA: about 12% of prefill's speed, the price of one order for
// every path); the canonical sum at the end. A last single block uses masked loads (zero weights,
// corrections and scales in the upper half).
PLM_INLINE PLM_TARGET_AVX512 void q8_block_avx512(const matmul_job *j, int t0, int mt, int r0,
                                                  int nr) {
    const int C = j->w->cols, R = j->w->rows, nb = C / PLM_QK;
    const int8_t *xq = j->xq + (size_t)t0 * C, *wq = j->w->q + (size_t)r0 * C; // (mt|nr, C)
    const float *xd = j->xd + (size_t)t0 * nb, *wd = j->w->d + (size_t)r0 * nb; // (mt|nr, nb)
    const int32_t *xc = j->xc + (size_t)t0 * (C / 4);                           // (mt, C / 4)
    const __m512i k80 = _mm512_set1_epi8((char)0x80), two = _mm512_set1_epi32(2);
    const __m512i spread = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    _Alignas(64) float sc[4][4][16]; // (t, r, block): dw * dx of a group of 16 blocks
    __m512 acc[4][4];
    UNROLL
    for (int t = 0; t < mt; t++)
        UNROLL
        for (int r = 0; r < nr; r++) acc[t][r] = _mm512_setzero_ps();
    for (int g = 0; g < nb; g += 16) {
        const int n = nb - g < 16 ? nb - g : 16;
        const __mmask16 m16 = (__mmask16)((1u << n) - 1);
        __m512 xs[4];
        UNROLL
        for (int t = 0; t < mt; t++) xs[t] = _mm512_maskz_loadu_ps(m16, xd + (size_t)t * nb + g);
        UNROLL
        for (int r = 0; r < nr; r++) {
            const __m512 ws = _mm512_maskz_loadu_ps(m16, wd + (size_t)r * nb + g);
            UNROLL
            for (int t = 0; t < mt; t++) _mm512_store_ps(sc[t][r], _mm512_mul_ps(ws, xs[t]));
        }
        __m512i idx = spread; // lanes 0-7 take the scale of block i, lanes 8-15 that of i + 1
        for (int i = g; i < g + n; i += 2) {
            const int pair = i + 1 < g + n;
            const __mmask64 mq = pair ? ~(__mmask64)0 : (__mmask64)0xFFFFFFFFu;
            const __mmask16 mc = pair ? 0xFFFF : 0xFF;
            __m512i xv[4], cv[4];
            UNROLL
            for (int t = 0; t < mt; t++) {
                xv[t] = _mm512_maskz_loadu_epi8(mq, xq + (size_t)t * C + i * PLM_QK);
                cv[t] = _mm512_maskz_loadu_epi32(mc, xc + (size_t)t * (C / 4) + i * 8);
            }
            UNROLL
            for (int r = 0; r < nr; r++) {
                const __m512i wv = _mm512_maskz_loadu_epi8(mq, wq + (size_t)r * C + i * PLM_QK);
                const __m512i wu = _mm512_xor_si512(wv, k80);
                UNROLL
                for (int t = 0; t < mt; t++) {
                    const __m512i dot = _mm512_dpbusd_epi32(cv[t], wu, xv[t]);
                    const __m512 s = _mm512_permutexvar_ps(idx, _mm512_load_ps(sc[t][r]));
                    acc[t][r] = _mm512_add_ps(acc[t][r], _mm512_mul_ps(_mm512_cvtepi32_ps(dot), s));
                }
            }
            idx = _mm512_add_epi32(idx, two);
        }
    }
    UNROLL
    for (int t = 0; t < mt; t++)
        UNROLL
        for (int r = 0; r < nr; r++)
            j->out[(size_t)(t0 + t) * R + r0 + r] = q8_sum_avx512(acc[t][r]);
}

// q8_prepare_avx512: xc (T, cols / 4) = -128 * (sum of each 4 bytes of xq (T, cols)), the
// correction the AVX-512 kernels start each lane from.
PLM_TARGET_AVX512 static void q8_prepare_avx512(int32_t *xc, const int8_t *xq, size_t n) {
    const __m512i k80 = _mm512_set1_epi8((char)0x80), zero = _mm512_setzero_si512();
    for (size_t i = 0; i < n; i += 64) { // n is a multiple of 32: the tail is half a vector
        const int full = n - i >= 64;
        const __mmask64 m = full ? ~(__mmask64)0 : (__mmask64)0xFFFFFFFFu;
        const __m512i s = _mm512_dpbusd_epi32(zero, k80, _mm512_maskz_loadu_epi8(m, xq + i));
        _mm512_mask_storeu_epi32(xc + i / 4, full ? 0xFFFF : 0xFF, _mm512_sub_epi32(zero, s));
    }
}

// q8_dot_avx512: out[t, r] alone, for decode: the same lanes and float operations as
// q8_block_avx512 (so the same bits), but the scales dw * dx of 16 blocks are multiplied at once,
// then spread with one permute per step, and no loop over tokens or rows: one core keeps up with
// DRAM.
// From DRAM the scales are a second stream (rows * nb floats, another allocation) that the
// hardware prefetcher does not keep ahead of: a missed scale load stalls the whole row, which held
// decode to 6-8 GB/s. So both streams are prefetched pfr rows ahead (NTA: read once, keep them out
// of the way of the inputs), and q8_warm_avx512 starts the first pfr rows of each thread.
PLM_INLINE PLM_TARGET_AVX512 void q8_dot_avx512(const matmul_job *j, int t, int r0, int nr) {
    const int C = j->w->cols, nb = C / PLM_QK;
    const int8_t *xq = j->xq + (size_t)t * C, *wq = j->w->q + (size_t)r0 * C; // (C), (nr, C)
    const int32_t *xc = j->xc + (size_t)t * (C / 4);                           // (C / 4)
    const float *xd = j->xd + (size_t)t * nb, *wd = j->w->d + (size_t)r0 * nb; // (nb), (nr, nb)
    const __m512i k80 = _mm512_set1_epi8((char)0x80), two = _mm512_set1_epi32(2);
    const __m512i spread = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    const __mmask64 half = 0xFFFFFFFFu;
    const int pfr = prefetch_rows((size_t)C);
    const int8_t *pf = r0 + nr + pfr <= j->w->rows ? wq + (size_t)pfr * C : NULL;
    const float *pfd = pf ? wd + (size_t)pfr * nb : NULL; // the scales of row r0 + pfr
    __m512 acc[2];
    for (int r = 0; r < nr; r++) acc[r] = _mm512_setzero_ps();
    for (int g = 0; g < nb; g += 16) { // groups of 16 blocks: 8 steps of 2 blocks
        const int n = nb - g < 16 ? nb - g : 16;
        const __mmask16 m16 = (__mmask16)((1u << n) - 1);
        const __m512 xs = _mm512_maskz_loadu_ps(m16, xd + g);
        __m512 s16[2];
        for (int r = 0; r < nr; r++) {
            s16[r] = _mm512_mul_ps(_mm512_maskz_loadu_ps(m16, wd + (size_t)r * nb + g), xs);
            if (pf) { // the first and the last scale of the group: every line it touches
                _mm_prefetch((const char *)(pfd + (size_t)r * nb + g), _MM_HINT_NTA);
                _mm_prefetch((const char *)(pfd + (size_t)r * nb + g + n - 1), _MM_HINT_NTA);
            }
        }
        __m512i idx = spread; // lanes 0-7 take the scale of block i, lanes 8-15 that of i + 1
        int i = g;
        for (; i + 2 <= g + n; i += 2) {
            const __m512i xv = _mm512_loadu_si512(xq + i * PLM_QK);
            const __m512i cv = _mm512_loadu_si512(xc + i * 8);
            for (int r = 0; r < nr; r++) {
                const __m512 s = _mm512_permutexvar_ps(idx, s16[r]);
                const __m512i wv = _mm512_loadu_si512(wq + (size_t)r * C + i * PLM_QK);
                if (pf) _mm_prefetch((const char *)(pf + (size_t)r * C + i * PLM_QK), _MM_HINT_NTA);
                const __m512i dot = _mm512_dpbusd_epi32(cv, _mm512_xor_si512(wv, k80), xv);
                acc[r] = _mm512_add_ps(acc[r], _mm512_mul_ps(_mm512_cvtepi32_ps(dot), s));
            }
            idx = _mm512_add_epi32(idx, two);
        }
        if (i < g + n) { // a last single block: zeros in the upper half, as in q8_block_avx512
            const __m512i xv = _mm512_maskz_loadu_epi8(half, xq + i * PLM_QK);
            const __m512i cv = _mm512_maskz_loadu_epi32(0xFF, xc + i * 8);
            for (int r = 0; r < nr; r++) {
                const __m512 s = _mm512_permutexvar_ps(idx, s16[r]);
                const __m512i wv = _mm512_maskz_loadu_epi8(half, wq + (size_t)r * C + i * PLM_QK);
                const __m512i dot = _mm512_dpbusd_epi32(cv, _mm512_xor_si512(wv, k80), xv);
                acc[r] = _mm512_add_ps(acc[r], _mm512_mul_ps(_mm512_cvtepi32_ps(dot), s));
            }
        }
    }
    for (int r = 0; r < nr; r++)
        j->out[(size_t)t * j->w->rows + r0 + r] = q8_sum_avx512(acc[r]);
}

// q8_warm_avx512: prefetch the first PF_BYTES of the weights of rows r0..r1 and their scales.
PLM_TARGET_AVX512 static void q8_warm_avx512(const matmul_job *j, int r0, int r1) {
    const size_t C = (size_t)j->w->cols;
    const char *q = (const char *)(j->w->q + (size_t)r0 * C);
    const char *d = (const char *)(j->w->d + (size_t)r0 * (C / PLM_QK));
    const size_t nq = (size_t)(r1 - r0) * C < PF_BYTES ? (size_t)(r1 - r0) * C : PF_BYTES;
    for (size_t o = 0; o < nq; o += 64) _mm_prefetch(q + o, _MM_HINT_NTA);
    for (size_t o = 0; o < nq / 8 + 64; o += 64) _mm_prefetch(d + o, _MM_HINT_NTA);
}

PLM_TARGET_AVX512 static void q8_tile_avx512(const matmul_job *j, int t0, int mt, int r0, int nr) {
    if (mt == 4 && nr == 4) q8_block_avx512(j, t0, 4, r0, 4);
    else if (mt == 4) q8_block_avx512(j, t0, 4, r0, 1);
    else if (nr == 4) q8_block_avx512(j, t0, 1, r0, 4);
    else q8_dot_avx512(j, t0, r0, 1);
}

// quantize_avx512: quantize_scalar with one block in two registers; the same float operations in
// the same order (max is exact in any order), so the same bytes.
PLM_TARGET_AVX512 static void quantize_avx512(int8_t *q, float *d, const float *x, size_t n) {
    const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
    for (size_t b = 0; b < n / PLM_QK; b++) {
        __m512 v0 = _mm512_loadu_ps(x + b * PLM_QK), v1 = _mm512_loadu_ps(x + b * PLM_QK + 16);
        const __m512 a = _mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1));
        const float amax = _mm512_reduce_max_ps(a);
        const float db = amax / 127.0f;
        const __m512 id = _mm512_set1_ps(db != 0.0f ? 1.0f / db : 0.0f);
        d[b] = db;
        // max(v, lo) returns lo for NaN like fmaxf(v, lo); cvtps rounds to nearest even like lrintf
        v0 = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v0, id), lo), hi);
        v1 = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v1, id), lo), hi);
        _mm_storeu_si128((__m128i *)(q + b * PLM_QK), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v0)));
        _mm_storeu_si128((__m128i *)(q + b * PLM_QK + 16),
                         _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v1)));
    }
}

// ---- AVX2 + FMA ----

// f32_block_avx2: 8-lane accumulator per (t, r); the tail is a masked load.
PLM_INLINE PLM_TARGET_AVX2 void f32_block_avx2(const matmul_job *j, int t0, int mt, int r0,
                                               int nr) {
    static const int32_t mask_tab[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    const int C = j->w->cols, R = j->w->rows;
    const float *x = j->inp + (size_t)t0 * C;    // (mt, C)
    const float *w = j->w->f32 + (size_t)r0 * C; // (nr, C)
    __m256 acc[2][4];
    UNROLL
    for (int t = 0; t < mt; t++)
        UNROLL
        for (int r = 0; r < nr; r++) acc[t][r] = _mm256_setzero_ps();
    for (int k = 0; k < C; k += 8) {
        const int n = C - k >= 8 ? 8 : C - k;
        const __m256i m = _mm256_loadu_si256((const __m256i *)(mask_tab + 8 - n));
        __m256 wv[4];
        UNROLL
        for (int r = 0; r < nr; r++) wv[r] = _mm256_maskload_ps(w + (size_t)r * C + k, m);
        UNROLL
        for (int t = 0; t < mt; t++) {
            const __m256 xv = _mm256_maskload_ps(x + (size_t)t * C + k, m);
            UNROLL
            for (int r = 0; r < nr; r++) acc[t][r] = _mm256_fmadd_ps(xv, wv[r], acc[t][r]);
        }
    }
    UNROLL
    for (int t = 0; t < mt; t++)
        UNROLL
        for (int r = 0; r < nr; r++) j->out[(size_t)(t0 + t) * R + r0 + r] = hsum_avx2(acc[t][r]);
}

PLM_TARGET_AVX2 static void f32_tile_avx2(const matmul_job *j, int t0, int mt, int r0, int nr) {
    if (mt == 2 && nr == 4) f32_block_avx2(j, t0, 2, r0, 4);
    else if (mt == 2) f32_block_avx2(j, t0, 2, r0, 1);
    else if (nr == 4) f32_block_avx2(j, t0, 1, r0, 4);
    else f32_block_avx2(j, t0, 1, r0, 1);
}

// q8_step_avx2: block b into acc (t, r): maddubs multiplies unsigned by signed bytes: it gets |w|
// and x with w's sign (exact since q is never -128, and pairs stay below 2^15), then madd with ones
// sums to 8 int32 lanes (lane l = bytes 4l .. 4l+3); each lane times dw * dx, then added.
PLM_INLINE PLM_TARGET_AVX2 void q8_step_avx2(__m256 acc[2][2], const int8_t *xq, const float *xd,
                                             const int8_t *wq, const float *wd, int C, int nb,
                                             int mt, int nr, int b) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i xv[2];
    __m256 xs[2];
    UNROLL
    for (int t = 0; t < mt; t++) {
        xv[t] = _mm256_loadu_si256((const __m256i *)(xq + (size_t)t * C + b * PLM_QK));
        xs[t] = _mm256_broadcast_ss(xd + (size_t)t * nb + b);
    }
    UNROLL
    for (int r = 0; r < nr; r++) {
        const __m256i wv = _mm256_loadu_si256((const __m256i *)(wq + (size_t)r * C + b * PLM_QK));
        const __m256i wabs = _mm256_sign_epi8(wv, wv);
        const __m256 ws = _mm256_broadcast_ss(wd + (size_t)r * nb + b);
        UNROLL
        for (int t = 0; t < mt; t++) {
            const __m256i p16 = _mm256_maddubs_epi16(wabs, _mm256_sign_epi8(xv[t], wv));
            const __m256i p32 = _mm256_madd_epi16(p16, ones);
            const __m256 m = _mm256_mul_ps(_mm256_cvtepi32_ps(p32), _mm256_mul_ps(ws, xs[t]));
            acc[t][r] = _mm256_add_ps(acc[t][r], m);
        }
    }
}

// q8_block_avx2: two blocks per step in the canonical order: even blocks into acc[0], odd blocks
// into acc[1] (the 16 accumulators as two registers); the sum adds acc[0] + acc[1] first.
PLM_INLINE PLM_TARGET_AVX2 void q8_block_avx2(const matmul_job *j, int t0, int mt, int r0,
                                              int nr) {
    const int C = j->w->cols, R = j->w->rows, nb = C / PLM_QK;
    const int8_t *xq = j->xq + (size_t)t0 * C, *wq = j->w->q + (size_t)r0 * C; // (mt|nr, C)
    const float *xd = j->xd + (size_t)t0 * nb, *wd = j->w->d + (size_t)r0 * nb; // (mt|nr, nb)
    __m256 acc[2][2][2]; // (even|odd, t, r)
    UNROLL
    for (int t = 0; t < mt; t++)
        UNROLL
        for (int r = 0; r < nr; r++) acc[0][t][r] = acc[1][t][r] = _mm256_setzero_ps();
    int b = 0;
    for (; b + 2 <= nb; b += 2) {
        q8_step_avx2(acc[0], xq, xd, wq, wd, C, nb, mt, nr, b);
        q8_step_avx2(acc[1], xq, xd, wq, wd, C, nb, mt, nr, b + 1);
    }
    if (b < nb) q8_step_avx2(acc[0], xq, xd, wq, wd, C, nb, mt, nr, b);
    UNROLL
    for (int t = 0; t < mt; t++)
        UNROLL
        for (int r = 0; r < nr; r++)
            j->out[(size_t)(t0 + t) * R + r0 + r] =
                hsum_avx2(_mm256_add_ps(acc[0][t][r], acc[1][t][r]));
}

PLM_TARGET_AVX2 static void q8_tile_avx2(const matmul_job *j, int t0, int mt, int r0, int nr) {
    if (mt == 2 && nr == 2) q8_block_avx2(j, t0, 2, r0, 2);
    else if (mt == 2) q8_block_avx2(j, t0, 2, r0, 1);
    else if (nr == 2) q8_block_avx2(j, t0, 1, r0, 2);
    else q8_block_avx2(j, t0, 1, r0, 1);
}

// ---- AVX-512: backward ----

// load the 32 weights of row r at column c0 (n <= 32 valid) as two vectors
PLM_INLINE PLM_TARGET_AVX512 void w_load(__m512 *w0, __m512 *w1, const plm_mat *w, int32_t r,
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

// tile_avx512: as matmul_backward.c's tile_ref for nt (a constant after inlining) tokens from t0
PLM_INLINE PLM_TARGET_AVX512 void tile_avx512(float *dinp, const float *dout, const plm_mat *w, int32_t t0, const int nt,
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

PLM_TARGET_AVX512 static void tiles_avx512(float *dinp, const float *dout, const plm_mat *w,
                                           int32_t T, int32_t r0, int32_t r1, int32_t c0, int32_t n) {
    int32_t t = 0;
    for (; t + TT <= T; t += TT) tile_avx512(dinp, dout, w, t, TT, r0, r1, c0, n);
    for (; t + 4 <= T; t += 4) tile_avx512(dinp, dout, w, t, 4, r0, r1, c0, n);
    for (; t < T; t++) tile_avx512(dinp, dout, w, t, 1, r0, r1, c0, n);
}

PLM_TARGET_AVX512 static void dw_rows_avx512(float *dw, const float *dout, const float *inp,
                                             int32_t T, int32_t rows, int32_t cols, int32_t r0,
                                             int32_t r1) {
    plm_dw_rows_generic(dw, dout, inp, T, rows, cols, r0, r1);
}

// ---- the tables ----

const matmul_kernels plm_kernels_avx512 = {
    .f32 = {f32_tile_avx512, F32_MT, F32_NR, 1, NULL},
    .q8 = {q8_tile_avx512, 4, 4, 1, q8_warm_avx512},
    .quantize = quantize_avx512,
    .q8_prepare = q8_prepare_avx512,
    .dinp_tiles = tiles_avx512,
    .dw_rows = dw_rows_avx512,
};

const matmul_kernels plm_kernels_avx2 = {
    .f32 = {f32_tile_avx2, 2, 4, 1, NULL},
    .q8 = {q8_tile_avx2, 2, 2, 1, NULL},
};
#endif // __x86_64__
