// test_train.c: LoRA training against PyTorch + PEFT (tests/ref/train-*.ref.safetensors, made by
// tests/make_ref_train.py): the step-0 loss and every trainable tensor's gradient, then the loss
// of 10 AdamW steps (clipping, warmup + cosine) and the weights after them. Consistency checks:
// the trainer's forward == the session's logits with the same adapter; 1 thread == 2 threads bit
// for bit; a run stopped after 5 steps and resumed from its state == the uninterrupted run.
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lora.h"
#include "model.h"
#include "safetensors.h"
#include "test.h"
#include "trainer.h"

typedef struct {
    plm_model *m;
    plm_safetensors ref;
    plm_example ex[2][3]; // the two reference micro-batches
    int32_t n_ex[2];
    int32_t *ids[2];
} fixture;

static float *get(const plm_safetensors *st, const char *name, size_t *n) {
    const plm_st_tensor *t = plm_safetensors_find(st, name);
    if (!t) {
        CHECK_MSG(0, "reference tensor %s missing", name);
        return NULL;
    }
    float *v = malloc(t->n_elems * sizeof *v);
    plm_st_tensor_to_f32(t, 0, t->n_elems, v, NULL);
    if (n) *n = t->n_elems;
    return v;
}

static const char *meta(const char *path, const char *key, char *out, size_t cap) {
    // the metadata holds rank, alpha, targets, token ids: read them from the JSON header
    FILE *f = fopen(path, "rb");
    uint64_t hl = 0;
    out[0] = 0;
    if (!f || fread(&hl, 8, 1, f) != 1 || hl > 1 << 20) return out;
    char *h = calloc(1, hl + 1);
    if (fread(h, 1, hl, f) == hl) {
        char pat[64];
        snprintf(pat, sizeof pat, "\"%s\":\"", key);
        char *at = strstr(h, pat);
        if (at) {
            at += strlen(pat);
            size_t k = strcspn(at, "\"");
            snprintf(out, cap, "%.*s", (int)k, at);
        }
    }
    free(h);
    fclose(f);
    return out;
}

// make_lora: the adapter of the reference run, at its initial values
static plm_lora *make_lora(const fixture *fx, const char *path) {
    char buf[256];
    int rank = atoi(meta(path, "rank", buf, sizeof buf));
    float alpha = (float)atof(meta(path, "alpha", buf, sizeof buf));
    uint32_t targets = 0;
    meta(path, "targets", buf, sizeof buf);
    for (int t = 0; t < PLM_LORA_N_TARGETS; t++) {
        char pat[32];
        snprintf(pat, sizeof pat, "%s", plm_lora_targets[t].name);
        if (strstr(buf, pat)) targets |= 1u << t;
    }
    int32_t ids[8], n = 0;
    meta(path, "token_ids", buf, sizeof buf);
    for (char *p = buf; *p && n < 8; p = strchr(p, ',') ? strchr(p, ',') + 1 : p + strlen(p))
        ids[n++] = atoi(p);
    float *rows = n ? get(&fx->ref, "init.token_rows", NULL) : NULL;
    plm_lora *lo = NULL;
    plm_error err;
    if (plm_lora_create(&lo, &fx->m->config, rank, alpha, 0.0f, targets, ids, n, rows,
                        fx->m->config.vocab_size, NULL, 1, &err) != PLM_OK) {
        CHECK_MSG(0, "lora_create: %s", err.msg);
        free(rows);
        return NULL;
    }
    free(rows);
    for (int32_t l = 0; l < lo->n_layers; l++)
        for (int t = 0; t < PLM_LORA_N_TARGETS; t++) {
            plm_lora_pair *pr = &lo->pairs[l * PLM_LORA_N_TARGETS + t];
            if (!pr->A) continue;
            char name[96];
            size_t na, nb;
            snprintf(name, sizeof name, "init.layers.%d.%s.lora_A", l, plm_lora_targets[t].name);
            float *a = get(&fx->ref, name, &na);
            snprintf(name, sizeof name, "init.layers.%d.%s.lora_B", l, plm_lora_targets[t].name);
            float *b = get(&fx->ref, name, &nb);
            if (a && b) {
                memcpy(pr->A, a, na * sizeof *a);
                memcpy(pr->B, b, nb * sizeof *b);
            }
            free(a);
            free(b);
        }
    return lo;
}

