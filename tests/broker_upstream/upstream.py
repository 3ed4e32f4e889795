#!/usr/bin/env python3
"""A GitHub-shaped HTTP API for the secret broker's tests, run as its own process.

Usage: upstream.py LOGFILE. It listens on 127.0.0.1 (a free port, printed as the first line of
standard output), appends one JSON line per request it receives to LOGFILE (method, path, raw
request target, query, headers, body), so a test can prove what reached the upstream without
going through the proxy. Its answers deliberately misbehave the way real APIs sometimes do:
they echo the request headers (credential included) in the body and in `X-Echo-Authorization`,
and set a cookie, so the tests can prove the broker never lets those reach the agent.

Routes: GET /repos/{owner}/{repo}/issues returns two issues; /redirect-inside and
/redirect-outside answer 302; anything else echoes the request.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOG = sys.argv[1]
LOCK = threading.Lock()


class Incomplete(Exception):
    """The connection ended inside a chunked body: not a request, only its first bytes."""

    def __init__(self, body):
        super().__init__("the chunked body ended before its last chunk")
        self.body = body


def read_chunked(f):
    out = b""
    while True:
        line = f.readline()
        if not line.endswith(b"\n"):
            raise Incomplete(out)
        size = int(line.strip() or b"0", 16)
        if size == 0:
            f.readline()
            return out
        data = f.read(size)
        out += data
        if len(data) < size:
            raise Incomplete(out)
        f.readline()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are two writes; without TCP_NODELAY, Nagle and delayed ACKs add 40 ms.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def handle_any(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            try:
                body = read_chunked(self.rfile)
            except Incomplete as e:
                # Logged (so tests see how much arrived) and never answered.
                rec = {"method": self.command, "path": urlsplit(self.path).path,
                       "incomplete": True, "body_bytes": len(e.body)}
                with LOCK, open(LOG, "a") as f:
                    f.write(json.dumps(rec) + "\n")
                self.close_connection = True
                return
        else:
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
        u = urlsplit(self.path)
        rec = {
            "method": self.command,
            "path": u.path,
            "target": self.path,
            "query": u.query,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
        }
        with LOCK, open(LOG, "a") as f:
            f.write(json.dumps(rec) + "\n")
        status, extra = 200, []
        parts = u.path.split("/")
        if u.path == "/redirect-inside":
            status = 302
            host = self.headers.get("Host", "")
            extra.append(("Location", f"http://{host}/repos/acme/billing"))
            payload = {}
        elif u.path == "/redirect-outside":
            status = 302
            extra.append(("Location", "https://evil.example/steal"))
            payload = {}
        elif u.path.endswith("/together"):
            # Answered only once N requests to it have arrived (or after 20 s), all at once:
            # a burst of calls that end together (tests/broker.rs, the thread bound).
            n = int(parse_qs(u.query).get("n", ["1"])[0])
            with TOGETHER:
                ARRIVED[0] += 1
                TOGETHER.notify_all()
                TOGETHER.wait_for(lambda: ARRIVED[0] >= n, timeout=20)
            payload = {"together": n}
        elif self.command == "GET" and len(parts) == 5 and parts[1] == "repos" and parts[4] == "issues":
            payload = [
                {"number": 1, "title": "Invoice for March is missing"},
                {"number": 2, "title": "VAT rounding in the EU report"},
            ]
        else:
            payload = {"received": rec}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Set-Cookie", "session=upstream-session-for-the-real-key; Path=/")
        auth = self.headers.get("Authorization")
        if auth:
            self.send_header("X-Echo-Authorization", auth)
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_any


TOGETHER = threading.Condition()
ARRIVED = [0]


def main():
    # Room for a burst of connections at once (the default backlog is 5).
    ThreadingHTTPServer.request_queue_size = 512
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
