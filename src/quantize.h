// quantize.h: f32 rows into GGUF's quantized blocks (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K,
// Q6_K), bit for bit as ggml's reference quantizers (quantize_row_*_ref) write them: what
// llama.cpp's quantizer writes when it has no importance matrix. The GGUF writer (gguf_write.c)
// calls these; the reverse direction is gguf.c's plm_gguf_dequant_row. Which tensor gets which
// type (llama.cpp's mixes) is model_save.c's business.
#ifndef PLM_QUANTIZE_H
#define PLM_QUANTIZE_H

#include <stddef.h>
#include <stdint.h>

// plm_quantize_writable: 1 when plm_quantize_row writes ggml type type.
int plm_quantize_writable(uint32_t type);
// plm_quantize_row: n floats at x (n a multiple of the type's block: 32, or 256 for the K-quants)
// into plm_gguf_row_bytes(type, n) bytes of blocks at out. type must be writable (check first).
void plm_quantize_row(uint32_t type, const float *x, size_t n, uint8_t *out);

#endif
