// trainer.h: the trainer's trainable tensors, for tests that compare gradients with PEFT's. (The
// trainer's settings are plm_train_params, in include/pocketlm.h.)
#ifndef PLM_TRAINER_H
#define PLM_TRAINER_H

#include "base.h"

// One trainable tensor: its values (inside the adapter), gradient and AdamW moments.
typedef struct {
    char name[96]; // PEFT-style name, e.g. "layers.3.q_proj.lora_A" or "token_rows"
    float *p;      // (n) values, in the plm_lora
    float *g;      // (n) gradient
    float *m, *v;  // (n) AdamW first and second moments
    size_t n;
} plm_train_tensor;

// plm_trainer_tensors: the trainable tensors (*n of them), in a fixed order (layer, target, A then
// B; the token rows last).
plm_train_tensor *plm_trainer_tensors(plm_trainer *t, int32_t *n);

#endif
