-- Schema 13: team members sign in with their own keys (issue 21 §1, docs/TEAM_SERVER.md).
--
-- team_roles: who belongs to the team server and as what. A row is written when a member
-- redeems an invite (`mandate team join`); removing a member sets `removed_at`, which every
-- request checks (not only the token endpoint), so a removal takes effect on the next request.
-- The member row itself stays: agents name it as their owner and the audit trail names it.
CREATE TABLE team_roles (
    member_id  TEXT PRIMARY KEY REFERENCES members(id),
    role       TEXT NOT NULL CHECK (role IN ('admin', 'member', 'auditor')),
    joined_at  TEXT NOT NULL,
    removed_at TEXT
) STRICT;

-- member_keys: each member's Ed25519 public key, enrolled with a one-time invite code. The
-- private key never leaves the member's OS keychain. `kid` is the RFC 7638 thumbprint.
CREATE TABLE member_keys (
    kid        TEXT PRIMARY KEY,
    member_id  TEXT NOT NULL REFERENCES members(id),
    public_key BLOB NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
) STRICT;
CREATE INDEX member_keys_by_member ON member_keys (member_id);
