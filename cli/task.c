// task.c: how the CLI prompts a model for the task (`paraphrase`, `eval`): the template of
// DESIGN.md (plm_task_prompt, stop at <|OUTPUT_END|>) when the tokenizer has both markers, else,
// for a model not fine-tuned for the task, the same words without markers, stopping at a newline.
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define PLAIN_HEAD "Rephrase the following:\nInput: "
#define PLAIN_TAIL "\nOutput: "

cli_task cli_task_of(const plm_tokenizer *tok) {
    cli_task t = {0, -1};
    int32_t end = tok ? plm_tokenizer_token_id(tok, PLM_TASK_END) : -1;
    if (end >= 0 && plm_tokenizer_token_id(tok, PLM_TASK_START) >= 0) t.markers = 1, t.end_id = end;
    return t;
}

char *cli_task_text(const cli_task *t, const char *input, const char *target) {
    size_t np = t->markers ? plm_task_prompt(input, NULL, 0)
                           : strlen(PLAIN_HEAD) + strlen(input) + strlen(PLAIN_TAIL);
    size_t nt = !target ? 0 : t->markers ? plm_task_target(target, NULL, 0) : strlen(target) + 1;
    char *s = malloc(np + nt + 1);
    if (!s) return NULL;
    if (t->markers) plm_task_prompt(input, s, np + 1);
    else {
        strcpy(s, PLAIN_HEAD);
        strcat(s, input);
        strcat(s, PLAIN_TAIL);
    }
    if (target && t->markers) plm_task_target(target, s + np, nt + 1);
    else if (target) {
        strcpy(s + np, target);
        strcat(s + np, "\n");
    }
    return s;
}

size_t cli_task_line(int *seen, const char *text, size_t len, size_t *skip, int *stop) {
    size_t i = 0;
    *stop = 0;
    if (!*seen)
        while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n')) i++;
    *skip = i;
    if (i < len) *seen = 1;
    const char *nl = i < len ? memchr(text + i, '\n', len - i) : NULL;
    if (!nl) return len - i;
    *stop = 1;
    return (size_t)(nl - text) - i;
}
