#!/bin/sh
# finetune.test.sh: `pocketlm finetune` end to end on a tiny model (tests/ref/tiny-tied with the
# byte-level tokenizer of tests/data/tiny-bpe) and 24 JSONL pairs, 3 epochs in well under a second:
# metrics.jsonl has one object per step with the fields of docs/DESIGN.md (eval_loss on the eval
# steps), and loss.svg is well-formed XML (python3's parser) with its axes (step, epoch, loss), tick
# labels, the raw and smoothed train curves and one dot per eval step. The diversity control: the
# adapter's tokenizer has the control tokens, pocketlm_task.json has the prompt of each level (as
# task.c builds it) and ascending cuts, and `paraphrase` on the adapter puts the control field in
# its prompt (more prompt tokens than an adapter trained with --diversity-levels 0, whose prompt
# is the old template), and so does the merged model; --min-distance drops near copies
# (data_report.json counts them).
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
BIN=${BUILD:-build}/pocketlm
need_bin "$BIN"
T=$(mktemp -d /tmp/plm_finetune.XXXXXX)
trap 'rm -rf "$T"' EXIT INT TERM
fail=0
bad() { echo "FAIL finetune: $*"; fail=1; }
mkdir "$T/model"
cp tests/ref/tiny-tied/* tests/data/tiny-bpe/* "$T/model/"
for i in $(seq 1 24); do
    echo "{\"input\": \"the cat $i sat on a mat\", \"output\": \"a cat $i sat on the mat\"}"
done >"$T/pairs.jsonl"
# 18 training pairs in batches of 4: 5 steps an epoch, 15 in all; eval every 3 steps: 5 evals
"$BIN" finetune -m "$T/model" --data "$T/pairs.jsonl" --out "$T/ad" --epochs 3 --batch 4 \
    --eval-frac 0.25 --eval-every 3 --max-len 120 --threads 1 --diversity-levels 5 >"$T/log" 2>&1 ||
    { bad "finetune failed"; tail -n 5 "$T/log"; exit 1; }
M=$T/ad/metrics.jsonl
n=$(grep -c . "$M")
ne=$(grep -c '"eval_loss": ' "$M")
fields=$(grep -c '"step": .*"epoch": .*"loss": .*"lr": .*"tok_s": ' "$M")
[ "$n" = 15 ] && [ "$fields" = 15 ] && [ "$ne" = 5 ] &&
    [ "$(grep '"eval_loss": ' "$M" | sed 's/.*"step": \([0-9]*\),.*/\1/' | tr '\n' ' ')" = "3 6 9 12 15 " ] &&
    echo "ok   metrics.jsonl: 15 steps with step, epoch, loss, lr, tok_s; eval_loss at 3 6 9 12 15" ||
    bad "metrics.jsonl: $n lines, $fields with the fields, $ne with eval_loss"
S=$T/ad/loss.svg
if has_py xml; then
    $PY -c 'import sys, xml.dom.minidom as m; m.parse(sys.argv[1])' "$S" 2>"$T/xml" &&
        echo "ok   loss.svg is well-formed XML" || { bad "loss.svg is not well-formed"; cat "$T/xml"; }
else
    skip_part xml "no python3 xml parser" "make setup"
fi
for want in '>step</text>' '>epoch</text>' '>loss (nats per target token)</text>' '>held-out eval loss<' \
    'class="train-raw"' 'class="train-smooth"' '>10</text>' '>3</text>'; do
    grep -qF "$want" "$S" || bad "loss.svg lacks $want"
done
[ "$(grep -c '<circle class="eval"' "$S")" = 5 ] || bad "loss.svg: $(grep -c '<circle class="eval"' "$S") eval dots, want 5"
[ $fail = 0 ] && echo "ok   loss.svg: step, epoch and loss axes with ticks, raw + smoothed train loss, 5 eval dots"

# ---- the diversity control ----
for k in 0 1 2 3 4; do
    grep -qF "\"<|DIVERSITY_$k|>\"" "$T/ad/tokenizer.json" || bad "tokenizer.json lacks <|DIVERSITY_$k|>"
done
grep -qF '"<|DIVERSITY_5|>"' "$T/ad/tokenizer.json" && bad "tokenizer.json has a 6th control token"
if has_py json; then
    $PY - "$T/ad/pocketlm_task.json" <<'PY' || bad "pocketlm_task.json"
import json, sys
t = json.load(open(sys.argv[1]))
want = ["Rephrase the following:\nInput: {input}\nDiversity: <|DIVERSITY_%d|>\nOutput: <|OUTPUT_START|>" % k
        for k in range(5)]
assert t["prompts"] == want, t["prompts"]
assert t["levels"] == 5 and t["target"] == "{output}<|OUTPUT_END|>", t
assert len(t["cuts"]) == 4 and t["cuts"] == sorted(t["cuts"]), t["cuts"]
assert sum(t["level_examples"]) == 24 and t["detok"] is False, t  # JSONL: taken as written
PY
    [ $fail = 0 ] && echo "ok   pocketlm_task.json: the 5 prompts of task.c, 4 ascending cuts, 24 examples"
else
    skip_part json "no python3 json" "make setup"
fi
{ cat "$T/pairs.jsonl"; for i in 1 2 3 4; do echo "{\"input\": \"a copy $i\", \"output\": \"a copy $i\"}"; done; } >"$T/copies.jsonl"
"$BIN" finetune -m "$T/model" --data "$T/copies.jsonl" --out "$T/old" --epochs 1 --batch 4 \
    --eval-frac 0.25 --max-len 120 --threads 1 --diversity-levels 0 --min-distance 30 >"$T/log" 2>&1 ||
    { bad "finetune --diversity-levels 0 failed"; tail -n 5 "$T/log"; }
grep -qF 'DIVERSITY' "$T/old/tokenizer.json" && bad "--diversity-levels 0 added control tokens"
grep -q '"near_copies": 4,' "$T/old/data_report.json" || bad "--min-distance 30 did not drop the 4 copies: $(cat "$T/old/data_report.json")"
ptok() { "$BIN" paraphrase -m "$T/model" --lora "$1" --threads 1 -n 4 --temp 0 --json "the cat sat" |
    sed 's/.*"prompt_tokens": \([0-9]*\).*/\1/'; }
new=$(ptok "$T/ad") old=$(ptok "$T/old")
[ -n "$new" ] && [ -n "$old" ] && [ "$new" -gt "$old" ] &&
    echo "ok   paraphrase: $new prompt tokens with the control field, $old without (--diversity-levels 0)" ||
    bad "paraphrase prompt tokens: '$new' with levels, '$old' without"
# a merged model keeps the control tokens in its tokenizer, so it builds the same prompt
"$BIN" merge -m "$T/model" --lora "$T/ad" --out "$T/merged" >/dev/null 2>&1 || bad "merge failed"
merged=$("$BIN" paraphrase -m "$T/merged" --threads 1 -n 4 --temp 0 --json "the cat sat" |
    sed 's/.*"prompt_tokens": \([0-9]*\).*/\1/')
[ "$merged" = "$new" ] && echo "ok   merged model: the same $merged prompt tokens as the adapter at run time" ||
    bad "merged model: '$merged' prompt tokens, the adapter '$new'"
exit $fail
