#!/usr/bin/env python3
"""openai_guard.py: the safe-by-default checks of tests/openai.test.sh against a running
`pocketlm serve --allow-origin http://ok.example --max-conns 4 --max-body 4096 --timeout 2000`.

usage: openai_guard.py PORT [--key KEY]
  Host: a foreign Host gets 421, localhost/127.0.0.1 with the port pass;
  Origin: a POST from another origin gets 403, from the allowed one 200 with CORS headers, from
          the same origin 200; the preflight OPTIONS answers the allowed origin only;
  limits: a slow client gets 408 within the timeout, headers over 8 KB 431, a body over
          --max-body 413, connections over --max-conns 503;
  --key:  the server runs with --api-key KEY: /v1/* without it or with another gets 401.
Prints one line per check; exits 1 when any fails. Standard library only.
"""
import json
import socket
import sys
import time

import http_check
from http_check import check

HOST = "127.0.0.1"
PORT = int(sys.argv[1])
KEY = sys.argv[sys.argv.index("--key") + 1] if "--key" in sys.argv else None


def raw(data, timeout=30.0, read=True):
    return http_check.raw(HOST, PORT, data, timeout, read)


def served(send):
    """send() again (20 times at most) while it gets a 503 for connections: earlier ones may still
    be closing on a busy machine"""
    for _ in range(20):
        r = send()
        if r[0] != 503:
            break
        time.sleep(0.5)
    return r


def request(method, path, body=None, headers=None, host=None, retry=True):
    """one request (retried while the connections are full unless retry is False)"""
    def send():
        return request_once(method, path, body, headers, host)
    return served(send) if retry else send()


def request_once(method, path, body, headers, host):
    h = {"Host": host or f"{HOST}:{PORT}"}
    if KEY:
        h["Authorization"] = f"Bearer {KEY}"
    if body is not None:
        body = json.dumps(body).encode() if not isinstance(body, bytes) else body
        h["Content-Type"] = "application/json"
        h["Content-Length"] = str(len(body))
    h.update(headers or {})
    h = {k: v for k, v in h.items() if v is not None}
    req = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    return raw(req.encode() + (body or b""))


def openai_error(body):
    """the OpenAI error shape: {"error": {"message", "type", "param", "code"}}"""
    try:
        e = json.loads(body)["error"]
        return all(k in e for k in ("message", "type", "param", "code")) and e["message"]
    except Exception:
        return None


GEN = {"prompt": "Hi", "max_tokens": 1, "temperature": 0}

# Host
for host in ["evil.example", f"evil.example:{PORT}", "127.0.0.1:1", f"localhost.evil.example:{PORT}"]:
    st, _, b = request("GET", "/v1/health", host=host)
    check(f"Host {host} refused (421, OpenAI error shape)", st == 421 and openai_error(b), (st, b))
st, _, b = request("POST", "/v1/completions", GEN, host="evil.example")
check("Host evil.example POST refused before generating", st == 421, (st, b))
for host in [f"localhost:{PORT}", f"127.0.0.1:{PORT}", f"LOCALHOST:{PORT}"]:
    st, _, b = request("GET", "/v1/health", host=host)
    check(f"Host {host} served", st == 200, (st, b))
st, _, b = served(lambda: raw(b"GET /v1/health HTTP/1.1\r\n\r\n"))
check("HTTP/1.1 without Host 400", st == 400, (st, b))
st, _, b = served(lambda: raw(f"GET /v1/health HTTP/1.1\r\nHost: localhost:{PORT}\r\nHost: evil.example\r\n\r\n".encode()))
check("two Host headers 400", st == 400, (st, b))

