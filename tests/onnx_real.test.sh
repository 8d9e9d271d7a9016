#!/bin/sh
# onnx_real.test.sh: the ONNX export of the real SmolLM2-135M (models/, `make model`): onnxruntime-node
# gives pocketlm's logits for a prompt within 1e-4 and the same greedy continuation, through the KV
# cache and batch 2 with left padding (tests/onnx_check.mjs); transformers.js loads the directory as
# it is and its greedy text equals `pocketlm generate --temp 0` (fp32; q8 and q4 reported); the GGUF
# export keeps the tokenizer metadata consistent with the vocabulary. About a minute on 2 cores.
# SKIP (tests/lib.sh) without the model, node or the npm packages.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
B=${BUILD:-build}
M=$MODEL
need_bin "$B/tests/test_onnx"
need_model
need_cmd node "make setup"
need_dir node_modules/onnxruntime-node "make setup"
need_dir node_modules/@huggingface/transformers "make setup"
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fail=0
bad() { echo "onnx_real: FAIL: $*"; fail=1; }
P='Rephrase the following:
Input: The cat sat on the mat because it was warm.
Output:'
N=24
t0=$(date +%s)
"$B/tests/test_onnx" --export "$d/smollm2" "$M" --quant none,int8,int4 --text "$P" || bad "export"
ls -l "$d"/smollm2/onnx/*.onnx | awk '{print "onnx_real: " $NF " " $5 " bytes"}' | sed "s|$d/||"
node tests/onnx_check.mjs "$d/smollm2" || bad "onnxruntime-node vs pocketlm"
want=$("$B/pocketlm" generate -m "$M" -p "$P" -n $N --temp 0 --json | sed 's/.*"text": \("[^"]*"\).*/\1/')
for dt in fp32 q8 q4; do
    got=$(node tests/onnx_transformersjs.mjs "$d/smollm2" $dt $N "$P" 2>/dev/null | sed 's/.*"text":\("[^"]*"\).*/\1/')
    echo "onnx_real: transformers.js $dt: $got"
    [ $dt = fp32 ] && [ "$got" != "$want" ] && bad "transformers.js fp32 '$got' != pocketlm '$want'"
done
echo "onnx_real: pocketlm generate:    $want"
if has_py onnx; then
    $PY tests/onnx_check.py "$d/smollm2/onnx/model.onnx" | sed 's/;.*//' || bad "onnx.checker"
else
    skip_part onnx.checker "no python module onnx in $PY" "make setup"
fi
"$B/pocketlm" export -m "$M" --format gguf --quant q8_0 --out "$d/smollm2.gguf" >/dev/null || bad "gguf export"
if has_py gguf; then
    $PY - "$d/smollm2.gguf" <<'PYEOF' || bad "gguf reader"
import sys, gguf
r = gguf.GGUFReader(sys.argv[1])
t = {x.name: x for x in r.tensors}
n_tok = len(r.fields["tokenizer.ggml.tokens"].data)
vocab = int(r.fields["llama.vocab_size"].parts[-1][0])
rows = int(t["token_embd.weight"].shape[1])
assert n_tok == vocab == rows, (n_tok, vocab, rows)
print(f"onnx_real: gguf reader: ok ({len(t)} tensors, {n_tok} tokens = vocab = embedding rows)")
PYEOF
else
    skip_part gguf-reader "no python module gguf in $PY" "make setup (scripts/setup_ref.sh)"
fi
echo "onnx_real: $(( $(date +%s) - t0 )) s"
[ $fail = 0 ] && echo "onnx_real: ok" || echo "onnx_real: FAILED"
exit $fail
