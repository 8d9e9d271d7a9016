// eval.c: `pocketlm eval`: paraphrase quality on a PAWS TSV, a two-column TSV (input, reference)
// or JSONL pairs, read as fine-tuning reads them (src/data.c), PAWS's tokenized text detokenized
// (plm_detok) unless --no-detok. Rephrases every input with the task template (plm_task), at each
// --diversity setting, then scores the outputs (plm_score_paraphrases): sacreBLEU-exact BLEU
// against the references and against the inputs (self-BLEU), iBLEU = 0.8 BLEU - 0.2 self-BLEU
// (Sun & Zhou 2012, the usual paraphrase trade-off), exact copies, end-marker rate, length ratio,
// distance, invented content and speed; --out writes report.md, report.json, outputs.tsv and
// tradeoff.svg (BLEU against self-BLEU, plm_tradeoff_chart_svg). `--copy` scores the copy baseline
// (output = input) without a model; `--score HYP REF` scores two line-aligned files; `--plot OUT.svg
// RUN.json...` draws the runs of several `eval --json` outputs in one chart. (Over 800 lines: one
// command, four modes sharing its reader, metrics and reports.)
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "data.h"  // plm_text_pairs: the one reader of task data
#include "detok.h" // plm_detok: PAWS's tokenized text as typed
#include "json.h"  // reading `eval --json` lines for --plot

// ---- the data: PAWS TSV or JSONL pairs, read as fine-tuning reads them (src/data.c) ----

// read_pairs: the first limit usable rows of path (0 = all): label-1 rows of a PAWS TSV, the rows of
// a two-column TSV, or the {"input", "output"} lines of a JSONL file. Returns 0, or 1 after
// printing the error.
static int read_pairs(const char *cmd, const char *path, int32_t limit, plm_text_pairs *out) {
    plm_error err = {0};
    return plm_text_pairs_load(out, path, limit, &err) != PLM_OK ? cli_error(cmd, &err) : 0;
}

