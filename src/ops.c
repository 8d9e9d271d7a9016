// ops.c: the layers of LlamaForCausalLM (HF transformers modeling_llama.py: LlamaRMSNorm,
// LlamaRotaryEmbedding + apply_rotary_pos_emb, eager attention with repeat_kv, LlamaMLP) and what
// Gemma 3 changes (a sliding window and its own scale in the attention, Gemma3MLP's GeGLU) as C with
// shape comments. These are both the reference and the implementation: the matmuls, where most of
// the time goes, live in matmul.c.
//
// Paths: the loops are written once with GCC/clang vector extensions (element-wise operations and
// sums in a fixed lane order) and compiled three times on x86-64: for AVX-512, for AVX2 and for the
// baseline; each public function takes the copy of the active path (cpu.h). Without FMA
// contraction (-std=c11 sets -ffp-contract=off) every copy does the same float operations in the
// same order, so every path gives the same bits (tests/test_ops.c checks it). exp is one
// implementation, plm_exp8 / plm_exp1, for every lane, tail and path.
#include "ops.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "cpu.h"

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define PLM_X86_DISPATCH 1
#define PLM_AVX512       __attribute__((target("avx2,avx512f,avx512vl,avx512bw,f16c")))
#define PLM_AVX2         __attribute__((target("avx2,f16c"))) // PLM_ISA_AVX2 includes F16C
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif
// The vector helpers pass vectors by value, which GCC and clang warn changes the ABI between
// targets: they are always inlined, so there is no call to disagree about.
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpsabi"
#elif defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

// Vectors of 8 and 4 floats (one ymm with AVX2 and AVX-512, two xmm or v128 on the baseline and
// wasm). Element-wise, so every build rounds the same way.
typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef double v8d __attribute__((vector_size(64)));
typedef uint32_t v8u __attribute__((vector_size(32)));
typedef uint16_t v8h __attribute__((vector_size(16)));

PLM_INLINE v8 load8(const float *p) {
    v8 v;
    memcpy(&v, p, sizeof v);
    return v;
}
PLM_INLINE void store8(float *p, v8 v) {
    memcpy(p, &v, sizeof v);
}
// select8: a where mask (all ones), else b
PLM_INLINE v8 select8(v8i mask, v8 a, v8 b) {
    return (v8)(((v8i)a & mask) | ((v8i)b & ~mask));
}
PLM_INLINE v8u select8u(v8i mask, v8u a, v8u b) {
    return (a & (v8u)mask) | (b & ~(v8u)mask);
}

// ---- exp ----

// plm_exp8 / plm_exp1: e^x on 8 lanes / one float, the same float operations in the same order
// (libm's expf costs ~10x and does not vectorize; it was most of SwiGLU, the softmax and the
// cross-entropy). Cephes expf: x = n ln2 + r with n = round(x log2 e) (the 1.5 * 2^23 trick rounds
// to nearest even), ln2 in two parts (n * EXP_C1 is exact), e^r by a degree-5 polynomial (~1 ulp),
// times 2^n built in the exponent bits. Below EXP_LO (e^x under the smallest normal float) the
// result is 0; x is clamped at EXP_HI (2^127 * e^0.35 stays finite); NaN stays NaN.
#define EXP_LO    -87.3f
#define EXP_HI    88.3f
#define EXP_LOG2E 1.44269504088896341f
#define EXP_ROUND 12582912.0f // 1.5 * 2^23
#define EXP_C1    0.693359375f
#define EXP_C2    -2.12194440e-4f
#define EXP_P0    1.9875691500e-4f
#define EXP_P1    1.3981999507e-3f
#define EXP_P2    8.3334519073e-3f
#define EXP_P3    4.1665795894e-2f
#define EXP_P4    1.6666665459e-1f
#define EXP_P5    5.0000001201e-1f

PLM_INLINE v8 plm_exp8(v8 x) {
    const v8i under = x < EXP_LO;
    x = select8(under, (v8){0} + EXP_LO, x);
    x = select8(x > EXP_HI, (v8){0} + EXP_HI, x);
    v8 n = x * EXP_LOG2E + EXP_ROUND;
    n = n - EXP_ROUND;
    v8 r = x - n * EXP_C1;
    r = r - n * EXP_C2;
    const v8 z = r * r;
    v8 p = EXP_P0 * r + EXP_P1;
    p = p * r + EXP_P2;
    p = p * r + EXP_P3;
    p = p * r + EXP_P4;
    p = p * r + EXP_P5;
    p = p * z + r + 1.0f;
    const v8i e = (__builtin_convertvector(n, v8i) + 127) << 23;
    const v8 y = p * (v8)e;
    return (v8)((v8i)y & ~under);
}

PLM_INLINE float plm_exp1(float x) {
    const int under = x < EXP_LO;
    x = x < EXP_LO ? EXP_LO : x;
    x = x > EXP_HI ? EXP_HI : x;
    float n = x * EXP_LOG2E + EXP_ROUND;
    n = n - EXP_ROUND;
    float r = x - n * EXP_C1;
    r = r - n * EXP_C2;
    const float z = r * r;
    float p = EXP_P0 * r + EXP_P1;
    p = p * r + EXP_P2;
    p = p * r + EXP_P3;
    p = p * r + EXP_P4;
    p = p * r + EXP_P5;
    p = p * z + r + 1.0f;
    n = n == n ? n : 0.0f; // NaN: p is NaN already, and (int32_t)NaN is undefined in C
    const uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float s;
    memcpy(&s, &bits, sizeof s);
    return under ? 0.0f : p * s;
}

// sum8: the lanes of v in a fixed tree ((0 + 4) + (2 + 6)) + ((1 + 5) + (3 + 7)).
PLM_INLINE float sum8(v8 v) {
    const v4 a =
        __builtin_shufflevector(v, v, 0, 1, 2, 3) + __builtin_shufflevector(v, v, 4, 5, 6, 7);
    return (a[0] + a[2]) + (a[1] + a[3]);
}

