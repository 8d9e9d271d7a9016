#!/bin/sh
# browser.test.sh: tests/browser.test.mjs (the web app in Chromium, served by `pocketlm serve`).
# SKIP (exit 0) when something it needs is absent: the real model (`make model`), the wasm build
# (`make wasm`), /usr/bin/chromium or node_modules/playwright-core (`make setup`).
set -u
BIN=${BUILD:-build}/pocketlm
MODEL=${PLM_MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
skip() { echo "browser.test.sh: SKIP: $1"; exit 0; }
[ -x "$BIN" ] || { echo "browser.test.sh: $BIN not built"; exit 1; }
[ -f "$MODEL" ] || skip "no $MODEL (make model)"
[ -f build/web/pocketlm.mjs ] && [ -f build/web/pocketlm-mt.mjs ] || skip "no build/web/pocketlm.mjs (make wasm)"
[ -x /usr/bin/chromium ] || skip "no /usr/bin/chromium (make setup)"
[ -d node_modules/playwright-core ] || skip "no node_modules/playwright-core (make setup)"
case $BIN in *san*) skip "not under sanitizers (the server's ASan pass is in serve.test.sh)" ;; esac
exec node tests/browser.test.mjs "$BIN" "$MODEL"
