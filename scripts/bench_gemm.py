#!/usr/bin/python3
"""bench_gemm.py: OpenBLAS sgemm (through numpy) on the f32 shapes of tests/bench_matmul.c, so the
lead can put pocketlm's GFLOP/s beside it: out (T, rows) = x (T, cols) @ W^T, W (rows, cols) f32
in HF layout, as plm_matmul computes, for T = 1, 64, 128, 256, 512, 1 and 2 threads.

It checks that numpy really calls OpenBLAS (Debian's python3-numpy links libblas.so.3, which the
alternatives point to libopenblas0's copy) and prints OpenBLAS's build line and the core it chose:
a DYNAMIC_ARCH OpenBLAS takes its AVX-512 kernels on an AVX-512 CPU; OPENBLAS_CORETYPE=Haswell
forces the AVX2 ones, the fair peer of pocketlm's avx2 path (BENCH_CORE=Haswell here sets it).

Usage: /usr/bin/python3 scripts/bench_gemm.py [--threads 1,2] [--T 1,64,128,256,512] [--core Haswell]
(setup: apt-get install python3-numpy libopenblas0). One line per result, best of several
batches (the machine may be shared), like bench_matmul; cpu% is the CPU time of that batch over
its wall time x threads (well under 100: other processes took the cores).
"""
import argparse
import ctypes
import os
import sys
import time

SHAPES = [  # name, rows, cols (tests/bench_matmul.c)
    ("q_proj/o_proj", 576, 576),
    ("k_proj/v_proj", 192, 576),
    ("gate/up_proj", 1536, 576),
    ("down_proj", 576, 1536),
    ("lm_head", 49152, 576),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--T", default="1,64,128,256,512")
    ap.add_argument("--core", default=os.environ.get("BENCH_CORE", ""),
                    help="OPENBLAS_CORETYPE, e.g. Haswell (AVX2) or SkylakeX")
    ap.add_argument("--seconds", type=float, default=1.0, help="time per result, about")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    if args.core and os.environ.get("OPENBLAS_CORETYPE") != args.core:
        # OpenBLAS reads these when it loads: re-run with them set
        os.environ["OPENBLAS_CORETYPE"] = args.core
        os.execv(sys.executable, [sys.executable] + sys.argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(max(threads)))
    import numpy as np

    a = np.ones((64, 64), np.float32)
    a @ a  # loads the BLAS library
    libs = sorted({line.split()[-1] for line in open("/proc/self/maps")
                   if "blas" in line.split()[-1].lower()})
    real = [os.path.realpath(p) for p in libs]
    print("numpy", np.__version__, "BLAS libraries:", ", ".join(real) or "none")
    blas = next((p for p in real if "openblas" in p), None)
    if not blas:
        print("numpy does not use OpenBLAS here: install libopenblas0 (update-alternatives "
              "--display libblas.so.3-x86_64-linux-gnu)", file=sys.stderr)
        return 1
    lib = ctypes.CDLL(blas)
    lib.openblas_get_config.restype = ctypes.c_char_p
    lib.openblas_get_corename.restype = ctypes.c_char_p
    print("OpenBLAS:", lib.openblas_get_config().decode(), "| core:",
          lib.openblas_get_corename().decode(),
          "| OPENBLAS_CORETYPE=" + os.environ.get("OPENBLAS_CORETYPE", "(auto)"))
    print("%-14s %-5s %3s %4s %6s %5s %9s %8s %5s" % ("shape", "dtype", "thr", "T", "rows", "cols",
                                                      "ms", "GFLOP/s", "cpu%"))
    rng = np.random.default_rng(0)
    for nth in threads:
        lib.openblas_set_num_threads(nth)
        for T in [int(t) for t in args.T.split(",")]:
            for name, rows, cols in SHAPES:
                w = rng.standard_normal((rows, cols), dtype=np.float32)
                x = rng.standard_normal((T, cols), dtype=np.float32)
                out = np.empty((T, rows), np.float32)
                wt = w.T  # a view: OpenBLAS gets the transposed operand, no copy
                np.matmul(x, wt, out=out)
                batch, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < 0.01 or batch < 2:
                    np.matmul(x, wt, out=out)
                    batch += 1
                per = (time.perf_counter() - t0) / batch
                reps = max(3, min(50, int(args.seconds / (per * batch))))
                best, cpu = 1e30, 0.0
                for _ in range(reps):
                    t1, c1 = time.perf_counter(), time.process_time()
                    for _ in range(batch):
                        np.matmul(x, wt, out=out)
                    t = (time.perf_counter() - t1) / batch
                    if t < best:
                        best, cpu = t, (time.process_time() - c1) / batch
                # cpu%: CPU time over wall time x threads in the best batch (low: preempted)
                print("%-14s %-5s %3d %4d %6d %5d %9.4f %8.1f %5.0f" % (
                    name, "f32", nth, T, rows, cols, best * 1e3, 2.0 * rows * cols * T / best * 1e-9,
                    100 * cpu / (best * nth)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
