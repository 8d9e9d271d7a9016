// wasm.c: the WebAssembly face of pocketlm: thin EMSCRIPTEN_KEEPALIVE wrappers over pocketlm.h for
// web/pocketlm.js. Handles (model, session, lora, generation) are passed to JS as pointers; there
// is no global state. Errors come back as a status plus a caller-allocated plm_error (JS reads its
// message with plm_wasm_error_msg).
// Generation is the library's plm_generator, one token per call: JS calls plm_wasm_gen_begin
// (prefill) and then plm_wasm_gen_step once per token, so it owns the loop and can await between
// tokens (a responsive page, an AbortSignal checked each token) without Asyncify or a function
// table. Stop tokens, stop strings, the task's template, stop rule and defaults (plm_task), and
// UTF-8 safety are the library's.
// Not here: fetching, progress, UTF-8 decoding of pieces (pocketlm.js), the math (src/).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pocketlm.h"

#if defined(__EMSCRIPTEN__)
#include <emscripten.h>
#include <malloc.h>
#else
#define EMSCRIPTEN_KEEPALIVE
#endif

#define GEN_MAX_STOPS 16 // stop token ids, and stop strings, per generation

// ---- the exported ABI (names are what pocketlm.js calls, with a leading underscore) ----

plm_error *plm_wasm_error_new(void);
const char *plm_wasm_error_msg(const plm_error *err);
int32_t plm_wasm_error_status(const plm_error *err);
void plm_wasm_error_free(plm_error *err);

plm_model *plm_wasm_model_load(uint8_t *buf, size_t size, int32_t dtype, plm_error *err);
void plm_wasm_model_free(plm_model *m);
int32_t plm_wasm_model_info(const plm_model *m, int32_t what);
double plm_wasm_model_weight_bytes(const plm_model *m);
double plm_wasm_heap_in_use(void);
const char *plm_wasm_model_name(const plm_model *m, int32_t what);

plm_lora *plm_wasm_lora_load(const char *dir, const plm_model *m, plm_error *err);
void plm_wasm_lora_free(plm_lora *l);

plm_session *plm_wasm_session_create(const plm_model *m, const plm_lora *lora, int32_t n_ctx,
                                     int32_t n_threads, int32_t kv_type, plm_error *err);
void plm_wasm_session_free(plm_session *s);
int32_t plm_wasm_session_info(const plm_session *s, int32_t what);
void plm_wasm_session_truncate(plm_session *s, int32_t n);
int32_t plm_wasm_decode(plm_session *s, const int32_t *ids, int32_t n, plm_error *err);
const float *plm_wasm_logits(const plm_session *s);

int32_t plm_wasm_tokenize(const plm_session *s, const char *text, size_t len, int32_t *ids,
                          int32_t cap);
int32_t plm_wasm_detokenize(const plm_session *s, const int32_t *ids, int32_t n, char *out,
                            size_t cap);
int32_t plm_wasm_token_id(const plm_session *s, const char *text);
int32_t plm_wasm_task_prompt(const plm_session *s, const char *input, double diversity, char *out,
                             int32_t cap, plm_error *err);
double plm_wasm_task_default(double diversity, int32_t what, plm_error *err);

typedef struct plm_wasm_gen plm_wasm_gen;
plm_wasm_gen *plm_wasm_gen_begin(plm_session *s, const int32_t *prompt, int32_t n_prompt,
                                 int32_t max_tokens, float temperature, int32_t top_k, float top_p,
                                 float min_p, float repetition_penalty, double seed,
                                 const int32_t *stop_ids, int32_t n_stop_ids,
                                 const char *const *stop_strings, int32_t n_stop_strings,
                                 int32_t task, float copy_penalty, float copy_block,
                                 int32_t candidates, float rerank_weight, float copy_retry,
                                 int32_t copy_deviate, int32_t keep_facts, const char *source,
                                 plm_error *err);
