// test_onnx.c: the ONNX export (src/onnx.c) on the C side: files written for tied and untied tiny
// models in every mode, byte-identical on a second export, and bad input refused without leaving
// anything behind (existing directory, shapes int4 cannot hold, an unwritable place). The numbers
// are checked by onnxruntime in tests/onnx.test.sh, against what this program writes with
//   test_onnx --export DIR MODEL [--quant none,int8,int4] [--text TEXT] [--greedy N]
// : DIR (the export) plus DIR/ref.json {prompt, greedy, vocab} and DIR/ref_logits.f32, the
// session's logits (n_prompt, vocab) of every prompt position, the oracle onnx_check.mjs compares.
#define _DEFAULT_SOURCE // mkdtemp
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "onnx.h"
#include "test.h"

static char tmpdir[64];

static const char *tmp(const char *name) {
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static plm_model *load(const char *path) {
    plm_model *m = NULL;
    plm_error err;
    plm_load_params lp = plm_load_default_params();
    if (plm_model_load(&m, path, &lp, &err) != PLM_OK) CHECK_MSG(0, "%s: %s", path, err.msg);
    return m;
}

static long file_size(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

static int same_file(const char *a, const char *b) {
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    int same = plm_file_read(a, &x, &nx, NULL) == PLM_OK && plm_file_read(b, &y, &ny, NULL) == PLM_OK &&
               nx == ny && !memcmp(x, y, nx);
    free(x), free(y);
    return same;
}

// ---- the files ----

static void test_files(const char *model, const char *name) {
    plm_model *m = load(model);
    if (!m) return;
    plm_onnx_quant qs[] = {PLM_ONNX_QUANT_NONE, PLM_ONNX_QUANT_INT8, PLM_ONNX_QUANT_INT4,
                           PLM_ONNX_QUANT_INT8_QDQ};
    plm_error err;
    char a[128], b[128];
    snprintf(a, sizeof a, "%s/%s", tmpdir, name);
    snprintf(b, sizeof b, "%s/%s-again", tmpdir, name);
    CHECK_MSG(plm_onnx_export(m, a, qs, 4, 0, &err) == PLM_OK, "%s: %s", name, err.msg);
    CHECK(plm_onnx_export(m, b, qs, 4, 0, &err) == PLM_OK);
    char p[256], q[256];
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/onnx/%s", a, plm_onnx_file_name(qs[i]));
        snprintf(q, sizeof q, "%s/onnx/%s", b, plm_onnx_file_name(qs[i]));
        CHECK_MSG(file_size(p) > 10000, "%s: %ld bytes", p, file_size(p));
        CHECK_MSG(same_file(p, q), "%s: a second export differs", p);
    }
    snprintf(p, sizeof p, "%s/config.json", a);
    CHECK(file_size(p) > 100);
    snprintf(p, sizeof p, "%s/tokenizer.json", a);
    CHECK(file_size(p) < 0); // the tiny models have no tokenizer: no tokenizer files
    snprintf(p, sizeof p, "%s.tmp", a);
    CHECK(!plm_path_exists(p));
    // f32 weights are stored once: the fp32 file is about the f32 parameter bytes, not more
    const plm_config *c = plm_model_config(m);
    snprintf(p, sizeof p, "%s/onnx/model.onnx", a);
    double ratio = (double)file_size(p) / (4.0 * (double)plm_model_n_params(m));
    CHECK_MSG(ratio > 1.0 && ratio < 1.05, "%s: file / f32 params = %.3f (tied %d)", p, ratio,
              c->tie_word_embeddings);
    plm_model_free(m);
}

// ---- bad input ----

static void test_refusals(void) {
    plm_model *m = load("tests/ref/tiny-tied");
    if (!m) return;
    plm_onnx_quant none = PLM_ONNX_QUANT_NONE, int4 = PLM_ONNX_QUANT_INT4;
    plm_error err;
    const char *d = tmp("exists");
    CHECK(plm_onnx_export(m, d, &none, 1, 0, &err) == PLM_OK);
    char p[256];
    snprintf(p, sizeof p, "%s/onnx/model.onnx", d);
    long before = file_size(p);
    // an existing directory without force
    CHECK(plm_onnx_export(m, d, &int4, 1, 0, &err) == PLM_ERR_ARG);
    CHECK_MSG(strstr(err.msg, "exists") != NULL, "message: %s", err.msg);
    // with force: the new file joins the old ones
    CHECK(plm_onnx_export(m, d, &int4, 1, 1, &err) == PLM_OK);
    CHECK(file_size(p) == before);
    snprintf(p, sizeof p, "%s/onnx/model_q4.onnx", d);
    CHECK(file_size(p) > 0);
    // an unwritable place (a path under a regular file): an error, nothing left behind
    snprintf(p, sizeof p, "%s/config.json/out", d);
    CHECK(plm_onnx_export(m, p, &none, 1, 0, &err) == PLM_ERR_IO);
    snprintf(p, sizeof p, "%s/config.json/out.tmp", d);
    CHECK(!plm_path_exists(p));
    plm_model_free(m);

    // int4 needs rows of whole 32-value blocks: hidden 48 cannot be represented
    plm_config cfg = {.vocab_size = 40, .hidden_size = 48, .intermediate_size = 96,
                      .num_hidden_layers = 1, .num_attention_heads = 3, .num_key_value_heads = 1,
                      .head_dim = 16, .max_position_embeddings = 64, .rms_norm_eps = 1e-5f,
                      .rope_theta = 10000.0f, .tie_word_embeddings = 1, .bos_token_id = -1,
                      .eos_token_id = -1};
    CHECK(plm_model_alloc(&m, &cfg, &err) == PLM_OK);
    d = tmp("odd");
    CHECK(plm_onnx_export(m, d, &int4, 1, 0, &err) == PLM_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(err.msg, "multiples of 32") != NULL, "message: %s", err.msg);
    CHECK(!plm_path_exists(d));
    CHECK(plm_onnx_export(m, d, &none, 1, 0, &err) == PLM_OK); // f32 holds any shape
    plm_model_free(m);
}

// ---- --export: the reference for onnx_check.mjs ----

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

static int write_ref(const plm_model *m, const char *dir, const int32_t *ids, int n, int n_greedy) {
    plm_session *s = NULL;
    plm_session_params sp = plm_session_default_params();
    sp.n_ctx = n + n_greedy + 1;
    plm_error err;
    if (plm_session_create(&s, m, &sp, &err) != PLM_OK) return fprintf(stderr, "%s\n", err.msg), 1;
    int V = plm_session_n_vocab(s);
    float *lg = malloc((size_t)n * (size_t)V * sizeof *lg);
    int32_t greedy[256];
    if (!lg || plm_session_decode_all(s, ids, n, lg, &err) != PLM_OK) return free(lg), 1;
    greedy[0] = argmax(lg + (size_t)(n - 1) * (size_t)V, V);
    for (int i = 1; i < n_greedy; i++) {
        if (plm_session_decode(s, &greedy[i - 1], 1, &err) != PLM_OK) return free(lg), 1;
        greedy[i] = argmax(plm_session_logits(s), V);
    }
    char p[512];
    snprintf(p, sizeof p, "%s/ref_logits.f32", dir);
    FILE *f = fopen(p, "wb");
    int bad = !f || fwrite(lg, sizeof *lg, (size_t)n * (size_t)V, f) != (size_t)n * (size_t)V;
    if (f) fclose(f);
    snprintf(p, sizeof p, "%s/ref.json", dir);
    if (!bad && (f = fopen(p, "w"))) {
        fprintf(f, "{\"vocab\": %d, \"prompt\": [", V);
        for (int i = 0; i < n; i++) fprintf(f, "%s%d", i ? ", " : "", ids[i]);
        fprintf(f, "], \"greedy\": [");
        for (int i = 0; i < n_greedy; i++) fprintf(f, "%s%d", i ? ", " : "", greedy[i]);
        fprintf(f, "]}\n");
        bad = fclose(f) != 0;
    } else bad = 1;
    free(lg);
    plm_session_free(s);
    return bad;
}

static int export_main(int argc, char **argv) {
    const char *dir = argv[2], *model = argv[3], *quant = "none,int8,int4", *text = NULL;
    int n_greedy = 10;
    for (int i = 4; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--quant")) quant = argv[i + 1];
        else if (!strcmp(argv[i], "--text")) text = argv[i + 1];
        else if (!strcmp(argv[i], "--greedy")) n_greedy = atoi(argv[i + 1]);
    }
    if (n_greedy < 1 || n_greedy > 256) return fprintf(stderr, "--greedy 1..256\n"), 2;
    plm_onnx_quant qs[PLM_ONNX_QUANT_N];
    int nq = 0;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", quant);
    for (char *t = strtok(buf, ","); t && nq < PLM_ONNX_QUANT_N; t = strtok(NULL, ","))
        if (plm_onnx_quant_parse(t, &qs[nq++]) != PLM_OK) return fprintf(stderr, "bad %s\n", t), 2;
    plm_model *m = load(model);
    plm_error err;
    if (!m) return 1;
    int32_t ids[512] = {1, 17, 42, 99, 3, 250, 77}, n = 7; // the tiny models' prompt
    if (text) n = plm_tokenizer_encode(plm_model_tokenizer(m), text, strlen(text), ids, 512);
    if (n < 1 || n > 512) return fprintf(stderr, "prompt of %d tokens\n", n), 1;
    int rc = plm_onnx_export(m, dir, qs, nq, 1, &err) != PLM_OK;
    if (rc) fprintf(stderr, "%s\n", err.msg);
    else rc = write_ref(m, dir, ids, n, n_greedy);
    plm_model_free(m);
    return rc;
}

int main(int argc, char **argv) {
    if (argc >= 4 && !strcmp(argv[1], "--export")) return export_main(argc, argv);
    test_self();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/plm_onnx_XXXXXX");
    if (!mkdtemp(tmpdir)) return fprintf(stderr, "mkdtemp failed\n"), 1;
    test_files("tests/ref/tiny-tied", "tied");
    test_files("tests/ref/tiny-untied", "untied");
    test_refusals();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_main_end("test_onnx");
}
