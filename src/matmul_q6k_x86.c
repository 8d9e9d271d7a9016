// matmul_q6k_x86.c: Q6_K weights on the x86-64 paths: the q6k entry (a rows kernel) of
// matmul_x86.c's AVX2, avxvnni and AVX-512 tables, in matmul_kernels.h's order (the same bits as
// the scalar reference), AVX2 code on every path.
//   A super-block's half h (128 values, 4 blocks of 32) is three 32-byte loads: ql's two groups
//   and qh's group, byte l of each holding element l of its blocks (gguf.c's dequant_q6_k), so
//   and/shift/or give the 4 blocks' unsigned q (0..63) in element order, no byte crossing lanes.
//   vpmaddubsw (|pairs| <= 2 * 63 * 127) gives each block's 16 int16 sums of 2 products, the low
//   128 bits its half 0 and the high ones its half 1: per 4 blocks steps_avx2 (matmul_steps_x86.h)
//   gives the 8 exact int32 sums P of the half-blocks, the steps of the canonical order; each
//   step's scale is its sub-block's d * sc (the half's 8 int8 scales to f32 times d) times the
//   block's dx.
//   Decode (one token): tiles of 4 rows as Q8_0's decode (one linear stream, prefetched a tile
//   ahead), q unsigned minus 32 times the input's half-block sums (once per call), steps_avx2 on
//   the 4 rows' blocks so that a vector holds a block's two steps of the 4 rows, one row a lane.
//   Small T (2 to Q6K_LANES_T - 1): a row at a time, 4 tokens a pass on each unpacked half, their
//   chains together, one token a lane.
//   Prefill: 8 tokens in the lanes of a ymm, a half-block a step (see its section).
// Decode is bandwidth-bound: a Q6_K weight is 0.828 bytes (208 bytes and an f32 d per 256)
// against Q8_0's 1.125.
#include <string.h>

#include "matmul_kernels.h"
#include "matmul_steps_x86.h"
#include "quant_x86.h" // the target attributes

#if defined(__x86_64__)
#include <immintrin.h>

#define Q6K_PF_BYTES 4096 // decode prefetches the weights about this far ahead
#define Q6K_NT       4    // tokens per pass of the small-T kernel
#define Q6K_MAX_NB   512  // blocks a row at most (16,384 columns) for decode's input sums

// unpack1_avx2: block q (0..3) of half h of super-block sb as unsigned q (0..63): ql's group q % 2
// (the low nibbles for q < 2, the high ones else) and bits 2q, 2q + 1 of qh's.
PLM_INLINE PLM_TARGET_AVX2 __m256i unpack1_avx2(const uint8_t *sb, int h, int q) {
    const __m256i ql =
        _mm256_loadu_si256((const __m256i *)(const void *)(sb + 64 * h + 32 * (q % 2)));
    const __m256i qh = _mm256_loadu_si256((const __m256i *)(const void *)(sb + 128 + 32 * h));
    const __m256i lo = _mm256_set1_epi8(15), hi = _mm256_set1_epi8(0x30);
    const __m256i l = q < 2 ? ql : _mm256_srli_epi16(ql, 4);
    const __m256i u = q == 0   ? _mm256_slli_epi16(qh, 4)
                      : q == 1 ? _mm256_slli_epi16(qh, 2)
                      : q == 2 ? qh
                               : _mm256_srli_epi16(qh, 2);
    return _mm256_or_si256(_mm256_and_si256(l, lo), _mm256_and_si256(u, hi));
}

// unpack_avx2: the 4 blocks of half h of super-block sb as unsigned q (0..63), block s in k[s].
PLM_INLINE PLM_TARGET_AVX2 void unpack_avx2(__m256i k[4], const uint8_t *sb, int h) {
    UNROLL
    for (int q = 0; q < 4; q++) k[q] = unpack1_avx2(sb, h, q);
}

// sums32_avx2: 32 times the sums of the pairs of the 32 inputs at x (int16, |.| <= 2 * 32 * 127).
PLM_INLINE PLM_TARGET_AVX2 __m256i sums32_avx2(const int8_t *x) {
    return _mm256_maddubs_epi16(_mm256_set1_epi8(32),
                                _mm256_loadu_si256((const __m256i *)(const void *)x));
}

// dot_avx2: the int16 sums of 2 products of a (unsigned bytes, <= 63) and the 32 inputs at x
// (signed): the low 128 bits the block's half 0, the high ones its half 1, as steps_avx2 wants.
PLM_INLINE PLM_TARGET_AVX2 __m256i dot_avx2(__m256i a, __m256i x) {
    return _mm256_maddubs_epi16(a, x);
}