int32_t plm_wasm_gen_step(plm_wasm_gen *g, plm_error *err);
const char *plm_wasm_gen_text(const plm_wasm_gen *g);
int32_t plm_wasm_gen_text_len(const plm_wasm_gen *g);
int32_t plm_wasm_gen_token(const plm_wasm_gen *g);
int32_t plm_wasm_gen_stop_reason(const plm_wasm_gen *g);
const int32_t *plm_wasm_gen_ids(const plm_wasm_gen *g);
int32_t plm_wasm_gen_n_ids(const plm_wasm_gen *g);
double plm_wasm_gen_result(const plm_wasm_gen *g, int32_t what);
void plm_wasm_gen_free(plm_wasm_gen *g);

// ---- errors ----

// plm_wasm_error_new: a zeroed plm_error for JS to pass to the calls below; free with
// plm_wasm_error_free. NULL when out of memory.
EMSCRIPTEN_KEEPALIVE plm_error *plm_wasm_error_new(void) {
    return calloc(1, sizeof(plm_error));
}
EMSCRIPTEN_KEEPALIVE const char *plm_wasm_error_msg(const plm_error *err) {
    return err->msg;
}
EMSCRIPTEN_KEEPALIVE int32_t plm_wasm_error_status(const plm_error *err) {
    return err->status;
}
EMSCRIPTEN_KEEPALIVE void plm_wasm_error_free(plm_error *err) {
    free(err);
}

// ---- model ----

// plm_wasm_model_load: a model from the GGUF bytes buf (size, from malloc), kept as dtype
// (any plm_dtype that plm_model_load takes), loaded in place (plm_model_load_gguf_inplace) so that the
// heap holds one copy of the weights: on success buf belongs to the model; on failure (NULL, see
// err) it is unchanged and JS frees it.
EMSCRIPTEN_KEEPALIVE plm_model *plm_wasm_model_load(uint8_t *buf, size_t size, int32_t dtype,
                                                    plm_error *err) {
    plm_load_params lp = plm_load_default_params();
    lp.dtype = (plm_dtype)dtype;
    plm_model *m = NULL;
    if (plm_model_load_gguf_inplace(&m, buf, size, &lp, err) != PLM_OK) return NULL;
    return m;
}

EMSCRIPTEN_KEEPALIVE void plm_wasm_model_free(plm_model *m) {
    plm_model_free(m);
}

// plm_wasm_model_info: one number about m: 0 vocab_size, 1 hidden_size, 2 num_hidden_layers,
// 3 max_position_embeddings, 4 bos_token_id, 5 eos_token_id, 6 has a tokenizer, 7 dtype; else -1.
EMSCRIPTEN_KEEPALIVE int32_t plm_wasm_model_info(const plm_model *m, int32_t what) {
    const plm_config *c = plm_model_config(m);
    switch (what) {
    case 0: return c->vocab_size;
    case 1: return c->hidden_size;
    case 2: return c->num_hidden_layers;
    case 3: return c->max_position_embeddings;
    case 4: return c->bos_token_id;
    case 5: return c->eos_token_id;
    case 6: return plm_model_tokenizer(m) != NULL;
    case 7: return (int32_t)plm_model_dtype(m);
    }
    return -1;
}

// plm_wasm_model_name: 0 the model's name (plm_model_name), 1 the adapter merged into it
// (plm_model_adapter); "" when unknown. Valid for the model's lifetime.
EMSCRIPTEN_KEEPALIVE const char *plm_wasm_model_name(const plm_model *m, int32_t what) {
    return what == 1 ? plm_model_adapter(m) : plm_model_name(m);
}

// plm_wasm_model_weight_bytes: bytes of weights in memory (a double: JS numbers, no BigInt).
EMSCRIPTEN_KEEPALIVE double plm_wasm_model_weight_bytes(const plm_model *m) {
    return (double)plm_model_weight_bytes(m);
}

// plm_wasm_heap_in_use: bytes of the heap allocated now (dlmalloc's mallinfo: the chunks in use,
// with their headers); the rest of the heap is free for the next allocation. 0 outside Emscripten.
EMSCRIPTEN_KEEPALIVE double plm_wasm_heap_in_use(void) {
#if defined(__EMSCRIPTEN__)
    return (double)(unsigned)mallinfo().uordblks;
#else
    return 0;
#endif
}

// ---- LoRA ----