static int space(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

// trim_inplace: s without ASCII white space at both ends (the end is cut with a NUL).
static char *trim_inplace(char *s) {
    while (space(*s)) s++;
    size_t n = strlen(s);
    while (n && space(s[n - 1])) s[--n] = 0;
    return s;
}

// detok_pairs: every input and reference of p detokenized in place (plm_detok never lengthens
// text); 0, or 1 when out of memory.
static int detok_pairs(plm_text_pairs *p) {
    for (int32_t i = 0; i < p->n; i++) {
        // the strings live in p->text, which is ours to change
        char *s[2] = {p->text + (p->pair[i].input - p->text),
                      p->text + (p->pair[i].output - p->text)};
        for (int k = 0; k < 2; k++) {
            size_t n = strlen(s[k]);
            char *t = malloc(n + 1);
            if (!t) return 1;
            plm_detok(s[k], n, t, n + 1);
            memcpy(s[k], t, strlen(t) + 1);
            free(t);
        }
    }
    return 0;
}

// ---- options ----

#define MAX_SETTINGS 16

typedef struct {
    cli_model_opts model;
    plm_generate_params gen;
    const char *data, *out, *shots_data;
    int32_t limit, shots;
    int json, copy, seed_set;
    int detok;                     // 1, 0, or -1: detokenize PAWS rows only (default)
    float diversity[MAX_SETTINGS]; // --diversity D[,D...]: one run each
    int32_t n_diversity;           // 0: one run at plm_task_of's setting
} eval_opts;

static void usage(void) {
    printf("usage: pocketlm eval -m MODEL --data FILE [options]\n"
           "       pocketlm eval --copy --data FILE [--limit N] [--json] [--out DIR]\n"
           "       pocketlm eval --score HYP.txt REF.txt [--json]\n"
           "       pocketlm eval --plot OUT.svg RUN.json...\n"
           "Paraphrases the input of each pair with the task template (the plain template, "
           "stopping at a\n"
           "newline, for a model without the task tokens) and scores the outputs with BLEU as "
           "sacreBLEU\n"
           "computes it (13a, exp smoothing) against the reference and against the input "
           "(self-BLEU);\n"
           "iBLEU = 0.8 BLEU - 0.2 self-BLEU. Also: exact copies, outputs ended by the end "
           "marker, mean\n"
           "length ratio (13a tokens), mean distance from the input (100 - its BLEU against "
           "the input),\n"
           "and invented content: outputs with a number, or a capitalized word other than the "
           "first,\n"
           "that the input lacks (words: runs of letters and digits).\n\n" CLI_MODEL_HELP);
    printf(
        "  --data FILE      PAWS TSV (id, sentence1, sentence2, label: label-1 rows), a TSV "
        "of\n"
        "                   input<TAB>reference, or JSONL {\"input\": ..., \"output\": ...}\n"
        "  --diversity D[,D...]  one run per setting, 0 (stay close) to 1 (as different as "
        "it can),\n"
        "                   -1 = no control field; each sets the control level (adapters\n"
        "                   trained with --diversity-levels) and the decoding, as `paraphrase\n"
        "                   --diversity`; the decoding options below override it (default:\n"
        "                   the task's %.1f)\n"
        "  --detok, --no-detok  detokenize inputs and references (default: PAWS rows only, "
        "whose\n"
        "                   text is tokenized: \"Hello , world .\" -> \"Hello, world.\")\n"
        "  --limit N        the first N usable rows (default: all)\n"
        "  --shots K        prepend K examples (few-shot), from --shots-data (default 0)\n"
        "  --shots-data F   PAWS TSV for the shots: its first K label-1 rows (e.g. the dev "
        "split)\n" CLI_SAMPLE_HELP "                   (defaults: %d tokens, greedy, seed 42)\n"
        "  --json           print one JSON object per setting: n, bleu, self_bleu, ibleu,\n"
        "                   end_marker_rate, copy_rate, len_ratio, tok_s, ..., diversity,\n"
        "                   level, distance, invented_rate\n"
        "  --out DIR        write report.md, report.json (a line per setting), outputs.tsv\n"
        "                   and tradeoff.svg (BLEU against self-BLEU, with the copy "
        "baseline)\n"
        "  --copy           score the copy baseline (output = input); no model\n"
        "  --score HYP REF  print the BLEU of two line-aligned text files and exit\n"
        "  --plot OUT.svg RUN.json...  draw BLEU against self-BLEU of the lines of earlier\n"
        "                   `eval --json` outputs (a series per file, named after it) and exit\n",
        (double)PLM_TASK_DIVERSITY_DEFAULT, plm_task_default_params().max_tokens);
}

// parse_settings: "0,0.5,1" into o->diversity; 0, or 2 after a usage error
static int parse_settings(const char *cmd, const char *flag, const char *v, eval_opts *o) {
    o->n_diversity = 0;
    for (const char *p = v;; p++) {
        char one[32];
        size_t n = strcspn(p, ",");
        double x;
        if (o->n_diversity == MAX_SETTINGS)
            return cli_usage_error(cmd, "%s: at most %d settings", flag, MAX_SETTINGS);
        snprintf(one, sizeof one, "%.*s", (int)(n < 31 ? n : 31), p);
        if (cli_float(cmd, flag, one, -1, 1, &x)) return 2;
        o->diversity[o->n_diversity++] = x < 0 ? -1.0f : (float)x;
        p += n;
        if (!*p) return 0;
    }
}

// parse: the flags into o (argv[0] is "eval"); returns 0, or 2 after a usage error. --score and
// --plot are handled by the caller.
static int parse(const char *cmd, int argc, char **argv, eval_opts *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        long n;
        int r = cli_model_flag(cmd, argc, argv, &i, &o->model);
        if (r == 0) r = cli_sample_flag(cmd, argc, argv, &i, &o->gen, &o->seed_set);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (!strcmp(a, "--json")) o->json = 1;
        else if (!strcmp(a, "--copy")) o->copy = 1;
        else if (!strcmp(a, "--detok") || !strcmp(a, "--no-detok")) o->detok = a[2] == 'd';
        else if (!(v = cli_value(cmd, argc, argv, &i))) return 2;
        else if (!strcmp(a, "--data")) o->data = v;
        else if (!strcmp(a, "--out")) o->out = v;
        else if (!strcmp(a, "--shots-data")) o->shots_data = v;
        else if (!strcmp(a, "--diversity")) {
            if (parse_settings(cmd, a, v, o)) return 2;
        } else if (!strcmp(a, "--limit") || !strcmp(a, "--shots")) {
            if (cli_int(cmd, a, v, 0, 1 << 24, &n)) return 2;
            if (!strcmp(a, "--limit")) o->limit = (int32_t)n;
            else o->shots = (int32_t)n;
        } else return cli_usage_error(cmd, "unknown option '%s'", a);
    }
    if (!o->data) return cli_usage_error(cmd, "--data FILE.tsv is required");
    if (!o->copy && !o->model.model)
        return cli_usage_error(cmd, "-m MODEL (or --copy) is required");
    if (o->shots > 0 && !o->shots_data)
        return cli_usage_error(cmd, "--shots needs --shots-data FILE (never the evaluated file)");
    if (o->copy && o->n_diversity)
        return cli_usage_error(cmd, "--copy and --diversity: the copy baseline has no settings");
    return 0;
}

// ---- generation ----

// One output: its text and how generation ended.
typedef struct {
    char *text;       // trimmed output (malloc'd)
    const char *stop; // plm_stop_reason_name, or "copy"
    int32_t tokens;   // generated tokens (a stop token included)
    int ended;        // ended by the template's end (marker, or newline/EOS for plain)
} output;

// encode: the ids of text (malloc'd) and their count, or NULL when out of memory or empty.
static int32_t *encode(const plm_tokenizer *tok, const char *text, int32_t *n) {
    size_t len = strlen(text);
    *n = plm_tokenizer_encode(tok, text, len, NULL, 0);
    int32_t *ids = *n > 0 ? malloc((size_t)*n * sizeof *ids) : NULL;
    if (ids) plm_tokenizer_encode(tok, text, len, ids, *n);
    return ids;
}

// The prompt prefix every example shares (the shots, then the template's head), decoded once:
// each example keeps the KV cache of its longest common prefix with it. The cache always holds
// positions [0, n_keep) from the same one decode, so an output does not depend on the others.
typedef struct {
    int32_t *ids, n_keep; // prefix ids; positions decoded as one block
    int valid;            // the session holds exactly prefix[0 .. n_keep)
} prefix;

