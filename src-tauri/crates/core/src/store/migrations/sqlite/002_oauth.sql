-- Schema 2: the token endpoint's state (issue 3).
-- Tokens themselves are never stored: a token is known by its `jti`, and the audit trail
-- carries a hash where it must name one. Times in these tables are Unix seconds (the JWT
-- NumericDate the claims carry), so expiry checks compare integers.

-- Every access token issued: what introspection and revocation look up.
CREATE TABLE oauth_tokens (
    jti           TEXT PRIMARY KEY,
    agent_id      TEXT NOT NULL REFERENCES agents(id),   -- the client it was issued to
    subject       TEXT NOT NULL,                         -- `sub`: the agent, or the member
    act           TEXT,                                  -- the `act` claim as JSON, if any
    scope         TEXT NOT NULL,                         -- space-separated
    aud           TEXT NOT NULL,                         -- JSON array of audiences
    kid           TEXT NOT NULL,                         -- issuer key that signed it
    issued_at     INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    cnf_jkt       TEXT,                                  -- DPoP key thumbprint when bound
    parent_jti    TEXT REFERENCES oauth_tokens(jti),     -- the subject token of an exchange
    delegation_id TEXT REFERENCES delegations(id),
    revoked_at    INTEGER,
    revoked_by    TEXT
) STRICT;
CREATE INDEX oauth_tokens_by_agent ON oauth_tokens(agent_id, expires_at);
CREATE INDEX oauth_tokens_by_parent ON oauth_tokens(parent_jti);
CREATE INDEX oauth_tokens_by_kid ON oauth_tokens(kid, expires_at);

-- `jti`s of client assertions and DPoP proofs already accepted, kept until they expire so a
-- replay is refused even after a restart. `client` is the agent name, or `dpop:<jkt>`.
CREATE TABLE oauth_used_jtis (
    client     TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (client, jti)
) STRICT, WITHOUT ROWID;
CREATE INDEX oauth_used_jtis_by_expiry ON oauth_used_jtis(expires_at);

-- "Agent X may act for member M with scopes S until T, for task K."
CREATE TABLE delegations (
    id          TEXT PRIMARY KEY,
    agent_id    TEXT NOT NULL REFERENCES agents(id),
    member_id   TEXT NOT NULL REFERENCES members(id),
    scopes      TEXT NOT NULL,                           -- JSON array
    task        TEXT NOT NULL,
    not_after   INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER,
    revoked_reason TEXT
) STRICT;
CREATE INDEX delegations_by_agent ON delegations(agent_id);

-- Issuer keys replaced by a rotation: published in the JWKS until their last token expires.
CREATE TABLE issuer_keys_retired (
    kid           TEXT PRIMARY KEY,
    public_key    BLOB NOT NULL CHECK (length(public_key) = 32),
    retired_at    INTEGER NOT NULL,
    publish_until INTEGER NOT NULL
) STRICT;