// ---- keys and values: f32 or IEEE half ----

// Attention reads its keys and values through a kv_elems: f32 as they are, or IEEE half (a KV
// cache of PLM_DTYPE_F16) converted as they load by the path's converter: F16C's vcvtph2ps on
// AVX2 and AVX-512, NEON's fcvtl on arm64, integer bit operations elsewhere (the baseline, wasm).
// Every half is exactly a float, so attention over F16 values gives the bits of attention over
// the same values in f32, on every path.
typedef struct {
    int f16;                                       // elements are IEEE half (uint16_t), else float
    void (*load8)(v8 *x, const void *p, size_t i); // x = elements i .. i+7 of p as floats
} kv_elems;

// kv_load8: elements i .. i+7 of p (of kind e) as floats. (The loaders write through a pointer:
// GCC may keep an always-inlined loader's unused body, and a body returning a 32-byte vector on
// the baseline is a -Wpsabi error that no pragma silences.)
PLM_INLINE v8 kv_load8(kv_elems e, const void *p, size_t i) {
    v8 x;
    e.load8(&x, p, i);
    return x;
}

// kv_prefetch: the lines of the n elements at element at of p (of kind e), toward L1
PLM_INLINE void kv_prefetch(kv_elems e, const void *p, size_t at, int n) {
    const size_t size = e.f16 ? 2 : 4;
    const char *b = (const char *)p + at * size;
    for (size_t i = 0; i < (size_t)n * size; i += 64) __builtin_prefetch(b + i);
}

PLM_INLINE void load8_f32(v8 *x, const void *p, size_t i) {
    *x = load8((const float *)p + i);
}
#define KV_F32 ((kv_elems){0, load8_f32})

#if defined(__aarch64__)
// load8_f16: fcvtl, 4 halves a step
PLM_INLINE void load8_f16(v8 *x, const void *p, size_t i) {
    const uint16_t *h = (const uint16_t *)p + i;
    const float32x4_t lo = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h)));
    const float32x4_t hi = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h + 4)));
    memcpy(x, &lo, sizeof lo);
    memcpy((char *)x + sizeof lo, &hi, sizeof hi);
}
#else
// load8_f16: matmul_wasm.c's f16_wasm on 8 lanes: the exponent and mantissa moved into f32's
// places (<< 13) and multiplied by 2^112, which rebases the exponent (15 -> 127) and turns a
// subnormal half into its normal f32 exactly; inf and NaN (exponent 31) get exponent 255 and keep
// their mantissa; the sign goes back on last.
PLM_INLINE void load8_f16(v8 *out, const void *p, size_t i) {
    v8h h;
    memcpy(&h, (const uint16_t *)p + i, sizeof h);
    const v8u x = __builtin_convertvector(h, v8u);
    const v8u sign = (x & 0x8000) << 16, em = (x & 0x7fff) << 13;
    const v8 finite = (v8)em * 0x1p112f, special = (v8)(em | 0x7f800000);
    *out = (v8)(sign | (v8u)select8(em > 0x0f7fe000, special, finite));
}
#endif
#define KV_F16 ((kv_elems){1, load8_f16})

#ifdef PLM_X86_DISPATCH
// load8_f16c: vcvtph2ps (the AVX2 and AVX-512 copies)
__attribute__((target("f16c"))) PLM_INLINE void load8_f16c(v8 *x, const void *p, size_t i) {
    *x = (v8)_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i)));
}
#define KV_F16C ((kv_elems){1, load8_f16c})
#endif

// load1: element i of p as a float (the tails)
PLM_INLINE float load1(kv_elems e, const void *p, size_t i) {
    return e.f16 ? plm_f16_to_f32(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}

// to_f16: n floats x as IEEE half bits into h, plm_f32_to_f16's bits (the KV cache's stores), 8 at
// a time in integer operations: a normal half's exponent rebased (127 -> 15) and the 13 dropped
// bits rounded to nearest even (adding 0xfff, or 0x1000 when the kept part is odd; a carry goes
// into the exponent); below 2^-14 a subnormal, a + 0.5 in f32 rounding a * 2^24 to nearest even
// into the low bits; from 65520 on inf, NaN 0x7e00, the sign put back on last.
PLM_INLINE void to_f16(uint16_t *h, const float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const v8 f = load8(x + i);
        const v8u u = (v8u)f, a = u & 0x7fffffff, sign = (u >> 16) & 0x8000;
        const v8u normal = (a - (112u << 23) + 0xfff + ((a >> 13) & 1)) >> 13;
        const v8u sub = (v8u)((v8)a + 0.5f) - 0x3f000000;
        v8u r = select8u(a < 0x38800000, sub, normal);
        r = select8u(a >= 0x477ff000, (v8u){0} + 0x7c00, r);
        r = select8u(a > 0x7f800000, (v8u){0} + 0x7e00, r);
        const v8h out = __builtin_convertvector(sign | r, v8h);
        memcpy(h + i, &out, sizeof out);
    }
    for (; i < n; i++) h[i] = plm_f32_to_f16(x[i]);
}

// ---- embedding ----

void plm_embedding_forward(float *out, const int32_t *ids, const plm_mat *w, int T) {
    for (int t = 0; t < T; t++) plm_mat_row(out + (size_t)t * w->cols, w, ids[t]);
}

// ---- vector helpers ----

// The 16-lane sums below are kept as two 8-float halves: one ymm each with AVX2 and AVX-512 (GCC
// lowers 64-byte vectors on AVX2 through the stack), the same operations lane for lane.

// dot: sum of x[i] * y[i] as 16 lane sums, added in a fixed tree (lane j + 8, then + 4, + 2, + 1),
// then the tail: every build gives the same bits
// sum16: the sum of 16 lanes held as two halves: lo + hi, then sum8's tree
PLM_INLINE float sum16(v8 lo, v8 hi) {
    return sum8(lo + hi);
}

