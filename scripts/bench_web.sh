#!/bin/sh
# bench_web.sh — `make bench-web`: pocketlm's wasm build in Chromium and in node against
# onnxruntime-web / onnxruntime-node on the same SmolLM2-135M, with pocketlm native in the same run
# (for the wasm ÷ native ratio), written to a new dated file in benchmarks/history/ (path printed).
#
#   web-wasm      pocketlm wasm in Chromium (tests/bench_web.mjs: tests/bench_web.html, a module
#                 worker as in the app, served by `pocketlm serve` with COOP/COEP): q8_0 and f32,
#                 1 thread (the single-threaded build) and T threads (the pthreads build), the
#                 build pocketlm.js picks (relaxed SIMD: Chromium runs it)
#   web-wasm-simd128  the same page with the SIMD128 build forced (q8_0, 1 thread): what engines
#                 without relaxed SIMD get
#   ort-web       onnxruntime-web's wasm backend in the same Chromium on `pocketlm export --format
#                 onnx` (int8 = model_quantized.onnx, fp32 = model.onnx), KV cache fed back, 1 and
#                 T threads; ort-web-nokv: the seed's way (fp32, no KV cache, 30-token prompt, 50 new)
#   web-train     pocketlm wasm LoRA training in the same page (lm.finetune, the Train view's
#                 defaults: r 8 on q_proj,v_proj, batch 8, on web/paws-sample.tsv, BENCH_TRAIN_STEPS
#                 steps), q8_0 base, 1 and T threads: train tok/s and the renderer's peak RSS
#   native-train  `pocketlm finetune` with the same data, settings and steps, 1 and T threads
#   native-train-avx2  the same with PLM_ISA=avx2, 1 thread (what a CPU without AVX-512 runs)
#   blank         the bench page with no engine: the renderer's own baseline
#   native        build/pocketlm bench (q8_0 1 and T threads, f32 1 thread), the CPU's best path
#   native-avx2   the same with PLM_ISA=avx2 (q8_0, 1 thread)
#   node-wasm     examples/node/bench.mjs (pocketlm wasm in node; node 20 without a flag: SIMD128)
#   node-wasm-relaxed  the same with --experimental-wasm-relaxed-simd: the relaxed-SIMD build
#   ort-node      tests/bench_ort.mjs (onnxruntime-node; kv, and nokv for the seed's way)
# Browser metrics (one fresh Chromium profile per configuration and round): prefill tok/s (P-token
# prompt), decode tok/s (N tokens after it), best of REPS in the page; time to first token of a
# 30-token prompt from navigation start, cold (empty Cache API: download + load) and cached (second
# visit, the model from the Cache API); the page renderer's VmRSS and VmHWM from /proc with the
# model loaded, and the resident part of its largest anonymous mapping (the wasm memory).
#
# Measurement as scripts/bench.sh (helpers in scripts/bench_lib.sh): BENCH_ROUNDS rounds, every
# configuration once a round in a fresh process, the order rotated each round, a wait (up to
# BENCH_WAIT s) for the CPUs to fall under BENCH_QUIET % busy, and the foreign CPU use during each
# run recorded and reported. A configuration that fails is reported with its error.
#
# Env: MODEL (default models/SmolLM2-135M-Instruct.Q4_1.gguf), BUILD, BENCH_ROUNDS (2), BENCH_WAIT
# (10), BENCH_QUIET (25), BENCH_OUT (default a new benchmarks/history/DATE-bench-web.md), BENCH_P
# (128), BENCH_N (128), BENCH_REPS (3), BENCH_TRAIN_STEPS (20),
# BENCH_THREADS (the threaded count, default nproc), BENCH_NCTX (the page's n_ctx; 0 = pocketlm.js's
# default), BENCH_CONFIGS (a subset, e.g. "web:q8_0:1 native:q8_0:1"), BENCH_TRAIN_ONLY=1 (the
# training rows alone: web-train and native-train, 1 and T threads), BENCH_REPORT_ONLY=1.
set -eu
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
PLM=$BUILD/pocketlm
MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
ROUNDS=${BENCH_ROUNDS:-2}
WAIT=${BENCH_WAIT:-10}
QUIET=${BENCH_QUIET:-25}
OUT=${BENCH_OUT:-}
P=${BENCH_P:-128}
N=${BENCH_N:-128}
REPS=${BENCH_REPS:-3}
TRAIN_STEPS=${BENCH_TRAIN_STEPS:-20}
export BENCH_TRAIN_STEPS=$TRAIN_STEPS
T=${BENCH_THREADS:-$(nproc)}
NCTX=${BENCH_NCTX:-0}
ONLY=${BENCH_REPORT_ONLY:-0}
PY=/usr/bin/python3                 # the report only
W=$BUILD/bench-web                  # work dir: raw results, logs, the served site
Q8=$W/model.q8_0.gguf               # pocketlm convert MODEL --dtype q8_0: the q8_0 rows' model
ONNX=$W/onnx                        # pocketlm export --format onnx --quant none,int8
SITE=$W/site                        # served after $BUILD/web: the bench page, ort/, onnx/
RAW=$W/raw.txt                      # one record a line: round system dtype threads metric value
RUNS=$W/runs.txt                    # one line a run: system dtype threads wall_s foreign_cpu_%
SKIPPED=$W/skipped.txt              # one line a configuration that failed, and why
LOG=$W/log.txt
mkdir -p "$W"
[ "$ONLY" = 1 ] || { : >"$RAW"; : >"$RUNS"; : >"$LOG"; : >"$SKIPPED"; }

