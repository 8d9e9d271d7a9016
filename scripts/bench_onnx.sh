#!/bin/sh
# bench_onnx.sh — `make bench-onnx`: pocketlm's exports of the real SmolLM2-135M (base, or merged
# with LORA) and onnxruntime-node running them, side by side with pocketlm native in one run on this
# machine, written to a new dated file in benchmarks/history/ (its path is printed).
#
#   exports       pocketlm export: ONNX fp32/int8/int4 (--quant all) in $BUILD/bench/onnx/, GGUF
#                 f32/q8_0/q4_0 in $BUILD/bench/gguf/; reused while newer than the binary, the
#                 model and the adapter (and made from the same MODEL/LORA); file sizes reported
#   ORT, KV       tests/bench_ort.mjs (onnxruntime-node, one fresh process each): session load,
#                 prefill of a 128-token prompt, decode of 128 tokens with the KV cache, peak RSS
#   ORT, no KV    the seed's way on fp32 and int8: the whole sequence recomputed for each new token
#                 (30-token prompt, 50 new tokens)
#   pocketlm      build/pocketlm bench on the exported f32 and q8_0 GGUF (--dtype f32|q8_0), same
#                 prompt and decode lengths, --reps 1 so that both engines time one run a process
#
# Measurement as scripts/bench.sh (helpers in scripts/bench_lib.sh): BENCH_ROUNDS rounds (default
# 2), every configuration once a round, the order rotated each round; before each run a wait (up
# to BENCH_WAIT s) for the CPUs to fall under BENCH_QUIET % busy; the foreign CPU use during each
# run is recorded and reported. A run that fails is reported as skipped, with its exit status.
#
# Env: MODEL (default models/SmolLM2-135M-Instruct.Q4_1.gguf), LORA (a PEFT adapter dir to merge;
# unset = the base model), BUILD, BENCH_ROUNDS, BENCH_WAIT (120), BENCH_QUIET (25), BENCH_OUT
# (default a new benchmarks/history/DATE-bench-onnx.md), BENCH_THREADS ("2 1"), BENCH_N (decoded tokens, 128), BENCH_VARIANTS (ONNX
# files to run, "fp32 int8 int4 int8-qdq"; those not exported are reported absent), BENCH_SEED
# (1: the no-KV runs), BENCH_REPORT_ONLY=1 (write the report of the last run again).
set -eu
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
PLM=$BUILD/pocketlm
MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
LORA=${LORA:-}
ROUNDS=${BENCH_ROUNDS:-2}
WAIT=${BENCH_WAIT:-120}
QUIET=${BENCH_QUIET:-25}
OUT=${BENCH_OUT:-}
THREADS=${BENCH_THREADS:-2 1}
N=${BENCH_N:-128}
VARIANTS=${BENCH_VARIANTS:-fp32 int8 int4 int8-qdq}
SEED=${BENCH_SEED:-1}
ONLY=${BENCH_REPORT_ONLY:-0}
PY=/usr/bin/python3                 # the report only
ONNX=$BUILD/bench/onnx              # pocketlm export --format onnx
GGUF=$BUILD/bench/gguf              # pocketlm export --format gguf: f32.gguf q8_0.gguf q4_0.gguf
W=$BUILD/bench-onnx                 # raw results, logs (apart from scripts/bench.sh's $BUILD/bench)
RAW=$W/raw.txt                      # one record a line: round system dtype threads metric value
RUNS=$W/runs.txt                    # one line a run: system dtype threads wall_s foreign_cpu_%
SKIPPED=$W/skipped.txt              # one line a thing not measured, and why
LOG=$W/log.txt
mkdir -p "$W" "$GGUF"
[ "$ONLY" = 1 ] || { : >"$RAW"; : >"$RUNS"; : >"$LOG"; : >"$SKIPPED"; }

BENCH_NAME=bench-onnx HAVE_TIME=0
[ -x /usr/bin/time ] && HAVE_TIME=1
. scripts/bench_lib.sh      # say, measured, parse_bench, run_rounds, machine_env, report_prelude
[ -n "$OUT" ] || OUT=$(history_file bench-onnx)

