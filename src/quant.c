// quant.c: GGUF rows into the in-memory layouts at load time (quant.h). The plain route is
// plm_gguf_dequant_row to f32, then plm_quantize_q8_0_isa; it is what every path without a kernel
// here takes, and what the kernels must reproduce bit for bit:
// - A Q4_1 block holds 32 nibbles k with one scale d and one minimum m; its values are
//   x = fl(fl(k * d) + m) (a multiply, then an add: gguf.c writes them as two statements), so a
//   block has at most 16 distinct values. The kernels compute those 16 (one AVX-512 register, two
//   AVX2 ones), pick each weight's with a permute by its nibble (the exact x of the plain route),
//   then run the quantizer's float operations on them: amax = max |x| (exact in any order),
//   d = amax / 127, id = 1 / d (0 when d is 0), q = round-to-nearest-even(clamp(x * id, -127,
//   127)). Q4_0 is the same with x = fl((k - 8) * d).
// - A block whose d or m is infinite or NaN takes the plain route (the quantizers' max differs
//   on NaN from path to path; the plain route is by definition what the path did).
// - Q5_0 and Q5_1 are 5-bit: 32 levels, too many for the permute, so the kernel (AVX2, taken on
//   the AVX-512 path too) rebuilds each q as an int8 (nibble | qh bit << 4) and converts it, exact,
//   to float: x = fl((q - 16) * d), or fl(fl(q * d) + m), the plain route's operations.
// - Q4_K, Q5_K and Q6_K (AVX2): each run of 32 values of a super-block is one Q8_0 block, with
//   one scale (Q4_K/Q5_K: and minimum) or two (Q6_K: one per 16); the kernel rebuilds q as bytes
//   and converts them, then x = fl(fl(dl * q) - ml) or fl(dl * q) with dl, ml computed as gguf.c
//   does. A super-block with an infinite or NaN d or dmin takes the plain route. Q2_K and Q3_K
//   (rare in files people use) take the plain route.
// - Q8_0 blocks are copied (d to f32), not requantized: that is what loading always did.
#include "quant.h"

#include <math.h>
#include <string.h>

#include "base.h"
#include "gguf.h"
#include "matmul.h"
#include "quantize.h"

static float f16_at(const uint8_t *p) {
    return plm_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

// plain_q8_0: the plain route for nb blocks of 32 (tmp: nb * 32 floats).
static void plain_q8_0(plm_isa isa, uint32_t type, const uint8_t *src, size_t nb, int8_t *q,
                       float *d, float *tmp) {
    plm_gguf_dequant_row(type, src, nb * 32, tmp);
    plm_quantize_q8_0_isa(isa, q, d, tmp, nb * 32);
}

// copy_q8_0: Q8_0 blocks as they are: q unchanged, d from f16 to f32.
static void copy_q8_0(const uint8_t *src, size_t nb, int8_t *q, float *d) {
    for (size_t b = 0; b < nb; b++, src += 34) {
        d[b] = f16_at(src);
        memcpy(q + b * 32, src + 2, 32);
    }
}

#if defined(__x86_64__)
#include "quant_x86.h" // the target attributes, one block's quantization

// f16_finite: the f16 at p is neither infinite nor NaN.
static int f16_finite(const uint8_t *p) {
    return (p[1] & 0x7c) != 0x7c;
}

// ---- AVX-512: a block's 16 values in one register ----

// levels_avx512: the 16 values of a Q4_0/Q4_1 block whose header is at p.
static inline PLM_TARGET_AVX512 __m512 levels_avx512(uint32_t type, const uint8_t *p) {
    const __m512 d = _mm512_set1_ps(f16_at(p));
    if (type == PLM_GGML_Q4_0)
        return _mm512_mul_ps(_mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7),
                             d);
    const __m512 k = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512 kd = _mm512_mul_ps(k, d);
    return _mm512_add_ps(kd, _mm512_set1_ps(f16_at(p + 2)));
}