BENCH_NAME=bench-web HAVE_TIME=0
[ -x /usr/bin/time ] && HAVE_TIME=1
. scripts/bench_lib.sh      # say, measured, parse_bench, run_rounds, machine_env, report_prelude
[ -n "$OUT" ] || OUT=$(history_file bench-web)

skip() { say "skip: $*"; echo "$*" >>"$SKIPPED"; }
# cpu_snapshot FILE: pid, user+sys ticks and command of every process (for the foreign-load table)
cpu_snapshot() {
    for d in /proc/[0-9]*; do
        s=$(cat "$d/stat" 2>/dev/null) || continue
        c=$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null | cut -c1-110)
        echo "$s" | awk -v c="$c" '{ sub(/^.*\) /, ""); print "'"${d#/proc/}"'", $12 + $13, c }'
    done >"$1"
}

if [ "$ONLY" != 1 ]; then

# ---- the configurations (rotated each round below); BENCH_TRAIN_ONLY=1: the training ones ----
TRAIN_CONFIGS="webtrain:q8_0:1 webtrain:q8_0:$T nativetrain:q8_0:1 nativetrain:q8_0:$T nativetrainavx2:q8_0:1"
[ "${BENCH_TRAIN_ONLY:-0}" = 1 ] && BENCH_CONFIGS=${BENCH_CONFIGS:-$TRAIN_CONFIGS}
CONFIGS=${BENCH_CONFIGS:-"native:q8_0:1 web:q8_0:1 node:q8_0:1 ortweb:int8:1 ortnode:int8:1
    nativeavx2:q8_0:1 websimd128:q8_0:1 noderelaxed:q8_0:1
    web:q8_0:$T native:q8_0:$T node:q8_0:$T ortweb:int8:$T ortnode:int8:$T
    native:f32:1 web:f32:1 node:f32:1 ortweb:fp32:1 ortnode:fp32:1 web:f32:$T ortweb:fp32:$T ortnode:fp32:$T
    ortwebnokv:fp32:1 ortnodenokv:fp32:1 blank:-:1
    $TRAIN_CONFIGS"}

# ---- build, model, export, site ----
[ -f "$MODEL" ] || sh scripts/get_model.sh || { say "no model at $MODEL (make model)"; exit 1; }
make -s BUILD="$BUILD" all wasm >&2 || { say "make all wasm failed"; exit 1; }
# the source the binaries were built from (others may commit while the run goes on)
BUILT_REV="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src include cli web Makefile 2>/dev/null || echo ' + uncommitted changes')"
[ -x /usr/bin/chromium ] || { say "no /usr/bin/chromium (make setup)"; exit 1; }
for m in playwright-core onnxruntime-web onnxruntime-node; do
    [ -d node_modules/$m ] || { say "no node_modules/$m (make setup)"; exit 1; }
done
case " $(echo $CONFIGS) " in *" ort"*) NEED_ONNX=1 ;; *) NEED_ONNX=0 ;; esac # only onnxruntime's rows
if [ "$NEED_ONNX" = 1 ] && { [ ! -f "$ONNX/onnx/model.onnx" ] || [ ! -f "$ONNX/onnx/model_quantized.onnx" ] ||
   [ "$ONNX/onnx/model.onnx" -ot "$PLM" ] || [ "$ONNX/onnx/model.onnx" -ot "$MODEL" ]; }; then
    echo "\$ $PLM export -m $MODEL --format onnx --quant none,int8 --out $ONNX --force" >>"$LOG"
    "$PLM" export -m "$MODEL" --format onnx --quant none,int8 --out "$ONNX" --force >>"$LOG" 2>&1 ||
        { say "pocketlm export failed (see $LOG)"; exit 1; }
fi
# q8_0 rows load a Q8_0 GGUF, as the web app does (make web-model): its weights are used in place
if [ ! -f "$Q8" ] || [ "$Q8" -ot "$MODEL" ]; then
    echo "\$ $PLM convert $MODEL $Q8 --dtype q8_0 --force" >>"$LOG"
    "$PLM" convert "$MODEL" "$Q8" --dtype q8_0 --force >>"$LOG" 2>&1 || { say "pocketlm convert failed (see $LOG)"; exit 1; }
fi
mkdir -p "$SITE" "$ONNX"
ln -sfn "$PWD/tests/bench_web.html" "$SITE/bench_web.html"
ln -sfn "$PWD/tests/bench_web_worker.js" "$SITE/bench_web_worker.js"
ln -sfn "$PWD/node_modules/onnxruntime-web/dist" "$SITE/ort"
ln -sfn "$(cd "$ONNX" && pwd)" "$SITE/onnx"
ln -sfn "$PWD/web/paws-sample.tsv" "$SITE/paws-sample.tsv"
# examples/node/bench.mjs imports ../../build/web/pocketlm.js: with another BUILD, run a copy of it
# placed so that this path is $BUILD/web
NODE_BENCH=examples/node/bench.mjs
if [ "$(cd "$BUILD/web" && pwd -P)" != "$(cd build/web 2>/dev/null && pwd -P || echo none)" ]; then
    mkdir -p "$W/node/examples/node" "$W/node/build"
    cp examples/node/bench.mjs "$W/node/examples/node/bench.mjs"
    ln -sfn "$(cd "$BUILD/web" && pwd)" "$W/node/build/web"
    NODE_BENCH=$W/node/examples/node/bench.mjs
