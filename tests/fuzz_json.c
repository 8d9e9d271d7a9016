// fuzz_json.c: libFuzzer target for the JSON parser and its accessors (json.c).
#include <stddef.h>
#include <stdint.h>

#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    plm_json j;
    if (plm_json_parse(&j, (const char *)data, size, "fuzz", NULL) != PLM_OK) return 0;
    char buf[64];
    double d;
    int64_t x;
    for (int32_t i = 0; i < j.n; i++) { // every accessor on every token
        plm_json_str(&j, i, buf, sizeof buf);
        plm_json_num(&j, i, &d);
        plm_json_int(&j, i, -1000, 1000, &x);
        plm_json_bool(&j, i);
        plm_json_eq(&j, i, "dtype");
        plm_json_get(&j, i, "shape");
        plm_json_at(&j, i, 1);
    }
    plm_json_free(&j);
    return 0;
}
