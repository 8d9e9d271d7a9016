// merge.c: `pocketlm merge -m BASE --lora ADAPTER --out DIR [--dtype f32|bf16] [--force]`: fold a
// PEFT LoRA adapter into the base's weights (W + alpha/r * B A, added token rows appended) and
// write a full HF directory. The work is plm_model_merge + plm_model_save.
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int usage(void) {
    printf("usage: pocketlm merge -m BASE --lora ADAPTER --out DIR [--dtype T] [--force]\n"
           "Writes BASE with the LoRA adapter folded into its weights as an HF directory\n"
           "(config.json, model.safetensors, tokenizer files).\n\n"
           "  -m PATH          base model: an HF directory or a .gguf file\n"
           "  --lora DIR       the PEFT adapter (adapter_config.json, adapter_model.safetensors)\n"
           "  --out DIR        the merged model directory\n"
           "  --dtype T        file dtype of the weights: f32 (default) or bf16\n"
           "  --force          overwrite DIR when it exists\n");
    return 0;
}

int cmd_merge(int argc, char **argv) {
    const char *cmd = "merge", *base = NULL, *lora = NULL, *out = NULL, *v;
    int force = 0;
    plm_dtype dtype = PLM_DTYPE_F32;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage();
        if (!strcmp(a, "--force")) {
            force = 1;
            continue;
        }
        if (strcmp(a, "-m") && strcmp(a, "--model") && strcmp(a, "--lora") && strcmp(a, "--out") &&
            strcmp(a, "--dtype"))
            return cli_usage_error(cmd, "unknown option '%s'", a);
        if (!(v = cli_value(cmd, argc, argv, &i))) return 2;
        if (!strcmp(a, "--lora")) lora = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--dtype")) {
            if (plm_dtype_parse(v, &dtype) != PLM_OK ||
                (dtype != PLM_DTYPE_F32 && dtype != PLM_DTYPE_BF16))
                return cli_usage_error(cmd, "--dtype wants f32 or bf16, got '%s'", v);
        } else base = v;
    }
    if (!base || !lora || !out)
        return cli_usage_error(cmd, "needs -m BASE, --lora ADAPTER and --out DIR");
    if (cli_exists(cmd, out, force)) return 1;
    plm_error err = {0};
    plm_model *m = NULL, *merged = NULL;
    plm_lora *l = NULL;
    plm_load_params lp = plm_load_default_params();
    plm_status s = plm_model_load(&m, base, &lp, &err);
    if (s == PLM_OK) s = plm_lora_load(&l, lora, m, &err);
    if (s == PLM_OK) s = plm_model_merge(&merged, m, l, &err);
    plm_lora_free(l);
    plm_model_free(m);
    if (s == PLM_OK) s = plm_model_save(merged, out, dtype, &err);
    if (s == PLM_OK)
        printf("%s + %s -> %s (%s, vocab %d)\n", base, lora, out, plm_dtype_name(dtype),
               plm_model_config(merged)->vocab_size);
    plm_model_free(merged);
    return s == PLM_OK ? 0 : cli_error(cmd, &err);
}
