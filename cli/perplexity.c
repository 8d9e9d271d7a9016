// perplexity.c: `pocketlm perplexity -m MODEL -f FILE [--json]`: the mean negative log-likelihood
// of a text under the model. The text is cut into windows of --ctx tokens scored independently
// (the first token of each window has no context and is not scored); within a window, tokens are fed
// in blocks so that only a block's logits are held at once.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define BLOCK 128 // tokens whose logits are held at once

int cmd_perplexity(int argc, char **argv) {
    const char *cmd = "perplexity", *file = NULL;
    cli_model_opts mo = CLI_MODEL_OPTS;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: pocketlm perplexity -m MODEL -f FILE [--json]\n"
                   "Mean NLL and perplexity of FILE; --json adds each token's "
                   "log-probability.\n\n" CLI_MODEL_HELP "  -f FILE          the text\n"
                   "  --json           one JSON object with every token's id and logprob\n");
            return 0;
        }
        int r = cli_model_flag(cmd, argc, argv, &i, &mo);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (!strcmp(argv[i], "-f")) {
            if (!(file = cli_value(cmd, argc, argv, &i))) return 2;
        } else if (!strcmp(argv[i], "--json")) json = 1;
        else return cli_usage_error(cmd, "unknown option '%s'", argv[i]);
    }
    if (!file) return cli_usage_error(cmd, "-f FILE is required");
    plm_error err = {0};
    size_t len;
    char *text = cli_read_file(cmd, file, &len);
    if (!text) return 1;
    plm_model *m;
    plm_session *s;
    if (cli_open(cmd, &mo, &m, &s)) return free(text), 1;
    const plm_tokenizer *tok = plm_session_tokenizer(s);
    int32_t V = plm_session_n_vocab(s), W = plm_session_n_ctx(s);
    int32_t n = tok ? plm_tokenizer_encode(tok, text, len, NULL, 0) : -1;
    int32_t *ids = n > 0 ? malloc((size_t)n * sizeof *ids) : NULL;
    float *logits = malloc((size_t)BLOCK * (size_t)V * sizeof *logits);
    double *lp = n > 0 ? calloc((size_t)n, sizeof *lp) : NULL;
    int rc = 1;
    if (n < 2 || !ids || !logits || !lp) {
        fprintf(stderr, "pocketlm %s: %s\n", cmd,
                !tok              ? "the model has no tokenizer"
                : n >= 0 && n < 2 ? "the text has fewer than 2 tokens"
                                  : "out of memory");
        goto done;
    }
    plm_tokenizer_encode(tok, text, len, ids, n);
    double nll = 0.0;
    int32_t scored = 0;
    for (int32_t w0 = 0; w0 < n; w0 += W) { // one window: ids[w0 .. w0+W)
        int32_t wn = n - w0 < W ? n - w0 : W;
        plm_session_truncate(s, 0);
        for (int32_t b = 0; b < wn; b += BLOCK) {
            int32_t bn = wn - b < BLOCK ? wn - b : BLOCK;
            if (plm_session_decode_all(s, ids + w0 + b, bn, logits, &err) != PLM_OK) {
                cli_error(cmd, &err);
                goto done;
            }
            // logits of position p predict token p+1 of the window
            for (int32_t t = 0; t < bn && b + t + 1 < wn; t++) {
                int32_t at = w0 + b + t + 1;
                plm_logprobs(logits + (size_t)t * V, V, ids[at], &lp[at], 0, NULL, NULL, NULL);
                nll -= lp[at];
                scored++;
            }
        }
    }
    nll /= scored;
    if (json) {
        printf("{\"n_tokens\": %d, \"n_scored\": %d, \"window\": %d, \"nll\": %.6f, \"ppl\": %.6f, "
               "\"tokens\": [",
               n, scored, W, nll, exp(nll));
        for (int32_t i = 0; i < n; i++) {
            printf(i ? ", " : "");
            if (i % W == 0) printf("{\"id\": %d, \"logprob\": null}", ids[i]);
            else printf("{\"id\": %d, \"logprob\": %.6f}", ids[i], lp[i]);
        }
        printf("]}\n");
    } else {
        printf("tokens %d scored %d window %d nll %.6f perplexity %.4f\n", n, scored, W, nll,
               exp(nll));
    }
    rc = 0;
done:
    free(text);
    free(ids);
    free(logits);
    free(lp);
    cli_close(&mo, m, s);
    return rc;
}
