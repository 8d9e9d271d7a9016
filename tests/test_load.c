// test_load.c: loading converts GGUF weights with SIMD kernels over threads (quant.c, model_load.c);
// the weights must be the bits of the plain route (dequantize to f32, then plm_quantize_q8_0) on
// every kernel path and for any thread count:
// - rows: quant.c's kernels (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, the K-quants, F16) against the plain
//   route, random rows with edge blocks (zero, tiny, huge, negative, infinite and NaN scales), every path this
//   CPU runs (tests/test_quant.c checks the plain route itself against gguf-py);
// - tiny models saved as Q8_0, Q4_0 and F16 GGUF: every path and 1, 2, 3 threads against the
//   scalar path on 1 thread (the plain route itself);
// - Q4_0, Q4_1, Q5_0 and Q5_1 in memory (and auto): the same weights on every path and thread
//   count; a file's blocks of that type kept as they are, Q4_K and Q5_K repacked as Q4_1 and Q5_1
//   (rows == gguf.c's dequantization of the file's, bit for bit, edge blocks included), others
//   quantized by llama.cpp's reference quantizer (quantize.h) from the file's values; a Q4 tensor
//   whose rows are not a multiple of 32 is refused with the reader's message; a tiny model saved
//   as q4_k_m and q5_k_m loads under auto with its Q4_K/Q5_K tensors as Q4_1/Q5_1, their rows
//   gguf.c's dequantization of the file's; Q6_K the same way (rows kept as Q6_K == gguf.c's
//   dequantization, infinite and NaN scales included);
// - the real SmolLM2 Q4_1 GGUF (when present): a hash of every weight, as f32 and as q8_0, equal
//   to the hash of the weights that loading gave before these kernels existed (commit 9cc5d3e:
//   scalar dequantization, then plm_quantize_q8_0, one thread; the same on its avx2 and avx512
//   paths), on every SIMD path and for 1, 2 and 3 threads.
#define _DEFAULT_SOURCE // mkdtemp
#include <stdint.h>
#include <unistd.h>

#include "gguf.h"
#include "matmul.h"
#include "model.h"
#include "quant.h"
#include "quantize.h"
#include "test.h"

static uint64_t rng = 0x2545F4914F6CDD1Dull;