static int load_fixture(fixture *fx, const char *variant, char *path, size_t cap) {
    memset(fx, 0, sizeof *fx);
    plm_error err;
    snprintf(path, cap, "tests/ref/%s.ref.safetensors", variant);
    if (plm_safetensors_open(&fx->ref, path, &err) != PLM_OK) {
        CHECK_MSG(0, "%s", err.msg);
        return 0;
    }
    char model[64], dir[96];
    snprintf(dir, sizeof dir, "tests/ref/%s", meta(path, "model", model, sizeof model));
    plm_load_params lp = plm_load_default_params();
    if (plm_model_load(&fx->m, dir, &lp, &err) != PLM_OK) {
        CHECK_MSG(0, "%s", err.msg);
        return 0;
    }
    for (int k = 0; k < 2; k++) {
        char name[32];
        size_t nl, ni;
        snprintf(name, sizeof name, "batch%d.ids", k);
        float *ids = get(&fx->ref, name, &ni);
        snprintf(name, sizeof name, "batch%d.lens", k);
        float *lens = get(&fx->ref, name, &nl);
        snprintf(name, sizeof name, "batch%d.prompt", k);
        float *pr = get(&fx->ref, name, NULL);
        fx->ids[k] = malloc(ni * sizeof(int32_t));
        for (size_t i = 0; i < ni; i++) fx->ids[k][i] = (int32_t)ids[i];
        int32_t off = 0;
        fx->n_ex[k] = (int32_t)nl;
        for (size_t i = 0; i < nl; i++) {
            fx->ex[k][i] = (plm_example){fx->ids[k] + off, (int32_t)lens[i], (int32_t)pr[i], NULL};
            off += (int32_t)lens[i];
        }
        free(ids), free(lens), free(pr);
    }
    return 1;
}

static void free_fixture(fixture *fx) {
    plm_safetensors_free(&fx->ref);
    plm_model_free(fx->m);
    free(fx->ids[0]);
    free(fx->ids[1]);
}

static plm_trainer *make_trainer_ul(const fixture *fx, plm_lora *lo, int threads, float ul) {
    plm_train_params p = plm_train_default_params();
    p.n_threads = threads, p.max_tokens = 64, p.max_len = 16, p.unlikelihood = ul;
    p.lr = 1e-2f, p.weight_decay = 0.01f, p.warmup_steps = 3, p.total_steps = 10;
    plm_trainer *t = NULL;
    plm_error err;
    if (plm_trainer_create(&t, fx->m, lo, &p, &err) != PLM_OK) CHECK_MSG(0, "%s", err.msg);
    return t;
}

static plm_trainer *make_trainer(const fixture *fx, plm_lora *lo, int threads) {
    return make_trainer_ul(fx, lo, threads, 0.0f);
}

// step: one optimizer step on micro-batch k, the mean loss as HF computes it
static double step(plm_trainer *t, const fixture *fx, int k) {
    int32_t n_tok = 0;
    for (int i = 0; i < fx->n_ex[k]; i++) n_tok += fx->ex[k][i].n - fx->ex[k][i].n_prompt;
    double loss;
    int32_t cnt;
    plm_error err;
    if (plm_trainer_accumulate(t, fx->ex[k], fx->n_ex[k], 1.0f / (float)n_tok, &loss, &cnt, &err) !=
        PLM_OK)
        CHECK_MSG(0, "%s", err.msg);
    CHECK(cnt == n_tok);
    plm_trainer_step(t, NULL, NULL);
    return loss / cnt;
}

