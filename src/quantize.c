// quantize.c: f32 rows into GGUF's quantized blocks (quantize.h), the same bits as ggml's reference
// quantizers (ggml-quants.c, quantize_row_*_ref; checked against them in tests/test_quant.c on
// tests/ref/quant.gguf). Every float operation is the reference's, in its order: a reordered sum
// picks another level now and then.
// - Legacy blocks of 32: Q4_0 / Q5_0 are symmetric (d = the value of largest magnitude / -8 or
//   -16, q = trunc(x / d + 8.5 or 16.5), at most 15 or 31); Q4_1 / Q5_1 have a minimum (d =
//   (max - min) / 15 or 31, q = trunc((x - min) / d + 0.5)); Q8_0: d = max |x| / 127, q =
//   round(x / d). Levels are rounded by truncating a float, as the reference's casts do.
// - Q4_K / Q5_K: super-blocks of 256, eight runs of 32 each with a 6-bit scale and minimum. Each
//   run gets a scale and minimum by a weighted least-squares search over candidate step sizes
//   (fit_scale_min: weights |x| + rms(run)); the eight are then quantized to 6 bits against the
//   largest, and every value is requantized with the stored (rounded) scale and minimum.
// - Q6_K: sixteen runs of 16 with an 8-bit signed scale each; each run's scale by a search over
//   19 step sizes weighted by x^2 (fit_scale_sym), then the same 8-bit quantization and requantizing.
// Not here: choosing a type per tensor (model_save.c), the dequantizers (gguf.c).
#include "quantize.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "base.h"
#include "gguf.h"

// clang fuses a * b + c into one rounding where the target has FMA (arm64 always); ggml's
// reference rounds twice. GCC's -std=c11 already keeps them apart (and rejects the pragma).
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#define QK   32  // a legacy block
#define QK_K 256 // a K-quant super-block

static void put_f16(uint8_t *p, float f) {
    uint16_t h = plm_f32_to_f16(f);
    p[0] = (uint8_t)(h & 0xff);
    p[1] = (uint8_t)(h >> 8);
}

static float f16_at(const uint8_t *p) {
    return plm_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

// nearest: v rounded to the nearest integer, ties to even, by adding 1.5 * 2^23 and reading the
// low mantissa bits (ggml's nearest_int; exact for |v| < 2^22, wrapping beyond it as ggml does;
// every caller clamps the result)
static int nearest(float v) {
    float f = v + 12582912.0f;
    uint32_t u;
    memcpy(&u, &f, 4);
    return (int)(u & 0x7fffff) - 0x400000;
}

static int clampi(int v, int lo, int hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

// truncated: (int)v clamped to [0, hi], as the reference's (int8_t) / (uint8_t) casts of a value
// in [0, hi + 2) followed by MIN(hi, .) give; NaN gives 0
static int truncated(float v, int hi) {
    return !(v > 0.0f) ? 0 : v >= (float)hi ? hi : (int)v;
}

// ---- legacy blocks of 32 ----

// signed_max: the first value of largest magnitude in x (n), with its sign
static float signed_max(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++)
        if (amax < fabsf(x[j])) amax = fabsf(x[j]), max = x[j];
    return max;
}

// block32: one block of Q4_0, Q4_1, Q5_0 or Q5_1 at dst (18, 20, 22 or 24 bytes): f16 d, [f16 m],
// [qh: bit k is bit 4 of level k], qs: byte j holds levels j (low nibble) and j + 16 (high)
static void block32(uint32_t type, const float *x, uint8_t *dst) {
    const int five = type == PLM_GGML_Q5_0 || type == PLM_GGML_Q5_1;
    const int with_min = type == PLM_GGML_Q4_1 || type == PLM_GGML_Q5_1;
    const int nmax = five ? 31 : 15;
    uint8_t q[QK];
    if (with_min) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < QK; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / (float)nmax, id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(dst, d);
        put_f16(dst + 2, min);
        for (int j = 0; j < QK; j++) q[j] = (uint8_t)truncated((x[j] - min) * id + 0.5f, nmax);
    } else {
        const float half = five ? 16.0f : 8.0f; // levels are -half .. half - 1, stored + half
        const float d = signed_max(x, QK) / -half, id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(dst, d);
        for (int j = 0; j < QK; j++) q[j] = (uint8_t)truncated(x[j] * id + (half + 0.5f), nmax);
    }
    uint8_t *qs = dst + (with_min ? 4 : 2);
    if (five) {
        uint32_t qh = 0;
        for (int j = 0; j < QK; j++) qh |= (uint32_t)(q[j] >> 4) << j;
        for (int k = 0; k < 4; k++) qs[k] = (uint8_t)(qh >> (8 * k));
        qs += 4;
    }
    for (int j = 0; j < QK / 2; j++) qs[j] = (uint8_t)((q[j] & 15) | (q[j + QK / 2] & 15) << 4);
}

