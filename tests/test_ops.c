// test_ops.c: every layer's forward against a double-precision recompute, and every backward
// against finite differences of a double-precision loss L = sum(out * g) for a random g (so
// dL/dout = g). The forward runs in f32, whose rounding puts ~2e-4 of noise on a 2-point central
// difference with eps 1e-3 (measured); so the 4-point stencil of ggml's grad_precise() with
// eps 1e-2 is used: truncation error O(eps^4), rounding noise 10x smaller. Paths: every op on
// each kernel path this CPU runs gives the same bits as on the baseline (ops.c compiles one body
// per path).
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "ops.h"
#include "test.h"

static uint64_t rng = 0x1234567;
static float frand(void) { // uniform in [-1, 1)
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 40) / 8388608.0) - 1.0f;
}
static float *randv(size_t n, float scale) {
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = frand() * scale;
    return v;
}
static float *zeros(size_t n) {
    return calloc(n, sizeof(float));
}

static double dotg(const float *out, const float *g, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)out[i] * (double)g[i];
    return s;
}

// ---- one op as a function of one input, for finite differences ----

enum { T = 7, C = 24, H = 4, K = 2, D = 6, F = 10, V = 11 };

typedef struct {
    float *x, *w, *q, *k, *v, *gate, *up, *cos_t, *sin_t;
    float *out, *att, *rstd;
    float *rstd_h, *cos_s, *sin_s; // (T*H) per-head norms; (16, D/2) a llama3-scaled RoPE table
} bufs;

// loss_of: L = sum(out * g) for op on the current inputs
static double loss_of(int op, bufs *b, const float *g) {
    switch (op) {
    case 0:
        plm_rmsnorm_forward(b->out, b->rstd, b->x, b->w, T, C, 1e-5f);
        return dotg(b->out, g, (size_t)T * C);
    case 1:
        memcpy(b->out, b->q, sizeof(float) * T * H * D);
        plm_rope_forward(b->out, b->cos_t, b->sin_t, 3, T, H, D);
        return dotg(b->out, g, (size_t)T * H * D);
    case 2:
        plm_attention_forward(b->out, b->att, T, b->q, b->k, b->v, (size_t)K * D, (size_t)D, T, 0,
                              H, K, D, 1.0f / sqrtf((float)D), 0, 0, 0, T * H);
        return dotg(b->out, g, (size_t)T * H * D);
    case 3:
        plm_swiglu_forward(b->out, b->gate, b->up, (size_t)T * F);
        return dotg(b->out, g, (size_t)T * F);
    case 5: // Gemma 3's local attention: a sliding window of 3, the scale of its own
        plm_attention_forward(b->out, b->att, T, b->q, b->k, b->v, (size_t)K * D, (size_t)D, T, 0,
                              H, K, D, 0.3f, 3, 0, 0, T * H);
        return dotg(b->out, g, (size_t)T * H * D);
    case 6:
        plm_geglu_forward(b->out, b->gate, b->up, (size_t)T * F);
        return dotg(b->out, g, (size_t)T * F);
    default: // Qwen3's queries: RMSNorm over each head's D values (weight w's first D), then RoPE
        plm_rmsnorm_forward(b->out, b->rstd_h, b->q, b->w, T * H, D, 1e-5f);
        plm_rope_forward(b->out, b->cos_s, b->sin_s, 3, T, H, D);
        return dotg(b->out, g, (size_t)T * H * D);
    }
}

// fd_check: numerical gradient of loss_of(op) w.r.t. each element of x (n) against analytic ga
static void fd_check(const char *name, int op, bufs *b, const float *g, float *x, size_t n,
                     const float *ga) {
    float *num = zeros(n);
    const float e = 1e-2f;
    for (size_t i = 0; i < n; i++) {
        float x0 = x[i];
        double f[4]; // L at x - 2e, x - e, x + e, x + 2e
        const float at[4] = {-2 * e, -e, e, 2 * e};
        for (int k = 0; k < 4; k++) {
            x[i] = x0 + at[k];
            f[k] = loss_of(op, b, g);
        }
        x[i] = x0;
        num[i] = (float)((8.0 * (f[2] - f[1]) - (f[3] - f[0])) / (12.0 * (double)e));
    }
    loss_of(op, b, g); // restore the saved buffers
    check_close(name, ga, num, n, 1e-4, 1e-3);
    free(num);
}

