#!/bin/sh
# eval_paws.sh — `make eval`: the paraphraser's quality on the PAWS test label-1 pairs, side by side,
# inputs and references detokenized (pocketlm eval's default for PAWS: "Hello , world ." is scored
# as "Hello, world."):
#   copy        the copy baseline (output = input)
#   base-0shot  the base model with the task template (plain template: it lacks the task tokens)
#   lora-old    an adapter without the diversity control ($ADAPTER: the paws-lora of before
#               2026-12-05, kept by git in its history: `git show 2151920:models/paws-lora/...`), greedy
#               (skipped, with a message, when it is absent)
#   lora-div    the shipped adapter with it ($NEW_ADAPTER, default models/paws-lora), one row per
#               diversity setting of $DIVERSITY (skipped, with a message, when it is absent)
# and, when named in ONLY: base-3shot (3 examples from PAWS dev in the prompt), lora-old-topk8 (the
# old adapter with the seed's sampling: top-k 8, temperature 0.8, seed 1).
# Each run writes $OUT_DIR/<name>/report.md, report.json, outputs.tsv, tradeoff.svg (pocketlm eval
# --out); the table of all of them is printed and written to $OUT_DIR/table.md, the chart of all of
# them (BLEU against self-BLEU) to $OUT_DIR/tradeoff.svg, and the table is kept with the date,
# commit, machine and command as a new file eval/history/YYYY-MM-DD-HHMM-eval.md (EVAL_OUT names
# another file, EVAL_HISTORY another folder; EVAL_HISTORY=none keeps none). EVAL.md and the model
# cards hold the current figures, edited by hand from those files.
#
# Env: MODEL, ADAPTER (the old adapter, models/paws-lora-v1), NEW_ADAPTER (models/paws-lora),
# DIVERSITY (the settings of the new one, 0,0.25,0.5,0.75,1), DATA (PAWS test.tsv), SHOTS (PAWS
# dev.tsv), LIMIT (rows, default all), DTYPE (q8_0), THREADS (2), OUT_DIR (build/eval), ONLY
# (names to run).
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PLM=$BUILD/pocketlm
MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
ADAPTER=${ADAPTER:-models/paws-lora-v1}
NEW_ADAPTER=${NEW_ADAPTER:-models/paws-lora}
DIVERSITY=${DIVERSITY:-0,0.25,0.5,0.75,1}
PAWS=${PAWS:-data/paws}
DATA=${DATA:-$PAWS/test.tsv}
SHOTS=${SHOTS:-$PAWS/dev.tsv}
LIMIT=${LIMIT:-0}
DTYPE=${DTYPE:-q8_0}
THREADS=${THREADS:-2}
OUT_DIR=${OUT_DIR:-$BUILD/eval}
ONLY=${ONLY-copy base-0shot lora-old lora-div}
NAMES="copy base-0shot base-3shot lora-old lora-old-topk8 lora-div"
mkdir -p "$OUT_DIR"
[ -x "$PLM" ] || make BUILD="$BUILD" "$PLM"

run() { # run NAME ARGS...: one eval, its JSON lines (one per setting) kept in $OUT_DIR/NAME.json
    name=$1; shift
    case " $ONLY " in *" $name "*) ;; *) return 0 ;; esac
    echo "eval: $name" >&2
    "$PLM" eval --data "$DATA" --limit "$LIMIT" --json --out "$OUT_DIR/$name" "$@" > "$OUT_DIR/$name.json"
}
M="-m $MODEL --dtype $DTYPE --threads $THREADS"
run copy --copy
run base-0shot $M
run base-3shot $M --shots 3 --shots-data "$SHOTS"
if [ -d "$ADAPTER" ]; then
    run lora-old $M --lora "$ADAPTER"
    run lora-old-topk8 $M --lora "$ADAPTER" --top-k 8 --temp 0.8 --seed 1
else
    echo "eval: lora-old skipped: no adapter at $ADAPTER (set ADAPTER)" >&2
fi
case " $ONLY " in *" lora-div "*)
    if [ -d "$NEW_ADAPTER" ]; then
        run lora-div $M --lora "$NEW_ADAPTER" --diversity "$DIVERSITY"
    else
        echo "eval: lora-div skipped: no adapter at $NEW_ADAPTER (train it, or set NEW_ADAPTER)" >&2
    fi ;;
esac

# the table: a row per run (and per diversity setting) that has a result
{
    echo "| system | rows | BLEU | self-BLEU | iBLEU | exact copies | ends with marker | length ratio | distance | invented | tok/s |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    for name in $NAMES; do
        [ -s "$OUT_DIR/$name.json" ] || continue
        awk -v name="$name" '
            function num(k,   s) { s = $0; if (!sub(".*\"" k "\": ", "", s)) return "-"; sub(/[,}].*/, "", s); return s }
            { e = num("end_marker_rate"); c = num("copy_rate"); d = num("diversity")
              printf "| %s | %s | %.2f | %.2f | %.2f | %.1f%% | %s | %.3f | %.1f | %.1f%% | %s |\n",
                  name (d == "null" || d == "-" ? "" : " D=" d), num("n"),
                  num("bleu"), num("self_bleu"), num("ibleu"), 100 * c,
                  e == "null" ? "-" : sprintf("%.1f%%", 100 * e), num("len_ratio"), num("distance"),
                  100 * num("invented_rate"), name == "copy" ? "-" : sprintf("%.0f", num("tok_s")) }' "$OUT_DIR/$name.json"
    done
} > "$OUT_DIR/table.md"
cat "$OUT_DIR/table.md"
# the chart: BLEU against self-BLEU of every run, a series per system
set --
for name in $NAMES; do [ -s "$OUT_DIR/$name.json" ] && set -- "$@" "$OUT_DIR/$name.json"; done
[ $# -gt 0 ] && "$PLM" eval --plot "$OUT_DIR/tradeoff.svg" "$@" && echo "eval: wrote $OUT_DIR/tradeoff.svg" >&2

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
    echo "Data: \`$DATA\`, label-1 rows$( [ "$LIMIT" = 0 ] || echo ", the first $LIMIT"), inputs and references detokenized; model \`$MODEL\` ($DTYPE, $THREADS threads), adapters \`$ADAPTER\` (old) and \`$NEW_ADAPTER\` (diversity $DIVERSITY)."
    echo "Command: \`ONLY=\"$ONLY\" LIMIT=$LIMIT DTYPE=$DTYPE THREADS=$THREADS NEW_ADAPTER=$NEW_ADAPTER DIVERSITY=$DIVERSITY sh scripts/eval_paws.sh\`; each row is"
    echo "\`pocketlm eval --data $DATA --json\` with its flags (the script's run lines); sacreBLEU-exact corpus BLEU."
    echo
    cat "$OUT_DIR/table.md"
} > "$OUT"
echo "eval: wrote $OUT" >&2