static void test_variant(const char *variant) {
    fixture fx;
    char path[128];
    fprintf(stderr, "-- %s\n", variant);
    if (!load_fixture(&fx, variant, path, sizeof path)) return;
    // step 0: loss and gradients
    plm_lora *lo = make_lora(&fx, path), *lo2 = make_lora(&fx, path);
    plm_trainer *t = make_trainer(&fx, lo, 1), *t2 = make_trainer(&fx, lo2, 2);
    if (!t || !t2) return;
    int32_t n_tok = 0, cnt, np, np2;
    for (int i = 0; i < fx.n_ex[0]; i++) n_tok += fx.ex[0][i].n - fx.ex[0][i].n_prompt;
    double loss;
    plm_error err;
    CHECK(plm_trainer_accumulate(t, fx.ex[0], fx.n_ex[0], 1.0f / (float)n_tok, &loss, &cnt, &err) ==
          PLM_OK);
    CHECK(plm_trainer_accumulate(t2, fx.ex[0], fx.n_ex[0], 1.0f / (float)n_tok, NULL, NULL, &err) ==
          PLM_OK);
    float *want = get(&fx.ref, "loss0", NULL), got = (float)(loss / cnt);
    check_close("loss0", &got, want, 1, 1e-5, 1e-5);
    free(want);
    plm_train_tensor *ps = plm_trainer_tensors(t, &np), *ps2 = plm_trainer_tensors(t2, &np2);
    for (int32_t i = 0; i < np; i++) {
        char name[128];
        snprintf(name, sizeof name, "grad.%s", ps[i].name);
        size_t n;
        float *g = get(&fx.ref, name, &n);
        if (g && n == ps[i].n) check_close(name, ps[i].g, g, n, 1e-5, 1e-3);
        else CHECK_MSG(0, "%s: size %zu, want %zu", name, ps[i].n, n);
        CHECK_MSG(!memcmp(ps[i].g, ps2[i].g, n * sizeof(float)), "%s: 1 and 2 threads differ",
                  name);
        free(g);
    }
    plm_trainer_free(t);
    plm_trainer_free(t2);
    plm_lora_free(lo);
    plm_lora_free(lo2);

    // 10 AdamW steps, alternating the two batches; the 5 + 5 resumed run equals it bit for bit
    lo = make_lora(&fx, path);
    t = make_trainer(&fx, lo, 2);
    float losses[10], *want_l = get(&fx.ref, "losses", NULL);
    for (int s = 0; s < 10; s++) losses[s] = (float)step(t, &fx, s % 2);
    check_close("losses", losses, want_l, 10, 1e-4, 1e-4);
    free(want_l);
    ps = plm_trainer_tensors(t, &np);
    for (int32_t i = 0; i < np; i++) {
        char name[128];
        snprintf(name, sizeof name, "final.%s", ps[i].name);
        size_t n;
        float *w = get(&fx.ref, name, &n);
        if (w) check_close(name, ps[i].p, w, n, 1e-4, 1e-3);
        free(w);
    }
    lo2 = make_lora(&fx, path);
    t2 = make_trainer(&fx, lo2, 1);
    for (int s = 0; s < 5; s++) step(t2, &fx, s % 2);
    char state[64];
    snprintf(state, sizeof state, "/tmp/plm_test_train.%ld.state", (long)getpid());
    CHECK(plm_trainer_save_state(t2, state, &err) == PLM_OK);
    plm_trainer_free(t2);
    t2 = make_trainer(&fx, lo2, 1); // a new process would load the adapter and this state
    CHECK(plm_trainer_load_state(t2, state, &err) == PLM_OK);
    CHECK(plm_trainer_n_steps(t2) == 5);
    for (int s = 5; s < 10; s++) step(t2, &fx, s % 2);
    ps2 = plm_trainer_tensors(t2, &np2);
    for (int32_t i = 0; i < np; i++)
        CHECK_MSG(!memcmp(ps[i].p, ps2[i].p, ps[i].n * sizeof(float)), "resumed %s differs",
                  ps[i].name);
    remove(state);

    // the trainer's forward == the session's logits with the same adapter (loss of one example)
    plm_session_params sp = plm_session_default_params();
    sp.lora = lo;
    sp.n_ctx = 64;
    plm_session *s = NULL;
    CHECK(plm_session_create(&s, fx.m, &sp, &err) == PLM_OK);
    const plm_example *e = &fx.ex[1][1];
    size_t NV = (size_t)plm_session_n_vocab(s);
    float *logits = malloc((size_t)e->n * NV * sizeof *logits);
    plm_session_decode_all(s, e->ids, e->n, logits, &err);
    double sess = 0;
    for (int32_t p = e->n_prompt - 1; p < e->n - 1; p++) {
        double mx = -1e30, sum = 0;
        for (size_t v = 0; v < NV; v++) mx = fmax(mx, (double)logits[p * NV + v]);
        for (size_t v = 0; v < NV; v++) sum += exp((double)logits[p * NV + v] - mx);
        sess += log(sum) + mx - (double)logits[p * NV + (size_t)e->ids[p + 1]];
    }
    double tl;
    CHECK(plm_trainer_loss(t, e, 1, &tl, &cnt, &err) == PLM_OK);
    CHECK_MSG(fabs(tl - sess) < 1e-4 * fabs(sess), "trainer loss %.9g, session %.9g", tl, sess);
    free(logits);
    plm_session_free(s);
    plm_trainer_free(t);
    plm_trainer_free(t2);
    plm_lora_free(lo);
    plm_lora_free(lo2);
    free_fixture(&fx);
}

