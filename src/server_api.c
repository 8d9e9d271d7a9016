// server_api.c: the JSON API of `pocketlm serve` on the native engine: /v1/paraphrase (the task's
// prompt and defaults), OpenAI's /v1/completions and /v1/chat/completions (n choices, usage, each
// token's logprobs: generate's on_token, the model's distribution at temperature 1 before any
// sampling setting), each as one JSON object or as server-sent events, and /v1/health. A
// generation request is parsed, picks its adapter, is tokenized with that adapter's tokenizer,
// waits for a seat in the batch (server.c's queue: a sequence slot and its KV cache within the
// budget), generates on its own session of the batch (batch.c: its decode steps are shared with the
// other requests') and answers. Not here: sockets, connections, reading requests, static files and routing (server.c);
// the adapters and the model names (server_adapters.c); the chat prompt and OpenAI's answer shapes
// (server_openai.c).
#define _POSIX_C_SOURCE 200809L
#include "json.h"
#include "server.h"
#include "session.h"

#if !defined(__EMSCRIPTEN__)
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CHOICES 8 // "n" at most (each choice is generated in turn)

// ---- generation requests ----

// The tokens of one choice with their log-probabilities (when the request asks for logprobs).
typedef struct {
    oai_token *t; // (cap) in the order sampled; those past the answer's end are not reported
    int32_t n, cap;
    size_t end;   // where the next token's text starts in the choice's text (bytes)
    int32_t sent; // tokens already streamed
} token_list;

typedef struct {
    conn *c;
    api_kind kind;
    int stream;                   // 1: server-sent events as text arrives
    sbuf texts[MAX_CHOICES];      // (n_choices) the whole generated text of each choice
    int32_t top_k;                // logprobs: the top tokens each token reports; -1 = no logprobs
    const plm_tokenizer *tok;     // the request's (token texts)
    int32_t n_vocab;              // logits per token
    size_t text_offset;           // completions' text_offset: the prompt's bytes
    token_list toks[MAX_CHOICES]; // (n_choices) with logprobs: each choice's tokens
    oai_head h;                   // completions and chat: id, created, model
    char id[32];                  // "cmpl-N" or "chatcmpl-N" (h.id)
    int32_t index;                // the choice being generated
    int first;                    // no event has been sent for this choice yet
    int stopped;                  // generation was stopped: client gone or server stopping
} gen_ctx;

// reported: the logprobs of choice i's tokens from its first unsent one up to those that begin
// past `end` bytes of its text (not in the answer, or not streamed yet); NULL without logprobs
static const oai_logprobs *reported(const gen_ctx *g, int32_t i, size_t end, oai_logprobs *lp) {
    const token_list *l = &g->toks[i];
    if (g->top_k < 0) return NULL;
    int32_t n = l->sent;
    while (n < l->n && l->t[n].offset < end) n++;
    *lp = (oai_logprobs){l->t + l->sent, n - l->sent, g->top_k, g->tok, g->text_offset};
    return lp;
}

// sse_chunk: one "data: {...}\n\n" event carrying a piece of text (the end of the choice's text
// so far), and the tokens that begin in it
static int sse_chunk(gen_ctx *g, const char *text, size_t len, const char *finish) {
    sbuf b = {0};
    if (g->kind != API_PARAPHRASE) {
        oai_logprobs lp;
        const oai_logprobs *l = finish ? NULL : reported(g, g->index, g->texts[g->index].n, &lp);
        plm_server_oai_chunk(&b, &g->h, g->index, text, len, l, finish, g->first);
        if (l) g->toks[g->index].sent += l->n;
        g->first = 0;
    } else {
        plm_sbuf_add(&b, "data: {\"text\": ", 15);
        plm_sbuf_json_str(&b, text, len);
        plm_sbuf_add(&b, "}\n\n", 3);
    }
    int rc = b.oom ? -1 : plm_server_send_all(g->c, b.p, b.n);
    free(b.p);
    return rc;
}

