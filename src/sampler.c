// sampler.c: plm_sampler, choosing the next token from logits the way HF generate's logits
// processors do, in their order: repetition penalty, temperature, top-k, top-p, min-p, then a draw.
// The random number comes from the sampler's own xorshift64* state (rng.h), seeded explicitly, so
// a seed gives the same tokens on every machine and thread count.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "rng.h"

typedef struct {
    float logit;
    int32_t id;
} candidate;

struct plm_sampler {
    plm_sampler_params p; // the settings
    int32_t n_vocab;      // V
    uint64_t rng;         // xorshift64* state
    float *logits;        // (V) working copy
    candidate *cand;      // (V) candidates: id and logit
    float *prob;          // (V) candidate probabilities, in cand order
};

plm_sampler_params plm_sampler_default_params(void) {
    plm_sampler_params p = {0.0f, 0, 1.0f, 0.0f, 1.0f, 42};
    return p;
}

plm_status plm_sampler_create(plm_sampler **out, const plm_sampler_params *params, int32_t n_vocab,
                              plm_error *err) {
    if (!out || n_vocab < 1) return plm_fail(err, PLM_ERR_ARG, "sampler: bad arguments");
    *out = NULL;
    plm_sampler_params p = params ? *params : plm_sampler_default_params();
    if (!(p.temperature >= 0.0f) || p.top_k < 0 || !(p.top_p > 0.0f && p.top_p <= 1.0f) ||
        !(p.min_p >= 0.0f && p.min_p <= 1.0f) || !(p.repetition_penalty > 0.0f))
        return plm_fail(err, PLM_ERR_ARG,
                        "sampler: want temperature >= 0, top_k >= 0, top_p in (0, 1], min_p in "
                        "[0, 1], repetition_penalty > 0");
    plm_sampler *s = plm_alloc(1, sizeof *s);
    if (!s) return plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    s->p = p;
    s->n_vocab = n_vocab;
    s->rng = rng_seed(p.seed);
    s->logits = plm_alloc((size_t)n_vocab, sizeof(float));
    s->cand = plm_alloc((size_t)n_vocab, sizeof(candidate));
    s->prob = plm_alloc((size_t)n_vocab, sizeof(float));
    if (!s->logits || !s->cand || !s->prob) {
        plm_sampler_free(s);
        return plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    }
    *out = s;
    return PLM_OK;
}

void plm_sampler_free(plm_sampler *s) {
    if (!s) return;
    free(s->logits);
    free(s->cand);
    free(s->prob);
    free(s);
}

// ---- candidate selection ----

// order: higher logit first, then lower id, so the order is total and deterministic
static int by_logit_desc(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

// argmax: the first index of the largest of x (n >= 1), as torch.argmax with no NaN (a NaN never
// wins a comparison, so it is never chosen unless x[0] is one). Eight running maxima, then the
// first index that holds theirs: no copy of x, and no chain of dependent compares and branches.
static int32_t argmax(const float *x, int32_t n) {
    float m[8];
    for (int k = 0; k < 8; k++) m[k] = x[0];
    int32_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) m[k] = x[i + k] > m[k] ? x[i + k] : m[k];
    for (; i < n; i++) m[0] = x[i] > m[0] ? x[i] : m[0];
    float mx = m[0];
    for (int k = 1; k < 8; k++) mx = m[k] > mx ? m[k] : mx;
    for (i = 0; i < n; i++)
        if (x[i] == mx) return i;
    return 0; // x[0] is NaN
}

