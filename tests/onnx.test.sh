#!/bin/sh
# onnx.test.sh: `pocketlm export` end to end on the tiny models (tests/ref): ONNX files that
# onnx.checker accepts (tests/onnx_check.py, needs python3-onnx) and that onnxruntime-node runs with
# pocketlm's logits (tests/onnx_check.mjs: fp32 within 1e-4, KV-cache steps, greedy tokens, batch 2
# with left padding; int8/int4 reported), for the tiny Llama, Llama 3, Qwen2, Qwen3 and Gemma 3 models, and
# that transformers.js runs the last four with HF's logits; --lora merges first; GGUF export read by the PyPI gguf
# package when /usr/bin/python3 has it; bad input refused with nothing half-written.
# A part whose peer is missing (python3-onnx, onnxruntime-node, PyPI gguf) prints SKIP and the rest
# runs (tests/lib.sh).
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
B=${BUILD:-build}
need_bin "$B/tests/test_onnx"
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fail=0
say() { printf 'onnx: %s\n' "$*"; }
bad() { say "FAIL: $*"; fail=1; }

# the exports and the C session's reference logits
# (and the other families: Llama 3 RoPE scaling, Qwen2 biases, Qwen3 q/k norms, Gemma 3, also
# with linear RoPE scaling)
for v in tied untied llama3 qwen2 qwen3 gemma3 gemma3-linear; do
    "$B/tests/test_onnx" --export "$d/$v" "tests/ref/tiny-$v" --quant none,int8,int4,int8-qdq ||
        bad "test_onnx --export $v"
done

# onnx.checker on every file
if has_py onnx; then
    $PY tests/onnx_check.py "$d"/*/onnx/*.onnx | sed 's/;.*//' ||
        bad "onnx.checker"
else
    skip_part onnx.checker "no python module onnx in $PY" "make setup"
fi

# onnxruntime-node against the reference
if [ -d node_modules/onnxruntime-node ] && command -v node >/dev/null 2>&1; then
    for v in tied untied llama3 qwen2 qwen3 gemma3 gemma3-linear; do
        node tests/onnx_check.mjs "$d/$v" || bad "onnx_check.mjs $v"
    done
else
    skip_part onnxruntime "no node or node_modules/onnxruntime-node" "make setup"
fi

