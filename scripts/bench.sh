#!/bin/sh
# bench.sh — `make bench`: pocketlm against its peers on the real SmolLM2-135M, side by side in one
# run on this machine, written to a new dated file in benchmarks/history/ (its path is printed).
#
#   pocketlm      build/pocketlm bench (f32 and q8_0, 1 and 2 threads): load, prefill of 128 tokens,
#                 decode of 128 tokens (best of 3 reps inside the process), peak RSS;
#                 build/pocketlm tokenize on the PAWS dev+test sentences (encode MB/s)
#   llama.cpp     scripts/bench_llamacpp.py (llama-cpp-python built from source by setup_bench.sh)
#                 on a Q8_0 GGUF (pocketlm convert, or llama.cpp's requantizer as a fallback), on
#                 an F32 GGUF (pocketlm convert: the peer of pocketlm's f32 rows), on the
#                 original Q4_1 GGUF, and on Q4_K_M and Q4_0 GGUFs that llama.cpp's own quantizer
#                 writes from the F32 one (pocketlm runs the same files with --dtype auto)
#   PyTorch       scripts/bench_torch.py (HF transformers f32) on the HF dir from pocketlm convert;
#                 HF `tokenizers` (Rust) on the same PAWS text
#   AVX2          when the CPU's own path is wider (AVX-512): pocketlm again with PLM_ISA=avx2
#                 (pocketlm/avx2) and the AVX2-only llama-cpp-python build of setup_bench.sh
#                 (llama.cpp/avx2, LCP_AVX2_DIR), the path most users' CPUs take
#   bandwidth     every pocketlm bench run also reads its weights (1 and its thread count: bw_read
#                 lines) and prints decode's ceiling (bandwidth / bytes of weights per token); the
#                 report gives every decode figure as a share of its ceiling (llama.cpp's bytes per
#                 token from its GGUF's tensor sizes)
# Every report section and table says where it ran: the CPU model, its flags, the kernel paths.
#
# Noisy shared machine: every configuration runs once per round, the order rotated each round,
# for BENCH_ROUNDS rounds (default 3); the tables show the median over rounds (min–max beside it).
# Before each run it waits (up to BENCH_WAIT s, default 120) for the other processes' CPU use to
# fall under BENCH_QUIET % (default 25), and it records the foreign CPU use during each run
# (/proc/stat busy time less the run's own user+sys time). A peer that is not installed is
# skipped with a message. BENCH_SETUP=0 skips the install steps (setup_bench.sh, setup_ref.sh).
# BENCH_REPORT_ONLY=1 writes the report of the last run again (from $BUILD/bench/raw.txt).
# BENCH_ONLY="plm plm2 lcp lcp2 torch tok" runs only those kinds of configuration (for trying it out).
#
# Env: MODEL (default models/SmolLM2-135M-Instruct.Q4_1.gguf), BUILD, BENCH_ROUNDS, BENCH_WAIT,
# BENCH_QUIET, BENCH_SETUP, BENCH_OUT (the report file; default a new
# benchmarks/history/DATE-bench.md), BENCH_HISTORY (that folder), PAWS (dir with dev.tsv, test.tsv).
set -eu
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
PLM=$BUILD/pocketlm
MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
ROUNDS=${BENCH_ROUNDS:-3}
WAIT=${BENCH_WAIT:-120}
QUIET=${BENCH_QUIET:-25}
SETUP=${BENCH_SETUP:-1}
OUT=${BENCH_OUT:-}
PY=/usr/bin/python3
PAWS=${PAWS:-data/paws}
W=$BUILD/bench                      # work dir: converted models, raw results, logs
Q8=$W/smollm2-q8_0.gguf             # Q8_0 GGUF for llama.cpp
F32=$W/smollm2-f32.gguf             # F32 GGUF for llama.cpp (the peer of pocketlm's f32 rows)
Q4KM=$W/smollm2-q4_k_m.gguf         # llama.cpp's Q4_K_M of F32 (its mix: Q5_0, Q4_K, Q6_K, Q8_0)
Q40=$W/smollm2-q4_0.gguf            # llama.cpp's Q4_0 of F32
HF=$BUILD/smollm2-f32               # HF dir for PyTorch
RAW=$W/raw.txt                      # one record a line: round system dtype threads metric value
RUNS=$W/runs.txt                    # one line a run: system dtype threads wall_s foreign_cpu_%
LOG=$W/log.txt
ONLY=${BENCH_REPORT_ONLY:-0}        # 1: only rewrite the report from the last run's raw records
mkdir -p "$W"
[ "$ONLY" = 1 ] || { : >"$RAW"; : >"$RUNS"; : >"$LOG"; rm -f "$W"/where_*.txt; }

BENCH_NAME=bench
. scripts/bench_lib.sh      # say, measured, parse_bench, run_rounds, machine_env, report_prelude
[ -n "$OUT" ] || OUT=$(history_file bench)

