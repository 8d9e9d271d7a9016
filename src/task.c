// task.c: the paraphrase task, in one place: the template of docs/DESIGN.md (which fine-tuning trains on
// and every prompt uses, byte for byte), the plain template for a model without the task markers,
// where an answer ends (the stop rule), the generation defaults, and what input is acceptable.
// The CLI (paraphrase, eval), the server (/v1/paraphrase), the wasm module and through it
// pocketlm.js all take these from here; data.c builds its training examples with them.
// Not here: tokenizing and batching examples (data.c), the generation loop (generate.c).
#include <string.h>

#include "task.h"

// ---- the template ----

// docs/DESIGN.md:
//   "Rephrase the following:\nInput: {source}\nOutput: <|OUTPUT_START|>{target}<|OUTPUT_END|>"
// split where the loss starts: the prompt gets no loss, the target and the end marker do. The plain
// template is the same words without the markers; a shot in it ends with a newline.
static const char PROMPT_HEAD[] = "Rephrase the following:\nInput: ";
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

// around: s (n bytes) between head and tail (NUL-terminated), as fill
static size_t around(char *out, size_t cap, const char *head, const char *s, size_t n,
                     const char *tail) {
    const char *part[3] = {head, s, tail};
    size_t len[3] = {strlen(head), n, strlen(tail)};
    return fill(out, cap, 3, part, len);
}

size_t plm_task_prompt_n(const char *input, size_t n, char *out, size_t cap) {
    return around(out, cap, PROMPT_HEAD, input, n, PROMPT_TAIL);
}

size_t plm_task_target_n(const char *target, size_t n, char *out, size_t cap) {
    return around(out, cap, "", target, n, TARGET_TAIL);
}

size_t plm_task_prompt(const char *input, char *out, size_t cap) {
    if (!input) input = "";
    return plm_task_prompt_n(input, strlen(input), out, cap);
}

size_t plm_task_target(const char *target, char *out, size_t cap) {
    if (!target) target = "";
    return plm_task_target_n(target, strlen(target), out, cap);
}

// ---- the task under a tokenizer ----

plm_task plm_task_of(const plm_tokenizer *tok) {
    plm_task t = {tok, -1};
    if (tok && plm_tokenizer_token_id(tok, PLM_TASK_START) >= 0)
        t.end_id = plm_tokenizer_token_id(tok, PLM_TASK_END);
    return t;
}

size_t plm_task_text(const plm_task *t, const char *input, const char *target, char *out,
                     size_t cap) {
    int markers = t && t->end_id >= 0;
    if (!input) input = "";
    const char *part[5] = {PROMPT_HEAD, input, markers ? PROMPT_TAIL : PLAIN_TAIL, target,
                           markers ? TARGET_TAIL : PLAIN_TARGET_TAIL};
    size_t len[5];
    for (int i = 0; i < 5; i++) len[i] = i < 3 || target ? strlen(part[i]) : 0;
    return fill(out, cap, target ? 5 : 3, part, len);
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
