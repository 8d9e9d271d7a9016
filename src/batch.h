// batch.h: plm_batch, continuous batching of sessions (internal; `pocketlm serve` uses it). A
// batch owns the threads and the step buffers; its sessions (plm_session_create_batched) each have
// their own KV cache and adapter. A scheduler thread runs steps: each takes the rows every waiting
// session has submitted (a decode's token, or a prefill slice of at most PLM_BATCH_SLICE tokens)
// and runs them as one forward step (plm_step_run), so the weights are read once per step for all
// of them. A session joins at the next step after it submits and leaves when it stops submitting.
#ifndef PLM_BATCH_H
#define PLM_BATCH_H

#include "base.h"
#include "model.h"

#define PLM_BATCH_SLICE    64  // prompt tokens of one sequence per step: a long prompt stalls none
#define PLM_BATCH_MAX_RANK 256 // the largest LoRA rank a batch runs

typedef struct plm_batch plm_batch;

typedef struct {
    uint64_t steps;        // steps run
    uint64_t seqs;         // sequences over all steps (seqs / steps: the mean batch)
    uint64_t rows;         // token rows over all steps
    double step_seconds;   // wall time inside the steps (the rest: waiting for submissions)
    int32_t max_step_seqs; // the most sequences one step has run
    int32_t attached;      // sessions of the batch now
} plm_batch_stats;

// plm_batch_create: a batch over model (borrowed; outlives the batch) with n_threads threads,
// steps of at most max_seqs sequences, sessions of at most n_ctx positions whose KV caches keep
// kv_type (PLM_DTYPE_F32 or _F16: plm_session_params.kv_type).
plm_status plm_batch_create(plm_batch **out, const plm_model *model, int32_t n_threads,
                            int32_t max_seqs, int32_t n_ctx, plm_dtype kv_type, plm_error *err);
// plm_batch_free: stops the scheduler. Every session of the batch must be freed first.
void plm_batch_free(plm_batch *b);

const plm_model *plm_batch_model(const plm_batch *b);
int32_t plm_batch_n_ctx(const plm_batch *b);
plm_dtype plm_batch_kv_type(const plm_batch *b);
int32_t plm_batch_n_threads(const plm_batch *b);
void plm_batch_stats_get(plm_batch *b, plm_batch_stats *out);

// For session.c: a session joins (attach) and leaves (detach) the batch; plm_batch_decode runs n
// admitted tokens of s in the batch's steps (slices of PLM_BATCH_SLICE) and returns when done.
void plm_batch_attach(plm_batch *b);
void plm_batch_detach(plm_batch *b);
plm_status plm_batch_decode(plm_batch *b, plm_session *s, const int32_t *ids, int32_t n);

#endif
