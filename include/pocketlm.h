// pocketlm.h: the whole public API of pocketlm, a C11 library that loads Llama-family models
// (Hugging Face directories or GGUF files), tokenizes like Hugging Face, and generates text on the CPU.
//
// Usage:
//
//     plm_error err;
//     plm_model *model;
//     plm_load_params lp = plm_load_default_params();   // lp.dtype = PLM_DTYPE_Q8_0 for 8-bit
//     if (plm_model_load(&model, "models/smollm2.gguf", &lp, &err) != PLM_OK) {
//         fprintf(stderr, "%s\n", err.msg);
//         return 1;
//     }
//     plm_session *s;
//     plm_session_params sp = plm_session_default_params(); // n_ctx, n_threads
//     plm_session_create(&s, model, &sp, &err);
//     int32_t ids[512];
//     int n = plm_tokenizer_encode(plm_model_tokenizer(model), "Hello", 5, ids, 512);
//     plm_session_decode(s, ids, n, &err);                 // prefill: logits of the last token
//     const float *logits = plm_session_logits(s);          // (vocab_size)
//     ...
//     plm_session_free(s);
//     plm_model_free(model);
//
// Conventions:
// - Every function that can fail returns plm_status (PLM_OK = 0, errors < 0) and, when err is not
//   NULL, fills it with a one-line message saying what, where, and expected versus found.
// - The library never prints, never exits, and never aborts on bad input.
// - Whoever creates an object frees it; every plm_X_free accepts NULL.
// - Threads: a plm_model and a plm_tokenizer are immutable after load and may be shared by any
//   number of threads. A plm_session belongs to one thread at a time.
// - Results are bit-identical for any n_threads.
#ifndef POCKETLM_H
#define POCKETLM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- status and errors ----

typedef enum {
    PLM_OK = 0,
    PLM_ERR_ARG = -1,         // a caller's argument is invalid
    PLM_ERR_NOMEM = -2,       // an allocation failed
    PLM_ERR_IO = -3,          // a file could not be opened, read or written
    PLM_ERR_FORMAT = -4,      // a file or input is malformed
    PLM_ERR_UNSUPPORTED = -5, // well-formed, but not something pocketlm handles
    PLM_ERR_CANCELLED = -6,   // a callback asked to stop
} plm_status;

typedef struct {
    plm_status status; // the status also returned
    char msg[256];     // one line: what went wrong, where, expected versus found
} plm_error;

const char *plm_status_name(plm_status s); // short name of a status; never NULL

// ---- CPU and kernel path ----
// The kernels run on the widest instruction-set path this CPU has, chosen at run time: scalar
// (the reference, every build), avx2, avxvnni, avx512 (x86-64), neon, dotprod, i8mm (arm64), wasm,
// relaxed (WebAssembly, fixed when the module is built). Q8_0 results are the same bits on every
// path; f32 results agree within rounding.

const char *plm_cpu_name(void);     // the CPU's model name, or "unknown"
const char *plm_cpu_features(void); // the features the kernels use that it has: "avx2 fma ..."
const char *plm_kernel_path(void);  // the path the kernels take now: "avx512", "neon", ...
// plm_set_kernel_path: take path name from now on ("auto": the widest this CPU runs). A path
// this CPU or build cannot run is refused (PLM_ERR_UNSUPPORTED, the message lists those it can),
// never run. Process-wide: set it before starting work.
plm_status plm_set_kernel_path(const char *name, plm_error *err);

// ---- data types ----

typedef enum {
    PLM_DTYPE_F32 = 0,
    PLM_DTYPE_F16 = 1,
    PLM_DTYPE_BF16 = 2,
    PLM_DTYPE_Q8_0 = 3,  // blocks of 32 int8 with one scale each
    PLM_DTYPE_Q4_0 = 4,  // blocks of 32 4-bit with one scale
    PLM_DTYPE_Q4_1 = 5,  // blocks of 32 4-bit with scale and minimum
    PLM_DTYPE_AUTO = 6,  // loading only: each weight as its file stores it, where a kernel exists
    PLM_DTYPE_Q5_0 = 7,  // blocks of 32 5-bit with one scale
    PLM_DTYPE_Q5_1 = 8,  // blocks of 32 5-bit with scale and minimum
    PLM_DTYPE_Q6_K = 9,  // super-blocks of 256 6-bit in 16 sub-blocks with int8 scales
    PLM_DTYPE_Q4_K = 10, // super-blocks of 256 4-bit in 8 blocks with 6-bit scales and minimums
    PLM_DTYPE_Q5_K = 11, // super-blocks of 256 5-bit in 8 blocks with 6-bit scales and minimums
} plm_dtype;

// plm_dtype_name: "f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "auto", "q5_0", "q5_1", "q6_k",
// "q4_k", "q5_k"
const char *plm_dtype_name(plm_dtype t);
// plm_dtype_parse: name to dtype; returns PLM_OK or PLM_ERR_ARG for an unknown name.
plm_status plm_dtype_parse(const char *name, plm_dtype *out);

// ---- model ----

// The model families pocketlm runs: config.json's model_type (GGUF general.architecture).
typedef enum {
    PLM_ARCH_LLAMA = 0,  // "llama": Llama 2/3.x, SmolLM2 (LlamaForCausalLM)
    PLM_ARCH_QWEN2 = 1,  // "qwen2": Qwen2, Qwen2.5: biases on q_proj, k_proj, v_proj
    PLM_ARCH_QWEN3 = 2,  // "qwen3": Qwen3: RMSNorm over each head of q and k (q_norm, k_norm)
    PLM_ARCH_GEMMA3 = 3, // "gemma3_text" (GGUF "gemma3"): Gemma 3 text: embedding scaled by
                         // sqrt(C), q/k norms, norms after attention and MLP, GeGLU (tanh GELU),
                         // sliding-window attention on local layers with their own RoPE base
} plm_arch;

// config.json's rope_scaling: rope_type "llama3" (Llama 3.1/3.2: the long wavelengths divided by
// factor, the short ones kept, a smooth band between) or "linear" (every frequency divided by
// factor: Gemma 3 4B and larger, on their global layers only); factor 0: none, or not known (a
// GGUF file holds only the divisors llama3's gives: rope_freqs).
typedef struct {
    float factor;                             // the divisor (llama3: 8 or 32, linear: 8)
    float low_freq_factor;                    // llama3: wavelengths above original / this divided
    float high_freq_factor;                   // llama3: wavelengths below original / this kept
    int32_t original_max_position_embeddings; // llama3: the pre-training context (8192)
    int32_t linear;                           // 1: rope_type "linear" (factor alone), 0: llama3
} plm_rope_scaling;