fi

# ---- run: every configuration once a round ----
say "configs: $(echo $CONFIGS); $ROUNDS rounds; P=$P N=$N REPS=$REPS"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
cpu_snapshot "$W/cpu0.txt"; T0=$(date +%s)

onnx_file() { [ "$1" = int8 ] && echo model_quantized.onnx || echo model.onnx; }
model_for() { [ "$1" = q8_0 ] && echo "$Q8" || echo "$MODEL"; } # the GGUF a pocketlm row loads
# parse_kv ROUND SYSTEM DTYPE THREADS: tests/bench_web.mjs's `metric value` lines -> RAW
parse_kv() {
    awk -v r="$1" -v s="$2" -v d="$3" -v th="$4" 'NF == 2 && $1 != "error" { print r, s, d, th, $1, $2 }' "$W/out.txt" >>"$RAW"
}
# parse_ort ROUND SYSTEM DTYPE: tests/bench_ort.mjs lines `name threads n ms tok/s rss_mb` -> RAW
parse_ort() {
    awk -v r="$1" -v s="$2" -v d="$3" '
        $1 ~ /-load$/    { print r, s, d, $2, "load_ms", $4 }
        $1 ~ /-prefill$/ { print r, s, d, $2, "prefill_tps", $5 }
        $1 ~ /-decode$/  { print r, s, d, $2, "decode_tps", $5; print r, s, d, $2, "rss_mb", $6 }
        $1 ~ /-nokv$/    { print r, s, d, $2, "nokv_tps", $5; print r, s, d, $2, "rss_mb", $6 }' "$W/out.txt" >>"$RAW"
}
# own_cpu: the last RUNS line again, with the CPU time tests/bench_web.mjs counted for itself and its
# descendants (Chromium's renderers are never reaped up to it, so /usr/bin/time misses them) as own
# time instead of foreign
own_cpu() {
    own=$(awk '$1 == "own_cpu_s" { print $2 }' "$W/out.txt")
    [ -n "$own" ] && [ "$HAVE_TIME" = 1 ] || return 0
    tt=$(tail -n 1 "$W/time.txt" | awk '{ print $1 + $2 }')
    last=$(tail -n 1 "$RUNS")
    sed -i '$d' "$RUNS"
    echo "$last" | awk -v own="$own" -v tt="$tt" -v n="$(nproc)" '{ f = $5
        if ($5 >= 0 && own > tt) { f = $5 - 100 * (own - tt) / ($4 * n); if (f < 0) f = 0 }
        printf "%s %s %s %s %.0f\n", $1, $2, $3, $4, f }' >>"$RUNS"
}
run_config() {          # run_config ROUND KIND:DTYPE:THREADS
    r=$1; kind=${2%%:*}; rest=${2#*:}; dt=${rest%%:*}; th=${rest#*:}
    case $kind in
    native) sys=native
        measured $sys "$dt" "$th" "$PLM" bench -m "$(model_for "$dt")" --dtype "$dt" --threads "$th" -p "$P" -n "$N" --reps "$REPS" ;;
    nativeavx2) sys=native-avx2
        measured $sys "$dt" "$th" env PLM_ISA=avx2 "$PLM" bench -m "$(model_for "$dt")" --dtype "$dt" --threads "$th" -p "$P" -n "$N" --reps "$REPS" ;;
    node) sys=node-wasm
        measured $sys "$dt" "$th" node "$NODE_BENCH" "$(model_for "$dt")" --dtype "$dt" --threads "$th" -p "$P" -n "$N" --reps "$REPS" ;;
    noderelaxed) sys=node-wasm-relaxed
        measured $sys "$dt" "$th" node --experimental-wasm-relaxed-simd "$NODE_BENCH" "$(model_for "$dt")" --dtype "$dt" --threads "$th" -p "$P" -n "$N" --reps "$REPS" --simd relaxed ;;
    ortnode) sys=ort-node
        measured $sys "$dt" "$th" node tests/bench_ort.mjs "$ONNX" "$th" "$(onnx_file "$dt")" kv "$P" "$N" ;;
    ortnodenokv) sys=ort-node-nokv
        measured $sys "$dt" "$th" node tests/bench_ort.mjs "$ONNX" "$th" "$(onnx_file "$dt")" nokv 30 50 ;;
    web) sys=web-wasm
        measured $sys "$dt" "$th" node tests/bench_web.mjs "$PLM" "$(model_for "$dt")" "$SITE" "plm:$dt:$th" "$P" "$N" "$REPS" "$NCTX" ;;
    websimd128) sys=web-wasm-simd128
        measured $sys "$dt" "$th" node tests/bench_web.mjs "$PLM" "$(model_for "$dt")" "$SITE" "plm:$dt:$th:simd128" "$P" "$N" "$REPS" "$NCTX" ;;
    ortweb) sys=ort-web
        measured $sys "$dt" "$th" node tests/bench_web.mjs "$PLM" "$MODEL" "$SITE" "ort:$dt:$th:kv" "$P" "$N" "$REPS" ;;
    ortwebnokv) sys=ort-web-nokv   # one repetition: ~50 full forward passes of 30..79 tokens
        measured $sys "$dt" "$th" node tests/bench_web.mjs "$PLM" "$MODEL" "$SITE" "ort:$dt:$th:nokv" "$P" "$N" 1 ;;
    webtrain) sys=web-train
        measured $sys "$dt" "$th" node tests/bench_web.mjs "$PLM" "$(model_for "$dt")" "$SITE" "plmtrain:$dt:$th" ;;
    nativetrain|nativetrainavx2) # the same run as the page's: train_tps from metrics.jsonl, peak RSS
        sys=native-train isa=
        [ "$kind" = nativetrainavx2 ] && sys=native-train-avx2 isa=PLM_ISA=avx2
        measured $sys "$dt" "$th" env $isa sh -c 'rm -rf "$4" && /usr/bin/time -f "rss_kb %M" -o "$4.rss" "$1" finetune \
            -m "$2" --dtype q8_0 --data web/paws-sample.tsv --out "$4" --max-steps "$5" --epochs 1000 \
            --seed 1234 --eval-every 10 --threads "$3" >&2 &&
            sed -n "\$s/.*\"loss\": \([0-9.]*\).*\"tok_s\": \([0-9.]*\).*/train_tps \2\ntrain_loss_last \1/p" "$4/metrics.jsonl" &&
            awk -F "\"eval_loss\": " "NF > 1 { v = \$2 + 0; if (!n++) print \"train_eval_first\", v; l = v }
                END { if (n) print \"train_eval_last\", l }" "$4/metrics.jsonl" &&
            awk "\$1 == \"rss_kb\" { print \"hwm_mb\", \$2 / 1024 }" "$4.rss"' _ \
            "$PLM" "$(model_for "$dt")" "$th" "$W/train-native" "$TRAIN_STEPS" ;;
    blank) sys=blank
        measured $sys "$dt" "$th" node tests/bench_web.mjs "$PLM" "$MODEL" "$SITE" "none:-:1:blank" ;;
    *) say "unknown configuration $2"; return 0 ;;
    esac
    if [ "$MEASURED_RC" != 0 ]; then
        skip "round $r, $sys $dt $th threads: exit status $MEASURED_RC: $(sed -n 's/^error //p' "$W/out.txt" | head -n 1) (stderr in $LOG)"
    else case $kind in
        nativetrain*) parse_kv "$r" $sys "$dt" "$th" ;;
        native*|node*) parse_bench "$r" $sys ;;
        ortnode*) parse_ort "$r" $sys "$dt" ;;
        *) parse_kv "$r" $sys "$dt" "$th"; own_cpu ;;
    esac fi
}

