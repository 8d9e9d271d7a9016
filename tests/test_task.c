// test_task.c: the paraphrase task (src/task.c) under a tokenizer without the task markers (the
// plain template, single-line answers) and with them (the template of docs/DESIGN.md, stopping at
// <|OUTPUT_END|>), and with the diversity control tokens (the control field, the level of a
// diversity): prompts and few-shot examples byte for byte, the stop rule, the defaults, and the
// refusal of empty or blank input. Run from the repository root (tests/data/tiny-bpe).
#include "task.h"
#include "test.h"
#include "tokenizer.h"

// the template, with and without markers, prompt only and as a whole example (a shot)
static void test_text(const plm_tokenizer *plain_tok, const plm_tokenizer *marked_tok) {
    plm_task plain = plm_task_of(plain_tok), marked = plm_task_of(marked_tok);
    CHECK(plain.end_id == -1 && plain.tok == plain_tok);
    CHECK(marked.end_id == plm_tokenizer_token_id(marked_tok, PLM_TASK_END) && marked.end_id >= 0);
    CHECK(plm_task_of(NULL).end_id == -1);
    char buf[256], want[256];
    size_t n = plm_task_text(&marked, "Hi there.", NULL, buf, sizeof buf);
    CHECK(!strcmp(buf, "Rephrase the following:\nInput: Hi there.\nOutput: <|OUTPUT_START|>"));
    CHECK(n == strlen(buf));
    plm_task_prompt("Hi there.", want, sizeof want); // the training prompt, byte for byte
    CHECK(!strcmp(buf, want));
    n = plm_task_text(&marked, "Hi there.", "Hello.", buf, sizeof buf);
    CHECK(!strcmp(buf, "Rephrase the following:\nInput: Hi there.\nOutput: <|OUTPUT_START|>"
                       "Hello.<|OUTPUT_END|>") &&
          n == strlen(buf));
    n = plm_task_text(&plain, "Hi there.", NULL, buf, sizeof buf);
    CHECK(!strcmp(buf, "Rephrase the following:\nInput: Hi there.\nOutput: ") && n == strlen(buf));
    n = plm_task_text(&plain, "Hi there.", "Hello.", buf, sizeof buf);
    CHECK(!strcmp(buf, "Rephrase the following:\nInput: Hi there.\nOutput: Hello.\n") &&
          n == strlen(buf));
    CHECK(plm_task_text(&plain, "Hi there.", "Hello.", NULL, 0) == n); // counting only
    CHECK(plm_task_text(&plain, "Hi there.", "Hello.", buf, 10) == n && !strcmp(buf, "Rephrase "));
    CHECK(plm_task_text(&plain, "", NULL, buf, sizeof buf) ==
          strlen("Rephrase the following:\nInput: \nOutput: ")); // the head of every prompt
}

// the diversity control: a tokenizer with the control tokens gets the field, byte for byte, with
// the level of task.diversity; a negative diversity, or a tokenizer without them, gets none
static void test_levels(const plm_tokenizer *plain_tok, const plm_tokenizer *marked_tok,
                        const plm_tokenizer *level_tok) {
    plm_task plain = plm_task_of(plain_tok), marked = plm_task_of(marked_tok);
    plm_task t = plm_task_of(level_tok);
    CHECK(plain.n_levels == 0 && marked.n_levels == 0 && t.n_levels == 5);
    CHECK(t.diversity == PLM_TASK_DIVERSITY_DEFAULT && marked.diversity == t.diversity);
    char buf[256], want[256];
    t.diversity = 0.5f; // 0.5 of 5 levels is level 2
    size_t n = plm_task_text(&t, "Hi there.", NULL, buf, sizeof buf);
    CHECK(!strcmp(buf, "Rephrase the following:\nInput: Hi there.\nDiversity: <|DIVERSITY_2|>\n"
                       "Output: <|OUTPUT_START|>") &&
          n == strlen(buf));
    plm_task_prompt_n("Hi there.", 9, 2, want, sizeof want); // the training prompt, byte for byte
    CHECK(!strcmp(buf, want));
    n = plm_task_text(&t, "Hi there.", "Hello.", buf, sizeof buf);
    CHECK(!strcmp(buf, "Rephrase the following:\nInput: Hi there.\nDiversity: <|DIVERSITY_2|>\n"
                       "Output: <|OUTPUT_START|>Hello.<|OUTPUT_END|>") &&
          n == strlen(buf));
    CHECK(plm_task_text(&t, "Hi there.", NULL, buf, 40) == strlen(want) && strlen(buf) == 39);
    // D -> level: min(N - 1, floor(D * N)); above 1 is 1; negative is no field
    static const float D[] = {0.0f, 0.19f, 0.2f, 0.39f, 0.4f, 0.6f, 0.8f, 0.99f, 1.0f, 7.0f};
    static const int32_t K[] = {0, 0, 1, 1, 2, 3, 4, 4, 4, 4};
    for (size_t i = 0; i < sizeof D / sizeof D[0]; i++) {
        t.diversity = D[i];
        CHECK_MSG(plm_task_level(&t) == K[i], "diversity %g: level %d, want %d", (double)D[i],
                  plm_task_level(&t), K[i]);
    }
    t.diversity = 0.0f;
    plm_task_text(&t, "Hi.", NULL, buf, sizeof buf);
    CHECK(strstr(buf, "\nDiversity: <|DIVERSITY_0|>\nOutput: "));
    t.diversity = 1.0f;
    plm_task_text(&t, "Hi.", NULL, buf, sizeof buf);
    CHECK(strstr(buf, "\nDiversity: <|DIVERSITY_4|>\nOutput: "));
    t.diversity = -1.0f; // no field: the template of an adapter trained without it
    CHECK(plm_task_level(&t) == -1);
    plm_task_text(&t, "Hi there.", NULL, buf, sizeof buf);
    plm_task_prompt("Hi there.", want, sizeof want);
    CHECK(!strcmp(buf, want) && !strstr(buf, "Diversity"));
    // without the control tokens the diversity changes nothing, byte for byte
    char old[256];
    plm_task_text(&marked, "Hi there.", NULL, old, sizeof old);
    for (float d = -1.0f; d <= 1.0f; d += 0.5f) {
        marked.diversity = plain.diversity = d;
        CHECK(plm_task_level(&marked) == -1 && plm_task_level(&plain) == -1);
        plm_task_text(&marked, "Hi there.", NULL, buf, sizeof buf);
        CHECK(!strcmp(buf, old));
        plm_task_text(&plain, "Hi there.", NULL, buf, sizeof buf);
        CHECK(!strcmp(buf, "Rephrase the following:\nInput: Hi there.\nOutput: "));
    }
    CHECK(plm_task_level(NULL) == -1);
    char name[PLM_TASK_LEVEL_TOKEN_CAP];
    CHECK(plm_task_level_token(9, name, sizeof name) == 15 && !strcmp(name, "<|DIVERSITY_9|>"));
}

