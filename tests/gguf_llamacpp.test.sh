#!/bin/sh
# gguf_llamacpp.test.sh: a GGUF written by `pocketlm export` runs in llama.cpp (llama-cpp-python, as
# scripts/setup_bench.sh builds it) and its greedy continuation equals pocketlm's for the same
# prompt ids. SKIP without the real model or without llama_cpp in /usr/bin/python3 (building it
# from source takes 5-10 minutes on 2 cores, so `make setup` does not: sh scripts/setup_bench.sh).
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
B=${BUILD:-build}
M=$MODEL
need_bin "$B/pocketlm"
need_model
need_py "sh scripts/setup_bench.sh" numpy llama_cpp
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$B/pocketlm" export -m "$M" --format gguf --quant f32 --out "$T/m.gguf" >/dev/null || exit 1
P='<|im_start|>user
What is the capital of France? Explain briefly.<|im_end|>
<|im_start|>assistant
'
ids=$("$B/pocketlm" tokenize -t "$T/m.gguf" "$P") || exit 1
ours=$("$B/pocketlm" generate -m "$T/m.gguf" --temp 0 -n 24 --json -p "$P" | sed 's/.*"tokens": \(\[[^]]*\]\).*/\1/' | tr -d ' ')
theirs=$(/usr/bin/python3 tests/gguf_llamacpp.py "$T/m.gguf" "$ids" 24 | tr -d ' ') || exit 1
echo "gguf_llamacpp: pocketlm $ours"
echo "gguf_llamacpp: llama.cpp $theirs"
[ "$ours" = "$theirs" ] || { echo "gguf_llamacpp: FAIL: greedy continuations differ"; exit 1; }
echo "gguf_llamacpp: ok"
