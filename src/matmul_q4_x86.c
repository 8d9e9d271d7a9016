// matmul_q4_x86.c: Q4_0, Q4_1, Q5_0 and Q5_1 weights on the x86-64 paths: the q4 entry (a rows
// kernel) of matmul_x86.c's AVX2, avxvnni and AVX-512 tables, in matmul_kernels.h's order (the
// same bits as the scalar reference). Kept apart from matmul_x86.c's f32 and Q8_0 kernels, which
// the Q4 prefill reuses. AVX2 code on both paths, but for the Q8_0 rows kernel each table brings.
// Q5_x is Q4_x with one more step wherever nibbles are unpacked: the block's 32 high bits (qh)
// turned into bytes of 16 or 0 (high_avx2) and OR'd in; Q5_0 subtracts 16 where Q4_0 does 8.
//   Decode (one token) and small T (below the table's Q8_0 rows kernel): the inputs laid out once
//     per call to match the nibbles (two blocks a 32-byte load, unpacked by and/shift), per 8
//     blocks their exact int32 sums P (vpmaddubsw, k unsigned; Q4_0 subtracts 8 times the input's
//     block sums), then one multiply and one add a block on chains of 4 outputs together
//     (matmul_steps_x86.h): 4 rows (decode: Q8_0's decode structure, tiles of 4 rows read as one
//     linear stream, prefetched a tile ahead) or 4 tokens of one row (small T).
//   Prefill: panels of rows unpacked into Q8_0 form (int8 k - plm_q4_offset, the scales d) that
//     the table's own Q8_0 rows kernel (tokens in vector lanes) runs on, as it runs Q8_0 weights;
//     Q4_1 and Q5_1 then add their minimums' term to each output, 8 tokens a vector.
// Decode is bandwidth-bound: a Q4_1 weight is 0.75 bytes (16 bytes of nibbles, f32 d and m per 32)
// against Q8_0's 1.125 (Q5_0: 0.75, Q5_1: 0.875).
#include <string.h>

#include "matmul_kernels.h"
#include "matmul_steps_x86.h"
#include "quant_x86.h" // the target attributes

#if defined(__x86_64__)
#include <immintrin.h>

#define Q4_PF_BYTES    4096       // decode prefetches the nibbles about this far ahead
#define Q4_NT          4          // tokens per pass of the small-T kernels
#define Q4_PANEL_BYTES (96 << 10) // int8 weights of one panel (in L2 while the tokens pass)

// sum4_sse: the last two levels of Q4_1's M (matmul_kernels.h) on a[0..3]: (a0 + a2) + (a1 + a3).
PLM_INLINE PLM_TARGET_AVX2 float sum4_sse(__m128 a) {
    a = _mm_add_ps(a, _mm_movehl_ps(a, a));
    return _mm_cvtss_f32(_mm_add_ss(a, _mm_movehdup_ps(a)));
}

// load8_avx2: the floats p[0 .. n) (n <= 8), zeros in the lanes above.
PLM_INLINE PLM_TARGET_AVX2 __m256 load8_avx2(const float *p, int n) {
    if (n >= 8) return _mm256_loadu_ps(p);
    const __m256i k =
        _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return _mm256_maskload_ps(p, k);
}

// fold8_avx2: lanes i + 4 of v added to lanes i (M's level after its 8 lanes).
PLM_INLINE PLM_TARGET_AVX2 __m128 fold8_avx2(__m256 v) {
    return _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
}

// m_fold_avx2: Q4_1's term M (matmul_kernels.h) of row minimums m (nb) and token sums xs (nb)
// before its last two levels: lane i of one vector takes the blocks b = i mod 8 (the last vector
// padded with +0 products), then fold8_avx2.
PLM_INLINE PLM_TARGET_AVX2 __m128 m_fold_avx2(const float *m, const float *xs, int nb) {
    __m256 ms = _mm256_setzero_ps();
    int b = 0;
    for (; b + 8 <= nb; b += 8)
        ms = _mm256_add_ps(ms, _mm256_mul_ps(_mm256_loadu_ps(m + b), _mm256_loadu_ps(xs + b)));
    if (b < nb)
        ms =
            _mm256_add_ps(ms, _mm256_mul_ps(load8_avx2(m + b, nb - b), load8_avx2(xs + b, nb - b)));
    return fold8_avx2(ms);
}

