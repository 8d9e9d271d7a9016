# bench_lib.sh — measurement and report helpers shared by scripts/bench.sh, bench_onnx.sh and
# bench_web.sh (bench_train.sh and eval_paws.sh use history_file only). Sourced, not run. Not here:
# what each script runs (its run_config) and its report tables.
#
# Reports: each run writes a new dated file, benchmarks/history/YYYY-MM-DD-HHMM-KIND.md (history_file;
# BENCH_HISTORY moves the folder, BENCH_OUT names the file), and prints its path. BENCHMARKS.md's
# table of current figures is edited by hand from those files.
#
# The caller sets before use: W (work dir), LOG (log file), RAW, RUNS (one line a run), QUIET (% busy
# that counts as quiet), WAIT (s to wait for it), HAVE_TIME (1 when /usr/bin/time exists),
# BENCH_NAME (prefix of `say` lines). run_rounds calls the caller's run_config ROUND CONFIG.
#
# Records: RAW has `round system dtype threads metric value`; RUNS has `system dtype threads wall_s
# foreign_cpu_%` (foreign = /proc/stat busy time less the run's own user+sys time; -1 = unknown).

say() { echo "${BENCH_NAME:-bench}: $*" >&2; [ -z "${LOG:-}" ] || echo "${BENCH_NAME:-bench}: $*" >>"$LOG"; }

# history_file KIND [DIR]: the path of a new dated report file for this run, in DIR (default
# $BENCH_HISTORY, else benchmarks/history), e.g. benchmarks/history/2026-11-25-2022-bench.md; never
# one that exists (a second run in the same minute gets -2, -3, ...). Creates DIR.
history_file() {
    _dir=${2:-${BENCH_HISTORY:-benchmarks/history}}
    mkdir -p "$_dir"
    _stamp=$(date '+%Y-%m-%d-%H%M')
    _f=$_dir/$_stamp-$1.md
    _k=2
    while [ -e "$_f" ]; do _f=$_dir/$_stamp-$1-$_k.md; _k=$((_k + 1)); done
    echo "$_f"
}

# ---- CPU load ----
stat_cpu() { head -n 1 /proc/stat; }          # cpu user nice system idle iowait irq softirq steal
cpu_busy() {                                    # % of all CPUs busy over 1 s
    a=$(stat_cpu); sleep 1; b=$(stat_cpu)
    printf '%s\n%s\n' "$a" "$b" | awk '{ idle = $5 + $6; t = 0; for (i = 2; i <= 9; i++) t += $i
        if (NR == 1) { i0 = idle; t0 = t } else printf "%d\n", 100 * (1 - (idle - i0) / (t - t0 + 1e-9)) }'
}
wait_quiet() {          # waits up to WAIT s for the CPUs to be under QUIET % busy
    waited=0
    while b=$(cpu_busy); [ "$b" -gt "$QUIET" ] && [ "$waited" -lt "$WAIT" ]; do waited=$((waited + 1)); done
    [ "$waited" -gt 0 ] && say "waited ${waited}s for quiet (busy ${b}%)"
    return 0
}

