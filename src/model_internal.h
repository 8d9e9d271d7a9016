// model_internal.h: the weight table's rows and their binding to one model, shared by the three
// files of plm_model (internal): model.c (the table, the LoRA targets, the config check, the one
// weight block), model_load.c (reading HF directories and GGUF files) and model_save.c (writing
// them). Other src/ files use model.h.
#ifndef PLM_MODEL_INTERNAL_H
#define PLM_MODEL_INTERNAL_H

#include "model.h"

typedef enum { DIM_V, DIM_C, DIM_F, DIM_Q, DIM_KV, DIM_D, DIM_HALF } wdim; // V C F H*D K*D D D/2

// When a row of the table is a tensor of the model: always, or only for some configs.
typedef enum {
    W_ALWAYS,
    W_UNTIED, // lm_head: absent when tie_word_embeddings
    W_BIAS,   // q/k/v biases: only with attention_bias
    W_QKNORM, // q_norm, k_norm: only with qk_norm
    W_ROPE,   // rope_freqs: only with rope_freqs (no HF tensor: computed from rope_scaling)
    W_GEMMA,  // Gemma 3's norms after attention and MLP, its MLP input norm's HF name
    W_OTHER,  // every family but Gemma 3: the MLP input norm's HF name
} wwhen;

typedef struct {
    const char *hf;   // HF name; %d is the layer; "" when HF has no such tensor
    const char *gguf; // llama.cpp name
    int per_layer;    // 1: offset is in plm_layer, 0: in plm_model
    size_t offset;    // of the plm_mat (linear) or float * (norm) field
    int linear;       // 1: plm_mat (rows, cols); 0: vector (cols) kept f32: a norm or a bias
    wdim rows, cols;  // shape in config dims (vectors: cols only)
    char rope;        // 'H' / 'K': rows permuted in GGUF for llama.cpp's RoPE over n_head H / K
                      // (Llama only: llama.cpp's convert permutes no other family's q/k)
    wwhen when;       // which configs have it
} weight_desc;

// The families, indexed by plm_arch: config.json's model_type, the class its "architectures"
// names, and GGUF's general.architecture (the prefix of its <arch>.* keys).
typedef struct {
    const char *model_type, *cls, *gguf;
} arch_desc;
#define N_ARCHS 4
extern const arch_desc plm_archs[N_ARCHS];

// One tensor of one model: a table row bound to a layer, with its shape and destination.
typedef struct {
    const weight_desc *d;
    int32_t layer;      // -1 for global tensors
    int64_t rows, cols; // (rows, cols); norms are one row of cols
    int32_t n_head;     // heads of the RoPE permutation (0: none)
    plm_mat *mat;       // linear weights
    plm_dtype dtype;    // linear weights: the dtype in memory (plm_model_layout); 0 is f32
    float **vec;        // vectors (norms, biases)
    char hf[96], gguf[64];
} wref;

// norm_row: whether table row d is an RMSNorm weight (Gemma 3's HF files hold it minus 1)
static inline int norm_row(const weight_desc *d) {
    return !d->linear && d->when != W_BIAS && d->when != W_ROPE;
}

// qk_hf_row: the HF row of GGUF row g of a permuted q/k weight with head dim D:
// GGUF row h*D + 2i + s holds HF row h*D + s*D/2 + i (convert_hf_to_gguf.py's permute()).
static inline int64_t qk_hf_row(int64_t g, int64_t D) {
    int64_t h = g / D, j = g % D;
    return h * D + (j % 2) * (D / 2) + j / 2;
}

// plm_config_check: the architecture is one pocketlm can run, with sizes that cannot overflow;
// path names the source in the message.
plm_status plm_config_check(const plm_config *c, const char *path, plm_error *err);
// plm_model_weight_list: every tensor of m in table order (layer-major within per-layer rows);
// lm_head is left out when tied. Returns a new array (free()) of *n refs, or NULL when out of
// memory.
wref *plm_model_weight_list(plm_model *m, int32_t *n);
// plm_model_layout: bytes of the block for all n refs, each linear one at its w[i].dtype (f32
// when its cols are not a multiple of PLM_QK); with block set, points each ref into it. Refs with
// inplace[i] set (inplace may be NULL) get only their scales d (q stays in the file).
size_t plm_model_layout(wref *w, int32_t n, const char *inplace, uint8_t *block);

#endif