// steps_order: 8 per-block values (blocks g .. g + 8 of a group) moved into steps_avx2's lanes.
PLM_INLINE PLM_TARGET_AVX2 __m256 steps_order(__m256 v) {
    return _mm256_permutevar8x32_ps(v, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
}

// high_avx2: 16 or 0 in each byte from the bits of h (the same 16 bytes in both 128-bit lanes):
// byte i takes byte q of h, q = byte i / 8 of the index idx (one shuffle per lane, so q is 0..15 of
// the lane's copy of h), and is 16 where its bit i % 8 is set: a compare of (byte & mask) with
// the mask. (llama.cpp's bytes_from_bits_32 is the same idea.)
PLM_INLINE PLM_TARGET_AVX2 __m256i high_avx2(__m256i h, __m256i idx) {
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201);
    const __m256i v = _mm256_and_si256(_mm256_shuffle_epi8(h, idx), bit);
    return _mm256_and_si256(_mm256_cmpeq_epi8(v, bit), _mm256_set1_epi8(16));
}

// high_idx: high_avx2's index of 2 bytes of h per 128-bit lane (bytes a, a + 1 for the low lane,
// b, b + 1 for the high one).
PLM_INLINE PLM_TARGET_AVX2 __m256i high_idx(int a, int b) {
    const long long one = 0x0101010101010101;
    return _mm256_setr_epi64x(a * one, (a + 1) * one, b * one, (b + 1) * one);
}

// unpack_avx2: the 32 values k of block blk (counted from row 0) of w as bytes in element order:
// the nibbles, and for Q5_x (high) their bit of qh as 16.
PLM_INLINE PLM_TARGET_AVX2 __m256i unpack_avx2(const plm_mat *w, size_t blk, int high) {
    const __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(w->q4 + blk * PLM_QK / 2));
    const __m128i f = _mm_set1_epi8(15);
    const __m256i k = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), f), _mm_and_si128(v, f));
    // bits 0-15 of qh for elements 0-15 (low lane), bits 16-31 for 16-31 (high lane)
    return high ? _mm256_or_si256(k, high_avx2(_mm256_set1_epi32((int)w->qh[blk]), high_idx(0, 2)))
                : k;
}

// pair_avx2: the values k of blocks blk and blk + 1 of w (blk alone when !two, zeros for the
// other) in the pair layout, one 32-byte load of nibbles: k[0] = elements 0-15 of blk | of blk + 1
// (the low nibbles), k[1] = elements 16-31 of each (the high ones); no byte crosses a lane.
PLM_INLINE PLM_TARGET_AVX2 void pair_avx2(__m256i k[2], const plm_mat *w, size_t blk, int two,
                                          int high) {
    const uint8_t *qs = w->q4 + blk * PLM_QK / 2;
    const __m256i f = _mm256_set1_epi8(15);
    const __m256i v =
        two ? _mm256_loadu_si256((const __m256i *)(const void *)qs)
            : _mm256_zextsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)qs));
    k[0] = _mm256_and_si256(v, f), k[1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), f);
    if (high) { // both blocks' qh in one 64-bit word (the second 0 when !two)
        uint64_t h2 = w->qh[blk];
        if (two) memcpy(&h2, w->qh + blk, 8);
        const __m256i h = _mm256_set1_epi64x((long long)h2);
        k[0] = _mm256_or_si256(k[0], high_avx2(h, high_idx(0, 4))); // bits 0-15 of each
        k[1] = _mm256_or_si256(k[1], high_avx2(h, high_idx(2, 6))); // bits 16-31
    }
}

// pair_dot_avx2: the int16 sums of a pair (block b in the low 128 bits, b + 1 in the high ones, as
// steps_avx2 wants) from its values k and inputs x in the pair layout: vpmaddubsw (k unsigned,
// 0..31) of both halves added in int16 (|2 * 31 * 127| twice is below 2^14).
PLM_INLINE PLM_TARGET_AVX2 __m256i pair_dot_avx2(const __m256i k[2], __m256i x0, __m256i x1) {
    return _mm256_add_epi16(_mm256_maddubs_epi16(k[0], x0), _mm256_maddubs_epi16(k[1], x1));
}

