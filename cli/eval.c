// eval.c: `pocketlm eval`: paraphrase quality on a PAWS TSV (or JSONL pairs, read as fine-tuning
// reads them: src/data.c). Rephrases sentence1 of every label-1 row with the task template
// (plm_task), then scores the outputs with sacreBLEU-exact BLEU (plm_bleu) against sentence2
// (BLEU) and against sentence1 (self-BLEU): iBLEU = 0.8 BLEU - 0.2 self-BLEU (Sun & Zhou 2012,
// the usual paraphrase trade-off). Also end-marker, copy and length
// rates and speed; --out writes report.md, report.json and outputs.tsv. `--copy` scores the copy
// baseline (output = input) without a model; `--score HYP REF` scores two line-aligned files.
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "data.h" // plm_text_pairs: the one reader of task data

// ---- the data: PAWS TSV or JSONL pairs, read as fine-tuning reads them (src/data.c) ----

// read_pairs: the first limit usable rows of path (0 = all): label-1 rows of a PAWS TSV, or the
// {"input", "output"} lines of a JSONL file. Returns 0, or 1 after printing the error.
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

// ---- options ----

typedef struct {
    cli_model_opts model;
    plm_generate_params gen;
    const char *data, *out, *shots_data;
    int32_t limit, shots;
    int json, copy, seed_set;
} eval_opts;

static void usage(void) {
    printf("usage: pocketlm eval -m MODEL --data FILE.tsv [options]\n"
           "       pocketlm eval --copy --data FILE.tsv [--limit N] [--json] [--out DIR]\n"
           "       pocketlm eval --score HYP.txt REF.txt [--json]\n"
           "Paraphrases sentence1 of each label-1 row of a PAWS TSV with the task template (the "
           "plain\n"
           "template, stopping at a newline, for a model without the task tokens) and scores the "
           "outputs\n"
           "with BLEU as sacreBLEU computes it (13a, exp smoothing) against sentence2 and against "
           "the\n"
           "input (self-BLEU); iBLEU = 0.8 BLEU - 0.2 self-BLEU.\n\n" CLI_MODEL_HELP
           "  --data FILE      PAWS TSV (id, sentence1, sentence2, label), or JSONL\n"
           "                   {\"input\": ..., \"output\": ...}\n"
           "  --limit N        the first N label-1 rows (default: all)\n"
           "  --shots K        prepend K examples (few-shot), from --shots-data (default 0)\n"
           "  --shots-data F   PAWS TSV for the shots: its first K label-1 rows (e.g. the dev "
           "split)\n" CLI_SAMPLE_HELP "                   (defaults: %d tokens, greedy, seed 42)\n"
           "  --json           print one JSON object: n, bleu, self_bleu, ibleu, end_marker_rate,\n"
           "                   copy_rate, len_ratio, tok_s\n"
           "  --out DIR        write report.md, report.json and outputs.tsv there\n"
           "  --copy           score the copy baseline (output = input); no model\n"
           "  --score HYP REF  print the BLEU of two line-aligned text files and exit\n",
           plm_task_default_params().max_tokens);
}

