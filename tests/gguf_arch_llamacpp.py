#!/usr/bin/python3
"""gguf_arch_llamacpp.py GGUF REF: the logits of llama.cpp (llama-cpp-python) for REF's input_ids33
against REF's logits33 (HF transformers, tests/make_ref_arch.py). GGUF is pocketlm's export of a
tiny model without a tokenizer, which llama.cpp refuses without tokenizer.ggml.model: a copy with
"no_vocab" there (llama.cpp's model without a vocabulary) is what it loads; tensors and other keys
are copied unchanged (PyPI gguf). The KV cache is f32, so the only difference is f32 rounding.
Prints the max |llama.cpp - HF| and exits 1 above 1e-4 (or when an argmax differs)."""
import os
import sys
import tempfile

import gguf
import llama_cpp
import numpy as np
from safetensors.numpy import load_file

path, ref = sys.argv[1], sys.argv[2]
r = gguf.GGUFReader(path)
arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
copy = os.path.join(tempfile.mkdtemp(), "no_vocab.gguf")
w = gguf.GGUFWriter(copy, arch)
put = {gguf.GGUFValueType.STRING: lambda k, f: w.add_string(k, bytes(f.parts[-1]).decode()),
       gguf.GGUFValueType.UINT32: lambda k, f: w.add_uint32(k, int(f.parts[-1][0])),
       gguf.GGUFValueType.FLOAT32: lambda k, f: w.add_float32(k, float(f.parts[-1][0])),
       gguf.GGUFValueType.BOOL: lambda k, f: w.add_bool(k, bool(f.parts[-1][0]))}
for k, f in r.fields.items():
    if not k.startswith("GGUF.") and k != "general.architecture":
        put[f.types[0]](k, f)
w.add_string("tokenizer.ggml.model", "no_vocab")
for t in r.tensors:
    w.add_tensor(t.name, np.array(t.data), raw_dtype=t.tensor_type)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()

want = load_file(ref)
ids = [int(x) for x in want["input_ids33"]]
llm = llama_cpp.Llama(model_path=copy, n_ctx=64, logits_all=True, verbose=False, n_threads=1,
                      type_k=0, type_v=0)  # GGML_TYPE_F32 keys and values
llm.eval(ids)
got = np.array(llm.scores[:len(ids)])
err = float(np.abs(got - want["logits33"]).max())
same = bool((got.argmax(-1) == want["logits33"].argmax(-1)).all())
os.remove(copy)
print(f"{os.path.basename(ref)}: max |llama.cpp - HF| {err:.2e}, argmax equal {same}")
sys.exit(0 if err <= 1e-4 and same else 1)
