// model.h: the in-memory model shared by session (inference), and later trainer, lora and export.
// Weights are in HF layout, (out_features, in_features) row-major, with HF semantics (GGUF's Q/K
// permutation is undone at load). Norm vectors are always f32; linear weights are f32 or Q8_0.
// Gemma 3's norms are held as GGUF holds them: 1 + w of HF's w (Gemma3RMSNorm multiplies by 1 + w),
// so every family runs the plain RMSNorm; the HF load adds the 1 and the HF save takes it off.
#ifndef PLM_MODEL_H
#define PLM_MODEL_H

#include "base.h"
#include "matmul.h"
#include "tokenizer.h"

#define PLM_MODEL_FILE_TYPES 32 // ggml type ids counted in plm_model.file_tensors (BF16 is 30)

typedef struct {
    float *input_layernorm; // (C)      model.layers.{l}.input_layernorm.weight
    plm_mat q_proj;         // (H*D, C) model.layers.{l}.self_attn.q_proj.weight
    plm_mat k_proj;         // (K*D, C) model.layers.{l}.self_attn.k_proj.weight
    plm_mat v_proj;         // (K*D, C) model.layers.{l}.self_attn.v_proj.weight
    plm_mat o_proj;         // (C, H*D) model.layers.{l}.self_attn.o_proj.weight
    float *q_bias;          // (H*D)    ...self_attn.q_proj.bias  (attention_bias; else NULL)
    float *k_bias;          // (K*D)    ...self_attn.k_proj.bias  (attention_bias; else NULL)
    float *v_bias;          // (K*D)    ...self_attn.v_proj.bias  (attention_bias; else NULL)
    float *q_norm;          // (D)      ...self_attn.q_norm.weight (qk_norm; else NULL)
    float *k_norm;          // (D)      ...self_attn.k_norm.weight (qk_norm; else NULL)
    float *post_attn_norm;  // (C)      Gemma 3: ...post_attention_layernorm.weight, on the
                            //          attention's output (GGUF post_attention_norm); else NULL
    float *post_attention_layernorm; // (C)      the MLP's input norm (GGUF ffn_norm):
                                     //          model.layers.{l}.post_attention_layernorm.weight,
                                     //          Gemma 3's ...pre_feedforward_layernorm.weight
    plm_mat gate_proj;               // (F, C)   model.layers.{l}.mlp.gate_proj.weight
    plm_mat up_proj;                 // (F, C)   model.layers.{l}.mlp.up_proj.weight
    plm_mat down_proj;               // (C, F)   model.layers.{l}.mlp.down_proj.weight
    float *post_ffw_norm; // (C)      Gemma 3: ...post_feedforward_layernorm.weight, on the MLP's
                          //          output (GGUF post_ffw_norm); else NULL
} plm_layer;

struct plm_model {
    plm_config config;        // the blueprint
    plm_dtype dtype;          // in-memory dtype of the plm_mat weights: F32 or Q8_0
    plm_tokenizer *tokenizer; // owned; NULL when the source had none
    plm_mat embed_tokens;     // (V, C)  model.embed_tokens.weight
    plm_layer *layers;        // (L)
    float *norm;              // (C)     model.norm.weight
    float *rope_freqs;        // (D/2)   the RoPE divisors (GGUF rope_freqs.weight; computed from
                              //         rope_scaling for HF) when config.rope_freqs, else NULL
    plm_mat lm_head;    // (V, C)  lm_head.weight; a copy of the embed_tokens descriptor when tied
    void *block;        // the one allocation the weight pointers above point into, except:
    size_t block_bytes; // its size
    uint8_t *file;      // the GGUF buffer the q of weights loaded in place point into
                        // (plm_model_load_gguf_inplace; owned, free()), or NULL
    size_t file_weight_bytes; // bytes of those q
    char *chat_template;      // owned; NULL when the source had none (kept for GGUF export)
    char *name;               // owned: GGUF general.name or config.json _name_or_path; NULL if none
    char *adapter;            // owned: the LoRA adapter merged into the weights (plm_model_merge,
                              // GGUF pocketlm.adapter); NULL if none
    int32_t pad_token_id;     // -1 when absent
    int32_t file_tensors[PLM_MODEL_FILE_TYPES]; // tensors in the source file per ggml type id
                                                // (safetensors: F32, F16, BF16's), for `info`
    int32_t from_gguf; // 1: loaded from a .gguf file, 0: from an HF directory
};