# Origin and CORS
st, h, b = request("POST", "/v1/completions", GEN, {"Origin": "http://evil.example"})
check("POST from a foreign Origin 403", st == 403 and openai_error(b) and "access-control-allow-origin" not in h, (st, h, b))
st, _, b = request("POST", "/v1/completions", GEN, {"Origin": "null"})
check("POST from Origin null 403", st == 403, (st, b))
st, h, b = request("POST", "/v1/completions", GEN, {"Origin": f"http://localhost:{PORT}"}, host=f"localhost:{PORT}")
check("POST from the same origin 200", st == 200 and "access-control-allow-origin" not in h, (st, b))
st, h, b = request("POST", "/v1/completions", GEN, {"Origin": "http://ok.example"})
check("POST from the allowed origin 200 with CORS headers",
      st == 200 and h.get("access-control-allow-origin") == "http://ok.example" and h.get("vary") == "Origin", (st, h))
pre = {"Origin": "http://ok.example", "Access-Control-Request-Method": "POST",
       "Access-Control-Request-Headers": "authorization, content-type"}
st, h, _ = request("OPTIONS", "/v1/chat/completions", None, pre)
check("preflight from the allowed origin 204",
      st == 204 and h.get("access-control-allow-origin") == "http://ok.example" and "POST" in h.get("access-control-allow-methods", "")
      and "Authorization" in h.get("access-control-allow-headers", ""), (st, h))
st, h, _ = request("OPTIONS", "/v1/chat/completions", None, dict(pre, Origin="http://evil.example"))
check("preflight from a foreign origin 403", st == 403 and "access-control-allow-origin" not in h, (st, h))
st, h, _ = request("GET", "/v1/health", None, {"Origin": "http://evil.example"})
check("GET from a foreign origin: no CORS header (the browser withholds the answer)",
      "access-control-allow-origin" not in h, (st, h))

# API key
if KEY:
    for auth in [None, "Bearer wrong", f"Basic {KEY}", f"Bearer {KEY}x"]:
        st, h, b = request("GET", "/v1/health", headers={"Authorization": auth})
        check(f"Authorization {auth} 401", st == 401 and openai_error(b) and h.get("www-authenticate") == "Bearer", (st, b))
    st, _, b = request("GET", "/v1/health", headers={"Authorization": f"bearer {KEY}"})
    check("the key with a lower-case scheme 200", st == 200, (st, b))

# limits
big = {"prompt": "a" * 5000}
st, _, b = request("POST", "/v1/completions", big)
check("body over --max-body 413", st == 413 and openai_error(b), (st, b[:200]))
st, _, b = served(lambda: raw(f"GET /v1/health HTTP/1.1\r\nHost: localhost:{PORT}\r\nX-Big: {'b' * 9000}\r\n\r\n".encode()))
check("9 KB of headers 431", st == 431, (st, b[:200]))
# slowloris: one header line per second never finishes the head; dropped at --timeout (2 s)
request("GET", "/v1/health")  # (waits until a slot is free)
t = time.time()
s = socket.create_connection((HOST, PORT), timeout=20)
got = b""
try:
    s.sendall(f"GET /v1/health HTTP/1.1\r\nHost: localhost:{PORT}\r\n".encode())
    for i in range(15):
        s.sendall(f"X-Slow-{i}: 1\r\n".encode())
        time.sleep(1)
except OSError:
    pass
try:
    got = s.recv(4096)
except OSError:
    pass
s.close()
dt = time.time() - t
check(f"slowloris dropped at the timeout ({dt:.1f} s, 408)", dt < 6 and b" 408 " in got[:20], (dt, got[:80]))
# connections: --max-conns 4 held open by idle clients; the next gets 503 at once
idle = [socket.create_connection((HOST, PORT), timeout=10) for _ in range(4)]
time.sleep(0.3)
st, h, b = request("GET", "/v1/health", retry=False)
check("connection over --max-conns 503 with Retry-After", st == 503 and h.get("retry-after") and openai_error(b), (st, h, b))
for s in idle:
    s.close()
time.sleep(3)  # the idle ones time out and free their slots
st, _, _ = request("GET", "/v1/health")
check("still serving after the limits", st == 200, st)
http_check.finish()