// the stop rule: at <|OUTPUT_END|> with the markers, else the first line
static void test_stop(const plm_tokenizer *plain_tok, const plm_tokenizer *marked_tok) {
    plm_task plain = plm_task_of(plain_tok), marked = plm_task_of(marked_tok);
    plm_generate_params gp = plm_task_default_params();
    plm_task_stop(&marked, &gp);
    CHECK(gp.n_stop_tokens == 1 && gp.stop_tokens && gp.stop_tokens[0] == marked.end_id);
    CHECK(!gp.single_line);
    gp = plm_task_default_params();
    plm_task_stop(&plain, &gp);
    CHECK(gp.single_line == 1 && gp.n_stop_tokens == 0 && !gp.stop_tokens);
}

// the defaults: the generation defaults but for 64 tokens, temperature 0.8 and top-k 8
static void test_defaults(void) {
    plm_generate_params t = plm_task_default_params(), g = plm_generate_default_params();
    CHECK(t.max_tokens == 64 && t.sampler.temperature == 0.8f && t.sampler.top_k == 8);
    CHECK(t.sampler.top_p == g.sampler.top_p && t.sampler.min_p == g.sampler.min_p);
    CHECK(t.sampler.repetition_penalty == g.sampler.repetition_penalty);
    CHECK(t.sampler.seed == g.sampler.seed && t.copy_penalty == g.copy_penalty);
    CHECK(!t.stop_tokens && !t.stop_strings && !t.single_line && !t.on_text);
}

// nothing to rephrase is PLM_ERR_ARG with a message; any other text is fine
static void test_check(void) {
    const char *bad[] = {"", " ", "   ", "\t\n", " \r\n\v\f "};
    plm_error err;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        CHECK_MSG(plm_task_check(bad[i], &err) == PLM_ERR_ARG && err.status == PLM_ERR_ARG &&
                      strstr(err.msg, "rephrase"),
                  "bad input %zu: %s", i, err.msg);
    }
    CHECK(plm_task_check(NULL, &err) == PLM_ERR_ARG);
    CHECK(plm_task_check("", NULL) == PLM_ERR_ARG); // err may be NULL
    const char *good[] = {"a", " a ", "\n.\n", "\xe3\x80\x80", "Hi there."};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        CHECK_MSG(plm_task_check(good[i], &err) == PLM_OK, "good input %zu refused", i);
}

int main(void) {
    plm_tokenizer *plain = NULL, *marked = NULL, *leveled = NULL;
    const char *marks[] = {PLM_TASK_START,    PLM_TASK_END,      "<|DIVERSITY_0|>",
                           "<|DIVERSITY_1|>", "<|DIVERSITY_2|>", "<|DIVERSITY_3|>",
                           "<|DIVERSITY_4|>", "<|DIVERSITY_6|>"}; // 6 without 5: 5 levels
    plm_error err;
    test_self();
    if (plm_tokenizer_load(&plain, "tests/data/tiny-bpe", &err) != PLM_OK ||
        plm_tokenizer_add_tokens(&marked, plain, marks, 2, 1, &err) != PLM_OK ||
        plm_tokenizer_add_tokens(&leveled, plain, marks, 8, 1, &err) != PLM_OK) {
        CHECK_MSG(0, "tokenizer: %s", err.msg);
    } else {
        test_text(plain, marked);
        test_levels(plain, marked, leveled);
        test_stop(plain, marked);
    }
    test_defaults();
    test_check();
    plm_tokenizer_free(leveled);
    plm_tokenizer_free(marked);
    plm_tokenizer_free(plain);
    return test_main_end("test_task");
}
