// bench.c: `pocketlm bench -m MODEL`: load time, prefill and decode speed, peak RSS, one stable
// line per result (`name dtype threads n ms tok/s`) so that runs can be diffed; then the memory
// read bandwidth over the loaded weights with 1 and --threads threads (bandwidth.h), and decode's
// ceiling at that bandwidth (bytes of weights per decoded token) with decode's share of it:
//   bw_read  -      TH  BYTES  MS_PER_PASS  BANDWIDTH GB/s
//   ceiling  DTYPE  TH  BYTES_PER_TOKEN  MS_PER_TOKEN  CEILING tok/s share DECODE/CEILING
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bandwidth.h"
#include "cli.h"
#include "model.h"

static void line(const char *name, const char *dtype, int threads, int n, double sec) {
    printf("%-8s %-5s %2d %5d %10.1f %10.1f\n", name, dtype, threads, n, sec * 1e3,
           sec > 0 ? n / sec : 0.0);
}

// bandwidth: the bw_read lines (1 and threads threads) over the model's weight block, and the
// ceiling line of decode at threads threads (decode_tps: the measured decode).
static void bandwidth(const plm_model *m, const char *dt, int threads, int reps,
                      double decode_tps) {
    double gbs = 0;
    int used = 1;
    for (int th = 1; th <= threads; th = th < threads ? threads : threads + 1) {
        plm_pool *pool = th > 1 ? plm_pool_create(th) : NULL;
        if (th > 1 && !pool) continue;
        gbs = plm_read_bandwidth(pool, m->block, m->block_bytes, reps, &used);
        const double pass = gbs > 0 ? (double)m->block_bytes / (gbs * 1e9) : 0;
        printf("%-8s %-5s %2d %5zu %10.2f %10.1f GB/s%s\n", "bw_read", "-", th, m->block_bytes,
               pass * 1e3, gbs, used < th ? " (ran on 1 thread: a busy machine, see pool.c)" : "");
        plm_pool_free(pool);
    }
    const size_t bytes = plm_model_decode_bytes(m);
    const double ceil = plm_decode_ceiling(gbs, bytes);
    printf("%-8s %-5s %2d %5zu %10.2f %10.1f tok/s share %.2f%s\n", "ceiling", dt, threads, bytes,
           ceil > 0 ? 1e3 / ceil : 0.0, ceil, ceil > 0 ? decode_tps / ceil : 0.0,
           used < threads ? " (from the 1-thread bandwidth: see bw_read)" : "");
}

int cmd_bench(int argc, char **argv) {
    const char *cmd = "bench";
    cli_model_opts mo = CLI_MODEL_OPTS;
    long n_prompt = 128, n_gen = 128, reps = 3, bw_reps = 10;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf(
                "usage: pocketlm bench -m MODEL [-p N] [-n N] [--reps N] [options]\n"
                "Prints `name dtype threads n ms tok/s` lines: load, prefill of -p tokens,\n"
                "decode of -n tokens (best of --reps), and the peak RSS; then bw_read lines (GB/s\n"
                "of reading the loaded weights with 1 and --threads threads) and a ceiling line\n"
                "(the decode tok/s that bandwidth allows; decode's share of it).\n\n" CLI_MODEL_HELP
                "  -p N             prompt tokens (default 128)\n"
                "  -n N             decoded tokens (default 128)\n"
                "  --reps N         repetitions, the best is reported (default 3)\n"
                "  --bw-reps N      passes of the bandwidth read, the best is reported\n"
                "                   (default 10; 0 leaves the bandwidth and ceiling out)\n");
            return 0;
        }
        int r = cli_model_flag(cmd, argc, argv, &i, &mo);
        if (r < 0) return 2;
        if (r > 0) continue;
        long *dst = !strcmp(argv[i], "-p")          ? &n_prompt
                    : !strcmp(argv[i], "-n")        ? &n_gen
                    : !strcmp(argv[i], "--reps")    ? &reps
                    : !strcmp(argv[i], "--bw-reps") ? &bw_reps
                                                    : NULL;
        if (!dst) return cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        if (!(v = cli_value(cmd, argc, argv, &i)) ||
            cli_int(cmd, argv[i - 1], v, dst == &bw_reps ? 0 : 1, 100000, dst))
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
    printf("cpu      %s\nfeatures %s\npath     %s\nkv       %s\n", plm_cpu_name(),
           plm_cpu_features(), plm_kernel_path(), plm_dtype_name(mo.kv_type));
    printf("%-8s %-5s %2s %5s %10s %10s\n", "name", "dtype", "th", "n", "ms", "tok/s");
    line("load", dt, threads, 0, load);
    line("prefill", dt, threads, (int)n_prompt, best_pre);
    line("decode", dt, threads, (int)n_gen, best_dec);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%-8s %-5s %2d %5d %10s %10.1f MB\n", "peak_rss", dt, threads, 0, "-",
           (double)ru.ru_maxrss / 1024.0);
    if (bw_reps > 0) bandwidth(m, dt, threads, (int)bw_reps, (double)n_gen / best_dec);
    free(ids);
    cli_close(&mo, m, s);
    return 0;
fail:
    free(ids);
    cli_close(&mo, m, s);
    return cli_error(cmd, &err);
}
