// fuzz_data.c: libFuzzer target for the task data reader (src/data.c). Each input is loaded as a
// TSV or JSONL file through plm_dataset_load_buffer with the SmolLM2 paraphraser tokenizer (loaded
// once), leniently and strictly, and the results are checked: examples lie inside the one block,
// end with <|OUTPUT_END|>, fit max_len; counters add up; strict fails exactly when a row was bad;
// detokenized with diversity levels and near copies dropped, every example gets one level.
// A usable dataset is then split and ordered into batches, and those are checked too.
// Build (from the repository root, where data/ is; tests/fuzz.sh does this):
//   clang-14 -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc tests/fuzz_data.c src/*.c \
//       -lm -pthread
//   ./a.out -max_total_time=60 CORPUS_DIR
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "tokenizer.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// crash: a property failed; abort so that libFuzzer records the input.
static void require(int ok) {
    if (!ok) abort();
}

// check_dataset: the invariants of a loaded (or split) dataset.
static void check_dataset(const plm_dataset *d, int32_t max_len, int32_t end_id) {
    size_t at = 0;
    for (int32_t i = 0; i < d->n; i++) {
        const plm_example *e = &d->ex[i];
        require(e->ids == d->block + at); // one block, examples in order
        require(e->n_prompt > 0 && e->n_prompt < e->n && e->n <= max_len);
        require(e->ids[e->n - 1] == end_id);
        require(i == 0 || d->src_row[i] >= d->src_row[i - 1]);
        require(d->group[i] >= 0 && d->group[i] <= i && d->group[d->group[i]] == d->group[i]);
        at += (size_t)e->n;
    }
}

// check_order: the batch order is a permutation of the examples.
static void check_order(const plm_dataset *d, int32_t B) {
    int32_t *order = malloc((size_t)d->n * sizeof *order);
    char *seen = calloc((size_t)d->n, 1);
    require(order && seen);
    plm_batch_order(order, d, B, 1, 0);
    for (int32_t i = 0; i < d->n; i++) {
        require(order[i] >= 0 && order[i] < d->n && !seen[order[i]]);
        seen[order[i]] = 1;
    }
    free(order);
    free(seen);
}

static plm_tokenizer *tok;

// the tokenizer, once, before the first input (outside libFuzzer's per-input timeout)
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    plm_tokenizer_load(&tok, "data/smollm2-paraphraser/tokenizer.json", NULL);
    require(tok != NULL); // run from the repository root (data/)
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const int32_t end_id = plm_tokenizer_token_id(tok, PLM_TASK_END);
    plm_data_params p = plm_data_default_params();
    p.max_len = 48; // small, so that long rows are exercised too
    plm_dataset d;
    plm_error err;
    plm_status st = plm_dataset_load_buffer(&d, (const char *)data, size, "fuzz", tok, &p, &err);
    require(st == PLM_OK || st == PLM_ERR_FORMAT);
    int64_t bad = d.bad_fields + d.bad_empty + d.bad_long;
    if (st != PLM_OK) {
        require(d.n == 0 && d.ex == NULL && d.block == NULL && err.msg[0]);
        return 0;
    }
    require(d.n > 0 && d.rows >= d.not_label1 + bad && d.n <= 2 * (d.rows - d.not_label1 - bad));
    require((bad > 0) == (d.first_bad[0] != 0));
    check_dataset(&d, p.max_len, end_id);

    // strict: an error exactly when the lenient load saw a bad row, and then the same message
    plm_dataset s;
    p.strict = 1;
    st = plm_dataset_load_buffer(&s, (const char *)data, size, "fuzz", tok, &p, &err);
    require(bad ? st == PLM_ERR_FORMAT && !strncmp(err.msg, d.first_bad, strlen(d.first_bad))
                : st == PLM_OK && s.n == d.n);
    plm_dataset_free(&s);

    // detokenized, with 5 diversity levels and some near copies dropped: the same rows, every
    // example at one level
    static plm_tokenizer *leveled;
    if (!leveled) {
        const char *names[5] = {"<|DIVERSITY_0|>", "<|DIVERSITY_1|>", "<|DIVERSITY_2|>",
                                "<|DIVERSITY_3|>", "<|DIVERSITY_4|>"};
        plm_tokenizer_add_tokens(&leveled, tok, names, 5, 1, NULL);
        require(leveled != NULL);
    }
    p.strict = 0, p.levels = 5, p.detok = 1, p.min_distance = (float)(size % 3) * 10.0f;
    st = plm_dataset_load_buffer(&s, (const char *)data, size, "fuzz", leveled, &p, &err);
    require(st == PLM_OK || st == PLM_ERR_FORMAT);
    if (st == PLM_OK) {
        int64_t sum = 0;
        for (int k = 0; k < 5; k++) sum += s.level_n[k];
        require(s.rows == d.rows && sum == s.n && s.n_levels == 5);
        for (int k = 1; k < 4; k++) require(s.cuts[k - 1] <= s.cuts[k]);
    }
    plm_dataset_free(&s);
    p.levels = 0, p.detok = 0, p.min_distance = 0;

    check_order(&d, 1 + (int32_t)(size % 9));
    plm_dataset held;
    st = plm_dataset_split(&d, &held, 0.3, size, &err);
    require(st == PLM_OK || st == PLM_ERR_ARG);
    if (st == PLM_OK) {
        require(held.n > 0 && d.n > 0);
        check_dataset(&d, p.max_len, end_id);
        check_dataset(&held, p.max_len, end_id);
        check_order(&held, 3);
    }
    plm_dataset_free(&held);
    plm_dataset_free(&d);
    return 0;
}
