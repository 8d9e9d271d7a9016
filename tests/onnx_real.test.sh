#!/bin/sh
# onnx_real.test.sh: the ONNX export of the real SmolLM2-135M (models/, `make model`):
#   - onnxruntime-node gives pocketlm's logits for a prompt within 1e-4 (fp32; int8 NMSE < 5e-3)
#     and the same greedy continuation, through the KV cache and batch 2 with left padding
#     (tests/onnx_check.mjs); onnx.checker accepts every file;
#   - int8 (model_quantized.onnx, transformers.js dtype q8) gives the fp32 export's greedy tokens on
#     the 20 prompts of tests/ref/smollm2-real.json x 32 tokens in onnxruntime-node, logits NMSE
#     <= 1e-6 (this model's weights are on Q4_1 / Q8_0 grids, which int8 and int4 hold exactly), and
#     in transformers.js (tests/onnx_greedy.mjs, tests/onnx_transformersjs_greedy.mjs); in
#     onnxruntime-web (wasm, what transformers.js runs in browsers) on 2 prompts, and transformers.js
#     on it on 1 (int8 is slow in wasm: onnxruntime-web dequantizes MatMulNBits weights every run);
#   - int8 and int4 perplexity within 5% of fp32 on 512 PAWS tokens (tests/onnx_perplexity.mjs);
#   - the export with the PAWS adapter (int8 / int4: the adapter as f32 branches beside the quantized
#     base): int8 and int4 perplexity of the adapter's targets in its task template and of PAWS
#     text within 5% of fp32, int8 greedy == fp32 on 20 x 32 (logits NMSE <= 1e-5: the adapter's
#     trained embedding rows are off the 8-bit grid);
#   - transformers.js loads the directory as it is and its greedy text equals `pocketlm generate
#     --temp 0` in fp32 and q8 (q4 reported); the GGUF export keeps the tokenizer metadata
#     consistent with the vocabulary.
# Five to seven minutes on 2 quiet cores. The same on an AVX2 CPU: tests/onnx_avx2.test.sh (emulated).
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
# check: run a node script, its output as is, FAIL on a non-zero exit
check() {
    what=$1
    shift
    node "$@" || bad "$what"
}
P='Rephrase the following:
Input: The cat sat on the mat because it was warm.
Output:'
N=24
t0=$(date +%s)
"$B/tests/test_onnx" --export "$d/smollm2" "$M" --quant none,int8,int4 --text "$P" || bad "export"
ls -l "$d"/smollm2/onnx/*.onnx | awk '{print "onnx_real: " $NF " " $5 " bytes"}' | sed "s|$d/||"
check "onnxruntime-node vs pocketlm" tests/onnx_check.mjs "$d/smollm2"
if has_py onnx; then
    $PY tests/onnx_check.py "$d"/smollm2/onnx/*.onnx | sed 's/;.*//' || bad "onnx.checker"
else
    skip_part onnx.checker "no python module onnx in $PY" "make setup"
fi

# int8 greedy == fp32 greedy: onnxruntime-node 20 x 32 (the fp32 tokens saved for the others),
# transformers.js 20 x 32, onnxruntime-web 2 x 32, transformers.js on onnxruntime-web 1 x 32
check "int8 greedy, onnxruntime-node" tests/onnx_greedy.mjs "$d/smollm2" model_quantized.onnx \
    --save-ref "$d/ref.json" --max-nmse 1e-6
check "int8 greedy, transformers.js" tests/onnx_transformersjs_greedy.mjs "$d/smollm2" q8 \
    --expect "$d/ref.json"
check "int8 greedy, onnxruntime-web" tests/onnx_greedy.mjs "$d/smollm2" model_quantized.onnx --web \
    --only 0,5 --load-ref "$d/ref.json" --max-nmse 1e-6
check "int8 greedy, transformers.js on onnxruntime-web" tests/onnx_transformersjs_greedy.mjs \
    "$d/smollm2" q8 --web --only 13 --expect "$d/ref.json"

# perplexity on PAWS text
check "perplexity" tests/onnx_perplexity.mjs "$d/smollm2"

# with the PAWS adapter (the README's export): fp32 merged, int8 / int4 base + f32 adapter branches;
# perplexity of the adapter's targets in its task template (what a 4-bit requantization of the
# merged weights lost: +50%) and of plain PAWS text; int8 greedy == fp32 on 20 x 32
"$B/pocketlm" export -m "$M" --lora models/paws-lora --format onnx --quant none,int8,int4 \
    --out "$d/paws" >/dev/null || bad "export --lora"
echo "onnx_real: with models/paws-lora:"
check "perplexity, adapter, task targets" tests/onnx_perplexity.mjs "$d/paws" --task --tokens 2048
check "perplexity, adapter" tests/onnx_perplexity.mjs "$d/paws"
check "int8 greedy, adapter" tests/onnx_greedy.mjs "$d/paws" model_quantized.onnx --no-teacher \
    --max-nmse 1e-5

# transformers.js on the text prompt against pocketlm generate
want=$("$B/pocketlm" generate -m "$M" -p "$P" -n $N --temp 0 --json | sed 's/.*"text": \("[^"]*"\).*/\1/')
for dt in fp32 q8 q4; do
    got=$(node tests/onnx_transformersjs.mjs "$d/smollm2" $dt $N "$P" 2>/dev/null | sed 's/.*"text":\("[^"]*"\).*/\1/')
    echo "onnx_real: transformers.js $dt: $got"
    [ $dt != q4 ] && [ "$got" != "$want" ] && bad "transformers.js $dt '$got' != pocketlm '$want'"
done
echo "onnx_real: pocketlm generate:    $want"

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
