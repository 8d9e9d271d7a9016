// matmul_amx.c: the amx path's Q8_0 rows kernel (x86-64 AMX-TILE + AMX-INT8: Sapphire Rapids and
// later), for prefill and the server's batched steps (T >= PLM_AMX_ROWS_T tokens); decode and
// everything else run avx512's kernels (matmul_x86.c's amx table).
//
// One tdpbssd multiplies an A tile of 16 weight rows x 32 bytes (one Q8_0 block of each row,
// loaded straight from the row-major weights with the row stride) by a B tile of 8 x 64 bytes
// (one block of 16 tokens, 4 bytes a token a row: q8_prepare_amx's groups) into a C tile of
// 16 x 16 exact int32 sums: P[b] of matmul_kernels.h's canonical order for 16 rows and 16 tokens,
// with no sign trick (signed bytes times signed bytes). C is stored (1 KB) and each row's 16 tokens
// take the canonical float step in one zmm: s = dw[r, b] * dx[t, b], m = (float)P * s, acc + m.
// So the bits are every other path's. Two C, A and B tiles by parity let the tile multiply of
// block b + 1 run during block b's float step; the tile operations, not the float step, bound the
// kernel (measured: with the float step removed it took the same time).
// Tiles: 0, 1 C; 2, 3 A; 4, 5 B (pairs: 6 A, 7 B too). A panel of fewer than 16 rows (the last)
// configures A and C with its rows; the float step still runs 16 lanes of rows, reading the last
// valid row's scales for the others, and stores only the valid ones.
// Up to PLM_AMX_PAIRS_T = 8 tokens (the server's steps) half of such a C tile would be padding and
// the tile operations bound the kernel, so one tdpbssd takes two blocks instead (K = 64: each
// row's 64 contiguous bytes): a block-diagonal B tile (plm_q8_pairs_amx) puts block b's sums of
// tokens 0-7 in C's columns 0-7 and block b + 1's in columns 8-15, so a C row holds both blocks'
// P, and the float step adds the low half, then the high half, to an 8-token accumulator: still
// the canonical order. An odd last block runs alone (tiles 3 and 5: K = 32).
#include <string.h>

#include "matmul_kernels.h"
#include "quant_x86.h"

#if defined(__x86_64__)

#define PLM_TARGET_AMX                                                                             \
    __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,amx-tile,amx-"       \
                          "int8")))

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16]; // bytes a row of each tile
    uint8_t rows[16];
} tile_config;

// config: the tiles for panels of n weight rows (1..16); pairs: the pairs' tiles (2 and 6: A of two
// blocks, 4 and 7: B of two blocks; 3 and 5 one block, for an odd last one)
PLM_TARGET_AMX static void config(int n, int pairs) {
    tile_config c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int i = 0; i < 2; i++) c.rows[i] = (uint8_t)n, c.colsb[i] = 64; // C
    for (int i = 2; i < 4; i++) c.rows[i] = (uint8_t)n, c.colsb[i] = PLM_QK;
    for (int i = 4; i < 6; i++) c.rows[i] = PLM_QK / 4, c.colsb[i] = 64;
    if (pairs) { // A and B of two blocks: tiles 2 and 4, and 6 and 7 for the other parity
        c.colsb[2] = c.colsb[6] = 2 * PLM_QK, c.rows[6] = (uint8_t)n;
        c.rows[4] = c.rows[7] = PLM_QK / 2, c.colsb[7] = 64;
    }
    // ldtilecfg as asm with c as its memory operand: gcc 12 drops the stores into c before
    // _tile_loadconfig's builtin (seen: only the palette byte written, every tile unconfigured)
    __asm__ volatile("ldtilecfg %0" : : "m"(c));
}

// DOT: tile c = P of block b (A tile a from the rows at w, B tile bt from the group at xg)
#define DOT(c, a, bt, w, C, xg, b)                                                                 \
    do {                                                                                           \
        _tile_loadd(a, (w) + (size_t)(b)*PLM_QK, C);                                               \
        _tile_loadd(bt, (xg) + (size_t)(b)*512, 64);                                               \
        _tile_zero(c);                                                                             \
        _tile_dpbssd(c, a, bt);                                                                    \
    } while (0)

