// onnx_internal.h: what the three files of the ONNX export share (internal): the protobuf encoder
// of onnx_pb.c, ONNX's field numbers, the initializers and the graph that onnx_graph.c builds and
// onnx.c writes. Other src/ files use onnx.h.
#ifndef PLM_ONNX_INTERNAL_H
#define PLM_ONNX_INTERNAL_H

#include "lora.h"
#include "onnx.h"

// ---- protobuf (onnx_pb.c): a growable buffer of encoded fields ----

typedef struct {
    uint8_t *p;    // bytes
    size_t n, cap; // used, allocated
    int oom;       // an allocation failed: every later write is dropped
} pb;

enum { WIRE_VARINT = 0, WIRE_LEN = 2, WIRE_FIXED32 = 5 };

// Each appends one encoded field to b; after a failed allocation b->oom is set and every later
// write is dropped. plm_pb_raw: n bytes as they are; plm_pb_varint: a base-128 varint; plm_pb_key:
// a field key (field number and wire type).
void plm_pb_raw(pb *b, const void *d, size_t n);
void plm_pb_varint(pb *b, uint64_t v);
void plm_pb_key(pb *b, int field, int wire);
// plm_pb_int: an int32/int64 field (negative values take 10 bytes, two's complement, as protobuf
// says); plm_pb_str: a string field; plm_pb_float: a float (fixed32) field.
void plm_pb_int(pb *b, int field, int64_t v);
void plm_pb_str(pb *b, int field, const char *s);
void plm_pb_float(pb *b, int field, float f);
// plm_pb_msg: embed the submessage m as field of b, then empty m for reuse.
void plm_pb_msg(pb *b, int field, pb *m);
// plm_pb_varint_len: the bytes the varint of v takes.
size_t plm_pb_varint_len(uint64_t v);

// ONNX field numbers (onnx.proto) and enums.
enum {
    MODEL_IR_VERSION = 1,
    MODEL_PRODUCER_NAME = 2,
    MODEL_PRODUCER_VERSION = 3,
    MODEL_GRAPH = 7,
    MODEL_OPSET_IMPORT = 8
};
enum { OPSET_DOMAIN = 1, OPSET_VERSION = 2 };
enum { GRAPH_NODE = 1, GRAPH_NAME = 2, GRAPH_INITIALIZER = 5, GRAPH_INPUT = 11, GRAPH_OUTPUT = 12 };
enum {
    NODE_INPUT = 1,
    NODE_OUTPUT = 2,
    NODE_NAME = 3,
    NODE_OP_TYPE = 4,
    NODE_ATTRIBUTE = 5,
    NODE_DOMAIN = 7
};
enum { ATTR_NAME = 1, ATTR_F = 2, ATTR_I = 3, ATTR_INTS = 8, ATTR_TYPE = 20 };
enum { ATTR_TYPE_FLOAT = 1, ATTR_TYPE_INT = 2, ATTR_TYPE_INTS = 7 };
enum { TENSOR_DIMS = 1, TENSOR_DATA_TYPE = 2, TENSOR_NAME = 8, TENSOR_RAW_DATA = 9 };
enum {
    VI_NAME = 1,
    VI_TYPE = 2,
    TYPE_TENSOR = 1,
    TT_ELEM_TYPE = 1,
    TT_SHAPE = 2,
    SHAPE_DIM = 1,
    DIM_VALUE = 1,
    DIM_PARAM = 2
};
enum { DT_FLOAT = 1, DT_UINT8 = 2, DT_INT8 = 3, DT_INT32 = 6, DT_INT64 = 7, DT_BOOL = 9 };

#define ONNX_IR_VERSION 8  // onnx 1.10+; what Debian's python3-onnx 1.12 checks
#define ONNX_OPSET      17 // ReduceMean keeps its axes attribute up to here
#define QBLOCK          32 // MatMulNBits block_size: weights per scale and offset, along K

// ---- initializers: described at plm_onnx_build time, generated at write time ----

typedef enum {
    SRC_OWNED,    // bytes held in owned (small constants)
    SRC_VEC,      // a borrowed f32 vector (norm weights)
    SRC_F32,      // W (rows, cols) f32 as is
    SRC_F32_T,    // W^T (cols, rows) f32: MatMul's right operand
    SRC_I8,       // int8-qdq: W (rows, cols) int8, one scale per row
    SRC_I8_T,     // int8-qdq: W^T (cols, rows) int8, one scale per output channel (row of W)
    SRC_I8_SCALE, // int8-qdq: (rows) f32, the scales of SRC_I8 / SRC_I8_T
    SRC_CODES,    // (rows, cols/32, 16) uint8: 4-bit codes (or, bits 8, the low nibbles of the
                  // 8-bit codes), two a byte, element 2j in the low nibble of byte j (MatMulNBits)
    SRC_CODES_HI, // bits 8: the same layout holding the high nibbles of the 8-bit codes
    SRC_SCALE,    // (rows * cols/32) f32: the block scales s
    SRC_OFFSET,   // (cols/32, rows) f32: m + 136 s (bits 8) or m + 8 s (bits 4), blocks x rows
} tsrc;

typedef struct {
    char *name;
    int32_t dtype; // DT_*
    int n_dims;
    int64_t dims[4];
    size_t nbytes; // of the raw data
    tsrc src;
    int bits;           // SRC_CODES .. SRC_OFFSET: 8 or 4
    const plm_mat *mat; // SRC_F32 .. SRC_OFFSET
    const float *vec;   // SRC_VEC
    void *owned;        // SRC_OWNED
} tensor;

// ---- the graph under construction ----

typedef struct {
    const plm_model *m;    // the model exported (with an adapter: base with it merged)
    const plm_model *base; // with an adapter: the model before the merge, else m
    const plm_lora *lora;  // the adapter (int8 / int4: kept as f32 branches), or NULL
    plm_mat *lmats;        // (2 * layers * targets) its A and B as plm_mat, for mat_init
    int n_lmats;
    plm_onnx_quant q;
    pb nodes;      // GraphProto.node fields
    pb io;         // GraphProto.input / output fields
    pb tmp, tmp2;  // scratch for submessages
    tensor *inits; // (n_inits) initializers
    int n_inits, cap_inits;
    char **names; // every name made here (freed at the end)
    int n_names, cap_names;
    int counter;                // for unique value names
    const char *out;            // when set, the next node's output takes this name
    const char *bsum_in, *bsum; // the last blocksum and its input (q/k/v and gate/up share one)
    int oom;
} graph;

// ---- onnx_graph.c ----

// plm_onnx_build: the whole decoder graph of g->m in mode g->q (g->oom on failure).
void plm_onnx_build(graph *g);
// plm_onnx_graph_free: everything g holds (not g itself).
void plm_onnx_graph_free(graph *g);

#endif
