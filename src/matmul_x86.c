// matmul_x86.c: the x86-64 paths of matmul_kernels.h: AVX2 + FMA, avxvnni (AVX2 + 256-bit
// vpdpbusd) and AVX-512 (F, BW, VL, VNNI). Compiled into every x86-64 build with target attributes
// (the binary stays portable); the driver takes a table only when cpu.c found the instructions.
//   f32 (every path): a packed broadcast-FMA GEMM, 6 tokens x 16 rows a ymm tile (AVX2) or 6 x 64 a
//     zmm tile (AVX-512: 1.5x on Intel's two 512-bit FMA ports), the same FMA chains in every lane
//     (so the same bits), and a row-wise matrix-vector kernel for decode;
//   Q8_0: for prefill, tokens in vector lanes (16 a zmm with VNNI, 8 a ymm); below 4 (AVX-512), 7
//     (AVX2) or 5 (avxvnni) tokens tiles of 4 rows as one prefetched stream for all the tokens, a
//     row a lane once the integer sums are reduced (reduce4_epi32). The 256-bit kernels are written
//     once in matmul_q8_x86.h and compiled for AVX2 (vpmaddubsw + vpmaddwd) and for avxvnni
//     (vpdpbusd), the latter twice: VEX-encoded for AVX-VNNI CPUs, EVEX-encoded for AVX512_VNNI +
//     VL ones, which is how the avxvnni path is tested on a CPU without AVX-VNNI (cpu.h); the
//     AVX-512 table decodes with the EVEX twin's stream kernel;
//   backward: broadcast-FMA input-gradient tiles, the generic weight gradient; the quantizer (all
//     AVX2's on the avxvnni path).
#include <math.h>
#include <string.h>

#include "matmul_kernels.h"
#include "quant_x86.h" // the target attributes, one block's quantization

#if defined(__x86_64__)
#include <immintrin.h>

#ifndef PF_BYTES
#define PF_BYTES 6144 // Q8_0 decode prefetches the weights at least this far ahead
#endif
#define TT 12 // input gradient: tokens per tile (24 accumulators)

// reduce8_epi32: lane i = the sum of the 8 int32 lanes of v[i] (Q8_0: exact), by transposing adds:
// hadd of pairs of vectors twice (v[0..3] and v[4..7], each 128-bit half holding half of each sum),
// then the two halves' sums side by side.
PLM_INLINE PLM_TARGET_AVX2 __m256i reduce8_epi32(const __m256i v[8]) {
    const __m256i a0 = _mm256_hadd_epi32(v[0], v[1]), a1 = _mm256_hadd_epi32(v[2], v[3]);
    const __m256i a2 = _mm256_hadd_epi32(v[4], v[5]), a3 = _mm256_hadd_epi32(v[6], v[7]);
    const __m256i b0 = _mm256_hadd_epi32(a0, a1), b1 = _mm256_hadd_epi32(a2, a3);
    return _mm256_add_epi32(_mm256_permute2x128_si256(b0, b1, 0x21),
                            _mm256_blend_epi32(b0, b1, 0xF0));
}