// values_avx512: the block's 32 values (low nibbles are elements 0-15, high ones 16-31).
static inline PLM_TARGET_AVX512 void values_avx512(uint32_t type, const uint8_t *p, __m512 *x0,
                                                   __m512 *x1) {
    const __m512 v = levels_avx512(type, p);
    const __m512i b = _mm512_cvtepu8_epi32(
        _mm_loadu_si128((const __m128i *)(const void *)(p + (type == PLM_GGML_Q4_1 ? 4 : 2))));
    *x0 = _mm512_permutexvar_ps(_mm512_and_si512(b, _mm512_set1_epi32(15)), v);
    *x1 = _mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), v);
}

// q4_q8_avx512: quantize_block_avx512 (quant_x86.h) on each block's values.
static PLM_TARGET_AVX512 void q4_q8_avx512(plm_isa isa, uint32_t type, const uint8_t *src,
                                           size_t nb, int8_t *q, float *d, float *tmp) {
    const size_t bs = type == PLM_GGML_Q4_1 ? 20 : 18;
    for (size_t b = 0; b < nb; b++) {
        const uint8_t *p = src + b * bs;
        if (!f16_finite(p) || (type == PLM_GGML_Q4_1 && !f16_finite(p + 2))) {
            plain_q8_0(isa, type, p, 1, q + b * 32, d + b, tmp);
            continue;
        }
        __m512 v0, v1;
        values_avx512(type, p, &v0, &v1);
        quantize_block_avx512(q + b * 32, d + b, v0, v1);
    }
}

static PLM_TARGET_AVX512 void q4_f32_avx512(uint32_t type, const uint8_t *src, size_t nb,
                                            float *out) {
    const size_t bs = type == PLM_GGML_Q4_1 ? 20 : 18;
    for (size_t b = 0; b < nb; b++) {
        __m512 v0, v1;
        values_avx512(type, src + b * bs, &v0, &v1);
        _mm512_storeu_ps(out + b * 32, v0);
        _mm512_storeu_ps(out + b * 32 + 16, v1);
    }
}

// ---- AVX2: a block's 16 values in two registers ----

// pick_avx2: the values of the 8 nibbles in idx (one per 32-bit lane) from levels v0 (0-7) and
// v1 (8-15): vpermps uses the low 3 bits, bit 3 (moved to the sign) chooses the register.
static inline PLM_TARGET_AVX2 __m256 pick_avx2(__m256 v0, __m256 v1, __m256i idx) {
    const __m256 a = _mm256_permutevar8x32_ps(v0, idx), b = _mm256_permutevar8x32_ps(v1, idx);
    return _mm256_blendv_ps(a, b, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
}

// values_avx2: the block's 32 values in x[0..3] (elements 0-7, 8-15, 16-23, 24-31).
static inline PLM_TARGET_AVX2 void values_avx2(uint32_t type, const uint8_t *p, __m256 x[4]) {
    const __m256 d = _mm256_set1_ps(f16_at(p));
    __m256 v0, v1;
    if (type == PLM_GGML_Q4_0) {
        v0 = _mm256_mul_ps(_mm256_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1), d);
        v1 = _mm256_mul_ps(_mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7), d);
    } else {
        const __m256 m = _mm256_set1_ps(f16_at(p + 2));
        const __m256 k0 = _mm256_mul_ps(_mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7), d);
        const __m256 k1 = _mm256_mul_ps(_mm256_setr_ps(8, 9, 10, 11, 12, 13, 14, 15), d);
        v0 = _mm256_add_ps(k0, m);
        v1 = _mm256_add_ps(k1, m);
    }
    const __m128i raw =
        _mm_loadu_si128((const __m128i *)(const void *)(p + (type == PLM_GGML_Q4_1 ? 4 : 2)));
    const __m128i lo = _mm_and_si128(raw, _mm_set1_epi8(15));
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(15));
    x[0] = pick_avx2(v0, v1, _mm256_cvtepu8_epi32(lo));
    x[1] = pick_avx2(v0, v1, _mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8)));
    x[2] = pick_avx2(v0, v1, _mm256_cvtepu8_epi32(hi));
    x[3] = pick_avx2(v0, v1, _mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8)));
}