// scales_avx2: ds = d * sc (exact) of the 8 sub-blocks of half h of super-block sb (d its scale)
// in steps_avx2's lanes: the half's sub-blocks [0, 2, 4, 6 | 1, 3, 5, 7].
PLM_INLINE PLM_TARGET_AVX2 __m256 scales_avx2(const uint8_t *sb, int h, float d) {
    const __m128i sc =
        _mm_shuffle_epi8(_mm_loadl_epi64((const __m128i *)(const void *)(sb + 192 + 8 * h)),
                         _mm_setr_epi8(0, 2, 4, 6, 1, 3, 5, 7, 0, 0, 0, 0, 0, 0, 0, 0));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc)), _mm256_set1_ps(d));
}

// dx_avx2: dx of blocks b .. b + 3 in steps_avx2's lanes (block q's two halves in lanes q, q + 4).
PLM_INLINE PLM_TARGET_AVX2 __m256 dx_avx2(const float *xd, int b) {
    return _mm256_broadcast_ps((const __m128 *)(const void *)(xd + b));
}

// q6k_prefetch: the super-block Q6K_PF_BYTES after sb, if in the matrix (ending at end).
PLM_INLINE PLM_TARGET_AVX2 void q6k_prefetch(const uint8_t *sb, const char *end) {
    const char *p = (const char *)sb + Q6K_PF_BYTES;
    if (p < end) _mm_prefetch(p, _MM_HINT_NTA), _mm_prefetch(p + 64, _MM_HINT_NTA);
    if (p + 128 < end) _mm_prefetch(p + 128, _MM_HINT_NTA), _mm_prefetch(p + 192, _MM_HINT_NTA);
}

// ---- small T: a row at a time, Q6K_NT tokens a pass, their chains together ----

// q6k_tokens_avx2: out[t0 .. t0 + nt, r] (nt <= Q6K_NT a constant at each call site): per half
// super-block the weights unpacked once as w = q - 32 (|w| and its sign moved onto x: the int sums
// are exact), per token 4 blocks' dot_avx2, steps_avx2 (P), times s = ds * dx, and chain_avx2
// with one token a lane.
PLM_INLINE PLM_TARGET_AVX2 void q6k_tokens_avx2(const matmul_job *j, int t0, const int nt, int r) {
    const int C = j->w->cols, nb = C / PLM_QK, nsb = C / PLM_QK_K;
    const uint8_t *row = j->w->q6 + (size_t)r * nsb * PLM_Q6K_QS;
    const char *end = (const char *)(j->w->q6 + (size_t)j->w->rows * nsb * PLM_Q6K_QS);
    const float *d = j->w->d + (size_t)r * nsb;
    __m128 acc = _mm_setzero_ps();
    for (int s = 0; s < nsb; s++) {
        const uint8_t *sb = row + (size_t)s * PLM_Q6K_QS;
        q6k_prefetch(sb, end);
        for (int h = 0; h < 2; h++) {
            const int b = 8 * s + 4 * h;
            __m256i w[4], a[4];
            unpack_avx2(w, sb, h);
            UNROLL
            for (int q = 0; q < 4; q++)
                w[q] = _mm256_sub_epi8(w[q], _mm256_set1_epi8(32)),
                a[q] = _mm256_sign_epi8(w[q], w[q]);
            const __m256 ds = scales_avx2(sb, h, d[s]);
            __m256 m[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                           _mm256_setzero_ps()}; // no token: +0
            UNROLL
            for (int t = 0; t < nt; t++) {
                const int8_t *x = j->xq + (size_t)(t0 + t) * C + b * PLM_QK;
                __m256i p[4];
                UNROLL
                for (int q = 0; q < 4; q++)
                    p[q] = dot_avx2(
                        a[q], _mm256_sign_epi8(_mm256_loadu_si256(
                                                   (const __m256i *)(const void *)(x + q * PLM_QK)),
                                               w[q]));
                const __m256 sx = _mm256_mul_ps(ds, dx_avx2(j->xd + (size_t)(t0 + t) * nb, b));
                m[t] = _mm256_mul_ps(_mm256_cvtepi32_ps(steps_avx2(p)), sx);
            }
            acc = chain_avx2(acc, m, 8);
        }
    }
    _Alignas(16) float o[4];
    _mm_store_ps(o, acc);
    UNROLL
    for (int t = 0; t < nt; t++) j->out[(size_t)(t0 + t) * j->w->rows + r] = o[t];
}

