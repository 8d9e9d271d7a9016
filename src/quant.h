// quant.h: rows of GGUF tensors into the in-memory layouts at load time (model_load.c calls these
// from its threads). The result is, bit for bit, what the plain route gives: plm_gguf_dequant_row
// to f32 and then, for Q8_0 in memory, plm_quantize_q8_0_isa on the same path; Q8_0 blocks are
// copied as they are (d to f32), as loading always did; Q4_x/Q5_x blocks into the same formats in
// memory too, Q4_K/Q5_K super-blocks into their own (matmul.h) or repacked exactly as Q4_1/Q5_1
// blocks. Q4_0, Q4_1, Q5_0
// and Q5_1 blocks go straight to Q8_0 (and to f32) in vector registers on x86-64: no f32 row in
// memory.
#ifndef PLM_QUANT_H
#define PLM_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "cpu.h"
#include "matmul.h"
#include "pocketlm.h"

// plm_quant_row_q8_0: n elements (a multiple of 32 and of the type's block) of ggml type type (one
// that plm_gguf_type_readable accepts: check first) at src into q (n) and d (n / 32) on path isa.
// tmp is scratch of n floats.
void plm_quant_row_q8_0(plm_isa isa, uint32_t type, const uint8_t *src, size_t n, int8_t *q,
                        float *d, float *tmp);
// plm_quant_row_mat: w->cols elements of ggml type type at src into row r of the Q4_0, Q4_1, Q5_0,
// Q5_1, Q6_K, Q4_K or Q5_K matrix w (its q4, d and, as its dtype has them, m, qh and scm; Q6_K: q6
// and d). Blocks of that very type are copied (scales to f32, exact; Q4_K/Q5_K's nibbles in Q4_1's
// order, their 6-bit scales to bytes); Q4_K into Q4_1 and Q5_K into Q5_1 are repacked
// exactly (each sub-block of 32 is such a block: the same values bit for bit); any other type goes
// to f32 (plm_quant_row_f32) and through llama.cpp's reference quantizer (quantize.h). tmp is
// scratch of 2 w->cols floats.
void plm_quant_row_mat(plm_isa isa, uint32_t type, const uint8_t *src, const plm_mat *w, size_t r,
                       float *tmp);
// plm_quant_row_f32: n elements of ggml type type at src into out (n), as plm_gguf_dequant_row.
void plm_quant_row_f32(plm_isa isa, uint32_t type, const uint8_t *src, size_t n, float *out);

#endif
