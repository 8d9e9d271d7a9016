// convert.c: `pocketlm convert IN OUT [--quant T] [--force]`: load IN (an HF directory or a .gguf
// file) as f32 and write OUT: a .gguf file when OUT ends in ".gguf" (any file type of
// plm_model_save_ftype, the same names as `export --format gguf --quant`), else an HF directory
// (f32, f16, bf16). The conversion itself is plm_model_load + plm_model_save_ftype.
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int usage(void) {
    printf(
        "usage: pocketlm convert IN OUT [--quant T] [--force]\n"
        "Converts between HF directories (config.json + model.safetensors + tokenizer) and GGUF\n"
        "files; OUT is a GGUF file when it ends in .gguf, else a directory.\n\n"
        "  --quant T        the file type of the weights (--dtype T is the same option);\n"
        "                   an HF directory takes f32, f16 or bf16, a GGUF file any "
        "of\n" CLI_FTYPE_HELP "  --force          overwrite OUT when it exists\n");
    return 0;
}

int cmd_convert(int argc, char **argv) {
    const char *cmd = "convert", *in = NULL, *out = NULL, *v;
    int force = 0;
    plm_ftype ftype = PLM_FTYPE_F32;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage();
        if (!strcmp(argv[i], "--force")) force = 1;
        else if (!strcmp(argv[i], "--quant") || !strcmp(argv[i], "--dtype")) {
            const char *flag = argv[i];
            if (!(v = cli_value(cmd, argc, argv, &i)) || cli_ftype(cmd, flag, v, &ftype)) return 2;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        } else if (!in) in = argv[i];
        else if (!out) out = argv[i];
        else return cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    if (!in || !out) return cli_usage_error(cmd, "needs IN and OUT");
    if (cli_exists(cmd, out, force)) return 1;
    plm_error err = {0};
    plm_model *m;
    plm_load_params lp = plm_load_default_params();
    if (plm_model_load(&m, in, &lp, &err) != PLM_OK) return cli_error(cmd, &err);
    plm_status s = plm_model_save_ftype(m, out, ftype, &err);
    plm_model_free(m);
    if (s != PLM_OK) return cli_error(cmd, &err);
    printf("%s -> %s (%s)\n", in, out, plm_ftype_name(ftype));
    return 0;
}