run_rounds "$ROUNDS" $CONFIGS
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
cpu_snapshot "$W/cpu1.txt"; T1=$(date +%s)
cat >"$W/run.env" <<RUN
MODEL='$MODEL' ROUNDS=$ROUNDS WAIT=$WAIT QUIET=$QUIET P=$P N=$N REPS=$REPS T=$T NCTX=$NCTX
LOAD_START='$LOAD_START' LOAD_END='$LOAD_END' NODE_BENCH='$NODE_BENCH' BUILT_REV='$BUILT_REV'
RUN_SECS=$((T1 - T0)) TRAIN_STEPS=$TRAIN_STEPS
RUN
fi  # ONLY
. "$W/run.env"
# the other processes alive at the end of the run, by CPU use during it (% of one core; a process
# that started and ended within the run is not seen here, only in the per-run foreign load)
awk -v self=$$ -v secs="$RUN_SECS" -v tck="$(getconf CLK_TCK)" 'NR == FNR { a[$1] = $2; next }
    NF > 2 && $1 != self && 100 * ($2 - a[$1]) / tck / secs >= 1 { d = $2 - a[$1]; $1 = $2 = ""
        printf "%.0f%%\t%s\n", 100 * d / tck / secs, substr($0, 3) }' "$W/cpu0.txt" "$W/cpu1.txt" |
    sort -rn | head -n 4 >"$W/foreign_procs.txt"

