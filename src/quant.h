// quant.h: rows of GGUF tensors into the in-memory layouts at load time (model_load.c calls these
// from its threads). The result is, bit for bit, what the plain route gives: plm_gguf_dequant_row
// to f32 and then, for Q8_0 in memory, plm_quantize_q8_0_isa on the same path; Q8_0 blocks are
// copied as they are (d to f32), as loading always did. Q4_0 and Q4_1 blocks go straight to Q8_0
// (and to f32) in vector registers on x86-64: no f32 row in memory.
#ifndef PLM_QUANT_H
#define PLM_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "cpu.h"

// plm_quant_row_q8_0: n elements (a multiple of 32) of ggml type type (F32, F16, BF16, Q8_0, Q4_0,
// Q4_1: check first) at src into q (n) and d (n / 32) on path isa. tmp is scratch of n floats.
void plm_quant_row_q8_0(plm_isa isa, uint32_t type, const uint8_t *src, size_t n, int8_t *q,
                        float *d, float *tmp);
// plm_quant_row_f32: n elements of ggml type type at src into out (n), as plm_gguf_dequant_row.
void plm_quant_row_f32(plm_isa isa, uint32_t type, const uint8_t *src, size_t n, float *out);

#endif
