-- Schema 9: the MCP gateway (issue 18). An MCP server is a kind of connection: its tools (and
-- prompts, and reading its resources) are the connection's actions, so scopes are
-- `SERVER:tool`, and the broker's per-action costs, essential flags, rate limit, daily budget
-- and trust floor apply to tool calls unchanged. This table holds how to reach the server.
-- Its credentials are never here: the values of `secret_env` and a remote server's header
-- credential live only in the OS keychain.
CREATE TABLE mcp_servers (
    connection_id     TEXT PRIMARY KEY REFERENCES connections(id) ON DELETE CASCADE,
    -- stdio: a local program Mandate starts; http: a remote Streamable HTTP server.
    transport         TEXT NOT NULL CHECK (transport IN ('stdio', 'http')),
    -- stdio: the program and its arguments (a JSON array of strings).
    command           TEXT,
    args              TEXT NOT NULL DEFAULT '[]',
    -- stdio: plain (non-secret) environment variables, a JSON object of strings.
    env               TEXT NOT NULL DEFAULT '{}',
    -- stdio: names of the environment variables whose values are in the keychain (JSON array).
    secret_env        TEXT NOT NULL DEFAULT '[]',
    -- http: the server's URL (also the connection's base URL).
    url               TEXT,
    -- Longest wait for the answer to one request, in seconds.
    call_timeout_secs INTEGER NOT NULL DEFAULT 120 CHECK (call_timeout_secs > 0),
    -- 1: tool-call events carry the arguments themselves (always their SHA-256).
    audit_arguments   INTEGER NOT NULL DEFAULT 0,
    -- When the tool list was last read from the server itself.
    tools_read_at     TEXT,
    CHECK ((transport = 'stdio' AND command IS NOT NULL) OR (transport = 'http' AND url IS NOT NULL))
) STRICT;

-- What the server said about each of its tools (`tools/list`), for people choosing scopes:
-- read-only tools first, destructive ones marked. Hints, as the MCP spec says: never trusted
-- for a decision.
CREATE TABLE mcp_tools (
    connection_id TEXT NOT NULL,
    -- The action name: the tool's exact name, `prompts/NAME`, or `resources/read`.
    action        TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('tool', 'prompt', 'resources')),
    title         TEXT,
    description   TEXT,
    read_only     INTEGER,
    destructive   INTEGER,
    idempotent    INTEGER,
    open_world    INTEGER,
    PRIMARY KEY (connection_id, action),
    FOREIGN KEY (connection_id, action)
        REFERENCES connection_actions(connection_id, name) ON DELETE CASCADE
) STRICT;

CREATE TRIGGER mcp_servers_update_generation AFTER UPDATE ON mcp_servers
    BEGIN UPDATE registry_generation SET n = n + 1 WHERE id = 1; END;

-- Imports of MCP client config files: which file was rewritten, for which agent, and the hash
-- of what was written, so an undo never overwrites a file someone changed since. The original
-- text (it held the secrets) is kept in the OS keychain under `mcp-import/<id>`, not here.
CREATE TABLE mcp_imports (
    id               TEXT PRIMARY KEY,
    path             TEXT NOT NULL,
    agent_id         TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    -- JSON: [{key, server, secrets_moved}]
    servers          TEXT NOT NULL,
    rewritten_sha256 TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    undone_at        TEXT
) STRICT;
