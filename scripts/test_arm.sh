#!/bin/sh
# test_arm.sh (make test-arm): the C tests on arm64, emulated. They are cross-compiled with Debian's
# gcc-aarch64-linux-gnu and run under qemu-aarch64 (qemu-user) on three CPU models, so that cpu.c's
# detection (getauxval hwcaps) picks each arm64 path as the one the library runs:
#   max         neon + dotprod + i8mm: every C test; each kernel test runs every path the CPU has
#               (scalar, neon, dotprod, i8mm) against the scalar reference
#   cortex-a76  dotprod, no i8mm: cpu.c must find exactly scalar, neon and dotprod (test_ops' "paths
#               tested" line), and the tests whose results go through the default path (the
#               model, training, LoRA) run on dotprod; the kernel tests' forced paths are the same
#               code as under max, where they already ran
#   cortex-a57  neon only: the same, on neon
# Then every src/*.c and cli/*.c is compiled with clang-14 for arm64 (macOS builds with clang), and
# that build's kernel tests and test_quantize run under max: clang compiles the kernels differently
# (its SDOT is the same inline assembly, but its unrolling and register allocation are its own; the
# Makefile's -ffp-contract=off keeps it from fusing a * b + c, which would change the quantizers' bits).
# The emulated tests are mostly one thread each: the max run goes on one core while the other
# three runs share the other (12 minutes one after another on a 2-vCPU Intel Xeon, about 6 so).
# Emulation says nothing about speed: these runs check correctness only.
# Prints "SKIP test-arm: ..." and exits 0 when the cross compiler, qemu or clang-14 is missing.
set -u
cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}
B=${BUILD:-build}/arm64
BC=${BUILD:-build}/arm64-clang
for tool in aarch64-linux-gnu-gcc qemu-aarch64 clang-14; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP test-arm: $tool missing (make setup installs it)"
        exit 0
    fi
done
# the tests whose results go through the default kernel path (the models built on the kernels)
PATH_TESTS="test_ops test_model test_train test_lora"
tests=""
for f in tests/test_*.c; do tests="$tests $B/tests/$(basename "$f" .c)"; done
path_tests=""
for t in $PATH_TESTS; do path_tests="$path_tests $B/tests/$t"; done

$MAKE --no-print-directory BUILD="$B" CC=aarch64-linux-gnu-gcc AR=aarch64-linux-gnu-ar \
    "$B/pocketlm" $tests || exit 1
$MAKE --no-print-directory BUILD="$BC" CC="clang-14 --target=aarch64-linux-gnu" \
    AR=aarch64-linux-gnu-ar "$BC/pocketlm" "$BC/tests/test_matmul" \
    "$BC/tests/test_matmul_backward" "$BC/tests/test_quantize" || exit 1

mkdir -p build/tests # test_tokenizer saves into build/tests, which make test creates natively
export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu # the arm64 dynamic loader and libc
run() { # run CPU BINARY...: the binaries under qemu-aarch64 -cpu CPU, through tests/run.sh
    cpu=$1
    shift
    echo "== test-arm: qemu-aarch64 -cpu $cpu"
    QEMU_CPU=$cpu RUN=qemu-aarch64 SKIP=${SKIP:-} SCRIPTS= sh tests/run.sh "$@"
}
detects() { # detects CPU PATHS: cpu.c finds exactly PATHS under qemu-aarch64 -cpu CPU
    got=$(QEMU_CPU=$1 qemu-aarch64 "$B/tests/test_ops" |
        sed -n 's/^test_ops: paths tested: \([^;]*\);.*/\1/p')
    [ "$got" = "$2" ] && echo "test-arm: -cpu $1 runs the paths $got" && return 0
    echo "test-arm: FAIL: -cpu $1 runs the paths '$got', expected '$2'"
    return 1
}
# test_real: about 2 TFLOP of SmolLM2 forward passes (its 20 reference prompts with their greedy
# continuations, and the q8_0 / f32 perplexity of 100 PAWS sentences); emulated NEON runs at well
# under 1 GFLOP/s here, so it would take hours: it runs natively in make test.
echo "SKIP test_real under qemu: ~2 TFLOP of forward passes, hours emulated (make test runs it)"
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
(SKIP=test_real run max $tests) >"$d/max" 2>&1 &
max_pid=$!
(
    fail=0
    detects cortex-a76 "scalar neon dotprod" || fail=1
    run cortex-a76 $path_tests || fail=1
    detects cortex-a57 "scalar neon" || fail=1
    run cortex-a57 $path_tests || fail=1
    echo "== test-arm: clang-14 build, qemu-aarch64 -cpu max"
    QEMU_CPU=max RUN=qemu-aarch64 SCRIPTS= sh tests/run.sh "$BC/tests/test_matmul" \
        "$BC/tests/test_matmul_backward" "$BC/tests/test_quantize" || fail=1
    exit $fail
) >"$d/rest" 2>&1
rest=$?
wait $max_pid
max=$?
cat "$d/max" "$d/rest"
[ $max = 0 ] && [ $rest = 0 ] && echo "test-arm: ok" && exit 0
echo "test-arm: FAILED"
exit 1
