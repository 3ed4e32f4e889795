//! Read views the desktop app needs that no other part of the API offers: outstanding tokens,
//! a filtered page of the audit trail, the newest audit sequence number, and the organisation
//! name shown on reports.
//!
//! They are queries over tables other modules own (`oauth_tokens`, `audit_events`, `meta`);
//! the one write here (the organisation name) is audited like every other change.
//!
//! What it is not: a second home for rules. Whether a token is *active* (its agent, its
//! delegation, its parent) is decided by `oauth`; "outstanding" here means only "issued,
//! not revoked and not yet expired", which is what a countdown shows.

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde_json::json;

use crate::Mandate;
use crate::audit::{self, AuditEvent, Decision, NewEvent, Target};
use crate::error::{Error, Result};

/// The longest token lifetime anyone may configure (re-exported for the app's Settings).
pub use crate::registry::MAX_TTL_SECS;

/// A token that was issued, is not revoked and has not expired. Never the token itself.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct OutstandingToken {
    /// The token's `jti` (an identifier, not a credential).
    pub jti: String,
    /// The agent it was issued to.
    pub agent: String,
    /// `sub`: the agent itself, or the member it acts for.
    pub subject: String,
    /// Who acts, outermost first, when the token was exchanged or delegated (`act` claims).
    pub actors: Vec<String>,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Bound to a DPoP key (RFC 9449).
    pub dpop_bound: bool,
    pub delegation_id: Option<String>,
}

/// Which audit events to list. Every field narrows; all empty means every event.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// An agent's name or id.
    pub agent: Option<String>,
    /// An exact action (`agent.revoked`) or a prefix ending in a dot (`token.`).
    pub action: Option<String>,
    pub decision: Option<Decision>,
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap_or_default()
}

/// `{"sub": "a", "act": {"sub": "b"}}` → `["a", "b"]`.
fn actor_chain(act: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = act.and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok());
    while let Some(v) = cur {
        if let Some(s) = v.get("sub").and_then(|s| s.as_str()) {
            out.push(s.to_string());
        }
        cur = v.get("act").cloned();
        if out.len() > 16 {
            break;
        }
    }
    out
}

/// Longest organisation name accepted for reports.
const MAX_ORGANISATION_CHARS: usize = 120;

