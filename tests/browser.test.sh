#!/bin/sh
# browser.test.sh: tests/browser.test.mjs (the web app in Chromium, served by `pocketlm serve`).
# Builds the wasm module first (make wasm, as wasm.test.sh does). SKIP (exit 0) when something it
# needs is absent (tests/lib.sh): the real model (`make model`), emcc, /usr/bin/chromium or
# node_modules/playwright-core (`make setup`).
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
BIN=${BUILD:-build}/pocketlm
need_bin "$BIN"
case $BIN in *san*) echo "SKIP $TEST: not run under sanitizers (the server's ASan pass is in serve.test.sh)"; exit 0 ;; esac
need_model
need_file /usr/bin/chromium "make setup"
need_dir node_modules/playwright-core "make setup"
need_cmd node "make setup"
need_cmd emcc "make setup"
make -s wasm >/dev/null || { echo "browser.test.sh: make wasm failed"; exit 1; }
# the merged fine-tuned model the demo's page loads: the page must name it and its adapter
make -s BUILD="${BUILD:-build}" web-model >/dev/null || { echo "browser.test.sh: make web-model failed"; exit 1; }
exec node tests/browser.test.mjs "$BIN" "$MODEL" "${BUILD:-build}/paws-q8_0.gguf"