// row_scales: dr[i] = the scales of row r + i of a panel of n rows (the last valid row's for
// i >= n, whose results are never stored)
PLM_INLINE void row_scales(const float *dr[16], const matmul_job *j, int r, int n) {
    const int nb = j->w->cols / PLM_QK;
    for (int i = 0; i < 16; i++) dr[i] = j->w->d + (size_t)(r + (i < n ? i : n - 1)) * nb;
}

// prefetch_next: at block b, the line of block b of each of the nn rows at next (a line holds
// blocks b and b + 1 for even b) into L2 (T1: 5% faster than T0 at 8 tokens from DRAM, the same
// at 128); nothing when next is NULL
PLM_INLINE void prefetch_next(const char *next, int nn, int C, int b) {
    if (next)
        for (int i = 0; i < nn; i++)
            _mm_prefetch(next + (size_t)i * C + (size_t)b * PLM_QK, _MM_HINT_T1);
}

// scale: the float step of block b for the 16 rows (p: their P, a row of 16 tokens each; dr[i]:
// row i's scales) and the group's dx of the block
PLM_INLINE PLM_TARGET_AMX void scale(__m512 acc[16], const int32_t *p, const float *const dr[16],
                                     int b, __m512 dx) {
    UNROLL
    for (int i = 0; i < 16; i++) {
        const __m512 s = _mm512_mul_ps(_mm512_set1_ps(dr[i][b]), dx);
        const __m512 m = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_load_si512(p + 16 * i)), s);
        acc[i] = _mm512_add_ps(acc[i], m);
    }
}

// store: out[t0 + t, r + i] = acc[i] lane t for t < nt, i < n: the 16 x 16 block transposed (4
// steps of 16 shuffles), then a masked store of n floats a token.
PLM_INLINE PLM_TARGET_AMX void store(const matmul_job *j, const __m512 acc[16], int t0, int nt,
                                     int r, int n) {
    __m512 a[16], u[16];
    UNROLL
    for (int k = 0; k < 8; k++) { // a[2k]: lane L [M 2k,4L  M 2k+1,4L  M 2k,4L+1  M 2k+1,4L+1]
        a[2 * k] = _mm512_unpacklo_ps(acc[2 * k], acc[2 * k + 1]);
        a[2 * k + 1] = _mm512_unpackhi_ps(acc[2 * k], acc[2 * k + 1]);
    }
    UNROLL
    for (int k = 0; k < 4; k++) { // u[4k + c]: lane L = column 4L + c of rows 4k .. 4k + 3
        u[4 * k] = _mm512_shuffle_ps(a[4 * k], a[4 * k + 2], 0x44);
        u[4 * k + 1] = _mm512_shuffle_ps(a[4 * k], a[4 * k + 2], 0xEE);
        u[4 * k + 2] = _mm512_shuffle_ps(a[4 * k + 1], a[4 * k + 3], 0x44);
        u[4 * k + 3] = _mm512_shuffle_ps(a[4 * k + 1], a[4 * k + 3], 0xEE);
    }
    __m512 col[16]; // col[t]: token t's 16 rows
    UNROLL
    for (int c = 0; c < 4; c++) {
        const __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);
        const __m512 v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);
        const __m512 v2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
        const __m512 v3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
        col[c] = _mm512_shuffle_f32x4(v0, v2, 0x88);
        col[4 + c] = _mm512_shuffle_f32x4(v1, v3, 0x88);
        col[8 + c] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
        col[12 + c] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
    }
    const __mmask16 m = (__mmask16)((1u << n) - 1);
    const size_t R = (size_t)j->w->rows;
    for (int t = 0; t < nt; t++) _mm512_mask_storeu_ps(j->out + (t0 + t) * R + r, m, col[t]);
}

// PAIR_BYTES: a pair of blocks in xc (plm_q8_pairs_amx): a B tile of 16 rows of 16 int32 lanes,
// then the 16 scales dx (lanes 0-7: block 2 q's tokens 0-7, lanes 8-15: block 2 q + 1's)
#define PAIR_BYTES (1024 + 64)

