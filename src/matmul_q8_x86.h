// matmul_q8_x86.h: the 256-bit Q8_0 kernels of matmul_x86.c (internal; only that file includes
// it), written once and compiled three times, one for each way to get exact int32 sums of 4
// products (lanes of 4 bytes) from 32 unsigned bytes a and 32 signed b:
//   avx2: vpmaddubsw (pairs of products into int16: the kernels give it a = |x| <= 127, which never
//     saturates) then vpmaddwd by ones;
//   avxvnni (VEX): one vpdpbusd ymm of AVX-VNNI (Alder Lake .. Arrow Lake, Zen 5): all 4 products
//     straight into the int32 lane, no int16 step;
//   avxvnni (EVEX): the same instruction EVEX-encoded (AVX512_VNNI + AVX512VL: Ice Lake, Zen 4),
//     the same operation on the same 256 bits. cpu.c runs the avxvnni path on a CPU with either
//     (plm_cpu_avxvnni_vex picks the table): so the avxvnni kernels are tested on a CPU with
//     AVX-512 VNNI but not AVX-VNNI (qemu-user 7.2 does not emulate AVX-VNNI), and a CPU with
//     AVX-VNNI runs the VEX twin of the same code (its encoding checked with objdump, gcc and
//     clang-14: `{vex} vpdpbusd`).
// The integer sums are exact either way, and so is any sum of them, so all three give P[b] of
// matmul_kernels.h's canonical order and its bits.
// The kernels: the stream kernel below Q8_STREAM_T (avxvnni: Q8_STREAM_T_VNNI) tokens (decode,
// small steps: 4 rows a tile, their P[b] reduced into one vector with a lane a row), the same code
// in all three; the prefill rows kernel with 8 tokens in the lanes of a ymm, whose int32 chain
// differs: AVX2 reads two planes (x and |x|: vpmaddubsw(|x|, sign(w, x))), vpdpbusd one (x xor 0x80
// from the weights' correction, AVX-512's way: one operation and one plane less); see matmul_x86.c
// for the layouts and the helpers used here.
// Before each include, define Q8X_TARGET (the target attribute), Q8X(name) (the name with the
// variant's suffix), and either Q8X_DOT(a, b) (AVX2: a unsigned bytes, b signed -> the 8 int32
// sums of 4 products) or Q8X_DPBUSD(acc, a, b) (vpdpbusd's intrinsic: acc + those sums). They are
// undefined at the end.
#if defined(Q8X_DPBUSD)
#define Q8X_DOT(a, b) Q8X_DPBUSD(_mm256_setzero_si256(), a, b)
#endif

// q8_dots: P[b] of 4 rows for one token, lane i = row i's: the token's block x (32 bytes) against
// the rows' blocks at w + i rs: Q8X_DOT of |x| and w with x's sign (exact since q is never -128)
// gives each row 8 int32 lanes, summed into lane i by reduce4_epi32.
PLM_INLINE Q8X_TARGET __m128i Q8X(q8_dots)(const int8_t *w, size_t rs, __m256i x) {
    const __m256i ax = _mm256_sign_epi8(x, x);
    __m256i p[4];
    UNROLL
    for (int i = 0; i < 4; i++) {
        const __m256i wv = _mm256_loadu_si256((const __m256i *)(const void *)(w + i * rs));
        p[i] = Q8X_DOT(ax, _mm256_sign_epi8(wv, x));
    }
    return reduce4_epi32(p);
}

