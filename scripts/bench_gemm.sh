#!/bin/sh
# bench_gemm.sh — `make bench-gemm`: pocketlm's f32 matmul at prefill shapes against OpenBLAS
# sgemm, one thread, on the SmolLM2-135M weight shapes (q/o, k/v, gate/up, down, lm_head) at
# T = 64, 128, 256, 512 tokens: out (T, rows) = x (T, cols) @ W^T, W in HF layout (rows, cols).
#
#   pocketlm   tests/bench_matmul.c (build/tests/bench_matmul, BENCH_DTYPE=f32 BENCH_THREADS=1), on
#              the CPU's own kernel path and on avx2 (when the CPU's path is wider); best of
#              BENCH_REPS batches of >= 2 ms, weights hot in cache as in prefill
#   OpenBLAS   numpy.matmul(x, W.T, out=...) (a single sgemm with B transposed), the same best-of
#              timing, OPENBLAS_NUM_THREADS=1. Debian's numpy links the generic libblas.so.3 (its
#              show_config() names no OpenBLAS), so the script reads which BLAS library the process
#              really mapped and asks it its version and the kernel it chose (openblas_get_config,
#              openblas_get_corename); without OpenBLAS behind numpy it says so and skips the peer.
#
# Writes a new dated file in benchmarks/history/ (its path is printed; BENCH_OUT names another
# file). Env: BUILD, BENCH_OUT, BENCH_T (default
# 64,128,256,512), BENCH_REPS (default 10). The machine may be shared: the report records the load.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
. scripts/bench_lib.sh # history_file
OUT=${BENCH_OUT:-$(history_file bench-gemm)}
TS=${BENCH_T:-64,128,256,512}
REPS=${BENCH_REPS:-10}
PY=/usr/bin/python3
W=$BUILD/bench-gemm
BM=$BUILD/tests/bench_matmul
mkdir -p "$W"
say() { echo "bench-gemm: $*" >&2; }

make -s BUILD="$BUILD" "$BM" >&2 || { say "make $BM failed"; exit 1; }
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# pocketlm: the CPU's own path (the widest), then avx2 if that is another one; bench_matmul prints
# one line per path and shape: path shape dtype thr T rows cols ms GFLOP/s GB/s cpu%
BENCH_DTYPE=f32 BENCH_THREADS=1 BENCH_T=$TS BENCH_REPS=$REPS "$BM" >"$W/all.txt"
AUTO=$(awk 'NF == 11 && $3 == "f32" { p = $1 } END { print p }' "$W/all.txt")
awk -v p="$AUTO" '$1 == p && NF == 11 { $1 = ""; print }' "$W/all.txt" >"$W/plm.txt"
: >"$W/plm_avx2.txt"
[ "$AUTO" = avx2 ] || awk '$1 == "avx2" && NF == 11 { $1 = ""; print }' "$W/all.txt" >"$W/plm_avx2.txt"

# OpenBLAS through numpy, on the shapes bench_matmul printed: with the kernels it picks for this
# CPU, then (beside pocketlm avx2) with its Haswell (AVX2) kernels, OPENBLAS_CORETYPE=Haswell
cat >"$W/sgemm.py" <<'PY'
import ctypes, os, sys, time
import numpy as np
shapes = []
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) == 10 and f[1] == "f32" and f[3].isdigit():
        shapes.append((f[0], int(f[3]), int(f[4]), int(f[5])))
reps = int(sys.argv[2])
a = np.ones((64, 64), np.float32)
a @ a  # loads the BLAS
libs = sorted({l.split()[-1] for l in open("/proc/self/maps") if "blas" in l.lower()})
ob = [l for l in libs if "openblas" in os.path.basename(l).lower()]
info = "none"
if ob:
    lib = ctypes.CDLL(ob[0])
    for fn in ("openblas_get_config", "openblas_get_corename"):
        getattr(lib, fn).restype = ctypes.c_char_p
    info = "%s; core %s; %d thread(s)" % (lib.openblas_get_config().decode(),
                                          lib.openblas_get_corename().decode(),
                                          lib.openblas_get_num_threads())
print("# blas", " ".join(libs) or "none")
print("# openblas", info)
print("# numpy", np.__version__)
if not ob:
    sys.exit(0)
rng = np.random.default_rng(1)
for name, T, rows, cols in shapes:
    x = rng.standard_normal((T, cols), dtype=np.float32)
    w = rng.standard_normal((rows, cols), dtype=np.float32)
    out = np.empty((T, rows), np.float32)
    wt = w.T
    np.matmul(x, wt, out=out)
    n, t0 = 0, time.perf_counter()
    while n < 1 or time.perf_counter() - t0 < 0.002:
        np.matmul(x, wt, out=out)
        n += 1
    best = 1e30
    for _ in range(reps):
        t1 = time.perf_counter()
        for _ in range(n):
            np.matmul(x, wt, out=out)
        best = min(best, (time.perf_counter() - t1) / n)
    print("%-14s %-5s %3d %4d %6d %5d %9.4f %8.1f" % (name, "f32", 1, T, rows, cols, best * 1e3,
                                                     2.0 * T * rows * cols / best * 1e-9))
