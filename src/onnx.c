// onnx.c: plm_onnx_export: a minimal protobuf writer (the few ONNX messages we need) and the Llama
// decoder graph with a KV cache, as Optimum exports LlamaForCausalLM for transformers.js: inputs
// input_ids, attention_mask, position_ids, past_key_values.{i}.key/.value; outputs logits and
// present.{i}.key/.value. Weights are initializers (raw_data, little-endian). Standard ops of opset
// 17 (IR 8) only, except the int8 and int4 weights: com.microsoft MatMulNBits. What does not live
// here: reading ONNX (pocketlm never does), the math (session.c is the reference the exported graph
// is tested against). References: onnx/onnx.proto (field numbers), transformers' LlamaForCausalLM
// (the math), onnxruntime's contrib op docs (MatMulNBits: 4-bit codes, blocks along K).
//
// int8 and int4 are weight-only: activations stay f32, so no CPU's integer kernel is involved
// (int8 used to be MatMulInteger on dynamically quantized activations: onnxruntime's u8 x s8 kernel
// saturates on x86 without VNNI, logits NMSE 1.7 on AVX2, and even with VNNI the per-tensor
// activation scale cost NMSE 0.13). Each block of 32 weights of a row is x ~ s * u + m: codes u of
// 8 (int8) or 4 (int4) bits, an f32 scale s and offset m, the better (squared error) of a symmetric
// grid (ggml Q8_0 / Q4_0) and a min-max one (Q4_1): a model read from a Q8_0, Q4_0 or Q4_1 GGUF is
// represented exactly. onnxruntime 1.21 (what transformers.js 3.8 runs) only has 4-bit MatMulNBits,
// so an 8-bit code u = 16 hi + lo is two 4-bit planes:
//   W x = 16 * MatMulNBits(x, hi, s) + MatMulNBits(x, lo, s) + blocksum(x) @ (m + 136 s)
// (MatMulNBits subtracts its default zero point 8 from each 4-bit code: 16 * 8 + 8 = 136), and a
// 4-bit one is MatMulNBits(x, u, s) + blocksum(x) @ (m + 8 s), where blocksum(x) (..., K/32) sums
// x over each block. The embedding and the output head are 8-bit in both modes (stored once when
// tied; the embedding rows are decoded from the planes by Gather and elementwise ops). With a LoRA
// adapter (plm_onnx_export_lora), int8 and int4 quantize the base's weights and add the adapter's
// update as an f32 branch scale * (x A^T) B^T: 4-bit requantization of merged weights loses it.
// One file of ~1000 lines: the encoder exists only for this graph; each block is its own function.
#define _POSIX_C_SOURCE 200809L
#include "onnx.h"

#include "lora.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- protobuf: a growable buffer of encoded fields ----

typedef struct {
    uint8_t *p;    // bytes
    size_t n, cap; // used, allocated
    int oom;       // an allocation failed: every later write is dropped
} pb;

