#!/usr/bin/env python3
"""serve_client.py: the checks of tests/serve.test.sh against a running `pocketlm serve`.

usage: serve_client.py PORT [--wasm] [--full BIN MODEL] [--busy] [--kv-f16 BIN MODEL]
  --wasm:  build/web has the wasm build (check its MIME types);
  default: HTTP behaviour only (static files, headers, errors, limits, traversal, timeouts), fast
           enough for an ASan build;
  --full:  also the API on the model: greedy /v1/completions == `BIN generate --temp 0`, paraphrase,
           SSE streaming, 8 concurrent clients batched (each == alone, steps shared), a client that
           leaves mid-stream (its seat freed);
  --busy:  the server runs with --max-batch 1 --max-pending 1 --kv-budget 1: of 8 concurrent
           requests some must get 503; one that needs more KV cache than the budget gets 400.
  --kv-f16: the server runs with --kv-type f16 --kv-budget 1: health says so, a request of 36
           positions fits (23 KB each; f32's 46 KB would allow 22), its greedy text == `BIN
           generate --kv-type f16`, and one of 106 positions gets 400.
Prints one line per check; exits 1 when any fails. Standard library only.
"""
import json
import subprocess
import sys
import threading
import time

import http_check
from http_check import check

HOST = "127.0.0.1"
PORT = int(sys.argv[1])


def raw(data, timeout=30.0, read=True):
    return http_check.raw(HOST, PORT, data, timeout, read)


def request(method, path, body=None, headers=None, timeout=120.0):
    h = {"Host": f"{HOST}:{PORT}"}
    if body is not None:
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        h["Content-Length"] = str(len(body))
    h.update(headers or {})
    req = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    return raw(req.encode() + (body or b""), timeout)


def error_message(body):
    try:
        return json.loads(body)["error"]["message"]
    except Exception:
        return None