// gen_should_stop: the server is stopping or the client has gone (asked during the prefill and
// before every token, so that neither waits for a long prompt)
static int gen_should_stop(void *user) {
    gen_ctx *g = user;
    if (plm_server_stopping(g->c->srv) || plm_server_client_gone(g->c)) g->stopped = 1;
    return g->stopped;
}

// on_token: with logprobs, the token's log-probabilities and where its text starts
static int on_token(void *user, int32_t id, const float *logits) {
    gen_ctx *g = user;
    token_list *l = &g->toks[g->index];
    if (l->n == l->cap) {
        int32_t cap = l->cap ? 2 * l->cap : 64;
        oai_token *t = realloc(l->t, (size_t)cap * sizeof *t);
        if (!t) return g->stopped = 1;
        l->t = t;
        l->cap = cap;
    }
    oai_token *t = &l->t[l->n++];
    double lp, top[MAX_TOP_LOGPROBS];
    plm_logprobs(logits, g->n_vocab, id, &lp, g->top_k, t->top_ids, top, NULL);
    t->id = id;
    t->logprob = (float)lp;
    for (int32_t j = 0; j < g->top_k; j++) t->top[j] = (float)top[j];
    t->offset = l->end;
    int64_t n = plm_tokenizer_decode(g->tok, &id, 1, NULL, 0); // as the generator's text grows
    l->end += n > 0 ? (size_t)n : 0;
    return 0;
}

static int on_text(void *user, const char *text, size_t len) {
    gen_ctx *g = user;
    if (plm_server_stopping(g->c->srv) || plm_server_client_gone(g->c)) return g->stopped = 1;
    plm_sbuf_add(&g->texts[g->index], text, len);
    if (g->texts[g->index].oom) return g->stopped = 1;
    if (g->stream && sse_chunk(g, text, len, NULL)) return g->stopped = 1;
    return 0;
}

// opt_num: the number at key in the request object, range-checked; 0 = absent or fine, -1 = sent
// 400
static int opt_num(conn *c, const plm_json *j, const char *key, double lo, double hi, double *out) {
    int32_t i = plm_json_get(j, 0, key);
    if (i < 0 || j->tok[i].type == PLM_JSON_NULL) return 0;
    double v;
    if (plm_json_num(j, i, &v) || !(v >= lo && v <= hi))
        return plm_server_send_error(c, 400, NULL, "\"%s\" must be a number in [%g, %g]", key, lo,
                                     hi),
               -1;
    *out = v;
    return 0;
}

// json_dup: the decoded string at token i as a new NUL-terminated buffer (*len bytes), or NULL
static char *json_dup(const plm_json *j, int32_t i, size_t *len) {
    int64_t n = plm_json_str(j, i, NULL, 0);
    if (n < 0) return NULL;
    char *s = malloc((size_t)n + 1);
    if (s) plm_json_str(j, i, s, (size_t)n + 1);
    if (len) *len = (size_t)n;
    return s;
}

static const char *finish_reason(plm_stop_reason r) {
    return r == PLM_STOP_LENGTH || r == PLM_STOP_CONTEXT ? "length" : "stop";
}

void plm_server_gen_request_free(gen_request *r) {
    if (r->srv) plm_server_adapter_release(r->srv, r->entry);
    for (int32_t k = 0; k < r->n_stops; k++) free(r->stops[k]);
    free(r->prompt);
    free(r->source);
}

// parse_stops: "stop": a string or an array of at most MAX_STOP_STRINGS non-empty strings
static int parse_stops(conn *c, const plm_json *j, gen_request *r) {
    int32_t pi = plm_json_get(j, 0, "stop");
    int32_t n = pi < 0 || j->tok[pi].type == PLM_JSON_NULL ? 0
                : j->tok[pi].type == PLM_JSON_STRING       ? 1
                : j->tok[pi].type == PLM_JSON_ARRAY        ? j->tok[pi].size
                                                           : -1;
    if (n < 0 || n > MAX_STOP_STRINGS) goto bad;
    for (int32_t k = 0; k < n; k++) {
        int32_t e = j->tok[pi].type == PLM_JSON_STRING ? pi : plm_json_at(j, pi, k);
        if (j->tok[e].type != PLM_JSON_STRING) goto bad;
        if (!(r->stops[r->n_stops++] = json_dup(j, e, NULL)))
            return plm_server_send_error(c, 500, NULL, "out of memory"), -1;
        if (!r->stops[r->n_stops - 1][0]) goto bad;
    }
    return 0;
bad:
    return plm_server_send_error(
               c, 400, NULL,
               "\"stop\" must be a non-empty string or an array of at most %d of them",
               MAX_STOP_STRINGS),
           -1;
}

