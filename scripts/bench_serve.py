#!/usr/bin/env python3
"""bench_serve.py: the load of `make bench-serve` against one running OpenAI-style server.

usage: bench_serve.py PORT NAME LEVELS REQUESTS MAX_TOKENS [--soak SECONDS PID]
  For each number of concurrent clients in LEVELS (e.g. 1,4,8,16), that many client threads each
  send REQUESTS streamed /v1/completions in turn (greedy, MAX_TOKENS new tokens, a prompt of about
  32 tokens that differs from its first word on, so no server can reuse another's prefix, and in
  the middle of a sentence, so that greedy decoding runs to MAX_TOKENS: 32 for every prompt). Prints
  one JSON line per level: clients, requests, tokens (generated), wall_s, tok_s (aggregate decode:
  tokens / wall), in_flight_s and in_flight_tok_s (the time during which every client had a
  request in flight, from the last client's first request to the first client's end, and the
  tokens streamed in it per second: the aggregate at exactly that many concurrent clients, without
  the arrivals' ramp and the departures' tail that the wall time includes), ttft_p50/p99 and
  latency_p50/p99 (seconds; p99 is the nearest rank), errors.
  Each level above one client runs twice: "burst", every client's first request sent at once (the
  clients then stay in step: equal requests end together, so every round is a burst of prompts),
  and "staggered", client i's first request sent i / clients of one request's time (the 1-client
  level's latency_p50) later, as independent users arrive: a new prompt joins running decodes.
  --soak: LEVELS is one number of clients, each sending requests until SECONDS have passed, while
  the server's resident memory (VmRSS of PID) is sampled 60 times; one JSON line as above plus
  rss_mb ([seconds, MB] samples) and growth_pct: the last sample against the first one taken after
  a tenth of the time (allocators and caches have warmed up by then).
Standard library only.
"""
import http.client
import json
import sys
import threading
import time

PORT, NAME = int(sys.argv[1]), sys.argv[2]
LEVELS = [int(x) for x in sys.argv[3].split(",")]
REQUESTS, MAX_TOKENS = int(sys.argv[4]), int(sys.argv[5])
SOAK, PID = (float(sys.argv[7]), int(sys.argv[8])) if sys.argv[6:7] == ["--soak"] else (0, 0)
STORY = "Once upon a time, in a land of green hills and old castles, a brave knight travelled across the kingdom to find a lost dragon. The knight"


def one(prompt):
    """one streamed completion: (ttft, latency, tokens, start, end, the arrival time of each
    streamed piece), or an error string"""
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=600)
    body = json.dumps({"prompt": prompt, "max_tokens": MAX_TOKENS, "temperature": 0, "stream": True})
    t0 = time.perf_counter()
    c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        return f"{r.status} {r.read()[:200]!r}"
    ttft, pieces, reason, times = None, 0, None, []
    for line in r:
        line = line.strip()
        if not line.startswith(b"data: "):
            continue
        if line[6:] == b"[DONE]":
            break
        choices = json.loads(line[6:]).get("choices") or [{}]
        if choices[0].get("text"):
            times.append(time.perf_counter())
            ttft = ttft if ttft is not None else times[-1] - t0
            pieces += 1
        reason = choices[0].get("finish_reason") or reason
    t1 = time.perf_counter()
    c.close()
    # a stream may join tokens into one piece (UTF-8): "length" means exactly MAX_TOKENS
    return (ttft if ttft is not None else t1 - t0, t1 - t0, MAX_TOKENS if reason == "length" else pieces, t0, t1, times)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(p / 100 * len(xs) + 0.5)) - 1))] if xs else -1


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024


def run(clients, stagger=0.0):
    """clients threads sending requests (REQUESTS each, or until SOAK seconds have passed, sampling
    the RSS meanwhile), client i's first one stagger * i / clients seconds after the start: the
    JSON line of the run"""
    results, errors, samples = [], [], []
    spans = [[None, None] for _ in range(clients)]  # each client's first start, last end
    lock = threading.Lock()
    t0 = time.perf_counter()

    def client(i):
        k = 0
        time.sleep(stagger * i / clients)
        while (k < REQUESTS) if not SOAK else (time.perf_counter() - t0 < SOAK):
            r = one(f"{i * 100 + k % 100}. {STORY}")
            k += 1
            with lock:
                (results if isinstance(r, tuple) else errors).append(r)
                if isinstance(r, tuple):
                    spans[i] = [r[3] if spans[i][0] is None else spans[i][0], r[4]]

    ts = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in ts:
        t.start()
    while SOAK and time.perf_counter() - t0 < SOAK:
        samples.append([round(time.perf_counter() - t0, 1), round(rss_mb(PID), 1)])
        time.sleep(SOAK / 60)
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    tokens = sum(r[2] for r in results)
    # every client in flight: from the last client's first request to the first client's end (a
    # client's few milliseconds between two requests count as in flight); the pieces streamed then
    ws = max((s[0] for s in spans if s[0] is not None), default=0)
    we = min((s[1] for s in spans if s[1] is not None), default=0)
    in_flight = sum(ws <= t <= we for r in results for t in r[5]) if we > ws else 0
    line = {"system": NAME, "clients": clients, "start": "staggered" if stagger else "burst", "requests": len(results), "tokens": tokens,
            "wall_s": round(wall, 3), "tok_s": round(tokens / wall, 1),
            "in_flight_s": round(max(we - ws, 0), 3), "in_flight_tok_s": round(in_flight / (we - ws), 1) if we > ws else -1,
            "ttft_p50": round(pct([r[0] for r in results], 50), 3),
            "ttft_p99": round(pct([r[0] for r in results], 99), 3),
            "latency_p50": round(pct([r[1] for r in results], 50), 3),
            "latency_p99": round(pct([r[1] for r in results], 99), 3),
            "errors": errors[:3], "n_errors": len(errors)}
    if SOAK:  # (the samples are under load: the idle server has given its KV caches back)
        base = next(mb for t, mb in samples if t >= SOAK / 10)
        line.update(soak_s=SOAK, rss_mb=samples, growth_pct=round(100 * (samples[-1][1] - base) / base, 2))
    return line


one("warm up")  # loads, first-touch of the caches: not measured
one_latency = 0.0
for clients in LEVELS:
    line = run(clients)
    print(json.dumps(line), flush=True)
    if clients == 1:
        one_latency = line["latency_p50"]
    elif one_latency > 0 and not SOAK:
        print(json.dumps(run(clients, one_latency)), flush=True)
