// paraphrase.c: the diversity knob, D in [0, 1] (0 = stay close to the input, 1 = as different
// as it can while keeping the meaning), mapped in one place to everything it controls: the decoding
// settings (dynamic blocking, candidates and their reranking, temperature). `pocketlm paraphrase
// --diversity`, the server's /v1/paraphrase "diversity", the wasm module and pocketlm.js's
// paraphrase(text, {diversity}) all call plm_paraphrase_diversity.
// Not here: the template and stop rule (task.c), the decoding loop itself (generate.c).
#include "base.h"

// The settings at D = 0 and D = 1; in between, each goes linearly (candidates rounded). Chosen on
// models/paws-lora/heldout.tsv (the model card has the table): blocking is soft, so a word the
// model is sure of (a name, a number) survives it; the candidates are sampled, and their
// reranking weight trades the model's confidence against the overlap with the input.
#define BLOCK_PENALTY_MAX 3.0f // copy_penalty at D = 1 (logits), 0 at D = 0
#define CANDIDATES_MAX    4    // candidates at D = 1, 1 at D = 0
#define RERANK_WEIGHT     2.0f // rerank_weight whenever there are candidates
#define TEMPERATURE_MAX   0.8f // the candidates' temperature at D = 1; 0 (greedy) at D = 0

plm_status plm_paraphrase_diversity(plm_task *t, plm_generate_params *gp, float diversity,
                                    plm_error *err) {
    if (!gp || !(diversity >= 0.0f && diversity <= 1.0f))
        return plm_fail(err, PLM_ERR_ARG,
                        "diversity must be a number in [0, 1] (0 = stay close to the input, 1 = "
                        "as different as it can), got %g",
                        (double)diversity);
    (void)t; // the control code: with the task template's diversity field (h-divtrain)
    float d = diversity;
    gp->copy_penalty = d * BLOCK_PENALTY_MAX;
    gp->copy_block = 1.0f;
    gp->candidates = 1 + (int32_t)(d * (float)(CANDIDATES_MAX - 1) + 0.5f);
    gp->rerank_weight = RERANK_WEIGHT;
    gp->sampler.temperature = d * TEMPERATURE_MAX;
    return PLM_OK;
}