skip() { say "skip: $*"; echo "$*" >>"$SKIPPED"; }
onnx_file() {           # onnx_file VARIANT: the file pocketlm export writes for it
    case $1 in
    fp32) echo model.onnx ;; int8) echo model_quantized.onnx ;;
    int4) echo model_q4.onnx ;; int8-qdq) echo model_quantized_qdq.onnx ;;
    esac
}

if [ "$ONLY" != 1 ]; then

# ---- build, model, exports ----
[ -f "$MODEL" ] || sh scripts/get_model.sh || { say "no model at $MODEL (make model)"; exit 1; }
make -s BUILD="$BUILD" all >&2 || { say "make failed"; exit 1; }
[ -z "$LORA" ] || [ -f "$LORA/adapter_model.safetensors" ] || { say "no adapter at $LORA"; exit 1; }
SRC="$MODEL${LORA:+ + LoRA $LORA}"
# fresh STAMP FILE...: STAMP says SRC, and every FILE exists and is newer than the binary, the
# model and the adapter
fresh() {
    [ "$(cat "$1" 2>/dev/null)" = "$SRC" ] || return 1
    shift
    for f in "$@"; do
        [ -f "$f" ] && [ "$f" -nt "$PLM" ] && [ "$f" -nt "$MODEL" ] &&
            { [ -z "$LORA" ] || [ "$f" -nt "$LORA/adapter_model.safetensors" ]; } || return 1
    done
}
# export_as STAMP "FILE..." ARGS...: pocketlm export ARGS unless the FILEs it writes are fresh
export_as() {
    stamp=$1 files=$2; shift 2
    if fresh "$stamp" $files; then say "reusing $files"; return 0; fi
    rm -f "$stamp"
    echo "\$ $PLM export -m $MODEL ${LORA:+--lora $LORA }$* --force" >>"$LOG"
    if "$PLM" export -m "$MODEL" ${LORA:+--lora "$LORA"} "$@" --force >>"$LOG" 2>&1; then
        echo "$SRC" >"$stamp"
    else
        skip "pocketlm export $*: failed ($(tail -n 1 "$LOG"))"
    fi
}
O=$ONNX/onnx
export_as "$ONNX/export.src" "$O/model.onnx $O/model_quantized.onnx $O/model_q4.onnx" \
    --format onnx --out "$ONNX" --quant all
for q in f32 q8_0 q4_0; do
    export_as "$GGUF/$q.gguf.src" "$GGUF/$q.gguf" --format gguf --out "$GGUF/$q.gguf" --quant "$q"
done

# ---- peers ----
ORT_VERSION=$(node -p 'require("./node_modules/onnxruntime-node/package.json").version' 2>/dev/null || echo none)
[ "$ORT_VERSION" != none ] || skip "onnxruntime-node: not in node_modules (scripts/setup.sh installs it with --ignore-scripts)"
[ $HAVE_TIME = 1 ] || say "no /usr/bin/time: foreign CPU load not measured (apt install time)"

# ---- the configurations, rotated each round; comparable pairs next to each other ----
CONFIGS=""
for th in $THREADS; do
    for v in $VARIANTS; do
        f=$(onnx_file "$v")
        if [ ! -f "$ONNX/onnx/$f" ]; then
            [ "$th" = "${THREADS%% *}" ] && skip "ONNX $v: $ONNX/onnx/$f not exported (pocketlm export --quant all makes fp32, int8, int4; int8-qdq only on request)"
            continue
        fi
        [ "$ORT_VERSION" = none ] || CONFIGS="$CONFIGS ort:$v:$th"
        q=q8_0; [ "$v" = fp32 ] && q=f32            # pocketlm's pair, once a thread count
        case "$CONFIGS " in *" plm:$q:$th "*) ;; *) [ -f "$GGUF/$q.gguf" ] && CONFIGS="$CONFIGS plm:$q:$th" ;; esac
    done
    if [ "$SEED" = 1 ] && [ "$ORT_VERSION" != none ]; then
        for v in $VARIANTS; do
            case $v in fp32|int8) [ -f "$ONNX/onnx/$(onnx_file $v)" ] && CONFIGS="$CONFIGS seed:$v:$th" ;; esac
        done
    fi