// reduce4_epi32: lane i = the sum of the 8 int32 lanes of v[i] (Q8_0: exact): hadd twice, then the
// two 128-bit halves added.
PLM_INLINE PLM_TARGET_AVX2 __m128i reduce4_epi32(const __m256i v[4]) {
    const __m256i h =
        _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

// ---- Q8_0 decode (every x86 path) ----

#define Q8_DNR 4 // rows of a decode tile (q8_tile4)

// prefetch_tiles: how many tiles of Q8_DNR rows of row_bytes make PF_BYTES (at least 1).
static int prefetch_tiles(size_t row_bytes) {
    return (int)((PF_BYTES + Q8_DNR * row_bytes - 1) / (Q8_DNR * row_bytes));
}

// q8_warm: prefetch the first prefetch_tiles + 1 tiles of the weights of rows r0..r1 and their
// scales (what q8_tile4 prefetches from the first tile on is ahead of them).
static void q8_warm(const matmul_job *j, int r0, int r1) {
    const size_t C = (size_t)j->w->cols, n = (size_t)Q8_DNR * (prefetch_tiles(C) + 1) * C;
    const char *q = (const char *)(j->w->q + (size_t)r0 * C);
    const char *d = (const char *)(j->w->d + (size_t)r0 * (C / PLM_QK));
    const size_t nq = (size_t)(r1 - r0) * C < n ? (size_t)(r1 - r0) * C : n;
    for (size_t o = 0; o < nq; o += 64) _mm_prefetch(q + o, _MM_HINT_T0);
    for (size_t o = 0; o < nq / 8 + 64; o += 64) _mm_prefetch(d + o, _MM_HINT_T0);
}

// ---- AVX-512 (F, BW, VL, VNNI) ----

// quantize_avx512: quantize_scalar, one block in two registers (quant_x86.h).
PLM_TARGET_AVX512 static void quantize_avx512(int8_t *q, float *d, const float *x, size_t n) {
    for (size_t b = 0; b < n / PLM_QK; b++)
        quantize_block_avx512(q + b * PLM_QK, d + b, _mm512_loadu_ps(x + b * PLM_QK),
                              _mm512_loadu_ps(x + b * PLM_QK + 16));
}

// ---- AVX2 + FMA: f32 ----
//
// Both f32 kernels compute each out[t, r] as one FMA chain over k in order from +0, with r in a
// vector lane: the packed GEMM (prefill, training) and the matrix-vector kernel (decode) give the
// same bits whatever T, the tile or the thread split, and neither needs a horizontal sum. A
// dot-product tile (lanes over k) reloads both operands for every FMA and sums each output at the
// end; the GEMM below loads 2 weight vectors and broadcasts 6 inputs for 12 FMAs.

#define GEMM_MR     6   // tokens of a micro-tile: 6 x 16 = 12 accumulators + 2 weight vectors + 1
#define GEMM_NR     16  // broadcast = 15 of the 16 ymm registers (BLIS/OpenBLAS Haswell sgemm)
#define GEMM_NP_512 4   // panels of an AVX-512 micro-tile: 6 x 64 = 24 of the 32 zmm accumulators
#define GEMM_KC     640 // k per slice at most (576 in one slice, 1536 in three of 512)
// F32_KS: each f32 output is a sum of chains over chunks of F32_KS columns of k (each an FMA chain
// from +0, in k order), added in chunk order to a total from +0: one chain over 1,536 terms put 2x
// the error of a 16-lane dot product on the real model's logits (test_real: 5.5e-5 of its 6e-5);
// chunks of 64 cost ~2% (an add, a load and a store per 64 FMAs)
#define F32_KS 64
#ifndef GEMM_PACK
#define GEMM_PACK (160 << 10) // bytes of packed panels per group: in L2
#endif
#define GEMM_NG 8 // panels per group at most
// GEMM_TB: bytes of inputs per token block (the blocks of a call of equal size, each packs the
// weights once): most of a 1 MB L2 (with the panels and acc). 800 KB puts the 128 tokens of a
// prefill's down_proj (1,536 columns) in one block: 92 -> 104 GFLOP/s, 1 thread, against 320 KB's
// three blocks of 48 (each packing its 3.5 MB of weights again); the other shapes no slower.
#ifndef GEMM_TB
#define GEMM_TB (800 << 10)
#endif
#define GEMM_TB_MAX 264 // tokens per block at most
#define GEMM_TB_ACC 132 // ... when k has several slices (the chains wait in acc between them)
#ifndef PF_F32_COLS
#define PF_F32_COLS 64 // decode prefetches a 16-row panel into L1 this many columns ahead (4 KB)
#endif

// The f32 kernels' weights w are f32, or F16/BF16 (dt) converted exactly as they load
// (matmul_kernels.h): weight i of w is at wat(w, i, dt); dt is a constant in each instance.
#define WSIZE(dt) ((dt) == PLM_DTYPE_F32 ? 4 : 2) // bytes a weight

PLM_INLINE const char *wat(const void *w, size_t i, const int dt) {
    return (const char *)w + i * WSIZE(dt);
}

// cvt4_avx2: the 4 F16 (vcvtph2ps) or BF16 (shifted up 16) values in the low half of h as f32.
PLM_INLINE PLM_TARGET_AVX2 __m128 cvt4_avx2(__m128i h, const int dt) {
    return dt == PLM_DTYPE_F16 ? _mm_cvtph_ps(h)
                               : _mm_castsi128_ps(_mm_slli_epi32(_mm_cvtepu16_epi32(h), 16));
}

// load4_avx2: weights i .. i + 3 of w as f32.
PLM_INLINE PLM_TARGET_AVX2 __m128 load4_avx2(const void *w, size_t i, const int dt) {
    if (dt == PLM_DTYPE_F32) return _mm_loadu_ps((const float *)w + i);
    return cvt4_avx2(_mm_loadl_epi64((const __m128i *)(const void *)wat(w, i, dt)), dt);
}

// load1_avx2: weight i of w as f32 in lane 0.
PLM_INLINE PLM_TARGET_AVX2 __m128 load1_avx2(const void *w, size_t i, const int dt) {
    if (dt == PLM_DTYPE_F32) return _mm_load_ss((const float *)w + i);
    uint16_t h;
    memcpy(&h, wat(w, i, dt), sizeof h);
    return cvt4_avx2(_mm_cvtsi32_si128(h), dt);
}

// transpose8_avx2: rows 0..7 of w from weight i (row stride C), columns 0..7, into c[k] = column k
// (lane i = row i). Four floats of row i and of row i + 4 share a register (vinsertf128 from
// memory uses no shuffle port), then a 4 x 4 transpose in each 128-bit lane: 8 shuffles for 64
// floats.
PLM_INLINE PLM_TARGET_AVX2 void transpose8_avx2(__m256 c[8], const void *w, size_t i0, size_t C,
                                                const int dt) {
    __m256 a[4], b[4];
    UNROLL
    for (int i = 0; i < 4; i++) {
        const size_t lo = i0 + (size_t)i * C, hi = i0 + (size_t)(i + 4) * C;
        a[i] = _mm256_insertf128_ps(_mm256_castps128_ps256(load4_avx2(w, lo, dt)),
                                    load4_avx2(w, hi, dt), 1);
        b[i] = _mm256_insertf128_ps(_mm256_castps128_ps256(load4_avx2(w, lo + 4, dt)),
                                    load4_avx2(w, hi + 4, dt), 1);
    }
    const __m256 t0 = _mm256_unpacklo_ps(a[0], a[1]), t1 = _mm256_unpackhi_ps(a[0], a[1]);
    const __m256 t2 = _mm256_unpacklo_ps(a[2], a[3]), t3 = _mm256_unpackhi_ps(a[2], a[3]);
    c[0] = _mm256_shuffle_ps(t0, t2, 0x44);
    c[1] = _mm256_shuffle_ps(t0, t2, 0xEE);
    c[2] = _mm256_shuffle_ps(t1, t3, 0x44);
    c[3] = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 u0 = _mm256_unpacklo_ps(b[0], b[1]), u1 = _mm256_unpackhi_ps(b[0], b[1]);
    const __m256 u2 = _mm256_unpacklo_ps(b[2], b[3]), u3 = _mm256_unpackhi_ps(b[2], b[3]);
    c[4] = _mm256_shuffle_ps(u0, u2, 0x44);
    c[5] = _mm256_shuffle_ps(u0, u2, 0xEE);
    c[6] = _mm256_shuffle_ps(u1, u3, 0x44);
    c[7] = _mm256_shuffle_ps(u1, u3, 0xEE);
}

// transpose16_half_avx2: rows 0..15 of the 16-bit (dt) w from weight i0 (row stride C), columns
// 0..7, into v[k] = column k still 16-bit, rows 0..7 in the low 128-bit lane and rows 8..15 in the
// high one (row i and row i + 8 share a register: vinserti128 from memory uses no shuffle port);
// then an 8 x 8 transpose of 16-bit elements in each lane (3 rounds of 8 unpacks) before any
// conversion: 24 shuffles and 16 conversions (half8_avx2) for 128 weights, where transpose8_avx2
// converts 4 at a time and needs 48 shuffles and 32 conversions (F16 decode ran at 1.24x f32's speed
// with it, not 2x).
PLM_INLINE PLM_TARGET_AVX2 void transpose16_half_avx2(__m256i v[8], const void *w, size_t i0,
                                                      size_t C, const int dt) {
    __m256i a[8], t[8];
    UNROLL
    for (int i = 0; i < 8; i++)
        a[i] = _mm256_inserti128_si256(
            _mm256_castsi128_si256(
                _mm_loadu_si128((const __m128i *)(const void *)wat(w, i0 + (size_t)i * C, dt))),
            _mm_loadu_si128((const __m128i *)(const void *)wat(w, i0 + (size_t)(i + 8) * C, dt)),
            1);
    UNROLL
    for (int i = 0; i < 4; i++) { // rows 2i, 2i + 1 interleaved: columns 0..3, then 4..7
        t[2 * i] = _mm256_unpacklo_epi16(a[2 * i], a[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_epi16(a[2 * i], a[2 * i + 1]);
    }
    UNROLL
    for (int i = 0; i < 2; i++) { // rows 4i .. 4i + 3: columns 0-1, 2-3, 4-5, 6-7
        a[4 * i] = _mm256_unpacklo_epi32(t[4 * i], t[4 * i + 2]);
        a[4 * i + 1] = _mm256_unpackhi_epi32(t[4 * i], t[4 * i + 2]);
        a[4 * i + 2] = _mm256_unpacklo_epi32(t[4 * i + 1], t[4 * i + 3]);
        a[4 * i + 3] = _mm256_unpackhi_epi32(t[4 * i + 1], t[4 * i + 3]);
    }
    UNROLL
    for (int i = 0; i < 4; i++) { // rows 0..7: columns 2i and 2i + 1
        v[2 * i] = _mm256_unpacklo_epi64(a[i], a[i + 4]);
        v[2 * i + 1] = _mm256_unpackhi_epi64(a[i], a[i + 4]);
    }
}

// half8_avx2: the 8 F16 or BF16 values h as f32 (cvt4_avx2's conversions, 8 at a time).
PLM_INLINE PLM_TARGET_AVX2 __m256 half8_avx2(__m128i h, const int dt) {
    return dt == PLM_DTYPE_F16
               ? _mm256_cvtph_ps(h)
               : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

// col8_avx2: column 0 of rows 0..7 of w from weight i (row stride C), for the columns past the
// last 8.
PLM_INLINE PLM_TARGET_AVX2 __m256 col8_avx2(const void *w, size_t i, size_t C, const int dt) {
    float v[8];
    UNROLL
    for (int r = 0; r < 8; r++) v[r] = _mm_cvtss_f32(load1_avx2(w, i + (size_t)r * C, dt));
    return _mm256_loadu_ps(v);
}

// matvec_avx2: out[r .. r + 8g) (g = 1 or 2 chains of 8 rows) = x . rows of w from weight i0
// (stride C): k in steps of 8 columns transposed in registers. Prefetch (16-row panels): pf_next
// is the next panel (NULL: none), read in address order 16 * WSIZE bytes a step of 8 columns of
// this panel's progress, into L2: one sequential stream a panel (36 or 98 KB of f32) ahead; and
// each step brings one line of 8 of this panel's rows PF_F32_COLS columns ahead into L1. On Zen 4,
// 1 thread: 16 GB/s with the near prefetch alone, 20-22 GB/s with both (a plain read loop: 18-25).
PLM_INLINE PLM_TARGET_AVX2 void matvec_avx2(float *out, const float *x, const void *w, size_t i0,
                                            size_t C, const int g, const char *pf_next,
                                            const int dt) {
    __m256 tot[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (size_t k0 = 0; k0 < C; k0 += F32_KS) { // a chain per chunk of k, added to the total
        const size_t ke = k0 + F32_KS < C ? k0 + F32_KS : C;
        __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
        size_t k = k0;
        for (; k + 8 <= ke; k += 8) {
            if (pf_next) { // f32: 8 lines a step (16 rows x 32 B), F16/BF16 4
                const char *p = pf_next + k * 16 * WSIZE(dt);
                for (int i = 0; i < 2 * WSIZE(dt); i++) _mm_prefetch(p + i * 64, _MM_HINT_T1);
                if (k + PF_F32_COLS < C) {
                    const size_t q = i0 + k + PF_F32_COLS + (k / 8 & 1) * 8 * C;
                    UNROLL
                    for (int i = 0; i < 8; i++) _mm_prefetch(wat(w, q + i * C, dt), _MM_HINT_T0);
                }
            }
            if (dt != PLM_DTYPE_F32 && g == 2) {
                __m256i v[8];
                transpose16_half_avx2(v, w, i0 + k, C, dt);
                UNROLL
                for (int i = 0; i < 8; i++) {
                    const __m256 xi = _mm256_broadcast_ss(x + k + i);
                    acc[0] =
                        _mm256_fmadd_ps(xi, half8_avx2(_mm256_castsi256_si128(v[i]), dt), acc[0]);
                    acc[1] = _mm256_fmadd_ps(xi, half8_avx2(_mm256_extracti128_si256(v[i], 1), dt),
                                             acc[1]);
                }
                continue;
            }
            __m256 c[8];
            UNROLL
            for (int h = 0; h < g; h++) {
                transpose8_avx2(c, w, i0 + (size_t)(8 * h) * C + k, C, dt);
                UNROLL
                for (int i = 0; i < 8; i++)
                    acc[h] = _mm256_fmadd_ps(_mm256_broadcast_ss(x + k + i), c[i], acc[h]);
            }
        }
        for (; k < ke; k++) {
            UNROLL
            for (int h = 0; h < g; h++)
                acc[h] = _mm256_fmadd_ps(_mm256_broadcast_ss(x + k),
                                         col8_avx2(w, i0 + (size_t)(8 * h) * C + k, C, dt), acc[h]);
        }
        UNROLL
        for (int h = 0; h < g; h++) tot[h] = _mm256_add_ps(tot[h], acc[h]);
    }
    UNROLL
    for (int h = 0; h < g; h++) _mm256_storeu_ps(out + 8 * h, tot[h]);
}

// matvec_rows_avx2: out[0, r0 .. r1) for one token (decode) of weights W of dtype dt: 16 rows at a
// time, then 8, then single rows as scalar FMA chains (the same chains as a lane's). DRAM-bound:
// the first panel is prefetched before the loop (into L2, its first columns into L1), each panel
// the next.
PLM_INLINE PLM_TARGET_AVX2 void matvec_rows_avx2(const matmul_job *j, const void *W, int r0, int r1,
                                                 const int dt) {
    const size_t C = (size_t)j->w->cols, row = C * WSIZE(dt);
    const float *x = j->inp;
    const size_t first = (size_t)(r1 - r0 < 16 ? r1 - r0 : 16) * row;
    for (size_t o = 0, c = 0; o < first; o += 64, c += 64) { // c: o's offset in its row
        const char *p = wat(W, (size_t)r0 * C, dt) + o;
        while (c >= row) c -= row;
        if (c < PF_F32_COLS * WSIZE(dt)) _mm_prefetch(p, _MM_HINT_T0);
        else _mm_prefetch(p, _MM_HINT_T1);
    }
    int r = r0;
    for (; r + 16 <= r1; r += 16) {
        const size_t i = (size_t)r * C;
        matvec_avx2(j->out + r, x, W, i, C, 2, r + 32 <= j->w->rows ? wat(W, i + 16 * C, dt) : NULL,
                    dt);
    }
    if (r + 8 <= r1) {
        matvec_avx2(j->out + r, x, W, (size_t)r * C, C, 1, NULL, dt);
        r += 8;
    }
    for (; r < r1; r++) {
        __m128 tot = _mm_setzero_ps();
        for (size_t k0 = 0; k0 < C; k0 += F32_KS) {
            __m128 acc = _mm_setzero_ps();
            for (size_t k = k0; k < C && k < k0 + F32_KS; k++)
                acc = _mm_fmadd_ss(_mm_load_ss(x + k), load1_avx2(W, (size_t)r * C + k, dt), acc);
            tot = _mm_add_ss(tot, acc);
        }
        j->out[r] = _mm_cvtss_f32(tot);
    }
}

// pack_dt_avx2: rows 0 .. nr (nr <= 16) of w from weight i0 (stride C), columns 0 .. kc, into p
// (kc, 16) k-major: p[k][i] = w[i, k]; rows nr .. 15 are zero (their lanes are computed and never
// stored).
PLM_INLINE PLM_TARGET_AVX2 void pack_dt_avx2(float *p, const void *w, size_t i0, size_t C, int nr,
                                             int kc, const int dt) {
    int k = 0;
    if (nr == GEMM_NR)
        for (; k + 8 <= kc; k += 8) {
            __m256 c[8];
            UNROLL
            for (int h = 0; h < 2; h++) {
                transpose8_avx2(c, w, i0 + (size_t)(8 * h) * C + k, C, dt);
                UNROLL
                for (int i = 0; i < 8; i++) _mm256_store_ps(p + (k + i) * GEMM_NR + 8 * h, c[i]);
            }
        }
    for (; k < kc; k++)
        for (int i = 0; i < GEMM_NR; i++)
            p[k * GEMM_NR + i] =
                i < nr ? _mm_cvtss_f32(load1_avx2(w, i0 + (size_t)i * C + k, dt)) : 0.0f;
}

// f32_matvec_avx2, pack_avx2: matvec_rows_avx2 and pack_dt_avx2 for the weights of j (f32, F16 or
// BF16).
PLM_TARGET_AVX2 static void f32_matvec_avx2(const matmul_job *j, int r0, int r1) {
    switch (j->w->dtype) {
    case PLM_DTYPE_F16: matvec_rows_avx2(j, j->w->h, r0, r1, PLM_DTYPE_F16); break;
    case PLM_DTYPE_BF16: matvec_rows_avx2(j, j->w->h, r0, r1, PLM_DTYPE_BF16); break;
    default: matvec_rows_avx2(j, j->w->f32, r0, r1, PLM_DTYPE_F32); break;
    }
}

PLM_TARGET_AVX2 static void pack_avx2(float *p, const plm_mat *w, size_t i0, int nr, int kc) {
    const size_t C = (size_t)w->cols;
    switch (w->dtype) {
    case PLM_DTYPE_F16: pack_dt_avx2(p, w->h, i0, C, nr, kc, PLM_DTYPE_F16); break;
    case PLM_DTYPE_BF16: pack_dt_avx2(p, w->h, i0, C, nr, kc, PLM_DTYPE_BF16); break;
    default: pack_dt_avx2(p, w->f32, i0, C, nr, kc, PLM_DTYPE_F32); break;
    }
}

// pf_lines: the 64-byte lines of a region of W (rows of row_bytes, stride bytes apart), prefetched
// into L2 `per` lines at a time by pf_step, once per chunk of the micro-kernel's k loop: the next
// pack's weights come from DRAM while the tiles compute. Without it the pack's loads waited on
// DRAM (f32_rows_avx2's own time, mostly the pack: 19% of a 1-thread f32 prefill profile; 9-10%
// with it, decode's matrix-vector kernel included); issued all at once before each tile, the
// prefetches filled the miss buffers and stalled as long.
typedef struct {
    const char *p;
    size_t stride;
    int row_bytes, rows, per; // per: lines a step
    int r, o;                 // the next line: row r, byte o
} pf_lines;

PLM_INLINE void pf_step(pf_lines *s) {
    for (int i = 0; i < s->per && s->r < s->rows; i++) {
        _mm_prefetch(s->p + (size_t)s->r * s->stride + s->o, _MM_HINT_T1);
        if ((s->o += 64) >= s->row_bytes) s->o = 0, s->r++;
    }
}

// gemm_tile_avx2: d[t, 0 .. 16) for t < mt (row stride dR; mt a constant at each call site) over
// the kc columns of the packed panel p (kc a multiple of F32_KS, or the last columns), inputs x (row
// stride C) broadcast one float at a time: per chunk of F32_KS columns a chain from +0, added to the
// total, which starts from +0 when s is NULL, else from s[t, 0 .. 16) (row stride sR), and waits in
// d between chunks (a float stored and loaded back is the same float). A pf_step a chunk.
PLM_INLINE PLM_TARGET_AVX2 void gemm_tile_avx2(float *d, size_t dR, const float *s, size_t sR,
                                               const float *x, size_t C, const float *p, int kc,
                                               pf_lines *pf, const int mt) {
    for (int k0 = 0; k0 < kc; k0 += F32_KS) {
        pf_step(pf);
        const int ke = k0 + F32_KS < kc ? k0 + F32_KS : kc;
        __m256 acc[GEMM_MR][2];
        UNROLL
        for (int t = 0; t < mt; t++) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
#pragma GCC unroll 4
        for (int k = k0; k < ke; k++) {
            const __m256 b0 = _mm256_load_ps(p + k * GEMM_NR),
                         b1 = _mm256_load_ps(p + k * GEMM_NR + 8);
            UNROLL
            for (int t = 0; t < mt; t++) {
                const __m256 a = _mm256_broadcast_ss(x + t * C + k);
                acc[t][0] = _mm256_fmadd_ps(a, b0, acc[t][0]);
                acc[t][1] = _mm256_fmadd_ps(a, b1, acc[t][1]);
            }
        }
        UNROLL
        for (int t = 0; t < mt; t++) {
            const __m256 s0 = s ? _mm256_loadu_ps(s + t * sR) : _mm256_setzero_ps();
            const __m256 s1 = s ? _mm256_loadu_ps(s + t * sR + 8) : _mm256_setzero_ps();
            _mm256_storeu_ps(d + t * dR, _mm256_add_ps(s0, acc[t][0]));
            _mm256_storeu_ps(d + t * dR + 8, _mm256_add_ps(s1, acc[t][1]));
        }
        s = d, sR = dR; // the total goes on from d
    }
}

PLM_TARGET_AVX2 static void gemm_tiles_avx2(float *d, size_t dR, const float *s, size_t sR,
                                            const float *x, size_t C, const float *p, int kc,
                                            pf_lines *pf, int mt) {
    switch (mt) {
    case 6: gemm_tile_avx2(d, dR, s, sR, x, C, p, kc, pf, 6); break;
    case 5: gemm_tile_avx2(d, dR, s, sR, x, C, p, kc, pf, 5); break;
    case 4: gemm_tile_avx2(d, dR, s, sR, x, C, p, kc, pf, 4); break;
    case 3: gemm_tile_avx2(d, dR, s, sR, x, C, p, kc, pf, 3); break;
    case 2: gemm_tile_avx2(d, dR, s, sR, x, C, p, kc, pf, 2); break;
    default: gemm_tile_avx2(d, dR, s, sR, x, C, p, kc, pf, 1); break;
    }
}

// gemm_tile_avx512: gemm_tile_avx2's tile in zmm registers: d[t, 0 .. 16 np) for t < mt over np
// (1 to 4) adjacent packed panels (p + 16 kc h), 24 accumulators for 6 tokens x 64 rows: 4 weight
// loads and 6 broadcasts for 24 FMAs. Each lane is the same FMA chain as in gemm_tile_avx2's ymm
// lanes: the same bits. 1 thread, Intel Xeon (Sapphire Rapids): 139-173 GFLOP/s on the model's
// shapes at T = 64-512, against the ymm tile's 84-111 and OpenBLAS SkylakeX's 113-163; 12 tokens
// x 32 rows ran at 55 (12 input rows to address: GCC spilled the pointers).
PLM_INLINE PLM_TARGET_AVX512 void gemm_tile_avx512(float *d, size_t dR, const float *s, size_t sR,
                                                   const float *x, size_t C, const float *p, int kc,
                                                   pf_lines *pf, const int mt, const int np) {
    const size_t pn = (size_t)kc * GEMM_NR; // floats a panel
    for (int k0 = 0; k0 < kc; k0 += F32_KS) {
        pf_step(pf);
        const int ke = k0 + F32_KS < kc ? k0 + F32_KS : kc;
        __m512 acc[GEMM_MR][GEMM_NP_512];
        UNROLL
        for (int t = 0; t < mt; t++) {
            UNROLL
            for (int h = 0; h < np; h++) acc[t][h] = _mm512_setzero_ps();
        }
#pragma GCC unroll 4
        for (int k = k0; k < ke; k++) {
            __m512 b[GEMM_NP_512];
            UNROLL
            for (int h = 0; h < np; h++) b[h] = _mm512_load_ps(p + h * pn + k * GEMM_NR);
            UNROLL
            for (int t = 0; t < mt; t++) {
                const __m512 a = _mm512_set1_ps(x[t * C + k]);
                UNROLL
                for (int h = 0; h < np; h++) acc[t][h] = _mm512_fmadd_ps(a, b[h], acc[t][h]);
            }
        }
        UNROLL
        for (int t = 0; t < mt; t++) {
            UNROLL
            for (int h = 0; h < np; h++) {
                const __m512 s0 = s ? _mm512_loadu_ps(s + t * sR + 16 * h) : _mm512_setzero_ps();
                _mm512_storeu_ps(d + t * dR + 16 * h, _mm512_add_ps(s0, acc[t][h]));
            }
        }
        s = d, sR = dR; // the total goes on from d
    }
}

#define GEMM_512_CASE(m)                                                                           \
    case m:                                                                                        \
        switch (np) {                                                                              \
        case 4: gemm_tile_avx512(d, dR, s, sR, x, C, p, kc, pf, m, 4); break;                      \
        case 3: gemm_tile_avx512(d, dR, s, sR, x, C, p, kc, pf, m, 3); break;                      \
        case 2: gemm_tile_avx512(d, dR, s, sR, x, C, p, kc, pf, m, 2); break;                      \
        default: gemm_tile_avx512(d, dR, s, sR, x, C, p, kc, pf, m, 1); break;                     \
        }                                                                                          \
        break;

PLM_TARGET_AVX512 static void gemm_tiles_avx512(float *d, size_t dR, const float *s, size_t sR,
                                                const float *x, size_t C, const float *p, int kc,
                                                pf_lines *pf, int mt, int np) {
    switch (mt) {
        GEMM_512_CASE(6)
        GEMM_512_CASE(5)
        GEMM_512_CASE(4)
        GEMM_512_CASE(3)
        GEMM_512_CASE(2)
        GEMM_512_CASE(1)
    }
}

// f32_rows: out[0 .. T, r0 .. r1). Decode (T = 1) reads the weights once, row-wise. Otherwise
// GotoBLAS-style: per block of tokens (their inputs stay in L2), per group of up to GEMM_NG panels
// of 16 rows and per slice of k: pack the group (k-major, into this thread's L2-sized buffer), then
// for each tile of 6 tokens (its inputs stay in L1) run the micro-kernel over every panel of the
// group (wide: zmm tiles of 4 panels; else ymm tiles of 1), so out's rows are written in runs of
// up to GEMM_NG * 64 bytes: a matrix with many rows writes out once, from far in memory, and one
// line per (token, panel) cost 2x at the lm_head (49,152 rows).
// Between slices of k the chains wait in this thread's acc; the weights are read once per token
// block, as the dot-product tiles did, and each pack's weights are prefetched into L2 while the
// tiles of the pack before it compute (pf_lines). F16 and BF16 weights convert as they load (the
// pack, the matrix-vector kernel): their f32 matrix's bits, from half the bytes.
PLM_INLINE PLM_TARGET_AVX2 void f32_rows(const matmul_job *j, int r0, int r1, const int wide) {
    static _Thread_local _Alignas(64) float panels[GEMM_PACK / sizeof(float)];
    static _Thread_local _Alignas(64) float acc[GEMM_TB_ACC * GEMM_NG * GEMM_NR]; // 66 KB
    const int T = j->T, rn = wide ? GEMM_NP_512 * GEMM_NR : GEMM_NR;              // a tile
    if (T == 1) {
        f32_matvec_avx2(j, r0, r1);
        return;
    }
    const size_t C = (size_t)j->w->cols, R = (size_t)j->w->rows;
    const int es = WSIZE(j->w->dtype); // bytes a weight (f32, F16 or BF16)
    const char *W = es == 4 ? (const char *)j->w->f32 : (const char *)j->w->h;
    const int nk = (int)((C + GEMM_KC - 1) / GEMM_KC); // slices of k
    const int kcs = (int)((C + (size_t)nk - 1) / (size_t)nk + F32_KS - 1) / F32_KS * F32_KS;
    int ng = (int)(GEMM_PACK / ((size_t)kcs * GEMM_NR * sizeof(float)));
    ng = ng < 1 ? 1 : ng > GEMM_NG ? GEMM_NG : ng;
    if (wide && ng > GEMM_NP_512) ng -= ng % GEMM_NP_512; // whole tiles of panels
    int tb = (int)(GEMM_TB / (C * sizeof(float))) / GEMM_MR * GEMM_MR;
    tb = tb < 4 * GEMM_MR ? 4 * GEMM_MR : tb > GEMM_TB_MAX ? GEMM_TB_MAX : tb;
    if (nk > 1 && tb > GEMM_TB_ACC) tb = GEMM_TB_ACC;
    const int nb = (T + tb - 1) / tb; // blocks of equal size (each packs the weights once)
    tb = ((T + nb - 1) / nb + GEMM_MR - 1) / GEMM_MR * GEMM_MR;
    const size_t aR = (size_t)ng * GEMM_NR; // acc: (tb, ng * 16)
    for (int t0 = 0; t0 < T; t0 += tb) {
        const int te = t0 + tb < T ? t0 + tb : T;
        for (int rg = r0; rg < r1; rg += ng * GEMM_NR) {
            const int rge = rg + ng * GEMM_NR < r1 ? rg + ng * GEMM_NR : r1;
            for (size_t k0 = 0; k0 < C; k0 += (size_t)kcs) {
                const int kc = C - k0 < (size_t)kcs ? (int)(C - k0) : kcs;
                const int last = k0 + (size_t)kc == C;
                // the next pack's weights: this group's next slice, else the next group's first,
                // else the first group's for the next token block; spread over the tiles' chunks
                const int nrg = last ? rge < r1 ? rge : te < T ? r0 : r1 : rg;
                const size_t nk0 = last ? 0 : k0 + (size_t)kc;
                const int nkc = C - nk0 < (size_t)kcs ? (int)(C - nk0) : kcs;
                const int nrows = (nrg + ng * GEMM_NR < r1 ? nrg + ng * GEMM_NR : r1) - nrg;
                const int lines = nrows * ((nkc * es + 63) / 64);
                const int chunks = (te - t0 + GEMM_MR - 1) / GEMM_MR * ((rge - rg + rn - 1) / rn) *
                                   ((kc + F32_KS - 1) / F32_KS);
                pf_lines pf = {.p = W + ((size_t)nrg * C + nk0) * es,
                               .stride = C * es,
                               .row_bytes = nkc * es,
                               .rows = nrows,
                               .per = (lines + chunks - 1) / chunks,
                               .r = 0,
                               .o = 0};
                for (int r = rg; r < rge; r += GEMM_NR) {
                    const int nr = rge - r < GEMM_NR ? rge - r : GEMM_NR;
                    pack_avx2(panels + (size_t)(r - rg) * kc, j->w, (size_t)r * C + k0, nr, kc);
                }
                for (int t = t0; t < te; t += GEMM_MR) {
                    const int mt = te - t < GEMM_MR ? te - t : GEMM_MR;
                    const float *x = j->inp + (size_t)t * C + k0;
                    for (int r = rg; r < rge; r += rn) {
                        const int nr = rge - r < rn ? rge - r : rn;
                        const int np = (nr + GEMM_NR - 1) / GEMM_NR; // panels of this tile
                        const float *p = panels + (size_t)(r - rg) * kc;
                        // (acc only when k has slices: tb may pass GEMM_TB_ACC when it has one)
                        float *a = nk > 1 ? acc + (size_t)(t - t0) * aR + (r - rg) : NULL;
                        const float *s = k0 ? a : NULL;
                        float *o = j->out + (size_t)t * R + r;
                        // the tile's rows: into acc between slices of k, then into out, or
                        // through a full-width copy for the last rows of a partial panel
                        float tmp[GEMM_MR * GEMM_NP_512 * GEMM_NR];
                        const int full = nr == np * GEMM_NR;
                        float *d = !last ? a : full ? o : tmp;
                        const size_t dR = !last ? aR : full ? R : (size_t)np * GEMM_NR;
                        if (wide) gemm_tiles_avx512(d, dR, s, aR, x, C, p, kc, &pf, mt, np);
                        else gemm_tiles_avx2(d, dR, s, aR, x, C, p, kc, &pf, mt);
                        if (d == tmp)
                            for (int i = 0; i < mt; i++)
                                memcpy(o + i * R, tmp + (size_t)i * dR, (size_t)nr * sizeof(float));
                    }
                }
            }
        }
    }
}

PLM_TARGET_AVX2 static void f32_rows_avx2(const matmul_job *j, int r0, int r1) {
    f32_rows(j, r0, r1, 0);
}

PLM_TARGET_AVX512 static void f32_rows_avx512(const matmul_job *j, int r0, int r1) {
    f32_rows(j, r0, r1, 1);
}

// ---- Q8_0 prefill: tokens in vector lanes (T >= one group of G tokens) ----
//
// A vector holds G tokens (AVX-512 16, AVX2 8): for row r and block b, token t's lane gets P[b] as
// an int32 chain over the block's 8 lanes of 4 columns l (the 4 weights of each broadcast), then
// one convert, a multiply by s = dw[r, b] * dx[t, b] and an add into the row's one accumulator:
// the canonical order in every lane, with no horizontal sum. Per 4 columns and G tokens,
// AVX-512: one vpdpbusd; AVX2: a sign, vpmaddubsw, vpmaddwd and an add (3 loads: 3.83 -> 3.14 ms a
// token at T = 128 against two vpmaddwd on int16 planes and 4 loads, in the old order); avxvnni:
// one vpdpbusd. AVX-512 runs the last 8 tokens or fewer as a paired group (below).
// xc (q8_prepare, when T >= G): per group of G tokens (the last padded with zero inputs and scales;
// its lanes past T are computed and never stored), plm_lane_group_bytes: 4 G bytes a plane for each 4
// columns k4 = 8 b + l, then the scales dx (nb, G) as floats:
//   AVX-512 (G = 16) and avxvnni (G = 8): one plane, the tokens' 4 bytes xor 0x80 (x + 128:
//     vpdpbusd's unsigned operand); each block's chain starts from -128 * (the sum of its 32
//     weights), which makes the int32 sum exact;
//   AVX2 (G = 8): two planes, the 8 tokens' 4 bytes as they are, then their absolute values; the
//     4 weights w are broadcast, and vpmaddubsw(|x|, sign(w, x)) then vpmaddwd by ones is the
//     exact sum of the 4 products (|w|, |x| <= 127: no saturation).

#define Q8_ROWS_T   4  // AVX-512: tokens from which the rows kernel runs (padded to 8 below 8)
#define LANES_CHUNK 64 // blocks whose weight corrections are computed ahead (256 bytes a row)

// lane_groups16: the AVX-512 groups of 16 tokens among T; the rest, 8 tokens or fewer, forms one
// paired group after them (so 1 to 8 more tokens are not padded to 16).
static int lane_groups16(int T) {
    return T % 16 > 8 ? T / 16 + 1 : T / 16;
}

// AVX-512's paired group of 8 tokens (or fewer, padded; in a group of 16's place, 8 C + 64 nb
// bytes): for each 8 columns k8 (the 4-column lanes l = 2 p, 2 p + 1 of block b, k8 = 4 b + p), 64
// bytes: token i's 8 bytes (xor 0x80) at 8 i, so vector lanes 2 i and 2 i + 1 hold its lanes 2 p
// and 2 p + 1; then the scales dx (nb, 16), token i's at 2 i and 2 i + 1.

// lanes_store: G tokens' results (sum, G floats, token t0 + i in lane i) into out[t0 + i, r] for
// t0 + i < T.
static void lanes_store(const matmul_job *j, const float *sum, int G, int t0, int r) {
    const int n = j->T - t0 < G ? j->T - t0 : G;
    for (int i = 0; i < n; i++) j->out[(size_t)(t0 + i) * j->w->rows + r] = sum[i];
}

// lanes_prefetch: at block b of the row whose weights are w and scales dw, in a kernel that reads
// rows one after another as one stream (the lanes kernels), prefetch that stream PF_BYTES ahead: a
// line of weights every other block and a line of scales every 16. The server's steps read every
// row from DRAM: with it AVX-512's 16-token group took 0.16 against 0.20 ms on gate_proj's rows
// from DRAM, AVX2's 8 tokens 4.8 against 5.2 ms on the lm_head (1 thread, a shared machine,
// bench_matmul's BENCH_COLD).
PLM_INLINE void lanes_prefetch(const int8_t *w, const float *dw, int b) {
    if (b % 2 == 0) _mm_prefetch((const char *)(w + b * PLM_QK) + PF_BYTES, _MM_HINT_T0);
    if (b % 16 == 0) _mm_prefetch((const char *)(dw + b) + PF_BYTES / 8, _MM_HINT_T0);
}

// q8_groups_avx2: xc's groups of 8 tokens (above) from xq (T, C) and xd (T, C / 32), by gathers,
// those that start in [t0, t1) (t0 a multiple of 8); planes (a constant at each call site): 2
// (AVX2: x, |x|) or 1 (avxvnni: x xor 0x80).
PLM_INLINE PLM_TARGET_AVX2 void q8_groups_avx2(int32_t *xc, const int8_t *xq, const float *xd,
                                               int T, int C, int t0, int t1, const int planes) {
    const int nb = C / PLM_QK;
    const size_t gb = plm_lane_group_bytes(C, 8, planes);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i xoff = _mm256_mullo_epi32(lane, _mm256_set1_epi32(C));
    const __m256i doff = _mm256_mullo_epi32(lane, _mm256_set1_epi32(nb));
    for (int g = t0 / 8; g * 8 < t1; g++) {
        const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(T - 8 * g), lane);
        char *o = (char *)xc + (size_t)g * gb;
        const int8_t *x = xq + (size_t)8 * g * C;
        for (int k4 = 0; k4 < C / 4; k4++) {
            const __m256i v = _mm256_mask_i32gather_epi32(
                _mm256_setzero_si256(), (const int *)(const void *)(x + 4 * k4), xoff, m, 1);
            char *ok = o + 32 * planes * (size_t)k4;
            if (planes == 1) {
                _mm256_store_si256((__m256i *)(void *)ok,
                                   _mm256_xor_si256(v, _mm256_set1_epi8((char)0x80)));
            } else {
                _mm256_store_si256((__m256i *)(void *)ok, v);
                _mm256_store_si256((__m256i *)(void *)(ok + 32), _mm256_abs_epi8(v));
            }
        }
        float *dx = (float *)(void *)(o + 8 * planes * (size_t)C);
        for (int b = 0; b < nb; b++)
            _mm256_store_ps(dx + 8 * b, _mm256_mask_i32gather_ps(_mm256_setzero_ps(),
                                                                 xd + (size_t)8 * g * nb + b, doff,
                                                                 _mm256_castsi256_ps(m), 4));
    }
}

// Below this many tokens (decode, the server's small steps) the 256-bit tables run tiles of 4 rows
// as one prefetched stream for all the tokens (q8_stream); from it the lanes kernel (q8_rows), which
// measured a little faster than the stream at 7 tokens (and, in the canonical order of one sum a
// block, 0.8-0.9x the stream's time a token at 6 when it runs 7: q_proj, 1 thread, AVX2). AVX-512's
// lanes kernel takes over from Q8_ROWS_T = 4 tokens. avxvnni's lanes kernel (2 rows a call, one
// vpdpbusd a load) takes over from 5: on 5 and 6 tokens padded to 8 it took 0.094 ms against the
// stream's 0.100 and 0.114, on 4 0.094 against 0.078 (gate_proj, 1 thread, the EVEX twin).
#define Q8_STREAM_T      7 // AVX2
#define Q8_STREAM_T_VNNI 5 // avxvnni

// q8_prepare_avx2: xc when the rows kernel runs (T >= Q8_STREAM_T)
PLM_TARGET_AVX2 static void q8_prepare_avx2(int32_t *xc, const int8_t *xq, const float *xd, int T,
                                            int C, int t0, int t1) {
    if (T >= Q8_STREAM_T) q8_groups_avx2(xc, xq, xd, T, C, t0, t1, 2);
}

// q8_prepare_avxvnni: the same for avxvnni's one plane (VEX and EVEX alike; T >= Q8_STREAM_T_VNNI)
PLM_TARGET_AVX2 static void q8_prepare_avxvnni(int32_t *xc, const int8_t *xq, const float *xd,
                                               int T, int C, int t0, int t1) {
    if (T >= Q8_STREAM_T_VNNI) q8_groups_avx2(xc, xq, xd, T, C, t0, t1, 1);
}

// ---- AVX2 + FMA and AVX-VNNI: Q8_0 (matmul_q8_x86.h, once for each way to sum 4 products) ----

#define Q8X_TARGET    PLM_TARGET_AVX2
#define Q8X_DOT(a, b) _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1))
#define Q8X(name)     name##_avx2
#include "matmul_q8_x86.h"

#define Q8X_TARGET PLM_TARGET_AVXVNNI
#define Q8X_DPBUSD _mm256_dpbusd_avx_epi32
#define Q8X(name)  name##_avxvnni
#include "matmul_q8_x86.h"

#define Q8X_TARGET PLM_TARGET_AVXVNNI_EVEX
#define Q8X_DPBUSD _mm256_dpbusd_epi32
#define Q8X(name)  name##_avxvnni_evex
#include "matmul_q8_x86.h"

// q8_groups16_avx512: xc's groups g0 .. g1 - 1 of 16 tokens (above; the last one padded) from xq
// (T, C) and xd (T, C / 32), by gathers, each input byte xor k: 0x80 (AVX-512: vpdpbusd's unsigned
// operand) or 0 (amx: tdpbssd multiplies signed bytes).
PLM_INLINE PLM_TARGET_AVX512 void q8_groups16_avx512(int32_t *xc, const int8_t *xq, const float *xd,
                                                     int T, int C, int g0, int g1, const char k) {
    const int nb = C / PLM_QK;
    const size_t gb = plm_lane_group_bytes(C, 16, 1);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i xoff = _mm512_mullo_epi32(lane, _mm512_set1_epi32(C));
    const __m512i doff = _mm512_mullo_epi32(lane, _mm512_set1_epi32(nb));
    for (int g = g0; g < g1; g++) {
        const int n = T - 16 * g < 16 ? T - 16 * g : 16;
        const __mmask16 m = (__mmask16)((1u << n) - 1);
        char *o = (char *)xc + (size_t)g * gb;
        const int8_t *x = xq + (size_t)16 * g * C;
        for (int k4 = 0; k4 < C / 4; k4++) {
            const __m512i v =
                _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, xoff, x + 4 * k4, 1);
            _mm512_store_si512(o + 64 * (size_t)k4, _mm512_xor_si512(v, _mm512_set1_epi8(k)));
        }
        float *dx = (float *)(void *)(o + 16 * (size_t)C);
        for (int b = 0; b < nb; b++)
            _mm512_store_ps(dx + 16 * b, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, doff,
                                                                  xd + (size_t)16 * g * nb + b, 4));
    }
}

// q8_prepare_avx512: xc's token groups (above) from xq (T, C) and xd (T, C / 32), those that start
// in [t0, t1) (t0 a multiple of 16: the paired group belongs to the range that ends at T).
PLM_TARGET_AVX512 static void q8_prepare_avx512(int32_t *xc, const int8_t *xq, const float *xd,
                                                int T, int C, int t0, int t1) {
    const int nb = C / PLM_QK;
    const int n16 = lane_groups16(T), rest = T - 16 * n16;
    if (T >= Q8_ROWS_T && rest > 0 && t1 == T) { // the paired group
        const size_t gb = plm_lane_group_bytes(C, 16, 1);
        const __m512i lane =
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        const long long c = C;
        const __m512i poff = _mm512_setr_epi64(0, c, 2 * c, 3 * c, 4 * c, 5 * c, 6 * c, 7 * c);
        const __m512i dpoff = _mm512_mullo_epi32(_mm512_srli_epi32(lane, 1), _mm512_set1_epi32(nb));
        char *o = (char *)xc + (size_t)n16 * gb;
        const int8_t *x = xq + (size_t)16 * n16 * C;
        const float *d = xd + (size_t)16 * n16 * nb;
        for (int k8 = 0; k8 < C / 8; k8++) {
            const __m512i v = _mm512_mask_i64gather_epi64(
                _mm512_setzero_si512(), (__mmask8)((1u << rest) - 1), poff, x + 8 * k8, 1);
            _mm512_store_si512(o + 64 * (size_t)k8,
                               _mm512_xor_si512(v, _mm512_set1_epi8((char)0x80)));
        }
        float *dx = (float *)(void *)(o + 8 * (size_t)C);
        for (int b = 0; b < nb; b++)
            _mm512_store_ps(dx + 16 * b, _mm512_mask_i32gather_ps(_mm512_setzero_ps(),
                                                                  (__mmask16)((1u << 2 * rest) - 1),
                                                                  dpoff, d + b, 4));
    }
    const int g1 = (t1 + 15) / 16 < n16 ? (t1 + 15) / 16 : n16;
    q8_groups16_avx512(xc, xq, xd, T, C, t0 / 16, g1, (char)0x80);
}

// q8_prepare_amx: xc for plm_q8_rows_amx (T >= PLM_AMX_ROWS_T): up to PLM_AMX_PAIRS_T tokens the
// pairs of blocks of matmul_amx.c; from there every token in groups of 16, the last one padded,
// the bytes as they are: for block b of a group, its 8 lanes of 4 columns are 8 rows of 64 bytes
// (16 tokens' 4 bytes), the layout of an AMX B tile, loaded as it lies.
PLM_TARGET_AVX512 static void q8_prepare_amx(int32_t *xc, const int8_t *xq, const float *xd, int T,
                                             int C, int t0, int t1) {
    if (T < PLM_AMX_ROWS_T) return;
    if (T <= PLM_AMX_PAIRS_T) plm_q8_pairs_amx(xc, xq, xd, T, C);
    else q8_groups16_avx512(xc, xq, xd, T, C, t0 / 16, (t1 + 15) / 16, 0);
}

// q8_lanes_avx512: out[t0 .. t0 + 16 ng, r + i] for i < nr (tokens past T not written) for ng = 1
// or 2 groups of 16 tokens and nr rows, ng nr <= 4 (constants at each call site), whose bytes in
// xc start at xg: per block, each (group, row)'s P[b] as a vpdpbusd chain over the 8 lanes of 4
// columns from the block's correction, then one convert, multiply and add; the groups share each
// broadcast of the weights, the rows each load of the inputs.
PLM_INLINE PLM_TARGET_AVX512 void q8_lanes_avx512(const matmul_job *j, const char *xg, int t0,
                                                  int r, const int ng, const int nr) {
    const int C = j->w->cols, nb = C / PLM_QK;
    const size_t gb = plm_lane_group_bytes(C, 16, 1);
    const int8_t *w = j->w->q + (size_t)r * C;  // (nr, C)
    const float *dw = j->w->d + (size_t)r * nb; // (nr, nb)
    __m512 acc[4];
    UNROLL
    for (int a = 0; a < ng * nr; a++) acc[a] = _mm512_setzero_ps();
    for (int c0 = 0; c0 < nb; c0 += LANES_CHUNK) {
        const int ce = c0 + LANES_CHUNK < nb ? c0 + LANES_CHUNK : nb;
        _Alignas(32) int32_t cw[4][LANES_CHUNK];
        UNROLL
        for (int i = 0; i < nr; i++) q8_corrections_avxvnni_evex(cw[i], w + (size_t)i * C, c0, ce);
        for (int b = c0; b < ce; b++) {
            __m512i p[4];
            UNROLL
            for (int i = 0; i < nr; i++) {
                lanes_prefetch(w + (size_t)i * C, dw + (size_t)i * nb, b);
                UNROLL
                for (int g = 0; g < ng; g++) p[g * nr + i] = _mm512_set1_epi32(cw[i][b - c0]);
            }
            UNROLL
            for (int l = 0; l < 8; l++) {
                __m512i xv[2];
                UNROLL
                for (int g = 0; g < ng; g++)
                    xv[g] = _mm512_load_si512(xg + g * gb + (size_t)(8 * b + l) * 64);
                UNROLL
                for (int i = 0; i < nr; i++) {
                    int32_t w4;
                    memcpy(&w4, w + (size_t)i * C + b * PLM_QK + 4 * l, sizeof w4);
                    const __m512i wl = _mm512_set1_epi32(w4);
                    UNROLL
                    for (int g = 0; g < ng; g++)
                        p[g * nr + i] = _mm512_dpbusd_epi32(p[g * nr + i], xv[g], wl);
                }
            }
            UNROLL
            for (int g = 0; g < ng; g++) {
                const float *dx = (const float *)(const void *)(xg + g * gb + 16 * (size_t)C);
                const __m512 xs = _mm512_load_ps(dx + 16 * b);
                UNROLL
                for (int i = 0; i < nr; i++) {
                    const __m512 s = _mm512_mul_ps(_mm512_set1_ps(dw[(size_t)i * nb + b]), xs);
                    acc[g * nr + i] = _mm512_add_ps(
                        acc[g * nr + i], _mm512_mul_ps(_mm512_cvtepi32_ps(p[g * nr + i]), s));
                }
            }
        }
    }
    UNROLL
    for (int g = 0; g < ng; g++) {
        UNROLL
        for (int i = 0; i < nr; i++) {
            _Alignas(64) float sum[16];
            _mm512_store_ps(sum, acc[g * nr + i]);
            lanes_store(j, sum, 16, t0 + 16 * g, r + i);
        }
    }
}

// q8_pair_avx512: out[t0 .. t0 + 8, r + i] for i < nr (1 to 4, a constant at each call site;
// tokens past T not written) for the paired group at xg; the rows share each load of the inputs.
// Per block a vpdpbusd chain over the 4 pairs of lanes p gives token k the sum of its lanes 2 p in
// vector lane 2 k (from the block's correction: set1_epi64 puts it in the even lanes) and of its
// lanes 2 p + 1 in lane 2 k + 1. Two rows a and b share one float chain: blending their chains
// (a's even lanes with b's odd ones, and the other way) and adding the second, pairs swapped, to
// the first gives a's P[b] in the even lanes and b's in the odd ones; then one convert, multiply by
// s (dw[a, b] in even lanes, dw[b, b] in odd ones, times dx) and add, so lanes 2 k and 2 k + 1 end
// as out[t0 + k, a] and out[t0 + k, b]. An odd last row pairs with itself. The tile's rows
// (nr C contiguous bytes) are one stream, prefetched as q8_tile4 prefetches its rows: the server's
// steps of a few tokens read every weight from DRAM as decode does.
PLM_INLINE PLM_TARGET_AVX512 void q8_pair_avx512(const matmul_job *j, const char *xg, int t0, int r,
                                                 const int nr) {
    const int C = j->w->cols, R = j->w->rows, nb = C / PLM_QK, np = (nr + 1) / 2;
    const int8_t *w = j->w->q + (size_t)r * C;                           // (nr, C)
    const float *dw = j->w->d + (size_t)r * nb;                          // (nr, nb)
    const float *dx = (const float *)(const void *)(xg + 8 * (size_t)C); // (nb, 16)
    const int pft = prefetch_tiles((size_t)C);
    const char *pq = r + Q8_DNR * pft < R ? (const char *)(w + (size_t)Q8_DNR * pft * C) : NULL;
    const char *pd = (const char *)(dw + (size_t)Q8_DNR * (pft + 1) * nb);
    __m512 acc[2];
    UNROLL
    for (int q = 0; q < np; q++) acc[q] = _mm512_setzero_ps();
    for (int c0 = 0; c0 < nb; c0 += LANES_CHUNK) {
        const int ce = c0 + LANES_CHUNK < nb ? c0 + LANES_CHUNK : nb;
        _Alignas(32) int32_t cw[4][LANES_CHUNK];
        UNROLL
        for (int i = 0; i < nr; i++) q8_corrections_avxvnni_evex(cw[i], w + (size_t)i * C, c0, ce);
        for (int b = c0; b < ce; b++) {
            if (nr == Q8_DNR && pq) {
                _mm_prefetch(pq + 128 * b, _MM_HINT_T0);
                _mm_prefetch(pq + 128 * b + 64, _MM_HINT_T0);
                if (b % 2 == 0) _mm_prefetch(pd + 16 * b, _MM_HINT_T0);
            }
            __m512i p[4];
            UNROLL
            for (int i = 0; i < nr; i++) p[i] = _mm512_set1_epi64((uint32_t)cw[i][b - c0]);
            UNROLL
            for (int k = 0; k < 4; k++) {
                const __m512i xv = _mm512_load_si512(xg + (size_t)(4 * b + k) * 64);
                UNROLL
                for (int i = 0; i < nr; i++) {
                    int64_t w8;
                    memcpy(&w8, w + (size_t)i * C + b * PLM_QK + 8 * k, sizeof w8);
                    p[i] = _mm512_dpbusd_epi32(p[i], xv, _mm512_set1_epi64(w8));
                }
            }
            const __m512 xs = _mm512_load_ps(dx + 16 * b);
            UNROLL
            for (int q = 0; q < np; q++) {
                const int ia = 2 * q, ib = 2 * q + 1 < nr ? 2 * q + 1 : 2 * q;
                const __m512i e = _mm512_mask_blend_epi32(0xAAAA, p[ia], p[ib]);
                const __m512i o = _mm512_mask_blend_epi32(0xAAAA, p[ib], p[ia]);
                const __m512i pb = _mm512_add_epi32(e, _mm512_shuffle_epi32(o, 0xB1));
                const __m512 ds =
                    _mm512_mask_broadcastss_ps(_mm512_set1_ps(dw[(size_t)ia * nb + b]), 0xAAAA,
                                               _mm_load_ss(dw + (size_t)ib * nb + b));
                const __m512 s = _mm512_mul_ps(ds, xs);
                acc[q] = _mm512_add_ps(acc[q], _mm512_mul_ps(_mm512_cvtepi32_ps(pb), s));
            }
        }
    }
    const int n = j->T - t0 < 8 ? j->T - t0 : 8;
    UNROLL
    for (int q = 0; q < np; q++) {
        _Alignas(64) float sum[16];
        _mm512_store_ps(sum, acc[q]);
        for (int k = 0; k < n; k++)
            for (int i = 2 * q; i < 2 * q + 2 && i < nr; i++)
                j->out[(size_t)(t0 + k) * R + r + i] = sum[2 * k + i - 2 * q];
    }
}

// q8_rows_avx512: out[0 .. T, r0 .. r1) for T >= Q8_ROWS_T: per tile of 2 groups of 16 tokens (1
// when 32 tokens' inputs pass 24 KB), every row, 2 rows at a time: the tile's inputs stay in L1
// while the rows stream past; then the last 8 tokens or fewer, if any, as a paired group. Two rows
// sharing each load of the inputs took 0.12 against 0.15 ms at 16 tokens and 0.44 against 0.52 at
// 64 (gate_proj, 1 thread, a shared machine; 4 rows, or 3 rows of 2 groups, no faster): one load
// of the inputs a vpdpbusd held the kernel to the loads' rate.
PLM_TARGET_AVX512 static void q8_rows_avx512(const matmul_job *j, int r0, int r1) {
    const int C = j->w->cols, ng = lane_groups16(j->T);
    const size_t gb = plm_lane_group_bytes(C, 16, 1);
    const int two = 32 * (size_t)C <= (24 << 10);
    for (int g = 0; g < ng; g += two ? 2 : 1) {
        const char *xg = (const char *)j->xc + (size_t)g * gb;
        int r = r0;
        if (two && g + 1 < ng) {
            for (; r + 2 <= r1; r += 2) q8_lanes_avx512(j, xg, 16 * g, r, 2, 2);
            if (r < r1) q8_lanes_avx512(j, xg, 16 * g, r, 2, 1);
        } else {
            for (; r + 2 <= r1; r += 2) q8_lanes_avx512(j, xg, 16 * g, r, 1, 2);
            if (r < r1) q8_lanes_avx512(j, xg, 16 * g, r, 1, 1);
        }
    }
    if (j->T > 16 * ng) {
        const char *xg = (const char *)j->xc + (size_t)ng * gb;
        int r = r0;
        for (; r + Q8_DNR <= r1; r += Q8_DNR) q8_pair_avx512(j, xg, 16 * ng, r, Q8_DNR);
        if (r1 - r == 3) q8_pair_avx512(j, xg, 16 * ng, r, 3);
        if (r1 - r == 2) q8_pair_avx512(j, xg, 16 * ng, r, 2);
        if (r1 - r == 1) q8_pair_avx512(j, xg, 16 * ng, r, 1);
    }
}

// quantize_avx2: quantize_scalar, one block in four registers (quant_x86.h).
PLM_TARGET_AVX2 static void quantize_avx2(int8_t *q, float *d, const float *x, size_t n) {
    for (size_t b = 0; b < n / PLM_QK; b++) {
        __m256 v[4];
        for (int i = 0; i < 4; i++) v[i] = _mm256_loadu_ps(x + b * PLM_QK + 8 * i);
        quantize_block_avx2(q + b * PLM_QK, d + b, v);
    }
}

// ---- AVX2 + FMA: backward ----

#define DINP_RB PLM_DINP_RB
#define DINP_NC PLM_DINP_NC

// dinp_tile_avx2: d[t, 0 .. 16) += sum over r < nrow of g[t * gR + r] * ws[r, 0 .. 16) for t < mt
// (a constant at each call site), each sum an FMA chain over r from +0 (AVX-512's order), then
// added to d; n (<= 16) columns valid; ws rows are 16 floats apart.
PLM_INLINE PLM_TARGET_AVX2 void dinp_tile_avx2(float *d, size_t dR, const float *g, size_t gR,
                                               const float *ws, int nrow, int n, const int mt) {
    __m256 acc[GEMM_MR][2];
    UNROLL
    for (int t = 0; t < mt; t++) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int r = 0; r < nrow; r++) {
        const __m256 b0 = _mm256_load_ps(ws + r * 16), b1 = _mm256_load_ps(ws + r * 16 + 8);
        UNROLL
        for (int t = 0; t < mt; t++) {
            const __m256 a = _mm256_broadcast_ss(g + t * gR + r);
            acc[t][0] = _mm256_fmadd_ps(a, b0, acc[t][0]);
            acc[t][1] = _mm256_fmadd_ps(a, b1, acc[t][1]);
        }
    }
    UNROLL
    for (int t = 0; t < mt; t++) {
        float *o = d + t * dR;
        if (n == 16) {
            _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), acc[t][0]));
            _mm256_storeu_ps(o + 8, _mm256_add_ps(_mm256_loadu_ps(o + 8), acc[t][1]));
            continue;
        }
        _Alignas(32) float tmp[16];
        _mm256_store_ps(tmp, acc[t][0]);
        _mm256_store_ps(tmp + 8, acc[t][1]);
        for (int c = 0; c < n; c++) o[c] += tmp[c];
    }
}

