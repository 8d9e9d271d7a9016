#!/bin/sh
# lora_peft.test.sh: pocketlm's LoRA adapters in Hugging Face PEFT. test_lora --peft-export writes an
# adapter (plm_lora_save) and its logits from a pocketlm session; PEFT (PeftModel.from_pretrained)
# must give the same logits. Also `pocketlm merge` of a PEFT adapter, loaded by transformers, must
# give PEFT's logits. Runs where /usr/bin/python3 has peft >= 0.15 (make setup runs
# scripts/setup_ref.sh), else SKIP.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
B=${BUILD:-build}
need_bin "$B/tests/test_lora"
$PY -c 'import sys, torch, transformers, peft
sys.exit(tuple(int(x) for x in peft.__version__.split(".")[:2]) < (0, 15))' 2>/dev/null ||
    skip "torch, transformers and peft >= 0.15 in $PY" "make setup (scripts/setup_ref.sh)"
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fail=0
# check: run the python check $@, print its result lines without the libraries' warnings
check() {
    out=$($PY tests/make_ref_lora.py "$@" 2>&1) || { printf '%s\n' "$out" | tail -n 5; fail=1; }
    printf '%s\n' "$out" | grep -E '^(peft|transformers)[ :]' || true
}
for v in tied untied; do
    "$B/tests/test_lora" --peft-export "$d/$v" $v || fail=1
    check --check-c "$d/$v"
done
for a in lora-tied-all:tiny-tied lora-untied-all:tiny-untied; do
    name=${a%%:*}
    "$B/pocketlm" merge -m "tests/ref/${a#*:}" --lora "tests/ref/$name" --out "$d/merged-$name" \
        >/dev/null || fail=1
    check --check-merged "$d/merged-$name" "$name"
done
[ $fail = 0 ] && echo "lora_peft: ok" || echo "lora_peft: FAILED"
exit $fail
