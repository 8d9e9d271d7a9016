#!/bin/sh
# errors.test.sh: `pocketlm info`, `convert` and `export` on bad inputs (missing file, truncated GGUF and
# safetensors, corrupted config.json, shape mismatch, unsupported dtype and architecture), and
# `paraphrase` of empty or blank text (refused before the model loads), --copy-deviate out of
# [0, 64], a --kv-type other than f32/f16. Each case must print one line on stderr and exit 1 (usage errors: 2), never crash
# (exit >= 128).
# Prints one line per case; exits non-zero when any case fails.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
BIN=${BUILD:-build}/pocketlm
REF=tests/ref/tiny-tied
need_bin "$BIN"
[ -d "$REF" ] || { echo "errors.test.sh: $REF missing"; exit 1; }
T=$(mktemp -d /tmp/plm_errors.XXXXXX)
trap 'rm -rf "$T"' EXIT INT TERM
fail=0

# expect CODE NAME ARGS...: run pocketlm ARGS, want exit CODE and exactly one stderr line
expect() {
    want=$1 name=$2
    shift 2
    "$BIN" "$@" >"$T/out" 2>"$T/err"
    rc=$?
    lines=$(grep -c . "$T/err")
    if [ "$rc" -eq "$want" ] && [ "$lines" -eq 1 ]; then
        echo "ok   $name: $(cat "$T/err")"
    else
        echo "FAIL $name: exit $rc (want $want), $lines stderr lines: $(head -c 300 "$T/err")"
        fail=1
    fi
}

# hf DIR: a copy of the tiny reference model to corrupt
hf() { rm -rf "$1"; mkdir -p "$1"; cp "$REF/config.json" "$REF/model.safetensors" "$1/"; }

expect 1 "missing file" info -m "$T/nope.gguf"
expect 1 "missing dir" convert "$T/nope" "$T/out.gguf"
"$BIN" convert "$REF" "$T/ok.gguf" >/dev/null 2>&1 || { echo "FAIL setup: convert $REF"; fail=1; }
head -c 100 "$T/ok.gguf" >"$T/trunc.gguf"
expect 1 "truncated gguf" info -m "$T/trunc.gguf"
head -c 3000 "$T/ok.gguf" >"$T/trunc2.gguf"
expect 1 "gguf without its tensor data" info -m "$T/trunc2.gguf"
printf 'GGML\003\000\000\000' >"$T/magic.gguf"
expect 1 "bad gguf magic" info -m "$T/magic.gguf"
hf "$T/st"
head -c 1000 "$REF/model.safetensors" >"$T/st/model.safetensors"
expect 1 "truncated safetensors" info -m "$T/st"
hf "$T/cfg"
printf '{"model_type": "llama", "hidden_size": 64,' >"$T/cfg/config.json"
expect 1 "corrupted config.json" info -m "$T/cfg"
hf "$T/shape"
sed 's/"intermediate_size": 160/"intermediate_size": 128/' "$REF/config.json" >"$T/shape/config.json"
expect 1 "shape mismatch" info -m "$T/shape"
hf "$T/arch"
sed 's/"model_type": "llama"/"model_type": "mistral"/; s/LlamaForCausalLM/MistralForCausalLM/' \
    "$REF/config.json" >"$T/arch/config.json"
expect 1 "unsupported architecture" info -m "$T/arch"
hf "$T/dtype"
python3 - "$REF/model.safetensors" "$T/dtype/model.safetensors" <<'PY' || fail=1
import sys, struct, json
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
h["model.norm.weight"]["dtype"] = "I32"   # same size as F32: parses, but cannot be converted
hb = json.dumps(h).encode()
hb += b" " * (-len(hb) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(hb)) + hb + b[8 + n:])
PY
expect 1 "unsupported dtype" info -m "$T/dtype"
expect 1 "convert refuses to overwrite" convert "$REF" "$T/ok.gguf"
expect 2 "unknown dtype flag" convert "$REF" "$T/x.gguf" --dtype q5_k
expect 1 "q8_0 into an HF dir" convert "$REF" "$T/hfq8" --dtype q8_0
expect 2 "unknown quant" convert "$REF" "$T/x.gguf" --quant q4_k
expect 1 "q4_k_m into an HF dir" convert "$REF" "$T/hfq4" --quant q4_k_m
expect 2 "unknown gguf export quant" export -m "$REF" --format gguf --quant int8 --out "$T/e.gguf"
expect 1 "export into a missing dir" export -m "$REF" --format gguf --quant q4_k_m --out "$T/no/e.gguf"
expect 2 "info without -m" info
expect 2 "unknown info flag" info -m "$REF" --bogus
expect 2 "unknown kv type" generate -m "$REF" --kv-type bf16 -p "Hi"
expect 2 "unknown kv type (serve)" serve -m "$REF" --kv-type q8_0
expect 2 "paraphrase of empty text" paraphrase -m "$REF" ""
expect 2 "paraphrase of blank text" paraphrase -m "$REF" "Fine." "   "
expect 2 "copy deviations out of range" paraphrase -m "$REF" --copy-deviate 65 "Fine."
exit $fail
