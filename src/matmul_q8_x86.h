// matmul_q8_x86.h: the 256-bit Q8_0 kernels of matmul_x86.c (internal; only that file includes
// it), written once and compiled three times, one for each way to get the 8 sums p[b][l] of
// matmul_kernels.h's canonical order as int32 lanes from 32 unsigned bytes a and 32 signed b:
//   avx2: vpmaddubsw (pairs of products into int16: the kernels give it a = |x| or |w| <= 127,
//     which never saturates) then vpmaddwd by ones;
//   avxvnni (VEX): one vpdpbusd ymm of AVX-VNNI (Alder Lake .. Arrow Lake, Zen 5): all 4 products
//     straight into the int32 lane, no int16 step;
//   avxvnni (EVEX): the same instruction EVEX-encoded (AVX512_VNNI + AVX512VL: Ice Lake, Zen 4),
//     the same operation on the same 256 bits. cpu.c runs the avxvnni path on a CPU with either
//     (plm_cpu_avxvnni_vex picks the table): so the avxvnni kernels are tested on a CPU with
//     AVX-512 VNNI but not AVX-VNNI (qemu-user 7.2 does not emulate AVX-VNNI), and a CPU with
//     AVX-VNNI runs the VEX twin of the same code (its encoding checked with objdump, gcc and
//     clang-14: `{vex} vpdpbusd`).
// The integer sums are exact either way, so all three give the canonical bits.
// The kernels: small-T tiles (2 tokens x 4 rows, and their edges) and the decode kernel (one row
// stream, prefetched), the same code in all three; the prefill rows kernel with 8 tokens in the
// lanes of a ymm, whose pass differs: AVX2 reads two planes (x and |x|: vpmaddubsw(|x|, sign(w,
// x))), vpdpbusd one (x xor 0x80 and the weights' corrections, AVX-512's way: one operation and
// one plane less); see matmul_x86.c for the layouts and the helpers used here.
// Before each include, define Q8X_TARGET (the target attribute), Q8X(name) (the name with the
// variant's suffix), and either Q8X_DOT(a, b) (AVX2: a unsigned bytes, b signed -> the 8 int32
// sums of 4 products) or Q8X_DPBUSD(acc, a, b) (vpdpbusd's intrinsic: acc + those sums). They are
// undefined at the end.
#if defined(Q8X_DPBUSD)
#define Q8X_DOT(a, b) Q8X_DPBUSD(_mm256_setzero_si256(), a, b)
#endif

// q8_step: block b of one row into acc[t] for t < mt: Q8X_DOT of |w| and x with w's sign (exact
// since q is never -128) gives 8 int32 lanes (lane l = bytes 4l .. 4l+3); each lane times dw * dx,
// then added.
PLM_INLINE Q8X_TARGET void Q8X(q8_step)(__m256 acc[Q8_STREAM_T - 1], const int8_t *xq,
                                        const float *xd, const int8_t *wq, const float *wd, int C,
                                        int nb, int mt, int b) {
    const __m256i wv = _mm256_loadu_si256((const __m256i *)(wq + b * PLM_QK));
    const __m256i wabs = _mm256_sign_epi8(wv, wv);
    const __m256 ws = _mm256_broadcast_ss(wd + b);
    UNROLL
    for (int t = 0; t < mt; t++) {
        const __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + (size_t)t * C + b * PLM_QK));
        const __m256 xs = _mm256_broadcast_ss(xd + (size_t)t * nb + b);
        const __m256i p32 = Q8X_DOT(wabs, _mm256_sign_epi8(xv, wv));
        const __m256 m = _mm256_mul_ps(_mm256_cvtepi32_ps(p32), _mm256_mul_ps(ws, xs));
        acc[t] = _mm256_add_ps(acc[t], m);
    }
}