void plm_q8_pairs_amx(int32_t *xc, const int8_t *xq, const float *xd, int T, int C) {
    const int nb = C / PLM_QK, np = (nb + 1) / 2;
    memset(xc, 0, (size_t)np * PAIR_BYTES);
    for (int b = 0; b < nb; b++) {
        const int h = b % 2; // row 8 h + k, lane 8 h + t: block b's lane k of token t
        int32_t *tile = (int32_t *)(void *)((char *)xc + (size_t)(b / 2) * PAIR_BYTES);
        float *dx = (float *)(void *)(tile + 256);
        for (int t = 0; t < T; t++) {
            for (int k = 0; k < 8; k++)
                memcpy(tile + (8 * h + k) * 16 + 8 * h + t,
                       xq + (size_t)t * C + (size_t)b * PLM_QK + 4 * k, 4);
            dx[8 * h + t] = xd[(size_t)t * nb + b];
        }
    }
}

// DOT_PAIR: tile c = P of blocks b and b + 1 (A tile a, B tile bt: tiles of two blocks), or of
// block b alone when it is the last (tiles 3 and 5: one block)
#define DOT_PAIR(c, a, bt, w, C, xc, b, nb)                                                        \
    do {                                                                                           \
        const char *xp_ = (const char *)(xc) + (size_t)((b) / 2) * PAIR_BYTES;                     \
        _tile_zero(c);                                                                             \
        if ((b) + 1 < (nb)) {                                                                      \
            _tile_loadd(a, (w) + (size_t)(b)*PLM_QK, C);                                           \
            _tile_loadd(bt, xp_, 64);                                                              \
            _tile_dpbssd(c, a, bt);                                                                \
        } else {                                                                                   \
            _tile_loadd(3, (w) + (size_t)(b)*PLM_QK, C);                                           \
            _tile_loadd(5, xp_, 64);                                                               \
            _tile_dpbssd(c, 3, 5);                                                                 \
        }                                                                                          \
    } while (0)

// scale_pair: the float step of blocks b and b + 1 (or b alone, the last) for the 16 rows (p:
// their P, a row of 8 tokens of block b then 8 of block b + 1) into 8-token accumulators
PLM_INLINE PLM_TARGET_AMX void scale_pair(__m256 acc[16], const int32_t *p,
                                          const float *const dr[16], const char *xc, int b,
                                          int nb) {
    const __m512 dx = _mm512_load_ps(xc + (size_t)(b / 2) * PAIR_BYTES + 1024);
    const int two = b + 1 < nb;
    UNROLL
    for (int i = 0; i < 16; i++) {
        const float *d = dr[i] + b;
        const __m512 dw =
            two ? _mm512_mask_mov_ps(_mm512_set1_ps(d[0]), 0xFF00, _mm512_set1_ps(d[1]))
                : _mm512_set1_ps(d[0]);
        const __m512 m =
            _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_load_si512(p + 16 * i)), _mm512_mul_ps(dw, dx));
        acc[i] = _mm256_add_ps(acc[i], _mm512_castps512_ps256(m));
        if (two)
            acc[i] = _mm256_add_ps(
                acc[i], _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(m), 1)));
    }
}

// pairs_panel: out[0 .. T, r .. r + n) for T <= PLM_AMX_PAIRS_T, a pair of blocks a step; the nn
// rows at next (the next panel's) are prefetched a line of each row a step: every step of the
// server reads the weights from DRAM (without it 8 clients ran at 0.75x the group kernel's speed).
// Two C tiles by parity (A and B tiles 2, 4 and 6, 7), so the multiply of the next pair runs during
// this pair's float step, as in panel.
PLM_INLINE PLM_TARGET_AMX void pairs_panel(const matmul_job *j, int r, int n, const char *next,
                                           int nn) {
    const int C = j->w->cols, nb = C / PLM_QK;
    const int8_t *w = j->w->q + (size_t)r * C; // (n, C)
    const char *xc = (const char *)j->xc;
    const float *dr[16];
    row_scales(dr, j, r, n);
    _Alignas(64) int32_t p[2][256];
    __m256 acc[16];
    UNROLL
    for (int i = 0; i < 16; i++) acc[i] = _mm256_setzero_ps();
    DOT_PAIR(0, 2, 4, w, C, xc, 0, nb);
    for (int b = 0; b < nb; b += 4) {
        prefetch_next(next, nn, C, b);
        _tile_stored(0, p[0], 64);
        if (b + 2 < nb) DOT_PAIR(1, 6, 7, w, C, xc, b + 2, nb);
        scale_pair(acc, p[0], dr, xc, b, nb);
        if (b + 2 >= nb) break;
        prefetch_next(next, nn, C, b + 2);
        _tile_stored(1, p[1], 64);
        if (b + 4 < nb) DOT_PAIR(0, 2, 4, w, C, xc, b + 4, nb);
        scale_pair(acc, p[1], dr, xc, b + 2, nb);
    }
    __m512 a16[16];
    UNROLL
    for (int i = 0; i < 16; i++) a16[i] = _mm512_zextps256_ps512(acc[i]);
    store(j, a16, 0, j->T, r, n);
}

