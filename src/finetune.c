// finetune.c: plm_finetune, a whole LoRA fine-tuning run: the data (data.c), a fresh adapter with
// the task tokens added (or the one of a checkpoint), the loop over epochs, length-grouped
// micro-batches and gradient accumulation (trainer.c), evaluation, checkpoints that a killed run
// resumes from bit for bit, metrics.jsonl and loss.svg. Like HF Trainer with PEFT, in one function;
// or a step per call (plm_finetune_begin / _step / _checkpoint / _save), for a caller that owns
// the loop: the browser, which yields between steps.
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data.h"
#include "json.h"
#include "lora.h"
#include "model.h"
#include "task.h"
#include "trainer.h"

plm_finetune_params plm_finetune_default_params(void) {
    plm_finetune_params p;
    memset(&p, 0, sizeof p);
    p.eval_frac = 0.05f;
    p.targets = "q_proj,v_proj";
    p.rank = 8;
    p.alpha = 16.0f;
    p.dropout = 0.05f;
    p.batch = 8;
    p.accum = 1;
    p.epochs = 1;
    p.warmup_ratio = 0.03f;
    p.reverse = 1;
    p.max_len = 256;
    p.train = plm_train_default_params();
    p.diversity_levels = 0; // opt-in: not yet shown to help on held-out (EVAL.md)
    p.detok = 1;
    return p;
}

// ---- the adapter ----

// parse_targets: "q_proj,v_proj", "all" or "all-linear" into a bit mask
static plm_status parse_targets(const char *s, uint32_t *mask, plm_error *err) {
    *mask = 0;
    for (const char *p = s; *p;) {
        size_t n = strcspn(p, ",");
        uint32_t t = plm_lora_target_parse(p, n);
        if (!t)
            return plm_fail(err, PLM_ERR_ARG,
                            "targets: unknown module '%.*s' (want q_proj, k_proj, "
                            "v_proj, o_proj, gate_proj, up_proj, down_proj or all)",
                            (int)n, p);
        *mask |= t;
        p += n + (p[n] == ',');
    }
    return *mask ? PLM_OK : plm_fail(err, PLM_ERR_ARG, "targets: none given");
}

// digit_id: the base's one token for the digit k ("0".."9"), or -1
static int32_t digit_id(const plm_tokenizer *tok, int32_t k) {
    char d = (char)('0' + k);
    int32_t id, n = plm_tokenizer_encode(tok, &d, 1, &id, 1);
    return n == 1 ? id : -1;
}

// new_adapter: PEFT-initialized LoRA; the task markers and the diversity control tokens
// (<|DIVERSITY_0|> .. for p->diversity_levels) are added to the tokenizer when missing, with new ids
// V, V+1, ...; their rows start at the mean of the embedding's rows, a control token's at the row
// of its digit ("0", "1", ...) when the base has one token for it, so the levels start apart and
// ordered as the base reads numbers.
static plm_status new_adapter(plm_lora **out, const plm_model *base, const plm_finetune_params *p,
                              plm_error *err) {
    const plm_config *c = &base->config;
    uint32_t targets;
    plm_status s = parse_targets(p->targets, &targets, err);
    if (s != PLM_OK) return s;
    if (!base->tokenizer) return plm_fail(err, PLM_ERR_ARG, "the model has no tokenizer");
    enum { MAX_MARKS = 2 + PLM_TASK_LEVELS_MAX };
    char names[MAX_MARKS][PLM_TASK_LEVEL_TOKEN_CAP];
    const char *marks[MAX_MARKS] = {PLM_TASK_START, PLM_TASK_END};
    int32_t m = 2;
    for (int32_t k = 0; k < p->diversity_levels; k++, m++) {
        plm_task_level_token(k, names[m], sizeof names[m]);
        marks[m] = names[m];
    }
    plm_tokenizer *tok = NULL;
    if ((s = plm_tokenizer_add_tokens(&tok, base->tokenizer, marks, m, 1, err)) != PLM_OK) return s;
    int32_t ids[MAX_MARKS], from[MAX_MARKS], n = 0, vocab = c->vocab_size;
    for (int32_t k = 0; k < m; k++) {
        int32_t id = plm_tokenizer_token_id(tok, marks[k]);
        if (id < c->vocab_size) continue;
        from[n] = k < 2 ? -1 : digit_id(base->tokenizer, k - 2);
        ids[n++] = id, vocab = id + 1 > vocab ? id + 1 : vocab;
    }
    size_t C = (size_t)c->hidden_size;
    float *rows = plm_alloc((size_t)(n ? n : 1) * C, sizeof(float));
    float *row = plm_alloc(C, sizeof(float));
    double *mean = plm_alloc(C, sizeof(double));
    if (!rows || !row || !mean) s = plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    for (int32_t v = 0; s == PLM_OK && v < c->vocab_size; v++) {
        plm_mat_row(row, &base->embed_tokens, v);
        for (size_t i = 0; i < C; i++) mean[i] += (double)row[i];
    }
    for (int32_t k = 0; s == PLM_OK && k < n; k++) {
        if (from[k] >= 0 && from[k] < c->vocab_size)
            plm_mat_row(rows + k * C, &base->embed_tokens, from[k]);
        else
            for (size_t i = 0; i < C; i++) rows[k * C + i] = (float)(mean[i] / c->vocab_size);
    }
    if (s == PLM_OK)
        s = plm_lora_create(out, c, p->rank, p->alpha, p->dropout, targets, ids, n, rows, vocab,
                            tok, p->train.seed, err);
    free(rows);
    free(row);
    free(mean);
    plm_tokenizer_free(tok);
    return s;
}

