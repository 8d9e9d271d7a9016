#!/usr/bin/python3
"""bench_llamacpp.py — the llama.cpp peer of `pocketlm bench` (llama-cpp-python, built from source
by scripts/setup_bench.sh).

    bench_llamacpp.py MODEL.gguf [--threads 1,2] [-p 128] [-n 128] [--reps 3] [--n-ctx 512]
    bench_llamacpp.py --quantize IN.gguf OUT.gguf [--type q8_0]   # llama.cpp's own requantizer

Prints the lines of `pocketlm bench` (`name dtype threads n ms tok/s`), names prefixed `llamacpp-`:
load (model + context), prefill of -p tokens in one llama_decode batch, decode of -n tokens one at
a time (best of --reps, KV cache cleared between reps), and peak RSS (VmHWM of a fresh child
process per thread count, so runs do not share memory; it includes the Python interpreter, whose
own RSS before loading is printed as `llamacpp-base_rss`). The token ids are the same
pseudo-random ids `pocketlm bench` feeds (xorshift64, seed 88172645463325252), so both do the same
work. Timing is wall clock around Llama.eval() (llama_decode + reading the last logits, as
pocketlm does).
"""
import argparse
import os
import subprocess
import sys
import time


def log_quiet():
    import llama_cpp
    # Silence llama.cpp's stderr logging (model metadata dump).
    cb = llama_cpp.llama_log_callback(lambda level, text, user: None)
    llama_cpp.llama_log_set(cb, None)
    return cb


def rss_mb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def xorshift_ids(n, vocab):
    x = 88172645463325252
    m = (1 << 64) - 1
    out = []
    for _ in range(n):
        x ^= (x << 13) & m
        x ^= x >> 7
        x ^= (x << 17) & m
        out.append(x % vocab)
    return out


def line(name, dtype, threads, n, sec):
    print("%-18s %-5s %2d %5d %10.1f %10.1f" % (name, dtype, threads, n, sec * 1e3,
                                              n / sec if sec > 0 else 0.0), flush=True)


def file_dtype(path):
    try:
        import llama_cpp
        names = {v: k[len("LLAMA_FTYPE_MOSTLY_"):].lower() for k, v in vars(llama_cpp).items()
                 if k.startswith("LLAMA_FTYPE_MOSTLY_") and isinstance(v, int)}
        names[0] = "f32"
        # general.file_type is read below from the loaded model's metadata.
        return names
    except Exception:
        return {}


def run_one(args, threads):
    base = rss_mb("VmRSS")
    import llama_cpp
    _cb = log_quiet()  # noqa: F841 (keep the callback alive)
    t0 = time.perf_counter()
    llm = llama_cpp.Llama(model_path=args.model, n_ctx=args.n_ctx, n_batch=args.n_ctx,
                          n_ubatch=args.n_ctx, n_threads=threads, n_threads_batch=threads,
                          logits_all=False, verbose=False)
    load = time.perf_counter() - t0
    ft = llm.metadata.get("general.file_type")
    names = file_dtype(args.model)
    dtype = args.dtype or (names.get(int(ft), "ft" + str(ft)) if ft is not None else "?")
    ids = xorshift_ids(args.p + args.n, llm.n_vocab())
    prompt, gen = ids[:args.p], ids[args.p:]
    best_pre, best_dec = 1e30, 1e30
    for _ in range(args.reps):
        llm.reset()
        a = time.perf_counter()
        llm.eval(prompt)
        b = time.perf_counter()
        for t in gen:
            llm.eval([t])
        c = time.perf_counter()
        best_pre = min(best_pre, b - a)
        best_dec = min(best_dec, c - b)
    print("%-18s %-5s %2s %5s %10s %10s" % ("name", "dtype", "th", "n", "ms", "tok/s"))
    line("llamacpp-load", dtype, threads, 0, load)
    line("llamacpp-prefill", dtype, threads, args.p, best_pre)
    line("llamacpp-decode", dtype, threads, args.n, best_dec)
    print("%-18s %-5s %2d %5d %10s %10.1f MB" % ("llamacpp-peak_rss", dtype, threads, 0, "-",
                                                rss_mb("VmHWM")))
    print("%-18s %-5s %2d %5d %10s %10.1f MB" % ("llamacpp-base_rss", dtype, threads, 0, "-", base))
    print("# llama_cpp %s; %s" % (llama_cpp.__version__,
                                 llama_cpp.llama_print_system_info().decode().strip()))
    sys.stdout.flush()
    del llm


def quantize(inp, out, qtype):
    import llama_cpp
    _cb = log_quiet()  # noqa: F841
    ftype = getattr(llama_cpp, "LLAMA_FTYPE_MOSTLY_" + qtype.upper())
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.allow_requantize = True
    params.nthread = os.cpu_count() or 1
    tmp = out + ".tmp.gguf"
    rc = llama_cpp.llama_model_quantize(inp.encode(), tmp.encode(), params)
    if rc != 0:
        print("bench_llamacpp: llama_model_quantize failed (%d)" % rc, file=sys.stderr)
        return 1
    os.replace(tmp, out)
    print("bench_llamacpp: wrote %s (%s, requantized by llama.cpp from %s)" % (out, qtype, inp))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("-p", type=int, default=128, help="prompt tokens (default 128)")
    ap.add_argument("-n", type=int, default=128, help="decoded tokens (default 128)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions, best reported (default 3)")
    ap.add_argument("--n-ctx", type=int, default=512)
    ap.add_argument("--dtype", help="label for the dtype column (default: the file's type)")
    ap.add_argument("--quantize", nargs=2, metavar=("IN", "OUT"))
    ap.add_argument("--type", default="q8_0", help="target type for --quantize")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        print("bench_llamacpp: llama_cpp not installed (run scripts/setup_bench.sh)",
              file=sys.stderr)
        return 3
    if args.quantize:
        return quantize(args.quantize[0], args.quantize[1], args.type)
    if not args.model:
        ap.error("MODEL.gguf required")
    threads = [int(t) for t in args.threads.split(",") if t]
    if args.child or len(threads) == 1:
        run_one(args, threads[0])
        return 0
    rc = 0
    for t in threads:  # a fresh process per thread count: separate peak RSS
        cmd = [sys.executable, os.path.abspath(__file__), args.model, "--threads", str(t),
               "-p", str(args.p), "-n", str(args.n), "--reps", str(args.reps),
               "--n-ctx", str(args.n_ctx), "--child"] + (["--dtype", args.dtype] if args.dtype else [])
        rc = rc or subprocess.call(cmd)
    return rc


if __name__ == "__main__":
    sys.exit(main())