// ---- the LoRA targets (model.c, next to the weight table) ----

// The linear layers of a block that a LoRA adapter may adapt, in plm_layer's order.
typedef enum {
    PLM_LORA_Q_PROJ,
    PLM_LORA_K_PROJ,
    PLM_LORA_V_PROJ,
    PLM_LORA_O_PROJ,
    PLM_LORA_GATE_PROJ,
    PLM_LORA_UP_PROJ,
    PLM_LORA_DOWN_PROJ,
    PLM_LORA_N_TARGETS,
} plm_lora_target;

typedef struct {
    const char *name;   // "q_proj": the HF module name, an entry of PEFT's target_modules
    const char *parent; // "self_attn" or "mlp": the HF module holding it in a layer
    size_t field;       // offsetof its plm_mat in plm_layer (the shape is its weight table row's)
} plm_lora_target_desc;

extern const plm_lora_target_desc plm_lora_targets[PLM_LORA_N_TARGETS];

// plm_layer_target: the weight of target t in layer.
const plm_mat *plm_layer_target(const plm_layer *layer, plm_lora_target t);
// plm_layer_bias: the bias (out features) of target t in layer, or NULL when it has none.
const float *plm_layer_bias(const plm_layer *layer, plm_lora_target t);
// plm_lora_target_shape: (out, in) features of target t for config c: its weight's (rows, cols).
void plm_lora_target_shape(const plm_config *c, plm_lora_target t, int32_t *out, int32_t *in);
// plm_lora_target_parse: the targets (bit t for target t) that a module name of n bytes names: one
// of the seven ("q_proj" .. "down_proj"), or all of them for "all" or PEFT's "all-linear"; 0 for
// any other name. The one parser of target names (the CLI's list, adapter_config.json).
uint32_t plm_lora_target_parse(const char *name, size_t n);

// plm_arch_name: config.json's model_type of family a ("llama", "qwen2", "qwen3", "gemma3_text").
const char *plm_arch_name(plm_arch a);

// plm_layer_window: the positions a query of layer l sees (itself included) for config c: Gemma 3's
// sliding_window on its local layers, 0 (all of them) on every other layer.
int32_t plm_layer_window(const plm_config *c, int32_t l);
// plm_attention_scale: the factor of the attention scores: query_pre_attn_scalar^-0.5, or
// head_dim^-0.5 when it is 0.
float plm_attention_scale(const plm_config *c);
// plm_embed_scale: the factor of the embedding rows: Gemma 3's sqrt(hidden_size) in f32 (as
// Gemma3TextScaledWordEmbedding rounds it), 1 for the other families.
float plm_embed_scale(const plm_config *c);

// plm_model_alloc: a new f32 model of config cfg (checked), every weight zero, tokenizer NULL;
// the caller fills the weights. Free with plm_model_free.
plm_status plm_model_alloc(plm_model **out, const plm_config *cfg, plm_error *err);

// plm_model_decode_bytes: bytes of weights one decoded token reads: every linear weight of every
// layer and the lm_head (the embedding when tied), in their in-memory dtype (q and d for Q8_0);
// not the norms nor the embedding's one row. Decode streams them from memory: DRAM bandwidth
// divided by this is decode's ceiling (bandwidth.h).
size_t plm_model_decode_bytes(const plm_model *m);

// plm_model_save_json: only the JSON files of plm_model_save's HF directory (config.json,
// generation_config.json, tokenizer.json and tokenizer_config.json when m has a tokenizer) into dir
// (created if needed), atomically file by file; for writers of other weight formats (ONNX).
plm_status plm_model_save_json(const plm_model *m, const char *dir, plm_error *err);

#endif
