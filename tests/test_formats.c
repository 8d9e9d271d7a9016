// test_formats.c: safetensors and GGUF readers/writers, dequantization error bounds, llama.cpp's Q/K
// permutation, corrupted inputs (each must give the right status and a message), model load/save
// round trips on a tiny random Llama written here, and the real SmolLM2 GGUF when it is present
// (models/, `make model`). Everything is written under a mkdtemp directory in /tmp.
#define _DEFAULT_SOURCE // mkdtemp
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "model.h"
#include "safetensors.h"
#include "test.h"

static char tmpdir[64];
static uint64_t rng = 0x9E3779B97F4A7C15ull;

static float frand(void) { // uniform in [-1, 1)
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)(rng >> 40) / (float)(1 << 23) - 1.0f;
}

static const char *tpath(const char *name) {
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n) fprintf(stderr, "cannot write %s\n", path), exit(1);
    fclose(f);
}

// ---- safetensors ----

// fill_from: user is {plm_st_info *, float **}: tensor i's values from the second array.
static plm_status fill_from(void *user, int32_t i, float *buf, plm_error *err) {
    (void)err;
    const plm_st_info *t = ((const plm_st_info **)user)[0];
    float **data = ((float ***)user)[1];
    size_t n = 1;
    for (int d = 0; d < t[i].n_dims; d++) n *= (size_t)t[i].shape[d];
    memcpy(buf, data[i], n * sizeof *buf);
    return PLM_OK;
}

static void test_safetensors_roundtrip(void) {
    plm_st_info t[3] = {{"a.weight", PLM_DTYPE_F32, 2, {3, 5}},
                        {"b", PLM_DTYPE_F16, 1, {7}},
                        {"c", PLM_DTYPE_BF16, 3, {2, 2, 3}}};
    float *data[3];
    size_t n[3] = {15, 7, 12};
    for (int i = 0; i < 3; i++) {
        data[i] = malloc(n[i] * sizeof(float));
        for (size_t k = 0; k < n[i]; k++) data[i][k] = frand() * 100.0f;
    }
    const void *user[2] = {t, data};
    plm_error err = {0};
    const char *path = tpath("rt.safetensors");
    CHECK(plm_safetensors_write(path, t, 3, 1, fill_from, (void *)user, &err) == PLM_OK);
    plm_safetensors st;
    CHECK_MSG(plm_safetensors_open(&st, path, &err) == PLM_OK, "%s", err.msg);
    CHECK(st.n == 3 && st.has_metadata);
    const plm_st_tensor *a = plm_safetensors_find(&st, "a.weight");
    const plm_st_tensor *b = plm_safetensors_find(&st, "b");
    const plm_st_tensor *c = plm_safetensors_find(&st, "c");
    CHECK(a && b && c && !plm_safetensors_find(&st, "d"));
    CHECK(((const uint8_t *)a->data - st.map.data) % 8 == 0); // header padded to 8 bytes
    if (a && b && c) {
        CHECK(a->n_dims == 2 && a->shape[0] == 3 && a->shape[1] == 5 && c->n_dims == 3);
        float out[15], want[15];
        CHECK(plm_st_tensor_to_f32(a, 0, 15, out, &err) == PLM_OK);
        check_close("st f32", out, data[0], 15, 0, 0);
        CHECK(plm_st_tensor_to_f32(b, 0, 7, out, &err) == PLM_OK);
        for (int k = 0; k < 7; k++) want[k] = plm_f16_to_f32(plm_f32_to_f16(data[1][k]));
        check_close("st f16 exact rounding", out, want, 7, 0, 0);
        check_close("st f16 vs f32", out, data[1], 7, 0, 1.0 / 2048); // 11-bit mantissa
        CHECK(plm_st_tensor_to_f32(c, 0, 12, out, &err) == PLM_OK);
        check_close("st bf16 vs f32", out, data[2], 12, 0, 1.0 / 256); // 8-bit mantissa
        CHECK(plm_st_tensor_to_f32(c, 10, 5, out, &err) == PLM_ERR_ARG);
    }
    plm_safetensors_free(&st);
    for (int i = 0; i < 3; i++) free(data[i]);
}

// st_buf: an in-memory safetensors file with header json and zeroed data of data_bytes.
static uint8_t *st_buf(const char *json, size_t data_bytes, size_t *size) {
    size_t h = strlen(json);
    uint8_t *b = calloc(8 + h + data_bytes, 1);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(b + 8, json, h);
    *size = 8 + h + data_bytes;
    return b;
}

static void expect_st(const char *what, const char *json, size_t data, size_t cut,
                      plm_status want) {
    size_t size;
    uint8_t *b = st_buf(json, data, &size);
    if (cut) size = cut;
    plm_safetensors st;
    plm_error err = {0};
    plm_status s = plm_safetensors_parse(&st, b, size, what, &err);
    CHECK_MSG(s == want && (s == PLM_OK || (err.msg[0] && strstr(err.msg, what))),
              "safetensors %s: status %d (%s), want %d", what, s, err.msg, want);
    if (s == PLM_OK && want == PLM_OK) plm_safetensors_free(&st);
    free(b);
}