// q8_block: one row for mt tokens (< Q8_STREAM_T), two blocks per step in the canonical order:
// even blocks into acc[0], odd blocks into acc[1] (the 16 accumulators as two registers); the sum
// adds acc[0] + acc[1] first. The row is read once for all mt tokens, and the weights and the
// scales are prefetched prefetch_rows ahead: from DRAM the scales are a second stream (rows * nb
// floats, another allocation) that the hardware prefetcher does not keep ahead of, and a missed
// scale load stalls the whole row (it held decode to 6-8 GB/s). NTA: read once, kept out of the
// way of the inputs; q8_warm starts the first rows of each thread.
PLM_INLINE Q8X_TARGET void Q8X(q8_block)(const matmul_job *j, int t0, int mt, int r) {
    const int C = j->w->cols, R = j->w->rows, nb = C / PLM_QK;
    const int8_t *xq = j->xq + (size_t)t0 * C, *wq = j->w->q + (size_t)r * C;  // (mt, C), (C)
    const float *xd = j->xd + (size_t)t0 * nb, *wd = j->w->d + (size_t)r * nb; // (mt, nb), (nb)
    const int pfr = prefetch_rows((size_t)C);
    const int8_t *pq = r + pfr < R ? wq + (size_t)pfr * C : NULL;
    if (pq) {
        const char *pd = (const char *)(wd + (size_t)pfr * nb);
        _mm_prefetch(pd, _MM_HINT_NTA);
        _mm_prefetch(pd + nb * sizeof(float) - 1, _MM_HINT_NTA);
    }
    __m256 acc[2][Q8_STREAM_T - 1]; // (even|odd, t)
    UNROLL
    for (int t = 0; t < mt; t++) acc[0][t] = acc[1][t] = _mm256_setzero_ps();
    int b = 0;
    for (; b + 2 <= nb; b += 2) {
        if (pq) _mm_prefetch((const char *)(pq + b * PLM_QK), _MM_HINT_NTA);
        Q8X(q8_step)(acc[0], xq, xd, wq, wd, C, nb, mt, b);
        Q8X(q8_step)(acc[1], xq, xd, wq, wd, C, nb, mt, b + 1);
    }
    if (b < nb) Q8X(q8_step)(acc[0], xq, xd, wq, wd, C, nb, mt, b);
    UNROLL
    for (int t = 0; t < mt; t++)
        j->out[(size_t)(t0 + t) * R + r] = hsum_avx2(_mm256_add_ps(acc[0][t], acc[1][t]));
}

// q8_stream: the table's tile function below rows_t tokens (the driver's stream_t): every token
// (mt = T) of row r, the row read once, prefetched. At T = 2 the 2 x 4 tiles this replaced, which
// read 4 rows without prefetch, cost 3.2x a token's time (the lm_head: 5.0 against 1.55 ms, 1
// thread, AMD EPYC Zen 4; 1.8 ms now), and up to 7.9 ms at T = 5 (4.0 now).
Q8X_TARGET static void Q8X(q8_stream)(const matmul_job *j, int t0, int mt, int r, int nr) {
    (void)nr; // 1
    switch (mt) {
    case 6: Q8X(q8_block)(j, t0, 6, r); break;
    case 5: Q8X(q8_block)(j, t0, 5, r); break;
    case 4: Q8X(q8_block)(j, t0, 4, r); break;
    case 3: Q8X(q8_block)(j, t0, 3, r); break;
    case 2: Q8X(q8_block)(j, t0, 2, r); break;
    default: Q8X(q8_block)(j, t0, 1, r);
    }
}

#if defined(Q8X_DPBUSD)
#define Q8X_PLANES 1
// q8_corrections: -128 * (the sum of each 4 weights) of row w's blocks c0, c0 + 2, .. < ce into cw,
// first, in memory: then each is one broadcast load (GCC turns a store and a reload in one loop
// into shuffles). Also AVX-512's (the EVEX twin inlines into its kernels).
PLM_INLINE Q8X_TARGET void Q8X(q8_corrections)(int32_t cw[LANES_CHUNK][8], const int8_t *w, int c0,
                                               int ce) {
    const __m256i k80 = _mm256_set1_epi8((char)0x80), zero = _mm256_setzero_si256();
    for (int b = c0; b < ce; b += 2) {
        const __m256i wv = _mm256_loadu_si256((const __m256i *)(const void *)(w + b * PLM_QK));
        _mm256_store_si256((__m256i *)(void *)cw[(b - c0) / 2],
                           _mm256_sub_epi32(zero, Q8X_DPBUSD(zero, k80, wv)));
    }
}
#else
#define Q8X_PLANES 2
#endif

