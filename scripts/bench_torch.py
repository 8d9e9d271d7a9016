#!/usr/bin/python3
"""bench_torch.py — speed of the PyTorch reference (HF transformers, f32) on this machine.

    /usr/bin/python3 scripts/bench_torch.py MODELDIR [--runs 3]
Prints one line per result, `name threads n ms tok/s` like `make bench`, median of --runs:
  torch-f32-prefill  T  128  ms  tok/s   one forward of a 128-token prompt (use_cache=True)
  torch-f32-decode   T  64   ms  tok/s   64 greedy tokens after a 16-token prompt, KV cache
and last `torch-f32-peak-rss-mb MB` (ru_maxrss of this process: model + activations + torch).
Eager attention, torch.no_grad, float32. Not a test; the numbers go into BENCHMARKS.
"""
import os
import resource
import statistics
import sys
import time

import torch
from transformers import LlamaForCausalLM

N_PREFILL = 128
N_DECODE = 64
DECODE_PROMPT = 16


def timed(fn, runs):
    fn()  # warm-up: first-touch of weights, allocator, OpenMP pool
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main(argv):
    if not argv or argv[0].startswith("-"):
        sys.exit(__doc__)
    runs = int(argv[argv.index("--runs") + 1]) if "--runs" in argv else 3
    load = os.getloadavg()[0]
    if load > 0.5:  # 2 cores: other jobs make 2-thread OpenMP runs collapse (spin-waiting)
        print(f"bench_torch: warning: load average {load:.1f}, numbers will be low", file=sys.stderr)
    model = LlamaForCausalLM.from_pretrained(argv[0], torch_dtype=torch.float32,
                                             attn_implementation="eager").eval()
    v = model.config.vocab_size
    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(10, v, (1, N_PREFILL), generator=g)
    short = prompt[:, :DECODE_PROMPT]

    def prefill():
        model(prompt, use_cache=True)

    def decode():
        out = model.generate(short, do_sample=False, max_new_tokens=N_DECODE,
                             min_new_tokens=N_DECODE, eos_token_id=None, pad_token_id=0, use_cache=True)
        assert out.shape[1] == DECODE_PROMPT + N_DECODE

    with torch.no_grad():
        for threads in (1, 2):
            torch.set_num_threads(threads)
            s = timed(prefill, runs)
            print(f"torch-f32-prefill {threads} {N_PREFILL} {s * 1e3:.1f} {N_PREFILL / s:.1f}", flush=True)
            # decode time excludes the prompt's own forward, measured separately
            p = timed(lambda: model(short, use_cache=True), runs)
            s = timed(decode, runs) - p
            print(f"torch-f32-decode {threads} {N_DECODE} {s * 1e3:.1f} {N_DECODE / s:.1f}", flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"torch-f32-peak-rss-mb {rss:.0f}")


if __name__ == "__main__":
    main(sys.argv[1:])
