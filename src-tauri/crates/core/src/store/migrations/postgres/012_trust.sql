-- Schema 12 on PostgreSQL: the same as migrations/sqlite/012_trust.sql (trust that moves:
-- thresholds, review of configuration drift, attestors and attestations, behaviour aggregates,
-- approval rules and requests), spelled for PostgreSQL.

CREATE TABLE trust_settings (
    id                 BIGINT PRIMARY KEY CHECK (id = 1),
    trusted_min        BIGINT NOT NULL DEFAULT 70,
    pending_min        BIGINT NOT NULL DEFAULT 20,
    organisation_floor BIGINT NOT NULL DEFAULT 0,
    CHECK (0 < pending_min AND pending_min < trusted_min AND trusted_min <= 100),
    CHECK (organisation_floor >= 0 AND organisation_floor <= 100)
);
INSERT INTO trust_settings (id) VALUES (1);

-- The configuration version a member last reviewed. An agent whose config_version is ahead
-- of it has drifted and stays at most PENDING until someone runs `mandate agent review`.
-- Existing agents start reviewed: nothing drifted before this schema existed.
ALTER TABLE agents ADD COLUMN reviewed_config_version BIGINT NOT NULL DEFAULT 1;
UPDATE agents SET reviewed_config_version = config_version;

-- A connection's (or MCP server's) minimum score, beside its state floor. NULL: none.
ALTER TABLE connections ADD COLUMN min_score BIGINT
    CHECK (min_score IS NULL OR (min_score >= 0 AND min_score <= 100));

-- Outside parties whose signed attestations count, each within +/- max_points.
CREATE TABLE attestors (
    id            TEXT COLLATE "C" PRIMARY KEY,
    name          TEXT COLLATE "C" NOT NULL UNIQUE,
    public_key    BYTEA NOT NULL CHECK (octet_length(public_key) = 32),
    max_points    BIGINT NOT NULL CHECK (max_points >= 1 AND max_points <= 30),
    created_at    TEXT COLLATE "C" NOT NULL,
    revoked_at    TEXT COLLATE "C",
    revoke_reason TEXT COLLATE "C"
);

-- Verified attestations. `envelope` is the DSSE envelope exactly as given (public data: a
-- signed statement, no secret). `points` is what it asks for, already within the attestor's
-- bound; whether it counts is decided on read (attestor not revoked, same config version,
-- not expired).
CREATE TABLE attestations (
    id             TEXT COLLATE "C" PRIMARY KEY,
    agent_id       TEXT COLLATE "C" NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    attestor_id    TEXT COLLATE "C" NOT NULL REFERENCES attestors(id),
    config_version BIGINT NOT NULL,
    config_digest  TEXT COLLATE "C" NOT NULL,
    result         TEXT COLLATE "C" NOT NULL CHECK (result IN ('pass', 'fail')),
    points         BIGINT NOT NULL,
    scope_reviewed TEXT COLLATE "C" NOT NULL,
    expires_at     TEXT COLLATE "C" NOT NULL,
    envelope_sha256 TEXT COLLATE "C" NOT NULL UNIQUE,
    envelope       TEXT COLLATE "C" NOT NULL,
    added_at       TEXT COLLATE "C" NOT NULL
);
CREATE INDEX attestations_by_agent ON attestations(agent_id);

