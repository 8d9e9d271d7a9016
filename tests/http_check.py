"""http_check.py: what the clients of the server tests share (tests/serve_client.py,
tests/openai_guard.py, tests/openai_client.py): one printed line per check with a count of the
failures, and raw HTTP/1.1 over a socket. Standard library only."""
import socket
import sys

failed = 0


def check(name, ok, detail=""):
    """print 'ok   NAME' or 'FAIL NAME: detail', counting the failure"""
    global failed
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": " + str(detail)[:400]))
    if not ok:
        failed += 1


def finish(who=None):
    """exit 1 when a check failed, else 0 (printing 'WHO: N failed' first when who is given)"""
    if who:
        print(f"{who}: {failed} failed")
    sys.exit(1 if failed else 0)


def raw(host, port, data, timeout=30.0, read=True):
    """send raw bytes to host:port; return (status, headers dict, body bytes) of the response (a
    reset or a read timeout ends it; status 0 when there is no status line), or the open socket
    when read is False"""
    s = socket.create_connection((host, port), timeout=timeout)
    buf = b""
    try:
        s.sendall(data)
        if not read:
            return s
        while True:
            k = s.recv(65536)
            if not k:
                break
            buf += k
    except (ConnectionResetError, socket.timeout):
        pass
    finally:
        if read:
            s.close()
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ")[1])
    except (IndexError, ValueError):
        status = 0
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body