// q8_f32_avx2: x = (float)q * d, 8 at a time (the int8 -> float conversion is exact).
static PLM_TARGET_AVX2 void q8_f32_avx2(const uint8_t *src, size_t nb, float *out) {
    for (size_t b = 0; b < nb; b++, src += 34) {
        const __m256 d = _mm256_set1_ps(f16_at(src));
        for (int k = 0; k < 4; k++) {
            const __m128i q8 = _mm_loadl_epi64((const __m128i *)(const void *)(src + 2 + 8 * k));
            const __m256 x = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8));
            _mm256_storeu_ps(out + b * 32 + 8 * k, _mm256_mul_ps(x, d));
        }
    }
}

// ---- Q5_0 / Q5_1 (AVX2, also taken on the AVX-512 path) ----

// q5_values_avx2: the 32 values of the Q5_0/Q5_1 block at p in x[0..3] (elements 0-7, 8-15,
// 16-23, 24-31): the nibbles as in Q4_x, bit j of the little-endian qh as bit 4 of element j
// (each qh byte broadcast to 8 lanes, one bit tested per lane); x = (q - 16) * d (Q5_0) or
// fl(q * d) + m (Q5_1), the plain route's operations (int8 -> float is exact).
static inline PLM_TARGET_AVX2 void q5_values_avx2(uint32_t type, const uint8_t *p, __m256 x[4]) {
    const int one = type == PLM_GGML_Q5_1; // Q5_1's header has m after d
    const __m256 d = _mm256_set1_ps(f16_at(p));
    uint32_t h;
    memcpy(&h, p + 2 + 2 * one, 4);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    const __m256i sel = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2,
                                         2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i hb = _mm256_shuffle_epi8(_mm256_set1_epi32((int)h), sel);
    const __m256i hi =
        _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hb, bit), bit), _mm256_set1_epi8(16));
    const __m128i raw = _mm_loadu_si128((const __m128i *)(const void *)(p + 6 + 2 * one));
    const __m128i n0 = _mm_and_si128(raw, _mm_set1_epi8(15));
    const __m128i n1 = _mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(15));
    __m256i q = _mm256_or_si256(_mm256_inserti128_si256(_mm256_castsi128_si256(n0), n1, 1), hi);
    if (!one) q = _mm256_sub_epi8(q, _mm256_set1_epi8(16));
    const __m128i q0 = _mm256_castsi256_si128(q), q1 = _mm256_extracti128_si256(q, 1);
    const __m128i part[4] = {q0, _mm_srli_si128(q0, 8), q1, _mm_srli_si128(q1, 8)};
    for (int k = 0; k < 4; k++) {
        const __m256 qd = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(part[k])), d);
        x[k] = one ? _mm256_add_ps(qd, _mm256_set1_ps(f16_at(p + 2))) : qd;
    }
}

// The 32-value blocks (Q4_0, Q4_1, Q5_0, Q5_1): their bytes, and whether their scales are finite.
static size_t block32_bytes(uint32_t type) {
    return type == PLM_GGML_Q4_0   ? 18
           : type == PLM_GGML_Q4_1 ? 20
           : type == PLM_GGML_Q5_0 ? 22
                                   : 24;
}
static int block32_finite(uint32_t type, const uint8_t *p) {
    return f16_finite(p) && (type == PLM_GGML_Q4_0 || type == PLM_GGML_Q5_0 || f16_finite(p + 2));
}

// block32_values_avx2: values_avx2 or q5_values_avx2, by type.
static inline PLM_TARGET_AVX2 void block32_values_avx2(uint32_t type, const uint8_t *p,
                                                       __m256 x[4]) {
    if (type == PLM_GGML_Q5_0 || type == PLM_GGML_Q5_1) q5_values_avx2(type, p, x);
    else values_avx2(type, p, x);
}

