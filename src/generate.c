// generate.c: plm_generate, the loop of sampling a token, streaming its text and feeding it back.
// Text is streamed only when it is complete UTF-8 and cannot turn into a stop string any more, so
// a caller never sees half a character nor the beginning of a stop string.
#include <stdlib.h>
#include <string.h>

#include "model.h"

// PREFILL_SLICE: tokens of the prompt decoded between two should_stop questions (about 60 ms of
// prefill on 2 Zen 4 cores). The logits do not depend on how a prompt is split (every row of every
// kernel is summed in one fixed order), so the result is bit for bit that of one call.
#define PREFILL_SLICE 64

const char *plm_stop_reason_name(plm_stop_reason r) {
    switch (r) {
    case PLM_STOP_LENGTH: return "length";
    case PLM_STOP_TOKEN: return "token";
    case PLM_STOP_STRING: return "string";
    case PLM_STOP_CONTEXT: return "context";
    case PLM_STOP_CALLBACK: return "callback";
    }
    return "unknown";
}

plm_generate_params plm_generate_default_params(void) {
    plm_generate_params p;
    memset(&p, 0, sizeof p);
    p.max_tokens = 256;
    p.sampler = plm_sampler_default_params();
    return p;
}

// utf8_complete: length of the longest prefix of s (n) that does not end inside a UTF-8 sequence.
static size_t utf8_complete(const char *s, size_t n) {
    size_t i = n, back = 0;
    while (i > 0 && back < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) i--, back++;
    if (i == 0) return n;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (want > 1 && back + 1 < want) return i - 1; // the sequence at i-1 is not finished
    return n;
}

// holdback: bytes at the end of text (n) that are a proper prefix of some stop string.
static size_t holdback(const char *text, size_t n, const plm_generate_params *p) {
    size_t keep = 0;
    for (int32_t k = 0; k < p->n_stop_strings; k++) {
        size_t m = strlen(p->stop_strings[k]);
        for (size_t len = m - 1 < n ? m - 1 : n; len > keep; len--)
            if (!memcmp(text + n - len, p->stop_strings[k], len)) {
                keep = len;
                break;
            }
    }
    return keep;
}

// find_stop: offset of the earliest stop string in text (n) at or after from, or n.
static size_t find_stop(const char *text, size_t n, size_t from, const plm_generate_params *p) {
    size_t best = n;
    for (int32_t k = 0; k < p->n_stop_strings; k++) {
        size_t m = strlen(p->stop_strings[k]);
        if (m == 0) continue;
        for (size_t i = from; i + m <= n && i < best; i++)
            if (!memcmp(text + i, p->stop_strings[k], m)) {
                best = i;
                break;
            }
    }
    return best;
}

// ---- the generator: one token per call ----

struct plm_generator {
    plm_session *s;           // borrowed
    plm_generate_params p;    // the settings (stop_strings borrowed)
    const plm_tokenizer *tok; // the session's, or NULL (then no text)
    int32_t eos;              // the default stop token
    const int32_t *stops;     // stop ids: p.stop_tokens, or &eos
    int32_t n_stops;
    plm_sampler *smp; // owned
    int32_t *hist;    // (n_prompt + max_tokens + 1) prompt then generated ids
    int32_t n_hist;
    float *logits;           // (n_vocab) copy_penalty's working copy of the logits, or NULL
    int32_t last;            // the id sampled by the last call, -1 for none or a stop token
    int pending;             // 1: last is not in the KV cache yet (decoded if we go on)
    int started;             // single_line: text other than white space has come
    int done;                // finished: res.stop_reason says why
    char *text;              // all text so far
    size_t len, cap;         // its bytes, allocated
    size_t sent;             // bytes already handed out
    plm_generate_result res; // counts, stop reason, times
};

void plm_generator_free(plm_generator *g) {
    if (!g) return;
    plm_sampler_free(g->smp);
    free(g->hist);
    free(g->logits);
    free(g->text);
    free(g);
}