static void test_backward(void) {
    bufs b;
    b.x = randv(T * C, 1.5f), b.w = randv(C, 1.0f);
    b.q = randv(T * H * D, 1.0f), b.k = randv(T * K * D, 1.0f), b.v = randv(T * K * D, 1.0f);
    b.gate = randv(T * F, 3.0f), b.up = randv(T * F, 1.0f);
    b.cos_t = zeros(16 * D / 2), b.sin_t = zeros(16 * D / 2);
    plm_rope_table(b.cos_t, b.sin_t, 16, D, 10000.0f, NULL);
    b.out = zeros(T * H * D > T * C ? T * H * D : T * C), b.att = zeros(T * H * T),
    b.rstd = zeros(T);
    float *g = randv(T * C + T * H * D, 1.0f);

    // rmsnorm: dinp and dw
    float *dx = zeros(T * C), *dw = zeros(C);
    loss_of(0, &b, g);
    plm_rmsnorm_backward(dx, dw, g, b.x, b.w, b.rstd, T, C);
    fd_check("rmsnorm dinp", 0, &b, g, b.x, T * C, dx);
    fd_check("rmsnorm dw", 0, &b, g, b.w, C, dw);

    // rope
    float *dq = zeros(T * H * D);
    memcpy(dq, g, sizeof(float) * T * H * D);
    plm_rope_backward(dq, b.cos_t, b.sin_t, 3, T, H, D);
    fd_check("rope", 1, &b, g, b.q, T * H * D, dq);

    // attention: dq, dk, dv, computed in two KV-head ranges to exercise the split
    float *gq = zeros(T * H * D), *gk = zeros(T * K * D), *gv = zeros(T * K * D);
    loss_of(2, &b, g);
    plm_attention_backward(gq, gk, gv, g, b.att, T, b.q, b.k, b.v, T, H, K, D, 1.0f / sqrtf(D), 0,
                           1);
    plm_attention_backward(gq, gk, gv, g, b.att, T, b.q, b.k, b.v, T, H, K, D, 1.0f / sqrtf(D), 1,
                           K);
    fd_check("attention dq", 2, &b, g, b.q, T * H * D, gq);
    fd_check("attention dk", 2, &b, g, b.k, T * K * D, gk);
    fd_check("attention dv", 2, &b, g, b.v, T * K * D, gv);

    // swiglu
    float *dg = zeros(T * F), *du = zeros(T * F);
    plm_swiglu_backward(dg, du, g, b.gate, b.up, T * F);
    fd_check("swiglu dgate", 3, &b, g, b.gate, T * F, dg);
    fd_check("swiglu dup", 3, &b, g, b.up, T * F, du);

    // Gemma 3: attention with a sliding window (the masked keys get no gradient) and its own scale
    float *wq = zeros(T * H * D), *wk = zeros(T * K * D), *wv = zeros(T * K * D);
    loss_of(5, &b, g);
    plm_attention_backward(wq, wk, wv, g, b.att, T, b.q, b.k, b.v, T, H, K, D, 0.3f, 0, K);
    fd_check("window attention dq", 5, &b, g, b.q, T * H * D, wq);
    fd_check("window attention dk", 5, &b, g, b.k, T * K * D, wk);
    fd_check("window attention dv", 5, &b, g, b.v, T * K * D, wv);
    free(wq), free(wk), free(wv);

    // Gemma 3's GeGLU (tanh GELU), gate over [-3, 3): both tails of the tanh
    float *eg = zeros(T * F), *eu = zeros(T * F);
    plm_geglu_backward(eg, eu, g, b.gate, b.up, T * F);
    fd_check("geglu dgate", 6, &b, g, b.gate, T * F, eg);
    fd_check("geglu dup", 6, &b, g, b.up, T * F, eu);
    free(eg), free(eu);

    // per-head q norm then RoPE with llama3 scaling (its 3 frequencies: one kept, one blended, one
    // divided), backward in the trainer's order: RoPE's, then the norm's
    const plm_rope_scaling llama3 = {8.0f, 1.0f, 4.0f, 256, 0}, linear = {8.0f, 0, 0, 0, 1};
    float divisors[D / 2];
    plm_rope_divisors(divisors, D, 10000.0f, &linear);
    CHECK(divisors[0] == 8.0f && divisors[1] == 8.0f && divisors[2] == 8.0f);
    plm_rope_divisors(divisors, D, 10000.0f, &llama3);
    CHECK(divisors[0] == 1.0f && divisors[1] > 1.0f && divisors[1] < 8.0f && divisors[2] == 8.0f);
    b.rstd_h = zeros(T * H), b.cos_s = zeros(16 * D / 2), b.sin_s = zeros(16 * D / 2);
    plm_rope_table(b.cos_s, b.sin_s, 16, D, 10000.0f, divisors);
    float *dn = zeros(T * H * D), *dqn = zeros(T * H * D);
    memcpy(dn, g, sizeof(float) * T * H * D);
    loss_of(4, &b, g);
    plm_rope_backward(dn, b.cos_s, b.sin_s, 3, T, H, D);
    plm_rmsnorm_backward(dqn, NULL, dn, b.q, b.w, b.rstd_h, T * H, D);
    fd_check("q norm + llama3 rope", 4, &b, g, b.q, T * H * D, dqn);
    free(dn), free(dqn), free(b.rstd_h), free(b.cos_s), free(b.sin_s);

    free(dx), free(dw), free(dq), free(gq), free(gk), free(gv), free(dg), free(du), free(g);
    free(b.x), free(b.w), free(b.q), free(b.k), free(b.v), free(b.gate), free(b.up);
    free(b.cos_t), free(b.sin_t), free(b.out), free(b.att), free(b.rstd);
}

