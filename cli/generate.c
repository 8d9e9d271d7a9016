// generate.c: `pocketlm generate` (continue a prompt) and `pocketlm paraphrase` (the task template
// of docs/DESIGN.md). Both stream text to stdout as it is produced; --json prints one object
// instead.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#define MAX_STOPS 16

typedef struct {
    cli_model_opts model;
    plm_generate_params gen;
    const char *stop_strings[MAX_STOPS];
    int json;
    int seed_set;
    int penalty_set; // --copy-penalty was given: --block keeps its penalty
} gen_opts;

#define GEN_HELP                                                                                   \
    CLI_SAMPLE_HELP                                                                                \
    "  --block P        dynamic blocking: after a source token, the one that followed it there "   \
    "is\n"                                                                                         \
    "                   blocked for a step, for a share P of the source's bigrams (outright, or\n" \
    "                   by A logits with --copy-penalty A); the source: paraphrase's TEXT, else\n" \
    "                   the prompt. --copy-penalty A alone: every bigram, by A\n"                  \
    "  --candidates N   sample N outputs and keep the best by mean log-prob - W * BLEU(output,\n"  \
    "                   source) / 100: about N times the decoding (1 = off)\n"                     \
    "  --rerank-weight W  W above (>= 0)\n"                                                        \
    "  --stop STR       stop when STR appears (repeatable)\n"                                      \
    "  --json           print one JSON object: text, tokens, counts, stop_reason, speeds\n"

// gen_flag: parse one generation flag at argv[*i]; 1 consumed, 0 not ours, -1 error.
static int gen_flag(const char *cmd, int argc, char **argv, int *i, gen_opts *o) {
    const char *a = argv[*i], *v;
    int r = cli_model_flag(cmd, argc, argv, i, &o->model);
    if (r == 0) r = cli_sample_flag(cmd, argc, argv, i, &o->gen, &o->seed_set);
    if (r > 0 && !strcmp(a, "--copy-penalty")) o->penalty_set = 1;
    if (r != 0) return r;
    if (!strcmp(a, "--json")) return o->json = 1;
    if (strcmp(a, "--stop") && strcmp(a, "--block") && strcmp(a, "--candidates") &&
        strcmp(a, "--rerank-weight"))
        return 0;
    if (!(v = cli_value(cmd, argc, argv, i))) return -1;
    double x;
    long n;
    if (!strcmp(a, "--block")) {
        if (cli_float(cmd, a, v, 0, 1, &x)) return -1;
        o->gen.copy_block = (float)x;
        if (!o->penalty_set) o->gen.copy_penalty = INFINITY;
        return 1;
    }
    if (!strcmp(a, "--candidates")) {
        if (cli_int(cmd, a, v, 1, 1024, &n)) return -1;
        o->gen.candidates = (int32_t)n;
        return 1;
    }
    if (!strcmp(a, "--rerank-weight")) {
        if (cli_float(cmd, a, v, 0, 100, &x)) return -1;
        o->gen.rerank_weight = (float)x;
        return 1;
    }
    if (o->gen.n_stop_strings == MAX_STOPS)
        return cli_usage_error(cmd, "at most %d --stop strings", MAX_STOPS), -1;
    o->stop_strings[o->gen.n_stop_strings++] = v;
    o->gen.stop_strings = o->stop_strings;
    return 1;
}

// print_text: on_text streaming to stdout (--json collects with cli_text_add instead)
static int print_text(void *user, const char *text, size_t len) {
    (void)user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0;
}

