// onnx.c: plm_onnx_export: the export directory and the .onnx files of the Llama decoder graph with
// a KV cache, as Optimum exports LlamaForCausalLM for transformers.js: inputs input_ids,
// attention_mask, position_ids, past_key_values.{i}.key/.value; outputs logits and
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
//
// Here: checking the model, the initializers' data (f32, the int8-qdq rows, the 4-bit and 8-bit
// blocks), the file, the directory. The graph is built by onnx_graph.c, encoded with onnx_pb.c.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_internal.h"

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
    for (int i = 0; i < t->n_dims; i++) plm_pb_int(&m, TENSOR_DIMS, t->dims[i]);
    plm_pb_int(&m, TENSOR_DATA_TYPE, t->dtype);
    plm_pb_str(&m, TENSOR_NAME, t->name);
    plm_pb_key(&m, TENSOR_RAW_DATA, WIRE_LEN);
    plm_pb_varint(&m, t->nbytes);
    size_t body = m.n + t->nbytes;
    plm_pb_key(b, GRAPH_INITIALIZER, WIRE_LEN);
    plm_pb_varint(b, body);
    plm_pb_raw(b, m.p, m.n);
    if (m.oom) b->oom = 1;
    free(m.p);
    return plm_pb_varint_len((uint64_t)GRAPH_INITIALIZER << 3) + plm_pb_varint_len(body) + body;
}

// model_head: ModelProto's fields before the graph, and the graph's key and length.
static void model_head(pb *b, const graph *g, size_t graph_len) {
    pb op = {0};
    plm_pb_int(b, MODEL_IR_VERSION, ONNX_IR_VERSION);
    plm_pb_str(b, MODEL_PRODUCER_NAME, "pocketlm");
    plm_pb_str(b, MODEL_PRODUCER_VERSION, "0.1");
    plm_pb_str(&op, OPSET_DOMAIN, "");
    plm_pb_int(&op, OPSET_VERSION, ONNX_OPSET);
    plm_pb_msg(b, MODEL_OPSET_IMPORT, &op);
    if (g->q == PLM_ONNX_QUANT_INT8 || g->q == PLM_ONNX_QUANT_INT4) {
        plm_pb_str(&op, OPSET_DOMAIN, "com.microsoft");
        plm_pb_int(&op, OPSET_VERSION, 1);
        plm_pb_msg(b, MODEL_OPSET_IMPORT, &op);
    }
    if (op.oom) b->oom = 1;
    free(op.p);
    plm_pb_key(b, MODEL_GRAPH, WIRE_LEN);
    plm_pb_varint(b, graph_len);
}

static plm_status write_graph(graph *g, const char *path, plm_error *err) {
    pb head = {0}, th = {0};
    plm_pb_str(&g->io, GRAPH_NAME, "main_graph");
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
    plm_onnx_build(&g);
    plm_status s = write_graph(&g, path, err);
    plm_onnx_graph_free(&g);
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