// dot_kv: dot with y's n elements from y0, of kind e
PLM_INLINE float dot_kv(const float *x, const void *y, size_t y0, int n, kv_elems e) {
    v8 lo = {0}, hi = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        lo += load8(x + i) * kv_load8(e, y, y0 + (size_t)i);
        hi += load8(x + i + 8) * kv_load8(e, y, y0 + (size_t)i + 8);
    }
    float s = sum16(lo, hi);
    for (; i < n; i++) s += x[i] * load1(e, y, y0 + (size_t)i);
    return s;
}

PLM_INLINE float dot(const float *x, const float *y, int n) {
    return dot_kv(x, y, 0, n, KV_F32);
}

// dot3: sum of (x[i] * y[i]) * z[i], in dot's lanes and tree
PLM_INLINE float dot3(const float *x, const float *y, const float *z, int n) {
    v8 lo = {0}, hi = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        lo += load8(x + i) * load8(y + i) * load8(z + i);
        hi += load8(x + i + 8) * load8(y + i + 8) * load8(z + i + 8);
    }
    float s = sum16(lo, hi);
    for (; i < n; i++) s += x[i] * y[i] * z[i];
    return s;
}

// axpy_kv: y += a * x (x's n elements from x0, of kind e), 8 at a time (element-wise: the same
// bits as one at a time)
PLM_INLINE void axpy_kv(float *restrict y, float a, const void *restrict x, size_t x0, int n,
                        kv_elems e) {
    int i = 0;
    for (; i + 8 <= n; i += 8) store8(y + i, load8(y + i) + a * kv_load8(e, x, x0 + (size_t)i));
    for (; i < n; i++) y[i] += a * load1(e, x, x0 + (size_t)i);
}

// axpy: y += a * x over f32
PLM_INLINE void axpy(float *restrict y, float a, const float *restrict x, int n) {
    axpy_kv(y, a, x, 0, n, KV_F32);
}

// ---- rmsnorm ----

PLM_INLINE void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int T,
                                int C, float eps) {
    for (int t = 0; t < T; t++) {
        const float *x = inp + (size_t)t * C;
        float *o = out + (size_t)t * C;
        const float r = 1.0f / sqrtf(dot(x, x, C) / (float)C + eps);
        // HF: weight * (x * rstd), in that order of rounding
        int c = 0;
        for (; c + 8 <= C; c += 8) store8(o + c, load8(w + c) * (load8(x + c) * r));
        for (; c < C; c++) o[c] = w[c] * (x[c] * r);
        if (rstd) rstd[t] = r;
    }
}

PLM_INLINE void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                                 const float *w, const float *rstd, int T, int C) {
    for (int t = 0; t < T; t++) {
        const float *x = inp + (size_t)t * C, *dy = dout + (size_t)t * C;
        float *dx = dinp + (size_t)t * C;
        const float r = rstd[t];
        const float k = dot3(w, dy, x, C) * r * r * r / (float)C; // dot = sum_j w_j dy_j x_j
        int c = 0;
        for (; c + 8 <= C; c += 8) { // term 1: through x directly; term 2: through rstd
            const v8 xv = load8(x + c), dyv = load8(dy + c);
            store8(dx + c, load8(dx + c) + (r * load8(w + c) * dyv - k * xv));
            if (dw) store8(dw + c, load8(dw + c) + dyv * xv * r);
        }
        for (; c < C; c++) {
            dx[c] += r * w[c] * dy[c] - k * x[c];
            if (dw) dw[c] += dy[c] * x[c] * r;
        }
    }
}

// ---- rope ----

void plm_rope_table(float *cos_t, float *sin_t, int n_pos, int D, float theta,
                    const float *divisors) {
    int half = D / 2;
    for (int i = 0; i < half; i++) {
        float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)D);
        if (divisors) inv_freq /= divisors[i];
        for (int p = 0; p < n_pos; p++) {
            float angle = (float)p * inv_freq;
            cos_t[(size_t)p * half + i] = (float)cos((double)angle);
            sin_t[(size_t)p * half + i] = (float)sin((double)angle);
        }
    }
}

// in f32 and in torch's order of operations (a Python number over a tensor is the tensor's
// reciprocal times the number)
void plm_rope_divisors(float *divisors, int D, float theta, const plm_rope_scaling *s) {
    if (s->linear) {
        for (int i = 0; i < D / 2; i++) divisors[i] = s->factor;
        return;
    }
    const float orig = (float)s->original_max_position_embeddings;
    const float low_wavelen =
        (float)((double)s->original_max_position_embeddings / (double)s->low_freq_factor);
    const float high_wavelen =
        (float)((double)s->original_max_position_embeddings / (double)s->high_freq_factor);
    for (int i = 0; i < D / 2; i++) {
        const float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)D);
        const float wavelen = (1.0f / inv_freq) * (float)(2.0 * 3.14159265358979323846);
        if (wavelen < high_wavelen) divisors[i] = 1.0f;          // high frequencies: kept
        else if (wavelen > low_wavelen) divisors[i] = s->factor; // low: slowed by factor
        else {
            const float smooth = ((1.0f / wavelen) * orig - s->low_freq_factor) /
                                 (float)((double)s->high_freq_factor - (double)s->low_freq_factor);
            divisors[i] = 1.0f / ((1.0f - smooth) / s->factor + smooth);
        }
    }
}

// rotate: each (i, i + D/2) pair of x (T, NH*D) by sign * angle(pos0 + t, i)
PLM_INLINE void rotate(float *x, const float *cos_t, const float *sin_t, float sign, int pos0,
                       int T, int NH, int D) {
    int half = D / 2;
    for (int t = 0; t < T; t++) {
        const float *c = cos_t + (size_t)(pos0 + t) * half;
        const float *s = sin_t + (size_t)(pos0 + t) * half;
        for (int h = 0; h < NH; h++) {
            float *xh = x + ((size_t)t * NH + h) * D;
            int i = 0;
            for (; i + 8 <= half; i += 8) {
                const v8 x1 = load8(xh + i), x2 = load8(xh + i + half), ci = load8(c + i);
                const v8 si = sign * load8(s + i);
                store8(xh + i, x1 * ci - x2 * si);
                store8(xh + i + half, x2 * ci + x1 * si);
            }
            for (; i < half; i++) {
                float x1 = xh[i], x2 = xh[i + half], si = sign * s[i];
                xh[i] = x1 * c[i] - x2 * si;
                xh[i + half] = x2 * c[i] + x1 * si;
            }
        }
    }
}