// run: generate from prompt text; streams or prints JSON. Returns the exit code.
static int run(const char *cmd, plm_session *s, const char *prompt, gen_opts *o) {
    const plm_tokenizer *tok = plm_session_tokenizer(s);
    plm_error err = {0};
    if (!tok) return fprintf(stderr, "pocketlm %s: the model has no tokenizer\n", cmd), 1;
    size_t len = strlen(prompt);
    int32_t n = plm_tokenizer_encode(tok, prompt, len, NULL, 0);
    int32_t *ids = n > 0 ? malloc((size_t)n * sizeof *ids) : NULL;
    int32_t *out = malloc(((size_t)o->gen.max_tokens + 1) * sizeof *out);
    int rc = 1;
    cli_text text = {NULL, 0, 0, 0};
    if (n <= 0 || !ids || !out) {
        fprintf(stderr, "pocketlm %s: %s\n", cmd, n == 0 ? "the prompt is empty" : "out of memory");
        goto done;
    }
    plm_tokenizer_encode(tok, prompt, len, ids, n);
    plm_generate_params gp = o->gen;
    gp.on_text = o->json ? cli_text_add : print_text;
    gp.user = &text;
    plm_generate_result res;
    plm_session_truncate(s, 0);
    if (plm_generate(s, ids, n, &gp, out, o->gen.max_tokens, &res, &err) != PLM_OK) {
        cli_error(cmd, &err);
        goto done;
    }
    if (text.oom) {
        fprintf(stderr, "pocketlm %s: out of memory\n", cmd);
        goto done;
    }
    int32_t n_out = res.generated_tokens - (res.stop_reason == PLM_STOP_TOKEN);
    double pre = res.prefill_seconds > 0 ? res.prompt_tokens / res.prefill_seconds : 0;
    double dec = res.decode_seconds > 0 ? res.sampled_tokens / res.decode_seconds : 0;
    if (o->json) {
        printf("{\"text\": ");
        cli_json_str(stdout, text.p ? text.p : "", text.n);
        printf(", \"tokens\": [");
        for (int32_t i = 0; i < n_out; i++) printf(i ? ", %d" : "%d", out[i]);
        printf("], \"prompt_tokens\": %d, \"generated_tokens\": %d, \"stop_reason\": \"%s\", "
               "\"prefill_tok_s\": %.1f, \"decode_tok_s\": %.1f, \"seed\": %llu, "
               "\"candidates\": %d, \"sampled_tokens\": %d, \"utility\": %.4f}\n",
               res.prompt_tokens, res.generated_tokens, plm_stop_reason_name(res.stop_reason), pre,
               dec, (unsigned long long)o->gen.sampler.seed,
               res.candidates_done ? res.candidates_done : 1, res.sampled_tokens, res.utility);
    } else {
        printf("\n");
    }
    rc = 0;
done:
    free(text.p);
    free(ids);
    free(out);
    return rc;
}

static void gen_defaults(gen_opts *o) {
    memset(o, 0, sizeof *o);
    o->model = CLI_MODEL_OPTS;
    o->gen = plm_generate_default_params();
}

// ---- generate ----

// chat_prompt: PROMPT as the user's message in the model's chat format (malloc'd), and its stop
// token in *stop_id; NULL after printing why.
static char *chat_prompt(const char *cmd, const plm_model *m, const char *prompt,
                         int32_t *stop_id) {
    plm_chat_message msg = {"user", prompt};
    const char *tmpl = plm_model_chat_template(m);
    const plm_tokenizer *tok = plm_model_tokenizer(m);
    int64_t n = tok ? plm_chat_prompt(tmpl, tok, &msg, 1, NULL, 0, stop_id) : PLM_ERR_ARG;
    char *p = n > 0 ? malloc((size_t)n + 1) : NULL;
    if (!p) {
        fprintf(stderr, "pocketlm %s: --chat: %s\n", cmd,
                n == PLM_ERR_UNSUPPORTED ? "the model's chat template is none of ChatML, Llama 3 "
                                           "and Gemma"
                : n < 0                  ? "the model has no tokenizer"
                                         : "out of memory");
        return NULL;
    }
    plm_chat_prompt(tmpl, tok, &msg, 1, p, (size_t)n, stop_id);
    p[n] = 0;
    return p;
}

int cmd_generate(int argc, char **argv) {
    const char *cmd = "generate", *prompt = NULL;
    int chat = 0;
    gen_opts o;
    gen_defaults(&o);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: pocketlm generate -m MODEL -p PROMPT [options]\n"
                   "Continues PROMPT and streams the new text to stdout.\n\n" CLI_MODEL_HELP
                   "  -p PROMPT        the prompt text\n"
                   "  --chat           PROMPT is a user's message: wrap it in the model's chat "
                   "format\n"
                   "                   (ChatML, Llama 3 or Gemma) and stop at the end of the "
                   "answer\n" GEN_HELP);
            return 0;
        }
        int r = gen_flag(cmd, argc, argv, &i, &o);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (!strcmp(argv[i], "--chat")) chat = 1;
        else if (!strcmp(argv[i], "-p") || !strcmp(argv[i], "--prompt")) {
            if (!(prompt = cli_value(cmd, argc, argv, &i))) return 2;
        } else return cli_usage_error(cmd, "unknown option '%s'", argv[i]);
    }
    if (!prompt) return cli_usage_error(cmd, "-p PROMPT is required");
    if (!o.seed_set) o.gen.sampler.seed = (uint64_t)time(NULL);
    plm_model *m;
    plm_session *s;
    if (cli_open(cmd, &o.model, &m, &s)) return 1;
    int32_t stop_id = -1;
    char *text = chat ? chat_prompt(cmd, m, prompt, &stop_id) : NULL;
    if (text) o.gen.stop_tokens = &stop_id, o.gen.n_stop_tokens = 1;
    int rc = chat && !text ? 1 : run(cmd, s, text ? text : prompt, &o);
    free(text);
    cli_close(&o.model, m, s);
    return rc;
}

