-- Schema 7: a generation number for the part of the registry that client authentication reads
-- (issue 3's benchmark; docs/BENCHMARKS.md, oauth/registry_memo.rs).
--
-- Every insert, update or delete of a member, connection, agent, agent scope or agent key adds
-- one to `n`, in the same transaction as the change (triggers, so no code path can forget).
-- The token endpoint reads `n` in the snapshot of each request and reuses what it read about
-- an agent only while `n` is unchanged: a revocation, suspension, removed key or raised trust
-- floor still applies from the next request after it commits. `n` only grows.
CREATE TABLE registry_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
) STRICT;
INSERT INTO registry_generation (id, n) VALUES (1, 1);

CREATE TRIGGER members_insert_generation AFTER INSERT ON members
    BEGIN UPDATE registry_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER members_update_generation AFTER UPDATE ON members
    BEGIN UPDATE registry_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER members_delete_generation AFTER DELETE ON members
    BEGIN UPDATE registry_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER connections_insert_generation AFTER INSERT ON connections
    BEGIN UPDATE registry_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER connections_update_generation AFTER UPDATE ON connections
    BEGIN UPDATE registry_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER connections_delete_generation AFTER DELETE ON connections
    BEGIN UPDATE registry_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER agents_insert_generation AFTER INSERT ON agents
    BEGIN UPDATE registry_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER agents_update_generation AFTER UPDATE ON agents
    BEGIN UPDATE registry_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER agents_delete_generation AFTER DELETE ON agents
    BEGIN UPDATE registry_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER agent_scopes_insert_generation AFTER INSERT ON agent_scopes
    BEGIN UPDATE registry_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER agent_scopes_update_generation AFTER UPDATE ON agent_scopes
    BEGIN UPDATE registry_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER agent_scopes_delete_generation AFTER DELETE ON agent_scopes
    BEGIN UPDATE registry_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER agent_keys_insert_generation AFTER INSERT ON agent_keys
    BEGIN UPDATE registry_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER agent_keys_update_generation AFTER UPDATE ON agent_keys
    BEGIN UPDATE registry_generation SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER agent_keys_delete_generation AFTER DELETE ON agent_keys
    BEGIN UPDATE registry_generation SET n = n + 1 WHERE id = 1; END;
