// onnx_pb.c: a minimal protobuf encoder for the ONNX export: varints, keys, int, float, string and
// length-delimited fields into a growable buffer (pb, in onnx_internal.h), and submessages embedded
// by copying. Nothing here knows ONNX; onnx.proto's field numbers are in onnx_internal.h.
// Reference: the protobuf encoding guide (wire types 0, 2 and 5).
#include <stdlib.h>
#include <string.h>

#include "onnx_internal.h"

void plm_pb_raw(pb *b, const void *d, size_t n) {
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

void plm_pb_varint(pb *b, uint64_t v) {
    uint8_t t[10];
    int k = 0;
    do {
        t[k++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    plm_pb_raw(b, t, (size_t)k);
}

void plm_pb_key(pb *b, int field, int wire) {
    plm_pb_varint(b, (uint64_t)field << 3 | (uint64_t)wire);
}

// plm_pb_int: an int32/int64 field (negative values take 10 bytes, two's complement, as protobuf
// says)
void plm_pb_int(pb *b, int field, int64_t v) {
    plm_pb_key(b, field, WIRE_VARINT);
    plm_pb_varint(b, (uint64_t)v);
}

static void pb_bytes(pb *b, int field, const void *d, size_t n) {
    plm_pb_key(b, field, WIRE_LEN);
    plm_pb_varint(b, n);
    plm_pb_raw(b, d, n);
}

void plm_pb_str(pb *b, int field, const char *s) {
    pb_bytes(b, field, s, strlen(s));
}

void plm_pb_float(pb *b, int field, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint8_t t[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
    plm_pb_key(b, field, WIRE_FIXED32);
    plm_pb_raw(b, t, 4);
}

// plm_pb_msg: embed the submessage m as field of b, then empty m for reuse.
void plm_pb_msg(pb *b, int field, pb *m) {
    if (m->oom) b->oom = 1;
    pb_bytes(b, field, m->p, m->n);
    m->n = 0;
}

size_t plm_pb_varint_len(uint64_t v) {
    size_t k = 1;
    while (v > 0x7f) v >>= 7, k++;
    return k;
}
