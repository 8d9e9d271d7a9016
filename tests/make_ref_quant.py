#!/usr/bin/python3
"""make_ref_quant.py — the dequantization reference for tests/test_quant.c: tests/ref/quant.gguf.

One tensor of each quantized ggml type that pocketlm reads, and beside each, as F32 tensor
"<name>.ref", its values as PyPI gguf's reference dequantizer (gguf.quants.dequantize, numpy
float32, the same float operations as ggml's dequantize_row_*) computes them. The C test compares
bit for bit. Legacy types (32-blocks) have 576-wide rows (SmolLM2's, not a multiple of 256), the
K-quants 512-wide rows. Rows are whole blocks of seeded random bytes whose f16 scales are set to
finite values of varied magnitude and sign (dequantization is defined for any bytes; gguf cannot
write K-quants), plus, for the types gguf.quants.quantize writes, rows quantized from random floats.

The quantizer reference for tests/test_quantize.c: tests/ref/quantize.gguf. For each type pocketlm
writes (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K), "<name>.src": F32 rows of seeded random
values of many kinds (Gaussian at scales from 1e-4 to 10, all positive, all negative, outliers,
half zero, on a coarse grid, all zero, constant), and "<name>": those rows quantized by the
reference: PyPI gguf's gguf.quants.quantize for the legacy types (numpy, the float operations of
ggml's quantize_row_*_ref), ggml's own quantize_row_*_ref (libggml-base of llama-cpp-python,
called through ctypes) for the K-quants, which gguf does not quantize. Where both exist they are
checked to agree. Legacy rows are 576 wide, K-quant rows 512.

It does not test anything itself. Run with the system python that scripts/setup_ref.sh set up,
with llama-cpp-python installed (sh scripts/setup_bench.sh) for the K-quants:
    /usr/bin/python3 tests/make_ref_quant.py      # rewrites tests/ref/quant*.gguf (deterministic)
"""
import ctypes
import os

import gguf
import numpy as np
from gguf import GGMLQuantizationType as T

REF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ref")

# type: (columns, byte offsets of the f16 scales in a block)
TYPES = {
    T.Q4_0: (576, [0]),
    T.Q4_1: (576, [0, 2]),
    T.Q5_0: (576, [0]),
    T.Q5_1: (576, [0, 2]),
    T.Q8_0: (576, [0]),
    T.Q2_K: (512, [80, 82]),
    T.Q3_K: (512, [108]),
    T.Q4_K: (512, [0, 2]),
    T.Q5_K: (512, [0, 2]),
    T.Q6_K: (512, [208]),
}
QUANTIZABLE = {T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0}
RANDOM_ROWS = 4
QUANT_ROWS = 2


def random_rows(rng, qtype, cols, scale_offsets):
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    nb = RANDOM_ROWS * cols // block
    b = rng.integers(0, 256, size=(nb, size), dtype=np.uint8)
    for off in scale_offsets:
        # magnitudes from f16 subnormals to ~1e2, either sign; block 0 all zero scales
        mag = np.exp2(rng.uniform(-24, 7, size=nb)) * rng.choice([-1.0, 1.0], size=nb)
        mag[0] = 0.0
        b[:, off:off + 2] = mag.astype(np.float16).reshape(nb, 1).view(np.uint8)
    return b.reshape(RANDOM_ROWS, -1)


def main():
    rng = np.random.default_rng(15)
    w = gguf.GGUFWriter(os.path.join(REF, "quant.gguf"), "pocketlm-quant-test")
    for qtype, (cols, offs) in TYPES.items():
        q = random_rows(rng, qtype, cols, offs)
        if qtype in QUANTIZABLE:
            x = (rng.standard_normal((QUANT_ROWS, cols)) * 0.05).astype(np.float32)
            q = np.concatenate([q, gguf.quants.quantize(x, qtype)])
        ref = gguf.quants.dequantize(q, qtype)
        assert ref.dtype == np.float32 and ref.shape[1] == cols and np.isfinite(ref).all()
        w.add_tensor(qtype.name, q, raw_dtype=qtype)
        w.add_tensor(qtype.name + ".ref", ref)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---- the quantizer reference ----

QUANTIZE_TYPES = {T.Q4_0: 576, T.Q4_1: 576, T.Q5_0: 576, T.Q5_1: 576, T.Q8_0: 576, T.Q4_K: 512,
                  T.Q5_K: 512, T.Q6_K: 512}
KINDS = ["gauss", "positive", "negative", "outliers", "half_zero", "grid", "zero", "constant"]


def source_row(rng, kind, cols):
    x = rng.standard_normal(cols) * 10.0 ** rng.uniform(-4, 1)
    if kind == "positive":
        x = np.abs(x)
    elif kind == "negative":
        x = -np.abs(x)
    elif kind == "outliers":
        x[rng.integers(0, cols, 6)] *= 40
    elif kind == "half_zero":
        x[rng.permutation(cols)[: cols // 2]] = 0
    elif kind == "grid":
        x = np.round(x * 4 / np.abs(x).max()) / 4
    elif kind == "zero":
        x[:] = 0
    elif kind == "constant":
        x[:] = x[0]
    return x.astype(np.float32)


def ggml_quantizer(qtype):
    """ggml's quantize_row_<type>_ref from llama-cpp-python's libggml-base, or None."""
    try:
        import llama_cpp
    except ImportError:
        return None
    lib = ctypes.CDLL(os.path.join(os.path.dirname(llama_cpp.__file__), "lib", "libggml-base.so"))
    f = getattr(lib, "quantize_row_q%s_ref" % qtype.name[1:])  # quantize_row_q4_K_ref
    f.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    block, size = gguf.GGML_QUANT_SIZES[qtype]

    def quantize(x):
        out = np.zeros((x.shape[0], x.shape[1] // block * size), np.uint8)
        for r in range(x.shape[0]):
            row = np.ascontiguousarray(x[r])
            f(row.ctypes.data, out[r].ctypes.data, row.size)
        return out
    return quantize


def main_quantize():
    rng = np.random.default_rng(1515)
    w = gguf.GGUFWriter(os.path.join(REF, "quantize.gguf"), "pocketlm-quantize-test")
    for qtype, cols in QUANTIZE_TYPES.items():
        x = np.stack([source_row(rng, kind, cols) for kind in KINDS + ["gauss", "gauss"]])
        ref = ggml_quantizer(qtype)
        if qtype in QUANTIZABLE:
            q = gguf.quants.quantize(x, qtype)
            assert ref is None or np.array_equal(q, ref(x)), qtype.name + ": gguf differs from ggml"
        else:
            assert ref, "the K-quant reference needs llama-cpp-python (sh scripts/setup_bench.sh)"
            q = ref(x)
        w.add_tensor(qtype.name + ".src", x)
        w.add_tensor(qtype.name, q, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
    main_quantize()
