// safetensors.h: the safetensors format (Hugging Face): an 8-byte little-endian header length, a
// JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, then the data section.
// Reading works from a caller's buffer (wasm) or a mapped file; every field is validated, because
// the parser is fuzzed. Also: sharded models (model.safetensors.index.json), f16/bf16 <-> f32
// conversion shared with gguf.c, and an atomic writer. Spec: github.com/huggingface/safetensors.
#ifndef PLM_SAFETENSORS_H
#define PLM_SAFETENSORS_H

#include "base.h"

#define PLM_ST_MAX_DIMS 8

typedef struct {
    char *name;                     // owned, NUL-terminated
    const char *dtype_name;         // "F32", "BF16", "I64", ... (static string)
    int dtype;                      // a plm_dtype (F32, F16, BF16), or -1 for other dtypes
    size_t elem_size;               // bytes per element
    int32_t n_dims;                 // 0 .. PLM_ST_MAX_DIMS (0 = scalar)
    int64_t shape[PLM_ST_MAX_DIMS]; // outermost first, as in PyTorch
    size_t n_elems;                 // product of shape
    const uint8_t *data;            // (n_elems * elem_size) bytes inside the buffer, unaligned
} plm_st_tensor;

typedef struct {
    plm_st_tensor *tensors; // (n) in header order
    int32_t n;
    int has_metadata; // 1 when the header had "__metadata__"
    plm_file_map map; // the file, when opened with plm_safetensors_open
} plm_safetensors;

// plm_safetensors_parse: parse size bytes of buf (borrowed: must outlive *out). name is used in
// messages. Unknown dtype strings are PLM_ERR_UNSUPPORTED; any inconsistency is PLM_ERR_FORMAT.
plm_status plm_safetensors_parse(plm_safetensors *out, const uint8_t *buf, size_t size,
                                 const char *name, plm_error *err);
// plm_safetensors_open: map path and parse it; the map is released by plm_safetensors_free.
plm_status plm_safetensors_open(plm_safetensors *out, const char *path, plm_error *err);
void plm_safetensors_free(plm_safetensors *st); // accepts a zeroed struct
// plm_safetensors_find: the tensor called name, or NULL.
const plm_st_tensor *plm_safetensors_find(const plm_safetensors *st, const char *name);

// plm_st_tensor_to_f32: elements [first, first + n) of t as f32 into out (n). Only F32, F16 and
// BF16 tensors convert; others are PLM_ERR_UNSUPPORTED naming the tensor and its dtype.
plm_status plm_st_tensor_to_f32(const plm_st_tensor *t, size_t first, size_t n, float *out,
                                plm_error *err);

// ---- a model's weight files: model.safetensors, or shards listed in the index ----

typedef struct {
    plm_safetensors *files; // (n_files)
    int32_t n_files;
} plm_st_set;

// plm_st_set_open: dir/model.safetensors.index.json (its weight_map's files) when present, else
// dir/model.safetensors.
plm_status plm_st_set_open(plm_st_set *out, const char *dir, plm_error *err);
void plm_st_set_free(plm_st_set *s);
const plm_st_tensor *plm_st_set_find(const plm_st_set *s, const char *name);

// ---- element conversion, shared with gguf.c ----

// plm_convert_to_f32: n little-endian F32/F16/BF16 values at src (any alignment) -> out (n).
void plm_convert_to_f32(float *out, const uint8_t *src, size_t n, plm_dtype t);
// plm_convert_from_f32: n floats -> dst as F32/F16/BF16 (round to nearest even).
void plm_convert_from_f32(uint8_t *dst, const float *src, size_t n, plm_dtype t);

// ---- writing ----

// A tensor to write: its name, file dtype and shape; the values come from a plm_tensor_fill.
typedef struct {
    const char *name;               // borrowed
    plm_dtype dtype;                // file dtype
    int32_t n_dims;                 // 1 .. PLM_ST_MAX_DIMS
    int64_t shape[PLM_ST_MAX_DIMS]; // outermost first
} plm_st_info;

// plm_tensor_fill: write the f32 values of tensor i (product of its shape) into buf.
typedef plm_status (*plm_tensor_fill)(void *user, int32_t i, float *buf, plm_error *err);

// plm_safetensors_write: write n tensors (dtype F32, F16 or BF16) to path atomically, the header
// padded with spaces to a multiple of 8 bytes; with pt_metadata, "__metadata__": {"format": "pt"}.
plm_status plm_safetensors_write(const char *path, const plm_st_info *t, int32_t n, int pt_metadata,
                                 plm_tensor_fill fill, void *user, plm_error *err);

#endif