// row_end: out[t, r] = a (Q8_0's canonical order: A) + Q4_1's (Q5_1's) M.
PLM_INLINE PLM_TARGET_AVX2 void row_end(const matmul_job *j, int t, int r, float a) {
    const int nb = j->w->cols / PLM_QK;
    if (plm_dtype_min(j->w->dtype))
        a = a + sum4_sse(m_fold_avx2(j->w->m + (size_t)r * nb, j->xs + (size_t)t * nb, nb));
    j->out[(size_t)t * j->w->rows + r] = a;
}

// ---- decode and small T: the inputs laid out, groups of 8 blocks, 4 chains together ----
//
// Two blocks a 32-byte load (pair_avx2), so the inputs are laid out once per call to match (xp,
// per pair of blocks: x_b[0:16], x_b+1[0:16], x_b[16:32], x_b+1[16:32]) and no byte moves across
// lanes in the loop; P from pair_dot_avx2 of the unsigned k and steps_avx2, minus (Q4_0, Q5_0)
// plm_q4_offset times the input's block sums (xo: the int sums are exact, so P is that of k -
// offset), times s = dw * dx (xo and dx laid out in steps_avx2's lanes too), 4 chains together,
// one output a lane:
//   decode (one token): tiles of 4 rows (q4_tile4), steps_avx2 on the 4 rows' pairs, so that a
//     vector holds one block's P of the 4 rows, and the rows' s moved into the same lanes;
//     Q4_1's M is added in the same lanes (each row's M folded to 4 lanes, end4_avx2);
//   small T (below the table's Q8_0 rows kernel): a row at a time, Q4_NT tokens a pass (each pair
//     unpacked once for them, each row a sequential stream with software prefetch), per group of 8
//     blocks and token steps_avx2, then chain_avx2.
// The layout holds Q4_LAYOUT_T tokens and a chunk of Q4_CHUNK_NB blocks: longer rows run chunk by
// chunk, the chains waiting in out between chunks (a float stored and loaded back is the same).

#define Q4_LAYOUT_T 8   // tokens laid out at once
#define Q4_CHUNK_NB 256 // blocks laid out at once (8,192 columns; a multiple of 8)
#define Q4_DNR      4   // rows of a decode tile (q4_tile4)

// q4_layout: the inputs of tokens t0 .. t0 + Q4_LAYOUT_T, blocks c0 .. c0 + Q4_CHUNK_NB: xp in the
// pair layout, xo = plm_q4_offset times the block sums and xd = dx in steps_avx2's lanes (the last
// group padded with zero blocks and scales).
typedef struct {
    _Alignas(32) int8_t xp[Q4_LAYOUT_T][Q4_CHUNK_NB * PLM_QK];
    _Alignas(32) int32_t xo[Q4_LAYOUT_T][Q4_CHUNK_NB];
    _Alignas(32) float xd[Q4_LAYOUT_T][Q4_CHUNK_NB];
} q4_layout;

// layout_avx2: tokens t0 .. t0 + nt, blocks c0 .. c1 of the inputs into L.
PLM_TARGET_AVX2 static void layout_avx2(q4_layout *L, const matmul_job *j, int t0, int nt, int c0,
                                        int c1) {
    const int C = j->w->cols, nb = C / PLM_QK;
    const __m256i off = _mm256_set1_epi8((char)plm_q4_offset(j->w->dtype)),
                  z = _mm256_setzero_si256();
    for (int t = 0; t < nt; t++)
        for (int g = 0; g < c1 - c0; g += 8) {
            __m256i q[4];
            for (int i = 0; i < 4; i++) {
                const int b = g + 2 * i, e = c1 - c0; // b: from c0
                const int8_t *x = j->xq + (size_t)(t0 + t) * C + (c0 + b) * PLM_QK;
                const __m256i x0 = b < e ? _mm256_loadu_si256((const __m256i *)(const void *)x) : z;
                const __m256i x1 =
                    b + 1 < e ? _mm256_loadu_si256((const __m256i *)(const void *)(x + PLM_QK)) : z;
                const __m256i h0 = _mm256_permute2x128_si256(x0, x1, 0x20);
                const __m256i h1 = _mm256_permute2x128_si256(x0, x1, 0x31);
                _mm256_store_si256((__m256i *)(void *)(L->xp[t] + 32 * b), h0);
                _mm256_store_si256((__m256i *)(void *)(L->xp[t] + 32 * b + 32), h1);
                const __m256i o[2] = {off, off};
                q[i] = pair_dot_avx2(o, h0, h1);
            }
            _mm256_store_si256((__m256i *)(void *)(L->xo[t] + g), steps_avx2(q));
            const float *xd = j->xd + (size_t)(t0 + t) * nb + c0 + g;
            _mm256_store_ps(L->xd[t] + g, steps_order(load8_avx2(xd, c1 - c0 - g)));
        }
}