// ---- files of the run ----

// rm_dir: remove a directory of plain files (a checkpoint); ok if absent
static void rm_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
            !plm_path_join(path, sizeof path, dir, e->d_name))
            unlink(path);
    closedir(d);
    rmdir(dir);
}

typedef struct {
    int32_t step;   // optimizer steps done
    int32_t epoch;  // the epoch to continue in
    int32_t batch;  // the next micro-batch index within it
    int64_t tokens; // tokens trained on
    double elapsed; // seconds of training before this process
} run_pos;

// save_checkpoint: out/checkpoint.new/ (adapter, optimizer state, position), then swapped in for
// out/checkpoint/, so a crash at any moment leaves a complete checkpoint or the previous one
static plm_status save_checkpoint(const char *out, plm_lora *lo, plm_trainer *t, const run_pos *pos,
                                  plm_error *err) {
    char dir[4096], cur[4096], old[4096], path[4096];
    snprintf(dir, sizeof dir, "%s/checkpoint.new", out);
    snprintf(cur, sizeof cur, "%s/checkpoint", out);
    snprintf(old, sizeof old, "%s/checkpoint.old", out);
    rm_dir(dir);
    plm_status s = plm_mkdir(dir, err);
    if (s == PLM_OK) s = plm_lora_save(lo, dir, err);
    if (s == PLM_OK && plm_path_join(path, sizeof path, dir, "optimizer.state"))
        s = plm_fail(err, PLM_ERR_ARG, "%s: path too long", dir);
    if (s == PLM_OK) s = plm_trainer_save_state(t, path, err);
    if (s == PLM_OK && plm_path_join(path, sizeof path, dir, "progress.json"))
        s = plm_fail(err, PLM_ERR_ARG, "%s: path too long", dir);
    plm_writer *w = NULL;
    if (s == PLM_OK) s = plm_writer_open(&w, path, err);
    if (s == PLM_OK)
        s = plm_writer_printf(w, err,
                              "{\"step\": %d, \"epoch\": %d, \"batch\": %d, \"tokens\": %lld, "
                              "\"elapsed\": %.3f}\n",
                              pos->step, pos->epoch, pos->batch, (long long)pos->tokens,
                              pos->elapsed);
    if (s == PLM_OK) s = plm_writer_commit(w, err);
    else plm_writer_abort(w);
    if (s != PLM_OK) {
        rm_dir(dir);
        return s;
    }
    rm_dir(old);
    if ((plm_path_exists(cur) && rename(cur, old) != 0) || rename(dir, cur) != 0)
        return plm_fail(err, PLM_ERR_IO, "%s: cannot move the new checkpoint into place", cur);
    rm_dir(old);
    return PLM_OK;
}