// ---- unlikelihood ----

// session_logits: the logits (e->n, *NV) of e through a session with the adapter lo (caller
// frees), or NULL
static float *session_logits(const fixture *fx, plm_lora *lo, const plm_example *e, size_t *NV) {
    plm_session_params sp = plm_session_default_params();
    sp.lora = lo;
    sp.n_ctx = 64;
    plm_session *s = NULL;
    plm_error err;
    if (plm_session_create(&s, fx->m, &sp, &err) != PLM_OK) {
        CHECK_MSG(0, "%s", err.msg);
        return NULL;
    }
    *NV = (size_t)plm_session_n_vocab(s);
    float *logits = malloc((size_t)e->n * *NV * sizeof *logits);
    CHECK(plm_session_decode_all(s, e->ids, e->n, logits, &err) == PLM_OK);
    plm_session_free(s);
    return logits;
}

// session_loss: with the adapter lo, over the target rows of e: the summed cross-entropy, the
// summed -log(1 - p(avoid)) and the summed p(avoid) of the rows with an avoided token (*n_av),
// from the session's logits in double
static void session_loss(const fixture *fx, plm_lora *lo, const plm_example *e, double *ce,
                         double *ul, double *pav, int *n_av) {
    size_t NV;
    float *logits = session_logits(fx, lo, e, &NV);
    *ce = *ul = *pav = 0, *n_av = 0;
    for (int32_t p = e->n_prompt - 1; logits && p < e->n - 1; p++) {
        const float *l = logits + p * NV;
        double mx = -1e30, sum = 0;
        for (size_t v = 0; v < NV; v++) mx = fmax(mx, (double)l[v]);
        for (size_t v = 0; v < NV; v++) sum += exp((double)l[v] - mx);
        *ce += log(sum) + mx - (double)l[e->ids[p + 1]];
        int32_t c = e->avoid[p + 1];
        if (c < 0) continue;
        double pc = exp((double)l[c] - mx) / sum;
        *ul -= log(1.0 - pc), *pav += pc, (*n_av)++;
    }
    free(logits);
}

// top_other: e->avoid = on each target row, the token the adapter lo finds most likely other than
// the target (-1 on the prompt)
static void top_other(const fixture *fx, plm_lora *lo, const plm_example *e) {
    size_t NV;
    float *logits = session_logits(fx, lo, e, &NV);
    for (int32_t p = 0; p < e->n; p++) e->avoid[p] = -1;
    for (int32_t p = e->n_prompt - 1; logits && p < e->n - 1; p++) {
        int32_t best = -1;
        for (int32_t v = 0; v < (int32_t)NV; v++)
            if (v != e->ids[p + 1] && (best < 0 || logits[p * NV + v] > logits[p * NV + best]))
                best = v;
        e->avoid[p + 1] = best;
    }
    free(logits);
}

