// ops.c: the layers of LlamaForCausalLM (HF transformers modeling_llama.py: LlamaRMSNorm,
// LlamaRotaryEmbedding + apply_rotary_pos_emb, eager attention with repeat_kv, LlamaMLP) as scalar
// C with shape comments. These are both the reference and the implementation: the matmuls, where
// the time goes, live in matmul.c.
#include "ops.h"

#include <assert.h>
#include <math.h>
#include <string.h>

// The attention loops are compiled twice on x86-64, for AVX-512 and for the baseline, and chosen
// at run time (the binary stays portable): the same code, so the same order of every sum.
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define PLM_X86_DISPATCH 1
#define PLM_AVX512 __attribute__((target("avx2,fma,avx512f")))
#endif
#define PLM_INLINE static inline __attribute__((always_inline))

// ---- embedding ----

void plm_embedding_forward(float *out, const int32_t *ids, const plm_mat *w, int T) {
    for (int t = 0; t < T; t++) plm_mat_row(out + (size_t)t * w->cols, w, ids[t]);
}

// ---- rmsnorm ----

void plm_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int T, int C,
                         float eps) {
    for (int t = 0; t < T; t++) {
        const float *x = inp + (size_t)t * C;
        float *o = out + (size_t)t * C;
        float ss = 0.0f;
        for (int c = 0; c < C; c++) ss += x[c] * x[c];
        float r = 1.0f / sqrtf(ss / (float)C + eps);
        // HF: weight * (x * rstd), in that order of rounding
        for (int c = 0; c < C; c++) o[c] = w[c] * (x[c] * r);
        if (rstd) rstd[t] = r;
    }
}

// ---- rope ----

void plm_rope_table(float *cos_t, float *sin_t, int n_pos, int D, float theta) {
    int half = D / 2;
    for (int i = 0; i < half; i++) {
        float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)D);
        for (int p = 0; p < n_pos; p++) {
            float angle = (float)p * inv_freq;
            cos_t[(size_t)p * half + i] = (float)cos((double)angle);
            sin_t[(size_t)p * half + i] = (float)sin((double)angle);
        }
    }
}

// rotate: each (i, i + D/2) pair of x (T, NH*D) by sign * angle(pos0 + t, i)
static void rotate(float *x, const float *cos_t, const float *sin_t, float sign, int pos0, int T,
                   int NH, int D) {
    int half = D / 2;
    for (int t = 0; t < T; t++) {
        const float *c = cos_t + (size_t)(pos0 + t) * half;
        const float *s = sin_t + (size_t)(pos0 + t) * half;
        for (int h = 0; h < NH; h++) {
            float *xh = x + ((size_t)t * NH + h) * D;
            for (int i = 0; i < half; i++) {
                float x1 = xh[i], x2 = xh[i + half], si = sign * s[i];
                xh[i] = x1 * c[i] - x2 * si;
                xh[i + half] = x2 * c[i] + x1 * si;
            }
        }
    }
}

void plm_rope_forward(float *x, const float *cos_t, const float *sin_t, int pos0, int T, int NH,
                      int D) {
    rotate(x, cos_t, sin_t, 1.0f, pos0, T, NH, D);
}

// ---- attention ----

// Vectors of 16 floats (GCC/clang vector extensions): one zmm register with AVX-512, four xmm
// registers on the baseline, four v128 on wasm. Element-wise, so every path rounds the same way.
typedef float v16 __attribute__((vector_size(64)));
typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));

// dot: sum of x[i] * y[i] as 16 lane sums, added in a fixed tree (lane j + 8, then + 4, + 2, + 1),
// then the tail: every build gives the same bits
PLM_INLINE float dot(const float *x, const float *y, int n) {
    v16 acc = {0}, xv, yv;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        memcpy(&xv, x + i, sizeof xv);
        memcpy(&yv, y + i, sizeof yv);
        acc += xv * yv;
    }
    v8 a8 = __builtin_shufflevector(acc, acc, 0, 1, 2, 3, 4, 5, 6, 7) +
            __builtin_shufflevector(acc, acc, 8, 9, 10, 11, 12, 13, 14, 15);
    v4 a4 = __builtin_shufflevector(a8, a8, 0, 1, 2, 3) + __builtin_shufflevector(a8, a8, 4, 5, 6, 7);
    float s = (a4[0] + a4[2]) + (a4[1] + a4[3]);
    for (; i < n; i++) s += x[i] * y[i];
    return s;
}