// load_checkpoint: the adapter, optimizer state and position of out/checkpoint (or .old after a
// crash in the middle of the swap)
static plm_status load_checkpoint(const char *out, const plm_model *base, plm_lora **lo,
                                  run_pos *pos, char *dir, size_t cap, plm_error *err) {
    snprintf(dir, cap, "%s/checkpoint", out);
    if (!plm_path_is_dir(dir)) snprintf(dir, cap, "%s/checkpoint.old", out);
    if (!plm_path_is_dir(dir))
        return plm_fail(err, PLM_ERR_IO, "%s/checkpoint: no checkpoint to resume from", out);
    char path[4096], *text = NULL;
    size_t len;
    plm_json j = {0};
    plm_status s = plm_path_join(path, sizeof path, dir, "progress.json")
                       ? plm_fail(err, PLM_ERR_ARG, "%s: path too long", dir)
                       : plm_file_read(path, &text, &len, err);
    if (s == PLM_OK) s = plm_json_parse(&j, text, len, path, err);
    int64_t v[4];
    const char *keys[4] = {"step", "epoch", "batch", "tokens"};
    for (int k = 0; s == PLM_OK && k < 4; k++)
        if (plm_json_int(&j, plm_json_get(&j, 0, keys[k]), 0, INT32_MAX, &v[k]) != 0)
            s = plm_fail(err, PLM_ERR_FORMAT, "%s: \"%s\" missing or not a count", path, keys[k]);
    double el = 0;
    if (s == PLM_OK && plm_json_num(&j, plm_json_get(&j, 0, "elapsed"), &el) != 0)
        s = plm_fail(err, PLM_ERR_FORMAT, "%s: \"elapsed\" missing", path);
    if (s == PLM_OK) {
        pos->step = (int32_t)v[0], pos->epoch = (int32_t)v[1], pos->batch = (int32_t)v[2];
        pos->tokens = v[3], pos->elapsed = el;
        s = plm_lora_load(lo, dir, base, err);
    }
    plm_json_free(&j);
    free(text);
    return s;
}

// ---- metrics ----

typedef struct {
    float *step, *loss; // (n) train loss per step
    int32_t n, cap;
    float *estep, *eloss; // (ne) eval loss
    int32_t ne, ecap;
} curve;

static int curve_add(float **xs, float **ys, int32_t *n, int32_t *cap, float x, float y) {
    if (*n == *cap) {
        int32_t nc = *cap ? *cap * 2 : 256;
        float *a = realloc(*xs, (size_t)nc * sizeof *a),
              *b = a ? realloc(*ys, (size_t)nc * sizeof *b) : NULL;
        if (a) *xs = a;
        if (!b) return -1;
        *ys = b;
        *cap = nc;
    }
    (*xs)[*n] = x, (*ys)[(*n)++] = y;
    return 0;
}

// write_svg: out/loss.svg, the chart of plm_loss_chart_svg (train loss raw and smoothed, eval loss,
// against step and epoch), written atomically
static plm_status write_svg(const char *out, const curve *cv, int32_t steps_per_epoch,
                            plm_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/loss.svg", out);
    plm_loss_chart c = {
        cv->step, cv->loss, cv->n, cv->estep, cv->eloss, cv->ne, (float)steps_per_epoch,
        NULL,     0,        0};
    char *svg = NULL;
    size_t len = 0;
    plm_writer *w = NULL;
    plm_status s = plm_loss_chart_svg(&svg, &len, &c, err);
    if (s == PLM_OK) s = plm_writer_open(&w, path, err);
    if (s == PLM_OK) s = plm_writer_write(w, svg, len, err);
    if (s == PLM_OK) s = plm_writer_commit(w, err);
    else plm_writer_abort(w);
    free(svg);
    return s;
}

// ---- evaluation ----

// eval_loss: mean loss per target token over d, in micro-batches of B
static plm_status eval_loss(plm_trainer *t, const plm_dataset *d, int32_t B, double *out,
                            plm_error *err) {
    double sum = 0;
    int64_t cnt = 0;
    for (int32_t i = 0; i < d->n; i += B) {
        double l;
        int32_t c;
        plm_status s = plm_trainer_loss(t, d->ex + i, d->n - i < B ? d->n - i : B, &l, &c, err);
        if (s != PLM_OK) return s;
        sum += l, cnt += c;
    }
    *out = cnt ? sum / (double)cnt : (double)NAN;
    return PLM_OK;
}