// group_avx2: m[t] (t < nt) = the products of the steps of blocks c0 + g .. c0 + g + n (n <= 8) of
// row r for the laid-out tokens lt + t of L, in steps_avx2's lanes; off: plm_q4_offset, high: Q5_x.
PLM_INLINE PLM_TARGET_AVX2 void group_avx2(__m256 m[Q4_NT], const matmul_job *j, const q4_layout *L,
                                           int lt, const int nt, int r, int c0, int g, const int n,
                                           int off, int high) {
    const int nb = j->w->cols / PLM_QK;
    const char *end = (const char *)(j->w->q4 + (size_t)j->w->rows * nb * PLM_QK / 2);
    __m256i q[Q4_NT][4];
    UNROLL
    for (int i = 0; i < 4; i++) {
        const int b = g + 2 * i;
        __m256i k[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()}; // no block: +0
        if (2 * i < n) {
            const size_t blk = (size_t)r * nb + c0 + b;
            const char *p = (const char *)(j->w->q4 + blk * PLM_QK / 2) + Q4_PF_BYTES;
            if (i % 2 == 0 && p < end) _mm_prefetch(p, _MM_HINT_NTA); // a line: 2 pairs
            pair_avx2(k, j->w, blk, 2 * i + 1 < n, high);
        }
        UNROLL
        for (int t = 0; t < nt; t++) {
            const __m256i *x = (const __m256i *)(const void *)(L->xp[lt + t] + 32 * b);
            q[t][i] = pair_dot_avx2(k, _mm256_load_si256(x), _mm256_load_si256(x + 1));
        }
    }
    const __m256 dw = steps_order(load8_avx2(j->w->d + (size_t)r * nb + c0 + g, n));
    UNROLL
    for (int t = 0; t < nt; t++) {
        __m256i P = steps_avx2(q[t]);
        if (off)
            P = _mm256_sub_epi32(
                P, _mm256_load_si256((const __m256i *)(const void *)(L->xo[lt + t] + g)));
        m[t] = _mm256_mul_ps(_mm256_cvtepi32_ps(P),
                             _mm256_mul_ps(dw, _mm256_load_ps(L->xd[lt + t] + g)));
    }
}

// q4_tokens_avx2: out[t0 + lt .. + nt, r] (nt <= Q4_NT a constant at each call site) for blocks
// c0 .. c1 of the laid-out tokens lt .. lt + nt of L (from t0), the chains from out when c0 > 0.
PLM_INLINE PLM_TARGET_AVX2 void q4_tokens_avx2(const matmul_job *j, const q4_layout *L, int t0,
                                               int lt, const int nt, int r, int c0, int c1) {
    const int R = j->w->rows, nb = j->w->cols / PLM_QK;
    const int off = plm_q4_offset(j->w->dtype), high = plm_dtype_high(j->w->dtype);
    _Alignas(16) float a[4] = {0};
    UNROLL
    for (int t = 0; t < nt; t++) a[t] = c0 ? j->out[(size_t)(t0 + lt + t) * R + r] : 0.0f;
    __m128 acc = _mm_load_ps(a);
    for (int g = 0; g < c1 - c0; g += 8) {
        __m256 m[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                       _mm256_setzero_ps()}; // no token: +0
        if (g + 8 <= c1 - c0) group_avx2(m, j, L, lt, nt, r, c0, g, 8, off, high);
        else group_avx2(m, j, L, lt, nt, r, c0, g, c1 - c0 - g, off, high);
        acc = chain_avx2(acc, m, c1 - c0 - g);
    }
    _mm_store_ps(a, acc);
    UNROLL
    for (int t = 0; t < nt; t++) {
        if (c1 == nb) row_end(j, t0 + lt + t, r, a[t]);
        else j->out[(size_t)(t0 + lt + t) * R + r] = a[t];
    }
}