// The architecture, with the key names of Hugging Face config.json (LlamaConfig, Qwen2Config,
// Qwen3Config, Gemma3TextConfig).
typedef struct {
    plm_arch model_type;             // the family
    int32_t vocab_size;              // V, rows of the embedding
    int32_t hidden_size;             // C
    int32_t intermediate_size;       // F
    int32_t num_hidden_layers;       // L
    int32_t num_attention_heads;     // H
    int32_t num_key_value_heads;     // K (grouped-query attention when K < H)
    int32_t head_dim;                // D: hidden_size / num_attention_heads, or Qwen3's own
    int32_t max_position_embeddings; // the trained context length
    float rms_norm_eps;              // RMSNorm epsilon
    float rope_theta;                // RoPE base
    plm_rope_scaling rope_scaling;   // llama3 or linear frequency scaling, or factor 0
    int32_t attention_bias;          // 1: q_proj, k_proj, v_proj add a bias (Qwen2)
    int32_t qk_norm;                 // 1: q and k RMSNorm per head before RoPE (Qwen3)
    int32_t rope_freqs;              // 1: RoPE frequencies divided per frequency (llama3 scaling;
                                     // GGUF rope_freqs.weight, from rope_scaling for HF)
    int32_t tie_word_embeddings;     // 1: lm_head shares the embedding matrix
    int32_t sliding_window;          // Gemma 3: a local layer's query sees this many positions
                                     // (itself included); 0: every layer sees all of them
    int32_t sliding_window_pattern;  // Gemma 3: layer l is global when (l + 1) % this == 0, else
                                     // local (config.json's layer_types, when given, must say so)
    float rope_local_base_freq;      // Gemma 3: the local layers' RoPE base (rope_theta: global's)
    float query_pre_attn_scalar;     // attention scores scaled by this^-0.5; 0: by head_dim^-0.5
    int32_t bos_token_id;            // -1 when absent
    int32_t eos_token_id;            // -1 when absent
} plm_config;

typedef struct plm_model plm_model;
typedef struct plm_tokenizer plm_tokenizer;

typedef struct {
    plm_dtype dtype;   // how linear weights are kept in memory: PLM_DTYPE_F32, _F16, _BF16,
                       // _Q8_0, _Q4_0, _Q4_1, _Q5_0, _Q5_1, _Q6_K, _Q4_K, _Q5_K (converted to it
                       // on load when the file has another type: with llama.cpp's reference
                       // quantizers; Q4_K as Q4_1 and Q5_K as Q5_1 exactly; F16/BF16 rounded to
                       // nearest even; the K-quants need cols a multiple of 256, else q8_0
                       // (Q6_K), q4_1 (Q4_K), q5_1 (Q5_K)), or _AUTO: each weight in its file's
                       // type where a kernel exists, else the nearest (F16 -> f16, BF16 -> bf16,
                       // in GGUF and safetensors alike; F32 -> f32, Q2_K/Q3_K -> q8_0). F16 and
                       // BF16 weights run the f32 kernels on rows converted exactly as they
                       // stream (the f32 matrix's results, bit for bit, at half its memory)
    int32_t n_threads; // threads converting a GGUF file's weights, the caller included; 0 = every
                       // core (1 in wasm). The weights are the same bits for any count.
} plm_load_params;

plm_load_params plm_load_default_params(void); // dtype f32, n_threads 0

// plm_model_load: load a model from an HF directory (config.json, model.safetensors or a sharded
// index, tokenizer.json) or from a .gguf file. Quantized or half-precision files are converted to
// params->dtype once, at load. Returns PLM_OK and a new model in *out, owned by the caller.
plm_status plm_model_load(plm_model **out, const char *path, const plm_load_params *params,
                          plm_error *err);
// plm_model_load_gguf_buffer: the same from a whole GGUF file held in memory (size bytes; the
// browser has no file system). buf is only read during the call: free it afterwards.
plm_status plm_model_load_gguf_buffer(plm_model **out, const uint8_t *buf, size_t size,
                                      const plm_load_params *params, plm_error *err);
// plm_model_load_gguf_inplace: the same without a second copy of the weights: buf (size bytes)
// must come from malloc, and on PLM_OK it belongs to the model (plm_model_free frees it; the caller
// must not use or free it). When params->dtype is q8_0, the Q8_0 tensors are rearranged inside buf
// and used from there, so memory peaks at the file plus 4 bytes per 32 weights (their scales)
// rather than the file plus all weights; other tensors are converted as by
// plm_model_load_gguf_buffer (and buf is freed at once when nothing points into it). The weights
// are the same, bit for bit, as plm_model_load_gguf_buffer's. On failure buf is unchanged and
// still the caller's.
plm_status plm_model_load_gguf_inplace(plm_model **out, uint8_t *buf, size_t size,
                                       const plm_load_params *params, plm_error *err);
void plm_model_free(plm_model *m);

const plm_config *plm_model_config(const plm_model *m);       // valid for the model's lifetime
const plm_tokenizer *plm_model_tokenizer(const plm_model *m); // valid for the model's lifetime
plm_dtype plm_model_dtype(const plm_model *m);                // in-memory dtype of linear weights
size_t plm_model_n_params(const plm_model *m);     // number of parameters (tied counted once)
size_t plm_model_weight_bytes(const plm_model *m); // bytes of weights held in memory
// plm_model_name: the name the model's file gives it (GGUF general.name, config.json
// _name_or_path), or "" when it gives none. plm_model_adapter: the name of the LoRA adapter merged
// into the weights (plm_model_merge: the adapter directory's name; saved to and read from GGUF as
// pocketlm.adapter), or "" for none. Both valid for the model's lifetime.
const char *plm_model_name(const plm_model *m);
const char *plm_model_adapter(const plm_model *m);
// plm_model_chat_template: the chat template (tokenizer_config.json or GGUF
// tokenizer.chat_template), or NULL; valid for the model's lifetime.
const char *plm_model_chat_template(const plm_model *m);

// plm_model_save: write the model to path: a .gguf file when path ends in ".gguf", else an HF
// directory (created if needed). dtype is the file's dtype for 2-D weights: f32, f16, bf16 (HF and
// GGUF), q8_0, q4_0, q4_1 (GGUF only, as plm_model_save_ftype with the ftype of the same name).
// Files are written atomically.
plm_status plm_model_save(const plm_model *m, const char *path, plm_dtype dtype, plm_error *err);

// File types of a saved model, named as llama.cpp's quantizer names them. f32, f16 and bf16 store
// every 2-D weight in that type. The quantized ones pick each weight's type as llama.cpp's
// quantizer (llama-quantize, no importance matrix) does for its file type of the same name, with
// the same bits (ggml's reference quantizers): the output head (or the tied embedding) gets Q6_K,
// or Q8_0 when its rows are not a multiple of 256; q4_k_m and q5_k_m give Q6_K to attn_v and
// ffn_down in the layers llama.cpp picks (the first and last eighth, every third between); a type
// whose block does not divide a tensor's rows falls back as llama.cpp's does (Q4_K -> Q5_0, Q5_K
// -> Q5_1, Q6_K -> Q8_0, then F16). Norms stay f32.
typedef enum {
    PLM_FTYPE_F32 = 0, // the first six equal plm_dtype's values
    PLM_FTYPE_F16 = 1,
    PLM_FTYPE_BF16 = 2,
    PLM_FTYPE_Q8_0 = 3,
    PLM_FTYPE_Q4_0 = 4,
    PLM_FTYPE_Q4_1 = 5,
    PLM_FTYPE_Q5_0 = 6,
    PLM_FTYPE_Q5_1 = 7,
    PLM_FTYPE_Q4_K_M = 8,
    PLM_FTYPE_Q5_K_M = 9,
    PLM_FTYPE_Q6_K = 10,
    PLM_FTYPE_COUNT = 11,
} plm_ftype;