// ---- attention ----

// softmax_inplace: a[0 .. n) = exp(a - max) / sum, the sum in 8 lanes then the tail
PLM_INLINE void softmax_inplace(float *a, int n) {
    // the max in 8 lanes, then across them and over the tail (max is exact in any order; only a
    // zero's sign could differ, and exp(a - mx) is the same for either)
    v8 m8 = {0};
    m8 -= INFINITY;
    int s = 0;
    for (; s + 8 <= n; s += 8) {
        const v8 x = load8(a + s);
        m8 = select8(x > m8, x, m8);
    }
    float mx = -INFINITY;
    for (int i = 0; i < 8; i++) mx = m8[i] > mx ? m8[i] : mx;
    for (; s < n; s++) mx = a[s] > mx ? a[s] : mx;
    v8 acc = {0};
    s = 0;
    for (; s + 8 <= n; s += 8) {
        const v8 e = plm_exp8(load8(a + s) - mx);
        store8(a + s, e);
        acc += e;
    }
    float sum = sum8(acc);
    for (; s < n; s++) {
        a[s] = plm_exp1(a[s] - mx);
        sum += a[s];
    }
    const float inv = 1.0f / sum;
    for (s = 0; s + 8 <= n; s += 8) store8(a + s, load8(a + s) * inv);
    for (; s < n; s++) a[s] *= inv;
}

// weighted_sum: o (D) = sum over s < n of a[s] * v[s * vstride ..] (v's elements from v0, of kind
// e), from +0 in s order (axpy's operations). For D a multiple of 8 up to 128 the sums stay in
// registers (with D a constant: attention's callers specialize D = 64) instead of a load and a
// store of o for every key.
PLM_INLINE void weighted_sum(float *o, const float *a, const void *v, size_t v0, size_t vstride,
                             int n, int D, kv_elems e) {
    if (D % 8 == 0 && D <= 128) {
        v8 acc[16];
        for (int i = 0; i < D / 8; i++) acc[i] = (v8){0};
        for (int s = 0; s < n; s++)
            for (int i = 0; i < D / 8; i++)
                acc[i] += a[s] * kv_load8(e, v, v0 + s * vstride + 8 * (size_t)i);
        for (int i = 0; i < D / 8; i++) store8(o + 8 * i, acc[i]);
        return;
    }
    memset(o, 0, (size_t)D * sizeof *o);
    for (int s = 0; s < n; s++) axpy_kv(o, a[s], v, v0 + s * vstride, D, e);
}

// ATT_HEADS: query heads that share a KV head (GQA) computed together, at most: each key and value
// row is read once for all of them (SmolLM2: 3 of its 9 heads per KV head)
#define ATT_HEADS 4

// key_halves: r[j] (j < m) = lo + hi of dot's 16 lane sums of query head j (q (m, D)) with the
// key at element at (of kind e): sum8(r[j]) is their dot (sum16)
PLM_INLINE void key_halves(v8 *r, const float *q, const void *k, size_t at, int D, const int m,
                           kv_elems e) {
    v8 lo[ATT_HEADS], hi[ATT_HEADS];
    UNROLL
    for (int j = 0; j < m; j++) lo[j] = hi[j] = (v8){0};
    UNROLL
    for (int i = 0; i < D; i += 16) {
        const v8 x0 = kv_load8(e, k, at + (size_t)i), x1 = kv_load8(e, k, at + (size_t)i + 8);
        UNROLL
        for (int j = 0; j < m; j++) {
            lo[j] += load8(q + j * D + i) * x0;
            hi[j] += load8(q + j * D + i + 8) * x1;
        }
    }
    UNROLL
    for (int j = 0; j < m; j++) r[j] = lo[j] + hi[j];
}

// fold_pair: sum8's first step (lane i + lane i+4) of x in lanes 0-3 and of y in lanes 4-7
PLM_INLINE v8 fold_pair(v8 x, v8 y) {
    return __builtin_shufflevector(x, y, 0, 1, 2, 3, 8, 9, 10, 11) +
           __builtin_shufflevector(x, y, 4, 5, 6, 7, 12, 13, 14, 15);
}

// sum8x8: sum8 of 8 vectors at once, lane k the sum of vector k, from u[p] = fold_pair(vector 2p,
// vector 2p+1): the same additions as sum8's tree (a0 + a2, a1 + a3, then their sum), done with
// shuffles within each half (one instruction on every path) and one final reorder
PLM_INLINE v8 sum8x8(const v8 u[4]) {
    v8 w[2]; // lanes: (a0+a2, a1+a3) of vectors 4p, 4p+2 | of 4p+1, 4p+3
    UNROLL
    for (int p = 0; p < 2; p++)
        w[p] = __builtin_shufflevector(u[2 * p], u[2 * p + 1], 0, 1, 8, 9, 4, 5, 12, 13) +
               __builtin_shufflevector(u[2 * p], u[2 * p + 1], 2, 3, 10, 11, 6, 7, 14, 15);
    // vectors 0, 2, 4, 6 | 1, 3, 5, 7
    const v8 t = __builtin_shufflevector(w[0], w[1], 0, 2, 8, 10, 4, 6, 12, 14) +
                 __builtin_shufflevector(w[0], w[1], 1, 3, 9, 11, 5, 7, 13, 15);
    return __builtin_shufflevector(t, t, 0, 4, 1, 5, 2, 6, 3, 7);
}