// ---- the run ----

struct plm_finetune_run {
    const plm_finetune_params *p;
    plm_dataset train, eval;
    plm_lora *lora;
    plm_trainer *trainer;
    FILE *metrics; // out/metrics.jsonl, appended a line per step
    curve cv;
    run_pos pos;
    int32_t total, steps_per_epoch;
    int32_t nb;          // micro-batches per epoch
    int32_t *order;      // (train.n) the example order of epoch order_epoch
    int32_t order_epoch; // -1 before the first step
    plm_example *mb;     // (batch) the micro-batch being packed
    double t0;           // when this process's part of the run began
    run_pos start;       // where this process began (a resumed run: the checkpoint's position)
};
typedef plm_finetune_run run;

// restore_metrics: keep the lines of metrics.jsonl up to step (a resumed run rewrites the rest)
// and rebuild the curves from them
static plm_status restore_metrics(run *r, const char *path, plm_error *err) {
    char *text = NULL;
    size_t len = 0;
    if (plm_file_read(path, &text, &len, NULL) != PLM_OK) return PLM_OK; // none yet
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(text);
        return plm_fail(err, PLM_ERR_IO, "%s: cannot rewrite", path);
    }
    for (char *line = text, *end; line < text + len; line = end + 1) {
        end = strchr(line, '\n');
        if (!end) end = text + len;
        plm_json j;
        int64_t step;
        double loss, el;
        if (plm_json_parse(&j, line, (size_t)(end - line), path, NULL) != PLM_OK) continue;
        if (!plm_json_int(&j, plm_json_get(&j, 0, "step"), 0, INT32_MAX, &step) &&
            step <= r->pos.step && !plm_json_num(&j, plm_json_get(&j, 0, "loss"), &loss)) {
            fprintf(f, "%.*s\n", (int)(end - line), line);
            curve_add(&r->cv.step, &r->cv.loss, &r->cv.n, &r->cv.cap, (float)step, (float)loss);
            if (!plm_json_num(&j, plm_json_get(&j, 0, "eval_loss"), &el))
                curve_add(&r->cv.estep, &r->cv.eloss, &r->cv.ne, &r->cv.ecap, (float)step,
                          (float)el);
        }
        plm_json_free(&j);
    }
    fclose(f);
    free(text);
    return PLM_OK;
}

// write_report: out/data_report.json, what was read and what was skipped
static plm_status write_report(const run *r, const char *out, plm_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/data_report.json", out);
    const plm_dataset *d = &r->train;
    plm_writer *w;
    plm_status s = plm_writer_open(&w, path, err);
    if (s != PLM_OK) return s;
    s = plm_writer_printf(w, err,
                          "{\"rows\": %lld, \"not_label1\": %lld, \"bad_fields\": %lld, "
                          "\"bad_empty\": %lld, \"bad_long\": %lld, \"train_examples\": %d, "
                          "\"eval_examples\": %d, \"first_bad\": ",
                          (long long)d->rows, (long long)d->not_label1, (long long)d->bad_fields,
                          (long long)d->bad_empty, (long long)d->bad_long, d->n, r->eval.n);
    if (s == PLM_OK) s = plm_json_write_str(w, d->first_bad, strlen(d->first_bad), err);
    if (s == PLM_OK)
        s = plm_writer_printf(w, err, ", \"near_copies\": %lld, \"diversity_levels\": %d}\n",
                              (long long)d->near_copies, (int)d->n_levels);
    if (s != PLM_OK) {
        plm_writer_abort(w);
        return s;
    }
    return plm_writer_commit(w, err);
}

// json_numbers: ", \"key\": [x0, x1, ...]" of n values with `decimals` digits after the point
static plm_status json_numbers(plm_writer *w, const char *key, const double *x, int32_t n,
                               int decimals, plm_error *err) {
    plm_status s = plm_writer_printf(w, err, ",\n \"%s\": [", key);
    for (int32_t i = 0; i < n && s == PLM_OK; i++)
        s = plm_writer_printf(w, err, "%s%.*f", i ? ", " : "", decimals, x[i]);
    return s == PLM_OK ? plm_writer_printf(w, err, "]") : s;
}

