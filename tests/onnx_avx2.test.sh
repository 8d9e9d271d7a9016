#!/bin/sh
# onnx_avx2.test.sh: the int8 and int4 ONNX exports of the real SmolLM2 on an x86 CPU with AVX2 and
# neither AVX-512 nor VNNI, emulated by qemu-x86_64 -cpu Haswell (Debian qemu-user, QEMU 7.2 TCG):
# the CPUs where onnxruntime's u8 x s8 integer kernel saturates (the old MatMulInteger int8 export
# gave logits NMSE 1.7 and one repeated token there, and was fine on AVX-512 VNNI). In order:
#   1. the emulated CPU reports AVX2 and FMA, no AVX-512, no VNNI (tests/cpu_features.c);
#   2. onnxruntime-node takes its AVX2 integer kernel there: a u8 x s8 MatMulInteger saturates
#      under qemu (tests/onnx_cpu_probe.mjs; exact natively on a VNNI machine);
#   3. onnxruntime-node, int8 (model_quantized.onnx) under emulation: the greedy tokens of the fp32
#      export (run natively) after the first 4 tokens of prompt 5 of tests/ref/smollm2-real.json (a
#      4-token prefill, then cached steps), 3 tokens, logits NMSE <= 1e-6 at each (on this Q4_1 model
#      int8 is exact up to float rounding: the NMSE is the sharp check, a saturating kernel gave 1.7)
#      -- far fewer than onnx_real.test.sh's 20 prompts x 32 tokens natively, for time;
#   4. transformers.js (on onnxruntime-node), dtype q8, under emulation: the fp32 tokens of prompt 13
#      (a single token: decode steps only), 3 tokens;
#   5. int4 (model_q4.onnx) perplexity under emulation within 5% of fp32's (native), 8 PAWS tokens
#      (one 8-token prefill).
# Emulation costs each token row of a forward pass 11-20 s here, whether in a prefill or a step (a
# 2-vCPU Intel Xeon: 673 s with a 16-token prefill in 3 and 24 tokens in 5; these counts take about
# 5 minutes). QEMU_CPU overrides the CPU model
# (default: Haswell without the few features TCG cannot emulate, so qemu prints no warnings).
# SKIPs without qemu-x86_64 (scripts/setup.sh installs qemu-user), on a host other than x86_64,
# without the model (make model) or node_modules/onnxruntime-node.
set -u
B=${BUILD:-build}
M=models/SmolLM2-135M-Instruct.Q4_1.gguf
CPU=${QEMU_CPU:-Haswell,-pcid,-x2apic,-tsc-deadline,-hle,-invpcid,-rtm}
say() { echo "onnx_avx2: $*"; }
command -v qemu-x86_64 >/dev/null 2>&1 || { say "SKIP (no qemu-x86_64: apt-get install qemu-user)"; exit 0; }
[ "$(uname -m)" = x86_64 ] || { say "SKIP (host is $(uname -m), not x86_64)"; exit 0; }
[ -f "$M" ] || { say "SKIP (no $M: make model)"; exit 0; }
[ -d node_modules/onnxruntime-node ] || { say "SKIP (no node_modules/onnxruntime-node)"; exit 0; }
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fail=0
bad() { say "FAIL: $*"; fail=1; }
NODE=$(command -v node)
emu() { qemu-x86_64 -cpu "$CPU" "$@"; }
t0=$(date +%s)

# 1. the emulated CPU
${CC:-cc} -std=c11 -O2 -o "$d/cpu" tests/cpu_features.c || bad "cannot build tests/cpu_features.c"
want="avx2 1 fma 1 avx512f 0 avx512bw 0 avx512vnni 0 avxvnni 0"
got=$(emu "$d/cpu")
say "emulated CPU ($CPU): $got; native: $("$d/cpu")"
[ "$got" = "$want" ] || bad "the emulated CPU is not AVX2 without AVX-512/VNNI: $got"

# 2. onnxruntime's integer path under emulation
probe=$(emu "$NODE" tests/onnx_cpu_probe.mjs) || bad "probe under qemu"
say "onnxruntime u8 x s8 probe: emulated $probe; native $(node tests/onnx_cpu_probe.mjs)"
case "$probe" in "u8s8 saturated"*) ;; *) bad "onnxruntime under qemu did not take its AVX2 kernel" ;; esac
[ $fail = 0 ] || { say "FAILED"; exit 1; }

# the export and the native fp32 references
"$B/pocketlm" export -m "$M" --format onnx --quant none,int8,int4 --out "$d/e" >/dev/null || bad "export"
node tests/onnx_greedy.mjs "$d/e" - --only 5,13 --prompt-tokens 4 --tokens 3 --save-ref "$d/ref.json" ||
    bad "fp32 reference"
ppl=$(node tests/onnx_perplexity.mjs "$d/e" model_q4.onnx --tokens 8 --window 8)
echo "$ppl" | sed 's/^onnx_perplexity/onnx_avx2: native perplexity/'
ref=$(echo "$ppl" | sed -n 's/^onnx_perplexity model.onnx: \([0-9.]*\).*/\1/p')
[ -n "$ref" ] || bad "no native fp32 perplexity"
say "native part: $(( $(date +%s) - t0 )) s"

# 3-5. under emulation (run: a command under qemu, its output prefixed, FAIL on a non-zero exit)
run() {
    what=$1
    shift
    out=$(emu "$NODE" "$@" 2>&1)
    rc=$?
    printf '%s\n' "$out" | sed 's/^/onnx_avx2: emulated: /'
    [ $rc = 0 ] || bad "$what under qemu"
}
run "int8 greedy" tests/onnx_greedy.mjs "$d/e" model_quantized.onnx --only 5 --prompt-tokens 4 --tokens 3 \
    --load-ref "$d/ref.json" --max-nmse 1e-6
run "transformers.js q8" tests/onnx_transformersjs_greedy.mjs "$d/e" q8 --only 13 --expect "$d/ref.json"
run "int4 perplexity" tests/onnx_perplexity.mjs "$d/e" model_q4.onnx --tokens 8 --window 8 --ref-ppl "$ref"
say "$(( $(date +%s) - t0 )) s"
[ $fail = 0 ] && say "ok" || say "FAILED"
exit $fail