// plm_wasm_lora_load: a PEFT adapter directory in Emscripten's file system (MEMFS; JS writes the
// files there first), for m. NULL on failure.
EMSCRIPTEN_KEEPALIVE plm_lora *plm_wasm_lora_load(const char *dir, const plm_model *m,
                                                  plm_error *err) {
    plm_lora *l = NULL;
    if (plm_lora_load(&l, dir, m, err) != PLM_OK) return NULL;
    return l;
}

EMSCRIPTEN_KEEPALIVE void plm_wasm_lora_free(plm_lora *l) {
    plm_lora_free(l);
}

// ---- session ----

// plm_wasm_session_create: a session on m (with lora, or NULL); n_ctx 0 = the default; n_threads
// 1 in the single-threaded build; kv_type a plm_dtype (0 = f32, 1 = f16). NULL on failure.
EMSCRIPTEN_KEEPALIVE plm_session *plm_wasm_session_create(const plm_model *m, const plm_lora *lora,
                                                          int32_t n_ctx, int32_t n_threads,
                                                          int32_t kv_type, plm_error *err) {
    plm_session_params sp = plm_session_default_params();
    sp.n_ctx = n_ctx;
    sp.n_threads = n_threads;
    sp.lora = lora;
    sp.kv_type = (plm_dtype)kv_type;
    plm_session *s = NULL;
    if (plm_session_create(&s, m, &sp, err) != PLM_OK) return NULL;
    return s;
}

EMSCRIPTEN_KEEPALIVE void plm_wasm_session_free(plm_session *s) {
    plm_session_free(s);
}

// plm_wasm_session_info: 0 n_vocab (logits per position), 1 n_past, 2 n_ctx, 3 n_threads,
// 4 has a tokenizer; else -1.
EMSCRIPTEN_KEEPALIVE int32_t plm_wasm_session_info(const plm_session *s, int32_t what) {
    switch (what) {
    case 0: return plm_session_n_vocab(s);
    case 1: return plm_session_n_past(s);
    case 2: return plm_session_n_ctx(s);
    case 3: return plm_session_n_threads(s);
    case 4: return plm_session_tokenizer(s) != NULL;
    }
    return -1;
}

EMSCRIPTEN_KEEPALIVE void plm_wasm_session_truncate(plm_session *s, int32_t n) {
    plm_session_truncate(s, n);
}

// plm_wasm_decode: append n ids to the session (the ids-level API used by the tests); returns a
// plm_status. The logits of the last id are then at plm_wasm_logits (n_vocab floats).
EMSCRIPTEN_KEEPALIVE int32_t plm_wasm_decode(plm_session *s, const int32_t *ids, int32_t n,
                                             plm_error *err) {
    return plm_session_decode(s, ids, n, err);
}

EMSCRIPTEN_KEEPALIVE const float *plm_wasm_logits(const plm_session *s) {
    return plm_session_logits(s);
}

// ---- tokenizer (the session's: the adapter's when it adds tokens) ----

// plm_wasm_tokenize: as plm_tokenizer_encode; -1 (PLM_ERR_ARG) when there is no tokenizer.
EMSCRIPTEN_KEEPALIVE int32_t plm_wasm_tokenize(const plm_session *s, const char *text, size_t len,
                                               int32_t *ids, int32_t cap) {
    const plm_tokenizer *t = plm_session_tokenizer(s);
    return t ? plm_tokenizer_encode(t, text, len, ids, cap) : PLM_ERR_ARG;
}

// plm_wasm_detokenize: as plm_tokenizer_decode (bytes of the whole decoding, or < 0).
EMSCRIPTEN_KEEPALIVE int32_t plm_wasm_detokenize(const plm_session *s, const int32_t *ids,
                                                 int32_t n, char *out, size_t cap) {
    const plm_tokenizer *t = plm_session_tokenizer(s);
    if (!t) return PLM_ERR_ARG;
    int64_t r = plm_tokenizer_decode(t, ids, n, out, cap);
    return r > INT32_MAX ? PLM_ERR_NOMEM : (int32_t)r;
}

EMSCRIPTEN_KEEPALIVE int32_t plm_wasm_token_id(const plm_session *s, const char *text) {
    const plm_tokenizer *t = plm_session_tokenizer(s);
    return t ? plm_tokenizer_token_id(t, text) : -1;
}

// ---- the paraphrase task (the library's plm_task: pocketlm.js repeats none of it) ----