// test_unlikelihood: on train-tied's batches with made-up copy candidates (likely wrong tokens, as
// a copy of the input is for a paraphraser: top_other): the trainer's loss is CE + a * UL as the
// session computes it, its eval loss plain CE; a = 0 with the candidates gives the bits of no
// candidates (the PEFT references above ran without); 10 steps at a = 1 leave the candidates less
// likely than 10 steps at a = 0; a < 0 and NaN are refused.
static void test_unlikelihood(void) {
    fixture fx;
    char path[128];
    if (!load_fixture(&fx, "train-tied", path, sizeof path)) return;
    int32_t avoid[2][64];
    plm_lora *lo = make_lora(&fx, path), *lo2 = make_lora(&fx, path);
    for (int k = 0; k < 2; k++)
        for (int i = 0, off = 0; i < fx.n_ex[k]; off += fx.ex[k][i].n, i++) {
            plm_example *e = &fx.ex[k][i];
            CHECK(off + e->n <= 64);
            e->avoid = avoid[k] + off;
            top_other(&fx, lo, e);
        }
    // a = 0: the same loss and gradients, bit for bit, as without candidates
    plm_trainer *t = make_trainer(&fx, lo, 1), *t2 = make_trainer(&fx, lo2, 1);
    plm_example plain[3];
    for (int i = 0; i < fx.n_ex[0]; i++) plain[i] = fx.ex[0][i], plain[i].avoid = NULL;
    double l1, l2;
    int32_t c1, c2, np;
    plm_error err;
    CHECK(plm_trainer_accumulate(t, fx.ex[0], fx.n_ex[0], 0.1f, &l1, &c1, &err) == PLM_OK);
    CHECK(plm_trainer_accumulate(t2, plain, fx.n_ex[0], 0.1f, &l2, &c2, &err) == PLM_OK);
    plm_train_tensor *ps = plm_trainer_tensors(t, &np), *ps2 = plm_trainer_tensors(t2, &np);
    int same = l1 == l2 && c1 == c2;
    for (int32_t i = 0; i < np; i++) same &= !memcmp(ps[i].g, ps2[i].g, ps[i].n * sizeof(float));
    CHECK_MSG(same, "unlikelihood 0 with candidates: not the bits of plain cross-entropy");
    plm_trainer_free(t), plm_trainer_free(t2);
    // a = 1: the trainer's loss of one example is the session's CE + UL
    t = make_trainer_ul(&fx, lo, 1, 1.0f);
    const plm_example *e = &fx.ex[1][1];
    double ce, ul, pav0 = 0, pav1 = 0, pav;
    int n_av;
    session_loss(&fx, lo, e, &ce, &ul, &pav, &n_av);
    CHECK(n_av > 0);
    CHECK(plm_trainer_accumulate(t, e, 1, 0.1f, &l1, &c1, &err) == PLM_OK);
    CHECK_MSG(fabs(l1 - (ce + ul)) < 1e-4 * (ce + ul), "trainer loss %.9g, session %.9g + %.9g", l1,
              ce, ul);
    CHECK(plm_trainer_loss(t, e, 1, &l2, &c2, &err) == PLM_OK); // held-out: plain cross-entropy
    CHECK_MSG(fabs(l2 - ce) < 1e-4 * ce, "trainer eval loss %.9g, session CE %.9g", l2, ce);
    plm_trainer_free(t);
    plm_lora_free(lo), plm_lora_free(lo2);
    // 10 steps at a = 0 and at a = 1 from the same start: the candidates' mean probability
    for (int ul_on = 0; ul_on < 2; ul_on++) {
        lo = make_lora(&fx, path);
        t = make_trainer_ul(&fx, lo, 2, ul_on ? 1.0f : 0.0f);
        for (int s = 0; s < 10; s++) step(t, &fx, s % 2);
        double sum_p = 0;
        int n = 0;
        for (int k = 0; k < 2; k++)
            for (int i = 0; i < fx.n_ex[k]; i++) {
                session_loss(&fx, lo, &fx.ex[k][i], &ce, &ul, &pav, &n_av);
                sum_p += pav, n += n_av;
            }
        *(ul_on ? &pav1 : &pav0) = sum_p / n;
        plm_trainer_free(t);
        plm_lora_free(lo);
    }
    fprintf(stderr, "mean p(copy candidate) after 10 steps: %.4f at a = 0, %.4f at a = 1\n", pav0,
            pav1);
    CHECK_MSG(pav1 < 0.8 * pav0, "unlikelihood: p(candidates) %.4g at a = 1, %.4g at a = 0", pav1,
              pav0);
    // bad weights are refused with a message
    lo = make_lora(&fx, path);
    const float bad[2] = {-0.5f, NAN};
    for (int k = 0; k < 2; k++) {
        plm_train_params p = plm_train_default_params();
        p.unlikelihood = bad[k];
        t = NULL;
        CHECK(plm_trainer_create(&t, fx.m, lo, &p, &err) == PLM_ERR_ARG && !t &&
              strstr(err.msg, "unlikelihood"));
    }
    plm_lora_free(lo);
    free_fixture(&fx);
}