if [ "$ONLY" != 1 ]; then

# ---- build, model, peers ----
[ -f "$MODEL" ] || sh scripts/get_model.sh || { say "no model at $MODEL (make model)"; exit 1; }
make -s all >&2 || { say "make failed"; exit 1; }
if [ "$SETUP" = 1 ]; then
    sh scripts/setup_bench.sh >&2 || say "setup_bench.sh failed: llama.cpp will be skipped"
    if ! $PY -c 'import torch, transformers' 2>/dev/null && [ -f scripts/setup_ref.sh ]; then
        sh scripts/setup_ref.sh >&2 || say "setup_ref.sh failed: PyTorch will be skipped"
    fi
fi
HAVE_LCP=0; HAVE_TORCH=0; HAVE_TOK=0; HAVE_HFTOK=0; HAVE_TIME=0
$PY -c 'import llama_cpp' 2>/dev/null && HAVE_LCP=1 || say "skip llama.cpp: llama_cpp not importable by $PY (scripts/setup_bench.sh)"
# AVX2: pocketlm's PLM_ISA=avx2 when its own path is another, llama.cpp's AVX2-only build beside it
LCP_AVX2_DIR=${LCP_AVX2_DIR:-/usr/local/lib/pocketlm-bench/llama-cpp-avx2}
HAVE_PLM2=0; HAVE_LCP2=0
PLM_AUTO=$(PLM_ISA= "$PLM" info -m "$MODEL" | sed -n 's/^kernel_path *//p')
if [ "$PLM_AUTO" != avx2 ] && PLM_ISA=avx2 "$PLM" info -m "$MODEL" >/dev/null 2>&1; then HAVE_PLM2=1
else say "skip pocketlm/avx2: the CPU's path is $PLM_AUTO (avx2 already, or no AVX2)"; fi
if [ $HAVE_PLM2 = 1 ] && PYTHONPATH=$LCP_AVX2_DIR $PY -c 'import llama_cpp, sys; sys.exit(not llama_cpp.__file__.startswith(sys.argv[1]) or b"AVX512 = 1" in llama_cpp.llama_print_system_info())' "$LCP_AVX2_DIR" 2>/dev/null; then HAVE_LCP2=1
else [ $HAVE_PLM2 = 1 ] && say "skip llama.cpp/avx2: no AVX2-only llama_cpp in $LCP_AVX2_DIR (scripts/setup_bench.sh)"; fi
if [ -f scripts/bench_torch.py ] && $PY -c 'import torch, transformers' 2>/dev/null; then HAVE_TORCH=1
else say "skip PyTorch: scripts/bench_torch.py or torch/transformers missing (scripts/setup_ref.sh)"; fi
[ -x /usr/bin/time ] && HAVE_TIME=1 || say "no /usr/bin/time: foreign CPU load not measured (apt install time)"

# Q8_0 GGUF: pocketlm's converter, else llama.cpp's requantizer (stopgap), else no llama.cpp q8_0.
Q8_BY=""
if [ -f "$Q8" ] && [ -f "$Q8.by" ]; then Q8_BY=$(cat "$Q8.by")
else
    rm -f "$Q8" "$Q8.by"
    if "$PLM" convert "$MODEL" "$Q8" --dtype q8_0 >>"$LOG" 2>&1 && [ -f "$Q8" ]; then
        Q8_BY="pocketlm convert --dtype q8_0"
    elif [ $HAVE_LCP = 1 ] && $PY scripts/bench_llamacpp.py --quantize "$MODEL" "$Q8" >>"$LOG" 2>&1; then
        Q8_BY="llama.cpp llama_model_quantize (stopgap: pocketlm convert --dtype q8_0 failed)"
    fi
    [ -n "$Q8_BY" ] && echo "$Q8_BY" >"$Q8.by"
fi
[ -n "$Q8_BY" ] && say "Q8_0 GGUF $Q8 made by $Q8_BY" || say "no Q8_0 GGUF: llama.cpp q8_0 skipped"
HAVE_F32=0
if [ $HAVE_LCP = 1 ] || [ $HAVE_LCP2 = 1 ]; then
    if [ -f "$F32" ] || "$PLM" convert "$MODEL" "$F32" --dtype f32 >>"$LOG" 2>&1; then HAVE_F32=1
    else rm -f "$F32"; say "pocketlm convert --dtype f32 failed: llama.cpp f32 skipped"; fi
fi
# Q4_K_M and Q4_0 files as llama.cpp writes them (the files people download), for both systems
HAVE_KQ=0
if [ $HAVE_LCP = 1 ] && [ $HAVE_F32 = 1 ]; then
    HAVE_KQ=1
    for q in q4_k_m:$Q4KM q4_0:$Q40; do
        [ -f "${q#*:}" ] || $PY scripts/bench_llamacpp.py --quantize "$F32" "${q#*:}" --type "${q%%:*}" >>"$LOG" 2>&1 ||
            { say "llama.cpp could not write ${q#*:}: Q4_K_M / Q4_0 rows skipped"; HAVE_KQ=0; }
    done