static void test_safetensors_corrupt(void) {
    const char *ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    expect_st("valid", ok, 8, 0, PLM_OK);
    expect_st("truncated header length", ok, 8, 5, PLM_ERR_FORMAT);
    expect_st("header beyond file", ok, 8, 20, PLM_ERR_FORMAT);
    expect_st("bad json", "{\"a\":{\"dtype\":\"F32\",", 8, 0, PLM_ERR_FORMAT);
    expect_st("offsets out of range",
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, 0,
              PLM_ERR_FORMAT);
    expect_st("shape bytes mismatch",
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, 0,
              PLM_ERR_FORMAT);
    expect_st("unknown dtype", "{\"a\":{\"dtype\":\"F7\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
              0, PLM_ERR_UNSUPPORTED);
    expect_st("shape overflow",
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[1125899906842624,1125899906842624],"
              "\"data_offsets\":[0,8]}}",
              8, 0, PLM_ERR_FORMAT);
    expect_st("repeated name",
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
              "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
              8, 0, PLM_ERR_FORMAT);
    // an integer tensor parses but does not convert
    size_t size;
    uint8_t *b =
        st_buf("{\"i\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, &size);
    plm_safetensors st;
    plm_error err = {0};
    float out[2];
    CHECK(plm_safetensors_parse(&st, b, size, "int", &err) == PLM_OK);
    CHECK(st.n == 1 &&
          plm_st_tensor_to_f32(&st.tensors[0], 0, 2, out, &err) == PLM_ERR_UNSUPPORTED &&
          strstr(err.msg, "I32") && strstr(err.msg, "'i'"));
    plm_safetensors_free(&st);
    free(b);
}

// ---- GGUF ----

static plm_status fill_gguf(void *user, int32_t i, float *buf, plm_error *err) {
    (void)err;
    float **data = user;
    memcpy(buf, data[i], 64 * 32 * sizeof *buf);
    return PLM_OK;
}

static void test_gguf_roundtrip(void) {
    enum { ROWS = 32, COLS = 64 };
    const uint32_t types[4] = {PLM_GGML_F32, PLM_GGML_F16, PLM_GGML_Q8_0, PLM_GGML_Q4_0};
    const char *names[4] = {"t.f32", "t.f16", "t.q8_0", "t.q4_0"};
    float *data[4];
    plm_gguf_writer *w;
    plm_error err = {0};
    CHECK(plm_gguf_writer_create(&w, &err) == PLM_OK);
    plm_str strs[3] = {{"a", 1}, {"", 0}, {"\xc4\xa0the", 4}};
    int32_t ints[3] = {1, -2, 3};
    plm_gguf_add_str(w, "general.architecture", "llama", 5);
    plm_gguf_add_u32(w, "x.u32", 7);
    plm_gguf_add_f32(w, "x.f32", 0.5f);
    plm_gguf_add_bool(w, "x.bool", 1);
    plm_gguf_add_strs(w, "x.strs", strs, 3);
    plm_gguf_add_i32s(w, "x.ints", ints, 3);
    for (int i = 0; i < 4; i++) {
        data[i] = malloc(ROWS * COLS * sizeof(float));
        for (int k = 0; k < ROWS * COLS; k++) data[i][k] = frand() * (float)(1 + k % 7);
        int64_t ne[2] = {COLS, ROWS};
        plm_gguf_add_tensor(w, names[i], 2, ne, types[i]);
    }
    const char *path = tpath("rt.gguf");
    CHECK_MSG(plm_gguf_write(w, path, fill_gguf, data, &err) == PLM_OK, "%s", err.msg);
    plm_gguf_writer_free(w);
    plm_gguf g;
    CHECK_MSG(plm_gguf_open(&g, path, &err) == PLM_OK, "%s", err.msg);
    int64_t v = 0;
    double f = 0;
    plm_str s;
    plm_str *sa = NULL;
    int32_t *ia = NULL;
    int64_t n = 0;
    CHECK(g.version == 3 && g.n_tensors == 4 && g.n_kv == 6 && g.data_offset % 32 == 0);
    CHECK(plm_gguf_get_int(&g, "x.u32", &v) == 0 && v == 7);
    CHECK(plm_gguf_get_float(&g, "x.f32", &f) == 0 && f == 0.5);
    CHECK(plm_gguf_get_int(&g, "x.bool", &v) == 0 && v == 1);
    CHECK(plm_gguf_get_str(&g, "general.architecture", &s) == 0 && s.n == 5 &&
          !memcmp(s.s, "llama", 5));
    CHECK(plm_gguf_get_strs(&g, "x.strs", &sa, &n, &err) == PLM_OK && n == 3 && sa[2].n == 4 &&
          !memcmp(sa[2].s, "\xc4\xa0the", 4) && sa[1].n == 0);
    CHECK(plm_gguf_get_ints(&g, "x.ints", &ia, &n, &err) == PLM_OK && n == 3 && ia[1] == -2);
    free(sa);
    CHECK(plm_gguf_get_strs(&g, "x.ints", &sa, &n, &err) == PLM_ERR_FORMAT &&
          strstr(err.msg, "x.ints"));
    free(ia);
    float *out = malloc(ROWS * COLS * sizeof(float));
    for (int i = 0; i < 4; i++) {
        const plm_gguf_tensor *t = plm_gguf_find_tensor(&g, names[i]);
        CHECK(t && t->ne[0] == COLS && t->ne[1] == ROWS && t->type == types[i]);
        if (!t || plm_gguf_tensor_to_f32(t, 0, ROWS, out, &err) != PLM_OK) {
            CHECK(0);
            continue;
        }
        if (i == 0) check_close("gguf f32 exact", out, data[0], ROWS * COLS, 0, 0);
        if (i == 1) check_close("gguf f16", out, data[1], ROWS * COLS, 0, 1.0 / 2048);
        // quantized: each value within one quantization step of its block (plus f16 rounding of d)
        for (int b = 0; i >= 2 && b < ROWS * COLS / 32; b++) {
            float amax = 0, worst = 0;
            for (int k = 0; k < 32; k++) amax = fmaxf(amax, fabsf(data[i][b * 32 + k]));
            for (int k = 0; k < 32; k++)
                worst = fmaxf(worst, fabsf(out[b * 32 + k] - data[i][b * 32 + k]));
            // q8_0 rounds to the nearest step; q4_0 (d = max / -8) clips the far end at 15: a step
            float bound = i == 2 ? 0.5f * amax / 127.0f : amax / 8.0f;
            CHECK_MSG(worst <= bound * 1.01f + amax * 1e-3f, "%s block %d err %g step %g", names[i],
                      b, (double)worst, (double)bound);
        }
    }
    // a row range equals the same rows of the whole tensor
    const plm_gguf_tensor *q = plm_gguf_find_tensor(&g, "t.q4_0");
    float part[2 * COLS];
    if (q && plm_gguf_tensor_to_f32(q, 0, ROWS, out, &err) == PLM_OK &&
        plm_gguf_tensor_to_f32(q, 5, 2, part, &err) == PLM_OK)
        check_close("gguf rows", part, out + 5 * COLS, 2 * COLS, 0, 0);
    free(out);
    plm_gguf_free(&g);
    for (int i = 0; i < 4; i++) free(data[i]);
}

static void test_permute(void) {
    enum { NH = 3, D = 8, COLS = 5, ROWS = NH * D };
    float w[ROWS * COLS], p[ROWS * COLS], back[ROWS * COLS];
    for (int k = 0; k < ROWS * COLS; k++) w[k] = (float)k;
    plm_gguf_permute_qk(p, w, NH, ROWS, COLS, 0);
    plm_gguf_permute_qk(back, p, NH, ROWS, COLS, 1);
    check_close("permute o unpermute", back, w, ROWS * COLS, 0, 0);
    CHECK(memcmp(p, w, sizeof w) != 0);
    // reshape(NH, 2, D/2, C).swapaxes(1, 2): GGUF row 1 of head 0 is HF row D/2; row 2 is HF row 1
    CHECK(p[1 * COLS] == w[(D / 2) * COLS] && p[2 * COLS] == w[1 * COLS] &&
          p[(D + 1) * COLS + 3] == w[(D + D / 2) * COLS + 3]);
}

// gguf_hdr: the start of a GGUF file: magic, version, tensor and metadata counts.
static size_t gguf_hdr(uint8_t *b, const char *magic, uint32_t version, uint64_t nt, uint64_t nkv) {
    memcpy(b, magic, 4);
    for (int i = 0; i < 4; i++) b[4 + i] = (uint8_t)(version >> (8 * i));
    for (int i = 0; i < 8; i++)
        b[8 + i] = (uint8_t)(nt >> (8 * i)), b[16 + i] = (uint8_t)(nkv >> (8 * i));
    return 24;
}

static size_t put64(uint8_t *b, uint64_t v) {
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    return 8;
}

static void expect_gguf(const char *what, const uint8_t *b, size_t n, plm_status want) {
    plm_gguf g;
    plm_error err = {0};
    plm_status s = plm_gguf_parse(&g, b, n, what, &err);
    CHECK_MSG(s == want && (s == PLM_OK || (err.msg[0] && strstr(err.msg, what))),
              "gguf %s: status %d (%s), want %d", what, s, err.msg, want);
    if (s == PLM_OK) plm_gguf_free(&g);
}

static void test_gguf_corrupt(void) {
    uint8_t b[256] = {0};
    size_t n = gguf_hdr(b, "GGUF", 3, 0, 0);
    expect_gguf("empty valid", b, n, PLM_OK);
    gguf_hdr(b, "GGML", 3, 0, 0);
    expect_gguf("bad magic", b, n, PLM_ERR_FORMAT);
    gguf_hdr(b, "GGUF", 1, 0, 0);
    expect_gguf("version 1", b, n, PLM_ERR_UNSUPPORTED);
    gguf_hdr(b, "GGUF", 4, 0, 0);
    expect_gguf("version 4", b, n, PLM_ERR_UNSUPPORTED);
    gguf_hdr(b, "GGUF", 3, 0, 0);
    expect_gguf("truncated header", b, 20, PLM_ERR_FORMAT);
    gguf_hdr(b, "GGUF", 3, 0, UINT64_C(1) << 60);
    expect_gguf("huge counts", b, n, PLM_ERR_FORMAT);
    gguf_hdr(b, "GGUF", 3, UINT64_MAX, 1);
    expect_gguf("huge tensor count", b, n, PLM_ERR_FORMAT);
    // one metadata entry: key "k", type string, string length far beyond the buffer
    n = gguf_hdr(b, "GGUF", 3, 0, 1);
    n += put64(b + n, 1);
    b[n++] = 'k';
    b[n] = PLM_GGUF_STRING, n += 4;
    size_t at = n;
    n += put64(b + n, UINT64_C(1) << 40);
    expect_gguf("string length", b, n + 16, PLM_ERR_FORMAT);
    put64(b + at, 3);
    memcpy(b + n, "abc", 3);
    expect_gguf("valid string", b, n + 3, PLM_OK);
    expect_gguf("truncated metadata", b, n + 2, PLM_ERR_FORMAT);
    // array of 2^62 u32
    b[at - 4] = PLM_GGUF_ARRAY;
    b[at] = PLM_GGUF_UINT32, b[at + 1] = b[at + 2] = b[at + 3] = 0;
    put64(b + at + 4, UINT64_C(1) << 62);
    expect_gguf("elements of", b, at + 12 + 16, PLM_ERR_FORMAT);
    // one tensor of a type the table knows but pocketlm does not read (Q8_K) and one of an unknown type
    for (int unknown = 0; unknown < 2; unknown++) {
        memset(b, 0, sizeof b);
        n = gguf_hdr(b, "GGUF", 3, 1, 0);
        n += put64(b + n, 1);
        b[n++] = 't';
        b[n] = 1, n += 4;                 // n_dims
        n += put64(b + n, 256);           // ne[0]
        b[n] = unknown ? 99 : 15, n += 4; // Q8_K: 292 bytes per 256
        n += put64(b + n, 0);             // offset
        size_t data = (n + 31) / 32 * 32;
        plm_gguf g;
        plm_error err = {0};
        plm_status s = plm_gguf_parse(&g, b, data + 292, "q8_k", &err);
        if (unknown) {
            CHECK_MSG(s == PLM_ERR_UNSUPPORTED && strstr(err.msg, "99"), "%s", err.msg);
            continue;
        }
        CHECK_MSG(s == PLM_OK, "%s", err.msg);
        float out[256];
        CHECK(s == PLM_OK &&
              plm_gguf_tensor_to_f32(&g.tensors[0], 0, 1, out, &err) == PLM_ERR_UNSUPPORTED &&
              strstr(err.msg, "Q8_K"));
        if (s == PLM_OK) plm_gguf_free(&g);
        expect_gguf("beyond the data", b, data + 291, PLM_ERR_FORMAT);
    }
}

// ---- models ----

// write_tiny: a random tiny Llama as an HF directory (config.json + model.safetensors), made with
// our own writer and the weight names of transformers; extra is spliced into config.json.
static void write_tiny(const char *dir, int tied, int layers, const char *extra) {
    enum { V = 80, C = 64, F = 96, QD = 64, KD = 32 };
    char path[512];
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    fprintf(
        f,
        "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", %s"
        "\"hidden_size\": %d, \"intermediate_size\": %d, \"num_attention_heads\": 4, "
        "\"num_key_value_heads\": 2, \"num_hidden_layers\": %d, \"vocab_size\": %d, "
        "\"rms_norm_eps\": 1e-05, \"rope_theta\": 500000.0, \"bos_token_id\": 1, "
        "\"eos_token_id\": [2, 3], \"tie_word_embeddings\": %s, \"max_position_embeddings\": 64}",
        extra, C, F, 2, V, tied ? "true" : "false");
    fclose(f);
    static const struct {
        const char *name;
        int rows, cols;
    } shapes[] = {
        {"model.layers.%d.input_layernorm.weight", 0, C},
        {"model.layers.%d.self_attn.q_proj.weight", QD, C},
        {"model.layers.%d.self_attn.k_proj.weight", KD, C},
        {"model.layers.%d.self_attn.v_proj.weight", KD, C},
        {"model.layers.%d.self_attn.o_proj.weight", C, QD},
        {"model.layers.%d.post_attention_layernorm.weight", 0, C},
        {"model.layers.%d.mlp.gate_proj.weight", F, C},
        {"model.layers.%d.mlp.up_proj.weight", F, C},
        {"model.layers.%d.mlp.down_proj.weight", C, F},
    };
    plm_st_info t[64];
    char names[64][96];
    float *data[64];
    int n = 0;
    for (int l = 0; l < layers; l++)
        for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++, n++) {
            snprintf(names[n], sizeof names[n], shapes[k].name, l);
            t[n] =
                (plm_st_info){names[n],
                              PLM_DTYPE_F32,
                              shapes[k].rows ? 2 : 1,
                              {shapes[k].rows ? shapes[k].rows : shapes[k].cols, shapes[k].cols}};
        }
    t[n++] = (plm_st_info){"model.embed_tokens.weight", PLM_DTYPE_F32, 2, {V, C}};
    t[n++] = (plm_st_info){"model.norm.weight", PLM_DTYPE_F32, 1, {C}};
    if (!tied) t[n++] = (plm_st_info){"lm_head.weight", PLM_DTYPE_F32, 2, {V, C}};
    for (int i = 0; i < n; i++) {
        size_t cnt = (size_t)t[i].shape[0] * (size_t)(t[i].n_dims == 2 ? t[i].shape[1] : 1);
        data[i] = malloc(cnt * sizeof(float));
        for (size_t k = 0; k < cnt; k++)
            data[i][k] = t[i].n_dims == 1 ? 1.0f + 0.1f * frand() : 0.2f * frand();
    }
    const void *user[2] = {t, data};
    plm_error err = {0};
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (plm_safetensors_write(path, t, n, 1, fill_from, (void *)user, &err) != PLM_OK)
        fprintf(stderr, "write_tiny: %s\n", err.msg), exit(1);
    for (int i = 0; i < n; i++) free(data[i]);
}

