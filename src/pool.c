// pool.c: the one thread pool (pthreads + C11 atomics), used by every parallel kernel. The caller
// runs slot 0 of a job; workers wait for a new generation number, then claim the slots 1..n-1 one
// at a time, run fn(ctx, ith, nth) for each they claimed, and count them done. The caller, after
// its own slot, claims and runs the slots no worker has claimed yet: a worker that a busy machine
// keeps from its core (Chromium's own threads, other processes) then costs the job nothing, where
// with fixed slots the whole job waited for it (a slot is the same work whichever thread runs it,
// so the bits do not change). Dispatch is ~250 calls per generated token, so a waiting worker
// first spins on the generation counter (microseconds to wake), and only after PLM_POOL_SPIN_SECONDS of idleness
// blocks on a condition variable (an idle pool burns no CPU), or at once after plm_pool_rest (the
// batch scheduler's gathering, while the sessions need the cores to sample and submit). Pools of
// one thread start no thread.
// The same code runs in the Emscripten -pthread build (workers are Web Workers there).
#define _POSIX_C_SOURCE 200809L
#include "pool.h"

#include "base.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define PLM_POOL_SPIN_SECONDS 2e-3 // a worker spins this long after its last job, then sleeps
#define PLM_POOL_SPIN_CHECK   256  // spins between two reads of the clock
// On a busy machine a worker may lose its core in the middle of its slot for milliseconds, and
// every job (hundreds a token) would wait for it: decoding with 2 threads then runs several times
// slower than with 1. So the caller times its wait for the workers' slots after its own: a wait over PLM_POOL_LATE_SECONDS
// and over half its own share's time, in PLM_POOL_LATE_JOBS jobs in a row, makes it run the jobs
// alone (fn(ctx, 0, 1): every kernel gives the same bits for any thread count) for
// PLM_POOL_SOLO_SECONDS; then it tries the workers again.
#define PLM_POOL_LATE_SECONDS 2e-4
#define PLM_POOL_LATE_JOBS    2
#define PLM_POOL_SOLO_SECONDS 0.1

typedef struct {
    plm_pool *pool;
    int ith; // this worker's thread index, 1..n_threads-1
} pool_worker;

struct plm_pool {
    // written by the caller, read by workers: a new generation publishes fn and ctx
    _Alignas(64) atomic_uint gen; // incremented once per plm_pool_run (and once by plm_pool_free)
    plm_pool_fn fn;               // the job of the current generation
    void *ctx;
    atomic_int stop;                    // 1: workers exit at the next generation
    atomic_int rest;                    // 1: waiting workers sleep now (plm_pool_rest)
    _Alignas(64) atomic_ullong claim;   // the current generation << 32 | the next slot to claim
    _Alignas(64) atomic_int n_busy;     // slots 1..n-1 not finished in the current job
    _Alignas(64) atomic_int n_sleeping; // workers blocked (or about to block) on wake
    pthread_mutex_t mutex;              // guards the sleep on wake
    pthread_cond_t wake;                // signalled when gen changes and someone sleeps
    int n_threads;                      // including the caller
    int oversubscribed;                 // more threads than cores: sleep at once, do not spin
    int n_started;                      // worker threads successfully created
    int n_late;                         // jobs in a row whose workers came late
    double solo_until;                  // plm_time() before which jobs run on the caller alone
    pthread_t *threads;                 // (n_threads - 1)
    pool_worker *workers;               // (n_threads - 1)
};

// ---- waiting ----

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

// wait_new_gen: spin, then sleep, until gen differs from seen; returns the new generation.
static unsigned wait_new_gen(plm_pool *p, unsigned seen) {
    double t_end = 0;
    for (int i = 1;; i++) {
        unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (g != seen) return g;
        cpu_relax();
        if (i % PLM_POOL_SPIN_CHECK) continue;
        if (p->oversubscribed || atomic_load_explicit(&p->rest, memory_order_relaxed)) break;
        double now = plm_time();
        if (t_end == 0) t_end = now + PLM_POOL_SPIN_SECONDS;
        if (now >= t_end) break;
    }
    // Sleep. n_sleeping is raised before gen is re-read (both seq_cst), and plm_pool_run raises gen
    // before it reads n_sleeping: so either we see the new gen here, or the caller sees a sleeper
    // and broadcasts under the mutex (which we hold until pthread_cond_wait releases it).
    pthread_mutex_lock(&p->mutex);
    atomic_fetch_add(&p->n_sleeping, 1);
    unsigned g;
    while ((g = atomic_load(&p->gen)) == seen) pthread_cond_wait(&p->wake, &p->mutex);
    atomic_fetch_sub(&p->n_sleeping, 1);
    pthread_mutex_unlock(&p->mutex);
    return g;
}

// claim_slot: the next unclaimed slot of generation gen, or 0 when there is none (all claimed, or
// gen is over: a worker that woke late must not take a slot of the next job, whose fn it may not
// have seen).
static int claim_slot(plm_pool *p, unsigned gen) {
    unsigned long long c = atomic_load(&p->claim);
    for (;;) {
        const unsigned slot = (unsigned)(c & 0xffffffffu);
        if ((unsigned)(c >> 32) != gen || slot >= (unsigned)p->n_threads) return 0;
        if (atomic_compare_exchange_weak(&p->claim, &c, c + 1)) return (int)slot;
    }
}

// run_slots: run the slots of generation gen this thread claims, until none is left.
static void run_slots(plm_pool *p, unsigned gen) {
    for (int ith; (ith = claim_slot(p, gen)) != 0;) {
        p->fn(p->ctx, ith, p->n_threads);
        atomic_fetch_sub_explicit(&p->n_busy, 1, memory_order_release);
    }
}