done
say "configs:$CONFIGS; $ROUNDS rounds"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# parse_ort ROUND SYSTEM VARIANT: tests/bench_ort.mjs lines `name threads n ms tok/s rss_mb` -> RAW
parse_ort() {
    awk -v r="$1" -v s="$2" -v d="$3" '
        $1 ~ /-start$/   { print r, s, d, $2, "base_rss_mb", $6 }
        $1 ~ /-load$/    { print r, s, d, $2, "load_ms", $4 }
        $1 ~ /-prefill$/ { print r, s, d, $2, "prefill_tps", $5 }
        $1 ~ /-decode$/  { print r, s, d, $2, "decode_tps", $5; print r, s, d, $2, "rss_mb", $6 }
        $1 ~ /-nokv$/    { print r, s, d, $2, "nokv_tps", $5; print r, s, d, $2, "nokv_s", $4 / 1000
                           print r, s, d, $2, "rss_mb", $6 }' "$W/out.txt" >>"$RAW"
}
run_config() {          # run_config ROUND KIND:DTYPE:THREADS
    r=$1; kind=${2%%:*}; rest=${2#*:}; dt=${rest%%:*}; th=${rest#*:}
    case $kind in
    plm)
        measured pocketlm "$dt" "$th" "$PLM" bench -m "$GGUF/$dt.gguf" --dtype "$dt" --threads "$th" \
            -p 128 -n "$N" --reps 1
        sysname=pocketlm ;;
    ort)
        measured ort-node "$dt" "$th" node tests/bench_ort.mjs "$ONNX" "$th" "$(onnx_file "$dt")" kv 128 "$N"
        sysname=ort-node ;;
    seed)
        measured ort-node-nokv "$dt" "$th" node tests/bench_ort.mjs "$ONNX" "$th" "$(onnx_file "$dt")" nokv 30 50
        sysname=ort-node-nokv ;;
    esac
    if [ "$MEASURED_RC" != 0 ]; then
        skip "round $r, $sysname $dt $th threads: exit status $MEASURED_RC (its stderr is in $LOG)"
    elif [ "$kind" = plm ]; then parse_bench "$r" pocketlm
    else parse_ort "$r" "$sysname" "$dt"; fi
}

run_rounds "$ROUNDS" $CONFIGS
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
# what the report needs to know about this run, so that BENCH_REPORT_ONLY=1 renders it again
cat >"$W/run.env" <<RUN
MODEL='$MODEL' LORA='$LORA' ROUNDS=$ROUNDS WAIT=$WAIT QUIET=$QUIET THREADS='$THREADS' N=$N
ORT_VERSION='$ORT_VERSION' LOAD_START='$LOAD_START' LOAD_END='$LOAD_END'
RUN
fi  # ONLY
. "$W/run.env"

# ---- report ----
machine_env
export RAW RUNS SKIPPED OUT LOAD_START LOAD_END PLM MODEL LORA ONNX GGUF N THREADS
export ORT_VERSION NODE_VERSION="$(node --version)"
export SETTINGS="BENCH_ROUNDS=$ROUNDS BENCH_WAIT=$WAIT BENCH_QUIET=$QUIET BENCH_THREADS=\"$THREADS\" BENCH_N=$N"
{ report_prelude; cat <<'EOF'; } | $PY -
lora = E.get("LORA", "")
section("bench-onnx: exports, onnxruntime-node and pocketlm (pocketlm %s)" % E["GIT_REV"])
w("Builds: pocketlm `make` (%s, CFLAGS `%s`); onnxruntime-node %s (npm, installed with --ignore-scripts,"
  " CPU execution provider, intraOpNumThreads = threads, interOpNumThreads 1), node %s.\n" % (
    E["CC_VERSION"], E["CFLAGS_USED"], E["ORT_VERSION"], E["NODE_VERSION"]))