// each_mat: the linear weights of m, layer by layer, then embedding and lm_head (test helper).
static const plm_mat *mat_at(const plm_model *m, int k) {
    int L = m->config.num_hidden_layers;
    if (k == 7 * L) return &m->embed_tokens;
    if (k == 7 * L + 1) return &m->lm_head;
    if (k > 7 * L + 1) return NULL;
    const plm_layer *y = &m->layers[k / 7];
    const plm_mat *ms[7] = {&y->q_proj,    &y->k_proj,  &y->v_proj,   &y->o_proj,
                            &y->gate_proj, &y->up_proj, &y->down_proj};
    return ms[k % 7];
}

// models_close: every weight of a within atol + rtol|b| of b (norms too); 0 tolerances = exact.
static int models_close(const char *what, const plm_model *a, const plm_model *b, double atol,
                        double rtol) {
    int ok = a->config.num_hidden_layers == b->config.num_hidden_layers &&
             a->config.tie_word_embeddings == b->config.tie_word_embeddings;
    int C = a->config.hidden_size;
    for (int k = 0; ok; k++) {
        const plm_mat *x = mat_at(a, k), *y = mat_at(b, k);
        if (!x) break;
        ok = x->rows == y->rows && x->cols == y->cols;
        float *rx = malloc((size_t)x->cols * sizeof(float)),
              *ry = malloc((size_t)x->cols * sizeof(float));
        for (int r = 0; ok && r < x->rows; r++) {
            plm_mat_row(rx, x, r);
            plm_mat_row(ry, y, r);
            ok = close_report(what, rx, ry, (size_t)x->cols, atol, rtol, 1);
        }
        free(rx), free(ry);
    }
    for (int l = 0; ok && l < a->config.num_hidden_layers; l++)
        ok = close_report(what, a->layers[l].input_layernorm, b->layers[l].input_layernorm,
                          (size_t)C, atol, rtol, 1) &&
             close_report(what, a->layers[l].post_attention_layernorm,
                          b->layers[l].post_attention_layernorm, (size_t)C, atol, rtol, 1);
    if (ok) ok = close_report(what, a->norm, b->norm, (size_t)C, atol, rtol, 1);
    CHECK_MSG(ok, "%s: models differ", what);
    return ok;
}