# ---- report ----
machine_env
export GIT_REV="$BUILT_REV"
export TRAIN_STEPS RAW RUNS SKIPPED OUT LOAD_START LOAD_END PLM MODEL Q8 ONNX P N REPS T NCTX NODE_BENCH SITE W
export CHROMIUM="$(/usr/bin/chromium --version 2>/dev/null | head -n 1)" NODE_VERSION="$(node --version)"
export EMCC_VERSION="$(env NODE_PATH=/usr/share/nodejs emcc --version 2>/dev/null | sed -n '1s/.* \([0-9][0-9.]*\) .*/emcc \1/p')"
export ORT_WEB="$(node -p 'require("./node_modules/onnxruntime-web/package.json").version' 2>/dev/null || echo none)"
export ORT_NODE="$(node -p 'require("./node_modules/onnxruntime-node/package.json").version' 2>/dev/null || echo none)"
export FOREIGN_PROCS="$(cat "$W/foreign_procs.txt" 2>/dev/null)"
export SETTINGS="BENCH_ROUNDS=$ROUNDS BENCH_WAIT=$WAIT BENCH_QUIET=$QUIET BENCH_P=$P BENCH_N=$N BENCH_REPS=$REPS BENCH_THREADS=$T BENCH_NCTX=$NCTX"
{ report_prelude; cat <<'EOF'; } | $PY -
T = E["T"]
section("bench-web: pocketlm wasm in Chromium and node vs onnxruntime-web/-node (pocketlm %s)" % E["GIT_REV"])
fp = E["FOREIGN_PROCS"].strip().splitlines()
if fp:
    w("Other processes alive at the end of the run, by CPU use during it (% of one core): " +
      "; ".join("%s `%s`" % (l.split("\t")[0], l.split("\t")[1].strip()[:90]) for l in fp) + ".\n")
w("Software: %s (headless, playwright-core); node %s; %s; onnxruntime-web %s (wasm backend,"
  " ort.wasm.min.mjs, served from this origin); onnxruntime-node %s; pocketlm native `make` (%s,"
  " CFLAGS `%s`).\n" % (E["CHROMIUM"], E["NODE_VERSION"], E["EMCC_VERSION"], E["ORT_WEB"], E["ORT_NODE"],
                        E["CC_VERSION"], E["CFLAGS_USED"]))
w("Model: `%s` (SmolLM2-135M-Instruct). pocketlm (native and wasm) loads this GGUF and keeps q8_0"
  " or f32 weights; onnxruntime runs `pocketlm export --format onnx` of the same file (fp32"
  " model.onnx, int8 model_quantized.onnx: weight-only 8-bit MatMulNBits).\n" % E["MODEL"])
w("Method: %d round%s; each round runs every configuration once in a fresh process (a fresh"
  " Chromium profile for the browser ones), the order rotated by one each round. Speeds are the best"
  " of %s repetitions inside the process (the seed's way: one); cells show the median over rounds"
  " (min–max). Prefill: a %s-token prompt from an empty cache; decode: %s greedy tokens after it;"
  " fixed tokenizer-free ids. TTFT: from the page's navigation start to the first token of a 30-token"
  " prompt, cold (empty Cache API: download from `pocketlm serve` on localhost, compile, load) and"
  " cached (second visit in the same profile: the model from the Cache API). Renderer RSS: VmRSS of"
  " the page's renderer process from /proc, read with the model loaded after the cold visit's runs"
  " (Chromium's own `--top-chrome-webui` renderer, ~160 MB in headless mode, is not the page's and"
  " is not counted); peak = its VmHWM. wasm resident: the resident part of the renderer's largest"
  " anonymous mapping, which is the wasm memory. Threaded = %s threads (pocketlm.js `threads`,"
  " ort.env.wasm.numThreads); 1 thread = pocketlm's single-threaded build.\n" % (
    n_rounds, "" if n_rounds == 1 else "s", E["REPS"], E["P"], E["N"], T))
w("Commands (%s):\n" % E["SETTINGS"])
w("    %s export -m %s --format onnx --quant none,int8 --out %s" % (E["PLM"], E["MODEL"], E["ONNX"]))
w("    %s convert %s %s --dtype q8_0   # the q8_0 rows' model (f32 rows: %s)" % (E["PLM"], E["MODEL"], E["Q8"], E["MODEL"]))
w("    node tests/bench_web.mjs %s %s|%s %s plm:q8_0|f32:1|%s[:simd128] %s %s %s %s   # pocketlm wasm, Chromium" % (E["PLM"], E["Q8"], E["MODEL"], E["SITE"], T, E["P"], E["N"], E["REPS"], E["NCTX"]))
w("    node tests/bench_web.mjs %s %s %s ort:int8|fp32:1|%s:kv %s %s %s    # onnxruntime-web" % (E["PLM"], E["MODEL"], E["SITE"], T, E["P"], E["N"], E["REPS"]))
w("    node tests/bench_web.mjs %s %s %s ort:fp32:1:nokv %s %s 1          # the seed's way" % (E["PLM"], E["MODEL"], E["SITE"], E["P"], E["N"]))
w("    [PLM_ISA=avx2] %s bench -m %s|%s --dtype q8_0|f32 --threads 1|%s -p %s -n %s --reps %s" % (E["PLM"], E["Q8"], E["MODEL"], T, E["P"], E["N"], E["REPS"]))
w("    node [--experimental-wasm-relaxed-simd] %s %s|%s --dtype q8_0|f32 --threads 1|%s -p %s -n %s --reps %s [--simd relaxed]   # = examples/node/bench.mjs" % (E["NODE_BENCH"], E["Q8"], E["MODEL"], T, E["P"], E["N"], E["REPS"]))
w("    node tests/bench_ort.mjs %s 1|%s model_quantized.onnx|model.onnx kv %s %s; ... model.onnx nokv 30 50\n" % (E["ONNX"], T, E["P"], E["N"]))
skipped = [l.strip() for l in open(E["SKIPPED"]) if l.strip()]
if skipped:
    w("Failed or not measured:\n")
    for s_ in skipped: w("- " + s_)
    w("")

