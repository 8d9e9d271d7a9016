// fuzz_model_id.c: libFuzzer target for the adapter names of `pocketlm serve` (server_adapters.c):
// the input is a base model's name, a NUL, and a request's "model" id; the id's split into the
// base and an adapter name must stay inside the id and give a valid name.
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *nul = memchr(data, 0, size);
    if (!nul) return 0;
    const char *base = (const char *)data, *id = nul + 1;
    size_t n = size - (size_t)(id - base), at = 0;
    int k = plm_server_model_id(base, id, n, &at);
    size_t bn = strlen(base);
    if (k == 1 && (at != bn + 1 || at >= n || id[bn] != ':' || memcmp(base, id, bn) ||
                   !plm_server_valid_name(id + at, n - at)))
        __builtin_trap();
    if (k == 0 && (n != bn || memcmp(base, id, n))) __builtin_trap();
    return 0;
}
