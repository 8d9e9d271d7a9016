#!/bin/sh
# eval.test.sh: `pocketlm eval` on pairs in each format it reads (PAWS TSV, a two-column TSV, JSONL)
# as the copy baseline: the same scores for the same pairs, PAWS text detokenized unless
# --no-detok, errors that name the file and line; --plot over earlier --json outputs; and on a tiny
# model (tests/ref/tiny-tied) with an adapter fine-tuned here with the diversity control: one JSON
# line per --diversity setting with its level, report.json / outputs.tsv / tradeoff.svg for all of
# them, and a note (one run, no field) for a model without the control tokens.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
BIN=${BUILD:-build}/pocketlm
need_bin "$BIN"
T=$(mktemp -d /tmp/plm_eval.XXXXXX)
trap 'rm -rf "$T"' EXIT INT TERM
fail=0
bad() { echo "FAIL eval: $*"; fail=1; }

# ---- formats, as the copy baseline ----
printf 'id\tsentence1\tsentence2\tlabel\n1\tHello , `` world '"''"' .\tWorld , hello .\t1\n2\tx\ty\t0\n' >"$T/paws.tsv"
printf 'input\treference\nHello, "world".\tWorld, hello.\n' >"$T/plain.tsv"
printf '{"input": "Hello, \\"world\\".", "output": "World, hello."}\n' >"$T/pairs.jsonl"
for f in paws.tsv plain.tsv pairs.jsonl; do
    "$BIN" eval --copy --data "$T/$f" --json --out "$T/out-$f" >"$T/$f.json" 2>"$T/err" ||
        { bad "eval --copy --data $f"; cat "$T/err"; }
done
if [ "$(sort -u "$T/paws.tsv.json" "$T/plain.tsv.json" "$T/pairs.jsonl.json" | wc -l)" = 1 ] &&
    grep -q '"n": 1, .*"copy_rate": 1.0000, .*"copy": true, "diversity": null, "level": null, "distance": 0.0000, "invented_rate": 0.0000' "$T/paws.tsv.json"; then
    echo "ok   eval --copy: PAWS TSV, two-column TSV and JSONL of the same pair score the same"
else
    bad "the three formats differ or lack the fields:"; cat "$T/paws.tsv.json" "$T/plain.tsv.json"
fi
# PAWS text is detokenized by default, and kept with --no-detok
grep -qF 'Hello, "world".	World, hello.' "$T/out-paws.tsv/outputs.tsv" || bad "PAWS not detokenized: $(cat "$T/out-paws.tsv/outputs.tsv")"
"$BIN" eval --copy --data "$T/paws.tsv" --no-detok --out "$T/raw" >/dev/null 2>&1
grep -qF "Hello , \`\` world '' ." "$T/raw/outputs.tsv" || bad "--no-detok changed the text"
"$BIN" eval --copy --data "$T/plain.tsv" --detok --out "$T/forced" >/dev/null 2>&1
grep -q '"detok": true' "$T/forced/report.json" && grep -q '"detok": false' "$T/out-plain.tsv/report.json" ||
    bad "--detok on a two-column TSV, or its default, not in report.json"
[ $fail = 0 ] && echo "ok   eval: PAWS detokenized by default (--no-detok keeps it), other data as written"
# errors name the file and line
printf '{"input": "a", "output": "b"}\n{"input": "a"}\n' >"$T/bad.jsonl"
"$BIN" eval --copy --data "$T/bad.jsonl" >/dev/null 2>"$T/err" &&
    grep -qF "$T/bad.jsonl:2: missing string field \"output\"" "$T/err" ||
    bad "a bad row's note: $(cat "$T/err")"
printf 'a\tb\tc\n' >"$T/bad.tsv"
"$BIN" eval --copy --data "$T/bad.tsv" >/dev/null 2>"$T/err" && bad "a file without a usable row passed"
grep -qF "$T/bad.tsv:1: expected 4 tab-separated columns" "$T/err" || bad "bad.tsv error: $(cat "$T/err")"
"$BIN" eval --copy --data "$T/paws.tsv" --diversity 0.5 >/dev/null 2>&1 && bad "--copy --diversity passed"
"$BIN" eval --copy --data "$T/paws.tsv" --diversity 0,2 >/dev/null 2>&1 && bad "--diversity 2 passed"
[ $fail = 0 ] && echo "ok   eval: errors name the file and line; --diversity out of range is refused"