// plm_ftype_name: "f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k_m",
// "q5_k_m", "q6_k" ("unknown" otherwise). plm_ftype_parse: the reverse; PLM_OK or PLM_ERR_ARG.
const char *plm_ftype_name(plm_ftype t);
plm_status plm_ftype_parse(const char *name, plm_ftype *out);
// PLM_FTYPE_NAMES: the names, as usage texts and error messages list them
#define PLM_FTYPE_NAMES "f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k_m, q5_k_m, q6_k"
// plm_model_save_ftype: plm_model_save with a file type: a .gguf path takes any; an HF directory
// only f32, f16 or bf16 (else PLM_ERR_UNSUPPORTED).
plm_status plm_model_save_ftype(const plm_model *m, const char *path, plm_ftype ftype,
                                plm_error *err);

// ---- tokenizer ----

// plm_tokenizer_load: a tokenizer.json, an HF directory holding one, or a .gguf file.
plm_status plm_tokenizer_load(plm_tokenizer **out, const char *path, plm_error *err);
void plm_tokenizer_free(plm_tokenizer *t);

int32_t plm_tokenizer_n_vocab(const plm_tokenizer *t);
// plm_tokenizer_token_id: id of a token given by its exact text (e.g. "<|OUTPUT_END|>"), or -1.
int32_t plm_tokenizer_token_id(const plm_tokenizer *t, const char *text);

// plm_tokenizer_encode: tokenize len bytes of text (any bytes; invalid UTF-8 is encoded as
// Hugging Face does), without adding BOS/EOS. Writes at most cap ids and returns the number of ids
// of the whole text; when that is more than cap, call again with a larger buffer. Returns a
// negative plm_status only when out of memory.
int32_t plm_tokenizer_encode(const plm_tokenizer *t, const char *text, size_t len, int32_t *ids,
                             int32_t cap);

// plm_tokenizer_decode: the bytes of ids (ByteLevel decoding, or SentencePiece's byte fallback and
// U+2581 as ' '; special tokens included as text).
// Writes at most cap bytes (no NUL) and returns the number of bytes of the whole decoding, or
// PLM_ERR_ARG when an id is out of range. The bytes may end inside a UTF-8 character.
int64_t plm_tokenizer_decode(const plm_tokenizer *t, const int32_t *ids, int32_t n, char *out,
                             size_t cap);

// ---- chat ----

typedef struct {
    const char *role;    // "system", "developer" (= system), "user" or "assistant"
    const char *content; // the message text
} plm_chat_message;

// plm_chat_prompt: the n messages as prompt text in the model's chat format, ending with the
// assistant's turn opened, as the model's Jinja template renders them with add_generation_prompt:
// ChatML (SmolLM2, Qwen), Llama 3 or Gemma, recognized from chat_template (the model's,
// plm_model_chat_template; NULL: from tok's special tokens). *stop_id receives the token that ends
// the assistant's turn (<|im_end|>, <|eot_id|>, <end_of_turn>). Works like snprintf: writes at
// most cap bytes (no NUL) and returns the length of the whole prompt; PLM_ERR_UNSUPPORTED when
// the format is none of these (or tok lacks its stop token), PLM_ERR_ARG on bad arguments.
int64_t plm_chat_prompt(const char *chat_template, const plm_tokenizer *tok,
                        const plm_chat_message *msgs, int32_t n, char *out, size_t cap,
                        int32_t *stop_id);

// ---- LoRA adapters (PEFT format) ----

typedef struct plm_lora plm_lora;

// plm_lora_load: a PEFT LoRA adapter directory (adapter_config.json, adapter_model.safetensors, and
// tokenizer files when it adds tokens) for base, checked against base's shapes. base must outlive
// the adapter.
plm_status plm_lora_load(plm_lora **out, const char *dir, const plm_model *base, plm_error *err);
void plm_lora_free(plm_lora *l);
// plm_lora_tokenizer: the adapter's tokenizer (with its added tokens), or NULL if it has none.
const plm_tokenizer *plm_lora_tokenizer(const plm_lora *l);
// plm_lora_save: write l as a PEFT adapter directory (atomically, file by file).
plm_status plm_lora_save(const plm_lora *l, const char *dir, plm_error *err);
// plm_model_merge: a new f32 model = base with the adapter folded into its weights (and its added
// token rows appended to the vocabulary). The result does not refer to base or l.
plm_status plm_model_merge(plm_model **out, const plm_model *base, const plm_lora *l,
                           plm_error *err);

// ---- fine-tuning ----

// One tokenized example: the loss covers ids[n_prompt .. n).
typedef struct {
    int32_t *ids;     // (n) prompt tokens then target tokens
    int32_t n;        // tokens
    int32_t n_prompt; // ids[0 .. n_prompt) get no loss
    int32_t *avoid;   // (n) or NULL: avoid[p] is the token the row predicting ids[p] is trained
                      // away from when plm_train_params.unlikelihood > 0 (the copy candidate of
                      // docs/DESIGN.md), -1 for none
} plm_example;

typedef struct plm_trainer plm_trainer;

typedef struct {
    int32_t n_threads;    // worker threads including the caller; 0 = number of cores
    int32_t max_tokens;   // capacity: the most tokens (sum of lengths) in one micro-batch
    int32_t max_len;      // capacity: the longest example
    float lr;             // peak learning rate
    float beta1, beta2;   // AdamW moments (0.9, 0.999)
    float eps;            // AdamW epsilon (1e-8)
    float weight_decay;   // AdamW decoupled weight decay (0)
    float grad_clip;      // max global gradient norm (1.0); 0 = off
    int32_t warmup_steps; // linear warmup from 0 (HF get_cosine_schedule_with_warmup)
    int32_t total_steps;  // cosine decay reaches 0 here; 0 = constant lr after warmup
    uint64_t seed;        // LoRA dropout masks
    float unlikelihood;   // weight a of the unlikelihood term on plm_example.avoid: the training
                          // loss is CE + a * sum -log(1 - p(avoid)) (0 = plain cross-entropy)
} plm_train_params;

plm_train_params plm_train_default_params(void);

// plm_trainer_create: training state for the adapter lora on the frozen base (both must outlive
// the trainer; lora's weights are updated in place by plm_trainer_step).
plm_status plm_trainer_create(plm_trainer **out, const plm_model *base, plm_lora *lora,
                              const plm_train_params *params, plm_error *err);
void plm_trainer_free(plm_trainer *t);

// plm_trainer_accumulate: forward and backward of n examples (one micro-batch, packed without
// padding), adding grad_scale * d(summed token loss)/d(parameters) to the gradients. *loss gets
// the summed loss (nats: cross-entropy, plus unlikelihood * the unlikelihood term when that is
// set) and *n_tokens the tokens it covers.
plm_status plm_trainer_accumulate(plm_trainer *t, const plm_example *ex, int32_t n,
                                  float grad_scale, double *loss, int32_t *n_tokens,
                                  plm_error *err);