static uint32_t next_u32(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

static float frand(void) {
    return (float)(next_u32() >> 8) / (float)(1 << 23) - 1.0f;
} // [-1, 1)

// ---- rows ----

static void put16(uint8_t *p, uint16_t h) {
    p[0] = (uint8_t)h, p[1] = (uint8_t)(h >> 8);
}

// special: the f16 of block b's scale (and minimum: m = 1) in the edge blocks, or 0 for a random one.
static uint16_t special(size_t b, int m) {
    static const uint16_t d[][2] = {
        {0x0000, 0x0000}, // all zero
        {0x0000, 0x3c00}, // d = 0, m = 1: 32 equal values
        {0x8000, 0xbc00}, // -0 and -1
        {0x0001, 0x0001}, // the smallest subnormals
        {0x7bff, 0xfbff}, // 65504 and -65504
        {0xd640, 0x5640}, // negative d
        {0x7c00, 0x3c00}, // d = inf
        {0x3c00, 0x7e00}, // m = NaN
        {0x7e00, 0x0000}, // d = NaN
        {0xfc00, 0x7c00}, // -inf, inf
    };
    return b < sizeof d / sizeof d[0] ? d[b][m] : 0;
}

// random_row: the blocks of n elements of type (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 or a K-quant): random
// bytes with random scales (and minima) of varied magnitude, the edge blocks first.
static void random_row(uint8_t *p, uint32_t type, size_t n) {
    const size_t block = type >= PLM_GGML_Q2_K ? 256 : 32, bs = plm_gguf_row_bytes(type, block);
    // the f16 scale's offset in a block, and the minimum's (0: none)
    const size_t d_at = type == PLM_GGML_Q2_K   ? 80
                        : type == PLM_GGML_Q3_K ? 108
                        : type == PLM_GGML_Q6_K ? 208
                                                : 0;
    const size_t m_at = type == PLM_GGML_Q2_K ? 82
                        : type == PLM_GGML_Q4_1 || type == PLM_GGML_Q5_1 || type == PLM_GGML_Q4_K ||
                                type == PLM_GGML_Q5_K
                            ? 2
                            : 0;
    for (size_t b = 0; b < n / block; b++, p += bs) {
        for (size_t k = 0; k < bs; k++) p[k] = b ? (uint8_t)next_u32() : 0;
        float scale = frand() * (float)(1 << (next_u32() % 12)) * 1e-3f;
        put16(p + d_at, special(b, 0) ? special(b, 0) : plm_f32_to_f16(scale));
        if (m_at)
            put16(p + m_at, special(b, 1) ? special(b, 1) : plm_f32_to_f16(frand() * 8.0f * scale));
    }
}

// kept_dtype: the dtype a tensor of ggml type type stays in, its rows exactly gguf.c's (F32: none).
static plm_dtype kept_dtype(uint32_t type) {
    switch (type) {
    case PLM_GGML_Q4_0: return PLM_DTYPE_Q4_0;
    case PLM_GGML_Q4_1: return PLM_DTYPE_Q4_1;
    case PLM_GGML_Q4_K: return PLM_DTYPE_Q4_K;
    case PLM_GGML_Q5_0: return PLM_DTYPE_Q5_0;
    case PLM_GGML_Q5_1: return PLM_DTYPE_Q5_1;
    case PLM_GGML_Q5_K: return PLM_DTYPE_Q5_K;
    default: return PLM_DTYPE_F32;
    }
}

static void test_rows(void) {
    const size_t n = 256 * 12, nb = n / 32; // 12: every edge block in K-quants too
    const uint32_t types[] = {PLM_GGML_Q8_0, PLM_GGML_Q4_0, PLM_GGML_Q4_1, PLM_GGML_Q5_0,
                              PLM_GGML_Q5_1, PLM_GGML_Q2_K, PLM_GGML_Q3_K, PLM_GGML_Q4_K,
                              PLM_GGML_Q5_K, PLM_GGML_Q6_K, PLM_GGML_F16};
    uint8_t *src = malloc(n * 4);
    int8_t *q = malloc(n), *rq = malloc(n);
    float *d = malloc(nb * 4), *rd = malloc(nb * 4), *x = malloc(n * 4), *rx = malloc(n * 4);
    float *tmp = malloc(n * 8); // 2 n: plm_quant_row_mat
    uint32_t *qh = malloc(nb * 4);
    uint8_t *scm = malloc(nb * 2);
    for (int isa = 0; isa < PLM_ISA_COUNT; isa++) {
        if (!plm_isa_supported((plm_isa)isa)) continue;
        for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
            const uint32_t type = types[k];
            for (int rep = 0; rep < 20; rep++) {
                if (type == PLM_GGML_F16)
                    for (size_t i = 0; i < n; i++)
                        put16(src + 2 * i, plm_f32_to_f16(frand() * 3.0f));
                else random_row(src, type, n);
                // the plain route: Q8_0 blocks copied, others dequantized then quantized
                plm_gguf_dequant_row(type, src, n, rx);
                if (type == PLM_GGML_Q8_0)
                    for (size_t b = 0; b < nb; b++) {
                        rd[b] = plm_f16_to_f32((uint16_t)(src[34 * b] | src[34 * b + 1] << 8));
                        memcpy(rq + 32 * b, src + 34 * b + 2, 32);
                    }
                else plm_quantize_q8_0_isa((plm_isa)isa, rq, rd, rx, n);
                memset(q, 0x55, n), memset(d, 0x55, nb * 4), memset(x, 0x55, n * 4);
                plm_quant_row_q8_0((plm_isa)isa, type, src, n, q, d, tmp);
                plm_quant_row_f32((plm_isa)isa, type, src, n, x);
                CHECK_MSG(!memcmp(q, rq, n) && !memcmp(d, rd, nb * 4), "%s: %s row to q8_0, rep %d",
                          plm_isa_name((plm_isa)isa), plm_ggml_type_name(type), rep);
                CHECK_MSG(!memcmp(x, rx, n * 4), "%s: %s row to f32, rep %d",
                          plm_isa_name((plm_isa)isa), plm_ggml_type_name(type), rep);
                // kept as Q4/Q5, Q4_K/Q5_K, and the K-quants repacked as Q4_1/Q5_1: the same row
                const plm_dtype kept = kept_dtype(type);
                for (int as = 0; as < 2 && kept != PLM_DTYPE_F32; as++) {
                    const plm_dtype dt = as ? plm_kq_blocks(kept) : kept;
                    if (as && !plm_dtype_kquant(kept)) break;
                    plm_mat w = {.dtype = dt,
                                 .rows = 1,
                                 .cols = (int32_t)n,
                                 .q4 = (uint8_t *)q,
                                 .d = d,
                                 .m = plm_dtype_min(dt) ? (float *)(void *)rq : NULL,
                                 .qh = qh,
                                 .scm = scm};
                    plm_quant_row_mat((plm_isa)isa, type, src, &w, 0, tmp);
                    plm_mat_row(x, &w, 0);
                    CHECK_MSG(!memcmp(x, rx, n * 4), "%s: %s row kept as %s differs, rep %d",
                              plm_isa_name((plm_isa)isa), plm_ggml_type_name(type),
                              plm_dtype_name(dt), rep);
                }
                if (type == PLM_GGML_Q6_K) { // kept as Q6_K: the same row, NaN and inf included
                    plm_mat w = {.dtype = PLM_DTYPE_Q6_K,
                                 .rows = 1,
                                 .cols = (int32_t)n,
                                 .q6 = (uint8_t *)q,
                                 .d = d};
                    plm_quant_row_mat((plm_isa)isa, type, src, &w, 0, tmp);
                    plm_mat_row(x, &w, 0);
                    CHECK_MSG(!memcmp(x, rx, n * 4), "%s: Q6_K row kept as q6_k differs, rep %d",
                              plm_isa_name((plm_isa)isa), rep);
                }
            }
        }
    }
    free(src), free(q), free(rq), free(d), free(rd), free(x), free(rx), free(tmp), free(qh),
        free(scm);
}

