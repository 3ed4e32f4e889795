-- Schema 14 on PostgreSQL: the same as migrations/sqlite/014_witness.sql (witnesses of the
-- team's audit log, their cosignatures, and a witness's memory of the logs it watches),
-- spelled for PostgreSQL.

CREATE TABLE witnesses (
    name       TEXT COLLATE "C" PRIMARY KEY,
    public_key BYTEA NOT NULL UNIQUE CHECK (octet_length(public_key) = 32),
    added_at   TEXT COLLATE "C" NOT NULL,
    added_by   TEXT COLLATE "C" NOT NULL,
    removed_at TEXT COLLATE "C"
);

CREATE TABLE witness_cosignatures (
    witness     TEXT COLLATE "C" NOT NULL REFERENCES witnesses(name),
    size        BIGINT NOT NULL,
    timestamp   BIGINT NOT NULL,
    line        TEXT COLLATE "C" NOT NULL,
    received_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (witness, size)
);
CREATE INDEX witness_cosignatures_by_size ON witness_cosignatures(size);

CREATE TABLE witnessed_logs (
    origin  TEXT COLLATE "C" PRIMARY KEY,
    url     TEXT COLLATE "C" NOT NULL,
    log_key TEXT COLLATE "C" NOT NULL,
    size    BIGINT NOT NULL,
    note    TEXT COLLATE "C" NOT NULL,
    seen_at TEXT COLLATE "C" NOT NULL
);