static void *worker_main(void *arg) {
    pool_worker *w = arg;
    plm_pool *p = w->pool;
    unsigned seen = 0; // generation 0 is the state at creation
    for (;;) {
        seen = wait_new_gen(p, seen);
        if (atomic_load_explicit(&p->stop, memory_order_relaxed)) break;
        run_slots(p, seen);
    }
    return NULL;
}

// publish: start a new generation and wake any sleeping worker.
static void publish(plm_pool *p) {
    atomic_fetch_add(&p->gen, 1);
    if (atomic_load(&p->n_sleeping) > 0) {
        pthread_mutex_lock(&p->mutex);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mutex);
    }
}

// ---- create / run / free ----

plm_pool *plm_pool_create(int n_threads) {
    if (n_threads < 1) return NULL;
    plm_pool *p = plm_alloc_aligned(1, sizeof(plm_pool));
    if (!p) return NULL;
    atomic_init(&p->gen, 0);
    atomic_init(&p->stop, 0);
    atomic_init(&p->rest, 0);
    atomic_init(&p->claim, 0);
    atomic_init(&p->n_busy, 0);
    atomic_init(&p->n_sleeping, 0);
    p->n_threads = n_threads;
    p->oversubscribed = n_threads > plm_n_cores();
    if (n_threads == 1) return p;
    if (pthread_mutex_init(&p->mutex, NULL) != 0) goto fail_mutex;
    if (pthread_cond_init(&p->wake, NULL) != 0) goto fail_cond;
    p->threads = plm_alloc((size_t)n_threads - 1, sizeof(pthread_t));
    p->workers = plm_alloc((size_t)n_threads - 1, sizeof(pool_worker));
    if (!p->threads || !p->workers) goto fail;
    for (int i = 1; i < n_threads; i++) {
        p->workers[i - 1] = (pool_worker){p, i};
        if (pthread_create(&p->threads[i - 1], NULL, worker_main, &p->workers[i - 1]) != 0)
            goto fail;
        p->n_started++;
    }
    return p;
fail:
    plm_pool_free(p); // stops and joins the workers already started
    return NULL;
fail_cond:
    pthread_mutex_destroy(&p->mutex);
fail_mutex:
    plm_free_aligned(p);
    return NULL;
}

void plm_pool_free(plm_pool *p) {
    if (!p) return;
    if (p->n_threads > 1) {
        atomic_store(&p->stop, 1);
        publish(p);
        for (int i = 0; i < p->n_started; i++) pthread_join(p->threads[i], NULL);
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->mutex);
        free(p->threads);
        free(p->workers);
    }
    plm_free_aligned(p);
}

int plm_pool_size(const plm_pool *p) {
    return p ? p->n_threads : 1;
}

void plm_pool_run(plm_pool *p, plm_pool_fn fn, void *ctx) {
    if (!p || p->n_threads == 1) {
        fn(ctx, 0, 1);
        return;
    }
    double t0 = plm_time();
    if (p->solo_until > 0) {
        if (t0 < p->solo_until) {
            fn(ctx, 0, 1);
            return;
        }
        p->solo_until = 0;
    }
    p->fn = fn;
    p->ctx = ctx;
    const unsigned gen = atomic_load_explicit(&p->gen, memory_order_relaxed) + 1;
    atomic_store_explicit(&p->rest, 0, memory_order_relaxed);
    atomic_store_explicit(&p->n_busy, p->n_threads - 1, memory_order_relaxed);
    atomic_store(&p->claim, (unsigned long long)gen << 32 | 1); // seq_cst: after fn, ctx, n_busy
    publish(p);                                                 // gen: seq_cst, after claim
    fn(ctx, 0, p->n_threads);
    run_slots(p, gen); // the slots no worker came for
    // The workers are running a slot each, of about the size of ours: spin, yielding the core when
    // there are more threads than cores (a waiting worker may need it).
    double t1 = plm_time();
    for (int i = 1; atomic_load_explicit(&p->n_busy, memory_order_acquire) > 0; i++) {
        cpu_relax();
        if (p->oversubscribed || i % 1024 == 0) sched_yield();
    }
    double wait = plm_time() - t1;
    if (wait > PLM_POOL_LATE_SECONDS && wait > 0.5 * (t1 - t0)) {
        if (++p->n_late >= PLM_POOL_LATE_JOBS) {
            p->solo_until = t1 + wait + PLM_POOL_SOLO_SECONDS;
            p->n_late = 0;
        }
    } else p->n_late = 0;
}

void plm_pool_rest(plm_pool *p) {
    if (p && p->n_threads > 1) atomic_store_explicit(&p->rest, 1, memory_order_relaxed);
}

typedef struct {
    size_t n;
    plm_pool_range_fn fn;
    void *ctx;
} range_job;

static void range_worker(void *ctx, int ith, int nth) {
    range_job *j = ctx;
    size_t blocks = (j->n + 63) / 64;
    size_t i0 = blocks * (size_t)ith / (size_t)nth * 64,
           i1 = blocks * (size_t)(ith + 1) / (size_t)nth * 64;
    if (i1 > j->n) i1 = j->n;
    if (i0 < i1) j->fn(j->ctx, i0, i1);
}

void plm_pool_for(plm_pool *p, size_t n, plm_pool_range_fn fn, void *ctx) {
    range_job j = {n, fn, ctx};
    if (n <= 4096) fn(ctx, 0, n); // not worth waking a thread
    else plm_pool_run(p, range_worker, &j);
}

int plm_n_cores(void) {
#if defined(__EMSCRIPTEN__) && !defined(__EMSCRIPTEN_PTHREADS__)
    return 1;
#else
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
#endif
}
