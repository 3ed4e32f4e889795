#!/usr/bin/env python3
"""Power-cut trials: the real `mandate serve` on LazyFS, cut off under load, checked after.

Killing a process keeps the OS page cache; losing power does not. LazyFS is a FUSE file system
with its own page cache that keeps every write until it is fsynced, and drops whatever is
unsynced on `lazyfs::clear-cache`: a power cut at that instant. Each trial:

1. starts the release `mandate serve` with its data folder on LazyFS and puts it under mixed
   load at once: token requests (an in-process client with the agent's key), introspections,
   revocations, calls through the secret broker to a local upstream, and registry changes from
   the CLI (`mandate member add`), recording every answer a client actually received;
2. at a random moment freezes every Mandate process (SIGSTOP: nothing more is written or
   answered), drops LazyFS's unsynced data, kills them (SIGKILL), and unmounts and remounts
   LazyFS: what is on the backing disk is all that survived;
3. checks: `mandate audit verify` passes and SQLite's integrity check too; every token a client
   received has its `token.issued` event; every acknowledged revocation has its `token.revoked`
   event and, once the endpoint is back, introspects as inactive; every member the CLI
   reported added is there; there are at least as many `proxy.allowed` events as broker calls
   that were answered; and the endpoint serves again (the time until its first token is the
   recovery time).

Prints one JSON line per trial and a summary line. Run by `scripts/reliability` (as root, inside
`scripts/with-keyring`); needs the LazyFS binary (`scripts/lazyfs`) and a release `mandate`.

Usage: power_cut.py --mandate BIN --lazyfs BIN --work DIR [--trials N] [--seed S]
"""

import argparse
import base64
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

AGENT = "load-agent"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
UPSTREAM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "broker_upstream", "upstream.py")


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class Agent:
    """The load agent's key, read from the JWK file `mandate agent add --key-file` wrote."""

    def __init__(self, path):
        jwk = json.load(open(path))
        self.key = Ed25519PrivateKey.from_private_bytes(b64d(jwk["d"]))
        canon = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": jwk["x"]}, separators=(",", ":"), sort_keys=True)
        self.kid = b64(hashlib.sha256(canon.encode()).digest())
        self.n = 0
        self.lock = threading.Lock()

    def assertion(self, aud):
        with self.lock:
            self.n += 1
            jti = f"cut-{os.getpid()}-{time.time_ns()}-{self.n}"
        now = int(time.time())
        h = b64(json.dumps({"alg": "EdDSA", "typ": "JWT", "kid": self.kid}).encode())
        c = b64(json.dumps({"iss": AGENT, "sub": AGENT, "aud": aud, "iat": now, "exp": now + 60, "jti": jti}).encode())
        return f"{h}.{c}.{b64(self.key.sign(f'{h}.{c}'.encode()))}"


