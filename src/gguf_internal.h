// gguf_internal.h: what the GGUF reader (gguf.c) and writer (gguf_write.c) share (internal): the
// magic, the default alignment and the ggml type table. Other src/ files use gguf.h.
#ifndef PLM_GGUF_INTERNAL_H
#define PLM_GGUF_INTERNAL_H

#include "gguf.h"

#define GGUF_MAGIC             "GGUF"
#define GGUF_DEFAULT_ALIGNMENT 32

typedef struct {
    uint32_t id;      // ggml_type
    const char *name; // plm_ggml_type_name
    size_t block;     // elements per block
    size_t size;      // bytes per block
} ggml_type_info;

// plm_ggml_type_info: the table row of ggml type `type`, or NULL for a type the table lacks.
const ggml_type_info *plm_ggml_type_info(uint32_t type);

#endif
