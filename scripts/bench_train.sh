#!/bin/sh
# bench_train.sh — `make bench-train`: LoRA training throughput on the real SmolLM2-135M with the
# default config (r 8, alpha 16, dropout 0.05, q_proj,v_proj, the two task tokens trained; batch 8
# PAWS dev examples, ~70 tokens each), 2 threads, and peak RSS, on an f32 base (PyTorch's peer), a
# q8_0 base and the file's Q4_1 kept (--dtype auto: QLoRA-style); in the same run the same config
# under PyTorch + PEFT (scripts/bench_train_torch.py, when scripts/setup_ref.sh has installed it).
# tok/s counts every token of every example. pocketlm runs on the CPU's own kernel path and, when
# that is wider (AVX-512), again with PLM_ISA=avx2; the section says where it ran (CPU, the flags
# the kernels use, the paths). Writes a new dated file in benchmarks/history/ (its path is
# printed; BENCH_OUT names another file).
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
STEPS=${STEPS:-8}
PAWS=${PAWS:-data/paws}
. scripts/bench_lib.sh # history_file
OUT=${BENCH_OUT:-$(history_file bench-train)}
W=$BUILD/bench-train
mkdir -p "$W"
[ -x "$BUILD/pocketlm" ] || make BUILD="$BUILD" "$BUILD/pocketlm"
head -41 "$PAWS/dev.tsv" > "$W/eval.tsv" # a small eval set: the run measures training
# where it runs: `pocketlm info` names the CPU, the flags its kernels use and the kernel path
INFO=$(PLM_ISA= "$BUILD/pocketlm" info -m "$MODEL")
CPU=$(echo "$INFO" | sed -n 's/^cpu  *//p'); FEAT=$(echo "$INFO" | sed -n 's/^cpu_features  *//p')
KPATH=$(echo "$INFO" | sed -n 's/^kernel_path  *//p')
AVX2=0; [ "$KPATH" != avx2 ] && PLM_ISA=avx2 "$BUILD/pocketlm" info -m "$MODEL" >/dev/null 2>&1 && AVX2=1
# plm_train ISA DTYPE NAME: finetune on path ISA (empty: the CPU's own), the base as DTYPE, into
# $W/NAME; sets plm and rss:
# steady-state tokens/s over the steps after the first two, without the last one (its elapsed time
# includes the final evaluation), and the peak RSS in MB
plm_train() {
    rm -rf "$W/$3"
    PLM_ISA=$1 /usr/bin/time -v "$BUILD/pocketlm" finetune -m "$MODEL" --dtype "$2" --data "$PAWS/dev.tsv" \
        --eval-data "$W/eval.tsv" --out "$W/$3" --max-steps "$STEPS" --threads 2 > "$W/$3.log" 2>&1
    plm=$(awk '/eval_loss/ { next } { s = $0; sub(/.*"step": /, "", s); sub(/,.*/, "", s);
        t = $0; sub(/.*"tokens": /, "", t); sub(/,.*/, "", t);
        e = $0; sub(/.*"elapsed": /, "", e); sub(/[,}].*/, "", e);
        if (s + 0 == 2) { t0 = t + 0; e0 = e + 0 } lt = t + 0; le = e + 0 }
        END { if (le > e0) printf "%.1f", (lt - t0) / (le - e0); else print "n/a" }' "$W/$3/metrics.jsonl")
    rss=$(awk '/Maximum resident/ { printf "%.0f", $6 / 1024 }' "$W/$3.log")
}
plm_train "" f32 adapter; plm1=$plm; rss1=$rss
plm_train "" q8_0 adapter-q8_0; plmq8=$plm; rssq8=$rss
plm_train "" auto adapter-q4_1; plmq4=$plm; rssq4=$rss
if [ $AVX2 = 1 ]; then plm_train avx2 f32 adapter-avx2; plm2=$plm; rss2=$rss; fi
plm=$plm1; rss=$rss1
torch="skipped (no /usr/bin/python3 torch+peft: scripts/setup_ref.sh)"
if /usr/bin/python3 -c "import torch, peft, transformers" 2>/dev/null; then
    [ -d "$BUILD/smollm2-f32" ] || "$BUILD/pocketlm" convert "$MODEL" "$BUILD/smollm2-f32"
    # lines: torch-train-tok_s THREADS TOKENS SECONDS TOK_S; torch-train-peak_rss_mb THREADS 0 - MB
    out=$(/usr/bin/python3 scripts/bench_train_torch.py "$BUILD/smollm2-f32" "$PAWS/dev.tsv" "$STEPS" 2 2>/dev/null)
    torch=$(echo "$out" | awk '$1 == "torch-train-tok_s" { printf "%.1f", $5 }')
    trss=$(echo "$out" | awk '$1 == "torch-train-peak_rss_mb" { printf "%.0f", $5 }')
fi
{
    echo "# $(date '+%Y-%m-%d %H:%M') — bench-train: LoRA training, pocketlm $(git rev-parse --short HEAD 2>/dev/null || echo ?)"
    echo
    echo "Raw run of \`make bench-train\` (scripts/bench_train.sh), written to benchmarks/history/ by the"
    echo "script; the current figures, one row per target, are the table at the top of BENCHMARKS.md."
    echo
    echo "Machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "Where: CPU $CPU; flags the kernels use: $FEAT; pocketlm kernel path: $KPATH (auto)$([ $AVX2 = 1 ] && echo ", avx2 (PLM_ISA=avx2, row pocketlm/avx2)"); PyTorch: $(/usr/bin/python3 -c 'import torch; print("torch", torch.__version__ + ",", "; ".join(l.strip(" -") for l in torch.__config__.show().splitlines() if "capability" in l.lower()))' 2>/dev/null || echo "not installed")."
    echo "Command: \`STEPS=$STEPS sh scripts/bench_train.sh\` (pocketlm finetune defaults, --dtype f32|q8_0|auto, 2 threads)."
    echo
    echo "| system | train tok/s | peak RSS MB |"
    echo "|---|---|---|"
    echo "| pocketlm f32 base ($KPATH) | $plm | $rss |"
    echo "| pocketlm q8_0 base ($KPATH) | $plmq8 | $rssq8 |"
    echo "| pocketlm Q4_1 base kept, --dtype auto ($KPATH) | $plmq4 | $rssq4 |"
    [ $AVX2 = 1 ] && echo "| pocketlm/avx2 f32 base | ${plm2:-failed} | ${rss2:-} |"
    echo "| PyTorch + PEFT | ${torch:-failed} | ${trss:-} |"
} | tee "$OUT"
echo "bench-train: wrote $OUT (copy its figures into the table of BENCHMARKS.md)" >&2