// plm_trainer_loss: the summed cross-entropy of n examples, no gradients (evaluation; never the
// unlikelihood term, so runs with and without it compare).
plm_status plm_trainer_loss(plm_trainer *t, const plm_example *ex, int32_t n, double *loss,
                            int32_t *n_tokens, plm_error *err);
// plm_trainer_step: clip the gradients, one AdamW update at the scheduled learning rate, zero the
// gradients. *lr and *grad_norm (may be NULL) receive what was used and the norm before clipping.
void plm_trainer_step(plm_trainer *t, float *lr, float *grad_norm);
int32_t plm_trainer_n_steps(const plm_trainer *t); // updates done so far
float plm_trainer_lr_at(const plm_trainer *t, int32_t step);

// The optimizer state (moments, step count) for checkpoints; the adapter itself is saved with
// plm_lora_save. Written atomically.
plm_status plm_trainer_save_state(const plm_trainer *t, const char *path, plm_error *err);
plm_status plm_trainer_load_state(plm_trainer *t, const char *path, plm_error *err);

// ---- the fine-tuning run: data, adapter, training loop, checkpoints, metrics ----

typedef struct {
    int32_t step, total_steps; // optimizer steps done / planned
    float epoch;               // fractional epoch
    double loss;               // mean train loss of this step (nats per target token)
    double eval_loss;          // mean eval loss when evaluated at this step, else NaN
    float lr, grad_norm;       // learning rate used, gradient norm before clipping
    double tok_s;              // training tokens per second (every token of every example)
    double elapsed, eta;       // seconds so far, estimated seconds left
    int64_t tokens;            // tokens trained on so far
} plm_train_progress;

typedef struct {
    const char *data;       // training data: PAWS TSV or JSONL {"input","output"}
    const char *eval_data;  // evaluation data, or NULL: a held-out share of data
    float eval_frac;        // that share (0.05), whole groups of rows sharing a sentence
    const char *out;        // the adapter directory to write (created)
    const char *targets;    // "q_proj,v_proj" (PEFT's Llama default), "all", or a list
    int32_t rank;           // LoRA r (8)
    float alpha;            // lora_alpha (16)
    float dropout;          // lora_dropout (0.05)
    int32_t batch;          // examples per micro-batch (8)
    int32_t accum;          // micro-batches per optimizer step (1)
    int32_t epochs;         // passes over the data (1)
    int32_t max_steps;      // stop after this many steps (0 = epochs decide)
    float warmup_ratio;     // warmup steps as a share of the total (0.03)
    int32_t eval_every;     // evaluate every N steps (0 = at the end only)
    int32_t save_every;     // checkpoint every N steps (0 = only on stop)
    int reverse;            // PAWS: add reversed pairs (1)
    int strict;             // a bad data row is an error (0)
    int resume;             // continue from out/checkpoint
    int32_t max_len;        // longest example in tokens (256)
    plm_train_params train; // optimizer and threads (lr, clipping, seed, n_threads)
    // on_step: called after every optimizer step; a non-zero return stops the run after writing a
    // checkpoint (plm_finetune then returns PLM_ERR_CANCELLED).
    int (*on_step)(void *user, const plm_train_progress *p);
    // on_bad_row: called with "file:line: why" for each bad data row (skipped unless strict), so
    // that a caller can list them all; may be NULL. Gets user too.
    void (*on_bad_row)(void *user, const char *msg);
    void *user;
    // The diversity control and the data recipe (docs/DESIGN.md):
    int32_t diversity_levels; // control levels trained into the template (0 = no control field,
                              // the default until a held-out run shows it helps; e.g. 5)
    float min_distance;       // drop examples closer than this to their source (plm_pair_distance,
                              // 0..100; 0 = keep all): PAWS has many near copies
    int detok;                // detokenize PAWS TSV sentences (plm_detok's rules) (1)
} plm_finetune_params;

plm_finetune_params plm_finetune_default_params(void);

// plm_finetune: train a LoRA adapter on base (frozen; f32 or q8_0) for the task template of
// docs/DESIGN.md, adding <|OUTPUT_START|> / <|OUTPUT_END|> and the diversity control tokens when
// the tokenizer lacks them (their rows are trained). Writes out/: the PEFT adapter and tokenizer
// files, pocketlm_task.json (the prompts and levels, for users of the PEFT files), metrics.jsonl,
// loss.svg, data_report.json, and checkpoint/ while it runs.
plm_status plm_finetune(const plm_model *base, const plm_finetune_params *p, plm_error *err);

// The same run one step at a time, for a caller that owns the loop (the browser yields between
// steps): plm_finetune is plm_finetune_begin, plm_finetune_step until it returns 0 (after each
// step on_step, and plm_finetune_checkpoint when on_step says stop or save_every says so), then
// plm_finetune_save. The run borrows base and p (and the strings p points to); on_step and
// save_every are the caller's to apply.
typedef struct plm_finetune_run plm_finetune_run;

typedef struct {
    int64_t rows;            // data rows read
    int64_t not_label1;      // PAWS rows that are not paraphrases (not bad)
    int64_t bad;             // bad rows skipped (each reported through on_bad_row)
    int32_t train_examples;  // examples trained on (a PAWS pair counts twice with reverse)
    int32_t eval_examples;   // held-out examples
    int32_t steps_per_epoch; // optimizer steps per epoch
    int32_t total_steps;     // steps the run makes in all
    int32_t step;            // steps done (a resumed run starts at its checkpoint's)
} plm_finetune_info;

// plm_finetune_begin: everything plm_finetune does before its first step: out/, the adapter (new,
// or out/checkpoint's with p->resume), the data (bad rows to on_bad_row), the held-out split, the
// trainer. *out is freed with plm_finetune_free.
plm_status plm_finetune_begin(plm_finetune_run **out, const plm_model *base,
                              const plm_finetune_params *p, plm_error *err);
// plm_finetune_step: one optimizer step, with the held-out loss on evaluation steps, and its line
// of metrics.jsonl. *pr (may be NULL) receives its progress. Returns 1 after a step, 0 when the
// run has no step left (nothing done), or a negative plm_status.
int plm_finetune_step(plm_finetune_run *r, plm_train_progress *pr, plm_error *err);
// plm_finetune_checkpoint: out/checkpoint/ (adapter, optimizer state, position; a run begun from it
// with p->resume continues bit for bit) and out/loss.svg, now.
plm_status plm_finetune_checkpoint(plm_finetune_run *r, plm_error *err);
// plm_finetune_save: the adapter as it is now into out/ (PEFT files), and out/loss.svg.
plm_status plm_finetune_save(plm_finetune_run *r, plm_error *err);
const plm_lora *plm_finetune_adapter(const plm_finetune_run *r); // valid until plm_finetune_free
plm_finetune_info plm_finetune_run_info(const plm_finetune_run *r);
void plm_finetune_free(plm_finetune_run *r);

// ---- the training loss chart (loss.svg; the web app's Train view) ----