// write_task: out/pocketlm_task.json: how the adapter's prompts are built (docs/DESIGN.md), for
// users of the PEFT files: "prompts", the prompt of each level (one without the control field when
// the adapter has no levels) with "{input}" where the input goes, as task.c builds them; the cut
// points of the levels on the distance, and the data recipe.
static plm_status write_task(const plm_dataset *d, const plm_finetune_params *p, plm_error *err) {
    char path[4096], prompt[256];
    snprintf(path, sizeof path, "%s/pocketlm_task.json", p->out);
    double cuts[PLM_TASK_LEVELS_MAX], dist[PLM_TASK_LEVELS_MAX], count[PLM_TASK_LEVELS_MAX];
    for (int32_t k = 0; k < d->n_levels; k++) {
        cuts[k] = k < d->n_levels - 1 ? (double)d->cuts[k] : 0;
        dist[k] = d->level_distance[k], count[k] = (double)d->level_n[k];
    }
    plm_writer *w;
    plm_status s = plm_writer_open(&w, path, err);
    if (s != PLM_OK) return s;
    s = plm_writer_printf(w, err, "{\"prompts\": [");
    for (int32_t k = d->n_levels ? 0 : -1; k < d->n_levels && s == PLM_OK; k++) {
        size_t n = plm_task_prompt_n("{input}", 7, k, prompt, sizeof prompt);
        s = plm_writer_printf(w, err, "%s\n  ", k > 0 ? "," : "");
        if (s == PLM_OK) s = plm_json_write_str(w, prompt, n, err);
    }
    if (s == PLM_OK)
        s = plm_writer_printf(w, err,
                              "],\n \"target\": \"{output}%s\",\n \"levels\": %d,\n"
                              " \"level_of_diversity\": \"min(levels - 1, floor(diversity * "
                              "levels)), diversity in [0, 1]\",\n"
                              " \"distance\": \"100 - sentence BLEU of the target against the "
                              "source (sacrebleu.sentence_bleu: 13a, exp smoothing, effective "
                              "order)\"",
                              PLM_TASK_END, (int)d->n_levels);
    if (s == PLM_OK) s = json_numbers(w, "cuts", cuts, d->n_levels ? d->n_levels - 1 : 0, 4, err);
    if (s == PLM_OK) s = json_numbers(w, "level_examples", count, d->n_levels, 0, err);
    if (s == PLM_OK) s = json_numbers(w, "level_mean_distance", dist, d->n_levels, 4, err);
    if (s == PLM_OK)
        s = plm_writer_printf(w, err,
                              ",\n \"detok\": %s, \"reverse\": %s, \"min_distance\": %g, "
                              "\"near_copies_dropped\": %lld, \"unlikelihood\": %g}\n",
                              p->detok && !d->jsonl ? "true" : "false",
                              p->reverse ? "true" : "false", (double)p->min_distance,
                              (long long)d->near_copies, (double)p->train.unlikelihood);
    if (s != PLM_OK) {
        plm_writer_abort(w);
        return s;
    }
    return plm_writer_commit(w, err);
}

// batch_capacity: what the trainer's activations are sized for: the longest example there is (not
// the longest allowed), and the most tokens a micro-batch can hold, the sum of the batch longest
// (any order of the examples, train or eval, puts no more in one micro-batch)
static plm_status batch_capacity(const run *r, int32_t *max_len, int32_t *max_tokens,
                                 plm_error *err) {
    int32_t B = r->p->batch, *top = plm_alloc((size_t)B, sizeof *top); // descending
    if (!top) return plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    const plm_dataset *sets[2] = {&r->train, &r->eval};
    for (int k = 0; k < 2; k++)
        for (int32_t i = 0; i < sets[k]->n; i++) {
            int32_t n = sets[k]->ex[i].n, j = B - 1;
            if (n <= top[j]) continue;
            for (; j > 0 && top[j - 1] < n; j--) top[j] = top[j - 1];
            top[j] = n;
        }
    int64_t sum = 0;
    for (int32_t j = 0; j < B; j++) sum += top[j];
    *max_len = top[0] > 8 ? top[0] : 8;
    *max_tokens = sum > *max_len ? (int32_t)sum : *max_len;
    free(top);
    return PLM_OK;
}

