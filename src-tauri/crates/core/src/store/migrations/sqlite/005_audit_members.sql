-- Schema 5: find a team member's audit events by index (the desktop timeline's member filter).
-- Who acted and on whose behalf live only in the hashed event body, so these are expression
-- indexes over it: nothing stored changes, nothing is rehashed, and new events are indexed by
-- SQLite as they are inserted. Partial: only events whose actor (or principal) is a member,
-- a small share of a log that token traffic dominates. `CAST(body AS TEXT)`: the body is a
-- BLOB of JSON text, which newer SQLite would otherwise read as JSONB. Queries must repeat
-- these expressions exactly (`views::audit_page`).
CREATE INDEX audit_events_by_member_actor
    ON audit_events (CAST(body AS TEXT) ->> '$.actor.id', seq)
    WHERE CAST(body AS TEXT) ->> '$.actor.kind' = 'member';
CREATE INDEX audit_events_by_member_principal
    ON audit_events (CAST(body AS TEXT) ->> '$.on_behalf_of.id', seq)
    WHERE CAST(body AS TEXT) ->> '$.on_behalf_of.kind' = 'member';
