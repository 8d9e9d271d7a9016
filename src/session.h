// session.h: what batch.c needs of session.c (internal): the buffers of one forward step over
// the stacked token rows of several sequences (plm_step), the step itself, and sessions whose
// decodes become rows of a batch's steps. The public session API is in pocketlm.h.
#ifndef PLM_SESSION_H
#define PLM_SESSION_H

#include "batch.h"
#include "model.h"
#include "pool.h"

typedef struct plm_step plm_step;

// One sequence's part of a step: T tokens at its positions n_past .. n_past+T-1.
typedef struct {
    plm_session *s;     // its KV cache (reserved for T more positions: plm_session_admit), adapter
    const int32_t *ids; // (T) its tokens, checked by plm_session_admit
    int32_t T;
} plm_step_seq;

// plm_step_create: buffers for steps of at most rows token rows of at most max_seqs sequences,
// adapters of rank <= max_rank, positions < n_ctx (att_stride of them per row and head), run on
// pool (borrowed). NULL when out of memory.
plm_step *plm_step_create(const plm_model *m, plm_pool *pool, int32_t rows, int32_t max_seqs,
                          int32_t max_rank, int32_t n_ctx, int32_t att_stride);
void plm_step_free(plm_step *st);

// plm_step_run: one forward step over n sequences' rows (n <= max_seqs, the sum of T <= rows):
// the base weights read once for every row, each sequence's adapter on its own rows, attention
// over its own cache. Appends the tokens to each cache and leaves each sequence's last logits in
// plm_session_logits: the same bits as plm_session_decode of the same tokens alone.
void plm_step_run(const plm_step *st, const plm_step_seq *sq, int32_t n);

// plm_session_kv_bytes: the most KV cache a session of model m with n_ctx positions and caches
// of kv_type (PLM_DTYPE_F32 or _F16) holds (its sliding-window layers' caches stop at the window -
// 1 + 128 positions they can use).
int64_t plm_session_kv_bytes(const plm_model *m, int32_t n_ctx, plm_dtype kv_type);

// plm_session_pending: tokens that the next decode runs before its own (a truncation below what
// sliding-window layers hold makes the kept ones pending again; else 0)
int32_t plm_session_pending(const plm_session *s);

// plm_session_admit: check that ids (n) are valid and fit in s, and grow its caches for them.
plm_status plm_session_admit(plm_session *s, const int32_t *ids, int32_t n, plm_error *err);

// plm_session_create_batched: a sequence of batch b with adapter lora (borrowed, or NULL; rank at
// most PLM_BATCH_MAX_RANK) and n_ctx positions (0 = the model's, at most the batch's; its caches
// never hold more), its KV cache of the batch's kv_type. plm_session_decode on it waits for the batch to run its tokens.
plm_status plm_session_create_batched(plm_session **out, plm_batch *b, const plm_lora *lora,
                                      int32_t n_ctx, plm_error *err);

#endif
