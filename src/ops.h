// ops.h: every layer of the Llama forward pass as a plain function on float arrays (pointers and
// ints only, never model structs), in llm.c argument order: outputs, saved-for-backward buffers,
// inputs, weights, dims. The loop over layers lives in session.c; the matmul lives in matmul.h.
//
// Dimension letters, used as local names everywhere:
//   T tokens in this call   P positions already in the KV cache   S = P + T
//   C hidden_size   H heads   K KV heads   D head dim   F intermediate_size   V vocab   L layers
#ifndef PLM_OPS_H
#define PLM_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "matmul.h"

// out (T, C) = rows ids (T) of the embedding w (V, C).
void plm_embedding_forward(float *out, const int32_t *ids, const plm_mat *w, int T);

// RMSNorm (HF LlamaRMSNorm): out = inp * rstd * w, rstd = 1 / sqrt(mean(inp^2) + eps).
// out (T, C), rstd (T) saved for backward (may be NULL), inp (T, C), w (C). out may alias inp.
void plm_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int T, int C,
                         float eps);

// plm_rope_table: cos and sin (n_pos, D/2) for positions 0..n_pos-1, computed in f32 as HF does:
// inv_freq[i] = 1 / theta^(2i/D) (divided by divisors[i] when divisors (D/2) is not NULL),
// angle = pos * inv_freq[i].
void plm_rope_table(float *cos_t, float *sin_t, int n_pos, int D, float theta,
                    const float *divisors);

// plm_rope_divisors: divisors (D/2) of the RoPE frequencies for s. Linear: factor for every
// frequency (transformers' _compute_linear_scaling_rope_parameters: inv_freq / factor). Llama3
// (Llama 3.1), as llama.cpp's convert_hf_to_gguf.py computes its rope_freqs tensor in f32 (the same
// rescaling as transformers' _compute_llama3_parameters): by wavelength 2 pi / inv_freq, 1 below
// original / high_freq_factor, factor above original / low_freq_factor, and between
// 1 / ((1 - s) / factor + s) with s linear in original / wavelength from 0 to 1.
void plm_rope_divisors(float *divisors, int D, float theta, const plm_rope_scaling *s);

// RoPE in HF's rotate_half convention: dimension i pairs with i + D/2 (not Meta's (2i, 2i+1)):
//   x'[i] = x[i] cos - x[i+D/2] sin,   x'[i+D/2] = x[i+D/2] cos + x[i] sin.
// x (T, NH*D) in place, for tokens at positions pos0 .. pos0+T-1; cos_t, sin_t (>= pos0+T, D/2).
void plm_rope_forward(float *x, const float *cos_t, const float *sin_t, int pos0, int T, int NH,
                      int D);

// Causal grouped-query attention of T new queries at positions P..P+T-1 over S = P+T keys.
// out (T, H*D); att (T, H, att_stride) saved softmax probabilities (att_stride >= S);
// q (T, H*D); k, v: the keys and values of positions 0..S-1 (the new ones included), the D floats
// of position s of KV head kh at s * kvp + kh * kvh: (S, K*D) rows as a layer computes them (kvp =
// K*D, kvh = D), or (K, cap, D) as a session's cache holds them (kvp = D, kvh = cap*D: each head's
// keys one sequential stream); query head h reads KV head h / (H/K). Scores are q.k * scale
// (1/sqrt(D), or Gemma's query_pre_attn_scalar^-0.5). window > 0: a query at position p sees only
// the keys p - window + 1 .. p (Gemma's sliding window; the others' probabilities are 0 in att).
// k and v hold the positions from p0 on, position s at (s - p0) * kvp (a session's local layer
// keeps only its last positions; p0 <= P - window + 1, or 0). Computes the (t, h) pairs with index
// t*H+h in [i0, i1): callers split that range over threads; each pair is computed by one thread in
// a fixed order.
void plm_attention_forward(float *out, float *att, int att_stride, const float *q, const float *k,
                           const float *v, size_t kvp, size_t kvh, int T, int P, int H, int K,
                           int D, float scale, int window, int p0, int i0, int i1);
