// rng.h: every random number of pocketlm, from explicit 64-bit state (never rand(), no global
// state). Two generators and two hashes, each a few lines, used by:
//   sampler.c  the draw:                  rng_seed(seed), then rng_unit(rng_next(&s))
//   generate.c which source bigrams block: rng_unit(rng_mix(rng_seed(seed) ^ position))
//   data.c     split and batch shuffles:  rng_seed, rng_below; length ties: rng_seed as a hash
//   ops_mt.c   dropout masks:             rng_mix over (seed, layer, target, element / 4)
//   trainer.c  one dropout seed per micro-batch: rng_mix_half
//   lora.c     PEFT's init of A:          rng_xorshift64, then rng_unit
// The streams are part of pocketlm's results (a seed gives the same tokens, the same adapter, and a
// resumed run continues bit for bit): changing any function here changes them.
// References: Vigna's splitmix64 and xorshift64* (https://prng.di.unimi.it), Marsaglia 2003.
#ifndef PLM_RNG_H
#define PLM_RNG_H

#include <stdint.h>

#define RNG_GOLDEN 0x9E3779B97F4A7C15ull // 2^64 / golden ratio: splitmix64's increment

// rng_mix: splitmix64's finalizer, a bijective hash of 64 bits (counter-based streams)
static inline uint64_t rng_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// rng_mix_half: the first of rng_mix's two rounds only (the trainer's micro-batch seeds)
static inline uint64_t rng_mix_half(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    return z ^ (z >> 31);
}

// rng_seed: splitmix64 of seed, never 0: a well-spread xorshift state from any seed (even 0)
static inline uint64_t rng_seed(uint64_t seed) {
    uint64_t z = rng_mix(seed + RNG_GOLDEN);
    return z ? z : 1;
}

// rng_next: one xorshift64* step of *s (shifts 12, 25, 27) and its 64-bit output
static inline uint64_t rng_next(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

// rng_below: a number in [0, n) from rng_next; the modulo bias is below n / 2^64
static inline uint64_t rng_below(uint64_t *s, uint64_t n) {
    return rng_next(s) % n;
}

// rng_xorshift64: one xorshift64 step of *s (Marsaglia 2003, shifts 13, 7, 17), returning the new
// state; never 0 from a non-zero state
static inline uint64_t rng_xorshift64(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

// rng_unit: a float in [0, 1) from the top 24 bits of r (exact: 24 bits fit a float)
static inline float rng_unit(uint64_t r) {
    return (float)(r >> 40) / 16777216.0f;
}

#endif
