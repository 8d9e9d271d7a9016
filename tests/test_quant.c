// test_quant.c: GGUF dequantization against the reference (tests/ref/quant.gguf, made by
// tests/make_ref_quant.py with PyPI gguf's dequantizers, which compute as ggml's
// dequantize_row_*): each quantized type pocketlm reads, bit for bit,
// - through plm_gguf_tensor_to_f32 (whole tensor, and rows from an offset);
// - through the load-time conversions (quant.c) on every kernel path: to f32 equal to the
//   reference, to q8_0 equal to plm_quantize_q8_0 of the reference (Q8_0 blocks are copied);
// and the reader's errors: a tensor whose last block is cut short, a type it does not read.
#include <stdint.h>

#include "gguf.h"
#include "matmul.h"
#include "quant.h"
#include "test.h"

#define REF "tests/ref/quant.gguf"

static const uint32_t types[] = {PLM_GGML_Q4_0, PLM_GGML_Q4_1, PLM_GGML_Q5_0, PLM_GGML_Q5_1,
                                 PLM_GGML_Q8_0, PLM_GGML_Q2_K, PLM_GGML_Q3_K, PLM_GGML_Q4_K,
                                 PLM_GGML_Q5_K, PLM_GGML_Q6_K};
#define N_TYPES (sizeof types / sizeof types[0])

// check_type: tensor NAME of g against NAME.ref on every path.
static void check_type(const plm_gguf *g, uint32_t type) {
    const char *name = plm_ggml_type_name(type);
    char ref_name[32];
    snprintf(ref_name, sizeof ref_name, "%s.ref", name);
    const plm_gguf_tensor *t = plm_gguf_find_tensor(g, name),
                          *r = plm_gguf_find_tensor(g, ref_name);
    CHECK_MSG(t && r && t->type == type && r->type == PLM_GGML_F32 && t->ne[0] == r->ne[0] &&
                  t->n_elems == r->n_elems,
              "%s: tensors %s and %s", REF, name, ref_name);
    if (!t || !r || t->n_elems != r->n_elems) return;
    const size_t cols = (size_t)t->ne[0], rows = t->n_elems / cols;
    float *want = malloc(t->n_elems * 4), *x = malloc(t->n_elems * 4), *rd = malloc(cols / 8);
    int8_t *q = malloc(cols), *rq = malloc(cols);
    float *d = malloc(cols / 8), *tmp = malloc(cols * 4);
    plm_error err = {0};
    CHECK(plm_gguf_tensor_to_f32(r, 0, rows, want, &err) == PLM_OK);
    CHECK_MSG(plm_gguf_tensor_to_f32(t, 0, rows, x, &err) == PLM_OK &&
                  !memcmp(x, want, t->n_elems * 4),
              "%s: plm_gguf_tensor_to_f32 differs from the reference", name);
    CHECK_MSG(plm_gguf_tensor_to_f32(t, 1, rows - 1, x, &err) == PLM_OK &&
                  !memcmp(x, want + cols, (rows - 1) * cols * 4),
              "%s: rows from 1 differ from the reference", name);
    const size_t row_bytes = plm_gguf_row_bytes(type, cols);
    for (int isa = 0; isa < PLM_ISA_COUNT; isa++) {
        if (!plm_isa_supported((plm_isa)isa)) continue;
        for (size_t i = 0; i < rows; i++) {
            const uint8_t *src = t->data + i * row_bytes;
            const float *w = want + i * cols;
            memset(x, 0x55, cols * 4);
            plm_quant_row_f32((plm_isa)isa, type, src, cols, x);
            CHECK_MSG(!memcmp(x, w, cols * 4), "%s: %s row %zu to f32 differs from the reference",
                      plm_isa_name((plm_isa)isa), name, i);
            if (type == PLM_GGML_Q8_0) continue; // copied, not requantized (test_load.c)
            plm_quantize_q8_0_isa((plm_isa)isa, rq, rd, w, cols);
            memset(q, 0x55, cols), memset(d, 0x55, cols / 8);
            plm_quant_row_q8_0((plm_isa)isa, type, src, cols, q, d, tmp);
            CHECK_MSG(!memcmp(q, rq, cols) && !memcmp(d, rd, cols / PLM_QK * 4),
                      "%s: %s row %zu to q8_0 differs from quantizing the reference",
                      plm_isa_name((plm_isa)isa), name, i);
        }
    }
    free(want), free(x), free(rd), free(q), free(rq), free(d), free(tmp);
}