PLM_TARGET_AVX2 static void dinp_mt_avx2(float *d, size_t dR, const float *g, size_t gR,
                                         const float *ws, int nrow, int n, int mt) {
    switch (mt) {
    case 6: dinp_tile_avx2(d, dR, g, gR, ws, nrow, n, 6); break;
    case 5: dinp_tile_avx2(d, dR, g, gR, ws, nrow, n, 5); break;
    case 4: dinp_tile_avx2(d, dR, g, gR, ws, nrow, n, 4); break;
    case 3: dinp_tile_avx2(d, dR, g, gR, ws, nrow, n, 3); break;
    case 2: dinp_tile_avx2(d, dR, g, gR, ws, nrow, n, 2); break;
    default: dinp_tile_avx2(d, dR, g, gR, ws, nrow, n, 1); break;
    }
}

// dinp_tiles_avx2: matmul_kernels.h's dinp_tiles. The (r1 - r0, n) slice of W goes once into this
// thread's buffer as f32 (Q8_0: q * d, the reference's one rounding), as two contiguous halves of
// 16 columns (16 KB each: a tile's half stays in L1 beside its dout streams; W's own rows are
// 2,304 or 6,144 bytes apart); then 6-token x 16-column tiles of broadcast-FMA, the GEMM's
// micro-kernel with dout as the broadcast operand.
PLM_TARGET_AVX2 static void dinp_tiles_avx2(float *dinp, const float *dout, const plm_mat *w,
                                            int32_t T, int32_t r0, int32_t r1, int32_t c0,
                                            int32_t n) {
    static _Thread_local _Alignas(64) float ws[2 * DINP_RB * 16]; // (half, row, 16)
    const int nrow = r1 - r0;
    const size_t C = (size_t)w->cols, R = (size_t)w->rows;
    // the slice the driver asks for next (the next rows, or the next columns from row 0), into L2
    // while this one computes: it comes from L3 or DRAM, a line or two per row
    const int nr0 = r1 < w->rows ? r1 : 0, nc0 = r1 < w->rows ? c0 : c0 + DINP_NC;
    const int nr1 = nr0 + nrow < w->rows ? nr0 + nrow : w->rows;
    if (nc0 < w->cols && w->dtype == PLM_DTYPE_F32)
        for (int r = nr0; r < nr1; r++) {
            const char *p = (const char *)(w->f32 + (size_t)r * C + nc0);
            _mm_prefetch(p, _MM_HINT_T1);
            _mm_prefetch(p + 64, _MM_HINT_T1);
        }
    else if (nc0 < w->cols)
        for (int r = nr0; r < nr1; r++)
            _mm_prefetch((const char *)(w->q + (size_t)r * C + nc0), _MM_HINT_T1);
    for (int r = 0; r < nrow; r++) {
        _Alignas(32) float row[DINP_NC];
        if (w->dtype == PLM_DTYPE_F32) {
            memcpy(row, w->f32 + (size_t)(r0 + r) * C + c0, (size_t)n * sizeof(float));
        } else if (n == DINP_NC) {
            const int8_t *q = w->q + (size_t)(r0 + r) * C + c0;
            const __m256 dv = _mm256_set1_ps(w->d[(size_t)(r0 + r) * (C / PLM_QK) + c0 / PLM_QK]);
            UNROLL
            for (int i = 0; i < 4; i++) {
                const __m128i q8 = _mm_loadl_epi64((const __m128i *)(const void *)(q + 8 * i));
                _mm256_store_ps(row + 8 * i,
                                _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8)), dv));
            }
        } else {
            const int8_t *q = w->q + (size_t)(r0 + r) * C + c0;
            const float dv = w->d[(size_t)(r0 + r) * (C / PLM_QK) + c0 / PLM_QK];
            for (int c = 0; c < n; c++) row[c] = (float)q[c] * dv;
        }
        for (int c = n; c < DINP_NC; c++) row[c] = 0.0f;
        for (int h = 0; h < 2; h++) {
            _mm256_store_ps(ws + (h * DINP_RB + r) * 16, _mm256_load_ps(row + 16 * h));
            _mm256_store_ps(ws + (h * DINP_RB + r) * 16 + 8, _mm256_load_ps(row + 16 * h + 8));
        }
    }
    for (int h = 0; h < n; h += 16) {
        const int nh = n - h < 16 ? n - h : 16;
        const float *wh = ws + (h / 16) * DINP_RB * 16;
        for (int t = 0; t < T; t += GEMM_MR)
            dinp_mt_avx2(dinp + (size_t)t * C + c0 + h, C, dout + (size_t)t * R + r0, R, wh, nrow,
                         nh, T - t < GEMM_MR ? T - t : GEMM_MR);
    }
}

