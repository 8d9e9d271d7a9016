#!/usr/bin/env python3
"""serve_adapters.py: many LoRA adapters on one base, checked by tests/serve.test.sh against
`pocketlm serve -m MODEL --dtype q8_0 --lora models/paws-lora --lora-dir DIR` where DIR/alt is
another adapter (paws-lora's weights at another lora_alpha: other outputs, the same added tokens).

usage: serve_adapters.py PORT BIN MODEL ALT_DIR
  /v1/models lists the base and both; three requests at once, for paws-lora, alt and the base
  ("adapter": ""), share decode steps and each greedy paraphrase == `BIN paraphrase [--lora DIR]
  --temp 0`; "model": "BASE:alt" picks alt; unknown names get 404 with the list; POST /v1/adapters
  loads one (409 for a taken name, 400 for a bad name or path), DELETE unloads it (409 while a
  request uses it, 404 once gone). Prints one line per check; exits 1 when any fails.
"""
import json
import os
import subprocess
import sys
import threading
import time

import http_check
from http_check import check

HOST = "127.0.0.1"
PORT = int(sys.argv[1])
BIN, MODEL, ALT = sys.argv[2], sys.argv[3], sys.argv[4]
BASE = os.path.basename(MODEL)
SENTENCE = "In 1938 he became the first professor of physics at the University of Cambridge ."


def request(method, path, body=None, timeout=120.0, read=True):
    h = {"Host": f"{HOST}:{PORT}"}
    data = b""
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    h["Content-Length"] = str(len(data))
    req = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    r = http_check.raw(HOST, PORT, req.encode() + data, timeout, read)
    if not read:
        return r
    st, _, b = r
    try:
        return st, json.loads(b)
    except ValueError:
        return st, {}


def cli_paraphrase(lora):
    args = [BIN, "paraphrase", "-m", MODEL, "--dtype", "q8_0", "--temp", "0", "--json", SENTENCE]
    if lora:
        args[2:2] = ["--lora", lora]
    out = subprocess.run(args, capture_output=True, text=True, timeout=300)
    return json.loads(out.stdout)["text"]


def health():
    return request("GET", "/v1/health")[1]


st, r = request("GET", "/v1/models")
ids = [m["id"] for m in r.get("data", [])]
check("/v1/models lists the base and every adapter", ids == [BASE, f"{BASE}:paws-lora", f"{BASE}:alt"], ids)
check("/v1/health names the default adapter and all", health().get("adapter") == "paws-lora" and
      health().get("adapters") == ["paws-lora", "alt"], health())

# three adapters mixed in one batch: each == the CLI with that adapter alone
want = {"paws-lora": cli_paraphrase("models/paws-lora"), "alt": cli_paraphrase(ALT), "": cli_paraphrase(None)}
check("the adapters give different greedy paraphrases (so the mix tests something)", len(set(want.values())) == 3, want)
h0 = health()
got = {}


def one(name):
    st, r = request("POST", "/v1/paraphrase", {"text": SENTENCE, "temperature": 0, "adapter": name})
    got[name] = r.get("text") if st == 200 else (st, r)


ts = [threading.Thread(target=one, args=(n,)) for n in want]
for t in ts:
    t.start()
for t in ts:
    t.join()
h1 = health()
for name in want:
    check(f"mixed batch: adapter '{name or '(base)'}' == pocketlm paraphrase {'--lora ' + name if name else '(base)'}",
          got.get(name) == want[name], (got.get(name), want[name]))
check(f"mixed batch: the three shared decode steps (at most {h1.get('max_step_seqs')} a step)",
      h1.get("max_step_seqs", 0) >= 2 and h1["step_seqs"] - h0["step_seqs"] > h1["steps"] - h0["steps"], (h0, h1))

# "model": "BASE:alt" on the OpenAI side; the default is the first --lora
st, r = request("POST", "/v1/completions", {"model": f"{BASE}:alt", "prompt": "Hello", "max_tokens": 2, "temperature": 0})
check("\"model\": \"BASE:alt\" is answered as that model", st == 200 and r.get("model") == f"{BASE}:alt", (st, r))
st, r = request("POST", "/v1/completions", {"prompt": "Hello", "max_tokens": 2, "temperature": 0})
check("no model named: the first --lora adapter", st == 200 and r.get("model") == f"{BASE}:paws-lora", (st, r))
st, r = request("POST", "/v1/completions", {"model": f"{BASE}:alt", "adapter": "paws-lora", "prompt": "Hi"})
check("\"model\" and \"adapter\" naming different adapters: 400", st == 400, (st, r))
for body in ({"adapter": "nope", "prompt": "Hi"}, {"model": f"{BASE}:nope", "prompt": "Hi"}, {"model": "nope", "prompt": "Hi"}):
    st, r = request("POST", "/v1/completions", body)
    msg = r.get("error", {}).get("message", "")
    check(f"unknown {list(body)[0]} {body[list(body)[0]]!r}: 404 listing what is served",
          st == 404 and r["error"]["type"] == "not_found_error" and f"{BASE}:alt" in msg, (st, r))

# POST /v1/adapters, DELETE /v1/adapters/NAME
st, r = request("POST", "/v1/adapters", {"name": "extra", "path": ALT})
check("POST /v1/adapters loads an adapter", st == 200 and r.get("id") == f"{BASE}:extra", (st, r))
st, r = request("POST", "/v1/paraphrase", {"text": SENTENCE, "temperature": 0, "adapter": "extra"})
check("the loaded adapter serves at once (== the CLI)", st == 200 and r.get("text") == want["alt"], (st, r))
check("POST /v1/adapters: a taken name is 409", request("POST", "/v1/adapters", {"name": "extra", "path": ALT})[0] == 409)
check("POST /v1/adapters: a bad name is 400", request("POST", "/v1/adapters", {"name": "a b", "path": ALT})[0] == 400)
st, r = request("POST", "/v1/adapters", {"name": "gone", "path": "/nonexistent/adapter"})
check("POST /v1/adapters: a bad path is 400 with the reason", st == 400 and "nonexistent" in r.get("error", {}).get("message", ""), (st, r))
# not while in use: a long stream holds it
body = json.dumps({"prompt": "Write a long story about a dragon.", "max_tokens": 1000, "temperature": 0.7,
                   "stream": True, "adapter": "extra"}).encode()
s = http_check.raw(HOST, PORT, f"POST /v1/completions HTTP/1.1\r\nHost: {HOST}:{PORT}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n".encode() + body, 120, False)
s.settimeout(120)
s.recv(4096)  # the head and the first events: the request runs
st, r = request("DELETE", "/v1/adapters/extra")
check("DELETE while a request uses the adapter: 409", st == 409, (st, r))
s.close()
for _ in range(100):  # the request ends at its next step once its client has gone
    st, r = request("DELETE", "/v1/adapters/extra")
    if st != 409:
        break
    time.sleep(0.1)
check("DELETE once the request has gone: unloaded", st == 200 and r.get("deleted") is True, (st, r))
check("DELETE again: 404", request("DELETE", "/v1/adapters/extra")[0] == 404)
check("an unloaded adapter is no longer served", request("POST", "/v1/completions", {"adapter": "extra", "prompt": "Hi"})[0] == 404)
check("GET /v1/adapters: 405", request("GET", "/v1/adapters")[0] == 405)
http_check.finish("serve_adapters")
