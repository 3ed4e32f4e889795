#!/usr/bin/env python3
"""An independent verifier of Mandate evidence bundles, written from docs/AUDIT_FORMAT.md alone.

Only the standard library, `cryptography` (for Ed25519) and, for PDF reports, `pypdf` are used
(`setup.sh` installs both from requirements.txt). A PDF report is verified through its attached
bundle, found as §6 says: pypdf parses the PDF (its last revision) and decodes the stream; the
lookup rules (name-tree key bytes, /F or /UF, exactly one entry, /Params /Size) are followed here.
Its pages are then checked against the signed page digests it attaches (mandate-pages.json, §6
"Pages"): an edited page, or edited digests, fail as `edited`; a report from before page
digests passes its evidence only, and says so (`evidence_only`).

Usage:
  verify.py BUNDLE_OR_PDF [--key FINGERPRINT_OR_VKEY]... [--checkpoint NOTE_FILE]...
      prints a JSON report; exit 0 when it verifies, 10 when it does not, 2 on usage errors.
  verify.py --vectors EXPECTED_JSON
      recomputes every value of the test vectors and verifies every case, expecting exactly
      the problems expected.json states; exit 0 when all match, 1 otherwise.
"""

import base64
import hashlib
import json
import os
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


def es6_number(x):
    """A number as ECMAScript's Number.prototype.toString writes it (RFC 8785 §3.2.2.3).
    Events never hold such numbers (§2: a verifier reports them), but their hash is still
    computed, as any RFC 8785 implementation would."""
    if x != x or x in (float("inf"), float("-inf")):
        raise ValueError("not a finite number")
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    t = repr(abs(x))  # the shortest digits that read back as the same double
    mant, _, exp = t.partition("e")
    intpart, _, frac = mant.partition(".")
    digits = (intpart + frac).lstrip("0")
    n = len(intpart.lstrip("0")) if intpart.strip("0") else -(len(frac) - len(frac.lstrip("0")))
    n += int(exp or 0)
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        out = digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + ("+" if e >= 0 else "-") + str(abs(e))
    return sign + out


def jcs(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v) if abs(v) < 2**53 else es6_number(float(v))
    if isinstance(v, float):
        return es6_number(v)
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
    raw = base64.b64decode(b64, validate=True)
    if len(raw) != 33 or raw[0] != 1:
        raise ValueError("not an Ed25519 verifier key")
    k = Key(name, raw[1:])
    if k.id.hex() != hid.lower():
        raise ValueError("key id does not match the key")
    return k


def thumbprint(pub):
    jwk = '{"crv":"Ed25519","kty":"OKP","x":"%s"}' % b64url(pub)
    return b64url(sha256(jwk.encode()))


def _is_event_time(t):
    # YYYY-MM-DDTHH:MM:SS.ffffffZ
    if len(t) != 27:
        return False
    for i, c in enumerate(t):
        want = {4: "-", 7: "-", 10: "T", 13: ":", 16: ":", 19: ".", 26: "Z"}.get(i)
        if want is not None:
            if c != want:
                return False
        elif c not in "0123456789":
            return False
    return True


def _b64_hash(s):
    raw = base64.b64decode(s, validate=True)
    if len(raw) != 32:
        raise ValueError("not 32 bytes")
    return raw


EMPTY_ROOT = sha256(b"")


