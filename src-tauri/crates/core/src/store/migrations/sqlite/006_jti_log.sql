-- Schema 6: fewer pages written per token (issue 3's benchmark; docs/BENCHMARKS.md).
--
-- Used `jti`s become an append-only log. Their primary key was (client, jti), and a client
-- picks its `jti` at random, so every token dirtied one random page to record it and another
-- to forget it when it expired. Now rows are appended in `seq` order and forgotten from the
-- oldest end; uniqueness is checked in memory, inside the write transaction, against every
-- row of this table (`oauth/replay.rs`), so a replay is still refused after a restart and
-- across processes.
CREATE TABLE oauth_used_jtis_log (
    seq        INTEGER PRIMARY KEY,
    client     TEXT NOT NULL,                            -- the agent name, or `dpop:<jkt>`
    jti        TEXT NOT NULL,
    expires_at INTEGER NOT NULL                          -- kept until then (Unix seconds)
) STRICT;
INSERT INTO oauth_used_jtis_log (client, jti, expires_at)
    SELECT client, jti, expires_at FROM oauth_used_jtis ORDER BY expires_at;
DROP TABLE oauth_used_jtis;
ALTER TABLE oauth_used_jtis_log RENAME TO oauth_used_jtis;

-- Only exchanged tokens have a parent: plain tokens need no entry in this index.
DROP INDEX oauth_tokens_by_parent;
CREATE INDEX oauth_tokens_by_parent ON oauth_tokens(parent_jti) WHERE parent_jti IS NOT NULL;

-- Read only when the issuer key is rotated (a rare, deliberate act), which can afford a scan;
-- every issued token paid for an entry.
DROP INDEX oauth_tokens_by_kid;

-- The outstanding-tokens view asks for unexpired tokens, soonest to expire first; no query
-- used (agent_id, expires_at), so the index over expiry alone replaces it at the same cost.
DROP INDEX oauth_tokens_by_agent;
CREATE INDEX oauth_tokens_by_expiry ON oauth_tokens(expires_at);