// plm_wasm_task_prompt: the task prompt for input under the session's tokenizer (the template with
// its markers, or the plain one for a model without them), with diversity's control code
// (plm_paraphrase_diversity), into out (cap bytes, NUL-terminated when cap > 0). Returns its length
// without the NUL (which may be >= cap), or a negative plm_status: PLM_ERR_ARG when input has
// nothing to rephrase or diversity is not in [0, 1] (err says so).
EMSCRIPTEN_KEEPALIVE int32_t plm_wasm_task_prompt(const plm_session *s, const char *input,
                                                  double diversity, char *out, int32_t cap,
                                                  plm_error *err) {
    plm_status st = plm_task_check(input, err);
    if (st != PLM_OK) return st;
    plm_task t = plm_task_of(plm_session_tokenizer(s));
    plm_generate_params p = plm_task_default_params(); // only t's control code is used here
    st = plm_paraphrase_diversity(&t, &p, (float)diversity, err);
    if (st != PLM_OK) return st;
    size_t n = plm_task_text(&t, input, NULL, out, cap > 0 ? (size_t)cap : 0);
    return n > INT32_MAX ? PLM_ERR_NOMEM : (int32_t)n;
}

// plm_wasm_task_default: one of the task's generation settings at diversity (NaN: the default,
// PLM_TASK_DIVERSITY_DEFAULT): plm_task_default_params through plm_paraphrase_diversity:
// 0 max_tokens, 1 temperature, 2 top_k, 3 top_p, 4 min_p, 5 repetition_penalty, 6 copy_penalty,
// 7 copy_block, 8 candidates, 9 rerank_weight, 10 the diversity itself, 11 copy_retry,
// 12 keep_facts, 13 copy_deviate; NaN for another what, or for a diversity out of [0, 1] (err
// says so).
EMSCRIPTEN_KEEPALIVE double plm_wasm_task_default(double diversity, int32_t what, plm_error *err) {
    plm_generate_params p = plm_task_default_params();
    float d = isnan(diversity) ? PLM_TASK_DIVERSITY_DEFAULT : (float)diversity;
    if (plm_paraphrase_diversity(NULL, &p, d, err) != PLM_OK) return (double)NAN;
    switch (what) {
    case 0: return p.max_tokens;
    case 1: return (double)p.sampler.temperature;
    case 2: return p.sampler.top_k;
    case 3: return (double)p.sampler.top_p;
    case 4: return (double)p.sampler.min_p;
    case 5: return (double)p.sampler.repetition_penalty;
    case 6: return (double)p.copy_penalty;
    case 7: return (double)p.copy_block;
    case 8: return p.candidates;
    case 9: return (double)p.rerank_weight;
    case 10: return (double)d;
    case 11: return (double)p.copy_retry;
    case 12: return p.keep_facts;
    case 13: return p.copy_deviate;
    }
    return (double)NAN;
}

// ---- generation, one token per call ----

// set_error: fill err (if not NULL) with st and msg; returns st.
static plm_status set_error(plm_error *err, plm_status st, const char *msg) {
    if (err) err->status = st, snprintf(err->msg, sizeof err->msg, "%s", msg);
    return st;
}

struct plm_wasm_gen {
    plm_generator *g;                   // owned
    plm_task task;                      // with task: the stop rule's <|OUTPUT_END|> (borrowed by g)
    int32_t stops[GEN_MAX_STOPS];       // stop ids (the generator borrows them)
    const char *strings[GEN_MAX_STOPS]; // stop strings, borrowed from JS for the generation
    const char *text;                   // the last step's text, inside the generator
    size_t text_len;
    int done; // finished
};

EMSCRIPTEN_KEEPALIVE void plm_wasm_gen_free(plm_wasm_gen *g) {
    if (!g) return;
    plm_generator_free(g->g);
    free(g);
}

