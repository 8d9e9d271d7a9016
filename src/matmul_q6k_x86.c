// matmul_q6k_x86.c: Q6_K weights on the x86-64 paths: the q6k entry (a rows kernel) of
// matmul_x86.c's AVX2, avxvnni and AVX-512 tables, in matmul_kernels.h's order (the same bits as
// the scalar reference), AVX2 code on every path.
//   A super-block's half h (128 values, 4 blocks of 32) is three 32-byte loads: ql's two groups
//   and qh's group, byte l of each holding element l of its blocks (gguf.c's dequant_q6_k), so
//   and/shift/or give the 4 blocks' unsigned q (0..63) in element order, no byte crossing lanes.
//   vpmaddubsw (q unsigned, x signed: |pairs| <= 2 * 63 * 127) and vpmaddwd give the 8 lanes of
//   4-byte sums, minus 32 times the input's 4-byte sums: the exact p[b][l] of q - 32. A lane's
//   scale is its sub-block's d * sc (the 8 int8 scales of a half to f32 times d, one permute per
//   block) times the block's dx, as the reference.
//   Decode (one token): rows one after the other (each one sequential stream, prefetched ahead),
//   the input's 4-byte sums once per call; the end sums of 4 rows finished together (a 4 x 4
//   transpose and vertical adds), as matmul_q4_x86.c's decode: no horizontal sum per row.
//   More tokens: a row at a time, 4 tokens a pass on each unpacked half (the input sums on the
//   fly). Not the lanes kernels of Q8_0's prefill: see NOTES.md.
// Decode is bandwidth-bound: a Q6_K weight is 0.828 bytes (208 bytes and an f32 d per 256)
// against Q8_0's 1.125.
#include <string.h>

#include "matmul_kernels.h"
#include "quant_x86.h" // the target attributes

#if defined(__x86_64__)
#include <immintrin.h>

#define Q6K_PF_BYTES 4096 // decode prefetches the weights about this far ahead
#define Q6K_NT       4    // tokens per pass of the kernel
#define Q6K_MAX_NB   512  // blocks a row at most (16,384 columns) for decode's input sums

// unpack_avx2: the 4 blocks of half h of super-block sb as unsigned q (0..63), block s in k[s].
PLM_INLINE PLM_TARGET_AVX2 void unpack_avx2(__m256i k[4], const uint8_t *sb, int h) {
    const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(const void *)(sb + 64 * h));
    const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(const void *)(sb + 64 * h + 32));
    const __m256i qh = _mm256_loadu_si256((const __m256i *)(const void *)(sb + 128 + 32 * h));
    const __m256i lo = _mm256_set1_epi8(15), hi = _mm256_set1_epi8(0x30);
    k[0] =
        _mm256_or_si256(_mm256_and_si256(ql0, lo), _mm256_and_si256(_mm256_slli_epi16(qh, 4), hi));
    k[1] =
        _mm256_or_si256(_mm256_and_si256(ql1, lo), _mm256_and_si256(_mm256_slli_epi16(qh, 2), hi));
    k[2] =
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), lo), _mm256_and_si256(qh, hi));
    k[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), lo),
                           _mm256_and_si256(_mm256_srli_epi16(qh, 2), hi));
}

// sums32_avx2: 32 times the sums of the 4-byte lanes of the 32 inputs at x.
PLM_INLINE PLM_TARGET_AVX2 __m256i sums32_avx2(const int8_t *x) {
    const __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)x);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(32), v), _mm256_set1_epi16(1));
}

