#!/bin/sh
# serve.test.sh: `pocketlm serve` end to end on loopback (tests/serve_client.py does the requests):
# static files with COOP/COEP and MIME types, Range, path traversal, malformed/oversized/slow
# requests, 404/405/411/413/415/431/505, then on the real model: greedy completion == the CLI,
# paraphrase == the CLI, SSE, 8 concurrent clients, a client leaving mid-stream, a full queue (503),
# --no-coi, and a clean stop on SIGINT. One pass runs the server built with ASan+UBSan and fails
# on any sanitizer report (leaks included).
# The API checks need the real model (models/SmolLM2-135M-Instruct.Q4_1.gguf, `make model`): without
# it the test prints SKIP and passes (tests/lib.sh).
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
BUILD=${BUILD:-build}
BIN=$BUILD/pocketlm
need_bin "$BIN"
need_model
need_cmd curl "make setup"
T=$(mktemp -d /tmp/plm_serve.XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT INT TERM
fail=0
WEB=web
[ -f build/web/pocketlm.wasm ] && WEB=build/web:web && WASM=--wasm || WASM=

# start NAME BIN ARGS...: run BIN serve on a free port; sets PID and PORT
start() {
    name=$1 bin=$2
    shift 2
    "$bin" serve -m "$MODEL" --dtype q8_0 --port 0 --web "$WEB" --timeout 2000 "$@" 2>"$T/$name.log" &
    PID=$!
    PORT=
    for _ in $(seq 1 600); do
        PORT=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$T/$name.log")
        [ -n "$PORT" ] && return 0
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "FAIL $name: the server did not start"; cat "$T/$name.log"; fail=1; PID=; return 1
}

# stop NAME: SIGINT; it must exit 0 within 10 s and log "stopped"
stop() {
    kill -INT "$PID"
    for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$PID" 2>/dev/null; then
        echo "FAIL $1: still running 10 s after SIGINT"; kill -9 "$PID"; fail=1
    else
        wait "$PID"; rc=$?
        if [ $rc -eq 0 ] && grep -q "stopped" "$T/$1.log"; then echo "ok   $1: clean stop on SIGINT"
        else echo "FAIL $1: exit $rc after SIGINT"; tail -n 20 "$T/$1.log"; fail=1; fi
    fi
    PID=
}

# 1. the whole set on the normal build
if start main "$BIN"; then
    python3 tests/serve_client.py "$PORT" $WASM --full "$BIN" "$MODEL" || fail=1
    stop main
fi

# 2. a full queue: --max-pending 1 turns the overflow into 503
if start busy "$BIN" --max-pending 1; then
    python3 tests/serve_client.py "$PORT" --busy || fail=1
    stop busy
fi

# 3. --no-coi: no COOP/COEP headers
if start nocoi "$BIN" --no-coi; then
    if curl -sI "http://127.0.0.1:$PORT/" | grep -qi "cross-origin-"; then
        echo "FAIL --no-coi: COOP/COEP headers sent"; fail=1
    else echo "ok   --no-coi: no COOP/COEP headers"; fi
    stop nocoi
fi

# 4. under ASan + UBSan: the HTTP checks and one streamed completion; any report fails
SANBIN=build/san/pocketlm
case $BUILD in *san*) SANBIN=$BIN ;; esac
if [ "$SANBIN" != "$BIN" ]; then
    echo "serve.test.sh: building $SANBIN (make BUILD=build/san)"
    make -s BUILD=build/san CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
        build/san/pocketlm >"$T/sanbuild.log" 2>&1 || { echo "FAIL: ASan build"; tail "$T/sanbuild.log"; fail=1; }
fi
export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1
if [ -x "$SANBIN" ] && start asan "$SANBIN"; then
    python3 tests/serve_client.py "$PORT" $WASM || fail=1
    curl -s -N -H 'Content-Type: application/json' -d '{"prompt": "Hello", "max_tokens": 3, "stream": true}' \
        "http://127.0.0.1:$PORT/v1/completions" | grep -q '^data: \[DONE\]' && echo "ok   asan: streamed completion" \
        || { echo "FAIL asan: streamed completion"; fail=1; }
    stop asan
    if grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$T/asan.log"; then
        echo "FAIL asan: sanitizer report"; grep -A 30 -E "Sanitizer|runtime error" "$T/asan.log" | head -60; fail=1
    else echo "ok   asan: no sanitizer report"; fi
fi

[ $fail -eq 0 ] && echo "serve.test.sh: all passed" || echo "serve.test.sh: FAILED"
exit $fail