// ---- paraphrase ----

int cmd_paraphrase(int argc, char **argv) {
    const char *cmd = "paraphrase";
    gen_opts o;
    gen_defaults(&o);
    o.gen = plm_task_default_params();
    plm_task task = plm_task_of(NULL);
    // --diversity D first: it sets the decoding defaults, which the other flags then override
    double d = (double)PLM_TASK_DIVERSITY_DEFAULT;
    plm_error err = {0};
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--diversity")) {
            const char *v = cli_value(cmd, argc, argv, &i);
            if (!v || cli_float(cmd, "--diversity", v, 0, 1, &d)) return 2;
        }
    if (plm_paraphrase_diversity(&task, &o.gen, (float)d, &err) != PLM_OK)
        return cli_usage_error(cmd, "%s", err.msg);
    char **texts = calloc((size_t)argc, sizeof *texts);
    int n_texts = 0, rc = 0;
    if (!texts) return 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: pocketlm paraphrase -m MODEL [options] TEXT...\n"
                   "Rephrases each TEXT with the task template.\n\n" CLI_MODEL_HELP
                   "  --diversity D    0 = stay close to TEXT, 1 = as different as it can (default "
                   "%g):\n"
                   "                   the control level (an adapter trained with "
                   "--diversity-levels)\n"
                   "                   and the decoding below (at D = %g: --copy-retry %g "
                   "--copy-deviate %d\n"
                   "                   --copy-penalty %g --candidates %d --temp %g); the options "
                   "below\n"
                   "                   override them\n" GEN_HELP,
                   (double)PLM_TASK_DIVERSITY_DEFAULT, d, (double)o.gen.copy_retry,
                   o.gen.copy_deviate, (double)o.gen.copy_penalty, o.gen.candidates,
                   (double)o.gen.sampler.temperature);
            free(texts);
            return 0;
        }
        if (!strcmp(argv[i], "--diversity")) { // read above
            i++;
            continue;
        }
        int r = gen_flag(cmd, argc, argv, &i, &o);
        if (r < 0) return free(texts), 2;
        if (r > 0) continue;
        if (argv[i][0] == '-' && argv[i][1])
            return free(texts), cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        texts[n_texts++] = argv[i];
    }
    if (n_texts == 0) return free(texts), cli_usage_error(cmd, "give at least one TEXT");
    for (int k = 0; k < n_texts; k++) // before the model loads: nothing to rephrase, a usage error
        if (plm_task_check(texts[k], &err) != PLM_OK)
            return free(texts), cli_usage_error(cmd, "TEXT %d: %s", k + 1, err.msg);
    if (!o.seed_set) o.gen.sampler.seed = (uint64_t)time(NULL);
    plm_model *m;
    plm_session *s;
    if (cli_open(cmd, &o.model, &m, &s)) return free(texts), 1;
    task = plm_task_of(plm_session_tokenizer(s)); // the template, as eval and serve use it
    plm_generate_params knob = o.gen; // D's control code for the task (its decoding is in o.gen)
    plm_paraphrase_diversity(&task, &knob, (float)d, NULL);
    plm_task_stop(&task, &o.gen);
    if (task.end_id < 0)
        fprintf(stderr,
                "pocketlm paraphrase: note: the model has no %s/%s tokens (not fine-tuned "
                "for the task): using the plain template, stopping at a newline\n",
                PLM_TASK_START, PLM_TASK_END);
    for (int k = 0; k < n_texts && rc == 0; k++) {
        size_t n = plm_task_text(&task, texts[k], NULL, NULL, 0);
        char *prompt = malloc(n + 1);
        if (!prompt) rc = 1, fprintf(stderr, "pocketlm %s: out of memory\n", cmd);
        else {
            plm_task_text(&task, texts[k], NULL, prompt, n + 1);
            o.gen.source = texts[k]; // what blocking and reranking keep the output away from
            rc = run(cmd, s, prompt, &o);
            free(prompt);
        }
    }
    free(texts);
    cli_close(&o.model, m, s);
    return rc;
}