// ---- whole models ----

// weights_hash: FNV-1a (64-bit) over every weight of m in a fixed order: per layer q, k, v, o,
// gate, up, down (q then d for Q8_0, the 16-bit values of F16/BF16, else the f32 values) and the
// two norms; then the embedding, lm_head and the final norm.
static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t mat_hash(uint64_t h, const plm_mat *w) {
    size_t n = (size_t)w->rows * (size_t)w->cols;
    if (w->dtype == PLM_DTYPE_F32) return fnv(h, w->f32, n * 4);
    if (plm_dtype_half(w->dtype)) return fnv(h, w->h, n * 2);
    if (w->dtype == PLM_DTYPE_Q8_0) return fnv(fnv(h, w->q, n), w->d, n / PLM_QK * 4);
    if (w->dtype == PLM_DTYPE_Q6_K)
        return fnv(fnv(h, w->q6, n / PLM_QK_K * PLM_Q6K_QS), w->d, n / PLM_QK_K * 4);
    const size_t ns = plm_dtype_kquant(w->dtype) ? n / PLM_QK_K : n / PLM_QK; // d and m
    h = fnv(fnv(h, w->q4, n / 2), w->d, ns * 4);
    if (w->qh) h = fnv(h, w->qh, n / PLM_QK * 4);
    if (w->scm) h = fnv(h, w->scm, n / PLM_QK * 2);
    return w->m ? fnv(h, w->m, ns * 4) : h;
}

static uint64_t weights_hash(const plm_model *m) {
    uint64_t h = 0xcbf29ce484222325ull;
    size_t C = (size_t)m->config.hidden_size;
    for (int l = 0; l < m->config.num_hidden_layers; l++) {
        const plm_layer *y = &m->layers[l];
        const plm_mat *ms[7] = {&y->q_proj,    &y->k_proj,  &y->v_proj,   &y->o_proj,
                                &y->gate_proj, &y->up_proj, &y->down_proj};
        for (int k = 0; k < 7; k++) h = mat_hash(h, ms[k]);
        h = fnv(fnv(h, y->input_layernorm, C * 4), y->post_attention_layernorm, C * 4);
    }
    h = mat_hash(mat_hash(h, &m->embed_tokens), &m->lm_head);
    return fnv(h, m->norm, C * 4);
}

