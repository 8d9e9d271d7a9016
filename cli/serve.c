// serve.c: `pocketlm serve`: flags, the model, signals and the log; the server itself (sockets,
// HTTP, the API) is plm_server_run in the library (src/server.c, src/server_api.c).
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

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

int cmd_serve(int argc, char **argv) {
    const char *cmd = "serve", *model_file = NULL;
    cli_model_opts mo = {0};
    plm_server_params sp = plm_server_default_params();
    sp.web_dir = "build/web:web"; // the wasm build, then the page's sources
    long n;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf(
                "usage: pocketlm serve -m MODEL [options]\n"
                "Serves the web app, the model file for it, and a local HTTP API on the native "
                "engine:\n  GET /v1/health, POST /v1/paraphrase {\"text\"}, POST /v1/completions "
                "(OpenAI subset, \"stream\": true for server-sent events),\n  GET /model.gguf, "
                "and static files.\n\n" CLI_MODEL_HELP
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
                "  --timeout MS     drop a client idle this long (default 10000)\n");
            return 0;
        }
        int r = cli_model_flag(cmd, argc, argv, &i, &mo);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (!strcmp(a, "--no-coi")) {
            sp.coi = 0;
            continue;
        }
        if (strcmp(a, "--host") && strcmp(a, "--port") && strcmp(a, "--web") &&
            strcmp(a, "--model-file") && strcmp(a, "--max-pending") && strcmp(a, "--timeout"))
            return cli_usage_error(cmd, "unknown option '%s'", a);
        if (!(v = cli_value(cmd, argc, argv, &i))) return 2;
        if (!strcmp(a, "--host")) sp.host = v;
        else if (!strcmp(a, "--web")) sp.web_dir = v;
        else if (!strcmp(a, "--model-file")) model_file = v;
        else if (!strcmp(a, "--port")) {
            if (cli_int(cmd, a, v, 0, 65535, &n)) return 2;
            sp.port = (int32_t)n;
        } else if (!strcmp(a, "--max-pending")) {
            if (cli_int(cmd, a, v, 0, 4096, &n)) return 2;
            sp.max_pending = (int32_t)n;
        } else {
            if (cli_int(cmd, a, v, 1, 3600000, &n)) return 2;
            sp.timeout_ms = (int32_t)n;
        }
    }
    if (!mo.model) return cli_usage_error(cmd, "-m MODEL is required");
    sp.model_file = model_file ? model_file : ends_with(mo.model, ".gguf") ? mo.model : NULL;
    const char *slash = strrchr(mo.model, '/');
    sp.model_name = slash && slash[1] ? slash + 1 : mo.model;

    plm_model *model;
    plm_session *session;
    if (cli_open(cmd, &mo, &model, &session)) return 1;
    sp.session = session;
    // the adapter: --lora's directory, else the one merged into the model file (if any)
    const char *lora_dir = mo.lora ? mo.lora + strlen(mo.lora) : NULL;
    while (lora_dir && lora_dir > mo.lora && lora_dir[-1] == '/') lora_dir--;
    char adapter[256] = "";
    if (lora_dir) {
        const char *b = lora_dir;
        while (b > mo.lora && b[-1] != '/') b--;
        snprintf(adapter, sizeof adapter, "%.*s", (int)(lora_dir - b), b);
    } else {
        snprintf(adapter, sizeof adapter, "%s", plm_model_adapter(model));
    }
    sp.adapter_name = adapter;
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
    plm_error err = {0};
    plm_status st = plm_server_run(&sp, &err);
    cli_close(&mo, model, session);
    return st == PLM_OK ? 0 : cli_error(cmd, &err);
}