fi
if [ $HAVE_TORCH = 1 ] && [ ! -f "$HF/config.json" ]; then
    "$PLM" convert "$MODEL" "$HF" >>"$LOG" 2>&1 ||
        { say "pocketlm convert to an HF dir failed: PyTorch skipped"; HAVE_TORCH=0; }
fi

# Tokenizer text: the PAWS dev+test sentences (both columns), one a line.
TXT=$W/paws.txt
if [ -f "$PAWS/dev.tsv" ] && [ -f "$PAWS/test.tsv" ]; then
    for f in "$PAWS/dev.tsv" "$PAWS/test.tsv"; do tail -n +2 "$f" | cut -f2,3 | tr '\t' '\n'; done >"$TXT"
    if "$PLM" tokenize --help >/dev/null 2>&1; then HAVE_TOK=1; else say "skip tokenizer: no pocketlm tokenize"; fi
    $PY -c 'import tokenizers' 2>/dev/null && [ -f "$HF/tokenizer.json" ] && HAVE_HFTOK=1 ||
        say "skip HF tokenizers: not importable or no $HF/tokenizer.json"
else
    say "skip tokenizer: no PAWS text at $PAWS"
fi

# ---- parsers of the runs' output (measured, parse_bench: scripts/bench_lib.sh) ----
parse_torch() {        # torch-f32-prefill T N ms tok/s ; torch-f32-decode ... ; torch-f32-peak-rss-mb X
    awk -v r="$1" '
        $1 ~ /^torch-.*-prefill$/ { print r, "torch", "f32", $2, "prefill_tps", $5 }
        $1 ~ /^torch-.*-decode$/  { print r, "torch", "f32", $2, "decode_tps", $5 }
        $1 ~ /^torch-.*-load$/    { print r, "torch", "f32", $2, "load_ms", $4 }
        $1 ~ /peak-rss/           { print r, "torch", "f32", "1+2", "rss_mb", $2 }' "$W/out.txt" >>"$RAW"
}

# ---- the configurations, rotated each round ----
# auto: the file's own types where a kernel exists (the shipped file: Q4_1 layers, a Q8_0
# embedding / head), the model llama.cpp runs from the same file; its lines say q4_1
CONFIGS="plm:f32:1 plm:f32:2 plm:q8_0:1 plm:q8_0:2 plm:auto:1 plm:auto:2"
[ $HAVE_PLM2 = 1 ] && CONFIGS="$CONFIGS plm2:f32:1 plm2:f32:2 plm2:q8_0:1 plm2:q8_0:2 plm2:auto:1 plm2:auto:2"
# q4_k_m, q4_0: llama.cpp's files of those types, pocketlm with --dtype auto on the same file
[ $HAVE_KQ = 1 ] && CONFIGS="$CONFIGS plm:q4_k_m:1 plm:q4_k_m:2 plm:q4_0:1 plm:q4_0:2 lcp:q4_k_m:1 lcp:q4_k_m:2 lcp:q4_0:1 lcp:q4_0:2"
[ $HAVE_KQ = 1 ] && [ $HAVE_PLM2 = 1 ] && CONFIGS="$CONFIGS plm2:q4_k_m:1 plm2:q4_k_m:2 plm2:q4_0:1 plm2:q4_0:2"
[ $HAVE_KQ = 1 ] && [ $HAVE_LCP2 = 1 ] && CONFIGS="$CONFIGS lcp2:q4_k_m:1 lcp2:q4_k_m:2 lcp2:q4_0:1 lcp2:q4_0:2"
[ $HAVE_LCP = 1 ] && [ -n "$Q8_BY" ] && CONFIGS="$CONFIGS lcp:q8_0:1 lcp:q8_0:2"
[ $HAVE_LCP = 1 ] && CONFIGS="$CONFIGS lcp:q4_1:1 lcp:q4_1:2"
[ $HAVE_LCP = 1 ] && [ $HAVE_F32 = 1 ] && CONFIGS="$CONFIGS lcp:f32:1 lcp:f32:2"
[ $HAVE_LCP2 = 1 ] && [ -n "$Q8_BY" ] && CONFIGS="$CONFIGS lcp2:q8_0:1 lcp2:q8_0:2"
[ $HAVE_LCP2 = 1 ] && CONFIGS="$CONFIGS lcp2:q4_1:1 lcp2:q4_1:2"
[ $HAVE_LCP2 = 1 ] && [ $HAVE_F32 = 1 ] && CONFIGS="$CONFIGS lcp2:f32:1 lcp2:f32:2"
[ $HAVE_TORCH = 1 ] && CONFIGS="$CONFIGS torch:f32:1+2"
[ $HAVE_TOK = 1 ] && CONFIGS="$CONFIGS tok:plm:1"
[ $HAVE_HFTOK = 1 ] && CONFIGS="$CONFIGS tok:hf:1"
if [ -n "${BENCH_ONLY:-}" ]; then    # BENCH_ONLY="plm lcp2 ...": only these kinds of configuration
    keep=""; for c in $CONFIGS; do case " $BENCH_ONLY " in *" ${c%%:*} "*) keep="$keep $c" ;; esac; done
    CONFIGS=$keep
