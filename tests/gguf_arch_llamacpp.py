#!/usr/bin/python3
"""gguf_arch_llamacpp.py GGUF REF: the logits of llama.cpp (llama-cpp-python) for REF's input_ids33
against REF's logits33 (HF transformers, tests/make_ref_arch.py). GGUF is pocketlm's export of a
tiny model without a tokenizer, which llama.cpp refuses without tokenizer.ggml.model: a copy with
"no_vocab" there (llama.cpp's model without a vocabulary) is what it loads; tensors and other keys
are copied unchanged (PyPI gguf). The KV cache is f32, so the only difference is f32 rounding.
Prints the max |llama.cpp - HF| and exits 1 above 1e-4 (or when an argmax differs).

gguf_arch_llamacpp.py --gemma3 GGUF WASM_LOGITS: Gemma 3, against pocketlm itself. llama.cpp fixes
in code what pocketlm reads from its pocketlm.* keys (every 6th layer global, the local RoPE base
10000, the scale head_dim^-0.5), and with no global layer (the tiny model has 3 layers) it crashes.
So the copy has 6 layers (blk.3-5 repeat blk.0-2) and no pocketlm.* keys: llama.cpp's layout, which
pocketlm takes when those keys are absent. Both run the 33 ids of make_ref_arch.py's
input_ids33 (the 5 local layers' window of 4 crossed); pocketlm's last logits come from
WASM_LOGITS (build/tests/wasm_logits). Bound 2e-3: llama.cpp's CPU GELU is an f16 lookup table
(pocketlm's own logits of such a file are within ~1e-6 of HF transformers'); argmax equal."""
import json
import os
import subprocess
import sys
import tempfile

import gguf
import llama_cpp
import numpy as np
from safetensors.numpy import load_file


def no_vocab_copy(path, repeat_layers=0):
    """a copy of GGUF path with tokenizer.ggml.model "no_vocab"; with repeat_layers n, blocks
    n .. 2n-1 repeat blocks 0 .. n-1 and the pocketlm.* keys are left out"""
    r = gguf.GGUFReader(path)
    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
    copy = os.path.join(tempfile.mkdtemp(), "no_vocab.gguf")
    w = gguf.GGUFWriter(copy, arch)
    put = {gguf.GGUFValueType.STRING: lambda k, f: w.add_string(k, bytes(f.parts[-1]).decode()),
           gguf.GGUFValueType.UINT32: lambda k, f: w.add_uint32(k, int(f.parts[-1][0])),
           gguf.GGUFValueType.FLOAT32: lambda k, f: w.add_float32(k, float(f.parts[-1][0])),
           gguf.GGUFValueType.BOOL: lambda k, f: w.add_bool(k, bool(f.parts[-1][0]))}
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or k == "general.architecture":
            continue
        if repeat_layers and k.startswith("pocketlm."):
            continue
        if repeat_layers and k == f"{arch}.block_count":
            w.add_uint32(k, 2 * repeat_layers)
            continue
        put[f.types[0]](k, f)
    w.add_string("tokenizer.ggml.model", "no_vocab")
    for t in r.tensors:
        w.add_tensor(t.name, np.array(t.data), raw_dtype=t.tensor_type)
    for t in r.tensors if repeat_layers else []:
        if t.name.startswith("blk."):
            b, rest = t.name[4:].split(".", 1)
            w.add_tensor(f"blk.{int(b) + repeat_layers}.{rest}", np.array(t.data),
                         raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return copy


def llamacpp_logits(path, ids):
    llm = llama_cpp.Llama(model_path=path, n_ctx=64, logits_all=True, verbose=False, n_threads=1,
                          type_k=0, type_v=0)  # GGML_TYPE_F32 keys and values
    llm.eval(ids)
    return np.array(llm.scores[:len(ids)])


if sys.argv[1] == "--gemma3":
    path, tool = sys.argv[2], sys.argv[3]
    ids = [int(x) for x in load_file("tests/ref/tiny-gemma3.ref.safetensors")["input_ids33"]]
    n = int(gguf.GGUFReader(path).fields["gemma3.block_count"].parts[-1][0])
    copy = no_vocab_copy(path, repeat_layers=n)
    want = np.array(json.loads(subprocess.run([tool, copy, "f32", "1", "1", *map(str, ids)],
                                              check=True, capture_output=True,
                                              text=True).stdout)["logits"])
    got = llamacpp_logits(copy, ids)[-1]
    os.remove(copy)
    err = float(np.abs(got - want).max())
    same = int(got.argmax()) == int(want.argmax())
    print(f"gemma3 ({2 * n} layers): max |llama.cpp - pocketlm| {err:.2e}, argmax equal {same}")
    sys.exit(0 if err <= 2e-3 and same else 1)

path, ref = sys.argv[1], sys.argv[2]
copy = no_vocab_copy(path)
want = load_file(ref)
ids = [int(x) for x in want["input_ids33"]]
got = llamacpp_logits(copy, ids)
err = float(np.abs(got - want["logits33"]).max())
same = bool((got.argmax(-1) == want["logits33"].argmax(-1)).all())
os.remove(copy)
print(f"{os.path.basename(ref)}: max |llama.cpp - HF| {err:.2e}, argmax equal {same}")
sys.exit(0 if err <= 1e-4 and same else 1)
