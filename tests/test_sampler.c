// test_sampler.c: plm_sampler against its definition: greedy is argmax (first on ties), a seed
// fixes the draws, the draws follow softmax(logits / T), and top-k, top-p, min-p and the repetition
// penalty keep exactly the tokens HF's logits processors keep.
#include <math.h>
#include <string.h>

#include "pocketlm.h"
#include "test.h"

// make_v: a sampler of n_vocab ids; make: of 4
static plm_sampler *make_v(float temp, int top_k, float top_p, float min_p, float rep,
                           uint64_t seed, int32_t n_vocab) {
    plm_sampler_params p = {temp, top_k, top_p, min_p, rep, seed};
    plm_sampler *s = NULL;
    plm_error err;
    CHECK(plm_sampler_create(&s, &p, n_vocab, &err) == PLM_OK);
    return s;
}

static plm_sampler *make(float temp, int top_k, float top_p, float min_p, float rep,
                         uint64_t seed) {
    return make_v(temp, top_k, top_p, min_p, rep, seed, 4);
}

// freq: share of n draws that gave each of the 4 ids
static void freq(plm_sampler *s, const float *logits, int n, double out[4]) {
    int c[4] = {0};
    for (int i = 0; i < n; i++) c[plm_sampler_sample(s, logits, NULL, 0)]++;
    for (int k = 0; k < 4; k++) out[k] = (double)c[k] / n;
}