// q8_tile4: out[t0 .. t0 + mt, r .. r + 4) (rs = C), or out[t0 .. t0 + mt, r] (rs = 0: every lane
// reads row r), for mt < Q8_STREAM_T tokens: acc[t] holds the canonical sum of row r + i in lane i;
// per block, s = dw[r + i, b] * dx[t, b] in the same lanes (dw gathered), m = (float)P[b] * s, one
// add. The tile's rows (4 C contiguous bytes) are read once for all mt tokens, and the tile
// prefetch_tiles ahead is prefetched in step: at block b its 2 lines 128 b .. 128 b + 127, so it
// comes in as one linear stream, a tile's bytes in a tile's time (prefetching each row's next
// block instead, in the order of use, ran at half the speed: the hardware prefetcher follows a
// linear stream), and the scales' line at 16 b of the tile after it (every other block): from DRAM
// the scales are a second stream (rows * nb floats, another allocation) that the hardware
// prefetcher does not keep ahead of, and a missed scale load stalls the tile (it held decode to
// 6-8 GB/s). The weights' lines go into L2 (T1): a T0 prefetch holds one of the core's few L1
// fill buffers until its line arrives from DRAM, and those capped the stream (Intel Xeon with
// AMX, whole model, 1 thread: 83 -> 94.5 tok/s, 2 threads 174-189 -> 207-216, the avx2 path 79-81
// -> 86-90); NTA measured slower (the lm_head, 1 thread, Zen 4: 1.40 against 1.66 ms with 8-row
// tiles, a shared machine); 4 rows a tile rather than 8 (one reduction a row either way): 1.18
// against 1.31 ms, and 0.040 against 0.053 ms on down_proj (576 x 1536); q8_warm starts the first
// tiles of each thread.
PLM_INLINE Q8X_TARGET void Q8X(q8_tile4)(const matmul_job *j, int t0, int mt, int r, size_t rs) {
    const int C = j->w->cols, R = j->w->rows, nb = C / PLM_QK;
    const int8_t *xq = j->xq + (size_t)t0 * C, *wq = j->w->q + (size_t)r * C;  // (mt, C), (4, C)
    const float *xd = j->xd + (size_t)t0 * nb, *wd = j->w->d + (size_t)r * nb; // (mt, nb), (4, nb)
    const __m128i idx = _mm_mullo_epi32(_mm_setr_epi32(0, 1, 2, 3), _mm_set1_epi32(rs ? nb : 0));
    const int pft = prefetch_tiles((size_t)C);
    const char *pq = r + 4 * pft < R ? (const char *)(wq + (size_t)4 * pft * C) : NULL;
    const char *pd = (const char *)(wd + (size_t)4 * (pft + 1) * nb);
    __m128 acc[Q8_STREAM_T - 1]; // (t): lane i = row r + i
    UNROLL
    for (int t = 0; t < mt; t++) acc[t] = _mm_setzero_ps();
    for (int b = 0; b < nb; b++) {
        if (pq) {
            _mm_prefetch(pq + 128 * b, _MM_HINT_T1);
            _mm_prefetch(pq + 128 * b + 64, _MM_HINT_T1);
            if (b % 2 == 0) _mm_prefetch(pd + 16 * b, _MM_HINT_T0);
        }
        const __m128 ws = _mm_i32gather_ps(wd + b, idx, 4);
        UNROLL
        for (int t = 0; t < mt; t++) {
            const int8_t *xb = xq + (size_t)t * C + b * PLM_QK;
            const __m128i p = Q8X(q8_dots)(wq + b * PLM_QK, rs,
                                           _mm256_loadu_si256((const __m256i *)(const void *)xb));
            const __m128 s = _mm_mul_ps(ws, _mm_broadcast_ss(xd + (size_t)t * nb + b));
            acc[t] = _mm_add_ps(acc[t], _mm_mul_ps(_mm_cvtepi32_ps(p), s));
        }
    }
    UNROLL
    for (int t = 0; t < mt; t++) {
        float *o = j->out + (size_t)(t0 + t) * R + r;
        if (rs) _mm_storeu_ps(o, acc[t]);
        else *o = _mm_cvtss_f32(acc[t]);
    }
}