static plm_model *load(const char *path, plm_dtype dtype) {
    plm_load_params lp = {dtype, 0};
    plm_model *m = NULL;
    plm_error err = {0};
    CHECK_MSG(plm_model_load(&m, path, &lp, &err) == PLM_OK, "load %s: %s", path, err.msg);
    return m;
}

static void save(const plm_model *m, const char *path, plm_dtype dtype) {
    plm_error err = {0};
    CHECK_MSG(plm_model_save(m, path, dtype, &err) == PLM_OK, "save %s: %s", path, err.msg);
}

// test_ftypes: model a (weights in [-0.2, 0.2], 64 or 96 columns: no K-quant block fits, so the
// mixes fall back to their 32-block types) saved in each quantized file type of llama.cpp's: the
// values within the step of the bits its types have (Q4_0: a whole step, its top level clamped);
// the embedding is the head's type when tied (Q8_0: 64 is not a multiple of 256), the mix's base
// type's fallback when not; names parse back.
static void test_ftypes(const plm_model *a, int tied) {
    const struct {
        plm_ftype ft;
        uint32_t embd; // token_embd's type when untied
        double atol;
    } fts[] = {{PLM_FTYPE_Q4_0, PLM_GGML_Q4_0, 0.2 / 8 * 1.01},
               {PLM_FTYPE_Q4_1, PLM_GGML_Q4_1, 0.2 / 8 * 1.01},
               {PLM_FTYPE_Q5_0, PLM_GGML_Q5_0, 0.2 / 16 * 1.01},
               {PLM_FTYPE_Q5_1, PLM_GGML_Q5_1, 0.2 / 16 * 1.01},
               {PLM_FTYPE_Q4_K_M, PLM_GGML_Q5_0, 0.2 / 16 * 1.01},
               {PLM_FTYPE_Q5_K_M, PLM_GGML_Q5_1, 0.2 / 16 * 1.01},
               {PLM_FTYPE_Q6_K, PLM_GGML_Q8_0, 0.2 / 127}};
    for (size_t i = 0; i < sizeof fts / sizeof fts[0]; i++) {
        const char *name = plm_ftype_name(fts[i].ft);
        plm_ftype back;
        CHECK(plm_ftype_parse(name, &back) == PLM_OK && back == fts[i].ft);
        char nm[64];
        snprintf(nm, sizeof nm, "%s-%s.gguf", tied ? "t" : "u", name);
        plm_error err = {0};
        CHECK_MSG(plm_model_save_ftype(a, tpath(nm), fts[i].ft, &err) == PLM_OK, "save %s: %s", nm,
                  err.msg);
        plm_gguf g;
        if (plm_gguf_open(&g, tpath(nm), &err) == PLM_OK) {
            const plm_gguf_tensor *e = plm_gguf_find_tensor(&g, "token_embd.weight");
            const uint32_t want = tied ? PLM_GGML_Q8_0 : fts[i].embd;
            CHECK_MSG(e && e->type == want, "%s: token_embd is %s, want %s", nm,
                      e ? plm_ggml_type_name(e->type) : "missing", plm_ggml_type_name(want));
            plm_gguf_free(&g);
        }
        plm_model *x = load(tpath(nm), PLM_DTYPE_F32);
        if (x) models_close(nm, x, a, fts[i].atol, 0);
        plm_model_free(x);
    }
    plm_ftype ft;
    CHECK(plm_ftype_parse("q4_k", &ft) == PLM_ERR_ARG && plm_ftype_parse(NULL, &ft) == PLM_ERR_ARG);
}