// cross_entropy_want: the loss of plm_crossentropy_forward_backward recomputed in double, with the
// unlikelihood of avoid (or none: NULL) at weight
static double cross_entropy_want(const float *l, const int32_t *y, const int32_t *avoid,
                                 double weight) {
    double want = 0;
    for (int t = 0; t < T; t++) {
        if (y[t] < 0) continue;
        double s = 0;
        for (int i = 0; i < V; i++) s += exp((double)l[t * V + i]);
        want += log(s) - (double)l[t * V + y[t]];
        if (avoid && avoid[t] >= 0)
            want -= weight * log(1.0 - exp((double)l[t * V + avoid[t]]) / s);
    }
    return want;
}

// cross-entropy, plain and with unlikelihood, on every path: the loss against a double recompute,
// the gradient against finite differences; weight 0 gives plain cross-entropy's bits
static void test_crossentropy(void) {
    float *l = randv(T * V, 4.0f), *dl = zeros(T * V), *num = zeros(T * V);
    float *plain = zeros(T * V), *scratch = zeros(T * V);
    int32_t y[T] = {3, -1, 0, 10, 5, -1, 7};
    int32_t avoid[T] = {4, 2, -1, 0, 5, -1, 1}; // row 1 has no target; row 4 avoids its target
    l[6 * V + 1] = 5.0f; // a likely avoided token: p_c near 0.5, where 1 / (1 - p_c) matters
    for (int isa = 0; isa < PLM_ISA_COUNT; isa++) {
        if (!plm_isa_supported((plm_isa)isa)) continue;
        plm_set_kernel_path(plm_isa_name((plm_isa)isa), NULL);
        for (int ul = 0; ul < 2; ul++) {
            const int32_t *av = ul ? avoid : NULL;
            const float w = ul ? 0.7f : 0.0f;
            int n;
            double loss = plm_crossentropy_forward_backward(dl, l, y, av, w, T, V, 1.0f, &n);
            CHECK(n == 5);
            double want = cross_entropy_want(l, y, av, (double)w);
            CHECK_MSG(fabs(loss - want) < 1e-5 * fabs(want), "%s ce (ul %d) loss %.9g want %.9g",
                      plm_isa_name((plm_isa)isa), ul, loss, want);
            for (int i = 0; i < T * V; i++) { // the loss is summed in double: eps 1e-3 is clean
                float x0 = l[i];
                l[i] = x0 + 1e-3f;
                double lp = plm_crossentropy_forward_backward(scratch, l, y, av, w, T, V, 1, NULL);
                l[i] = x0 - 1e-3f;
                double lm = plm_crossentropy_forward_backward(scratch, l, y, av, w, T, V, 1, NULL);
                l[i] = x0;
                num[i] = (float)((lp - lm) / 2e-3);
            }
            check_close(ul ? "unlikelihood dlogits" : "crossentropy dlogits", dl, num, T * V, 1e-4,
                        1e-3);
            if (!ul) memcpy(plain, dl, sizeof(float) * T * V);
        }
        double l0 = plm_crossentropy_forward_backward(dl, l, y, avoid, 0.0f, T, V, 1.0f, NULL);
        CHECK_MSG(
            l0 == plm_crossentropy_forward_backward(scratch, l, y, NULL, 0.0f, T, V, 1, NULL) &&
                !memcmp(dl, plain, sizeof(float) * T * V),
            "%s: weight 0 is not plain cross-entropy's bits", plm_isa_name((plm_isa)isa));
        // an avoided token with p_c = 1 in f32: 1 - p_c clamped to 1e-6, finite loss and gradient
        float sure[V] = {0};
        sure[2] = 200.0f;
        int32_t y1 = 0, c1 = 2;
        double ls = plm_crossentropy_forward_backward(dl, sure, &y1, &c1, 0.5f, 1, V, 1.0f, NULL);
        int finite = fabs(ls - (200.0 - 0.5 * log(1e-6))) < 1e-3; // CE 200 + 0.5 * 13.8
        for (int i = 0; i < V; i++) finite &= isfinite(dl[i]) != 0;
        CHECK_MSG(finite, "%s: unlikelihood at p_c = 1: loss %g, dlogits[2] %g",
                  plm_isa_name((plm_isa)isa), ls, (double)dl[2]);
    }
    plm_set_kernel_path(NULL, NULL);
    free(l), free(dl), free(num), free(scratch), free(plain);
}

