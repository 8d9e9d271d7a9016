// fuzz_config.c: libFuzzer target for an HF directory's config.json (model_load.c: the families'
// keys and defaults, Gemma 3's layer types, rope_scaling, then plm_config_check): the input is the
// file, in a directory with nothing else, so a config that passes is refused at the missing
// weights; nothing may crash, leak or allocate by a size it has not checked.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pocketlm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DIR "build/fuzz/config_dir" // fuzz.sh runs from the repository's root

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mkdir(DIR, 0755);
    FILE *f = fopen(DIR "/config.json", "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    plm_model *m = NULL;
    plm_error err = {0};
    plm_load_params lp = plm_load_default_params();
    if (plm_model_load(&m, DIR, &lp, &err) == PLM_OK) plm_model_free(m);
    return 0;
}
