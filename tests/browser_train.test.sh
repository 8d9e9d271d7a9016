#!/bin/sh
# browser_train.test.sh: tests/browser_train.test.mjs (the Train view of the web app in Chromium,
# served by `pocketlm serve`: drop a JSONL, train, reload mid-run, resume, download, compare with
# `pocketlm finetune`, generate). Builds the wasm modules first. SKIP (exit 0) when something it
# needs is absent (tests/lib.sh): the real model (`make model`), emcc, /usr/bin/chromium or
# node_modules/playwright-core (`make setup`).
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
BIN=${BUILD:-build}/pocketlm
need_bin "$BIN"
case $BIN in *san*) echo "SKIP $TEST: not run under sanitizers"; exit 0 ;; esac
need_model
need_file /usr/bin/chromium "make setup"
need_dir node_modules/playwright-core "make setup"
need_cmd node "make setup"
need_cmd emcc "make setup"
make -s BUILD="${BUILD:-build}" wasm >/dev/null || { echo "browser_train.test.sh: make wasm failed"; exit 1; }
exec node tests/browser_train.test.mjs "$BIN" "$MODEL" "${BUILD:-build}"
