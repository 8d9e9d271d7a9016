// test_pool.c: the thread pool: every thread index runs once per job (also after plm_pool_rest),
// and a worker that is slow in its slot (a busy machine, simulated by sleeping) makes the caller
// run the next jobs alone for a while.
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <time.h>

#include "pool.h"
#include "test.h"

typedef struct {
    atomic_int calls, seen_nth; // calls this job; the nth they saw (all equal)
    atomic_int mask;            // bit ith set for each ith that ran
    atomic_int started;         // slot 1 has started
    int late_ms;                // slot 1 sleeps this long
} job;

static void record(void *ctx, int ith, int nth) {
    job *j = ctx;
    if (ith == 1) atomic_store(&j->started, 1);
    // a slow worker: slot 0 (the caller) waits until a worker has claimed slot 1, which the
    // caller would otherwise take itself when the worker is slow to come (pool.c)
    if (ith == 0 && nth > 1 && j->late_ms)
        while (!atomic_load(&j->started)) continue;
    if (ith == 1 && j->late_ms) {
        struct timespec ts = {0, (long)j->late_ms * 1000000L};
        nanosleep(&ts, NULL);
    }
    atomic_fetch_add(&j->calls, 1);
    atomic_store(&j->seen_nth, nth);
    atomic_fetch_or(&j->mask, 1 << ith);
}

// run: one job; returns the nth its calls saw (0 when they disagree with the call count)
static int run(plm_pool *p, int late_ms) {
    job j = {0};
    j.late_ms = late_ms;
    plm_pool_run(p, record, &j);
    int nth = atomic_load(&j.seen_nth);
    return atomic_load(&j.calls) == nth && atomic_load(&j.mask) == (1 << nth) - 1 ? nth : 0;
}

// every thread index runs once per job, for pools of 1 to 4 threads (more than the cores too)
static void test_sizes(void) {
    CHECK(plm_n_cores() >= 1);
    CHECK(plm_pool_size(NULL) == 1 && plm_pool_create(0) == NULL);
    for (int n = 1; n <= 4; n++) {
        plm_pool *p = plm_pool_create(n);
        CHECK(p != NULL && plm_pool_size(p) == n);
        if (!p) continue;
        int bad = 0, threaded = 0;
        for (int i = 0; i < 2000; i++) {
            int nth = run(p, 0);
            bad += nth != n && nth != 1; // all of them, or the caller alone
            threaded += nth == n;
        }
        CHECK_MSG(bad == 0 && threaded >= 1, "pool %d: %d bad jobs, %d threaded", n, bad, threaded);
        plm_pool_free(p);
    }
    plm_pool_free(NULL);
}

// plm_pool_rest between jobs (the workers sleep at once): every job still runs on every thread
// index, or on the caller alone; and jobs right after a rest, with a sleep or without one
static void test_rest(void) {
    plm_pool *p = plm_pool_create(3);
    CHECK(p != NULL);
    if (!p) return;
    int bad = 0;
    for (int i = 0; i < 200; i++) {
        plm_pool_rest(p);
        if (i % 2) {
            struct timespec ts = {0, 200000L}; // the workers have gone to sleep
            nanosleep(&ts, NULL);
        }
        int nth = run(p, 0);
        bad += nth != 3 && nth != 1;
    }
    CHECK_MSG(bad == 0, "%d bad jobs after plm_pool_rest", bad);
    plm_pool_rest(NULL);
    plm_pool_free(p);
}

int main(void) {
    test_self();
    test_sizes();
    test_rest();
    plm_pool *p = plm_pool_create(2);
    CHECK(p != NULL && plm_pool_size(p) == 2);
    if (!p) return test_main_end("test_pool");
    // (on a busy machine any job's worker may come late, so only what must happen is checked)
    CHECK(run(p, 0) != 0); // 2, or 1 if the workers were already late
    int k = 1;
    while (run(p, 3) == 2 && k < 10) k++; // late jobs: threaded at most twice, then alone
    CHECK_MSG(k <= 3, "%d late jobs before the caller ran alone", k);
    CHECK(run(p, 0) == 1);                    // still alone
    struct timespec ts = {0, 150 * 1000000L}; // past PLM_POOL_SOLO_SECONDS
    nanosleep(&ts, NULL);
    CHECK(run(p, 0) == 2); // then the workers again
    plm_pool_free(p);
    CHECK(run(NULL, 0) == 1);
    plm_pool *one = plm_pool_create(1);
    CHECK(one && run(one, 0) == 1);
    plm_pool_free(one);
    return test_main_end("test_pool");
}