static void progress(int tty, int32_t done, int32_t n, double tok_s, double elapsed) {
    double eta = done ? elapsed / done * (n - done) : 0;
    if (tty) {
        int w = 24, fill = (int)((long)w * done / n);
        char bar[32];
        for (int i = 0; i < w; i++) bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
        bar[w] = 0;
        fprintf(stderr, "\r[%s] %d/%d %.1f tok/s eta %.0fs  ", bar, done, n, tok_s, eta);
        if (done == n) fprintf(stderr, "\n");
    } else if (done == n || done % (n / 10 > 0 ? n / 10 : 1) == 0) {
        fprintf(stderr, "eval %d/%d %.1f tok/s elapsed %.0fs eta %.0fs\n", done, n, tok_s, elapsed,
                eta);
    }
}

// task_text: plm_task_text as a new string (NULL when out of memory)
static char *task_text(const plm_task *t, const char *input, const char *target) {
    size_t n = plm_task_text(t, input, target, NULL, 0);
    char *s = malloc(n + 1);
    if (s) plm_task_text(t, input, target, s, n + 1);
    return s;
}

// shots_text: the first o->shots label-1 rows of o->shots_data as complete examples in the
// model's template (malloc'd; "" when there are none). Returns NULL after printing an error.
static char *shots_text(const char *cmd, const eval_opts *o, const plm_task *task) {
    if (o->shots == 0) return calloc(1, 1);
    plm_text_pairs sr;
    if (read_pairs(cmd, o->shots_data, o->shots, &sr)) return NULL;
    if (sr.n < o->shots)
        fprintf(stderr, "pocketlm %s: note: %s has only %d label-1 rows for --shots %d\n", cmd,
                o->shots_data, sr.n, o->shots);
    char *all = calloc(1, 1);
    size_t len = 0;
    for (int32_t i = 0; i < sr.n && all; i++) {
        char *one = task_text(task, sr.pair[i].input, sr.pair[i].output);
        char *grown = one ? realloc(all, len + strlen(one) + 1) : NULL;
        if (grown) {
            strcpy(grown + len, one);
            len += strlen(one);
        } else free(all);
        all = grown;
        free(one);
    }
    plm_text_pairs_free(&sr);
    if (!all) fprintf(stderr, "pocketlm %s: out of memory\n", cmd);
    return all;
}

// generate_all: out[i] for every row, on session s with the template of task (its diversity
// setting included); *seconds the wall time. Returns 0 or 1 after an error.
static int generate_all(const char *cmd, const eval_opts *o, plm_session *s, const plm_task *t,
                        const plm_generate_params *gen, const plm_text_pairs *data, output *out,
                        double *seconds) {
    plm_error err = {0};
    const plm_tokenizer *tok = plm_session_tokenizer(s);
    plm_task task = *t;
    plm_generate_params gp = *gen;
    plm_task_stop(&task, &gp);
    char *shots = shots_text(cmd, o, &task);
    if (!shots) return 1;
    size_t nh = strlen(shots);
    char *head = task_text(&task, "", NULL); // the template up to the input
    char *pre = head ? malloc(nh + strlen(head) + 1) : NULL;
    prefix px = {0};
    if (pre) strcat(strcpy(pre, shots), head);
    if (pre) px.ids = encode(tok, pre, &px.n_keep);
    px.n_keep = px.n_keep > 1 ? px.n_keep - 1 : 0; // the last id may merge with the input
    int32_t *ids = malloc(((size_t)gp.max_tokens + 1) * sizeof *ids);
    int rc = !head || !pre || (!px.ids && px.n_keep) || !ids;
    if (rc) fprintf(stderr, "pocketlm %s: out of memory\n", cmd);
    int tty = isatty(2);
    int64_t total_tokens = 0;
    double t0 = cli_now();
    for (int32_t i = 0; i < data->n && !rc; i++) {
        char *p1 = task_text(&task, data->pair[i].input, NULL);
        char *prompt = p1 ? malloc(nh + strlen(p1) + 1) : NULL;
        int32_t n = 0, *pids = prompt ? encode(tok, strcat(strcpy(prompt, shots), p1), &n) : NULL;
        cli_text tb = {0};
        plm_generate_result res;
        rc = !pids;
        if (!rc && !px.valid && px.n_keep > 0) { // (re)decode the shared prefix as one block
            plm_session_truncate(s, 0);
            rc = plm_session_decode(s, px.ids, px.n_keep, &err) != PLM_OK;
            px.valid = !rc;
        }
        int32_t keep = 0;
        while (keep < px.n_keep && keep < n - 1 && pids[keep] == px.ids[keep]) keep++;
        if (!rc) {
            plm_session_truncate(s, keep);
            px.valid = keep == px.n_keep;
            gp.source = data->pair[i].input; // what blocking and reranking keep away from
            gp.on_text = cli_text_add;
            gp.user = &tb;
            rc = plm_generate(s, pids + keep, n - keep, &gp, ids, gp.max_tokens, &res, &err) !=
                 PLM_OK;
        }
        if (!rc && tb.oom) rc = 1, err.msg[0] = 0, err.status = PLM_ERR_NOMEM;
        if (!rc) {
            out[i].text = tb.p ? tb.p : calloc(1, 1);
            tb.p = NULL;
            int newline = res.stop_reason == PLM_STOP_STRING && task.end_id < 0; // single line
            out[i].stop = newline ? "newline" : plm_stop_reason_name(res.stop_reason);
            out[i].tokens = res.generated_tokens;
            out[i].ended = res.stop_reason == PLM_STOP_TOKEN || newline;
            total_tokens += res.generated_tokens;
            double el = cli_now() - t0;
            progress(tty, i + 1, data->n, el > 0 ? (double)total_tokens / el : 0, el);
        } else if (pids) {
            cli_error(cmd, &err);
        } else {
            fprintf(stderr, "pocketlm %s: out of memory\n", cmd);
        }
        free(tb.p);
        free(pids);
        free(prompt);
        free(p1);
    }
    *seconds = cli_now() - t0;
    free(ids);
    free(px.ids);
    free(pre);
    free(head);
    free(shots);
    return rc;
}