// load_hash: the weights hash of path loaded as dtype on path isa with n_threads (0 on failure).
static uint64_t load_hash(const char *path, plm_dtype dtype, plm_isa isa, int n_threads) {
    plm_error err = {0};
    plm_model *m = NULL;
    plm_load_params lp = plm_load_default_params();
    lp.dtype = dtype, lp.n_threads = n_threads;
    CHECK_MSG(plm_set_kernel_path(plm_isa_name(isa), &err) == PLM_OK, "%s", err.msg);
    CHECK_MSG(plm_model_load(&m, path, &lp, &err) == PLM_OK, "%s: %s", path, err.msg);
    uint64_t h = m ? weights_hash(m) : 0;
    if (m && dtype == PLM_DTYPE_Q8_0) CHECK(m->layers[0].q_proj.dtype == PLM_DTYPE_Q8_0);
    plm_model_free(m);
    plm_set_kernel_path("auto", &err);
    return h;
}

// same_weights: path loaded as dtype on every path with 1, 2, 3 threads gives the weights of the
// scalar path on 1 thread.
static void same_weights(const char *path, plm_dtype dtype) {
    const uint64_t want = load_hash(path, dtype, PLM_ISA_SCALAR, 1);
    for (int isa = 0; isa < PLM_ISA_COUNT; isa++)
        for (int th = 1; th <= 3 && plm_isa_supported((plm_isa)isa); th++)
            CHECK_MSG(load_hash(path, dtype, (plm_isa)isa, th) == want,
                      "%s as %s on %s, %d threads: not the weights of the plain route", path,
                      plm_dtype_name(dtype), plm_isa_name((plm_isa)isa), th);
}

// q4_model: the tiny model file path loaded as dtype (NULL on failure, reported).
static plm_model *q4_model(const char *path, plm_dtype dtype) {
    plm_error err = {0};
    plm_model *m = NULL;
    plm_load_params lp = plm_load_default_params();
    lp.dtype = dtype;
    CHECK_MSG(plm_model_load(&m, path, &lp, &err) == PLM_OK, "%s: %s", path, err.msg);
    return m;
}

// rows_match: every row of w == gguf.c's dequantization of the rows of tensor name in the GGUF file
// at path, first through ggml's quantizer of type quant and its dequantization when the file's type
// is another (llama.cpp's requantization); 0 also when the file does not open.
static int rows_match(const plm_mat *w, const char *path, const char *name, uint32_t quant) {
    plm_gguf g;
    plm_error err = {0};
    if (plm_gguf_open(&g, path, &err) != PLM_OK) return 0;
    const plm_gguf_tensor *t = plm_gguf_find_tensor(&g, name);
    const size_t C = (size_t)w->cols, rb = plm_gguf_row_bytes(t->type, C);
    float *a = malloc(C * 4), *b = malloc(C * 4);
    uint8_t *blk = malloc(plm_gguf_row_bytes(quant, C));
    int same = 1;
    for (int r = 0; r < w->rows; r++) {
        plm_mat_row(a, w, r);
        plm_gguf_dequant_row(t->type, t->data + (size_t)r * rb, C, b);
        if (t->type != quant) {
            plm_quantize_row(quant, b, C, blk);
            plm_gguf_dequant_row(quant, blk, C, b);
        }
        same &= !memcmp(a, b, C * 4);
    }
    free(a), free(b), free(blk);
    plm_gguf_free(&g);
    return same;
}