fi
say "configs: $CONFIGS; $ROUNDS rounds"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

run_config() {          # run_config ROUND KIND:DTYPE:THREADS
    r=$1; kind=${2%%:*}; rest=${2#*:}; dt=${rest%%:*}; th=${rest#*:}
    case $kind in
    plm|plm2)       # plm: the CPU's own path (PLM_ISA empty: auto); plm2: PLM_ISA=avx2
        isa=; sys=pocketlm; [ $kind = plm2 ] && isa=avx2 && sys=pocketlm/avx2
        g=$MODEL; pd=$dt; as=    # a file of llama.cpp's runs with auto, its rows named by its type
        case $dt in q4_k_m) g=$Q4KM pd=auto as=$dt ;; q4_0) g=$Q40 pd=auto as=$dt ;; esac
        measured $sys "$dt" "$th" env PLM_ISA=$isa "$PLM" bench -m "$g" --dtype "$pd" --threads "$th" -p 128 -n 128
        grep -E '^(cpu|features|path) ' "$W/out.txt" >"$W/where_$kind.txt" || true
        parse_bench "$r" $sys $as ;;
    lcp|lcp2)       # lcp2: the AVX2-only build of setup_bench.sh
        g=$MODEL; [ "$dt" = q8_0 ] && g=$Q8; [ "$dt" = f32 ] && g=$F32
        [ "$dt" = q4_k_m ] && g=$Q4KM; [ "$dt" = q4_0 ] && g=$Q40
        pp=; sys=llama.cpp; [ $kind = lcp2 ] && pp=$LCP_AVX2_DIR && sys=llama.cpp/avx2
        measured $sys "$dt" "$th" env ${pp:+PYTHONPATH=$pp} $PY scripts/bench_llamacpp.py "$g" --threads "$th" -p 128 -n 128
        parse_bench "$r" $sys $dt ;;
    torch)
        measured torch f32 "1+2" $PY scripts/bench_torch.py "$HF"
        parse_torch "$r" ;;
    tok)    # tokenizer encode: the whole PAWS text as one stdin text; MB/s net of a 1-word run
        if [ "$dt" = plm ]; then
            cat >"$W/tok.sh" <<TOK
"$PLM" tokenize -t "$MODEL" x >/dev/null
t0=\$(date +%s.%N); "$PLM" tokenize -t "$MODEL" x >/dev/null; t1=\$(date +%s.%N)
"$PLM" tokenize -t "$MODEL" <"$TXT" >"$W/tok_out.txt"; t2=\$(date +%s.%N)
echo \$t0 \$t1 \$t2
TOK
            measured tok-pocketlm - 1 sh "$W/tok.sh"
            tr ',' '\n' <"$W/tok_out.txt" | wc -l >"$W/tok_n.txt"
            awk -v r="$r" -v bytes="$(wc -c <"$TXT")" -v n="$(cat "$W/tok_n.txt")" '{
                base = $2 - $1; tot = $3 - $2
                print r, "tokenizer", "pocketlm", 1, "encode_mbs", bytes / 1e6 / (tot - base)
                print r, "tokenizer", "pocketlm", 1, "tokens", n }' "$W/out.txt" >>"$RAW"
        else
            measured tok-hf - 1 env TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS=1 $PY -c '
import sys, time
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1]); text = open(sys.argv[2], encoding="utf-8").read()
lines = text.splitlines(); mb = len(text.encode()) / 1e6
tok.encode("x", add_special_tokens=False)
t = time.perf_counter(); ids = tok.encode(text, add_special_tokens=False).ids; a = time.perf_counter() - t
t = time.perf_counter(); enc = tok.encode_batch(lines, add_special_tokens=False); b = time.perf_counter() - t
print(mb / a, len(ids), mb / b, sum(len(e.ids) for e in enc))' "$HF/tokenizer.json" "$TXT"
            awk -v r="$r" '{ print r, "tokenizer", "hf-tokenizers", 1, "encode_mbs", $1
                             print r, "tokenizer", "hf-tokenizers", 1, "tokens", $2
                             print r, "tokenizer", "hf-tokenizers-batch", 1, "encode_mbs", $3
                             print r, "tokenizer", "hf-tokenizers-batch", 1, "tokens", $4 }' "$W/out.txt" >>"$RAW"
        fi ;;
    esac
}

