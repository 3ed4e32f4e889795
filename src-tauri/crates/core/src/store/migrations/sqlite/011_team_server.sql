-- Schema 11: what a headless team server keeps that a laptop keeps in its OS keychain
-- (issue 20, docs/TEAM_SERVER.md), and the first admin's invite.
--
-- sealed_secrets: the secrets the OS keychain would hold (connection credentials, generated
-- agent keys), each sealed with AES-256-GCM under a key that never leaves the server's PKCS#11
-- token (`sealed.rs`). `key_name` names that key in the token; `sealed` is the 12-byte nonce,
-- the ciphertext and the 16-byte tag; the account name is the authenticated data, so a sealed
-- value moved to another account does not open. No plain text is ever stored here. The current
-- sealing key is `meta.sealing_key`.
CREATE TABLE sealed_secrets (
    account    TEXT PRIMARY KEY,
    key_name   TEXT NOT NULL,
    sealed     BLOB NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;

-- member_invites: one-time, short-lived codes with which a member enrols their own key
-- (`mandate server init` makes the first admin's; issue 21's `mandate team join` redeems it).
-- Only the code's SHA-256 is stored.
CREATE TABLE member_invites (
    id         TEXT PRIMARY KEY,
    member_id  TEXT NOT NULL REFERENCES members(id),
    role       TEXT NOT NULL CHECK (role IN ('admin', 'member', 'auditor')),
    code_hash  BLOB NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
) STRICT;