# transformers.js on the other families' fp32 exports: the class from config.json's model_type,
# the logits of HF transformers (tests/make_ref_arch.py's references)
if [ -d node_modules/@huggingface/transformers ] && command -v node >/dev/null 2>&1 &&
    has_py numpy safetensors; then
    for v in llama3 qwen2 qwen3 gemma3 gemma3-linear; do
        ids=$($PY -c "import sys; from safetensors.numpy import load_file
r = load_file(sys.argv[1]); r['logits'].astype('float32').tofile(sys.argv[2])
print([int(x) for x in r['input_ids']])" "tests/ref/tiny-$v.ref.safetensors" "$d/$v.f32") &&
            node tests/onnx_transformersjs_logits.mjs "$d/$v" "$ids" "$d/$v.f32" ||
            bad "transformers.js on the $v export"
    done
else
    skip_part transformers.js "no node, node_modules/@huggingface/transformers or numpy" "make setup"
fi

# --lora: fp32 is the bytes of exporting `pocketlm merge`'s output; int8 / int4 keep the adapter as
# f32 branches beside the quantized base (so they differ from a merged export), and onnxruntime
# gives pocketlm's logits with the adapter applied at run time (int8 within onnx_check's bound)
"$B/pocketlm" merge -m tests/ref/tiny-tied --lora tests/ref/lora-tied-all --out "$d/merged" >/dev/null &&
    "$B/pocketlm" export -m "$d/merged" --format onnx --out "$d/m1" --quant none,int4 >/dev/null &&
    "$B/pocketlm" export -m tests/ref/tiny-tied --lora tests/ref/lora-tied-all --format onnx \
        --out "$d/m2" --quant none,int4 >/dev/null &&
    cmp -s "$d/m1/onnx/model.onnx" "$d/m2/onnx/model.onnx" &&
    ! cmp -s "$d/m1/onnx/model_q4.onnx" "$d/m2/onnx/model_q4.onnx" &&
    say "--lora: fp32 merged (same bytes), int4 with the adapter's branches" ||
    bad "--lora export: fp32 differs from merge + export, or int4 has no branches"
if [ -d node_modules/onnxruntime-node ]; then
    for v in tied-all untied-qv; do
        "$B/tests/test_onnx" --export "$d/lora-$v" "tests/ref/tiny-${v%-*}" --lora "tests/ref/lora-$v" \
            --quant none,int8,int4 && node tests/onnx_check.mjs "$d/lora-$v" | sed "s/^/lora-$v: /" ||
            bad "--lora $v: onnxruntime vs pocketlm with the adapter"
    done
fi

# GGUF export (with --lora) read back by pocketlm and by the gguf package
for q in f32 q8_0; do
    "$B/pocketlm" export -m tests/ref/tiny-untied --lora tests/ref/lora-untied-all --format gguf \
        --quant $q --out "$d/t-$q.gguf" >/dev/null || bad "gguf export $q"
    "$B/pocketlm" info -m "$d/t-$q.gguf" >/dev/null || bad "pocketlm cannot read its $q gguf"
done
if has_py gguf; then
    $PY - "$d/t-f32.gguf" "$d/t-q8_0.gguf" <<'EOF' || bad "gguf reader"
import sys, gguf
for path in sys.argv[1:]:
    r = gguf.GGUFReader(path)
    t = {x.name: x for x in r.tensors}
    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
    vocab = int(r.fields["llama.vocab_size"].parts[-1][0])
    rows = int(t["token_embd.weight"].shape[1])
    assert arch == "llama" and rows == vocab and "output.weight" in t, (arch, rows, vocab)
    print(f"onnx: gguf reader {path.split('/')[-1]}: ok ({len(t)} tensors, vocab {vocab}, "
          f"{t['blk.0.attn_q.weight'].tensor_type.name})")
EOF
else
    skip_part gguf-reader "no python module gguf in $PY" "make setup (scripts/setup_ref.sh)"
fi

# bad input: clear errors, nothing half-written
out=$("$B/pocketlm" export -m tests/ref/tiny-tied --format onnx --out "$d/tied" 2>&1) &&
    bad "an existing --out was overwritten without --force"
echo "$out" | grep -q "exists; use --force" || bad "no 'exists' message: $out"
"$B/pocketlm" export -m tests/ref/tiny-tied --format onnx --out "$d/tied" --force >/dev/null ||
    bad "--force refused"
"$B/pocketlm" export -m tests/ref/tiny-tied --format onnx --quant int3 --out "$d/x" 2>/dev/null
[ $? = 2 ] || bad "--quant int3 is not a usage error"
"$B/pocketlm" export -m tests/ref/tiny-tied --format gguf --out "$d/x.bin" 2>/dev/null
[ $? = 2 ] || bad "a gguf --out without .gguf is not a usage error"
mkdir "$d/scaled" && cp tests/ref/tiny-tied/model.safetensors "$d/scaled/" &&
    sed 's/"rope_scaling": null/"rope_scaling": {"type": "dynamic", "factor": 2.0}/' \
        tests/ref/tiny-tied/config.json >"$d/scaled/config.json"
out=$("$B/pocketlm" export -m "$d/scaled" --format onnx --out "$d/scaled-onnx" 2>&1) &&
    bad "a model with rope_scaling was exported"
echo "$out" | grep -q "rope_scaling" || bad "no rope_scaling message: $out"
# no space: a file size limit makes writes fail (EFBIG) like a full disk
out=$(sh -c 'trap "" XFSZ; ulimit -f 200; exec "$0" export -m tests/ref/tiny-tied --format onnx \
    --out "$1" --quant all' "$B/pocketlm" "$d/full" 2>&1) && bad "export past the size limit succeeded"
[ -e "$d/full" ] || [ -e "$d/full.tmp" ] && bad "a failed export left files: $(ls "$d")"
say "refusals: $(echo "$out" | head -n 1)"

[ $fail = 0 ] && say "ok" || say "FAILED"
exit $fail