// ---- decode (one token): a row at a time, 8 rows' chains together ----

#define Q6K_DNR 4 // rows of a decode tile (q6k_tile4)

// q6k_tile4: out[0, r .. r + 4) (rs = 1), or out[0, r] (rs = 0: every lane reads row r), from the
// input's sums xc (32 times each half-block's, 8 a block: half 0's in lanes 0-3, half 1's 4-7):
// Q8_0's decode (q8_tile4) on Q6_K. Per block, each row's unpacked q (unpack1_avx2) and dot_avx2,
// and steps_avx2 of the 4 rows give P of the block's half 0 for rows 0..3 in the low 128 bits and
// of half 1 in the high ones (minus xc, laid out in the same halves); the scales ds * dx of a
// half super-block, 8 steps of each row a vector, are moved into the same lanes by
// steps_transpose; then per step one convert, multiply and add on acc (lane i = row r + i). The
// tile's rows (4 * 208 bytes a super-block) are read once, and the tile Q6K_PF_BYTES ahead is
// prefetched in step (its 416 bytes a half super-block), its d from the tile after it.
PLM_INLINE PLM_TARGET_AVX2 void q6k_tile4(const matmul_job *j, const int32_t *xc, int r, int rs) {
    const int R = j->w->rows, nsb = j->w->cols / PLM_QK_K;
    const size_t rb = (size_t)nsb * PLM_Q6K_QS;                                // bytes a row
    const int pft = (int)((Q6K_PF_BYTES + Q6K_DNR * rb - 1) / (Q6K_DNR * rb)); // tiles ahead
    const int pq = rs && r + Q6K_DNR * pft < R, pd = rs && r + Q6K_DNR * (pft + 1) < R;
    const char *tq = pq ? (const char *)(j->w->q6 + (size_t)(r + Q6K_DNR * pft) * rb) : NULL;
    const char *td = pd ? (const char *)(j->w->d + (size_t)(r + Q6K_DNR * (pft + 1)) * nsb) : NULL;
    __m128 acc = _mm_setzero_ps(); // lane i: row r + i rs
    for (int s = 0; s < nsb; s++) {
        if (pd) _mm_prefetch(td + 16 * s, _MM_HINT_T0);
        const uint8_t *sb[Q6K_DNR];
        UNROLL
        for (int i = 0; i < Q6K_DNR; i++)
            sb[i] = j->w->q6 + ((size_t)(r + i * rs) * nsb + s) * PLM_Q6K_QS;
        for (int h = 0; h < 2; h++) {
            const int b = 8 * s + 4 * h, g = 2 * s + h; // first block, group of 8 steps
            if (pq)
                for (int o = 0; o < Q6K_DNR * PLM_Q6K_QS / 2; o += 64)
                    _mm_prefetch(tq + (size_t)g * (Q6K_DNR * PLM_Q6K_QS / 2) + o, _MM_HINT_T0);
            __m256 sx[Q6K_DNR], S[4]; // (row): ds * dx of the 8 steps; (block): half 0 | half 1
            const __m256 dx = dx_avx2(j->xd, b);
            UNROLL
            for (int i = 0; i < Q6K_DNR; i++)
                sx[i] = _mm256_mul_ps(
                    scales_avx2(sb[i], h, j->w->d[(size_t)(r + i * rs) * nsb + s]), dx);
            steps_transpose(S, sx);
            UNROLL
            for (int q = 0; q < 4; q++) {
                const __m256i x =
                    _mm256_loadu_si256((const __m256i *)(const void *)(j->xq + (b + q) * PLM_QK));
                __m256i p[Q6K_DNR];
                UNROLL
                for (int i = 0; i < Q6K_DNR; i++) p[i] = dot_avx2(unpack1_avx2(sb[i], h, q), x);
                const __m256i P = _mm256_sub_epi32(
                    steps_avx2(p),
                    _mm256_load_si256((const __m256i *)(const void *)(xc + 8 * (b + q))));
                const __m256 m = _mm256_mul_ps(_mm256_cvtepi32_ps(P), S[q]);
                acc = _mm_add_ps(acc, _mm256_castps256_ps128(m));
                acc = _mm_add_ps(acc, _mm256_extractf128_ps(m, 1));
            }
        }
    }
    if (rs) _mm_storeu_ps(j->out + r, acc);
    else j->out[r] = _mm_cvtss_f32(acc);
}