static void test_reference(void) {
    plm_gguf g;
    plm_error err = {0};
    if (plm_gguf_open(&g, REF, &err) != PLM_OK) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    for (size_t k = 0; k < N_TYPES; k++) check_type(&g, types[k]);
    plm_gguf_free(&g);
}

// ---- errors ----

static size_t put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> 8 * i);
    return 4;
}

static size_t put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> 8 * i);
    return 8;
}

// one_tensor: a GGUF v3 file in b with tensor "w" of type and ne[0] = cols, one row, data zero;
// returns the bytes up to the end of the data.
static size_t one_tensor(uint8_t *b, uint32_t type, size_t cols) {
    size_t n = 0;
    memcpy(b, "GGUF", 4), n += 4;
    n += put32(b + n, 3);
    n += put64(b + n, 1); // tensors
    n += put64(b + n, 0); // metadata
    n += put64(b + n, 1), b[n++] = 'w';
    n += put32(b + n, 1); // n_dims
    n += put64(b + n, cols);
    n += put32(b + n, type);
    n += put64(b + n, 0); // offset
    const size_t data = (n + 31) / 32 * 32;
    memset(b + n, 0, data - n + plm_gguf_row_bytes(type, cols));
    return data + plm_gguf_row_bytes(type, cols);
}

static void test_errors(void) {
    static uint8_t b[4096];
    plm_gguf g;
    plm_error err = {0};
    for (size_t k = 0; k < N_TYPES; k++) { // a last block one byte short: the parser refuses it
        const size_t cols = types[k] >= PLM_GGML_Q2_K ? 512 : 64, n = one_tensor(b, types[k], cols);
        CHECK_MSG(plm_gguf_parse(&g, b, n, "whole", &err) == PLM_OK, "%s: %s",
                  plm_ggml_type_name(types[k]), err.msg);
        plm_gguf_free(&g);
        plm_status s = plm_gguf_parse(&g, b, n - 1, "cut", &err);
        CHECK_MSG(s == PLM_ERR_FORMAT && strstr(err.msg, "'w'") && strstr(err.msg, "beyond"),
                  "%s cut short: %s", plm_ggml_type_name(types[k]), err.msg);
        if (s == PLM_OK) plm_gguf_free(&g);
        one_tensor(b, types[k], cols + 16); // not whole blocks
        s = plm_gguf_parse(&g, b, sizeof b, "part", &err);
        CHECK_MSG(s == PLM_ERR_FORMAT && strstr(err.msg, "not a multiple"), "%s part block: %s",
                  plm_ggml_type_name(types[k]), err.msg);
        if (s == PLM_OK) plm_gguf_free(&g);
    }
    // Q8_K: a type the table knows (the file parses) but pocketlm does not read
    const size_t n = one_tensor(b, 15, 256);
    CHECK_MSG(plm_gguf_parse(&g, b, n, "q8_k", &err) == PLM_OK, "%s", err.msg);
    float out[256];
    CHECK_MSG(plm_gguf_tensor_to_f32(&g.tensors[0], 0, 1, out, &err) == PLM_ERR_UNSUPPORTED &&
                  strstr(err.msg, "'w'") && strstr(err.msg, "Q8_K") && strstr(err.msg, "Q6_K"),
              "Q8_K: %s", err.msg);
    plm_gguf_free(&g);
}

int main(void) {
    test_self();
    test_paths("test_quant");
    test_reference();
    test_errors();
    return test_main_end("test_quant");
}
