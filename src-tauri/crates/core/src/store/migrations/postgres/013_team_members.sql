-- Schema 13 on PostgreSQL: the same as migrations/sqlite/013_team_members.sql (team members'
-- roles and enrolled keys), spelled for PostgreSQL.
CREATE TABLE team_roles (
    member_id  TEXT COLLATE "C" PRIMARY KEY REFERENCES members(id),
    role       TEXT COLLATE "C" NOT NULL CHECK (role IN ('admin', 'member', 'auditor')),
    joined_at  TEXT COLLATE "C" NOT NULL,
    removed_at TEXT COLLATE "C"
);

CREATE TABLE member_keys (
    kid        TEXT COLLATE "C" PRIMARY KEY,
    member_id  TEXT COLLATE "C" NOT NULL REFERENCES members(id),
    public_key BYTEA NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    revoked_at TEXT COLLATE "C"
);
CREATE INDEX member_keys_by_member ON member_keys (member_id);