class Note:
    """A checkpoint (§5): a C2SP signed note with our two extension lines."""

    def __init__(self, text):
        i = text.rfind("\n\n")
        if i < 0:
            raise ValueError("no blank line before the signatures")
        self.text = text
        self.body = text[: i + 1]
        if not self.body.endswith("\n"):
            raise ValueError("the text does not end with a newline")
        lines = self.body[:-1].split("\n")
        if len(lines) < 3:
            raise ValueError("fewer than three lines")
        self.origin, size, root = lines[0], lines[1], lines[2]
        if not self.origin:
            raise ValueError("the origin line is empty")
        if not size or not all(c in "0123456789" for c in size) or (size.startswith("0") and size != "0"):
            raise ValueError("bad size")
        self.size = int(size)
        if self.size >= 2**64:
            raise ValueError("size out of range")
        self.root = _b64_hash(root)
        rest = lines[3:]
        if len(rest) < 2:
            raise ValueError("the chain-head and time lines are missing")
        if not rest[0].startswith("chain-head "):
            raise ValueError("line 4 is not the chain-head line")
        self.head = _b64_hash(rest[0][len("chain-head "):])
        if not rest[1].startswith("time "):
            raise ValueError("line 5 is not the time line")
        self.time = rest[1][len("time "):]
        if not _is_event_time(self.time):
            raise ValueError("bad time")
        if any(not l for l in rest[2:]):
            raise ValueError("an extension line is empty")
        if self.size == 0 and (self.root != EMPTY_ROOT or self.head != bytes(32)):
            raise ValueError("an empty log's checkpoint with another root or chain head")
        sigs = text[i + 2:]
        if not sigs.endswith("\n"):
            raise ValueError("the last signature line does not end with a newline")
        self.sigs = []
        for line in sigs[:-1].split("\n"):
            if not line.startswith("\u2014 "):
                raise ValueError("signature line without em dash")
            rest_ = line[2:]
            if " " not in rest_:
                raise ValueError("a signature line has no signature")
            name, b64 = rest_.rsplit(" ", 1)
            raw = base64.b64decode(b64, validate=True)
            if len(raw) == 68:
                self.sigs.append((name, raw[:4], raw[4:]))
        if not self.sigs:
            raise ValueError("no Ed25519 signature")

    def check(self, trusted):
        """'ok', 'forged' or 'unknown-key'."""
        for name, kid, sig in self.sigs:
            for k in trusted:
                if k.name == name and k.id == kid:
                    return "ok" if k.verify(sig, self.body.encode()) else "forged"
        return "unknown-key"


# ----- §6 reading a bundle's lines strictly -----------------------------------------------

MAX_INTEGER = 2**53


class _Findings:
    def __init__(self):
        self.duplicate = None
        self.number = None


def _has_surrogate(v):
    if isinstance(v, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in v)
    if isinstance(v, list):
        return any(_has_surrogate(x) for x in v)
    if isinstance(v, dict):
        return any(_has_surrogate(k) or _has_surrogate(x) for k, x in v.items())
    return False


def strict_loads(text):
    """JSON of one line as I-JSON: the first repeated member name and the first number outside
    the events' domain are noted; the last occurrence of a member wins."""
    f = _Findings()

    def pairs(items):
        d = {}
        for k, v in items:
            if k in d and f.duplicate is None:
                f.duplicate = k
            d[k] = v
        return d

    def note(s):
        if f.number is None:
            f.number = s

    def pint(s):
        n = int(s)
        if s == "-0" or abs(n) >= MAX_INTEGER:
            note(s)
        return n

    def pfloat(s):
        note(s)
        return float(s)

    def pconst(s):
        raise ValueError("%s is not JSON" % s)

    v = json.loads(text.decode("utf-8"), object_pairs_hook=pairs, parse_int=pint,
                   parse_float=pfloat, parse_constant=pconst)
    if _has_surrogate(v):
        raise ValueError("a lone surrogate")
    return v, f


def _u64(x):
    return isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2**64


def _opt_str(d, k):
    return d.get(k) is None or isinstance(d.get(k), str)


def _str_list(x):
    return isinstance(x, list) and all(isinstance(i, str) for i in x)


def _record(v):
    """The record's type if `v` has the shape of one (as serde reads it), else None."""
    if not isinstance(v, dict):
        return None
    t = v.get("type")
    if t == "header":
        sc = v.get("scope")
        ok = all(isinstance(v.get(k), str) for k in ("format", "origin", "generated")) \
            and isinstance(sc, dict) and sc.get("kind") in ("full", "excerpt") \
            and (sc.get("kind") == "full" or all(_opt_str(sc, k) for k in ("agent", "agent_name", "since", "until"))) \
            and isinstance(v.get("keys"), list) \
            and all(isinstance(k, dict) and all(isinstance(k.get(x), str) for x in ("vkey", "kid", "fingerprint"))
                    for k in v["keys"])
    elif t == "checkpoint":
        ok = isinstance(v.get("note"), str)
    elif t == "consistency":
        ok = _u64(v.get("from")) and _u64(v.get("to")) and _str_list(v.get("proof"))
    elif t == "event":
        ok = "event" in v and _opt_str(v, "hash") and (v.get("proof") is None or _str_list(v.get("proof")))
    elif t == "end":
        ok = _u64(v.get("events")) and _u64(v.get("checkpoint")) \
            and all(isinstance(v.get(k), str) for k in ("sha256", "key", "signature"))
    else:
        ok = False
    return t if ok else None