typedef struct {
    const float *step, *loss; // (n) the train loss of each optimizer step, in order
    int32_t n;
    const float *eval_step, *eval_loss; // (n_eval) the held-out loss where it was measured
    int32_t n_eval;
    float steps_per_epoch; // > 0: an epoch axis above the step axis; 0: none
    const char *title;     // NULL: "Training loss"
    int32_t width, height; // pixels; 0: 720 x 400
} plm_loss_chart;

// plm_loss_chart_svg: the chart of c as a standalone SVG document: step axis (bottom), epoch axis
// (top), loss axis, ticks and labels, the raw train loss faint, its exponential moving average
// (bias-corrected, over ~n/40 steps, 1 to 200) bold, the eval loss as dots; non-finite values are
// skipped. *out receives the NUL-terminated text (malloc'd: free() it), *len its length (len may
// be NULL). Pure: no file, no global state; thread-safe.
plm_status plm_loss_chart_svg(char **out, size_t *len, const plm_loss_chart *c, plm_error *err);

// ---- the paraphrase trade-off chart (`pocketlm eval`'s tradeoff.svg) ----

typedef struct {
    const float *self_bleu, *bleu; // (n) one point per run (a system, a diversity setting)
    const char *const *label;      // (n) each point's label, or NULL: none
    const int32_t *series;         // (n) consecutive points of one series are joined, or NULL
    int32_t n;
    float copy_ibleu;      // the copy baseline's iBLEU: a dashed line of equal iBLEU; NaN: none
    const char *title;     // NULL: "BLEU against self-BLEU"
    int32_t width, height; // pixels; 0: 720 x 480
} plm_tradeoff_chart;

// plm_tradeoff_chart_svg: BLEU (y) against self-BLEU (x, up to 100) of c's points as a standalone
// SVG document, like plm_loss_chart_svg (*out malloc'd, pure, thread-safe); non-finite points are
// skipped.
plm_status plm_tradeoff_chart_svg(char **out, size_t *len, const plm_tradeoff_chart *c,
                                  plm_error *err);

// ---- session: KV cache and the forward pass ----

typedef struct plm_session plm_session;

typedef struct {
    int32_t n_ctx;     // positions held in the KV cache; 0 = min(2048, max_position_embeddings)
    int32_t n_threads; // worker threads including the caller; 0 = number of cores
    const plm_lora
        *lora;         // an adapter applied at run time (no merge), or NULL; outlives the session
    plm_dtype kv_type; // how the KV cache keeps keys and values: PLM_DTYPE_F32 (0, the default) or
                       // PLM_DTYPE_F16 (IEEE half, rounded to nearest even: half the memory; the
                       // attention reads the halves as their exact f32 values)
} plm_session_params;

plm_session_params plm_session_default_params(void);

// plm_session_create: a KV cache and buffers for model, which must outlive the session.
plm_status plm_session_create(plm_session **out, const plm_model *model,
                              const plm_session_params *params, plm_error *err);
void plm_session_free(plm_session *s);

// plm_session_decode: run n tokens at positions pos .. pos+n-1, where pos is the current length
// of the session (plm_session_n_past), and append them to the KV cache. Afterwards the logits of the
// last token are available. Returns PLM_ERR_ARG for an id out of range or when the cache is full.
plm_status plm_session_decode(plm_session *s, const int32_t *ids, int32_t n, plm_error *err);

// plm_session_logits: (vocab_size) logits of the last decoded token; valid until the next
// decode or reset on this session.
const float *plm_session_logits(const plm_session *s);

// plm_session_decode_all: like decode, but writes every position's logits into out, which holds
// n * plm_session_n_vocab(s) floats (used for perplexity and tests).
plm_status plm_session_decode_all(plm_session *s, const int32_t *ids, int32_t n, float *out,
                                  plm_error *err);

const plm_model *plm_session_model(const plm_session *s); // the model the session borrows
// plm_session_tokenizer: the adapter's tokenizer when the session has one, else the model's.
const plm_tokenizer *plm_session_tokenizer(const plm_session *s);
int32_t plm_session_n_vocab(const plm_session *s);   // logits per position (base + added tokens)
int32_t plm_session_n_past(const plm_session *s);    // tokens in the KV cache
int32_t plm_session_n_ctx(const plm_session *s);     // capacity of the KV cache
int32_t plm_session_n_threads(const plm_session *s); // threads used, the caller included
// plm_session_truncate: keep the first n tokens of the cache (n <= n_past); 0 resets. (A model
// with sliding-window layers may decode the n again, with the next plm_session_decode: its local
// layers keep only their window.)
void plm_session_truncate(plm_session *s, int32_t n);

// ---- sampling ----

typedef struct {
    float temperature;        // 0 = greedy (argmax)
    int32_t top_k;            // 0 = off
    float top_p;              // 1 = off
    float min_p;              // 0 = off
    float repetition_penalty; // 1 = off (HF semantics: divide positive logits, multiply negative)
    uint64_t seed;            // the xorshift state starts from this
} plm_sampler_params;

plm_sampler_params plm_sampler_default_params(void); // greedy, everything off, seed 42

typedef struct plm_sampler plm_sampler;
plm_status plm_sampler_create(plm_sampler **out, const plm_sampler_params *params, int32_t n_vocab,
                              plm_error *err);
void plm_sampler_free(plm_sampler *s);
// plm_sampler_sample: choose the next id from logits (n_vocab), given the ids seen so far (for
// the repetition penalty). logits are not modified.
int32_t plm_sampler_sample(plm_sampler *s, const float *logits, const int32_t *history,
                           int32_t n_history);

// plm_logprobs: log-probabilities under the model's own distribution at temperature 1: the log
// softmax of logits (n_vocab), summed in double, before any sampling setting (penalties,
// temperature, top-k/p, blocking): what llama.cpp and OpenAI report as logprobs. *logprob receives
// log p(id); with k > 0 (at most n_vocab), top_ids and top_logprobs (k entries each) receive the k
// most likely ids, most likely first (ties: the lower id first), and theirs. PLM_ERR_ARG on bad
// arguments.
plm_status plm_logprobs(const float *logits, int32_t n_vocab, int32_t id, double *logprob,
                        int32_t k, int32_t *top_ids, double *top_logprobs, plm_error *err);

// ---- generation ----

typedef enum {
    PLM_STOP_LENGTH = 0,   // max_tokens reached
    PLM_STOP_TOKEN = 1,    // a stop token was sampled (not included in the output)
    PLM_STOP_STRING = 2,   // a stop string appeared (the text is cut before it)
    PLM_STOP_CONTEXT = 3,  // the KV cache is full
    PLM_STOP_CALLBACK = 4, // on_text asked to stop
} plm_stop_reason;

const char *
plm_stop_reason_name(plm_stop_reason r); // "length", "token", "string", "context", "callback"