// test_q4_rows: test_tiny's q4.gguf as q4_0 and q5.gguf as q5_1 hold the file's blocks (v_proj:
// not permuted), and f16.gguf as q4_1 and q5_0 llama.cpp's Q4_1 and Q5_0 blocks of its values;
// then a Q4_0 tensor of 63 columns.
static void test_q4_rows(const char *dir, int tied) {
    char path[256];
    plm_error err = {0};
    static const struct {
        const char *file;
        plm_dtype dtype;
        uint32_t quantize; // its ggml type (llama.cpp's quantizer, for a file of another type)
    } cases[] = {{"q4.gguf", PLM_DTYPE_Q4_0, PLM_GGML_Q4_0},
                 {"f16.gguf", PLM_DTYPE_Q4_1, PLM_GGML_Q4_1},
                 {"q5.gguf", PLM_DTYPE_Q5_1, PLM_GGML_Q5_1},
                 {"f16.gguf", PLM_DTYPE_Q5_0, PLM_GGML_Q5_0}};
    for (int k = 0; k < 4; k++) {
        snprintf(path, sizeof path, "%s/%d-%s", dir, tied, cases[k].file);
        plm_model *m = q4_model(path, cases[k].dtype);
        if (!m) continue;
        const plm_mat *w = &m->layers[1].v_proj;
        CHECK_MSG(w->dtype == cases[k].dtype &&
                      rows_match(w, path, "blk.1.attn_v.weight", cases[k].quantize),
                  "%s as %s: rows differ from the file's blocks", path,
                  plm_dtype_name(cases[k].dtype));
        plm_model_free(m);
    }
    // blk.0.attn_v.weight's ne[0] (64) set to 63: the tensor info is name, n_dims, ne[...], type
    snprintf(path, sizeof path, "%s/%d-q4.gguf", dir, tied);
    char *buf;
    size_t n;
    CHECK_MSG(plm_file_read(path, &buf, &n, &err) == PLM_OK, "%s", err.msg);
    const char *name = "blk.0.attn_v.weight";
    for (size_t i = 0; buf && i + 40 < n; i++)
        if (!memcmp(buf + i, name, strlen(name))) {
            buf[i + strlen(name) + 4] = 63;
            break;
        }
    plm_model *m = NULL;
    plm_load_params lp = plm_load_default_params();
    lp.dtype = PLM_DTYPE_Q4_0;
    plm_status st = plm_model_load_gguf_buffer(&m, (const uint8_t *)buf, n, &lp, &err);
    CHECK_MSG(st == PLM_ERR_FORMAT && strstr(err.msg, "ne[0] = 63 is not a multiple of Q4_0"),
              "63 columns of Q4_0: status %d, '%s'", (int)st, err.msg);
    plm_model_free(m);
    free(buf);
}

// random_llama: a tiny 2-layer Llama of hidden size C (4 heads, 2 KV heads) and intermediate size
// F, every weight and norm random: runs of 64 of varied scale, some all zero (NULL: reported).
static plm_model *random_llama(int tied, int32_t C, int32_t F) {
    plm_config c = {.vocab_size = 320,
                    .hidden_size = C,
                    .intermediate_size = F,
                    .num_hidden_layers = 2,
                    .num_attention_heads = 4,
                    .num_key_value_heads = 2,
                    .head_dim = C / 4,
                    .max_position_embeddings = 64,
                    .rms_norm_eps = 1e-5f,
                    .rope_theta = 10000.0f,
                    .tie_word_embeddings = tied,
                    .bos_token_id = 1,
                    .eos_token_id = 2};
    plm_model *a = NULL;
    plm_error err = {0};
    CHECK_MSG(plm_model_alloc(&a, &c, &err) == PLM_OK, "%s", err.msg);
    float *p = a ? a->block : NULL;
    for (size_t i = 0; p && i < a->block_bytes / 4; i++)
        p[i] = (i / 64) % 17 == 3 ? 0.0f : frand() * (float)(1 << ((i / 64) % 9)) * 0.01f;
    return a;
}

// test_tiny: a random tiny Llama saved as Q8_0, Q4_0, Q5_1 and F16 GGUF; loading it as f32, q8_0,
// q4_0, q4_1, q5_0, q5_1 and auto on every path with 1, 2, 3 threads gives the weights of the
// scalar path on 1 thread.
static void test_tiny(const char *dir, int tied) {
    plm_model *a = random_llama(tied, 64, 160);
    plm_error err = {0};
    if (!a) return;
    const struct {
        const char *name;
        plm_ftype ftype;
    } files[] = {{"q8.gguf", PLM_FTYPE_Q8_0},
                 {"q4.gguf", PLM_FTYPE_Q4_0},
                 {"q5.gguf", PLM_FTYPE_Q5_1},
                 {"f16.gguf", PLM_FTYPE_F16}};
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%d-%s", dir, tied, files[f].name);
        CHECK_MSG(plm_model_save_ftype(a, path, files[f].ftype, &err) == PLM_OK, "%s", err.msg);
        static const plm_dtype dts[] = {PLM_DTYPE_F32,  PLM_DTYPE_Q8_0, PLM_DTYPE_Q4_0,
                                        PLM_DTYPE_Q4_1, PLM_DTYPE_Q5_0, PLM_DTYPE_Q5_1,
                                        PLM_DTYPE_AUTO};
        for (int dt = 0; dt < 7; dt++) same_weights(path, dts[dt]);
    }
    test_q4_rows(dir, tied);
    plm_model_free(a);
}

