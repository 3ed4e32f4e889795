-- Schema 9: the MCP gateway (issue 18); see the SQLite file 009 for what each column means.
-- An MCP server is a kind of connection: its tools are the connection's actions. Its
-- credentials are never here (the values of `secret_env` and a remote server's header
-- credential live in the keychain).
CREATE TABLE mcp_servers (
    connection_id     TEXT COLLATE "C" PRIMARY KEY REFERENCES connections(id) ON DELETE CASCADE,
    transport         TEXT COLLATE "C" NOT NULL CHECK (transport IN ('stdio', 'http')),
    command           TEXT COLLATE "C",
    args              TEXT COLLATE "C" NOT NULL DEFAULT '[]',
    env               TEXT COLLATE "C" NOT NULL DEFAULT '{}',
    secret_env        TEXT COLLATE "C" NOT NULL DEFAULT '[]',
    url               TEXT COLLATE "C",
    call_timeout_secs BIGINT NOT NULL DEFAULT 120 CHECK (call_timeout_secs > 0),
    audit_arguments   BIGINT NOT NULL DEFAULT 0,
    tools_read_at     TEXT COLLATE "C",
    CHECK ((transport = 'stdio' AND command IS NOT NULL) OR (transport = 'http' AND url IS NOT NULL))
);

CREATE TABLE mcp_tools (
    connection_id TEXT COLLATE "C" NOT NULL,
    action        TEXT COLLATE "C" NOT NULL,
    kind          TEXT COLLATE "C" NOT NULL CHECK (kind IN ('tool', 'prompt', 'resources')),
    title         TEXT COLLATE "C",
    description   TEXT COLLATE "C",
    read_only     BIGINT,
    destructive   BIGINT,
    idempotent    BIGINT,
    open_world    BIGINT,
    PRIMARY KEY (connection_id, action),
    FOREIGN KEY (connection_id, action)
        REFERENCES connection_actions(connection_id, name) ON DELETE CASCADE
);

-- A server's settings are part of what the gateway reads per request (registry_memo.rs).
CREATE TRIGGER mcp_servers_generation AFTER UPDATE ON mcp_servers
    FOR EACH ROW EXECUTE FUNCTION mandate_registry_changed();

CREATE TABLE mcp_imports (
    id               TEXT COLLATE "C" PRIMARY KEY,
    path             TEXT COLLATE "C" NOT NULL,
    agent_id         TEXT COLLATE "C" NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    servers          TEXT COLLATE "C" NOT NULL,
    rewritten_sha256 TEXT COLLATE "C" NOT NULL,
    created_at       TEXT COLLATE "C" NOT NULL,
    undone_at        TEXT COLLATE "C"
);
