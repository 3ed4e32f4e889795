#!/usr/bin/env python3
"""An independent verifier of Mandate evidence bundles, written from docs/AUDIT_FORMAT.md alone.

Only the standard library and `cryptography` (for Ed25519) are used.

Usage:
  verify.py BUNDLE [--key FINGERPRINT_OR_VKEY]... [--checkpoint NOTE_FILE]...
      prints a JSON report; exit 0 when it verifies, 10 when it does not, 2 on usage errors.
  verify.py --vectors EXPECTED_JSON
      recomputes every value of the test vectors; exit 0 when all match, 1 otherwise.
"""

import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FORMAT = "mandate-audit-bundle/1"
SEAL_CONTEXT = b"mandate-audit-bundle/1\n"


# ----- §3 canonical bytes (RFC 8785 for the values events may hold) -------------------------

def _jcs_string(s):
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\f":
            out.append("\\f")
        elif ch == "\r":
            out.append("\\r")
        elif o < 0x20:
            out.append("\\u%04x" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _utf16_key(k):
    return k.encode("utf-16-be")


def jcs(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        if abs(v) >= 2**53:
            raise ValueError("integer out of range")
        return str(v)
    if isinstance(v, float):
        raise ValueError("fractions are not allowed in events")
    if isinstance(v, str):
        return _jcs_string(v)
    if isinstance(v, list):
        return "[" + ",".join(jcs(x) for x in v) + "]"
    if isinstance(v, dict):
        keys = sorted(v.keys(), key=_utf16_key)
        return "{" + ",".join(_jcs_string(k) + ":" + jcs(v[k]) for k in keys) + "}"
    raise ValueError("unexpected JSON value")


def canonical(event):
    return jcs(event).encode("utf-8")


# ----- §4 hashes --------------------------------------------------------------------------

def sha256(b):
    return hashlib.sha256(b).digest()


def leaf_hash(data):
    return sha256(b"\x00" + data)


def node_hash(l, r):
    return sha256(b"\x01" + l + r)


def mth(leaves):
    n = len(leaves)
    if n == 0:
        return sha256(b"")
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


class Frontier:
    """Incremental root: stack of perfect-subtree roots."""

    def __init__(self):
        self.size = 0
        self.stack = []

    def push(self, leaf):
        h = leaf
        s = self.size
        while s & 1:
            h = node_hash(self.stack.pop(), h)
            s >>= 1
        self.stack.append(h)
        self.size += 1

    def root(self):
        if not self.stack:
            return sha256(b"")
        acc = self.stack[-1]
        for left in reversed(self.stack[:-1]):
            acc = node_hash(left, acc)
        return acc


def verify_inclusion(index, size, leaf, proof, root):
    # RFC 9162 §2.1.3.2
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first, second, first_root, second_root, proof):
    # RFC 9162 §2.1.4.2
    if first > second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    if not path:
        return False
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0


# ----- §5 keys and checkpoints ------------------------------------------------------------

def key_id(name, pub):
    return sha256(name.encode() + b"\n" + b"\x01" + pub)[:4]


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def fingerprint(pub):
    jwk = '{"crv":"Ed25519","kty":"OKP","x":"%s"}' % b64url(pub)
    return "SHA256:" + b64url(sha256(jwk.encode()))[:16]


class Key:
    def __init__(self, name, pub):
        self.name, self.pub = name, pub
        self.id = key_id(name, pub)
        self.fingerprint = fingerprint(pub)

    def verify(self, sig, msg):
        try:
            Ed25519PublicKey.from_public_bytes(self.pub).verify(sig, msg)
            return True
        except InvalidSignature:
            return False


def parse_vkey(s):
    name, hid, b64 = s.strip().split("+", 2)
    raw = base64.b64decode(b64)
    if len(raw) != 33 or raw[0] != 1:
        raise ValueError("not an Ed25519 verifier key")
    k = Key(name, raw[1:])
    if k.id.hex() != hid.lower():
        raise ValueError("key id does not match the key")
    return k


class Note:
    def __init__(self, text):
        i = text.rfind("\n\n")
        if i < 0:
            raise ValueError("no blank line before the signatures")
        self.text = text
        self.body = text[: i + 1]
        lines = self.body[:-1].split("\n")
        if len(lines) < 3:
            raise ValueError("fewer than three lines")
        self.origin = lines[0]
        if not lines[1].isdigit() or (lines[1].startswith("0") and lines[1] != "0"):
            raise ValueError("bad size")
        self.size = int(lines[1])
        self.root = base64.b64decode(lines[2], validate=True)
        self.head = None
        self.time = None
        for ext in lines[3:]:
            if ext.startswith("chain-head "):
                self.head = base64.b64decode(ext[len("chain-head "):], validate=True)
            elif ext.startswith("time "):
                self.time = ext[len("time "):]
        if len(self.root) != 32 or self.head is None or len(self.head) != 32:
            raise ValueError("missing or bad root / chain-head")
        self.sigs = []
        for line in text[i + 2:].rstrip("\n").split("\n"):
            if not line.startswith("\u2014 "):
                raise ValueError("signature line without em dash")
            name, b64 = line[2:].rsplit(" ", 1)
            raw = base64.b64decode(b64)
            if len(raw) == 68:
                self.sigs.append((name, raw[:4], raw[4:]))

    def check(self, trusted):
        """'ok', 'forged' or 'unknown-key'."""
        for name, kid, sig in self.sigs:
            for k in trusted:
                if k.name == name and k.id == kid:
                    return "ok" if k.verify(sig, self.body.encode()) else "forged"
        return "unknown-key"


# ----- §6–7 bundles ---------------------------------------------------------------------

class Report:
    def __init__(self):
        self.problems = []
        self.events = 0
        self.log_size = 0
        self.root = ""
        self.checkpoints_verified = 0

    def add(self, kind, seq, message):
        self.problems.append({"kind": kind, "seq": seq, "message": message})


def verify_bundle(data, pinned=(), seen=()):
    rep = Report()
    lines = data.split(b"\n")
    header, notes, cons, events, end, end_offset = None, [], {}, [], None, len(data)
    offset = 0
    for idx, raw in enumerate(lines):
        start = offset
        offset += len(raw) + 1
        if not raw:
            continue
        complete = offset <= len(data)
        try:
            rec = json.loads(raw.decode("utf-8"))
        except Exception:
            if header is None:
                rep.add("malformed", None, "not a bundle: the first line is not a header")
                return rep
            rep.add("truncated" if not complete else "malformed", None,
                    "line %d is not valid JSON" % (idx + 1))
            continue
        t = rec.get("type")
        if header is None:
            if t != "header" or rec.get("format") != FORMAT:
                rep.add("malformed", None, "not a bundle: the first line is not a header")
                return rep
            header = rec
        elif end is not None:
            rep.add("malformed", None, "lines after the end record")
        elif t == "checkpoint":
            notes.append(rec["note"])
        elif t == "consistency":
            cons[(rec["from"], rec["to"])] = [bytes.fromhex(h) for h in rec["proof"]]
        elif t == "event":
            events.append(rec)
        elif t == "end":
            end, end_offset = rec, start
        else:
            rep.add("malformed", None, "unknown record type %r" % t)
    origin = header["origin"]
    listed = [parse_vkey(k["vkey"]) for k in header["keys"]]
    if pinned:
        trusted = []
        for p in pinned:
            if "+" in p:
                trusted.append(parse_vkey(p))
            else:
                trusted += [k for k in listed if k.fingerprint == p]
        if not trusted:
            rep.add("unknown_key", None, "none of the pinned keys signed this bundle")
    else:
        trusted = listed
    # Seal.
    if end is None:
        rep.add("truncated", None, "the bundle has no end record: it is truncated")
    else:
        digest = sha256(data[:end_offset])
        if digest.hex() != end["sha256"]:
            rep.add("broken_seal", None, "the bytes do not match the seal's SHA-256")
        else:
            keys = [k for k in trusted if k.id.hex() == end["key"]]
            if not keys:
                rep.add("unknown_key", None, "the seal is made with an untrusted key")
            elif not keys[0].verify(base64.b64decode(end["signature"]), SEAL_CONTEXT + digest):
                rep.add("broken_seal", None, "the seal's signature does not verify")
        if end["events"] != len(events):
            rep.add("deleted" if end["events"] > len(events) else "inserted", None,
                    "the end record counts %d events, the bundle has %d" % (end["events"], len(events)))
    # Checkpoints.
    anchors = []
    for text, outside in [(n, False) for n in notes] + [(s, True) for s in seen]:
        try:
            note = Note(text)
        except Exception as e:
            rep.add("malformed", None, "bad checkpoint: %s" % e)
            continue
        if note.origin != origin:
            rep.add("unknown_key", note.size, "checkpoint of another log")
            continue
        status = note.check(trusted)
        if status == "forged":
            rep.add("forged_checkpoint", note.size, "checkpoint of %d: bad signature" % note.size)
        elif status == "unknown-key":
            rep.add("unknown_key", note.size, "checkpoint of %d: signed by another key" % note.size)
        else:
            anchors.append((note, outside))
    own = [n for n, o in anchors if not o]
    if not own:
        rep.add("malformed", None, "no checkpoint signed by a trusted key")
        return rep
    newest = max(own, key=lambda n: n.size)
    N = newest.size
    if end is not None and end["checkpoint"] != N:
        rep.add("malformed", None, "the end record names another checkpoint")
    if header["scope"]["kind"] == "full":
        _verify_full(rep, events, anchors)
    else:
        _verify_excerpt(rep, header["scope"], events, anchors, newest, cons)
    return rep


def _verify_full(rep, events, anchors):
    present = {e["event"]["seq"] for e in events}
    by_size = sorted(anchors, key=lambda a: a[0].size)
    prev = bytes(32)
    expected = 1
    fr = Frontier()
    first_problem = None
    misplaced = set()
    after_anomaly = False
    last_match = 0
    ai = 0

    def flag(kind, seq, msg):
        nonlocal first_problem
        if first_problem is None:
            first_problem = seq
        rep.add(kind, seq, msg)

    def check_anchors():
        nonlocal ai, last_match, first_problem
        while ai < len(by_size) and by_size[ai][0].size <= fr.size:
            note, outside = by_size[ai]
            ai += 1
            if note.size < fr.size:
                continue
            head = prev if note.size > 0 else bytes(32)
            if fr.root() == note.root and head == note.head:
                if first_problem is None:
                    rep.checkpoints_verified += 1
                    last_match = note.size
            elif first_problem is None or first_problem > note.size:
                flag("rolled_back" if outside else "rewritten", last_match + 1,
                     "events up to #%d do not match the checkpoint of %d" % (note.size, note.size))

    for rec in events:
        ev = rec["event"]
        seq = ev["seq"]
        check_anchors()
        body = canonical(ev)
        stored = bytes.fromhex(rec.get("hash", "00" * 32))
        explained = after_anomaly
        after_anomaly = False
        if seq < expected:
            if seq not in misplaced:
                if seq + 1 == expected:
                    flag("inserted", seq, "event #%d appears twice" % seq)
                else:
                    flag("reordered", seq, "event #%d comes after #%d" % (seq, expected - 1))
            prev = stored
            fr.push(leaf_hash(body))
            after_anomaly = True
            continue
        if seq > expected:
            missing = [s for s in range(expected, seq) if s not in present]
            moved = [s for s in range(expected, seq) if s in present]
            if missing:
                flag("deleted", missing[0], "events #%d to #%d are missing" % (missing[0], missing[-1]))
            if moved:
                flag("reordered", moved[0], "event #%d comes after #%d" % (moved[0], seq))
                misplaced.update(moved)
            explained = True
        if sha256(prev + leaf_hash(body)) != stored and not explained:
            flag("edited", seq, "event #%d does not match its hash" % seq)
        prev = stored
        fr.push(leaf_hash(body))
        expected = seq + 1
        check_anchors()
    check_anchors()
    n = fr.size
    for note, outside in by_size[ai:]:
        if note.size > n:
            rep.add("rolled_back" if outside else "truncated", n + 1,
                    "the bundle ends at #%d but a checkpoint covers %d" % (n, note.size))
            break
    rep.events = rep.log_size = n
    rep.root = fr.root().hex()


def _verify_excerpt(rep, scope, events, anchors, newest, cons):
    N = newest.size
    rep.log_size = N
    rep.root = newest.root.hex()
    rep.checkpoints_verified = 1
    for note, outside in anchors:
        if note.text == newest.text:
            continue
        if note.size > N:
            rep.add("rolled_back", note.size, "a checkpoint of %d is newer than the excerpt's log" % note.size)
            continue
        proof = cons.get((note.size, N))
        if proof is None:
            rep.add("proof_mismatch", note.size, "no consistency proof from %d to %d" % (note.size, N))
        elif verify_consistency(note.size, N, note.root, newest.root, proof):
            rep.checkpoints_verified += 1
        else:
            rep.add("rolled_back" if outside else "rewritten", note.size,
                    "checkpoint of %d is not consistent with %d" % (note.size, N))
    last = 0
    for rec in events:
        ev = rec["event"]
        seq = ev["seq"]
        if seq <= last:
            rep.add("inserted" if seq == last else "reordered", seq, "event #%d out of order" % seq)
        last = seq
        if not 1 <= seq <= N:
            rep.add("inserted", seq, "event #%d is outside the log" % seq)
            continue
        proof = [bytes.fromhex(h) for h in rec.get("proof", [])]
        if not verify_inclusion(seq - 1, N, leaf_hash(canonical(ev)), proof, newest.root):
            rep.add("edited", seq, "event #%d does not match its inclusion proof" % seq)
        if scope.get("agent") is not None and ev.get("agent") != scope["agent"]:
            rep.add("inserted", seq, "event #%d is not about the excerpt's agent" % seq)
        if scope.get("since") is not None and ev["time"] < scope["since"]:
            rep.add("inserted", seq, "event #%d is before the excerpt's window" % seq)
        if scope.get("until") is not None and ev["time"] >= scope["until"]:
            rep.add("inserted", seq, "event #%d is after the excerpt's window" % seq)
    rep.events = len(events)


# ----- test vectors ---------------------------------------------------------------------

def check_vectors(path):
    exp = json.load(open(path, encoding="utf-8"))
    import os
    base = os.path.dirname(path)
    bad = []

    def eq(what, got, want):
        if got != want:
            bad.append("%s: got %s, expected %s" % (what, got, want))

    bundle_lines = [json.loads(l) for l in open(os.path.join(base, "bundle.jsonl"), encoding="utf-8")]
    events = [r["event"] for r in bundle_lines if r["type"] == "event"]
    prev = bytes(32)
    leaves = []
    for ev, e in zip(events, exp["events"]):
        c = canonical(ev)
        eq("canonical #%d" % ev["seq"], c.decode(), e["canonical"])
        eq("leaf #%d" % ev["seq"], leaf_hash(c).hex(), e["leaf_hash"])
        prev = sha256(prev + leaf_hash(c))
        eq("chain #%d" % ev["seq"], prev.hex(), e["chain_hash"])
        leaves.append(leaf_hash(c))
    eq("empty root", mth([]).hex(), exp["empty_root"])
    for r in exp["roots"]:
        eq("root %d" % r["size"], mth(leaves[: r["size"]]).hex(), r["root"])
    root5 = mth(leaves)
    for p in exp["inclusion_proofs"]:
        proof = [bytes.fromhex(h) for h in p["proof"]]
        eq("inclusion %d" % p["index"], verify_inclusion(p["index"], p["size"], leaves[p["index"]], proof, root5), True)
    for p in exp["consistency_proofs"]:
        proof = [bytes.fromhex(h) for h in p["proof"]]
        ok = verify_consistency(p["from"], p["to"], mth(leaves[: p["from"]]), mth(leaves[: p["to"]]), proof)
        eq("consistency %d->%d" % (p["from"], p["to"]), ok, True)
    pub = bytes.fromhex(exp["key"]["public_key_hex"])
    k = Key(exp["origin"], pub)
    eq("key id", k.id.hex(), exp["key"]["key_id_hex"])
    eq("vkey", parse_vkey(exp["key"]["vkey"]).pub, pub)
    for c in exp["checkpoints"]:
        note = Note(c["note"])
        eq("checkpoint %d body" % c["size"], note.body, c["signed_body"])
        eq("checkpoint %d root" % c["size"], note.root, mth(leaves[: c["size"]]))
        eq("checkpoint %d signature" % c["size"], note.check([k]), "ok")
        eq("checkpoint %d signature bytes" % c["size"],
           k.verify(base64.b64decode(c["signature_over_body_b64"]), c["signed_body"].encode()), True)
    for name in ("bundle.jsonl", "excerpt.jsonl"):
        r = verify_bundle(open(os.path.join(base, name), "rb").read())
        eq(name, r.problems, [])
    for b in bad:
        print(b)
    print("vectors: %s" % ("ok" if not bad else "%d mismatches" % len(bad)))
    return 0 if not bad else 1


def main(argv):
    if len(argv) >= 2 and argv[0] == "--vectors":
        return check_vectors(argv[1])
    pinned, seen, files = [], [], []
    it = iter(argv)
    for a in it:
        if a == "--key":
            pinned.append(next(it, ""))
        elif a == "--checkpoint":
            seen.append(open(next(it, ""), encoding="utf-8").read())
        elif a.startswith("-"):
            print(__doc__, file=sys.stderr)
            return 2
        else:
            files.append(a)
    if len(files) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        data = open(files[0], "rb").read()
    except OSError as e:
        print("cannot read %s: %s" % (files[0], e), file=sys.stderr)
        return 2
    rep = verify_bundle(data, pinned, seen)
    print(json.dumps({
        "ok": not rep.problems,
        "events": rep.events,
        "log_size": rep.log_size,
        "root": rep.root,
        "checkpoints_verified": rep.checkpoints_verified,
        "problems": rep.problems,
    }, indent=2))
    return 0 if not rep.problems else 10


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
