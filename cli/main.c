// main.c: `pocketlm <command> [args]`: dispatch to one subcommand, and the helpers they share.
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "json.h" // plm_json_quote

static const cli_command commands[] = {
    {"info", cmd_info, "architecture, parameter count, dtypes, memory needed"},
    {"tokenize", cmd_tokenize, "text to token ids (and back with --decode)"},
    {"generate", cmd_generate, "continue a prompt"},
    {"paraphrase", cmd_paraphrase, "rephrase sentences with the task template"},
    {"perplexity", cmd_perplexity, "mean NLL and perplexity of a text file"},
    {"convert", cmd_convert, "between HF directories and GGUF files"},
    {"finetune", cmd_finetune, "LoRA fine-tuning on task data (PEFT adapter out)"},
    {"eval", cmd_eval, "paraphrase quality: BLEU, self-BLEU, iBLEU on a PAWS TSV"},
    {"merge", cmd_merge, "fold a LoRA adapter into a new model directory"},
    {"export", cmd_export, "ONNX directory (transformers.js) or GGUF file"},
    {"bench", cmd_bench, "prefill and decode speed, peak memory"},
    {"serve", cmd_serve, "the web app and a local HTTP API (loopback by default)"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: pocketlm <command> [options]   (pocketlm <command> --help)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\nenvironment:\n  PLM_ISA     force a kernel path (scalar, avx2, avx512, amx, neon, "
            "...;\n              default: the widest this CPU runs); `pocketlm info` shows "
            "the CPU\n              and the path\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    // PLM_ISA forces a kernel path for every command (scalar, avx2, avx512, amx, neon, ...; see info)
    plm_error err;
    if (plm_set_kernel_path(getenv("PLM_ISA"), &err) != PLM_OK) {
        fprintf(stderr, "pocketlm: PLM_ISA: %s\n", err.msg);
        return 2;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "pocketlm: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}

// ---- shared helpers ----

int cli_error(const char *cmd, const plm_error *err) {
    fprintf(stderr, "pocketlm %s: %s\n", cmd,
            err->msg[0] ? err->msg : plm_status_name(err->status));
    return 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    fprintf(stderr, "pocketlm %s: ", cmd);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see pocketlm %s --help)\n", cmd);
    return 2;
}

int cli_exists(const char *cmd, const char *out, int force) {
    struct stat st;
    if (force || stat(out, &st) != 0) return 0;
    fprintf(stderr, "pocketlm %s: %s exists; use --force to overwrite it\n", cmd, out);
    return 1;
}

int cli_int(const char *cmd, const char *flag, const char *s, long lo, long hi, long *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end != 0 || v < lo || v > hi)
        return cli_usage_error(cmd, "%s wants an integer in [%ld, %ld], got '%s'", flag, lo, hi, s);
    *out = v;
    return 0;
}

int cli_float(const char *cmd, const char *flag, const char *s, double lo, double hi, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (*s == 0 || *end != 0 || !(v >= lo && v <= hi))
        return cli_usage_error(cmd, "%s wants a number in [%g, %g], got '%s'", flag, lo, hi, s);
    *out = v;
    return 0;
}

const char *cli_value(const char *cmd, int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        cli_usage_error(cmd, "%s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int cli_ftype(const char *cmd, const char *flag, const char *s, plm_ftype *out) {
    if (plm_ftype_parse(s, out) == PLM_OK) return 0;
    return cli_usage_error(cmd, "%s wants one of %s, got '%s'", flag, PLM_FTYPE_NAMES, s);
}

int cli_dtype(const char *cmd, const char *s, plm_dtype *out) {
    if (plm_dtype_parse(s, out) == PLM_OK &&
        (*out == PLM_DTYPE_F32 || *out == PLM_DTYPE_F16 || *out == PLM_DTYPE_BF16 ||
         *out == PLM_DTYPE_Q8_0 || *out == PLM_DTYPE_Q4_0 || *out == PLM_DTYPE_Q4_1 ||
         *out == PLM_DTYPE_Q5_0 || *out == PLM_DTYPE_Q5_1 || *out == PLM_DTYPE_Q6_K ||
         *out == PLM_DTYPE_Q4_K || *out == PLM_DTYPE_Q5_K || *out == PLM_DTYPE_AUTO))
        return 0;
    return cli_usage_error(cmd, "--dtype wants %s, got '%s'", CLI_DTYPE_NAMES, s);
}

int cli_model_flag(const char *cmd, int argc, char **argv, int *i, cli_model_opts *o) {
    const char *a = argv[*i], *v;
    long n;
    if (strcmp(a, "-m") && strcmp(a, "--model") && strcmp(a, "--dtype") && strcmp(a, "--threads") &&
        strcmp(a, "--ctx") && strcmp(a, "--lora") && strcmp(a, "--kv-type"))
        return 0;
    if (!(v = cli_value(cmd, argc, argv, i))) return -1;
    if (!strcmp(a, "-m") || !strcmp(a, "--model")) o->model = v;
    else if (!strcmp(a, "--lora")) o->lora = v;
    else if (!strcmp(a, "--dtype")) {
        if (cli_dtype(cmd, v, &o->dtype)) return -1;
    } else if (!strcmp(a, "--kv-type")) {
        if (plm_dtype_parse(v, &o->kv_type) != PLM_OK ||
            (o->kv_type != PLM_DTYPE_F32 && o->kv_type != PLM_DTYPE_F16))
            return cli_usage_error(cmd, "--kv-type wants f32 or f16, got '%s'", v), -1;
    } else if (!strcmp(a, "--threads")) {
        if (cli_int(cmd, a, v, 1, 256, &n)) return -1;
        o->n_threads = (int32_t)n;
    } else {
        if (cli_int(cmd, a, v, 1, 1 << 20, &n)) return -1;
        o->n_ctx = (int32_t)n;
    }
    return 1;
}

int cli_sample_flag(const char *cmd, int argc, char **argv, int *i, plm_generate_params *gp,
                    int *seed_set) {
    const char *a = argv[*i], *v;
    long n;
    double x;
    plm_sampler_params *sp = &gp->sampler;
    if (strcmp(a, "-n") && strcmp(a, "--temp") && strcmp(a, "--top-k") && strcmp(a, "--top-p") &&
        strcmp(a, "--min-p") && strcmp(a, "--repeat-penalty") && strcmp(a, "--copy-penalty") &&
        strcmp(a, "--copy-retry") && strcmp(a, "--copy-deviate") && strcmp(a, "--keep-facts") &&
        strcmp(a, "--seed"))
        return 0;
    if (!(v = cli_value(cmd, argc, argv, i))) return -1;
    if (!strcmp(a, "-n")) {
        if (cli_int(cmd, a, v, 0, 1 << 20, &n)) return -1;
        gp->max_tokens = (int32_t)n;
    } else if (!strcmp(a, "--copy-deviate")) {
        if (cli_int(cmd, a, v, 0, 64, &n)) return -1;
        gp->copy_deviate = (int32_t)n;
    } else if (!strcmp(a, "--keep-facts")) {
        if (cli_int(cmd, a, v, 0, 1, &n)) return -1;
        gp->keep_facts = (int)n;
    } else if (!strcmp(a, "--top-k")) {
        if (cli_int(cmd, a, v, 0, 1 << 24, &n)) return -1;
        sp->top_k = (int32_t)n;
    } else if (!strcmp(a, "--seed")) {
        char *end;
        sp->seed = strtoull(v, &end, 10);
        if (*v == 0 || *end != 0) return cli_usage_error(cmd, "--seed wants an integer"), -1;
        *seed_set = 1;
    } else {
        int temp = !strcmp(a, "--temp"), top_p = !strcmp(a, "--top-p"),
            min_p = !strcmp(a, "--min-p");
        int rep = !strcmp(a, "--repeat-penalty");
        if (cli_float(cmd, a, v,
                      top_p ? 1e-6
                      : rep ? 1e-3
                            : 0,
                      temp             ? 100
                      : top_p || min_p ? 1
                                       : 100,
                      &x))
            return -1;
        float f = (float)x;
        if (temp) sp->temperature = f;
        else if (top_p) sp->top_p = f;
        else if (min_p) sp->min_p = f;
        else if (rep) sp->repetition_penalty = f;
        else if (!strcmp(a, "--copy-retry")) gp->copy_retry = f;
        else gp->copy_penalty = f;
    }
    return 1;
}

int cli_open(const char *cmd, cli_model_opts *o, plm_model **model, plm_session **session) {
    plm_error err = {0};
    *model = NULL;
    *session = NULL;
    o->adapter = NULL;
    if (!o->model) return cli_usage_error(cmd, "-m MODEL is required");
    plm_load_params lp = plm_load_default_params();
    lp.dtype = o->dtype;
    lp.n_threads = o->n_threads; // the session's threads convert the weights too
    if (plm_model_load(model, o->model, &lp, &err) != PLM_OK) return cli_error(cmd, &err);
    plm_session_params sp = plm_session_default_params();
    sp.n_threads = o->n_threads;
    sp.n_ctx = o->n_ctx;
    sp.kv_type = o->kv_type;
    if ((o->lora && plm_lora_load(&o->adapter, o->lora, *model, &err) != PLM_OK) ||
        (sp.lora = o->adapter, plm_session_create(session, *model, &sp, &err) != PLM_OK)) {
        cli_close(o, *model, NULL);
        *model = NULL;
        return cli_error(cmd, &err);
    }
    return 0;
}

void cli_close(cli_model_opts *o, plm_model *model, plm_session *session) {
    plm_session_free(session); // borrows the adapter and the model: freed first
    plm_lora_free(o->adapter);
    o->adapter = NULL;
    plm_model_free(model);
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

char *cli_read_file(const char *cmd, const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0;
    if (!f) {
        fprintf(stderr, "pocketlm %s: %s: cannot open\n", cmd, path);
        return NULL;
    }
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap * 2 + 65536;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f) || !buf;
    fclose(f);
    if (bad) {
        fprintf(stderr, "pocketlm %s: %s: read error\n", cmd, path);
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

int cli_text_add(void *user, const char *text, size_t len) {
    cli_text *b = user;
    if (b->n + len + 1 > b->cap) {
        size_t c = (b->cap + len + 1) * 2;
        char *q = realloc(b->p, c);
        if (!q) return b->oom = 1;
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->n, text, len);
    b->n += len;
    b->p[b->n] = 0;
    return 0;
}

void cli_json_str(FILE *f, const char *s, size_t n) {
    char small[512];
    size_t len = plm_json_quote(s, n, small, sizeof small);
    char *buf = len < sizeof small ? small : malloc(len + 1);
    if (buf && buf != small) plm_json_quote(s, n, buf, len + 1);
    if (buf) fwrite(buf, 1, len, f);
    else fputs("\"(out of memory)\"", f);
    if (buf != small) free(buf);
}
