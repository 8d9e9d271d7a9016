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
//     level 2, retries 1/4, 1/2, all           62.04 / 76.95 / 34.24 /  1.0%  (D = 0.5, the default)
//     level 3, retries 0.49, all               60.56 / 73.87 / 33.68 /  1.0%  (D = 0.7)
//     level 4, one retry, every bigram         58.78 / 70.46 / 32.94 /  1.0%  (D = 1)
//     level 2, copy_penalty 1 throughout       60.15 / 70.97 / 33.92 / 11.0%
// (the adapter before it, without the control field and trained on tokenized text: greedy 68.10 /
// 88.25 / 36.83 / 48.5%, copy_penalty 1 64.61 / 75.47 / 36.60 / 17.5%.) The level moves self-BLEU
// and copies the right way but little. Blocking every bigram of a copy rewrites too much (PAWS
// references differ from their inputs by a few words): BLEU falls by more than iBLEU's 0.2 *
// self-BLEU gives back. Blocking a small share first, then more only while the output still
// copies, changes a few words of most copies and keeps BLEU. So D sets the level, and from
// RETRY_FROM on the retries of copies, with D * D as their first share of blocked bigrams (1/4 at
// D = 0.5, all at D = 1): self-BLEU falls with D (87.0, 77.0, 73.9, 70.5 at D = 0, 0.5, 0.7, 1)
// and every preset stays above copying. The default is the best iBLEU among the settings that copy
// at most 5% of the inputs (the task's target): D = 0.5, at about 1.6 times the greedy decoding's
// tokens (a retry for 35% of the inputs, a second for 22%, a third for 11%). Below RETRY_FROM a
// copy is kept (D = 0: "stay close"; the retry at level 0 falls below copying). An adapter without
// the control field gets the retries alone from D.
#define RETRY_FROM    0.4f // the retry of copies from this D on (levels 2..4 of 5)
#define RETRY_PENALTY 2.0f // its blocking of the source's bigrams (logits)

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
    gp->keep_facts = 1;
    return PLM_OK;
}
