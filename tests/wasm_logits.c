// wasm_logits.c: the native side of tests/test_wasm.mjs. Loads a GGUF model, runs a fixed list of
// ids and prints one JSON object: the logits of the last position and a greedy continuation
// (ids, no stop token), which the wasm build must reproduce (logits within 1e-5, ids equal).
// DTYPE:f16 keeps the KV cache in F16 (plm_session_params.kv_type).
//   wasm_logits MODEL.gguf DTYPE[:f16] THREADS N_GREEDY ID...
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pocketlm.h"

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: wasm_logits MODEL.gguf DTYPE[:f16] THREADS N_GREEDY ID...\n");
        return 2;
    }
    plm_error err = {0};
    plm_load_params lp = plm_load_default_params();
    plm_session_params sp = plm_session_default_params();
    plm_generate_params gp = plm_generate_default_params();
    plm_model *m = NULL;
    plm_session *s = NULL;
    int n = argc - 5, rc = 1;
    int32_t *ids = malloc((size_t)n * sizeof *ids), *out = NULL;
    sp.n_threads = atoi(argv[3]);
    gp.max_tokens = atoi(argv[4]);
    gp.stop_tokens = ids; // a non-NULL list of no stop tokens: never stop early
    gp.n_stop_tokens = 0;
    out = malloc(((size_t)gp.max_tokens + 1) * sizeof *out);
    char *kv = strchr(argv[2], ':');
    if (kv) *kv++ = 0;
    if (!ids || !out || plm_dtype_parse(argv[2], &lp.dtype) != PLM_OK ||
        (kv && plm_dtype_parse(kv, &sp.kv_type) != PLM_OK))
        goto done;
    for (int i = 0; i < n; i++) ids[i] = atoi(argv[5 + i]);
    if (plm_model_load(&m, argv[1], &lp, &err) != PLM_OK ||
        plm_session_create(&s, m, &sp, &err) != PLM_OK ||
        plm_session_decode(s, ids, n, &err) != PLM_OK)
        goto done;
    const float *logits = plm_session_logits(s);
    printf("{\"logits\": [");
    for (int32_t v = 0; v < plm_session_n_vocab(s); v++)
        printf(v ? ", %.9g" : "%.9g", (double)logits[v]);
    printf("], \"greedy\": [");
    plm_generate_result res;
    plm_session_truncate(s, 0);
    if (plm_generate(s, ids, n, &gp, out, gp.max_tokens, &res, &err) != PLM_OK) goto done;
    for (int32_t i = 0; i < res.generated_tokens; i++) printf(i ? ", %d" : "%d", out[i]);
    printf("]}\n");
    rc = 0;
done:
    if (rc && err.msg[0]) fprintf(stderr, "wasm_logits: %s\n", err.msg);
    plm_session_free(s);
    plm_model_free(m);
    free(ids);
    free(out);
    return rc;
}