// q8_stream: the table's tile function below rows_t tokens (the driver's stream_t): every token
// (mt = T) of rows r .. r + nr (nr = Q8_DNR, or 1 at the end of a thread's rows), read once,
// prefetched. At T = 2 the 2 x 4 tiles the row stream replaced, which read 4 rows without
// prefetch, cost 3.2x a token's time (the lm_head: 5.0 against 1.55 ms, 1 thread, AMD EPYC Zen 4;
// 1.8 ms with it).
Q8X_TARGET static void Q8X(q8_stream)(const matmul_job *j, int t0, int mt, int r, int nr) {
    const size_t rs = nr == Q8_DNR ? (size_t)j->w->cols : 0;
    switch (mt) {
    case 6: Q8X(q8_tile4)(j, t0, 6, r, rs); break;
    case 5: Q8X(q8_tile4)(j, t0, 5, r, rs); break;
    case 4: Q8X(q8_tile4)(j, t0, 4, r, rs); break;
    case 3: Q8X(q8_tile4)(j, t0, 3, r, rs); break;
    case 2: Q8X(q8_tile4)(j, t0, 2, r, rs); break;
    default: Q8X(q8_tile4)(j, t0, 1, r, rs);
    }
}

#if defined(Q8X_DPBUSD)
#define Q8X_PLANES 1
#define Q8X_NR     2 // rows a lanes call (q8_rows)
// q8_corrections: -128 * (the sum of the 32 weights) of row w's blocks c0 .. ce - 1 into cw[0 ..
// ce - c0), first, in memory: then each is one broadcast load (GCC turns a store and a reload in
// one loop into shuffles). vpdpbusd of 0x80 and a block gives 128 times its sums of 4, and
// reduce8_epi32 sums 8 blocks' at once. Also AVX-512's (the EVEX twin inlines into its kernels).
PLM_INLINE Q8X_TARGET void Q8X(q8_corrections)(int32_t cw[LANES_CHUNK], const int8_t *w, int c0,
                                               int ce) {
    const __m256i k80 = _mm256_set1_epi8((char)0x80), zero = _mm256_setzero_si256();
    for (int b = c0; b < ce; b += 8) {
        __m256i v[8];
        UNROLL
        for (int k = 0; k < 8; k++)
            v[k] = b + k < ce
                       ? Q8X_DPBUSD(zero, k80,
                                    _mm256_loadu_si256(
                                        (const __m256i *)(const void *)(w + (b + k) * PLM_QK)))
                       : zero;
        _mm256_store_si256((__m256i *)(void *)(cw + (b - c0)),
                           _mm256_sub_epi32(zero, reduce8_epi32(v)));
    }
}
#else
#define Q8X_PLANES 2
#define Q8X_NR     1
#endif

