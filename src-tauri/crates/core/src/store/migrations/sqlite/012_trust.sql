-- Schema 12: trust that moves (issue 19): a 0-100 score with thresholds, behaviour signals
-- from the agent's own audit history, configuration drift and its review, signed
-- attestations from registered attestors, and trust floors as minimum scores.
-- Plain SQL on purpose (ON CONFLICT, no SQLite-only functions in DML), so the PostgreSQL
-- store can take it over.

-- The thresholds that turn a score into a state, and the organisation's minimum score.
-- One row. Changes are audited (`trust.settings_changed`).
CREATE TABLE trust_settings (
    id                 INTEGER PRIMARY KEY CHECK (id = 1),
    trusted_min        INTEGER NOT NULL DEFAULT 70,
    pending_min        INTEGER NOT NULL DEFAULT 20,
    organisation_floor INTEGER NOT NULL DEFAULT 0,
    CHECK (0 < pending_min AND pending_min < trusted_min AND trusted_min <= 100),
    CHECK (organisation_floor >= 0 AND organisation_floor <= 100)
) STRICT;
INSERT INTO trust_settings (id) VALUES (1);

-- The configuration version a member last reviewed. An agent whose config_version is ahead
-- of it has drifted and stays at most PENDING until someone runs `mandate agent review`.
-- Existing agents start reviewed: nothing drifted before this schema existed.
ALTER TABLE agents ADD COLUMN reviewed_config_version INTEGER NOT NULL DEFAULT 1;
UPDATE agents SET reviewed_config_version = config_version;

-- A connection's (or MCP server's) minimum score, beside its state floor. NULL: none.
ALTER TABLE connections ADD COLUMN min_score INTEGER
    CHECK (min_score IS NULL OR (min_score >= 0 AND min_score <= 100));

-- Outside parties whose signed attestations count, each within +/- max_points.
CREATE TABLE attestors (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    public_key    BLOB NOT NULL CHECK (length(public_key) = 32),
    max_points    INTEGER NOT NULL CHECK (max_points >= 1 AND max_points <= 30),
    created_at    TEXT NOT NULL,
    revoked_at    TEXT,
    revoke_reason TEXT
) STRICT;

-- Verified attestations. `envelope` is the DSSE envelope exactly as given (public data: a
-- signed statement, no secret). `points` is what it asks for, already within the attestor's
-- bound; whether it counts is decided on read (attestor not revoked, same config version,
-- not expired).
CREATE TABLE attestations (
    id             TEXT PRIMARY KEY,
    agent_id       TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    attestor_id    TEXT NOT NULL REFERENCES attestors(id),
    config_version INTEGER NOT NULL,
    config_digest  TEXT NOT NULL,
    result         TEXT NOT NULL CHECK (result IN ('pass', 'fail')),
    points         INTEGER NOT NULL,
    scope_reviewed TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    envelope_sha256 TEXT NOT NULL UNIQUE,
    envelope       TEXT NOT NULL,
    added_at       TEXT NOT NULL
) STRICT;
CREATE INDEX attestations_by_agent ON attestations(agent_id);

-- Behaviour aggregates, kept by the trust refresher off the request path.
-- Requests and denials per agent per UTC hour ('YYYY-MM-DDTHH').
CREATE TABLE agent_activity_hours (
    agent_id TEXT NOT NULL,
    hour     TEXT NOT NULL,
    requests INTEGER NOT NULL,
    denials  INTEGER NOT NULL,
    PRIMARY KEY (agent_id, hour)
) STRICT;
-- Requests and denials per agent per UTC minute ('YYYY-MM-DDTHH:MM'), for the last hour only
-- (the refresher deletes older rows): what "just now" is measured on.
CREATE TABLE agent_activity_minutes (
    agent_id TEXT NOT NULL,
    minute   TEXT NOT NULL,
    requests INTEGER NOT NULL,
    denials  INTEGER NOT NULL,
    PRIMARY KEY (agent_id, minute)
) STRICT;
-- Every distinct action (with its connection, tool or path) an agent was seen doing.
CREATE TABLE agent_activity_seen (
    agent_id   TEXT NOT NULL,
    what       TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    PRIMARY KEY (agent_id, what)
) STRICT;
-- How far the refresher has read the audit trail.
CREATE TABLE trust_refresh_cursor (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq INTEGER NOT NULL
) STRICT;
INSERT INTO trust_refresh_cursor (id, last_seq) VALUES (1, 0);
-- The behaviour signals last computed for each agent (JSON, each with its points) and their
-- sum: what the request path adds to the score, and what the agent's page shows.
CREATE TABLE trust_behaviour (
    agent_id    TEXT PRIMARY KEY REFERENCES agents(id) ON DELETE CASCADE,
    points      INTEGER NOT NULL,
    signals     TEXT NOT NULL,
    computed_at TEXT NOT NULL
) STRICT;

-- The request path reads these through the registry memo: any change must raise the
-- registry generation (see 007) so the next request sees it.
CREATE TRIGGER trust_settings_update_generation AFTER UPDATE ON trust_settings
    BEGIN UPDATE registry_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER attestors_insert_generation AFTER INSERT ON attestors
    BEGIN UPDATE registry_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER attestors_update_generation AFTER UPDATE ON attestors
    BEGIN UPDATE registry_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER attestations_insert_generation AFTER INSERT ON attestations
    BEGIN UPDATE registry_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER attestations_delete_generation AFTER DELETE ON attestations
    BEGIN UPDATE registry_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER trust_behaviour_insert_generation AFTER INSERT ON trust_behaviour
    BEGIN UPDATE registry_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER trust_behaviour_update_generation AFTER UPDATE ON trust_behaviour
    BEGIN UPDATE registry_generation SET n = n + 1 WHERE id = 1; END;

-- Approvals: which calls need a person (a whole connection when action = ''), and the
-- requests people answer. Every request, decision and expiry is also an audit event.
CREATE TABLE approval_rules (
    connection_id TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    action        TEXT NOT NULL,
    mode          TEXT NOT NULL CHECK (mode IN ('always', 'below_floor')),
    PRIMARY KEY (connection_id, action)
) STRICT;

CREATE TABLE approvals (
    id            TEXT PRIMARY KEY,
    agent_id      TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    connection_id TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    action        TEXT NOT NULL,
    on_behalf_of  TEXT,
    why           TEXT NOT NULL,
    trust_state   TEXT NOT NULL,
    trust_score   INTEGER NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired')),
    requested_at  TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    decided_by    TEXT,
    decided_at    TEXT,
    reason        TEXT,
    valid_until   TEXT,
    used          INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX approvals_by_call ON approvals(agent_id, connection_id, action, status);
CREATE INDEX approvals_by_status ON approvals(status, expires_at);
-- The token endpoint reads whether a connection asks a person (it then issues tokens below
-- the floor and the broker or gateway holds each call): changes raise the generation.
CREATE TRIGGER approval_rules_insert_generation AFTER INSERT ON approval_rules
    BEGIN UPDATE registry_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER approval_rules_update_generation AFTER UPDATE ON approval_rules
    BEGIN UPDATE registry_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER approval_rules_delete_generation AFTER DELETE ON approval_rules
    BEGIN UPDATE registry_generation SET n = n + 1 WHERE id = 1; END;