// block32_q8_avx2: quantize_block_avx2 (quant_x86.h) on each block's values; a block with a
// non-finite scale takes the plain route.
static PLM_TARGET_AVX2 void block32_q8_avx2(plm_isa isa, uint32_t type, const uint8_t *src,
                                            size_t nb, int8_t *q, float *d, float *tmp) {
    const size_t bs = block32_bytes(type);
    for (size_t b = 0; b < nb; b++) {
        const uint8_t *p = src + b * bs;
        if (!block32_finite(type, p)) {
            plain_q8_0(isa, type, p, 1, q + b * 32, d + b, tmp);
            continue;
        }
        __m256 x[4];
        block32_values_avx2(type, p, x);
        quantize_block_avx2(q + b * 32, d + b, x);
    }
}

static PLM_TARGET_AVX2 void block32_f32_avx2(uint32_t type, const uint8_t *src, size_t nb,
                                             float *out) {
    const size_t bs = block32_bytes(type);
    for (size_t b = 0; b < nb; b++) {
        __m256 x[4];
        block32_values_avx2(type, src + b * bs, x);
        for (int k = 0; k < 4; k++) _mm256_storeu_ps(out + b * 32 + 8 * k, x[k]);
    }
}

// ---- Q4_K, Q5_K, Q6_K (AVX2, also taken on the AVX-512 path) ----
// A super-block of 256 is 8 runs of 32 consecutive values, each one Q8_0 block: Q4_K/Q5_K's
// sub-blocks (one scale and minimum each), Q6_K's pairs of 16-value sub-blocks. Each run's values
// are the plain route's: the int q converted (exact), then fl(fl(dl * q) - ml) or fl(dl * q).

// cvt_mul_avx2: the 8 bytes of b (signed, or unsigned if !sign) as float times s.
static inline PLM_TARGET_AVX2 __m256 cvt_mul_avx2(__m128i b, int sign, __m256 s) {
    const __m256i i = sign ? _mm256_cvtepi8_epi32(b) : _mm256_cvtepu8_epi32(b);
    return _mm256_mul_ps(_mm256_cvtepi32_ps(i), s);
}

// k_run_avx2: run r (0-7) of the Q4_K/Q5_K/Q6_K super-block at p in x[0..3].
static inline PLM_TARGET_AVX2 void k_run_avx2(uint32_t type, const uint8_t *p, int r, __m256 x[4]) {
    __m256i q;
    __m256 s0, s1, m = _mm256_setzero_ps();
    if (type == PLM_GGML_Q6_K) { // run r = 4h + s
        const int h = r / 4, s = r % 4;
        const __m256i ql =
            _mm256_loadu_si256((const __m256i *)(const void *)(p + 64 * h + 32 * (s % 2)));
        const __m256i qh = _mm256_loadu_si256((const __m256i *)(const void *)(p + 128 + 32 * h));
        const __m256i lo =
            _mm256_and_si256(_mm256_srli_epi16(ql, 4 * (s / 2)), _mm256_set1_epi8(15));
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * s), _mm256_set1_epi8(3));
        q = _mm256_sub_epi8(_mm256_or_si256(lo, _mm256_slli_epi16(hi, 4)), _mm256_set1_epi8(32));
        const float d = f16_at(p + 208);
        s0 = _mm256_set1_ps(d * (float)(int8_t)p[192 + 2 * r]);
        s1 = _mm256_set1_ps(d * (float)(int8_t)p[193 + 2 * r]);
    } else { // run r is sub-block r
        const int five = type == PLM_GGML_Q5_K;
        const __m256i qs = _mm256_loadu_si256(
            (const __m256i *)(const void *)(p + (five ? 48 : 16) + 32 * (r / 2)));
        q = _mm256_and_si256(_mm256_srli_epi16(qs, 4 * (r % 2)), _mm256_set1_epi8(15));
        if (five) {
            const __m256i bit = _mm256_set1_epi8((char)(1 << r));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(const void *)(p + 16));
            q = _mm256_or_si256(q,
                                _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit), bit),
                                                 _mm256_set1_epi8(16)));
        }
        int sc, mn;
        plm_gguf_k4_scale(p + 4, r, &sc, &mn);
        s0 = s1 = _mm256_set1_ps(f16_at(p) * (float)sc);
        m = _mm256_set1_ps(f16_at(p + 2) * (float)mn);
    }
    const int sign = type == PLM_GGML_Q6_K;
    const __m128i q0 = _mm256_castsi256_si128(q), q1 = _mm256_extracti128_si256(q, 1);
    x[0] = cvt_mul_avx2(q0, sign, s0);
    x[1] = cvt_mul_avx2(_mm_srli_si128(q0, 8), sign, s0);
    x[2] = cvt_mul_avx2(q1, sign, s1);
    x[3] = cvt_mul_avx2(_mm_srli_si128(q1, 8), sign, s1);
    if (!sign)
        for (int k = 0; k < 4; k++) x[k] = _mm256_sub_ps(x[k], m);
}