// q8_pass_lanes: acc[l] (from +0) of the blocks b = par, par + 2, .. of row r for the group at xg.
// Per 4 columns and 8 tokens, 3 loads and: vpdpbusd, on one plane (x xor 0x80) from the weights'
// correction (AVX-512's pass on 8 tokens), 4 operations; AVX2, on two planes (x, |x|), a sign,
// vpmaddubsw and vpmaddwd, then the same 3 (on Zen 4 the EVEX one-plane pass spends ~15% less time
// in this loop than a two-plane vpdpbusd pass, hot in L1).
PLM_INLINE Q8X_TARGET void Q8X(q8_pass_lanes)(__m256 acc[8], const matmul_job *j, const char *xg,
                                              int r, int par) {
    const int C = j->w->cols, nb = C / PLM_QK;
    const int8_t *w = j->w->q + (size_t)r * C;                                        // (C)
    const float *dw = j->w->d + (size_t)r * nb;                                       // (nb)
    const float *dx = (const float *)(const void *)(xg + 8 * Q8X_PLANES * (size_t)C); // (nb, 8)
    UNROLL
    for (int l = 0; l < 8; l++) acc[l] = _mm256_setzero_ps();
    for (int c0 = par; c0 < nb; c0 += 2 * LANES_CHUNK) {
        const int ce = c0 + 2 * LANES_CHUNK < nb ? c0 + 2 * LANES_CHUNK : nb;
#if defined(Q8X_DPBUSD)
        _Alignas(32) int32_t cw[LANES_CHUNK][8];
        Q8X(q8_corrections)(cw, w, c0, ce);
#endif
        for (int b = c0; b < ce; b += 2) {
            const __m256 s = _mm256_mul_ps(_mm256_set1_ps(dw[b]), _mm256_load_ps(dx + 8 * b));
            const __m256i *xb = (const __m256i *)(const void *)(xg + (size_t)b * 256 * Q8X_PLANES);
            UNROLL
            for (int l = 0; l < 8; l++) {
                int32_t w4;
                memcpy(&w4, w + b * PLM_QK + 4 * l, sizeof w4);
                const __m256i wl = _mm256_set1_epi32(w4);
#if defined(Q8X_DPBUSD)
                const __m256i c = _mm256_set1_epi32(cw[(b - c0) / 2][l]);
                const __m256i p32 = Q8X_DPBUSD(c, _mm256_load_si256(xb + l), wl);
#else
                const __m256i p32 = Q8X_DOT(_mm256_load_si256(xb + 2 * l + 1),
                                            _mm256_sign_epi8(wl, _mm256_load_si256(xb + 2 * l)));
#endif
                acc[l] = _mm256_add_ps(acc[l], _mm256_mul_ps(_mm256_cvtepi32_ps(p32), s));
            }
        }
    }
}

// q8_lanes: out[t0 .. t0 + 8, r] (tokens past T not written) for the group at xg: the even
// pass, the odd pass, then the canonical end sum of each lane.
PLM_INLINE Q8X_TARGET void Q8X(q8_lanes)(const matmul_job *j, const char *xg, int t0, int r) {
    __m256 even[8], odd[8];
    Q8X(q8_pass_lanes)(even, j, xg, r, 0);
    Q8X(q8_pass_lanes)(odd, j, xg, r, 1);
    UNROLL
    for (int l = 0; l < 8; l++) even[l] = _mm256_add_ps(even[l], odd[l]);
    UNROLL
    for (int i = 0; i < 4; i++) even[i] = _mm256_add_ps(even[i], even[i + 4]);
    _Alignas(32) float sum[8];
    _mm256_store_ps(
        sum, _mm256_add_ps(_mm256_add_ps(even[0], even[2]), _mm256_add_ps(even[1], even[3])));
    lanes_store(j, sum, 8, t0, r);
}

// q8_rows: out[0 .. T, r0 .. r1) for T >= Q8_STREAM_T: per group, every row (the group's inputs,
// 8 C bytes a plane, stay in L1 while the rows stream past).
Q8X_TARGET static void Q8X(q8_rows)(const matmul_job *j, int r0, int r1) {
    const size_t gb = lane_group_bytes(j->w->cols, 8, Q8X_PLANES);
    for (int g = 0; 8 * g < j->T; g++)
        for (int r = r0; r < r1; r++)
            Q8X(q8_lanes)(j, (const char *)j->xc + (size_t)g * gb, 8 * g, r);
}

#undef Q8X_TARGET
#undef Q8X_DPBUSD
#undef Q8X_DOT
#undef Q8X_PLANES
#undef Q8X
