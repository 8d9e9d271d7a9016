// gguf.h: the GGUF format (ggml/llama.cpp), versions 2 and 3: "GGUF", version, tensor count,
// metadata count, metadata key/values, tensor infos, padding to general.alignment, tensor data.
// Reading works from a caller's buffer (wasm) or a mapped file and validates every count, length and
// offset, because the parser is fuzzed. Dequantization of F32, F16, BF16, the legacy Q8_0, Q4_0,
// Q4_1, Q5_0, Q5_1 and the K-quants Q2_K to Q6_K, as ggml's dequantize_row_*; the v3
// writer, with ggml's reference quantizers (quantize.c) for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K,
// Q5_K and Q6_K.
// GGUF lists dims innermost first: an HF (rows, cols) weight has ne = {cols, rows}.
// Which tensor means what (and the Q/K permutation) is model.c's business, not this file's.
#ifndef PLM_GGUF_H
#define PLM_GGUF_H

#include <string.h>

#include "base.h"
#include "safetensors.h"
#include "tokenizer.h"

#define PLM_GGUF_MAX_DIMS 4

// metadata value types (gguf_type)
enum {
    PLM_GGUF_UINT8 = 0,
    PLM_GGUF_INT8 = 1,
    PLM_GGUF_UINT16 = 2,
    PLM_GGUF_INT16 = 3,
    PLM_GGUF_UINT32 = 4,
    PLM_GGUF_INT32 = 5,
    PLM_GGUF_FLOAT32 = 6,
    PLM_GGUF_BOOL = 7,
    PLM_GGUF_STRING = 8,
    PLM_GGUF_ARRAY = 9,
    PLM_GGUF_UINT64 = 10,
    PLM_GGUF_INT64 = 11,
    PLM_GGUF_FLOAT64 = 12,
};

// tensor types (ggml_type) that pocketlm reads or writes
enum {
    PLM_GGML_F32 = 0,
    PLM_GGML_F16 = 1,
    PLM_GGML_Q4_0 = 2,
    PLM_GGML_Q4_1 = 3,
    PLM_GGML_Q5_0 = 6,
    PLM_GGML_Q5_1 = 7,
    PLM_GGML_Q8_0 = 8,
    PLM_GGML_Q2_K = 10,
    PLM_GGML_Q3_K = 11,
    PLM_GGML_Q4_K = 12,
    PLM_GGML_Q5_K = 13,
    PLM_GGML_Q6_K = 14,
    PLM_GGML_BF16 = 30,
};

typedef struct {
    plm_str key;        // points into the buffer
    uint32_t type;      // PLM_GGUF_*
    uint32_t arr_type;  // element type when type is ARRAY
    uint64_t arr_n;     // element count when type is ARRAY
    const uint8_t *val; // the value's bytes (for an array: its first element)
} plm_gguf_kv;

typedef struct {
    plm_str name;                  // points into the buffer
    int32_t n_dims;                // 1 .. PLM_GGUF_MAX_DIMS
    int64_t ne[PLM_GGUF_MAX_DIMS]; // elements per dim, innermost first; unused dims are 1
    uint32_t type;                 // ggml_type
    size_t n_elems;                // product of ne
    size_t n_bytes;                // bytes of data
    const uint8_t *data;           // inside the buffer
} plm_gguf_tensor;

typedef struct {
    uint32_t version; // 2 or 3
    plm_gguf_kv *kv;  // (n_kv)
    int64_t n_kv;
    plm_gguf_tensor *tensors; // (n_tensors)
    int64_t n_tensors;
    size_t alignment;   // general.alignment, default 32
    size_t data_offset; // where tensor data starts in the buffer
    plm_file_map map;   // the file, when opened with plm_gguf_open
} plm_gguf;

// plm_gguf_parse: parse size bytes of buf (borrowed: must outlive *out). name is used in messages.
plm_status plm_gguf_parse(plm_gguf *out, const uint8_t *buf, size_t size, const char *name,
                          plm_error *err);
// plm_gguf_open: map path and parse it; plm_gguf_free releases the map.
plm_status plm_gguf_open(plm_gguf *out, const char *path, plm_error *err);
void plm_gguf_free(plm_gguf *g); // accepts a zeroed struct

// ---- metadata access ----

const plm_gguf_kv *plm_gguf_find(const plm_gguf *g, const char *key); // or NULL
// plm_gguf_get_int: any integer or bool value into *out; returns 0, or -1 (absent or not integer).
int plm_gguf_get_int(const plm_gguf *g, const char *key, int64_t *out);
// plm_gguf_get_float: a float or integer value; returns 0 or -1.
int plm_gguf_get_float(const plm_gguf *g, const char *key, double *out);
// plm_gguf_get_str: a string value (borrowed from the buffer); returns 0 or -1.
int plm_gguf_get_str(const plm_gguf *g, const char *key, plm_str *out);
// plm_gguf_get_strs: a string array as a new array of n plm_str pointing into the buffer (free
// *out with free()). Absent key: PLM_ERR_FORMAT naming it.
plm_status plm_gguf_get_strs(const plm_gguf *g, const char *key, plm_str **out, int64_t *n,
                             plm_error *err);
// plm_gguf_get_ints: an integer array as a new int32 array of n (free with free()).
plm_status plm_gguf_get_ints(const plm_gguf *g, const char *key, int32_t **out, int64_t *n,
                             plm_error *err);