static void test_model_roundtrips(int tied) {
    const char *hf = tpath(tied ? "tiny-tied" : "tiny");
    write_tiny(hf, tied, 2, "");
    plm_model *a = load(hf, PLM_DTYPE_F32);
    if (!a) return;
    const plm_config *c = plm_model_config(a);
    CHECK(c->num_hidden_layers == 2 && c->head_dim == 16 && c->eos_token_id == 2 &&
          c->tie_word_embeddings == tied && c->rope_theta == 500000.0f && c->rms_norm_eps == 1e-5f);
    size_t want = 80 * 64 * (size_t)(tied ? 1 : 2) + 64 +
                  2 * (2 * 64 + 64 * 64 * 2 + 32 * 64 * 2 + 3 * 96 * 64);
    CHECK(plm_model_n_params(a) == want);
    CHECK(!tied || a->lm_head.f32 == a->embed_tokens.f32);
    const char *g = tpath(tied ? "tied.gguf" : "untied.gguf"),
               *hf2 = tpath(tied ? "hf2-tied" : "hf2");
    save(a, g, PLM_DTYPE_F32); // HF f32 -> GGUF f32 -> HF f32: exact
    plm_model *b = load(g, PLM_DTYPE_F32);
    if (b) models_close("hf->gguf f32", b, a, 0, 0);
    if (b) save(b, hf2, PLM_DTYPE_F32);
    plm_model *c2 = load(hf2, PLM_DTYPE_F32);
    if (c2) models_close("gguf->hf f32", c2, a, 0, 0);
    if (c2)
        CHECK(plm_model_config(c2)->rope_theta == 500000.0f &&
              plm_model_config(c2)->eos_token_id == 2);
    // GGUF permutes q/k on disk: the stored rows differ from HF's, the loaded ones do not
    plm_gguf gg;
    plm_error err = {0};
    if (plm_gguf_open(&gg, g, &err) == PLM_OK) {
        const plm_gguf_tensor *q = plm_gguf_find_tensor(&gg, "blk.0.attn_q.weight");
        float row[64];
        CHECK(q && plm_gguf_tensor_to_f32(q, 1, 1, row, &err) == PLM_OK &&
              !memcmp(row, a->layers[0].q_proj.f32 + 8 * 64, sizeof row)); // D/2 = 8
        CHECK((plm_gguf_find_tensor(&gg, "output.weight") == NULL) == tied);
        plm_gguf_free(&gg);
    }
    // q8_0 in memory; bf16/f16 HF files; q8_0/q4_0 GGUF files
    plm_model *q = load(hf, PLM_DTYPE_Q8_0);
    if (q) {
        CHECK(q->layers[1].up_proj.dtype == PLM_DTYPE_Q8_0 && q->layers[1].up_proj.f32 == NULL);
        CHECK(plm_model_weight_bytes(q) < plm_model_weight_bytes(a) / 3);
        models_close("q8_0 in memory", q, a, 0.2 / 127, 0);
    }
    const struct {
        const char *name;
        plm_dtype dt;
        double atol, rtol;
    } files[] = {// f16 subnormals (< 6.1e-5) are spaced 2^-24 apart, hence the atol
                 {"bf16", PLM_DTYPE_BF16, 0, 1.0 / 256},
                 {"f16", PLM_DTYPE_F16, 6e-8, 1.0 / 2048},
                 {"q8.gguf", PLM_DTYPE_Q8_0, 0.2 / 127, 0},
                 {"q4.gguf", PLM_DTYPE_Q4_0, 0.2 / 8 * 1.01, 0},
                 {"f16.gguf", PLM_DTYPE_F16, 6e-8, 1.0 / 2048}};
    for (size_t i = 0; a && i < sizeof files / sizeof files[0]; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "%s-%s", tied ? "t" : "u", files[i].name);
        save(a, tpath(nm), files[i].dt);
        plm_model *x = load(tpath(nm), PLM_DTYPE_F32);
        if (x) models_close(nm, x, a, files[i].atol, files[i].rtol);
        if (x && (files[i].dt == PLM_DTYPE_F16 || files[i].dt == PLM_DTYPE_BF16)) {
            // auto keeps them 16-bit (HF and GGUF): every value the f32 load's, exactly
            plm_model *h = load(tpath(nm), PLM_DTYPE_AUTO);
            if (h) {
                CHECK_MSG(plm_model_dtype(h) == files[i].dt &&
                              h->layers[0].o_proj.dtype == files[i].dt,
                          "%s: auto loads %s", nm, plm_dtype_name(plm_model_dtype(h)));
                models_close(nm, h, x, 0, 0);
            }
            plm_model_free(h);
        }
        plm_model_free(x);
    }
    test_ftypes(a, tied);
    plm_error e2 = {0};
    CHECK(plm_model_save(a, tpath("nope"), PLM_DTYPE_Q8_0, &e2) == PLM_ERR_UNSUPPORTED &&
          e2.msg[0]);
    CHECK(plm_model_save_ftype(a, tpath("nope"), PLM_FTYPE_Q4_K_M, &e2) == PLM_ERR_UNSUPPORTED &&
          strstr(e2.msg, "q4_k_m") && strstr(e2.msg, ".gguf"));
    plm_model_free(q);
    plm_model_free(c2);
    plm_model_free(b);
    plm_model_free(a);
}

static void expect_load(const char *what, const char *path, plm_status want, const char *needle) {
    plm_model *m = NULL;
    plm_error err = {0};
    plm_load_params lp = plm_load_default_params();
    plm_status s = plm_model_load(&m, path, &lp, &err);
    CHECK_MSG(s == want && m == NULL && strstr(err.msg, needle), "%s: status %d (%s), want %d '%s'",
              what, s, err.msg, want, needle);
    plm_model_free(m);
}

static void test_model_errors(void) {
    char dir[256];
    snprintf(dir, sizeof dir, "%s", tpath("bad-arch"));
    write_tiny(dir, 1, 2, "\"hidden_act\": \"silu\",");
    FILE *f = fopen(tpath("bad-arch/config.json"), "w");
    fprintf(f, "{\"architectures\": [\"GPT2LMHeadModel\"], \"model_type\": \"gpt2\"}");
    fclose(f);
    expect_load("unsupported architecture", dir, PLM_ERR_UNSUPPORTED, "gpt2");
    write_tiny(tpath("rope"), 1, 2, "\"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 2.0},");
    expect_load("rope scaling", tpath("rope"), PLM_ERR_UNSUPPORTED, "rope_type 'dynamic'");
    write_tiny(tpath("rope"), 1, 2, "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 0.5},");
    expect_load("rope scaling linear < 1", tpath("rope"), PLM_ERR_FORMAT, "want >= 1");
    write_tiny(tpath("rope"), 1, 2, "\"rope_scaling\": {\"type\": \"linear\"},");
    expect_load("rope scaling linear without factor", tpath("rope"), PLM_ERR_FORMAT,
                "linear has no factor");
    write_tiny(tpath("bias"), 1, 2, "\"attention_bias\": true,");
    expect_load("attention bias", tpath("bias"), PLM_ERR_UNSUPPORTED, "attention_bias");
    // the config says 3 layers, the file has 2: a missing tensor
    write_tiny(tpath("missing"), 1, 2, "\"num_hidden_layers\": 3,");
    expect_load("missing tensor", tpath("missing"), PLM_ERR_FORMAT, "model.layers.2.");
    // the config says intermediate 128, the weights are 96
    write_tiny(tpath("shape"), 1, 2, "\"intermediate_size\": 128,");
    expect_load("config shape", tpath("shape"), PLM_ERR_FORMAT, "[96, 64]");
    f = fopen(tpath("shape/config.json"), "w");
    fprintf(f, "{\"model_type\": \"llama\", \"hidden_size\": 64,");
    fclose(f);
    expect_load("bad config json", tpath("shape"), PLM_ERR_FORMAT, "config.json");
    expect_load("no such path", tpath("none.gguf"), PLM_ERR_IO, "none.gguf");
    write_bytes(tpath("trunc.gguf"), "GGUF\3\0\0\0", 8);
    expect_load("truncated gguf", tpath("trunc.gguf"), PLM_ERR_FORMAT, "trunc.gguf");
    // a GGUF of another architecture
    plm_gguf_writer *w;
    plm_error err = {0};
    plm_gguf_writer_create(&w, &err);
    plm_gguf_add_str(w, "general.architecture", "gpt2", 4);
    CHECK(plm_gguf_write(w, tpath("gpt2.gguf"), NULL, NULL, &err) == PLM_OK);
    plm_gguf_writer_free(w);
    expect_load("gguf architecture", tpath("gpt2.gguf"), PLM_ERR_UNSUPPORTED, "gpt2");
}

