-- Schema 10: every committed batch of audit events carries an authentication tag (issue 22,
-- part 7; audit/tag.rs, docs/AUDIT_FORMAT.md section 9).
--
-- The newest event a transaction appends holds `tag_from`, the first event of that
-- transaction, and `tag`, HMAC-SHA256 under a key kept only in the OS keychain over
-- (tag_from, seq, hash). Because `hash` chains every earlier event, a tag vouches for the
-- whole log up to its event, and the tags of successive transactions tile the log from #1.
-- Someone who can write this file but cannot read the keychain can no longer append events
-- that pass as Mandate's. Other rows leave both columns NULL. Nothing is rewritten here: the
-- first transaction after the upgrade tags the history before it too (`tag_from` = 1).
ALTER TABLE audit_events ADD COLUMN tag_from INTEGER;
ALTER TABLE audit_events ADD COLUMN tag BLOB CHECK (tag IS NULL OR length(tag) = 32);