# measured SYSTEM DTYPE THREADS CMD...: runs CMD (stdout to $W/out.txt, stderr to the log), logs it,
# appends its wall time and the foreign load during it to RUNS. Always returns 0 (callers run under
# set -e); CMD's exit status is left in MEASURED_RC.
measured() {
    sys=$1 dt=$2 th=$3; shift 3
    wait_quiet
    echo "\$ $*" >>"$LOG"
    MEASURED_RC=0
    a=$(stat_cpu); t0=$(date +%s.%N)
    if [ "$HAVE_TIME" = 1 ]; then
        /usr/bin/time -f '%U %S' -o "$W/time.txt" "$@" >"$W/out.txt" 2>>"$LOG" || MEASURED_RC=$?
    else
        "$@" >"$W/out.txt" 2>>"$LOG" || MEASURED_RC=$?
    fi
    t1=$(date +%s.%N); b=$(stat_cpu)
    cat "$W/out.txt" >>"$LOG"
    # time -o writes "Command exited with non-zero status N" above the times when CMD fails
    own=$( [ "$HAVE_TIME" = 1 ] && tail -n 1 "$W/time.txt" 2>/dev/null | awk '{ print ($1 + $2) * 100 }' || echo -1)
    printf '%s\n%s\n' "$a" "$b" | awk -v own="${own:--1}" -v s="$sys" -v d="$dt" -v th="$th" -v t0="$t0" -v t1="$t1" '
        { busy = $2 + $3 + $4 + $7 + $8 + $9; t = busy + $5 + $6
          if (NR == 1) { b0 = busy; T0 = t } else {
            f = own < 0 ? -1 : 100 * (busy - b0 - own) / (t - T0 + 1e-9); if (f < 0 && own >= 0) f = 0
            printf "%s %s %s %.1f %.0f\n", s, d, th, t1 - t0, f } }' >>"$RUNS"
    return 0
}

# parse_bench ROUND SYSTEM [DTYPE]: the `name dtype th n ms tok/s` lines of pocketlm bench (and of
# scripts/bench_llamacpp.py, names prefixed llamacpp-) in $W/out.txt -> records in RAW (under
# DTYPE when given, else the dtype the line names); also pocketlm bench's bw_read (GB/s, dtype
# "-") and ceiling (bytes per token, ceiling tok/s, share).
parse_bench() {
    awk -v r="$1" -v s="$2" -v as="${3:-}" '
        { n = $1; sub(/^llamacpp-/, "", n); if (as != "" && n != "bw_read") $2 = as }
        n == "load"     { print r, s, $2, $3, "load_ms", $5 }
        n == "prefill"  { print r, s, $2, $3, "prefill_tps", $6 }
        n == "decode"   { print r, s, $2, $3, "decode_tps", $6 }
        n == "peak_rss" { print r, s, $2, $3, "rss_mb", $6 }
        n == "base_rss" { print r, s, $2, $3, "base_rss_mb", $6 }
        n == "bw_read" && !/ran on/ { print r, s, "-", $3, "bw_gbs", $6 }
        n == "ceiling"  { print r, s, $2, $3, "decode_bytes", $4 }
        n == "ceiling" && !/1-thread bandwidth/ { print r, s, $2, $3, "ceiling_tps", $6
                                                  print r, s, $2, $3, "ceiling_share", $9 }' "$W/out.txt" >>"$RAW"
}