// axpy: y += a * x, 16 at a time (element-wise: the same bits as one at a time)
PLM_INLINE void axpy(float *restrict y, float a, const float *restrict x, int n) {
    v16 xv, yv;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        memcpy(&xv, x + i, sizeof xv);
        memcpy(&yv, y + i, sizeof yv);
        yv += a * xv;
        memcpy(y + i, &yv, sizeof yv);
    }
    for (; i < n; i++) y[i] += a * x[i];
}

PLM_INLINE void attention_forward(float *out, float *att, int att_stride, const float *q,
                                  const float *k, const float *v, int T, int P, int H, int K, int D,
                                  int i0, int i1) {
    assert(i0 >= 0 && i1 <= T * H && H % K == 0);
    int group = H / K; // query heads per KV head (repeat_kv)
    float scale = 1.0f / sqrtf((float)D);
    for (int i = i0; i < i1; i++) {
        int t = i / H, h = i % H, kh = h / group;
        int n = P + t + 1; // causal: keys 0 .. P+t
        const float *qt = q + ((size_t)t * H + h) * D;
        float *a = att + ((size_t)t * H + h) * att_stride;
        // scores and their max, for a stable softmax
        float mx = -INFINITY;
        for (int s = 0; s < n; s++) {
            a[s] = dot(qt, k + ((size_t)s * K + kh) * D, D) * scale;
            if (a[s] > mx) mx = a[s];
        }
        float sum = 0.0f;
        for (int s = 0; s < n; s++) {
            a[s] = expf(a[s] - mx);
            sum += a[s];
        }
        float inv = 1.0f / sum;
        for (int s = 0; s < n; s++) a[s] *= inv;
        // out = att @ v
        float *o = out + ((size_t)t * H + h) * D;
        memset(o, 0, (size_t)D * sizeof *o);
        for (int s = 0; s < n; s++) axpy(o, a[s], v + ((size_t)s * K + kh) * D, D);
    }
}

// ---- mlp ----

void plm_swiglu_forward(float *out, const float *gate, const float *up, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void plm_residual_forward(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] += inp[i];
}

// ---- backward ----

void plm_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                          const float *w, const float *rstd, int T, int C) {
    for (int t = 0; t < T; t++) {
        const float *x = inp + (size_t)t * C, *dy = dout + (size_t)t * C;
        float *dx = dinp + (size_t)t * C;
        float r = rstd[t];
        // dot = sum_j w_j dy_j x_j
        float dot = 0.0f;
        for (int c = 0; c < C; c++) dot += w[c] * dy[c] * x[c];
        float k = dot * r * r * r / (float)C;
        for (int c = 0; c < C; c++) {
            dx[c] += r * w[c] * dy[c] // term 1: through x directly
                     - k * x[c];      // term 2: through rstd
            if (dw) dw[c] += dy[c] * x[c] * r;
        }
    }
}

void plm_rope_backward(float *dx, const float *cos_t, const float *sin_t, int pos0, int T, int NH,
                       int D) {
    rotate(dx, cos_t, sin_t, -1.0f, pos0, T, NH, D); // the transpose of a rotation is its inverse
}

