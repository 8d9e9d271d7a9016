#!/bin/sh
# gguf_kquant.test.sh: a Q4_K_M file as llama.cpp's own quantizer writes it loads in pocketlm, and
# its perplexity equals llama.cpp's on the same file. The real Q4_1 model goes to an f16 GGUF
# (`pocketlm convert`), llama.cpp quantizes that to Q4_K_M (SmolLM2's 576-wide rows make most
# tensors fall back to Q5_0; the test checks that Q5_0, Q4_K and Q6_K are all there), then
# `pocketlm perplexity --dtype q8_0` and llama.cpp (which also quantizes activations to 8 bits) score
# the same ids of 30 PAWS sentences: perplexities within 2% (measured: 0.6% for q8_0, 0.01% for
# f32; a type dequantized wrong costs far more).
# SKIP without the real model, or without llama_cpp or gguf in /usr/bin/python3.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
B=${BUILD:-build}
need_bin "$B/pocketlm"
need_model
need_py "sh scripts/setup_bench.sh" numpy llama_cpp
need_py "sh scripts/setup_ref.sh" gguf
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$B/pocketlm" convert "$MODEL" "$T/f16.gguf" --dtype f16 >/dev/null || exit 1
counts=$("$PY" tests/gguf_kquant.py quantize "$T/f16.gguf" "$T/q4_k_m.gguf" 15 2>/dev/null) || exit 1
echo "gguf_kquant: Q4_K_M tensor types $counts"
for t in Q5_0 Q4_K Q6_K; do
    case $counts in *"\"$t\""*) ;; *) echo "gguf_kquant: FAIL: no $t tensor"; exit 1 ;; esac
done
cut -f2 data/paws/test.tsv | sed -n 2,31p >"$T/text.txt"
ppl() { # ppl DTYPE: pocketlm's perplexity of the Q4_K_M file, its --json in $T/DTYPE.json
    "$B/pocketlm" perplexity -m "$T/q4_k_m.gguf" --dtype "$1" --json -f "$T/text.txt" >"$T/$1.json" \
        || exit 1
    sed 's/.*"nll": \([0-9.]*\).*/\1/' "$T/$1.json"
}
q8=$(ppl q8_0) && f32=$(ppl f32) || exit 1
ref=$("$PY" tests/gguf_kquant.py nll "$T/q4_k_m.gguf" "$T/q8_0.json" 2>"$T/llama.log") ||
    { cat "$T/llama.log"; exit 1; }
awk -v q8="$q8" -v f32="$f32" -v ref="$ref" 'BEGIN {
    printf "gguf_kquant: perplexity pocketlm q8_0 %.4f, f32 %.4f; llama.cpp %.4f\n", exp(q8), exp(f32), exp(ref)
    d8 = exp(q8 - ref) - 1; d32 = exp(f32 - ref) - 1
    if (d8 < -0.02 || d8 > 0.02 || d32 < -0.02 || d32 > 0.02) { print "gguf_kquant: FAIL: not within 2%"; exit 1 }
    print "gguf_kquant: ok"
}'
