#!/usr/bin/python3
"""gguf_llamacpp.py GGUF IDS_JSON N: llama.cpp's greedy continuation (llama-cpp-python) of the given
prompt ids, as a JSON list (stops at eos id 2). Used by tests/gguf_llamacpp.test.sh."""
import json
import sys

import llama_cpp
import numpy as np

path, ids, n = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
llm = llama_cpp.Llama(model_path=path, n_ctx=512, n_threads=2, verbose=False, logits_all=True)
llm.reset()
llm.eval(ids)
out = []
for _ in range(n):
    t = int(np.argmax(np.array(llm.scores[llm.n_tokens - 1])))
    if t == 2:
        break
    out.append(t)
    llm.eval([t])
print(json.dumps(out))