// block_q8_0: one Q8_0 block (34 bytes): f16 d, 32 int8
static void block_q8_0(const float *x, uint8_t *dst) {
    float amax = 0.0f;
    for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(dst, d);
    for (int j = 0; j < QK; j++) dst[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
}

// ---- Q4_K and Q5_K ----

// fit_scale_min: levels L (n) in [0, nmax] with x ~ scale * L - *neg_min, minimizing
// sum w (scale * L - neg_min - x)^2: the plain min/max fit, then nstep + 1 candidate step sizes
// (nmax + rmin + rdelta * is) / (max - min), each refitted by weighted least squares, the best
// kept; the minimum is never above 0 (ggml's make_qkx2_quants). Returns scale.
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L,
                           float *neg_min, float rmin, float rdelta, int nstep) {
    float min = x[0], max = x[0], sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *neg_min = -min;
        return 0.0f;
    }
    float iscale = (float)nmax / (max - min), scale = 1 / iscale, best = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clampi(nearest(iscale * (x[i] - min)), 0, nmax);
        float diff = scale * L[i] + min - x[i];
        best += w[i] * (diff * diff);
    }
    uint8_t Laux[QK];
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min); // min: the best so far
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            float wl = w[i] * (float)l;
            sum_l += wl;
            sum_l2 += wl * (float)l;
            sum_xl += wl * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (!(D > 0)) continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        if (this_min > 0) {
            this_min = 0;
            this_scale = sum_xl / sum_l2;
        }
        float err = 0;
        for (int i = 0; i < n; i++) {
            float diff = this_scale * Laux[i] + this_min - x[i];
            err += w[i] * (diff * diff);
        }
        if (err < best) {
            memcpy(L, Laux, (size_t)n);
            best = err;
            scale = this_scale;
            min = this_min;
        }
    }
    *neg_min = -min;
    return scale;
}