// plm_wasm_gen_begin: decode the prompt (n_prompt ids; the prefill, appended to what the session
// already holds) and prepare to sample up to max_tokens. stop_ids (n_stop_ids, at most 16) end
// generation; n_stop_ids < 0 means the model's eos. stop_strings (at most 16, NUL-terminated) must
// stay valid until plm_wasm_gen_free. seed is an integer below 2^53. task != 0: the answer ends
// where the paraphrase task's does under the session's tokenizer (plm_task_stop), and stop_ids
// are not used. copy_penalty, copy_block, candidates, rerank_weight, copy_retry, copy_deviate,
// keep_facts and source (NULL: the prompt; read during this call) are plm_generate_params'. NULL on failure.
EMSCRIPTEN_KEEPALIVE plm_wasm_gen *
plm_wasm_gen_begin(plm_session *s, const int32_t *prompt, int32_t n_prompt, int32_t max_tokens,
                   float temperature, int32_t top_k, float top_p, float min_p,
                   float repetition_penalty, double seed, const int32_t *stop_ids,
                   int32_t n_stop_ids, const char *const *stop_strings, int32_t n_stop_strings,
                   int32_t task, float copy_penalty, float copy_block, int32_t candidates,
                   float rerank_weight, float copy_retry, int32_t copy_deviate, int32_t keep_facts,
                   const char *source, plm_error *err) {
    if (n_stop_ids > GEN_MAX_STOPS || n_stop_strings < 0 || n_stop_strings > GEN_MAX_STOPS ||
        !(seed >= 0)) {
        set_error(err, PLM_ERR_ARG,
                  "plm_wasm_gen_begin: at most 16 stop ids and strings, seed >= 0");
        return NULL;
    }
    plm_wasm_gen *w = calloc(1, sizeof *w);
    if (!w) {
        set_error(err, PLM_ERR_NOMEM, "out of memory");
        return NULL;
    }
    plm_generate_params p = plm_generate_default_params();
    p.max_tokens = max_tokens;
    p.sampler.temperature = temperature;
    p.sampler.top_k = top_k;
    p.sampler.top_p = top_p;
    p.sampler.min_p = min_p;
    p.sampler.repetition_penalty = repetition_penalty;
    p.sampler.seed = (uint64_t)seed;
    p.copy_penalty = copy_penalty;
    p.copy_block = copy_block;
    p.candidates = candidates;
    p.rerank_weight = rerank_weight;
    p.copy_retry = copy_retry;
    p.copy_deviate = copy_deviate;
    p.keep_facts = keep_facts != 0;
    p.source = source;
    if (n_stop_ids >= 0) {
        if (n_stop_ids) memcpy(w->stops, stop_ids, (size_t)n_stop_ids * sizeof *stop_ids);
        p.stop_tokens = w->stops;
        p.n_stop_tokens = n_stop_ids;
    }
    for (int32_t k = 0; k < n_stop_strings; k++) w->strings[k] = stop_strings[k];
    p.stop_strings = w->strings;
    p.n_stop_strings = n_stop_strings;
    if (task) {
        w->task = plm_task_of(plm_session_tokenizer(s));
        plm_task_stop(&w->task, &p);
    }
    if (plm_generator_create(&w->g, s, prompt, n_prompt, &p, err) != PLM_OK) {
        plm_wasm_gen_free(w);
        return NULL;
    }
    return w;
}

// plm_wasm_gen_step: one token, as plm_generator_next: returns 1 while generation goes on, 0 once
// finished (plm_wasm_gen_stop_reason says why), or a negative plm_status (see err). Either way the
// new text is at plm_wasm_gen_text (plm_wasm_gen_text_len bytes, possibly 0: complete UTF-8, never
// part of a stop string) and the sampled id at plm_wasm_gen_token (-1 for a stop token).
EMSCRIPTEN_KEEPALIVE int32_t plm_wasm_gen_step(plm_wasm_gen *w, plm_error *err) {
    w->text_len = 0;
    if (w->done) return 0;
    int r = plm_generator_next(w->g, &w->text, &w->text_len, err);
    if (r < 0) return r;
    w->done = r == 0;
    return r;
}

EMSCRIPTEN_KEEPALIVE const char *plm_wasm_gen_text(const plm_wasm_gen *w) {
    return w->text;
}
EMSCRIPTEN_KEEPALIVE int32_t plm_wasm_gen_text_len(const plm_wasm_gen *w) {
    return (int32_t)w->text_len;
}
EMSCRIPTEN_KEEPALIVE int32_t plm_wasm_gen_token(const plm_wasm_gen *w) {
    return plm_generator_token(w->g);
}
EMSCRIPTEN_KEEPALIVE int32_t plm_wasm_gen_stop_reason(const plm_wasm_gen *w) {
    return w->done ? (int32_t)plm_generator_result(w->g)->stop_reason : -1;
}