int32_t plm_sampler_sample(plm_sampler *s, const float *logits, const int32_t *history,
                           int32_t n_history) {
    int32_t V = s->n_vocab;
    if (s->p.temperature == 0.0f && s->p.repetition_penalty == 1.0f) return argmax(logits, V);
    float *x = s->logits;
    memcpy(x, logits, (size_t)V * sizeof *x);
    // repetition penalty (HF RepetitionPenaltyLogitsProcessor): once per distinct id seen
    if (s->p.repetition_penalty != 1.0f)
        for (int32_t i = 0; i < n_history; i++) {
            int32_t id = history[i];
            if (id < 0 || id >= V) continue;
            float v = logits[id];
            x[id] = v < 0.0f ? v * s->p.repetition_penalty : v / s->p.repetition_penalty;
        }
    // greedy: argmax, first index on ties (as torch.argmax)
    if (s->p.temperature == 0.0f) return argmax(x, V);
    float mx = -INFINITY;
    for (int32_t i = 0; i < V; i++) {
        x[i] /= s->p.temperature;
        if (x[i] > mx) mx = x[i];
    }
    // candidates: ids whose probability can matter. With top-k, the k best; with top-p alone, drop
    // ids that cannot enter the nucleus cheaply first (exp(x - max) < 1e-9 of the top one).
    int32_t n = 0;
    float floor_logit = (s->p.top_k > 0 || s->p.top_p < 1.0f) ? mx - 20.7f : -INFINITY;
    for (int32_t i = 0; i < V; i++)
        if (x[i] >= floor_logit) s->cand[n].logit = x[i], s->cand[n++].id = i;
    if (s->p.top_k > 0 || s->p.top_p < 1.0f)
        qsort(s->cand, (size_t)n, sizeof *s->cand, by_logit_desc);
    if (s->p.top_k > 0 && n > s->p.top_k) n = s->p.top_k;
    // softmax over the candidates
    double sum = 0.0;
    for (int32_t j = 0; j < n; j++) {
        s->prob[j] = expf(s->cand[j].logit - mx);
        sum += (double)s->prob[j];
    }
    for (int32_t j = 0; j < n; j++) s->prob[j] = (float)((double)s->prob[j] / sum);
    // top-p (HF TopPLogitsWarper): the smallest prefix whose mass reaches top_p, at least one
    if (s->p.top_p < 1.0f) {
        double cum = 0.0;
        for (int32_t j = 0; j < n; j++) {
            cum += (double)s->prob[j];
            if (cum >= (double)s->p.top_p) {
                n = j + 1;
                break;
            }
        }
    }
    // min-p: keep ids with probability >= min_p * the best probability
    double mass = 0.0;
    float pmax = 0.0f;
    for (int32_t j = 0; j < n; j++)
        if (s->prob[j] > pmax) pmax = s->prob[j];
    for (int32_t j = 0; j < n; j++) {
        if (s->prob[j] < s->p.min_p * pmax) s->prob[j] = 0.0f;
        mass += (double)s->prob[j];
    }
    // draw: walk the cumulative mass to coin * mass
    double r = (double)rng_unit(rng_next(&s->rng)) * mass, cum = 0.0; // coin in [0, 1)
    int32_t last = 0;
    for (int32_t j = 0; j < n; j++) {
        if (s->prob[j] <= 0.0f) continue;
        last = j;
        cum += (double)s->prob[j];
        if (r < cum) return s->cand[j].id;
    }
    return s->cand[last].id;
}

// ---- log-probabilities ----

plm_status plm_logprobs(const float *logits, int32_t n_vocab, int32_t id, double *logprob,
                        int32_t k, int32_t *top_ids, double *top_logprobs, plm_error *err) {
    if (!logits || n_vocab < 1 || id < 0 || id >= n_vocab || !logprob || k < 0 || k > n_vocab ||
        (k > 0 && (!top_ids || !top_logprobs)))
        return plm_fail(err, PLM_ERR_ARG,
                        "logprobs: want logits of n_vocab >= 1, 0 <= id < n_vocab and 0 <= k <= "
                        "n_vocab with room for k; got n_vocab %d, id %d, k %d",
                        n_vocab, id, k);
    double mx = (double)logits[0], sum = 0.0;
    for (int32_t i = 1; i < n_vocab; i++)
        if ((double)logits[i] > mx) mx = (double)logits[i];
    for (int32_t i = 0; i < n_vocab; i++) sum += exp((double)logits[i] - mx);
    double ls = log(sum);
    *logprob = (double)logits[id] - mx - ls;
    // the k best by insertion, in (logit descending, id ascending) order: ids come in ascending
    // order, so a later id enters only above a strictly lower logit
    int32_t n = 0;
    for (int32_t i = 0; i < n_vocab && k > 0; i++) {
        if (n == k && !(logits[i] > logits[top_ids[k - 1]])) continue;
        int32_t j = n < k ? n++ : k - 1;
        for (; j > 0 && logits[i] > logits[top_ids[j - 1]]; j--) top_ids[j] = top_ids[j - 1];
        top_ids[j] = i;
    }
    for (int32_t j = 0; j < k; j++) top_logprobs[j] = (double)logits[top_ids[j]] - mx - ls;
    return PLM_OK;
}
