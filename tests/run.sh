#!/bin/sh
# run.sh: run every test binary given, then every tests/*.test.sh script; print one summary line.
# A binary prints "<name>: N passed, N failed" and exits non-zero on failure.
# SKIP="name ..." leaves out binaries by name; SCRIPTS="name ..." runs only those scripts (the
# sanitizer pass uses both: the real-model numerics and the browser/wasm/onnx scripts need no ASan).
# RUN="command" runs each binary under it (make test-arm: qemu-aarch64).
# A test that lacks a prerequisite prints "SKIP <name>: <what is missing> (install with: ...)" and
# exits 0 (tests/lib.sh); it is counted as skipped, and the SKIP lines are repeated at the end,
# followed by the slowest tests' wall times (where make test's minutes go).
set -u
fail=0 ; passed=0 ; failed=0 ; skipped=0 ; skips="" ; times=""
# timed NAME START: note NAME's wall time since START (seconds since the epoch)
timed() { times="$times$(($(date +%s) - $2)) $1
"; }
# skipped_whole NAME OUTPUT: whether OUTPUT says the whole test NAME was skipped
skipped_whole() { printf '%s\n' "$2" | grep -q "^SKIP $1: "; }
for t in "$@"; do
    case " ${SKIP:-} " in *" $(basename "$t") "*) echo "skip $(basename "$t") (SKIP)"; continue ;; esac
    t0=$(date +%s); out=$(${RUN:-} "$t" 2>&1); rc=$?; timed "$(basename "$t")" "$t0"
    printf '%s\n' "$out" | tail -n 40
    skips="$skips$(printf '%s\n' "$out" | grep '^SKIP ')
"
    if [ $rc -eq 0 ] && skipped_whole "$(basename "$t")" "$out"; then skipped=$((skipped + 1)); continue; fi
    line=$(printf '%s\n' "$out" | grep -E '[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    p=$(printf '%s' "$line" | sed -E 's/.* ([0-9]+) passed.*/\1/'); f=$(printf '%s' "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
    passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
    if [ $rc -ne 0 ]; then echo "FAILED: $t (exit $rc)"; fail=1; [ "${f:-0}" = 0 ] && failed=$((failed + 1)); fi
done
for s in tests/*.test.sh; do
    [ -f "$s" ] || continue
    if [ -n "${SCRIPTS+x}" ]; then
        case " $SCRIPTS " in *" $(basename "$s" .test.sh) "*) ;; *) continue ;; esac
    fi
    t0=$(date +%s); out=$(BUILD=${BUILD:-build} sh "$s" 2>&1); rc=$?; timed "$(basename "$s")" "$t0"
    printf '%s\n' "$out" | tail -n 40
    skips="$skips$(printf '%s\n' "$out" | grep '^SKIP ')
"
    if [ $rc -eq 0 ] && skipped_whole "$(basename "$s" .test.sh)" "$out"; then skipped=$((skipped + 1))
    elif [ $rc -ne 0 ]; then echo "FAILED: $s (exit $rc)"; fail=1; failed=$((failed + 1)); else passed=$((passed + 1)); fi
done
echo
printf '%s' "$skips" | grep . || true
echo "slowest: $(printf '%s' "$times" | sort -rn | head -n 8 | awk '{printf "%s%s %ss", (NR > 1 ? ", " : ""), $2, $1}')"
echo "total: $passed passed, $failed failed, $skipped skipped"
exit $fail