// forward vs double precision
static void test_forward(void) {
    float *x = randv(T * C, 2.0f), *w = randv(C, 1.0f), *out = zeros(T * C), *rstd = zeros(T);
    float *want = zeros(T * C);
    plm_rmsnorm_forward(out, rstd, x, w, T, C, 1e-5f);
    for (int t = 0; t < T; t++) {
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)x[t * C + c] * (double)x[t * C + c];
        double r = 1.0 / sqrt(ss / C + 1e-5);
        for (int c = 0; c < C; c++)
            want[t * C + c] = (float)((double)w[c] * (double)x[t * C + c] * r);
    }
    check_close("rmsnorm forward", out, want, T * C, 1e-6, 1e-5);
    free(x), free(w), free(out), free(rstd), free(want);

    float *q = randv(T * H * D, 1.0f), *k = randv(T * K * D, 1.0f), *v = randv(T * K * D, 1.0f);
    float *ao = zeros(T * H * D), *att = zeros(T * H * T), *aw = zeros(T * H * D);
    // plain (1/sqrt(D), every earlier key), then Gemma 3's local (scale 0.3, the last 3 keys)
    for (int variant = 0; variant < 2; variant++) {
        const float scale = variant ? 0.3f : 1.0f / sqrtf((float)D);
        const int window = variant ? 3 : 0;
        plm_attention_forward(ao, att, T, q, k, v, (size_t)K * D, (size_t)D, T, 0, H, K, D, scale,
                              window, 0, 0, T * H);
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++) {
                int kh = h / (H / K), s0 = window && t + 1 > window ? t + 1 - window : 0;
                double sc[T], mx = -1e30, sum = 0;
                for (int s = s0; s <= t; s++) {
                    double dot = 0;
                    for (int d = 0; d < D; d++)
                        dot += (double)q[(t * H + h) * D + d] * (double)k[(s * K + kh) * D + d];
                    sc[s] = dot * (double)scale;
                    mx = fmax(mx, sc[s]);
                }
                for (int s = s0; s <= t; s++) sum += exp(sc[s] - mx);
                for (int d = 0; d < D; d++) {
                    double o = 0;
                    for (int s = s0; s <= t; s++)
                        o += exp(sc[s] - mx) / sum * (double)v[(s * K + kh) * D + d];
                    aw[(t * H + h) * D + d] = (float)o;
                }
            }
        check_close(variant ? "window attention forward" : "attention forward", ao, aw, T * H * D,
                    1e-6, 1e-5);
    }
    free(q), free(k), free(v), free(ao), free(att), free(aw);

    // GeGLU: 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3))) * up, over g in [-6, 6)
    float *gt = randv(T * F, 6.0f), *up = randv(T * F, 1.0f), *go = zeros(T * F);
    float *gw = zeros(T * F);
    plm_geglu_forward(go, gt, up, T * F);
    for (int i = 0; i < T * F; i++) {
        const double z = (double)gt[i],
                     u = sqrt(2.0 / 3.14159265358979323846) * (z + 0.044715 * z * z * z);
        gw[i] = (float)(0.5 * z * (1.0 + tanh(u)) * (double)up[i]);
    }
    check_close("geglu forward", go, gw, T * F, 1e-6, 1e-5);
    free(gt), free(up), free(go), free(gw);
}