STAGES = {"header": 0, "checkpoint": 1, "consistency": 2, "event": 3, "end": 4}


def _event_values(ev, number):
    if number is not None:
        return "holds the number %s" % number
    v = ev.get("v")
    if not (isinstance(v, int) and not isinstance(v, bool) and v == 1):
        return "format version %r" % (v,)
    if ev.get("decision") not in ("allow", "deny"):
        return "decision %r" % (ev.get("decision"),)
    return None


def _end_exact(rec):
    return '{"type":"end","events":%d,"checkpoint":%d,"sha256":%s,"key":%s,"signature":%s}' % (
        rec["events"], rec["checkpoint"], json.dumps(rec["sha256"], ensure_ascii=False),
        json.dumps(rec["key"], ensure_ascii=False), json.dumps(rec["signature"], ensure_ascii=False))


class Parsed:
    def __init__(self):
        self.header = None
        self.notes = []
        self.cons = []
        self.events = []  # (seq, event, hash, proof)
        self.end = None
        self.end_offset = None
        self.bad = []  # (seq, why)


def parse_bundle(data):
    """Parsed, or a string saying why it is not a bundle at all."""
    p = Parsed()
    p.end_offset = len(data)
    offset = 0
    last_stage = 0
    pieces = data.split(b"\n")
    for idx, piece in enumerate(pieces):
        complete = idx < len(pieces) - 1
        if not complete and piece == b"":
            break
        start = offset
        offset += len(piece) + (1 if complete else 0)
        text = piece
        if text == b"":
            p.bad.append((None, "line %d is blank" % (idx + 1)))
            continue
        if p.end is not None:
            p.bad.append((None, "lines after the end record"))
            continue
        try:
            value, found = strict_loads(text)
        except Exception as e:
            if p.header is None:
                return "not a bundle: the first line is not a header"
            p.bad.append((None, "line %d is not valid JSON (%s)" % (idx + 1, e)))
            continue
        t = _record(value)
        if t is None:
            if p.header is None:
                return "not a bundle: the first line is not a header"
            p.bad.append((None, "line %d is not a valid record" % (idx + 1)))
            continue
        seq = None
        if t == "event" and isinstance(value["event"], dict):
            s_ = value["event"].get("seq")
            if _u64(s_):
                seq = s_
        if text.endswith(b"\r"):
            p.bad.append((seq, "line %d ends with CR" % (idx + 1)))
        if not complete:
            p.bad.append((seq, "the last line does not end with a newline"))
        if found.duplicate is not None:
            p.bad.append((seq, "line %d repeats the member %r" % (idx + 1, found.duplicate)))
        if p.header is not None:
            st = STAGES[t]
            if st < last_stage or st == 0:
                p.bad.append((seq, "line %d is out of order" % (idx + 1)))
            else:
                last_stage = st
        if p.header is None:
            if t != "header":
                return "not a bundle: the first line is not a header"
            if value["format"] != FORMAT:
                return "the bundle's format is %r; this verifier reads %r" % (value["format"], FORMAT)
            p.header = value
        elif t == "header":
            pass
        elif t == "checkpoint":
            p.notes.append(value["note"])
        elif t == "consistency":
            p.cons.append(value)
        elif t == "event":
            if seq is None or seq < 1:
                p.bad.append((None, "an event without a sequence number"))
                continue
            ev = value["event"]
            why = _event_values(ev, found.number)
            if why is not None:
                p.bad.append((seq, "event #%d: %s" % (seq, why)))
            try:
                c = canonical(ev)
            except Exception as e:
                p.bad.append((seq, "event #%d has no canonical form (%s)" % (seq, e)))
                continue
            p.events.append((seq, ev, c, value.get("hash"), value.get("proof")))
        elif t == "end":
            if _end_exact(value).encode("utf-8") != text:
                p.bad.append((None, "the end record is not in its exact form"))
            p.end, p.end_offset = value, start
    if p.header is None:
        return "the file is empty: it is not a bundle"
    return p


def _hex_hash(h):
    if not isinstance(h, str) or len(h) != 64:
        return None
    try:
        return bytes.fromhex(h)
    except ValueError:
        return None


# ----- §7 verifying a bundle ----------------------------------------------------------------