// end4_avx2: M's last two levels for rows 0..3 from their folded lanes a[i]: (a0 + a2) + (a1 + a3)
// after a 4 x 4 transpose, one row a lane.
PLM_INLINE PLM_TARGET_AVX2 __m128 end4_avx2(__m128 a[4]) {
    __m128 c0 = a[0], c1 = a[1], c2 = a[2], c3 = a[3];
    _MM_TRANSPOSE4_PS(c0, c1, c2, c3);
    return _mm_add_ps(_mm_add_ps(c0, c2), _mm_add_ps(c1, c3));
}

// m_rows: Q4_1's (Q5_1's) M of rows r + i rs (i < 4), one a lane, for token 0 (a function of its
// own: inlined, it slowed decode's loop by more than its own cost).
PLM_TARGET_AVX2 static __m128 m_rows(const matmul_job *j, int r, int rs) {
    const int nb = j->w->cols / PLM_QK;
    __m128 mm[Q4_DNR];
    for (int i = 0; i < Q4_DNR; i++)
        mm[i] = m_fold_avx2(j->w->m + (size_t)(r + i * rs) * nb, j->xs, nb);
    return end4_avx2(mm);
}

// prefetch2: the two lines at p, into L2 (q8_tile4's reason: T1 measured as fast or faster here)
PLM_INLINE PLM_TARGET_AVX2 void prefetch2(const char *p) {
    _mm_prefetch(p, _MM_HINT_T1);
    _mm_prefetch(p + 64, _MM_HINT_T1);
}