// parse_logprobs: chat's "logprobs" (true or false) and "top_logprobs" (0 to MAX_TOP_LOGPROBS,
// with "logprobs": true), completions' "logprobs" (the same count) into r->top_k (-1: none).
// Returns 0, or -1 after sending the error.
static int parse_logprobs(conn *c, const plm_json *j, gen_request *r) {
    int32_t li = plm_json_get(j, 0, "logprobs"), ti = plm_json_get(j, 0, "top_logprobs");
    int on = li >= 0 && j->tok[li].type != PLM_JSON_NULL;
    double k = 0;
    if (r->kind == API_COMPLETIONS) {
        if (ti >= 0 && j->tok[ti].type != PLM_JSON_NULL)
            return plm_server_send_error(c, 400, NULL,
                                         "\"top_logprobs\" is for chat: completions take "
                                         "\"logprobs\": N"),
                   -1;
        if (opt_num(c, j, "logprobs", 0, MAX_TOP_LOGPROBS, &k)) return -1;
    } else {
        if (on && (on = plm_json_bool(j, li)) < 0)
            return plm_server_send_error(c, 400, NULL, "\"logprobs\" must be true or false"), -1;
        if (opt_num(c, j, "top_logprobs", 0, MAX_TOP_LOGPROBS, &k)) return -1;
        if (!on && ti >= 0 && j->tok[ti].type != PLM_JSON_NULL)
            return plm_server_send_error(c, 400, NULL, "\"top_logprobs\" needs \"logprobs\": true"),
                   -1;
    }
    if (k != floor(k))
        return plm_server_send_error(c, 400, NULL, "\"%s\" must be an integer in [0, %d]",
                                     r->kind == API_CHAT ? "top_logprobs" : "logprobs",
                                     MAX_TOP_LOGPROBS),
               -1;
    r->top_k = on ? (int32_t)k : -1;
    return 0;
}

// parse_openai: what /v1/completions and /v1/chat/completions add: "model", "n",
// "stream_options", logprobs, and the options this server does not have ("echo", "suffix",
// "best_of", "tools": 400 when asked for). Returns 0, or -1 after sending the error.
static int parse_openai(conn *c, const plm_json *j, gen_request *r) {
    static const char *const unsupported[] = {"echo", "suffix", "tools", "best_of"};
    for (size_t k = 0; k < sizeof unsupported / sizeof unsupported[0]; k++) {
        int32_t i = plm_json_get(j, 0, unsupported[k]);
        if (i >= 0 && j->tok[i].type != PLM_JSON_NULL && j->tok[i].type != PLM_JSON_FALSE)
            return plm_server_send_error(c, 400, NULL, "\"%s\" is not supported by this server",
                                         unsupported[k]),
                   -1;
    }
    if (parse_logprobs(c, j, r)) return -1;
    double n = 1;
    if (opt_num(c, j, "n", 1, MAX_CHOICES, &n)) return -1;
    if (n != (int32_t)n)
        return plm_server_send_error(c, 400, NULL, "\"n\" must be an integer in [1, %d]",
                                     MAX_CHOICES),
               -1;
    r->n_choices = (int32_t)n;
    int32_t so = plm_json_get(j, 0, "stream_options");
    int32_t iu =
        so >= 0 && j->tok[so].type == PLM_JSON_OBJECT ? plm_json_get(j, so, "include_usage") : -1;
    if (so >= 0 && j->tok[so].type != PLM_JSON_NULL &&
        (j->tok[so].type != PLM_JSON_OBJECT || (iu >= 0 && plm_json_bool(j, iu) < 0)))
        return plm_server_send_error(c, 400, NULL,
                                     "\"stream_options\" must be {\"include_usage\": true or "
                                     "false}"),
               -1;
    r->include_usage = iu >= 0 && plm_json_bool(j, iu) == 1;
    return 0;
}