class Report:
    def __init__(self):
        self.problems = []
        self.events = 0
        self.log_size = 0
        self.root = ""
        self.checkpoints_verified = 0
        self.origin = ""
        self.trusted = []
        self.notes = []

    def add(self, kind, seq, message):
        self.problems.append({"kind": kind, "seq": seq, "message": message})


def _pinned(rep, pins, listed, origin):
    out = []
    for p in pins:
        try:
            k = parse_vkey(p)
        except Exception:
            k = None
        if k is not None:
            if k.name == origin:
                out.append(k)
            else:
                rep.add("unknown_key", None, "the pinned key is named %r, not after the origin" % k.name)
            continue
        found = [k for k in listed if k.fingerprint == p or thumbprint(k.pub) == p]
        if found:
            out.append(found[0])
        else:
            rep.add("unknown_key", None, "the pinned key %s did not sign this bundle" % p)
    return out


def verify_bundle(data, pinned=(), seen=()):
    rep = Report()
    p = parse_bundle(data)
    if isinstance(p, str):
        rep.add("malformed", None, p)
        return rep
    header = p.header
    origin = header["origin"]
    rep.origin = origin
    # Keys (§6): named after the origin, kid and fingerprint their own.
    listed = []
    for k in header["keys"]:
        try:
            nk = parse_vkey(k["vkey"])
        except Exception as e:
            rep.add("malformed", None, "bad verifier key: %s" % e)
            continue
        if nk.name != origin:
            rep.add("malformed", None, "a key named %r for the log %r" % (nk.name, origin))
            continue
        if thumbprint(nk.pub) != k["kid"] or nk.fingerprint != k["fingerprint"]:
            rep.add("malformed", None, "the header's kid or fingerprint is not its key's")
        listed.append(nk)
    trusted = _pinned(rep, pinned, listed, origin) if pinned else listed
    rep.trusted = trusted
    # Seal (§7.2): the key id is computed with the origin as the key's name.
    if p.end is None:
        rep.add("truncated", None, "the bundle has no end record: it is truncated")
    else:
        end = p.end
        digest = sha256(data[:p.end_offset])
        if digest.hex() != end["sha256"]:
            rep.add("broken_seal", None, "the bytes do not match the seal's SHA-256")
        else:
            keys = [k for k in trusted if key_id(origin, k.pub).hex() == end["key"]]
            if not keys:
                rep.add("unknown_key", None, "the seal is made with an untrusted key")
            else:
                try:
                    sig = base64.b64decode(end["signature"], validate=True)
                except Exception:
                    sig = b""
                if len(sig) != 64 or not keys[0].verify(sig, SEAL_CONTEXT + digest):
                    rep.add("broken_seal", None, "the seal's signature does not verify")
        if end["events"] != len(p.events):
            rep.add("deleted" if end["events"] > len(p.events) else "inserted", None,
                    "the end record counts %d events, the bundle has %d" % (end["events"], len(p.events)))
    for seq, why in p.bad:
        rep.add("malformed", seq, why)
    # Checkpoint lines in strictly ascending order of size.
    previous = None
    for text in p.notes:
        try:
            size = Note(text).size
        except Exception:
            continue
        if previous is not None and size <= previous:
            rep.add("malformed", size, "the checkpoint of %d comes after the checkpoint of %d" % (size, previous))
        previous = size if previous is None else max(previous, size)
    # Consistency lines: excerpts only, one per pair.
    pairs = set()
    for c in p.cons:
        if header["scope"]["kind"] == "full":
            rep.add("malformed", None, "a whole-log bundle holds a consistency line")
            break
        if (c["from"], c["to"]) in pairs:
            rep.add("malformed", None, "two consistency lines from %d to %d" % (c["from"], c["to"]))
        pairs.add((c["from"], c["to"]))
    # Checkpoints (§7.3).
    notes = []
    for text in p.notes:
        notes.append((text, False))
    for text in seen:
        notes.append((text, True))
    anchors = []
    for text, outside in notes:
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
        elif not any(a[0].text == note.text for a in anchors):
            anchors.append((note, outside))
    anchors.sort(key=lambda a: a[0].size)
    own = [n for n, o in anchors if not o]
    if not own:
        rep.add("malformed", None, "no checkpoint signed by a trusted key")
        return rep
    newest = own[-1]
    if p.end is not None and p.end["checkpoint"] != newest.size:
        rep.add("malformed", None, "the end record names another checkpoint")
    if header["scope"]["kind"] == "full":
        _verify_full(rep, p.events, anchors, newest.size)
    else:
        _verify_excerpt(rep, header["scope"], p.events, anchors, newest, p.cons)
    return rep