PLM_TARGET_AVX2 static void dw_rows_avx2(float *dw, const float *dout, const float *inp, int32_t T,
                                         int32_t rows, int32_t cols, int32_t r0, int32_t r1) {
    plm_dw_rows_generic(dw, dout, inp, T, rows, cols, r0, r1);
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
PLM_INLINE PLM_TARGET_AVX512 void tile_avx512(float *dinp, const float *dout, const plm_mat *w,
                                              int32_t t0, const int nt, int32_t r0, int32_t r1,
                                              int32_t c0, int32_t n) {
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
        _mm512_mask_storeu_ps(o + 16, m1,
                              _mm512_add_ps(_mm512_maskz_loadu_ps(m1, o + 16), acc[t][1]));
    }
}

PLM_TARGET_AVX512 static void tiles_avx512(float *dinp, const float *dout, const plm_mat *w,
                                           int32_t T, int32_t r0, int32_t r1, int32_t c0,
                                           int32_t n) {
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

// ---- F16 and BF16 weights: the converter (matmul_kernels.h's half) ----

// half_avx2: plm_half_to_f32, 8 values a step (half8_avx2).
PLM_TARGET_AVX2 static void half_avx2(float *out, const uint16_t *h, size_t n, plm_dtype dtype) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(h + i));
        _mm256_storeu_ps(out + i, half8_avx2(v, dtype));
    }
    plm_half_to_f32(out + i, h + i, n - i, dtype);
}

