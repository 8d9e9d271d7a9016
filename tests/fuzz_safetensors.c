// fuzz_safetensors.c: libFuzzer target for the safetensors parser and tensor conversion.
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    plm_safetensors st;
    if (plm_safetensors_parse(&st, data, size, "fuzz", NULL) != PLM_OK) return 0;
    float buf[256];
    for (int32_t i = 0; i < st.n; i++) { // convert the first elements of each tensor
        const plm_st_tensor *t = &st.tensors[i];
        size_t n = t->n_elems < 256 ? t->n_elems : 256;
        plm_st_tensor_to_f32(t, 0, n, buf, NULL);
        plm_safetensors_find(&st, t->name);
    }
    plm_safetensors_free(&st);
    return 0;
}
