// fuzz_gguf.c: libFuzzer target for the GGUF parser, metadata accessors, the tokenizer built from
// tokenizer.ggml.* (byte-level merges or SentencePiece scores), dequantization and the load-time
// row conversions (quant.c).
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "gguf.h"
#include "matmul.h"
#include "quant.h"
#include "tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    plm_gguf g;
    if (plm_gguf_parse(&g, data, size, "fuzz", NULL) != PLM_OK) return 0;
    static const char *keys[] = {"tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
                                 "tokenizer.ggml.scores", "llama.block_count",
                                 "general.architecture"};
    for (int k = 0; k < 5; k++) {
        plm_str *s = NULL, one;
        int32_t *v = NULL;
        float *f = NULL;
        int64_t n, x;
        double d;
        plm_gguf_get_strs(&g, keys[k], &s, &n, NULL);
        plm_gguf_get_ints(&g, keys[k], &v, &n, NULL);
        plm_gguf_get_floats(&g, keys[k], &f, &n, NULL);
        free(f);
        plm_gguf_get_int(&g, keys[k], &x);
        plm_gguf_get_float(&g, keys[k], &d);
        plm_gguf_get_str(&g, keys[k], &one);
        free(s);
        free(v);
    }
    plm_tokenizer *tok = NULL;
    if (plm_gguf_tokenizer(&tok, &g, "fuzz", NULL) == PLM_OK) {
        int32_t ids[256];
        int32_t n =
            plm_tokenizer_encode(tok, (const char *)data, size < 256 ? size : 256, ids, 256);
        if (n < 0 || plm_tokenizer_decode(tok, ids, n < 256 ? n : 256, NULL, 0) < 0) abort();
        plm_tokenizer_free(tok);
    }
    float *buf = malloc(4096 * sizeof(float)), *tmp = malloc(4096 * sizeof(float));
    int8_t *q = malloc(4096);
    float *d = malloc(4096 / PLM_QK * sizeof(float));
    for (int64_t i = 0; buf && tmp && q && d && i < g.n_tensors; i++) { // each first row, if small
        const plm_gguf_tensor *t = &g.tensors[i];
        if (t->ne[0] > 0 && t->ne[0] <= 4096 && t->n_elems >= (size_t)t->ne[0] &&
            plm_gguf_tensor_to_f32(t, 0, 1, buf, NULL) == PLM_OK) { // a type pocketlm reads
            plm_quant_row_f32(plm_isa_active(), t->type, t->data, (size_t)t->ne[0], buf);
            if (t->ne[0] % PLM_QK == 0)
                plm_quant_row_q8_0(plm_isa_active(), t->type, t->data, (size_t)t->ne[0], q, d, tmp);
        }
    }
    free(buf), free(tmp), free(q), free(d);
    plm_gguf_free(&g);
    return 0;
}
