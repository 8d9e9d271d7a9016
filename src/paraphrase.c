// paraphrase.c: the diversity knob, D in [0, 1] (0 = stay close to the input, 1 = as different
// as it can while keeping the meaning), mapped in one place to everything it controls: the task's
// control field (plm_task.diversity, whose levels task.c defines) and the decoding (greedy, with
// the retry of an output that copies its input from RETRY_FROM on). `pocketlm paraphrase
// --diversity`, the server's /v1/paraphrase "diversity", the wasm module and pocketlm.js's
// paraphrase(text, {diversity}) all call plm_paraphrase_diversity.
// Not here: the template and stop rule (task.c), the decoding loop itself (generate.c).
#include "base.h"

// What D sets, chosen on held-out rows only (the first 200 label-1 rows of the grouped 10% split
// of PAWS dev that `finetune --eval-frac 0.1 --seed 1234` holds out, detokenized; q8_0; copying the
// input scores iBLEU(0.8) 32.45 there). With models/paws-lora (5 control levels), BLEU / self-BLEU /
// iBLEU / exact copies:
//     level 0, greedy                          65.16 / 87.03 / 34.72 / 40.5%  (D = 0)
//     level 1, greedy                          64.75 / 85.41 / 34.72 / 36.5%
//     level 2, greedy                          65.14 / 84.84 / 35.14 / 35.5%
//     level 3, greedy                          64.80 / 84.11 / 35.02 / 35.5%
//     level 4, greedy                          64.68 / 83.79 / 34.99 / 34.5%
//     level 0, one retry, every bigram         56.35 / 65.40 / 32.00 /  0%    (below copying)
//     level 2, one retry, every bigram         59.40 / 71.20 / 33.28 /  1.0%  (the default before)
//     level 2, one retry, a quarter of them    64.33 / 81.98 / 35.07 / 22.0%
//     level 2, one retry, half of them         62.60 / 77.80 / 34.52 / 11.0%
//     level 2, retries 1/4, 1/2, all           62.04 / 76.95 / 34.24 /  1.0%  (D = 0.5 until 2026-12-08)
//     level 3, retries 0.49, all               60.56 / 73.87 / 33.68 /  1.0%  (D = 0.7)
//     level 4, one retry, every bigram         58.78 / 70.46 / 32.94 /  1.0%  (D = 1)
//     level 2, copy_penalty 1 throughout       60.15 / 70.97 / 33.92 / 11.0%
// (the adapter before it, without the control field and trained on tokenized text: greedy 68.10 /
// 88.25 / 36.83 / 48.5%, copy_penalty 1 64.61 / 75.47 / 36.60 / 17.5%.) The level moves self-BLEU
// and copies the right way but little. Blocking every bigram of a copy rewrites too much (PAWS
// references differ from their inputs by a few words): BLEU falls by more than iBLEU's 0.2 *
// self-BLEU gives back. Blocking a small share first, then more only while the output still
// copies, changes a few words of most copies and keeps BLEU. Better still (2026-12-08, all 354
// held-out rows, copying 66.90 / 100 / 33.52): a copy's deviations (generate.c: the greedy copy
// again up to the model's least sure choice, the runner-up there, then greedy on) change one
// decision that the model itself nearly made, and no more:
//     level 0, greedy                           66.75 / 87.80 / 35.84 / 40.4%  (D = 0)
//     level 2, retries 1/4, 1/2, all            63.67 / 77.15 / 35.51 /  1.1%  (the default before)
//     level 3, retries 0.56, all                62.69 / 75.68 / 35.02 /  1.7%
//     level 4, one retry, every bigram          60.93 / 72.09 / 34.32 /  1.4%  (D = 1)
//     level 2, two deviations, then bigrams     64.60 / 79.49 / 35.79 /  0.0%  (D = 0.5, the default)
//     level 3, the same                         64.15 / 79.18 / 35.49 /  0.0%  (D = 0.75)
// and in a first version (which could also deviate at the output's end): level 0 35.54, level 1
// 35.69, level 2 35.82, level 4 35.83 (self-BLEU 81.5, 80.2, 79.5, 79.3; no copies); a deviation
// of every output, copies or not, at level 2: 62.66 / 76.53 / 34.82 (a changed output changed again
// loses).
// So D sets the level, and from RETRY_FROM on the retries of copies: below 1 two deviations first
// (then the bigrams, D * D first), at D = 1 every bigram at once (blocked outright instead of by
// RETRY_PENALTY: 47.86 / 57.56 / 26.77, far below copying): self-BLEU falls with D (87.8, 79.5,
// 79.2, 72.1 at D = 0, 0.5, 0.75, 1) and every preset stays above copying. The default is the
// best iBLEU among the settings that copy at most 5% of the inputs (the task's target): D = 0.5;
// its decoding ran at 87.7 tok/s against greedy's 99.7 in the same eval (a deviation decodes only
// the tokens after its step). Below RETRY_FROM a copy is
// kept (D = 0: "stay close"). An adapter without the control field gets the retries alone from D.
#define RETRY_FROM    0.4f // the retry of copies from this D on (levels 2..4 of 5)
#define RETRY_PENALTY 2.0f // its blocking of the source's bigrams (logits)
#define DEVIATIONS    2    // a copy's deviations first, for D below 1

plm_status plm_paraphrase_diversity(plm_task *t, plm_generate_params *gp, float diversity,
                                    plm_error *err) {
    if (!gp || !(diversity >= 0.0f && diversity <= 1.0f))
        return plm_fail(err, PLM_ERR_ARG,
                        "diversity must be a number in [0, 1] (0 = stay close to the input, 1 = "
                        "as different as it can), got %g",
                        (double)diversity);
    if (t) t->diversity = diversity; // the control field's level, for an adapter trained with it
    gp->copy_penalty = 0.0f;
    gp->copy_block = diversity * diversity; // the retries' first share of blocked bigrams
    gp->candidates = 1;
    gp->sampler.temperature = 0.0f;
    gp->copy_retry = diversity >= RETRY_FROM ? RETRY_PENALTY : 0.0f;
    gp->copy_deviate = diversity < 1.0f ? DEVIATIONS : 0;
    gp->keep_facts = 1;
    return PLM_OK;
}
