#!/usr/bin/python3
"""gguf_kquant.py: llama.cpp's side of tests/gguf_kquant.test.sh (llama-cpp-python).
    gguf_kquant.py quantize SRC DST FTYPE   llama.cpp's quantizer (llama_model_quantize), then the
                                            tensor type counts of DST as JSON {"Q5_0": 166, ...}
    gguf_kquant.py nll GGUF PPL_JSON        llama.cpp's mean NLL of the token ids that
                                            `pocketlm perplexity --json` scored, the same way (each
                                            token after the first, one window)"""
import ctypes
import json
import sys
from collections import Counter

import gguf
import llama_cpp
import numpy as np


def quantize(src, dst, ftype):
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = int(ftype)
    p.nthread = 2
    if llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(p)) != 0:
        sys.exit("llama_model_quantize failed")
    counts = Counter(t.tensor_type.name for t in gguf.GGUFReader(dst).tensors)
    print(json.dumps(dict(sorted(counts.items()))))


def nll(path, ppl_json):
    ids = [t["id"] for t in json.load(open(ppl_json))["tokens"]]
    llm = llama_cpp.Llama(model_path=path, n_ctx=max(512, len(ids)), n_threads=2, verbose=False,
                          logits_all=True)
    llm.eval(ids)
    s = np.array(llm.scores[:len(ids)], dtype=np.float64)
    s -= s.max(axis=1, keepdims=True)
    lp = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
    print("%.6f" % -np.mean([lp[i - 1, ids[i]] for i in range(1, len(ids))]))


if __name__ == "__main__":
    {"quantize": quantize, "nll": nll}[sys.argv[1]](*sys.argv[2:])
