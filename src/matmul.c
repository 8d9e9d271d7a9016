// matmul.c: out (T, rows) = inp (T, cols) @ W^T for W in HF layout (rows, cols), f32 or Q8_0, and
// the Q8_0 quantizer. One scalar reference and SIMD paths (AVX-512 with VNNI, AVX2 + FMA, chosen at
// run time with __builtin_cpu_supports; wasm SIMD128 chosen at build time) share one driver.
//
// Determinism: out[t, r] is always computed by one call of a path's tile kernel, and every tile
// shape of a path runs the same per-(t, r) operation sequence (the same vector lanes, the same
// order over cols, the same final horizontal sum). So a result never depends on the thread count,
// on the tile it fell in, or on T: decode (T = 1) equals prefill (T > 1) bit for bit on each path.
// Q8_0 goes further: every path (scalar, AVX2, AVX-512, wasm) runs one canonical sequence of float
// operations (see "Q8_0: the canonical order" below), so Q8_0 results are the same bits on every
// path, and the native and wasm builds give the same logits. f32 paths agree within rounding only.
// Threads split rows; Q8_0 inputs are quantized once by the caller before the threads start.
// Decode is memory-bound: it reads one row at a time (a sequential stream) with software prefetch
// of the weights and, for Q8_0, of the scales too (see q8_dot_avx512); prefill is compute-bound:
// register tiles of several tokens x rows reuse each loaded vector.
// Reference for the Q8_0 format and the VNNI/maddubs tricks: ggml-cpu's ggml_vec_dot_q8_0_q8_0.
#include "matmul.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define PLM_X86 1
#include <immintrin.h>
#define PLM_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define PLM_TARGET_AVX512 __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")))
#else
#define PLM_X86 0
#endif
#if defined(__wasm_simd128__)
#include <wasm_simd128.h>
#endif

#define PLM_INLINE static inline __attribute__((always_inline))
// UNROLL: fully unroll a loop over a tile's tokens or rows. Their bounds are constants at each call
// site, but -O2 does not unroll nests this deep: without it the accumulators live on the stack
// (f32 prefill at T = 128 on 1 thread: ~55 GFLOP/s without it, ~200 with it and the 4 x 6 tile).
#define UNROLL _Pragma("GCC unroll 8")
#ifndef PF_BYTES
#define PF_BYTES 6144 // decode prefetches the weights about this far ahead (AVX-512)
#endif
#define F32_MT 4 // AVX-512 f32 tile: tokens x rows; 24 accumulators + 6 weight vectors + 1 input
#define F32_NR 6 // fit 32 registers (1 thread, T = 128: 4 x 4 gets ~185 GFLOP/s, 4 x 6 ~210)
// Tokens per pass over a thread's rows: their inputs stay in L2 while the weights stream once per
// pass (the lm_head's 113 MB f32 weights read from DRAM once per 128 tokens, not once per 64).
#define TOKEN_BLOCK_BYTES (512 << 10)

// ---- the job and the driver ----

typedef struct matmul_job matmul_job;

// A tile kernel writes out[t0 .. t0+mt, r0 .. r0+nr]; the driver calls it only with
// (mt, nr) in {(MT, NR), (1, NR), (MT, 1), (1, 1)} for the kernel's MT and NR.
typedef void (*tile_fn)(const matmul_job *j, int t0, int mt, int r0, int nr);
// A warm function starts the memory reads of rows r0..r1 before decode's first tile (whose own
// prefetches only reach rows ahead of it).
typedef void (*warm_fn)(const matmul_job *j, int r0, int r1);

typedef struct {
    tile_fn fn;
    int mt, nr;   // tile: tokens x rows
    int dnr;      // rows of a tile when T < mt (decode): 1 keeps the weights one sequential stream
    warm_fn warm; // called once per thread when T < mt; NULL: none
} tile_kernel;

