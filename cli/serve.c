// serve.c: `pocketlm serve`: flags, the model, signals and the log; the server itself (sockets,
// HTTP, the API) is plm_server_run in the library (src/server.c, src/server_api.c).
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

#define MAX_ORIGINS 16 // --allow-origin flags
#define MAX_LORAS   64 // adapters from --lora and --lora-dir

// The adapters to start with: a name and a directory each.
typedef struct {
    char name[256];
    char dir[4096];
} lora_arg;

static volatile sig_atomic_t g_stop; // set by SIGINT/SIGTERM; read by should_stop

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static int should_stop(void *user) {
    (void)user;
    return g_stop != 0;
}

static void on_log(void *user, const char *line) {
    (void)user;
    fprintf(stderr, "pocketlm serve: %s\n", line);
}

static int ends_with(const char *s, const char *tail) {
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && strcmp(s + n - t, tail) == 0;
}

// add_lora: --lora [NAME=]DIR (without NAME, the directory's name). 0, or 2 after a usage error.
static int add_lora(const char *cmd, const char *v, lora_arg *loras, int *n) {
    if (*n == MAX_LORAS) return cli_usage_error(cmd, "more than %d adapters", MAX_LORAS);
    lora_arg *a = &loras[*n];
    const char *eq = strchr(v, '='), *slash = strchr(v, '/');
    if (eq && (!slash || eq < slash)) { // NAME=DIR
        snprintf(a->name, sizeof a->name, "%.*s", (int)(eq - v), v);
        snprintf(a->dir, sizeof a->dir, "%s", eq + 1);
    } else {
        size_t end = strlen(v);
        while (end > 1 && v[end - 1] == '/') end--; // "models/paws-lora/" is paws-lora
        size_t b = end;
        while (b > 0 && v[b - 1] != '/') b--;
        snprintf(a->name, sizeof a->name, "%.*s", (int)(end - b), v + b);
        snprintf(a->dir, sizeof a->dir, "%s", v);
    }
    if (!a->name[0] || !a->dir[0])
        return cli_usage_error(cmd, "--lora wants [NAME=]DIR, got '%s'", v);
    (*n)++;
    return 0;
}

static int by_name(const void *x, const void *y) {
    return strcmp(((const lora_arg *)x)->name, ((const lora_arg *)y)->name);
}