// attention_heads: m (a constant, <= ATT_HEADS) query heads q (m, D) of one token that share the
// keys k and values v (n rows from element kv0, stride kvs, elements of kind e): scores a (m
// rows, stride as) = q k^T * scale, their softmax, out (m, D) = a v. Per head the operations of
// one head at a time (dot, softmax_inplace, weighted_sum's sums in s order), so the bits do not
// depend on m; D is a multiple of 32. keys8 (a constant): the scores of 8 keys at a time, their
// sums reduced together (sum8x8: the same bits as one at a time).
PLM_INLINE void attention_heads(float *out, float *a, size_t as, const float *q, const void *k,
                                const void *v, size_t kv0, size_t kvs, int n, int D, float scale,
                                const int m, kv_elems e, const int keys8) {
    int key = 0;
    // 8 keys: their sums transposed and reduced together; the next block's keys and this block's
    // values are prefetched (a server step's caches, ~30 MB for 8 sequences, come from L3 or DRAM:
    // 8 sequences of 32-160 positions through plm_batch, 2 threads, Intel Xeon: 11.4-12.5 ->
    // 10.5-11.7 ms a step; 16 keys ahead instead of 8: no better)
    for (; keys8 && key + 8 <= n; key += 8) {
        for (int p = key + 8; p < key + 16 && p < n; p++) kv_prefetch(e, k, kv0 + p * kvs, D);
        for (int p = key; p < key + 8; p++) kv_prefetch(e, v, kv0 + p * kvs, D);
        v8 u[ATT_HEADS][4];
        for (int p = 0; p < 4; p++) {
            v8 r0[ATT_HEADS], r1[ATT_HEADS];
            key_halves(r0, q, k, kv0 + (key + 2 * p) * kvs, D, m, e);
            key_halves(r1, q, k, kv0 + (key + 2 * p + 1) * kvs, D, m, e);
            UNROLL
            for (int j = 0; j < m; j++) u[j][p] = fold_pair(r0[j], r1[j]);
        }
        UNROLL
        for (int j = 0; j < m; j++) store8(a + j * as + key, sum8x8(u[j]) * scale);
    }
    for (; key < n; key++) {
        v8 r[ATT_HEADS];
        key_halves(r, q, k, kv0 + key * kvs, D, m, e);
        UNROLL
        for (int j = 0; j < m; j++) a[j * as + key] = sum8(r[j]) * scale;
    }
    for (int j = 0; j < m; j++) softmax_inplace(a + j * as, n);
    for (int c = 0; c < D; c += 32) { // 32 columns at a time: m x 4 accumulators in registers
        v8 acc[ATT_HEADS][4];
        UNROLL
        for (int j = 0; j < m; j++) {
            UNROLL
            for (int i = 0; i < 4; i++) acc[j][i] = (v8){0};
        }
        for (int s = 0; s < n; s++) {
            v8 x[4];
            UNROLL
            for (int i = 0; i < 4; i++) x[i] = kv_load8(e, v, kv0 + s * kvs + (size_t)(c + 8 * i));
            UNROLL
            for (int j = 0; j < m; j++) {
                UNROLL
                for (int i = 0; i < 4; i++) acc[j][i] += a[j * as + s] * x[i];
            }
        }
        UNROLL
        for (int j = 0; j < m; j++) {
            UNROLL
            for (int i = 0; i < 4; i++) store8(out + j * D + c + 8 * i, acc[j][i]);
        }
    }
}

PLM_INLINE void attention_forward(float *out, float *att, int att_stride, const float *q,
                                  const void *k, const void *v, size_t kvp, size_t kvh, int T,
                                  int P, int H, int K, int D, float scale, int window, int p0,
                                  int i0, int i1, kv_elems e, const int keys8) {
    assert(i0 >= 0 && i1 <= T * H && H % K == 0 &&
           (p0 == 0 || (window > 0 && p0 <= P - window + 1)));
    int group = H / K; // query heads per KV head (repeat_kv)
    for (int i = i0; i < i1;) {
        int t = i / H, h = i % H, kh = h / group;
        int n = P + t + 1; // causal: keys 0 .. P+t
        // sliding window: keys s0 .. P+t; the probabilities of the keys before are 0
        const int s0 = window > 0 && n > window ? n - window : 0;
        const float *qt = q + ((size_t)t * H + h) * D;
        float *a = att + ((size_t)t * H + h) * att_stride;
        float *o = out + ((size_t)t * H + h) * D;
        const size_t kv0 = (size_t)kh * kvh + (size_t)(s0 - p0) * kvp; // key s0's first element
        const size_t kvs = kvp, as = (size_t)att_stride;
        // this thread's next heads of the same token and KV head (the split may cut a group)
        int m = 1;
        while (D % 32 == 0 && m < ATT_HEADS && i + m < i1 && (h + m) / group == kh) m++;
        for (int j = 0; j < m; j++) memset(a + j * as, 0, (size_t)s0 * sizeof *a);
        a += s0, n -= s0;
        switch (D % 32 ? 0 : m) { // attention_heads wants D in chunks of 32
        case 4: attention_heads(o, a, as, qt, k, v, kv0, kvs, n, D, scale, 4, e, keys8); break;
        case 3: attention_heads(o, a, as, qt, k, v, kv0, kvs, n, D, scale, 3, e, keys8); break;
        case 2: attention_heads(o, a, as, qt, k, v, kv0, kvs, n, D, scale, 2, e, keys8); break;
        case 1: attention_heads(o, a, as, qt, k, v, kv0, kvs, n, D, scale, 1, e, keys8); break;
        default:
            for (int s = 0; s < n; s++) a[s] = dot_kv(qt, k, kv0 + s * kvs, D, e) * scale;
            softmax_inplace(a, n);
            weighted_sum(o, a, v, kv0, kvs, n, D, e); // out = att @ v
        }
        i += m;
    }
}