// ---- Q4_K and Q5_K: the driver's scales ----

// kq_scales_avx2: plm_kq_scales a super-block a step: its 8 sc and 8 mn bytes widened and
// converted at once, d = d_sb * sc and m = -(dmin_sb * mn) (one multiply each, as the scalar one;
// the negation a sign flip). A super-block whose dmin is not finite goes to the scalar one, which
// keeps a NaN's sign.
PLM_TARGET_AVX2 static void kq_scales_avx2(float *restrict d, float *restrict m, const plm_mat *w,
                                           size_t sb, size_t n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (size_t s = 0; s < n; s++) {
        if (s % 4 == 0) // the three streams from DRAM, a few lines ahead
            _mm_prefetch((const char *)(w->scm + 16 * (sb + s)) + 512, _MM_HINT_T0);
        if (s % 16 == 0) {
            _mm_prefetch((const char *)(w->d + sb + s) + 256, _MM_HINT_T0);
            _mm_prefetch((const char *)(w->m + sb + s) + 256, _MM_HINT_T0);
        }
        const float dm = w->m[sb + s];
        if (!isfinite(dm)) {
            plm_kq_scales(d + 8 * s, m + 8 * s, w, sb + s, 1);
            continue;
        }
        const __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(w->scm + 16 * (sb + s)));
        const __m256 sc = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v));
        const __m256 mn = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(v, 8)));
        _mm256_storeu_ps(d + 8 * s, _mm256_mul_ps(_mm256_set1_ps(w->d[sb + s]), sc));
        _mm256_storeu_ps(m + 8 * s, _mm256_xor_ps(_mm256_mul_ps(_mm256_set1_ps(dm), mn), sign));
    }
}