// parse_decoding: the anti-copy options into gp: "candidates" (an integer), "block" (the share of
// the source's bigrams; outright unless "copy_penalty" is given), "copy_penalty", "rerank_weight",
// "copy_retry", "copy_deviate" (an integer), "keep_facts" (a boolean).
// Returns 0, or -1 after sending the error.
static int parse_decoding(conn *c, const plm_json *j, plm_generate_params *gp) {
    double cand = gp->candidates > 1 ? gp->candidates : 1, block = -1;
    double penalty = (double)gp->copy_penalty, weight = (double)gp->rerank_weight;
    double retry = (double)gp->copy_retry, dev = gp->copy_deviate;
    if (opt_num(c, j, "candidates", 1, 64, &cand) || opt_num(c, j, "block", 0, 1, &block) ||
        opt_num(c, j, "copy_penalty", 0, 1e30, &penalty) ||
        opt_num(c, j, "rerank_weight", 0, 100, &weight) ||
        opt_num(c, j, "copy_retry", 0, 1e30, &retry) || opt_num(c, j, "copy_deviate", 0, 64, &dev))
        return -1;
    if (cand != floor(cand))
        return plm_server_send_error(c, 400, NULL, "\"candidates\" must be an integer in [1, 64]"),
               -1;
    if (dev != floor(dev))
        return plm_server_send_error(c, 400, NULL,
                                     "\"copy_deviate\" must be an integer in [0, 64]"),
               -1;
    int32_t kf = plm_json_get(j, 0, "keep_facts");
    if (kf >= 0 && j->tok[kf].type != PLM_JSON_NULL) {
        int on = plm_json_bool(j, kf);
        if (on < 0)
            return plm_server_send_error(c, 400, NULL, "\"keep_facts\" must be true or false"), -1;
        gp->keep_facts = on;
    }
    gp->candidates = (int32_t)cand;
    gp->copy_penalty = (float)penalty;
    gp->rerank_weight = (float)weight;
    gp->copy_retry = (float)retry;
    gp->copy_deviate = (int32_t)dev;
    if (block >= 0) {
        int32_t pi = plm_json_get(j, 0, "copy_penalty");
        gp->copy_block = (float)block;
        if (pi < 0 || j->tok[pi].type == PLM_JSON_NULL) gp->copy_penalty = INFINITY;
    }
    return 0;
}

