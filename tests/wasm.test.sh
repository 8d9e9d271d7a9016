#!/bin/sh
# wasm.test.sh: build the wasm modules (make wasm) and test both SIMD builds in node:
#  - tests/test_matmul.c and test_matmul_backward.c compiled to wasm and run in node: the SIMD128 build (its wasm kernels) and
#    the relaxed-SIMD build (wasm and relaxed kernels), each against the scalar reference, Q8_0 bit
#    for bit; the relaxed one in V8's baseline compiler (Liftoff) and its optimizing one (TurboFan),
#    since node tiers up while a test runs and the two compile relaxed instructions separately;
#  - tests/test_wasm.mjs (build/web/pocketlm.js against the native library), twice: node with
#    relaxed SIMD turned off (feature detection must load the SIMD128 build) and on (node 20:
#    --experimental-wasm-relaxed-simd; it must load the relaxed one).
# SKIP (tests/lib.sh) only when emcc or node is not installed.
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
RELAXED_ON=--experimental-wasm-relaxed-simd
RELAXED_OFF=--no-experimental-wasm-relaxed-simd

# the matmul tests (forward: test_matmul; training products: test_matmul_backward) compiled to wasm
# (single-threaded) and run in node
EMCC="env NODE_PATH=/usr/share/nodejs emcc"
MATMUL_LIB="src/matmul.c src/matmul_wasm.c src/matmul_backward.c src/cpu.c src/pool.c src/base.c"
MATMUL_FLAGS="-std=c11 -O2 -Iinclude -Isrc -Itests -sENVIRONMENT=node -sWASM_ASYNC_COMPILATION=0 -sALLOW_MEMORY_GROWTH"
run_matmul() { # LOG NODE-ARGS...: run, print the last line, fail with the whole log
    log=$1
    shift
    node "$@" >"$log" 2>&1 || { cat "$log"; exit 1; }
    tail -n 1 "$log"
}
for t in test_matmul test_matmul_backward; do
    # shellcheck disable=SC2086
    $EMCC $MATMUL_FLAGS -msimd128 -sSINGLE_FILE -o "$BUILD/tests/$t.cjs" tests/$t.c $MATMUL_LIB -lm
    run_matmul "$BUILD/tests/$t.wasm.log" $RELAXED_OFF "$BUILD/tests/$t.cjs"
    # shellcheck disable=SC2086
    $EMCC $MATMUL_FLAGS -msimd128 -mrelaxed-simd --js-library scripts/wasm_relaxed_lib.js \
        -o "$BUILD/tests/$t-relaxed.cjs" tests/$t.c $MATMUL_LIB -lm
    node scripts/wasm_relaxed.mjs "$BUILD/tests/$t-relaxed.cjs" >/dev/null
    for tier in --liftoff-only --no-liftoff; do
        printf '%s: ' "$t relaxed $tier"
        run_matmul "$BUILD/tests/$t-relaxed$tier.log" $RELAXED_ON $tier \
            "$BUILD/tests/$t-relaxed.cjs"
    done
done

# pocketlm.js in node: relaxed SIMD off, then on; PLM_EXPECT_SIMD is the build it must pick
rc=0
PLM_EXPECT_SIMD=simd128 BUILD="$BUILD" node $RELAXED_OFF tests/test_wasm.mjs || rc=1
PLM_EXPECT_SIMD=relaxed BUILD="$BUILD" node $RELAXED_ON tests/test_wasm.mjs || rc=1
exit $rc