class _Walk:
    """§7.4: a contiguous log walked in file order (the reference for the prose)."""

    def __init__(self, rep, anchors, present):
        self.rep = rep
        self.expected = 1
        self.prev = bytes(32)
        self.fr = Frontier()
        self.anchors = anchors
        self.next_anchor = 0
        self.first_problem = None
        self.last_match = 0
        self.last_pos = 0
        self.present = present
        self.misplaced = set()
        self.after_anomaly = False

    def flag(self, kind, seq, msg):
        if self.first_problem is None:
            self.first_problem = seq
        self.rep.add(kind, seq, msg)

    def event(self, pos, body, stored):
        self.check_anchors()
        self.last_pos = max(self.last_pos, pos)
        explained = self.after_anomaly
        self.after_anomaly = False
        if pos < self.expected:
            if pos not in self.misplaced:
                if pos + 1 == self.expected:
                    self.flag("inserted", pos, "event #%d appears twice" % pos)
                else:
                    self.flag("reordered", pos, "event #%d comes after #%d" % (pos, self.expected - 1))
            self.prev = stored
            self.fr.push(leaf_hash(body))
            self.after_anomaly = True
            return
        if pos > self.expected:
            missing = [s for s in range(self.expected, pos) if s not in self.present]
            moved = [s for s in range(self.expected, pos) if s in self.present]
            if missing:
                self.flag("deleted", missing[0], "events #%d to #%d are missing" % (missing[0], missing[-1]))
            if moved:
                self.flag("reordered", moved[0], "event #%d comes after #%d" % (moved[0], pos))
                self.misplaced.update(moved)
            explained = True
            self.expected = pos
        leaf = leaf_hash(body)
        if sha256(self.prev + leaf) != stored and not explained:
            self.flag("edited", pos, "event #%d does not match its hash" % pos)
        self.prev = stored
        self.fr.push(leaf)
        self.expected = pos + 1
        self.check_anchors()

    def check_anchors(self):
        while self.next_anchor < len(self.anchors):
            note, outside = self.anchors[self.next_anchor]
            size = note.size
            if size > max(self.fr.size, self.last_pos):
                break
            self.next_anchor += 1
            if size != self.fr.size or size < self.last_pos:
                if self.first_problem is None or self.first_problem > size:
                    if self.first_problem is None:
                        self.first_problem = size
                    self.rep.add("rewritten", size, "the events do not line up with the checkpoint of %d" % size)
                continue
            head = bytes(32) if size == 0 else self.prev
            if self.fr.root() == note.root and head == note.head:
                if self.first_problem is None:
                    self.rep.checkpoints_verified += 1
                    self.last_match = max(self.last_match, size)
                continue
            if self.first_problem is not None and self.first_problem <= size:
                continue
            frm = self.last_match + 1
            if self.first_problem is None:
                self.first_problem = frm
            self.rep.add("rolled_back" if outside else "rewritten", frm,
                         "the first %d events do not match the checkpoint of %d" % (size, size))

    def finish(self):
        self.check_anchors()
        n = max(self.last_pos, self.fr.size)
        for note, outside in reversed(self.anchors[self.next_anchor:]):
            if note.size <= n:
                continue
            self.rep.add("rolled_back" if outside else "truncated", n + 1,
                         "the log ends at #%d but a checkpoint covers %d" % (n, note.size))
            break
        self.rep.events = self.fr.size
        self.rep.log_size = n
        self.rep.root = self.fr.root().hex()


def _verify_full(rep, events, anchors, newest):
    beyond = [seq for seq, _, _, _, _ in events if seq > newest]
    if beyond:
        rep.add("inserted", min(beyond), "events after the newest checkpoint (%d)" % newest)
    w = _Walk(rep, anchors, {seq for seq, _, _, _, _ in events})
    for seq, ev, body, h, _ in events:
        stored = _hex_hash(h) if h is not None else None
        if h is None:
            w.flag("malformed", seq, "event #%d has no hash" % seq)
        w.event(seq, body, stored if stored is not None else b"\xff" * 32)
    w.finish()