run_rounds "$ROUNDS" $CONFIGS
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
echo "$LOAD_START|$LOAD_END" >"$W/loadavg.txt"
fi  # ONLY
LOAD_START=$(cut -d'|' -f1 "$W/loadavg.txt"); LOAD_END=$(cut -d'|' -f2 "$W/loadavg.txt")
Q8_BY=$(cat "$Q8.by" 2>/dev/null || true); TXT=$W/paws.txt

# ---- report ----
LCP_AVX2_DIR=${LCP_AVX2_DIR:-/usr/local/lib/pocketlm-bench/llama-cpp-avx2}
export RAW RUNS ROUNDS MODEL Q8 F32 Q4KM Q40 Q8_BY HF LOAD_START LOAD_END PLM OUT TXT W
machine_env
export LCP_INFO="$($PY -c 'import llama_cpp; print(llama_cpp.__version__, "|", llama_cpp.llama_print_system_info().decode().strip())' 2>/dev/null || echo none)"
export LCP2_INFO="$(PYTHONPATH=$LCP_AVX2_DIR $PY -c 'import llama_cpp, sys; assert llama_cpp.__file__.startswith(sys.argv[1]); print(llama_cpp.__version__, "|", llama_cpp.llama_print_system_info().decode().strip())' "$LCP_AVX2_DIR" 2>/dev/null || echo none)"
export TORCH_INFO="$($PY -c 'import torch, transformers; print("torch", torch.__version__, "(" + "; ".join(l.strip(" -") for l in torch.__config__.show().splitlines() if "capability" in l.lower()) + ") transformers", transformers.__version__)' 2>/dev/null || echo none)"
{ report_prelude; cat <<'EOF'; } | $PY -
SYSTEMS = [("pocketlm", "f32", "pocketlm", "f32"), ("pocketlm", "q8_0", "pocketlm", "q8_0"),
           ("pocketlm", "q4_1", "pocketlm", "q4_1"),
           ("pocketlm/avx2", "f32", "pocketlm/avx2", "f32"), ("pocketlm/avx2", "q8_0", "pocketlm/avx2", "q8_0"),
           ("pocketlm/avx2", "q4_1", "pocketlm/avx2", "q4_1"),
           ("llama.cpp", "q8_0", "pocketlm", "q8_0"), ("llama.cpp", "q4_1", "pocketlm", "q4_1"),
           ("llama.cpp/avx2", "q8_0", "pocketlm/avx2", "q8_0"), ("llama.cpp/avx2", "q4_1", "pocketlm/avx2", "q4_1"),
           ("llama.cpp", "f32", "pocketlm", "f32"), ("llama.cpp/avx2", "f32", "pocketlm/avx2", "f32"),
           ("pocketlm", "q4_k_m", "pocketlm", "q4_k_m"), ("pocketlm", "q4_0", "pocketlm", "q4_0"),
           ("pocketlm/avx2", "q4_k_m", "pocketlm/avx2", "q4_k_m"), ("pocketlm/avx2", "q4_0", "pocketlm/avx2", "q4_0"),
           ("llama.cpp", "q4_k_m", "pocketlm", "q4_k_m"), ("llama.cpp", "q4_0", "pocketlm", "q4_0"),
           ("llama.cpp/avx2", "q4_k_m", "pocketlm/avx2", "q4_k_m"), ("llama.cpp/avx2", "q4_0", "pocketlm/avx2", "q4_0"),
           ("torch", "f32", "pocketlm", "f32")]

def where_of(kind):   # the cpu, features and path lines pocketlm bench printed (plm: auto, plm2: avx2)
    d = {}
    try:
        for l in open(os.path.join(E["W"], "where_%s.txt" % kind)):
            k, _, v = l.strip().partition(" ")
            d[k] = v.strip()
    except OSError: pass
    return d
WA, W2 = where_of("plm"), where_of("plm2")
def lcp_flags(info):  # "CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | AVX512_VNNI = 1 ..." -> "AVX512 (+VNNI ...)"
    on = [f.split("=")[0].split(":")[-1].strip() for f in info.split("|") if f.strip().endswith("= 1")]
    top = next((x for x in ("AVX512", "AVX2", "AVX", "NEON") if x in on), "?")
    extra = [x.replace("AVX512_", "") for x in on if x.startswith("AVX512_") or x in ("AVX_VNNI", "FMA", "F16C")]
    return top + (" (+" + " ".join(extra) + ")" if extra else "")
WHERE = ("Where: CPU %s; flags the kernels use: %s; pocketlm kernel path: %s (auto)%s; llama.cpp: %s%s." % (
    WA.get("cpu", E["CPU_MODEL"]), WA.get("features", E["CPU_FLAGS"].strip()), WA.get("path", "?"),
    ", %s (PLM_ISA=avx2, rows pocketlm/avx2)" % W2["path"] if W2.get("path") else "",
    lcp_flags(E["LCP_INFO"].partition("|")[2]) if E["LCP_INFO"] != "none" else "not installed",
    "; llama.cpp/avx2 (GGML_NATIVE=OFF build): %s" % lcp_flags(E["LCP2_INFO"].partition("|")[2])
    if E["LCP2_INFO"] != "none" else ""))
