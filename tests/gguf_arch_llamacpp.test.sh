#!/bin/sh
# gguf_arch_llamacpp.test.sh: the tiny Llama 3, Qwen2 and Qwen3 models (tests/make_ref_arch.py)
# exported by `pocketlm convert` to GGUF run in llama.cpp (llama-cpp-python) with HF transformers'
# logits within 1e-4: llama.cpp's names, keys, q/k row order (permuted for llama only) and llama3
# RoPE scaling as rope_freqs.weight. SKIP without llama_cpp or gguf in /usr/bin/python3.
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
[ $fail -eq 0 ] || { echo "gguf_arch_llamacpp: FAIL"; exit 1; }
echo "gguf_arch_llamacpp: ok"