// ---- prefill: 8 tokens in the lanes of a ymm ----
//
// From Q6K_LANES_T tokens: panels of rows unpacked once per call into bytes q (0..63) and the
// sub-blocks' ds; per group of 8 tokens the inputs laid out with a token a 32-bit lane (4 inputs
// each), 32 times their half-block sums and dx the same way; then per row each step (half-block,
// 16 columns) is 4 broadcasts of 4 weight bytes, vpmaddubsw (|pairs| <= 2 * 63 * 127, two added in
// int16 < 2^15), vpmaddwd, minus the sums: P of q - 32 for 8 tokens; times s = ds * dx, one add.

#define Q6K_LANES_T     5          // tokens from which prefill runs the lanes kernel
#define Q6K_LANES_NB    256        // blocks a row at most (8,192 columns) for the lanes buffers
#define Q6K_PANEL_BYTES (64 << 10) // unpacked weights of one panel (in L2 while the groups pass)

// q6k_group: the inputs of 8 tokens (zeros past T), a token a 32-bit lane.
typedef struct {
    _Alignas(32) int32_t x[Q6K_LANES_NB * 8][8];  // (C / 4, 8): 4 inputs of each token
    _Alignas(32) int32_t xs[2 * Q6K_LANES_NB][8]; // (C / 16, 8): 32 times each half-block's sum
    _Alignas(32) float xd[Q6K_LANES_NB][8];       // (nb, 8): dx
} q6k_group;

// group_layout: tokens t0 .. t0 + nt (nt <= 8) into G.
PLM_TARGET_AVX2 static void group_layout(q6k_group *G, const matmul_job *j, int t0, int nt) {
    const int C = j->w->cols, nb = C / PLM_QK;
    memset(G->x, 0, (size_t)C / 4 * sizeof G->x[0]);
    memset(G->xd, 0, (size_t)nb * sizeof G->xd[0]);
    memset(G->xs, 0, (size_t)C / 16 * sizeof G->xs[0]);
    for (int t = 0; t < nt; t++) {
        const int8_t *x = j->xq + (size_t)(t0 + t) * C;
        for (int c = 0; c < C / 4; c++) memcpy(&G->x[c][t], x + 4 * c, 4);
        for (int b = 0; b < nb; b++) G->xd[b][t] = j->xd[(size_t)(t0 + t) * nb + b];
        for (int b = 0; b < nb; b += 4) { // steps_avx2's lanes: half-blocks [0, 2, 4, 6 | 1, ..]
            __m256i q[4];
            UNROLL
            for (int i = 0; i < 4; i++) q[i] = sums32_avx2(x + (b + i) * PLM_QK);
            _Alignas(32) int32_t s[8];
            _mm256_store_si256((__m256i *)(void *)s, steps_avx2(q));
            for (int i = 0; i < 8; i++) G->xs[2 * b + 2 * (i % 4) + i / 4][t] = s[i];
        }
    }
}

// panel_q6k: rows [r, r + n) of w as bytes q (n, C) and their sub-blocks' ds (n, C / 16).
PLM_TARGET_AVX2 static void panel_q6k(uint8_t *q, float *ds, const plm_mat *w, int r, int n) {
    const int C = w->cols, nsb = C / PLM_QK_K;
    for (int i = 0; i < n; i++)
        for (int s = 0; s < nsb; s++) {
            const uint8_t *sb = w->q6 + ((size_t)(r + i) * nsb + s) * PLM_Q6K_QS;
            const float d = w->d[(size_t)(r + i) * nsb + s];
            for (int h = 0; h < 2; h++) {
                __m256i k[4];
                unpack_avx2(k, sb, h);
                UNROLL
                for (int b = 0; b < 4; b++)
                    _mm256_storeu_si256((__m256i *)(void *)(q + (size_t)i * C + s * PLM_QK_K +
                                                            (4 * h + b) * PLM_QK),
                                        k[b]);
            }
            for (int u = 0; u < 16; u++)
                ds[(size_t)i * (C / 16) + 16 * s + u] = d * (float)((const int8_t *)sb)[192 + u];
        }
}