def _in_scope(scope, ev):
    t = ev.get("time")
    t = t if isinstance(t, str) else ""
    if scope.get("agent") is not None and ev.get("agent") != scope["agent"]:
        return False
    if scope.get("since") is not None and t < scope["since"]:
        return False
    if scope.get("until") is not None and t >= scope["until"]:
        return False
    return True


def _verify_excerpt(rep, scope, events, anchors, newest, cons):
    N = newest.size
    rep.log_size = N
    rep.root = newest.root.hex()
    proofs = {}
    for c in cons:
        proofs[(c["from"], c["to"])] = c["proof"]
    verified = 1
    for note, outside in anchors:
        m = note.size
        if note.text == newest.text:
            continue
        if m == 0 or (m == N and note.root == newest.root):
            verified += 1
            continue
        if m == N:
            rep.add("rolled_back" if outside else "rewritten", m, "same size, another root")
            continue
        if m > N:
            rep.add("rolled_back", m, "a checkpoint of %d is newer than the excerpt's log" % m)
            continue
        proof = proofs.get((m, N))
        if proof is None:
            rep.add("proof_mismatch", m, "no consistency proof from %d to %d" % (m, N))
            continue
        path = [_hex_hash(h) for h in proof]
        if any(h is None for h in path):
            rep.add("malformed", m, "a consistency proof is not hex hashes")
            continue
        if verify_consistency(m, N, note.root, newest.root, path):
            verified += 1
        else:
            rep.add("rolled_back" if outside else "rewritten", m,
                    "checkpoint of %d is not consistent with %d" % (m, N))
    rep.checkpoints_verified = verified
    last = None
    for seq, ev, body, _, proof in events:
        if last is not None and seq <= last:
            rep.add("inserted" if seq == last else "reordered", seq, "event #%d out of order" % seq)
        last = seq
        if not 1 <= seq <= N:
            rep.add("inserted", seq, "event #%d is outside the log" % seq)
            continue
        path = [_hex_hash(h) for h in proof] if proof is not None else None
        if path is None or any(h is None for h in path):
            rep.add("malformed", seq, "event #%d has no inclusion proof" % seq)
            continue
        if not verify_inclusion(seq - 1, N, leaf_hash(body), path, newest.root):
            rep.add("edited", seq, "event #%d does not match its inclusion proof" % seq)
        if not _in_scope(scope, ev):
            rep.add("inserted", seq, "event #%d is outside the excerpt's selection" % seq)
    rep.events = len(events)


# ----- §6 the bundle attached to a PDF report ---------------------------------------------

ATTACHMENT_NAME = b"mandate-evidence.jsonl"


class NoBundle(Exception):
    """The PDF has no attached bundle that a verifier can read (§6)."""


class NoAttachment(NoBundle):
    """The PDF has no attachment of that name at all."""


PAGES_NAME = b"mandate-pages.json"
PAGES_FORMAT = "mandate-report-pages/1"
PAGES_UNBOUND = ("pages unbound: this report was made before Mandate signed its pages (it attaches "
                 "no mandate-pages.json), so what its pages say may have been edited")


def _pypdf():
    try:
        import pypdf
        import pypdf.errors
        import pypdf.generic
    except ImportError:
        sys.exit("verify.py: reading a PDF needs pypdf (tests/audit_verifier_py/setup.sh installs it)")
    return pypdf


def _resolve(o):
    from pypdf.generic import IndirectObject
    return o.get_object() if isinstance(o, IndirectObject) else o


def pdf_reader(data):
    """The PDF as its last incremental update leaves it (§6); NoBundle when it is not one."""
    import io
    pypdf = _pypdf()
    try:
        # pypdf reads the cross-reference sections from the end of the file, so an object
        # redefined by an incremental update is read as the last revision defines it.
        return pypdf.PdfReader(io.BytesIO(data), strict=False)
    except (pypdf.errors.PdfReadError, KeyError, ValueError, TypeError, AttributeError) as e:
        raise NoBundle("this is not a readable PDF: %s" % e)


