// cli.h: the subcommands of `pocketlm` and the small argument helpers they share.
// Only cli/ prints and exits; each command returns the process exit code (0 ok, 1 error, 2 usage).
#ifndef PLM_CLI_H
#define PLM_CLI_H

#include <stdio.h>

#include "pocketlm.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv); // argv[0] is the command name
    const char *summary;
} cli_command;

int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_paraphrase(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_finetune(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_eval(int argc, char **argv);

// cli_error: print "pocketlm <cmd>: <message>" to stderr; returns 1.
int cli_error(const char *cmd, const plm_error *err);
// cli_usage_error: print "pocketlm <cmd>: <formatted message>" and a hint to use --help; returns 2.
int cli_usage_error(const char *cmd, const char *fmt, ...);

// cli_exists: whether out exists and force is not set (then it says so: "use --force"); an output
// is never overwritten by mistake.
int cli_exists(const char *cmd, const char *out, int force);

// Flag value parsing: on a bad value they print a usage error and return non-zero.
int cli_int(const char *cmd, const char *flag, const char *s, long lo, long hi, long *out);
int cli_float(const char *cmd, const char *flag, const char *s, double lo, double hi, double *out);
// cli_value: the value of flag at argv[*i] (advancing *i), or NULL after a usage error.
const char *cli_value(const char *cmd, int argc, char **argv, int *i);
// cli_ftype: the GGUF file type named s (--quant of export and convert; flag names the option in
// the message) into *out; returns 0, or 2 after a usage error listing the names.
int cli_ftype(const char *cmd, const char *flag, const char *s, plm_ftype *out);
#define CLI_FTYPE_HELP                                                                             \
    "                   f32 (default), f16, bf16; q8_0, q4_0, q4_1, q5_0, q5_1, q4_k_m,\n"         \
    "                   q5_k_m, q6_k: quantized per tensor as llama.cpp's quantizer does\n"        \
    "                   for that type (same bits; the head and the layers it picks get\n"          \
    "                   more bits; rows that are not a multiple of 256 fall back to a\n"           \
    "                   32-block type); norms stay f32\n"

// cli_dtype: the in-memory dtype named s (--dtype) into *out; returns 0, or 2 after a usage error.
int cli_dtype(const char *cmd, const char *s, plm_dtype *out);
#define CLI_DTYPE_NAMES "f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q6_k, q4_k, q5_k or auto"

// Options shared by the commands that run a model (-m, --lora, --dtype, --threads, --ctx,
// --kv-type).
// CLI_MODEL_OPTS: their defaults: the weights as the file stores them where a kernel exists (auto).
#define CLI_MODEL_OPTS ((cli_model_opts){.dtype = PLM_DTYPE_AUTO})
typedef struct {
    const char *model; // -m PATH
    plm_dtype dtype;   // --dtype f32|f16|bf16|q8_0|q4_0|q4_1|q5_0|q5_1|q6_k|q4_k|q5_k|auto
    int32_t n_threads; // --threads (0 = cores)
    int32_t n_ctx;     // --ctx (0 = default)
    plm_dtype kv_type; // --kv-type f32|f16: the KV cache's elements (0 = the library's: f32)
    const char *lora;  // --lora DIR: a PEFT adapter applied at run time, or NULL
    plm_lora *adapter; // loaded by cli_open from lora; freed by cli_close
} cli_model_opts;

// cli_model_flag: if argv[*i] is one of the model options, parse it (advancing *i) and return 1;
// return 0 if it is not; -1 after a usage error.
int cli_model_flag(const char *cmd, int argc, char **argv, int *i, cli_model_opts *o);
// cli_sample_flag: like cli_model_flag, for the generation flags of CLI_SAMPLE_HELP (into gp;
// --seed also raises *seed_set).
int cli_sample_flag(const char *cmd, int argc, char **argv, int *i, plm_generate_params *gp,
                    int *seed_set);
#define CLI_SAMPLE_HELP                                                                            \
    "  -n N             new tokens at most\n"                                                      \
    "  --temp T         temperature; 0 = greedy\n"                                                 \
    "  --top-k K        keep the K most likely tokens (0 = off)\n"                                 \
    "  --top-p P        nucleus sampling (1 = off)\n"                                              \
    "  --min-p P        drop tokens below P times the best probability (0 = off)\n"                \
    "  --repeat-penalty R  HF repetition penalty (1 = off)\n"                                      \
    "  --copy-penalty A dynamic blocking: lower by A the logits of tokens that go on copying "     \
    "the\n"                                                                                        \
    "                   source (0 = off)\n"                                                        \
    "  --copy-retry A   an output that copies the source (the same words) is decoded again:\n"     \
    "                   first --copy-deviate times from the model's least sure choices,\n"         \
    "                   then with a share of the source's bigrams blocked by A logits (D*D\n"      \
    "                   with --diversity D, P with generate's --block P, else all), the\n"         \
    "                   share doubled while it still copies, all at the third (0 = off)\n"         \
    "  --copy-deviate N with --copy-retry: the first N retries of a copy keep its tokens up to\n"  \
    "                   its N-th least sure choice, take the runner-up there and decode on\n"      \
    "                   (paraphrase: 2 for 0.4 <= --diversity < 1; else 0)\n"                      \
    "  --keep-facts 0|1 1: no number, nor capitalized word but the first, that the source\n"       \
    "                   lacks (paraphrase: 1 at every --diversity; else 0)\n"                      \
    "  --seed S         random seed\n"
// cli_open: load o->model (and o->lora into o->adapter) and create a session; prints the error and
// returns non-zero on failure.
int cli_open(const char *cmd, cli_model_opts *o, plm_model **model, plm_session **session);
// cli_close: free what cli_open made (session, adapter, model); NULLs are fine.
void cli_close(cli_model_opts *o, plm_model *model, plm_session *session);
// CLI_MODEL_HELP: the help of cli_model_flag's options; serve has its own --lora between the two
// halves
#define CLI_MODEL_HELP_M "  -m PATH          model: an HF directory or a .gguf file\n"
#define CLI_MODEL_HELP_REST                                                                        \
    "  --dtype T        weights in memory: auto (default: each as the file has it where a "        \
    "kernel\n"                                                                                     \
    "                   exists: F16/BF16 kept 16-bit, else f32 or q8_0), or one for all: f32,\n"   \
    "                   f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q6_k, q4_k, q5_k\n"               \
    "  --threads N      threads (default: all cores)\n"                                            \
    "  --ctx N          context positions (default: min(2048, the model's))\n"                     \
    "  --kv-type T      KV cache: f32 (default) or f16 (half the memory and the attention's\n"     \
    "                   reads; keys and values rounded to IEEE half)\n"
#define CLI_MODEL_HELP_LORA "  --lora DIR       apply a PEFT LoRA adapter directory at run time\n"
#define CLI_MODEL_HELP      CLI_MODEL_HELP_M CLI_MODEL_HELP_LORA CLI_MODEL_HELP_REST

// cli_now: seconds from a monotonic clock.
double cli_now(void);

// cli_read_file: the whole file (NUL-terminated; free() it), or NULL after printing an error.
char *cli_read_file(const char *cmd, const char *path, size_t *len);

// cli_text: text collected from plm_generate's on_text (NUL-terminated; free(p)).
typedef struct {
    char *p;
    size_t n, cap;
    int oom; // an allocation failed: the text is incomplete
} cli_text;
// cli_text_add: an on_text callback appending to the cli_text at user; stops only when out of memory.
int cli_text_add(void *user, const char *text, size_t len);

// cli_json_str: s (n bytes) as a JSON string to f (the library's plm_json_quote: escapes, and
// U+FFFD for invalid UTF-8).
void cli_json_str(FILE *f, const char *s, size_t n);

#endif