// ---- runs: a setting, its outputs, their metrics ----

typedef struct {
    float diversity; // the setting (--diversity, or the control level's D); -1: none
    int32_t level;   // the control level the prompts carried, -1: no control field
    output *out;     // (n) the outputs
    double seconds;  // generation wall time
    plm_paraphrase_scores sc;
    double end_marker_rate, tok_s;
} run;

// score: the metrics of r's outputs against data (outputs already trimmed). 0, or 1 after an error.
static int score(const char *cmd, const plm_text_pairs *data, run *r) {
    int32_t n = data->n;
    const char **hyp = malloc((size_t)n * sizeof *hyp), **ref = malloc((size_t)n * sizeof *ref),
               **inp = malloc((size_t)n * sizeof *inp);
    plm_error err = {0};
    int rc = !hyp || !ref || !inp;
    if (rc) fprintf(stderr, "pocketlm %s: out of memory\n", cmd);
    int64_t tokens = 0;
    r->end_marker_rate = 0;
    for (int32_t i = 0; i < n && !rc; i++) {
        hyp[i] = r->out[i].text;
        ref[i] = data->pair[i].output;
        inp[i] = data->pair[i].input;
        r->end_marker_rate += r->out[i].ended;
        tokens += r->out[i].tokens;
    }
    if (!rc && plm_score_paraphrases(inp, ref, hyp, n, &r->sc, &err) != PLM_OK)
        rc = cli_error(cmd, &err);
    r->end_marker_rate /= n;
    r->tok_s = r->seconds > 0 ? (double)tokens / r->seconds : 0;
    free(hyp);
    free(ref);
    free(inp);
    return rc;
}

// run_name: how a run is named in tables and charts: "copy", "D=0.5 (level 2)" or "no field"
static const char *run_name(const run *r, const eval_opts *o, char *buf, size_t cap) {
    if (o->copy) return "copy";
    if (r->diversity < 0) return "no field";
    if (r->level < 0) snprintf(buf, cap, "D=%g", (double)r->diversity);
    else snprintf(buf, cap, "D=%g (level %d)", (double)r->diversity, (int)r->level);
    return buf;
}

// ---- reports ----

// print_json: one run's object (docs/DESIGN.md's fields first); settings too when full.
static void print_json(FILE *f, const run *r, const eval_opts *o, int full) {
    const plm_paraphrase_scores *m = &r->sc;
    fprintf(f, "{\"n\": %d, \"bleu\": %.4f, \"self_bleu\": %.4f, \"ibleu\": %.4f, ", m->n,
            m->bleu.bleu, m->self_bleu.bleu, m->ibleu);
    if (o->copy) fprintf(f, "\"end_marker_rate\": null, ");
    else fprintf(f, "\"end_marker_rate\": %.4f, ", r->end_marker_rate);
    fprintf(f, "\"copy_rate\": %.4f, \"len_ratio\": %.4f, \"tok_s\": %.2f, ", m->copy_rate,
            m->len_ratio, r->tok_s);
    fprintf(f, "\"bleu_precisions\": [%.4f, %.4f, %.4f, %.4f], \"bleu_bp\": %.4f, \"copy\": %s",
            m->bleu.precisions[0], m->bleu.precisions[1], m->bleu.precisions[2],
            m->bleu.precisions[3], m->bleu.bp, o->copy ? "true" : "false");
    if (r->diversity >= 0) fprintf(f, ", \"diversity\": %g", (double)r->diversity);
    else fprintf(f, ", \"diversity\": null");
    if (r->level >= 0) fprintf(f, ", \"level\": %d", r->level);
    else fprintf(f, ", \"level\": null");
    fprintf(f, ", \"distance\": %.4f, \"invented_rate\": %.4f", m->distance, m->invented_rate);
    if (full) {
        const plm_sampler_params *sp = &o->gen.sampler;
        fprintf(f, ", \"settings\": {\"data\": ");
        cli_json_str(f, o->data, strlen(o->data));
        fprintf(f, ", \"model\": ");
        if (o->model.model && !o->copy) cli_json_str(f, o->model.model, strlen(o->model.model));
        else fprintf(f, "null");
        fprintf(f, ", \"lora\": ");
        if (o->model.lora && !o->copy) cli_json_str(f, o->model.lora, strlen(o->model.lora));
        else fprintf(f, "null");
        fprintf(f,
                ", \"dtype\": \"%s\", \"limit\": %d, \"max_tokens\": %d, \"temp\": %g, "
                "\"top_k\": %d, \"top_p\": %g, \"min_p\": %g, \"repeat_penalty\": %g, "
                "\"copy_penalty\": %g, \"seed\": %llu, \"shots\": %d, \"detok\": %s, "
                "\"shots_data\": ",
                plm_dtype_name(o->model.dtype), o->limit, o->gen.max_tokens,
                (double)sp->temperature, sp->top_k, (double)sp->top_p, (double)sp->min_p,
                (double)sp->repetition_penalty, (double)o->gen.copy_penalty,
                (unsigned long long)sp->seed, o->shots, o->detok ? "true" : "false");
        if (o->shots_data && o->shots) cli_json_str(f, o->shots_data, strlen(o->shots_data));
        else fprintf(f, "null");
        fprintf(f, ", \"metric\": \"sacreBLEU corpus_bleu: 13a, case-sensitive, exp smoothing\"}");
    }
    fprintf(f, "}\n");
}