// setup: adapter, data, trainer, metrics file
static plm_status setup(run *r, const plm_model *base, plm_error *err) {
    const plm_finetune_params *p = r->p;
    char ckpt[4096], path[4096];
    plm_status s = plm_mkdir(p->out, err);
    if (s != PLM_OK) return s;
    s = p->resume ? load_checkpoint(p->out, base, &r->lora, &r->pos, ckpt, sizeof ckpt, err)
                  : new_adapter(&r->lora, base, p, err);
    if (s != PLM_OK) return s;
    plm_data_params dp = plm_data_default_params();
    dp.reverse = p->reverse, dp.max_len = p->max_len, dp.strict = p->strict;
    dp.levels = p->diversity_levels, dp.min_distance = p->min_distance, dp.detok = p->detok;
    dp.on_bad_row = p->on_bad_row, dp.user = p->user;
    dp.avoid = p->train.unlikelihood > 0.0f; // the copy candidates, for the unlikelihood term
    const plm_tokenizer *tok =
        plm_lora_tokenizer(r->lora) ? plm_lora_tokenizer(r->lora) : base->tokenizer;
    if ((s = plm_dataset_load(&r->train, p->data, tok, &dp, err)) != PLM_OK) return s;
    if ((s = write_task(&r->train, p, err)) != PLM_OK) return s;
    dp.cuts = r->train.cuts; // other data is leveled as the training data
    dp.min_distance = 0;     // and measured whole
    dp.avoid = 0;            // by plain cross-entropy
    if (p->eval_data) s = plm_dataset_load(&r->eval, p->eval_data, tok, &dp, err);
    else if (p->eval_frac > 0.0f &&
             (s = plm_dataset_split(&r->train, &r->eval, (double)p->eval_frac, p->train.seed,
                                    err)) == PLM_OK) {
        // the held-out rows, verbatim, for measuring the adapter on text it never trained on
        snprintf(path, sizeof path, "%s/heldout%s", p->out, r->train.jsonl ? ".jsonl" : ".tsv");
        s = plm_dataset_write_lines(&r->eval, p->data, path, err);
    }
    if (s != PLM_OK || (s = write_report(r, p->out, err)) != PLM_OK) return s;
    int32_t batches = (r->train.n + p->batch - 1) / p->batch;
    r->steps_per_epoch = (batches + p->accum - 1) / p->accum;
    r->total = p->epochs * r->steps_per_epoch;
    if (p->max_steps > 0 && p->max_steps < r->total) r->total = p->max_steps;
    plm_train_params tp = p->train;
    if ((s = batch_capacity(r, &tp.max_len, &tp.max_tokens, err)) != PLM_OK) return s;
    tp.total_steps = r->total;
    tp.warmup_steps = (int32_t)lroundf(p->warmup_ratio * (float)r->total);
    if ((s = plm_trainer_create(&r->trainer, base, r->lora, &tp, err)) != PLM_OK) return s;
    snprintf(path, sizeof path, "%s/metrics.jsonl", p->out);
    if (p->resume) {
        char state[4200];
        snprintf(state, sizeof state, "%s/optimizer.state", ckpt);
        if ((s = plm_trainer_load_state(r->trainer, state, err)) != PLM_OK) return s;
        if (plm_trainer_n_steps(r->trainer) != r->pos.step)
            return plm_fail(err, PLM_ERR_FORMAT, "%s: step %d, progress.json says %d", ckpt,
                            plm_trainer_n_steps(r->trainer), r->pos.step);
        if ((s = restore_metrics(r, path, err)) != PLM_OK) return s;
    }
    r->metrics = fopen(path, p->resume ? "ab" : "wb");
    return r->metrics ? PLM_OK : plm_fail(err, PLM_ERR_IO, "%s: cannot open", path);
}

static void teardown(run *r) {
    if (r->metrics) fclose(r->metrics);
    plm_trainer_free(r->trainer);
    plm_lora_free(r->lora);
    plm_dataset_free(&r->train);
    plm_dataset_free(&r->eval);
    free(r->cv.step), free(r->cv.loss), free(r->cv.estep), free(r->cv.eloss);
}

