#!/bin/sh
# bench_serve.sh — `make bench-serve`: `pocketlm serve` under 1, 4, 8 and 16 concurrent clients
# (scripts/bench_serve.py: streamed greedy /v1/completions, prompts of about 32 tokens, BENCH_TOKENS
# new tokens each, BENCH_REQUESTS per client): aggregate decode tok/s, time to first token and
# latency (p50, p99), against the peer in the same run, on the same model file:
#
#   pocketlm         serve --dtype q8_0 --kv-type f16 --threads 2 --max-batch 16: continuous
#                    batching, the KV cache in F16 (BENCH_KV), as llama-server keeps it by default
#   pocketlm/serial  the same with --max-batch 1: one request at a time (what batching gains)
#   llama-cpp-python its OpenAI server (python3 -m llama_cpp.server, n_threads 2; built by
#                    scripts/setup_bench.sh, which this script runs when the server's extras are
#                    missing): one Llama object, requests served one at a time (it has no parallel
#                    slots; --interrupt_requests False, else a new request cancels the running
#                    one), the weights in the file's own Q4_1
#   llama-server     llama.cpp's own server from the same vendored llama.cpp (built natively by
#                    scripts/setup_bench.sh with LCP_SERVER=1, which this script runs when it is
#                    missing): --parallel 16 slots (1024 positions each) with continuous batching,
#                    -t 2, the weights in the file's own Q4_1: the peer with parallel slots
#
# Then a soak (BENCH_SOAK_SECS, default 600; 0 skips it): pocketlm under BENCH_SOAK_CLIENTS (8)
# clients sending requests without pause, its resident memory sampled 60 times: the growth from a
# tenth of the time to the end (target: flat, <= 5%).
#
# The CPU and the load are recorded; with other jobs on the machine the figures are only
# indicative. Writes a new dated file in benchmarks/history/ (its path is printed; BENCH_OUT names
# another file). Env: BUILD, BENCH_LEVELS (1,4,8,16), BENCH_REQUESTS (2), BENCH_TOKENS (32),
# BENCH_THREADS (2), BENCH_KV (f16), BENCH_SOAK_SECS (600), BENCH_SOAK_CLIENTS (8).
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
. scripts/bench_lib.sh # history_file, machine_env
OUT=${BENCH_OUT:-$(history_file bench-serve)}
LEVELS=${BENCH_LEVELS:-1,4,8,16}
REQS=${BENCH_REQUESTS:-2}
TOKENS=${BENCH_TOKENS:-32}
THREADS=${BENCH_THREADS:-2}
KV=${BENCH_KV:-f16}
SOAK=${BENCH_SOAK_SECS:-600}
SOAK_CLIENTS=${BENCH_SOAK_CLIENTS:-8}
MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
PY=/usr/bin/python3
LCP_SERVER_BIN=${LCP_SERVER_DIR:-/usr/local/lib/pocketlm-bench/llama-server}/bin/llama-server
W=$BUILD/bench-serve
BIN=$BUILD/pocketlm
mkdir -p "$W"
say() { echo "bench-serve: $*" >&2; }
[ -f "$MODEL" ] || { say "no $MODEL (make model)"; exit 1; }
make -s BUILD="$BUILD" "$BIN" >&2 || { say "make $BIN failed"; exit 1; }
: >"$W/runs.jsonl"
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; return 0; }
trap cleanup EXIT INT TERM

