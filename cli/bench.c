// bench.c: `pocketlm bench -m MODEL`: load time, prefill and decode speed, peak RSS, one stable
// line per result (`name dtype threads n ms tok/s`) so that runs can be diffed.
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli.h"


static void line(const char *name, const char *dtype, int threads, int n, double sec) {
    printf("%-8s %-5s %2d %5d %10.1f %10.1f\n", name, dtype, threads, n, sec * 1e3,
           sec > 0 ? n / sec : 0.0);
}

int cmd_bench(int argc, char **argv) {
    const char *cmd = "bench";
    cli_model_opts mo = {.dtype = PLM_DTYPE_F32};
    long n_prompt = 128, n_gen = 128, reps = 3;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: pocketlm bench -m MODEL [-p N] [-n N] [--reps N] [options]\n"
                   "Prints `name dtype threads n ms tok/s` lines: load, prefill of -p tokens,\n"
                   "decode of -n tokens (best of --reps), and the peak RSS.\n\n" CLI_MODEL_HELP
                   "  -p N             prompt tokens (default 128)\n"
                   "  -n N             decoded tokens (default 128)\n"
                   "  --reps N         repetitions, the best is reported (default 3)\n");
            return 0;
        }
        int r = cli_model_flag(cmd, argc, argv, &i, &mo);
        if (r < 0) return 2;
        if (r > 0) continue;
        long *dst = !strcmp(argv[i], "-p") ? &n_prompt : !strcmp(argv[i], "-n") ? &n_gen
                  : !strcmp(argv[i], "--reps") ? &reps : NULL;
        if (!dst) return cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        if (!(v = cli_value(cmd, argc, argv, &i)) || cli_int(cmd, argv[i - 1], v, 1, 100000, dst))
            return 2;
    }
    if (!mo.n_ctx) mo.n_ctx = (int32_t)(n_prompt + n_gen);
    double t0 = cli_now();
    plm_model *m;
    plm_session *s;
    if (cli_open(cmd, &mo, &m, &s)) return 1;
    double load = cli_now() - t0;
    const plm_config *cfg = plm_model_config(m);
    const char *dt = plm_dtype_name(plm_model_dtype(m));
    int threads = plm_session_n_threads(s);
    int32_t *ids = malloc((size_t)(n_prompt + n_gen) * sizeof *ids);
    if (!ids) return 1;
    uint64_t x = 88172645463325252ull; // fixed pseudo-random prompt ids
    for (long i = 0; i < n_prompt + n_gen; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        ids[i] = (int32_t)(x % (uint64_t)cfg->vocab_size);
    }
    plm_error err = {0};
    double best_pre = 1e30, best_dec = 1e30;
    for (long r = 0; r < reps; r++) {
        plm_session_truncate(s, 0);
        double a = cli_now();
        if (plm_session_decode(s, ids, (int32_t)n_prompt, &err) != PLM_OK) goto fail;
        double b = cli_now();
        for (long i = 0; i < n_gen; i++)
            if (plm_session_decode(s, ids + n_prompt + i, 1, &err) != PLM_OK) goto fail;
        double c = cli_now();
        if (b - a < best_pre) best_pre = b - a;
        if (c - b < best_dec) best_dec = c - b;
    }
    printf("cpu      %s\nfeatures %s\npath     %s\n", plm_cpu_name(), plm_cpu_features(),
           plm_kernel_path());
    printf("%-8s %-5s %2s %5s %10s %10s\n", "name", "dtype", "th", "n", "ms", "tok/s");
    line("load", dt, threads, 0, load);
    line("prefill", dt, threads, (int)n_prompt, best_pre);
    line("decode", dt, threads, (int)n_gen, best_dec);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%-8s %-5s %2d %5d %10s %10.1f MB\n", "peak_rss", dt, threads, 0, "-",
           (double)ru.ru_maxrss / 1024.0);
    free(ids);
    cli_close(&mo, m, s);
    return 0;
fail:
    free(ids);
    cli_close(&mo, m, s);
    return cli_error(cmd, &err);
}
