// test_bandwidth.c: the memory read bandwidth of bandwidth.c (a positive, finite figure for 1 and
// 2 threads, on aligned and unaligned buffers), decode's ceiling, and plm_model_decode_bytes (the
// bytes of weights a decoded token reads) on tiny models and the real SmolLM2 when present.
#include <unistd.h>

#include "bandwidth.h"
#include "model.h"
#include "test.h"

static void test_read(void) {
    const size_t n = (size_t)48 << 20;
    uint8_t *buf = malloc(n + 64);
    if (!buf) return;
    for (size_t i = 0; i < n + 64; i++) buf[i] = (uint8_t)(i * 131 + 7);
    for (int th = 1; th <= 2; th++) {
        plm_pool *pool = th > 1 ? plm_pool_create(th) : NULL;
        for (int off = 0; off < 2; off++) {
            int used = 0;
            double gbs = plm_read_bandwidth(pool, buf + off * 3, n, 3, &used);
            printf("read bandwidth: %d thread(s)%s: %.1f GB/s (ran on %d)\n", th,
                   off ? ", unaligned" : "", gbs, used);
            CHECK_MSG(gbs > 0.05 && gbs < 10000 && used >= 1 && used <= th,
                      "%d threads: %g GB/s on %d threads", th, gbs, used);
        }
        plm_pool_free(pool);
    }
    CHECK(plm_read_bandwidth(NULL, buf, 0, 3, NULL) == 0.0); // nothing to read
    CHECK(plm_read_bandwidth(NULL, buf, 100, 3, NULL) == 0.0);
    free(buf);
    CHECK(plm_decode_ceiling(20.0, 100000000) == 200.0); // 20 GB/s over 100 MB a token
    CHECK(plm_decode_ceiling(20.0, 0) == 0.0);
}

// test_decode_bytes: every linear weight of every layer and the head, once (tied or not), as f32.
static void test_decode_bytes(int tied) {
    plm_config c = {.vocab_size = 320,
                    .hidden_size = 64,
                    .intermediate_size = 160,
                    .num_hidden_layers = 3,
                    .num_attention_heads = 4,
                    .num_key_value_heads = 2,
                    .head_dim = 16,
                    .max_position_embeddings = 64,
                    .rms_norm_eps = 1e-5f,
                    .rope_theta = 10000.0f,
                    .tie_word_embeddings = tied,
                    .bos_token_id = 1,
                    .eos_token_id = 2};
    plm_model *m = NULL;
    plm_error err = {0};
    CHECK_MSG(plm_model_alloc(&m, &c, &err) == PLM_OK, "%s", err.msg);
    if (!m) return;
    size_t C = 64, F = 160, Q = 4 * 16, KV = 2 * 16, V = 320;
    size_t layer = Q * C + 2 * KV * C + C * Q + 3 * F * C;
    CHECK(plm_model_decode_bytes(m) == (3 * layer + V * C) * 4);
    plm_model_free(m);
}

static void test_real(void) {
    const char *path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    if (access(path, R_OK) != 0) {
        printf("SKIP real model: run make model\n");
        return;
    }
    plm_load_params lp = plm_load_default_params();
    lp.dtype = PLM_DTYPE_Q8_0;
    plm_model *m = NULL;
    plm_error err = {0};
    CHECK_MSG(plm_model_load(&m, path, &lp, &err) == PLM_OK, "%s", err.msg);
    // 30 layers of 3,538,944 weights and the tied 49152 x 576 head: 32 q and an f32 d a block
    if (m) CHECK(plm_model_decode_bytes(m) == (30 * (size_t)3538944 + 49152 * 576) / 32 * 36);
    plm_model_free(m);
}

int main(void) {
    test_self();
    test_read();
    test_decode_bytes(0);
    test_decode_bytes(1);
    test_real();
    return test_main_end("test_bandwidth");
}