PLM_INLINE void attention_backward(float *dq, float *dk, float *dv, const float *dout,
                                   const float *att, int att_stride, const float *q, const float *k,
                                   const float *v, int T, int H, int K, int D, float scale, int k0,
                                   int k1) {
    int group = H / K;
    float *da = malloc((size_t)T * sizeof *da); // dout . v_s of one (t, h), computed once
    for (int kh = k0; kh < k1; kh++)
        for (int h = kh * group; h < (kh + 1) * group; h++)
            for (int t = 0; t < T; t++) {
                const float *a = att + ((size_t)t * H + h) * att_stride;
                const float *go = dout + ((size_t)t * H + h) * D;
                const float *qt = q + ((size_t)t * H + h) * D;
                float *gq = dq + ((size_t)t * H + h) * D;
                // da_s = dout . v_s, and sum_s a_s da_s for the softmax backward
                float dsum = 0.0f;
                for (int s = 0; s <= t; s++) {
                    const float d = dot(go, v + ((size_t)s * K + kh) * D, D);
                    if (da) da[s] = d;
                    dsum += a[s] * d;
                }
                for (int s = 0; s <= t; s++) {
                    const float *vs = v + ((size_t)s * K + kh) * D;
                    const float *ks = k + ((size_t)s * K + kh) * D;
                    float *gk = dk + ((size_t)s * K + kh) * D;
                    float *gv = dv + ((size_t)s * K + kh) * D;
                    const float d = da ? da[s] : dot(go, vs, D);
                    float ds = a[s] * (d - dsum) * scale; // softmax backward, then the scale
                    // (a key outside a sliding window has a[s] = 0: no gradient)
                    axpy(gv, a[s], go, D); // out = sum_s a_s v_s
                    axpy(gq, ds, ks, D);   // score_s = q . k_s
                    axpy(gk, ds, qt, D);
                }
            }
    free(da);
}

// ---- mlp ----

PLM_INLINE void swiglu_forward(float *out, const float *gate, const float *up, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const v8 g = load8(gate + i);
        store8(out + i, g / (1.0f + plm_exp8(-g)) * load8(up + i));
    }
    for (; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + plm_exp1(-g)) * up[i];
    }
}

PLM_INLINE void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                                const float *up, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) { // silu'(g) = s (1 + g (1 - s))
        const v8 g = load8(gate + i), sig = 1.0f / (1.0f + plm_exp8(-g)), dy = load8(dout + i);
        store8(dgate + i, load8(dgate + i) + dy * load8(up + i) * sig * (1.0f + g * (1.0f - sig)));
        store8(dup + i, load8(dup + i) + dy * (g * sig));
    }
    for (; i < n; i++) {
        float g = gate[i], sig = 1.0f / (1.0f + plm_exp1(-g));
        float silu = g * sig;
        dgate[i] += dout[i] * up[i] * sig * (1.0f + g * (1.0f - sig));
        dup[i] += dout[i] * silu;
    }
}

// GeGLU (Gemma3MLP, torch's gelu approximate='tanh'): gelu(g) = 0.5 g (1 + tanh(u)), u =
// sqrt(2/pi) (g + 0.044715 g^3) in torch's order; tanh(u) = 1 - 2 / (e^(2u) + 1) on plm_exp8, so
// every path gives the same bits.
#define GELU_BETA  0.7978845608028654f // sqrt(2 / pi)
#define GELU_KAPPA 0.044715f

PLM_INLINE v8 tanh8(v8 u) {
    return 1.0f - 2.0f / (plm_exp8(2.0f * u) + 1.0f);
}
PLM_INLINE float tanh1(float u) {
    return 1.0f - 2.0f / (plm_exp1(2.0f * u) + 1.0f);
}

PLM_INLINE void geglu_forward(float *out, const float *gate, const float *up, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const v8 g = load8(gate + i);
        const v8 t = tanh8(GELU_BETA * (g + GELU_KAPPA * (g * g * g)));
        store8(out + i, 0.5f * g * (1.0f + t) * load8(up + i));
    }
    for (; i < n; i++) {
        const float g = gate[i], t = tanh1(GELU_BETA * (g + GELU_KAPPA * (g * g * g)));
        out[i] = 0.5f * g * (1.0f + t) * up[i];
    }
}

PLM_INLINE void geglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                               const float *up, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) { // gelu'(g) = 0.5 (1 + t) + 0.5 g (1 - t^2) u'(g)
        const v8 g = load8(gate + i), dy = load8(dout + i);
        const v8 t = tanh8(GELU_BETA * (g + GELU_KAPPA * (g * g * g)));
        const v8 du = GELU_BETA * (1.0f + 3.0f * GELU_KAPPA * (g * g));
        const v8 dgelu = 0.5f * (1.0f + t) + 0.5f * g * (1.0f - t * t) * du;
        store8(dgate + i, load8(dgate + i) + dy * load8(up + i) * dgelu);
        store8(dup + i, load8(dup + i) + dy * (0.5f * g * (1.0f + t)));
    }
    for (; i < n; i++) {
        const float g = gate[i], dy = dout[i];
        const float t = tanh1(GELU_BETA * (g + GELU_KAPPA * (g * g * g)));
        const float du = GELU_BETA * (1.0f + 3.0f * GELU_KAPPA * (g * g));
        const float dgelu = 0.5f * (1.0f + t) + 0.5f * g * (1.0f - t * t) * du;
        dgate[i] += dy * up[i] * dgelu;
        dup[i] += dy * (0.5f * g * (1.0f + t));
    }
}

// ---- cross-entropy ----

