// lora.h: the adapter as layers.c, trainer.c and the writers see it. LoRA (Hu et al. 2021, PEFT's
// LoraLayer): a target linear y = W x becomes y = W x + scale * B (A x), scale = alpha / r, with
// A (r, in) and B (out, r). Trainable token rows (PEFT's trainable_token_indices): rows of the
// embedding (and of the tied head) replaced by trained values, for tokens the base lacks or has.
#ifndef PLM_LORA_H
#define PLM_LORA_H

#include "base.h"
#include "model.h" // plm_lora_target, plm_lora_targets: the targets beside the weight table

typedef struct {
    float *A; // (R, in)  lora_A.weight; NULL when this target is not adapted
    float *B; // (out, R) lora_B.weight
} plm_lora_pair;

struct plm_lora {
    int32_t rank;                         // R
    float alpha;                          // lora_alpha; scale = alpha / R
    float dropout;                        // lora_dropout (training only)
    uint32_t targets;                     // bit t set when target t is adapted
    int32_t shape[PLM_LORA_N_TARGETS][2]; // (out, in) features of each target in the base
    int32_t n_layers;                     // L of the base
    int32_t hidden_size;                  // C of the base
    plm_lora_pair *pairs;     // (L * PLM_LORA_N_TARGETS), index l * PLM_LORA_N_TARGETS + t
    int32_t n_tokens;         // trainable token rows
    int32_t *token_ids;       // (n_tokens) ascending
    float *token_rows;        // (n_tokens, C) the rows' values (not a difference)
    int32_t vocab_size;       // V of the adapted model: >= the base's, > every token id
    plm_tokenizer *tokenizer; // owned: the adapter's tokenizer with added tokens, or NULL
    char base_model[256];     // base_model_name_or_path for adapter_config.json
    char name[128];           // the adapter's name: its directory's (plm_lora_load), or ""
    void *block;              // one allocation behind A, B and token_rows
};

// plm_lora_create: a fresh adapter for a base of config cfg with PEFT's init: A Kaiming-uniform
// (a = sqrt(5): U(-1/sqrt(in), 1/sqrt(in))) from the xorshift seed, B zero; token rows start from
// init_rows (n_tokens, C). tok (may be NULL) is copied as the adapter's tokenizer.
plm_status plm_lora_create(plm_lora **out, const plm_config *cfg, int32_t rank, float alpha,
                           float dropout, uint32_t targets, const int32_t *token_ids,
                           int32_t n_tokens, const float *init_rows, int32_t vocab_size,
                           const plm_tokenizer *tok, uint64_t seed, plm_error *err);

// plm_lora_mat_a, plm_lora_mat_b: A (R, in) or B (out, R) of (layer, target) as an f32 plm_mat,
// for plm_matmul.
plm_mat plm_lora_mat_a(const plm_lora *l, int32_t layer, plm_lora_target t);
plm_mat plm_lora_mat_b(const plm_lora *l, int32_t layer, plm_lora_target t);

#endif
