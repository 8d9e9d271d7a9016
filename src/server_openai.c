// server_openai.c: what `pocketlm serve` adds for OpenAI's clients: the chat prompt of
// /v1/chat/completions (the messages to plm_chat_prompt, chat.c), and the OpenAI answer shapes of
// /v1/completions and /v1/chat/completions: one JSON object with its choices and usage, or
// chat.completion.chunk / text_completion events, and their logprobs (chat's "content" list, or
// completions' legacy tokens / token_logprobs / top_logprobs / text_offset). The log-probabilities
// are of the model's own distribution at temperature 1, before any sampling setting (plm_logprobs),
// as llama.cpp and OpenAI report them. Reference: OpenAI's API reference (chat/create,
// completions/create). The generation loop itself, parsing the options and streaming are
// server_api.c's; the models and adapters, server_adapters.c's. A template of none of chat.c's
// formats is refused (400).
#define _POSIX_C_SOURCE 200809L
#include "json.h"
#include "model.h"
#include "server.h"

#if !defined(__EMSCRIPTEN__)
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADD(b, lit) plm_sbuf_add((b), (lit), sizeof(lit) - 1) // a string literal

// ---- the chat prompt ----

// add_content: a message's content: a string, or an array of {"type": "text", "text": ...} parts
// (concatenated). Returns 0, or -1 when it is neither.
static int add_content(sbuf *b, const plm_json *j, int32_t ci) {
    if (j->tok[ci].type == PLM_JSON_STRING) {
        int64_t n = plm_json_str(j, ci, NULL, 0);
        char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
        if (!s) return b->oom = 1, 0;
        plm_json_str(j, ci, s, (size_t)n + 1);
        plm_sbuf_add(b, s, (size_t)n);
        free(s);
        return 0;
    }
    if (j->tok[ci].type != PLM_JSON_ARRAY) return -1;
    for (int32_t k = 0; k < j->tok[ci].size; k++) {
        int32_t part = plm_json_at(j, ci, k), t = plm_json_get(j, part, "type");
        int32_t text = plm_json_get(j, part, "text");
        if (t < 0 || !plm_json_eq(j, t, "text") || text < 0 || add_content(b, j, text)) return -1;
    }
    return 0;
}

int plm_server_chat_prompt(conn *c, const plm_json *j, const plm_tokenizer *tok, char **prompt,
                           size_t *plen, int32_t *stop_id) {
    const plm_model *m = c->srv->p->model;
    int32_t mi = plm_json_get(j, 0, "messages");
    int32_t n = mi >= 0 && j->tok[mi].type == PLM_JSON_ARRAY ? j->tok[mi].size : 0;
    if (n == 0)
        return plm_server_send_error(c, 400, NULL, "\"messages\" must be a non-empty array"), -1;
    plm_chat_message *msgs = calloc((size_t)n, sizeof *msgs);
    sbuf *contents = calloc((size_t)n, sizeof *contents);
    int rc = -1, oom = !msgs || !contents;
    for (int32_t k = 0; k < n && !oom; k++) {
        int32_t e = plm_json_at(j, mi, k), ri = plm_json_get(j, e, "role");
        int32_t ci = plm_json_get(j, e, "content");
        static const char *const roles[] = {"system", "developer", "user", "assistant"};
        for (int r = 0; r < 4 && ri >= 0; r++)
            if (plm_json_eq(j, ri, roles[r])) msgs[k].role = roles[r];
        if (!msgs[k].role || ci < 0) {
            plm_server_send_error(c, 400, NULL,
                                  "messages[%d]: want {\"role\": \"system\", \"developer\", "
                                  "\"user\" or \"assistant\", \"content\": text}",
                                  k);
            goto done;
        }
        if (add_content(&contents[k], j, ci)) {
            plm_server_send_error(c, 400, NULL,
                                  "messages[%d].content: want a string or an array of "
                                  "{\"type\": \"text\", \"text\": ...} parts",
                                  k);
            goto done;
        }
        ADD(&contents[k], "\0"); // the text a plm_chat_message points to
        oom = contents[k].oom;
        msgs[k].content = contents[k].p;
    }
    int64_t len = oom ? 0 : plm_chat_prompt(m->chat_template, tok, msgs, n, NULL, 0, stop_id);
    if (len == PLM_ERR_UNSUPPORTED) {
        plm_server_send_error(c, 400, NULL,
                              "this model's chat template is none of the formats this server "
                              "knows (ChatML, Llama 3, Gemma): use /v1/completions");
        goto done;
    }
    *prompt = len > 0 ? malloc((size_t)len + 1) : NULL;
    if (oom || !*prompt) {
        plm_server_send_error(c, 500, NULL, "out of memory");
        goto done;
    }
    plm_chat_prompt(m->chat_template, tok, msgs, n, *prompt, (size_t)len, stop_id);
    (*prompt)[len] = 0;
    *plen = (size_t)len;
    rc = 0;
done:
    for (int32_t k = 0; contents && k < n; k++) free(contents[k].p);
    free(contents);
    free(msgs);
    return rc;
}