// q8_lanes: out[t0 .. t0 + 8, r + i] for i < nr (1 or 2, a constant at each call site; tokens past
// T not written) for the group at xg, a token a lane: per block, each row's P[b] as an int32 chain
// over the block's 8 lanes of 4 columns (the 4 weights broadcast), then one convert, multiply by
// s = dw[r, b] * dx[t, b] and add; the rows share each load of the inputs. Per 4 columns: vpdpbusd,
// on one plane (x xor 0x80) from the block's correction, 1 operation (AVX-512's pass on 8
// tokens); AVX2, on two planes (x, |x|), a sign, vpmaddubsw, vpmaddwd and an add. The rows stream
// with lanes_prefetch. Q8X_NR rows a call: 2 rows took 0.095 against 0.111 ms at 8 tokens and 0.19
// against 0.22 at 16 with vpdpbusd (gate_proj, 1 thread, the EVEX twin, a shared machine), and ran
// as fast as 1 on AVX2, whose 4 operations a load keep it busy (and which was up to 1.8x slower
// with 2 or 4 rows on the lm_head before the rows were prefetched: AVX2 keeps 1).
PLM_INLINE Q8X_TARGET void Q8X(q8_lanes)(const matmul_job *j, const char *xg, int t0, int r,
                                         const int nr) {
    const int C = j->w->cols, nb = C / PLM_QK;
    const int8_t *w = j->w->q + (size_t)r * C;                                        // (nr, C)
    const float *dw = j->w->d + (size_t)r * nb;                                       // (nr, nb)
    const float *dx = (const float *)(const void *)(xg + 8 * Q8X_PLANES * (size_t)C); // (nb, 8)
    __m256 acc[2];
    UNROLL
    for (int i = 0; i < nr; i++) acc[i] = _mm256_setzero_ps();
    for (int c0 = 0; c0 < nb; c0 += LANES_CHUNK) {
        const int ce = c0 + LANES_CHUNK < nb ? c0 + LANES_CHUNK : nb;
#if defined(Q8X_DPBUSD)
        _Alignas(32) int32_t cw[2][LANES_CHUNK];
        UNROLL
        for (int i = 0; i < nr; i++) Q8X(q8_corrections)(cw[i], w + (size_t)i * C, c0, ce);
#endif
        for (int b = c0; b < ce; b++) {
            const __m256i *xb = (const __m256i *)(const void *)(xg + (size_t)b * 256 * Q8X_PLANES);
            __m256i p[2];
            UNROLL
            for (int i = 0; i < nr; i++) {
                lanes_prefetch(w + (size_t)i * C, dw + (size_t)i * nb, b);
#if defined(Q8X_DPBUSD)
                p[i] = _mm256_set1_epi32(cw[i][b - c0]);
#else
                p[i] = _mm256_setzero_si256();
#endif
            }
            UNROLL
            for (int l = 0; l < 8; l++) {
#if defined(Q8X_DPBUSD)
                const __m256i x = _mm256_load_si256(xb + l);
#else
                const __m256i x = _mm256_load_si256(xb + 2 * l);
                const __m256i ax = _mm256_load_si256(xb + 2 * l + 1);
#endif
                UNROLL
                for (int i = 0; i < nr; i++) {
                    int32_t w4;
                    memcpy(&w4, w + (size_t)i * C + b * PLM_QK + 4 * l, sizeof w4);
                    const __m256i wl = _mm256_set1_epi32(w4);
#if defined(Q8X_DPBUSD)
                    p[i] = Q8X_DPBUSD(p[i], x, wl);
#else
                    p[i] = _mm256_add_epi32(p[i], Q8X_DOT(ax, _mm256_sign_epi8(wl, x)));
#endif
                }
            }
            const __m256 xs = _mm256_load_ps(dx + 8 * b);
            UNROLL
            for (int i = 0; i < nr; i++) {
                const __m256 s = _mm256_mul_ps(_mm256_set1_ps(dw[(size_t)i * nb + b]), xs);
                acc[i] = _mm256_add_ps(acc[i], _mm256_mul_ps(_mm256_cvtepi32_ps(p[i]), s));
            }
        }
    }
    UNROLL
    for (int i = 0; i < nr; i++) {
        _Alignas(32) float o[8];
        _mm256_store_ps(o, acc[i]);
        lanes_store(j, o, 8, t0, r + i);
    }
}

// q8_rows: out[0 .. T, r0 .. r1) from the table's stream_t tokens on: per group, every row, Q8X_NR
// at a time (the group's inputs, 8 C bytes a plane, stay in L1 while the rows stream past).
Q8X_TARGET static void Q8X(q8_rows)(const matmul_job *j, int r0, int r1) {
    const size_t gb = plm_lane_group_bytes(j->w->cols, 8, Q8X_PLANES);
    for (int g = 0; 8 * g < j->T; g++) {
        const char *xg = (const char *)j->xc + (size_t)g * gb;
        int r = r0;
        for (; r + Q8X_NR <= r1; r += Q8X_NR) Q8X(q8_lanes)(j, xg, 8 * g, r, Q8X_NR);
        for (; r < r1; r++) Q8X(q8_lanes)(j, xg, 8 * g, r, 1);
    }
}

#undef Q8X_TARGET
#undef Q8X_DPBUSD
#undef Q8X_DOT
#undef Q8X_PLANES
#undef Q8X_NR
#undef Q8X