static void pb_raw(pb *b, const void *d, size_t n) {
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap * 2 + n + 256;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p, b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void pb_varint(pb *b, uint64_t v) {
    uint8_t t[10];
    int k = 0;
    do {
        t[k++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    pb_raw(b, t, (size_t)k);
}

enum { WIRE_VARINT = 0, WIRE_LEN = 2, WIRE_FIXED32 = 5 };

static void pb_key(pb *b, int field, int wire) {
    pb_varint(b, (uint64_t)field << 3 | (uint64_t)wire);
}

// pb_int: an int32/int64 field (negative values take 10 bytes, two's complement, as protobuf says)
static void pb_int(pb *b, int field, int64_t v) {
    pb_key(b, field, WIRE_VARINT);
    pb_varint(b, (uint64_t)v);
}

static void pb_bytes(pb *b, int field, const void *d, size_t n) {
    pb_key(b, field, WIRE_LEN);
    pb_varint(b, n);
    pb_raw(b, d, n);
}

static void pb_str(pb *b, int field, const char *s) {
    pb_bytes(b, field, s, strlen(s));
}

static void pb_float(pb *b, int field, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint8_t t[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
    pb_key(b, field, WIRE_FIXED32);
    pb_raw(b, t, 4);
}

// pb_msg: embed the submessage m as field of b, then empty m for reuse.
static void pb_msg(pb *b, int field, pb *m) {
    if (m->oom) b->oom = 1;
    pb_bytes(b, field, m->p, m->n);
    m->n = 0;
}

static size_t varint_len(uint64_t v) {
    size_t k = 1;
    while (v > 0x7f) v >>= 7, k++;
    return k;
}

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

// ---- initializers: described at build time, generated at write time ----

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

static const char *keep_name(graph *g, char *s) {
    if (!s || (g->n_names == g->cap_names &&
               !(g->names = realloc(g->names, (size_t)(g->cap_names = g->cap_names * 2 + 64) *
                                                  sizeof *g->names)))) {
        free(s);
        g->oom = 1;
        g->n_names = g->cap_names = 0;
        return "";
    }
    g->names[g->n_names++] = s;
    return s;
}

static const char *fmt_name(graph *g, const char *fmt, ...) PLM_PRINTF(2, 3);
static const char *fmt_name(graph *g, const char *fmt, ...) {
    char buf[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return keep_name(g, strdup(buf));
}

// add_init: a new initializer (name copied); returns its name, or "" when out of memory.
static const char *add_init(graph *g, const char *name, int32_t dtype, int n_dims,
                            const int64_t *dims, size_t elem, tsrc src) {
    if (g->n_inits == g->cap_inits) {
        tensor *t = realloc(g->inits, (size_t)(g->cap_inits * 2 + 64) * sizeof *t);
        if (!t) {
            g->oom = 1;
            return "";
        }
        g->inits = t, g->cap_inits = g->cap_inits * 2 + 64;
    }
    tensor *t = &g->inits[g->n_inits];
    *t = (tensor){.name = strdup(name), .dtype = dtype, .n_dims = n_dims, .src = src};
    if (!t->name) {
        g->oom = 1;
        return "";
    }
    size_t n = 1;
    for (int i = 0; i < n_dims; i++) n *= (size_t)(t->dims[i] = dims[i]);
    t->nbytes = n * elem;
    g->n_inits++;
    return t->name;
}

static const tensor *find_init(const graph *g, const char *name) {
    for (int i = 0; i < g->n_inits; i++)
        if (!strcmp(g->inits[i].name, name)) return &g->inits[i];
    return NULL;
}

// const_tensor: a small constant initializer holding a copy of data, made once per name.
static const char *const_tensor(graph *g, const char *name, int32_t dtype, int n_dims,
                                const int64_t *dims, const void *data, size_t elem) {
    if (find_init(g, name)) return find_init(g, name)->name;
    const char *r = add_init(g, name, dtype, n_dims, dims, elem, SRC_OWNED);
    if (!*r) return r;
    tensor *t = &g->inits[g->n_inits - 1];
    if (!(t->owned = malloc(t->nbytes ? t->nbytes : 1))) {
        g->oom = 1;
        return "";
    }
    memcpy(t->owned, data, t->nbytes);
    return r;
}

// c_i64: a 1-D int64 constant; c_f32: an f32 scalar; c_idx: an int64 scalar (Gather index).
static const char *c_i64(graph *g, const char *name, const int64_t *v, int n) {
    int64_t dims[1] = {n};
    return const_tensor(g, name, DT_INT64, 1, dims, v, 8);
}
static const char *c_f32(graph *g, const char *name, float v) {
    return const_tensor(g, name, DT_FLOAT, 0, NULL, &v, 4);
}
static const char *c_idx(graph *g, const char *name, int64_t v) {
    return const_tensor(g, name, DT_INT64, 0, NULL, &v, 8);
}

// mat_init: an initializer generated from weight w at write time, shaped for src (bits: 8 or 4 for
// the block sources, else unused); made once per name (a tied embedding serves two uses).
static const char *mat_init(graph *g, const char *name, const plm_mat *w, tsrc src, int bits) {
    int64_t R = w->rows, K = w->cols, nb = K / QBLOCK, d[3];
    int n = 2;
    int32_t dt = DT_FLOAT;
    size_t elem = 4;
    if (find_init(g, name)) return find_init(g, name)->name;
    switch (src) {
    case SRC_F32: d[0] = R, d[1] = K; break;
    case SRC_F32_T: d[0] = K, d[1] = R; break;
    case SRC_I8: d[0] = R, d[1] = K, dt = DT_INT8, elem = 1; break;
    case SRC_I8_T: d[0] = K, d[1] = R, dt = DT_INT8, elem = 1; break;
    case SRC_I8_SCALE: d[0] = R, n = 1; break;
    case SRC_CODES:
    case SRC_CODES_HI:
        d[0] = R, d[1] = nb, d[2] = QBLOCK / 2, n = 3, dt = DT_UINT8, elem = 1;
        break;
    case SRC_SCALE: d[0] = R * nb, n = 1; break;
    case SRC_OFFSET: d[0] = nb, d[1] = R; break;
    default: g->oom = 1; return "";
    }
    const char *r = add_init(g, name, dt, n, d, elem, src);
    if (*r) g->inits[g->n_inits - 1].mat = w, g->inits[g->n_inits - 1].bits = bits;
    return r;
}

static const char *vec_init(graph *g, const char *name, const float *v, int64_t n) {
    const char *r = add_init(g, name, DT_FLOAT, 1, &n, 4, SRC_VEC);
    if (*r) g->inits[g->n_inits - 1].vec = v;
    return r;
}

// ---- nodes ----

typedef struct {
    const char *name;
    int type;            // ATTR_TYPE_*
    int64_t i;           // INT
    float f;             // FLOAT
    const int64_t *ints; // INTS (n)
    int n;
} attr;

#define A_INT(nm, v)   ((attr){.name = (nm), .type = ATTR_TYPE_INT, .i = (v)})
#define A_FLOAT(nm, v) ((attr){.name = (nm), .type = ATTR_TYPE_FLOAT, .f = (v)})
#define A_INTS(nm, arr)                                                                            \
    ((attr){.name = (nm),                                                                          \
            .type = ATTR_TYPE_INTS,                                                                \
            .ints = (arr),                                                                         \
            .n = (int)(sizeof(arr) / sizeof((arr)[0]))})

// emit: append node type(in[0..n_in)) with attributes at[0..n_at) in domain ("" = ai.onnx) and
// n_out outputs; returns the first output's name (g->out when set, else a fresh one).
static const char *emit(graph *g, const char *domain, const char *type, const char *const *in,
                        int n_in, const attr *at, int n_at, int n_out, const char **outs) {
    pb *n = &g->tmp, *a = &g->tmp2;
    const char *first = "";
    for (int i = 0; i < n_in; i++) pb_str(n, NODE_INPUT, in[i]);
    for (int o = 0; o < n_out; o++) {
        const char *name = g->out && o == 0 ? g->out : fmt_name(g, "/%s_%d", type, g->counter++);
        if (outs) outs[o] = name;
        if (o == 0) first = name;
        pb_str(n, NODE_OUTPUT, name);
    }
    g->out = NULL;
    pb_str(n, NODE_NAME, fmt_name(g, "/%s_node_%d", type, g->counter++)); // unique: onnxruntime's
    pb_str(n, NODE_OP_TYPE, type); // fusions derive new node names from these

    for (int i = 0; i < n_at; i++) {
        pb_str(a, ATTR_NAME, at[i].name);
        pb_int(a, ATTR_TYPE, at[i].type);
        if (at[i].type == ATTR_TYPE_INT) pb_int(a, ATTR_I, at[i].i);
        if (at[i].type == ATTR_TYPE_FLOAT) pb_float(a, ATTR_F, at[i].f);
        for (int k = 0; at[i].type == ATTR_TYPE_INTS && k < at[i].n; k++)
            pb_int(a, ATTR_INTS, at[i].ints[k]);
        pb_msg(n, NODE_ATTRIBUTE, a);
    }
    if (*domain) pb_str(n, NODE_DOMAIN, domain);
    pb_msg(&g->nodes, GRAPH_NODE, n);
    return first;
}

#define NARG(...) (int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *))
// OP(g, "Add", a, b): a node with one output and no attributes.
#define OP(g, type, ...)                                                                           \
    emit(g, "", type, (const char *[]){__VA_ARGS__}, NARG(__VA_ARGS__), NULL, 0, 1, NULL)
// OPA(g, "Softmax", attrs, a): with an array of attributes.
#define OPA(g, type, at, ...)                                                                      \
    emit(g, "", type, (const char *[]){__VA_ARGS__}, NARG(__VA_ARGS__), at,                        \
         (int)(sizeof(at) / sizeof((at)[0])), 1, NULL)

// ---- graph blocks ----

// Names of the values computed once and used by every layer.
typedef struct {
    const char *cos, *sin; // (B, 1, S, D) RoPE tables at position_ids
    const char *mask;      // (B, 1, S, T) additive attention mask: 0 or the lowest float
    const char *shape_bs;  // (2) int64: [B, S]
} shared;

// blocksum: x (B, S, K) -> (B, S, K/32), the sum of each block of 32 (reused for the next linear
// of the same input: q/k/v, gate/up).
static const char *blocksum(graph *g, const char *x, int64_t K) {
    if (g->bsum_in && !strcmp(g->bsum_in, x)) return g->bsum;
    int64_t shape[4] = {0, 0, K / QBLOCK, QBLOCK};
    attr keep[] = {A_INT("keepdims", 0)};
    const char *blocks =
        OP(g, "Reshape", x,
           c_i64(g, fmt_name(g, "const_shape_blocks_%d", (int)(K / QBLOCK)), shape, 4));
    g->bsum = OPA(g, "ReduceSum", keep, blocks, c_i64(g, "const_axis_last", (int64_t[]){-1}, 1));
    g->bsum_in = x;
    return g->bsum;
}

// linear_blocks: x (B, S, K) @ W^T -> (B, S, N), W (N, K) in blocks of 32 of `bits` bits (8 or 4),
// as the top of the file says: MatMulNBits on the 4-bit code planes, plus blocksum(x) @ offsets.
// When g->out is set, the last node takes that name.
static const char *linear_blocks(graph *g, const char *x, const plm_mat *w, const char *wname,
                                 int bits) {
    char nm[192];
    const char *out = g->out;
    g->out = NULL;
    attr at[] = {A_INT("K", w->cols), A_INT("N", w->rows), A_INT("bits", 4),
                 A_INT("block_size", QBLOCK)};
    snprintf(nm, sizeof nm, "%s_scale", wname);
    const char *s = mat_init(g, nm, w, SRC_SCALE, bits);
    snprintf(nm, sizeof nm, bits == 8 ? "%s_lo" : "%s_q4", wname);
    const char *in[] = {x, mat_init(g, nm, w, SRC_CODES, bits), s};
    const char *y = emit(g, "com.microsoft", "MatMulNBits", in, 3, at, 4, 1, NULL); // (B, S, N)
    if (bits == 8) {
        snprintf(nm, sizeof nm, "%s_hi", wname);
        in[1] = mat_init(g, nm, w, SRC_CODES_HI, bits);
        const char *hi = emit(g, "com.microsoft", "MatMulNBits", in, 3, at, 4, 1, NULL);
        y = OP(g, "Add", OP(g, "Mul", hi, c_f32(g, "const_sixteen", 16.0f)), y);
    }
    snprintf(nm, sizeof nm, "%s_offset", wname);
    const char *yo = OP(g, "MatMul", blocksum(g, x, w->cols), mat_init(g, nm, w, SRC_OFFSET, bits));
    g->out = out;
    return OP(g, "Add", y, yo);
}

// linear_w: x (B, S, in) @ W^T -> (B, S, out), W (out, in) in HF layout, in the export's form.
static const char *linear_w(graph *g, const char *x, const plm_mat *w, const char *wname) {
    char nm[192];
    if (g->q == PLM_ONNX_QUANT_NONE) return OP(g, "MatMul", x, mat_init(g, wname, w, SRC_F32_T, 0));
    if (g->q == PLM_ONNX_QUANT_INT8 || g->q == PLM_ONNX_QUANT_INT4)
        return linear_blocks(g, x, w, wname, g->q == PLM_ONNX_QUANT_INT8 ? 8 : 4);
    // int8-qdq: per-channel int8 weights, DequantizeLinear -> MatMul (onnxruntime dequantizes every
    // weight on every run: kept to compare against)
    snprintf(nm, sizeof nm, "%s_scale", wname);
    const char *s = mat_init(g, nm, w, SRC_I8_SCALE, 0);
    snprintf(nm, sizeof nm, "%s_quantized", wname);
    attr at[] = {A_INT("axis", 1)};
    return OP(g, "MatMul", x, OPA(g, "DequantizeLinear", at, mat_init(g, nm, w, SRC_I8_T, 0), s));
}

// linear: x (B, S, in) -> (B, S, out) through target t of layer l. With an adapter, int8 and int4
// quantize the base's weight and add the adapter's update as an f32 branch, scale * (x A^T) B^T:
// requantizing the merged weight would erase every update smaller than half a 4-bit step.
static const char *linear(graph *g, const char *x, int l, plm_lora_target t) {
    const char *wname = fmt_name(g, "model.layers.%d.%s.%s.weight", l, plm_lora_targets[t].parent,
                                 plm_lora_targets[t].name);
    const plm_lora_pair *p = g->lora ? &g->lora->pairs[l * PLM_LORA_N_TARGETS + t] : NULL;
    if (!p || g->q == PLM_ONNX_QUANT_NONE || g->q == PLM_ONNX_QUANT_INT8_QDQ)
        return linear_w(g, x, plm_layer_target(&g->m->layers[l], t), wname);
    const plm_mat *w = plm_layer_target(&g->base->layers[l], t);
    const char *y = linear_w(g, x, w, wname);
    if (!p->A) return y;
    plm_mat *a = &g->lmats[g->n_lmats++], *b = &g->lmats[g->n_lmats++];
    *a = plm_lora_mat_a(g->lora, l, t), *b = plm_lora_mat_b(g->lora, l, t);
    const char *xa =
        OP(g, "MatMul", x,
           mat_init(g, fmt_name(g, "%s_lora_A_T", wname), a, SRC_F32_T, 0)); // (B, S, R)
    const char *xab =
        OP(g, "MatMul", xa,
           mat_init(g, fmt_name(g, "%s_lora_B_T", wname), b, SRC_F32_T, 0)); // (B, S, out)
    float scale = g->lora->alpha / (float)g->lora->rank;
    return OP(g, "Add", y, OP(g, "Mul", xab, c_f32(g, "lora_scale", scale)));
}

// rmsnorm: LlamaRMSNorm: x / sqrt(mean(x^2) + eps) * w over the last axis; x (B, S, C).
static const char *rmsnorm(graph *g, const char *x, const float *w, const char *wname) {
    static const int64_t last[] = {-1};
    attr at[] = {A_INTS("axes", last), A_INT("keepdims", 1)};
    const char *ms = OPA(g, "ReduceMean", at, OP(g, "Pow", x, c_f32(g, "const_two", 2.0f)));
    const char *r =
        OP(g, "Sqrt", OP(g, "Add", ms, c_f32(g, "rms_norm_eps", g->m->config.rms_norm_eps)));
    return OP(g, "Mul", OP(g, "Div", x, r), vec_init(g, wname, w, g->m->config.hidden_size));
}

// rope: HF rotate_half convention, pairs (i, i + D/2): x*cos + cat(-x2, x1)*sin; x (B, n, S, D).
static const char *rope(graph *g, const char *x, const shared *sh) {
    int64_t D = g->m->config.head_dim, h = D / 2, big = INT64_MAX;
    const char *axis = c_i64(g, "const_axis_last", (int64_t[]){-1}, 1);
    const char *x1 = OP(g, "Slice", x, c_i64(g, "const_zero", (int64_t[]){0}, 1),
                        c_i64(g, "const_half_d", &h, 1), axis);
    const char *x2 = OP(g, "Slice", x, c_i64(g, "const_half_d", &h, 1),
                        c_i64(g, "const_int_max", &big, 1), axis);
    attr cat[] = {A_INT("axis", -1)};
    const char *rot = OPA(g, "Concat", cat, OP(g, "Neg", x2), x1);
    return OP(g, "Add", OP(g, "Mul", x, sh->cos), OP(g, "Mul", rot, sh->sin));
}

// heads: x (B, S, n*D) -> (B, n, S, D)
static const char *heads(graph *g, const char *x, int64_t n) {
    int64_t D = g->m->config.head_dim, shape[4] = {0, 0, n, D};
    static const int64_t perm[] = {0, 2, 1, 3};
    attr at[] = {A_INTS("perm", perm)};
    return OPA(
        g, "Transpose", at,
        OP(g, "Reshape", x, c_i64(g, fmt_name(g, "const_shape_heads_%d", (int)n), shape, 4)));
}

// repeat_kv: (B, K, T, D) -> (B, H, T, D), each KV head repeated H/K times (HF repeat_kv).
static const char *repeat_kv(graph *g, const char *kv) {
    const plm_config *c = &g->m->config;
    int64_t G = c->num_attention_heads / c->num_key_value_heads;
    if (G == 1) return kv;
    int64_t ex[5] = {1, 1, G, 1, 1}, shape[4] = {0, c->num_attention_heads, -1, c->head_dim};
    const char *u = OP(g, "Unsqueeze", kv, c_i64(g, "const_axis_2", (int64_t[]){2}, 1));
    const char *e = OP(g, "Expand", u, c_i64(g, "const_expand_kv", ex, 5)); // (B, K, G, T, D)
    return OP(g, "Reshape", e, c_i64(g, "const_shape_rep_kv", shape, 4));
}

// attention: x + o_proj(softmax(q k^T / sqrt(D) + mask) v) of layer l; also present.{l}.key/value.
static const char *attention(graph *g, int l, const char *x, const shared *sh) {
    const plm_config *c = &g->m->config;
    const plm_layer *ly = &g->m->layers[l];
    const char *h = rmsnorm(g, x, ly->input_layernorm,
                            fmt_name(g, "model.layers.%d.input_layernorm.weight", l));
    const char *q = rope(g, heads(g, linear(g, h, l, PLM_LORA_Q_PROJ), c->num_attention_heads), sh);
    const char *k = rope(g, heads(g, linear(g, h, l, PLM_LORA_K_PROJ), c->num_key_value_heads), sh);
    const char *v = heads(g, linear(g, h, l, PLM_LORA_V_PROJ), c->num_key_value_heads);
    attr seq[] = {A_INT("axis", 2)};
    g->out = fmt_name(g, "present.%d.key", l);
    k = OPA(g, "Concat", seq, fmt_name(g, "past_key_values.%d.key", l), k); // (B, K, T, D)
    g->out = fmt_name(g, "present.%d.value", l);
    v = OPA(g, "Concat", seq, fmt_name(g, "past_key_values.%d.value", l), v); // (B, K, T, D)
    static const int64_t tr[] = {0, 1, 3, 2}, back[] = {0, 2, 1, 3};
    attr kt[] = {A_INTS("perm", tr)}, bt[] = {A_INTS("perm", back)}, last[] = {A_INT("axis", -1)};
    const char *sc = OP(g, "MatMul", q, OPA(g, "Transpose", kt, repeat_kv(g, k))); // (B, H, S, T)
    sc = OP(g, "Add",
            OP(g, "Mul", sc, c_f32(g, "const_attn_scale", 1.0f / sqrtf((float)c->head_dim))),
            sh->mask);
    const char *o = OP(g, "MatMul", OPA(g, "Softmax", last, sc), repeat_kv(g, v)); // (B, H, S, D)
    int64_t shape[3] = {0, 0, (int64_t)c->num_attention_heads * c->head_dim};
    o = OP(g, "Reshape", OPA(g, "Transpose", bt, o), c_i64(g, "const_shape_merge_heads", shape, 3));
    return OP(g, "Add", x, linear(g, o, l, PLM_LORA_O_PROJ));
}

// mlp: x + down(silu(gate(h)) * up(h)), h = post_attention_layernorm(x) (LlamaMLP).
static const char *mlp(graph *g, int l, const char *x) {
    const plm_layer *ly = &g->m->layers[l];
    const char *h = rmsnorm(g, x, ly->post_attention_layernorm,
                            fmt_name(g, "model.layers.%d.post_attention_layernorm.weight", l));
    const char *gt = linear(g, h, l, PLM_LORA_GATE_PROJ), *up = linear(g, h, l, PLM_LORA_UP_PROJ);
    const char *a = OP(g, "Mul", OP(g, "Mul", gt, OP(g, "Sigmoid", gt)), up);
    return OP(g, "Add", x, linear(g, a, l, PLM_LORA_DOWN_PROJ));
}

// embed_planes: input_ids (B, S) -> (B, S, C), rows of the 8-bit embedding w decoded from the code
// planes of linear_blocks (the same initializers as the tied output head's):
// row = s * (16 hi + lo - 136) + offset, block by block; a byte holds elements 2j (low nibble) and
// 2j+1 (high nibble).
static const char *embed_planes(graph *g, const plm_mat *w, const char *wname) {
    int64_t C = w->cols, nb = C / QBLOCK, split[5] = {0, 0, nb, QBLOCK / 2, 1};
    int64_t blocks[4] = {0, 0, nb, QBLOCK}, rows[3] = {0, 0, C}, scales[2] = {w->rows, nb};
    static const int64_t perm[] = {1, 2, 0};
    attr to[] = {A_INT("to", DT_FLOAT)}, cat[] = {A_INT("axis", -1)}, ax1[] = {A_INT("axis", 1)},
         tr[] = {A_INTS("perm", perm)};
    char nm[192];
    const char *last = c_i64(g, "const_axis_last", (int64_t[]){-1}, 1);
    const char *sixteen = c_f32(g, "const_sixteen", 16.0f);
    const char *shape_nibbles = c_i64(g, "const_shape_nibbles", split, 5);
    const char *shape_blocks = c_i64(g, fmt_name(g, "const_shape_blocks_%d", (int)nb), blocks, 4);
    const char *plane[2];
    for (int p = 0; p < 2; p++) {
        snprintf(nm, sizeof nm, p ? "%s_lo" : "%s_hi", wname);
        const char *b = mat_init(g, nm, w, p ? SRC_CODES : SRC_CODES_HI, 8);
        b = OP(g, "Reshape", OPA(g, "Cast", to, OP(g, "Gather", b, "input_ids")), shape_nibbles);
        const char *hi = OP(g, "Floor", OP(g, "Div", b, sixteen)); // (B, S, nb, 16, 1)
        const char *lo = OP(g, "Sub", b, OP(g, "Mul", hi, sixteen));
        plane[p] = OP(g, "Reshape", OPA(g, "Concat", cat, lo, hi), shape_blocks); // (B, S, nb, 32)
    }
    const char *u = OP(g, "Sub", OP(g, "Add", OP(g, "Mul", plane[0], sixteen), plane[1]),
                       c_f32(g, "const_136", 136.0f));
    snprintf(nm, sizeof nm, "%s_scale", wname);
    const char *s = OP(g, "Reshape", mat_init(g, nm, w, SRC_SCALE, 8),
                       c_i64(g, fmt_name(g, "const_shape_scales_%d", (int)nb), scales, 2));
    s = OP(g, "Unsqueeze", OP(g, "Gather", s, "input_ids"), last); // (B, S, nb, 1)
    snprintf(nm, sizeof nm, "%s_offset", wname);
    const char *o = mat_init(g, nm, w, SRC_OFFSET, 8);
    o = OPA(g, "Gather", ax1, o, "input_ids");                // (nb, B, S)
    o = OP(g, "Unsqueeze", OPA(g, "Transpose", tr, o), last); // (B, S, nb, 1)
    return OP(g, "Reshape", OP(g, "Add", OP(g, "Mul", u, s), o),
              c_i64(g, "const_shape_rows", rows, 3));
}

// embed: input_ids (B, S) -> (B, S, C) rows of model.embed_tokens.weight.
static const char *embed(graph *g) {
    const char *w = "model.embed_tokens.weight";
    if (g->q == PLM_ONNX_QUANT_NONE)
        return OP(g, "Gather", mat_init(g, w, &g->m->embed_tokens, SRC_F32, 0), "input_ids");
    if (g->q != PLM_ONNX_QUANT_INT8_QDQ) return embed_planes(g, &g->m->embed_tokens, w);
    attr to[] = {A_INT("to", DT_FLOAT)};
    const plm_mat *e = &g->m->embed_tokens;
    const char *q = mat_init(g, "model.embed_tokens.weight_quantized", e, SRC_I8, 0);
    const char *s = mat_init(g, "model.embed_tokens.weight_scale", e, SRC_I8_SCALE, 0);
    const char *rows = OPA(g, "Cast", to, OP(g, "Gather", q, "input_ids")); // (B, S, C)
    const char *sc = OP(g, "Unsqueeze", OP(g, "Gather", s, "input_ids"),
                        c_i64(g, "const_axis_last", (int64_t[]){-1}, 1)); // (B, S, 1)
    return OP(g, "Mul", rows, sc);
}

// lm_head: h (B, S, C) -> logits (B, S, V). int8 and int4: 8-bit blocks (the embedding's if tied).
// fp32 and int8-qdq tied: the embedding initializer itself, through Gemm transB=1 on (B*S, C).
static void lm_head(graph *g, const char *h, const shared *sh) {
    const plm_model *m = g->m;
    int tied = m->config.tie_word_embeddings;
    int64_t C = m->config.hidden_size, V = m->config.vocab_size;
    if (g->q == PLM_ONNX_QUANT_INT8 || g->q == PLM_ONNX_QUANT_INT4) {
        g->out = "logits";
        linear_blocks(g, h, tied ? &m->embed_tokens : &m->lm_head,
                      tied ? "model.embed_tokens.weight" : "lm_head.weight", 8);
        return;
    }
    if (!tied) {
        const char *x = linear_w(g, h, &m->lm_head, "lm_head.weight");
        g->out = "logits";
        OP(g, "Identity", x);
        return;
    }
    const char *w = "model.embed_tokens.weight";
    if (g->q == PLM_ONNX_QUANT_INT8_QDQ) {
        attr ax[] = {A_INT("axis", 0)};
        w = OPA(g, "DequantizeLinear", ax, fmt_name(g, "%s_quantized", w),
                fmt_name(g, "%s_scale", w));
    }
    int64_t flat[2] = {-1, C};
    attr tb[] = {A_INT("transB", 1)}, cat[] = {A_INT("axis", 0)};
    const char *h2 = OP(g, "Reshape", h, c_i64(g, "const_shape_flat", flat, 2));
    const char *lg = OPA(g, "Gemm", tb, h2, w); // (B*S, V)
    const char *shape = OPA(g, "Concat", cat, sh->shape_bs, c_i64(g, "const_vocab", &V, 1));
    g->out = "logits";
    OP(g, "Reshape", lg, shape);
}

// rope_tables: cos/sin (B, 1, S, D) of position_ids * inv_freq, inv_freq[i] = theta^(-2i/D)
// computed as ops.c's plm_rope_table does, angles duplicated over both halves (HF).
static void rope_tables(graph *g, shared *sh) {
    const plm_config *c = &g->m->config;
    int64_t h = c->head_dim / 2;
    float inv[512];
    for (int64_t i = 0; i < h; i++)
        inv[i] = 1.0f / powf(c->rope_theta, (float)(2 * i) / (float)c->head_dim);
    attr to[] = {A_INT("to", DT_FLOAT)}, cat[] = {A_INT("axis", -1)};
    const char *pos = OP(g, "Unsqueeze", OPA(g, "Cast", to, "position_ids"),
                         c_i64(g, "const_axis_last", (int64_t[]){-1}, 1)); // (B, S, 1)
    const char *f = OP(g, "Mul", pos, const_tensor(g, "inv_freq", DT_FLOAT, 1, &h, inv, 4));
    const char *emb = OPA(g, "Concat", cat, f, f); // (B, S, D)
    const char *ax1 = c_i64(g, "const_axis_1", (int64_t[]){1}, 1);
    sh->cos = OP(g, "Unsqueeze", OP(g, "Cos", emb), ax1);
    sh->sin = OP(g, "Unsqueeze", OP(g, "Sin", emb), ax1);
}

// attn_mask: (B, 1, S, T) additive mask: key t is visible to query s (cache index P + s) when
// t <= P + s and attention_mask[b, t] == 1; else the lowest float (as HF does; never -inf, so a
// fully masked row of a left-padded query gives a uniform softmax, not NaN).
static void attn_mask(graph *g, shared *sh) {
    attr to[] = {A_INT("to", DT_BOOL)};
    sh->shape_bs = OP(g, "Shape", "input_ids");
    const char *one = c_idx(g, "const_one", 1);
    const char *S = OP(g, "Gather", sh->shape_bs, one);
    const char *T = OP(g, "Gather", OP(g, "Shape", "attention_mask"), one);
    const char *key = OP(g, "Range", c_idx(g, "const_zero_scalar", 0), T, one); // (T)
    const char *qry = OP(g, "Range", OP(g, "Sub", T, S), T, one);               // (S)
    qry = OP(g, "Unsqueeze", qry, c_i64(g, "const_axis_1", (int64_t[]){1}, 1)); // (S, 1)
    const char *causal = OP(g, "LessOrEqual", key, qry);                        // (S, T)
    const char *pad = OP(g, "Unsqueeze", OPA(g, "Cast", to, "attention_mask"),
                         c_i64(g, "const_axes_1_2", (int64_t[]){1, 2}, 2)); // (B, 1, 1, T)
    sh->mask = OP(g, "Where", OP(g, "And", causal, pad), c_f32(g, "const_zero_f", 0.0f),
                  c_f32(g, "const_lowest", -3.4028234663852886e38f));
}

// io: the graph's inputs and outputs with Optimum's names and symbolic dims.
static void value_info(graph *g, int field, const char *name, int32_t elem, int n,
                       const char *const *params, const int64_t *values) {
    pb *v = &g->tmp, *t = &g->tmp2;
    pb shape = {0}, dim = {0};
    for (int i = 0; i < n; i++) {
        if (params[i]) pb_str(&dim, DIM_PARAM, params[i]);
        else pb_int(&dim, DIM_VALUE, values[i]);
        pb_msg(&shape, SHAPE_DIM, &dim);
    }
    pb_int(t, TT_ELEM_TYPE, elem);
    pb_msg(t, TT_SHAPE, &shape);
    pb tt = {0};
    pb_msg(&tt, TYPE_TENSOR, t);
    pb_str(v, VI_NAME, name);
    pb_msg(v, VI_TYPE, &tt);
    pb_msg(&g->io, field, v);
    if (shape.oom || dim.oom || tt.oom) g->oom = 1;
    free(shape.p), free(dim.p), free(tt.p);
}

static void declare_io(graph *g) {
    const plm_config *c = &g->m->config;
    const char *bs[] = {"batch_size", "sequence_length"},
               *bt[] = {"batch_size", "total_sequence_length"};
    const char *kv_in[] = {"batch_size", NULL, "past_sequence_length", NULL};
    const char *kv_out[] = {"batch_size", NULL, "total_sequence_length", NULL};
    const char *lg[] = {"batch_size", "sequence_length", NULL};
    int64_t kv[] = {0, c->num_key_value_heads, 0, c->head_dim}, v[] = {0, 0, c->vocab_size};
    value_info(g, GRAPH_INPUT, "input_ids", DT_INT64, 2, bs, NULL);
    value_info(g, GRAPH_INPUT, "attention_mask", DT_INT64, 2, bt, NULL);
    value_info(g, GRAPH_INPUT, "position_ids", DT_INT64, 2, bs, NULL);
    value_info(g, GRAPH_OUTPUT, "logits", DT_FLOAT, 3, lg, v);
    for (int l = 0; l < c->num_hidden_layers; l++)
        for (int k = 0; k < 2; k++) {
            value_info(g, GRAPH_INPUT, fmt_name(g, "past_key_values.%d.%s", l, k ? "value" : "key"),
                       DT_FLOAT, 4, kv_in, kv);
            value_info(g, GRAPH_OUTPUT, fmt_name(g, "present.%d.%s", l, k ? "value" : "key"),
                       DT_FLOAT, 4, kv_out, kv);
        }
}

// build: the whole decoder graph of m in mode q.
static void build(graph *g) {
    const plm_model *m = g->m;
    shared sh;
    declare_io(g);
    attn_mask(g, &sh);
    rope_tables(g, &sh);
    const char *x = embed(g);
    for (int l = 0; l < m->config.num_hidden_layers; l++) {
        x = attention(g, l, x, &sh);
        x = mlp(g, l, x);
    }
    lm_head(g, rmsnorm(g, x, m->norm, "model.norm.weight"), &sh);
}

static void graph_free(graph *g) {
    for (int i = 0; i < g->n_inits; i++) free(g->inits[i].name), free(g->inits[i].owned);
    for (int i = 0; i < g->n_names; i++) free(g->names[i]);
    free(g->inits), free(g->names), free(g->lmats);
    free(g->nodes.p), free(g->io.p), free(g->tmp.p), free(g->tmp2.p);
}

// ---- writing: quantization of one row, tensor data, the file ----

// quant_i8: q (n) = round(x / s), s = max|x| / 127 (symmetric, zero point 0); returns s.
static float quant_i8(int8_t *q, const float *x, int64_t n) {
    float amax = 0.0f;
    for (int64_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
    float s = amax > 0.0f ? amax / 127.0f : 1.0f;
    for (int64_t i = 0; i < n; i++) q[i] = (int8_t)lrintf(fminf(fmaxf(x[i] / s, -127.0f), 127.0f));
    return s;
}

// quant_grid: codes u of block x on the grid x ~ s * u + m, u in 0..top; returns the squared error.
static double quant_grid(uint8_t *u, const float *x, float s, float m, int top) {
    double e = 0.0;
    for (int i = 0; i < QBLOCK; i++) {
        long q = s != 0.0f ? lrintf((x[i] - m) / s) : 0;
        u[i] = (uint8_t)(q < 0 ? 0 : q > top ? top : q);
        double d = (double)(s * (float)u[i] + m) - (double)x[i];
        e += d * d;
    }
    return e;
}

// quant_block: one block of QBLOCK weights x as codes u of `bits` bits (8 or 4), scale *s, offset
// *m, x ~ s * u + m, on the better (smaller squared error; symmetric on a tie) of two grids:
// symmetric, as ggml's Q8_0 (s = max|x| / 127, u = round(x / s) + 128) and Q4_0 (s = x_max / -8 for
// the x of largest magnitude, u = round(x / s) + 8), so m = -128 s or -8 s; and min-max, as Q4_1
// (s = (max - min) / (2^bits - 1), m = min). Blocks already on either grid come out exact.
static void quant_block(uint8_t *u, float *s, float *m, const float *x, int bits) {
    int top = (1 << bits) - 1, mid = (top + 1) / 2;
    float lo = x[0], hi = x[0], big = 0.0f; // big: the value of largest magnitude
    for (int i = 0; i < QBLOCK; i++) {
        lo = fminf(lo, x[i]), hi = fmaxf(hi, x[i]);
        if (fabsf(x[i]) > fabsf(big)) big = x[i];
    }
    uint8_t v[QBLOCK];
    float ss = bits == 8 ? fabsf(big) / 127.0f : big / -8.0f, sm = -(float)mid * ss;
    float as = (hi - lo) / (float)top;
    double es = quant_grid(u, x, ss, sm, top), ea = quant_grid(v, x, as, lo, top);
    if (es <= ea) {
        *s = ss, *m = sm;
        return;
    }
    memcpy(u, v, sizeof v);
    *s = as, *m = lo;
}

// tensor_fill: the raw data of t into buf (t->nbytes); row is scratch of w->cols floats, qrow of
// w->cols bytes.
static void tensor_fill(const tensor *t, uint8_t *buf, float *row, int8_t *qrow) {
    const plm_mat *w = t->mat;
    if (t->src == SRC_OWNED || t->src == SRC_VEC) {
        memcpy(buf, t->src == SRC_OWNED ? t->owned : (const void *)t->vec, t->nbytes);
        return;
    }
    int64_t R = w->rows, K = w->cols, nb = K / QBLOCK;
    float *f = (float *)(void *)buf;
    // MatMulNBits' default zero point, 8 for each 4-bit plane: 136 for the two planes of 8 bits
    float zero = t->bits == 8 ? 136.0f : 8.0f;
    for (int64_t r = 0; r < R; r++) {
        plm_mat_row(row, w, (int32_t)r);
        switch (t->src) {
        case SRC_F32: memcpy(f + r * K, row, (size_t)K * 4); break;
        case SRC_F32_T:
            for (int64_t k = 0; k < K; k++) f[k * R + r] = row[k];
            break;
        case SRC_I8: quant_i8((int8_t *)buf + r * K, row, K); break;
        case SRC_I8_T:
            quant_i8(qrow, row, K);
            for (int64_t k = 0; k < K; k++) ((int8_t *)buf)[k * R + r] = qrow[k];
            break;
        case SRC_I8_SCALE: f[r] = quant_i8(qrow, row, K); break;
        case SRC_CODES:
        case SRC_CODES_HI:
        case SRC_SCALE:
        case SRC_OFFSET:
            for (int64_t b = 0; b < nb; b++) {
                uint8_t u[QBLOCK], *o = buf + (r * nb + b) * (QBLOCK / 2);
                float s, m;
                quant_block(u, &s, &m, row + b * QBLOCK, t->bits);
                if (t->src == SRC_SCALE) f[r * nb + b] = s;
                if (t->src == SRC_OFFSET) f[b * R + r] = m + zero * s;
                if (t->src == SRC_SCALE || t->src == SRC_OFFSET) continue;
                int shift = t->src == SRC_CODES_HI ? 4 : 0; // 8 bits: u = 16 hi + lo
                for (int i = 0; i < QBLOCK; i += 2)
                    o[i / 2] = (uint8_t)((u[i] >> shift & 15) | (u[i + 1] >> shift & 15) << 4);
            }
            break;
        default: break;
        }
    }
}

// tensor_head: GraphProto.initializer's key and length, then the TensorProto up to raw_data's
// length; the data follows. Returns the bytes the whole field takes.
static size_t tensor_head(pb *b, const tensor *t) {
    pb m = {0};
    for (int i = 0; i < t->n_dims; i++) pb_int(&m, TENSOR_DIMS, t->dims[i]);
    pb_int(&m, TENSOR_DATA_TYPE, t->dtype);
    pb_str(&m, TENSOR_NAME, t->name);
    pb_key(&m, TENSOR_RAW_DATA, WIRE_LEN);
    pb_varint(&m, t->nbytes);
    size_t body = m.n + t->nbytes;
    pb_key(b, GRAPH_INITIALIZER, WIRE_LEN);
    pb_varint(b, body);
    pb_raw(b, m.p, m.n);
    if (m.oom) b->oom = 1;
    free(m.p);
    return varint_len((uint64_t)GRAPH_INITIALIZER << 3) + varint_len(body) + body;
}

// model_head: ModelProto's fields before the graph, and the graph's key and length.
static void model_head(pb *b, const graph *g, size_t graph_len) {
    pb op = {0};
    pb_int(b, MODEL_IR_VERSION, ONNX_IR_VERSION);
    pb_str(b, MODEL_PRODUCER_NAME, "pocketlm");
    pb_str(b, MODEL_PRODUCER_VERSION, "0.1");
    pb_str(&op, OPSET_DOMAIN, "");
    pb_int(&op, OPSET_VERSION, ONNX_OPSET);
    pb_msg(b, MODEL_OPSET_IMPORT, &op);
    if (g->q == PLM_ONNX_QUANT_INT8 || g->q == PLM_ONNX_QUANT_INT4) {
        pb_str(&op, OPSET_DOMAIN, "com.microsoft");
        pb_int(&op, OPSET_VERSION, 1);
        pb_msg(b, MODEL_OPSET_IMPORT, &op);
    }
    if (op.oom) b->oom = 1;
    free(op.p);
    pb_key(b, MODEL_GRAPH, WIRE_LEN);
    pb_varint(b, graph_len);
}

static plm_status write_graph(graph *g, const char *path, plm_error *err) {
    pb head = {0}, th = {0};
    pb_str(&g->io, GRAPH_NAME, "main_graph");
    size_t len = g->nodes.n + g->io.n, maxb = 0, maxc = 1;
    for (int i = 0; i < g->n_inits; i++) {
        len += tensor_head(&th, &g->inits[i]);
        th.n = 0;
        if (g->inits[i].nbytes > maxb) maxb = g->inits[i].nbytes;
        if (g->inits[i].mat && (size_t)g->inits[i].mat->cols > maxc)
            maxc = (size_t)g->inits[i].mat->cols;
    }
    model_head(&head, g, len);
    uint8_t *buf = malloc(maxb ? maxb : 1);
    float *row = malloc(maxc * sizeof *row);
    int8_t *qrow = malloc(maxc);
    plm_writer *w = NULL;
    plm_status s = PLM_OK;
    if (!buf || !row || !qrow || head.oom || g->oom || g->nodes.oom || g->io.oom)
        s = plm_fail(err, PLM_ERR_NOMEM, "%s: out of memory building the ONNX graph", path);
    if (s == PLM_OK) s = plm_writer_open(&w, path, err);
    if (s == PLM_OK) s = plm_writer_write(w, head.p, head.n, err);
    if (s == PLM_OK) s = plm_writer_write(w, g->nodes.p, g->nodes.n, err);
    if (s == PLM_OK) s = plm_writer_write(w, g->io.p, g->io.n, err);
    for (int i = 0; i < g->n_inits && s == PLM_OK; i++) {
        tensor_head(&th, &g->inits[i]);
        tensor_fill(&g->inits[i], buf, row, qrow);
        s = th.oom ? plm_fail(err, PLM_ERR_NOMEM, "out of memory")
                   : plm_writer_write(w, th.p, th.n, err);
        if (s == PLM_OK) s = plm_writer_write(w, buf, g->inits[i].nbytes, err);
        th.n = 0;
    }
    if (s == PLM_OK) s = plm_writer_commit(w, err);
    else plm_writer_abort(w);
    free(head.p), free(th.p), free(buf), free(row), free(qrow);
    return s;
}

// ---- public ----

static const char *const quant_names[PLM_ONNX_QUANT_N] = {"none", "int8", "int4", "int8-qdq"};
static const char *const file_names[PLM_ONNX_QUANT_N] = {
    "model.onnx", "model_quantized.onnx", "model_q4.onnx", "model_quantized_qdq.onnx"};

plm_status plm_onnx_quant_parse(const char *name, plm_onnx_quant *out) {
    for (int i = 0; i < PLM_ONNX_QUANT_N; i++)
        if (!strcmp(name, quant_names[i])) {
            *out = (plm_onnx_quant)i;
            return PLM_OK;
        }
    return PLM_ERR_ARG;
}

const char *plm_onnx_file_name(plm_onnx_quant q) {
    return (unsigned)q < PLM_ONNX_QUANT_N ? file_names[q] : "?";
}

// check_model: shapes the graph builder assumes.
static plm_status check_model(const plm_model *m, plm_onnx_quant q, const char *path,
                              plm_error *err) {
    const plm_config *c = &m->config;
    if ((unsigned)q >= PLM_ONNX_QUANT_N)
        return plm_fail(err, PLM_ERR_ARG, "%s: unknown ONNX quantization %d", path, (int)q);
    if (c->head_dim % 2 || c->head_dim / 2 > 512 || c->num_attention_heads % c->num_key_value_heads)
        return plm_fail(err, PLM_ERR_UNSUPPORTED,
                        "%s: head_dim %d, heads %d / %d: ONNX export "
                        "needs an even head_dim <= 1024 and heads a multiple of KV heads",
                        path, c->head_dim, c->num_attention_heads, c->num_key_value_heads);
    if ((q == PLM_ONNX_QUANT_INT8 || q == PLM_ONNX_QUANT_INT4) &&
        (c->hidden_size % QBLOCK || c->intermediate_size % QBLOCK ||
         (c->num_attention_heads * c->head_dim) % QBLOCK))
        return plm_fail(err, PLM_ERR_UNSUPPORTED,
                        "%s: %s export quantizes blocks of %d along the "
                        "input features: hidden_size (%d), intermediate_size (%d) and "
                        "heads*head_dim (%d) must be multiples of %d",
                        path, quant_names[q], QBLOCK, c->hidden_size, c->intermediate_size,
                        c->num_attention_heads * c->head_dim, QBLOCK);
    return PLM_OK;
}

// write_file: one .onnx file of m in mode q; with an adapter l, m is base with l merged.
static plm_status write_file(const plm_model *m, const plm_model *base, const plm_lora *l,
                             const char *path, plm_onnx_quant q, plm_error *err) {
    graph g = {.m = m, .base = base ? base : m, .lora = l, .q = q};
    if (l && !(g.lmats = calloc((size_t)(2 * m->config.num_hidden_layers * PLM_LORA_N_TARGETS),
                                sizeof *g.lmats)))
        return plm_fail(err, PLM_ERR_NOMEM, "%s: out of memory", path);
    build(&g);
    plm_status s = write_graph(&g, path, err);
    graph_free(&g);
    return s;
}

// ---- the export directory ----

// remove_export: delete the files an export writes under dir, then dir/onnx and dir (only when
// they are then empty: nothing else is ever removed).
static void remove_export(const char *dir) {
    static const char *const json[] = {"config.json", "generation_config.json", "tokenizer.json",
                                       "tokenizer_config.json"};
    char p[4096];
    for (size_t i = 0; i < sizeof json / sizeof json[0]; i++)
        if (!plm_path_join(p, sizeof p, dir, json[i])) remove(p);
    for (int q = 0; q < PLM_ONNX_QUANT_N; q++)
        if (snprintf(p, sizeof p, "%s/onnx/%s", dir, file_names[q]) < (int)sizeof p) remove(p);
    if (snprintf(p, sizeof p, "%s/onnx", dir) < (int)sizeof p) remove(p);
    remove(dir);
}

// move_into: rename every file of the export src (as remove_export lists them) into dst.
static plm_status move_into(const char *src, const char *dst, plm_error *err) {
    static const char *const names[] = {"config.json",        "generation_config.json",
                                        "tokenizer.json",     "tokenizer_config.json",
                                        "onnx/model.onnx",    "onnx/model_quantized.onnx",
                                        "onnx/model_q4.onnx", "onnx/model_quantized_qdq.onnx"};
    char a[4096], b[4096];
    if (snprintf(b, sizeof b, "%s/onnx", dst) >= (int)sizeof b)
        return plm_fail(err, PLM_ERR_ARG, "%s: path too long", dst);
    plm_status s = plm_mkdir(b, err);
    for (size_t i = 0; i < sizeof names / sizeof names[0] && s == PLM_OK; i++) {
        if (snprintf(a, sizeof a, "%s/%s", src, names[i]) >= (int)sizeof a ||
            snprintf(b, sizeof b, "%s/%s", dst, names[i]) >= (int)sizeof b)
            return plm_fail(err, PLM_ERR_ARG, "%s: path too long", dst);
        if (plm_path_exists(a) && rename(a, b) != 0)
            s = plm_fail(err, PLM_ERR_IO, "%s: cannot move into %s", a, dst);
    }
    return s;
}

// export_dir: plm_onnx_export / plm_onnx_export_lora (base and l NULL without an adapter).
static plm_status export_dir(const plm_model *m, const plm_model *base, const plm_lora *l,
                             const char *dir, const plm_onnx_quant *qs, int n, int force,
                             plm_error *err) {
    char tmp[4096], p[4096 + 64];
    int exists = plm_path_exists(dir);
    if (exists && !force)
        return plm_fail(err, PLM_ERR_ARG, "%s exists (overwrite it with force)", dir);
    if (exists && !plm_path_is_dir(dir))
        return plm_fail(err, PLM_ERR_ARG, "%s exists and is not a directory", dir);
    for (int i = 0; i < n; i++) {
        plm_status s = check_model(m, qs[i], dir, err);
        if (s != PLM_OK) return s;
    }
    if (snprintf(tmp, sizeof tmp, "%s.tmp", dir) >= (int)sizeof tmp - 64)
        return plm_fail(err, PLM_ERR_ARG, "%s: path too long", dir);
    remove_export(tmp); // a stale staging directory of an interrupted export
    if (plm_path_exists(tmp))
        return plm_fail(err, PLM_ERR_IO, "%s: exists and holds other files; remove it", tmp);
    snprintf(p, sizeof p, "%s/onnx", tmp);
    plm_status s = plm_model_save_json(m, tmp, err);
    if (s == PLM_OK) s = plm_mkdir(p, err);
    for (int i = 0; i < n && s == PLM_OK; i++) {
        snprintf(p, sizeof p, "%s/onnx/%s", tmp, plm_onnx_file_name(qs[i]));
        s = write_file(m, base, l, p, qs[i], err);
    }
    if (s == PLM_OK && !exists && rename(tmp, dir) != 0)
        s = plm_fail(err, PLM_ERR_IO, "%s: cannot rename to %s", tmp, dir);
    if (s == PLM_OK && exists) s = move_into(tmp, dir, err);
    remove_export(tmp);
    return s;
}

plm_status plm_onnx_export(const plm_model *m, const char *dir, const plm_onnx_quant *qs, int n,
                           int force, plm_error *err) {
    if (!m || !dir || !qs || n < 1)
        return plm_fail(err, PLM_ERR_ARG, "plm_onnx_export: bad arguments");
    return export_dir(m, NULL, NULL, dir, qs, n, force, err);
}

plm_status plm_onnx_export_lora(const plm_model *merged, const plm_model *base, const plm_lora *l,
                                const char *dir, const plm_onnx_quant *qs, int n, int force,
                                plm_error *err) {
    if (!merged || !dir || !qs || n < 1 || (!base) != (!l))
        return plm_fail(err, PLM_ERR_ARG, "plm_onnx_export_lora: bad arguments");
    if (!l) return export_dir(merged, NULL, NULL, dir, qs, n, force, err);
    const plm_config *a = &merged->config, *b = &base->config;
    if (a->num_hidden_layers != b->num_hidden_layers || a->hidden_size != b->hidden_size ||
        a->intermediate_size != b->intermediate_size ||
        a->num_attention_heads != b->num_attention_heads ||
        a->num_key_value_heads != b->num_key_value_heads || a->head_dim != b->head_dim ||
        l->n_layers != b->num_hidden_layers || l->hidden_size != b->hidden_size ||
        a->vocab_size != l->vocab_size)
        return plm_fail(err, PLM_ERR_ARG,
                        "%s: the merged model is not the base with this adapter "
                        "merged (plm_model_merge)",
                        dir);
    return export_dir(merged, base, l, dir, qs, n, force, err);
}
