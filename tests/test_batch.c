// test_batch.c: continuous batching (src/batch.c, the step of src/session.c) gives the same bits
// as sessions run alone. Sequences of different lengths and adapters (none, PEFT adapters of
// tests/ref, an adapter with trainable token rows, one of them a new token) decode concurrently
// from their own threads through one batch; each one's logits after its prompt (decoded in one
// call: the batch slices it into steps) and after every fed token must equal, bit for bit, those
// of a standalone session with the same adapter, for f32 and q8_0 weights and for F16 KV caches
// (plm_session_params.kv_type), and the batch must have run several sequences in one step. With the real model (models/, `make model`): greedy
// generation of the base and of the shipped adapter (models/paws-lora, added task tokens) mixed
// in one batch == each alone.
#include <pthread.h>

#include "batch.h"
#include "lora.h"
#include "pocketlm.h"
#include "session.h"
#include "test.h"

#define REAL_MODEL "models/SmolLM2-135M-Instruct.Q4_1.gguf"
#define N_SEQ      3
#define N_FEED     12

// One sequence: its prompt and the tokens fed after it; logits (N_FEED + 1, NV) after each call.
typedef struct {
    plm_session *s;
    const int32_t *prompt;
    int32_t n_prompt;
    int32_t feed[N_FEED];
    float *logits;
    int ok;
} seq_run;

static void *run_seq(void *arg) {
    seq_run *r = arg;
    plm_error err;
    size_t NV = (size_t)plm_session_n_vocab(r->s);
    r->ok = plm_session_decode(r->s, r->prompt, r->n_prompt, &err) == PLM_OK;
    if (r->ok) memcpy(r->logits, plm_session_logits(r->s), NV * sizeof(float));
    for (int k = 0; k < N_FEED && r->ok; k++) {
        r->ok = plm_session_decode(r->s, &r->feed[k], 1, &err) == PLM_OK;
        memcpy(r->logits + (size_t)(k + 1) * NV, plm_session_logits(r->s), NV * sizeof(float));
    }
    if (!r->ok) fprintf(stderr, "  decode: %s\n", err.msg);
    return NULL;
}

// token_adapter: an adapter of every target with random A and B (B is zero at PEFT's init) and
// two trainable token rows, the second a token the base lacks
static plm_lora *token_adapter(const plm_model *m) {
    const plm_config *cfg = &m->config;
    int32_t V = cfg->vocab_size, C = cfg->hidden_size, ids[2] = {5, V};
    float *rows = malloc(2 * (size_t)C * sizeof(float));
    for (int32_t i = 0; i < 2 * C; i++) rows[i] = (float)((i * 37 % 101) - 50) / 100.0f;
    plm_lora *l = NULL;
    plm_error err;
    plm_status st = plm_lora_create(&l, cfg, 4, 8.0f, 0.0f, (1u << PLM_LORA_N_TARGETS) - 1, ids, 2,
                                    rows, V + 1, NULL, 7, &err);
    free(rows);
    CHECK_MSG(st == PLM_OK, "plm_lora_create: %s", err.msg);
    for (int32_t p = 0; l && p < cfg->num_hidden_layers * PLM_LORA_N_TARGETS; p++) {
        if (!l->pairs[p].A) continue;
        plm_lora_target t = (plm_lora_target)(p % PLM_LORA_N_TARGETS);
        size_t n = (size_t)l->shape[t][0] * (size_t)l->rank;
        for (size_t i = 0; i < n; i++) l->pairs[p].B[i] = (float)((int)(i * 13 % 29) - 14) / 200.0f;
    }
    return l;
}