def build_name(s, d):   # which SIMD build the auto rows loaded (bench_web.mjs's `relaxed` metric)
    v, dot = med((s, d, "1", "relaxed")), med((s, d, "1", "relaxed_dot"))
    if v is None: return ""
    return (", relaxed-SIMD build" + (" (path relaxed-dot)" if dot is not None and dot >= 0.5 else "")
            if v >= 0.5 else ", SIMD128 build")
ROWS_WEB = [("web-wasm", "q8_0", "pocketlm wasm q8_0" + build_name("web-wasm", "q8_0")),
            ("web-wasm-simd128", "q8_0", "pocketlm wasm q8_0, SIMD128 build (forced)"),
            ("web-wasm", "f32", "pocketlm wasm f32" + build_name("web-wasm", "f32")),
            ("ort-web", "int8", "onnxruntime-web int8, KV cache"), ("ort-web", "fp32", "onnxruntime-web fp32, KV cache")]
def web_row(s, d, name, th):
    k = lambda m: (s, d, th, m)
    if not any(recs.get(k(m)) for m in ("decode_tps", "nokv_tps", "rss_mb")): return
    w("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (name, th, cell(k("decode_tps")), cell(k("prefill_tps")),
        cell(k("ttft_cold_ms"), "%.0f"), cell(k("ttft_cached_ms"), "%.0f"), cell(k("rss_mb"), "%.0f"),
        cell(k("hwm_mb"), "%.0f"), cell(k("bigmap_rss_mb"), "%.0f")))
w("### Chromium: speed, time to first token, renderer memory\n")
w("| engine | threads | decode tok/s | prefill tok/s | TTFT cold ms | TTFT cached ms | renderer RSS MiB | renderer peak MiB | wasm resident MiB |")
w("|---|---|---|---|---|---|---|---|---|")
for s, d, name in ROWS_WEB:
    for th in ("1", T): web_row(s, d, name, th)
k = lambda m: ("ort-web-nokv", "fp32", "1", m)
if recs.get(k("nokv_tps")):
    w("| the seed's way: onnxruntime-web fp32, no KV cache (30-token prompt, 50 new) | 1 | %s | — | %s | — | %s | %s | %s |" % (
        cell(k("nokv_tps")), cell(k("ttft_cold_ms"), "%.0f"), cell(k("rss_mb"), "%.0f"), cell(k("hwm_mb"), "%.0f"), cell(k("bigmap_rss_mb"), "%.0f")))
k = lambda m: ("blank", "-", "1", m)
if recs.get(k("rss_mb")):
    w("| the bench page and its worker, no engine loaded (baseline) | — | — | — | — | — | %s | %s | — |" % (
        cell(k("rss_mb"), "%.0f"), cell(k("hwm_mb"), "%.0f")))
w("")

w("### Node and native: speed and peak RSS\n")
w("pocketlm native and node-wasm: `name dtype threads` lines of bench (best of %s; node-wasm decodes %s"
  " tokens after an 8-token prompt, as examples/node/bench.mjs does); onnxruntime-node: tests/bench_ort.mjs"
  " (one run; peak RSS of the process).\n" % (E["REPS"], E["N"]))
w("| engine | dtype | threads | decode tok/s | prefill tok/s | peak RSS MB |")
w("|---|---|---|---|---|---|")
for s, name in (("native", "pocketlm native (the CPU's best path)"), ("native-avx2", "pocketlm native, PLM_ISA=avx2"),
                ("node-wasm", "pocketlm wasm in node (SIMD128 build)"),
                ("node-wasm-relaxed", "pocketlm wasm in node --experimental-wasm-relaxed-simd (relaxed-SIMD build)"),
                ("ort-node", "onnxruntime-node, KV cache"),
                ("ort-node-nokv", "onnxruntime-node, no KV cache (the seed's way)")):
    for d in ("q8_0", "int8", "f32", "fp32"):
        for th in ("1", T):
            kk = lambda m: (s, d, th, m)
            if not (recs.get(kk("decode_tps")) or recs.get(kk("nokv_tps"))): continue
            w("| %s | %s | %s | %s | %s | %s |" % (name, d, th, cell(kk("decode_tps")) if recs.get(kk("decode_tps")) else cell(kk("nokv_tps")),
                cell(kk("prefill_tps")), cell(kk("rss_mb"), "%.0f")))
w("")

# ---- ratios and targets ----
def m(s, d, th, metric): return med((s, d, th, metric))
wq1 = m("web-wasm", "q8_0", "1", "decode_tps"); nq1 = m("native", "q8_0", "1", "decode_tps")
oq1 = m("node-wasm", "q8_0", "1", "decode_tps")
ort1 = {d: m("ort-web", d, "1", "decode_tps") for d in ("int8", "fp32")}
best_ort = max([v for v in ort1.values() if v] or [0]) or None
rss = {th: m("web-wasm", "q8_0", th, "rss_mb") for th in ("1", T)}
w("### Ratios and targets (browser issue)\n")
w("| target | measured | |")
w("|---|---|---|")
def target(name, shown, ok):
    w("| %s | %s | %s |" % (name, shown, "—" if ok is None else ("met" if ok else "**not met**")))