// parse: the flags into o (argv[0] is "eval"); returns 0, or 2 after a usage error. --score is
// handled by the caller.
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
        else if (!(v = cli_value(cmd, argc, argv, &i))) return 2;
        else if (!strcmp(a, "--data")) o->data = v;
        else if (!strcmp(a, "--out")) o->out = v;
        else if (!strcmp(a, "--shots-data")) o->shots_data = v;
        else if (!strcmp(a, "--limit") || !strcmp(a, "--shots")) {
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

// generate_all: out[i] for every row; *seconds the wall time. Returns 0 or 1 after an error.
static int generate_all(const char *cmd, eval_opts *o, const plm_text_pairs *data, output *out,
                        double *seconds) {
    plm_model *m;
    plm_session *s;
    plm_error err = {0};
    if (cli_open(cmd, &o->model, &m, &s)) return 1;
    const plm_tokenizer *tok = plm_session_tokenizer(s);
    plm_task task = plm_task_of(tok);
    plm_generate_params gp = o->gen;
    plm_task_stop(&task, &gp);
    if (task.end_id < 0)
        fprintf(stderr,
                "pocketlm %s: note: the model has no %s/%s tokens: plain template, stopping"
                " at the first newline after text (or EOS)\n",
                cmd, PLM_TASK_START, PLM_TASK_END);
    char *shots = shots_text(cmd, o, &task);
    if (!shots) return cli_close(&o->model, m, s), 1;
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
    cli_close(&o->model, m, s);
    return rc;
}

// ---- metrics ----

typedef struct {
    int32_t n;
    plm_bleu_result bleu, self;
    double ibleu, end_marker_rate, copy_rate, len_ratio, tok_s;
} metrics;

static int32_t words(const char *s) {
    int32_t n = 0;
    for (int in = 0; *s; s++) {
        if (space(*s)) in = 0;
        else if (!in) in = 1, n++;
    }
    return n;
}

// score: the metrics of out against data (outputs already trimmed). 0, or 1 after an error.
static int score(const char *cmd, const plm_text_pairs *data, const output *out, double seconds,
                 metrics *m) {
    int32_t n = data->n;
    const char **hyp = malloc((size_t)n * sizeof *hyp), **ref = malloc((size_t)n * sizeof *ref),
               **inp = malloc((size_t)n * sizeof *inp);
    plm_error err = {0};
    int rc = !hyp || !ref || !inp;
    if (rc) fprintf(stderr, "pocketlm %s: out of memory\n", cmd);
    memset(m, 0, sizeof *m);
    m->n = n;
    int64_t tokens = 0;
    for (int32_t i = 0; i < n && !rc; i++) {
        hyp[i] = out[i].text;
        ref[i] = data->pair[i].output;
        inp[i] = data->pair[i].input;
        m->end_marker_rate += out[i].ended;
        m->copy_rate += !strcmp(out[i].text, data->pair[i].input);
        int32_t wi = words(data->pair[i].input);
        m->len_ratio += wi ? (double)words(out[i].text) / wi : 0;
        tokens += out[i].tokens;
    }
    if (!rc && (plm_bleu((const char *const *)hyp, (const char *const *)ref, n, &m->bleu, &err) ||
                plm_bleu((const char *const *)hyp, (const char *const *)inp, n, &m->self, &err)))
        rc = cli_error(cmd, &err);
    m->ibleu = 0.8 * m->bleu.bleu - 0.2 * m->self.bleu;
    m->end_marker_rate /= n;
    m->copy_rate /= n;
    m->len_ratio /= n;
    m->tok_s = seconds > 0 ? (double)tokens / seconds : 0;
    free(hyp);
    free(ref);
    free(inp);
    return rc;
}

// ---- reports ----

// print_json: the metrics object (docs/DESIGN.md's fields first); settings too when full.
static void print_json(FILE *f, const metrics *m, const eval_opts *o, int full) {
    fprintf(f, "{\"n\": %d, \"bleu\": %.4f, \"self_bleu\": %.4f, \"ibleu\": %.4f, ", m->n,
            m->bleu.bleu, m->self.bleu, m->ibleu);
    if (o->copy) fprintf(f, "\"end_marker_rate\": null, ");
    else fprintf(f, "\"end_marker_rate\": %.4f, ", m->end_marker_rate);
    fprintf(f, "\"copy_rate\": %.4f, \"len_ratio\": %.4f, \"tok_s\": %.2f, ", m->copy_rate,
            m->len_ratio, m->tok_s);
    fprintf(f, "\"bleu_precisions\": [%.4f, %.4f, %.4f, %.4f], \"bleu_bp\": %.4f, \"copy\": %s",
            m->bleu.precisions[0], m->bleu.precisions[1], m->bleu.precisions[2],
            m->bleu.precisions[3], m->bleu.bp, o->copy ? "true" : "false");
    if (full) {
        const plm_sampler_params *sp = &o->gen.sampler;
        fprintf(f, ",\n \"settings\": {\"data\": ");
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
                "\"copy_penalty\": %g, \"seed\": %llu, \"shots\": %d, \"shots_data\": ",
                plm_dtype_name(o->model.dtype), o->limit, o->gen.max_tokens,
                (double)sp->temperature, sp->top_k, (double)sp->top_p, (double)sp->min_p,
                (double)sp->repetition_penalty, (double)o->gen.copy_penalty,
                (unsigned long long)sp->seed, o->shots);
        if (o->shots_data && o->shots) cli_json_str(f, o->shots_data, strlen(o->shots_data));
        else fprintf(f, "null");
        fprintf(f, ", \"metric\": \"sacreBLEU corpus_bleu: 13a, case-sensitive, exp smoothing\"}");
    }
    fprintf(f, "}\n");
}