typedef struct {
    int32_t max_tokens;         // new tokens at most
    plm_sampler_params sampler; // how to choose each token
    const int32_t *stop_tokens; // ids that end generation; NULL = the model's eos_token_id
    int32_t n_stop_tokens;
    const char *const *stop_strings; // texts that end generation (cut from the output)
    int32_t n_stop_strings;
    // on_text: called with each new piece of complete UTF-8 text as it is produced (never a split
    // character, never text that might still become a stop string); return non-zero to stop.
    int (*on_text)(void *user, const char *text, size_t len);
    // on_token: called with each token of the output as it is sampled (not a stop token), before
    // its text reaches on_text, with the logits it was drawn from: the model's own (n_vocab =
    // plm_session_n_vocab, before penalties, blocking and temperature; valid during the call, for
    // plm_logprobs). The output's text is the tokens' texts joined, cut before a stop string
    // (single_line also drops leading white space). Return non-zero to stop. Only for an output
    // that comes out as it is sampled: with candidates > 1 or copy_retry > 0, plm_generate returns
    // PLM_ERR_ARG. May be NULL.
    int (*on_token)(void *user, int32_t id, const float *logits);
    // should_stop: asked between slices of the prompt's prefill (64 tokens each) and before every
    // token; non-zero stops generation (stop reason "callback"; during the prefill plm_generate
    // returns PLM_ERR_CANCELLED): a long prompt must not hold up a caller that is quitting.
    // May be NULL; gets user too.
    int (*should_stop)(void *user);
    void *user;
    // single_line: leading white space is dropped and the output ends at the first newline after
    // some text (stop reason "string"): the plain task template, whose base model often answers
    // "Output: " with a newline first.
    int single_line;
    // copy_penalty: dynamic blocking (Niu et al. 2021, "Unsupervised paraphrasing with pretrained
    // language models"), so that a paraphraser does not copy its source: after the output emits a
    // token that occurs in the source, every source token that followed it there (and that starts a
    // word: a piece that continues a word is never blocked) is lowered by copy_penalty for the next
    // step only; INFINITY blocks it outright, as the paper does. 0 = off. Applied before the
    // sampler's processors.
    float copy_penalty;
    // source: the text not to copy (a paraphrase's input; NUL-terminated, borrowed for the
    // generation), tokenized alone, as an output starts; NULL = the prompt's ids. Blocking works on
    // its ids, reranking measures the overlap with its text.
    const char *source;
    // copy_block: the share of the source's bigrams that block (the paper's block probability; each
    // bigram drawn once per candidate from the seed), and copy_retry's first share. 1 = every
    // bigram (the default), 0 = none (copy_retry: its first retries block none, its last all).
    float copy_block;
    // candidates: sample this many outputs and keep the one of highest utility
    //     u = mean log p(token) - rerank_weight * BLEU(output, source) / 100
    // (log p: the model's own log-probability of each generated token, the stop token included,
    // before any penalty or temperature; BLEU: sentence BLEU as plm_bleu computes it, against the
    // source text). Candidate i is exactly the output of a lone generation with seed + i; the
    // prompt is prefilled once (each later candidate re-decodes only the prompt's last token), so
    // the cost is about candidates times the decoding. Text comes out only once all are done (the
    // best's, in one piece), and afterwards the session holds the prompt only. 0 or 1 = off; so
    // are candidates that cannot differ (greedy decoding without a share of bigrams to draw).
    int32_t candidates;
    float rerank_weight; // lambda above, >= 0
    // copy_retry: > 0: when the output (the best candidate) copies the source (the same 13a tokens,
    // plm_bleu_same_tokens), it is decoded again, and that is the output; while it still copies,
    // again. First come copy_deviate deviations: the k-th takes the output's tokens up to its step
    // with the k-th smallest margin (the gap between the logits of the chosen token and of the
    // runner-up, the model's least sure choices first; never at a stop, to a stop token, or to a
    // token keep_facts sets aside), puts the runner-up there, and decodes on as set from it: the
    // model's own smallest change. The session keeps the tokens before it, so a deviation decodes
    // only what follows. Then the bigram retries: a share of the source's bigrams blocked by
    // copy_retry logits (as copy_penalty does), the shares copy_block, 2 copy_block, ..., and the
    // third (or the first share that reaches 1) blocks every bigram. A small share changes few
    // words: the output stays close to the source. The retries' bigrams are drawn from the default
    // seed, not sampler.seed: greedy decoding with retries gives the same output for any seed. The
    // cost: the decodings again of an output that copies (at most copy_deviate + 3). Text comes
    // out only once it is known (as with candidates). 0 = off.
    float copy_retry;
    int32_t copy_deviate; // deviations before the bigram retries, in [0, 64]; 0 = none
    // keep_facts: 1: the output never adds a number, or a capitalized word other than its first,
    // that the source text lacks (plm_invented_prefix): a sampled token that would start or extend
    // such a word is set aside and the sampler draws again without it (up to 64 times; stop tokens
    // are always allowed). Needs source; 0 = off.
    int keep_facts;
} plm_generate_params;

plm_generate_params
plm_generate_default_params(void); // 256 tokens, greedy, eos stops, copy_block 1

typedef struct {
    int32_t prompt_tokens;
    int32_t generated_tokens; // tokens sampled (including a stop token)
    plm_stop_reason stop_reason;
    double prefill_seconds;
    double decode_seconds;   // every candidate's
    int32_t sampled_tokens;  // tokens sampled over every candidate (the decoding work)
    int32_t candidates_done; // candidates finished (0 without candidates)
    double utility;          // the chosen output's utility (see candidates), 0 without candidates
} plm_generate_result;

// ---- the paraphrase task (src/task.c): its template, where an answer ends, its defaults ----
// The one home of the task's policy: `pocketlm paraphrase` and `eval`, the server's
// /v1/paraphrase, the wasm module and pocketlm.js all use these, and fine-tuning trains on the
// same template (docs/DESIGN.md), so training and inference agree byte for byte.

#define PLM_TASK_START "<|OUTPUT_START|>"
#define PLM_TASK_END   "<|OUTPUT_END|>"

// plm_task_prompt: "Rephrase the following:\nInput: {input}\nOutput: <|OUTPUT_START|>" into out
// (cap bytes, NUL-terminated when cap > 0); returns its length without the NUL (may be >= cap).
size_t plm_task_prompt(const char *input, char *out, size_t cap);
// plm_task_target: "{target}<|OUTPUT_END|>", likewise.
size_t plm_task_target(const char *target, char *out, size_t cap);

// The task under a tokenizer. With both markers (a model fine-tuned for the task) prompts are the
// template above and an answer ends at <|OUTPUT_END|>; without them (a base model) prompts are the
// same words without the markers, "Rephrase the following:\nInput: {input}\nOutput: ", and the
// answer is its first line of text.
// The diversity control: an adapter fine-tuned with it (`pocketlm finetune --diversity-levels N`)
// has N control tokens <|DIVERSITY_0|> .. <|DIVERSITY_{N-1}|> in its tokenizer (so merged and
// exported models keep them), and its prompts carry one of them in a field before the output:
//   "Rephrase the following:\nInput: {input}\nDiversity: <|DIVERSITY_k|>\nOutput: <|OUTPUT_START|>"
// Level k was trained on the k-th of N equal shares of the training pairs ordered by their distance
// (100 - sentence BLEU of the target against the source): 0 the closest rewrites, N-1 the most
// different ones. A model without those tokens gets the template without the field.
#define PLM_TASK_LEVELS_MAX        10   // control tokens at most
#define PLM_TASK_DIVERSITY_DEFAULT 0.5f // plm_task_of's diversity (held-out choice: paraphrase.c)
typedef struct {
    const plm_tokenizer *tok; // borrowed
    int32_t end_id;           // <|OUTPUT_END|>'s id when tok has both markers, else -1
    // diversity: D in [0, 1]: 0 = stay close to the input, 1 = as different as the adapter can;
    // it picks level k = min(N - 1, floor(D * N)) of the N = n_levels control tokens (above 1
    // counts as 1). Negative: no control field (the template without it). Unused when n_levels is
    // 0. plm_task_of sets PLM_TASK_DIVERSITY_DEFAULT; callers may change it.
    float diversity;
    int32_t n_levels; // the control tokens tok has (with both markers), 0 when none
} plm_task;