// train_step: one optimizer step over micro-batches [b0, b1) of the epoch's order
static plm_status train_step(run *r, const int32_t *order, int32_t b0, int32_t b1, plm_example *mb,
                             double *loss, int32_t *tokens, float *lr, float *norm,
                             plm_error *err) {
    const plm_dataset *d = &r->train;
    int32_t B = r->p->batch, targets = 0;
    *tokens = 0;
    for (int32_t i = b0 * B; i < b1 * B && i < d->n; i++)
        targets += d->ex[order[i]].n - d->ex[order[i]].n_prompt, *tokens += d->ex[order[i]].n;
    double sum = 0;
    for (int32_t b = b0; b < b1; b++) {
        int32_t n = 0;
        for (int32_t i = b * B; i < (b + 1) * B && i < d->n; i++) mb[n++] = d->ex[order[i]];
        double l;
        plm_status s =
            plm_trainer_accumulate(r->trainer, mb, n, 1.0f / (float)targets, &l, NULL, err);
        if (s != PLM_OK) return s;
        sum += l;
    }
    plm_trainer_step(r->trainer, lr, norm);
    *loss = sum / targets;
    return PLM_OK;
}

// check_params: plm_finetune's argument checks
static plm_status check_params(const plm_model *base, const plm_finetune_params *p,
                               plm_error *err) {
    if (!base || !p || !p->data || !p->out)
        return plm_fail(err, PLM_ERR_ARG, "finetune: model, data and out are required");
    if (p->rank < 1 || p->batch < 1 || p->accum < 1 || p->epochs < 1 || p->max_len < 8 ||
        !(p->dropout >= 0.0f && p->dropout < 1.0f) ||
        !(p->eval_frac >= 0.0f && p->eval_frac < 1.0f))
        return plm_fail(err, PLM_ERR_ARG,
                        "finetune: want rank, batch, accum, epochs >= 1, "
                        "max_len >= 8, dropout in [0, 1), eval_frac in [0, 1)");
    return PLM_OK;
}

void plm_finetune_free(plm_finetune_run *r) {
    if (!r) return;
    teardown(r);
    free(r->mb);
    free(r->order);
    free(r);
}

plm_status plm_finetune_begin(plm_finetune_run **out, const plm_model *base,
                              const plm_finetune_params *p, plm_error *err) {
    if (!out) return plm_fail(err, PLM_ERR_ARG, "finetune: out is NULL");
    *out = NULL;
    plm_status s = check_params(base, p, err);
    if (s != PLM_OK) return s;
    run *r = plm_alloc(1, sizeof *r);
    if (!r) return plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    r->p = p;
    r->order_epoch = -1;
    s = setup(r, base, err);
    r->mb = plm_alloc((size_t)p->batch, sizeof *r->mb);
    r->order = plm_alloc((size_t)(r->train.n ? r->train.n : 1), sizeof *r->order);
    if (s == PLM_OK && (!r->mb || !r->order)) s = plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    if (s != PLM_OK) {
        plm_finetune_free(r);
        return s;
    }
    r->nb = (r->train.n + p->batch - 1) / p->batch;
    r->t0 = plm_time();
    r->start = r->pos;
    *out = r;
    return PLM_OK;
}

