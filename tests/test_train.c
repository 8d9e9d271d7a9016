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
            fx->ex[k][i] = (plm_example){fx->ids[k] + off, (int32_t)lens[i], (int32_t)pr[i]};
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

static plm_trainer *make_trainer(const fixture *fx, plm_lora *lo, int threads) {
    plm_train_params p = plm_train_default_params();
    p.n_threads = threads, p.max_tokens = 64, p.max_len = 16;
    p.lr = 1e-2f, p.weight_decay = 0.01f, p.warmup_steps = 3, p.total_steps = 10;
    plm_trainer *t = NULL;
    plm_error err;
    if (plm_trainer_create(&t, fx->m, lo, &p, &err) != PLM_OK) CHECK_MSG(0, "%s", err.msg);
    return t;
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
    test_half_base("train-untied", PLM_DTYPE_F16);
    test_half_base("train-qwen3", PLM_DTYPE_BF16);
    return test_main_end("test_train");
}