// ---- the tables ----

// The AVX-512 tables: avx512's, and amx's with its own Q8_0 rows kernel (matmul_amx.c; rows split
// in panels of 16, an AMX tile's rows) and that kernel's input layout; the Q4 prefill through each
// one's Q8_0 rows kernel (matmul_q4_x86.c), Q6_K in matmul_q6k_x86.c
#define TABLE_512(q8rows, nr, rows_t, q4rows, prepare)                                             \
    {                                                                                              \
        .f32 = {NULL, GEMM_MR, GEMM_NR, GEMM_NR, NULL, f32_rows_avx512, 1, 0},                     \
        .q8 = {q8_stream_avxvnni_evex, 1, nr, Q8_DNR, q8_warm, q8rows, rows_t, rows_t},            \
        .q4 = {NULL, 1, 1, 1, NULL, q4rows, 1, 0},                                                 \
        .q6k = {NULL, 1, 1, 1, NULL, plm_q6k_rows_avx2, 1, 0},                                     \
        .f16 = {NULL, GEMM_MR, GEMM_NR, GEMM_NR, NULL, f32_rows_avx512, 1, 0}, .half = half_avx2,  \
        .kq_scales = kq_scales_avx2, .quantize = quantize_avx512, .q8_prepare = prepare,           \
        .dinp_tiles = tiles_avx512, .dw_rows = dw_rows_avx512,                                     \
    }
