#!/usr/bin/env python3
"""Latency the secret broker adds over a direct call (a measurement, not a test).

Usage: bench.py DIRECT_URL PROXY_URL TOKEN [N]. Sends N sequential GETs (after 100 warm-up
calls) to each URL over one keep-alive connection each, interleaved so both see the same
machine state, and prints JSON with p50/p90/p99 in milliseconds and the added latency.
"""

import http.client
import json
import sys
import time
from urllib.parse import urlsplit


def conn(url):
    u = urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=30), u.path


def one(c, path, headers):
    t = time.perf_counter()
    c.request("GET", path, headers=headers)
    r = c.getresponse()
    r.read()
    if r.status != 200:
        raise SystemExit(f"{path}: HTTP {r.status}")
    return (time.perf_counter() - t) * 1000.0


def pct(xs, p):
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(len(xs) * p / 100))], 3)


def main():
    direct, proxy, token = sys.argv[1], sys.argv[2], sys.argv[3]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 2000
    dc, dpath = conn(direct)
    pc, ppath = conn(proxy)
    h = {"Authorization": "Bearer " + token}
    for _ in range(100):
        one(dc, dpath, {})
        one(pc, ppath, h)
    d, p = [], []
    for _ in range(n):
        d.append(one(dc, dpath, {}))
        p.append(one(pc, ppath, h))
    out = {"calls": n}
    for q in (50, 90, 99):
        out[f"direct_p{q}_ms"] = pct(d, q)
        out[f"proxied_p{q}_ms"] = pct(p, q)
        out[f"added_p{q}_ms"] = round(pct(p, q) - pct(d, q), 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