// q4_tile4: out[0, r .. r + 4) (rs = 1), or out[0, r] (rs = 0: every lane reads row r), for blocks
// c0 .. c1 of token 0 laid out in L (the chains from out when c0 > 0) and the format dt (a
// constant at each call site): Q8_0's decode (q8_tile4) on nibbles. Per pair of blocks, each
// row's pair_dot_avx2 and steps_avx2 of the 4 rows give P of block b for rows 0..3 in the low 128
// bits and of b + 1 in the high ones (minus the offset's xo, broadcast to the same halves); the
// scales s = dw * dx, 8 blocks of each row a vector, are moved into the same lanes by
// steps_transpose; then per block one convert, multiply and add on acc (lane i = row r + i), and
// Q4_1's M added at the end (its 8 lanes of each row summed group by group, as m_fold_avx2, when
// the row is one chunk; else m_rows). The tile's rows (2 C contiguous bytes) are read once, and
// the tile Q4_PF_BYTES ahead is prefetched in step (2 lines a pair), its scales, minimums and
// high bits (16 bytes a block each) from the tile after it, as q8_tile4.
PLM_INLINE PLM_TARGET_AVX2 void q4_tile4(const matmul_job *j, const q4_layout *L, int r, int rs,
                                         int c0, int c1, const plm_dtype dt) {
    const int off = plm_q4_offset(dt), high = plm_dtype_high(dt), mins = plm_dtype_min(dt);
    const int C = j->w->cols, R = j->w->rows, nb = C / PLM_QK;
    const int pft = (Q4_PF_BYTES + 2 * C - 1) / (2 * C); // tiles ahead
    const int pq = rs && r + Q4_DNR * pft < R, pd = rs && r + Q4_DNR * (pft + 1) < R;
    const size_t tq = (size_t)(r + Q4_DNR * pft) * nb, td = (size_t)(r + Q4_DNR * (pft + 1)) * nb;
    size_t blk[Q4_DNR]; // (i): the first block of row r + i rs
    UNROLL
    for (int i = 0; i < Q4_DNR; i++) blk[i] = (size_t)(r + i * rs) * nb + c0;
    __m128 acc = !c0 ? _mm_setzero_ps() : rs ? _mm_loadu_ps(j->out + r) : _mm_set1_ps(j->out[r]);
    const int fuse = mins && !c0 && c1 == nb; // M's lanes in ms (else m_rows at the end)
    __m256 ms[Q4_DNR];                        // (row): M's 8 lanes (m_fold_avx2's)
    UNROLL
    for (int i = 0; i < Q4_DNR; i++) ms[i] = _mm256_setzero_ps();
    for (int g = 0; g < c1 - c0; g += 8) {
        const int n = c1 - c0 - g < 8 ? c1 - c0 - g : 8;
        if (fuse) {
            const __m256 xs = load8_avx2(j->xs + g, n);
            UNROLL
            for (int i = 0; i < Q4_DNR; i++)
                ms[i] =
                    _mm256_add_ps(ms[i], _mm256_mul_ps(load8_avx2(j->w->m + blk[i] + g, n), xs));
        }
        if (pd) {
            prefetch2((const char *)(j->w->d + td + c0) + 16 * g);
            if (mins) prefetch2((const char *)(j->w->m + td + c0) + 16 * g);
            if (high) prefetch2((const char *)(j->w->qh + td + c0) + 16 * g);
        }
        __m256 sw[Q4_DNR], s[4]; // (row): s of the group's blocks; (pair): steps 2p | 2p + 1
        const __m256 xd = _mm256_load_ps(L->xd[0] + g);
        UNROLL
        for (int i = 0; i < Q4_DNR; i++)
            sw[i] = _mm256_mul_ps(steps_order(load8_avx2(j->w->d + blk[i] + g, n)), xd);
        steps_transpose(s, sw);
        const __m256i xo = _mm256_load_si256((const __m256i *)(const void *)(L->xo[0] + g));
        UNROLL
        for (int p = 0; p < 4; p++) {
            const int b = g + 2 * p;
            if (2 * p >= n) break;
            if (pq) prefetch2((const char *)(j->w->q4 + tq * PLM_QK / 2) + 64 * (c0 + b));
            const __m256i *x = (const __m256i *)(const void *)(L->xp[0] + 32 * b);
            const __m256i x0 = _mm256_load_si256(x), x1 = _mm256_load_si256(x + 1);
            __m256i q[Q4_DNR];
            UNROLL
            for (int i = 0; i < Q4_DNR; i++) {
                __m256i k[2];
                pair_avx2(k, j->w, blk[i] + b, 2 * p + 1 < n, high);
                q[i] = pair_dot_avx2(k, x0, x1);
            }
            __m256i P = steps_avx2(q);
            if (off) // xo of blocks b, b + 1 (steps_avx2's lanes p, p + 4) in the halves
                P = _mm256_sub_epi32(
                    P, _mm256_permutevar8x32_epi32(
                           xo, _mm256_setr_epi32(p, p, p, p, p + 4, p + 4, p + 4, p + 4)));
            const __m256 m = _mm256_mul_ps(_mm256_cvtepi32_ps(P), s[p]);
            acc = _mm_add_ps(acc, _mm256_castps256_ps128(m));
            if (2 * p + 1 < n) acc = _mm_add_ps(acc, _mm256_extractf128_ps(m, 1));
        }
    }
    if (fuse) {
        __m128 mm[Q4_DNR];
        UNROLL
        for (int i = 0; i < Q4_DNR; i++) mm[i] = fold8_avx2(ms[i]);
        acc = _mm_add_ps(acc, end4_avx2(mm));
    } else if (mins && c1 == nb) acc = _mm_add_ps(acc, m_rows(j, r, rs));
    if (rs) _mm_storeu_ps(j->out + r, acc);
    else j->out[r] = _mm_cvtss_f32(acc);
}

// q4_decode_range: rows [r0, r1) of q4_tile4, Q4_DNR at a time, then the last 1 to 3 one by one.
PLM_INLINE PLM_TARGET_AVX2 void q4_decode_range(const matmul_job *j, const q4_layout *L, int r0,
                                                int r1, int c0, int c1, const plm_dtype dt) {
    int r = r0;
    for (; r + Q4_DNR <= r1; r += Q4_DNR) q4_tile4(j, L, r, 1, c0, c1, dt);
    for (; r < r1; r++) q4_tile4(j, L, r, 0, c0, c1, dt);
}