// ---- paths: every op on each path this CPU runs gives the baseline's bits ----

typedef struct {
    float *x, *w, *q, *k, *v, *gate, *up, *cos_t, *sin_t, *g, *l;
} path_in;

// run_ops: every op on the current path, outputs appended to out (returns the count written)
static size_t run_ops(float *out, const path_in *in, int Tn, int Cn, int Hn, int Kn, int Dn, int Fn,
                      int Vn, int P) {
    size_t o = 0;
    const int S = P + Tn;
    plm_rmsnorm_forward(out + o, out + o + (size_t)Tn * Cn, in->x, in->w, Tn, Cn, 1e-5f);
    o += (size_t)Tn * Cn + Tn;
    memset(out + o, 0, sizeof(float) * (size_t)(Tn * Cn + Cn));
    plm_rmsnorm_backward(out + o, out + o + (size_t)Tn * Cn, in->g, in->x, in->w, out, Tn, Cn);
    o += (size_t)Tn * Cn + Cn;
    memcpy(out + o, in->q, sizeof(float) * (size_t)Tn * Hn * Dn);
    plm_rope_forward(out + o, in->cos_t, in->sin_t, P, Tn, Hn, Dn);
    plm_rope_backward(out + o, in->cos_t, in->sin_t, P + 1, Tn, Hn, Dn);
    o += (size_t)Tn * Hn * Dn;
    float *att = out + o + (size_t)Tn * Hn * Dn;
    plm_attention_forward(out + o, att, S, in->q, in->k, in->v, (size_t)Kn * Dn, (size_t)Dn, Tn, P,
                          Hn, Kn, Dn, 0.3f, 0, 0, 0, Tn * Hn);
    o += (size_t)Tn * Hn * Dn + (size_t)Tn * Hn * S;
    float *dq = out + o, *dk = dq + (size_t)Tn * Hn * Dn, *dv = dk + (size_t)Tn * Kn * Dn;
    memset(dq, 0, sizeof(float) * (size_t)(Tn * Hn * Dn + 2 * Tn * Kn * Dn));
    plm_attention_forward(dv + (size_t)Tn * Kn * Dn, att, Tn, in->q, in->k, in->v, (size_t)Kn * Dn,
                          (size_t)Dn, Tn, 0, Hn, Kn, Dn, 0.3f, 3, 0, 0, Tn * Hn); // P = 0, window 3
    plm_attention_backward(dq, dk, dv, in->g, att, Tn, in->q, in->k, in->v, Tn, Hn, Kn, Dn, 0.3f, 0,
                           Kn);
    o += (size_t)Tn * Hn * Dn + 2 * (size_t)Tn * Kn * Dn + (size_t)Tn * Hn * Dn;
    const size_t nf = (size_t)Tn * Fn;
    plm_swiglu_forward(out + o, in->gate, in->up, nf);
    o += nf;
    memset(out + o, 0, sizeof(float) * 2 * nf);
    plm_swiglu_backward(out + o, out + o + nf, in->g, in->gate, in->up, nf);
    o += 2 * nf;
    plm_geglu_forward(out + o, in->gate, in->up, nf);
    o += nf;
    memset(out + o, 0, sizeof(float) * 2 * nf);
    plm_geglu_backward(out + o, out + o + nf, in->g, in->gate, in->up, nf);
    o += 2 * nf;
    int32_t y[4] = {3, -1, Vn - 1, 0}, avoid[4] = {1, 2, -1, Vn - 2};
    for (int ul = 0; ul < 2; ul++) { // plain, then with unlikelihood
        double loss = plm_crossentropy_forward_backward(out + o, in->l, y, ul ? avoid : NULL,
                                                        ul ? 0.5f : 0.0f, 4, Vn, 0.25f, NULL);
        o += (size_t)4 * Vn;
        out[o++] = (float)loss;
        out[o++] = (float)(loss - (double)(float)loss) * 1e8f; // the double's low bits too
    }
    return o;
}

