-- Schema 1: the registry and the audit chain.
-- Secrets never appear here: connection credentials and private keys live in the OS keychain;
-- `has_secret` only records that one was set.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE members (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    email      TEXT,
    created_at TEXT NOT NULL
) STRICT;

CREATE TABLE connections (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    base_url    TEXT NOT NULL,
    has_secret  INTEGER NOT NULL DEFAULT 0,
    trust_floor TEXT NOT NULL DEFAULT 'PENDING'
                CHECK (trust_floor IN ('TRUSTED', 'PENDING', 'UNTRUSTED')),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;

CREATE TABLE connection_actions (
    connection_id TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    method        TEXT NOT NULL,
    path_pattern  TEXT NOT NULL,
    PRIMARY KEY (connection_id, name)
) STRICT;

CREATE TABLE agents (
    id                    TEXT PRIMARY KEY,
    name                  TEXT NOT NULL UNIQUE,
    purpose               TEXT NOT NULL,
    owner_id              TEXT REFERENCES members(id),
    parent_id             TEXT REFERENCES agents(id),
    config_version        INTEGER NOT NULL DEFAULT 1,
    status                TEXT NOT NULL DEFAULT 'active'
                          CHECK (status IN ('active', 'suspended', 'revoked')),
    status_reason         TEXT,
    trust_override        TEXT CHECK (trust_override IN ('TRUSTED', 'PENDING', 'UNTRUSTED')),
    trust_override_reason TEXT,
    dpop_required         INTEGER NOT NULL DEFAULT 0,
    max_token_ttl_secs    INTEGER,
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL
) STRICT;

CREATE TABLE agent_scopes (
    agent_id      TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    scope         TEXT NOT NULL,
    connection_id TEXT NOT NULL REFERENCES connections(id),
    PRIMARY KEY (agent_id, scope)
) STRICT;

CREATE TABLE agent_keys (
    kid        TEXT PRIMARY KEY,
    agent_id   TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    public_key BLOB NOT NULL CHECK (length(public_key) = 32),
    origin     TEXT NOT NULL CHECK (origin IN ('keychain', 'file', 'registered')),
    created_at TEXT NOT NULL,
    expires_at TEXT
) STRICT;
CREATE INDEX agent_keys_by_agent ON agent_keys(agent_id);

-- body: the event's RFC 8785 canonical JSON; hash: SHA-256(previous hash || body).
CREATE TABLE audit_events (
    seq      INTEGER PRIMARY KEY,
    time     TEXT NOT NULL,
    agent_id TEXT,
    action   TEXT NOT NULL,
    decision TEXT NOT NULL,
    body     BLOB NOT NULL,
    hash     BLOB NOT NULL
) STRICT;
CREATE INDEX audit_events_by_agent ON audit_events(agent_id, seq);
CREATE INDEX audit_events_by_time ON audit_events(time);