// ---- GGUF loaded in place ----

// read_file: the bytes of path in a new malloc'd buffer (for plm_model_load_gguf_inplace).
static uint8_t *read_file(const char *path, size_t *size) {
    char *text = NULL;
    plm_error err = {0};
    CHECK_MSG(plm_file_read(path, &text, size, &err) == PLM_OK, "%s: %s", path, err.msg);
    return (uint8_t *)text;
}

// same_models: every weight of a and b bit for bit (dtype, q, d or f32; norms), the tied head
// sharing the embedding in both, and the logits of a prompt.
static void same_models(const char *what, const plm_model *a, const plm_model *b) {
    int L = a->config.num_hidden_layers, C = a->config.hidden_size, ok = 1;
    for (int k = 0; ok; k++) {
        const plm_mat *x = mat_at(a, k), *y = mat_at(b, k);
        if (!x) break;
        size_t n = (size_t)x->rows * (size_t)x->cols;
        ok = x->dtype == y->dtype && x->rows == y->rows && x->cols == y->cols;
        if (ok && x->dtype == PLM_DTYPE_F32) ok = !memcmp(x->f32, y->f32, n * 4);
        if (ok && x->dtype == PLM_DTYPE_Q8_0)
            ok = !memcmp(x->q, y->q, n) && !memcmp(x->d, y->d, n / PLM_QK * 4);
        CHECK_MSG(ok, "%s: weight %d differs", what, k);
    }
    for (int l = 0; l < L; l++)
        CHECK_MSG(
            !memcmp(a->layers[l].input_layernorm, b->layers[l].input_layernorm, (size_t)C * 4) &&
                !memcmp(a->layers[l].post_attention_layernorm,
                        b->layers[l].post_attention_layernorm, (size_t)C * 4),
            "%s: norms of layer %d differ", what, l);
    CHECK_MSG(!memcmp(a->norm, b->norm, (size_t)C * 4), "%s: final norm differs", what);
    CHECK(!a->config.tie_word_embeddings ||
          (a->lm_head.q == a->embed_tokens.q && b->lm_head.q == b->embed_tokens.q));
    const plm_model *m[2] = {a, b};
    int32_t ids[7] = {1, 5, 17, 42, 3, 9, 60}, V = a->config.vocab_size;
    float *logits[2];
    for (int i = 0; i < 2; i++) {
        plm_session *s = NULL;
        plm_session_params sp = plm_session_default_params();
        plm_error err = {0};
        sp.n_ctx = 16, sp.n_threads = 1;
        logits[i] = calloc((size_t)V * 7, sizeof(float));
        CHECK_MSG(plm_session_create(&s, m[i], &sp, &err) == PLM_OK &&
                      plm_session_decode_all(s, ids, 7, logits[i], &err) == PLM_OK,
                  "%s: %s", what, err.msg);
        plm_session_free(s);
    }
    CHECK_MSG(!memcmp(logits[0], logits[1], (size_t)V * 7 * sizeof(float)), "%s: logits differ",
              what);
    free(logits[0]), free(logits[1]);
}

// load_both: path loaded from a buffer by copy and in place (dtype); compares them and returns how
// many bytes of weights the in-place model keeps in the file.
static size_t load_both(const char *what, const char *path, plm_dtype dtype) {
    size_t size, in_file = 0;
    uint8_t *buf = read_file(path, &size), *own = buf ? read_file(path, &size) : NULL;
    plm_load_params lp = {dtype, 0};
    plm_model *a = NULL, *b = NULL;
    plm_error err = {0};
    if (!own) return free(buf), 0;
    CHECK_MSG(plm_model_load_gguf_buffer(&a, buf, size, &lp, &err) == PLM_OK, "%s: %s", what,
              err.msg);
    CHECK_MSG(plm_model_load_gguf_inplace(&b, own, size, &lp, &err) == PLM_OK, "%s: %s", what,
              err.msg);
    if (a && b) {
        same_models(what, a, b);
        in_file = b->file_weight_bytes;
        CHECK(plm_model_weight_bytes(a) == plm_model_weight_bytes(b));
        CHECK((b->file != NULL) == (in_file > 0) && (!b->file || b->file == own));
        const plm_mat *e = &b->lm_head; // the q of an in-place weight lie in the file (the head
                                        // is Q8_0 in the q4_0 file too: llama.cpp's mix)
        if (e->dtype == PLM_DTYPE_Q8_0 && in_file)
            CHECK((const uint8_t *)e->q > own && (const uint8_t *)e->q < own + size);
    }
    if (!b) free(own); // still ours on failure
    plm_model_free(a);
    plm_model_free(b); // frees own
    free(buf);
    return in_file;
}

// expect_inplace_fail: a bad buffer gives want with needle in the message and stays unchanged.
static void expect_inplace_fail(const char *what, const uint8_t *b, size_t n, plm_status want,
                                const char *needle) {
    uint8_t *own = malloc(n);
    memcpy(own, b, n);
    plm_load_params lp = {PLM_DTYPE_Q8_0, 0};
    plm_model *m = NULL;
    plm_error err = {0};
    plm_status s = plm_model_load_gguf_inplace(&m, own, n, &lp, &err);
    CHECK_MSG(s == want && m == NULL && strstr(err.msg, needle) && !memcmp(own, b, n),
              "%s: status %d (%s), want %d '%s', buffer unchanged", what, s, err.msg, want, needle);
    free(own);
}

