-- Schema 3: signed checkpoints of the audit log (issue 4).
-- (Since schema 3 the chain hash is SHA-256(previous hash || SHA-256(0x00 || body)); see
-- docs/AUDIT_FORMAT.md section 4. The comment in 001 predates it.)
-- A checkpoint commits to the first `size` events: their RFC 9162 Merkle root and the hash
-- chain head after event `size`. `note` is the C2SP signed note exactly as signed; the other
-- columns repeat what it says, for queries. `frontier` is the right edge of the Merkle tree
-- (one 32-byte root per set bit of `size`), so the next checkpoint hashes only newer events.
CREATE TABLE audit_checkpoints (
    size       INTEGER PRIMARY KEY CHECK (size >= 0),
    time       TEXT NOT NULL,
    root       BLOB NOT NULL CHECK (length(root) = 32),
    head       BLOB NOT NULL CHECK (length(head) = 32),
    kid        TEXT NOT NULL,
    public_key BLOB NOT NULL CHECK (length(public_key) = 32),
    note       TEXT NOT NULL,
    frontier   BLOB NOT NULL
) STRICT;

-- Where each syslog destination has got to: events after `last_seq` are still to be sent.
CREATE TABLE audit_stream_cursors (
    destination TEXT PRIMARY KEY,
    last_seq    INTEGER NOT NULL
) STRICT;
