// onnx.h: export a plm_model as ONNX, in the Hugging Face / Optimum layout that transformers.js and
// onnxruntime (node, web) load as they are: a Llama decoder with a KV cache (input_ids,
// attention_mask, position_ids, past_key_values.{i}.key/.value -> logits, present.{i}.key/.value).
// The graph is built by onnx_graph.c and written by onnx.c with its own small protobuf encoder
// (onnx_pb.c); weights are initializers (raw_data).
#ifndef PLM_ONNX_H
#define PLM_ONNX_H

#include "model.h"

// int8 and int4 are weight-only (activations stay f32, so the result does not depend on a CPU's
// integer kernels): blocks of 32 weights along the input features, each with an f32 scale and
// offset, on the better of a symmetric and a min-max grid (exact for weights from a Q8_0, Q4_0 or
// Q4_1 GGUF), run by com.microsoft MatMulNBits; 8-bit codes as two 4-bit planes, since
// onnxruntime 1.21 (transformers.js 3.8) runs only 4-bit MatMulNBits. The embedding and the output
// head are 8-bit in both. See the top of onnx.c.
typedef enum {
    PLM_ONNX_QUANT_NONE = 0, // f32 weights                               onnx/model.onnx
    PLM_ONNX_QUANT_INT8 = 1, // 8-bit blocks of 32, MatMulNBits x 2       onnx/model_quantized.onnx
    PLM_ONNX_QUANT_INT4 = 2, // 4-bit blocks of 32, MatMulNBits           onnx/model_q4.onnx
    PLM_ONNX_QUANT_INT8_QDQ = 3, // int8 per-channel, DequantizeLinear -> MatMul (kept for
    // comparison)                         onnx/model_quantized_qdq.onnx
    PLM_ONNX_QUANT_N = 4,
} plm_onnx_quant;

// plm_onnx_quant_parse: "none" | "int8" | "int4" | "int8-qdq" to a mode; PLM_OK or PLM_ERR_ARG.
plm_status plm_onnx_quant_parse(const char *name, plm_onnx_quant *out);
// plm_onnx_file_name: "model.onnx", "model_quantized.onnx", "model_q4.onnx", ... (names
// transformers.js looks for with dtype fp32, q8, q4).
const char *plm_onnx_file_name(plm_onnx_quant q);

// plm_onnx_export: the directory dir: config.json, generation_config.json, tokenizer.json and
// tokenizer_config.json (when m has a tokenizer), and onnx/<file> for each of the n modes in qs.
// Everything is written into "<dir>.tmp" first; then that is renamed to dir, or, when dir exists
// and force is set, its files are moved into dir one by one (other files of dir are kept). On
// failure nothing of dir changes and "<dir>.tmp" is removed. An existing dir without force is
// PLM_ERR_ARG.
plm_status plm_onnx_export(const plm_model *m, const char *dir, const plm_onnx_quant *qs, int n,
                           int force, plm_error *err);

// plm_onnx_export_lora: plm_onnx_export of merged = plm_model_merge(base, l), except that int8 and
// int4 quantize base's weights and keep each adapted linear's low-rank update as an f32 branch,
// scale * (x A^T) B^T, instead of quantizing the merged weights: requantized to 4 bits, a merged
// update smaller than half a step is lost (the PAWS adapter's target perplexity went +50%), and
// base weights read from a GGUF keep their grid exactly. fp32, int8-qdq, the embedding, the
// output head and the JSON files are merged's. base and l NULL: plm_onnx_export of merged.
plm_status plm_onnx_export_lora(const plm_model *merged, const plm_model *base, const plm_lora *l,
                                const char *dir, const plm_onnx_quant *qs, int n, int force,
                                plm_error *err);

#endif
