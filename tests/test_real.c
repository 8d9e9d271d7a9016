// test_real.c: the real SmolLM2-135M-Instruct (models/, fetched by `make model`) against HF
// transformers (tests/ref/smollm2-real.json, made by scripts/ref_real.py from the same weights):
// tokenizer ids, every token's log-probability within 1e-3, greedy 64-token continuations equal
// (a difference is accepted only at a near-tie, top-2 gap < 1e-4, and reported); 1 thread == 2
// threads; q8_0 perplexity on PAWS test sentences within 1% of f32. The file's Q4_1 weights kept
// as Q4_1 (--dtype auto: the Q8_0 embedding stays Q8_0, so the weights are the f32 run's): logits
// near f32's and perplexity within 1%; --dtype q4_1 (the embedding requantized to Q4_1): the same
// logits on every kernel path and thread count (the Q4 kernels are the same bits everywhere), so
// the same greedy tokens. The f32 model saved as llama.cpp's Q4_K_M mix (pocketlm convert --quant
// q4_k_m) and loaded with auto: Q5_0, Q6_K and Q8_0 kept, Q4_K kept; the same
// logits and greedy tokens on every path and thread count, perplexity within 15% of f32's and
// within 1% of the same file loaded as f32 (the file's own loss is the requantization's). The model
// written as a Q6_K GGUF (its down_proj Q6_K) and loaded with auto: logits near the f32 load of
// that file's, perplexity within 1%, the same logits and greedy tokens on every path and thread
// count. Skips when the model is absent.
#define _DEFAULT_SOURCE // mkstemps
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
#include "model.h"
#include "test.h"

#define MODEL "models/SmolLM2-135M-Instruct.Q4_1.gguf"
#define REF   "tests/ref/smollm2-real.json"
#define PAWS  "data/paws/test.tsv"

// json_ints: array token a as ints into a new array of *n
static int32_t *json_ints(const plm_json *j, int32_t a, int32_t *n) {
    *n = j->tok[a].size;
    int32_t *v = malloc(((size_t)*n + 1) * sizeof *v);
    for (int32_t k = 0, i = a + 1; k < *n; k++, i = j->tok[i].next) {
        double x;
        plm_json_num(j, i, &x);
        v[k] = (int32_t)x;
    }
    return v;
}

static double *json_doubles(const plm_json *j, int32_t a, int32_t *n) {
    *n = j->tok[a].size;
    double *v = malloc(((size_t)*n + 1) * sizeof *v);
    for (int32_t k = 0, i = a + 1; k < *n; k++, i = j->tok[i].next) plm_json_num(j, i, &v[k]);
    return v;
}

static plm_session *session(const plm_model *m, int threads, int n_ctx) {
    plm_session_params sp = {n_ctx, threads, NULL, PLM_DTYPE_F32};
    plm_session *s = NULL;
    plm_error err;
    if (plm_session_create(&s, m, &sp, &err) != PLM_OK) fprintf(stderr, "%s\n", err.msg);
    return s;
}

// log_probs: log p(ids[t] | ids[:t]) for t = 1..n-1 into lp (n-1), in double
static void log_probs(plm_session *s, const int32_t *ids, int32_t n, double *lp) {
    size_t V = (size_t)plm_model_config(plm_session_model(s))->vocab_size;
    float *logits = malloc((size_t)n * V * sizeof *logits);
    plm_error err;
    plm_session_truncate(s, 0);
    if (plm_session_decode_all(s, ids, n, logits, &err) != PLM_OK) fprintf(stderr, "%s\n", err.msg);
    for (int32_t t = 1; t < n; t++) {
        const float *l = logits + (size_t)(t - 1) * V;
        double mx = -INFINITY, sum = 0;
        for (size_t i = 0; i < V; i++) mx = fmax(mx, (double)l[i]);
        for (size_t i = 0; i < V; i++) sum += exp((double)l[i] - mx);
        lp[t - 1] = (double)l[ids[t]] - mx - log(sum);
    }
    free(logits);
}

