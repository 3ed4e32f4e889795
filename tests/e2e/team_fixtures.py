"""A real team server for the real-window tests: a private PostgreSQL cluster (initdb as the
postgres user, on a free loopback port), a SoftHSM2 token holding the server's keys, a
self-signed certificate for 127.0.0.1, and `mandate server` over HTTPS on it. Desktop
installations join it as members with the real CLI (`mandate team join ... --server-fingerprint`),
exactly as a person does after their admin invites them.

Everything is torn down at the end: the server, the cluster, the token, the folders.
"""

import glob
import json
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import CLI, Install, free_port, wait_for_port

PIN = "e2e-team-pin-1357"


def run(args, env=None, check=True, input=None):
    out = subprocess.run(args, env=env, capture_output=True, text=True, input=input)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({out.returncode}): {out.stderr}")
    return out


def softhsm_module():
    for p in (
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    ):
        if os.path.exists(p):
            return p
    raise AssertionError("SoftHSM2 is not installed: apt-get install softhsm2 (scripts/test installs it)")


class PgCluster:
    def __init__(self):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins:
            raise AssertionError("PostgreSQL is not installed: apt-get install postgresql (scripts/test installs it)")
        self.bin = os.path.dirname(bins[-1])
        # A folder of its own the postgres user can reach (pytest's are private to root).
        self.dir = tempfile.mkdtemp(prefix="mandate-e2e-pg-")
        os.chmod(self.dir, 0o755)
        run(["chown", "-R", "postgres:postgres", self.dir])
        self.port = free_port()
        self.data = os.path.join(self.dir, "data")
        try:
            self.pg("initdb", "-D", self.data, "--auth=trust", "--username=mandate", "--no-sync",
                    "--no-instructions")
            opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
            self.pg("pg_ctl", "-D", self.data, "-o", opts, "-l", os.path.join(self.dir, "log"), "-w", "start")
            run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "mandate", "-d", "postgres", "-q",
                 "-c", "CREATE DATABASE team"])
        except BaseException:
            # Nothing yields to the fixture's teardown yet: stop what was started here.
            self.stop()
            raise

    def pg(self, program, *args):
        return run(["runuser", "-u", "postgres", "--", os.path.join(self.bin, program), *args])

    def url(self):
        return f"postgres://mandate@127.0.0.1:{self.port}/team"

    def psql(self, sql):
        return run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "mandate", "-d", "team",
                    "-At", "-c", sql]).stdout

    def stop(self):
        run(["runuser", "-u", "postgres", "--", os.path.join(self.bin, "pg_ctl"), "-D", self.data,
             "-m", "immediate", "stop"], check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


class TeamServer:
    """`mandate server` on PostgreSQL and SoftHSM2, over HTTPS on 127.0.0.1."""

    def __init__(self, root):
        self.root = os.path.join(root, "team")
        os.makedirs(self.root)
        self.pg = PgCluster()
        self.proc = None
        self.log = None
        try:
            self.start()
        except BaseException:
            # A step that fails part-way (a token, the certificate, `server init`, a server that
            # never listens) must not leave the cluster or the server running: the fixture's
            # teardown only runs once it has yielded.
            self.stop()
            raise

    def start(self):
        tokens = os.path.join(self.root, "tokens")
        os.makedirs(tokens)
        conf = os.path.join(self.root, "softhsm2.conf")
        with open(conf, "w") as f:
            f.write(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
        self.env = dict(os.environ)
        self.env.update(
            SOFTHSM2_CONF=conf,
            MANDATE_DATA_DIR=os.path.join(self.root, "data"),
            MANDATE_PKCS11_MODULE=softhsm_module(),
            MANDATE_PKCS11_TOKEN="team",
            MANDATE_PKCS11_PIN=PIN,
            MANDATE_DATABASE_URL=self.pg.url(),
            MANDATE_KEYCHAIN_SERVICE="mandate-e2e-team-unused",
            MANDATE_LOG="warn",
            # A call held for approval answers at once (approval_pending) instead of waiting.
            MANDATE_APPROVAL_HOLD_SECS="0",
        )
        self.env.pop("MANDATE_ACTOR", None)
        run(["softhsm2-util", "--init-token", "--free", "--label", "team", "--pin", PIN,
             "--so-pin", "e2e-team-so-pin"], env=self.env)
        self.cert = os.path.join(self.root, "server.pem")
        self.key = os.path.join(self.root, "server.key")
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", self.key, "-out", self.cert, "-days", "2", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1"])
        os.chmod(self.key, 0o600)
        self.fingerprint = run(["openssl", "x509", "-in", self.cert, "-noout", "-fingerprint", "-sha256"]
                               ).stdout.strip().rsplit("=", 1)[1]
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        init = json.loads(self.cli("--json", "server", "init", "--public-url", self.url, "--admin", "alice").stdout)
        self.admin_code = init["invite_code"]
        self.log = open(os.path.join(self.root, "server.log"), "a")
        self.start_server()

    def start_server(self):
        self.proc = subprocess.Popen(
            [CLI, "server", "--listen", f"127.0.0.1:{self.port}", "--tls-cert", self.cert, "--tls-key", self.key],
            env=self.env, stdout=subprocess.DEVNULL, stderr=self.log,
        )
        wait_for_port(self.port, timeout=30)

    def stop_server(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cli(self, *args, check=True, input=None):
        """`mandate ARGS` on the server host (its token and database)."""
        return run([CLI, *args], env=self.env, check=check, input=input)

    def cli_json(self, *args):
        return json.loads(self.cli("--json", *args).stdout)

    def join(self, install, code):
        """`install` joins as the member the code was made for, trusting the server's
        certificate by its fingerprint (as the admin tells them)."""
        return install.cli_json("team", "join", self.url, code, "--server-fingerprint", self.fingerprint)

    def stop(self):
        self.stop_server()
        if self.log is not None:
            self.log.close()
        self.pg.stop()


@pytest.fixture
def team_server(tmp_path):
    if os.geteuid() != 0:
        raise AssertionError("the team e2e tests start PostgreSQL as its own user: run them as root (CI does)")
    t = TeamServer(str(tmp_path))
    yield t
    t.stop()


@pytest.fixture
def desks(tmp_path):
    """Desktop installations, each in its own folder (`desks("alice")`)."""
    made = []

    def make(name):
        root = os.path.join(str(tmp_path), f"desk-{name}")
        os.makedirs(root)
        i = Install(root)
        made.append(i)
        return i

    yield make
