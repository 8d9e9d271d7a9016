// onnx_graph.c: the Llama decoder graph of the ONNX export, as Optimum exports LlamaForCausalLM for
// transformers.js (and what Qwen2ForCausalLM, Qwen3ForCausalLM and Gemma3ForCausalLM add to it:
// q/k/v biases, per-head q/k norms; llama3 RoPE scaling in the cos/sin tables; Gemma 3's scaled
// embedding, post norms, tanh GELU, local layers' RoPE base and sliding-window mask, attention
// scale; its norms' weights are the 1 + w held in memory): its inputs and outputs, the nodes of each
// block (RMSNorm, RoPE, attention with the KV cache, the MLP, the embedding and the output head),
// and the initializers they use, which
// are only described here (name, type, shape, which weight in which form) and generated when
// onnx.c writes the file. The quantized linears (MatMulNBits on 4-bit planes plus a block-sum
// correction, the LoRA branch) are as the top of onnx.c explains. Reference: transformers'
// LlamaForCausalLM (the math), onnxruntime's contrib op docs (MatMulNBits).
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_internal.h"

// ---- the graph under construction (onnx_internal.h) ----

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
    for (int i = 0; i < n_in; i++) plm_pb_str(n, NODE_INPUT, in[i]);
    for (int o = 0; o < n_out; o++) {
        const char *name = g->out && o == 0 ? g->out : fmt_name(g, "/%s_%d", type, g->counter++);
        if (outs) outs[o] = name;
        if (o == 0) first = name;
        plm_pb_str(n, NODE_OUTPUT, name);
    }
    g->out = NULL;
    plm_pb_str(n, NODE_NAME,
               fmt_name(g, "/%s_node_%d", type, g->counter++)); // unique: onnxruntime's
    plm_pb_str(n, NODE_OP_TYPE, type); // fusions derive new node names from these

    for (int i = 0; i < n_at; i++) {
        plm_pb_str(a, ATTR_NAME, at[i].name);
        plm_pb_int(a, ATTR_TYPE, at[i].type);
        if (at[i].type == ATTR_TYPE_INT) plm_pb_int(a, ATTR_I, at[i].i);
        if (at[i].type == ATTR_TYPE_FLOAT) plm_pb_float(a, ATTR_F, at[i].f);
        for (int k = 0; at[i].type == ATTR_TYPE_INTS && k < at[i].n; k++)
            plm_pb_int(a, ATTR_INTS, at[i].ints[k]);
        plm_pb_msg(n, NODE_ATTRIBUTE, a);
    }
    if (*domain) plm_pb_str(n, NODE_DOMAIN, domain);
    plm_pb_msg(&g->nodes, GRAPH_NODE, n);
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
    const char *cos, *sin;     // (B, 1, S, D) RoPE tables at position_ids
    const char *mask;          // (B, 1, S, T) additive attention mask: 0 or the lowest float
    const char *cos_l, *sin_l; // Gemma 3's local layers': their RoPE base (else NULL)
    const char *mask_l;        // and their sliding window (else NULL)
    const char *shape_bs;      // (2) int64: [B, S]
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

