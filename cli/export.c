// export.c: `pocketlm export -m MODEL [--lora ADAPTER] --format onnx|gguf --out PATH [--quant Q]
// [--force]`: write the model (with the adapter merged first) as an ONNX directory in the Hugging
// Face / Optimum layout that transformers.js and onnxruntime load (src/onnx.c), or as a GGUF file
// (plm_model_save_ftype: f32, f16, bf16 or one of llama.cpp's quantized file types, with its
// per-tensor mix). ONNX int8 / int4 keep the adapter as f32 low-rank branches on the quantized
// base weights (plm_onnx_export_lora). Nothing is left half-written: ONNX goes through PATH.tmp,
// GGUF through a temp file.
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "onnx.h"

static int usage(void) {
    printf(
        "usage: pocketlm export -m MODEL [--lora ADAPTER] --format onnx|gguf --out PATH\n"
        "                       [--quant Q] [--force]\n"
        "Writes MODEL (with the LoRA adapter merged into it) for other runtimes.\n\n"
        "  -m PATH          model: an HF directory or a .gguf file\n"
        "  --lora DIR       a PEFT adapter to merge first (onnx int8 / int4: kept as f32\n"
        "                   low-rank branches beside the quantized base weights)\n"
        "  --format onnx    PATH is a directory: config.json, generation_config.json, tokenizer\n"
        "                   files and onnx/model*.onnx (KV cache), as transformers.js loads it\n"
        "  --format gguf    PATH is a .gguf file (llama.cpp, wllama, Ollama)\n"
        "  --quant Q        onnx: none (default; onnx/model.onnx), int8 (model_quantized.onnx,\n"
        "                   dtype 'q8'), int4 (model_q4.onnx, dtype 'q4'), all (the three),\n"
        "                   int8-qdq (DequantizeLinear form, for comparison); a comma list works.\n"
        "                   int8 and int4 are weight-only blocks of 32 (MatMulNBits), the same on\n"
        "                   every CPU; embedding and output head 8-bit in both\n"
        "                   gguf: the file type,\n" CLI_FTYPE_HELP
        "  --force          overwrite PATH (onnx: replaces the exported files, keeps others)\n");
    return 0;
}

// parse_onnx_quants: "none,int8" / "all" into qs; returns the count, or 0 after a usage error.
static int parse_onnx_quants(const char *cmd, const char *v, plm_onnx_quant *qs) {
    if (!strcmp(v, "all")) {
        qs[0] = PLM_ONNX_QUANT_NONE, qs[1] = PLM_ONNX_QUANT_INT8, qs[2] = PLM_ONNX_QUANT_INT4;
        return 3;
    }
    char buf[128];
    int n = 0;
    if (strlen(v) >= sizeof buf) return cli_usage_error(cmd, "--quant '%s' is too long", v), 0;
    strcpy(buf, v);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n == PLM_ONNX_QUANT_N || plm_onnx_quant_parse(t, &qs[n]) != PLM_OK) {
            cli_usage_error(
                cmd, "--quant for onnx wants none, int8, int4, int8-qdq or all, got '%s'", t);
            return 0;
        }
        n++;
    }
    if (n == 0) cli_usage_error(cmd, "--quant is empty");
    return n;
}

// load: the model into *base, and with an adapter, the adapter into *l and base with it merged into
// a new f32 model *merged (else *merged = *base, *l = NULL).
static plm_status load(const char *path, const char *lora, plm_model **base, plm_lora **l,
                       plm_model **merged, plm_error *err) {
    plm_load_params lp = plm_load_default_params();
    *base = *merged = NULL, *l = NULL;
    plm_status s = plm_model_load(base, path, &lp, err);
    if (s != PLM_OK || !lora) {
        *merged = *base;
        return s;
    }
    s = plm_lora_load(l, lora, *base, err);
    if (s == PLM_OK) s = plm_model_merge(merged, *base, *l, err);
    return s;
}

int cmd_export(int argc, char **argv) {
    const char *cmd = "export", *model = NULL, *lora = NULL, *out = NULL, *format = NULL,
               *quant = NULL, *v;
    int force = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage();
        if (!strcmp(a, "--force")) {
            force = 1;
            continue;
        }
        if (strcmp(a, "-m") && strcmp(a, "--model") && strcmp(a, "--lora") && strcmp(a, "--out") &&
            strcmp(a, "--format") && strcmp(a, "--quant"))
            return cli_usage_error(cmd, "unknown option '%s'", a);
        if (!(v = cli_value(cmd, argc, argv, &i))) return 2;
        if (!strcmp(a, "--lora")) lora = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--format")) format = v;
        else if (!strcmp(a, "--quant")) quant = v;
        else model = v;
    }
    if (!model || !out || !format)
        return cli_usage_error(cmd, "needs -m MODEL, --format and --out PATH");
    int onnx = !strcmp(format, "onnx");
    if (!onnx && strcmp(format, "gguf"))
        return cli_usage_error(cmd, "--format wants onnx or gguf, got '%s'", format);
    plm_onnx_quant qs[PLM_ONNX_QUANT_N];
    int nq = 0;
    plm_ftype ftype = PLM_FTYPE_F32;
    if (onnx && !(nq = parse_onnx_quants(cmd, quant ? quant : "none", qs))) return 2;
    if (!onnx && quant && cli_ftype(cmd, "--quant for gguf", quant, &ftype)) return 2;
    size_t n = strlen(out);
    if (!onnx && (n < 5 || strcmp(out + n - 5, ".gguf")))
        return cli_usage_error(cmd, "--out for gguf must end in .gguf, got '%s'", out);
    if (cli_exists(cmd, out, force)) return 1;
    plm_error err = {0};
    plm_model *base = NULL, *m = NULL;
    plm_lora *l = NULL;
    double t0 = cli_now();
    plm_status s = load(model, lora, &base, &l, &m, &err);
    // with an adapter, int8 / int4 keep it as f32 low-rank branches on the quantized base weights
    if (s == PLM_OK && onnx)
        s = plm_onnx_export_lora(m, l ? base : NULL, l, out, qs, nq, force, &err);
    else if (s == PLM_OK) s = plm_model_save_ftype(m, out, ftype, &err);
    if (s == PLM_OK) {
        const plm_config *c = plm_model_config(m);
        printf("%s%s%s -> %s (", model, lora ? " + " : "", lora ? lora : "", out);
        for (int i = 0; i < nq; i++) printf("%sonnx/%s", i ? ", " : "", plm_onnx_file_name(qs[i]));
        if (!onnx) printf("gguf %s", plm_ftype_name(ftype));
        printf("; vocab %d%s) in %.1f s\n", c->vocab_size,
               plm_model_tokenizer(m) ? "" : ", no tokenizer", cli_now() - t0);
    }
    if (m != base) plm_model_free(m);
    plm_lora_free(l);
    plm_model_free(base);
    return s == PLM_OK ? 0 : cli_error(cmd, &err);
}
