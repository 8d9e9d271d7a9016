// task.h: the task template for text that is not NUL-terminated, for data.c's loader (whose fields
// are slices of the file). The rest of the task (src/task.c) is public: include/pocketlm.h.
#ifndef PLM_TASK_H
#define PLM_TASK_H

#include "base.h"

// plm_task_prompt_n, plm_task_target_n: plm_task_prompt and plm_task_target of n bytes of text.
size_t plm_task_prompt_n(const char *input, size_t n, char *out, size_t cap);
size_t plm_task_target_n(const char *target, size_t n, char *out, size_t cap);

#endif