section("bench: pocketlm " + E["GIT_REV"])
w(WHERE + "\n")
w("Builds: pocketlm `make` (%s, CFLAGS `%s`); llama.cpp via llama-cpp-python %s"
  " (built from the PyPI sdist by scripts/setup_bench.sh, GGML_NATIVE=ON, no BLAS)%s; %s.\n" % (
    E["CC_VERSION"], E["CFLAGS_USED"], E["LCP_INFO"],
    "; llama.cpp/avx2: llama-cpp-python %s (GGML_NATIVE=OFF, AVX2/FMA/F16C only)" % E["LCP2_INFO"]
    if E["LCP2_INFO"] != "none" else "", E["TORCH_INFO"]))
w("Method: %s rounds; each round runs every configuration once in a fresh process, the order rotated"
  " by one each round. pocketlm and llama.cpp report the best of 3 repetitions inside the process"
  " (pseudo-random token ids, identical for both; KV cache cleared between repetitions);"
  " bench_torch.py reports the median of 3 after a warm-up. Cells: median over rounds (min–max)."
  " Ratios: pocketlm ÷ peer, with pocketlm at the peer's dtype (q4_1: `--dtype auto` on the Q4_1 file, as llama.cpp runs it) and on the"
  " peer's instruction set (pocketlm/avx2 for llama.cpp/avx2).\n" % n_rounds)
w("Models: pocketlm runs `%s` (Q4_1 GGUF: dequantized to f32, requantized to q8_0, or kept (auto) at load);"
  " llama.cpp runs `%s` (Q8_0, made by %s) and the original Q4_1; PyTorch runs the HF f32 dir `%s`"
  " made by `pocketlm convert`.\n" % (E["MODEL"], E["Q8"], E["Q8_BY"] or "—", E["HF"]))
w("Commands:\n")
w("    [PLM_ISA=avx2] %s bench -m %s --dtype f32|q8_0|auto --threads 1|2 -p 128 -n 128" % (E["PLM"], E["MODEL"]))
w("    [PLM_ISA=avx2] %s bench -m %s|%s --dtype auto --threads 1|2 -p 128 -n 128   # rows q4_k_m, q4_0" % (E["PLM"], E["Q4KM"], E["Q40"]))
w("    /usr/bin/python3 scripts/bench_llamacpp.py --quantize %s %s|%s --type q4_k_m|q4_0   # llama.cpp's quantizer" % (E["F32"], E["Q4KM"], E["Q40"]))
w("    [PYTHONPATH=LCP_AVX2_DIR] /usr/bin/python3 scripts/bench_llamacpp.py %s|%s|%s|%s|%s --threads 1|2 -p 128 -n 128   # n_ctx 512" % (E["Q8"], E["F32"], E["MODEL"], E["Q4KM"], E["Q40"]))
w("    /usr/bin/python3 scripts/bench_torch.py %s" % E["HF"])
w("    %s tokenize -t %s < %s   # PAWS dev+test sentences\n" % (E["PLM"], E["MODEL"], E["TXT"]))

def table(title, metric, note, fmt="%.1f"):
    w("### %s\n" % title)
    w(WHERE + "\n")
    if note: w(note + "\n")
    w("| system | dtype | 1 thread | 2 threads | pocketlm ÷ this, 1 th | pocketlm ÷ this, 2 th |")
    w("|---|---|---|---|---|---|")
    for s, d, ps, pd in SYSTEMS:
        ths = ("1+2", "1+2") if (s == "torch" and metric == "rss_mb") else ("1", "2")
        if not any(recs.get((s, d, t, metric)) for t in ths): continue
        c1 = cell((s, d, ths[0], metric), fmt)
        c2 = cell((s, d, "2", metric), fmt) if ths[1] == "2" else "(same process)"
        if s == ps and d == pd:
            r1 = r2 = "1.00"
        else:
            r1 = ratio(med((ps, pd, "1", metric)), med((s, d, ths[0], metric)))
            r2 = ratio(med((ps, pd, "2", metric)), med((s, d, ths[1], metric)))
        w("| %s | %s | %s | %s | %s | %s |" % (s, d, c1, c2, r1, r2))
    w("")

table("Decode tok/s (higher is better)", "decode_tps",
      "128 tokens one at a time after a 128-token prompt; bench_torch.py: 64 greedy tokens after a"
      " 16-token prompt (HF generate).")
table("Prefill tok/s (higher is better)", "prefill_tps", "One 128-token prompt from an empty cache.")
table("Load ms (lower is better)", "load_ms",
      "Open the file to a ready session/context (pocketlm includes Q4_1 → f32/q8_0 conversion;"
      " llama.cpp mmaps its file).", "%.0f")
