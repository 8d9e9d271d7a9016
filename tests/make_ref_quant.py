#!/usr/bin/python3
"""make_ref_quant.py — the dequantization reference for tests/test_quant.c: tests/ref/quant.gguf.

One tensor of each quantized ggml type that pocketlm reads, and beside each, as F32 tensor
"<name>.ref", its values as PyPI gguf's reference dequantizer (gguf.quants.dequantize, numpy
float32, the same float operations as ggml's dequantize_row_*) computes them. The C test compares
bit for bit. Legacy types (32-blocks) have 576-wide rows (SmolLM2's, not a multiple of 256), the
K-quants 512-wide rows. Rows are whole blocks of seeded random bytes whose f16 scales are set to
finite values of varied magnitude and sign (dequantization is defined for any bytes; gguf cannot
write K-quants), plus, for the types gguf.quants.quantize writes, rows quantized from random floats.
It does not test anything itself. Run with the system python that scripts/setup_ref.sh set up:
    /usr/bin/python3 tests/make_ref_quant.py      # rewrites tests/ref/quant.gguf (deterministic)
"""
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


if __name__ == "__main__":
    main()
