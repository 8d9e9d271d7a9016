#!/bin/sh
# wasm_train.test.sh: fine-tuning in the wasm build, in node, against `pocketlm finetune` on the
# tiny model (tests/wasm_train.mjs says what is compared and within what). Builds the wasm modules
# first (make wasm). SKIP (tests/lib.sh) only when emcc or node is not installed.
set -eu
cd "$(dirname "$0")/.."
. tests/lib.sh
BUILD=${BUILD:-build}
case $BUILD in *san*) echo "SKIP $TEST: not run under sanitizers"; exit 0 ;; esac
need_cmd emcc "make setup"
need_cmd node "make setup"
make -s BUILD="$BUILD" wasm "$BUILD/pocketlm" >/dev/null
BUILD="$BUILD" exec node tests/wasm_train.mjs