static void test_prompt(const plm_model *m, plm_session *s, const plm_json *j, int32_t rec) {
    char name[64];
    plm_json_str(j, plm_json_get(j, rec, "name"), name, sizeof name);
    int32_t t = plm_json_get(j, rec, "text");
    int64_t tn = plm_json_str(j, t, NULL, 0);
    char *text = malloc((size_t)tn + 1);
    plm_json_str(j, t, text, (size_t)tn + 1);
    int32_t n, ng, nl, ngap;
    int32_t *want_ids = json_ints(j, plm_json_get(j, rec, "ids"), &n);
    int32_t *want_greedy = json_ints(j, plm_json_get(j, rec, "greedy"), &ng);
    double *want_lp = json_doubles(j, plm_json_get(j, rec, "logprobs"), &nl);
    double *gap = json_doubles(j, plm_json_get(j, rec, "greedy_gap"), &ngap);

    // tokenizer: the same ids as HF
    int32_t *ids = malloc(((size_t)n + 1) * sizeof *ids);
    int32_t got_n = plm_tokenizer_encode(m->tokenizer, text, (size_t)tn, ids, n);
    CHECK_MSG(got_n == n && !memcmp(ids, want_ids, (size_t)n * sizeof *ids), "%s: token ids differ",
              name);

    // every token's log-probability within 1e-3
    double *lp = malloc(((size_t)n + 1) * sizeof *lp), worst = 0;
    log_probs(s, want_ids, n, lp);
    for (int32_t k = 0; k < nl; k++) worst = fmax(worst, fabs(lp[k] - want_lp[k]));
    CHECK_MSG(worst <= 1e-3, "%s: log-prob differs by %.3g > 1e-3", name, worst);

    // greedy continuation with the KV cache
    int32_t out[128], none = -1;
    plm_generate_params gp = plm_generate_default_params();
    gp.max_tokens = ng;
    gp.stop_tokens = &none;
    gp.n_stop_tokens = 0;
    plm_generate_result res;
    plm_error err;
    plm_session_truncate(s, 0);
    CHECK(plm_generate(s, want_ids, n, &gp, out, 128, &res, &err) == PLM_OK);
    int32_t k = 0;
    while (k < ng && out[k] == want_greedy[k]) k++;
    if (k < ng && gap[k] < 1e-4)
        fprintf(stderr,
                "  %s: greedy differs at step %d, a near-tie (HF top-2 gap %.2g): accepted\n", name,
                k, gap[k]);
    else
        CHECK_MSG(k == ng, "%s: greedy differs at step %d (HF gap %.3g)", name, k,
                  k < ng ? gap[k] : 0);
    fprintf(stderr, "  %-16s T=%3d max|dlogp|=%.2e greedy %d/%d\n", name, n, worst, k, ng);
    free(text);
    free(want_ids);
    free(want_greedy);
    free(want_lp);
    free(gap);
    free(ids);
    free(lp);
}

