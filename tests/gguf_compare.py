#!/usr/bin/python3
"""gguf_compare.py: two GGUF files tensor by tensor (PyPI gguf's reader), for
tests/gguf_quantize.test.sh.
    gguf_compare.py MINE REF    prints the tensor type counts of MINE as JSON and one line per
                                tensor whose name set, type, shape or bytes differ from REF's;
                                exits 1 if any does"""
import json
import sys
from collections import Counter

import gguf
import numpy as np


def main(mine, ref):
    a = {t.name: t for t in gguf.GGUFReader(mine).tensors}
    b = {t.name: t for t in gguf.GGUFReader(ref).tensors}
    print(json.dumps(dict(sorted(Counter(t.tensor_type.name for t in a.values()).items()))))
    bad = 0
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            print("%s: only in %s" % (name, mine if name in a else ref))
            bad += 1
            continue
        x, y = a[name], b[name]
        if x.tensor_type != y.tensor_type or list(x.shape) != list(y.shape):
            print("%s: %s %s, want %s %s" % (name, x.tensor_type.name, list(x.shape),
                                             y.tensor_type.name, list(y.shape)))
            bad += 1
        elif not np.array_equal(np.asarray(x.data).view(np.uint8), np.asarray(y.data).view(np.uint8)):
            d = np.nonzero(np.asarray(x.data).view(np.uint8).ravel() != np.asarray(y.data).view(np.uint8).ravel())[0]
            print("%s (%s): %d bytes differ, the first at %d" % (name, x.tensor_type.name, d.size, d[0]))
            bad += 1
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main(*sys.argv[1:])
