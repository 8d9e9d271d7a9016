#!/usr/bin/env python3
# onnx_check.py: onnx.checker.check_model on every .onnx file given (Debian python3-onnx 1.12 or
# PyPI onnx), plus strict shape inference on the files using only standard ops (shape inference
# knows nothing of com.microsoft MatMulNBits). Prints one line per file; exits 1 on any failure.
import sys

import onnx

bad = 0
for path in sys.argv[1:]:
    try:
        m = onnx.load(path)
        onnx.checker.check_model(m)
        std = all(o.domain in ("", "ai.onnx") for o in m.opset_import)
        if std:
            onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
        ops = sorted({n.op_type for n in m.graph.node})
        sets = ",".join("%s:%d" % (o.domain or "ai.onnx", o.version) for o in m.opset_import)
        print(f"onnx.checker {path}: ok (onnx {onnx.__version__}, IR {m.ir_version}, opset {sets}, "
              f"{len(m.graph.node)} nodes{', shapes inferred' if std else ''}; {' '.join(ops)})")
    except Exception as e:  # the checker raises several exception types
        print(f"onnx.checker {path}: FAILED: {str(e)[:300]}")
        bad = 1
sys.exit(bad)