static void test_paths_ops(void) {
    // tails everywhere: C, F, V not multiples of 8 or 16, 37 keys, a head dim of 64 and of 20
    static const int dims[2][8] = {{5, 61, 3, 1, 64, 67, 1003, 32},
                                   {9, 200, 4, 2, 20, 96, 4101, 0}};
    for (int di = 0; di < 2; di++) {
        const int Tn = dims[di][0], Cn = dims[di][1], Hn = dims[di][2], Kn = dims[di][3];
        const int Dn = dims[di][4], Fn = dims[di][5], Vn = dims[di][6], P = dims[di][7];
        const int S = P + Tn;
        path_in in;
        in.x = randv((size_t)Tn * Cn, 2.0f), in.w = randv((size_t)Cn, 1.0f);
        in.q = randv((size_t)Tn * Hn * Dn, 1.5f), in.k = randv((size_t)S * Kn * Dn, 1.5f);
        in.v = randv((size_t)S * Kn * Dn, 1.0f), in.gate = randv((size_t)Tn * Fn, 12.0f);
        in.up = randv((size_t)Tn * Fn, 1.0f), in.g = randv((size_t)Tn * (Cn + Hn * Dn + Fn), 1.0f);
        in.l = randv((size_t)4 * Vn, 30.0f);
        in.gate[0] = -95.0f, in.gate[1] = 95.0f, in.l[1] = -120.0f; // exp's clamps
        in.cos_t = zeros((size_t)(S + 2) * Dn / 2), in.sin_t = zeros((size_t)(S + 2) * Dn / 2);
        plm_rope_table(in.cos_t, in.sin_t, S + 2, Dn, 10000.0f, NULL);
        const size_t cap = (size_t)Tn * (4 * Cn + 6 * Hn * Dn + 4 * Kn * Dn + Hn * S + 6 * Fn) +
                           Tn + Cn + 8 * (size_t)Vn + 16;
        float *ref = zeros(cap), *got = zeros(cap);
        plm_set_kernel_path("scalar", NULL);
        const size_t n = run_ops(ref, &in, Tn, Cn, Hn, Kn, Dn, Fn, Vn, P);
        CHECK(n <= cap);
        for (int isa = 1; isa < PLM_ISA_COUNT; isa++) {
            if (!plm_isa_supported((plm_isa)isa)) continue;
            plm_set_kernel_path(plm_isa_name((plm_isa)isa), NULL);
            memset(got, 0, cap * sizeof(float));
            run_ops(got, &in, Tn, Cn, Hn, Kn, Dn, Fn, Vn, P);
            size_t first = 0;
            while (first < n && !memcmp(got + first, ref + first, sizeof(float))) first++;
            CHECK_MSG(first == n,
                      "ops on %s (shape %d): not the baseline's bits, first at [%zu] of "
                      "%zu: %.9g vs %.9g",
                      plm_isa_name((plm_isa)isa), di, first, n,
                      first < n ? (double)got[first] : 0.0, first < n ? (double)ref[first] : 0.0);
        }
        plm_set_kernel_path(NULL, NULL);
        free(ref), free(got), free(in.x), free(in.w), free(in.q), free(in.k), free(in.v);
        free(in.gate), free(in.up), free(in.g), free(in.l), free(in.cos_t), free(in.sin_t);
    }
}

// ---- F16 keys and values: plm_attention_forward_kv over halves == f32 over the same values ----

