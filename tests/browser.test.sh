#!/bin/sh
# browser.test.sh: tests/browser.test.mjs (the web app in Chromium, served by `pocketlm serve`).
# Builds the wasm module first (make wasm, as wasm.test.sh does). SKIP (exit 0) when something it
# needs is absent: the real model (`make model`), emcc, /usr/bin/chromium or
# node_modules/playwright-core (`make setup`).
set -u
BIN=${BUILD:-build}/pocketlm
MODEL=${PLM_MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
skip() { echo "browser.test.sh: SKIP: $1"; exit 0; }
[ -x "$BIN" ] || { echo "browser.test.sh: $BIN not built"; exit 1; }
[ -f "$MODEL" ] || skip "no $MODEL (make model)"
[ -x /usr/bin/chromium ] || skip "no /usr/bin/chromium (make setup)"
[ -d node_modules/playwright-core ] || skip "no node_modules/playwright-core (make setup)"
case $BIN in *san*) skip "not under sanitizers (the server's ASan pass is in serve.test.sh)" ;; esac
command -v emcc >/dev/null 2>&1 || skip "emcc not found (make setup): no wasm build to serve"
make -s wasm >/dev/null || { echo "browser.test.sh: make wasm failed"; exit 1; }
exec node tests/browser.test.mjs "$BIN" "$MODEL"
