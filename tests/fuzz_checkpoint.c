// fuzz_checkpoint.c: libFuzzer target for a training run's resume (finetune.c): out/checkpoint/
// (the PEFT adapter's adapter_config.json, adapter_model.safetensors and tokenizer.json,
// optimizer.state, progress.json) and out/metrics.jsonl. Once per process a real 2-step run on the tiny model
// (tests/ref/tiny-tied with tests/data/tiny-bpe's tokenizer, 12 JSONL pairs) writes a valid
// checkpoint; each input is the six files, in the order of files[], with SEP between them (a
// missing one is empty), written over that checkpoint; then plm_finetune_begin resumes from it and,
// when it accepts, one more step runs. Nothing may crash, leak, or index by a position it has not
// checked. With FUZZ_SEEDS=DIR set, the setup writes the valid files joined as DIR/seed.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base.h"
#include "pocketlm.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DIR     "build/fuzz/checkpoint" // fuzz.sh runs from the repository's root
#define N_FILES 6
#define SEP     "\n==== pocketlm fuzz file ====\n"

static const char *const files[N_FILES] = {
    "checkpoint/adapter_config.json", "checkpoint/adapter_model.safetensors",
    "checkpoint/optimizer.state",     "checkpoint/progress.json",
    "checkpoint/tokenizer.json",      "metrics.jsonl"};

static plm_model *base;

static void put(const char *path, const void *bytes, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(bytes, 1, n, f) != n)) abort();
    fclose(f);
}

// need: the setup's steps must work (a broken tree, not a finding)
static void need(plm_status s, const plm_error *err) {
    if (s == PLM_OK) return;
    fprintf(stderr, "fuzz_checkpoint setup: %s\n", err->msg);
    abort();
}

static plm_finetune_params params(int resume) {
    plm_finetune_params p = plm_finetune_default_params();
    p.data = DIR "/pairs.jsonl";
    p.out = DIR "/out";
    p.eval_frac = 0, p.rank = 2, p.batch = 4, p.max_steps = 3, p.max_len = 160;
    p.train.n_threads = 1;
    p.resume = resume;
    return p;
}

// setup: the base, the data and a checkpoint after 2 of the 3 steps, read back as the valid files
static void setup(void) {
    mkdir("build/fuzz", 0755);
    mkdir(DIR, 0755);
    mkdir(DIR "/model", 0755);
    const char *parts[][2] = {{"tests/ref/tiny-tied/", "config.json"},
                              {"tests/ref/tiny-tied/", "model.safetensors"},
                              {"tests/data/tiny-bpe/", "tokenizer.json"},
                              {"tests/data/tiny-bpe/", "tokenizer_config.json"}};
    plm_error err = {0};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
        char from[256], to[256], *text;
        size_t n;
        snprintf(from, sizeof from, "%s%s", parts[i][0], parts[i][1]);
        snprintf(to, sizeof to, DIR "/model/%s", parts[i][1]);
        need(plm_file_read(from, &text, &n, &err), &err);
        put(to, text, n);
        free(text);
    }
    FILE *f = fopen(DIR "/pairs.jsonl", "w");
    if (!f) abort();
    for (int i = 0; i < 12; i++)
        fprintf(f, "{\"input\": \"the cat %d sat on a mat\", \"output\": \"a cat %d sat\"}\n", i,
                i);
    fclose(f);
    plm_load_params lp = plm_load_default_params();
    need(plm_model_load(&base, DIR "/model", &lp, &err), &err);
    plm_finetune_params p = params(0);
    plm_finetune_run *r;
    need(plm_finetune_begin(&r, base, &p, &err), &err);
    for (int i = 0; i < 2; i++)
        if (plm_finetune_step(r, NULL, &err) != 1) abort();
    need(plm_finetune_checkpoint(r, &err), &err);
    plm_finetune_free(r);
    const char *seeds = getenv("FUZZ_SEEDS");
    if (!seeds) return;
    char path[256];
    snprintf(path, sizeof path, "%s/seed", seeds);
    FILE *out = fopen(path, "wb");
    if (!out) abort();
    for (int i = 0; i < N_FILES; i++) {
        char *text;
        size_t n;
        snprintf(path, sizeof path, DIR "/out/%s", files[i]);
        need(plm_file_read(path, &text, &n, &err), &err);
        if ((i && fputs(SEP, out) == EOF) || fwrite(text, 1, n, out) != n) abort();
        free(text);
    }
    fclose(out);
}

// the setup, once, before the first input (outside libFuzzer's per-input timeout)
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *at = data, *end = data + size;
    for (int i = 0; i < N_FILES; i++) {
        const uint8_t *next = at;
        while (next < end &&
               ((size_t)(end - next) < sizeof SEP - 1 || memcmp(next, SEP, sizeof SEP - 1)))
            next++;
        char path[256];
        snprintf(path, sizeof path, DIR "/out/%s", files[i]);
        put(path, at, (size_t)(next - at));
        at = next < end ? next + sizeof SEP - 1 : end;
    }
    plm_finetune_params p = params(1);
    plm_finetune_run *r = NULL;
    plm_error err = {0};
    if (plm_finetune_begin(&r, base, &p, &err) == PLM_OK) plm_finetune_step(r, NULL, &err);
    plm_finetune_free(r);
    return 0;
}
