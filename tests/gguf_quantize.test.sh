#!/bin/sh
# gguf_quantize.test.sh: pocketlm's quantized GGUF export on the real SmolLM2. The Q4_1 model goes
# to an f16 GGUF (`pocketlm convert --quant f16`), which `pocketlm export --format gguf --quant` writes
# as q4_k_m and q8_0. Checked:
# - the per-tensor types of q4_k_m, as `pocketlm info` counts them: llama.cpp's Q4_K_M mix with its
#   fallbacks for 576-wide rows (61 F32 norms, 166 Q5_0, 16 Q4_K, 14 Q6_K, 15 Q8_0);
# - pocketlm's perplexity of 30 PAWS sentences on each file (f32 weights in memory) against the f16
#   file's: q8_0 within 1%, q4_k_m within 10% (measured: +0.48% and +8.9%, 47.24 -> 47.47 and
#   51.42; llama.cpp's own Q4_K_M of the same f16 file scores the same, its bytes being the same:
#   below; a tensor quantized wrong or dequantized wrong costs far more);
# - with llama-cpp-python: llama.cpp's quantizer (no importance matrix) on the same f16 file writes
#   the same bytes, tensor by tensor, for Q4_K_M and Q8_0; and llama.cpp loads pocketlm's q4_k_m
#   and scores the same tokens within 2% of pocketlm (both files; as tests/gguf_kquant.test.sh).
# SKIP without the real model; the llama.cpp part is skipped without llama_cpp or gguf.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
B=${BUILD:-build}
need_bin "$B/pocketlm"
need_model
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
P=$B/pocketlm
"$P" convert "$MODEL" "$T/f16.gguf" --quant f16 >/dev/null || exit 1
for q in q4_k_m q8_0; do
    "$P" export -m "$T/f16.gguf" --format gguf --quant $q --out "$T/$q.gguf" >/dev/null || exit 1
    echo "gguf_quantize: $q $(wc -c <"$T/$q.gguf") bytes (f16: $(wc -c <"$T/f16.gguf"))"
done
types=$("$P" info -m "$T/q4_k_m.gguf" | sed -n 's/^file_dtypes *//p')
want="f32 x61 q5_0 x166 q8_0 x15 q4_k x16 q6_k x14"
[ "$types" = "$want" ] || { echo "gguf_quantize: FAIL: q4_k_m types '$types', want '$want'"; exit 1; }
cut -f2 data/paws/test.tsv | sed -n 2,31p >"$T/text.txt"
nll() { # nll FILE: pocketlm's mean NLL of the text on FILE (f32 in memory), --json in FILE.json
    "$P" perplexity -m "$1" --json -f "$T/text.txt" >"$1.json" || exit 1
    sed 's/.*"nll": \([0-9.]*\).*/\1/' "$1.json"
}
f16=$(nll "$T/f16.gguf") && q8=$(nll "$T/q8_0.gguf") && q4=$(nll "$T/q4_k_m.gguf") || exit 1
awk -v f16="$f16" -v q8="$q8" -v q4="$q4" 'BEGIN {
    printf "gguf_quantize: perplexity f16 %.4f, q8_0 %.4f (%+.2f%%), q4_k_m %.4f (%+.2f%%)\n",
        exp(f16), exp(q8), 100 * (exp(q8 - f16) - 1), exp(q4), 100 * (exp(q4 - f16) - 1)
    d8 = exp(q8 - f16) - 1; d4 = exp(q4 - f16) - 1
    if (d8 < -0.01 || d8 > 0.01) { print "gguf_quantize: FAIL: q8_0 not within 1% of f16"; exit 1 }
    if (d4 < -0.1 || d4 > 0.1) { print "gguf_quantize: FAIL: q4_k_m not within 10% of f16"; exit 1 }
}' || exit 1
if ! has_py llama_cpp gguf numpy; then
    skip_part llama.cpp "no python module llama_cpp or gguf in $PY" "sh scripts/setup_bench.sh"
    echo "gguf_quantize: ok"
    exit 0
fi
for q in "q4_k_m 15" "q8_0 7"; do # llama_ftype: LLAMA_FTYPE_MOSTLY_Q4_K_M, MOSTLY_Q8_0
    set -- $q
    "$PY" tests/gguf_kquant.py quantize "$T/f16.gguf" "$T/llama_$1.gguf" "$2" >/dev/null 2>&1 ||
        { echo "gguf_quantize: FAIL: llama.cpp did not quantize to $1"; exit 1; }
    "$PY" tests/gguf_compare.py "$T/$1.gguf" "$T/llama_$1.gguf" >"$T/cmp.txt" ||
        { echo "gguf_quantize: FAIL: $1 differs from llama.cpp's:"; head -20 "$T/cmp.txt"; exit 1; }
    echo "gguf_quantize: $1 tensors $(head -1 "$T/cmp.txt"), byte for byte llama.cpp's"
done
ref=$("$PY" tests/gguf_kquant.py nll "$T/q4_k_m.gguf" "$T/q4_k_m.gguf.json" 2>"$T/llama.log") ||
    { cat "$T/llama.log"; exit 1; }
awk -v q4="$q4" -v ref="$ref" 'BEGIN {
    printf "gguf_quantize: q4_k_m perplexity in pocketlm %.4f, in llama.cpp %.4f\n", exp(q4), exp(ref)
    d = exp(q4 - ref) - 1
    if (d < -0.02 || d > 0.02) { print "gguf_quantize: FAIL: not within 2%"; exit 1 }
    print "gguf_quantize: ok"
}'
