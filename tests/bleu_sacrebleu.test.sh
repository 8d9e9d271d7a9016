#!/bin/sh
# bleu_sacrebleu.test.sh: pocketlm's BLEU (`pocketlm eval --score HYP REF`, i.e. plm_bleu) against
# PyPI sacrebleu's corpus_bleu on 500 random pairs made from PAWS test sentences with random edits
# (tests/bleu_ref.py): the whole corpus and each block of 50 lines must agree within 1e-6; and
# `pocketlm eval --copy` on PAWS test must give sacrebleu's BLEU of sentence1 against sentence2.
# Runs where /usr/bin/python3 imports sacrebleu (make setup runs scripts/setup_ref.sh); SKIP otherwise.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-/usr/bin/python3}
. tests/lib.sh
B=${BUILD:-build}
PAWS=${PAWS_TEST:-data/paws/test.tsv}
need_bin "$B/pocketlm"
need_py "make setup (scripts/setup_ref.sh)" sacrebleu
need_file "$PAWS" "git checkout -- data (it is in the repository)"
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
$PY tests/bleu_ref.py make "$PAWS" 500 1234 "$d/hyp" "$d/ref" || exit 1
fail=0
# check NAME HYP REF: both scores, and whether they agree within 1e-6
check() {
    ours=$("$B/pocketlm" eval --score "$2" "$3" | sed -E 's/^BLEU = ([0-9.]+).*/\1/')
    theirs=$($PY tests/bleu_ref.py score "$2" "$3" 2>/dev/null)
    ok=$(awk -v a="$ours" -v b="$theirs" 'BEGIN { d = a - b; if (d < 0) d = -d; print (a != "" && b != "" && d <= 1e-6) ? "ok" : "FAIL" }')
    echo "  $1: pocketlm $ours sacrebleu $theirs $ok"
    [ "$ok" = ok ] || fail=1
}
check "500 pairs" "$d/hyp" "$d/ref"
for k in 0 1 2 3 4 5 6 7 8 9; do
    a=$((k * 50 + 1)) ; b=$((k * 50 + 50))
    sed -n "${a},${b}p" "$d/hyp" > "$d/h$k" ; sed -n "${a},${b}p" "$d/ref" > "$d/r$k"
    check "lines $a-$b" "$d/h$k" "$d/r$k"
done
# the copy baseline of `pocketlm eval --copy --no-detok` (its TSV reader, label-1 rows, --json, the
# text as written) on the first 300 label-1 rows: BLEU(sentence1, sentence2) and self-BLEU 100
ours=$("$B/pocketlm" eval --copy --no-detok --data "$PAWS" --limit 300 --json |
    sed -E 's/.*"bleu": ([0-9.]+).*"self_bleu": ([0-9.]+).*/\1 \2/')
theirs=$($PY - "$PAWS" <<'PY' 2>/dev/null
import sys, sacrebleu
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1], encoding="utf-8")][1:]
r = [x for x in rows if len(x) == 4 and x[3].strip() == "1"][:300]
s1, s2 = [x[1].strip() for x in r], [x[2].strip() for x in r]
print("%.4f %.4f" % (sacrebleu.corpus_bleu(s1, [s2]).score, sacrebleu.corpus_bleu(s1, [s1]).score))
PY
)
echo "  eval --copy (300 rows): pocketlm $ours sacrebleu $theirs"
[ -n "$ours" ] && [ "$ours" = "$theirs" ] || { echo "  copy baseline differs"; fail=1; }
[ $fail = 0 ] && echo "bleu_sacrebleu: ok" || echo "bleu_sacrebleu: FAILED"
exit $fail
