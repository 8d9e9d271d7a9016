// task.h: the task template for text that is not NUL-terminated, for data.c's loader (whose fields
// are slices of the file), and the names of the diversity control tokens, for the loader and
// fine-tuning (which adds them to an adapter's tokenizer). The rest of the task (src/task.c) is
// public: include/pocketlm.h.
#ifndef PLM_TASK_H
#define PLM_TASK_H

#include "base.h"

// plm_task_prompt_n: the marked prompt of n bytes of input, with the control field of level (the
// token <|DIVERSITY_{level}|>) when level >= 0, without it (plm_task_prompt) when level < 0.
size_t plm_task_prompt_n(const char *input, size_t n, int32_t level, char *out, size_t cap);
// plm_task_target_n: plm_task_target of n bytes of text.
size_t plm_task_target_n(const char *target, size_t n, char *out, size_t cap);

// plm_task_level_token: the control token of level, "<|DIVERSITY_{level}|>", into out (cap bytes,
// PLM_TASK_LEVEL_TOKEN_CAP is enough for any level < PLM_TASK_LEVELS_MAX); returns its length.
#define PLM_TASK_LEVEL_TOKEN     "<|DIVERSITY_%d|>"
#define PLM_TASK_LEVEL_TOKEN_CAP 24
size_t plm_task_level_token(int32_t level, char *out, size_t cap);

#endif