// linear_adapted: x (B, S, in) -> (B, S, out) through target t of layer l, without its bias. With
// an adapter, int8 and int4 quantize the base's weight and add the adapter's update as an f32
// branch, scale * (x A^T) B^T: requantizing the merged weight would erase every update smaller
// than half a 4-bit step.
static const char *linear_adapted(graph *g, const char *x, int l, plm_lora_target t) {
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

// linear: linear_adapted, then the bias of target t when the model has one (Qwen2's q, k, v).
static const char *linear(graph *g, const char *x, int l, plm_lora_target t) {
    const char *y = linear_adapted(g, x, l, t);
    const float *b = plm_layer_bias(&g->m->layers[l], t);
    int32_t out, in;
    if (!b) return y;
    plm_lora_target_shape(&g->m->config, t, &out, &in);
    return OP(g, "Add", y,
              vec_init(g,
                       fmt_name(g, "model.layers.%d.%s.%s.bias", l, plm_lora_targets[t].parent,
                                plm_lora_targets[t].name),
                       b, out));
}

// rmsnorm: LlamaRMSNorm: x / sqrt(mean(x^2) + eps) * w over the last axis of n values: x (B, S, C)
// with the layers' norms, (B, heads, S, D) with Qwen3's q/k norms.
static const char *rmsnorm(graph *g, const char *x, const float *w, const char *wname, int64_t n) {
    static const int64_t last[] = {-1};
    attr at[] = {A_INTS("axes", last), A_INT("keepdims", 1)};
    const char *ms = OPA(g, "ReduceMean", at, OP(g, "Pow", x, c_f32(g, "const_two", 2.0f)));
    const char *r =
        OP(g, "Sqrt", OP(g, "Add", ms, c_f32(g, "rms_norm_eps", g->m->config.rms_norm_eps)));
    return OP(g, "Mul", OP(g, "Div", x, r), vec_init(g, wname, w, n));
}

// rope: HF rotate_half convention, pairs (i, i + D/2): x*cos + cat(-x2, x1)*sin; x (B, n, S, D),
// cos and sin (B, 1, S, D).
static const char *rope(graph *g, const char *x, const char *cos, const char *sin) {
    int64_t D = g->m->config.head_dim, h = D / 2, big = INT64_MAX;
    const char *axis = c_i64(g, "const_axis_last", (int64_t[]){-1}, 1);
    const char *x1 = OP(g, "Slice", x, c_i64(g, "const_zero", (int64_t[]){0}, 1),
                        c_i64(g, "const_half_d", &h, 1), axis);
    const char *x2 = OP(g, "Slice", x, c_i64(g, "const_half_d", &h, 1),
                        c_i64(g, "const_int_max", &big, 1), axis);
    attr cat[] = {A_INT("axis", -1)};
    const char *rot = OPA(g, "Concat", cat, OP(g, "Neg", x2), x1);
    return OP(g, "Add", OP(g, "Mul", x, cos), OP(g, "Mul", rot, sin));
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

// attention: x + o_proj(softmax(q k^T * scale + mask) v) of layer l (Gemma 3: o_proj's output
// normalized; a local layer with its own RoPE tables and sliding-window mask); also
// present.{l}.key/value.
static const char *attention(graph *g, int l, const char *x, const shared *sh) {
    const plm_config *c = &g->m->config;
    const plm_layer *ly = &g->m->layers[l];
    const int local = plm_layer_window(c, l) > 0;
    const char *h =
        rmsnorm(g, x, ly->input_layernorm, fmt_name(g, "model.layers.%d.input_layernorm.weight", l),
                c->hidden_size);
    const char *q = heads(g, linear(g, h, l, PLM_LORA_Q_PROJ), c->num_attention_heads);
    const char *k = heads(g, linear(g, h, l, PLM_LORA_K_PROJ), c->num_key_value_heads);
    if (c->qk_norm) { // Qwen3, Gemma 3: each head's D values normalized before RoPE
        q = rmsnorm(g, q, ly->q_norm, fmt_name(g, "model.layers.%d.self_attn.q_norm.weight", l),
                    c->head_dim);
        k = rmsnorm(g, k, ly->k_norm, fmt_name(g, "model.layers.%d.self_attn.k_norm.weight", l),
                    c->head_dim);
    }
    const char *cos = local ? sh->cos_l : sh->cos, *sin = local ? sh->sin_l : sh->sin;
    q = rope(g, q, cos, sin), k = rope(g, k, cos, sin);
    const char *v = heads(g, linear(g, h, l, PLM_LORA_V_PROJ), c->num_key_value_heads);
    attr seq[] = {A_INT("axis", 2)};
    g->out = fmt_name(g, "present.%d.key", l);
    k = OPA(g, "Concat", seq, fmt_name(g, "past_key_values.%d.key", l), k); // (B, K, T, D)
    g->out = fmt_name(g, "present.%d.value", l);
    v = OPA(g, "Concat", seq, fmt_name(g, "past_key_values.%d.value", l), v); // (B, K, T, D)
    static const int64_t tr[] = {0, 1, 3, 2}, back[] = {0, 2, 1, 3};
    attr kt[] = {A_INTS("perm", tr)}, bt[] = {A_INTS("perm", back)}, last[] = {A_INT("axis", -1)};
    const char *sc = OP(g, "MatMul", q, OPA(g, "Transpose", kt, repeat_kv(g, k))); // (B, H, S, T)
    sc = OP(g, "Add", OP(g, "Mul", sc, c_f32(g, "const_attn_scale", plm_attention_scale(c))),
            local ? sh->mask_l : sh->mask);
    const char *o = OP(g, "MatMul", OPA(g, "Softmax", last, sc), repeat_kv(g, v)); // (B, H, S, D)
    int64_t shape[3] = {0, 0, (int64_t)c->num_attention_heads * c->head_dim};
    o = OP(g, "Reshape", OPA(g, "Transpose", bt, o), c_i64(g, "const_shape_merge_heads", shape, 3));
    o = linear(g, o, l, PLM_LORA_O_PROJ);
    if (ly->post_attn_norm)
        o = rmsnorm(g, o, ly->post_attn_norm,
                    fmt_name(g, "model.layers.%d.post_attention_layernorm.weight", l),
                    c->hidden_size);
    return OP(g, "Add", x, o);
}

// gelu_tanh: Gemma3MLP's activation, 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3))) (ops.c)
static const char *gelu_tanh(graph *g, const char *x) {
    const char *x3 = OP(g, "Mul", OP(g, "Mul", x, x), x);
    const char *u = OP(g, "Add", x, OP(g, "Mul", x3, c_f32(g, "const_gelu_kappa", 0.044715f)));
    u = OP(g, "Tanh", OP(g, "Mul", u, c_f32(g, "const_gelu_beta", 0.7978845608028654f)));
    const char *half = OP(g, "Mul", x, c_f32(g, "const_half", 0.5f));
    return OP(g, "Mul", half, OP(g, "Add", u, c_f32(g, "const_one_f", 1.0f)));
}

// mlp: x + down(act(gate(h)) * up(h)), h = the MLP's input norm of x: LlamaMLP's silu, or
// Gemma3MLP's tanh GELU with down's output normalized.
static const char *mlp(graph *g, int l, const char *x) {
    const plm_layer *ly = &g->m->layers[l];
    const int gemma = g->m->config.model_type == PLM_ARCH_GEMMA3;
    const char *h = rmsnorm(g, x, ly->post_attention_layernorm,
                            fmt_name(g,
                                     gemma ? "model.layers.%d.pre_feedforward_layernorm.weight"
                                           : "model.layers.%d.post_attention_layernorm.weight",
                                     l),
                            g->m->config.hidden_size);
    const char *gt = linear(g, h, l, PLM_LORA_GATE_PROJ), *up = linear(g, h, l, PLM_LORA_UP_PROJ);
    const char *act = gemma ? gelu_tanh(g, gt) : OP(g, "Mul", gt, OP(g, "Sigmoid", gt));
    const char *d = linear(g, OP(g, "Mul", act, up), l, PLM_LORA_DOWN_PROJ);
    if (ly->post_ffw_norm)
        d = rmsnorm(g, d, ly->post_ffw_norm,
                    fmt_name(g, "model.layers.%d.post_feedforward_layernorm.weight", l),
                    g->m->config.hidden_size);
    return OP(g, "Add", x, d);
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

// rope_table: cos/sin (B, 1, S, D) of position_ids * inv_freq, inv_freq[i] = theta^(-2i/D)
// (divided by divisors, when not NULL: llama3 scaling) computed as ops.c's plm_rope_table does,
// angles duplicated over both halves (HF); the initializer inv_freq is named name.
static void rope_table(graph *g, float theta, const float *divisors, const char *name,
                       const char **cos, const char **sin) {
    const plm_config *c = &g->m->config;
    int64_t h = c->head_dim / 2;
    float inv[512];
    for (int64_t i = 0; i < h; i++)
        inv[i] = 1.0f / powf(theta, (float)(2 * i) / (float)c->head_dim) /
                 (divisors ? divisors[i] : 1.0f);
    attr to[] = {A_INT("to", DT_FLOAT)}, cat[] = {A_INT("axis", -1)};
    const char *pos = OP(g, "Unsqueeze", OPA(g, "Cast", to, "position_ids"),
                         c_i64(g, "const_axis_last", (int64_t[]){-1}, 1)); // (B, S, 1)
    const char *f = OP(g, "Mul", pos, const_tensor(g, name, DT_FLOAT, 1, &h, inv, 4));
    const char *emb = OPA(g, "Concat", cat, f, f); // (B, S, D)
    const char *ax1 = c_i64(g, "const_axis_1", (int64_t[]){1}, 1);
    *cos = OP(g, "Unsqueeze", OP(g, "Cos", emb), ax1);
    *sin = OP(g, "Unsqueeze", OP(g, "Sin", emb), ax1);
}

// rope_tables: the model's RoPE tables (rope_theta, its rope_freqs divisors), and Gemma 3's local
// layers' (rope_local_base_freq).
static void rope_tables(graph *g, shared *sh) {
    const plm_config *c = &g->m->config;
    rope_table(g, c->rope_theta, g->m->rope_freqs, "inv_freq", &sh->cos, &sh->sin);
    if (c->sliding_window > 0)
        rope_table(g, c->rope_local_base_freq, NULL, "inv_freq_local", &sh->cos_l, &sh->sin_l);
}

// attn_mask: (B, 1, S, T) additive mask: key t is visible to query s (cache index P + s) when
// t <= P + s and attention_mask[b, t] == 1; else the lowest float (as HF does; never -inf, so a
// fully masked row of a left-padded query gives a uniform softmax, not NaN). Gemma 3's local
// layers' also needs t > P + s - sliding_window.
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
    const char *zero = c_f32(g, "const_zero_f", 0.0f);
    const char *lowest = c_f32(g, "const_lowest", -3.4028234663852886e38f);
    sh->mask = OP(g, "Where", OP(g, "And", causal, pad), zero, lowest);
    int32_t W = g->m->config.sliding_window;
    if (W <= 0) return;
    const char *near = OP(g, "Greater", key, OP(g, "Sub", qry, c_idx(g, "const_window", W)));
    sh->mask_l = OP(g, "Where", OP(g, "And", OP(g, "And", causal, near), pad), zero, lowest);
}

// io: the graph's inputs and outputs with Optimum's names and symbolic dims.
static void value_info(graph *g, int field, const char *name, int32_t elem, int n,
                       const char *const *params, const int64_t *values) {
    pb *v = &g->tmp, *t = &g->tmp2;
    pb shape = {0}, dim = {0};
    for (int i = 0; i < n; i++) {
        if (params[i]) plm_pb_str(&dim, DIM_PARAM, params[i]);
        else plm_pb_int(&dim, DIM_VALUE, values[i]);
        plm_pb_msg(&shape, SHAPE_DIM, &dim);
    }
    plm_pb_int(t, TT_ELEM_TYPE, elem);
    plm_pb_msg(t, TT_SHAPE, &shape);
    pb tt = {0};
    plm_pb_msg(&tt, TYPE_TENSOR, t);
    plm_pb_str(v, VI_NAME, name);
    plm_pb_msg(v, VI_TYPE, &tt);
    plm_pb_msg(&g->io, field, v);
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

// plm_onnx_build: the whole decoder graph of m in mode q.
void plm_onnx_build(graph *g) {
    const plm_model *m = g->m;
    shared sh = {0};
    declare_io(g);
    attn_mask(g, &sh);
    rope_tables(g, &sh);
    const char *x = embed(g);
    if (m->config.model_type == PLM_ARCH_GEMMA3) // Gemma3TextScaledWordEmbedding
        x = OP(g, "Mul", x, c_f32(g, "const_embed_scale", plm_embed_scale(&m->config)));
    for (int l = 0; l < m->config.num_hidden_layers; l++) {
        x = attention(g, l, x, &sh);
        x = mlp(g, l, x);
    }
    lm_head(g, rmsnorm(g, x, m->norm, "model.norm.weight", m->config.hidden_size), &sh);
}

void plm_onnx_graph_free(graph *g) {
    for (int i = 0; i < g->n_inits; i++) free(g->inits[i].name), free(g->inits[i].owned);
    for (int i = 0; i < g->n_names; i++) free(g->names[i]);
    free(g->inits), free(g->names), free(g->lmats);
    free(g->nodes.p), free(g->io.p), free(g->tmp.p), free(g->tmp2.p);
}