// plm_wasm_gen_ids, plm_wasm_gen_n_ids: the output's ids (plm_generator_ids: with candidates, the
// chosen one's once finished); valid until the next step.
EMSCRIPTEN_KEEPALIVE const int32_t *plm_wasm_gen_ids(const plm_wasm_gen *w) {
    int32_t n;
    return plm_generator_ids(w->g, &n);
}
EMSCRIPTEN_KEEPALIVE int32_t plm_wasm_gen_n_ids(const plm_wasm_gen *w) {
    int32_t n;
    plm_generator_ids(w->g, &n);
    return n;
}

// plm_wasm_gen_result: one number of plm_generator_result: 0 generated_tokens, 1 sampled_tokens,
// 2 candidates_done, 3 utility; else NaN.
EMSCRIPTEN_KEEPALIVE double plm_wasm_gen_result(const plm_wasm_gen *w, int32_t what) {
    const plm_generate_result *r = plm_generator_result(w->g);
    switch (what) {
    case 0: return r->generated_tokens;
    case 1: return r->sampled_tokens;
    case 2: return r->candidates_done;
    case 3: return r->utility;
    }
    return (double)NAN;
}

// ---- fine-tuning: a plm_finetune_run, one optimizer step per call ----
// The run's files live in Emscripten's file system (MEMFS): JS writes the data (and, to resume, a
// checkpoint) into a directory, the run writes the adapter, metrics.jsonl, loss.svg and
// checkpoint/ beside it, exactly as `pocketlm finetune` does on disk, and JS reads them back as
// bytes. JS owns the loop (plm_wasm_train_step), so it can report progress, pause, and save
// checkpoints between steps.

typedef struct plm_wasm_train plm_wasm_train;
plm_wasm_train *plm_wasm_train_new(void);
int32_t plm_wasm_train_begin(plm_wasm_train *w, const plm_model *m, const char *data,
                             const char *out, const char *targets, int32_t rank, float alpha,
                             float dropout, float lr, int32_t epochs, int32_t max_steps,
                             int32_t batch, int32_t accum, double seed, float eval_frac,
                             int32_t eval_every, float warmup_ratio, int32_t max_len,
                             int32_t reverse, int32_t resume, int32_t n_threads, plm_error *err);
int32_t plm_wasm_train_step(plm_wasm_train *w, plm_error *err);
double plm_wasm_train_progress(const plm_wasm_train *w, int32_t what);
double plm_wasm_train_info(const plm_wasm_train *w, int32_t what);
const char *plm_wasm_train_bad_rows(const plm_wasm_train *w);
int32_t plm_wasm_train_checkpoint(plm_wasm_train *w, plm_error *err);
int32_t plm_wasm_train_save(plm_wasm_train *w, plm_error *err);
void plm_wasm_train_free(plm_wasm_train *w);
double plm_wasm_finetune_default(int32_t what);
const char *plm_wasm_finetune_default_targets(void);
plm_model *plm_wasm_model_merge(const plm_model *m, const plm_lora *l, plm_error *err);
char *plm_wasm_loss_chart(const float *step, const float *loss, int32_t n, const float *eval_step,
                          const float *eval_loss, int32_t n_eval, float steps_per_epoch,
                          int32_t width, int32_t height, plm_error *err);

struct plm_wasm_train {
    plm_finetune_run *run;      // owned
    plm_finetune_params p;      // borrowed by run
    char *data, *out, *targets; // the strings p points to (owned)
    plm_train_progress pr;      // the last step's
    char *bad;                  // "file:line: why\n" for each bad row, NUL-terminated
    size_t bad_len, bad_cap;
};

