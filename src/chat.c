// chat.c: plm_chat_prompt: a conversation as the prompt text of the model's chat format. Three
// formats, each the output of its family's Jinja chat template with add_generation_prompt:
//   ChatML (SmolLM2, Qwen2.5, Qwen3): <|im_start|>ROLE\nCONTENT<|im_end|>\n ... <|im_start|>assistant\n
//   Llama 3: <|begin_of_text|><|start_header_id|>ROLE<|end_header_id|>\n\nCONTENT<|eot_id|> ...
//   Gemma: <bos><start_of_turn>user\nCONTENT<end_of_turn>\n ... <start_of_turn>model\n
// The format is recognized from the template text (or, without a template, from the tokenizer's
// tokens), never by running Jinja: a template of none of these is PLM_ERR_UNSUPPORTED. Not here:
// tools, images, Qwen3's <think> blocks of earlier answers (the texts are used as given), Llama
// 3.1's dated system prompt, and the role checks templates raise errors for.
#include <string.h>

#include "base.h"

typedef enum { CHAT_CHATML, CHAT_LLAMA3, CHAT_GEMMA } chat_format;

static const struct {
    const char *marker; // the token by which a template (or a vocabulary) is recognized
    const char *stop;   // the token that ends the assistant's turn
} formats[] = {
    [CHAT_CHATML] = {"<|im_start|>", "<|im_end|>"},
    [CHAT_LLAMA3] = {"<|start_header_id|>", "<|eot_id|>"},
    [CHAT_GEMMA] = {"<start_of_turn>", "<end_of_turn>"},
};

typedef struct {
    char *out; // (cap)
    size_t cap;
    size_t n; // bytes of the whole prompt so far (may exceed cap)
} text;

static void put(text *t, const char *s, size_t n) {
    if (t->n < t->cap) memcpy(t->out + t->n, s, n < t->cap - t->n ? n : t->cap - t->n);
    t->n += n;
}

static void puts0(text *t, const char *s) {
    put(t, s, strlen(s));
}

// put_trimmed: s without leading and trailing white space (Jinja's trim, ASCII white space).
static void put_trimmed(text *t, const char *s) {
    size_t a = 0, b = strlen(s);
    while (a < b && strchr(" \t\n\r\f\v", s[a])) a++;
    while (b > a && strchr(" \t\n\r\f\v", s[b - 1])) b--;
    put(t, s + a, b - a);
}

// default_system: the system prompt a ChatML template adds when the messages have none: the
// literal after "<|im_start|>system\n" up to "<|im_end|>" (SmolLM2's "You are a helpful AI
// assistant named SmolLM, ..."), if it is plain text (no quote, brace or '+': then it is an
// expression, as in templates that only copy the messages). Returns its length, 0 when none.
static size_t default_system(const char *tmpl, const char **at) {
    static const char head[] = "<|im_start|>system\n";
    const char *p = tmpl ? strstr(tmpl, head) : NULL;
    if (!p) return 0;
    p += sizeof head - 1;
    const char *end = strstr(p, "<|im_end|>");
    if (!end || end == p) return 0;
    for (const char *q = p; q < end; q++)
        if (strchr("'\"{}+", *q)) return 0;
    *at = p;
    return (size_t)(end - p);
}

// find_format: the chat format of the template, or without one of the vocabulary; -1 if none.
static int find_format(const char *tmpl, const plm_tokenizer *tok) {
    for (int f = 0; f < (int)(sizeof formats / sizeof formats[0]); f++)
        if (tmpl ? strstr(tmpl, formats[f].marker) != NULL
                 : plm_tokenizer_token_id(tok, formats[f].marker) >= 0)
            return f;
    return -1;
}

// role_of: "developer" is OpenAI's newer name for "system"; Gemma calls the assistant "model".
static const char *role_of(const char *role, int f) {
    if (!strcmp(role, "developer")) return "system";
    if (f == CHAT_GEMMA && !strcmp(role, "assistant")) return "model";
    return role;
}

int64_t plm_chat_prompt(const char *chat_template, const plm_tokenizer *tok,
                        const plm_chat_message *msgs, int32_t n, char *out, size_t cap,
                        int32_t *stop_id) {
    if (!tok || n < 0 || (n && !msgs) || (cap && !out) || !stop_id) return PLM_ERR_ARG;
    for (int32_t k = 0; k < n; k++)
        if (!msgs[k].role || !msgs[k].content) return PLM_ERR_ARG;
    int f = find_format(chat_template, tok);
    *stop_id = f < 0 ? -1 : plm_tokenizer_token_id(tok, formats[f].stop);
    if (*stop_id < 0) return PLM_ERR_UNSUPPORTED;
    text t = {out, cap, 0};
    const char *sys = NULL; // Gemma: the system message opens the first user turn
    size_t ns = 0;
    if (f == CHAT_LLAMA3 && n) puts0(&t, "<|begin_of_text|>"); // with the first message
    if (f == CHAT_GEMMA) puts0(&t, "<bos>");
    if (f == CHAT_CHATML && n && strcmp(role_of(msgs[0].role, f), "system"))
        ns = default_system(chat_template, &sys);
    if (ns) put(&t, "<|im_start|>system\n", 19), put(&t, sys, ns), puts0(&t, "<|im_end|>\n");
    for (int32_t k = 0; k < n; k++) {
        const char *role = role_of(msgs[k].role, f);
        if (f == CHAT_CHATML) {
            puts0(&t, "<|im_start|>"), puts0(&t, role), puts0(&t, "\n");
            puts0(&t, msgs[k].content), puts0(&t, "<|im_end|>\n");
        } else if (f == CHAT_LLAMA3) {
            puts0(&t, "<|start_header_id|>"), puts0(&t, role), puts0(&t, "<|end_header_id|>\n\n");
            put_trimmed(&t, msgs[k].content), puts0(&t, "<|eot_id|>");
        } else if (k == 0 && !strcmp(role, "system")) {
            sys = msgs[k].content;
        } else {
            puts0(&t, "<start_of_turn>"), puts0(&t, role), puts0(&t, "\n");
            if (sys) puts0(&t, sys), puts0(&t, "\n\n"), sys = NULL; // as given, not trimmed
            put_trimmed(&t, msgs[k].content), puts0(&t, "<end_of_turn>\n");
        }
    }
    static const char *const opening[] = {[CHAT_CHATML] = "<|im_start|>assistant\n",
                                          [CHAT_LLAMA3] =
                                              "<|start_header_id|>assistant<|end_header_id|>\n\n",
                                          [CHAT_GEMMA] = "<start_of_turn>model\n"};
    puts0(&t, opening[f]);
    return (int64_t)t.n;
}