w("Model: `%s`%s, exported by `pocketlm export` (ONNX with the KV cache, transformers.js layout)."
  " pocketlm runs the exported f32 and q8_0 GGUF, so both engines run the same weights.\n" % (
    E["MODEL"], " merged with the LoRA adapter `%s`" % lora if lora else " (the base model, no adapter)"))
w("Method: %d round%s; each round runs every configuration once in a fresh process, the order rotated"
  " by one each round. Both engines time one run per process (pocketlm `--reps 1`; tests/bench_ort.mjs"
  " runs once), on fixed tokenizer-free token ids (each tool its own; the ids do not change the work). Cells: median over rounds (min–max)."
  " Ratios: pocketlm ÷ onnxruntime, pocketlm f32 against ORT fp32 and pocketlm q8_0 against ORT int8,"
  " int4 and int8-qdq (pocketlm has no 4-bit runtime dtype).\n" % (n_rounds, "" if n_rounds == 1 else "s"))
w("Commands (%s):\n" % E["SETTINGS"])
w("    %s export -m %s%s --format onnx --out %s --quant all" % (E["PLM"], E["MODEL"], " --lora " + lora if lora else "", E["ONNX"]))
w("    %s export -m %s%s --format gguf --out %s/Q.gguf --quant f32|q8_0|q4_0" % (E["PLM"], E["MODEL"], " --lora " + lora if lora else "", E["GGUF"]))
ths = "|".join(E["THREADS"].split())
w("    node tests/bench_ort.mjs %s %s model.onnx|model_quantized.onnx|model_q4.onnx kv 128 %s" % (E["ONNX"], ths, E["N"]))
w("    node tests/bench_ort.mjs %s %s model.onnx|model_quantized.onnx nokv 30 50   # the seed's way" % (E["ONNX"], ths))
w("    %s bench -m %s/f32.gguf|q8_0.gguf --dtype f32|q8_0 --threads %s -p 128 -n %s --reps 1\n" % (E["PLM"], E["GGUF"], ths, E["N"]))
skipped = [l.strip() for l in open(E["SKIPPED"]) if l.strip()]
if skipped:
    w("Not measured:\n")
    for s_ in skipped: w("- " + s_)
    w("")

# ---- file sizes ----
FILES = [  # format, dtype, path, what it holds; sizes are shown ÷ the f32 file of the format
         ("ONNX", "fp32", E["ONNX"] + "/onnx/model.onnx", "f32 initializers"),
         ("ONNX", "int8", E["ONNX"] + "/onnx/model_quantized.onnx", "weight-only 8-bit blocks of 32: com.microsoft MatMulNBits on two 4-bit planes"),
         ("ONNX", "int4", E["ONNX"] + "/onnx/model_q4.onnx", "com.microsoft MatMulNBits, 4-bit blocks of 32; embedding and head 8-bit"),
         ("ONNX", "int8-qdq", E["ONNX"] + "/onnx/model_quantized_qdq.onnx", "DequantizeLinear → MatMul"),
         ("GGUF", "f32", E["GGUF"] + "/f32.gguf", ""), ("GGUF", "q8_0", E["GGUF"] + "/q8_0.gguf", ""),
         ("GGUF", "q4_0", E["GGUF"] + "/q4_0.gguf", ""),
         ("GGUF", "source", E["MODEL"], "the model the exports are made from")]
w("### File sizes\n")
w("| format | dtype | file | MB | ÷ f32 | |")
w("|---|---|---|---|---|---|")
base = {}
for fmt_, dt, path, note in FILES:
    if not os.path.exists(path):
        w("| %s | %s | `%s` | not exported | | |" % (fmt_, dt, path)); continue
    mb = os.path.getsize(path) / 1e6
    base.setdefault(fmt_, mb)
    w("| %s | %s | `%s` | %.1f | %.2f | %s |" % (fmt_, dt, path, mb, mb / base[fmt_], note))