// AMX_BLOCK_BYTES: weight bytes of the rows that every group of tokens passes before the next rows
// (in L2); their outputs, a group's tokens a few KB apart, stay in few pages.
#define AMX_BLOCK_BYTES (128 << 10)

// panel: out[16 g .. 16 g + 16, r .. r + n) for group g, blocks in order; when next is set, the
// rows at next (nn of them) are prefetched, a line of each row every other block.
PLM_INLINE PLM_TARGET_AMX void panel(const matmul_job *j, int g, int r, int n, const char *next,
                                     int nn) {
    const int C = j->w->cols, nb = C / PLM_QK, T = j->T;
    const int8_t *w = j->w->q + (size_t)r * C; // (n, C)
    const char *xg = (const char *)j->xc + (size_t)g * plm_lane_group_bytes(C, 16, 1);
    const float *dx = (const float *)(const void *)(xg + 16 * (size_t)C); // (nb, 16)
    const float *dr[16];
    row_scales(dr, j, r, n);
    _Alignas(64) int32_t p[2][256];
    __m512 acc[16];
    UNROLL
    for (int i = 0; i < 16; i++) acc[i] = _mm512_setzero_ps();
    DOT(0, 2, 4, w, C, xg, 0);
    for (int b = 0; b < nb; b += 2) {
        prefetch_next(next, nn, C, b);
        _tile_stored(0, p[0], 64);
        if (b + 1 < nb) DOT(1, 3, 5, w, C, xg, b + 1);
        scale(acc, p[0], dr, b, _mm512_load_ps(dx + 16 * b));
        if (b + 1 == nb) break;
        _tile_stored(1, p[1], 64);
        if (b + 2 < nb) DOT(0, 2, 4, w, C, xg, b + 2);
        scale(acc, p[1], dr, b + 1, _mm512_load_ps(dx + 16 * (b + 1)));
    }
    store(j, acc, 16 * g, T - 16 * g < 16 ? T - 16 * g : 16, r, n);
}

// plm_q8_rows_amx: out[0 .. T, r0 .. r1) (matmul_kernels.h's rows function): blocks of rows
// (AMX_BLOCK_BYTES), each run by every group of 16 tokens (up to PLM_AMX_PAIRS_T tokens: the one
// group of pairs) a panel of 16 rows at a time; the first group prefetches each panel's next one.
// The lm_head at T = 128 took 32 ms with panels outermost (every panel writing 128 token rows
// 196 KB apart), against 28 for avx512 (1 thread).
PLM_TARGET_AMX void plm_q8_rows_amx(const matmul_job *j, int r0, int r1) {
    const int C = j->w->cols, ng = (j->T + 15) / 16, pairs = j->T <= PLM_AMX_PAIRS_T;
    int rb = AMX_BLOCK_BYTES / C / 16 * 16;
    if (rb < 16) rb = 16;
    int configured = 0;
    for (int b0 = r0; b0 < r1; b0 += rb) {
        const int b1 = b0 + rb < r1 ? b0 + rb : r1;
        for (int g = 0; g < ng; g++)
            for (int r = b0; r < b1; r += 16) {
                const int n = b1 - r < 16 ? b1 - r : 16, nn = r1 - r - 16 < 16 ? r1 - r - 16 : 16;
                if (n != configured) config(n, pairs), configured = n;
                const char *next =
                    g == 0 && nn > 0 ? (const char *)(j->w->q + (size_t)(r + 16) * C) : NULL;
                if (pairs) pairs_panel(j, r, n, next, nn);
                else panel(j, g, r, n, next, nn);
            }
    }
    _tile_release();
}

#endif // __x86_64__
