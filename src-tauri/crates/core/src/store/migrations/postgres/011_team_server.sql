-- Schema 11 on PostgreSQL: the same as migrations/sqlite/011_team_server.sql (sealed secrets
-- of a headless team server, and member invites), spelled for PostgreSQL.
CREATE TABLE sealed_secrets (
    account    TEXT COLLATE "C" PRIMARY KEY,
    key_name   TEXT COLLATE "C" NOT NULL,
    sealed     BYTEA NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL
);

CREATE TABLE member_invites (
    id         TEXT COLLATE "C" PRIMARY KEY,
    member_id  TEXT COLLATE "C" NOT NULL REFERENCES members(id),
    role       TEXT COLLATE "C" NOT NULL CHECK (role IN ('admin', 'member', 'auditor')),
    code_hash  BYTEA NOT NULL UNIQUE,
    created_at TEXT COLLATE "C" NOT NULL,
    expires_at TEXT COLLATE "C" NOT NULL,
    used_at    TEXT COLLATE "C"
);
