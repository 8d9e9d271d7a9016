#!/bin/sh
# bench_train.sh — `make bench-train`: LoRA training throughput on the real SmolLM2-135M with the
# default config (r 8, alpha 16, dropout 0.05, q_proj,v_proj, the two task tokens trained; batch 8
# PAWS dev examples, ~70 tokens each), 2 threads, and peak RSS; in the same run the same config under
# PyTorch + PEFT (scripts/bench_train_torch.py, when scripts/setup_ref.sh has installed it).
# tok/s counts every token of every example. Writes a new dated file in benchmarks/history/ (its
# path is printed; BENCH_OUT names another file).
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
rm -rf "$W/adapter"
/usr/bin/time -v "$BUILD/pocketlm" finetune -m "$MODEL" --data "$PAWS/dev.tsv" --eval-data "$W/eval.tsv" \
    --out "$W/adapter" --max-steps "$STEPS" --threads 2 > "$W/plm.log" 2>&1
# steady state: tokens/s over the steps after the first two, without the last one (its elapsed time
# includes the final evaluation)
plm=$(awk '/eval_loss/ { next } { s = $0; sub(/.*"step": /, "", s); sub(/,.*/, "", s);
    t = $0; sub(/.*"tokens": /, "", t); sub(/,.*/, "", t);
    e = $0; sub(/.*"elapsed": /, "", e); sub(/[,}].*/, "", e);
    if (s + 0 == 2) { t0 = t + 0; e0 = e + 0 } lt = t + 0; le = e + 0 }
    END { if (le > e0) printf "%.1f", (lt - t0) / (le - e0); else print "n/a" }' "$W/adapter/metrics.jsonl")
rss=$(awk '/Maximum resident/ { printf "%.0f", $6 / 1024 }' "$W/plm.log")
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
    echo "Machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores ($(grep -o -w -E 'avx512f|avx512_vnni|avx512_bf16|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ' | sed 's/ $//')); load average $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "Command: \`STEPS=$STEPS sh scripts/bench_train.sh\` (pocketlm finetune defaults, 2 threads)."
    echo
    echo "| system | train tok/s | peak RSS MB |"
    echo "|---|---|---|"
    echo "| pocketlm f32 base | $plm | $rss |"
    echo "| PyTorch + PEFT | ${torch:-failed} | ${trss:-} |"
} | tee "$OUT"
echo "bench-train: wrote $OUT (copy its figures into the table of BENCHMARKS.md)" >&2
