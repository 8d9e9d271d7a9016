#!/bin/sh
# gguf_arch_llamacpp.test.sh: the tiny Llama 3, Qwen2 and Qwen3 models (tests/make_ref_arch.py)
# exported by `pocketlm convert` to GGUF run in llama.cpp (llama-cpp-python) with HF transformers'
# logits within 1e-4: llama.cpp's names, keys, q/k row order (permuted for llama only) and llama3
# RoPE scaling as rope_freqs.weight. The tiny Gemma 3's export, grown to llama.cpp's layout of
# layers (gguf_arch_llamacpp.py --gemma3), runs in llama.cpp with pocketlm's logits (its names,
# keys, the 1 + w norms), also with rope_scaling linear (rope.scaling.type and .factor, on the
# global layers only). SKIP without llama_cpp or gguf in /usr/bin/python3.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
B=${BUILD:-build}
need_bin "$B/pocketlm"
need_py "sh scripts/setup_bench.sh" numpy llama_cpp
need_py "make setup" gguf safetensors
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
for a in llama3 qwen2 qwen3; do
    "$B/pocketlm" convert "tests/ref/tiny-$a" "$T/$a.gguf" >/dev/null || exit 1
    "$PY" tests/gguf_arch_llamacpp.py "$T/$a.gguf" "tests/ref/tiny-$a.ref.safetensors" \
        2>"$T/$a.err" || { fail=1; tail -n 5 "$T/$a.err"; }
done
${CC:-cc} -std=c11 -O2 -Iinclude -o "$T/wasm_logits" tests/wasm_logits.c "$B/libpocketlm.a" -lm \
    -pthread || exit 1
for a in gemma3 gemma3-linear; do
    "$B/pocketlm" convert "tests/ref/tiny-$a" "$T/$a.gguf" >/dev/null || exit 1
    "$PY" tests/gguf_arch_llamacpp.py --gemma3 "$T/$a.gguf" "$T/wasm_logits" 2>"$T/$a.err" ||
        { fail=1; tail -n 5 "$T/$a.err"; }
done
[ $fail -eq 0 ] || { echo "gguf_arch_llamacpp: FAIL"; exit 1; }
echo "gguf_arch_llamacpp: ok"