// ---- answers ----

// head: "{"id": ..., "object": ..., "created": ..., "model": ..., "
static void head(sbuf *b, const oai_head *h, const char *object) {
    plm_sbuf_addf(b, "{\"id\": \"%s\", \"object\": \"%s\", \"created\": %lld, \"model\": ", h->id,
                  object, h->created);
    plm_sbuf_json_str(b, h->model, strlen(h->model));
}

// token_text: the bytes of token id into buf (cap), their count (0 when it has none)
static size_t token_text(const plm_tokenizer *tok, int32_t id, char *buf, size_t cap) {
    int64_t n = plm_tokenizer_decode(tok, &id, 1, buf, cap);
    return n > 0 && (size_t)n <= cap ? (size_t)n : 0;
}

// add_lp: a log-probability as a JSON number (-9999, OpenAI's floor, for one that is not finite)
static void add_lp(sbuf *b, float lp) {
    plm_sbuf_addf(b, "%.9g", isfinite(lp) ? (double)lp : -9999.0);
}

// chat_token: `{"token": text, "logprob": lp, "bytes": [...]` of token id (the object left open)
static void chat_token(sbuf *b, const plm_tokenizer *tok, int32_t id, float lp) {
    char t[256];
    size_t n = token_text(tok, id, t, sizeof t);
    ADD(b, "{\"token\": ");
    plm_sbuf_json_str(b, t, n);
    ADD(b, ", \"logprob\": ");
    add_lp(b, lp);
    ADD(b, ", \"bytes\": [");
    for (size_t i = 0; i < n; i++) plm_sbuf_addf(b, "%s%u", i ? ", " : "", (unsigned char)t[i]);
    ADD(b, "]");
}

// legacy_entry: `"text": lp` of token id in a completions top_logprobs object
static void legacy_entry(sbuf *b, const plm_tokenizer *tok, int32_t id, float lp, int first) {
    char t[256];
    if (!first) ADD(b, ", ");
    plm_sbuf_json_str(b, t, token_text(tok, id, t, sizeof t));
    ADD(b, ": ");
    add_lp(b, lp);
}

// logprobs: `"logprobs": ...` of a choice: null without lp; chat's {"content": [{"token",
// "logprob", "bytes", "top_logprobs": [the k most likely]}...], "refusal": null}; completions'
// {"tokens", "token_logprobs", "top_logprobs", "text_offset"}, whose top_logprobs map the texts of
// the k most likely tokens and of the sampled one to their logprobs (OpenAI's "up to logprobs + 1";
// two tokens of one text share a key) and whose text_offset counts bytes from the prompt's start
static void logprobs(sbuf *b, int chat, const oai_logprobs *lp) {
    ADD(b, "\"logprobs\": ");
    if (!lp) {
        ADD(b, "null");
        return;
    }
    if (chat) ADD(b, "{\"content\": [");
    else ADD(b, "{\"tokens\": [");
    for (int32_t i = 0; i < lp->n; i++) {
        const oai_token *t = &lp->t[i];
        if (i) ADD(b, ", ");
        if (chat) {
            chat_token(b, lp->tok, t->id, t->logprob);
            ADD(b, ", \"top_logprobs\": [");
            for (int32_t j = 0; j < lp->k; j++) {
                if (j) ADD(b, ", ");
                chat_token(b, lp->tok, t->top_ids[j], t->top[j]);
                ADD(b, "}");
            }
            ADD(b, "]}");
        } else {
            char text[256];
            plm_sbuf_json_str(b, text, token_text(lp->tok, t->id, text, sizeof text));
        }
    }
    if (chat) {
        ADD(b, "], \"refusal\": null}");
        return;
    }
    ADD(b, "], \"token_logprobs\": [");
    for (int32_t i = 0; i < lp->n; i++) {
        if (i) ADD(b, ", ");
        add_lp(b, lp->t[i].logprob);
    }
    ADD(b, "], \"top_logprobs\": [");
    for (int32_t i = 0; i < lp->n; i++) {
        const oai_token *t = &lp->t[i];
        int sampled_in = 0;
        if (i) ADD(b, ", ");
        ADD(b, "{");
        for (int32_t j = 0; j < lp->k; j++) {
            legacy_entry(b, lp->tok, t->top_ids[j], t->top[j], j == 0);
            sampled_in |= t->top_ids[j] == t->id;
        }
        if (!sampled_in) legacy_entry(b, lp->tok, t->id, t->logprob, lp->k == 0);
        ADD(b, "}");
    }
    ADD(b, "], \"text_offset\": [");
    for (int32_t i = 0; i < lp->n; i++)
        plm_sbuf_addf(b, "%s%zu", i ? ", " : "", lp->text_offset + lp->t[i].offset);
    ADD(b, "]}");
}

