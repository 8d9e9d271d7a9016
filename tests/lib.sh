# lib.sh: what every script test (tests/*.test.sh) shares; sourced from the repository root as
# `. tests/lib.sh`. A test that lacks a prerequisite says so in one line and passes:
#     SKIP <test>: <what is missing> (install with: <command>)
# and tests/run.sh counts those lines as skipped. A part of a test that cannot run (one peer of
# several) prints the same line with `<test>/<part>` and the test goes on.
# The install commands: make model (the real model), make setup (apt + npm: emcc, chromium,
# node_modules, and scripts/setup_ref.sh's torch/transformers/peft/gguf/sacrebleu),
# sh scripts/setup_bench.sh (llama-cpp-python).

TEST=${TEST:-$(basename "$0" .test.sh)}
MODEL=${PLM_MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
PY=${PY:-/usr/bin/python3}

# skip WHAT INSTALL: the whole test cannot run
skip() {
    echo "SKIP $TEST: $1 (install with: $2)"
    exit 0
}

# skip_part PART WHAT INSTALL: one part cannot run; the caller goes on without it
skip_part() {
    echo "SKIP $TEST/$1: $2 (install with: $3)"
}

# need_file PATH INSTALL / need_dir PATH INSTALL / need_cmd CMD INSTALL: skip when absent
need_file() { [ -f "$1" ] || skip "no $1" "$2"; }
need_dir() { [ -d "$1" ] || skip "no $1/" "$2"; }
need_cmd() { command -v "$1" >/dev/null 2>&1 || skip "no $1 command" "$2"; }

# has_py MODULE...: whether $PY imports every module
has_py() {
    for m in "$@"; do "$PY" -c "import $m" 2>/dev/null || return 1; done
}

# need_py INSTALL MODULE...: skip unless $PY imports every module
need_py() {
    inst=$1
    shift
    for m in "$@"; do
        "$PY" -c "import $m" 2>/dev/null || skip "no python module $m in $PY" "$inst"
    done
}

# need_model: skip without the real SmolLM2 GGUF
need_model() { need_file "$MODEL" "make model"; }

# need_bin PATH: a missing binary is a failure, not a skip (the test target builds it)
need_bin() {
    [ -x "$1" ] || { echo "FAIL $TEST: $1 not built (make)"; exit 1; }
}

# serve_start NAME BIN WEB ARGS...: `BIN serve -m $MODEL` (q8_0, static files from WEB, a 2 s
# client timeout, ARGS) on a free port, its log in $T/NAME.log; sets PID and PORT, or prints a FAIL
# line, sets fail=1 and returns 1
serve_start() {
    name=$1 bin=$2 web=$3
    shift 3
    "$bin" serve -m "$MODEL" --dtype q8_0 --port 0 --web "$web" --timeout 2000 "$@" 2>"$T/$name.log" &
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