// Unlikelihood (Welleck et al. 2019, token level): a row with an avoided token c (avoid[t] >= 0)
// adds weight * -log(1 - p_c) to its loss, whose gradient wrt the logits is
// weight * p_c / (1 - p_c) * (onehot(c) - p). 1 - p_c is computed as (sum - e_c) / sum (no
// cancellation when p_c is small) and clamped: q = max(1 - p_c, UL_MIN_Q), in the loss and in the
// gradient alike, so a row whose p_c rounds to 1 gives a loss of at most weight * 13.8 and a
// gradient factor of at most 1e6, never inf or NaN. Rows without one compute exactly what plain
// cross-entropy does (the factor k below is then exactly 1).
#define UL_MIN_Q 1e-6
PLM_INLINE double crossentropy(float *dlogits, const float *logits, const int32_t *targets,
                               const int32_t *avoid, float weight, int T, int V, float grad_scale,
                               int *n_counted) {
    double loss = 0.0;
    int n = 0;
    for (int t = 0; t < T; t++) {
        const float *l = logits + (size_t)t * V;
        float *g = dlogits + (size_t)t * V;
        int y = targets[t];
        if (y < 0) {
            memset(g, 0, (size_t)V * sizeof *g);
            continue;
        }
        float mx = -INFINITY;
        for (int i = 0; i < V; i++) mx = l[i] > mx ? l[i] : mx;
        // the sum in double, 8 lanes then a fixed tree, then the tail
        v8d acc = {0};
        int i = 0;
        for (; i + 8 <= V; i += 8) acc += __builtin_convertvector(plm_exp8(load8(l + i) - mx), v8d);
        double sum =
            ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
        for (; i < V; i++) sum += (double)plm_exp1(l[i] - mx);
        float ly = l[y];
        loss += log(sum) - (double)(ly - mx);
        int c = avoid && weight > 0.0f ? avoid[t] : -1;
        double k = 1.0, u = 0.0; // softmax factor and the avoided token's: p * k + u onehot(c)
        if (c >= 0 && c < V) {
            double ec = (double)plm_exp1(l[c] - mx), q = (sum - ec) / sum;
            q = q > UL_MIN_Q ? q : UL_MIN_Q;
            u = (double)weight * (ec / sum) / q;
            k = 1.0 - u;
            loss -= (double)weight * log(q);
        }
        float inv = (float)(k / sum);
        for (i = 0; i + 8 <= V; i += 8) // softmax
            store8(g + i, plm_exp8(load8(l + i) - mx) * inv * grad_scale);
        for (; i < V; i++) g[i] = plm_exp1(l[i] - mx) * inv * grad_scale;
        g[y] -= grad_scale; // - onehot
        if (c >= 0 && c < V) g[c] += (float)u * grad_scale;
        n++;
    }
    if (n_counted) *n_counted = n;
    return loss;
}

// ---- the entry points: the copy of the active path ----

#ifdef PLM_X86_DISPATCH
// PATHS: name's copies for AVX-512 and AVX2 (the body inlined into each with its target)
#define PATHS(name, params, args)                                                                  \
    PLM_AVX512 static void name##_avx512 params {                                                  \
        name args;                                                                                 \
    }                                                                                              \
    PLM_AVX2 static void name##_avx2 params {                                                      \
        name args;                                                                                 \
    }
// PICK: run the widest copy the active path includes, or fall through to the baseline
#define PICK(name, args)                                                                           \
    do {                                                                                           \
        const plm_isa isa_ = plm_isa_active();                                                     \
        if (plm_isa_includes(isa_, PLM_ISA_AVX512)) {                                              \
            name##_avx512 args;                                                                    \
            return;                                                                                \
        }                                                                                          \
        if (plm_isa_includes(isa_, PLM_ISA_AVX2)) {                                                \
            name##_avx2 args;                                                                      \
            return;                                                                                \
        }                                                                                          \
    } while (0)
#else
#define PATHS(name, params, args)
#define PICK(name, args) ((void)0)
#endif

#define RMSNORM_F                                                                                  \
    (float *out, float *rstd, const float *inp, const float *w, int T, int C, float eps)
PATHS(rmsnorm_forward, RMSNORM_F, (out, rstd, inp, w, T, C, eps))
void plm_rmsnorm_forward RMSNORM_F {
    PICK(rmsnorm_forward, (out, rstd, inp, w, T, C, eps));
    rmsnorm_forward(out, rstd, inp, w, T, C, eps);
}

#define RMSNORM_B                                                                                  \
    (float *dinp, float *dw, const float *dout, const float *inp, const float *w,                  \
     const float *rstd, int T, int C)
PATHS(rmsnorm_backward, RMSNORM_B, (dinp, dw, dout, inp, w, rstd, T, C))
void plm_rmsnorm_backward RMSNORM_B {
    PICK(rmsnorm_backward, (dinp, dw, dout, inp, w, rstd, T, C));
    rmsnorm_backward(dinp, dw, dout, inp, w, rstd, T, C);
}

#define ROTATE                                                                                     \
    (float *x, const float *cos_t, const float *sin_t, float sign, int pos0, int T, int NH, int D)
PATHS(rotate, ROTATE, (x, cos_t, sin_t, sign, pos0, T, NH, D))
static void rotate_any ROTATE {
    PICK(rotate, (x, cos_t, sin_t, sign, pos0, T, NH, D));
    rotate(x, cos_t, sin_t, sign, pos0, T, NH, D);
}

void plm_rope_forward(float *x, const float *cos_t, const float *sin_t, int pos0, int T, int NH,
                      int D) {
    rotate_any(x, cos_t, sin_t, 1.0f, pos0, T, NH, D);
}

void plm_rope_backward(float *dx, const float *cos_t, const float *sin_t, int pos0, int T, int NH,
                       int D) {
    rotate_any(dx, cos_t, sin_t, -1.0f, pos0, T, NH, D); // the transpose of a rotation: its inverse
}

// attention: one copy for each element type kv (F16 read with f16's loader, the path's
// converter; else f32) and D = 64 (SmolLM2, Llama-style models) as a constant, so the head's
// vectors stay in registers (weighted_sum, dot), with attention_heads' 8-key blocks (only there:
// the blocks multiply the code, and with it a sanitizer build's compile time); the same
// operations as any D.
#define ATT_KV(e, D, keys8)                                                                        \
    attention_forward(out, att, att_stride, q, k, v, kvp, kvh, T, P, H, K, D, scale, window, p0,   \
                      i0, i1, e, keys8)
