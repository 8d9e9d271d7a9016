#!/bin/sh
# eval_paws.sh — `make eval`: the paraphraser's quality on the PAWS test label-1 pairs, side by side:
#   copy        the copy baseline (output = input)
#   base-0shot  the base model with the task template (plain template: it lacks the task tokens)
#   base-3shot  the same with 3 examples from PAWS dev in the prompt
#   lora-greedy the shipped adapter (models/paws-lora), greedy
#   lora-topk8  the same with the seed's sampling: top-k 8, temperature 0.8, seed 1
# (greedy is the decoding chosen on the adapter's held-out dev rows: see its model card)
# Each run writes $OUT_DIR/<name>/report.md, report.json, outputs.tsv (pocketlm eval --out); the
# table of all of them is printed, written to $OUT_DIR/table.md, and kept with the date, commit,
# machine and command as a new file eval/history/YYYY-MM-DD-HHMM-eval.md (EVAL_OUT names another
# file, EVAL_HISTORY another folder; EVAL_HISTORY=none keeps none). EVAL.md and the model card
# (models/paws-lora/README.md) hold the current figures, edited by hand from those files.
#
# Env: MODEL, ADAPTER (default models/paws-lora), DATA (PAWS test.tsv), SHOTS (PAWS dev.tsv),
# LIMIT (rows, default all), DTYPE (q8_0), THREADS (2), OUT_DIR (build/eval), ONLY (names to run).
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PLM=$BUILD/pocketlm
MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
ADAPTER=${ADAPTER:-models/paws-lora}
PAWS=${PAWS:-data/paws}
DATA=${DATA:-$PAWS/test.tsv}
SHOTS=${SHOTS:-$PAWS/dev.tsv}
LIMIT=${LIMIT:-0}
DTYPE=${DTYPE:-q8_0}
THREADS=${THREADS:-2}
OUT_DIR=${OUT_DIR:-$BUILD/eval}
ONLY=${ONLY-copy base-0shot base-3shot lora-greedy lora-topk8}
mkdir -p "$OUT_DIR"
[ -x "$PLM" ] || make BUILD="$BUILD" "$PLM"

run() { # run NAME ARGS...: one eval, its one-line JSON kept in $OUT_DIR/NAME.json
    name=$1; shift
    case " $ONLY " in *" $name "*) ;; *) return 0 ;; esac
    echo "eval: $name" >&2
    "$PLM" eval --data "$DATA" --limit "$LIMIT" --json --out "$OUT_DIR/$name" "$@" > "$OUT_DIR/$name.json"
}
M="-m $MODEL --dtype $DTYPE --threads $THREADS"
run copy --copy
run base-0shot $M
run base-3shot $M --shots 3 --shots-data "$SHOTS"
run lora-greedy $M --lora "$ADAPTER"
run lora-topk8 $M --lora "$ADAPTER" --top-k 8 --temp 0.8 --seed 1

# the table: one row per run that has a result
{
    echo "| system | rows | BLEU | self-BLEU | iBLEU | ends with marker | exact copies | length ratio | tok/s |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for name in copy base-0shot base-3shot lora-greedy lora-topk8; do
        [ -s "$OUT_DIR/$name.json" ] || continue
        awk -v name="$name" '
            function num(k,   s) { s = $0; if (!sub(".*\"" k "\": ", "", s)) return "-"; sub(/[,}].*/, "", s); return s }
            { e = num("end_marker_rate"); c = num("copy_rate")
              printf "| %s | %s | %.2f | %.2f | %.2f | %s | %.1f%% | %.3f | %s |\n", name, num("n"),
                  num("bleu"), num("self_bleu"), num("ibleu"), e == "null" ? "-" : sprintf("%.1f%%", 100 * e),
                  100 * c, num("len_ratio"), name == "copy" ? "-" : sprintf("%.0f", num("tok_s")) }' "$OUT_DIR/$name.json"
    done
} > "$OUT_DIR/table.md"
cat "$OUT_DIR/table.md"

# the dated record of this run
[ "${EVAL_HISTORY:-}" = none ] && exit 0
. scripts/bench_lib.sh # history_file
OUT=${EVAL_OUT:-$(history_file eval "${EVAL_HISTORY:-eval/history}")}
{
    echo "# $(date '+%Y-%m-%d %H:%M') — eval: paraphrase quality on PAWS, pocketlm $(git rev-parse --short HEAD 2>/dev/null || echo ?)$(git diff --quiet HEAD -- src include cli 2>/dev/null || echo ' + uncommitted changes')"
    echo
    echo "Raw run of \`make eval\` (scripts/eval_paws.sh), written to eval/history/ by the script; the"
    echo "current figures are in EVAL.md and the model card, models/paws-lora/README.md."
    echo
    echo "Machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "Data: \`$DATA\`, label-1 rows$( [ "$LIMIT" = 0 ] || echo ", the first $LIMIT"); model \`$MODEL\` ($DTYPE, $THREADS threads), adapter \`$ADAPTER\`."
    echo "Command: \`ONLY=\"$ONLY\" LIMIT=$LIMIT DTYPE=$DTYPE THREADS=$THREADS sh scripts/eval_paws.sh\`; each row is"
    echo "\`pocketlm eval --data $DATA --json\` with its flags (the script's run lines); sacreBLEU-exact corpus BLEU."
    echo
    cat "$OUT_DIR/table.md"
} > "$OUT"
echo "eval: wrote $OUT" >&2