static void print_table(FILE *f, const metrics *m, const eval_opts *o, int md) {
    const char *fmt = md ? "| %s | %s |\n" : "  %-16s %s\n";
    char v[8][64];
    snprintf(v[0], 64, "%d", m->n);
    snprintf(v[1], 64, "%.2f", m->bleu.bleu);
    snprintf(v[2], 64, "%.2f", m->self.bleu);
    snprintf(v[3], 64, "%.2f", m->ibleu);
    snprintf(v[4], 64, o->copy ? "-" : "%.3f", m->end_marker_rate);
    snprintf(v[5], 64, "%.3f", m->copy_rate);
    snprintf(v[6], 64, "%.3f", m->len_ratio);
    snprintf(v[7], 64, o->copy ? "-" : "%.1f", m->tok_s);
    static const char *const names[8] = {
        "n", "BLEU", "self-BLEU", "iBLEU", "end_marker_rate", "copy_rate", "len_ratio", "tok/s"};
    fprintf(f, fmt, "metric", "value");
    if (md) fprintf(f, "|---|---|\n");
    for (int i = 0; i < 8; i++) fprintf(f, fmt, names[i], v[i]);
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

// write_reports: report.md, report.json and outputs.tsv in dir (created). 0, or 1 after an error.
static int write_reports(const char *cmd, const eval_opts *o, const plm_text_pairs *data,
                         const output *out, const metrics *m) {
    char path[4096], tmp[4200];
    if (mkdir(o->out, 0777) != 0 && errno != EEXIST)
        return fprintf(stderr, "pocketlm %s: %s: cannot create directory\n", cmd, o->out), 1;
    static const char *const names[3] = {"report.json", "report.md", "outputs.tsv"};
    for (int k = 0; k < 3; k++) {
        FILE *f = open_tmp(o->out, names[k], path, tmp, sizeof path);
        if (!f) return fprintf(stderr, "pocketlm %s: %s: cannot write\n", cmd, tmp), 1;
        if (k == 0) print_json(f, m, o, 1);
        else if (k == 1) {
            fprintf(f, "# pocketlm eval\n\n%s on %s (%d label-1 rows)\n\n",
                    o->copy ? "copy baseline (output = input)" : o->model.model, o->data, m->n);
            print_table(f, m, o, 1);
            fprintf(f, "\nBLEU: sacreBLEU corpus_bleu (13a, case-sensitive, exp smoothing); "
                       "self-BLEU: outputs against inputs; iBLEU = 0.8 BLEU - 0.2 self-BLEU.\n\n"
                       "## Examples\n\n| # | input | reference | output |\n|---|---|---|---|\n");
            for (int32_t i = 0; i < data->n && i < 20; i++) {
                fprintf(f, "| %d | ", i + 1);
                md_cell(f, data->pair[i].input);
                fputs(" | ", f);
                md_cell(f, data->pair[i].output);
                fputs(" | ", f);
                md_cell(f, out[i].text);
                fputs(" |\n", f);
            }
        } else {
            fprintf(f, "id\tinput\treference\toutput\tstop_reason\ttokens\n");
            for (int32_t i = 0; i < data->n; i++) {
                const char *cells[4] = {data->pair[i].id, data->pair[i].input, data->pair[i].output,
                                        out[i].text};
                for (int c = 0; c < 4; c++) tsv_cell(f, cells[c]), fputc('\t', f);
                fprintf(f, "%s\t%d\n", out[i].stop, out[i].tokens);
            }
        }
        if (commit_tmp(f, path, tmp))
            return fprintf(stderr, "pocketlm %s: %s: write failed\n", cmd, path), 1;
    }
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
    }
    eval_opts o;
    memset(&o, 0, sizeof o);
    o.model.dtype = PLM_DTYPE_F32;
    o.gen = plm_task_default_params();
    o.gen.sampler = plm_sampler_default_params(); // eval scores greedy decoding (seed 42)
    int rc = parse(cmd, argc, argv, &o);
    if (rc) return rc;
    plm_text_pairs data;
    if (read_pairs(cmd, o.data, o.limit, &data)) return 1;
    if (data.bad)
        fprintf(stderr, "pocketlm %s: note: %lld bad rows skipped, first: %s\n", cmd,
                (long long)data.bad, data.first_bad);
    output *out = calloc((size_t)data.n, sizeof *out);
    double seconds = 0;
    metrics m;
    rc = 1;
    if (!out) goto done;
    if (o.copy) {
        for (int32_t i = 0; i < data.n; i++)
            out[i] = (output){strdup(data.pair[i].input), "copy", 0, 0};
    } else if (generate_all(cmd, &o, &data, out, &seconds)) {
        goto done;
    }
    for (int32_t i = 0; i < data.n; i++) {
        if (!out[i].text) goto done;
        char *t = trim_inplace(out[i].text);
        memmove(out[i].text, t, strlen(t) + 1);
    }
    if (score(cmd, &data, out, seconds, &m)) goto done;
    if (o.json) print_json(stdout, &m, &o, 0);
    else {
        printf("pocketlm eval: %s on %s\n", o.copy ? "copy baseline" : o.model.model, o.data);
        print_table(stdout, &m, &o, 0);
    }
    rc = o.out ? write_reports(cmd, &o, &data, out, &m) : 0;
done:
    for (int32_t i = 0; out && i < data.n; i++) free(out[i].text);
    free(out);
    plm_text_pairs_free(&data);
    return rc;
}