// finish: the end of a choice: its logprobs and finish reason (null while streaming)
static void finish(sbuf *b, int chat, const oai_logprobs *lp, const char *reason) {
    ADD(b, ", ");
    logprobs(b, chat, lp);
    plm_sbuf_addf(b, ", \"finish_reason\": %s%s%s}", reason ? "\"" : "", reason ? reason : "null",
                  reason ? "\"" : "");
}

void plm_server_oai_usage(sbuf *b, int32_t prompt_tokens, int32_t completion_tokens) {
    plm_sbuf_addf(b,
                  "\"usage\": {\"prompt_tokens\": %d, \"completion_tokens\": %d, "
                  "\"total_tokens\": %d}",
                  prompt_tokens, completion_tokens, prompt_tokens + completion_tokens);
}

void plm_server_oai_chunk(sbuf *b, const oai_head *h, int32_t index, const char *text, size_t len,
                          const oai_logprobs *lp, const char *reason, int first) {
    int chat = h->kind == API_CHAT;
    ADD(b, "data: ");
    head(b, h, chat ? "chat.completion.chunk" : "text_completion");
    plm_sbuf_addf(b, ", \"choices\": [{\"index\": %d, ", index);
    if (!chat) {
        ADD(b, "\"text\": ");
        plm_sbuf_json_str(b, text, len);
    } else {
        ADD(b, "\"delta\": {");
        if (first) ADD(b, "\"role\": \"assistant\"");
        if (first && !reason) ADD(b, ", ");
        if (!reason) {
            ADD(b, "\"content\": ");
            plm_sbuf_json_str(b, text, len);
        }
        ADD(b, "}");
    }
    finish(b, chat, lp, reason);
    ADD(b, "]}\n\n");
}

void plm_server_oai_usage_chunk(sbuf *b, const oai_head *h, int32_t prompt_tokens,
                                int32_t completion_tokens) {
    ADD(b, "data: ");
    head(b, h, h->kind == API_CHAT ? "chat.completion.chunk" : "text_completion");
    ADD(b, ", \"choices\": [], ");
    plm_server_oai_usage(b, prompt_tokens, completion_tokens);
    ADD(b, "}\n\n");
}

void plm_server_oai_response(sbuf *b, const oai_head *h, const sbuf *texts, const oai_logprobs *lps,
                             const char *const *reasons, int32_t n, int32_t prompt_tokens,
                             int32_t completion_tokens) {
    int chat = h->kind == API_CHAT;
    head(b, h, chat ? "chat.completion" : "text_completion");
    ADD(b, ", \"choices\": [");
    for (int32_t i = 0; i < n; i++) {
        plm_sbuf_addf(b, "%s{\"index\": %d, ", i ? ", " : "", i);
        if (chat) ADD(b, "\"message\": {\"role\": \"assistant\", \"content\": ");
        else ADD(b, "\"text\": ");
        plm_sbuf_json_str(b, texts[i].p ? texts[i].p : "", texts[i].n);
        if (chat) ADD(b, "}");
        finish(b, chat, lps ? &lps[i] : NULL, reasons[i]);
    }
    ADD(b, "], ");
    plm_server_oai_usage(b, prompt_tokens, completion_tokens);
    ADD(b, "}\n");
}

#endif // !__EMSCRIPTEN__