def request(port, method, path, body=None, headers=None, timeout=3.0):
    """One request on its own connection; (status, parsed JSON or None), or None if no answer came."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        h = {"Host": f"127.0.0.1:{port}"}
        if body is not None:
            h["Content-Type"] = "application/x-www-form-urlencoded"
        h.update(headers or {})
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        try:
            return r.status, json.loads(data)
        except ValueError:
            return r.status, None
    except (OSError, http.client.HTTPException):
        return None


def form(**fields):
    return urllib.parse.urlencode(fields)


def claims(token):
    return json.loads(b64d(token.split(".")[1]))


class Acked:
    """What clients were told, across all trials."""

    def __init__(self):
        self.lock = threading.Lock()
        self.tokens = []  # jti of every token received
        self.revoked = []  # (jti, token) of every acknowledged revocation
        self.members = []  # names `mandate member add` reported added
        self.broker = 0  # broker calls answered 200
        self.round_tokens = 0

    def add(self, field, value):
        with self.lock:
            if field == "broker":
                self.broker += 1
            else:
                getattr(self, field).append(value)
            if field == "tokens":
                self.round_tokens += 1


class Trials:
    def __init__(self, a):
        self.a = a
        self.work = os.path.abspath(a.work)
        self.root = os.path.join(self.work, "root")
        self.mnt = os.path.join(self.work, "mnt")
        self.data = os.path.join(self.mnt, "data")
        self.fifo = os.path.join(self.work, "faults.fifo")
        self.done_fifo = os.path.join(self.work, "faults-done.fifo")
        for d in (self.root, self.mnt):
            os.makedirs(d, exist_ok=True)
        self.cfg = os.path.join(self.work, "lazyfs.toml")
        with open(self.cfg, "w") as f:
            f.write(
                f'[faults]\nfifo_path="{self.fifo}"\nfifo_path_completed="{self.done_fifo}"\n'
                '[cache]\napply_eviction=false\n[cache.simple]\ncustom_size="512mb"\nblocks_per_page=1\n'
                f'[filesystem]\nlog_all_operations=false\nlogfile="{os.path.join(self.work, "lazyfs.log")}"\n'
            )
        self.env = dict(os.environ, MANDATE_DATA_DIR=self.data)
        # Endpoint starts retried because LazyFS failed SQLite's new wal-index (start_server).
        self.shm_retries = 0
        self.env.pop("MANDATE_ACTOR", None)
        self.lazyfs = None
        self.upstream = None
        self.acked = Acked()
        self.rng = random.Random(a.seed)

    # ----- LazyFS -------------------------------------------------------------------------

    def mount(self):
        self.lazyfs = subprocess.Popen(
            [self.a.lazyfs, self.mnt, "--config-path", self.cfg, "-o", "allow_other",
             "-o", "modules=subdir", "-o", f"subdir={self.root}", "-f"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while not os.path.ismount(self.mnt):
            if time.time() > deadline or self.lazyfs.poll() is not None:
                sys.exit("LazyFS did not mount; see " + os.path.join(self.work, "lazyfs.log"))
            time.sleep(0.05)

    def unmount(self):
        subprocess.run(["fusermount3", "-u", self.mnt], check=False, stderr=subprocess.DEVNULL)
        if os.path.ismount(self.mnt):
            subprocess.run(["fusermount3", "-uz", self.mnt], check=False)
        try:
            self.lazyfs.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.lazyfs.kill()
            self.lazyfs.wait()

    def clear_cache(self):
        """Drop every write LazyFS holds that was never fsynced: the power cut."""
        with open(self.fifo, "w") as f:
            f.write("lazyfs::clear-cache\n")
        with open(self.done_fifo) as f:
            line = f.readline()
        if "clear-cache" not in line:
            sys.exit(f"LazyFS did not confirm the cut: {line!r}")

    def cleanup(self):
        """Whatever happened (a failed setup too): no upstream or mount left behind."""
        if self.upstream is not None and self.upstream.poll() is None:
            self.upstream.kill()
            self.upstream.wait()
        if self.lazyfs is not None and self.lazyfs.poll() is None:
            self.unmount()

    # ----- Mandate ------------------------------------------------------------------------

    def cli(self, *args, stdin=None):
        return subprocess.run([self.a.mandate, *args], env=self.env, input=stdin,
                              capture_output=True, text=True)

    def setup(self):
        self.mount()
        upstream_log = os.path.join(self.work, "upstream.jsonl")
        self.upstream = subprocess.Popen([sys.executable, UPSTREAM, upstream_log], stdout=subprocess.PIPE, text=True)
        up_port = int(self.upstream.stdout.readline())
        key_file = os.path.join(self.work, "load.jwk")
        if os.path.exists(key_file):
            os.remove(key_file)
        for args in (
            ["member", "add", "founder"],
            # No trust floor on the connection: after each restart the check introspects up to 50
            # acknowledged revocations, and every inactive answer is a refusal that counts
            # against the load agent's trust (5 in 10 minutes make it UNTRUSTED). Under the
            # preset's PENDING floor the third trial's agent got no token at all, and the
            # restarted endpoint was reported as not recovering.
            ["connection", "add", "github", "--preset", "github", "--base-url", f"http://127.0.0.1:{up_port}",
             "--trust-floor", "UNTRUSTED"],
            ["agent", "add", AGENT, "--owner", "founder", "--purpose", "power-cut trials",
             "--scope", "github:repo.read", "--generate-key", "--key-file", key_file, "--key-format", "jwk"],
        ):
            r = self.cli(*args)
            if r.returncode != 0:
                sys.exit(f"setup failed: mandate {' '.join(args)}: {r.stderr}")
        r = self.cli("connection", "set-secret", "github", stdin="ghp_powercutTRIALsecret0123456789abcd")
        if r.returncode != 0:
            sys.exit(f"setup failed: set-secret: {r.stderr}")
        self.agent = Agent(key_file)

    def start_server(self):
        t0 = time.monotonic()
        log = os.path.join(self.work, "serve.log")
        for attempt in range(3):
            p = subprocess.Popen([self.a.mandate, "serve", "--port", "0", "--no-rate-limit"], env=self.env,
                                 stdout=subprocess.PIPE, stderr=open(log, "a"), text=True)
            line = p.stdout.readline()
            if line.startswith("Listening on http://127.0.0.1:"):
                break
            p.wait()
            # LazyFS's allowance, as for the checks: SQLite makes a new wal-index (-shm) through
            # the mount and grows it with sparse writes, which LazyFS mishandles now and then
            # ("disk I/O error" as the endpoint opens the database, while the same files on the
            # backing disk pass SQLite's integrity check). That index is shared memory a real
            # reboot wipes; it is removed and the start tried again, at most twice, and counted.
            with open(log) as f:
                last = f.read().strip().splitlines()[-1:] or [""]
            if "disk I/O error" not in last[0] or attempt == 2:
                raise RuntimeError(f"serve did not start: {line!r} ({last[0]})")
            self.shm_retries += 1
            shm = os.path.join(self.data, "mandate.db-shm")
            if os.path.exists(shm):
                os.remove(shm)
        port = int(line.strip().rsplit(":", 1)[1])
        threading.Thread(target=p.stdout.read, daemon=True).start()
        # Recovery: until the first token is issued.
        while True:
            r = self.token(port)
            if r is not None:
                return p, port, time.monotonic() - t0
            if time.monotonic() - t0 > 60:
                raise RuntimeError("the restarted endpoint issued no token within 60 s")
            time.sleep(0.01)

    def token(self, port):
        aud = f"http://127.0.0.1:{port}/oauth2/token"
        r = request(port, "POST", "/oauth2/token", form(
            grant_type="client_credentials", client_assertion_type=ASSERTION_TYPE,
            client_assertion=self.agent.assertion(aud)))
        if r and r[0] == 200 and r[1] and "access_token" in r[1]:
            return r[1]["access_token"]
        return None

    def authed(self, port, path, **fields):
        aud = f"http://127.0.0.1:{port}{path}"
        return request(port, "POST", path, form(client_assertion_type=ASSERTION_TYPE,
                                                client_assertion=self.agent.assertion(aud), **fields))

    # ----- load ---------------------------------------------------------------------------

    def token_client(self, port, stop, n0):
        n = n0
        while not stop.is_set():
            n += 1
            t = self.token(port)
            if t is None:
                continue
            self.acked.add("tokens", claims(t)["jti"])
            if n % 5 == 0:
                r = self.authed(port, "/oauth2/revoke", token=t)
                if r and r[0] == 200:
                    self.acked.add("revoked", (claims(t)["jti"], t))
            elif n % 3 == 0:
                self.authed(port, "/oauth2/introspect", token=t)

    def broker_client(self, port, stop):
        t = None
        while not stop.is_set():
            t = t or self.token(port)
            if t is None:
                continue
            self.acked.add("tokens", claims(t)["jti"])
            r = request(port, "GET", "/proxy/github/repos/acme/billing/issues",
                        headers={"Authorization": f"Bearer {t}"})
            if r and r[0] == 200:
                self.acked.add("broker", 1)

    def cli_client(self, stop, trial, procs):
        i = 0
        while not stop.is_set():
            i += 1
            name = f"member-{trial}-{i}"
            p = subprocess.Popen([self.a.mandate, "member", "add", name], env=self.env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(p)
            code = p.wait()
            if code == 0 and not stop.is_set():
                self.acked.add("members", name)

    # ----- checks -------------------------------------------------------------------------

    def check(self, trial):
        problems = []
        v = self.cli("--json", "audit", "verify")
        try:
            report = json.loads(v.stdout)
        except ValueError:
            report = {}
        if v.returncode != 0 or report.get("problems"):
            problems.append(f"audit verify failed (exit {v.returncode}): {v.stderr.strip()[:300]} {report.get('problems')}")
        # The checks read a copy of what survived (database and WAL, read through LazyFS with
        # plain reads): SQLite's shared-memory file, mapped through LazyFS, sometimes fails with
        # "disk I/O error" (see the cut), which is LazyFS's, not Mandate's.
        snap = os.path.join(self.work, "check")
        shutil.rmtree(snap, ignore_errors=True)
        os.makedirs(snap)
        for name in ("mandate.db", "mandate.db-wal"):
            if os.path.exists(os.path.join(self.data, name)):
                shutil.copyfile(os.path.join(self.data, name), os.path.join(snap, name))
        db = sqlite3.connect(os.path.join(snap, "mandate.db"))
        try:
            ic = db.execute("PRAGMA integrity_check").fetchone()[0]
            if ic != "ok":
                problems.append(f"integrity check: {ic}")
            q = lambda sql: [r[0] for r in db.execute(sql)]
            issued = set(q("SELECT json_extract(CAST(body AS TEXT), '$.details.jti') FROM audit_events "
                           "WHERE action = 'token.issued' AND decision = 'allow'"))
            revoked_events = set(q("SELECT json_extract(CAST(body AS TEXT), '$.target.id') FROM audit_events "
                                   "WHERE action = 'token.revoked'"))
            members = set(q("SELECT name FROM members"))
            allowed = db.execute("SELECT count(*) FROM audit_events WHERE action = 'proxy.allowed'").fetchone()[0]
            events = db.execute("SELECT count(*) FROM audit_events").fetchone()[0]
        finally:
            db.close()
        with self.acked.lock:
            lost_tokens = [j for j in self.acked.tokens if j not in issued]
            lost_revocations = [j for j, _ in self.acked.revoked if j not in revoked_events]
            lost_members = [m for m in self.acked.members if m not in members]
            broker = self.acked.broker
        if lost_tokens:
            problems.append(f"{len(lost_tokens)} received tokens have no token.issued event, e.g. {lost_tokens[:3]}")
        if lost_revocations:
            problems.append(f"{len(lost_revocations)} acknowledged revocations have no token.revoked event")
        if lost_members:
            problems.append(f"{len(lost_members)} members the CLI added are gone, e.g. {lost_members[:3]}")
        if allowed < broker:
            problems.append(f"{broker} broker calls were answered but only {allowed} proxy.allowed events survive")
        return problems, events

    def revocations_hold(self, port):
        """Every acknowledged revocation (up to 50, newest first) introspects as inactive."""
        with self.acked.lock:
            sample = list(reversed(self.acked.revoked))[:50]
        bad = 0
        for _, t in sample:
            r = self.authed(port, "/oauth2/introspect", token=t)
            if not (r and r[0] == 200 and r[1] == {"active": False}):
                bad += 1
        return bad, len(sample)

    # ----- the trials ---------------------------------------------------------------------

    def run(self):
        self.setup()
        failures, recoveries, total_events = 0, [], 0
        server, port, _ = self.start_server()
        for trial in range(1, self.a.trials + 1):
            self.acked.round_tokens = 0
            stop = threading.Event()
            procs = []
            threads = [threading.Thread(target=self.token_client, args=(port, stop, i * 1000)) for i in range(3)]
            threads.append(threading.Thread(target=self.broker_client, args=(port, stop)))
            threads.append(threading.Thread(target=self.cli_client, args=(stop, trial, procs)))
            for t in threads:
                t.start()
            deadline = time.monotonic() + 30
            while self.acked.round_tokens < 20 and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(self.rng.uniform(0, 1.5))
            # The cut: freeze every writer, drop what was never synced, kill, remount. Clients
            # start nothing new from here; an answer already on its way still counts (the server
            # commits before it answers). The threads are joined only after the kill: one may be
            # waiting for a CLI process that is frozen.
            stop.set()
            victims = [server] + [p for p in procs if p.poll() is None]
            for p in victims:
                try:
                    os.kill(p.pid, signal.SIGSTOP)
                except ProcessLookupError:
                    pass
            self.clear_cache()
            for p in [server] + procs:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
            for t in threads:
                t.join()
            # A CLI process started in the instant before the threads saw `stop` is killed too.
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            self.unmount()
            # SQLite's wal-index (mandate.db-shm) is shared memory, which a power cut wipes and
            # SQLite rebuilds from the WAL on the next open (the WAL itself stays). LazyFS
            # mishandles the sparse writes that grow that file (after a remount it reported a
            # 3-byte file the disk held as empty, and SQLite's next open failed with "disk I/O
            # error"), so the cut removes it, as a reboot would leave no shared memory behind.
            shm = os.path.join(self.root, "data", "mandate.db-shm")
            if os.path.exists(shm):
                os.remove(shm)
            self.mount()
            try:
                problems, events = self.check(trial)
            except sqlite3.Error as e:
                problems, events = [f"the database could not be read after the cut: {e}"], 0
            try:
                server, port, recovery = self.start_server()
            except RuntimeError as e:
                problems.append(str(e))
                recovery = None
            if recovery is not None:
                recoveries.append(recovery)
                bad, n = self.revocations_hold(port)
                if bad:
                    problems.append(f"{bad} of {n} acknowledged revocations no longer hold")
            failures += bool(problems)
            total_events = events
            print(json.dumps({
                "trial": trial, "ok": not problems, "problems": problems,
                "tokens_acked": len(self.acked.tokens), "revocations_acked": len(self.acked.revoked),
                "members_acked": len(self.acked.members), "broker_acked": self.acked.broker,
                "events": events, "recovery_s": None if recovery is None else round(recovery, 3),
            }), flush=True)
            if recovery is None:
                break
        server.kill()
        server.wait()
        self.upstream.kill()
        self.unmount()
        print(json.dumps({
            "summary": "power-cut trials", "synchronous": "FULL", "trials": trial, "failures": failures,
            "tokens_acked": len(self.acked.tokens), "revocations_acked": len(self.acked.revoked),
            "members_acked": len(self.acked.members), "broker_acked": self.acked.broker, "events": total_events,
            "longest_recovery_s": round(max(recoveries), 3) if recoveries else None,
            "lazyfs_shm_retries": self.shm_retries,
            "seed": self.a.seed,
        }), flush=True)
        return failures == 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mandate", required=True)
    p.add_argument("--lazyfs", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--seed", type=int, default=int(time.time()))
    a = p.parse_args()
    trials = Trials(a)
    try:
        ok = trials.run()
    finally:
        trials.cleanup()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
