// info.c: `pocketlm info -m MODEL [--dtype T] [--json]`: the architecture, every config value,
// the parameter count, the file's tensor dtypes, memory for f32 and q8_0 weights, KV cache per
// token, and the CPU with the kernel path that runs.
// It reads the file's per-type tensor counts from struct plm_model (model.h), the one thing the
// public API does not expose; everything else goes through pocketlm.h.
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "gguf.h"
#include "model.h"
#include "session.h"

typedef struct {
    const char *key; // HF config.json name
    double v;
    int is_float; // printed with float precision
} info_kv;

static int usage(void) {
    printf(
        "usage: pocketlm info -m MODEL [--dtype T] [--json]\n"
        "Loads MODEL (an HF directory or a .gguf file) and prints its architecture, config,\n"
        "parameter count, file dtypes, weight memory for f32 and q8_0, and KV cache bytes per\n"
        "token, the CPU, its features and the kernel path (PLM_ISA=path forces one).\n\n"
        "  -m PATH          model\n"
        "  --dtype T        load the weights as auto (default: as the file stores them where a\n"
        "                   kernel exists), f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1 or q6_k\n"
        "                   (shows load time and size)\n"
        "  --json           one JSON object instead of text\n");
    return 0;
}

// print_report: text or JSON; sizes are computed from the config so both dtypes are shown.
static void print_report(const plm_model *m, const char *path, double load_s, int json) {
    const plm_config *c = plm_model_config(m);
    size_t n = plm_model_n_params(m), L = (size_t)c->num_hidden_layers;
    size_t QD = (size_t)c->num_attention_heads * (size_t)c->head_dim; // vectors stay f32:
    size_t KD = (size_t)c->num_key_value_heads * (size_t)c->head_dim; // norms, biases, q/k norms
    size_t post = c->model_type == PLM_ARCH_GEMMA3 ? 2 * L : 0;       // Gemma 3's post norms
    size_t norms = (2 * L + 1 + post) * (size_t)c->hidden_size +
                   (c->attention_bias ? L * (QD + 2 * KD) : 0) +
                   (c->qk_norm ? 2 * L * (size_t)c->head_dim : 0),
           linear = n - norms;
    size_t f32 = n * 4, q8 = linear + linear / 32 * 4 + norms * 4;
    // KV cache: a position's keys and values in every layer, and what a full context holds (a
    // sliding-window layer's cache stops growing at its window)
    size_t kv = 2 * L * (size_t)c->num_key_value_heads * (size_t)c->head_dim * sizeof(float);
    const long long kv_full =
        (long long)plm_session_kv_bytes(m, c->max_position_embeddings, PLM_DTYPE_F32);
    const info_kv cfg[] = {
        {"vocab_size", c->vocab_size, 0},
        {"hidden_size", c->hidden_size, 0},
        {"intermediate_size", c->intermediate_size, 0},
        {"num_hidden_layers", c->num_hidden_layers, 0},
        {"num_attention_heads", c->num_attention_heads, 0},
        {"num_key_value_heads", c->num_key_value_heads, 0},
        {"head_dim", c->head_dim, 0},
        {"max_position_embeddings", c->max_position_embeddings, 0},
        {"rms_norm_eps", (double)c->rms_norm_eps, 1},
        {"rope_theta", (double)c->rope_theta, 1},
        {"rope_scaling_factor", (double)c->rope_scaling.factor, 1}, // 0: none
        {"rope_scaling_linear", c->rope_scaling.linear, 0},         // 1: linear, 0: llama3
        {"sliding_window", c->sliding_window, 0},                   // Gemma 3; 0: none
        {"sliding_window_pattern", c->sliding_window_pattern, 0},
        {"rope_local_base_freq", (double)c->rope_local_base_freq, 1},
        {"query_pre_attn_scalar", (double)c->query_pre_attn_scalar, 1}, // 0: head_dim
        {"tie_word_embeddings", c->tie_word_embeddings, 0},
        {"bos_token_id", c->bos_token_id, 0},
        {"eos_token_id", c->eos_token_id, 0},
    };
    const plm_tokenizer *tok = plm_model_tokenizer(m);
    const char *name = plm_model_name(m), *adapter = plm_model_adapter(m);
    printf(json ? "{\"model\": " : "model                     %s\n", path);
    if (json) cli_json_str(stdout, path, strlen(path));
    printf(json ? ", \"name\": " : "name                      %s\n", name[0] ? name : "-");
    if (json) cli_json_str(stdout, name, strlen(name));
    printf(json ? ", \"adapter\": " : "adapter                   %s\n", adapter[0] ? adapter : "-");
    if (json) cli_json_str(stdout, adapter, strlen(adapter));
    printf(json ? ", \"format\": \"%s\", \"architecture\": \"%s\", \"config\": {"
                : "format                    %s\narchitecture              %s\n",
           m->from_gguf ? "gguf" : "hf", plm_arch_name(c->model_type));
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++)
        printf(json ? "%s\"%s\": %.*g" : "%s%-25s %.*g\n", json && i ? ", " : "", cfg[i].key,
               cfg[i].is_float ? 6 : 10, cfg[i].v);
    printf(json ? "}, \"n_params\": %zu, \"file_dtypes\": {"
                : "n_params                  %zu\n"
                  "file_dtypes              ",
           n);
    for (uint32_t t = 0, first = 1; t < PLM_MODEL_FILE_TYPES; t++)
        if (m->file_tensors[t]) { // the ggml type's name in lower case: "f32", "q4_k"
            char lower[16] = {0};
            for (size_t i = 0; i + 1 < sizeof lower && plm_ggml_type_name(t)[i]; i++)
                lower[i] = (char)tolower((unsigned char)plm_ggml_type_name(t)[i]);
            printf(json ? "%s\"%s\": %d" : "%s %s x%d", first || !json ? "" : ", ", lower,
                   m->file_tensors[t]);
            first = 0;
        }
    printf(
        json
            ? "}, \"loaded_dtype\": \"%s\", \"loaded_bytes\": %zu, \"load_seconds\": %.3f, "
              "\"f32_bytes\": %zu, \"q8_0_bytes\": %zu, \"kv_cache_bytes_per_token\": %zu, "
              "\"kv_cache_bytes_full_context\": %lld, \"tokenizer_vocab\": %d, \"cpu\": "
            : "\nloaded                    %s, %zu bytes in %.3f s\nmemory_f32_bytes          %zu\n"
              "memory_q8_0_bytes         %zu\nkv_cache_bytes_per_token  %zu\n"
              "kv_cache_bytes_full_ctx   %lld\ntokenizer_vocab           %d\n",
        plm_dtype_name(plm_model_dtype(m)), plm_model_weight_bytes(m), load_s, f32, q8, kv, kv_full,
        tok ? plm_tokenizer_n_vocab(tok) : 0);
    const char *cpu = plm_cpu_name(), *features = plm_cpu_features(), *path_ = plm_kernel_path();
    if (!json) {
        printf("cpu                       %s\ncpu_features              %s\nkernel_path            "
               "   %s\n",
               cpu, features, path_);
        return;
    }
    cli_json_str(stdout, cpu, strlen(cpu));
    printf(", \"cpu_features\": ");
    cli_json_str(stdout, features, strlen(features));
    printf(", \"kernel_path\": \"%s\"}\n", path_);
}

int cmd_info(int argc, char **argv) {
    const char *cmd = "info", *path = NULL, *v;
    int json = 0;
    plm_load_params lp = plm_load_default_params();
    lp.dtype = CLI_MODEL_OPTS.dtype;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage();
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) {
            if (!(path = cli_value(cmd, argc, argv, &i))) return 2;
        } else if (!strcmp(argv[i], "--dtype")) {
            if (!(v = cli_value(cmd, argc, argv, &i))) return 2;
            if (cli_dtype(cmd, v, &lp.dtype)) return 2;
        } else return cli_usage_error(cmd, "unknown option '%s'", argv[i]);
    }
    if (!path) return cli_usage_error(cmd, "-m MODEL is required");
    plm_error err = {0};
    plm_model *m;
    double t0 = plm_time();
    if (plm_model_load(&m, path, &lp, &err) != PLM_OK) return cli_error(cmd, &err);
    print_report(m, path, plm_time() - t0, json);
    plm_model_free(m);
    return 0;
}
