// bandwidth.h: the machine's memory read bandwidth, measured as decoding reads the weights: one
// sequential, vectorized read of a buffer cut into one contiguous part per thread of a pool. With
// the bytes of weights a decoded token reads (plm_model_decode_bytes), it gives decode's ceiling.
#ifndef PLM_BANDWIDTH_H
#define PLM_BANDWIDTH_H

#include <stddef.h>

#include "pool.h"

// plm_read_bandwidth: GB/s (1e9 bytes a second) of reading the n bytes at p once over pool's
// threads (NULL: the caller alone): the best of reps passes after one warm-up pass, since the
// machine may be shared. The read is not optimized away (every byte goes into a checksum kept in a
// volatile). *threads_used (may be NULL) gets the threads of the best pass: fewer than the pool's
// when the pool ran the pass on the caller alone (it does on a busy machine: pool.c).
double plm_read_bandwidth(plm_pool *pool, const void *p, size_t n, int reps, int *threads_used);

// plm_decode_ceiling: the tok/s at which decoding would only read bytes_per_token at gbs GB/s.
double plm_decode_ceiling(double gbs, size_t bytes_per_token);

#endif
