// matmul_steps_x86.h: the pieces of matmul_kernels.h's canonical order that the x86 Q4/Q5
// (matmul_q4_x86.c) and Q6_K (matmul_q6k_x86.c) kernels share (internal; only those files include
// it). Their kernels work on groups of 8 steps (Q4/Q5: 8 blocks; Q6_K: 4 blocks, two half-blocks
// each) of up to 4 outputs (4 rows of one token in decode, 4 tokens of one row else):
//   steps_avx2: the 8 exact int32 sums P of a group from 4 vectors of int16 partial sums, q[i]
//     holding step 2i in its low 128 bits and step 2i + 1 in its high ones (any split of a step's
//     products gives the same int32; |each lane| <= 2^14 - 1, so that hadd adds two in int16):
//     hadd in int16, vpmaddwd, hadd in int32, the group's steps in the lanes [0, 2, 4, 6 | 1, 3,
//     5, 7] (the kernels lay the scales out the same way); decode gives it 4 rows' steps 2i and
//     2i + 1 instead (q[i]: row i's; Q4/Q5: a pair of blocks, Q6_K: a block's halves), so lanes
//     [0..3 | 4..7] hold those two steps of rows 0..3;
//   steps_transpose: an in-lane 4 x 4 transpose of 4 outputs' 8 values in steps_avx2's lanes, so
//     that steps 2i and 2i + 1 of the 4 outputs are the low and high half of one vector;
//   chain_avx2: the float chain acc = acc + m of 4 outputs (one a lane of acc) over the 8 steps
//     m[o] of each output o (in steps_avx2's lanes): steps_transpose, then one add a step, in
//     order, skipping the steps past a row's end (a row's last group).
#ifndef PLM_MATMUL_STEPS_X86_H
#define PLM_MATMUL_STEPS_X86_H

#include "cpu.h"       // PLM_INLINE, UNROLL
#include "quant_x86.h" // the target attributes

#if defined(__x86_64__)
#include <immintrin.h>

// steps_avx2: P of steps [0, 2, 4, 6 | 1, 3, 5, 7] from q[i] (int16: step 2i in the low 128 bits,
// 2i + 1 in the high ones).
PLM_INLINE PLM_TARGET_AVX2 __m256i steps_avx2(const __m256i q[4]) {
    const __m256i ones = _mm256_set1_epi16(1);
    return _mm256_hadd_epi32(_mm256_madd_epi16(_mm256_hadd_epi16(q[0], q[1]), ones),
                             _mm256_madd_epi16(_mm256_hadd_epi16(q[2], q[3]), ones));
}

// steps_transpose: s[i] = steps 2i (low 128 bits) and 2i + 1 (high ones) of the 4 outputs (one
// a lane) from m[o] (output o's 8 steps in steps_avx2's lanes): an in-lane 4 x 4 transpose.
PLM_INLINE PLM_TARGET_AVX2 void steps_transpose(__m256 s[4], const __m256 m[4]) {
    const __m256 a = _mm256_unpacklo_ps(m[0], m[1]), b = _mm256_unpackhi_ps(m[0], m[1]);
    const __m256 c = _mm256_unpacklo_ps(m[2], m[3]), d = _mm256_unpackhi_ps(m[2], m[3]);
    s[0] = _mm256_shuffle_ps(a, c, 0x44), s[1] = _mm256_shuffle_ps(a, c, 0xEE);
    s[2] = _mm256_shuffle_ps(b, d, 0x44), s[3] = _mm256_shuffle_ps(b, d, 0xEE);
}

// chain_avx2: acc (lane o: output o) + the first n (<= 8) steps of m[o] (steps_avx2's lanes), in
// step order (the steps past n do not exist).
PLM_INLINE PLM_TARGET_AVX2 __m128 chain_avx2(__m128 acc, const __m256 m[4], int n) {
    __m256 s[4];
    steps_transpose(s, m);
    UNROLL
    for (int i = 0; i < 4; i++) { // s[i]: steps 2i (low half) and 2i + 1 (high half)
        if (2 * i < n) acc = _mm_add_ps(acc, _mm256_castps256_ps128(s[i]));
        if (2 * i + 1 < n) acc = _mm_add_ps(acc, _mm256_extractf128_ps(s[i], 1));
    }
    return acc;
}

#endif

#endif