na1 = m("native-avx2", "q8_0", "1", "decode_tps")
ws1 = m("web-wasm-simd128", "q8_0", "1", "decode_tps")
wr1 = wq1 if (med(("web-wasm", "q8_0", "1", "relaxed")) or 0) >= 0.5 else None
def vs_native(v, goal, name):
    for nat, nname in ((nq1, "native best path"), (na1, "native avx2")):
        r = v / nat if v and nat else None
        target("%s ≥ %.0f%% of %s 1-thread (same run)" % (name, 100 * goal, nname),
               "—" if r is None else "%.1f vs %.1f tok/s: %.0f%%" % (v, nat, 100 * r), None if r is None else r >= goal)
vs_native(wr1, 0.7, "pocketlm wasm q8_0 1-thread decode in Chromium, relaxed-SIMD build,")
vs_native(ws1, 0.6, "pocketlm wasm q8_0 1-thread decode in Chromium, SIMD128 build,")
r = wq1 / best_ort if wq1 and best_ort else None
target("pocketlm wasm q8_0 1-thread decode ≥ 3× onnxruntime-web (its faster 1-thread variant)",
       "—" if r is None else "%.1f vs %.1f tok/s (int8 %s, fp32 %s): %.1f×" % (wq1, best_ort,
       "%.1f" % ort1["int8"] if ort1["int8"] else "—", "%.1f" % ort1["fp32"] if ort1["fp32"] else "—", r),
       None if r is None else r >= 3)
for th in ("1", T):
    v = rss[th]
    target("renderer RSS ≤ 350 MB, pocketlm q8_0, %s thread%s" % (th, "" if th == "1" else "s"),
           "—" if v is None else "%.0f MB (peak %s MB)" % (v, cell(("web-wasm", "q8_0", th, "hwm_mb"), "%.0f")),
           None if v is None else v <= 350)
w("")

# ---- training (the Train view) ----
tw = {th: m("web-train", "q8_0", th, "train_tps") for th in ("1", T)}
tn = {th: m("native-train", "q8_0", th, "train_tps") for th in ("1", T)}
if any(tw.values()) or any(tn.values()):
    w("### LoRA training: pocketlm wasm in Chromium and native\n")
    w("The Train view's run: `lm.finetune` with the library's defaults (r 8 on q_proj,v_proj, alpha 16,"
      " batch 8, 5%% held out, seed 1234) on web/paws-sample.tsv (the first 300 rows of PAWS dev, label-1"
      " rows both ways) for %s optimizer steps, the base q8_0; native: `pocketlm finetune` with the"
      " same data, settings and steps. Both evaluate the held-out rows every 10 steps. tok/s: every"
      " token of every example, over the whole run (metrics.jsonl's tok_s of the last step)."
      " Held-out loss: at the first evaluation (step 10) and at the last step. Peak RSS: the"
      " renderer's VmHWM (wasm), the process's maximum RSS (native). Heap in use: the most of the"
      " wasm heap allocated between steps (model, session and the training run; pocketlm.js"
      " memoryInUseBytes).\n" % E["TRAIN_STEPS"])
    w("| engine | threads | train tok/s | held-out loss, step 10 → last | last step's loss | peak RSS MiB | wasm heap in use while training MiB | wasm heap after training MiB |")
    w("|---|---|---|---|---|---|---|---|")
    for s, name in (("web-train", "pocketlm wasm in Chromium"), ("native-train", "pocketlm native (the CPU's best path)"),
                    ("native-train-avx2", "pocketlm native, PLM_ISA=avx2")):
        for th in ("1", T):
            kk = lambda mm: (s, "q8_0", th, mm)
            if not recs.get(kk("train_tps")): continue
            opt = lambda mm: cell(kk(mm), "%.0f") if recs.get(kk(mm)) else "—"
            ev = "%s → %s" % (cell(kk("train_eval_first"), "%.4f"), cell(kk("train_eval_last"), "%.4f")) \
                if recs.get(kk("train_eval_last")) else "—"
            w("| %s | %s | %s | %s | %s | %s | %s | %s |" % (name, th, cell(kk("train_tps")), ev,
                cell(kk("train_loss_last"), "%.4f") if recs.get(kk("train_loss_last")) else "—",
                cell(kk("hwm_mb"), "%.0f"), opt("train_inuse_mb"), opt("train_heap_mb")))
    w("")
    w("| target | measured | |")
    w("|---|---|---|")
    for nat, nname in ((tn["1"], "native best path"), (m("native-train-avx2", "q8_0", "1", "train_tps"), "native avx2")):
        r = tw["1"] / nat if tw["1"] and nat else None
        target("wasm training tok/s, 1 thread, Chromium ≥ 50%% of %s 1-thread (same run)" % nname,
               "—" if r is None else "%.1f vs %.1f tok/s: %.0f%%" % (tw["1"], nat, 100 * r), None if r is None else r >= 0.5)
    r = tw[T] / tw["1"] if tw[T] and tw["1"] else None
    target("wasm training with %s threads ≥ 1.6× the 1-thread figure" % T,
           "—" if r is None else "%.1f vs %.1f tok/s: %.2f×" % (tw[T], tw["1"], r), None if r is None else r >= 1.6)
    for th in ("1", T):
        fw = [m("web-train", "q8_0", th, k) for k in ("train_eval_first", "train_eval_last")]
        fn = [m("native-train", "q8_0", th, k) for k in ("train_eval_first", "train_eval_last")]
        if None in fw or None in fn: continue
        # both start from the same base model on the same held-out rows (the Q8_0 base has the same
        # bits in wasm and native; the f32 rest differs within rounding), so the loss that falls
        # at least as far is the one that ends at most as high
        target("%s steps in the tab, %s thread%s: the held-out loss falls at least as much as native's"
               " (same seed and data: it ends at most as high)" % (E["TRAIN_STEPS"], th, "" if th == "1" else "s"),
               "wasm %.4f → %.4f, native %.4f → %.4f (step 10 → last)" % (fw[0], fw[1], fn[0], fn[1]),
               fw[1] <= fn[1])
    for th in ("1", T):
        v = m("web-train", "q8_0", th, "hwm_mb")
        target("renderer peak RSS while training ≤ 1 GB, %s thread%s" % (th, "" if th == "1" else "s"),
               "—" if v is None else "%.0f MiB" % v, None if v is None else v <= 1024)
    w("")