// on_bad_row: append the row's message and a newline to w->bad (a row that does not fit in memory
// is left out of the list; the counts still have it)
static void on_bad_row(void *user, const char *msg) {
    plm_wasm_train *w = user;
    size_t n = strlen(msg);
    if (w->bad_len + n + 2 > w->bad_cap) {
        size_t cap = (w->bad_cap ? 2 * w->bad_cap : 4096) + n;
        char *b = realloc(w->bad, cap);
        if (!b) return;
        w->bad = b, w->bad_cap = cap;
    }
    memcpy(w->bad + w->bad_len, msg, n);
    w->bad_len += n;
    w->bad[w->bad_len++] = '\n';
    w->bad[w->bad_len] = 0;
}

EMSCRIPTEN_KEEPALIVE void plm_wasm_train_free(plm_wasm_train *w) {
    if (!w) return;
    plm_finetune_free(w->run);
    free(w->data), free(w->out), free(w->targets), free(w->bad);
    free(w);
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    return d ? memcpy(d, s, n) : NULL;
}

// plm_wasm_train_new: an empty run for plm_wasm_train_begin; NULL when out of memory.
EMSCRIPTEN_KEEPALIVE plm_wasm_train *plm_wasm_train_new(void) {
    return calloc(1, sizeof(plm_wasm_train));
}

// plm_wasm_train_begin: plm_finetune_begin on w (new) with the data file data and the output
// directory out (in MEMFS; with resume, out/checkpoint/ and out/metrics.jsonl are where the run
// continues from) and the settings of plm_finetune_params (seed: an integer below 2^53). Returns a
// plm_status; either way the bad rows read are at plm_wasm_train_bad_rows.
EMSCRIPTEN_KEEPALIVE int32_t
plm_wasm_train_begin(plm_wasm_train *w, const plm_model *m, const char *data, const char *out,
                     const char *targets, int32_t rank, float alpha, float dropout, float lr,
                     int32_t epochs, int32_t max_steps, int32_t batch, int32_t accum, double seed,
                     float eval_frac, int32_t eval_every, float warmup_ratio, int32_t max_len,
                     int32_t reverse, int32_t resume, int32_t n_threads, plm_error *err) {
    if (w->data || !(seed >= 0))
        return set_error(err, PLM_ERR_ARG, "finetune: a new run and a seed >= 0, please");
    w->data = dup_str(data), w->out = dup_str(out), w->targets = dup_str(targets);
    if (!w->data || !w->out || !w->targets) return set_error(err, PLM_ERR_NOMEM, "out of memory");
    plm_finetune_params *p = &w->p;
    *p = plm_finetune_default_params();
    p->data = w->data, p->out = w->out, p->targets = w->targets;
    p->rank = rank, p->alpha = alpha, p->dropout = dropout, p->train.lr = lr;
    p->epochs = epochs, p->max_steps = max_steps, p->batch = batch, p->accum = accum;
    p->train.seed = (uint64_t)seed, p->eval_frac = eval_frac, p->eval_every = eval_every;
    p->warmup_ratio = warmup_ratio, p->max_len = max_len, p->reverse = reverse;
    p->resume = resume, p->train.n_threads = n_threads;
    p->on_bad_row = on_bad_row, p->user = w;
    w->pr.eval_loss = (double)NAN;
    return plm_finetune_begin(&w->run, m, p, err);
}

// plm_wasm_train_step: one optimizer step (plm_finetune_step): 1 after a step (its progress at
// plm_wasm_train_progress), 0 when the run is over, or a negative plm_status.
EMSCRIPTEN_KEEPALIVE int32_t plm_wasm_train_step(plm_wasm_train *w, plm_error *err) {
    return plm_finetune_step(w->run, &w->pr, err);
}

// plm_wasm_train_progress: the last step's 0 step, 1 total_steps, 2 epoch, 3 loss, 4 eval_loss
// (NaN when not evaluated), 5 lr, 6 grad_norm, 7 tok_s, 8 elapsed, 9 eta, 10 tokens; else NaN.
EMSCRIPTEN_KEEPALIVE double plm_wasm_train_progress(const plm_wasm_train *w, int32_t what) {
    const plm_train_progress *p = &w->pr;
    switch (what) {
    case 0: return p->step;
    case 1: return p->total_steps;
    case 2: return (double)p->epoch;
    case 3: return p->loss;
    case 4: return p->eval_loss;
    case 5: return (double)p->lr;
    case 6: return (double)p->grad_norm;
    case 7: return p->tok_s;
    case 8: return p->elapsed;
    case 9: return p->eta;
    case 10: return (double)p->tokens;
    }
    return (double)NAN;
}

