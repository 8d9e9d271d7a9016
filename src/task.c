// task.c: the paraphrase task, in one place: the template of docs/DESIGN.md (which fine-tuning trains on
// and every prompt uses, byte for byte), the plain template for a model without the task markers,
// the diversity control field and its tokens, where an answer ends (the stop rule), the generation
// defaults, and what input is acceptable.
// The CLI (paraphrase, eval), the server (/v1/paraphrase), the wasm module and through it
// pocketlm.js all take these from here; data.c builds its training examples with them.
// Not here: tokenizing and batching examples (data.c), the generation loop (generate.c).
#include <stdio.h>
#include <string.h>

#include "task.h"

// ---- the template ----

// docs/DESIGN.md:
//   "Rephrase the following:\nInput: {source}\nOutput: <|OUTPUT_START|>{target}<|OUTPUT_END|>"
// and, for an adapter trained with the diversity control (its tokenizer has the control tokens),
//   "Rephrase the following:\nInput: {source}\nDiversity: <|DIVERSITY_k|>\nOutput: <|OUTPUT_START|>"
//   "{target}<|OUTPUT_END|>"
// split where the loss starts: the prompt gets no loss, the target and the end marker do. The plain
// template is the same words without the markers (and never has the field); a shot in it ends with
// a newline.
static const char PROMPT_HEAD[] = "Rephrase the following:\nInput: ";
static const char LEVEL_HEAD[] = "\nDiversity: ";
static const char PLAIN_TAIL[] = "\nOutput: ";
static const char PROMPT_TAIL[] = "\nOutput: " PLM_TASK_START;
static const char TARGET_TAIL[] = PLM_TASK_END;
static const char PLAIN_TARGET_TAIL[] = "\n";

// fill: the parts (n of them: text, length) one after the other into out (cap bytes, NUL-terminated
// when cap > 0, truncated when short); returns the full length without the NUL, like snprintf.
static size_t fill(char *out, size_t cap, int n, const char *const *part, const size_t *len) {
    size_t total = 0, k = 0;
    for (int i = 0; i < n; i++) {
        total += len[i];
        size_t take = cap == 0 ? 0 : len[i] < cap - 1 - k ? len[i] : cap - 1 - k;
        if (take) memcpy(out + k, part[i], take);
        k += take;
    }
    if (cap > 0) out[k] = 0;
    return total;
}

size_t plm_task_level_token(int32_t level, char *out, size_t cap) {
    int k = snprintf(out, cap, PLM_TASK_LEVEL_TOKEN, (int)level);
    return k < 0 ? 0 : (size_t)k;
}

// parts: the template around input (n bytes) as parts of fill: the head, the input, the control
// field when level >= 0 (its text in tok, PLM_TASK_LEVEL_TOKEN_CAP bytes), the prompt's tail (plain
// or marked), then, with a target, the target and the end; returns the number of parts.
static int parts(const char **part, size_t *len, const char *input, size_t n, int markers,
                 int32_t level, char *tok, const char *target, size_t nt) {
    int k = 0;
    part[k] = PROMPT_HEAD, len[k++] = sizeof PROMPT_HEAD - 1;
    part[k] = input, len[k++] = n;
    if (markers && level >= 0) {
        part[k] = LEVEL_HEAD, len[k++] = sizeof LEVEL_HEAD - 1;
        part[k] = tok, len[k++] = plm_task_level_token(level, tok, PLM_TASK_LEVEL_TOKEN_CAP);
    }
    part[k] = markers ? PROMPT_TAIL : PLAIN_TAIL;
    len[k] = strlen(part[k]), k++;
    if (target) {
        part[k] = target, len[k++] = nt;
        part[k] = markers ? TARGET_TAIL : PLAIN_TARGET_TAIL;
        len[k] = strlen(part[k]), k++;
    }
    return k;
}

size_t plm_task_prompt_n(const char *input, size_t n, int32_t level, char *out, size_t cap) {
    const char *part[8];
    size_t len[8];
    char tok[PLM_TASK_LEVEL_TOKEN_CAP];
    return fill(out, cap, parts(part, len, input, n, 1, level, tok, NULL, 0), part, len);
}

size_t plm_task_target_n(const char *target, size_t n, char *out, size_t cap) {
    const char *part[2] = {target, TARGET_TAIL};
    size_t len[2] = {n, sizeof TARGET_TAIL - 1};
    return fill(out, cap, 2, part, len);
}

size_t plm_task_prompt(const char *input, char *out, size_t cap) {
    if (!input) input = "";
    return plm_task_prompt_n(input, strlen(input), -1, out, cap);
}

size_t plm_task_target(const char *target, char *out, size_t cap) {
    if (!target) target = "";
    return plm_task_target_n(target, strlen(target), out, cap);
}

// ---- the task under a tokenizer ----

plm_task plm_task_of(const plm_tokenizer *tok) {
    plm_task t = {tok, -1, PLM_TASK_DIVERSITY_DEFAULT, 0};
    if (tok && plm_tokenizer_token_id(tok, PLM_TASK_START) >= 0)
        t.end_id = plm_tokenizer_token_id(tok, PLM_TASK_END);
    char name[PLM_TASK_LEVEL_TOKEN_CAP];
    while (t.end_id >= 0 && t.n_levels < PLM_TASK_LEVELS_MAX) {
        plm_task_level_token(t.n_levels, name, sizeof name);
        if (plm_tokenizer_token_id(tok, name) < 0) break;
        t.n_levels++;
    }
    return t;
}

int32_t plm_task_level(const plm_task *t) {
    if (!t || t->end_id < 0 || t->n_levels < 1 || !(t->diversity >= 0.0f)) return -1;
    float d = t->diversity > 1.0f ? 1.0f : t->diversity;
    int32_t k = (int32_t)(d * (float)t->n_levels);
    return k < t->n_levels ? k : t->n_levels - 1;
}

size_t plm_task_text(const plm_task *t, const char *input, const char *target, char *out,
                     size_t cap) {
    if (!input) input = "";
    const char *part[8];
    size_t len[8];
    char tok[PLM_TASK_LEVEL_TOKEN_CAP];
    int n = parts(part, len, input, strlen(input), t && t->end_id >= 0, plm_task_level(t), tok,
                  target, target ? strlen(target) : 0);
    return fill(out, cap, n, part, len);
}

plm_status plm_task_check(const char *input, plm_error *err) {
    if (!input || !*input) return plm_fail(err, PLM_ERR_ARG, "the text to rephrase is empty");
    for (const char *s = input; *s; s++)
        if (!strchr(" \t\n\v\f\r", *s)) return PLM_OK;
    return plm_fail(err, PLM_ERR_ARG, "the text to rephrase is only white space");
}

// ---- generation ----

plm_generate_params plm_task_default_params(void) {
    plm_generate_params p = plm_generate_default_params();
    p.max_tokens = 64; // the seed's defaults: a sentence, sampled from the 8 likeliest tokens
    p.sampler.temperature = 0.8f;
    p.sampler.top_k = 8;
    return p;
}

void plm_task_stop(const plm_task *t, plm_generate_params *gp) {
    if (t->end_id >= 0) {
        gp->stop_tokens = &t->end_id;
        gp->n_stop_tokens = 1;
    } else {
        gp->single_line = 1; // a base model often answers "Output: " with a newline first
    }
}
