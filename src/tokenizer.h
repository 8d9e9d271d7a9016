// tokenizer.h: what other src/ files need from the tokenizer beyond pocketlm.h: building one from
// GGUF metadata, and reading back its vocabulary, merges and token types to write GGUF or
// tokenizer.json files.
#ifndef PLM_TOKENIZER_H
#define PLM_TOKENIZER_H

#include "base.h"

typedef struct {
    const char *s; // bytes, not NUL-terminated
    size_t n;      // length
} plm_str;

// GGUF token types (tokenizer.ggml.token_type), which plm_tokenizer also keeps per token.
enum {
    PLM_TOKEN_TYPE_NORMAL = 1,
    PLM_TOKEN_TYPE_UNKNOWN = 2,
    PLM_TOKEN_TYPE_CONTROL = 3,      // special tokens: matched before BPE, "special": true
    PLM_TOKEN_TYPE_USER_DEFINED = 4, // added tokens that are not special: matched before BPE
    PLM_TOKEN_TYPE_UNUSED = 5,
    PLM_TOKEN_TYPE_BYTE = 6,
};

// plm_tokenizer_from_vocab: a tokenizer from GGUF-style arrays. Without scores (GGUF
// tokenizer.ggml.model "gpt2"): byte-level BPE, tokens in their ByteLevel-encoded form as in
// tokenizer.json's vocab, merges as "left right", token types as above; pre names the
// pre-tokenizer as GGUF's tokenizer.ggml.pre does ("smollm", "gpt2", "llama-bpe", "qwen2", ...), an
// unknown name is PLM_ERR_UNSUPPORTED. With scores (n_tokens of them; model "llama"): SentencePiece
// BPE with byte fallback (Gemma), merges derived from the scores, pre and merges unused. Copies
// everything it needs.
plm_status plm_tokenizer_from_vocab(plm_tokenizer **out, const plm_str *tokens, int32_t n_tokens,
                                    const plm_str *merges, int32_t n_merges,
                                    const int32_t *token_types, const float *scores,
                                    const char *pre, plm_error *err);

// plm_tokenizer_load_json_buffer: like plm_tokenizer_load, from the len bytes of a tokenizer.json
// held in memory (wasm, fuzzing); name is used in error messages. Copies what it needs.
plm_status plm_tokenizer_load_json_buffer(plm_tokenizer **out, const char *text, size_t len,
                                          const char *name, plm_error *err);

// Read back, for writers. Returned plm_str point into the tokenizer and live as long as it.
plm_str plm_tokenizer_token_text(const plm_tokenizer *t, int32_t id); // vocab form ("Ġthe")
int32_t plm_tokenizer_token_type(const plm_tokenizer *t, int32_t id);
int32_t plm_tokenizer_n_merges(const plm_tokenizer *t);
plm_str plm_tokenizer_merge(const plm_tokenizer *t, int32_t i); // "left right", rank order
// plm_tokenizer_spm: 1 for SentencePiece-style BPE with byte fallback (GGUF tokenizer.ggml.model
// "llama"), 0 for byte-level BPE ("gpt2").
int plm_tokenizer_spm(const plm_tokenizer *t);
// plm_tokenizer_scores: GGUF's tokenizer.ggml.scores for a SentencePiece tokenizer: out (n_vocab)
// gets minus the rank of the first merge that makes each token, and minus the number of merges
// for the tokens no merge makes, so that llama.cpp's score order is the merges' order.
void plm_tokenizer_scores(const plm_tokenizer *t, float *out);
// plm_tokenizer_pre: the GGUF pre-tokenizer name ("gpt2", "smollm"), or "custom" when the
// configuration (e.g. ByteLevel with add_prefix_space) has no GGUF name.
const char *plm_tokenizer_pre(const plm_tokenizer *t);

// plm_tokenizer_add_tokens: a new tokenizer = t plus the n texts as added tokens (special ones when
// special != 0: matched before BPE, never split), given ids n_vocab, n_vocab+1, ... in order; a text
// already in the vocabulary keeps its id and is not added. n = 0 makes a copy.
plm_status plm_tokenizer_add_tokens(plm_tokenizer **out, const plm_tokenizer *t,
                                    const char *const *texts, int32_t n, int special,
                                    plm_error *err);

// plm_tokenizer_save_dir: write tokenizer.json and tokenizer_config.json into dir (atomically),
// in the form Hugging Face tokenizers and transformers.js load; bos/eos ids name the config's tokens.
plm_status plm_tokenizer_save_dir(const plm_tokenizer *t, const char *dir, int32_t bos_id,
                                  int32_t eos_id, plm_error *err);

#endif