w("")

# ---- speed and memory, one table a thread count ----
def ort_base(th):   # RSS of node + onnxruntime before a session, from the first variant that ran
    for d in ("fp32", "int8", "int4", "int8-qdq"):
        if recs.get(("ort-node", d, th, "base_rss_mb")): return "%.0f" % med(("ort-node", d, th, "base_rss_mb"))
    return "—"
ROWS = [("ort-node", "fp32", "f32"), ("ort-node", "int8", "q8_0"), ("ort-node", "int4", "q8_0"),
        ("ort-node", "int8-qdq", "q8_0"), ("pocketlm", "f32", None), ("pocketlm", "q8_0", None)]
METRICS = [("load_ms", "%.0f"), ("prefill_tps", "%.1f"), ("decode_tps", "%.1f"), ("rss_mb", "%.0f")]
for th in E["THREADS"].split():
    if not any(recs.get((s, d, th, "decode_tps")) for s, d, _ in ROWS): continue
    w("### Load, prefill, decode and peak RSS, %s thread%s\n" % (th, "" if th == "1" else "s"))
    w("Prefill: one 128-token prompt from an empty cache; decode: %s tokens one at a time with the KV"
      " cache; peak RSS of the whole process (onnxruntime-node: node + onnxruntime alone take %s MB"
      " before the session is made). Ratios pocketlm ÷ ORT: above 1 is better for pocketlm in"
      " tok/s, below 1 is better for pocketlm in ms and MB.\n" % (E["N"], ort_base(th)))
    w("| engine | weights | load ms | prefill tok/s | decode tok/s | peak RSS MB | pocketlm"
      " | decode ÷ | prefill ÷ | load ÷ | RSS ÷ |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    for s, d, pd in ROWS:
        if not any(recs.get((s, d, th, m)) for m, _ in METRICS): continue
        cells = [cell((s, d, th, m), f) for m, f in METRICS]
        if pd:
            rs = [ratio(med(("pocketlm", pd, th, m)), med((s, d, th, m))) for m in
                  ("decode_tps", "prefill_tps", "load_ms", "rss_mb")]
        else:
            pd, rs = "", [""] * 4
        w("| %s | %s | %s | %s |" % (s, d, " | ".join(cells), " | ".join([pd] + rs)))
    w("")

# ---- the seed's way ----
if any(k[0] == "ort-node-nokv" for k in recs):
    w("### The seed's way: onnxruntime-node without the KV cache\n")
    w("Each new token reruns the whole sequence (30-token prompt, 50 new tokens, greedy), as the"
      " seed's deployment did (export issue). The seed reported ~900 MB of RAM in Node for its unquantized"
      " model (SmolLM-360M) and ~2 GB in the browser (wasm); this is the 135M model. KV ÷ no KV: the decode tok/s"
      " above over these tok/s.\n")
    w("| file | threads | 50 tokens, s | tok/s | peak RSS MB | KV decode tok/s | KV ÷ no KV |")
    w("|---|---|---|---|---|---|---|")
    for th in E["THREADS"].split():
        for d in ("fp32", "int8"):
            k = ("ort-node-nokv", d, th)
            if not recs.get(k + ("nokv_tps",)): continue
            w("| %s | %s | %s | %s | %s | %s | %s |" % (d, th, cell(k + ("nokv_s",), "%.2f"),
              cell(k + ("nokv_tps",)), cell(k + ("rss_mb",), "%.0f"), cell(("ort-node", d, th, "decode_tps")),
              ratio(med(("ort-node", d, th, "decode_tps")), med(k + ("nokv_tps",)))))
    w("")

foreign_table()
slow_note()
write_report("Raw run of `make bench-onnx` (scripts/bench_onnx.sh), written to benchmarks/history/ by the script; the"
              " current figures, one row per target, are the table at the top of BENCHMARKS.md.")
EOF
say "wrote $OUT (copy its figures into the table of BENCHMARKS.md); raw records in $RAW, log in $LOG"
