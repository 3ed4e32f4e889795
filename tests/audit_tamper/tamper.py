#!/usr/bin/env python3
"""An attacker who can write Mandate's data folder but cannot read the OS keychain.

Works on the SQLite file directly, with Python's sqlite3 and the hashing of
docs/AUDIT_FORMAT.md (canonical bytes and chain links from the independent verifier in
tests/audit_verifier_py), as someone with a copy of the spec and write access would. It never
uses Mandate's code, and it never touches the keychain.

Usage:
  tamper.py DATA_DIR forge-tail N
      append N well-formed events, correctly chained, after the newest one
  tamper.py DATA_DIR rewrite SEQ
      change event SEQ, recompute the hash chain from it to the end, drop every checkpoint
      that covers it, and put the newest remaining one in audit-checkpoint.txt
  tamper.py DATA_DIR rollback OLDER_DATA_DIR
      replace the database and audit-checkpoint.txt with an older genuine copy
Prints one line saying what it did.
"""

import json
import os
import shutil
import sqlite3
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "audit_verifier_py"))
from verify import canonical, leaf_hash, sha256  # noqa: E402


def connect(data_dir):
    db = sqlite3.connect(os.path.join(data_dir, "mandate.db"))
    db.execute("PRAGMA busy_timeout = 5000")
    return db


def forge_tail(data_dir, n):
    db = connect(data_dir)
    seq, prev, body, time = db.execute(
        "SELECT seq, hash, body, time FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()
    template = json.loads(bytes(body))
    for i in range(1, n + 1):
        ev = dict(template)
        ev["seq"] = seq + i
        ev["action"] = "token.issued"
        ev["decision"] = "allow"
        ev["reason"] = None
        ev["details"] = {"forged": i}
        ev["time"] = time[:20] + "%06dZ" % ((int(time[20:26]) + i) % 1000000)
        c = canonical(ev)
        h = sha256(bytes(prev) + leaf_hash(c))
        db.execute(
            "INSERT INTO audit_events (seq, time, agent_id, action, decision, body, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (ev["seq"], ev["time"], ev.get("agent"), ev["action"], ev["decision"], c, h))
        prev = h
    db.commit()
    print("forged events #%d to #%d, correctly chained" % (seq + 1, seq + n))


def rewrite(data_dir, at):
    db = connect(data_dir)
    prev = db.execute("SELECT hash FROM audit_events WHERE seq = ?", (at - 1,)).fetchone()
    prev = bytes(prev[0]) if prev else bytes(32)
    rows = db.execute("SELECT seq, body FROM audit_events WHERE seq >= ? ORDER BY seq", (at,)).fetchall()
    for seq, body in rows:
        ev = json.loads(bytes(body))
        if seq == at:
            ev["decision"] = "deny" if ev["decision"] == "allow" else "allow"
            ev["reason"] = "rewritten"
        c = canonical(ev)
        h = sha256(prev + leaf_hash(c))
        db.execute("UPDATE audit_events SET body = ?, hash = ?, decision = ? WHERE seq = ?",
                   (c, h, ev["decision"], seq))
        prev = h
    db.execute("DELETE FROM audit_checkpoints WHERE size >= ?", (at,))
    newest = db.execute("SELECT note FROM audit_checkpoints ORDER BY size DESC LIMIT 1").fetchone()
    db.commit()
    path = os.path.join(data_dir, "audit-checkpoint.txt")
    if newest:
        with open(path, "w", encoding="utf-8") as f:
            f.write(newest[0])
    elif os.path.exists(path):
        os.remove(path)
    print("rewrote event #%d, re-chained %d events, dropped the checkpoints covering it" % (at, len(rows)))


def rollback(data_dir, older):
    for name in ("mandate.db-wal", "mandate.db-shm"):
        p = os.path.join(data_dir, name)
        if os.path.exists(p):
            os.remove(p)
    for name in ("mandate.db", "audit-checkpoint.txt"):
        shutil.copyfile(os.path.join(older, name), os.path.join(data_dir, name))
    print("restored the database and checkpoint file from %s" % older)


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    data_dir, what, arg = argv
    if what == "forge-tail":
        forge_tail(data_dir, int(arg))
    elif what == "rewrite":
        rewrite(data_dir, int(arg))
    elif what == "rollback":
        rollback(data_dir, arg)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
