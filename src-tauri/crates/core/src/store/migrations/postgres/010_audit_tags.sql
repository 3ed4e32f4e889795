-- Schema 10 on PostgreSQL: the same as migrations/sqlite/010_audit_tags.sql (every committed
-- batch of audit events carries an authentication tag: `tag_from`, the first event of the
-- transaction, on its newest event, and `tag`, HMAC-SHA256 over (tag_from, seq, hash) under
-- a key kept out of the database), spelled for PostgreSQL.
ALTER TABLE audit_events ADD COLUMN tag_from BIGINT;
ALTER TABLE audit_events ADD COLUMN tag BYTEA CHECK (tag IS NULL OR length(tag) = 32);