// print_table: a row per run, as text (md 0) or markdown (md 1)
static void print_table(FILE *f, const run *r, int32_t n_runs, const eval_opts *o, int md) {
    static const char *const names[11] = {"run",      "n",        "BLEU",  "self-BLEU",
                                          "iBLEU",    "copies",   "ended", "len ratio",
                                          "distance", "invented", "tok/s"};
    for (int c = 0; c < 11; c++) fprintf(f, md ? "| %s " : c ? "%10s" : "%-20s", names[c]);
    fprintf(f, md ? "|\n|---|---|---|---|---|---|---|---|---|---|---|\n" : "\n");
    for (int32_t k = 0; k < n_runs; k++) {
        const plm_paraphrase_scores *m = &r[k].sc;
        char v[11][64], name[64];
        snprintf(v[0], 64, "%s", run_name(&r[k], o, name, 64));
        snprintf(v[1], 64, "%d", m->n);
        snprintf(v[2], 64, "%.2f", m->bleu.bleu);
        snprintf(v[3], 64, "%.2f", m->self_bleu.bleu);
        snprintf(v[4], 64, "%.2f", m->ibleu);
        snprintf(v[5], 64, "%.1f%%", 100 * m->copy_rate);
        snprintf(v[6], 64, o->copy ? "-" : "%.1f%%", 100 * r[k].end_marker_rate);
        snprintf(v[7], 64, "%.3f", m->len_ratio);
        snprintf(v[8], 64, "%.1f", m->distance);
        snprintf(v[9], 64, "%.1f%%", 100 * m->invented_rate);
        snprintf(v[10], 64, o->copy ? "-" : "%.1f", r[k].tok_s);
        for (int c = 0; c < 11; c++) fprintf(f, md ? "| %s " : c ? "%10s" : "%-20s", v[c]);
        fprintf(f, md ? "|\n" : "\n");
    }
}

// md_cell: s in a markdown table cell ('|' escaped, line breaks as spaces).
static void md_cell(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '|') fputs("\\|", f);
        else fputc(*s == '\n' || *s == '\r' || *s == '\t' ? ' ' : *s, f);
    }
}

// tsv_cell: s in a TSV cell (tabs and line breaks become spaces).
static void tsv_cell(FILE *f, const char *s) {
    for (; *s; s++) fputc(*s == '\n' || *s == '\r' || *s == '\t' ? ' ' : *s, f);
}

// open_tmp / commit_tmp: write dir/name through dir/name.tmp and rename it over (atomic).
static FILE *open_tmp(const char *dir, const char *name, char *path, char *tmp, size_t cap) {
    snprintf(path, cap, "%s/%s", dir, name);
    snprintf(tmp, cap, "%s/%s.tmp.%ld", dir, name, (long)getpid());
    return fopen(tmp, "w");
}

static int commit_tmp(FILE *f, const char *path, const char *tmp) {
    int bad = ferror(f) | (fflush(f) != 0) | (fsync(fileno(f)) != 0);
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        remove(tmp);
        return 1;
    }
    return 0;
}

// write_markdown: report.md: the table of the runs, what the columns mean, the first 20 examples
static void write_markdown(FILE *f, const eval_opts *o, const plm_text_pairs *data, const run *r,
                           int32_t n_runs) {
    char name[64];
    fprintf(f, "# pocketlm eval\n\n%s on %s (%d pairs%s)\n\n",
            o->copy ? "copy baseline (output = input)" : o->model.model, o->data, data->n,
            o->detok ? ", detokenized" : "");
    print_table(f, r, n_runs, o, 1);
    fprintf(f, "\nBLEU: sacreBLEU corpus_bleu (13a, case-sensitive, exp smoothing) against the "
               "references; self-BLEU: outputs against inputs; iBLEU = 0.8 BLEU - 0.2 self-BLEU; "
               "copies: outputs with the same 13a tokens as their input (spacing aside); ended: "
               "outputs ended by the end marker; "
               "len ratio: output / input 13a tokens; distance: 100 - an output's BLEU against "
               "its input, averaged; invented: outputs with a number, or a capitalized word "
               "other than the first, that the input lacks.\n\n## Examples\n\n"
               "| # | input | reference |");
    for (int32_t k = 0; k < n_runs; k++) fprintf(f, " %s |", run_name(&r[k], o, name, 64));
    fprintf(f, "\n|---|---|---|");
    for (int32_t k = 0; k < n_runs; k++) fprintf(f, "---|");
    fprintf(f, "\n");
    for (int32_t i = 0; i < data->n && i < 20; i++) {
        fprintf(f, "| %d | ", i + 1);
        md_cell(f, data->pair[i].input);
        fputs(" | ", f);
        md_cell(f, data->pair[i].output);
        for (int32_t k = 0; k < n_runs; k++) {
            fputs(" | ", f);
            md_cell(f, r[k].out[i].text);
        }
        fputs(" |\n", f);
    }
}