orx1 = m("node-wasm-relaxed", "q8_0", "1", "decode_tps")
w("Other ratios (medians): node wasm q8_0 1-thread ÷ native: SIMD128 build %s, relaxed-SIMD build %s;"
  " relaxed ÷ SIMD128 build, q8_0 1-thread decode: Chromium %s, node %s;"
  " pocketlm wasm ÷ onnxruntime-node, 1 thread,"
  " node: q8_0 ÷ int8 %s, f32 ÷ fp32 %s; Chromium ÷ node for pocketlm wasm q8_0 1-thread: SIMD128"
  " build %s, relaxed-SIMD build %s; threaded ÷ 1-thread decode in Chromium, q8_0: %s.\n" % (
    ratio(oq1, nq1), ratio(orx1, nq1), ratio(wr1, ws1), ratio(orx1, oq1),
    ratio(oq1, m("ort-node", "int8", "1", "decode_tps")),
    ratio(m("node-wasm", "f32", "1", "decode_tps"), m("ort-node", "fp32", "1", "decode_tps")),
    ratio(ws1, oq1), ratio(wr1, orx1), ratio(m("web-wasm", "q8_0", T, "decode_tps"), wq1)))

# ---- memory of the q8_0 page ----
g = lambda metric: m("web-wasm", "q8_0", "1", metric)
if g("rss_mb"):
    L, K, D = 30, 3, 64   # SmolLM2-135M: layers, KV heads, head dim
    nctx = g("n_ctx") or 0
    cap = 256                  # session.c: the caches start at 256 positions and double as they fill
    while cap < int(E["P"]) + int(E["N"]) and cap < nctx: cap *= 2
    cap = min(cap, nctx) if nctx else cap
    kv = 2 * L * cap * K * D * 4 / 2**20
    att = 128 * 9 * cap * 4 / 2**20
    base = m("blank", "-", "1", "rss_mb")
    w("### Where the q8_0 renderer's memory goes (1 thread, medians, MiB)\n")
    w("| part | MiB | |")
    w("|---|---|---|")
    w("| renderer VmRSS with the model loaded | %.0f | peak (VmHWM) %.0f |" % (g("rss_mb"), g("hwm_mb") or 0))
    if base: w("| of which the page and worker with no engine (blank configuration) | %.0f | Chromium's renderer baseline |" % base)
    w("| of which wasm memory, resident | %.0f | of a %.0f MiB heap (the heap never shrinks) |" % (g("bigmap_rss_mb") or 0, g("heap_mb") or 0))
    w("| rest: compiled wasm, JS heap, stream buffers | %.0f | |" % (g("rss_mb") - (g("bigmap_rss_mb") or 0) - (base or 0)))
    w("| in the heap: the Q8_0 GGUF file, its weights used in place (plm_model_load_gguf_inplace) | %.0f | |" % (g("file_mb") or 0))
    w("| in the heap: the model's weights (plm_model_weight_bytes: the in-place q8_0 plus f32 scales and norms) | %.0f | mostly the file's own bytes |" % (g("weight_mb") or 0))
    w("| in the heap: KV cache for the %d positions it grew to (n_ctx %d; 2 × L × positions × K × D × 4 B) | %.0f | |" % (cap, nctx, kv))
    w("| in the heap: attention scratch (128 × H × positions × 4 B) | %.0f | |" % att)
    w("")
foreign_table()
slow_note()
write_report("Raw run of `make bench-web` (scripts/bench_web.sh), written to benchmarks/history/ by the script; the"
              " current figures, one row per target, are the table at the top of BENCHMARKS.md.")
EOF
say "wrote $OUT (copy its figures into the table of BENCHMARKS.md); raw records in $RAW, log in $LOG"