// plm_wasm_train_info: the run's 0 rows, 1 not_label1, 2 bad, 3 train_examples, 4 eval_examples,
// 5 steps_per_epoch, 6 total_steps, 7 step (plm_finetune_info); else NaN.
EMSCRIPTEN_KEEPALIVE double plm_wasm_train_info(const plm_wasm_train *w, int32_t what) {
    plm_finetune_info i = plm_finetune_run_info(w->run);
    switch (what) {
    case 0: return (double)i.rows;
    case 1: return (double)i.not_label1;
    case 2: return (double)i.bad;
    case 3: return i.train_examples;
    case 4: return i.eval_examples;
    case 5: return i.steps_per_epoch;
    case 6: return i.total_steps;
    case 7: return i.step;
    }
    return (double)NAN;
}

// plm_wasm_train_bad_rows: every bad row of the data, "file:line: why" a line ("" for none).
EMSCRIPTEN_KEEPALIVE const char *plm_wasm_train_bad_rows(const plm_wasm_train *w) {
    return w->bad ? w->bad : "";
}

// plm_wasm_train_checkpoint: out/checkpoint/ and out/loss.svg (plm_finetune_checkpoint).
EMSCRIPTEN_KEEPALIVE int32_t plm_wasm_train_checkpoint(plm_wasm_train *w, plm_error *err) {
    return plm_finetune_checkpoint(w->run, err);
}

// plm_wasm_train_save: the adapter's PEFT files and loss.svg into out/ (plm_finetune_save).
EMSCRIPTEN_KEEPALIVE int32_t plm_wasm_train_save(plm_wasm_train *w, plm_error *err) {
    return plm_finetune_save(w->run, err);
}

// plm_wasm_finetune_default: plm_finetune_default_params' 0 rank, 1 alpha, 2 dropout, 3 lr,
// 4 epochs, 5 batch, 6 accum, 7 seed, 8 eval_frac, 9 warmup_ratio, 10 max_len, 11 reverse; else NaN.
EMSCRIPTEN_KEEPALIVE double plm_wasm_finetune_default(int32_t what) {
    plm_finetune_params p = plm_finetune_default_params();
    switch (what) {
    case 0: return p.rank;
    case 1: return (double)p.alpha;
    case 2: return (double)p.dropout;
    case 3: return (double)p.train.lr;
    case 4: return p.epochs;
    case 5: return p.batch;
    case 6: return p.accum;
    case 7: return (double)p.train.seed;
    case 8: return (double)p.eval_frac;
    case 9: return (double)p.warmup_ratio;
    case 10: return p.max_len;
    case 11: return p.reverse;
    }
    return (double)NAN;
}

EMSCRIPTEN_KEEPALIVE const char *plm_wasm_finetune_default_targets(void) {
    return plm_finetune_default_params().targets;
}

// plm_wasm_model_merge: a new f32 model, m with l folded in (plm_model_merge). NULL on failure.
EMSCRIPTEN_KEEPALIVE plm_model *plm_wasm_model_merge(const plm_model *m, const plm_lora *l,
                                                     plm_error *err) {
    plm_model *out = NULL;
    if (plm_model_merge(&out, m, l, err) != PLM_OK) return NULL;
    return out;
}

// plm_wasm_loss_chart: the training loss chart (plm_loss_chart_svg, the chart of loss.svg) of n
// train losses and n_eval held-out ones as an SVG document, malloc'd (JS frees it); NULL on
// failure.
EMSCRIPTEN_KEEPALIVE char *plm_wasm_loss_chart(const float *step, const float *loss, int32_t n,
                                               const float *eval_step, const float *eval_loss,
                                               int32_t n_eval, float steps_per_epoch, int32_t width,
                                               int32_t height, plm_error *err) {
    plm_loss_chart c = {step, loss,  n,     eval_step, eval_loss, n_eval, steps_per_epoch,
                        NULL, width, height};
    char *svg = NULL;
    if (plm_loss_chart_svg(&svg, NULL, &c, err) != PLM_OK) return NULL;
    return svg;
}