impl Mandate {
    /// Tokens issued and neither revoked nor expired, soonest to expire first; `agent` (a
    /// name or id) limits them to one agent's.
    pub fn outstanding_tokens(&self, agent: Option<&str>) -> Result<Vec<OutstandingToken>> {
        let now = self.now().timestamp();
        let conn = self.lock()?;
        let mut stmt = conn.prepare(
            "SELECT t.jti, a.name, t.subject, t.act, t.scope, t.aud, t.issued_at, t.expires_at,
                    t.cnf_jkt IS NOT NULL, t.delegation_id
             FROM oauth_tokens t JOIN agents a ON a.id = t.agent_id
             WHERE t.revoked_at IS NULL AND t.expires_at > ?1
               AND (?2 IS NULL OR a.name = ?2 OR a.id = ?2)
             ORDER BY t.expires_at",
        )?;
        let rows = stmt.query_map(params![now, agent], |r| {
            let act: Option<String> = r.get(3)?;
            let scope: String = r.get(4)?;
            let aud: String = r.get(5)?;
            Ok(OutstandingToken {
                jti: r.get(0)?,
                agent: r.get(1)?,
                subject: r.get(2)?,
                actors: actor_chain(act.as_deref()),
                scopes: scope.split_whitespace().map(String::from).collect(),
                audiences: serde_json::from_str(&aud).unwrap_or_default(),
                issued_at: at(r.get(6)?),
                expires_at: at(r.get(7)?),
                dpop_bound: r.get(8)?,
                delegation_id: r.get(9)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The newest audit event's sequence number (0 for an empty log). Sequence numbers run
    /// 1..=head without gaps in a log that verifies, so row `i` of the newest-first list is
    /// event `head - i`.
    pub fn audit_head(&self) -> Result<u64> {
        let conn = self.lock()?;
        let head: Option<i64> =
            conn.query_row("SELECT max(seq) FROM audit_events", [], |r| r.get(0))?;
        Ok(head.unwrap_or(0).max(0) as u64)
    }

    /// Audit events matching `filter`, newest first, at most `limit`, each older than
    /// `before_seq` when given.
    pub fn audit_page(
        &self,
        filter: &AuditFilter,
        limit: u32,
        before_seq: Option<u64>,
    ) -> Result<Vec<AuditEvent>> {
        let agent_id = match filter.agent.as_deref().map(str::trim) {
            Some(a) if !a.is_empty() => Some(self.agent_id_by_name(a)?),
            _ => None,
        };
        let action = filter
            .action
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty());
        let (exact, prefix) = match action {
            Some(a) if a.ends_with('.') => (None, Some(format!("{a}%"))),
            Some(a) => (Some(a.to_string()), None),
            None => (None, None),
        };
        let conn = self.lock()?;
        let mut stmt = conn.prepare_cached(
            "SELECT body FROM audit_events
             WHERE (?1 IS NULL OR agent_id = ?1) AND (?2 IS NULL OR seq < ?2)
               AND (?3 IS NULL OR action = ?3) AND (?4 IS NULL OR action LIKE ?4)
               AND (?5 IS NULL OR decision = ?5)
             ORDER BY seq DESC LIMIT ?6",
        )?;
        let rows = stmt.query_map(
            params![
                agent_id.as_ref().map(|a| a.as_str()),
                before_seq.map(|s| s as i64),
                exact,
                prefix,
                filter.decision.map(Decision::as_str),
                limit.min(5000) as i64
            ],
            |r| r.get::<_, Vec<u8>>(0),
        )?;
        let mut out = Vec::new();
        for body in rows {
            out.push(
                serde_json::from_slice(&body?)
                    .map_err(|e| Error::Storage(format!("an audit event is unreadable: {e}")))?,
            );
        }
        Ok(out)
    }

    /// The organisation name printed on audit reports, if one was set.
    pub fn organisation_name(&self) -> Result<Option<String>> {
        let conn = self.lock()?;
        Ok(conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'organisation_name'",
                [],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Set (or, with an empty name, clear) the organisation name printed on audit reports.
    /// The change is audited as `settings.organisation_set`.
    pub fn set_organisation_name(&self, name: &str) -> Result<Option<String>> {
        let name = name.trim();
        if name.chars().count() > MAX_ORGANISATION_CHARS {
            return Err(Error::invalid(format!(
                "the organisation name is longer than {MAX_ORGANISATION_CHARS} characters; \
                 shorten it"
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(Error::invalid(
                "the organisation name contains a line break or control character; write it on \
                 one line",
            ));
        }
        let actor = self.actor().clone();
        let value = (!name.is_empty()).then(|| name.to_string());
        self.write(|tx, now| {
            let before: Option<String> = tx
                .query_row(
                    "SELECT value FROM meta WHERE key = 'organisation_name'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            if before == value {
                return Ok(());
            }
            match &value {
                Some(v) => tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('organisation_name', ?1)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    [v],
                )?,
                None => tx.execute("DELETE FROM meta WHERE key = 'organisation_name'", [])?,
            };
            audit::append(
                tx,
                now,
                NewEvent::new(&actor, "settings.organisation_set", Decision::Allow)
                    .target(Target::new(
                        "settings",
                        "organisation_name",
                        "organisation name",
                    ))
                    .details(json!({"from": before, "to": value})),
            )?;
            Ok(())
        })?;
        Ok(value)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use std::sync::Arc;

    use super::{AuditFilter, actor_chain};
    use crate::audit::{Actor, Decision, NewEvent};
    use crate::secret::MemoryKeychain;
    use crate::{Mandate, OpenOptions};

    fn open(dir: &std::path::Path) -> Mandate {
        Mandate::open(OpenOptions::new(
            dir,
            Arc::new(MemoryKeychain::new()),
            Actor::app("test", "t"),
        ))
        .unwrap()
    }

    #[test]
    fn act_claims_read_outermost_first() {
        assert_eq!(
            actor_chain(Some(r#"{"sub":"child","act":{"sub":"parent"}}"#)),
            vec!["child", "parent"]
        );
        assert!(actor_chain(None).is_empty());
        assert!(actor_chain(Some("not json")).is_empty());
    }

    #[test]
    fn audit_pages_filter_by_action_prefix_and_decision_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let m = open(dir.path());
        let actor = Actor::app("test", "t");
        let mut evs = Vec::new();
        for i in 0..10 {
            let (action, d) = if i % 2 == 0 {
                ("token.denied", Decision::Deny)
            } else {
                ("token.issued", Decision::Allow)
            };
            evs.push(NewEvent::new(&actor, action, d));
        }
        evs.push(NewEvent::new(&actor, "member.added", Decision::Allow));
        m.record_many(evs).unwrap();
        assert_eq!(m.audit_head().unwrap(), 11);

        let all = m.audit_page(&AuditFilter::default(), 100, None).unwrap();
        assert_eq!(
            all.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (1..=11).rev().collect::<Vec<_>>()
        );

        let tokens = AuditFilter {
            action: Some("token.".into()),
            ..AuditFilter::default()
        };
        assert_eq!(m.audit_page(&tokens, 100, None).unwrap().len(), 10);
        let denied = AuditFilter {
            decision: Some(Decision::Deny),
            ..tokens.clone()
        };
        let page = m.audit_page(&denied, 2, Some(9)).unwrap();
        assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![7, 5]);
        let exact = AuditFilter {
            action: Some("member.added".into()),
            ..AuditFilter::default()
        };
        assert_eq!(m.audit_page(&exact, 100, None).unwrap()[0].seq, 11);
        let nobody = AuditFilter {
            agent: Some("no-such-agent".into()),
            ..AuditFilter::default()
        };
        assert!(m.audit_page(&nobody, 100, None).is_err());
    }

    #[test]
    fn the_organisation_name_is_kept_audited_and_validated() {
        let dir = tempfile::tempdir().unwrap();
        let m = open(dir.path());
        assert_eq!(m.organisation_name().unwrap(), None);
        assert_eq!(
            m.set_organisation_name("  Example Robotics Ltd ").unwrap(),
            Some("Example Robotics Ltd".into())
        );
        assert_eq!(
            m.organisation_name().unwrap().as_deref(),
            Some("Example Robotics Ltd")
        );
        let head = m.audit_head().unwrap();
        // Setting the same name again changes nothing and records nothing.
        m.set_organisation_name("Example Robotics Ltd").unwrap();
        assert_eq!(m.audit_head().unwrap(), head);
        let ev = &m.audit_page(&AuditFilter::default(), 1, None).unwrap()[0];
        assert_eq!(ev.action, "settings.organisation_set");
        assert!(m.set_organisation_name("two\nlines").is_err());
        assert!(m.set_organisation_name(&"x".repeat(121)).is_err());
        assert_eq!(m.set_organisation_name("").unwrap(), None);
        assert_eq!(m.organisation_name().unwrap(), None);
    }

    #[test]
    fn no_tokens_are_outstanding_in_a_new_installation() {
        let dir = tempfile::tempdir().unwrap();
        let m = open(dir.path());
        assert!(m.outstanding_tokens(None).unwrap().is_empty());
    }
}