// tradeoff_svg: the chart of the runs and of the copy baseline (scored here: it costs nothing)
// as a new string, or NULL after printing an error
static char *tradeoff_svg(const char *cmd, const eval_opts *o, const plm_text_pairs *data,
                          const run *r, int32_t n_runs) {
    float x[MAX_SETTINGS + 1], y[MAX_SETTINGS + 1];
    char names[MAX_SETTINGS + 1][64];
    const char *label[MAX_SETTINGS + 1];
    int32_t series[MAX_SETTINGS + 1], n = 0;
    const char **inp = malloc((size_t)data->n * sizeof *inp),
               **ref = malloc((size_t)data->n * sizeof *ref);
    plm_paraphrase_scores copy;
    plm_error err = {0};
    char *svg = NULL;
    for (int32_t i = 0; inp && ref && i < data->n; i++)
        inp[i] = data->pair[i].input, ref[i] = data->pair[i].output;
    plm_status st = inp && ref ? plm_score_paraphrases(inp, ref, inp, data->n, &copy, &err)
                               : plm_fail(&err, PLM_ERR_NOMEM, "out of memory");
    free(inp), free(ref);
    if (st != PLM_OK) return cli_error(cmd, &err), NULL;
    if (!o->copy)
        x[n] = (float)copy.self_bleu.bleu, y[n] = (float)copy.bleu.bleu, label[n] = "copy",
        series[n++] = 0;
    for (int32_t k = 0; k < n_runs; k++, n++) {
        x[n] = (float)r[k].sc.self_bleu.bleu, y[n] = (float)r[k].sc.bleu.bleu;
        label[n] = run_name(&r[k], o, names[n], 64), series[n] = 1;
    }
    plm_tradeoff_chart c = {x, y, label, series, n, (float)copy.ibleu, NULL, 0, 0};
    if (plm_tradeoff_chart_svg(&svg, NULL, &c, &err) != PLM_OK) cli_error(cmd, &err);
    return svg;
}

// write_reports: report.md, report.json (a line per run), outputs.tsv and tradeoff.svg in dir
// (created). 0, or 1 after an error.
static int write_reports(const char *cmd, const eval_opts *o, const plm_text_pairs *data,
                         const run *r, int32_t n_runs) {
    char path[4096], tmp[4200];
    if (mkdir(o->out, 0777) != 0 && errno != EEXIST)
        return fprintf(stderr, "pocketlm %s: %s: cannot create directory\n", cmd, o->out), 1;
    char *svg = tradeoff_svg(cmd, o, data, r, n_runs);
    if (!svg) return 1;
    static const char *const names[4] = {"report.json", "report.md", "outputs.tsv", "tradeoff.svg"};
    for (int k = 0; k < 4; k++) {
        FILE *f = open_tmp(o->out, names[k], path, tmp, sizeof path);
        if (!f) return free(svg), fprintf(stderr, "pocketlm %s: %s: cannot write\n", cmd, tmp), 1;
        if (k == 0)
            for (int32_t j = 0; j < n_runs; j++) print_json(f, &r[j], o, 1);
        else if (k == 1) write_markdown(f, o, data, r, n_runs);
        else if (k == 3) fputs(svg, f);
        else {
            fprintf(f, "id\tinput\treference\toutput\tstop_reason\ttokens\tdiversity\n");
            for (int32_t j = 0; j < n_runs; j++)
                for (int32_t i = 0; i < data->n; i++) {
                    const char *cells[4] = {data->pair[i].id, data->pair[i].input,
                                            data->pair[i].output, r[j].out[i].text};
                    for (int c = 0; c < 4; c++) tsv_cell(f, cells[c]), fputc('\t', f);
                    fprintf(f, "%s\t%d\t", r[j].out[i].stop, r[j].out[i].tokens);
                    if (r[j].diversity >= 0) fprintf(f, "%g\n", (double)r[j].diversity);
                    else fprintf(f, "-\n");
                }
        }
        if (commit_tmp(f, path, tmp)) {
            free(svg);
            return fprintf(stderr, "pocketlm %s: %s: write failed\n", cmd, path), 1;
        }
    }
    free(svg);
    return 0;
}

// ---- --score HYP REF ----

// lines: split text in place into lines (without "\n" or "\r\n"); a final newline ends the last
// line rather than starting an empty one. Returns the count; *out is malloc'd (NULL when no memory).
static int32_t lines(char *text, size_t len, char ***out) {
    int32_t n = 0;
    for (size_t i = 0; i < len; i++) n += text[i] == '\n';
    if (len && text[len - 1] != '\n') n++;
    char **l = malloc(((size_t)n + 1) * sizeof *l);
    *out = l;
    if (!l) return 0;
    char *s = text;
    for (int32_t k = 0; k < n; k++) {
        char *nl = strchr(s, '\n');
        if (nl) *nl = 0;
        size_t m = strlen(s);
        if (m && s[m - 1] == '\r') s[m - 1] = 0;
        l[k] = s;
        s = nl ? nl + 1 : s + m;
    }
    return n;
}

