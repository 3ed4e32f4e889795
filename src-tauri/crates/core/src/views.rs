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

use crate::store::params;
use chrono::{DateTime, TimeZone, Utc};
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

/// The newest suspension or revocation of an agent, as its page tells it: who, when, why.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct StatusChange {
    /// `agent.suspended` or `agent.revoked`.
    pub action: String,
    pub by: audit::Actor,
    /// RFC 3339, as the event has it.
    pub time: String,
    pub reason: Option<String>,
}

/// Which audit events to list. Every field narrows; all empty means every event.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// An agent's name or id.
    pub agent: Option<String>,
    /// An exact action (`agent.revoked`) or a prefix ending in a dot (`token.`).
    pub action: Option<String>,
    pub decision: Option<Decision>,
    /// A team member's name or id: events they did, or that were done on their behalf.
    pub member: Option<String>,
    /// Events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Events before this time (exclusive).
    pub until: Option<DateTime<Utc>>,
}

/// The member filter's terms. They repeat the expressions of the partial indexes in
/// `store/migrations/sqlite/005_audit_members.sql` exactly, which is what lets SQLite use them.
const MEMBER_TERMS: &str = "((CAST(body AS TEXT) ->> '$.actor.kind' = 'member' \
     AND CAST(body AS TEXT) ->> '$.actor.id' = ?) \
     OR (CAST(body AS TEXT) ->> '$.on_behalf_of.kind' = 'member' \
     AND CAST(body AS TEXT) ->> '$.on_behalf_of.id' = ?))";