// half_of: x rounded to F16, with every 7th a subnormal and every 11th a large half (|x| up to
// 2^15), so each converter's subnormal and exponent handling is exercised
static uint16_t half_of(float x, size_t i) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    if (i % 7 == 3) return (uint16_t)(rng >> 48 & 0x83ff);
    if (i % 11 == 5) return (uint16_t)((rng >> 48 & 0x83ff) | 0x7800); // exponent 30
    return plm_f32_to_f16(x);
}

// attention_f16: on each path this CPU runs, for head dims 64, 128, 32, 20 (dot's and axpy's
// tails) and 40, GQA groups of 1, 3 and 4, a window with a cache that starts at p0 > 0 and
// without, in a session's (K, cap, D) layout and a layer's (S, K*D): the F16 result has the bits
// of the f32 one over plm_f16_to_f32 of the same halves, and of the baseline's
static void test_attention_f16(void) {
    static const int shapes[][7] = {
        // D, H, K, T, P, window, p0
        {64, 9, 3, 3, 37, 0, 0}, {64, 8, 2, 1, 80, 16, 65}, {128, 4, 1, 2, 20, 0, 0},
        {32, 6, 2, 5, 11, 4, 8}, {20, 4, 2, 4, 9, 0, 0},    {40, 3, 3, 2, 30, 8, 23},
    };
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int Dn = shapes[si][0], Hn = shapes[si][1], Kn = shapes[si][2], Tn = shapes[si][3];
        const int P = shapes[si][4], win = shapes[si][5], p0 = shapes[si][6], S = P + Tn;
        const int cap = S - p0 + 3; // a session's slots: more than it holds
        for (int layout = 0; layout < (p0 ? 1 : 2); layout++) { // (K, cap, D), then (S, K*D)
            const size_t kvp = layout ? (size_t)Kn * Dn : (size_t)Dn;
            const size_t kvh = layout ? (size_t)Dn : (size_t)cap * Dn;
            const size_t n = (size_t)Kn * cap * Dn, nq = (size_t)Tn * Hn * Dn;
            uint16_t *kh = malloc(n * sizeof *kh), *vh = malloc(n * sizeof *vh);
            float *kf = malloc(n * sizeof *kf), *vf = malloc(n * sizeof *vf), *q = randv(nq, 1.0f);
            for (size_t i = 0; i < n; i++) {
                kh[i] = half_of(frand() * 2.0f, i), vh[i] = half_of(frand(), i + 1);
                kf[i] = plm_f16_to_f32(kh[i]), vf[i] = plm_f16_to_f32(vh[i]);
            }
            const size_t na = (size_t)Tn * Hn * S;
            float *ref = zeros(nq + na), *want = zeros(nq + na), *got = zeros(nq + na);
            for (int isa = 0; isa < PLM_ISA_COUNT; isa++) {
                if (!plm_isa_supported((plm_isa)isa)) continue;
                plm_set_kernel_path(plm_isa_name((plm_isa)isa), NULL);
                const float sc = 1.0f / sqrtf((float)Dn);
                plm_attention_forward(want, want + nq, S, q, kf, vf, kvp, kvh, Tn, P, Hn, Kn, Dn,
                                      sc, win, p0, 0, Tn * Hn);
                plm_attention_forward_kv(got, got + nq, S, q, kh, vh, kvp, kvh, Tn, P, Hn, Kn, Dn,
                                         sc, win, p0, 0, Tn * Hn, PLM_DTYPE_F16);
                if (isa == 0) memcpy(ref, want, (nq + na) * sizeof *ref);
                size_t first = 0;
                while (first < nq + na && !memcmp(got + first, want + first, sizeof(float)) &&
                       !memcmp(got + first, ref + first, sizeof(float)))
                    first++;
                CHECK_MSG(first == nq + na,
                          "F16 attention on %s (D %d, H %d, K %d, window %d, layout %d): not "
                          "the f32 bits, first at [%zu] of %zu: %.9g vs %.9g (baseline %.9g)",
                          plm_isa_name((plm_isa)isa), Dn, Hn, Kn, win, layout, first, nq + na,
                          first < nq + na ? (double)got[first] : 0.0,
                          first < nq + na ? (double)want[first] : 0.0,
                          first < nq + na ? (double)ref[first] : 0.0);
            }
            plm_set_kernel_path(NULL, NULL);
            free(kh), free(vh), free(kf), free(vf), free(q), free(ref), free(want), free(got);
        }
    }
}