// block_k45: one Q4_K (nmax 15: 144 bytes) or Q5_K (nmax 31: 176 bytes) super-block: f16 d,
// f16 dmin, 12 bytes of 6-bit scales and minimums (plm_gguf_k4_scale's packing), [Q5_K: qh, 32
// bytes: bit 2r / 2r + 1 of byte l is bit 4 of level 64r + l / 64r + 32 + l], qs: byte 32r + l
// holds levels 64r + l (low nibble) and 64r + 32 + l (high)
static void block_k45(const float *x, uint8_t *dst, int nmax) {
    const int five = nmax == 31;
    uint8_t L[QK_K];
    float scales[QK_K / QK], mins[QK_K / QK], w[QK];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < QK_K / QK; j++) {
        const float *xj = x + QK * j;
        float sum_x2 = 0;
        for (int l = 0; l < QK; l++) sum_x2 += xj[l] * xj[l];
        const float av_x = sqrtf(sum_x2 / QK);
        for (int l = 0; l < QK; l++) w[l] = av_x + fabsf(xj[l]);
        scales[j] = five ? fit_scale_min(QK, 31, xj, w, L + QK * j, &mins[j], -0.5f, 0.1f, 15)
                         : fit_scale_min(QK, 15, xj, w, L + QK * j, &mins[j], -1.0f, 0.1f, 20);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    uint8_t *sc = dst + 4;
    memset(sc, 0, 12);
    for (int j = 0; j < QK_K / QK; j++) {
        uint8_t ls = (uint8_t)nearest(inv_scale * scales[j]),
                lm = (uint8_t)nearest(inv_min * mins[j]);
        ls = ls < 63 ? ls : 63;
        lm = lm < 63 ? lm : 63;
        if (j < 4) {
            sc[j] = ls;
            sc[j + 4] = lm;
        } else {
            sc[j + 4] = (uint8_t)((ls & 15) | (lm & 15) << 4);
            sc[j - 4] |= (uint8_t)((ls >> 4) << 6);
            sc[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    put_f16(dst, max_scale / 63.0f);
    put_f16(dst + 2, max_min / 63.0f);
    const float d_all = f16_at(dst), dmin_all = f16_at(dst + 2);
    for (int j = 0; j < QK_K / QK; j++) {
        int s, m;
        plm_gguf_k4_scale(sc, j, &s, &m);
        const float d = d_all * (float)s;
        if (d == 0.0f) continue; // the run keeps its levels from the fit
        const float dm = dmin_all * (float)m;
        for (int i = 0; i < QK; i++)
            L[QK * j + i] = (uint8_t)clampi(nearest((x[QK * j + i] + dm) / d), 0, nmax);
    }
    uint8_t *qh = dst + 16, *qs = dst + (five ? 48 : 16);
    if (five) memset(qh, 0, 32);
    for (int r = 0; r < QK_K / 64; r++, qs += 32)
        for (int l = 0; l < 32; l++) {
            const uint8_t a = L[64 * r + l], b = L[64 * r + 32 + l];
            qs[l] = (uint8_t)((a & 15) | (b & 15) << 4);
            if (five) qh[l] |= (uint8_t)((a >> 4) << (2 * r) | (b >> 4) << (2 * r + 1));
        }
}

// ---- Q6_K ----

// sym_sums: sum w x l and sum w l^2 (w = x^2) over the levels l = nearest(iscale x) clamped to
// [-nmax, nmax - 1]; with L, the levels + nmax into it
static void sym_sums(int n, int nmax, const float *x, float iscale, float *sumlx, float *suml2,
                     uint8_t *L) {
    float slx = 0, sl2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = clampi(nearest(iscale * x[i]), -nmax, nmax - 1);
        const float w = x[i] * x[i];
        slx += w * x[i] * (float)l;
        sl2 += w * (float)l * (float)l;
        if (L) L[i] = (uint8_t)(nmax + l);
    }
    *sumlx = slx, *suml2 = sl2;
}

// fit_scale_sym: levels L (n) in [0, 2 nmax) with x ~ scale * (L - nmax), minimizing
// sum x^2 (scale * (L - nmax) - x)^2: the step -nmax / max, then 18 more around it,
// -(nmax + 0.1 is) / max (ggml's make_qx_quants with weights x^2). max is the value of largest
// magnitude. Returns scale (0 for an all-zero run).
static float fit_scale_sym(int n, int nmax, const float *x, uint8_t *L) {
    const float max = signed_max(x, n);
    if (fabsf(max) < 1e-15f) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float sumlx, suml2;
    sym_sums(n, nmax, x, (float)-nmax / max, &sumlx, &suml2, L);
    float scale = suml2 != 0 ? sumlx / suml2 : 0.0f, best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        const float iscale = -((float)nmax + 0.1f * (float)is) / max;
        sym_sums(n, nmax, x, iscale, &sumlx, &suml2, NULL);
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            sym_sums(n, nmax, x, iscale, &sumlx, &suml2, L);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

// block_q6_k: one Q6_K super-block (210 bytes): ql (128 bytes: the low 4 bits), qh (64: the high
// 2 bits), 16 int8 scales, f16 d. Within each half of 128 levels, ql byte l holds levels l and
// l + 64, byte 32 + l levels l + 32 and l + 96; qh byte l their high bits at shifts 0, 2, 4, 6.
static void block_q6_k(const float *x, uint8_t *dst) {
    uint8_t L[QK_K];
    float scales[QK_K / 16], max_scale = 0, max_abs = 0;
    for (int j = 0; j < QK_K / 16; j++) {
        scales[j] = fit_scale_sym(16, 32, x + 16 * j, L + 16 * j);
        if (fabsf(scales[j]) > max_abs) max_abs = fabsf(scales[j]), max_scale = scales[j];
    }
    memset(dst, 0, 210);
    if (max_abs < 1e-15f) return; // all zero, d = 0
    const float iscale = -128.0f / max_scale;
    put_f16(dst + 208, 1 / iscale);
    int8_t *sc = (int8_t *)(void *)(dst + 192);
    for (int j = 0; j < QK_K / 16; j++) {
        const int s = nearest(iscale * scales[j]);
        sc[j] = (int8_t)(s < 127 ? s : 127);
    }
    const float d_all = f16_at(dst + 208);
    for (int j = 0; j < QK_K / 16; j++) {
        const float d = d_all * (float)sc[j];
        if (d == 0.0f) continue; // the run keeps its levels from the fit
        for (int i = 0; i < 16; i++)
            L[16 * j + i] = (uint8_t)(32 + clampi(nearest(x[16 * j + i] / d), -32, 31));
    }
    for (int h = 0; h < 2; h++) {
        const uint8_t *Lh = L + 128 * h;
        uint8_t *ql = dst + 64 * h, *qh = dst + 128 + 32 * h;
        for (int l = 0; l < 32; l++) {
            ql[l] = (uint8_t)((Lh[l] & 15) | (Lh[l + 64] & 15) << 4);
            ql[l + 32] = (uint8_t)((Lh[l + 32] & 15) | (Lh[l + 96] & 15) << 4);
            qh[l] = (uint8_t)(Lh[l] >> 4 | (Lh[l + 32] >> 4) << 2 | (Lh[l + 64] >> 4) << 4 |
                              (Lh[l + 96] >> 4) << 6);
        }
    }
}

// ---- rows ----

int plm_quantize_writable(uint32_t type) {
    switch (type) {
    case PLM_GGML_Q4_0:
    case PLM_GGML_Q4_1:
    case PLM_GGML_Q5_0:
    case PLM_GGML_Q5_1:
    case PLM_GGML_Q8_0:
    case PLM_GGML_Q4_K:
    case PLM_GGML_Q5_K:
    case PLM_GGML_Q6_K: return 1;
    }
    return 0;
}

void plm_quantize_row(uint32_t type, const float *x, size_t n, uint8_t *out) {
    const size_t block =
        type == PLM_GGML_Q4_K || type == PLM_GGML_Q5_K || type == PLM_GGML_Q6_K ? QK_K : QK;
    const size_t bytes = plm_gguf_row_bytes(type, block);
    for (size_t b = 0; b < n / block; b++, x += block, out += bytes) {
        if (type == PLM_GGML_Q8_0) block_q8_0(x, out);
        else if (type == PLM_GGML_Q4_K) block_k45(x, out, 15);
        else if (type == PLM_GGML_Q5_K) block_k45(x, out, 31);
        else if (type == PLM_GGML_Q6_K) block_q6_k(x, out);
        else block32(type, x, out);
    }
}