-- Behaviour aggregates, kept by the trust refresher off the request path.
-- Requests and denials per agent per UTC hour ('YYYY-MM-DDTHH').
CREATE TABLE agent_activity_hours (
    agent_id TEXT COLLATE "C" NOT NULL,
    hour     TEXT COLLATE "C" NOT NULL,
    requests BIGINT NOT NULL,
    denials  BIGINT NOT NULL,
    PRIMARY KEY (agent_id, hour)
);
-- Requests and denials per agent per UTC minute ('YYYY-MM-DDTHH:MM'), for the last hour only
-- (the refresher deletes older rows): what "just now" is measured on.
CREATE TABLE agent_activity_minutes (
    agent_id TEXT COLLATE "C" NOT NULL,
    minute   TEXT COLLATE "C" NOT NULL,
    requests BIGINT NOT NULL,
    denials  BIGINT NOT NULL,
    PRIMARY KEY (agent_id, minute)
);
-- Every distinct action (with its connection, tool or path) an agent was seen doing.
CREATE TABLE agent_activity_seen (
    agent_id   TEXT COLLATE "C" NOT NULL,
    what       TEXT COLLATE "C" NOT NULL,
    first_seen TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (agent_id, what)
);
-- How far the refresher has read the audit trail.
CREATE TABLE trust_refresh_cursor (
    id       BIGINT PRIMARY KEY CHECK (id = 1),
    last_seq BIGINT NOT NULL
);
INSERT INTO trust_refresh_cursor (id, last_seq) VALUES (1, 0);
-- The behaviour signals last computed for each agent (JSON, each with its points) and their
-- sum: what the request path adds to the score, and what the agent's page shows.
CREATE TABLE trust_behaviour (
    agent_id    TEXT COLLATE "C" PRIMARY KEY REFERENCES agents(id) ON DELETE CASCADE,
    points      BIGINT NOT NULL,
    signals     TEXT COLLATE "C" NOT NULL,
    computed_at TEXT COLLATE "C" NOT NULL
);

-- Approvals: which calls need a person (a whole connection when action = ''), and the
-- requests people answer. Every request, decision and expiry is also an audit event.
CREATE TABLE approval_rules (
    connection_id TEXT COLLATE "C" NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    action        TEXT COLLATE "C" NOT NULL,
    mode          TEXT COLLATE "C" NOT NULL CHECK (mode IN ('always', 'below_floor')),
    PRIMARY KEY (connection_id, action)
);

CREATE TABLE approvals (
    id            TEXT COLLATE "C" PRIMARY KEY,
    agent_id      TEXT COLLATE "C" NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    connection_id TEXT COLLATE "C" NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    action        TEXT COLLATE "C" NOT NULL,
    on_behalf_of  TEXT COLLATE "C",
    why           TEXT COLLATE "C" NOT NULL,
    trust_state   TEXT COLLATE "C" NOT NULL,
    trust_score   BIGINT NOT NULL,
    status        TEXT COLLATE "C" NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired')),
    requested_at  TEXT COLLATE "C" NOT NULL,
    expires_at    TEXT COLLATE "C" NOT NULL,
    decided_by    TEXT COLLATE "C",
    decided_at    TEXT COLLATE "C",
    reason        TEXT COLLATE "C",
    valid_until   TEXT COLLATE "C",
    used          BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX approvals_by_call ON approvals(agent_id, connection_id, action, status);
CREATE INDEX approvals_by_status ON approvals(status, expires_at);

-- The request path reads these through the registry memo (and the token endpoint reads
-- whether a connection asks a person): any change raises the registry generation.
CREATE TRIGGER trust_settings_generation AFTER INSERT OR UPDATE OR DELETE ON trust_settings
    FOR EACH ROW EXECUTE FUNCTION mandate_registry_changed();
CREATE TRIGGER attestors_generation AFTER INSERT OR UPDATE OR DELETE ON attestors
    FOR EACH ROW EXECUTE FUNCTION mandate_registry_changed();
CREATE TRIGGER attestations_generation AFTER INSERT OR UPDATE OR DELETE ON attestations
    FOR EACH ROW EXECUTE FUNCTION mandate_registry_changed();
CREATE TRIGGER trust_behaviour_generation AFTER INSERT OR UPDATE OR DELETE ON trust_behaviour
    FOR EACH ROW EXECUTE FUNCTION mandate_registry_changed();
CREATE TRIGGER approval_rules_generation AFTER INSERT OR UPDATE OR DELETE ON approval_rules
    FOR EACH ROW EXECUTE FUNCTION mandate_registry_changed();
