// generate.c: plm_generate, the loop of sampling a token, streaming its text and feeding it back.
// Text is streamed only when it is complete UTF-8 and cannot turn into a stop string any more, so
// a caller never sees half a character nor the beginning of a stop string.
#include <stdlib.h>
#include <string.h>

#include "model.h"

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

typedef struct {
    char *text;    // generated text so far
    size_t len;    // its bytes
    size_t cap;    // allocated
    size_t sent;   // bytes already passed to on_text
} stream;

static int stream_append(stream *st, const char *s, size_t n) {
    if (st->len + n + 1 > st->cap) {
        size_t ncap = (st->cap + n) * 2 + 256;
        char *t = realloc(st->text, ncap);
        if (!t) return -1;
        st->text = t;
        st->cap = ncap;
    }
    memcpy(st->text + st->len, s, n);
    st->len += n;
    return 0;
}

// stream_emit: send what is safe to send (or everything when final); returns 1 if on_text stops.
static int stream_emit(stream *st, size_t upto, const plm_generate_params *p) {
    if (upto <= st->sent) return 0;
    int stop = p->on_text ? p->on_text(p->user, st->text + st->sent, upto - st->sent) : 0;
    st->sent = upto;
    return stop;
}

plm_status plm_generate(plm_session *s, const int32_t *prompt, int32_t n_prompt,
                        const plm_generate_params *params, int32_t *out_ids, int32_t cap,
                        plm_generate_result *result, plm_error *err) {
    if (!s || !params || n_prompt < 1 || !prompt || params->max_tokens < 0)
        return plm_fail(err, PLM_ERR_ARG, "generate: bad arguments");
    const plm_model *m = plm_session_model(s);
    const plm_tokenizer *tok = plm_session_tokenizer(s);
    int32_t eos = m->config.eos_token_id;
    const int32_t *stops = params->stop_tokens ? params->stop_tokens : &eos;
    int32_t n_stops = params->stop_tokens ? params->n_stop_tokens : (eos >= 0 ? 1 : 0);
    plm_generate_result res = {n_prompt, 0, PLM_STOP_LENGTH, 0.0, 0.0};
    plm_sampler *smp = NULL;
    stream st = {NULL, 0, 0, 0};
    int32_t *hist = plm_alloc((size_t)n_prompt + (size_t)params->max_tokens + 1, sizeof *hist);
    plm_status rc = hist ? plm_sampler_create(&smp, &params->sampler, plm_session_n_vocab(s), err)
                         : plm_fail(err, PLM_ERR_NOMEM, "out of memory");
    if (rc != PLM_OK) goto done;
    memcpy(hist, prompt, (size_t)n_prompt * sizeof *hist);
    int32_t n_hist = n_prompt;
    int started = 0; // single_line: text other than white space has come
    double t0 = plm_time();
    if ((rc = plm_session_decode(s, prompt, n_prompt, err)) != PLM_OK) goto done;
    res.prefill_seconds = plm_time() - t0;
    t0 = plm_time();
    for (;;) {
        if (res.generated_tokens >= params->max_tokens) break;
        int32_t id = plm_sampler_sample(smp, plm_session_logits(s), hist, n_hist);
        res.generated_tokens++;
        int is_stop = 0;
        for (int32_t k = 0; k < n_stops; k++) is_stop |= id == stops[k];
        if (is_stop) {
            res.stop_reason = PLM_STOP_TOKEN;
            break;
        }
        if (out_ids && n_hist - n_prompt < cap) out_ids[n_hist - n_prompt] = id;
        hist[n_hist++] = id;
        if (tok) { // stream the token's text
            char piece[256];
            int64_t n = plm_tokenizer_decode(tok, &id, 1, piece, sizeof piece);
            if (n < 0 || (size_t)n > sizeof piece || stream_append(&st, piece, (size_t)n) != 0) {
                rc = plm_fail(err, PLM_ERR_NOMEM, "generate: cannot decode token %d", id);
                goto done;
            }
            if (params->single_line && !started) { // leading white space is not output
                for (char c; st.sent < st.len && ((c = st.text[st.sent]) == ' ' || c == '\t' ||
                                                  c == '\r' || c == '\n');)
                    st.sent++;
                started = st.sent < st.len;
            }
            size_t at = find_stop(st.text, st.len, st.sent, params);
            if (started) { // single line: the first newline after text ends the output
                const char *nl = memchr(st.text + st.sent, '\n', st.len - st.sent);
                if (nl && (size_t)(nl - st.text) < at) at = (size_t)(nl - st.text);
            }
            if (at < st.len) {
                st.len = at;
                stream_emit(&st, at, params);
                res.stop_reason = PLM_STOP_STRING;
                break;
            }
            size_t safe = utf8_complete(st.text, st.len);
            safe -= holdback(st.text, safe, params);
            if (stream_emit(&st, safe, params)) {
                res.stop_reason = PLM_STOP_CALLBACK;
                break;
            }
        }
        if (res.generated_tokens >= params->max_tokens) break;
        if (plm_session_n_past(s) >= plm_session_n_ctx(s)) {
            res.stop_reason = PLM_STOP_CONTEXT;
            break;
        }
        if ((rc = plm_session_decode(s, &id, 1, err)) != PLM_OK) goto done;
    }
    if (res.stop_reason != PLM_STOP_CALLBACK && res.stop_reason != PLM_STOP_STRING)
        stream_emit(&st, st.len, params); // the end: flush what was held back
    res.decode_seconds = plm_time() - t0;
done:
    if (result) *result = res;
    plm_sampler_free(smp);
    free(hist);
    free(st.text);
    return rc;
}
