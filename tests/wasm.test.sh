#!/bin/sh
# wasm.test.sh: build the wasm module (make wasm) and run tests/test_wasm.mjs against the native
# library. Skipped, saying so, only when emcc is not installed.
set -eu
BUILD=${BUILD:-build}
if ! command -v emcc >/dev/null 2>&1; then
    echo "wasm: SKIP: emcc not found (apt-get install emscripten), the wasm build was not tested"
    exit 0
fi
make -s BUILD="$BUILD" wasm "$BUILD/pocketlm" "$BUILD/libpocketlm.a" >/dev/null
mkdir -p "$BUILD/tests"
${CC:-cc} -std=c11 -O2 -Iinclude -o "$BUILD/tests/wasm_logits" tests/wasm_logits.c \
    "$BUILD/libpocketlm.a" -lm -pthread
BUILD="$BUILD" node tests/test_wasm.mjs