def pdf_attachment(data, name=ATTACHMENT_NAME, reader=None):
    """The bytes of the file attached to a PDF report under `name`, found as §6 says (the
    evidence bundle by default); NoBundle otherwise."""
    pypdf = _pypdf()
    from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, StreamObject
    resolve = _resolve

    def key_bytes(o):
        # The key's bytes as written, not text decoded from them: pypdf decodes UTF-16 strings.
        return getattr(o, "original_bytes", None)

    try:
        reader = reader if reader is not None else pdf_reader(data)
        names = resolve(reader.trailer["/Root"]).get("/Names")
        tree = resolve(resolve(names).get("/EmbeddedFiles")) if names is not None else None
        found, stack, seen_nodes = [], [tree] if tree is not None else [], 0
        while stack:
            node = resolve(stack.pop())
            seen_nodes += 1
            if seen_nodes > 100000:
                raise NoBundle("its name tree does not end")
            if not isinstance(node, DictionaryObject):
                continue
            kids = resolve(node.get("/Kids"))
            if isinstance(kids, ArrayObject):
                stack.extend(kids)
            arr = resolve(node.get("/Names"))
            if isinstance(arr, ArrayObject):
                for i in range(0, len(arr) - 1, 2):
                    if key_bytes(resolve(arr[i])) == name:
                        found.append(arr[i + 1])
        if not found:
            raise NoAttachment("the PDF has no attached %s (%s)" % (
                "evidence bundle" if name == ATTACHMENT_NAME else "file", name.decode()))
        if len(found) > 1:
            raise NoBundle("it has %d attachments named %s, and a report has one" % (len(found), name.decode()))
        spec = resolve(found[0])
        ef = resolve(spec.get("/EF")) if isinstance(spec, DictionaryObject) else None
        if not isinstance(ef, DictionaryObject):
            raise NoBundle("the attachment's file specification has no /EF")
        f, uf = ef.get("/F"), ef.get("/UF")

        def ident(o):
            return ("ref", o.idnum, o.generation) if isinstance(o, IndirectObject) else ("direct", id(o))

        if f is not None and uf is not None and ident(f) != ident(uf):
            raise NoBundle("its /EF names two different file streams (/F and /UF)")
        stream = resolve(f if f is not None else uf)
        if not isinstance(stream, StreamObject):
            raise NoBundle("the attachment is not a stream")
        body = stream.get_data()  # decoded with its /Filter
        params = resolve(stream.get("/Params"))
        size = resolve(params.get("/Size")) if isinstance(params, DictionaryObject) else None
        if size is not None and int(size) != len(body):
            raise NoBundle("it is %d bytes long but the PDF says %d" % (len(body), int(size)))
        return bytes(body)
    except NoBundle:
        raise
    except (pypdf.errors.PdfReadError, KeyError, ValueError, TypeError, AttributeError) as e:
        raise NoBundle("this is not a readable PDF: %s" % e)


def page_digests(reader):
    """§6: the SHA-256 of each page's content, in page-tree order: its content streams, each
    decoded with its filters and followed by a newline, concatenated."""
    from pypdf.generic import ArrayObject, StreamObject
    out = []
    for page in reader.pages:
        contents = _resolve(page.get("/Contents"))
        streams = list(contents) if isinstance(contents, ArrayObject) else [contents]
        content = b""
        for st in streams:
            st = _resolve(st)
            if not isinstance(st, StreamObject):
                continue
            try:
                content += st.get_data()
            except Exception:
                content += st._data  # a stream that cannot be decoded counts as written
            content += b"\n"
        out.append(sha256(content))
    return out


def check_pages(rep, reader, bundle):
    """§6 Pages: the signed page digests against the bundle and pages actually there; each
    thing wrong is an `edited` problem naming the page. A report without a manifest predates
    page digests: a note, and the verdict says the pages are unbound."""
    try:
        raw = pdf_attachment(None, PAGES_NAME, reader)
    except NoAttachment:
        rep.notes.append(PAGES_UNBOUND)
        return
    except NoBundle as e:
        rep.add("edited", None, "the report's page digests cannot be read: %s" % e)
        return
    try:
        m, found = strict_loads(raw)
        if found.duplicate is not None or not isinstance(m, dict):
            raise ValueError("not a JSON object without repeated members")
        if m.get("format") != PAGES_FORMAT:
            rep.add("edited", None, "the page digests are in the format %r" % m.get("format"))
            return
        signed = [bytes.fromhex(h) for h in m["pages"]]
        bundle_signed = bytes.fromhex(m["bundle_sha256"])
        if len(bundle_signed) != 32 or any(len(h) != 32 for h in signed):
            raise ValueError("a digest is not 32 bytes")
        key_hex, sig = m["key"], base64.b64decode(m["signature"], validate=True)
    except (ValueError, KeyError, TypeError) as e:
        rep.add("edited", None, "the report's page digests cannot be read (%s)" % e)
        return
    keys = [k for k in rep.trusted if key_id(rep.origin, k.pub).hex() == key_hex]
    if not keys:
        rep.add("edited", None, "the page digests are signed with key id %s, not a trusted key" % key_hex)
        return
    msg = (PAGES_FORMAT.encode() + b"\n" + bundle_signed + len(signed).to_bytes(4, "big")
           + b"".join(signed))
    if len(sig) != 64 or not keys[0].verify(sig, msg):
        rep.add("edited", None, "the report's page digests have a signature that does not verify: "
                "they were altered or forged")
        return
    if sha256(bundle) != bundle_signed:
        rep.add("edited", None, "the pages were signed with another evidence bundle")
    now = page_digests(reader)
    for i, (a, b) in enumerate(zip(now, signed)):
        if a != b:
            rep.add("edited", None, "page %d of the report was changed" % (i + 1))
    if len(now) < len(signed):
        rep.add("edited", None, "pages %d to %d of the report were removed" % (len(now) + 1, len(signed)))
    elif len(now) > len(signed):
        rep.add("edited", None, "pages %d to %d of the report were added" % (len(signed) + 1, len(now)))


