-- PostgreSQL: schema 8 in one step (the SQLite files 001 to 008 as they stand together).
-- The same tables, columns and rules as on SQLite, spelled for PostgreSQL:
--   * every integer is BIGINT (SQLite's INTEGER is 64-bit), booleans are 0/1 integers;
--   * bytes are BYTEA (SQLite's BLOB);
--   * text is COLLATE "C", so it sorts and compares byte by byte as SQLite's BINARY does,
--     whatever the database's locale;
--   * the registry's generation is raised by a plpgsql trigger function;
--   * the member filters' expression indexes read the event body through one IMMUTABLE
--     function (`mandate_event_json`), which queries must repeat exactly (views::audit_page).
-- Secrets never appear here: credentials and private keys live in the keychain (or, on a team
-- server, sealed under a key outside the database).

DO $$
BEGIN
    IF current_setting('server_encoding') <> 'UTF8' THEN
        RAISE EXCEPTION 'Mandate needs a database in UTF8 (this one is %); create it with ENCODING ''UTF8''',
            current_setting('server_encoding');
    END IF;
END $$;

CREATE TABLE meta (
    key   TEXT COLLATE "C" PRIMARY KEY,
    value TEXT COLLATE "C" NOT NULL
);

CREATE TABLE members (
    id         TEXT COLLATE "C" PRIMARY KEY,
    name       TEXT COLLATE "C" NOT NULL UNIQUE,
    email      TEXT COLLATE "C",
    created_at TEXT COLLATE "C" NOT NULL
);

CREATE TABLE connections (
    id                TEXT COLLATE "C" PRIMARY KEY,
    name              TEXT COLLATE "C" NOT NULL UNIQUE,
    base_url          TEXT COLLATE "C" NOT NULL,
    has_secret        BIGINT NOT NULL DEFAULT 0,
    trust_floor       TEXT COLLATE "C" NOT NULL DEFAULT 'PENDING'
                      CHECK (trust_floor IN ('TRUSTED', 'PENDING', 'UNTRUSTED')),
    created_at        TEXT COLLATE "C" NOT NULL,
    updated_at        TEXT COLLATE "C" NOT NULL,
    -- Schema 8: `http` (brokered) or `database` (its URL handed to `mandate exec`).
    kind              TEXT COLLATE "C" NOT NULL DEFAULT 'http' CHECK (kind IN ('http', 'database')),
    variable          TEXT COLLATE "C",
    secret_version    BIGINT NOT NULL DEFAULT 0,
    secret_changed_at TEXT COLLATE "C"
);

CREATE TABLE connection_actions (
    connection_id TEXT COLLATE "C" NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    name          TEXT COLLATE "C" NOT NULL,
    method        TEXT COLLATE "C" NOT NULL,
    path_pattern  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (connection_id, name)
);

CREATE TABLE agents (
    id                    TEXT COLLATE "C" PRIMARY KEY,
    name                  TEXT COLLATE "C" NOT NULL UNIQUE,
    purpose               TEXT COLLATE "C" NOT NULL,
    owner_id              TEXT COLLATE "C" REFERENCES members(id),
    parent_id             TEXT COLLATE "C" REFERENCES agents(id),
    config_version        BIGINT NOT NULL DEFAULT 1,
    status                TEXT COLLATE "C" NOT NULL DEFAULT 'active'
                          CHECK (status IN ('active', 'suspended', 'revoked')),
    status_reason         TEXT COLLATE "C",
    trust_override        TEXT COLLATE "C"
                          CHECK (trust_override IN ('TRUSTED', 'PENDING', 'UNTRUSTED')),
    trust_override_reason TEXT COLLATE "C",
    dpop_required         BIGINT NOT NULL DEFAULT 0,
    max_token_ttl_secs    BIGINT,
    created_at            TEXT COLLATE "C" NOT NULL,
    updated_at            TEXT COLLATE "C" NOT NULL
);

CREATE TABLE agent_scopes (
    agent_id      TEXT COLLATE "C" NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    scope         TEXT COLLATE "C" NOT NULL,
    connection_id TEXT COLLATE "C" NOT NULL REFERENCES connections(id),
    PRIMARY KEY (agent_id, scope)
);

CREATE TABLE agent_keys (
    kid        TEXT COLLATE "C" PRIMARY KEY,
    agent_id   TEXT COLLATE "C" NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    public_key BYTEA NOT NULL CHECK (length(public_key) = 32),
    origin     TEXT COLLATE "C" NOT NULL CHECK (origin IN ('keychain', 'file', 'registered')),
    created_at TEXT COLLATE "C" NOT NULL,
    expires_at TEXT COLLATE "C"
);
CREATE INDEX agent_keys_by_agent ON agent_keys(agent_id);

-- body: the event's RFC 8785 canonical JSON (UTF-8 bytes); hash: its chain hash
-- (docs/AUDIT_FORMAT.md section 4).
CREATE TABLE audit_events (
    seq      BIGINT PRIMARY KEY,
    time     TEXT COLLATE "C" NOT NULL,
    agent_id TEXT COLLATE "C",
    action   TEXT COLLATE "C" NOT NULL,
    decision TEXT COLLATE "C" NOT NULL,
    body     BYTEA NOT NULL,
    hash     BYTEA NOT NULL
);
CREATE INDEX audit_events_by_agent ON audit_events(agent_id, seq);
CREATE INDEX audit_events_by_time ON audit_events(time);

-- An event body as JSON. IMMUTABLE (convert_from is only STABLE) is true here: the bytes are
-- always UTF-8 and the database is UTF8 (checked above), so the result depends on the bytes
-- alone. Queries must call it exactly as the indexes do.
CREATE FUNCTION mandate_event_json(body BYTEA) RETURNS JSONB
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT convert_from(body, 'UTF8')::jsonb $$;

-- Schema 5's member filters: partial, only events whose actor (or principal) is a member.
CREATE INDEX audit_events_by_member_actor
    ON audit_events ((mandate_event_json(body) #>> '{actor,id}'), seq)
    WHERE mandate_event_json(body) #>> '{actor,kind}' = 'member';
CREATE INDEX audit_events_by_member_principal
    ON audit_events ((mandate_event_json(body) #>> '{on_behalf_of,id}'), seq)
    WHERE mandate_event_json(body) #>> '{on_behalf_of,kind}' = 'member';

-- "Agent X may act for member M with scopes S until T, for task K."
CREATE TABLE delegations (
    id             TEXT COLLATE "C" PRIMARY KEY,
    agent_id       TEXT COLLATE "C" NOT NULL REFERENCES agents(id),
    member_id      TEXT COLLATE "C" NOT NULL REFERENCES members(id),
    scopes         TEXT COLLATE "C" NOT NULL,
    task           TEXT COLLATE "C" NOT NULL,
    not_after      BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    revoked_at     BIGINT,
    revoked_reason TEXT COLLATE "C"
);
CREATE INDEX delegations_by_agent ON delegations(agent_id);

-- Every access token issued (never the token itself); times in Unix seconds.
CREATE TABLE oauth_tokens (
    jti           TEXT COLLATE "C" PRIMARY KEY,
    agent_id      TEXT COLLATE "C" NOT NULL REFERENCES agents(id),
    subject       TEXT COLLATE "C" NOT NULL,
    act           TEXT COLLATE "C",
    scope         TEXT COLLATE "C" NOT NULL,
    aud           TEXT COLLATE "C" NOT NULL,
    kid           TEXT COLLATE "C" NOT NULL,
    issued_at     BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    cnf_jkt       TEXT COLLATE "C",
    parent_jti    TEXT COLLATE "C" REFERENCES oauth_tokens(jti),
    delegation_id TEXT COLLATE "C" REFERENCES delegations(id),
    revoked_at    BIGINT,
    revoked_by    TEXT COLLATE "C"
);
CREATE INDEX oauth_tokens_by_parent ON oauth_tokens(parent_jti) WHERE parent_jti IS NOT NULL;
CREATE INDEX oauth_tokens_by_expiry ON oauth_tokens(expires_at);

-- Used assertion and DPoP `jti`s: an append-only log in `seq` order (oauth/replay.rs). Every
-- writer holds the writer lock, so `seq` is taken in commit order, as SQLite's rowid is.
CREATE TABLE oauth_used_jtis (
    seq        BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    client     TEXT COLLATE "C" NOT NULL,
    jti        TEXT COLLATE "C" NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Issuer keys replaced by a rotation: published in the JWKS until their last token expires.
CREATE TABLE issuer_keys_retired (
    kid           TEXT COLLATE "C" PRIMARY KEY,
    public_key    BYTEA NOT NULL CHECK (length(public_key) = 32),
    retired_at    BIGINT NOT NULL,
    publish_until BIGINT NOT NULL
);

-- Signed checkpoints of the audit log (see the SQLite file 003).
CREATE TABLE audit_checkpoints (
    size       BIGINT PRIMARY KEY CHECK (size >= 0),
    time       TEXT COLLATE "C" NOT NULL,
    root       BYTEA NOT NULL CHECK (length(root) = 32),
    head       BYTEA NOT NULL CHECK (length(head) = 32),
    kid        TEXT COLLATE "C" NOT NULL,
    public_key BYTEA NOT NULL CHECK (length(public_key) = 32),
    note       TEXT COLLATE "C" NOT NULL,
    frontier   BYTEA NOT NULL
);

CREATE TABLE audit_stream_cursors (
    destination TEXT COLLATE "C" PRIMARY KEY,
    last_seq    BIGINT NOT NULL
);

-- The secret broker's settings, costs and daily use (see the SQLite file 004).
CREATE TABLE broker_connections (
    connection_id   TEXT COLLATE "C" PRIMARY KEY REFERENCES connections(id) ON DELETE CASCADE,
    auth            TEXT COLLATE "C" NOT NULL DEFAULT 'bearer',
    preset          TEXT COLLATE "C",
    rate_per_minute BIGINT CHECK (rate_per_minute IS NULL OR rate_per_minute > 0),
    daily_budget    BIGINT CHECK (daily_budget IS NULL OR daily_budget > 0)
);

CREATE TABLE broker_actions (
    connection_id TEXT COLLATE "C" NOT NULL,
    action        TEXT COLLATE "C" NOT NULL,
    cost          BIGINT NOT NULL DEFAULT 1 CHECK (cost >= 0),
    essential     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (connection_id, action),
    FOREIGN KEY (connection_id, action)
        REFERENCES connection_actions(connection_id, name) ON DELETE CASCADE
);

CREATE TABLE broker_usage (
    agent_id      TEXT COLLATE "C" NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    connection_id TEXT COLLATE "C" NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    day           TEXT COLLATE "C" NOT NULL,
    units         BIGINT NOT NULL DEFAULT 0,
    calls         BIGINT NOT NULL DEFAULT 0,
    denied        BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (agent_id, connection_id, day)
);

-- The registry's generation (see the SQLite file 007 and oauth/registry_memo.rs): raised in
-- the same transaction as any insert, update or delete of a member, connection, agent, agent
-- scope or agent key, row by row as SQLite's triggers do.
CREATE TABLE registry_generation (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    n  BIGINT NOT NULL
);
INSERT INTO registry_generation (id, n) VALUES (1, 1);

CREATE FUNCTION mandate_registry_changed() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    UPDATE registry_generation SET n = n + 1 WHERE id = 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER members_generation AFTER INSERT OR UPDATE OR DELETE ON members
    FOR EACH ROW EXECUTE FUNCTION mandate_registry_changed();
CREATE TRIGGER connections_generation AFTER INSERT OR UPDATE OR DELETE ON connections
    FOR EACH ROW EXECUTE FUNCTION mandate_registry_changed();
CREATE TRIGGER agents_generation AFTER INSERT OR UPDATE OR DELETE ON agents
    FOR EACH ROW EXECUTE FUNCTION mandate_registry_changed();
CREATE TRIGGER agent_scopes_generation AFTER INSERT OR UPDATE OR DELETE ON agent_scopes
    FOR EACH ROW EXECUTE FUNCTION mandate_registry_changed();
CREATE TRIGGER agent_keys_generation AFTER INSERT OR UPDATE OR DELETE ON agent_keys
    FOR EACH ROW EXECUTE FUNCTION mandate_registry_changed();

-- Credential moves that can be undone for 24 hours (see the SQLite file 008).
CREATE TABLE credential_moves (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    moved_at           TEXT COLLATE "C" NOT NULL,
    undo_until         TEXT COLLATE "C" NOT NULL,
    state              TEXT COLLATE "C" NOT NULL DEFAULT 'open'
                       CHECK (state IN ('open', 'undone', 'closed')),
    closed_at          TEXT COLLATE "C",
    root               TEXT COLLATE "C" NOT NULL,
    file               TEXT COLLATE "C" NOT NULL,
    line               BIGINT NOT NULL,
    kind               TEXT COLLATE "C" NOT NULL,
    variable           TEXT COLLATE "C",
    connection_id      TEXT COLLATE "C" NOT NULL,
    connection         TEXT COLLATE "C" NOT NULL,
    connection_created BIGINT NOT NULL,
    secret_version     BIGINT NOT NULL,
    kept_previous      BIGINT NOT NULL,
    comment            TEXT COLLATE "C",
    line_before        TEXT COLLATE "C",
    line_after         TEXT COLLATE "C"
);
CREATE INDEX credential_moves_open ON credential_moves(state, undo_until);