# wait_port LOG PATTERN: the port a server printed in LOG (sed pattern with one group), or empty
wait_port() {
    for _ in $(seq 1 600); do
        p=$(sed -n "s|$2|\\1|p" "$1" | head -n 1)
        [ -n "$p" ] && { echo "$p"; return 0; }
        kill -0 "$PID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# rss PID: VmRSS and VmHWM of the process, in MB
rss() { awk '/^VmRSS|^VmHWM/ { printf "%s %d MB  ", $1, $2 / 1024 }' "/proc/$1/status" 2>/dev/null; }

# start NAME MAX_BATCH: pocketlm serve in the background (PID), its port in $port, its log in
# $W/NAME.log (a / in NAME as -)
start() {
    log=$W/$(echo "$1" | tr / -).log
    "$BIN" serve -m "$MODEL" --dtype q8_0 --kv-type "$KV" --threads "$THREADS" --max-batch "$2" --max-pending 64 \
        --port 0 --web web --timeout 60000 2>"$log" &
    PID=$!
    port=$(wait_port "$log" '.*listening on http://127.0.0.1:\([0-9]*\)/.*') || { say "$1 did not start"; return 1; }
    say "$1 on port $port"
}

# pocketlm NAME MAX_BATCH: the levels on pocketlm serve
pocketlm() {
    start "$1" "$2" || return 0
    $PY scripts/bench_serve.py "$port" "$1" "$LEVELS" "$REQS" "$TOKENS" | tee -a "$W/runs.jsonl" >&2
    echo "$1: $(rss "$PID")" >>"$W/rss.txt"
    kill -INT "$PID"; wait "$PID" || true; PID=
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$W/rss.txt"
pocketlm pocketlm 16
pocketlm pocketlm/serial 1
LCP=none
if ! $PY -c 'import llama_cpp.server.app' 2>/dev/null; then # (idempotent; the AVX2 variant is not needed)
    say "llama-cpp-python's server is missing: sh scripts/setup_bench.sh"
    LCP_AVX2=0 sh scripts/setup_bench.sh >&2 || say "setup_bench.sh failed"
fi
if [ ! -x "$LCP_SERVER_BIN" ]; then # (idempotent; the AVX2 variant is not needed)
    say "llama-server is missing: LCP_SERVER=1 sh scripts/setup_bench.sh"
    LCP_AVX2=0 LCP_SERVER=1 sh scripts/setup_bench.sh >&2 || say "setup_bench.sh failed"
fi
if [ -x "$LCP_SERVER_BIN" ]; then
    log=$W/llama-server.log
    "$LCP_SERVER_BIN" -m "$MODEL" -t "$THREADS" -tb "$THREADS" --parallel 16 -c 16384 \
        --host 127.0.0.1 --port 0 >"$log" 2>&1 &
    PID=$!
    port=$(wait_port "$log" '.*listening on http://127.0.0.1:\([0-9]*\).*') || port=
    for _ in $(seq 1 600); do # the model loads after the port opens
        [ -n "$port" ] && $PY -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/health')" 2>/dev/null && break
        sleep 0.2
    done
    if [ -n "$port" ]; then
        say "llama-server on port $port"
        $PY scripts/bench_serve.py "$port" llama-server "$LEVELS" "$REQS" "$TOKENS" | tee -a "$W/runs.jsonl" >&2
        echo "llama-server: $(rss "$PID")" >>"$W/rss.txt"
    else
        say "llama-server did not start (see $log)"
    fi
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
else
    say "llama-server is not built (LCP_SERVER=1 sh scripts/setup_bench.sh): no peer with parallel slots"
fi
if $PY -c 'import llama_cpp.server.app' 2>/dev/null; then
    LCP=$($PY -c 'import llama_cpp; print(llama_cpp.__version__)')
    port=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    $PY -m llama_cpp.server --model "$MODEL" --n_threads "$THREADS" --n_threads_batch "$THREADS" \
        --n_ctx 2048 --interrupt_requests False --host 127.0.0.1 --port "$port" >"$W/llama.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 600); do
        $PY -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v1/models')" 2>/dev/null && break
        sleep 0.2
    done
    say "llama-cpp-python $LCP on port $port"
    $PY scripts/bench_serve.py "$port" llama-cpp-python "$LEVELS" "$REQS" "$TOKENS" | tee -a "$W/runs.jsonl" >&2
    echo "llama-cpp-python: $(rss "$PID")" >>"$W/rss.txt"
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
else
    say "llama-cpp-python's server is not installed (sh scripts/setup_bench.sh): no peer"
fi
: >"$W/soak.jsonl"
if [ "$SOAK" -gt 0 ] && start pocketlm/soak 16; then
    say "soak: $SOAK_CLIENTS clients for $SOAK s"
    $PY scripts/bench_serve.py "$port" pocketlm "$SOAK_CLIENTS" 1 "$TOKENS" --soak "$SOAK" "$PID" | tee "$W/soak.jsonl" >&2
    kill -INT "$PID"; wait "$PID" || true; PID=
fi
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
machine_env

$PY - "$W/runs.jsonl" "$W/soak.jsonl" "$OUT" <<PY
import json, os, sys
E = os.environ
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
soak = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
one = {r["system"]: r for r in runs if r["clients"] == 1}
key = lambda r: (r["clients"], r.get("start", "burst"))
peer = {key(r): r["tok_s"] for r in runs if r["system"] == "llama-cpp-python"}
slots = {key(r): r["tok_s"] for r in runs if r["system"] == "llama-server"}
lines = ["# bench-serve $(date '+%Y-%m-%d %H:%M') — pocketlm " + E["GIT_REV"], "",
         f"Machine: {E['CPU_MODEL']}, {E['CPU_CORES']} cores ({E['CPU_FLAGS'].strip()}), {E['FREE_G']}, {E['KERNEL']}; "
         "threads $THREADS; load average (1/5/15 min) $LOAD_START at the start, $LOAD_END at the end.",
         f"Builds: pocketlm \`make\` ({E['CC_VERSION']}, CFLAGS \`{E['CFLAGS_USED']}\`); llama-cpp-python $LCP (scripts/setup_bench.sh).",
         "Model: $MODEL (pocketlm --dtype q8_0; llama-server and llama-cpp-python in the file's Q4_1).",
         "Load: each client sends $REQS streamed greedy /v1/completions in turn, a prompt of about 32 tokens, $TOKENS new tokens. "
         "Start \"burst\": every client's first request at once (equal requests then keep the clients in step: every round is a burst of prompts); "
         "\"staggered\": client i starts i / clients of a 1-client request's latency later, as independent users arrive (a prompt joins running decodes).",
         "Aggregate tok/s: the tokens over the level's wall time (with the staggered start that includes the arrivals' ramp and the departures' tail, when fewer clients run); "
         "all in flight: the pieces streamed (one token each here) while every client had a request in flight, per second: the aggregate at exactly that many concurrent clients.",
         "", "| system | clients | start | requests | aggregate tok/s | x its 1 client | all in flight: s, tok/s | x its 1 client | x llama-server | x llama-cpp-python | TTFT p50 / p99 (s) | TTFT p99 x its 1 client | latency p50 / p99 (s) | errors |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
for r in runs:
    o = one.get(r["system"])
    x = f"{r['tok_s'] / o['tok_s']:.2f}" if o else "—"
    f = f"{r['in_flight_tok_s'] / o['in_flight_tok_s']:.2f}" if o and o.get("in_flight_tok_s", -1) > 0 and r.get("in_flight_tok_s", -1) > 0 else "—"
    t = f"{r['ttft_p99'] / o['ttft_p99']:.2f}" if o and o["ttft_p99"] > 0 else "—"
    y = f"{r['tok_s'] / peer[key(r)]:.2f}" if peer.get(key(r)) and r["system"] != "llama-cpp-python" else "—"
    z = f"{r['tok_s'] / slots[key(r)]:.2f}" if slots.get(key(r)) and r["system"] != "llama-server" else "—"
    lines.append(f"| {r['system']} | {r['clients']} | {r.get('start', 'burst')} | {r['requests']} | {r['tok_s']} | {x} | "
                 f"{r.get('in_flight_s', '—')}, {r.get('in_flight_tok_s', '—')} | {f} | {z} | {y} | "
                 f"{r['ttft_p50']} / {r['ttft_p99']} | {t} | {r['latency_p50']} / {r['latency_p99']} | {r['n_errors']} |")
lines += ["", "Memory after the run (VmRSS, VmHWM):", ""] + ["    " + l.rstrip() for l in open("$W/rss.txt")]
for r in soak:
    lines += ["", f"## Soak: {r['clients']} clients for {r['soak_s']:.0f} s (pocketlm serve --max-batch 16)", "",
              f"{r['requests']} requests, {r['tok_s']} tok/s, TTFT p50 / p99 {r['ttft_p50']} / {r['ttft_p99']} s, "
              f"latency p50 / p99 {r['latency_p50']} / {r['latency_p99']} s, {r['n_errors']} errors. "
              f"VmRSS growth from {r['soak_s'] / 10:.0f} s to the end: {r['growth_pct']}% (target <= 5%).", "",
              "VmRSS (MB) over time (s): " + ", ".join(f"{t:.0f}: {mb:.0f}" for t, mb in r["rss_mb"][::6])]
lines += ["", "Command: \`make bench-serve\` (scripts/bench_serve.sh, scripts/bench_serve.py)."]
open(sys.argv[3], "w").write("\n".join(lines) + "\n")
PY
say "wrote $OUT"
echo "$OUT"