// k_q8_avx2: quantize_block_avx2 on each run; a super-block whose d (or dmin) is infinite or NaN
// takes the plain route.
static PLM_TARGET_AVX2 void k_q8_avx2(plm_isa isa, uint32_t type, const uint8_t *src, size_t nb,
                                      int8_t *q, float *d, float *tmp) {
    const size_t bs = plm_gguf_row_bytes(type, 256);
    for (size_t b = 0; b < nb; b++) {
        const uint8_t *p = src + b * bs;
        if (type == PLM_GGML_Q6_K ? !f16_finite(p + 208) : !f16_finite(p) || !f16_finite(p + 2)) {
            plain_q8_0(isa, type, p, 8, q + b * 256, d + b * 8, tmp);
            continue;
        }
        for (int r = 0; r < 8; r++) {
            __m256 x[4];
            k_run_avx2(type, p, r, x);
            quantize_block_avx2(q + b * 256 + 32 * r, d + b * 8 + r, x);
        }
    }
}

static PLM_TARGET_AVX2 void k_f32_avx2(uint32_t type, const uint8_t *src, size_t nb, float *out) {
    const size_t bs = plm_gguf_row_bytes(type, 256);
    for (size_t b = 0; b < nb; b++)
        for (int r = 0; r < 8; r++) {
            __m256 x[4];
            k_run_avx2(type, src + b * bs, r, x);
            for (int k = 0; k < 4; k++) _mm256_storeu_ps(out + b * 256 + 32 * r + 8 * k, x[k]);
        }
}

// k_type: Q4_K, Q5_K or Q6_K, the K-quants with a kernel here.
static int k_type(uint32_t type) {
    return type == PLM_GGML_Q4_K || type == PLM_GGML_Q5_K || type == PLM_GGML_Q6_K;
}
#endif

void plm_quant_row_q8_0(plm_isa isa, uint32_t type, const uint8_t *src, size_t n, int8_t *q,
                        float *d, float *tmp) {
    const size_t nb = n / 32;
    if (type == PLM_GGML_Q8_0) {
        copy_q8_0(src, nb, q, d);
        return;
    }
#if defined(__x86_64__)
    const int q4 = type == PLM_GGML_Q4_0 || type == PLM_GGML_Q4_1;
    if (q4 && plm_isa_includes(isa, PLM_ISA_AVX512)) {
        q4_q8_avx512(isa, type, src, nb, q, d, tmp);
        return;
    }
    if ((q4 || type == PLM_GGML_Q5_0 || type == PLM_GGML_Q5_1) &&
        plm_isa_includes(isa, PLM_ISA_AVX2)) {
        block32_q8_avx2(isa, type, src, nb, q, d, tmp);
        return;
    }
    if (k_type(type) && plm_isa_includes(isa, PLM_ISA_AVX2)) {
        k_q8_avx2(isa, type, src, n / 256, q, d, tmp);
        return;
    }
#endif
    plain_q8_0(isa, type, src, nb, q, d, tmp);
}