# ---- a tiny model with the diversity control ----
# The tiny tokenizer has 265 of the model's 320 ids, and a random model's greedy choice may be any:
# ids 265..319 become special tokens, so that every output decodes.
need_py "make setup" json
mkdir "$T/model"
cp tests/ref/tiny-tied/* tests/data/tiny-bpe/* "$T/model/"
$PY - "$T/model/tokenizer.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
n = len(t["model"]["vocab"]) + len(t["added_tokens"])
t["added_tokens"] += [{"id": i, "content": "<|w%d|>" % i, "single_word": False, "lstrip": False,
                       "rstrip": False, "normalized": False, "special": True} for i in range(n, 320)]
json.dump(t, open(sys.argv[1], "w"))
PY
for i in $(seq 1 24); do
    echo "{\"input\": \"the cat $i sat on a mat\", \"output\": \"a cat $i sat on the mat\"}"
done >"$T/train.jsonl"
"$BIN" finetune -m "$T/model" --data "$T/train.jsonl" --out "$T/ad" --epochs 1 --batch 4 \
    --eval-frac 0.25 --max-len 120 --threads 1 --diversity-levels 5 >"$T/log" 2>&1 || { bad "finetune failed"; tail -n 5 "$T/log"; exit 1; }
"$BIN" eval -m "$T/model" --lora "$T/ad" --data "$T/train.jsonl" --limit 4 -n 6 --threads 1 \
    --diversity 0,0.5,1 --json --out "$T/div" >"$T/div.json" 2>"$T/err" || { bad "eval --diversity"; cat "$T/err"; }
[ "$(grep -c . "$T/div.json")" = 3 ] &&
    [ "$(sed 's/.*"diversity": \([0-9.]*\), "level": \([0-9]*\).*/\1:\2/' "$T/div.json" | tr '\n' ' ')" = "0:0 0.5:2 1:4 " ] &&
    [ "$(grep -c . "$T/div/report.json")" = 3 ] && [ "$(grep -c . "$T/div/outputs.tsv")" = 13 ] &&
    [ "$(grep -c '<circle class="run"' "$T/div/tradeoff.svg")" = 4 ] &&
    echo "ok   eval --diversity 0,0.5,1: levels 0 2 4, a JSON line each, report.json, outputs.tsv, tradeoff.svg with the copy point" ||
    { bad "eval --diversity 0,0.5,1:"; cat "$T/div.json"; }
"$BIN" eval -m "$T/model" --data "$T/train.jsonl" --limit 2 -n 4 --threads 1 --diversity 0,1 --json \
    >"$T/base.json" 2>"$T/err" || bad "eval of the base model"
[ "$(grep -c . "$T/base.json")" = 2 ] && grep -q '"diversity": 0, "level": null' "$T/base.json" &&
    grep -q '"diversity": 1, "level": null' "$T/base.json" &&
    grep -q "no diversity control tokens\|plain template" "$T/err" &&
    echo "ok   eval --diversity on a model without the control: a run per setting (decoding only), no level, a note" ||
    { bad "base model with --diversity:"; cat "$T/base.json" "$T/err"; }

# ---- --plot over earlier outputs ----
"$BIN" eval --plot "$T/all.svg" "$T/paws.tsv.json" "$T/div.json" 2>"$T/err" || { bad "--plot"; cat "$T/err"; }
n=$(grep -c '<circle class="run"' "$T/all.svg" 2>/dev/null)
[ "$n" = 4 ] && grep -q 'class="copy-ibleu"' "$T/all.svg" && grep -qF '>div D=0.5<' "$T/all.svg" &&
    echo "ok   eval --plot: 4 runs from 2 files, the copy line, labels from the file names" ||
    bad "--plot: $n dots"
if has_py xml; then
    for f in "$T/all.svg" "$T/div/tradeoff.svg"; do
        $PY -c 'import sys, xml.dom.minidom as m; m.parse(sys.argv[1])' "$f" 2>"$T/xml" || { bad "$f is not well-formed"; cat "$T/xml"; }
    done
else
    skip_part xml "no python3 xml parser" "make setup"
fi
printf '{"n": 1}\n' >"$T/nobleu.json"
"$BIN" eval --plot "$T/x.svg" "$T/nobleu.json" 2>"$T/err" && bad "--plot of a line without bleu passed"
grep -qF "$T/nobleu.json:1:" "$T/err" || bad "--plot error: $(cat "$T/err")"
exit $fail