table("Peak RSS MB (lower is better)", "rss_mb",
      "Whole process: ru_maxrss (pocketlm), VmHWM (llama.cpp, includes the Python interpreter: %s MB"
      " before loading), ru_maxrss of one process running both thread counts (torch)."
      % cell(("llama.cpp", "q8_0", "1", "base_rss_mb"), "%.0f"), "%.0f")

def gguf_decode_bytes(path):
    # bytes of weights llama.cpp reads per decoded token: every 2-D tensor of the GGUF but the
    # embedding, and the head (output.weight, or token_embd.weight when tied), in the file's types
    import struct
    blocks = {0: (1, 4), 1: (1, 2), 30: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24),
              8: (32, 34), 12: (256, 144), 13: (256, 176), 14: (256, 210)}
    scal = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    try:
        f = open(path, "rb")
        _, _, nt, nkv = struct.unpack("<4sIQQ", f.read(24))
        rstr = lambda: f.read(struct.unpack("<Q", f.read(8))[0])
        for _ in range(nkv):
            rstr(); t, = struct.unpack("<I", f.read(4))
            if t == 9:
                at, n = struct.unpack("<IQ", f.read(12))
                if at == 8:
                    for _ in range(n): rstr()
                else: f.read(scal[at] * n)
            elif t == 8: rstr()
            else: f.read(scal[t])
        ts = {}
        for _ in range(nt):
            name = rstr().decode(); nd, = struct.unpack("<I", f.read(4))
            ne = struct.unpack("<%dQ" % nd, f.read(8 * nd)); t, _ = struct.unpack("<IQ", f.read(12))
            n = 1
            for x in ne: n *= x
            blk, size = blocks.get(t, (1, 0))
            ts[name] = (nd, n // blk * size)
        total = sum(b for k, (nd, b) in ts.items() if nd == 2 and k != "token_embd.weight")
        return total + (ts["token_embd.weight"][1] if "output.weight" not in ts else 0)
    except (OSError, KeyError, struct.error):
        return None

def llc():
    """the largest cache level of cpu0 and its size, from sysfs ("L3 480 MB"), or "unknown" """
    import glob
    best = None
    for d in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*"):
        try:
            lv = int(open(d + "/level").read()); sz = open(d + "/size").read().strip()
        except (OSError, ValueError):
            continue
        if best is None or lv > best[0]: best = (lv, sz)
    if not best: return "unknown"
    sz = best[1]
    mb = int(sz[:-1]) / 1024 if sz.endswith("K") else int(sz[:-1]) if sz.endswith("M") else None
    return "L%d %s" % (best[0], "%.0f MB" % mb if mb else sz)

bw = {t: med(("pocketlm", "-", t, "bw_gbs")) for t in ("1", "2")}
if any(bw.values()):
    w("### Memory read bandwidth, and decode as a share of its ceiling (higher is better)\n")
    w(WHERE + "\n")
    w("Bandwidth: each `pocketlm bench` run (auto path) reads its loaded weights once per pass (%s MB"
      " as q8_0, %s MB as f32; this CPU's last-level cache: %s, which may hold part of weights"
      " smaller than it, for the read as for decode), with one thread and with its thread count,"
      " vectorized, best of 10 passes; cells: median over runs (min–max). Ceiling: the decode tok/s"
      " at which a token costs only the reading of its weights = bandwidth ÷ bytes of weights per"
      " decoded token (every linear weight and the lm_head, in the dtype held in memory: pocketlm"
      " q8_0 keeps an f32 scale per 32 weights, llama.cpp an f16 one in its Q8_0 blocks). Share,"
      " pocketlm: each run's decode tok/s ÷ the ceiling of the bandwidth that same process read"
      " seconds later (this VM's speed moves between runs, so a decode and a read minutes apart do"
      " not compare), median over runs (min–max); the peers' runs read no bandwidth: their decode"
      " median ÷ the ceiling of the median bandwidth.\n" % (
        "%.0f" % (med(("pocketlm", "q8_0", "1", "decode_bytes")) / 1e6) if med(("pocketlm", "q8_0", "1", "decode_bytes")) else "—",
        "%.0f" % (med(("pocketlm", "f32", "1", "decode_bytes")) / 1e6) if med(("pocketlm", "f32", "1", "decode_bytes")) else "—",
        llc()))
    w("| read | 1 thread | 2 threads |")
    w("|---|---|---|")
    w("| GB/s | %s | %s |" % (cell(("pocketlm", "-", "1", "bw_gbs")), cell(("pocketlm", "-", "2", "bw_gbs"))))
    w("")
    if not bw["2"]:
        w("No 2-thread figure: every 2-thread pass ran on one thread (pocketlm's pool runs a job alone"
          " while its workers come late: another process held a core).\n")
    w("| system | dtype | MB per token | ceiling, 1 th | decode ÷ ceiling, 1 th | ceiling, 2 th | decode ÷ ceiling, 2 th |")
    w("|---|---|---|---|---|---|---|")
    for s, d, _, _ in SYSTEMS:
        if s.startswith("pocketlm") or s == "torch":  # torch reads the same f32 weights
            p = "pocketlm" if s == "torch" else s
            nb = med((p, d, "1", "decode_bytes")) or med((p, d, "2", "decode_bytes"))
        else:
            nb = gguf_decode_bytes({"q8_0": E["Q8"], "f32": E["F32"], "q4_k_m": E["Q4KM"], "q4_0": E["Q40"]}.get(d, E["MODEL"]))
        if not nb or not any(recs.get((s, d, t, "decode_tps")) for t in ("1", "2")): continue
        cells = []
        for t in ("1", "2"):
            c = bw[t] * 1e9 / nb if bw[t] else None
            dec = med((s, d, t, "decode_tps"))
            paired = cell((s, d, t, "ceiling_share"), "%.2f")
            cells += ["%.1f tok/s" % c if c else "—",
                      paired if paired != "—" else "%.2f" % (dec / c) if c and dec else "—"]
        w("| %s | %s | %.1f | %s |" % (s, d, nb / 1e6, " | ".join(cells)))
    w("")

tk = [(n, recs.get(("tokenizer", n, "1", "encode_mbs")), med(("tokenizer", n, "1", "tokens")))
      for n in ("pocketlm", "hf-tokenizers", "hf-tokenizers-batch")]
if any(v for _, v, _ in tk):
    w("### Tokenizer encode MB/s (higher is better)\n")
    w("The PAWS dev+test sentences (%.2f MB, one a line) as one text; pocketlm: `tokenize` on stdin,"
      " net of a one-word run (process start + tokenizer load); HF: `tokenizers` (Rust, 1 thread) from"
      " the converted tokenizer.json, in process: Tokenizer.encode of the one text, and encode_batch"
      " of the lines (hf-tokenizers-batch; tokens differ by the newlines).\n" % (os.path.getsize(E["TXT"]) / 1e6))
    w("| tokenizer | MB/s | tokens | pocketlm ÷ this |")
    w("|---|---|---|---|")
    p = med(("tokenizer", "pocketlm", "1", "encode_mbs"))
    for n, v, ntok in tk:
        if not v: continue
        w("| %s | %s | %s | %s |" % (n, cell(("tokenizer", n, "1", "encode_mbs"), "%.2f"),
                                    "%d" % ntok if ntok else "—", ratio(p, statistics.median(v))))
    w("")

foreign_table()
w("### Targets (foundation issue)\n")
w("| target | measured | |")
w("|---|---|---|")
def target(name, val, ok, shown):
    w("| %s | %s | %s |" % (name, shown, "—" if val is None else ("met" if ok else "**not met**")))
q2 = med(("pocketlm", "q8_0", "2", "decode_tps")); l2 = med(("llama.cpp", "q8_0", "2", "decode_tps"))
f2 = med(("pocketlm", "f32", "2", "decode_tps"))
rs = [med(("pocketlm", "q8_0", t, "rss_mb")) for t in ("1", "2")]
rs = max([r for r in rs if r is not None], default=None)
fmt = lambda v, u: "—" if v is None else "%.1f %s" % (v, u)
qb = med(("pocketlm", "q8_0", "2", "decode_bytes")) or med(("pocketlm", "q8_0", "1", "decode_bytes"))
target("q8_0 decode ≥ 225 tok/s, 2 threads (DRAM ceiling %s here)" % (
    "%.0f tok/s" % (bw["2"] * 1e9 / qb) if bw.get("2") and qb else "not measured"), q2,
    q2 is not None and q2 >= 225, fmt(q2, "tok/s"))
target("q8_0 decode not slower than llama.cpp Q8_0, 2 threads", None if q2 is None or l2 is None else q2,
       q2 is not None and l2 is not None and q2 >= l2,
       "—" if q2 is None or l2 is None else "%.1f vs %.1f tok/s (%.2fx)" % (q2, l2, q2 / l2))
fb = med(("pocketlm", "f32", "2", "decode_bytes")) or med(("pocketlm", "f32", "1", "decode_bytes"))
target("f32 decode ≥ 65 tok/s, 2 threads (ceiling %s here)" % (
    "%.0f tok/s" % (bw["2"] * 1e9 / fb) if bw.get("2") and fb else "not measured"), f2,
    f2 is not None and f2 >= 65, fmt(f2, "tok/s"))
target("q8_0 peak RSS ≤ 200 MB", rs, rs is not None and rs <= 200, fmt(rs, "MB"))
w("")
slow_note()
write_report("Raw run of `make bench` (scripts/bench.sh), written to benchmarks/history/ by the script; the"
              " current figures, one row per target, are the table at the top of BENCHMARKS.md.")
EOF
say "wrote $OUT (copy its figures into the table of BENCHMARKS.md); raw records in $RAW, log in $LOG"