static void test_inplace(int tied) {
    const char *hf = tpath(tied ? "ip-tied" : "ip");
    write_tiny(hf, tied, 2, "");
    plm_model *a = load(hf, PLM_DTYPE_F32);
    if (!a) return;
    const char *q8 = tpath(tied ? "ip-tied-q8.gguf" : "ip-q8.gguf");
    const char *q4 = tpath(tied ? "ip-tied-q4.gguf" : "ip-q4.gguf");
    save(a, q8, PLM_DTYPE_Q8_0);
    save(a, q4, PLM_DTYPE_Q4_0);
    size_t linear = (size_t)plm_model_n_params(a) - 64 - 2 * 2 * 64; // all but the norms
    CHECK(load_both(tied ? "in place q8_0 tied" : "in place q8_0", q8, PLM_DTYPE_Q8_0) == linear);
    CHECK(load_both("in place, dtype f32", q8, PLM_DTYPE_F32) == 0);
    const plm_config *ac = plm_model_config(a); // only the head (tied: the embedding) is Q8_0
    CHECK(load_both("in place, q4_0 file", q4, PLM_DTYPE_Q8_0) ==
          (size_t)ac->vocab_size * (size_t)ac->hidden_size);
    // the in-place weights are the file's values exactly (f32 dequantizes them the same way)
    size_t size;
    uint8_t *own = read_file(q8, &size);
    plm_load_params lp = {PLM_DTYPE_Q8_0, 0};
    plm_model *b = NULL, *f = load(q8, PLM_DTYPE_F32);
    plm_error err = {0};
    CHECK_MSG(own && plm_model_load_gguf_inplace(&b, own, size, &lp, &err) == PLM_OK, "%s",
              err.msg);
    if (b && f) models_close("in place vs f32 of the file", b, f, 0, 0);
    if (!b) free(own);
    plm_model_free(b);
    plm_model_free(f);
    // bad input: the error, the buffer untouched and still the caller's
    own = read_file(q8, &size);
    if (own && tied) {
        expect_inplace_fail("in place: truncated", own, size / 2, PLM_ERR_FORMAT, "beyond");
        expect_inplace_fail("in place: not gguf", (const uint8_t *)"GGUX\3\0\0\0", 8,
                            PLM_ERR_FORMAT, "not a GGUF");
        const char key[] = "llama.block_count"; // followed by its type and the u32 value
        uint8_t *k = NULL;
        for (size_t i = 0; !k && i + sizeof key < size; i++)
            if (!memcmp(own + i, key, sizeof key - 1)) k = own + i;
        CHECK(k != NULL);
        if (k) k[sizeof key - 1 + 4] = 3; // 3 layers: blk.2.* are missing
        expect_inplace_fail("in place: missing tensor", own, size, PLM_ERR_FORMAT, "blk.2.");
        plm_model *m = (plm_model *)1;
        CHECK(plm_model_load_gguf_inplace(&m, NULL, 0, &lp, &err) == PLM_ERR_ARG);
    }
    free(own);
    plm_model_free(a);
}

// test_inplace_real: the real GGUF mixes Q8_0 (the tied embedding), Q4_1 and F32 tensors.
static void test_inplace_real(void) {
    const char *path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    if (access(path, R_OK) != 0) return;
    size_t in_file = load_both("in place, real Q4_1 GGUF", path, PLM_DTYPE_Q8_0);
    CHECK(in_file == (size_t)49152 * 576); // only token_embd.weight is Q8_0
}

// ---- the real model ----

static void test_real_model(void) {
    const char *path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    if (access(path, R_OK) != 0) {
        printf("SKIP test_formats/real-model: no %s (install with: make model)\n", path);
        return;
    }
    double t0 = plm_time();
    plm_model *a = load(path, PLM_DTYPE_F32);
    double t1 = plm_time();
    if (!a) return;
    const plm_config *c = plm_model_config(a);
    CHECK(c->num_hidden_layers == 30 && c->hidden_size == 576 && c->num_attention_heads == 9 &&
          c->num_key_value_heads == 3 && c->head_dim == 64 && c->intermediate_size == 1536 &&
          c->vocab_size == 49152 && c->rope_theta == 100000.0f && c->tie_word_embeddings &&
          c->bos_token_id == 1 && c->eos_token_id == 2);
    CHECK(plm_model_n_params(a) == 134515008u);
    CHECK(a->file_tensors[PLM_GGML_Q8_0] == 1 && a->file_tensors[PLM_GGML_Q4_1] == 210 &&
          a->file_tensors[PLM_GGML_F32] == 61);
    plm_model *q = load(path, PLM_DTYPE_Q8_0);
    printf("real model: f32 load %.2f s (%zu bytes), q8_0 load %.2f s (%zu bytes)\n", t1 - t0,
           plm_model_weight_bytes(a), plm_time() - t1, q ? plm_model_weight_bytes(q) : 0);
    if (q) models_close("real q8_0 vs f32", q, a, 0.05, 0.02); // weights are |w| < ~6
    plm_model_free(q);
    save(a, tpath("smol-hf"), PLM_DTYPE_F32);
    plm_model *b = load(tpath("smol-hf"), PLM_DTYPE_F32);
    if (b) models_close("real gguf->hf", b, a, 0, 0);
    plm_model_free(b);
    plm_model_free(a);
}

// ---- the families beyond plain Llama (tests/make_ref_arch.py's tiny models) ----

// expect_config: a directory whose config.json is the object with keys (text) fails to load with
// status want and a message holding needle (the config is read before any weight)
static void expect_config(const char *what, const char *keys, plm_status want, const char *needle) {
    char path[512];
    mkdir(tpath("family"), 0755);
    snprintf(path, sizeof path, "%s/config.json", tpath("family"));
    FILE *f = fopen(path, "w");
    fprintf(f,
            "{%s, \"hidden_size\": 64, \"intermediate_size\": 96, \"num_attention_heads\": 4, "
            "\"num_hidden_layers\": 2, \"vocab_size\": 80}",
            keys);
    fclose(f);
    expect_load(what, tpath("family"), want, needle);
}

