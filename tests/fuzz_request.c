// fuzz_request.c: libFuzzer target for the request bodies of `pocketlm serve` (server_api.c's
// plm_server_parse_generate: the JSON of /v1/paraphrase, /v1/completions and /v1/chat/completions
// into a generation request, chat messages through the model's chat template). The input is one
// body, parsed as each of the three; the answer to a bad body goes to /dev/null. A parsed request
// must hold a prompt of its stated length (NUL-terminated), at most MAX_STOP_STRINGS stops and
// settings in range.
// The model (for its tokenizer, task and template) is FUZZ_MODEL, by default the real SmolLM2 GGUF
// (`make model`), loaded once.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static server srv;
static plm_server_params params;
static int devnull = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *path = getenv("FUZZ_MODEL");
    if (!path) path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    plm_load_params lp = plm_load_default_params();
    lp.dtype = PLM_DTYPE_Q8_0;
    plm_model *m = NULL;
    plm_error err = {0};
    if (plm_model_load(&m, path, &lp, &err) != PLM_OK) {
        fprintf(stderr, "fuzz_request: %s\n", err.msg);
        abort();
    }
    params = plm_server_default_params();
    params.model = m;
    params.model_name = "model.gguf";
    srv.p = &params;
    srv.n_ctx = 2048;
    srv.default_adapter = -1;
    pthread_mutex_init(&srv.lock, NULL);
    devnull = open("/dev/null", O_WRONLY);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *body = malloc(size + 1);
    if (!body) return 0;
    memcpy(body, data, size);
    body[size] = 0; // as server.c reads bodies
    for (int kind = API_PARAPHRASE; kind <= API_CHAT; kind++) {
        conn *c = calloc(1, sizeof *c);
        gen_request r;
        memset(&r, 0, sizeof r);
        r.entry = -1;
        c->srv = &srv, c->fd = devnull, c->body = body, c->body_len = size;
        if (plm_server_parse_generate(c, (api_kind)kind, &r) == 0) {
            const plm_sampler_params *sp = &r.gp.sampler;
            if (!r.prompt || r.prompt[r.plen] != 0 || r.n_stops > MAX_STOP_STRINGS ||
                r.gp.max_tokens < 0 || r.gp.max_tokens > srv.n_ctx || !(sp->temperature >= 0) ||
                !(sp->top_p > 0 && sp->top_p <= 1) || sp->top_k < 0 || r.n_choices < 1)
                __builtin_trap();
        } else if (c->status < 400) __builtin_trap(); // a refusal answers with an error status
        plm_server_gen_request_free(&r);
        free(c);
    }
    free(body);
    return 0;
}