// check_kquant: test_kquant's Q4_K_M or Q5_K_M file at path loaded as dtype: auto (every
// readable type kept, Q4_K/Q5_K too) or q4_1 / q5_1 (its Q4_K / Q5_K tensors repacked).
static void check_kquant(const char *path, plm_dtype dtype) {
    static const char *const names[5] = {"attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    plm_error err = {0};
    plm_model *m = q4_model(path, dtype);
    plm_gguf g;
    if (!m || plm_gguf_open(&g, path, &err) != PLM_OK) {
        plm_model_free(m);
        return;
    }
    int n_k = 0; // Q4_K / Q5_K tensors checked
    for (int l = 0; l < m->config.num_hidden_layers; l++) {
        const plm_layer *y = &m->layers[l];
        const plm_mat *ws[5] = {&y->v_proj, &y->o_proj, &y->gate_proj, &y->up_proj, &y->down_proj};
        for (int i = 0; i < 5; i++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, names[i]);
            const plm_gguf_tensor *t = plm_gguf_find_tensor(&g, name);
            if (!t || kept_dtype(t->type) == PLM_DTYPE_F32) continue;
            const int k = t->type == PLM_GGML_Q4_K || t->type == PLM_GGML_Q5_K;
            if (dtype != PLM_DTYPE_AUTO && !k) continue; // requantized: not this test's
            n_k += k;
            const plm_mat *w = ws[i];
            const plm_dtype want =
                dtype == PLM_DTYPE_AUTO ? kept_dtype(t->type) : plm_kq_blocks(kept_dtype(t->type));
            CHECK_MSG(w->dtype == want && rows_match(w, path, name, t->type),
                      "%s: %s (%s) as %s: rows differ from gguf.c's", path, name,
                      plm_ggml_type_name(t->type), plm_dtype_name(w->dtype));
        }
    }
    CHECK_MSG(n_k > 0, "%s: no Q4_K / Q5_K tensor", path);
    plm_gguf_free(&g);
    plm_model_free(m);
}

// test_kquant: a random tiny Llama of 256-column rows saved as q4_k_m and q5_k_m: under auto the
// Q4_K and Q5_K tensors stay Q4_K and Q5_K (and Q5_0 stays Q5_0), asked as q4_1 (q5_1) they are
// repacked as Q4_1 (Q5_1), each with rows == gguf.c's dequantization of the file's, bit for bit
// (the not permuted v, o, gate, up, down), and the weights are the same on every path and thread
// count, also asked as q4_k and q5_k from the F16 file (llama.cpp's quantizer).
static void test_kquant(const char *dir) {
    plm_model *a = random_llama(1, 256, 512);
    plm_error err = {0};
    if (!a) return;
    for (int five = 0; five < 2; five++) {
        char path[256];
        snprintf(path, sizeof path, "%s/k%d.gguf", dir, five);
        CHECK_MSG(plm_model_save_ftype(a, path, five ? PLM_FTYPE_Q5_K_M : PLM_FTYPE_Q4_K_M, &err) ==
                      PLM_OK,
                  "%s", err.msg);
        const plm_dtype kq = five ? PLM_DTYPE_Q5_K : PLM_DTYPE_Q4_K;
        for (int as = 0; as < 2; as++) check_kquant(path, as ? plm_kq_blocks(kq) : PLM_DTYPE_AUTO);
        same_weights(path, PLM_DTYPE_AUTO);
        same_weights(path, plm_kq_blocks(kq));
        snprintf(path, sizeof path, "%s/k-f16.gguf", dir);
        CHECK_MSG(plm_model_save_ftype(a, path, PLM_FTYPE_F16, &err) == PLM_OK, "%s", err.msg);
        same_weights(path, kq);
        plm_model *m = q4_model(path, kq);
        if (!m) continue;
        const plm_mat *w = &m->layers[1].down_proj;
        CHECK_MSG(
            w->dtype == kq && m->layers[0].q_proj.dtype == kq &&
                rows_match(w, path, "blk.1.ffn_down.weight", five ? PLM_GGML_Q5_K : PLM_GGML_Q4_K),
            "%s as %s: rows differ from ggml's quantizer's", path, plm_dtype_name(kq));
        plm_model_free(m);
    }
    plm_model_free(a);
}

