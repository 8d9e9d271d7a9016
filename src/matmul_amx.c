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
// So the bits are every other path's. The float step, 4 vector operations per row and block, is
// the cost (the tile multiply of block b + 1 runs meanwhile: two C, A and B tiles by parity).
// Tiles: 0, 1 C; 2, 3 A; 4, 5 B. A panel of fewer than 16 rows (the last) configures A and C with
// its rows; the float step still runs 16 lanes of rows, reading the last valid row's scales for
// the others, and stores only the valid ones.
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

// config: the tiles for panels of n weight rows (1..16)
PLM_TARGET_AMX static void config(int n) {
    tile_config c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int i = 0; i < 2; i++) c.rows[i] = (uint8_t)n, c.colsb[i] = 64;     // C
    for (int i = 2; i < 4; i++) c.rows[i] = (uint8_t)n, c.colsb[i] = PLM_QK; // A
    for (int i = 4; i < 6; i++) c.rows[i] = PLM_QK / 4, c.colsb[i] = 64;     // B
    _tile_loadconfig(&c);
}

// DOT: tile c = P of block b (A tile a from the rows at w, B tile bt from the group at xg)
#define DOT(c, a, bt, w, C, xg, b)                                                                 \
    do {                                                                                           \
        _tile_loadd(a, (w) + (size_t)(b)*PLM_QK, C);                                               \
        _tile_loadd(bt, (xg) + (size_t)(b)*512, 64);                                               \
        _tile_zero(c);                                                                             \
        _tile_dpbssd(c, a, bt);                                                                    \
    } while (0)

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
    for (int i = 0; i < 16; i++) dr[i] = j->w->d + (size_t)(r + (i < n ? i : n - 1)) * nb;
    _Alignas(64) int32_t p[2][256];
    __m512 acc[16];
    UNROLL
    for (int i = 0; i < 16; i++) acc[i] = _mm512_setzero_ps();
    DOT(0, 2, 4, w, C, xg, 0);
    for (int b = 0; b < nb; b += 2) {
        if (next)
            for (int i = 0; i < nn; i++)
                _mm_prefetch(next + (size_t)i * C + (size_t)b * PLM_QK, _MM_HINT_T0);
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
// (AMX_BLOCK_BYTES), each run by every group of 16 tokens a panel of 16 rows at a time; the first
// group prefetches each panel's next one. The lm_head at T = 128 took 32 ms with panels outermost
// (every panel writing 128 token rows 196 KB apart), against 28 for avx512 (1 thread).
PLM_TARGET_AMX void plm_q8_rows_amx(const matmul_job *j, int r0, int r1) {
    const int C = j->w->cols, ng = (j->T + 15) / 16;
    int rb = AMX_BLOCK_BYTES / C / 16 * 16;
    if (rb < 16) rb = 16;
    int configured = 0;
    for (int b0 = r0; b0 < r1; b0 += rb) {
        const int b1 = b0 + rb < r1 ? b0 + rb : r1;
        for (int g = 0; g < ng; g++)
            for (int r = b0; r < b1; r += 16) {
                const int n = b1 - r < 16 ? b1 - r : 16, nn = r1 - r - 16 < 16 ? r1 - r - 16 : 16;
                if (n != configured) config(n), configured = n;
                const char *next =
                    g == 0 && nn > 0 ? (const char *)(j->w->q + (size_t)(r + 16) * C) : NULL;
                panel(j, g, r, n, next, nn);
            }
    }
    _tile_release();
}

#endif // __x86_64__