# run_rounds ROUNDS CONFIG...: every CONFIG once per round, the order rotated by one each round
# (round i starts at config i, modulo the list), calling run_config ROUND CONFIG.
run_rounds() {
    _rounds=$1; shift
    _round=0
    while [ $_round -lt "$_rounds" ]; do
        _round=$((_round + 1))
        _k=$(( (_round - 1) % $# )); _order=""
        _j=0; for _c in "$@"; do [ $_j -ge $_k ] && _order="$_order $_c"; _j=$((_j + 1)); done
        _j=0; for _c in "$@"; do [ $_j -lt $_k ] && _order="$_order $_c"; _j=$((_j + 1)); done
        for _c in $_order; do
            say "round $_round/$_rounds: $_c"
            run_config $_round "$_c"
        done
    done
}

# ---- report ----
# machine_env: exports the machine and build description the report prelude prints.
machine_env() {
    export CFLAGS_USED="$(make -s -p -n all 2>/dev/null | sed -n 's/^CFLAGS *?*= *//p' | head -n 1)"
    export CC_VERSION="$(${CC:-cc} --version | head -n 1)"
    export GIT_REV="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src include cli Makefile 2>/dev/null || echo ' + uncommitted changes')"
    export CPU_MODEL="$(lscpu | sed -n 's/^Model name: *//p')"
    export CPU_CORES="$(nproc)"
    export CPU_FLAGS="$(grep -o -w -E 'avx512f|avx512_vnni|avx512_bf16|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')"
    export FREE_G="$(free -g | sed -n 's/^Mem: *//p' | awk '{ print $1 " GB total, " $6 " GB available" }')"
    export KERNEL="$(uname -sr)"
}

# report_prelude: prints the Python that both reports start with (pipe it, then the script's own
# part, into python3). It reads RAW and RUNS (env) into recs[(system, dtype, threads, metric)] =
# [values] and runs, and defines med/cell/ratio, w (append a line to out), section, machine_line,
# foreign_table, slow_note and write_report. Env: RAW RUNS OUT LOAD_START LOAD_END + machine_env.
report_prelude() {
    cat <<'EOF'
import os, statistics, datetime
E = os.environ
recs = {}
for line in open(E["RAW"]):
    f = line.split()
    if len(f) != 6: continue
    r, sys_, dt, th, metric, val = f
    try: recs.setdefault((sys_, dt, th, metric), []).append(float(val))
    except ValueError: pass
runs = [l.split() for l in open(E["RUNS"]) if l.strip()]
n_rounds = max([int(l.split()[0]) for l in open(E["RAW"]) if l.split()] or [0])
foreign = [float(r[4]) for r in runs if float(r[4]) >= 0]

def med(k):
    v = recs.get(k)
    return statistics.median(v) if v else None

def cell(k, fmt="%.1f"):
    v = recs.get(k)
    if not v: return "—"
    m = statistics.median(v)
    if len(v) == 1: return fmt % m
    return (fmt % m) + " (" + (fmt % min(v)) + "–" + (fmt % max(v)) + ")"

def ratio(a, b):
    return "%.2f" % (a / b) if a is not None and b else "—"

out = []
w = out.append

def section(title):
    # the report's dated title, then the machine line
    w("# %s — %s\n" % (datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), title))
    machine_line()

def machine_line():
    w("Machine: %s, %s cores (%s), %s, %s. Load average (1/5/15 min) %s at the start, %s at the end;"
      " other processes' CPU use during the runs (%% of both cores): median %s, max %s.\n" % (
        E["CPU_MODEL"], E["CPU_CORES"], E["CPU_FLAGS"].strip(), E["FREE_G"], E["KERNEL"], E["LOAD_START"],
        E["LOAD_END"], "%.0f" % statistics.median(foreign) if foreign else "n/a",
        "%.0f" % max(foreign) if foreign else "n/a"))

def foreign_table():
    w("### Other processes' CPU use during each run (% of both cores; one value a round)\n")
    w("The machine is shared: read each number above with these. An engine with 2 threads loses most"
      " when another process holds a core (its threads wait for one another).\n")
    w("| system | dtype | 1 thread | 2 threads |")
    w("|---|---|---|---|")
    seen = []
    for r in runs:
        if (r[0], r[1]) not in seen: seen.append((r[0], r[1]))
    for s_, d_ in seen:
        cells = []
        for t in ("1", "2"):
            v = [r[4] + "%" for r in runs if r[0] == s_ and r[1] == d_ and (r[2] == t or (r[2] == "1+2" and t == "1"))]
            cells.append(", ".join(v) if v else "—")
        w("| %s | %s | %s | %s |" % (s_, d_, cells[0], cells[1]))
    w("")

def slow_note():
    slow = [r for r in runs if float(r[4]) > 25]
    if slow:
        w("%d of %d runs had other processes above 25%% CPU (table above).\n" % (len(slow), len(runs)))

def write_report(intro):
    # writes out to OUT, a new file (never an existing one), with intro under the title; prints it
    lines = "\n".join(out).strip("\n").split("\n")
    text = "\n".join(lines[:1] + ["", intro] + lines[1:]) + "\n"
    with open(E["OUT"], "x") as fh:
        fh.write(text)
    print(text)
EOF
}