plm_status plm_generator_create(plm_generator **out, plm_session *s, const int32_t *prompt,
                                int32_t n_prompt, const plm_generate_params *params,
                                plm_error *err) {
    if (!out || !s || !params || n_prompt < 1 || !prompt || params->max_tokens < 0 ||
        !(params->copy_penalty >= 0.0f))
        return plm_fail(err, PLM_ERR_ARG, "generate: bad arguments");
    *out = NULL;
    plm_generator *g = plm_alloc(1, sizeof *g);
    if (!g) return plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    g->s = s;
    g->p = *params;
    g->tok = plm_session_tokenizer(s);
    g->eos = plm_session_model(s)->config.eos_token_id;
    g->stops = params->stop_tokens ? params->stop_tokens : &g->eos;
    g->n_stops = params->stop_tokens ? params->n_stop_tokens : (g->eos >= 0 ? 1 : 0);
    g->last = -1;
    g->res.prompt_tokens = n_prompt;
    g->hist = plm_alloc((size_t)n_prompt + (size_t)params->max_tokens + 1, sizeof *g->hist);
    if (params->copy_penalty > 0.0f)
        g->logits = plm_alloc((size_t)plm_session_n_vocab(s), sizeof *g->logits);
    plm_status rc = g->hist && (g->logits || params->copy_penalty == 0.0f)
                        ? plm_sampler_create(&g->smp, &params->sampler, plm_session_n_vocab(s), err)
                        : plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    if (rc == PLM_OK) {
        memcpy(g->hist, prompt, (size_t)n_prompt * sizeof *g->hist);
        g->n_hist = n_prompt;
        double t0 = plm_time();
        for (int32_t i = 0; rc == PLM_OK && i < n_prompt; i += PREFILL_SLICE) { // the prefill
            if (i > 0 && params->should_stop && params->should_stop(params->user)) {
                rc = plm_fail(err, PLM_ERR_CANCELLED,
                              "generate: stopped during the prompt (%d of "
                              "%d tokens)",
                              i, n_prompt);
                break;
            }
            int32_t k = n_prompt - i < PREFILL_SLICE ? n_prompt - i : PREFILL_SLICE;
            rc = plm_session_decode(s, prompt + i, k, err);
        }
        g->res.prefill_seconds = plm_time() - t0;
    }
    if (rc != PLM_OK) {
        plm_generator_free(g);
        return rc;
    }
    *out = g;
    return PLM_OK;
}

// copy_penalized: the session's logits, with copy_penalty taken from each token that would go on
// copying the prompt: the output's last ids are matched against every place in the prompt, and
// the tokens that followed the longest matches (one token at least) are the copying ones.
static const float *copy_penalized(plm_generator *g) {
    const float *logits = plm_session_logits(g->s);
    if (!g->logits) return logits;
    const int32_t *src = g->hist, *o = g->hist + g->res.prompt_tokens;
    int32_t np = g->res.prompt_tokens, k = g->n_hist - np, best = 1;
    memcpy(g->logits, logits, (size_t)plm_session_n_vocab(g->s) * sizeof *g->logits);
    for (int pass = 0; pass < 2; pass++)   // the longest match, then the tokens after it
        for (int32_t j = 1; j < np; j++) { // src[j] follows the stretch that ends at src[j - 1]
            int32_t l = 0;
            while (l < k && l < j && src[j - 1 - l] == o[k - 1 - l]) l++;
            if (pass == 0 && l > best) best = l;
            // each id once: a penalized logit differs from the original (or the penalty is lost
            // in its rounding, and then subtracting it again changes nothing either)
            if (pass == 1 && l == best && g->logits[src[j]] == logits[src[j]])
                g->logits[src[j]] -= g->p.copy_penalty;
        }
    return g->logits;
}

// append: the text of token id to g->text
static plm_status append(plm_generator *g, int32_t id, plm_error *err) {
    char piece[256];
    int64_t n = plm_tokenizer_decode(g->tok, &id, 1, piece, sizeof piece);
    if (n < 0 || (size_t)n > sizeof piece)
        return plm_fail(err, PLM_ERR_FORMAT, "generate: cannot decode token %d", id);
    if (g->len + (size_t)n + 1 > g->cap) {
        size_t ncap = (g->cap + (size_t)n) * 2 + 256;
        char *t = realloc(g->text, ncap);
        if (!t) return plm_fail(err, PLM_ERR_NOMEM, "out of memory");
        g->text = t;
        g->cap = ncap;
    }
    memcpy(g->text + g->len, piece, (size_t)n);
    g->len += (size_t)n;
    return PLM_OK;
}

// finish: end for reason; the text up to `upto` is handed out by this call
static int finish(plm_generator *g, plm_stop_reason reason, size_t upto) {
    g->done = 1;
    g->res.stop_reason = reason;
    g->len = upto;
    return 0;
}

