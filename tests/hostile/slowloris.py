"""Slow and idle connections against a Mandate endpoint, as an attacker's client makes them.

Usage: slowloris.py PORT [--tls CERT] [--each N]

Opens, all at once, N connections of each kind and reports how each one ended, as one JSON
object on stdout: {"kind": [{"closed_after": seconds, "status": "HTTP/1.1 408 ..." or null}]}.

- slow_headers: a request head sent one byte per second, never finished (slowloris);
- idle: one complete request, its response read, then nothing (an idle keep-alive
  connection);
- silent: connects and never sends a byte;
- slow_body: a complete head declaring 1000 body bytes, then one byte per second.

Every connection is given up after 60 s (reported as closed_after null): the server must
close them long before that.
"""

import json
import socket
import ssl
import sys
import threading
import time

GIVE_UP = 60.0


def connect(port, cert):
    s = socket.create_connection(("127.0.0.1", port), timeout=GIVE_UP)
    if cert:
        ctx = ssl.create_default_context(cafile=cert)
        s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
    return s


def until_closed(s, t0, send=None):
    """Read (and optionally trickle `send` one byte a second) until the server closes."""
    s.settimeout(1.0)
    got = b""
    i = 0
    while time.time() - t0 < GIVE_UP:
        if send is not None and i < len(send):
            try:
                s.send(send[i : i + 1])
            except OSError:
                return time.time() - t0, got
            i += 1
        try:
            chunk = s.recv(4096)
            if not chunk:
                return time.time() - t0, got
            got += chunk
        except socket.timeout:
            continue
        except OSError:
            return time.time() - t0, got
    return None, got


def status_of(got):
    if not got:
        return None
    return got.split(b"\r\n", 1)[0].decode("latin-1")


def one(kind, port, cert, out, lock):
    host = b"Host: 127.0.0.1:%d\r\n" % port
    t0 = time.time()
    try:
        s = connect(port, cert)
        t0 = time.time()
        if kind == "slow_headers":
            head = b"POST /oauth2/token HTTP/1.1\r\n" + host + b"X-Slow: " + b"a" * 200
            closed, got = until_closed(s, t0, send=head)
        elif kind == "idle":
            s.sendall(b"GET /.well-known/jwks.json HTTP/1.1\r\n" + host + b"\r\n")
            s.settimeout(10)
            first = s.recv(65536)
            t0 = time.time()
            closed, got = until_closed(s, t0)
            got = first + got
        elif kind == "silent":
            closed, got = until_closed(s, t0)
        else:
            head = (
                b"POST /oauth2/token HTTP/1.1\r\n" + host
                + b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n"
            )
            s.sendall(head)
            closed, got = until_closed(s, t0, send=b"a" * 1000)
        s.close()
    except OSError as e:
        closed, got = time.time() - t0, str(e).encode()
    with lock:
        out.setdefault(kind, []).append({"closed_after": closed, "status": status_of(got)})


def main():
    port = int(sys.argv[1])
    cert = sys.argv[sys.argv.index("--tls") + 1] if "--tls" in sys.argv else None
    each = int(sys.argv[sys.argv.index("--each") + 1]) if "--each" in sys.argv else 3
    out, lock, threads = {}, threading.Lock(), []
    for kind in ["slow_headers", "idle", "silent", "slow_body"]:
        for _ in range(each):
            t = threading.Thread(target=one, args=(kind, port, cert, out, lock))
            t.start()
            threads.append(t)
    for t in threads:
        t.join()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
