// paraphrase.c: the diversity knob, D in [0, 1] (0 = stay close to the input, 1 = as different
// as it can while keeping the meaning), mapped in one place to everything it controls: the decoding
// settings (dynamic blocking, candidates and their reranking, temperature) and the task's control
// field (plm_task.diversity, whose levels task.c defines). `pocketlm paraphrase
// --diversity`, the server's /v1/paraphrase "diversity", the wasm module and pocketlm.js's
// paraphrase(text, {diversity}) all call plm_paraphrase_diversity.
// Not here: the template and stop rule (task.c), the decoding loop itself (generate.c).
#include "base.h"

// The settings at D = 0 and D = 1; in between, each goes linearly (candidates rounded). Measured
// on the first 60 pairs of models/paws-lora/heldout.tsv with models/paws-lora (q8_0, seed 1;
// BLEU / self-BLEU / iBLEU(0.8) / exact copies; copying the input: iBLEU 32.99):
//     greedy (D = 0)                              64.50 / 84.02 / 34.79 / 23.3%
//     greedy, copy_penalty 1                      59.59 / 70.78 / 33.51 / 11.7%
//     3 candidates (temp 0.8, top-k 8), weight 1  55.82 / 67.50 / 31.16 /  3.3%
//     greedy, copy_penalty 3                      33.56 / 33.29 / 20.19 /  0%
//     greedy, blocked outright (Niu et al.)        3.60 /  1.36 /  2.61 /  0%
// and the mapping below: D = 0.5 (copy_penalty 1, 2 candidates at temperature 0.4; 1.99 times
// the tokens of greedy) 54.05 / 63.31 / 30.58 / 6.7%; D = 1 (2.99 times) 37.02 / 36.30 / 22.36 /
// 0%.
// (That adapter has no control field.) Every decoding remedy trades more BLEU than iBLEU's 0.2 *
// self-BLEU gives back, so D = 0 keeps greedy decoding and D raises the blocking (soft: a word the
// model is sure of, a name or a number, survives it), the candidates and their temperature
// together, beside the control field's level (task.c) for an adapter trained with one.
#define BLOCK_PENALTY_MAX 2.0f // copy_penalty at D = 1 (logits), 0 at D = 0
#define CANDIDATES_MAX    3    // candidates at D = 1, 1 at D = 0 (the cost: about N times)
#define RERANK_WEIGHT     1.0f // rerank_weight whenever there are candidates
#define TEMPERATURE_MAX   0.8f // the temperature at D = 1 (the task's); 0 (greedy) at D = 0

plm_status plm_paraphrase_diversity(plm_task *t, plm_generate_params *gp, float diversity,
                                    plm_error *err) {
    if (!gp || !(diversity >= 0.0f && diversity <= 1.0f))
        return plm_fail(err, PLM_ERR_ARG,
                        "diversity must be a number in [0, 1] (0 = stay close to the input, 1 = "
                        "as different as it can), got %g",
                        (double)diversity);
    if (t) t->diversity = diversity; // the control field's level, for an adapter trained with it
    float d = diversity;
    gp->copy_penalty = d * BLOCK_PENALTY_MAX;
    gp->copy_block = 1.0f;
    gp->candidates = 1 + (int32_t)(d * (float)(CANDIDATES_MAX - 1) + 0.5f);
    gp->rerank_weight = RERANK_WEIGHT;
    gp->sampler.temperature = d * TEMPERATURE_MAX;
    return PLM_OK;
}