// q6k_lanes: out[t0 .. t0 + nt, r] for the group G from the unpacked row q (C) and ds (C / 16).
PLM_INLINE PLM_TARGET_AVX2 void q6k_lanes(const matmul_job *j, const q6k_group *G, const uint8_t *q,
                                          const float *ds, int t0, int nt, int r) {
    const int C = j->w->cols;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc = _mm256_setzero_ps();
    for (int u = 0; u < C / 16; u++) { // half-block u: columns 16u .. 16u + 15
        __m256i p[2];
        UNROLL
        for (int h = 0; h < 2; h++) {
            int32_t w4[2];
            memcpy(w4, q + 16 * u + 8 * h, 8);
            const __m256i *x = (const __m256i *)(const void *)G->x[4 * u + 2 * h];
            p[h] = _mm256_madd_epi16(
                _mm256_add_epi16(
                    _mm256_maddubs_epi16(_mm256_set1_epi32(w4[0]), _mm256_load_si256(x)),
                    _mm256_maddubs_epi16(_mm256_set1_epi32(w4[1]), _mm256_load_si256(x + 1))),
                ones);
        }
        const __m256i P =
            _mm256_sub_epi32(_mm256_add_epi32(p[0], p[1]),
                             _mm256_load_si256((const __m256i *)(const void *)G->xs[u]));
        const __m256 s = _mm256_mul_ps(_mm256_set1_ps(ds[u]), _mm256_load_ps(G->xd[u / 2]));
        acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_cvtepi32_ps(P), s));
    }
    _Alignas(32) float o[8];
    _mm256_store_ps(o, acc);
    for (int t = 0; t < nt; t++) j->out[(size_t)(t0 + t) * j->w->rows + r] = o[t];
}

// q6k_rows_lanes: out[0 .. T, r0 .. r1) by panels of rows, each for every group of 8 tokens.
PLM_TARGET_AVX2 static void q6k_rows_lanes(const matmul_job *j, int r0, int r1) {
    static _Thread_local q6k_group G;
    static _Thread_local _Alignas(32) uint8_t pq[Q6K_PANEL_BYTES];
    static _Thread_local _Alignas(32) float pds[Q6K_PANEL_BYTES / 16];
    const int C = j->w->cols, P = Q6K_PANEL_BYTES / C; // rows a panel
    for (int r = r0; r < r1; r += P) {
        const int n = r1 - r < P ? r1 - r : P;
        panel_q6k(pq, pds, j->w, r, n);
        for (int t0 = 0; t0 < j->T; t0 += 8) {
            group_layout(&G, j, t0, j->T - t0 < 8 ? j->T - t0 : 8);
            for (int i = 0; i < n; i++)
                q6k_lanes(j, &G, pq + (size_t)i * C, pds + (size_t)i * (C / 16), t0,
                          j->T - t0 < 8 ? j->T - t0 : 8, r + i);
        }
    }
}

PLM_TARGET_AVX2 void plm_q6k_rows_avx2(const matmul_job *j, int r0, int r1) {
    static _Thread_local _Alignas(32) int32_t xc[8 * Q6K_MAX_NB];
    const int T = j->T, nb = j->w->cols / PLM_QK;
    if (T == 1 && nb <= Q6K_MAX_NB) {
        for (int b = 0; b < nb; b += 4) {
            __m256i q[4];
            UNROLL
            for (int i = 0; i < 4; i++) q[i] = sums32_avx2(j->xq + (b + i) * PLM_QK);
            const __m256i x32 = steps_avx2(q); // half-blocks [0, 2, 4, 6 | 1, 3, 5, 7]
            UNROLL
            for (int i = 0; i < 4; i++)
                _mm256_store_si256(
                    (__m256i *)(void *)(xc + 8 * (b + i)),
                    _mm256_permutevar8x32_epi32(
                        x32, _mm256_setr_epi32(i, i, i, i, i + 4, i + 4, i + 4, i + 4)));
        }
        int r = r0;
        for (; r + Q6K_DNR <= r1; r += Q6K_DNR) q6k_tile4(j, xc, r, 1);
        for (; r < r1; r++) q6k_tile4(j, xc, r, 0);
        return;
    }
    if (T >= Q6K_LANES_T && nb <= Q6K_LANES_NB) {
        q6k_rows_lanes(j, r0, r1);
        return;
    }
    for (int r = r0; r < r1; r++)
        for (int t = 0; t < T; t += Q6K_NT) {
            switch (T - t < Q6K_NT ? T - t : Q6K_NT) {
            case 4: q6k_tokens_avx2(j, t, 4, r); break;
            case 3: q6k_tokens_avx2(j, t, 3, r); break;
            case 2: q6k_tokens_avx2(j, t, 2, r); break;
            default: q6k_tokens_avx2(j, t, 1, r); break;
            }
        }
}
#endif // __x86_64__