struct matmul_job {
    tile_kernel kernel;
    float *out;        // (T, rows)
    const float *inp;  // (T, cols) f32 inputs, for F32 weights
    const int8_t *xq;  // (T, cols) quantized inputs, for Q8_0 weights
    const float *xd;   // (T, cols / PLM_QK) their block scales
    const int32_t *xc; // (T, cols / 4) -128 * (sum of each 4 inputs), AVX-512 only
    const plm_mat *w;  // (rows, cols)
    int T;
};

// matmul_worker: thread ith of nth takes a contiguous chunk of rows, a multiple of the tile's NR.
static void matmul_worker(void *ctx, int ith, int nth) {
    const matmul_job *j = ctx;
    const int rows = j->w->rows, T = j->T;
    // Fewer tokens than a tile (decode): one row at a time, so the weights are read as one
    // sequential stream (interleaving 4 f32 row streams halves the DRAM bandwidth on Zen 4, and 2
    // interleaved Q8_0 rows run at a third of it without software prefetch).
    tile_kernel k = j->kernel;
    if (T < k.mt) k.nr = k.dnr;
    int per = (rows + nth - 1) / nth;
    per = (per + k.nr - 1) / k.nr * k.nr;
    const int r0 = ith * per < rows ? ith * per : rows;
    const int r1 = r0 + per < rows ? r0 + per : rows;
    if (T < k.mt && k.warm && r0 < r1) k.warm(j, r0, r1);
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

// ---- quantization: scalar reference ----

static size_t round_up64(size_t n) { return (n + 63) & ~(size_t)63; }

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

// ---- Q8_0: the canonical order (every path computes exactly this) ----
//
// out[t, r] = sum over blocks b of dw[r, b] * dx[t, b] * (q_w . q_x of block b), in float as:
//   p[b][l] = the exact int32 sum of the products of bytes 4l .. 4l+3 of block b   (l = 0..7)
//   acc[16] = +0;  for b = 0, 1, .. nb-1, for l = 0..7:
//       s = dw[r, b] * dx[t, b];  m = (float)p[b][l] * s;  acc[8 * (b % 2) + l] = acc[..] + m
//   h[i] = acc[i] + acc[i + 8],  a[i] = h[i] + h[i + 4],  out = (a[0] + a[2]) + (a[1] + a[3])
// Each step is a multiply then an add, two roundings, never an FMA: wasm SIMD128 has none, and the
// scalar path must match (GCC's -std=c11 default -ffp-contract=off keeps the compiler from fusing
// the intrinsics' mul + add; test_matmul would catch it). Why this order: it is how each width
// already computes its integer dots. p[b][l] is lane l of one vpdpbusd (AVX-512) or of maddubs +
// madd (AVX2) over a block; AVX-512 holds blocks b, b+1 (b even) in lanes 0-7, 8-15 of one
// register, so acc is one register and the end sum is the halving tree of its 16 lanes; AVX2 keeps
// two registers (even, odd blocks) and adds them first; wasm keeps four (lanes 0-3, 4-7 of even and
// of odd blocks). The integer sums are exact on every path, the scales product is one rounding, and
// a path that pads a last odd block with zero weights and scales adds +0 to accumulators that are
// never -0, so the bits do not depend on the path, the tile, T or the thread count.

// q8_sum_scalar: the canonical end sum of the 16 accumulators.
static float q8_sum_scalar(const float acc[16]) {
    float h[8];
    for (int i = 0; i < 8; i++) h[i] = acc[i] + acc[i + 8];
    const float a0 = h[0] + h[4], a1 = h[1] + h[5], a2 = h[2] + h[6], a3 = h[3] + h[7];
    return (a0 + a2) + (a1 + a3);
}

// q8_tile_scalar: out[t, r] in the canonical order, written out one lane at a time.
static void q8_tile_scalar(const matmul_job *j, int t0, int mt, int r0, int nr) {
    const int C = j->w->cols, R = j->w->rows, nb = C / PLM_QK;
    for (int t = t0; t < t0 + mt; t++) {
        for (int r = r0; r < r0 + nr; r++) {
            const int8_t *xq = j->xq + (size_t)t * C, *wq = j->w->q + (size_t)r * C;
            const float *xd = j->xd + (size_t)t * nb, *wd = j->w->d + (size_t)r * nb;
            float acc[16] = {0};
            for (int b = 0; b < nb; b++) {
                const float s = wd[b] * xd[b];
                float *a = acc + 8 * (b % 2);
                for (int l = 0; l < 8; l++) {
                    const int k = b * PLM_QK + 4 * l;
                    int32_t p = 0;
                    for (int i = k; i < k + 4; i++) p += (int32_t)xq[i] * wq[i];
                    const float m = (float)p * s; // its own statement: never contracted to an FMA
                    a[l] = a[l] + m;
                }
            }
            j->out[(size_t)t * R + r] = q8_sum_scalar(acc);
        }
    }
}

#if PLM_X86
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
#endif // PLM_X86

#if defined(__wasm_simd128__)
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

// q8_tile_wasm: one token (MT 1) times 4 rows (or 1). nr is a constant in each call so that the
// loops over rows unroll and the accumulators stay in locals (an array of v128 indexed at run time
// lives in linear memory in wasm, and every step would store it).
static void q8_tile_wasm(const matmul_job *j, int t0, int mt, int r0, int nr) {
    (void)mt;
    if (nr == 4) q8_block_wasm(j, t0, r0, 4);
    else q8_block_wasm(j, t0, r0, 1);
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
#endif // __wasm_simd128__

// ---- dispatch ----

const char *plm_matmul_isa_name(plm_matmul_isa isa) {
    switch (isa) {
    case PLM_MATMUL_ISA_SCALAR: return "scalar";
    case PLM_MATMUL_ISA_AVX2: return "avx2";
    case PLM_MATMUL_ISA_AVX512: return "avx512";
    case PLM_MATMUL_ISA_WASM: return "wasm";
    }
    return "?";
}

int plm_matmul_isa_supported(plm_matmul_isa isa) {
    switch (isa) {
    case PLM_MATMUL_ISA_SCALAR: return 1;
#if PLM_X86
    case PLM_MATMUL_ISA_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case PLM_MATMUL_ISA_AVX512:
        return plm_matmul_isa_supported(PLM_MATMUL_ISA_AVX2) && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512vnni");
#endif
#if defined(__wasm_simd128__)
    case PLM_MATMUL_ISA_WASM: return 1;
#endif
    default: return 0;
    }
}

plm_matmul_isa plm_matmul_isa_best(void) {
    if (plm_matmul_isa_supported(PLM_MATMUL_ISA_AVX512)) return PLM_MATMUL_ISA_AVX512;
    if (plm_matmul_isa_supported(PLM_MATMUL_ISA_AVX2)) return PLM_MATMUL_ISA_AVX2;
    if (plm_matmul_isa_supported(PLM_MATMUL_ISA_WASM)) return PLM_MATMUL_ISA_WASM;
    return PLM_MATMUL_ISA_SCALAR;
}

// kernel_for: the tile kernel of a supported path (scalar for an unsupported one).
static tile_kernel kernel_for(plm_matmul_isa isa, plm_dtype dtype) {
    const int q8 = dtype == PLM_DTYPE_Q8_0;
    if (!plm_matmul_isa_supported(isa)) isa = PLM_MATMUL_ISA_SCALAR;
    switch (isa) {
#if PLM_X86
    case PLM_MATMUL_ISA_AVX512: return q8 ? (tile_kernel){q8_tile_avx512, 4, 4, 1, q8_warm_avx512}
                                          : (tile_kernel){f32_tile_avx512, F32_MT, F32_NR, 1, NULL};
    case PLM_MATMUL_ISA_AVX2: return q8 ? (tile_kernel){q8_tile_avx2, 2, 2, 1, NULL}
                                        : (tile_kernel){f32_tile_avx2, 2, 4, 1, NULL};
#endif
#if defined(__wasm_simd128__)
    case PLM_MATMUL_ISA_WASM: return q8 ? (tile_kernel){q8_tile_wasm, 1, 4, 4, NULL}
                                        : (tile_kernel){f32_tile_wasm, 2, 4, 1, NULL};
#endif
    default: return q8 ? (tile_kernel){q8_tile_scalar, 1, 1, 1, NULL}
                       : (tile_kernel){f32_tile_scalar, 1, 1, 1, NULL};
    }
}

// ---- public entry points ----

void plm_quantize_q8_0_isa(plm_matmul_isa isa, int8_t *q, float *d, const float *x, size_t n) {
    assert(n % PLM_QK == 0);
#if PLM_X86
    if (isa == PLM_MATMUL_ISA_AVX512 && plm_matmul_isa_supported(isa)) {
        quantize_avx512(q, d, x, n);
        return;
    }
#endif
#if defined(__wasm_simd128__)
    if (isa == PLM_MATMUL_ISA_WASM) {
        quantize_wasm(q, d, x, n);
        return;
    }
#endif
    (void)isa;
    quantize_scalar(q, d, x, n);
}

void plm_quantize_q8_0(int8_t *q, float *d, const float *x, size_t n) {
    plm_quantize_q8_0_isa(plm_matmul_isa_best(), q, d, x, n);
}

void plm_mat_row(float *out, const plm_mat *w, int32_t r) {
    const size_t C = (size_t)w->cols;
    if (w->dtype == PLM_DTYPE_F32) {
        memcpy(out, w->f32 + (size_t)r * C, C * sizeof(float));
        return;
    }
    const int8_t *q = w->q + (size_t)r * C;
    const float *d = w->d + (size_t)r * (C / PLM_QK);
    for (size_t i = 0; i < C; i++) out[i] = (float)q[i] * d[i / PLM_QK];
}

size_t plm_matmul_scratch_bytes(int32_t T, int32_t cols) {
    const size_t n = (size_t)T * (size_t)cols;
    return round_up64(n) + round_up64(n / PLM_QK * sizeof(float)) + round_up64(n);
}

void plm_matmul_isa_run(plm_matmul_isa isa, plm_pool *pool, float *out, const float *inp,
                        const plm_mat *w, int32_t T, void *scratch) {
    assert(w->dtype == PLM_DTYPE_F32 || w->dtype == PLM_DTYPE_Q8_0);
    matmul_job j = {.kernel = kernel_for(isa, w->dtype), .out = out, .inp = inp, .w = w, .T = T};
    if (w->dtype == PLM_DTYPE_Q8_0) {
        assert(w->cols % PLM_QK == 0 && scratch != NULL);
        const size_t n = (size_t)T * (size_t)w->cols;
        int8_t *xq = scratch;
        float *xd = (float *)(void *)((char *)scratch + round_up64(n));
        plm_quantize_q8_0_isa(isa, xq, xd, inp, n);
        j.xq = xq;
        j.xd = xd;
#if PLM_X86
        if (j.kernel.fn == q8_tile_avx512) {
            int32_t *xc = (int32_t *)(void *)((char *)xd + round_up64(n / PLM_QK * sizeof(float)));
            q8_prepare_avx512(xc, xq, n);
            j.xc = xc;
        }
#endif
    }
    plm_pool_run(pool, matmul_worker, &j);
}

void plm_matmul(plm_pool *pool, float *out, const float *inp, const plm_mat *w, int32_t T,
                void *scratch) {
    plm_matmul_isa_run(plm_matmul_isa_best(), pool, out, inp, w, T, scratch);
}

void plm_matmul_ref(float *out, const float *inp, const plm_mat *w, int32_t T, void *scratch) {
    plm_matmul_isa_run(PLM_MATMUL_ISA_SCALAR, NULL, out, inp, w, T, scratch);
}