int main(void) {
    test_self();
    float lg[4] = {logf(0.1f), logf(0.5f), logf(0.3f), logf(0.1f)}; // probabilities .1 .5 .3 .1
    double f[4];

    // greedy: argmax, and the first index on ties
    plm_sampler *s = make(0, 0, 1, 0, 1, 1);
    CHECK(plm_sampler_sample(s, lg, NULL, 0) == 1);
    float tie[4] = {1, 3, 3, 0};
    CHECK(plm_sampler_sample(s, tie, NULL, 0) == 1);
    plm_sampler_free(s);
    // and on vocabularies of every length mod 8, with ties, NaN and -0, against the definition
    // (the first i with x[i] > every earlier maximum; a NaN never wins)
    for (int n = 1; n <= 67; n++) {
        s = make_v(0, 0, 1, 0, 1, 1, n);
        float x[67];
        for (int trial = 0; trial < 50; trial++) {
            for (int i = 0; i < n; i++) x[i] = (float)((i * 7 + trial * 13) % 5) - 2.0f;
            if (trial % 3 == 1) x[(trial * 5) % n] = NAN;
            if (trial % 4 == 2) x[(trial * 3) % n] = -0.0f;
            int best = 0;
            for (int i = 1; i < n; i++)
                if (x[i] > x[best]) best = i;
            CHECK_MSG(plm_sampler_sample(s, x, NULL, 0) == best, "n %d trial %d", n, trial);
        }
        plm_sampler_free(s);
    }

    // temperature 1: frequencies follow the probabilities
    s = make(1, 0, 1, 0, 1, 7);
    freq(s, lg, 200000, f);
    CHECK_MSG(fabs(f[0] - 0.1) < 0.005 && fabs(f[1] - 0.5) < 0.005 && fabs(f[2] - 0.3) < 0.005,
              "frequencies %.3f %.3f %.3f %.3f", f[0], f[1], f[2], f[3]);
    plm_sampler_free(s);

    // temperature 2 flattens: p ~ sqrt(p)
    s = make(2, 0, 1, 0, 1, 7);
    freq(s, lg, 200000, f);
    double z = sqrt(.1) * 2 + sqrt(.5) + sqrt(.3);
    CHECK_MSG(fabs(f[1] - sqrt(.5) / z) < 0.005, "T=2: %.3f want %.3f", f[1], sqrt(.5) / z);
    plm_sampler_free(s);

    // top-k 2: only ids 1 and 2, renormalized .625 / .375
    s = make(1, 2, 1, 0, 1, 3);
    freq(s, lg, 100000, f);
    CHECK(f[0] == 0 && f[3] == 0 && fabs(f[1] - 0.625) < 0.01);
    plm_sampler_free(s);

    // top-p 0.6: .5 < .6, .5 + .3 >= .6, so ids 1 and 2; top-p 0.5 keeps id 1 only
    s = make(1, 0, 0.6f, 0, 1, 3);
    freq(s, lg, 20000, f);
    CHECK(f[0] == 0 && f[3] == 0 && f[1] > 0 && f[2] > 0);
    plm_sampler_free(s);
    s = make(1, 0, 0.5f, 0, 1, 3);
    freq(s, lg, 2000, f);
    CHECK(f[1] == 1.0);
    plm_sampler_free(s);

    // min-p 0.5: keep p >= .25: ids 1 and 2
    s = make(1, 0, 1, 0.5f, 1, 3);
    freq(s, lg, 20000, f);
    CHECK(f[0] == 0 && f[3] == 0 && f[1] > 0 && f[2] > 0);
    plm_sampler_free(s);

    // repetition penalty 2 on seen ids: positive logits divided, negative multiplied
    float rp[4] = {2.0f, 1.5f, -1.0f, -1.5f};
    int32_t seen[2] = {0, 2};
    s = make(0, 0, 1, 0, 2, 1);
    CHECK(plm_sampler_sample(s, rp, seen, 2) == 1); // 2/2 = 1 < 1.5
    float rn[4] = {-1.0f, -1.8f, -5, -5};
    int32_t seen0[1] = {0};
    CHECK(plm_sampler_sample(s, rn, seen0, 1) == 1); // -1*2 = -2 < -1.8
    plm_sampler_free(s);

    // the seed fixes the sequence; another seed gives another
    int32_t a[64], b[64], c[64];
    plm_sampler *s1 = make(1, 0, 1, 0, 1, 42), *s2 = make(1, 0, 1, 0, 1, 42),
                *s3 = make(1, 0, 1, 0, 1, 43);
    for (int i = 0; i < 64; i++) {
        a[i] = plm_sampler_sample(s1, lg, NULL, 0);
        b[i] = plm_sampler_sample(s2, lg, NULL, 0);
        c[i] = plm_sampler_sample(s3, lg, NULL, 0);
    }
    CHECK(!memcmp(a, b, sizeof a) && memcmp(a, c, sizeof a));
    plm_sampler_free(s1);
    plm_sampler_free(s2);
    plm_sampler_free(s3);

    // bad parameters are refused
    plm_sampler_params bad = plm_sampler_default_params();
    bad.top_p = 0;
    plm_error err;
    CHECK(plm_sampler_create(&s, &bad, 4, &err) == PLM_ERR_ARG);
    plm_sampler_free(NULL);
    // plm_logprobs: log softmax at temperature 1 against a recompute in long double, the top k
    // most likely first with ties to the lower id, k = 0 and k = V, and bad arguments refused
    float lv[6] = {2.0f, -1.0f, 3.5f, 2.0f, 3.5f, -40.0f};
    double lp, top_lp[6];
    int32_t top[6];
    long double zl = 0.0L;
    for (int i = 0; i < 6; i++) zl += expl((long double)lv[i]);
    CHECK(plm_logprobs(lv, 6, 5, &lp, 6, top, top_lp, NULL) == PLM_OK);
    CHECK_MSG(fabs(lp - (double)((long double)lv[5] - logl(zl))) < 1e-12, "log p(5) = %g", lp);
    int32_t want_top[6] = {2, 4, 0, 3, 1, 5};
    CHECK_MSG(!memcmp(top, want_top, sizeof top), "top order %d %d %d %d %d %d", top[0], top[1],
              top[2], top[3], top[4], top[5]);
    double mass = 0.0;
    for (int j = 0; j < 6; j++) {
        CHECK(fabs(top_lp[j] - (double)((long double)lv[top[j]] - logl(zl))) < 1e-12);
        mass += exp(top_lp[j]);
    }
    CHECK_MSG(fabs(mass - 1.0) < 1e-12, "probabilities sum to %.15f", mass);
    CHECK(plm_logprobs(lv, 6, 2, &lp, 2, top, top_lp, NULL) == PLM_OK && top[0] == 2 &&
          top[1] == 4 && lp == top_lp[0] && top_lp[0] == top_lp[1]);
    CHECK(plm_logprobs(lv, 6, 1, &lp, 0, NULL, NULL, NULL) == PLM_OK && lp < -5.3 && lp > -5.5);
    CHECK(plm_logprobs(lv, 6, 6, &lp, 0, NULL, NULL, &err) == PLM_ERR_ARG &&
          strstr(err.msg, "id 6"));
    CHECK(plm_logprobs(lv, 6, 0, &lp, 7, top, top_lp, NULL) == PLM_ERR_ARG);
    CHECK(plm_logprobs(lv, 6, 0, &lp, 2, NULL, top_lp, NULL) == PLM_ERR_ARG);

    return test_main_end("test_sampler");
}
