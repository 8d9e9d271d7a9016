// onnx_cpu_probe.mjs: which integer kernel onnxruntime-node takes on this CPU, seen in its result:
// a MatMulInteger of uint8 255 x int8 127 over K = 64. Exact, the sum is 64 * 255 * 127 = 2072640.
// x86 without VNNI multiplies u8 x s8 with vpmaddubsw, which saturates each pair of products at
// 32767: 32 * 32767 = 1048544 (the classic reason onnxruntime's quantizer has reduce_range, and what
// broke the old int8 export on AVX2). So the answer tells an AVX2 path from a VNNI one, which is
// how tests/onnx_avx2.test.sh knows that onnxruntime under qemu-x86_64 runs its AVX2 kernels.
// The model is written here byte by byte (a few protobuf fields), so no python is needed.
// usage: node tests/onnx_cpu_probe.mjs   prints "u8s8 exact" or "u8s8 saturated" (and the value).
import * as ort from 'onnxruntime-node';

const K = 64, N = 8;
const varint = (v) => {
    const out = [];
    do {
        out.push((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v = Math.floor(v / 128);
    } while (v > 0);
    return out;
};
const str = (s) => [...Buffer.from(s)];
const fld = (num, payload) => Array.isArray(payload) ? [...varint(num * 8 + 2), ...varint(payload.length), ...payload]
    : [...varint(num * 8), ...varint(payload)]; // bytes (wire 2) or an integer (wire 0)
const tensorType = (elem, dims) => fld(1, [...fld(1, elem), ...(dims ? fld(2, dims.flatMap((d) => fld(1, fld(1, d)))) : [])]);
const graph = [
    ...fld(1, [...fld(1, str('A')), ...fld(1, str('B')), ...fld(2, str('Y')), ...fld(4, str('MatMulInteger'))]),
    ...fld(2, str('probe')),
    ...fld(5, [...fld(1, K), ...fld(1, N), ...fld(2, 3), ...fld(8, str('B')), ...fld(9, Array(K * N).fill(127))]),
    ...fld(11, [...fld(1, str('A')), ...fld(2, tensorType(2, [1, K]))]),
    ...fld(12, [...fld(1, str('Y')), ...fld(2, tensorType(6, null))]),
];
const model = Uint8Array.from([...fld(1, 8), ...fld(8, [...fld(1, []), ...fld(2, 17)]), ...fld(7, graph)]);
const sess = await ort.InferenceSession.create(model);
const r = await sess.run({ A: new ort.Tensor('uint8', new Uint8Array(K).fill(255), [1, K]) });
const y = r.Y.data[0], exact = K * 255 * 127;
console.log(`u8s8 ${y === exact ? 'exact' : y === (K / 2) * 32767 ? 'saturated' : 'other'} (${y}, exact ${exact})`);
