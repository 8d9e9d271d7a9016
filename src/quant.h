// quant.h: rows of GGUF tensors into the in-memory layouts at load time (model_load.c calls these
// from its threads). The result is, bit for bit, what the plain route gives: plm_gguf_dequant_row
// to f32 and then, for Q8_0 in memory, plm_quantize_q8_0_isa on the same path; Q8_0 blocks are
// copied as they are (d to f32), as loading always did. Q4_0, Q4_1, Q5_0 and Q5_1 blocks go
// straight to Q8_0 (and to f32) in vector registers on x86-64: no f32 row in memory.
#ifndef PLM_QUANT_H
#define PLM_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "cpu.h"
#include "pocketlm.h"

// plm_quant_row_q8_0: n elements (a multiple of 32 and of the type's block) of ggml type type (one
// that plm_gguf_type_readable accepts: check first) at src into q (n) and d (n / 32) on path isa.
// tmp is scratch of n floats.
void plm_quant_row_q8_0(plm_isa isa, uint32_t type, const uint8_t *src, size_t n, int8_t *q,
                        float *d, float *tmp);
// plm_quant_row_q4: n elements of ggml type type at src into one row of a Q4_0 or Q4_1 matrix
// (dtype; matmul.h's plm_mat): q4 (n / 2), d (n / 32) and, Q4_1, m (n / 32). Blocks of that very
// type are copied (scales to f32, exact); any other type goes to f32 (plm_quant_row_f32) and
// through llama.cpp's reference quantizer (quantize.h). tmp is scratch of 2 n floats.
void plm_quant_row_q4(plm_isa isa, uint32_t type, const uint8_t *src, size_t n, plm_dtype dtype,
                      uint8_t *q4, float *d, float *m, float *tmp);
// plm_quant_row_q6k: n elements (a multiple of 256) of ggml type type at src into one row of a Q6_K
// matrix (matmul.h's plm_mat): q6 (n / 256 * PLM_Q6K_QS bytes) and d (n / 256). Q6_K blocks are
// copied (d to f32, exact); any other type goes to f32 and through llama.cpp's reference Q6_K
// quantizer (quantize.h). tmp is scratch of 2 n floats.
void plm_quant_row_q6k(plm_isa isa, uint32_t type, const uint8_t *src, size_t n, uint8_t *q6,
                       float *d, float *tmp);
// plm_quant_row_f32: n elements of ggml type type at src into out (n), as plm_gguf_dequant_row.
void plm_quant_row_f32(plm_isa isa, uint32_t type, const uint8_t *src, size_t n, float *out);

#endif
