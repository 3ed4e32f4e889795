-- Schema 4: the secret broker (issue 7). Where each connection's credential goes, its limits,
-- what each action costs, and how much of its daily budget each agent has used.
-- The credential itself is never here: it stays in the OS keychain.

-- One row per connection that has broker settings; a connection without one uses the
-- defaults (bearer, no rate limit, no budget).
CREATE TABLE broker_connections (
    connection_id   TEXT PRIMARY KEY REFERENCES connections(id) ON DELETE CASCADE,
    -- bearer | basic | header:NAME | query:NAME
    auth            TEXT NOT NULL DEFAULT 'bearer',
    -- The preset it was made from (github, openai...), for the SDK variables of `mandate exec`.
    preset          TEXT,
    -- Calls per minute per agent; NULL: no limit.
    rate_per_minute INTEGER CHECK (rate_per_minute IS NULL OR rate_per_minute > 0),
    -- Cost units per agent per UTC day; NULL: no budget.
    daily_budget    INTEGER CHECK (daily_budget IS NULL OR daily_budget > 0)
) STRICT;

-- Per action: its cost in budget units and whether it still passes after 90 % of the budget.
-- An action without a row costs 1 and is not essential.
CREATE TABLE broker_actions (
    connection_id TEXT NOT NULL,
    action        TEXT NOT NULL,
    cost          INTEGER NOT NULL DEFAULT 1 CHECK (cost >= 0),
    essential     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (connection_id, action),
    FOREIGN KEY (connection_id, action)
        REFERENCES connection_actions(connection_id, name) ON DELETE CASCADE
) STRICT;

-- Budget use per agent, connection and UTC day (YYYY-MM-DD). Updated in the same transaction
-- as the call's audit event.
CREATE TABLE broker_usage (
    agent_id      TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    connection_id TEXT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    day           TEXT NOT NULL,
    units         INTEGER NOT NULL DEFAULT 0,
    calls         INTEGER NOT NULL DEFAULT 0,
    denied        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (agent_id, connection_id, day)
) STRICT;