// (half: the backward's f32 slices, since the forward converts in f32_rows_avx512)
const matmul_kernels plm_kernels_avx512 =
    TABLE_512(q8_rows_avx512, 1, Q8_ROWS_T, plm_q4_rows_avx512, q8_prepare_avx512);
const matmul_kernels plm_kernels_amx =
    TABLE_512(plm_q8_rows_amx, 16, PLM_AMX_ROWS_T, plm_q4_rows_amx, q8_prepare_amx);

// The 256-bit tables: AVX2's kernels, and the Q8_0 tiles and rows kernel of variant v of
// matmul_q8_x86.h (avxvnni: vpdpbusd, VEX or EVEX; cpu.c's choice); Q4 in matmul_q4_x86.c, Q6_K
// in matmul_q6k_x86.c
#define TABLE_256(v, prepare, stream_t)                                                            \
    {                                                                                              \
        .f32 = {NULL, GEMM_MR, GEMM_NR, GEMM_NR, NULL, f32_rows_avx2, 1, 0},                       \
        .q8 = {q8_stream_##v, 1, 1, Q8_DNR, q8_warm, q8_rows_##v, stream_t, stream_t},             \
        .q4 = {NULL, 1, 1, 1, NULL, plm_q4_rows_##v, 1, 0},                                        \
        .q6k = {NULL, 1, 1, 1, NULL, plm_q6k_rows_avx2, 1, 0}, .half = half_avx2,                  \
        .kq_scales = kq_scales_avx2,                                                               \
        .f16 = {NULL, GEMM_MR, GEMM_NR, GEMM_NR, NULL, f32_rows_avx2, 1, 0},                       \
        .quantize = quantize_avx2, .q8_prepare = prepare, .dinp_tiles = dinp_tiles_avx2,           \
        .dw_rows = dw_rows_avx2,                                                                   \
    }
const matmul_kernels plm_kernels_avx2 = TABLE_256(avx2, q8_prepare_avx2, Q8_STREAM_T);
const matmul_kernels plm_kernels_avxvnni = TABLE_256(avxvnni, q8_prepare_avxvnni, Q8_STREAM_T_VNNI);
const matmul_kernels plm_kernels_avxvnni_evex =
    TABLE_256(avxvnni_evex, q8_prepare_avxvnni, Q8_STREAM_T_VNNI);
#endif // __x86_64__
