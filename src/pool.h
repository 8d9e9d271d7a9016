// pool.h: the one thread pool (pthreads; the same code in the native and the Emscripten -pthread
// build). plm_pool_run(p, fn, ctx) calls fn(ctx, ith, nth) for ith = 0..nth-1 on nth threads (the
// caller is thread 0) and returns when all have finished. Work is split by the callee over
// disjoint outputs, so results never depend on nth.
#ifndef PLM_POOL_H
#define PLM_POOL_H

#include <stddef.h>

typedef struct plm_pool plm_pool;
typedef void (*plm_pool_fn)(void *ctx, int ith, int nth);

// plm_pool_create: n_threads >= 1 (including the caller). Returns NULL when out of memory or when
// threads cannot be started.
plm_pool *plm_pool_create(int n_threads);
void plm_pool_free(plm_pool *p); // joins the workers; NULL ok
int plm_pool_size(const plm_pool *p);
// plm_pool_run: not re-entrant; one caller at a time. p == NULL runs fn(ctx, 0, 1) inline. nth is
// the pool's size, or 1 for a while after workers came late to jobs (a busy machine: see pool.c).
void plm_pool_run(plm_pool *p, plm_pool_fn fn, void *ctx);

// plm_pool_rest: the caller runs no job for a while (it waits for work): the workers sleep at once
// instead of spinning, so that they leave their cores to other threads. The next plm_pool_run
// wakes them.
void plm_pool_rest(plm_pool *p);

// plm_pool_for: fn(ctx, i0, i1) over [0, n) cut into one contiguous range per thread (cut at
// multiples of 64), for element-wise work where each element is computed on its own.
typedef void (*plm_pool_range_fn)(void *ctx, size_t i0, size_t i1);
void plm_pool_for(plm_pool *p, size_t n, plm_pool_range_fn fn, void *ctx);

// plm_n_cores: online CPU count (at least 1).
int plm_n_cores(void);

#endif
