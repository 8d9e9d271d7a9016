// quant_x86.h: the x86-64 target attributes, and the Q8_0 quantization of one block of 32 floats
// held in registers, shared by matmul_x86.c (activations, before each matmul) and quant.c (GGUF
// Q4_x blocks, at load). Both are matmul.c's quantize_scalar with the same float operations in the
// same order, so they give its bytes: max(|v|, m) keeps m for a NaN v as fmaxf does, max(v, lo)
// gives lo for NaN like fmaxf(v, lo), and cvtps rounds to nearest even like lrintf.
#ifndef PLM_QUANT_X86_H
#define PLM_QUANT_X86_H

#if defined(__x86_64__)
#include <immintrin.h>
#include <stdint.h>

#define PLM_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
// avxvnni's two twins (matmul_q8_x86.h): vpdpbusd ymm VEX-encoded (AVX-VNNI), EVEX-encoded
#define PLM_TARGET_AVXVNNI      __attribute__((target("avx2,fma,f16c,avxvnni")))
#define PLM_TARGET_AVXVNNI_EVEX __attribute__((target("avx2,fma,f16c,avx512vnni,avx512vl")))
#define PLM_TARGET_AVX512                                                                          \
    __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))

// quantize_block_avx512: v0, v1 (the block's 32 values) -> q (32), *d.
static inline __attribute__((always_inline)) PLM_TARGET_AVX512 void
quantize_block_avx512(int8_t *q, float *d, __m512 v0, __m512 v1) {
    const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const float db = amax / 127.0f;
    const __m512 id = _mm512_set1_ps(db != 0.0f ? 1.0f / db : 0.0f);
    *d = db;
    v0 = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v0, id), lo), hi);
    v1 = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v1, id), lo), hi);
    _mm_storeu_si128((__m128i *)(void *)q, _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v0)));
    _mm_storeu_si128((__m128i *)(void *)(q + 16), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v1)));
}

// quantize_block_avx2: v[4] (the block's 32 values) -> q (32), *d.
static inline __attribute__((always_inline)) PLM_TARGET_AVX2 void
quantize_block_avx2(int8_t *q, float *d, const __m256 v[4]) {
    const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < 4; i++) m = _mm256_max_ps(_mm256_andnot_ps(sign, v[i]), m);
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    const float db = _mm_cvtss_f32(h) / 127.0f;
    const __m256 id = _mm256_set1_ps(db != 0.0f ? 1.0f / db : 0.0f);
    *d = db;
    __m256i qi[4];
    for (int i = 0; i < 4; i++)
        qi[i] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(v[i], id), lo), hi));
    // packs interleave 128-bit lanes: dwords come out as blocks 0-3, 8-11, 16-19, 24-27 | 4-7..
    const __m256i p =
        _mm256_packs_epi16(_mm256_packs_epi32(qi[0], qi[1]), _mm256_packs_epi32(qi[2], qi[3]));
    _mm256_storeu_si256((__m256i *)(void *)q, _mm256_permutevar8x32_epi32(p, order));
}
#endif

#endif