// The paraphrase defaults are the task's (plm_task_default_params, as the CLI's); the completion
// defaults are OpenAI's: temperature 1, 16 tokens.
int plm_server_parse_generate(conn *c, api_kind kind, gen_request *r) {
    int32_t n_ctx = c->srv->n_ctx;
    plm_json j = {0};
    plm_error err = {0};
    int rc = -1;
    r->kind = kind;
    r->n_choices = 1;
    r->top_k = -1;
    r->gp = kind == API_PARAPHRASE ? plm_task_default_params() : plm_generate_default_params();
    if (kind != API_PARAPHRASE) r->gp.sampler.temperature = 1.0f;
    if (kind == API_COMPLETIONS) r->gp.max_tokens = 16;
    if (kind == API_CHAT) r->gp.max_tokens = n_ctx; // up to the context's end
    if (!c->body || plm_json_parse(&j, c->body, c->body_len, "request body", &err) != PLM_OK) {
        plm_server_send_error(c, 400, NULL, "%s", c->body ? err.msg : "the request has no body");
        goto done;
    }
    if (j.tok[0].type != PLM_JSON_OBJECT) {
        plm_server_send_error(c, 400, NULL, "the request body must be a JSON object");
        goto done;
    }
    if (plm_server_pick_adapter(c, &j, &r->entry, &r->lora, r->model)) goto done;
    r->srv = c->srv; // holds the adapter's reference from here
    r->tok = r->lora ? plm_lora_tokenizer(r->lora) : NULL;
    if (!r->tok) r->tok = plm_model_tokenizer(c->srv->p->model);
    if (kind != API_PARAPHRASE && parse_openai(c, &j, r)) goto done;
    const char *key = kind == API_PARAPHRASE ? "text" : "prompt";
    int32_t ti = plm_json_get(&j, 0, key);
    if (kind != API_CHAT && (ti < 0 || j.tok[ti].type != PLM_JSON_STRING)) {
        plm_server_send_error(c, 400, NULL, "\"%s\" must be a string", key);
        goto done;
    }
    // paraphrase: "diversity" first, as `pocketlm paraphrase --diversity`: it sets the control code
    // and the decoding settings (plm_paraphrase_diversity), which the options below override
    double diversity = (double)PLM_TASK_DIVERSITY_DEFAULT;
    if (kind == API_PARAPHRASE) {
        r->task = plm_task_of(r->tok);
        if (opt_num(c, &j, "diversity", 0, 1, &diversity)) goto done;
        plm_paraphrase_diversity(&r->task, &r->gp, (float)diversity, NULL);
    }
    if (parse_decoding(c, &j, &r->gp)) goto done;
    if (r->top_k >= 0 && (r->gp.candidates > 1 || r->gp.copy_retry > 0.0f)) {
        plm_server_send_error(c, 400, NULL,
                              "logprobs are of one sampled output: not with \"candidates\" or "
                              "\"copy_retry\"");
        goto done;
    }
    plm_sampler_params *sp = &r->gp.sampler;
    double max_tokens = r->gp.max_tokens, temp = (double)sp->temperature, top_k = sp->top_k;
    double top_p = (double)sp->top_p, seed = -1;
    if (opt_num(c, &j, "max_tokens", 0, n_ctx, &max_tokens) ||
        opt_num(c, &j, "max_completion_tokens", 0, n_ctx, &max_tokens) ||
        opt_num(c, &j, "temperature", 0, 100, &temp) ||
        opt_num(c, &j, "top_k", 0, 1 << 24, &top_k) || opt_num(c, &j, "top_p", 1e-6, 1, &top_p) ||
        opt_num(c, &j, "seed", 0, 9007199254740991.0, &seed))
        goto done;
    r->gp.max_tokens = (int32_t)max_tokens;
    sp->temperature = (float)temp;
    sp->top_k = (int32_t)top_k;
    sp->top_p = (float)top_p;
    r->n_req = atomic_fetch_add(&c->srv->n_req, 1);
    sp->seed = seed >= 0 ? (uint64_t)seed : (uint64_t)time(NULL) * 2654435761u + r->n_req;
    int32_t si = plm_json_get(&j, 0, "stream");
    if (si >= 0 && j.tok[si].type != PLM_JSON_NULL && (r->stream = plm_json_bool(&j, si)) < 0) {
        plm_server_send_error(c, 400, NULL, "\"stream\" must be true or false");
        goto done;
    }
    if (r->stream && r->n_choices > 1) {
        plm_server_send_error(c, 400, NULL, "\"n\" > 1 is answered without \"stream\"");
        goto done;
    }
    char *input = NULL;
    if (kind == API_CHAT) {
        if (plm_server_chat_prompt(c, &j, r->tok, &r->prompt, &r->plen, &r->stop_id)) goto done;
        r->gp.stop_tokens = &r->stop_id;
        r->gp.n_stop_tokens = 1;
    } else if (!(input = json_dup(&j, ti, &r->plen))) {
        plm_server_send_error(c, 500, NULL, "out of memory");
        goto done;
    } else if (kind == API_COMPLETIONS) {
        r->prompt = input;
    } else if (plm_task_check(input, &err) != PLM_OK) {
        free(input);
        plm_server_send_error(c, 400, NULL, "\"text\": %s", err.msg);
        goto done;
    } else {
        // the task's prompt and stop rule under the adapter's tokenizer, as `pocketlm paraphrase`;
        // the input is what blocking and reranking keep the output away from
        r->plen = plm_task_text(&r->task, input, NULL, NULL, 0);
        r->prompt = malloc(r->plen + 1);
        if (r->prompt) plm_task_text(&r->task, input, NULL, r->prompt, r->plen + 1);
        r->source = input;
        r->gp.source = input;
        if (!r->prompt) {
            plm_server_send_error(c, 500, NULL, "out of memory");
            goto done;
        }
        plm_task_stop(&r->task, &r->gp);
    }
    if (kind != API_PARAPHRASE && parse_stops(c, &j, r)) goto done;
    for (int32_t k = 0; k < r->n_stops; k++) r->stop_list[k] = r->stops[k];
    r->gp.stop_strings = r->stop_list;
    r->gp.n_stop_strings = r->n_stops;
    rc = 0;
done:
    plm_json_free(&j);
    return rc;
}