def verify_file(data, pinned=(), seen=()):
    """A bundle, or a PDF report through its attachment (one `malformed` problem without it)
    and its pages against their signed digests (§6)."""
    if not data.startswith(b"%PDF-"):
        return verify_bundle(data, pinned, seen)
    try:
        reader = pdf_reader(data)
        bundle = pdf_attachment(data, ATTACHMENT_NAME, reader)
    except NoBundle as e:
        rep = Report()
        rep.add("malformed", None, str(e))
        return rep
    rep = verify_bundle(bundle, pinned, seen)
    check_pages(rep, reader, bundle)
    return rep


# ----- test vectors ---------------------------------------------------------------------

def check_vectors(path):
    exp = json.load(open(path, encoding="utf-8"))
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
    # Every case: the problems, as (kind, seq) without repeats, that expected.json gives.
    for case in exp.get("cases", []):
        pinned, seen = _args(case["args"], base)
        r = verify_file(open(os.path.join(base, case["file"]), "rb").read(), pinned, seen)
        want = sorted({(p["kind"], p["seq"]) for p in case["problems"]}, key=_order)
        got = sorted({(p["kind"], p["seq"]) for p in r.problems}, key=_order)
        eq("case %s" % case["name"], got, want)
    for b in bad:
        print(b)
    print("vectors: %s" % ("ok" if not bad else "%d mismatches" % len(bad)))
    return 0 if not bad else 1


def _values(argv):
    """The arguments that are values of --key or --checkpoint."""
    return {argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("--key", "--checkpoint")}


def _order(p):
    return (p[0], -1 if p[1] is None else p[1])


def _args(argv, base="."):
    """(pinned keys, seen checkpoint texts) from --key and --checkpoint arguments."""
    pinned, seen = [], []
    it = iter(argv)
    for a in it:
        if a == "--key":
            pinned.append(next(it, ""))
        elif a == "--checkpoint":
            seen.append(open(os.path.join(base, next(it, "")), encoding="utf-8").read())
        else:
            raise ValueError("unknown argument %s" % a)
    return pinned, seen


def main(argv):
    if len(argv) >= 2 and argv[0] == "--vectors":
        return check_vectors(argv[1])
    files = [a for a in argv if not a.startswith("-") and a not in _values(argv)]
    try:
        pinned, seen = _args([a for a in argv if a not in files])
    except (ValueError, OSError) as e:
        print("%s\n%s" % (e, __doc__), file=sys.stderr)
        return 2
    if len(files) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        data = open(files[0], "rb").read()
    except OSError as e:
        print("cannot read %s: %s" % (files[0], e), file=sys.stderr)
        return 2
    rep = verify_file(data, pinned, seen)
    print(json.dumps({
        "ok": not rep.problems,
        # §6: a report from before page digests verifies its evidence only, and says so.
        "evidence_only": not rep.problems and PAGES_UNBOUND in rep.notes,
        "notes": rep.notes,
        "events": rep.events,
        "log_size": rep.log_size,
        "root": rep.root,
        "checkpoints_verified": rep.checkpoints_verified,
        "problems": rep.problems,
    }, indent=2))
    return 0 if not rep.problems else 10


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