plm_task plm_task_of(const plm_tokenizer *tok); // tok may be NULL: the plain template
// plm_task_level: the control level t's prompts carry, or -1 when they have no control field.
int32_t plm_task_level(const plm_task *t);

// plm_task_check: PLM_OK when input (NUL-terminated) has text to rephrase; PLM_ERR_ARG, with a
// message in err, when it is NULL, empty or only ASCII white space: a model asked to rephrase
// nothing invents a sentence or runs to its token limit.
plm_status plm_task_check(const char *input, plm_error *err);

// plm_task_text: the prompt for input under t into out (cap bytes, NUL-terminated when cap > 0);
// with a target (not NULL), the whole example: the prompt, the target and the template's end
// (<|OUTPUT_END|>, or a newline in the plain template): a shot of a few-shot prompt. Returns the
// length without the NUL (which may be >= cap). Check input first (plm_task_check).
size_t plm_task_text(const plm_task *t, const char *input, const char *target, char *out,
                     size_t cap);

// plm_task_default_params: plm_generate_default_params with the task's settings: at most 64 new
// tokens, temperature 0.8, top-k 8. Without a stop rule: see plm_task_stop.
plm_generate_params plm_task_default_params(void);

// plm_task_stop: make gp end where an answer of t ends: at <|OUTPUT_END|> (gp->stop_tokens then
// points into t, which must outlive gp's use), or, in the plain template, after its first line of
// text (gp->single_line).
void plm_task_stop(const plm_task *t, plm_generate_params *gp);

// ---- the diversity knob of the paraphrase task (src/paraphrase.c) ----
// One number, D in [0, 1]: 0 = stay close to the input, 1 = as different as it can while keeping
// the meaning. `pocketlm paraphrase --diversity`, /v1/paraphrase's "diversity", the wasm module and
// pocketlm.js's paraphrase(text, {diversity}) all go through plm_paraphrase_diversity.

// The default D is the task's, PLM_TASK_DIVERSITY_DEFAULT (plm_task_of's), chosen on held-out data,
// never on test: 0.5 for the shipped adapter models/paws-lora (control level 2 of 5, greedy, the
// retries of copies from a quarter of the source's bigrams): the best held-out iBLEU among settings
// that copy at most 5% of the inputs (src/paraphrase.c has the figures).

// plm_paraphrase_diversity: set what D controls: t's control code (t->diversity; t may be NULL)
// and gp's decoding (copy_retry and copy_block = D * D; copy_penalty 0, candidates 1, greedy); gp
// should start from plm_task_default_params, and the caller sets gp->source to the input.
// PLM_ERR_ARG, with a message, when diversity is not in [0, 1].
plm_status plm_paraphrase_diversity(plm_task *t, plm_generate_params *gp, float diversity,
                                    plm_error *err);

// ---- a generator: the same loop, one token per call (for callers that own the loop: the browser,
// a server that checks its client between tokens) ----

typedef struct plm_generator plm_generator;

// plm_generator_create: append the prompt to the session (the prefill) and get ready to sample with
// params (on_text is not used; should_stop, with user, is asked between prefill slices and a yes
// returns PLM_ERR_CANCELLED). The session must outlive the generator.
plm_status plm_generator_create(plm_generator **out, plm_session *s, const int32_t *prompt,
                                int32_t n_prompt, const plm_generate_params *params,
                                plm_error *err);
// plm_generator_next: sample one token (and feed the previous one to the model). *text, *len: the
// text this call makes safe to show (complete UTF-8, never part of a stop string; may be empty),
// valid until the next call. Returns 1 while generation goes on, 0 once finished (then the result
// says why), or a negative plm_status.
int plm_generator_next(plm_generator *g, const char **text, size_t *len, plm_error *err);
// plm_generator_token: the id the last call sampled, -1 if none (with candidates: for the candidate
// being sampled; take the output's ids from plm_generator_ids once finished).
int32_t plm_generator_token(const plm_generator *g);
const plm_generate_result *plm_generator_result(const plm_generator *g);
// plm_generator_ids: the generated ids (without a stop token); *n receives their count.
const int32_t *plm_generator_ids(const plm_generator *g, int32_t *n);
void plm_generator_free(plm_generator *g);

// plm_generate: append prompt ids to the session, then sample up to max_tokens. The generated
// ids (without a final stop token) are written to out_ids (cap ids at most; may be NULL).
plm_status plm_generate(plm_session *s, const int32_t *prompt, int32_t n_prompt,
                        const plm_generate_params *params, int32_t *out_ids, int32_t cap,
                        plm_generate_result *result, plm_error *err);

// ---- scoring ----

// Corpus BLEU exactly as sacreBLEU's default corpus_bleu (sacrebleu 2.x: tokenizer "13a",
// case-sensitive, smoothing "exp", brevity penalty, no effective order), one reference a segment.
typedef struct {
    double bleu;          // [0, 100]
    double precisions[4]; // n-gram precisions in percent, n = 1..4 (smoothed as sacreBLEU does)
    double bp;            // brevity penalty
    int64_t sys_len;      // hypothesis tokens (13a)
    int64_t ref_len;      // reference tokens
    int64_t correct[4];   // matched n-grams (clipped by the reference counts), n = 1..4
    int64_t total[4];     // hypothesis n-grams, n = 1..4
} plm_bleu_result;

// plm_bleu: BLEU of n hypotheses hyps[i] against one reference refs[i] each (NUL-terminated UTF-8;
// a NULL string counts as empty). n = 0 gives a zero score. Returns PLM_OK, PLM_ERR_ARG or
// PLM_ERR_NOMEM. Thread-safe; no state.
plm_status plm_bleu(const char *const *hyps, const char *const *refs, int32_t n,
                    plm_bleu_result *out, plm_error *err);

// plm_bleu_tokenize: the 13a tokenization sacreBLEU applies to a segment (trailing white space
// dropped, "<skipped>", "-\n", newlines and the &quot; &amp; &lt; &gt; entities handled, then
// punctuation split off; tokens joined by single spaces) of len bytes of text into out (cap bytes,
// NUL-terminated when cap > 0). Returns the length of the whole result (which may be >= cap), or
// PLM_ERR_NOMEM.
int64_t plm_bleu_tokenize(const char *text, size_t len, char *out, size_t cap);

// plm_bleu_same_tokens: 1 when a and b (NUL-terminated) have the same 13a tokens (a copy up to
// spacing: "hour ," is "hour,"), else 0; -1 when out of memory.
int plm_bleu_same_tokens(const char *a, const char *b);