// q4_rows_small: out[0 .. T, r0 .. r1) by Q4_LAYOUT_T tokens and Q4_CHUNK_NB blocks at a time:
// decode (T = 1) with the format a constant of each specialization, or a row at a time, Q4_NT
// tokens a pass (every path: AVX-512's two blocks a zmm were no faster).
PLM_TARGET_AVX2 static void q4_rows_small(const matmul_job *j, int r0, int r1) {
    static _Thread_local q4_layout L;
    const int T = j->T, nb = j->w->cols / PLM_QK;
    for (int t0 = 0; t0 < T; t0 += Q4_LAYOUT_T)
        for (int c0 = 0; c0 < nb; c0 += Q4_CHUNK_NB) {
            const int nt = T - t0 < Q4_LAYOUT_T ? T - t0 : Q4_LAYOUT_T;
            const int c1 = nb - c0 < Q4_CHUNK_NB ? nb : c0 + Q4_CHUNK_NB;
            layout_avx2(&L, j, t0, nt, c0, c1);
            if (T == 1) {
                switch (j->w->dtype) {
                case PLM_DTYPE_Q4_0: q4_decode_range(j, &L, r0, r1, c0, c1, PLM_DTYPE_Q4_0); break;
                case PLM_DTYPE_Q4_1: q4_decode_range(j, &L, r0, r1, c0, c1, PLM_DTYPE_Q4_1); break;
                case PLM_DTYPE_Q5_0: q4_decode_range(j, &L, r0, r1, c0, c1, PLM_DTYPE_Q5_0); break;
                default: q4_decode_range(j, &L, r0, r1, c0, c1, PLM_DTYPE_Q5_1); break;
                }
                continue;
            }
            for (int r = r0; r < r1; r++)
                for (int t = 0; t < nt; t += Q4_NT) {
                    switch (nt - t < Q4_NT ? nt - t : Q4_NT) {
                    case 4: q4_tokens_avx2(j, &L, t0, t, 4, r, c0, c1); break;
                    case 3: q4_tokens_avx2(j, &L, t0, t, 3, r, c0, c1); break;
                    case 2: q4_tokens_avx2(j, &L, t0, t, 2, r, c0, c1); break;
                    default: q4_tokens_avx2(j, &L, t0, t, 1, r, c0, c1); break;
                    }
                }
        }
}

// ---- prefill: panels in Q8_0 form through the table's Q8_0 rows kernel ----

// panel_avx2: rows [r, r + n) of w as int8 (k - plm_q4_offset) into q (n, C) and their scales
// into d.
PLM_TARGET_AVX2 static void panel_avx2(int8_t *q, float *d, const plm_mat *w, int r, int n) {
    const size_t C = (size_t)w->cols, nb = C / PLM_QK, b0 = (size_t)r * nb;
    const __m256i off = _mm256_set1_epi8((char)plm_q4_offset(w->dtype));
    const int high = plm_dtype_high(w->dtype);
    for (size_t b = 0; b < (size_t)n * nb; b++)
        _mm256_store_si256((__m256i *)(void *)(q + b * PLM_QK),
                           _mm256_sub_epi8(unpack_avx2(w, b0 + b, high), off));
    memcpy(d, w->d + (size_t)r * nb, (size_t)n * nb * sizeof(float));
}

#define Q4_M_NB 512 // blocks a row at most (16,384 columns) for m_add_avx2's buffer, else row_end