// plm_attention_forward_kv: the same over keys and values k, v of type kv: PLM_DTYPE_F32 (float)
// or PLM_DTYPE_F16 (IEEE half bits, uint16_t; a session's F16 KV cache), kvp and kvh in elements.
// Each half converts to a float exactly as it loads, and the operations are those of f32: the
// result is plm_attention_forward's over the same values converted to f32, bit for bit.
void plm_attention_forward_kv(float *out, float *att, int att_stride, const float *q, const void *k,
                              const void *v, size_t kvp, size_t kvh, int T, int P, int H, int K,
                              int D, float scale, int window, int p0, int i0, int i1, plm_dtype kv);

// SwiGLU (HF LlamaMLP): out = silu(gate) * up, silu(x) = x / (1 + exp(-x)). out, gate, up (n).
void plm_swiglu_forward(float *out, const float *gate, const float *up, size_t n);

// GeGLU (Gemma3MLP, gelu_pytorch_tanh): out = gelu(gate) * up,
// gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). out, gate, up (n); out may alias gate.
void plm_geglu_forward(float *out, const float *gate, const float *up, size_t n);

// out (T, OC) += b (OC) on every row: a linear layer's bias.
void plm_bias_forward(float *out, const float *b, int T, int OC);

// plm_f32_to_f16_n: n floats x as IEEE half bits into h, each plm_f32_to_f16(x[i]) (round to
// nearest even; a session's F16 KV cache stores its keys and values with it).
void plm_f32_to_f16_n(uint16_t *h, const float *x, size_t n);

// out (n) += inp (n): the residual connection.
void plm_residual_forward(float *out, const float *inp, size_t n);

// ---- backward passes: each adds into its d* outputs (the caller zeroes them), llm.c style ----

// dinp (T, C) += d(out)/d(inp) . dout; dw (C) += d(out)/d(w) . dout (dw may be NULL: frozen).
// rstd (T) from the forward; inp (T, C) the forward's input.
void plm_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                          const float *w, const float *rstd, int T, int C);

// dx (T, NH*D) in place: the inverse rotation (RoPE is orthogonal).
void plm_rope_backward(float *dx, const float *cos_t, const float *sin_t, int pos0, int T, int NH,
                       int D);

// Attention backward for one sequence with no cache (P = 0, S = T). dq (T, H*D), dk, dv (T, K*D)
// accumulate; att (T, H, att_stride) and q, k, v from the forward, scale the forward's (a sliding
// window needs nothing more: the keys outside it have probability 0). Computes KV heads [k0, k1):
// each KV head's dk/dv rows and its query heads' dq are written by one caller, so callers split K.
void plm_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *att,
                            int att_stride, const float *q, const float *k, const float *v, int T,
                            int H, int K, int D, float scale, int k0, int k1);

// dgate, dup (n) += gradients of out = silu(gate) * up.
void plm_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                         const float *up, size_t n);

// dgate, dup (n) += gradients of out = gelu(gate) * up (plm_geglu_forward).
void plm_geglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                        const float *up, size_t n);

// Cross-entropy over logits (T, V) with targets (T) where target < 0 means "no loss here", plus
// token-level unlikelihood (Welleck et al. 2019) when avoid (T) is not NULL and weight > 0: a row
// with avoid[t] >= 0 also adds weight * -log(max(1 - p(avoid[t]), 1e-6)) (see ops.c).
// Returns the summed loss (double) over counted positions; writes its gradient wrt the logits,
// probs - onehot (+ weight * p_c / (1 - p_c) * (onehot(c) - probs)), scaled by grad_scale into
// dlogits (T, V) (overwrites; rows without a target get zeros). dlogits may alias logits.
// n_counted receives the number of counted positions. avoid NULL or weight 0: plain cross-entropy.
double plm_crossentropy_forward_backward(float *dlogits, const float *logits,
                                         const int32_t *targets, const int32_t *avoid, float weight,
                                         int T, int V, float grad_scale, int *n_counted);

#endif