// plm_gguf_get_floats: a float32 array as a new array of n (free with free()).
plm_status plm_gguf_get_floats(const plm_gguf *g, const char *key, float **out, int64_t *n,
                               plm_error *err);

// ---- tensors ----

const plm_gguf_tensor *plm_gguf_find_tensor(const plm_gguf *g, const char *name); // or NULL
// plm_ggml_type_name: "Q4_K", ...; "unknown" for a type this file does not know.
const char *plm_ggml_type_name(uint32_t type);
// plm_gguf_type_to_dtype: the plm_dtype of a tensor type we read (F32, F16, BF16, Q8_0, Q4_0,
// Q4_1), or -1.
int plm_gguf_type_to_dtype(uint32_t type);
// the tensor types pocketlm reads (plm_gguf_type_readable), as error messages list them
#define PLM_GGUF_READ_TYPES                                                                        \
    "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K"
// plm_gguf_type_readable: 1 when plm_gguf_dequant_row reads tensor type type.
int plm_gguf_type_readable(uint32_t type);
// plm_gguf_tensor_to_f32: rows [row0, row0 + n_rows) of t as f32 into out (n_rows * ne[0]), where a
// row is ne[0] elements. Types not in PLM_GGUF_READ_TYPES are PLM_ERR_UNSUPPORTED.
plm_status plm_gguf_tensor_to_f32(const plm_gguf_tensor *t, size_t row0, size_t n_rows, float *out,
                                  plm_error *err);
// plm_gguf_dequant_row: n elements (a multiple of the type's block) of type at src as f32 into out,
// as plm_gguf_tensor_to_f32 does; a type it does not read leaves out as it is (check it first).
void plm_gguf_dequant_row(uint32_t type, const uint8_t *src, size_t n, float *out);

// plm_gguf_k4_scale: sub-block j (0-7)'s 6-bit scale *sc and minimum *m from the 12 packed scale
// bytes s of a Q4_K / Q5_K block (ggml's get_scale_min_k4).
void plm_gguf_k4_scale(const uint8_t *s, int j, int *sc, int *m);

// ---- sizes ----

// plm_gguf_row_bytes: bytes of n elements of a ggml type (n a multiple of its block), 0 if unknown.
size_t plm_gguf_row_bytes(uint32_t type, size_t n);

// ---- llama.cpp's Q/K layout ----

// plm_gguf_permute_qk: HF -> GGUF row order of a q_proj/k_proj weight (rows = n_head * D, cols),
// as convert_hf_to_gguf.py's permute(): w.reshape(n_head, 2, D/2, cols).swapaxes(1, 2). With
// inverse = 1 it undoes that (GGUF -> HF). out and w must not overlap.
void plm_gguf_permute_qk(float *out, const float *w, int32_t n_head, int32_t rows, int32_t cols,
                         int inverse);

// ---- tokenizer ----

// plm_gguf_tokenizer: build the tokenizer from tokenizer.ggml.{model,tokens,token_type,merges,pre}.
plm_status plm_gguf_tokenizer(plm_tokenizer **out, const plm_gguf *g, const char *name,
                              plm_error *err);
// plm_gguf_load_tokenizer: the same from a .gguf file.
plm_status plm_gguf_load_tokenizer(plm_tokenizer **out, const char *path, plm_error *err);

// ---- writing (GGUF v3, alignment 32) ----

typedef struct plm_gguf_writer plm_gguf_writer;

plm_status plm_gguf_writer_create(plm_gguf_writer **out, plm_error *err);
void plm_gguf_writer_free(plm_gguf_writer *w); // NULL ok
// Metadata, written in the order added. Errors (out of memory) are reported by plm_gguf_write.
void plm_gguf_add_str(plm_gguf_writer *w, const char *key, const char *s, size_t n);
void plm_gguf_add_u32(plm_gguf_writer *w, const char *key, uint32_t v);
void plm_gguf_add_f32(plm_gguf_writer *w, const char *key, float v);
void plm_gguf_add_bool(plm_gguf_writer *w, const char *key, int v);
void plm_gguf_add_strs(plm_gguf_writer *w, const char *key, const plm_str *s, int64_t n);
void plm_gguf_add_i32s(plm_gguf_writer *w, const char *key, const int32_t *v, int64_t n);
void plm_gguf_add_f32s(plm_gguf_writer *w, const char *key, const float *v, int64_t n);
// plm_gguf_add_tensor: a tensor (ne innermost first) of type F32, F16, BF16 or one that
// plm_quantize_writable accepts (ne[0] a multiple of its block).
void plm_gguf_add_tensor(plm_gguf_writer *w, const char *name, int32_t n_dims, const int64_t *ne,
                         uint32_t type);
// plm_gguf_write: write everything to path atomically; fill(user, i, buf) gives tensor i as f32.
plm_status plm_gguf_write(plm_gguf_writer *w, const char *path, plm_tensor_fill fill, void *user,
                          plm_error *err);

// plm_gguf_path: whether path names a GGUF file (its name ends in ".gguf"), the rule by which a
// path is read or written as GGUF rather than as an HF directory or tokenizer.json
static inline int plm_gguf_path(const char *path) {
    size_t n = strlen(path);
    return n >= 5 && !strcmp(path + n - 5, ".gguf");
}

#endif