// ---- a fine-tuning run with unlikelihood, resumed ----

// run_to_end: plm_finetune_begin with p, stop after `stop` steps with a checkpoint (stop > 0), or
// step to the end and save (stop 0); 0 when every call succeeded
static int run_to_end(const plm_model *m, const plm_finetune_params *p, int stop) {
    plm_finetune_run *r = NULL;
    plm_error err = {0};
    int ok = plm_finetune_begin(&r, m, p, &err) == PLM_OK, k = 0, got = 1;
    while (ok && (stop == 0 || k < stop) && (got = plm_finetune_step(r, NULL, &err)) == 1) k++;
    if (ok && got >= 0)
        ok = (stop ? plm_finetune_checkpoint(r, &err) : plm_finetune_save(r, &err)) == PLM_OK;
    CHECK_MSG(ok && got >= 0, "finetune run (stop %d): %s", stop, err.msg);
    plm_finetune_free(r);
    return ok && got >= 0 ? 0 : -1;
}

// same_file: the bytes of dir/name equal those of dir2/name
static int same_file(const char *dir, const char *dir2, const char *name) {
    char a[256], b[256], *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    snprintf(a, sizeof a, "%s/%s", dir, name), snprintf(b, sizeof b, "%s/%s", dir2, name);
    int same = plm_file_read(a, &x, &nx, NULL) == PLM_OK &&
               plm_file_read(b, &y, &ny, NULL) == PLM_OK && nx == ny && !memcmp(x, y, nx);
    free(x), free(y);
    return same;
}

// test_finetune_unlikelihood: plm_finetune on the tiny model (tests/ref/tiny-tied with
// tests/data/tiny-bpe's tokenizer) and 12 JSONL pairs, 3 steps at unlikelihood 0.5: stopped after
// 2 steps and resumed, the adapter is the uninterrupted run's byte for byte; at unlikelihood 0 it
// differs (the option reaches the trainer through the data's candidates); pocketlm_task.json
// records the weight.
static void test_finetune_unlikelihood(void) {
    char dir[64], path[256], out[3][128];
    snprintf(dir, sizeof dir, "/tmp/plm_test_train_ul.%ld", (long)getpid());
    snprintf(path, sizeof path,
             "mkdir -p %s/model && cp tests/ref/tiny-tied/* tests/data/tiny-bpe/* "
             "%s/model/",
             dir, dir);
    CHECK(system(path) == 0);
    snprintf(path, sizeof path, "%s/pairs.jsonl", dir);
    FILE *f = fopen(path, "w");
    for (int i = 0; f && i < 12; i++)
        fprintf(f, "{\"input\": \"the cat %d sat on a mat\", \"output\": \"a cat %d sat\"}\n", i,
                i);
    if (f) fclose(f);
    plm_model *m = NULL;
    plm_load_params lp = plm_load_default_params();
    plm_error err = {0};
    snprintf(out[0], sizeof out[0], "%s/model", dir);
    if (plm_model_load(&m, out[0], &lp, &err) != PLM_OK) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    plm_finetune_params p = plm_finetune_default_params();
    p.data = path;
    p.eval_frac = 0, p.rank = 2, p.batch = 4, p.max_steps = 3, p.max_len = 160;
    p.train.n_threads = 1, p.train.unlikelihood = 0.5f;
    for (int k = 0; k < 3; k++) snprintf(out[k], sizeof out[k], "%s/run%d", dir, k);
    p.out = out[0];
    run_to_end(m, &p, 0);
    p.out = out[1];
    run_to_end(m, &p, 2);
    p.resume = 1;
    run_to_end(m, &p, 0);
    CHECK_MSG(same_file(out[0], out[1], "adapter_model.safetensors"),
              "unlikelihood run stopped at 2 and resumed: not the uninterrupted adapter");
    p.out = out[2], p.resume = 0, p.train.unlikelihood = 0.0f;
    run_to_end(m, &p, 0);
    CHECK_MSG(!same_file(out[0], out[2], "adapter_model.safetensors"),
              "unlikelihood 0.5 trained the same adapter as 0");
    char *text = NULL;
    size_t n;
    snprintf(path, sizeof path, "%s/pocketlm_task.json", out[0]);
    CHECK(plm_file_read(path, &text, &n, &err) == PLM_OK && strstr(text, "\"unlikelihood\": 0.5"));
    free(text);
    plm_model_free(m);
    snprintf(path, sizeof path, "rm -rf %s", dir);
    CHECK(system(path) == 0);
}