// test_families: Llama 3 (rope_scaling llama3), Qwen2, Qwen3 and Gemma 3 (also with rope_scaling
// linear) saved as HF directories and as GGUF files load back with the same config, weights and
// logits; a config of these families asking for what pocketlm does not compute is refused.
static void test_families(void) {
    const char *names[] = {"tiny-llama3", "tiny-qwen2", "tiny-qwen3", "tiny-gemma3",
                           "tiny-gemma3-linear"};
    for (int i = 0; i < 5; i++) {
        char src[256];
        snprintf(src, sizeof src, "tests/ref/%s", names[i]);
        plm_model *a = load(src, PLM_DTYPE_F32), *b = NULL;
        if (a) save(a, tpath(names[i]), PLM_DTYPE_F32);
        if (a) b = load(tpath(names[i]), PLM_DTYPE_F32);
        if (b) {
            CHECK_MSG(!memcmp(&a->config, &b->config, sizeof a->config), "%s: config differs",
                      names[i]);
            same_models(names[i], a, b);
        }
        plm_model_free(b), b = NULL;
        // GGUF (q/k rows not permuted for Qwen; llama3 scaling as rope_freqs.weight, llama.cpp's
        // divisors; linear as rope.scaling keys): f32 read back bit for bit, config and all (but
        // llama3's parameters, which the file does not hold, so such a model cannot become an HF
        // directory again); q8_0 by copy == in place.
        plm_error err = {0};
        plm_status st = a ? plm_model_save(a, tpath("family.gguf"), PLM_DTYPE_F32, &err) : -1;
        if (a && st == PLM_OK && (b = load(tpath("family.gguf"), PLM_DTYPE_F32)) != NULL) {
            plm_config want = a->config;
            if (!want.rope_scaling.linear) want.rope_scaling = (plm_rope_scaling){0};
            CHECK_MSG(!memcmp(&want, &b->config, sizeof want), "%s: GGUF config differs", names[i]);
            same_models(names[i], a, b);
            st = plm_model_save(b, tpath("family-back"), PLM_DTYPE_F32, &err);
            CHECK_MSG(b->config.rope_freqs && !b->config.rope_scaling.linear
                          ? st == PLM_ERR_UNSUPPORTED
                          : st == PLM_OK,
                      "%s: GGUF to HF: %s", names[i], err.msg);
            save(a, tpath("family-q8.gguf"), PLM_DTYPE_Q8_0);
            CHECK(load_both(names[i], tpath("family-q8.gguf"), PLM_DTYPE_Q8_0) > 0);
        } else CHECK_MSG(0, "%s: GGUF round trip: %s", names[i], err.msg);
        plm_model_free(a), plm_model_free(b);
    }
    expect_config("qwen3 attention_bias", "\"model_type\": \"qwen3\", \"attention_bias\": true",
                  PLM_ERR_UNSUPPORTED, "attention_bias is true");
    expect_config("qwen2 sliding window", "\"model_type\": \"qwen2\", \"use_sliding_window\": true",
                  PLM_ERR_UNSUPPORTED, "use_sliding_window");
    expect_config("qwen2 mlp bias", "\"architectures\": [\"Qwen2ForCausalLM\"], \"mlp_bias\": true",
                  PLM_ERR_UNSUPPORTED, "mlp_bias");
    expect_config("llama3 without factor",
                  "\"model_type\": \"llama\", \"rope_scaling\": {\"rope_type\": \"llama3\"}",
                  PLM_ERR_FORMAT, "no factor");
    expect_config("llama3 high <= low",
                  "\"model_type\": \"llama\", \"rope_scaling\": {\"rope_type\": \"llama3\", "
                  "\"factor\": 8.0, \"low_freq_factor\": 4.0, \"high_freq_factor\": 1.0, "
                  "\"original_max_position_embeddings\": 64}",
                  PLM_ERR_FORMAT, "0 < low < high");
    expect_config("yarn", "\"model_type\": \"qwen2\", \"rope_scaling\": {\"type\": \"yarn\"}",
                  PLM_ERR_UNSUPPORTED, "'yarn'");
    // Gemma 3: what its bigger models or other versions add
    expect_config("gemma3 softcapping",
                  "\"architectures\": [\"Gemma3ForCausalLM\"], \"final_logit_softcapping\": 30.0",
                  PLM_ERR_UNSUPPORTED, "final_logit_softcapping is set");
    expect_config("gemma3 activation",
                  "\"model_type\": \"gemma3_text\", \"hidden_activation\": \"gelu\"",
                  PLM_ERR_UNSUPPORTED, "want gelu_pytorch_tanh");
    expect_config("gemma3 layer_types",
                  "\"model_type\": \"gemma3_text\", \"layer_types\": [\"full_attention\", "
                  "\"sliding_attention\"]",
                  PLM_ERR_UNSUPPORTED, "layer_types[1] is not 'full_attention'");
    expect_config("gemma3 bidirectional",
                  "\"model_type\": \"gemma3_text\", \"use_bidirectional_attention\": true",
                  PLM_ERR_UNSUPPORTED, "use_bidirectional_attention is true");
    expect_config("gemma3 multimodal", "\"model_type\": \"gemma3\"", PLM_ERR_UNSUPPORTED,
                  "'gemma3' is not supported");
}

// test_gemma3_configs: the tiny Gemma 3's config.json as newer transformers write it (the 270M's
// keys: layer_types with _sliding_window_pattern) and as 4.51 does (sliding_window_pattern only),
// with tie_word_embeddings left to Gemma3TextConfig's default (true), gives the same config.
static void test_gemma3_configs(void) {
    static const char *const kinds[] = {
        "\"_sliding_window_pattern\": 2, \"layer_types\": [\"sliding_attention\", "
        "\"full_attention\", \"sliding_attention\"]",
        "\"sliding_window_pattern\": 2"};
    plm_model *want = load("tests/ref/tiny-gemma3", PLM_DTYPE_F32);
    char weights[4096];
    if (!want || !realpath("tests/ref/tiny-gemma3/model.safetensors", weights)) {
        CHECK_MSG(0, "tiny-gemma3 did not load");
        plm_model_free(want);
        return;
    }
    for (int k = 0; k < 2; k++) {
        char dir[512], path[600];
        snprintf(dir, sizeof dir, "%s", tpath(k ? "gemma3-451" : "gemma3-270m-keys"));
        mkdir(dir, 0755);
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        CHECK(symlink(weights, path) == 0);
        snprintf(path, sizeof path, "%s/config.json", dir);
        FILE *f = fopen(path, "w");
        fprintf(f,
                "{\"architectures\": [\"Gemma3ForCausalLM\"], \"attn_logit_softcapping\": null, "
                "\"bos_token_id\": 2, \"eos_token_id\": 1, \"final_logit_softcapping\": null, "
                "\"head_dim\": 32, \"hidden_activation\": \"gelu_pytorch_tanh\", "
                "\"hidden_size\": 64, \"intermediate_size\": 128, %s, "
                "\"max_position_embeddings\": 128, \"model_type\": \"gemma3_text\", "
                "\"num_attention_heads\": 4, \"num_hidden_layers\": 3, \"num_key_value_heads\": 1, "
                "\"pad_token_id\": 0, \"query_pre_attn_scalar\": 24, \"rms_norm_eps\": 1e-06, "
                "\"rope_local_base_freq\": 10000.0, \"rope_scaling\": null, "
                "\"rope_theta\": 1000000.0, \"sliding_window\": 4, "
                "\"use_bidirectional_attention\": false, \"vocab_size\": 320}",
                kinds[k]);
        fclose(f);
        plm_model *m = load(dir, PLM_DTYPE_F32);
        CHECK_MSG(m && !memcmp(&m->config, &want->config, sizeof want->config),
                  "gemma3 config.json form %d: another config", k);
        plm_model_free(m);
    }
    plm_model_free(want);
}

int main(void) {
    test_self();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/plm_formats_XXXXXX");
    if (!mkdtemp(tmpdir)) return fprintf(stderr, "mkdtemp failed\n"), 1;
    test_safetensors_roundtrip();
    test_safetensors_corrupt();
    test_gguf_roundtrip();
    test_permute();
    test_gguf_corrupt();
    test_model_roundtrips(0);
    test_model_roundtrips(1);
    test_model_errors();
    test_families();
    test_gemma3_configs();
    test_inplace(0);
    test_inplace(1);
    test_real_model();
    test_inplace_real();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_main_end("test_formats");
}
