#!/bin/sh
# wasm.test.sh: build the wasm module (make wasm) and run tests/test_wasm.mjs against the native
# library. SKIP (tests/lib.sh) only when emcc or node is not installed.
set -eu
cd "$(dirname "$0")/.."
. tests/lib.sh
BUILD=${BUILD:-build}
need_cmd emcc "make setup"
need_cmd node "make setup"
make -s BUILD="$BUILD" wasm "$BUILD/pocketlm" "$BUILD/libpocketlm.a" >/dev/null
mkdir -p "$BUILD/tests"
${CC:-cc} -std=c11 -O2 -Iinclude -o "$BUILD/tests/wasm_logits" tests/wasm_logits.c \
    "$BUILD/libpocketlm.a" -lm -pthread
# the matmul test compiled to wasm (single-threaded) and run in node: the wasm kernels against the
# scalar reference, Q8_0 bit for bit
env NODE_PATH=/usr/share/nodejs emcc -std=c11 -O2 -msimd128 -Iinclude -Isrc -Itests \
    -sENVIRONMENT=node -sWASM_ASYNC_COMPILATION=0 -sSINGLE_FILE -sALLOW_MEMORY_GROWTH \
    -o "$BUILD/tests/test_matmul.cjs" tests/test_matmul.c src/matmul.c src/pool.c src/base.c -lm
node "$BUILD/tests/test_matmul.cjs" >"$BUILD/tests/test_matmul.wasm.log" 2>&1 ||
    { cat "$BUILD/tests/test_matmul.wasm.log"; exit 1; }
tail -n 1 "$BUILD/tests/test_matmul.wasm.log"
BUILD="$BUILD" node tests/test_wasm.mjs