int plm_finetune_step(plm_finetune_run *r, plm_train_progress *pr, plm_error *err) {
    const plm_finetune_params *p = r->p;
    if (r->pos.batch == r->nb) r->pos.epoch++, r->pos.batch = 0;
    if (r->pos.step >= r->total || r->pos.epoch >= p->epochs) return 0;
    if (r->order_epoch != r->pos.epoch)
        plm_batch_order(r->order, &r->train, p->batch, p->train.seed, r->pos.epoch);
    r->order_epoch = r->pos.epoch;
    int32_t b1 = r->pos.batch + p->accum < r->nb ? r->pos.batch + p->accum : r->nb, tokens;
    double loss, ev = (double)NAN;
    float lr, norm;
    plm_status s =
        train_step(r, r->order, r->pos.batch, b1, r->mb, &loss, &tokens, &lr, &norm, err);
    if (s != PLM_OK) return s;
    r->pos.step++, r->pos.batch = b1, r->pos.tokens += tokens;
    int last = r->pos.step == r->total;
    if (r->eval.n > 0 && ((p->eval_every > 0 && r->pos.step % p->eval_every == 0) || last))
        if ((s = eval_loss(r->trainer, &r->eval, p->batch, &ev, err)) != PLM_OK) return s;
    double now = plm_time() - r->t0;
    plm_train_progress q = {r->pos.step,
                            r->total,
                            (float)r->pos.epoch + (float)r->pos.batch / (float)r->nb,
                            loss,
                            ev,
                            lr,
                            norm,
                            (double)(r->pos.tokens - r->start.tokens) / now,
                            r->start.elapsed + now,
                            now / (r->pos.step - r->start.step) * (r->total - r->pos.step),
                            r->pos.tokens};
    fprintf(r->metrics,
            "{\"step\": %d, \"epoch\": %.4f, \"loss\": %.6f, \"lr\": %.4g, "
            "\"grad_norm\": %.4f, \"tok_s\": %.1f, \"tokens\": %lld, \"elapsed\": %.1f",
            q.step, (double)q.epoch, q.loss, (double)lr, (double)norm, q.tok_s, (long long)q.tokens,
            q.elapsed);
    if (!isnan(ev)) fprintf(r->metrics, ", \"eval_loss\": %.6f", ev);
    fprintf(r->metrics, "}\n");
    fflush(r->metrics);
    curve_add(&r->cv.step, &r->cv.loss, &r->cv.n, &r->cv.cap, (float)q.step, (float)loss);
    if (!isnan(ev))
        curve_add(&r->cv.estep, &r->cv.eloss, &r->cv.ne, &r->cv.ecap, (float)q.step, (float)ev);
    r->pos.elapsed = q.elapsed;
    if (pr) *pr = q;
    return 1;
}

plm_status plm_finetune_checkpoint(plm_finetune_run *r, plm_error *err) {
    run_pos at = r->pos; // where a resumed run continues
    if (at.batch == r->nb) at.epoch++, at.batch = 0;
    plm_status s = save_checkpoint(r->p->out, r->lora, r->trainer, &at, err);
    return s == PLM_OK ? write_svg(r->p->out, &r->cv, r->steps_per_epoch, err) : s;
}

plm_status plm_finetune_save(plm_finetune_run *r, plm_error *err) {
    plm_status s = plm_lora_save(r->lora, r->p->out, err);
    return s == PLM_OK ? write_svg(r->p->out, &r->cv, r->steps_per_epoch, err) : s;
}

const plm_lora *plm_finetune_adapter(const plm_finetune_run *r) {
    return r->lora;
}

plm_finetune_info plm_finetune_run_info(const plm_finetune_run *r) {
    const plm_dataset *d = &r->train;
    plm_finetune_info i = {d->rows,  d->not_label1, d->bad_fields + d->bad_empty + d->bad_long,
                           d->n,     r->eval.n,     r->steps_per_epoch,
                           r->total, r->pos.step};
    return i;
}

plm_status plm_finetune(const plm_model *base, const plm_finetune_params *p, plm_error *err) {
    plm_finetune_run *r = NULL;
    plm_status s = plm_finetune_begin(&r, base, p, err);
    plm_train_progress pr;
    int stop = 0, more = 0;
    while (s == PLM_OK && !stop && (more = plm_finetune_step(r, &pr, err)) > 0) {
        stop = p->on_step && p->on_step(p->user, &pr);
        if (stop || (p->save_every > 0 && pr.step % p->save_every == 0))
            s = plm_finetune_checkpoint(r, err);
    }
    if (s == PLM_OK && more < 0) s = (plm_status)more;
    if (s == PLM_OK && !stop) s = plm_finetune_save(r, err);
    int32_t at = r ? r->pos.step : 0;
    plm_finetune_free(r);
    return s == PLM_OK && stop ? plm_fail(err, PLM_ERR_CANCELLED,
                                          "stopped at step %d; resume with "
                                          "the same command and --resume",
                                          at)
                               : s;
}