/// The same terms on PostgreSQL, repeating `store/migrations/postgres/008_baseline.sql`'s
/// member indexes exactly.
const MEMBER_TERMS_POSTGRES: &str = "((mandate_event_json(body) #>> '{actor,kind}' = 'member' \
     AND mandate_event_json(body) #>> '{actor,id}' = ?) \
     OR (mandate_event_json(body) #>> '{on_behalf_of,kind}' = 'member' \
     AND mandate_event_json(body) #>> '{on_behalf_of,id}' = ?))";

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
        let mut guard = self.lock()?;
        let conn = guard.tx()?;
        let rows = conn.query_map(
            "SELECT t.jti, a.name, t.subject, t.act, t.scope, t.aud, t.issued_at, t.expires_at,
                    t.cnf_jkt IS NOT NULL, t.delegation_id
             FROM oauth_tokens t JOIN agents a ON a.id = t.agent_id
             WHERE t.revoked_at IS NULL AND t.expires_at > ?1
               AND (CAST(?2 AS TEXT) IS NULL OR a.name = ?2 OR a.id = ?2)
             ORDER BY t.expires_at",
            params![now, agent],
            |r| {
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
            },
        )?;
        Ok(rows)
    }

    /// The newest audit event's sequence number (0 for an empty log). Sequence numbers run
    /// 1..=head without gaps in a log that verifies, so row `i` of the newest-first list is
    /// event `head - i`.
    pub fn audit_head(&self) -> Result<u64> {
        let mut guard = self.lock()?;
        let conn = guard.tx()?;
        let head: Option<i64> =
            conn.query_row("SELECT max(seq) FROM audit_events", params![], |r| r.get(0))?;
        Ok(head.unwrap_or(0).max(0) as u64)
    }

    /// Audit events matching `filter`, newest first, at most `limit`, each older than
    /// `before_seq` when given.
    ///
    /// Every filter is an indexed lookup: the agent by `audit_events_by_agent`, the member by
    /// the two partial indexes of schema 5, and a time range by `audit_events_by_time`, which
    /// first turns it into the exact range of sequence numbers it covers (a scan of that
    /// index's entries in the range, not of the events), so the page itself walks events in
    /// sequence order and stops after `limit` matches. The SQL names only the filters given,
    /// so SQLite chooses its plan for the filters in force.
    pub fn audit_page(
        &self,
        filter: &AuditFilter,
        limit: u32,
        before_seq: Option<u64>,
    ) -> Result<Vec<AuditEvent>> {
        use crate::store::{Dialect, ToParam, Value};

        let agent_id = match filter.agent.as_deref().map(str::trim) {
            Some(a) if !a.is_empty() => Some(self.agent_id_by_name(a)?),
            _ => None,
        };
        let member_id = match filter.member.as_deref().map(str::trim) {
            Some(m) if !m.is_empty() => Some(self.member_actor(m)?.id),
            _ => None,
        };
        if let (Some(since), Some(until)) = (filter.since, filter.until)
            && since >= until
        {
            return Err(Error::invalid(format!(
                "the time range ends ({}) before it starts ({}); swap the dates",
                audit::format_time(until),
                audit::format_time(since)
            )));
        }
        let since = filter.since.map(audit::format_time);
        let until = filter.until.map(audit::format_time);
        let action = filter
            .action
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty());

        let mut guard = self.lock()?;

        let conn = guard.tx()?;
        let sqlite = conn.dialect() == Dialect::Sqlite;
        let mut terms: Vec<&str> = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        if since.is_some() || until.is_some() {
            // Bounds on the sequence numbers the range covers, read from the time index: the
            // smallest at or after `since`, the largest before `until`. Times follow sequence
            // numbers unless a clock was set back, so these are min and max over the range
            // rather than its first and last entries, and the time terms below still apply.
            let mut range = Vec::new();
            let mut args = Vec::new();
            if let Some(s) = &since {
                range.push("time >= ?");
                args.push(Value::Text(s.clone()));
            }
            if let Some(u) = &until {
                range.push("time < ?");
                args.push(Value::Text(u.clone()));
            }
            // One walk over the index entries in the range gives both.
            let sql = format!(
                "SELECT min(seq), max(seq) FROM audit_events {} WHERE {}",
                if sqlite {
                    "INDEXED BY audit_events_by_time"
                } else {
                    ""
                },
                range.join(" AND ")
            );
            let args: Vec<&dyn ToParam> = args.iter().map(|v| v as &dyn ToParam).collect();
            let (lo, hi): (Option<i64>, Option<i64>) =
                conn.query_row(&sql, &args, |r| Ok((r.get(0)?, r.get(1)?)))?;
            let (Some(lo), Some(hi)) = (lo, hi) else {
                return Ok(Vec::new());
            };
            terms.push("seq BETWEEN ? AND ?");
            values.push(Value::Int(lo));
            values.push(Value::Int(hi));
            // Unary `+` (SQLite): checked on the rows the sequence range yields, not looked up
            // again. PostgreSQL's planner weighs that itself.
            if let Some(s) = since {
                terms.push(if sqlite { "+time >= ?" } else { "time >= ?" });
                values.push(Value::Text(s));
            }
            if let Some(u) = until {
                terms.push(if sqlite { "+time < ?" } else { "time < ?" });
                values.push(Value::Text(u));
            }
        }
        if let Some(b) = before_seq {
            terms.push("seq < ?");
            values.push(Value::Int(b.min(i64::MAX as u64) as i64));
        }
        if let Some(a) = agent_id {
            terms.push("agent_id = ?");
            values.push(Value::Text(a.as_str().to_string()));
        }
        if let Some(m) = member_id {
            terms.push(if sqlite {
                MEMBER_TERMS
            } else {
                MEMBER_TERMS_POSTGRES
            });
            values.push(Value::Text(m.clone()));
            values.push(Value::Text(m));
        }
        match action {
            Some(a) if a.ends_with('.') => {
                terms.push("action LIKE ?");
                values.push(Value::Text(format!("{a}%")));
            }
            Some(a) => {
                terms.push("action = ?");
                values.push(Value::Text(a.to_string()));
            }
            None => {}
        }
        if let Some(d) = filter.decision {
            terms.push("decision = ?");
            values.push(Value::Text(d.as_str().to_string()));
        }
        let sql = format!(
            "SELECT body FROM audit_events {} ORDER BY seq DESC LIMIT ?",
            if terms.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", terms.join(" AND "))
            }
        );
        values.push(Value::Int(i64::from(limit.min(5000))));
        let values: Vec<&dyn ToParam> = values.iter().map(|v| v as &dyn ToParam).collect();
        let rows = conn.query_map(&sql, &values, |r| r.get::<Vec<u8>>(0))?;
        let mut out = Vec::new();
        for body in rows {
            out.push(
                serde_json::from_slice(&body)
                    .map_err(|e| Error::Storage(format!("an audit event is unreadable: {e}")))?,
            );
        }
        Ok(out)
    }

    /// The newest `agent.suspended` or `agent.revoked` event of the agent `agent` (name or
    /// id), read from the audit trail (walking its events newest first).
    pub fn last_status_change(&self, agent: &str) -> Result<Option<StatusChange>> {
        let id = self.agent_id_by_name(agent)?;
        let body: Option<Vec<u8>> = self.read(|tx| {
            tx.query_opt(
                "SELECT body FROM audit_events
                 WHERE agent_id = ?1 AND action IN ('agent.suspended', 'agent.revoked')
                 ORDER BY seq DESC LIMIT 1",
                params![id.as_str()],
                |r| r.get(0),
            )
        })?;
        let Some(body) = body else { return Ok(None) };
        let e: AuditEvent = serde_json::from_slice(&body)
            .map_err(|e| Error::Storage(format!("an audit event is unreadable: {e}")))?;
        Ok(Some(StatusChange {
            action: e.action,
            by: e.actor,
            time: e.time,
            reason: e.reason,
        }))
    }

    /// The organisation name printed on audit reports, if one was set.
    pub fn organisation_name(&self) -> Result<Option<String>> {
        let mut guard = self.lock()?;
        let conn = guard.tx()?;
        conn.query_opt(
            "SELECT value FROM meta WHERE key = 'organisation_name'",
            params![],
            |r| r.get(0),
        )
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
        let actor = self.actor()?;
        let value = (!name.is_empty()).then(|| name.to_string());
        self.write(|tx, now| {
            let before: Option<String> = tx.query_opt(
                "SELECT value FROM meta WHERE key = 'organisation_name'",
                params![],
                |r| r.get(0),
            )?;
            if before == value {
                return Ok(());
            }
            match &value {
                Some(v) => tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('organisation_name', ?1)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    params![v],
                )?,
                None => tx.execute(
                    "DELETE FROM meta WHERE key = 'organisation_name'",
                    params![],
                )?,
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

    use chrono::{DateTime, Utc};

    use super::{AuditFilter, MEMBER_TERMS, MEMBER_TERMS_POSTGRES, actor_chain};
    use crate::Mandate;
    use crate::audit::{Actor, Decision, NewEvent};
    use crate::clock::ManualClock;
    use crate::store::testing::{TestStore, each_store};
    use crate::store::{Dialect, params};

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
        each_store(|st| {
            let m = st.open();
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
        });
    }

    /// ana acts at 09:00; an agent acts for ana at 10:00 (denied) and 11:00; bob acts at
    /// 12:00; the app acts at 13:00; then the clock is set back and ana acts "at 09:30".
    fn member_log(s: &TestStore) -> (Mandate, Vec<u64>) {
        let clock = Arc::new(ManualClock::new(t("2026-11-20T08:00:00Z")));
        let m = Mandate::open(s.default_options().clock(clock.clone())).unwrap();
        m.add_member("ana", None).unwrap();
        m.add_member("bob", None).unwrap();
        let ana = m.member_actor("ana").unwrap();
        let bob = m.member_actor("bob").unwrap();
        let bot = Actor::agent("agent-id-1", "bot");
        let app = Actor::app("test", "t");
        let mut seqs = Vec::new();
        let mut at = |time: &str, ev: NewEvent| {
            clock.set(t(time));
            seqs.push(m.record(ev).unwrap().seq);
        };
        at(
            "2026-11-20T09:00:00Z",
            NewEvent::new(&ana, "agent.created", Decision::Allow),
        );
        at(
            "2026-11-20T10:00:00Z",
            NewEvent::new(&bot, "token.denied", Decision::Deny).on_behalf_of(ana.clone()),
        );
        at(
            "2026-11-20T11:00:00Z",
            NewEvent::new(&bot, "token.issued", Decision::Allow).on_behalf_of(ana.clone()),
        );
        at(
            "2026-11-20T12:00:00Z",
            NewEvent::new(&bob, "agent.created", Decision::Allow),
        );
        at(
            "2026-11-20T13:00:00Z",
            NewEvent::new(&app, "settings.changed", Decision::Allow),
        );
        at(
            "2026-11-20T09:30:00Z",
            NewEvent::new(&ana, "agent.revoked", Decision::Allow),
        );
        (m, seqs)
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn seqs(m: &Mandate, f: &AuditFilter, before: Option<u64>) -> Vec<u64> {
        m.audit_page(f, 100, before)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect()
    }

    #[test]
    fn audit_pages_filter_by_member_as_actor_or_principal() {
        each_store(|st| {
            let (m, s) = member_log(st);
            let ana = AuditFilter {
                member: Some("ana".into()),
                ..AuditFilter::default()
            };
            assert_eq!(seqs(&m, &ana, None), vec![s[5], s[2], s[1], s[0]]);
            assert_eq!(seqs(&m, &ana, Some(s[2])), vec![s[1], s[0]]);
            // By id too, and a name with spaces around it.
            let id = m.member_actor("bob").unwrap().id;
            for who in [id, " bob ".to_string()] {
                let f = AuditFilter {
                    member: Some(who),
                    ..AuditFilter::default()
                };
                assert_eq!(seqs(&m, &f, None), vec![s[3]]);
            }
            let nobody = AuditFilter {
                member: Some("carol".into()),
                ..AuditFilter::default()
            };
            let err = m.audit_page(&nobody, 10, None).unwrap_err().to_string();
            assert!(err.contains("carol"), "{err}");
        });
    }

    #[test]
    fn audit_pages_filter_by_time_range_even_when_a_clock_went_back() {
        each_store(|st| {
            let (m, s) = member_log(st);
            let range = |since: Option<&str>, until: Option<&str>| AuditFilter {
                since: since.map(t),
                until: until.map(t),
                ..AuditFilter::default()
            };
            // Until is exclusive, since inclusive.
            let f = range(Some("2026-11-20T10:00:00Z"), Some("2026-11-20T12:00:00Z"));
            assert_eq!(seqs(&m, &f, None), vec![s[2], s[1]]);
            // The event stamped 09:30 after a clock was set back is found although its sequence
            // number lies outside the run of the others.
            let f = range(Some("2026-11-20T09:15:00Z"), Some("2026-11-20T10:30:00Z"));
            assert_eq!(seqs(&m, &f, None), vec![s[5], s[1]]);
            let f = range(None, Some("2026-11-20T09:45:00Z"));
            let got = seqs(&m, &f, None);
            assert_eq!(&got[..2], &[s[5], s[0]]);
            assert!(
                got[2..].iter().all(|&q| q < s[0]),
                "the members were added before"
            );
            let f = range(Some("2026-11-20T12:30:00Z"), None);
            assert_eq!(seqs(&m, &f, None), vec![s[4]]);
            // A range with nothing in it, and one that ends before it starts.
            let f = range(Some("2026-11-21T00:00:00Z"), None);
            assert!(seqs(&m, &f, None).is_empty());
            let f = range(Some("2026-11-20T12:00:00Z"), Some("2026-11-20T11:00:00Z"));
            assert!(m.audit_page(&f, 10, None).is_err());
        });
    }

    #[test]
    fn member_time_action_and_decision_filters_combine() {
        each_store(|st| {
            let (m, s) = member_log(st);
            let f = AuditFilter {
                member: Some("ana".into()),
                since: Some(t("2026-11-20T09:15:00Z")),
                ..AuditFilter::default()
            };
            assert_eq!(seqs(&m, &f, None), vec![s[5], s[2], s[1]]);
            let tokens = AuditFilter {
                action: Some("token.".into()),
                ..f.clone()
            };
            assert_eq!(seqs(&m, &tokens, None), vec![s[2], s[1]]);
            assert_eq!(seqs(&m, &tokens, Some(s[2])), vec![s[1]]);
            let denied = AuditFilter {
                decision: Some(Decision::Deny),
                ..tokens.clone()
            };
            assert_eq!(seqs(&m, &denied, None), vec![s[1]]);
            let early = AuditFilter {
                until: Some(t("2026-11-20T10:00:00Z")),
                ..tokens
            };
            assert!(seqs(&m, &early, None).is_empty());
            let bob = AuditFilter {
                member: Some("bob".into()),
                ..f
            };
            assert_eq!(seqs(&m, &bob, None), vec![s[3]]);
        });
    }

    #[test]
    fn the_member_filter_uses_its_indexes() {
        each_store(|st| {
            let m = st.open();
            let mut conn = m.lock().unwrap();
            let plan = conn
                .auto(|tx| {
                    let rows = match tx.dialect() {
                        Dialect::Sqlite => tx.query_map(
                            &format!(
                                "EXPLAIN QUERY PLAN SELECT body FROM audit_events \
                                 WHERE {MEMBER_TERMS} AND seq < ?3 ORDER BY seq DESC LIMIT 10"
                            ),
                            params!["x", "x", 10],
                            |r| r.get::<String>(3),
                        )?,
                        Dialect::Postgres => {
                            // The table is tiny: make a scan look as dear as it is on a big log.
                            tx.execute_batch("SET enable_seqscan = off")?;
                            tx.query_map(
                                &format!(
                                    "EXPLAIN SELECT body FROM audit_events \
                                     WHERE {MEMBER_TERMS_POSTGRES} AND seq < ?3 \
                                     ORDER BY seq DESC LIMIT 10"
                                ),
                                params!["x", "x", 10],
                                |r| r.get::<String>(0),
                            )?
                        }
                    };
                    Ok(rows.join("\n"))
                })
                .unwrap();
            assert!(plan.contains("audit_events_by_member_actor"), "{plan}");
            assert!(plan.contains("audit_events_by_member_principal"), "{plan}");
            assert!(!plan.contains("SCAN audit_events"), "{plan}");
            assert!(!plan.contains("Seq Scan"), "{plan}");
        });
    }

    #[test]
    fn the_organisation_name_is_kept_audited_and_validated() {
        each_store(|st| {
            let m = st.open();
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
        });
    }

    #[test]
    fn no_tokens_are_outstanding_in_a_new_installation() {
        each_store(|st| {
            let m = st.open();
            assert!(m.outstanding_tokens(None).unwrap().is_empty());
        });
    }
}