// step: sample one token and extend the text; returns 1 to go on, 0 when finished, or an error
static int step(plm_generator *g, plm_error *err) {
    int32_t prev = g->last;
    g->last = -1;     // this call's token, once sampled
    if (g->pending) { // the last token enters the KV cache only when generation goes on
        g->pending = 0;
        if (plm_session_n_past(g->s) >= plm_session_n_ctx(g->s))
            return finish(g, PLM_STOP_CONTEXT, g->len);
        plm_status st = plm_session_decode(g->s, &prev, 1, err);
        if (st != PLM_OK) return st;
    }
    if (g->res.generated_tokens >= g->p.max_tokens) return finish(g, PLM_STOP_LENGTH, g->len);
    int32_t id = plm_sampler_sample(g->smp, copy_penalized(g), g->hist, g->n_hist);
    g->res.generated_tokens++;
    for (int32_t k = 0; k < g->n_stops; k++)
        if (id == g->stops[k]) return finish(g, PLM_STOP_TOKEN, g->len);
    g->last = id;
    g->hist[g->n_hist++] = id;
    g->pending = 1;
    if (g->tok) {
        plm_status st = append(g, id, err);
        if (st != PLM_OK) return st;
        if (g->p.single_line && !g->started) { // leading white space is not output
            for (char c; g->sent < g->len &&
                         ((c = g->text[g->sent]) == ' ' || c == '\t' || c == '\r' || c == '\n');)
                g->sent++;
            g->started = g->sent < g->len;
        }
        size_t at = find_stop(g->text, g->len, g->sent, &g->p);
        if (g->started) { // single line: the first newline after text ends the output
            const char *nl = memchr(g->text + g->sent, '\n', g->len - g->sent);
            if (nl && (size_t)(nl - g->text) < at) at = (size_t)(nl - g->text);
        }
        if (at < g->len) return finish(g, PLM_STOP_STRING, at);
    }
    if (g->res.generated_tokens >= g->p.max_tokens) return finish(g, PLM_STOP_LENGTH, g->len);
    return 1;
}

int plm_generator_next(plm_generator *g, const char **text, size_t *len, plm_error *err) {
    *text = "";
    *len = 0;
    if (g->done) return 0;
    double t0 = plm_time();
    int r = step(g, err);
    g->res.decode_seconds += plm_time() - t0;
    if (r < 0) return r;
    // what is safe to hand out: everything at the end, else complete UTF-8 that cannot still
    // become a stop string
    size_t upto = g->len;
    if (r == 1) {
        upto = utf8_complete(g->text, g->len);
        upto -= holdback(g->text, upto, &g->p);
        if (upto < g->sent) upto = g->sent;
    }
    *text = g->text ? g->text + g->sent : "";
    *len = upto - g->sent;
    g->sent = upto;
    return r;
}

int32_t plm_generator_token(const plm_generator *g) {
    return g->last;
}

const plm_generate_result *plm_generator_result(const plm_generator *g) {
    return &g->res;
}

const int32_t *plm_generator_ids(const plm_generator *g, int32_t *n) {
    *n = g->n_hist - g->res.prompt_tokens;
    return g->hist + g->res.prompt_tokens;
}

// ---- the whole loop, with callbacks ----

plm_status plm_generate(plm_session *s, const int32_t *prompt, int32_t n_prompt,
                        const plm_generate_params *params, int32_t *out_ids, int32_t cap,
                        plm_generate_result *result, plm_error *err) {
    plm_generator *g;
    plm_status rc = plm_generator_create(&g, s, prompt, n_prompt, params, err);
    if (rc != PLM_OK) return rc;
    for (;;) {
        const char *text;
        size_t len;
        if (params->should_stop && params->should_stop(params->user)) {
            g->res.stop_reason = PLM_STOP_CALLBACK;
            break;
        }
        int r = plm_generator_next(g, &text, &len, err);
        if (r < 0) {
            rc = (plm_status)r;
            break;
        }
        if (len && params->on_text && params->on_text(params->user, text, len) && r == 1) {
            g->res.stop_reason = PLM_STOP_CALLBACK;
            break;
        }
        if (r == 0) break;
    }
    int32_t n;
    const int32_t *ids = plm_generator_ids(g, &n);
    if (out_ids) memcpy(out_ids, ids, (size_t)(n < cap ? n : cap) * sizeof *ids);
    if (result) *result = g->res;
    plm_generator_free(g);
    return rc;
}