// test_half_base: LoRA training on an F16 or BF16 base (frozen, kept in 16 bits: QLoRA-style) ==
// on the f32 base of the same values, bit for bit: the fixture's model saved as 16-bit HF files,
// loaded as they are (auto) and as f32; 10 AdamW steps on each, 2 threads.
static void test_half_base(const char *variant, plm_dtype dt) {
    fixture fx;
    char path[128], dir[96];
    fprintf(stderr, "-- %s on a %s base\n", variant, plm_dtype_name(dt));
    if (!load_fixture(&fx, variant, path, sizeof path)) return;
    snprintf(dir, sizeof dir, "/tmp/plm_test_train.%ld.%s", (long)getpid(), plm_dtype_name(dt));
    plm_error err;
    plm_model *base[2] = {NULL, NULL}; // f32, kept 16-bit
    CHECK(plm_model_save(fx.m, dir, dt, &err) == PLM_OK);
    for (int k = 0; k < 2; k++) {
        plm_load_params lp = plm_load_default_params();
        lp.dtype = k ? PLM_DTYPE_AUTO : PLM_DTYPE_F32;
        CHECK_MSG(plm_model_load(&base[k], dir, &lp, &err) == PLM_OK, "%s", err.msg);
    }
    if (base[0] && base[1]) {
        CHECK(plm_model_dtype(base[1]) == dt && base[1]->layers[0].down_proj.dtype == dt);
        plm_model *m = fx.m;
        float losses[2][10];
        plm_lora *lo[2];
        plm_trainer *t[2];
        for (int k = 0; k < 2; k++) {
            fx.m = base[k];
            lo[k] = make_lora(&fx, path);
            t[k] = make_trainer(&fx, lo[k], 2);
            for (int s = 0; t[k] && s < 10; s++) losses[k][s] = (float)step(t[k], &fx, s % 2);
        }
        fx.m = m;
        CHECK_MSG(!memcmp(losses[0], losses[1], sizeof losses[0]), "%s base: losses differ",
                  plm_dtype_name(dt));
        int32_t np, np2;
        plm_train_tensor *ps = plm_trainer_tensors(t[0], &np),
                         *ps2 = plm_trainer_tensors(t[1], &np2);
        for (int32_t i = 0; i < np && np == np2; i++)
            CHECK_MSG(!memcmp(ps[i].p, ps2[i].p, ps[i].n * sizeof(float)), "%s base: %s differs",
                      plm_dtype_name(dt), ps[i].name);
        for (int k = 0; k < 2; k++) plm_trainer_free(t[k]), plm_lora_free(lo[k]);
    }
    plm_model_free(base[0]), plm_model_free(base[1]);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    free_fixture(&fx);
}

int main(void) {
    test_self();
    test_isa_from_env("test_train");
    test_variant("train-tied");
    test_variant("train-untied");
    test_variant("train-qwen3");  // through q/k norms (tests/make_ref_train_arch.py)
    test_variant("train-qwen2");  // with q/k/v biases
    test_variant("train-llama3"); // through llama3-scaled RoPE
    test_variant("train-gemma3"); // post norms, GeGLU, sliding window, scaled embedding rows
    test_unlikelihood();
    test_finetune_unlikelihood();
    test_half_base("train-untied", PLM_DTYPE_F16);
    test_half_base("train-qwen3", PLM_DTYPE_BF16);
    return test_main_end("test_train");
}