static int score_files(const char *cmd, const char *hp, const char *rp, int json) {
    size_t nh, nr;
    char *h = cli_read_file(cmd, hp, &nh), *r = h ? cli_read_file(cmd, rp, &nr) : NULL;
    char **hl = NULL, **rl = NULL;
    int rc = 1;
    if (!h || !r) goto done;
    int32_t a = lines(h, nh, &hl), b = lines(r, nr, &rl);
    if (!hl || !rl) {
        fprintf(stderr, "pocketlm %s: out of memory\n", cmd);
        goto done;
    }
    if (a != b) {
        fprintf(stderr, "pocketlm %s: %s has %d lines, %s has %d\n", cmd, hp, a, rp, b);
        goto done;
    }
    plm_bleu_result res;
    plm_error err = {0};
    if (plm_bleu((const char *const *)hl, (const char *const *)rl, a, &res, &err) != PLM_OK) {
        rc = cli_error(cmd, &err);
        goto done;
    }
    if (json)
        printf("{\"n\": %d, \"bleu\": %.10f, \"precisions\": [%.10f, %.10f, %.10f, %.10f], "
               "\"bp\": %.10f, \"sys_len\": %lld, \"ref_len\": %lld}\n",
               a, res.bleu, res.precisions[0], res.precisions[1], res.precisions[2],
               res.precisions[3], res.bp, (long long)res.sys_len, (long long)res.ref_len);
    else
        printf("BLEU = %.10f %.1f/%.1f/%.1f/%.1f (BP = %.3f ratio = %.3f hyp_len = %lld ref_len = "
               "%lld)\n",
               res.bleu, res.precisions[0], res.precisions[1], res.precisions[2], res.precisions[3],
               res.bp, res.ref_len ? (double)res.sys_len / (double)res.ref_len : 0.0,
               (long long)res.sys_len, (long long)res.ref_len);
    rc = 0;
done:
    free(hl);
    free(rl);
    free(h);
    free(r);
    return rc;
}

// ---- --plot OUT.svg RUN.json... ----

// plot_files: the trade-off chart of the lines of earlier `eval --json` outputs: a series per file,
// each point labeled with the file's name (without its directory and .json) and its diversity;
// the dashed line through a run with "copy": true.
static int plot_files(const char *cmd, const char *svg_path, char **files, int n_files) {
    enum { MAX_POINTS = 256 };
    float x[MAX_POINTS], y[MAX_POINTS], copy_ibleu = NAN;
    char names[MAX_POINTS][96];
    const char *label[MAX_POINTS];
    int32_t series[MAX_POINTS], n = 0;
    int rc = 0;
    for (int f = 0; f < n_files && !rc; f++) {
        size_t len;
        char *text = cli_read_file(cmd, files[f], &len);
        if (!text) return 1;
        const char *base = strrchr(files[f], '/') ? strrchr(files[f], '/') + 1 : files[f];
        int nb =
            (int)(strlen(base) > 5 && !strcmp(base + strlen(base) - 5, ".json") ? strlen(base) - 5
                                                                                : strlen(base));
        int line = 0;
        for (char *p = text, *end; *p && !rc; p = *end ? end + 1 : end) {
            end = p + strcspn(p, "\n");
            line++;
            if (end == p) continue;
            plm_json j;
            plm_error err = {0};
            double b, sb, d;
            if (plm_json_parse(&j, p, (size_t)(end - p), files[f], &err) != PLM_OK) {
                fprintf(stderr, "pocketlm %s: %s:%d: %s\n", cmd, files[f], line, err.msg);
                rc = 1;
                break;
            }
            if (plm_json_num(&j, plm_json_get(&j, 0, "bleu"), &b) ||
                plm_json_num(&j, plm_json_get(&j, 0, "self_bleu"), &sb)) {
                fprintf(stderr,
                        "pocketlm %s: %s:%d: want an `eval --json` object with \"bleu\" "
                        "and \"self_bleu\"\n",
                        cmd, files[f], line);
                rc = 1;
            } else if (n == MAX_POINTS) {
                fprintf(stderr, "pocketlm %s: more than %d runs\n", cmd, MAX_POINTS);
                rc = 1;
            } else {
                int32_t c = plm_json_get(&j, 0, "copy");
                if (c >= 0 && j.tok[c].type == PLM_JSON_TRUE)
                    copy_ibleu = (float)(0.8 * b - 0.2 * sb);
                if (!plm_json_num(&j, plm_json_get(&j, 0, "diversity"), &d))
                    snprintf(names[n], sizeof names[n], "%.*s D=%g", nb, base, d);
                else snprintf(names[n], sizeof names[n], "%.*s", nb, base);
                x[n] = (float)sb, y[n] = (float)b, label[n] = names[n], series[n++] = f;
            }
            plm_json_free(&j);
        }
        free(text);
    }
    if (rc) return rc;
    plm_tradeoff_chart c = {x, y, label, series, n, copy_ibleu, NULL, 0, 0};
    char *svg = NULL;
    size_t len = 0;
    plm_error err = {0};
    plm_writer *w = NULL;
    plm_status st = plm_tradeoff_chart_svg(&svg, &len, &c, &err);
    if (st == PLM_OK) st = plm_writer_open(&w, svg_path, &err);
    if (st == PLM_OK) st = plm_writer_write(w, svg, len, &err);
    if (st == PLM_OK) st = plm_writer_commit(w, &err);
    else plm_writer_abort(w);
    free(svg);
    return st == PLM_OK ? 0 : cli_error(cmd, &err);
}

// ---- the command ----

