// finetune.c: `pocketlm finetune -m BASE --data FILE --out ADAPTER [...]`: LoRA fine-tuning with a
// live progress bar on a terminal (plain lines otherwise); Ctrl-C writes a checkpoint and stops,
// and the same command with --resume continues exactly where it stopped.
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

typedef struct {
    int tty;   // stderr is a terminal: redraw one line
    int every; // plain lines: print every N steps
} view;

static void hms(char *out, size_t cap, double s) {
    long t = (long)(s + 0.5);
    snprintf(out, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
}

static int on_step(void *user, const plm_train_progress *p) {
    view *v = user;
    char eta[32], el[32];
    hms(eta, sizeof eta, p->eta);
    hms(el, sizeof el, p->elapsed);
    if (v->tty) {
        int w = 24, fill = p->total_steps ? (int)((long)w * p->step / p->total_steps) : 0;
        char bar[32];
        for (int i = 0; i < w; i++) bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
        bar[w] = 0;
        fprintf(stderr, "\r[%s] %d/%d ep %.2f loss %.4f lr %.2e %.0f tok/s eta %s  ", bar, p->step,
                p->total_steps, (double)p->epoch, p->loss, (double)p->lr, p->tok_s, eta);
        if (!isnan(p->eval_loss))
            fprintf(stderr, "\n  eval_loss %.4f at step %d\n", p->eval_loss, p->step);
    } else if (p->step % v->every == 0 || p->step == p->total_steps || !isnan(p->eval_loss)) {
        fprintf(
            stderr,
            "step %d/%d epoch %.2f loss %.4f lr %.3e grad_norm %.3f tok/s %.0f elapsed %s eta %s",
            p->step, p->total_steps, (double)p->epoch, p->loss, (double)p->lr, (double)p->grad_norm,
            p->tok_s, el, eta);
        if (!isnan(p->eval_loss)) fprintf(stderr, " eval_loss %.4f", p->eval_loss);
        fprintf(stderr, "\n");
    }
    return interrupted;
}

static void usage(void) {
    printf(
        "usage: pocketlm finetune -m BASE --data FILE --out ADAPTER [options]\n"
        "LoRA fine-tuning for the task template (see docs/DESIGN.md). Writes a PEFT adapter,\n"
        "metrics.jsonl, loss.svg and data_report.json to ADAPTER; Ctrl-C checkpoints, --resume "
        "continues.\n\n" CLI_MODEL_HELP "  --data FILE      PAWS TSV (label-1 rows, pairs also "
        "reversed) or JSONL {\"input\",\"output\"}\n"
        "  --eval-data FILE evaluation data (default: held out from --data)\n"
        "  --eval-frac F    the share of --data held out, whole groups of rows that share a\n"
        "                   sentence, written to ADAPTER/heldout.tsv (0.05; 0 = none)\n"
        "  --out DIR        the adapter directory\n"
        "  --targets LIST   q_proj,v_proj (default), all, or any of q,k,v,o,gate,up,down_proj\n"
        "  --rank R         LoRA rank (8)          --alpha A    lora_alpha (16)\n"
        "  --dropout P      lora_dropout (0.05)    --lr LR      peak learning rate (2e-4)\n"
        "  --batch B        examples per micro-batch (8)   --accum N   micro-batches per step (1)\n"
        "  --epochs N       (1)                    --max-steps N  stop earlier (0 = off)\n"
        "  --warmup-ratio R warmup share of the steps (0.03)  --weight-decay W (0)\n"
        "  --grad-clip G    max gradient norm (1.0) --seed S    (1234)\n"
        "  --eval-every N   evaluate every N steps (0 = at the end)\n"
        "  --save-every N   checkpoint every N steps (0 = only on Ctrl-C)\n"
        "  --max-len N      longest example in tokens (256)\n"
        "  --no-reverse     do not add reversed PAWS pairs\n"
        "  --diversity-levels N  train the diversity control with N levels, equal shares of the\n"
        "                   pairs by distance (0 = the template without the control field, the\n"
        "                   default: a half-epoch run did not steer on held-out; try 5)\n"
        "  --min-distance X drop examples closer than X (0..100: 100 - BLEU of the target\n"
        "                   against the source) to their source: near copies (0 = keep all)\n"
        "  --unlikelihood A train away from copying the input: loss = CE + A * unlikelihood of\n"
        "                   the token that would continue a copy of the source (docs/DESIGN.md;\n"
        "                   0 = plain cross-entropy, the default; eval loss stays plain CE)\n"
        "  --no-detok       keep PAWS's tokenized spacing (\" ,\" \" .\"); default: detokenized\n"
        "  --strict         a bad data row is an error (default: counted and skipped)\n"
        "  --resume         continue from ADAPTER/checkpoint\n");
}

int cmd_finetune(int argc, char **argv) {
    const char *cmd = "finetune";
    cli_model_opts mo = CLI_MODEL_OPTS;
    plm_finetune_params fp = plm_finetune_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        long n;
        double x;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(), 0;
        int r = cli_model_flag(cmd, argc, argv, &i, &mo);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (!strcmp(a, "--no-reverse")) fp.reverse = 0;
        else if (!strcmp(a, "--strict")) fp.strict = 1;
        else if (!strcmp(a, "--resume")) fp.resume = 1;
        else if (!strcmp(a, "--no-detok")) fp.detok = 0;
        else if (!(v = cli_value(cmd, argc, argv, &i))) return 2;
        else if (!strcmp(a, "--data")) fp.data = v;
        else if (!strcmp(a, "--eval-data")) fp.eval_data = v;
        else if (!strcmp(a, "--out")) fp.out = v;
        else if (!strcmp(a, "--targets")) fp.targets = v;
        else if (!strcmp(a, "--rank")) {
            if (cli_int(cmd, a, v, 1, 4096, &n)) return 2;
            fp.rank = (int32_t)n;
        } else if (!strcmp(a, "--alpha")) {
            if (cli_float(cmd, a, v, 1e-6, 1e6, &x)) return 2;
            fp.alpha = (float)x;
        } else if (!strcmp(a, "--dropout")) {
            if (cli_float(cmd, a, v, 0, 0.99, &x)) return 2;
            fp.dropout = (float)x;
        } else if (!strcmp(a, "--lr")) {
            if (cli_float(cmd, a, v, 0, 10, &x)) return 2;
            fp.train.lr = (float)x;
        } else if (!strcmp(a, "--weight-decay")) {
            if (cli_float(cmd, a, v, 0, 10, &x)) return 2;
            fp.train.weight_decay = (float)x;
        } else if (!strcmp(a, "--grad-clip")) {
            if (cli_float(cmd, a, v, 0, 1e6, &x)) return 2;
            fp.train.grad_clip = (float)x;
        } else if (!strcmp(a, "--warmup-ratio")) {
            if (cli_float(cmd, a, v, 0, 1, &x)) return 2;
            fp.warmup_ratio = (float)x;
        } else if (!strcmp(a, "--min-distance")) {
            if (cli_float(cmd, a, v, 0, 100, &x)) return 2;
            fp.min_distance = (float)x;
        } else if (!strcmp(a, "--unlikelihood")) {
            if (cli_float(cmd, a, v, 0, 1e6, &x)) return 2;
            fp.train.unlikelihood = (float)x;
        } else if (!strcmp(a, "--diversity-levels")) {
            if (cli_int(cmd, a, v, 0, PLM_TASK_LEVELS_MAX, &n)) return 2;
            if (n == 1)
                return cli_usage_error(cmd, "--diversity-levels: 0 (off) or 2 to %d",
                                       PLM_TASK_LEVELS_MAX);
            fp.diversity_levels = (int32_t)n;
        } else if (!strcmp(a, "--eval-frac")) {
            if (cli_float(cmd, a, v, 0, 0.9, &x)) return 2;
            fp.eval_frac = (float)x;
        } else if (!strcmp(a, "--seed")) {
            if (cli_int(cmd, a, v, 0, 2147483647L, &n)) return 2;
            fp.train.seed = (uint64_t)n;
        } else {
            int32_t *dst = !strcmp(a, "--batch")        ? &fp.batch
                           : !strcmp(a, "--accum")      ? &fp.accum
                           : !strcmp(a, "--epochs")     ? &fp.epochs
                           : !strcmp(a, "--max-steps")  ? &fp.max_steps
                           : !strcmp(a, "--eval-every") ? &fp.eval_every
                           : !strcmp(a, "--save-every") ? &fp.save_every
                           : !strcmp(a, "--max-len")    ? &fp.max_len
                                                        : NULL;
            if (!dst) return cli_usage_error(cmd, "unknown option '%s'", a);
            if (cli_int(cmd, a, v, 0, 1 << 24, &n)) return 2;
            *dst = (int32_t)n;
        }
    }
    if (!mo.model || !fp.data || !fp.out)
        return cli_usage_error(cmd, "-m, --data and --out are required");
    fp.train.n_threads = mo.n_threads;
    plm_error err = {0};
    plm_model *m;
    plm_load_params lp = plm_load_default_params();
    lp.dtype = mo.dtype;
    if (plm_model_load(&m, mo.model, &lp, &err) != PLM_OK) return cli_error(cmd, &err);
    view v = {isatty(2), 10};
    fp.on_step = on_step;
    fp.user = &v;
    signal(SIGINT, on_sigint);
    double t0 = cli_now();
    plm_status s = plm_finetune(m, &fp, &err);
    if (v.tty) fprintf(stderr, "\n");
    char report[4200];
    snprintf(report, sizeof report, "%s/data_report.json", fp.out);
    size_t len;
    char *text = cli_read_file(cmd, report, &len);
    if (text) fprintf(stderr, "data: %s", text);
    free(text);
    plm_model_free(m);
    if (s != PLM_OK) return cli_error(cmd, &err);
    fprintf(stderr, "adapter written to %s (%.1f s)\n", fp.out, cli_now() - t0);
    return 0;
}