void plm_quant_row_f32(plm_isa isa, uint32_t type, const uint8_t *src, size_t n, float *out) {
#if defined(__x86_64__)
    if (plm_isa_includes(isa, PLM_ISA_AVX512) && (type == PLM_GGML_Q4_0 || type == PLM_GGML_Q4_1)) {
        q4_f32_avx512(type, src, n / 32, out);
        return;
    }
    if (plm_isa_includes(isa, PLM_ISA_AVX2)) {
        if (type == PLM_GGML_Q4_0 || type == PLM_GGML_Q4_1 || type == PLM_GGML_Q5_0 ||
            type == PLM_GGML_Q5_1) {
            block32_f32_avx2(type, src, n / 32, out);
            return;
        }
        if (k_type(type)) {
            k_f32_avx2(type, src, n / 256, out);
            return;
        }
        if (type == PLM_GGML_Q8_0) {
            q8_f32_avx2(src, n / 32, out);
            return;
        }
    }
#endif
    (void)isa;
    plm_gguf_dequant_row(type, src, n, out);
}

// copy_q4: blocks of the GGUF type of dtype dt as they are: Q4_0 {f16 d; u8 qs[16]}, Q4_1 {f16 d;
// f16 m; u8 qs[16]}, Q5_0 {f16 d; u8 qh[4]; u8 qs[16]}, Q5_1 {f16 d; f16 m; u8 qh[4]; u8 qs[16]}:
// qs into q4, the little-endian qh into qh, d and m to f32.
static void copy_q4(const uint8_t *src, size_t nb, plm_dtype dt, uint8_t *q4, uint32_t *qh,
                    float *d, float *m) {
    const int mins = plm_dtype_min(dt), high = plm_dtype_high(dt);
    const size_t hdr = 2 + 2 * (size_t)mins + 4 * (size_t)high;
    for (size_t b = 0; b < nb; b++, src += hdr + 16) {
        d[b] = f16_at(src);
        if (mins) m[b] = f16_at(src + 2);
        if (high) {
            const uint8_t *h = src + 2 + 2 * mins;
            qh[b] =
                (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
        }
        memcpy(q4 + b * 16, src + hdr, 16);
    }
}

// repack_k: nsb Q4_K (five: Q5_K) super-blocks as 8 Q4_1 (Q5_1) blocks each, exactly. gguf.c's
// dequant_q45_k gives element l of sub-block j as fl(fl(dl * q) - ml), dl = fl(d * sc), ml =
// fl(dmin * mn); dl and ml are exact (an f16's 11-bit significand times a 6-bit integer), and
// Q4_1's fl(fl(q * d') + m') with d' = dl, m' = -ml is the same float operations (x - y is x + (-y)
// in IEEE arithmetic, the sign of zero included), so the bits are the same. But for a NaN ml:
// a subtraction passes a NaN operand through with its sign (x86, arm64), and -ml would flip it, so
// m' keeps ml itself (qd + NaN is then that NaN, as qd - NaN). The nibbles go into Q4_x's layout
// (byte i: element i low, i + 16 high), Q5_K's bit j of qh[l] into bit l of the block's qh.
// With scm (a Q4_K/Q5_K matrix, matmul.h) the scales stay as they are instead: sc and mn into scm,
// d and dmin (to f32) into d and m, one each a super-block; the kernels compute the same d' and m'
// (plm_kq_scales).
static void repack_k(const uint8_t *src, size_t nsb, int five, uint8_t *q4, uint32_t *qh, float *d,
                     float *m, uint8_t *scm) {
    for (size_t sb = 0; sb < nsb; sb++, src += five ? 176 : 144) {
        const float D = f16_at(src), dmin = f16_at(src + 2);
        const uint8_t *h = src + 16, *qs = src + (five ? 48 : 16);
        if (scm) d[sb] = D, m[sb] = dmin;
        for (int j = 0; j < 8; j++) {
            const size_t b = sb * 8 + (size_t)j;
            const uint8_t *q = qs + 32 * (j / 2);
            const int sh = 4 * (j % 2);
            int sc, mn;
            plm_gguf_k4_scale(src + 4, j, &sc, &mn);
            const float ml = dmin * (float)mn;
            if (scm) {
                scm[16 * sb + (size_t)j] = (uint8_t)sc, scm[16 * sb + 8 + (size_t)j] = (uint8_t)mn;
            } else {
                d[b] = D * (float)sc;
                m[b] = isnan(ml) ? ml : -ml;
            }
            for (int l = 0; l < 16; l++)
                q4[b * 16 + l] = (uint8_t)((q[l] >> sh & 15) | (q[l + 16] >> sh & 15) << 4);
            if (!five) continue;
            qh[b] = 0;
            for (int l = 0; l < 32; l++) qh[b] |= (uint32_t)(h[l] >> j & 1) << l;
        }
    }
}

void plm_quant_row_mat(plm_isa isa, uint32_t type, const uint8_t *src, const plm_mat *w, size_t r,
                       float *tmp) {
    const size_t n = (size_t)w->cols, nb = n / PLM_QK;
    const uint32_t want = w->dtype == PLM_DTYPE_Q4_0   ? PLM_GGML_Q4_0
                          : w->dtype == PLM_DTYPE_Q4_1 ? PLM_GGML_Q4_1
                          : w->dtype == PLM_DTYPE_Q5_0 ? PLM_GGML_Q5_0
                          : w->dtype == PLM_DTYPE_Q5_1 ? PLM_GGML_Q5_1
                          : w->dtype == PLM_DTYPE_Q4_K ? PLM_GGML_Q4_K
                          : w->dtype == PLM_DTYPE_Q5_K ? PLM_GGML_Q5_K
                                                       : PLM_GGML_Q6_K;
    uint8_t *q4 = w->q4 ? w->q4 + r * n / 2 : NULL;
    uint32_t *qh = w->qh ? w->qh + r * nb : NULL;
    float *m = w->m ? w->m + r * nb : NULL;
    if ((type == PLM_GGML_Q4_K && want == PLM_GGML_Q4_1) ||
        (type == PLM_GGML_Q5_K && want == PLM_GGML_Q5_1)) {
        repack_k(src, n / 256, type == PLM_GGML_Q5_K, q4, qh, w->d + r * nb, m, NULL);
        return;
    }
    if (type != want) { // to f32, then llama.cpp's reference quantizer into tmp's second half
        uint8_t *blocks = (uint8_t *)(tmp + n);
        plm_quant_row_f32(isa, type, src, n, tmp);
        plm_quantize_row(want, tmp, n, blocks);
        src = blocks;
    }
    if (plm_dtype_kquant(w->dtype)) { // Q4_K, Q5_K: their scales kept
        const size_t nsb = n / PLM_QK_K;
        repack_k(src, nsb, want == PLM_GGML_Q5_K, q4, qh, w->d + r * nsb, w->m + r * nsb,
                 w->scm + r * nb * 2);
        return;
    }
    if (want != PLM_GGML_Q6_K) {
        copy_q4(src, nb, w->dtype, q4, qh, w->d + r * nb, m);
        return;
    }
    const size_t nsb = n / PLM_QK_K; // Q6_K: {ql, qh, scales; f16 d} a super-block
    for (size_t b = 0; b < nsb; b++, src += 210) {
        memcpy(w->q6 + (r * nsb + b) * PLM_Q6K_QS, src, PLM_Q6K_QS);
        w->d[r * nsb + b] = f16_at(src + PLM_Q6K_QS);
    }
}