// add_lora_dir: every subdirectory of dir with an adapter_config.json, by name. 0, or 1/2 after
// an error.
static int add_lora_dir(const char *cmd, const char *dir, lora_arg *loras, int *n) {
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "pocketlm %s: --lora-dir %s: cannot open the directory\n", cmd, dir);
        return 1;
    }
    int first = *n;
    for (struct dirent *e; (e = readdir(d));) {
        char cfg[4096 + 300];
        struct stat st;
        if (e->d_name[0] == '.') continue;
        snprintf(cfg, sizeof cfg, "%s/%s/adapter_config.json", dir, e->d_name);
        if (stat(cfg, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        if (*n == MAX_LORAS) {
            closedir(d);
            return cli_usage_error(cmd, "more than %d adapters", MAX_LORAS);
        }
        snprintf(loras[*n].name, sizeof loras[*n].name, "%s", e->d_name);
        snprintf(loras[*n].dir, sizeof loras[*n].dir, "%s/%s", dir, e->d_name);
        (*n)++;
    }
    closedir(d);
    if (*n == first)
        fprintf(stderr, "pocketlm %s: note: --lora-dir %s holds no adapter\n", cmd, dir);
    qsort(loras + first, (size_t)(*n - first), sizeof *loras, by_name);
    return 0;
}

int cmd_serve(int argc, char **argv) {
    const char *cmd = "serve", *model_file = NULL;
    cli_model_opts mo = CLI_MODEL_OPTS;
    plm_server_params sp = plm_server_default_params();
    sp.web_dir = "build/web:web"; // the wasm build, then the page's sources
    const char *origins[MAX_ORIGINS];
    int32_t n_origins = 0;
    static lora_arg loras[MAX_LORAS];
    int n_loras = 0;
    long n;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf(
                "usage: pocketlm serve -m MODEL [options]\n"
                "Serves the web app, the model file for it, and a local HTTP API on the native "
                "engine:\n  GET /v1/health, POST /v1/paraphrase {\"text\"}; for OpenAI's clients "
                "(base URL http://HOST:PORT/v1)\n  GET /v1/models, POST /v1/chat/completions, POST "
                "/v1/completions (\"stream\": true for server-sent events);\n  POST /v1/adapters "
                "{\"name\", \"path\"} and DELETE /v1/adapters/NAME (this machine, or the API "
                "key);\n  GET /model.gguf, and static files. Only this machine's pages may POST "
                "(--allow-origin adds one).\n"
                "Concurrent requests are batched: each decode step runs every running request's "
                "token\ntogether. A request picks an adapter with \"model\": \"MODEL:NAME\" or "
                "\"adapter\": \"NAME\"\n(default: the first adapter given, else the base; "
                "\"adapter\": \"\" is the base).\n\n" CLI_MODEL_HELP_M
                "  --lora NAME=DIR  (repeatable) an adapter requests may pick by NAME, applied "
                "unmerged;\n                   --lora DIR names it after its directory\n"
                "  --lora-dir DIR   every adapter in DIR's subdirectories, named after "
                "them\n" CLI_MODEL_HELP_REST
                "  --max-batch N    requests decoded together (default 8); more wait\n"
                "  --kv-budget MB   KV cache the running requests may hold together (default 512);"
                "\n                   a request holds (prompt + max_tokens) positions, at most "
                "--ctx\n"
                "  --host ADDR      numeric address to listen on (default 127.0.0.1: this machine "
                "only)\n"
                "  --port N         TCP port (default 8080; 0 = any free port, printed)\n"
                "  --web DIRS       static files, ':'-separated directories searched in order\n"
                "                   (default build/web:web: `make wasm` output, then the page)\n"
                "  --model-file F   the file served at /model.gguf (default: MODEL if it is a "
                ".gguf)\n"
                "  --no-coi         omit the COOP/COEP headers (the page then runs "
                "single-threaded)\n"
                "  --max-pending N  generation requests that may wait (default 16; more get 503)\n"
                "  --timeout MS     drop a client whose request takes longer (default 10000)\n"
                "  --max-conns N    connections served at once (default 64; more get 503)\n"
                "  --max-body N     request body limit in bytes (default 65536; larger get 413)\n"
                "  --api-key KEY    /v1/* then needs 'Authorization: Bearer KEY' (required with a\n"
                "                   --host that is not loopback)\n"
                "  --allow-origin O another origin (e.g. http://localhost:5173) that may call the "
                "API\n                   (CORS); repeatable. Other origins' POSTs get 403\n"
                "  --log-prompts    log each generation request's prompt (never logged "
                "otherwise)\n");
            return 0;
        }
        if (!strcmp(a, "--lora") || !strcmp(a, "--lora-dir")) {
            if (!(v = cli_value(cmd, argc, argv, &i))) return 2;
            int rc =
                a[6] ? add_lora_dir(cmd, v, loras, &n_loras) : add_lora(cmd, v, loras, &n_loras);
            if (rc) return rc;
            continue;
        }
        int r = cli_model_flag(cmd, argc, argv, &i, &mo);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (!strcmp(a, "--no-coi")) {
            sp.coi = 0;
            continue;
        }
        if (!strcmp(a, "--log-prompts")) {
            sp.log_prompts = 1;
            continue;
        }
        if (strcmp(a, "--host") && strcmp(a, "--port") && strcmp(a, "--web") &&
            strcmp(a, "--model-file") && strcmp(a, "--max-pending") && strcmp(a, "--timeout") &&
            strcmp(a, "--max-conns") && strcmp(a, "--max-body") && strcmp(a, "--api-key") &&
            strcmp(a, "--allow-origin") && strcmp(a, "--max-batch") && strcmp(a, "--kv-budget"))
            return cli_usage_error(cmd, "unknown option '%s'", a);
        if (!(v = cli_value(cmd, argc, argv, &i))) return 2;
        if (!strcmp(a, "--host")) sp.host = v;
        else if (!strcmp(a, "--api-key")) sp.api_key = v;
        else if (!strcmp(a, "--allow-origin")) {
            if (n_origins == MAX_ORIGINS)
                return cli_usage_error(cmd, "more than %d --allow-origin", MAX_ORIGINS);
            origins[n_origins++] = v;
        } else if (!strcmp(a, "--max-conns")) {
            if (cli_int(cmd, a, v, 1, 4096, &n)) return 2;
            sp.max_conns = (int32_t)n;
        } else if (!strcmp(a, "--max-body")) {
            if (cli_int(cmd, a, v, 0, 1 << 30, &n)) return 2;
            sp.max_body = (int32_t)n;
        } else if (!strcmp(a, "--web")) sp.web_dir = v;
        else if (!strcmp(a, "--model-file")) model_file = v;
        else if (!strcmp(a, "--port")) {
            if (cli_int(cmd, a, v, 0, 65535, &n)) return 2;
            sp.port = (int32_t)n;
        } else if (!strcmp(a, "--max-batch")) {
            if (cli_int(cmd, a, v, 1, 256, &n)) return 2;
            sp.max_batch = (int32_t)n;
        } else if (!strcmp(a, "--kv-budget")) {
            if (cli_int(cmd, a, v, 1, 1 << 20, &n)) return 2;
            sp.kv_budget = (int64_t)n << 20;
        } else if (!strcmp(a, "--max-pending")) {
            if (cli_int(cmd, a, v, 0, 4096, &n)) return 2;
            sp.max_pending = (int32_t)n;
        } else {
            if (cli_int(cmd, a, v, 1, 3600000, &n)) return 2;
            sp.timeout_ms = (int32_t)n;
        }
    }
    if (!mo.model) return cli_usage_error(cmd, "-m MODEL is required");
    sp.allow_origins = origins;
    sp.n_allow_origins = n_origins;
    sp.model_file = model_file ? model_file : ends_with(mo.model, ".gguf") ? mo.model : NULL;
    const char *slash = strrchr(mo.model, '/');
    sp.model_name = slash && slash[1] ? slash + 1 : mo.model;

    plm_model *model = NULL;
    plm_lora *adapters[MAX_LORAS] = {0};
    plm_server_adapter named[MAX_LORAS];
    plm_error err = {0};
    plm_load_params lp = plm_load_default_params();
    lp.dtype = mo.dtype;
    lp.n_threads = mo.n_threads;
    if (plm_model_load(&model, mo.model, &lp, &err) != PLM_OK) return cli_error(cmd, &err);
    for (int k = 0; k < n_loras; k++) {
        if (plm_lora_load(&adapters[k], loras[k].dir, model, &err) != PLM_OK) {
            for (int f = 0; f < k; f++) plm_lora_free(adapters[f]);
            plm_model_free(model);
            return cli_error(cmd, &err);
        }
        named[k] = (plm_server_adapter){loras[k].name, adapters[k]};
    }
    sp.model = model;
    sp.adapters = named;
    sp.n_adapters = n_loras;
    sp.n_ctx = mo.n_ctx;
    sp.kv_type = mo.kv_type;
    sp.n_threads = mo.n_threads;
    sp.should_stop = should_stop;
    sp.on_log = on_log;
    // a client that disconnects must not kill the server: writes to its socket fail instead
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    plm_status st = plm_server_run(&sp, &err);
    for (int k = 0; k < n_loras; k++) plm_lora_free(adapters[k]);
    plm_model_free(model);
    return st == PLM_OK ? 0 : cli_error(cmd, &err);
}