// m_add_avx2: out[t, r .. r + n) += Q4_1's (Q5_1's) term M for every token t, 8 tokens a vector:
// per group the tokens' sums xs go into xt (nb, 8) once, and for each row the 8 canonical lanes of
// M are 8 registers (one token a vector lane), finished by vertical adds in the canonical order.
PLM_TARGET_AVX2 static void m_add_avx2(const matmul_job *j, int r, int n) {
    static _Thread_local _Alignas(32) float xt[Q4_M_NB * 8];
    const int T = j->T, R = j->w->rows, nb = j->w->cols / PLM_QK;
    if (nb > Q4_M_NB) {
        for (int t = 0; t < T; t++)
            for (int i = r; i < r + n; i++) row_end(j, t, i, j->out[(size_t)t * R + i]);
        return;
    }
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i idx = _mm256_mullo_epi32(lane, _mm256_set1_epi32(nb));
    for (int t0 = 0; t0 < T; t0 += 8) {
        const int nt = T - t0 < 8 ? T - t0 : 8;
        const __m256i k = _mm256_cmpgt_epi32(_mm256_set1_epi32(nt), lane);
        for (int b = 0; b < nb; b++)
            _mm256_store_ps(xt + 8 * b, _mm256_mask_i32gather_ps(_mm256_setzero_ps(),
                                                                 j->xs + (size_t)t0 * nb + b, idx,
                                                                 _mm256_castsi256_ps(k), 4));
        for (int i = r; i < r + n; i++) {
            const float *m = j->w->m + (size_t)i * nb;
            __m256 acc[8];
            UNROLL
            for (int l = 0; l < 8; l++) acc[l] = _mm256_setzero_ps();
            for (int b0 = 0; b0 < nb; b0 += 8) {
                UNROLL
                for (int l = 0; l < 8; l++)
                    if (b0 + l < nb)
                        acc[l] =
                            _mm256_add_ps(acc[l], _mm256_mul_ps(_mm256_broadcast_ss(m + b0 + l),
                                                                _mm256_load_ps(xt + 8 * (b0 + l))));
            }
            UNROLL
            for (int l = 0; l < 4; l++) acc[l] = _mm256_add_ps(acc[l], acc[l + 4]);
            _Alignas(32) float mt[8];
            _mm256_store_ps(
                mt, _mm256_add_ps(_mm256_add_ps(acc[0], acc[2]), _mm256_add_ps(acc[1], acc[3])));
            for (int t = 0; t < nt; t++) {
                float *o = j->out + (size_t)(t0 + t) * R + i;
                *o = *o + mt[t];
            }
        }
    }
}

// q4_rows: out[0 .. T, r0 .. r1) on table k: decode, small T, or from the token count where k's
// Q8_0 rows kernel runs, panels through it. A panel's Q8_0 matrix has w's rows as its row count,
// so that the Q8_0 kernel writes out with w's row stride; it reads only the panel's rows
// (matmul_kernels.h).
PLM_TARGET_AVX2 static void q4_rows(const matmul_job *j, int r0, int r1, const matmul_kernels *k) {
    static _Thread_local _Alignas(64) int8_t pq[Q4_PANEL_BYTES];
    static _Thread_local _Alignas(64) float pd[Q4_PANEL_BYTES / PLM_QK];
    const int T = j->T, C = j->w->cols, R = j->w->rows;
    if (T < 2 || T < k->q8.rows_t || !j->xc || C > Q4_PANEL_BYTES) {
        q4_rows_small(j, r0, r1);
        return;
    }
    int P = Q4_PANEL_BYTES / C; // rows a panel: whole AMX tiles of 16 where it holds one
    if (P >= 16) P -= P % 16;
    for (int r = r0; r < r1; r += P) {
        const int n = r1 - r < P ? r1 - r : P;
        panel_avx2(pq, pd, j->w, r, n);
        const plm_mat pm = {.dtype = PLM_DTYPE_Q8_0, .rows = R, .cols = C, .q = pq, .d = pd};
        matmul_job pj = *j;
        pj.w = &pm, pj.out = j->out + r;
        k->q8.rows(&pj, 0, n);
        if (plm_dtype_min(j->w->dtype)) m_add_avx2(j, r, n);
    }
}

void plm_q4_rows_avx2(const matmul_job *j, int r0, int r1) {
    q4_rows(j, r0, r1, &plm_kernels_avx2);
}

void plm_q4_rows_avx512(const matmul_job *j, int r0, int r1) {
    q4_rows(j, r0, r1, &plm_kernels_avx512);
}

void plm_q4_rows_avxvnni(const matmul_job *j, int r0, int r1) {
    q4_rows(j, r0, r1, &plm_kernels_avxvnni);
}

void plm_q4_rows_avxvnni_evex(const matmul_job *j, int r0, int r1) {
    q4_rows(j, r0, r1, &plm_kernels_avxvnni_evex);
}

void plm_q4_rows_amx(const matmul_job *j, int r0, int r1) {
    q4_rows(j, r0, r1, &plm_kernels_amx);
}
#endif // __x86_64__