// test_q6k: a random tiny Llama of 256-column weights saved as Q6_K and as F16 GGUF: q6_k and auto
// on every path with 1, 2, 3 threads give the weights of the scalar path on 1 thread; the Q6_K
// file's blocks kept as they are (auto: every linear weight Q6_K, rows == gguf.c's dequantization
// of the file's), the F16 file's values through ggml's Q6_K quantizer (q6_k).
static void test_q6k(const char *dir) {
    plm_model *a = random_llama(1, 256, 512);
    plm_error err = {0};
    if (!a) return;
    for (int k = 0; k < 2; k++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", dir, k ? "f16-q6k.gguf" : "q6k.gguf");
        CHECK_MSG(plm_model_save_ftype(a, path, k ? PLM_FTYPE_F16 : PLM_FTYPE_Q6_K, &err) == PLM_OK,
                  "%s", err.msg);
        same_weights(path, PLM_DTYPE_Q6_K);
        same_weights(path, PLM_DTYPE_AUTO);
        plm_model *m = q4_model(path, k ? PLM_DTYPE_Q6_K : PLM_DTYPE_AUTO);
        if (!m) continue;
        const plm_mat *w = &m->layers[1].down_proj;
        CHECK_MSG(w->dtype == PLM_DTYPE_Q6_K && m->layers[0].q_proj.dtype == PLM_DTYPE_Q6_K &&
                      m->embed_tokens.dtype == PLM_DTYPE_Q6_K &&
                      rows_match(w, path, "blk.1.ffn_down.weight", PLM_GGML_Q6_K),
                  "%s as %s: rows differ from the file's blocks", path, k ? "q6_k" : "auto");
        plm_model_free(m);
    }
    plm_model_free(a);
}

// test_real: the real Q4_1 GGUF's weights hash as before these kernels (see the top).
static void test_real(void) {
    const char *path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    if (access(path, R_OK) != 0) {
        printf("SKIP real model: run make model\n");
        return;
    }
    const uint64_t want_f32 = 0x340e456f0bacc4c4ull, want_q8 = 0xf4e0f438a2e248ffull;
    for (int isa = 1; isa < PLM_ISA_COUNT; isa++) { // the scalar path is the plain route itself
        if (!plm_isa_supported((plm_isa)isa)) continue;
        for (int th = 1; th <= 3; th++) {
            uint64_t h = load_hash(path, PLM_DTYPE_Q8_0, (plm_isa)isa, th);
            CHECK_MSG(h == want_q8, "real q8_0 on %s, %d threads: hash %016llx, want %016llx",
                      plm_isa_name((plm_isa)isa), th, (unsigned long long)h,
                      (unsigned long long)want_q8);
        }
        uint64_t h = load_hash(path, PLM_DTYPE_F32, (plm_isa)isa, 2);
        CHECK_MSG(h == want_f32, "real f32 on %s: hash %016llx, want %016llx",
                  plm_isa_name((plm_isa)isa), (unsigned long long)h, (unsigned long long)want_f32);
    }
}

int main(void) {
    test_self();
    test_paths("test_load");
    test_rows();
    char dir[] = "/tmp/plm_load_XXXXXX";
    if (!mkdtemp(dir)) return fprintf(stderr, "mkdtemp failed\n"), 1;
    test_tiny(dir, 0);
    test_tiny(dir, 1);
    test_kquant(dir);
    test_q6k(dir);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    test_real();
    return test_main_end("test_load");
}