// paws_text: the first n sentence1 fields of PAWS test, one per line
static char *paws_text(int n) {
    FILE *f = fopen(PAWS, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 20, len = 0;
    char *out = malloc(cap), line[4096];
    int row = 0;
    while (fgets(line, sizeof line, f) && row <= n) {
        char *a = strchr(line, '\t'), *b = a ? strchr(a + 1, '\t') : NULL;
        if (!a || !b || row++ == 0) continue; // header
        size_t k = (size_t)(b - a - 1);
        if (len + k + 2 > cap) break;
        memcpy(out + len, a + 1, k);
        len += k;
        out[len++] = '\n';
    }
    out[len] = 0;
    fclose(f);
    return out;
}

// mean_nll: mean NLL of ids in windows of 128 tokens (each window's first token unscored)
static double mean_nll(const plm_model *m, const int32_t *ids, int32_t n) {
    plm_session *s = session(m, 0, 128);
    double *lp = malloc(128 * sizeof *lp), nll = 0;
    int32_t scored = 0;
    for (int32_t w = 0; w + 1 < n; w += 128) {
        int32_t k = n - w < 128 ? n - w : 128;
        log_probs(s, ids + w, k, lp);
        for (int32_t t = 0; t < k - 1; t++) nll -= lp[t];
        scored += k - 1;
    }
    plm_session_free(s);
    free(lp);
    return nll / scored;
}

// same_on_paths: q's logits and greedy 16 tokens from the first 16 of ids are the same on each
// kernel path and for 1 and 2 threads (what: the run's name in messages).
static void same_on_paths(const plm_model *q, const int32_t *ids, const char *what) {
    const size_t V = (size_t)q->config.vocab_size;
    float *lf = malloc(V * sizeof *lf), *la = malloc(16 * V * sizeof *la); // la: 15 tokens' logits
    plm_error err;
    const char *paths[] = {"auto", "avx2", "avxvnni", "scalar"};
    int32_t want[16];
    for (int p = 0; p < 4; p++) {
        if (plm_set_kernel_path(paths[p], &err) != PLM_OK) continue; // not on this CPU
        for (int th = 1; th <= 2; th++) {
            plm_session *s = session(q, th, 64);
            int32_t tok = ids[15], got[16];
            plm_session_decode_all(s, ids, 15, la, &err);
            for (int k = 0; k < 16; k++) {
                plm_session_decode_all(s, &tok, 1, la, &err);
                size_t best = 0;
                for (size_t i = 1; i < V; i++)
                    if (la[i] > la[best]) best = i;
                got[k] = tok = (int32_t)best;
            }
            if (!p && th == 1) memcpy(want, got, sizeof want);
            CHECK_MSG(!memcmp(want, got, sizeof want),
                      "%s greedy tokens on path %s, %d threads differ from the first run", what,
                      plm_kernel_path(), th);
            if (!p && th == 1) memcpy(lf, la, V * sizeof *la); // the last step's logits
            CHECK_MSG(!memcmp(lf, la, V * sizeof *la), "%s logits on path %s, %d threads differ",
                      what, plm_kernel_path(), th);
            plm_session_free(s);
        }
    }
    plm_set_kernel_path("auto", &err);
    free(lf), free(la);
}

// logits_diff: the largest and the rms difference of model a's logits from f's on the first 64
// tokens of ids.
static void logits_diff(const plm_model *f, const plm_model *a, const int32_t *ids, double *worst,
                        double *rms) {
    const size_t V = (size_t)f->config.vocab_size;
    float *lf = malloc(64 * V * sizeof *lf), *la = malloc(64 * V * sizeof *la);
    plm_error err;
    plm_session *sf = session(f, 0, 64), *sa = session(a, 0, 64);
    plm_session_decode_all(sf, ids, 64, lf, &err);
    plm_session_decode_all(sa, ids, 64, la, &err);
    *worst = *rms = 0;
    for (size_t i = 0; i < 64 * V; i++) {
        const double e = fabs((double)la[i] - (double)lf[i]);
        *worst = fmax(*worst, e), *rms += e * e;
    }
    *rms = sqrt(*rms / (64.0 * (double)V));
    plm_session_free(sf);
    plm_session_free(sa);
    free(lf), free(la);
}

// test_q4: the Q4 sections of the header on the first n of ids (n >= 64); f: the f32 model, q8:
// the q8_0 one, nf: f's mean NLL of ids.
static void test_q4(const plm_model *f, const plm_model *q8, const int32_t *ids, int32_t n,
                    double nf) {
    plm_load_params lp = plm_load_default_params();
    plm_model *a = NULL, *q = NULL;
    plm_error err;
    lp.dtype = PLM_DTYPE_AUTO;
    CHECK_MSG(plm_model_load(&a, MODEL, &lp, &err) == PLM_OK, "%s", err.msg);
    lp.dtype = PLM_DTYPE_Q4_1;
    CHECK_MSG(plm_model_load(&q, MODEL, &lp, &err) == PLM_OK, "%s", err.msg);
    if (!a || !q) return;
    CHECK(a->dtype == PLM_DTYPE_Q4_1 && a->embed_tokens.dtype == PLM_DTYPE_Q8_0 &&
          a->layers[0].q_proj.dtype == PLM_DTYPE_Q4_1 && q->embed_tokens.dtype == PLM_DTYPE_Q4_1);
    // the same weights, the inputs of every matmul rounded to 8 bits: logits (about -20 .. 20)
    // near f32's, as near as the q8_0 run's (which requantizes the weights too): measured max
    // |diff| 1.10, rms 0.21 (q8_0: 1.32, 0.22)
    double worst[2], rms[2];
    for (int k = 0; k < 2; k++) logits_diff(f, k ? q8 : a, ids, &worst[k], &rms[k]);
    fprintf(stderr,
            "  vs f32 logits, 64 tokens: q4_1 auto max |diff| %.4f rms %.5f, q8_0 %.4f %.5f\n",
            worst[0], rms[0], worst[1], rms[1]);
    CHECK_MSG(worst[0] < 2.0 && rms[0] < 0.3, "q4_1 logits differ from f32: max %.4f rms %.5f",
              worst[0], rms[0]);
    double na = mean_nll(a, ids, n), nq = mean_nll(q, ids, n);
    fprintf(stderr, "  perplexity f32 %.4f, q4_1 auto %.4f (ratio %.4f), q4_1 %.4f\n", exp(nf),
            exp(na), exp(na - nf), exp(nq));
    CHECK_MSG(fabs(exp(na - nf) - 1) < 0.01, "q4_1 (auto) perplexity off by %.2f%%",
              100 * (exp(na - nf) - 1));
    CHECK_MSG(exp(nq - nf) < 1.15, "q4_1 perplexity %.2f%% above f32's", 100 * (exp(nq - nf) - 1));
    same_on_paths(q, ids, "q4_1");
    plm_model_free(a);
    plm_model_free(q);
}

// test_q4_k_m: the f32 model f saved as Q4_K_M, loaded with auto (see the top); nf: f's mean NLL
// of the first n of ids.
static void test_q4_k_m(const plm_model *f, const int32_t *ids, int32_t n, double nf) {
    const char *path = "build/tests/SmolLM2-135M-Instruct.Q4_K_M.gguf";
    plm_load_params lp = plm_load_default_params();
    plm_model *k = NULL;
    plm_error err;
    lp.dtype = PLM_DTYPE_AUTO;
    CHECK_MSG(plm_model_save_ftype(f, path, PLM_FTYPE_Q4_K_M, &err) == PLM_OK, "%s", err.msg);
    CHECK_MSG(plm_model_load(&k, path, &lp, &err) == PLM_OK, "%s", err.msg);
    if (!k) return;
    size_t count[PLM_DTYPE_Q5_K + 1] = {0}; // linear weights per dtype in memory
    for (int l = 0; l < k->config.num_hidden_layers; l++) {
        const plm_layer *y = &k->layers[l];
        const plm_mat *ws[7] = {&y->q_proj,    &y->k_proj,  &y->v_proj,   &y->o_proj,
                                &y->gate_proj, &y->up_proj, &y->down_proj};
        for (int i = 0; i < 7; i++) count[ws[i]->dtype]++;
    }
    fprintf(stderr,
            "  Q4_K_M as auto: %zu q5_0, %zu q4_k, %zu q4_1, %zu q6_k, %zu q8_0 layer weights\n",
            count[PLM_DTYPE_Q5_0], count[PLM_DTYPE_Q4_K], count[PLM_DTYPE_Q4_1],
            count[PLM_DTYPE_Q6_K], count[PLM_DTYPE_Q8_0]);
    CHECK_MSG(count[PLM_DTYPE_Q5_0] > 0 && count[PLM_DTYPE_Q4_K] > 0 && count[PLM_DTYPE_Q6_K] > 0,
              "Q4_K_M as auto: no Q5_0, no Q4_K or no Q6_K weights");
    // the file's own loss (its values as f32) against what the kernels add (inputs to 8 bits)
    plm_model *kf = NULL;
    lp.dtype = PLM_DTYPE_F32;
    CHECK_MSG(plm_model_load(&kf, path, &lp, &err) == PLM_OK, "%s", err.msg);
    const double nk = mean_nll(k, ids, n), nkf = kf ? mean_nll(kf, ids, n) : 0;
    plm_model_free(kf);
    fprintf(stderr,
            "  perplexity f32 %.4f, Q4_K_M file as f32 %.4f (ratio %.4f), as auto %.4f (ratio "
            "%.4f, %.4f to the file's f32)\n",
            exp(nf), exp(nkf), exp(nkf - nf), exp(nk), exp(nk - nf), exp(nk - nkf));
    CHECK_MSG(exp(nk - nf) < 1.15, "Q4_K_M perplexity %.2f%% above f32's",
              100 * (exp(nk - nf) - 1));
    CHECK_MSG(fabs(exp(nk - nkf) - 1) < 0.01, "Q4_K_M auto perplexity off the file's f32 by %.2f%%",
              100 * (exp(nk - nkf) - 1));
    same_on_paths(k, ids, "Q4_K_M auto");
    plm_model_free(k);
    remove(path);
}

// test_q6k: the f32 model f written as a Q6_K GGUF (as `pocketlm convert --quant q6_k`: down_proj
// Q6_K, the 576-column weights Q8_0, llama.cpp's fallback) and loaded with auto: the Q6_K weights
// kept; against the same file loaded as f32 (the same weights: the file's quantization alone costs
// about 1% of perplexity, NOTES.md) logits near and perplexity within 1%; the same logits and
// greedy tokens on every path and thread count. nf: f's mean NLL of ids (n >= 64).
static void test_q6k(const plm_model *f, const int32_t *ids, int32_t n, double nf) {
    char path[] = "/tmp/plm_real_q6k_XXXXXX.gguf";
    const int fd = mkstemps(path, 5);
    plm_error err;
    plm_model *a = NULL, *f6 = NULL;
    plm_load_params lp = plm_load_default_params();
    CHECK_MSG(fd >= 0 && plm_model_save_ftype(f, path, PLM_FTYPE_Q6_K, &err) == PLM_OK &&
                  plm_model_load(&f6, path, &lp, &err) == PLM_OK,
              "q6_k: %s", err.msg);
    lp.dtype = PLM_DTYPE_AUTO;
    CHECK_MSG(f6 && plm_model_load(&a, path, &lp, &err) == PLM_OK, "q6_k: %s", err.msg);
    if (fd >= 0) close(fd), remove(path);
    if (a) {
        CHECK(a->layers[0].down_proj.dtype == PLM_DTYPE_Q6_K &&
              a->layers[29].down_proj.dtype == PLM_DTYPE_Q6_K &&
              a->layers[0].q_proj.dtype == PLM_DTYPE_Q8_0 &&
              a->embed_tokens.dtype == PLM_DTYPE_Q8_0);
        double worst, rms;
        logits_diff(f6, a, ids, &worst, &rms);
        const double n6 = mean_nll(f6, ids, n), na = mean_nll(a, ids, n);
        fprintf(stderr,
                "  q6_k file: auto vs its f32 logits max |diff| %.4f rms %.5f; perplexity f32 "
                "%.4f, the file as f32 %.4f, auto %.4f (ratio %.4f)\n",
                worst, rms, exp(nf), exp(n6), exp(na), exp(na - n6));
        CHECK_MSG(worst < 2.0 && rms < 0.3, "q6_k logits differ from f32: max %.4f rms %.5f", worst,
                  rms);
        CHECK_MSG(fabs(exp(na - n6) - 1) < 0.01, "q6_k (auto) perplexity off by %.2f%%",
                  100 * (exp(na - n6) - 1));
        same_on_paths(a, ids, "q6_k");
    }
    plm_model_free(a);
    plm_model_free(f6);
}

int main(void) {
    test_self();
    test_isa_from_env("test_real");
    plm_model *m = NULL, *q = NULL;
    plm_error err;
    plm_load_params lp = plm_load_default_params();
    FILE *probe = fopen(MODEL, "rb");
    if (!probe) {
        printf("SKIP test_real: no %s (install with: make model)\n", MODEL);
        return test_main_end("test_real");
    }
    fclose(probe);
    char *ref;
    size_t ref_len;
    plm_json j;
    if (plm_model_load(&m, MODEL, &lp, &err) != PLM_OK ||
        plm_file_read(REF, &ref, &ref_len, &err) != PLM_OK) {
        CHECK_MSG(0, "%s", err.msg);
        return test_main_end("test_real");
    }
    CHECK(plm_json_parse(&j, ref, ref_len, REF, &err) == PLM_OK);
    int32_t prompts = plm_json_get(&j, 0, "prompts");
    plm_session *s = session(m, 0, 1024);
    for (int32_t k = 0; k < j.tok[prompts].size; k++)
        test_prompt(m, s, &j, plm_json_at(&j, prompts, k));
    plm_session_free(s);

    // 1 thread == 2 threads on the real model, and q8_0 perplexity within 1% of f32
    char *text = paws_text(100);
    CHECK_MSG(text != NULL, "%s missing", PAWS);
    if (text) {
        int32_t n = plm_tokenizer_encode(m->tokenizer, text, strlen(text), NULL, 0);
        int32_t *ids = malloc((size_t)n * sizeof *ids);
        plm_tokenizer_encode(m->tokenizer, text, strlen(text), ids, n);
        size_t V = (size_t)m->config.vocab_size;
        float *l1 = malloc(64 * V * sizeof *l1), *l2 = malloc(64 * V * sizeof *l2);
        plm_session *s1 = session(m, 1, 64), *s2 = session(m, 2, 64);
        plm_session_decode_all(s1, ids, 64, l1, &err);
        plm_session_decode_all(s2, ids, 64, l2, &err);
        CHECK_MSG(!memcmp(l1, l2, 64 * V * sizeof *l1), "real model: 1 and 2 threads differ");
        plm_session_free(s1);
        plm_session_free(s2);
        free(l1);
        free(l2);
        lp.dtype = PLM_DTYPE_Q8_0;
        CHECK(plm_model_load(&q, MODEL, &lp, &err) == PLM_OK);
        double nf = mean_nll(m, ids, n), nq = q ? mean_nll(q, ids, n) : 0;
        double ratio = exp(nq) / exp(nf);
        fprintf(stderr, "  PAWS test, %d tokens: perplexity f32 %.4f q8_0 %.4f (ratio %.4f)\n", n,
                exp(nf), exp(nq), ratio);
        CHECK_MSG(fabs(ratio - 1) < 0.01, "q8_0 perplexity off by %.2f%%", 100 * (ratio - 1));
        test_q4(m, q, ids, n, nf);
        test_q4_k_m(m, ids, n, nf);
        test_q6k(m, ids, n, nf);
        free(ids);
        free(text);
    }
    plm_json_free(&j);
    free(ref);
    plm_model_free(q);
    plm_model_free(m);
    return test_main_end("test_real");
}
