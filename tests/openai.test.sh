#!/bin/sh
# openai.test.sh: `pocketlm serve` as an OpenAI-compatible server, on loopback. First the safe
# defaults (tests/openai_guard.py): a foreign Host (421) and Origin (403) refused, CORS and its
# preflight for --allow-origin only, --api-key (401), a non-loopback --host without a key refused
# at start, slowloris timed out (408), header (431), body (413) and connection (503) limits, and
# no prompt in the log unless --log-prompts. Then the official clients, PyPI `openai`
# (tests/openai_client.py) and npm `openai` (tests/openai_client.mjs), against the real model:
# models list, chat, streaming chat, completions, a stop string and n = 2, each compared with the
# CLI's greedy output (temperature 0); logprobs (chat and completions, streamed and whole, n = 2,
# greedy and sampled) against `pocketlm perplexity`'s log-probabilities of the same text.
# Needs the real model (models/SmolLM2-135M-Instruct.Q4_1.gguf, `make model`): without it the test
# prints SKIP and passes (tests/lib.sh); so does a part whose client is not installed.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
BUILD=${BUILD:-build}
BIN=$BUILD/pocketlm
need_bin "$BIN"
need_model
T=$(mktemp -d /tmp/plm_openai.XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT INT TERM
fail=0

# start NAME ARGS...: serve (tests/lib.sh) with the model and web/
start() { n=$1; shift; serve_start "$n" "$BIN" web "$@"; }

# stop: SIGINT, then wait (bounded) for the exit
stop() {
    kill -INT "$PID"
    for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$PID" 2>/dev/null && { echo "FAIL: still running 10 s after SIGINT"; kill -9 "$PID"; fail=1; }
    PID=
}

# 1. safe by default
SECRET="a secret prompt 31337"
LIMITS="--allow-origin http://ok.example --max-conns 4 --max-body 4096"
if start guard $LIMITS; then
    "$PY" tests/openai_guard.py "$PORT" || fail=1
    curl -s -H "Host: localhost:$PORT" -H 'Content-Type: application/json' \
        -d "{\"prompt\": \"$SECRET\", \"max_tokens\": 1}" "http://127.0.0.1:$PORT/v1/completions" >/dev/null
    stop
    if grep -q "$SECRET" "$T/guard.log"; then echo "FAIL the log echoes a prompt without --log-prompts"; fail=1
    else echo "ok   no prompt in the log without --log-prompts"; fi
fi
if start logged --log-prompts; then
    curl -s -H 'Content-Type: application/json' -d "{\"prompt\": \"$SECRET\", \"max_tokens\": 1}" \
        "http://127.0.0.1:$PORT/v1/completions" >/dev/null
    stop
    if grep -q "prompt: $SECRET" "$T/logged.log"; then echo "ok   --log-prompts logs the prompt"
    else echo "FAIL --log-prompts: no prompt in the log"; cat "$T/logged.log"; fail=1; fi
fi
out=$("$BIN" serve -m "$MODEL" --host 0.0.0.0 --port 0 2>&1)
rc=$?
case "$rc $out" in
[1-9]*"not a loopback address"*"--api-key"*) echo "ok   --host 0.0.0.0 without --api-key refused: $out" ;;
*) echo "FAIL --host 0.0.0.0 without --api-key: exit $rc, $out"; fail=1 ;;
esac
if start keyed $LIMITS --api-key sk-test-123; then
    "$PY" tests/openai_guard.py "$PORT" --key sk-test-123 >"$T/keyed.out" || { cat "$T/keyed.out"; fail=1; }
    grep "Authorization\|lower-case" "$T/keyed.out" # the rest was shown above
    stop
fi

# 2. the official clients against the CLI's greedy output
if ! has_py openai gguf jinja2; then
    skip_part clients "no python module openai (or gguf, jinja2) in $PY" "sh scripts/setup_ref.sh"
elif start clients; then
    "$PY" tests/openai_client.py "$PORT" "$BIN" "$MODEL" "$T/expect.json" || fail=1
    if [ ! -f "$T/expect.json" ]; then
        echo "FAIL js: no expected texts from openai_client.py"; fail=1
    elif [ -d node_modules/openai ] && command -v node >/dev/null 2>&1; then
        node tests/openai_client.mjs "$PORT" "$T/expect.json" || fail=1
    else
        skip_part js "no node_modules/openai" "make setup"
    fi
    stop
fi

[ $fail -eq 0 ] && echo "openai.test.sh: all passed" || echo "openai.test.sh: FAILED"
exit $fail