def http_checks(web):
    st, h, b = request("GET", "/v1/health")
    check("health 200 JSON", st == 200 and json.loads(b)["status"] == "ok", (st, b))
    coi = h.get("cross-origin-opener-policy") == "same-origin" and h.get("cross-origin-embedder-policy") == "require-corp"
    check("COOP/COEP on the API", coi, h)
    st, h, b = request("GET", "/")
    check("GET / is index.html", st == 200 and h.get("content-type", "").startswith("text/html") and b"<html" in b, (st, h))
    check("COOP/COEP on static files", h.get("cross-origin-opener-policy") == "same-origin" and
          h.get("cross-origin-embedder-policy") == "require-corp", h)
    check("Content-Length matches", int(h.get("content-length", -1)) == len(b), (h.get("content-length"), len(b)))
    st, h, b = request("GET", "/main.js")
    check("main.js is text/javascript", st == 200 and h.get("content-type", "").startswith("text/javascript"), (st, h))
    st, h, _ = request("HEAD", "/style.css")
    check("HEAD style.css: text/css, no body", st == 200 and h.get("content-type", "").startswith("text/css"), (st, h))
    if web:
        st, h, b = request("GET", "/pocketlm.wasm")
        check("pocketlm.wasm is application/wasm", st == 200 and h.get("content-type") == "application/wasm" and b[:4] == b"\0asm", (st, h))
        st, h, _ = request("GET", "/pocketlm.mjs")
        check("pocketlm.mjs is text/javascript", st == 200 and h.get("content-type", "").startswith("text/javascript"), (st, h))
    st, h, b = request("GET", "/model.gguf", headers={"Range": "bytes=0-3"})
    check("model.gguf Range 0-3 -> 206 GGUF", st == 206 and b == b"GGUF" and h.get("content-range", "").startswith("bytes 0-3/"), (st, h, b[:16]))
    st, h, b = request("GET", "/model.gguf", headers={"Range": "bytes=999999999999-"})
    check("model.gguf unsatisfiable range -> 416", st == 416, (st, h))
    # path traversal, in the raw forms a browser would never send
    for path in ["/../../../../etc/passwd", "/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2f..%2fetc/passwd",
                 "/web/../Makefile", "/.git/config", "//etc/passwd", "/%00index.html", "/..\\..\\etc\\passwd"]:
        st, h, b = raw(f"GET {path} HTTP/1.1\r\nHost: {HOST}:{PORT}\r\n\r\n".encode())
        check(f"traversal {path} refused", st in (400, 403, 404) and b"root:" not in b and b"[core]" not in b, (st, b[:80]))
    # errors: each a JSON {"error": {"message"}} with the right status
    st, _, b = request("GET", "/no/such/file.txt")
    check("unknown path 404", st == 404 and error_message(b), (st, b))
    st, _, b = request("GET", "/v1/nothing")
    check("unknown API path 404", st == 404 and error_message(b), (st, b))
    st, h, b = request("GET", "/v1/completions")
    check("GET /v1/completions 405 with Allow", st == 405 and h.get("allow") == "POST" and error_message(b), (st, h, b))
    st, _, b = request("DELETE", "/index.html")
    check("DELETE /index.html 405", st == 405, (st, b))
    st, _, b = request("POST", "/v1/paraphrase", b'{"text": "unterminated', {"Content-Type": "application/json"})
    check("malformed JSON 400", st == 400 and error_message(b), (st, b))
    for text in ["", "  \n\t "]:  # nothing to rephrase: refused before any generation
        st, _, b = request("POST", "/v1/paraphrase", {"text": text})
        check(f"paraphrase of {text!r} 400", st == 400 and "rephrase" in (error_message(b) or ""), (st, b))
    # the diversity knob and the decoding options: out of range or not a number, refused by name
    for key, value in [("diversity", 1.5), ("diversity", -0.1), ("diversity", "high"), ("candidates", 0),
                       ("candidates", 2.5), ("block", 2), ("copy_penalty", -1), ("rerank_weight", -1),
                       ("copy_deviate", 1.5), ("copy_deviate", 65)]:
        st, _, b = request("POST", "/v1/paraphrase", {"text": "Hello there.", key: value})
        msg = error_message(b) or ""
        check(f"paraphrase {key} {value!r} 400", st == 400 and f'"{key}"' in msg and "must be" in msg, (st, b))
    st, _, b = request("POST", "/v1/completions", [1, 2])
    check("JSON that is not an object 400", st == 400 and error_message(b), (st, b))
    st, _, b = request("POST", "/v1/completions", {"prompt": 5})
    check("prompt not a string 400", st == 400 and "prompt" in (error_message(b) or ""), (st, b))
    st, _, b = request("POST", "/v1/completions", {"prompt": "x", "temperature": "hot"})
    check("temperature not a number 400", st == 400, (st, b))
    st, _, b = request("POST", "/v1/completions", {"prompt": "x", "stop": [1]})
    check("stop not strings 400", st == 400, (st, b))
    st, _, b = request("POST", "/v1/paraphrase", b'{"text": "x"}', {"Content-Type": "text/plain"})
    check("POST without JSON content type 415", st == 415, (st, b))
    st, _, b = raw(b"HELLO\r\n\r\n")
    check("garbage request line 400", st == 400 and error_message(b), (st, b))
    st, _, b = raw(b"GET / HTTP/2.0\r\n\r\n")
    check("HTTP/2.0 request line 505", st == 505, (st, b))
    st, _, b = raw(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
    check("header without colon 400", st == 400, (st, b))
    st, _, b = raw(b"POST /v1/completions HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello")
    check("conflicting Content-Length 400", st == 400, (st, b))
    st, _, b = raw(b"POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    check("chunked body 501", st == 501, (st, b))
    st, _, b = raw(b"POST /v1/completions HTTP/1.1\r\nContent-Type: application/json\r\n\r\n")
    check("POST without Content-Length 411", st == 411, (st, b))
    big = b'{"prompt": "' + b"a" * 100000 + b'"}'
    st, _, b = request("POST", "/v1/completions", big, {"Content-Type": "application/json"})
    check("100 KB body 413", st == 413 and error_message(b), (st, b[:200]))
    st, _, b = raw(b"GET / HTTP/1.1\r\nX-Big: " + b"b" * 20000 + b"\r\n\r\n")
    check("20 KB of headers 431", st == 431, (st, b[:200]))
    st, _, b = raw(b"GET /" + b"p" * 3000 + b" HTTP/1.1\r\n\r\n")
    check("3000-byte path 414", st == 414, (st, b[:200]))
    # a client that sends half a request and waits: dropped after --timeout (the test uses 2 s)
    t = time.time()
    s = raw(b"GET / HTTP/1.1\r\nHost: x\r\n", read=False)
    s.settimeout(20)
    got = b""
    try:
        while True:
            k = s.recv(4096)
            if not k:
                break
            got += k
    except OSError:
        pass
    s.close()
    dt = time.time() - t
    check(f"slow client dropped ({dt:.1f} s, 408)", dt < 10 and b" 408 " in got[:20], (dt, got[:80]))
    st, _, _ = request("GET", "/v1/health")
    check("still serving after the error cases", st == 200, st)


def cli_generate(bin_, model, prompt, n, *extra):
    out = subprocess.run([bin_, "generate", "-m", model, "--dtype", "q8_0", "--temp", "0", "-n", str(n), "--json",
                          *extra, "-p", prompt], capture_output=True, text=True, timeout=300)
    return json.loads(out.stdout)["text"]


def sse_events(sock):
    """yield the data of each server-sent event"""
    buf = b""
    head_done = False
    while True:
        k = sock.recv(4096)
        if not k:
            return
        buf += k
        if not head_done:
            if b"\r\n\r\n" not in buf:
                continue
            _, _, buf = buf.partition(b"\r\n\r\n")
            head_done = True
        while b"\n\n" in buf:
            ev, _, buf = buf.partition(b"\n\n")
            if ev.startswith(b"data: "):
                yield ev[6:].decode()


def api_checks(bin_, model):
    prompt = "The capital of France is"
    want = cli_generate(bin_, model, prompt, 12)
    st, _, b = request("POST", "/v1/completions", {"prompt": prompt, "max_tokens": 12, "temperature": 0})
    r = json.loads(b) if st == 200 else {}
    text = r.get("choices", [{}])[0].get("text")
    check("greedy completion == pocketlm generate --temp 0", st == 200 and text == want, (st, text, want))
    check("completion usage counts", r.get("usage", {}).get("completion_tokens", 0) > 0 and
          r.get("usage", {}).get("prompt_tokens", 0) > 0, r.get("usage"))
    st, _, b = request("POST", "/v1/completions", {"prompt": prompt, "max_tokens": 30, "temperature": 0, "stop": ["\n", " and"]})
    t2 = json.loads(b)["choices"][0]["text"] if st == 200 else None
    check("stop strings cut the text", st == 200 and "\n" not in t2 and " and" not in t2, (st, t2))
    # paraphrase: same prompt and stop rules as `pocketlm paraphrase`
    sentence = "The cat sat on the mat."
    out = subprocess.run([bin_, "paraphrase", "-m", model, "--dtype", "q8_0", "--temp", "0", "--json", sentence],
                         capture_output=True, text=True, timeout=300)
    want_p = json.loads(out.stdout)["text"]
    st, _, b = request("POST", "/v1/paraphrase", {"text": sentence, "temperature": 0})
    r = json.loads(b) if st == 200 else {}
    check("greedy paraphrase == pocketlm paraphrase --temp 0", st == 200 and r.get("text") == want_p and
          "tokens" in r and "stop_reason" in r, (st, r, want_p))
    # the diversity knob: the same text as `pocketlm paraphrase --diversity D` with the same seed
    for d in (0, 1):
        out = subprocess.run([bin_, "paraphrase", "-m", model, "--dtype", "q8_0", "--diversity", str(d), "--seed", "5",
                              "-n", "24", "--json", sentence], capture_output=True, text=True, timeout=300)
        want_d = json.loads(out.stdout)
        st, _, b = request("POST", "/v1/paraphrase", {"text": sentence, "diversity": d, "seed": 5, "max_tokens": 24})
        r = json.loads(b) if st == 200 else {}
        check(f"paraphrase diversity {d} == pocketlm paraphrase --diversity {d}", st == 200 and
              r.get("text") == want_d["text"] and r.get("candidates") == want_d["candidates"] and
              r.get("sampled_tokens") == want_d["sampled_tokens"], (st, r, want_d))
    # streaming: the pieces add up to the non-streamed text, then [DONE]
    body = json.dumps({"prompt": prompt, "max_tokens": 12, "temperature": 0, "stream": True}).encode()
    s = raw(f"POST /v1/completions HTTP/1.1\r\nHost: {HOST}:{PORT}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body, read=False)
    s.settimeout(120)
    events = list(sse_events(s))
    s.close()
    pieces = [json.loads(e)["choices"][0]["text"] for e in events[:-1]]
    check("SSE stream: pieces == greedy text, ends with [DONE]", events and events[-1] == "[DONE]" and "".join(pieces) == want
          and json.loads(events[-2])["choices"][0]["finish_reason"] == "length", (events[-3:], "".join(pieces), want))
    # 8 clients at once: every one answered, decoded together in shared steps (continuous
    # batching), and each greedy text the same as that request alone (one after another)
    def completion(i):
        st, _, b = request("POST", "/v1/completions", {"prompt": f"Count to {i}:", "max_tokens": 12, "temperature": 0})
        return (st, json.loads(b)["choices"][0]["text"] if st == 200 else error_message(b))

    alone = [completion(i) for i in range(8)]
    steps0 = health()
    results = [None] * 8

    def one(i):
        try:
            results[i] = completion(i)
        except Exception as e:  # noqa: BLE001 - any failure is reported below
            results[i] = (repr(e), None)

    ts = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    h = health()
    check("8 concurrent clients: all 200 (max_batch 8)", [r[0] for r in results] == [200] * 8, results)
    check("8 concurrent greedy completions == each alone (batched decode == unbatched)", results == alone,
          [(a, b) for a, b in zip(results, alone) if a != b])
    mean = (h["step_seqs"] - steps0["step_seqs"]) / max(1, h["steps"] - steps0["steps"])
    check(f"8 concurrent clients shared decode steps (at most {h['max_step_seqs']} sequences a step, "
          f"{mean:.1f} on average)", h["max_step_seqs"] >= 4 and mean > 1.5, h)
    check("health counts the steps' rows and time (rows >= sequences, time > 0)",
          h["step_rows"] - steps0["step_rows"] >= h["step_seqs"] - steps0["step_seqs"] and
          h["step_seconds"] > steps0["step_seconds"], h)
    # a client that leaves in the middle of a long stream: the generation stops, the server goes on
    body = json.dumps({"prompt": "Write a long story about a dragon.", "max_tokens": 1000, "temperature": 0.7, "stream": True}).encode()
    s = raw(f"POST /v1/completions HTTP/1.1\r\nHost: {HOST}:{PORT}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body, read=False)
    s.settimeout(120)
    ev = sse_events(s)
    first = [next(ev), next(ev)]
    s.close()
    t = time.time()
    st, _, b = request("POST", "/v1/completions", {"prompt": prompt, "max_tokens": 4, "temperature": 0}, timeout=120)
    dt = time.time() - t
    # 1000 tokens would take tens of seconds: answering within a few means that generation stopped
    check(f"client gone mid-stream: generation stopped, next request served ({dt:.1f} s)", len(first) == 2 and st == 200 and dt < 15, (st, dt))
    # and its seat and KV cache are free again (the batch runs without it)
    for _ in range(50):
        h = health()
        if h["active"] == 0 and h["kv_used"] == 0:
            break
        time.sleep(0.1)
    check("client gone mid-stream: its seat and KV cache freed", h["active"] == 0 and h["kv_used"] == 0, h)


def health():
    st, _, b = request("GET", "/v1/health")
    return json.loads(b) if st == 200 else {}


def busy_checks():
    results = [None] * 8

    def one(i):
        try:
            st, h, b = request("POST", "/v1/completions", {"prompt": "Once upon a time", "max_tokens": 16, "temperature": 0})
            results[i] = (st, h.get("retry-after"), error_message(b) if st != 200 else None)
        except Exception as e:  # noqa: BLE001
            results[i] = (repr(e), None, None)

    ts = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    codes = [r[0] for r in results]
    check("--max-batch 1 --max-pending 1: all answered 200/503", all(c in (200, 503) for c in codes), results)
    check("--max-batch 1 --max-pending 1: some 503 with Retry-After and a message", any(r[0] == 503 and r[1] and r[2] for r in results), results)
    check("--max-batch 1 --max-pending 1: some 200", 200 in codes, codes)
    # --kv-budget 1 (MB, 22 positions of SmolLM2): a request that can never fit is refused at once
    st, _, b = request("POST", "/v1/completions", {"prompt": "Once upon a time", "max_tokens": 100})
    check("--kv-budget 1: a request needing more KV cache than the budget gets 400 saying so",
          st == 400 and "--kv-budget" in (error_message(b) or ""), (st, b[:300]))


def kv_f16_checks(bin_, model):
    check("--kv-type f16: /v1/health says kv_type f16", health().get("kv_type") == "f16", health())
    prompt = "The capital of France is"  # 5 tokens + 30 + 1: 36 positions, 0.8 MB in F16
    want = cli_generate(bin_, model, prompt, 30, "--kv-type", "f16")
    st, _, b = request("POST", "/v1/completions", {"prompt": prompt, "max_tokens": 30, "temperature": 0})
    text = json.loads(b)["choices"][0]["text"] if st == 200 else error_message(b)
    check("--kv-type f16 --kv-budget 1: 36 positions fit, greedy == pocketlm generate --kv-type f16",
          st == 200 and text == want, (st, text, want))
    st, _, b = request("POST", "/v1/completions", {"prompt": prompt, "max_tokens": 100, "temperature": 0})
    check("--kv-type f16 --kv-budget 1: 106 positions get 400", st == 400 and "--kv-budget" in (error_message(b) or ""),
          (st, b[:300]))


args = sys.argv[2:]
web = "--wasm" in args
if "--busy" in args:
    busy_checks()
elif "--kv-f16" in args:
    i = args.index("--kv-f16")
    kv_f16_checks(args[i + 1], args[i + 2])
else:
    http_checks(web)
    if "--full" in args:
        i = args.index("--full")
        api_checks(args[i + 1], args[i + 2])
http_check.finish("serve_client")