int cmd_eval(int argc, char **argv) {
    const char *cmd = "eval";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage(), 0;
        if (!strcmp(argv[i], "--score")) {
            int json = 0;
            for (int k = 1; k < argc; k++) json |= !strcmp(argv[k], "--json");
            if (i + 2 >= argc || argc != 4 + json)
                return cli_usage_error(cmd, "--score HYP.txt REF.txt [--json] takes nothing else");
            return score_files(cmd, argv[i + 1], argv[i + 2], json);
        }
        if (!strcmp(argv[i], "--plot")) {
            if (i != 1 || argc < 4)
                return cli_usage_error(cmd, "--plot OUT.svg RUN.json... takes nothing else");
            return plot_files(cmd, argv[2], argv + 3, argc - 3);
        }
    }
    eval_opts o;
    memset(&o, 0, sizeof o);
    o.model = CLI_MODEL_OPTS;
    o.gen = plm_task_default_params();
    o.gen.sampler = plm_sampler_default_params(); // eval scores greedy decoding (seed 42)
    o.detok = -1;
    int rc = parse(cmd, argc, argv, &o);
    if (rc) return rc;
    plm_text_pairs data;
    if (read_pairs(cmd, o.data, o.limit, &data)) return 1;
    if (data.bad)
        fprintf(stderr, "pocketlm %s: note: %lld bad rows skipped, first: %s\n", cmd,
                (long long)data.bad, data.first_bad);
    if (o.detok < 0) o.detok = data.paws; // PAWS text is tokenized; other data is taken as it is
    if (o.detok && detok_pairs(&data)) {
        fprintf(stderr, "pocketlm %s: out of memory\n", cmd);
        plm_text_pairs_free(&data);
        return 1;
    }
    run r[MAX_SETTINGS];
    memset(r, 0, sizeof r);
    int32_t n_runs = 0;
    plm_model *m = NULL;
    plm_session *s = NULL;
    rc = 1;
    if (o.copy) {
        r[0].level = -1, r[0].diversity = -1.0f;
        if (!(r[0].out = calloc((size_t)data.n, sizeof *r[0].out))) goto done;
        n_runs = 1;
        for (int32_t i = 0; i < data.n; i++)
            r[0].out[i] = (output){strdup(data.pair[i].input), "copy", 0, 0};
    } else {
        if (cli_open(cmd, &o.model, &m, &s)) goto done;
        plm_task task = plm_task_of(plm_session_tokenizer(s));
        if (task.end_id < 0)
            fprintf(stderr,
                    "pocketlm %s: note: the model has no %s/%s tokens: plain template, stopping"
                    " at the first newline after text (or EOS)\n",
                    cmd, PLM_TASK_START, PLM_TASK_END);
        else if (o.n_diversity && task.n_levels == 0)
            fprintf(stderr,
                    "pocketlm %s: note: the model has no diversity control tokens (trained "
                    "without --diversity-levels): the settings change the decoding only\n",
                    cmd);
        int32_t want = o.n_diversity ? o.n_diversity : 1;
        for (int32_t k = 0; k < want; k++, n_runs++) {
            // a setting: what `paraphrase --diversity D` does (control level and decoding)
            plm_generate_params gen = o.gen;
            if (o.n_diversity && o.diversity[k] >= 0 &&
                plm_paraphrase_diversity(&task, &gen, o.diversity[k], NULL) != PLM_OK)
                goto done;
            if (o.n_diversity && o.diversity[k] < 0) task.diversity = -1.0f;
            int seed_set = 0; // the decoding options given override the setting's, as in paraphrase
            for (int i = 1; o.n_diversity && i < argc; i++)
                if (cli_sample_flag(cmd, argc, argv, &i, &gen, &seed_set) < 0) goto done;
            r[k].diversity = o.n_diversity   ? o.diversity[k]
                             : task.n_levels ? task.diversity
                                             : -1.0f;
            r[k].level = plm_task_level(&task);
            if (!(r[k].out = calloc((size_t)data.n, sizeof *r[k].out))) goto done;
            if (want > 1) fprintf(stderr, "eval: diversity %g\n", (double)task.diversity);
            if (generate_all(cmd, &o, s, &task, &gen, &data, r[k].out, &r[k].seconds)) goto done;
        }
    }
    for (int32_t k = 0; k < n_runs; k++) {
        for (int32_t i = 0; i < data.n; i++) {
            if (!r[k].out[i].text) goto done;
            char *t = trim_inplace(r[k].out[i].text);
            memmove(r[k].out[i].text, t, strlen(t) + 1);
        }
        if (score(cmd, &data, &r[k])) goto done;
    }
    if (o.json)
        for (int32_t k = 0; k < n_runs; k++) print_json(stdout, &r[k], &o, 0);
    else {
        printf("pocketlm eval: %s on %s (%d pairs%s)\n", o.copy ? "copy baseline" : o.model.model,
               o.data, data.n, o.detok ? ", detokenized" : "");
        print_table(stdout, r, n_runs, &o, 0);
    }
    rc = o.out ? write_reports(cmd, &o, &data, r, n_runs) : 0;
done:
    for (int32_t k = 0; k < MAX_SETTINGS; k++) {
        for (int32_t i = 0; r[k].out && i < data.n; i++) free(r[k].out[i].text);
        free(r[k].out);
    }
    cli_close(&o.model, m, s);
    plm_text_pairs_free(&data);
    return rc;
}
