// fuzz_http.c: libFuzzer target for the HTTP request-head parser (http.c): parse, then every
// accessor on what was parsed (path check, range against a few sizes, MIME type).
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    plm_http_request r;
    int rc = plm_http_parse(&r, (const char *)data, size);
    if (rc != 1) return 0;
    if (r.head_len > size || r.path[0] != '/' || memchr(r.path, 0, sizeof r.path) == NULL)
        __builtin_trap(); // the parser's contract
    plm_http_path_ok(r.path);
    plm_http_mime(r.path);
    static const uint64_t sizes[] = {0, 1, 10, 1u << 20, UINT64_MAX};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint64_t first, last;
        int part = plm_http_range(&r, sizes[i], &first, &last);
        if (part == 1 && (first > last || last >= sizes[i])) __builtin_trap();
    }
    return 0;
}