// plm_pair_distance: how far target is from source (NUL-terminated; NULL counts as empty), from 0
// (the same 13a tokens in the same order) to 100 (no shared word): 100 - the sentence BLEU of
// target against source as the reference, as sacrebleu.sentence_bleu computes it (plm_bleu's
// definition with effective order: a segment under 4 tokens is not 0). Word order counts (PAWS
// pairs are the same words swapped); not symmetric. The diversity levels of fine-tuning come from
// it. Negative when out of memory.
double plm_pair_distance(const char *source, const char *target);

// The paraphrase metrics of `pocketlm eval` (src/score.c), of n outputs against their inputs and
// references.
typedef struct {
    int32_t n;
    plm_bleu_result bleu;      // outputs against the references (plm_bleu)
    plm_bleu_result self_bleu; // outputs against the inputs
    double ibleu;              // 0.8 BLEU - 0.2 self-BLEU (Sun & Zhou 2012)
    double copy_rate;          // share of outputs that copy their input: the same 13a tokens
                               // (spacing aside: "hour ," copies "hour,")
    double len_ratio;          // mean over rows of output / input length in 13a tokens
    double distance;           // mean plm_pair_distance(input, output)
    double invented_rate;      // share of outputs with invented content (plm_invented)
} plm_paraphrase_scores;

// plm_score_paraphrases: the metrics of outputs[i] against inputs[i] and refs[i] (NUL-terminated
// UTF-8; NULL counts as empty). Returns PLM_OK, PLM_ERR_ARG or PLM_ERR_NOMEM. Thread-safe.
plm_status plm_score_paraphrases(const char *const *inputs, const char *const *refs,
                                 const char *const *outputs, int32_t n, plm_paraphrase_scores *out,
                                 plm_error *err);

// plm_invented: 1 when output has a number, or a capitalized word other than its first word, that
// input lacks (content the paraphraser made up), else 0. Words are maximal runs of ASCII letters
// and digits and of bytes >= 0x80 (a UTF-8 letter stays inside its word); everything else
// separates words ("Wilson's" is "Wilson" and "s", "1.08" is "1" and "08"). A number is a word with
// an ASCII digit and must appear in the input as it is; a capitalized word starts with A-Z or a
// Latin-1 capital (U+00C0 to U+00DE but U+00D7) and must appear in the input ignoring ASCII case.
int plm_invented(const char *input, const char *output);
// plm_invented_prefix: the same for the first len bytes of an output still being written: 1 when
// they already have invented content, or end in a word that no word of input starts with (under
// the same rule), so that every output that continues them has it.
int plm_invented_prefix(const char *input, const char *output, size_t len);

// ---- local HTTP server (`pocketlm serve`) ----

// The server: one accept loop on a TCP socket; each connection gets a thread for its I/O (bounded:
// more than max_conns at once get 503). Generation requests are batched continuously: each holds a
// sequence (its own KV cache and adapter) while it runs, at most max_batch at once and within
// kv_budget bytes of KV cache, with at most max_pending more waiting (more get 503); every decode
// step runs the tokens of all of them together, so the weights are read once per step. Routes:
// GET /v1/health, POST /v1/paraphrase, OpenAI's GET /v1/models, POST /v1/completions and POST
// /v1/chat/completions (server-sent events when "stream": true), POST /v1/adapters and DELETE
// /v1/adapters/NAME (load and unload a LoRA adapter), GET /model.gguf (model_file, with Range),
// and static files from web_dir ("/" is index.html). OPTIONS answers CORS preflights.

// An adapter the server starts with: requests pick it by "model": "BASE:name" or "adapter": "name".
typedef struct {
    const char *name;     // 1..64 of A-Z a-z 0-9 . _ -
    const plm_lora *lora; // borrowed: outlives plm_server_run
} plm_server_adapter;

typedef struct {
    const char *host;       // address to listen on ("127.0.0.1"); a numeric IPv4 or IPv6 address
    int32_t port;           // 8080; 0 = a free port, reported through on_log
    const char *web_dir;    // directory of static files, or NULL (then only the API is served)
    const char *model_file; // file served at GET /model.gguf, or NULL (404)
    const char *model_name; // the name reported by /v1/health and in completions
    int coi;                // 1: send COOP same-origin + COEP require-corp (threaded wasm needs it)
    // The engine for /v1/*: the base model (borrowed, or NULL: then only files are served) and
    // the adapters applied at run time, unmerged, per request. A request that names no adapter
    // gets the first one here, or the base when there is none (or the adapter merged into the
    // model file: then the base alone is not served).
    const plm_model *model;
    const plm_server_adapter *adapters; // (n_adapters), or NULL
    int32_t n_adapters;
    int32_t n_ctx;       // positions per request (0 = the model's, at most 2048)
    int32_t n_threads;   // threads of the decode steps (0 = every core)
    int32_t max_batch;   // sequences decoded together in one step (8)
    int64_t kv_budget;   // bytes of KV cache the running requests may hold together (512 MiB); a
                         // request holds (its prompt + max_tokens, at most n_ctx) positions' worth
    plm_dtype kv_type;   // the requests' KV caches: PLM_DTYPE_F32 (0, the default) or _F16 (half
                         // the bytes of kv_budget per position; plm_session_params.kv_type)
    int32_t max_pending; // generation requests waiting for room in the batch (16)
    int32_t max_conns;   // connections served at once (64)
    int32_t max_body;    // request body limit in bytes (65536); larger gets 413
    int32_t timeout_ms;  // a client that sends or takes nothing for this long is dropped (10000)
    // Who may ask. The Host header must name this server (host, localhost, 127.0.0.1 or [::1], with
    // the port; else 421), so that a DNS-rebinding page cannot reach it. A POST/DELETE whose Origin
    // is another origin gets 403 unless listed in allow_origins, which also get CORS headers and
    // preflight answers. api_key: when set, /v1/* needs "Authorization: Bearer <api_key>" (else
    // 401); required when host is not a loopback address (run refuses to start without it).
    const char *api_key;              // NULL = none
    const char *const *allow_origins; // (n_allow_origins) e.g. "http://localhost:5173", or NULL
    int32_t n_allow_origins;
    int log_prompts; // 1: log each generation request's prompt; 0 (default): prompts never logged
    // should_stop: polled a few times a second (from the accept loop and during generation);
    // non-zero stops the server: the socket is closed, requests in flight end, run returns PLM_OK.
    int (*should_stop)(void *user);
    // on_log: one line per event (listening address, each request), without a newline; called
    // from the server's threads, one call at a time. May be NULL.
    void (*on_log)(void *user, const char *line);
    void *user;
} plm_server_params;

plm_server_params plm_server_default_params(void);

// plm_server_run: bind, listen and serve until should_stop says so. Returns PLM_OK after a clean
// stop, or PLM_ERR_IO when the address cannot be bound (err says why), PLM_ERR_ARG for bad params
// (among them a non-loopback host without an api_key).
plm_status plm_server_run(const plm_server_params *params, plm_error *err);

#ifdef __cplusplus
}
#endif

#endif
