-- Schema 8: databases as a kind of connection, and credential moves that can be undone
-- (issue 17). No secret is stored here: moved values and kept previous secrets live in the OS
-- keychain; these rows say where they came from and how to put them back.

-- `http`: the broker adds the credential to HTTP calls under /proxy/NAME (every connection so
-- far). `database`: the credential is a database URL that `mandate exec` hands to the program
-- in the variable `variable` when its token holds the scope NAME:connect.
ALTER TABLE connections ADD COLUMN kind TEXT NOT NULL DEFAULT 'http'
    CHECK (kind IN ('http', 'database'));
ALTER TABLE connections ADD COLUMN variable TEXT;
-- Raised by every change of the credential (set, replaced, moved in, restored by an undo), so
-- an undo can tell whether the credential is still the one its move put there.
ALTER TABLE connections ADD COLUMN secret_version INTEGER NOT NULL DEFAULT 0;
-- When the credential last changed; NULL: never set since this schema.
ALTER TABLE connections ADD COLUMN secret_changed_at TEXT;

-- One row per credential moved from a project file into the keychain. While `state` is 'open'
-- and `undo_until` has not passed, the move can be undone: the line comes back into the file
-- and the connection gets back the credential it held before, kept meanwhile in the keychain
-- under `moved-previous/<id>`. A later move into the same connection, an undo, or the end of
-- the window closes it ('undone' or 'closed') and the kept credential is deleted.
CREATE TABLE credential_moves (
    id                 TEXT PRIMARY KEY,
    moved_at           TEXT NOT NULL,
    undo_until         TEXT NOT NULL,
    state              TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'undone', 'closed')),
    closed_at          TEXT,
    -- The scanned folder (absolute) and the file inside it.
    root               TEXT NOT NULL,
    file               TEXT NOT NULL,
    line               INTEGER NOT NULL,
    kind               TEXT NOT NULL,
    variable           TEXT,
    -- No foreign key: the record outlives a removed connection, and then cannot be undone.
    connection_id      TEXT NOT NULL,
    connection         TEXT NOT NULL,
    connection_created INTEGER NOT NULL,
    -- The connection's secret_version right after the move.
    secret_version     INTEGER NOT NULL,
    -- The connection held a credential before; it is kept until the window closes.
    kept_previous      INTEGER NOT NULL,
    -- When the line was rewritten: the comment that replaced it, and the text around the
    -- credential (an assignment such as `export DATABASE_URL="` and `"`; never the value).
    comment            TEXT,
    line_before        TEXT,
    line_after         TEXT
) STRICT;
CREATE INDEX credential_moves_open ON credential_moves(state, undo_until);