// respond_generate: the answer after a successful generation: one JSON object, or the last
// events of a stream (the final chunk, usage when asked, and [DONE]). reasons: each choice's
// finish reason; n_out: the tokens generated over all choices; res: the last choice's.
static void respond_generate(gen_ctx *g, const gen_request *r, const plm_generate_result *res,
                             const char *const *reasons, int32_t n_out) {
    conn *c = g->c;
    sbuf b = {0};
    if (r->kind != API_PARAPHRASE) {
        if (r->stream) {
            g->index = 0; // streamed requests have one choice
            sse_chunk(g, "", 0, reasons[0]);
            if (r->include_usage) plm_server_oai_usage_chunk(&b, &g->h, res->prompt_tokens, n_out);
            plm_sbuf_add(&b, "data: [DONE]\n\n", 14);
            if (!b.oom) plm_server_send_all(c, b.p, b.n);
        } else {
            oai_logprobs lps[MAX_CHOICES];
            for (int32_t i = 0; i < r->n_choices; i++) reported(g, i, g->texts[i].n, &lps[i]);
            plm_server_oai_response(&b, &g->h, g->texts, g->top_k < 0 ? NULL : lps, reasons,
                                    r->n_choices, res->prompt_tokens, n_out);
            plm_server_send_json(c, 200, &b, NULL);
        }
        free(b.p);
        return;
    }
    double pre = res->prefill_seconds > 0 ? res->prompt_tokens / res->prefill_seconds : 0;
    double dec = res->decode_seconds > 0 ? res->sampled_tokens / res->decode_seconds : 0;
    const sbuf *text = &g->texts[0];
    plm_sbuf_add(
        &b, r->stream ? "data: {\"done\": true, \"text\": " : "{\"text\": ", r->stream ? 29 : 9);
    plm_sbuf_json_str(&b, text->p ? text->p : "", text->n);
    plm_sbuf_addf(&b,
                  ", \"tokens\": %d, \"prompt_tokens\": %d, \"stop_reason\": \"%s\", "
                  "\"prefill_tok_s\": %.1f, \"decode_tok_s\": %.1f, \"seed\": %llu, "
                  "\"candidates\": %d, \"sampled_tokens\": %d}",
                  n_out, res->prompt_tokens, plm_stop_reason_name(res->stop_reason), pre, dec,
                  (unsigned long long)r->gp.sampler.seed,
                  res->candidates_done ? res->candidates_done : 1, res->sampled_tokens);
    if (r->stream) {
        plm_sbuf_add(&b, "\n\ndata: [DONE]\n\n", 16);
        if (!b.oom) plm_server_send_all(c, b.p, b.n);
    } else {
        plm_sbuf_add(&b, "\n", 1);
        plm_server_send_json(c, 200, &b, NULL);
    }
    free(b.p);
}

