// fuzz_gguf.c: libFuzzer target for the GGUF parser, metadata accessors and dequantization.
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    plm_gguf g;
    if (plm_gguf_parse(&g, data, size, "fuzz", NULL) != PLM_OK) return 0;
    static const char *keys[] = {"tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
                                 "llama.block_count", "general.architecture"};
    for (int k = 0; k < 4; k++) {
        plm_str *s = NULL, one;
        int32_t *v = NULL;
        int64_t n, x;
        double d;
        plm_gguf_get_strs(&g, keys[k], &s, &n, NULL);
        plm_gguf_get_ints(&g, keys[k], &v, &n, NULL);
        plm_gguf_get_int(&g, keys[k], &x);
        plm_gguf_get_float(&g, keys[k], &d);
        plm_gguf_get_str(&g, keys[k], &one);
        free(s);
        free(v);
    }
    float *buf = malloc(4096 * sizeof(float));
    for (int64_t i = 0; buf && i < g.n_tensors; i++) { // the first row of each tensor, if small
        const plm_gguf_tensor *t = &g.tensors[i];
        if (t->ne[0] > 0 && t->ne[0] <= 4096 && t->n_elems >= (size_t)t->ne[0])
            plm_gguf_tensor_to_f32(t, 0, 1, buf, NULL);
    }
    free(buf);
    plm_gguf_free(&g);
    return 0;
}
