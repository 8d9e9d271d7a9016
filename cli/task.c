// task.c: how the CLI prompts a model for the task (`paraphrase`, `eval`), on the library's
// plm_task_prompt_for / plm_task_end_id: the template of docs/DESIGN.md with its markers (stop at
// <|OUTPUT_END|>), or for a model not fine-tuned for the task the plain words, single-line.
#include <stdlib.h>
#include <string.h>

#include "cli.h"

cli_task cli_task_of(const plm_tokenizer *tok) {
    int32_t end = plm_task_end_id(tok);
    cli_task t = {end >= 0, end, tok};
    return t;
}

char *cli_task_text(const cli_task *t, const char *input, const char *target) {
    size_t np = plm_task_prompt_for(t->tok, input, NULL, 0);
    size_t nt = !target ? 0 : t->markers ? plm_task_target(target, NULL, 0) : strlen(target) + 1;
    char *s = malloc(np + nt + 1);
    if (!s) return NULL;
    plm_task_prompt_for(t->tok, input, s, np + 1);
    if (target && t->markers) plm_task_target(target, s + np, nt + 1);
    else if (target) { // a plain-template shot ends with its newline
        memcpy(s + np, target, nt - 1);
        strcpy(s + np + nt - 1, "\n");
    }
    return s;
}

void cli_task_stop(const cli_task *t, plm_generate_params *gp) {
    if (t->markers) {
        gp->stop_tokens = &t->end_id;
        gp->n_stop_tokens = 1;
    } else {
        gp->single_line = 1;
    }
}