// check_model: N_SEQ sequences with adapters loras[i] through one batch == each alone
static void check_model(const char *dir, plm_dtype dtype, plm_dtype kv_type,
                        const char *const lora_dirs[N_SEQ], int token_rows) {
    plm_error err;
    plm_model *m = NULL;
    plm_load_params lp = plm_load_default_params();
    lp.dtype = dtype;
    if (plm_model_load(&m, dir, &lp, &err) != PLM_OK) {
        CHECK_MSG(0, "%s: %s", dir, err.msg);
        return;
    }
    plm_lora *loras[N_SEQ] = {0};
    for (int i = 0; i < N_SEQ; i++)
        if (lora_dirs[i] && plm_lora_load(&loras[i], lora_dirs[i], m, &err) != PLM_OK)
            CHECK_MSG(0, "%s: %s", lora_dirs[i], err.msg);
    if (token_rows) loras[N_SEQ - 1] = token_adapter(m);
    // from prompt + i; 150 tokens: past a sliding-window layer's 128 + window - 1 positions
    int32_t V = m->config.vocab_size, lens[N_SEQ] = {7, 150, 2}, prompt[152];
    for (int32_t t = 0; t < 152; t++) prompt[t] = (t * 7 + 3) % V;
    seq_run alone[N_SEQ], batched[N_SEQ];
    plm_batch *b = NULL;
    CHECK_MSG(plm_batch_create(&b, m, 2, 4, 256, kv_type, &err) == PLM_OK, "batch: %s", err.msg);
    for (int i = 0; i < N_SEQ && b; i++) {
        plm_session_params sp = plm_session_default_params();
        sp.n_threads = 2;
        sp.n_ctx = 256;
        sp.lora = loras[i];
        sp.kv_type = kv_type;
        seq_run r = {NULL, prompt + i, lens[i], {0}, NULL, 0};
        for (int k = 0; k < N_FEED; k++) r.feed[k] = (k * 11 + i) % V;
        if (token_rows && i == N_SEQ - 1) r.feed[3] = V; // the adapter's new token
        alone[i] = batched[i] = r;
        CHECK(plm_session_create(&alone[i].s, m, &sp, &err) == PLM_OK);
        CHECK(plm_session_create_batched(&batched[i].s, b, loras[i], 256, &err) == PLM_OK);
        size_t NV = (size_t)plm_session_n_vocab(alone[i].s);
        alone[i].logits = malloc((N_FEED + 1) * NV * sizeof(float));
        batched[i].logits = malloc((N_FEED + 1) * NV * sizeof(float));
        run_seq(&alone[i]);
    }
    pthread_t th[N_SEQ];
    for (int i = 0; i < N_SEQ && b; i++) pthread_create(&th[i], NULL, run_seq, &batched[i]);
    for (int i = 0; i < N_SEQ && b; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < N_SEQ && b; i++) {
        size_t n = (N_FEED + 1) * (size_t)plm_session_n_vocab(alone[i].s);
        CHECK_MSG(alone[i].ok && batched[i].ok &&
                      !memcmp(alone[i].logits, batched[i].logits, n * sizeof(float)),
                  "%s %s, KV %s, sequence %d (adapter %s): batched logits differ from alone", dir,
                  plm_dtype_name(dtype), plm_dtype_name(kv_type), i, loras[i] ? "yes" : "none");
        plm_session_free(alone[i].s);
        plm_session_free(batched[i].s);
        free(alone[i].logits);
        free(batched[i].logits);
    }
    if (b) {
        plm_batch_stats bs;
        plm_batch_stats_get(b, &bs);
        CHECK_MSG(bs.max_step_seqs >= 2 && bs.attached == 0,
                  "batch: at most %d sequences in a step (want >= 2), %d still attached",
                  bs.max_step_seqs, bs.attached);
        printf("  %s %s, KV %s: %llu steps, %.2f sequences a step (at most %d)\n", dir,
               plm_dtype_name(dtype), plm_dtype_name(kv_type), (unsigned long long)bs.steps,
               (double)bs.seqs / (double)(bs.steps ? bs.steps : 1), bs.max_step_seqs);
    }
    plm_batch_free(b);
    for (int i = 0; i < N_SEQ; i++) plm_lora_free(loras[i]);
    plm_model_free(m);
}

// ---- the real model: greedy generation mixed in one batch ----

typedef struct {
    plm_session *s;
    const int32_t *prompt;
    int32_t n_prompt;
    int32_t ids[16];
    int32_t n;
} gen_run;

static void *run_gen(void *arg) {
    gen_run *r = arg;
    plm_generate_params gp = plm_generate_default_params();
    gp.sampler.temperature = 0.0f;
    gp.max_tokens = 16;
    plm_generate_result res;
    plm_error err;
    r->n = plm_generate(r->s, r->prompt, r->n_prompt, &gp, r->ids, 16, &res, &err) == PLM_OK
               ? res.generated_tokens
               : -1;
    return NULL;
}