// q6k_row_avx2: row r for nt tokens from t0 (nt <= Q6K_NT, a constant at each call site): a[t]
// gets the canonical accumulators of token t0 + t folded to 4 lanes (h[i] + h[i + 4]). Decode (nt
// 1) passes token t0's input sums xc (sums32_avx2, 8 a block) and its scales xs (per half
// super-block, each block's dx twice: the lanes of the half's 8 sub-blocks); else both are NULL
// and computed here.
PLM_INLINE PLM_TARGET_AVX2 void q6k_row_avx2(__m128 a[Q6K_NT], const matmul_job *j, int t0,
                                             const int nt, int r, const int32_t *xc,
                                             const float *xs) {
    const int C = j->w->cols, nb = C / PLM_QK, nsb = C / PLM_QK_K;
    const uint8_t *row = j->w->q6 + (size_t)r * nsb * PLM_Q6K_QS;
    const char *end = (const char *)(j->w->q6 + (size_t)j->w->rows * nsb * PLM_Q6K_QS);
    const float *d = j->w->d + (size_t)r * nsb;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[Q6K_NT][2];
    UNROLL
    for (int t = 0; t < nt; t++) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
    for (int s = 0; s < nsb; s++) {
        const uint8_t *sb = row + (size_t)s * PLM_Q6K_QS;
        const char *p = (const char *)sb + Q6K_PF_BYTES;
        if (p < end) _mm_prefetch(p, _MM_HINT_NTA), _mm_prefetch(p + 64, _MM_HINT_NTA);
        if (p + 128 < end) _mm_prefetch(p + 128, _MM_HINT_NTA), _mm_prefetch(p + 192, _MM_HINT_NTA);
        for (int h = 0; h < 2; h++) {
            __m256i k[4];
            unpack_avx2(k, sb, h);
            const __m256 ds =
                _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(
                                  (const __m128i *)(const void *)(sb + 192 + 8 * h)))),
                              _mm256_set1_ps(d[s]));
            const __m256 dsx = xs ? _mm256_mul_ps(ds, _mm256_load_ps(xs + 8 * (2 * s + h))) : ds;
            UNROLL
            for (int q = 0; q < 4; q++) {
                const int b = 8 * s + 4 * h + q;
                const __m256 dsb = _mm256_permutevar8x32_ps(
                    dsx, _mm256_setr_epi32(2 * q, 2 * q, 2 * q, 2 * q, 2 * q + 1, 2 * q + 1,
                                           2 * q + 1, 2 * q + 1));
                UNROLL
                for (int t = 0; t < nt; t++) {
                    const int8_t *x = j->xq + (size_t)(t0 + t) * C + b * PLM_QK;
                    const __m256i c =
                        xc ? _mm256_loadu_si256((const __m256i *)(const void *)(xc + 8 * b))
                           : sums32_avx2(x);
                    const __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)x);
                    const __m256i p32 =
                        _mm256_sub_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(k[q], v), ones), c);
                    const __m256 sc =
                        xs ? dsb
                           : _mm256_mul_ps(dsb, _mm256_set1_ps(j->xd[(size_t)(t0 + t) * nb + b]));
                    acc[t][q % 2] =
                        _mm256_add_ps(acc[t][q % 2], _mm256_mul_ps(_mm256_cvtepi32_ps(p32), sc));
                }
            }
        }
    }
    UNROLL
    for (int t = 0; t < nt; t++) {
        const __m256 e = _mm256_add_ps(acc[t][0], acc[t][1]);
        a[t] = _mm_add_ps(_mm256_castps256_ps128(e), _mm256_extractf128_ps(e, 1));
    }
}

// q6k_tokens_avx2: out[t0 .. t0 + nt, r], each token's folded lanes finished as (a0 + a2) +
// (a1 + a3).
PLM_INLINE PLM_TARGET_AVX2 void q6k_tokens_avx2(const matmul_job *j, int t0, const int nt, int r) {
    __m128 a[Q6K_NT];
    q6k_row_avx2(a, j, t0, nt, r, NULL, NULL);
    UNROLL
    for (int t = 0; t < nt; t++) {
        const __m128 v = _mm_add_ps(a[t], _mm_movehl_ps(a[t], a[t])); // a0 + a2, a1 + a3
        j->out[(size_t)(t0 + t) * j->w->rows + r] =
            _mm_cvtss_f32(_mm_add_ss(v, _mm_movehdup_ps(v)));
    }
}

// q6k_decode_avx2: out[0, r .. r + n) (n <= 4 a constant at each call site) from the input sums
// xc and scales xs: the rows' folded lanes transposed, then (c0 + c2) + (c1 + c3) one row a lane.
PLM_INLINE PLM_TARGET_AVX2 void q6k_decode_avx2(const matmul_job *j, const int32_t *xc,
                                                const float *xs, int r, const int n) {
    __m128 a[4] = {_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps()};
    UNROLL
    for (int i = 0; i < n; i++) q6k_row_avx2(a + i, j, 0, 1, r + i, xc, xs);
    _MM_TRANSPOSE4_PS(a[0], a[1], a[2], a[3]);
    _Alignas(16) float out[4];
    _mm_store_ps(out, _mm_add_ps(_mm_add_ps(a[0], a[2]), _mm_add_ps(a[1], a[3])));
    memcpy(j->out + r, out, (size_t)n * sizeof(float));
}

PLM_TARGET_AVX2 void plm_q6k_rows_avx2(const matmul_job *j, int r0, int r1) {
    static _Thread_local _Alignas(32) int32_t xc[Q6K_MAX_NB * 8];
    static _Thread_local _Alignas(32) float xs[Q6K_MAX_NB * 2];
    const int T = j->T, nb = j->w->cols / PLM_QK;
    if (T == 1 && nb <= Q6K_MAX_NB) {
        for (int b = 0; b < nb; b++) {
            _mm256_store_si256((__m256i *)(void *)(xc + 8 * b), sums32_avx2(j->xq + b * PLM_QK));
            xs[2 * b] = xs[2 * b + 1] = j->xd[b];
        }
        int r = r0;
        for (; r + 4 <= r1; r += 4) q6k_decode_avx2(j, xc, xs, r, 4);
        switch (r1 - r) {
        case 3: q6k_decode_avx2(j, xc, xs, r, 3); break;
        case 2: q6k_decode_avx2(j, xc, xs, r, 2); break;
        case 1: q6k_decode_avx2(j, xc, xs, r, 1); break;
        default: break;
        }
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