// test_f16_store: plm_f32_to_f16_n == plm_f32_to_f16 on every path, for every sign, exponent and
// top 10 mantissa bits with the 13 dropped bits at the rounding edges (0, 1, just under, at and
// over the half, all ones) and one random: 3.7M floats, subnormal halves, overflow, inf and NaN
// included; n not a multiple of 8 (the scalar tail)
static void test_f16_store(void) {
    enum { LOWS = 7 };
    const size_t n = ((size_t)1 << 19) * LOWS + 5;
    uint32_t *bits = malloc(n * sizeof *bits);
    uint16_t *want = malloc(n * sizeof *want), *got = malloc(n * sizeof *got);
    for (size_t hi = 0, k = 0; hi < (size_t)1 << 19; hi++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        const uint32_t lows[LOWS] = {0, 1, 0xfff, 0x1000, 0x1001, 0x1fff, (uint32_t)rng & 0x1fff};
        for (int j = 0; j < LOWS; j++) bits[k++] = (uint32_t)hi << 13 | lows[j];
    }
    for (size_t i = n - 5; i < n; i++) bits[i] = 0x477fefffu + (uint32_t)(i - (n - 5)) * 0x1000;
    float *x = malloc(n * sizeof *x);
    memcpy(x, bits, n * sizeof *x);
    for (size_t i = 0; i < n; i++) want[i] = plm_f32_to_f16(x[i]);
    for (int isa = 0; isa < PLM_ISA_COUNT; isa++) {
        if (!plm_isa_supported((plm_isa)isa)) continue;
        plm_set_kernel_path(plm_isa_name((plm_isa)isa), NULL);
        memset(got, 0, n * sizeof *got);
        plm_f32_to_f16_n(got, x, n);
        size_t first = 0;
        while (first < n && got[first] == want[first]) first++;
        CHECK_MSG(first == n, "plm_f32_to_f16_n on %s: float 0x%08x gives 0x%04x, want 0x%04x",
                  plm_isa_name((plm_isa)isa), first < n ? bits[first] : 0,
                  first < n ? got[first] : 0, first < n ? want[first] : 0);
    }
    plm_set_kernel_path(NULL, NULL);
    free(bits), free(x), free(want), free(got);
}

// test_nan: a NaN gate (in a vector lane and in the scalar tail) gives NaN there and nowhere else,
// on every path, with nothing undefined on the way (make san runs this under UBSan)
static void test_nan(void) {
    enum { N = 19 };
    float gate[N], up[N], g[N], out[N], dgate[N], dup[N];
    for (int i = 0; i < N; i++) gate[i] = 0.25f * (float)(i - 9), up[i] = 1.0f, g[i] = 1.0f;
    gate[1] = gate[N - 1] = NAN;
    for (int isa = 0; isa < PLM_ISA_COUNT; isa++) {
        if (!plm_isa_supported((plm_isa)isa)) continue;
        plm_set_kernel_path(plm_isa_name((plm_isa)isa), NULL);
        plm_swiglu_forward(out, gate, up, N);
        memset(dgate, 0, sizeof dgate), memset(dup, 0, sizeof dup);
        plm_swiglu_backward(dgate, dup, g, gate, up, N);
        for (int i = 0; i < N; i++) {
            const int want_nan = i == 1 || i == N - 1;
            CHECK_MSG((isnan(out[i]) != 0) == want_nan && (isnan(dgate[i]) != 0) == want_nan,
                      "swiglu on %s: [%d] = %g, dgate %g, NaN expected: %d",
                      plm_isa_name((plm_isa)isa), i, (double)out[i], (double)dgate[i], want_nan);
        }
    }
    plm_set_kernel_path(NULL, NULL);
}

int main(void) {
    test_self();
    test_isa_from_env("test_ops");
    test_forward();
    test_backward();
    test_crossentropy();
    test_paths("test_ops");
    test_paths_ops();
    test_attention_f16();
    test_f16_store();
    test_nan();
    return test_main_end("test_ops");
}