static void check_real(void) {
    if (getenv("QEMU_CPU")) { // make test-arm: emulated forward passes of SmolLM2 take minutes
        printf("SKIP test_batch (real model part) under qemu (QEMU_CPU set): make test runs it\n");
        return;
    }
    FILE *f = fopen(REAL_MODEL, "rb");
    if (!f) {
        printf("SKIP test_batch (real model part): no %s (install with: make model)\n", REAL_MODEL);
        return;
    }
    fclose(f);
    plm_error err;
    plm_model *m = NULL;
    plm_lora *l = NULL;
    plm_batch *b = NULL;
    plm_load_params lp = plm_load_default_params();
    lp.dtype = PLM_DTYPE_Q8_0;
    if (plm_model_load(&m, REAL_MODEL, &lp, &err) != PLM_OK ||
        plm_lora_load(&l, "models/paws-lora", m, &err) != PLM_OK ||
        plm_batch_create(&b, m, 2, 8, 512, PLM_DTYPE_F32, &err) != PLM_OK) {
        CHECK_MSG(0, "real model: %s", err.msg);
        plm_lora_free(l);
        plm_model_free(m);
        return;
    }
    // the adapter's task prompt carries its added tokens (<|OUTPUT_START|>)
    static const char *const texts[2] = {"The capital of France is",
                                         "Input: The cat sat on the mat.\n<|OUTPUT_START|>"};
    gen_run alone[4], batched[4];
    int32_t prompts[4][64];
    for (int i = 0; i < 4; i++) { // prompts 0, 1 on the base, then on the adapter
        plm_session_params sp = plm_session_default_params();
        sp.n_ctx = 512;
        sp.lora = i >= 2 ? l : NULL;
        const plm_tokenizer *tok = i >= 2 ? plm_lora_tokenizer(l) : plm_model_tokenizer(m);
        int32_t n = plm_tokenizer_encode(tok, texts[i % 2], strlen(texts[i % 2]), prompts[i], 64);
        alone[i] = batched[i] = (gen_run){NULL, prompts[i], n, {0}, 0};
        CHECK(plm_session_create(&alone[i].s, m, &sp, &err) == PLM_OK);
        CHECK(plm_session_create_batched(&batched[i].s, b, sp.lora, 512, &err) == PLM_OK);
        run_gen(&alone[i]);
    }
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, run_gen, &batched[i]);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) {
        CHECK_MSG(alone[i].n > 0 && alone[i].n == batched[i].n &&
                      !memcmp(alone[i].ids, batched[i].ids, (size_t)alone[i].n * sizeof(int32_t)),
                  "real model, prompt %d %s: batched greedy (%d tokens) != alone (%d)", i % 2,
                  i >= 2 ? "with paws-lora" : "base", batched[i].n, alone[i].n);
        plm_session_free(alone[i].s);
        plm_session_free(batched[i].s);
    }
    plm_batch_stats bs;
    plm_batch_stats_get(b, &bs);
    CHECK_MSG(bs.max_step_seqs >= 2, "real model: at most %d sequences in a step",
              bs.max_step_seqs);
    printf("  real q8_0, base and paws-lora mixed: %llu steps, %.2f sequences a step\n",
           (unsigned long long)bs.steps, (double)bs.seqs / (double)(bs.steps ? bs.steps : 1));
    plm_batch_free(b);
    plm_lora_free(l);
    plm_model_free(m);
}

int main(void) {
    test_self();
    static const char *const tied[N_SEQ] = {NULL, "tests/ref/lora-tied-all", NULL};
    static const char *const untied[N_SEQ] = {"tests/ref/lora-untied-qv", NULL,
                                              "tests/ref/lora-untied-all"};
    for (int q = 0; q < 3; q++) { // f32 weights, q8_0, then f32 weights with an F16 KV cache
        plm_dtype dt = q == 1 ? PLM_DTYPE_Q8_0 : PLM_DTYPE_F32;
        plm_dtype kv = q == 2 ? PLM_DTYPE_F16 : PLM_DTYPE_F32;
        check_model("tests/ref/tiny-tied", dt, kv, tied, 1);
        check_model("tests/ref/tiny-untied", dt, kv, untied, 0);
        static const char *const none[N_SEQ] = {NULL, NULL, NULL};
        // the other families (tied: an adapter with a new token; Qwen2 untied: tiny-untied's
        // adapters, which fit its shapes)
        check_model("tests/ref/tiny-llama3", dt, kv, none, 1);
        check_model("tests/ref/tiny-qwen2", dt, kv, untied, 0);
        check_model("tests/ref/tiny-qwen3", dt, kv, none, 1);
        check_model("tests/ref/tiny-gemma3", dt, kv, none, 1);
    }
    check_real();
    return test_main_end("test_batch");
}