PLM_INLINE void attention_forward_d(float *out, float *att, int att_stride, const float *q,
                                    const void *k, const void *v, size_t kvp, size_t kvh, int T,
                                    int P, int H, int K, int D, float scale, int window, int p0,
                                    int i0, int i1, plm_dtype kv, kv_elems f16) {
    if (kv == PLM_DTYPE_F16) D == 64 ? ATT_KV(f16, 64, 1) : ATT_KV(f16, D, 0);
    else D == 64 ? ATT_KV(KV_F32, 64, 1) : ATT_KV(KV_F32, D, 0);
}

PLM_INLINE void attention_backward_d(float *dq, float *dk, float *dv, const float *dout,
                                     const float *att, int att_stride, const float *q,
                                     const float *k, const float *v, int T, int H, int K, int D,
                                     float scale, int k0, int k1) {
    if (D == 64)
        attention_backward(dq, dk, dv, dout, att, att_stride, q, k, v, T, H, K, 64, scale, k0, k1);
    else attention_backward(dq, dk, dv, dout, att, att_stride, q, k, v, T, H, K, D, scale, k0, k1);
}

#define ATT_F                                                                                      \
    (float *out, float *att, int att_stride, const float *q, const void *k, const void *v,         \
     size_t kvp, size_t kvh, int T, int P, int H, int K, int D, float scale, int window, int p0,   \
     int i0, int i1, plm_dtype kv)
#define ATT_F_ARGS                                                                                 \
    out, att, att_stride, q, k, v, kvp, kvh, T, P, H, K, D, scale, window, p0, i0, i1, kv
#ifdef PLM_X86_DISPATCH
PLM_AVX512 static void attention_forward_d_avx512 ATT_F {
    attention_forward_d(ATT_F_ARGS, KV_F16C);
}
PLM_AVX2 static void attention_forward_d_avx2 ATT_F {
    attention_forward_d(ATT_F_ARGS, KV_F16C);
}
#endif
void plm_attention_forward_kv ATT_F {
    PICK(attention_forward_d, (ATT_F_ARGS));
    attention_forward_d(ATT_F_ARGS, KV_F16);
}

void plm_attention_forward(float *out, float *att, int att_stride, const float *q, const float *k,
                           const float *v, size_t kvp, size_t kvh, int T, int P, int H, int K,
                           int D, float scale, int window, int p0, int i0, int i1) {
    plm_attention_forward_kv(out, att, att_stride, q, k, v, kvp, kvh, T, P, H, K, D, scale, window,
                             p0, i0, i1, PLM_DTYPE_F32);
}

#define ATT_B                                                                                      \
    (float *dq, float *dk, float *dv, const float *dout, const float *att, int att_stride,         \
     const float *q, const float *k, const float *v, int T, int H, int K, int D, float scale,      \
     int k0, int k1)
#define ATT_B_ARGS (dq, dk, dv, dout, att, att_stride, q, k, v, T, H, K, D, scale, k0, k1)
PATHS(attention_backward_d, ATT_B, ATT_B_ARGS)
void plm_attention_backward ATT_B {
    PICK(attention_backward_d, ATT_B_ARGS);
    attention_backward_d ATT_B_ARGS;
}

#define GLU_F (float *out, const float *gate, const float *up, size_t n)
PATHS(swiglu_forward, GLU_F, (out, gate, up, n))
void plm_swiglu_forward GLU_F {
    PICK(swiglu_forward, (out, gate, up, n));
    swiglu_forward(out, gate, up, n);
}

#define GLU_B                                                                                      \
    (float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n)
PATHS(swiglu_backward, GLU_B, (dgate, dup, dout, gate, up, n))
void plm_swiglu_backward GLU_B {
    PICK(swiglu_backward, (dgate, dup, dout, gate, up, n));
    swiglu_backward(dgate, dup, dout, gate, up, n);
}

PATHS(geglu_forward, GLU_F, (out, gate, up, n))
void plm_geglu_forward GLU_F {
    PICK(geglu_forward, (out, gate, up, n));
    geglu_forward(out, gate, up, n);
}

PATHS(geglu_backward, GLU_B, (dgate, dup, dout, gate, up, n))
void plm_geglu_backward GLU_B {
    PICK(geglu_backward, (dgate, dup, dout, gate, up, n));
    geglu_backward(dgate, dup, dout, gate, up, n);
}

void plm_bias_forward(float *out, const float *b, int T, int OC) {
    for (int t = 0; t < T; t++) plm_residual_forward(out + (size_t)t * OC, b, (size_t)OC);
}

#define TO_F16 (uint16_t * h, const float *x, size_t n)
PATHS(to_f16, TO_F16, (h, x, n))
void plm_f32_to_f16_n TO_F16 {
    PICK(to_f16, (h, x, n));
    to_f16(h, x, n);
}

void plm_residual_forward(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] += inp[i];
}

#define CE_F                                                                                       \
    (float *dlogits, const float *logits, const int32_t *targets, const int32_t *avoid,            \
     float weight, int T, int V, float grad_scale, int *n_counted)
#define CE_ARGS (dlogits, logits, targets, avoid, weight, T, V, grad_scale, n_counted)
#ifdef PLM_X86_DISPATCH
PLM_AVX512 static double crossentropy_avx512 CE_F {
    return crossentropy CE_ARGS;
}
PLM_AVX2 static double crossentropy_avx2 CE_F {
    return crossentropy CE_ARGS;
}
#endif

double plm_crossentropy_forward_backward CE_F {
#ifdef PLM_X86_DISPATCH
    const plm_isa isa = plm_isa_active();
    if (plm_isa_includes(isa, PLM_ISA_AVX512)) return crossentropy_avx512 CE_ARGS;
    if (plm_isa_includes(isa, PLM_ISA_AVX2)) return crossentropy_avx2 CE_ARGS;
#endif
    return crossentropy CE_ARGS;
}
