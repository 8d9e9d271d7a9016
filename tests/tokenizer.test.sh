#!/bin/sh
# tokenizer.test.sh: pocketlm's tokenizer against transformers.js on generated texts
# (tests/tokenizer_live.mjs). Needs node and the npm packages of package.json (npm ci).
set -u
cd "$(dirname "$0")/.."
if [ ! -d node_modules/@huggingface/transformers ]; then
    echo "SKIP: node_modules missing, run npm ci --ignore-scripts --no-audit --no-fund"
    exit 0
fi
exec node tests/tokenizer_live.mjs