PY
OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $PY "$W/sgemm.py" "$W/plm.txt" "$REPS" >"$W/blas.txt" ||
    say "numpy sgemm failed: OpenBLAS skipped"
: >"$W/blas_avx2.txt"
if [ -s "$W/plm_avx2.txt" ]; then
    OPENBLAS_CORETYPE=Haswell OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $PY "$W/sgemm.py" "$W/plm.txt" "$REPS" \
        >"$W/blas_avx2.txt" || say "numpy sgemm (Haswell) failed"
fi
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

export W OUT LOAD_START LOAD_END AUTO
export GIT_REV="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src include cli Makefile 2>/dev/null || echo ' + uncommitted changes')"
export CC_VERSION="$(${CC:-cc} --version | head -n 1)"
$PY - <<'PY'
import datetime, os, re
E = os.environ
def rows(path):
    d, head = {}, ""
    try:
        for line in open(path):
            f = line.split()
            if line.startswith("cpu "): head = line.strip()
            elif len(f) >= 8 and f[1] == "f32" and f[3].isdigit():
                d[(f[0], int(f[3]))] = (int(f[4]), int(f[5]), float(f[7]))
    except OSError:
        pass
    return d, head
plm, _ = rows(os.path.join(E["W"], "plm.txt"))
_, head = rows(os.path.join(E["W"], "all.txt"))
avx2, _ = rows(os.path.join(E["W"], "plm_avx2.txt"))
blas, _ = rows(os.path.join(E["W"], "blas.txt"))
blas2, _ = rows(os.path.join(E["W"], "blas_avx2.txt"))
def meta_of(name):
    meta = {}
    path = os.path.join(E["W"], name)
    for line in open(path) if os.path.exists(path) else []:
        if line.startswith("# "):
            k, _, v = line[2:].strip().partition(" ")
            meta[k] = v
    return meta
meta, meta2 = meta_of("blas.txt"), meta_of("blas_avx2.txt")
m = re.match(r"cpu (.*) \((.*)\), cores (\d+)", head)
cpu, feat = (m.group(1), m.group(2)) if m else ("?", "?")
out = []
w = out.append
w("\n## %s — bench-gemm: f32 matmul vs OpenBLAS sgemm, 1 thread (pocketlm %s)\n" % (
    datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), E["GIT_REV"]))
w("Where: CPU %s; flags the kernels use: %s; pocketlm kernel path: %s (auto)%s; OpenBLAS: %s"
  "%s (numpy %s, libraries %s). Load average %s at the start, %s at the end.\n" % (
    cpu, feat, E["AUTO"], ", avx2 (forced)" if avx2 else "", meta.get("openblas", "none"),
    "; with OPENBLAS_CORETYPE=Haswell: core %s" % meta2["openblas"].split("core ")[-1].split(";")[0]
    if meta2.get("openblas") else "", meta.get("numpy", "?"), meta.get("blas", "?"),
    E["LOAD_START"], E["LOAD_END"]))
w("out (T, rows) = x (T, cols) @ W^T on the SmolLM2-135M weight shapes, weights hot in cache (as in"
  " prefill); pocketlm: `build/tests/bench_matmul` (BENCH_DTYPE=f32 BENCH_THREADS=1); OpenBLAS:"
  " `numpy.matmul(x, W.T, out=o)` with OPENBLAS_NUM_THREADS=1. GFLOP/s = 2·T·rows·cols / time,"
  " best of the batches (each ≥ 2 ms). Built with %s, `make` flags.\n" % E["CC_VERSION"])
w("GFLOP/s (higher is better):\n")
w("| shape | rows × cols | T | pocketlm %s | OpenBLAS | pocketlm ÷ OpenBLAS | pocketlm avx2 |"
  " OpenBLAS Haswell (AVX2) | avx2 ÷ Haswell |" % E["AUTO"])
w("|---|---|---|---|---|---|---|---|---|")
f = lambda v: "%.1f" % v[2] if v else "—"
q = lambda a, b: "%.2f" % (a[2] / b[2]) if a and b else "—"
for (name, T), p in plm.items():
    a, b, b2 = avx2.get((name, T)), blas.get((name, T)), blas2.get((name, T))
    w("| %s | %d × %d | %d | %s | %s | %s | %s | %s | %s |" % (
        name, p[0], p[1], T, f(p), f(b), q(p, b), f(a), f(b2), q(a, b2)))
w("")
text = "\n".join(out) + "\n"
with open(E["OUT"], "w") as fh:
    fh.write(text)
print(text)
PY
say "wrote $OUT (copy its figures into the table of BENCHMARKS.md); raw output in $W"