// seat: the seat and the session of a request: positions for the prompt (n tokens) and what it
// may generate, at most the server's context; *kv_bytes what they hold. Returns 0, or -1 after
// sending the error (the queue is full, the server is stopping, or the request can never fit).
static int seat(conn *c, const gen_request *r, int32_t n, plm_session **ses, int64_t *kv_bytes) {
    server *s = c->srv;
    plm_error err = {0};
    int64_t want = (int64_t)n + r->gp.max_tokens + 1; // the last token is never fed back
    int32_t n_ctx = want < s->n_ctx ? (int32_t)want : s->n_ctx;
    *kv_bytes = plm_session_kv_bytes(s->p->model, n_ctx, s->p->kv_type);
    if (*kv_bytes > s->kv_budget)
        return plm_server_send_error(c, 400, NULL,
                                     "the prompt and max_tokens need %d positions of KV cache "
                                     "(%lld MB); serve --kv-budget allows %lld MB",
                                     n_ctx, (long long)(*kv_bytes >> 20),
                                     (long long)(s->kv_budget >> 20)),
               -1;
    int q = plm_server_seat_acquire(s, *kv_bytes);
    if (q < 0)
        return plm_server_send_error(c, 503, "Retry-After: 1\r\n", "%s",
                                     q == -1 ? "busy: too many requests waiting, retry later"
                                             : "the server is stopping"),
               -1;
    if (plm_session_create_batched(ses, s->batch, r->lora, n_ctx, &err) != PLM_OK) {
        plm_server_seat_release(s, *kv_bytes);
        return plm_server_send_error(c, 500, NULL, "%s", err.msg), -1;
    }
    return 0;
}

// plm_server_handle_generate: /v1/paraphrase, /v1/completions and /v1/chat/completions: parse,
// pick the adapter, tokenize (the tokenizer is shared read-only, so before waiting), wait for a
// seat, generate each choice in turn on the request's session (streaming when asked), answer.
void plm_server_handle_generate(conn *c, api_kind kind) {
    server *s = c->srv;
    gen_request r;
    gen_ctx g;
    memset(&r, 0, sizeof r);
    memset(&g, 0, sizeof g);
    r.entry = -1;
    int32_t *ids = NULL;
    plm_session *ses = NULL;
    int64_t kv_bytes = 0;
    plm_error err = {0};
    if (!s->batch) {
        plm_server_send_error(c, 503, NULL, "this server has no model loaded");
        return;
    }
    if (!c->req.json) {
        plm_server_send_error(c, 415, NULL, "send the body as Content-Type: application/json");
        return;
    }
    if (plm_server_parse_generate(c, kind, &r)) goto done;
    if (s->p->log_prompts) plm_server_log(s, "%s prompt: %.*s", c->peer, (int)r.plen, r.prompt);
    int32_t n = plm_tokenizer_encode(r.tok, r.prompt, r.plen, NULL, 0);
    if (n <= 0 || n >= s->n_ctx) {
        if (n < 0) plm_server_send_error(c, 500, NULL, "out of memory");
        else if (n == 0) plm_server_send_error(c, 400, NULL, "the prompt is empty");
        else
            plm_server_send_error(c, 400, NULL, "the prompt is %d tokens; the context holds %d", n,
                                  s->n_ctx);
        goto done;
    }
    if (!(ids = malloc((size_t)n * sizeof *ids))) {
        plm_server_send_error(c, 500, NULL, "out of memory");
        goto done;
    }
    plm_tokenizer_encode(r.tok, r.prompt, r.plen, ids, n);
    if (seat(c, &r, n, &ses, &kv_bytes)) goto done;
    g.c = c;
    g.kind = kind;
    g.stream = r.stream;
    snprintf(g.id, sizeof g.id, "%s-%llu", kind == API_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)r.n_req);
    g.h = (oai_head){kind, g.id, (long long)time(NULL), r.model};
    g.top_k = r.top_k;
    g.tok = r.tok;
    g.n_vocab = plm_session_n_vocab(ses);
    g.text_offset = r.plen;
    if (g.stream) plm_server_send_head(c, 200, "text/event-stream", -1, NULL);
    if (g.top_k >= 0) r.gp.on_token = on_token;
    r.gp.on_text = on_text;
    r.gp.should_stop = gen_should_stop;
    r.gp.user = &g;
    plm_generate_result res;
    const char *reasons[MAX_CHOICES];
    int32_t n_out = 0; // tokens generated, all choices
    uint64_t seed = r.gp.sampler.seed;
    plm_status st = PLM_OK;
    for (g.index = 0; g.index < r.n_choices && st == PLM_OK && !g.stopped; g.index++) {
        g.first = 1;
        r.gp.sampler.seed = seed + (uint64_t)g.index; // each choice its own draws
        plm_session_truncate(ses, 0);
        st = plm_generate(ses, ids, n, &r.gp, NULL, 0, &res, &err);
        if (st != PLM_OK) break;
        reasons[g.index] = finish_reason(res.stop_reason);
        n_out += res.generated_tokens - (res.stop_reason == PLM_STOP_TOKEN);
    }
    r.gp.sampler.seed = seed;
    plm_session_free(ses); // leaves the batch: the others' next steps run without it
    plm_server_seat_release(s, kv_bytes);
    if (st == PLM_ERR_CANCELLED && g.stopped) {
        // stopped during the prompt: the client left, or the server is stopping
    } else if (st != PLM_OK && !g.stream) {
        plm_server_send_error(c, 500, NULL, "%s", err.msg);
    } else if (st != PLM_OK) {
        sbuf b = {0};
        plm_sbuf_add(&b, "data: {\"error\": {\"message\": ", 28);
        plm_sbuf_json_str(&b, err.msg, strlen(err.msg));
        plm_sbuf_add(&b, "}}\n\n", 4);
        if (!b.oom) plm_server_send_all(c, b.p, b.n);
        free(b.p);
    } else if (!g.stopped) { // else the client left, or the server is stopping: nobody to answer
        respond_generate(&g, &r, &res, reasons, n_out);
    }