PLM_INLINE void attention_backward(float *dq, float *dk, float *dv, const float *dout,
                                   const float *att, int att_stride, const float *q, const float *k,
                                   const float *v, int T, int H, int K, int D, int k0, int k1) {
    int group = H / K;
    float scale = 1.0f / sqrtf((float)D);
    for (int kh = k0; kh < k1; kh++)
        for (int h = kh * group; h < (kh + 1) * group; h++)
            for (int t = 0; t < T; t++) {
                const float *a = att + ((size_t)t * H + h) * att_stride;
                const float *go = dout + ((size_t)t * H + h) * D;
                const float *qt = q + ((size_t)t * H + h) * D;
                float *gq = dq + ((size_t)t * H + h) * D;
                // da_s = dout . v_s, and sum_s a_s da_s for the softmax backward
                float dsum = 0.0f;
                for (int s = 0; s <= t; s++) dsum += a[s] * dot(go, v + ((size_t)s * K + kh) * D, D);
                for (int s = 0; s <= t; s++) {
                    const float *vs = v + ((size_t)s * K + kh) * D;
                    const float *ks = k + ((size_t)s * K + kh) * D;
                    float *gk = dk + ((size_t)s * K + kh) * D;
                    float *gv = dv + ((size_t)s * K + kh) * D;
                    float ds = a[s] * (dot(go, vs, D) - dsum) * scale; // softmax backward, 1/sqrt(D)
                    axpy(gv, a[s], go, D); // out = sum_s a_s v_s
                    axpy(gq, ds, ks, D);   // score_s = q . k_s
                    axpy(gk, ds, qt, D);
                }
            }
}

void plm_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                         const float *up, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float g = gate[i], sig = 1.0f / (1.0f + expf(-g));
        float silu = g * sig;
        dgate[i] += dout[i] * up[i] * sig * (1.0f + g * (1.0f - sig)); // silu'(g) = s (1 + g (1 - s))
        dup[i] += dout[i] * silu;
    }
}

double plm_crossentropy_forward_backward(float *dlogits, const float *logits,
                                         const int32_t *targets, int T, int V, float grad_scale,
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
        double sum = 0.0;
        for (int i = 0; i < V; i++) sum += (double)expf(l[i] - mx);
        float ly = l[y];
        loss += log(sum) - (double)(ly - mx);
        float inv = (float)(1.0 / sum);
        for (int i = 0; i < V; i++) g[i] = expf(l[i] - mx) * inv * grad_scale; // softmax
        g[y] -= grad_scale;                                                     // - onehot
        n++;
    }
    if (n_counted) *n_counted = n;
    return loss;
}

// ---- attention: the entry points, dispatching on the CPU ----

#ifdef PLM_X86_DISPATCH
PLM_AVX512 static void attention_forward_avx512(float *out, float *att, int att_stride,
                                                const float *q, const float *k, const float *v,
                                                int T, int P, int H, int K, int D, int i0, int i1) {
    attention_forward(out, att, att_stride, q, k, v, T, P, H, K, D, i0, i1);
}

PLM_AVX512 static void attention_backward_avx512(float *dq, float *dk, float *dv,
                                                 const float *dout, const float *att,
                                                 int att_stride, const float *q, const float *k,
                                                 const float *v, int T, int H, int K, int D,
                                                 int k0, int k1) {
    attention_backward(dq, dk, dv, dout, att, att_stride, q, k, v, T, H, K, D, k0, k1);
}
#endif

void plm_attention_forward(float *out, float *att, int att_stride, const float *q, const float *k,
                           const float *v, int T, int P, int H, int K, int D, int i0, int i1) {
#ifdef PLM_X86_DISPATCH
    if (__builtin_cpu_supports("avx512f")) {
        attention_forward_avx512(out, att, att_stride, q, k, v, T, P, H, K, D, i0, i1);
        return;
    }
#endif
    attention_forward(out, att, att_stride, q, k, v, T, P, H, K, D, i0, i1);
}

void plm_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *att,
                            int att_stride, const float *q, const float *k, const float *v, int T,
                            int H, int K, int D, int k0, int k1) {
#ifdef PLM_X86_DISPATCH
    if (__builtin_cpu_supports("avx512f")) {
        attention_backward_avx512(dq, dk, dv, dout, att, att_stride, q, k, v, T, H, K, D, k0, k1);
        return;
    }
#endif
    attention_backward(dq, dk, dv, dout, att, att_stride, q, k, v, T, H, K, D, k0, k1);
}
