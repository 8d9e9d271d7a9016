#!/bin/sh
# tokenizer.test.sh: pocketlm's tokenizer against transformers.js on generated texts
# (tests/tokenizer_live.mjs). Needs node and the npm packages of package.json (make setup).
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
need_bin "${BUILD:-build}/pocketlm"
need_cmd node "make setup"
need_dir node_modules/@huggingface/transformers "make setup"
need_file data/smollm2-paraphraser/tokenizer.json "git checkout -- data (it is in the repository)"
need_file data/paws/test.tsv "git checkout -- data (it is in the repository)"
exec node tests/tokenizer_live.mjs
