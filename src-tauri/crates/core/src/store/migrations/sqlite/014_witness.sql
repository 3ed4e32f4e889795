-- Schema 14: witnesses of the team's audit log (issue 21 §3). Plain SQL on purpose, so the
-- PostgreSQL store can take it over (migrations/postgres/014_witness.sql).

-- On a team server: the witnesses an admin registered, each an Ed25519 cosignature/v1 key
-- (C2SP tlog-cosignature) under its name. A removed witness stays listed; its cosignatures
-- stay kept. Changes are audited (`witness.added`, `witness.removed`).
CREATE TABLE witnesses (
    name       TEXT PRIMARY KEY,
    public_key BLOB NOT NULL UNIQUE CHECK (length(public_key) = 32),
    added_at   TEXT NOT NULL,
    added_by   TEXT NOT NULL,
    removed_at TEXT
) STRICT;

-- On a team server: verified cosignatures, one per witness and checkpoint (the first kept).
-- `line` is the note signature line exactly as the witness sent it (public data).
CREATE TABLE witness_cosignatures (
    witness     TEXT NOT NULL REFERENCES witnesses(name),
    size        INTEGER NOT NULL,
    timestamp   INTEGER NOT NULL,
    line        TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (witness, size)
) STRICT;
CREATE INDEX witness_cosignatures_by_size ON witness_cosignatures(size);

-- On a witness (a desktop or a CLI): the newest checkpoint it saw of each log it witnesses,
-- and the log key it pinned the first time. Every later checkpoint must be consistent with
-- this one before it is cosigned.
CREATE TABLE witnessed_logs (
    origin  TEXT PRIMARY KEY,
    url     TEXT NOT NULL,
    log_key TEXT NOT NULL,
    size    INTEGER NOT NULL,
    note    TEXT NOT NULL,
    seen_at TEXT NOT NULL
) STRICT;