done:
    for (int32_t k = 0; k < MAX_CHOICES; k++) free(g.texts[k].p), free(g.toks[k].t);
    free(ids);
    plm_server_gen_request_free(&r);
}

void plm_server_handle_health(conn *c) {
    server *s = c->srv;
    plm_batch_stats bs = {0};
    if (s->batch) plm_batch_stats_get(s->batch, &bs);
    char adapter[NAME_MAX_LEN + 1];
    sbuf names = {0}, b = {0};
    plm_server_adapter_names(s, adapter, &names);
    pthread_mutex_lock(&s->lock);
    int active = s->gen_active, waiting = s->gen_waiting;
    long long kv_used = (long long)s->kv_used;
    pthread_mutex_unlock(&s->lock);
    // the model: as named to the server (its file), as its file names it, and its adapters
    const char *name = s->p->model ? plm_model_name(s->p->model) : "";
    plm_sbuf_add(&b, "{\"status\": \"ok\", \"model\": ", 26);
    plm_sbuf_json_str(&b, s->p->model_name, strlen(s->p->model_name));
    plm_sbuf_add(&b, ", \"name\": ", 10);
    plm_sbuf_json_str(&b, name, strlen(name));
    plm_sbuf_add(&b, ", \"adapter\": ", 13);
    plm_sbuf_json_str(&b, adapter, strlen(adapter));
    plm_sbuf_add(&b, ", \"adapters\": ", 14);
    plm_sbuf_add(&b, names.p ? names.p : "[]", names.p ? names.n : 2);
    plm_sbuf_addf(
        &b, ", \"loaded\": %s, \"busy\": %s, \"active\": %d, \"waiting\": %d, \"max_pending\": %d",
        s->p->model ? "true" : "false", active ? "true" : "false", active, waiting,
        s->p->max_pending);
    plm_sbuf_addf(
        &b,
        ", \"max_batch\": %d, \"kv_type\": \"%s\", \"kv_used\": %lld, \"kv_budget\": %lld, "
        "\"steps\": %llu, "
        "\"step_seqs\": %llu, \"step_rows\": %llu, \"step_seconds\": %.3f, "
        "\"max_step_seqs\": %d, \"coi\": %s}\n",
        s->p->max_batch, plm_dtype_name(s->p->kv_type), kv_used, (long long)s->kv_budget,
        (unsigned long long)bs.steps, (unsigned long long)bs.seqs, (unsigned long long)bs.rows,
        bs.step_seconds, bs.max_step_seqs, s->p->coi ? "true" : "false");
    if (names.oom) b.oom = 1;
    plm_server_send_json(c, 200, &b, NULL);
    free(names.p);
    free(b.p);
}

#endif // !__EMSCRIPTEN__
