//! Approvals: when trust is not enough, a request waits for a person instead of failing.
//!
//! A connection, one of its actions or one MCP tool is marked `always` (every call needs a
//! person's yes) or `below_floor` (a call that its floors would refuse needs a person's yes
//! instead). The broker (and, through the same functions, the MCP gateway) opens a request,
//! holds the call up to [`DEFAULT_HOLD_SECS`] seconds waiting for a decision, and when nobody
//! answered in time refuses with `approval_pending` and the request's id: the agent retries
//! with it (header `Mandate-Approval`) and gets through once someone approves.
//!
//! A person approves once (one call), for a time box (15 minutes, an hour, until the end of
//! the UTC day) or denies with a reason. Every request, decision, approver, use and expiry is
//! an audit event (`approval.requested`, `approval.approved`, `approval.denied`,
//! `approval.expired`), so they appear in the PDF report with the rest of the trail.
//!
//! What it is not: a queue of calls. The held call is the agent's own HTTP request; nothing is
//! replayed later. OpenID CIBA requests at the token endpoint (ids `ciba_…`, see
//! `oauth::ciba`) wait in the same inbox and are decided with the same `approve` and `deny`;
//! a held broker call never takes up their yes. The desktop app's Approvals inbox and its
//! notification read the same rows.

use std::time::{Duration as StdDuration, Instant};

use crate::store::{Tx, params};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::Mandate;
use crate::audit::{self, Actor, Decision, NewEvent, Target};
use crate::error::{Error, Result};
use crate::registry::{parse_time, ts};

/// The prefix of a CIBA request's id (see `oauth::ciba`).
pub const CIBA_ID_PREFIX: &str = "ciba_";

/// How long the broker holds a call waiting for a person, by default.
pub const DEFAULT_HOLD_SECS: u64 = 60;

/// How long the broker and the MCP gateway hold a call that needs a person:
/// `MANDATE_APPROVAL_HOLD_SECS` (0 to 600), else [`DEFAULT_HOLD_SECS`].
pub fn hold_from_env() -> StdDuration {
    let secs = std::env::var("MANDATE_APPROVAL_HOLD_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_HOLD_SECS, |s| s.min(600));
    StdDuration::from_secs(secs)
}
/// How long the MCP gateway holds a tool call by default: under the 60 s request timeout of the
/// TypeScript MCP SDK's clients (`DEFAULT_REQUEST_TIMEOUT_MSEC`), so that with every default the
/// agent is told `approval_pending` with the request's id instead of timing out on its own.
pub const DEFAULT_MCP_HOLD_SECS: u64 = 50;
// Checked when the crate builds: a hold as long as the SDK's timeout would hand the agent a
// timeout, not `approval_pending`.
const _: () = assert!(DEFAULT_MCP_HOLD_SECS + 5 <= 60 && DEFAULT_MCP_HOLD_SECS < DEFAULT_HOLD_SECS);

/// The MCP gateway's hold: `MANDATE_APPROVAL_HOLD_SECS` when set (0 to 600), else
/// [`DEFAULT_MCP_HOLD_SECS`].
pub fn mcp_hold_from_env() -> StdDuration {
    if std::env::var_os("MANDATE_APPROVAL_HOLD_SECS").is_some() {
        hold_from_env()
    } else {
        StdDuration::from_secs(DEFAULT_MCP_HOLD_SECS)
    }
}

/// How long an unanswered request stays open for a retry.
pub const REQUEST_TTL_MINUTES: i64 = 60;
/// How often a held call looks for a decision.
const POLL: StdDuration = StdDuration::from_millis(200);

/// When a call needs a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum ApprovalMode {
    /// Every call.
    Always,
    /// Calls the floors would refuse (instead of refusing them).
    BelowFloor,
}

impl ApprovalMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalMode::Always => "always",
            ApprovalMode::BelowFloor => "below_floor",
        }
    }

    fn from_db(s: &str) -> Result<Self> {
        match s {
            "always" => Ok(ApprovalMode::Always),
            "below_floor" => Ok(ApprovalMode::BelowFloor),
            o => Err(Error::Storage(format!("unknown approval mode '{o}'"))),
        }
    }
}

impl std::str::FromStr for ApprovalMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "always" => Ok(ApprovalMode::Always),
            "below_floor" => Ok(ApprovalMode::BelowFloor),
            _ => Err(Error::invalid(format!(
                "'{s}' is not an approval mode: use always or below-floor"
            ))),
        }
    }
}

/// How long a yes lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum ApprovalWindow {
    /// The one call that asked.
    Once,
    Minutes15,
    Hour,
    /// Until the end of the UTC day.
    Today,
}

impl std::str::FromStr for ApprovalWindow {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "once" => Ok(ApprovalWindow::Once),
            "15m" => Ok(ApprovalWindow::Minutes15),
            "1h" => Ok(ApprovalWindow::Hour),
            "today" => Ok(ApprovalWindow::Today),
            _ => Err(Error::invalid(format!(
                "'{s}' is not an approval window: use once, 15m, 1h or today"
            ))),
        }
    }
}

impl ApprovalWindow {
    fn until(self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            ApprovalWindow::Once => None,
            ApprovalWindow::Minutes15 => Some(now + Duration::minutes(15)),
            ApprovalWindow::Hour => Some(now + Duration::hours(1)),
            ApprovalWindow::Today => (now.date_naive() + Duration::days(1))
                .and_hms_opt(0, 0, 0)
                .map(|d| d.and_utc()),
        }
    }
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Denied,
    Expired,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Denied => "denied",
            ApprovalStatus::Expired => "expired",
        }
    }

    fn from_db(s: &str) -> Result<Self> {
        match s {
            "pending" => Ok(ApprovalStatus::Pending),
            "approved" => Ok(ApprovalStatus::Approved),
            "denied" => Ok(ApprovalStatus::Denied),
            "expired" => Ok(ApprovalStatus::Expired),
            o => Err(Error::Storage(format!("unknown approval status '{o}'"))),
        }
    }
}

/// A request for a person's approval, as the inbox and `mandate approvals list` show it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Approval {
    pub id: String,
    /// Who asks.
    pub agent: String,
    pub connection: String,
    /// The scope of the call (`CONNECTION:ACTION`, or `SERVER:tool`).
    pub action: String,
    /// On whose behalf, when the agent acts for a member.
    pub on_behalf_of: Option<String>,
    /// Why it needs a person ("always", or the floor it is below).
    pub why: String,
    /// The agent's trust when it asked.
    pub trust_state: String,
    pub trust_score: i32,
    pub status: ApprovalStatus,
    pub requested_at: DateTime<Utc>,
    /// An unanswered request closes then.
    pub expires_at: DateTime<Utc>,
    /// Until when the agent's own call is held open waiting for the answer (the broker and the
    /// MCP gateway hold it `MANDATE_APPROVAL_HOLD_SECS` as read by this process; after that
    /// the agent was told `approval_pending` and may retry with the id until `expires_at`).
    /// `None` for an OpenID CIBA request: that agent polls the token endpoint instead.
    pub held_until: Option<DateTime<Utc>>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    /// An approval for a time box lasts until then; `None` with `approved`: once.
    pub valid_until: Option<DateTime<Utc>>,
}

/// The approval rule for `action` on connection `connection_id`: its own, else the whole
/// connection's.
pub(crate) fn rule_for(
    conn: &Tx<'_>,
    connection_id: &str,
    action: &str,
) -> Result<Option<ApprovalMode>> {
    let mode: Option<String> = conn.query_opt(
        "SELECT mode FROM approval_rules WHERE connection_id = ?1 AND action IN (?2, '')
             ORDER BY action DESC LIMIT 1",
        params![connection_id, action],
        |r| r.get(0),
    )?;
    mode.as_deref().map(ApprovalMode::from_db).transpose()
}

/// What a held call is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A person said yes (the id of the approval that let it through).
    Approved(String),
    /// A person said no.
    Denied {
        id: String,
        by: String,
        reason: String,
    },
    /// Nobody answered in time: retry with this id.
    Pending(String),
}

/// Who asks for what, for [`Mandate::hold_for_approval`].
#[derive(Debug, Clone)]
pub struct Ask<'a> {
    pub agent_id: &'a str,
    pub agent: &'a str,
    pub connection_id: &'a str,
    pub connection: &'a str,
    pub action: &'a str,
    pub on_behalf_of: Option<&'a Actor>,
    pub why: &'a str,
    pub trust_state: &'a str,
    pub trust_score: i32,
    /// The id the agent retried with (`Mandate-Approval`), if any.
    pub retry_id: Option<&'a str>,
}

impl Mandate {
    /// Mark a connection (`action` None) or one of its actions or MCP tools as needing a
    /// person's approval, or clear the mark (`mode` None). Audited as `approval.rule_set`.
    pub fn set_approval_rule(
        &self,
        connection: &str,
        action: Option<&str>,
        mode: Option<ApprovalMode>,
    ) -> Result<()> {
        let actor = self.actor()?;
        self.write(|tx, now| {
            let c = crate::registry::connection_tx(tx, connection)?;
            let action = action.map(str::trim).unwrap_or("");
            if !action.is_empty() && !c.actions.iter().any(|a| a.name == action) {
                return Err(Error::invalid(format!(
                    "the connection '{}' has no action '{action}'; `mandate connection show {}` \
                     lists them",
                    c.name, c.name
                )));
            }
            match mode {
                Some(m) => tx.execute(
                    "INSERT INTO approval_rules (connection_id, action, mode) VALUES (?1, ?2, ?3)
                     ON CONFLICT (connection_id, action) DO UPDATE SET mode = excluded.mode",
                    params![c.id.as_str(), action, m.as_str()],
                )?,
                None => tx.execute(
                    "DELETE FROM approval_rules WHERE connection_id = ?1 AND action = ?2",
                    params![c.id.as_str(), action],
                )?,
            };
            audit::append(
                tx,
                now,
                NewEvent::new(&actor, "approval.rule_set", Decision::Allow)
                    .target(Target::new("connection", c.id.as_str(), c.name.as_str()))
                    .details(json!({
                        "action": if action.is_empty() { None } else { Some(action) },
                        "mode": mode.map(ApprovalMode::as_str),
                    })),
            )?;
            Ok(())
        })
    }

    /// Hold a call that needs a person: use an approval that still covers it, else open a
    /// request (or take up the one the agent retried with) and wait up to `hold` for a
    /// decision. Every request is audited when opened; a decision by whoever makes it.
    pub fn hold_for_approval(&self, ask: &Ask<'_>, hold: StdDuration) -> Result<Outcome> {
        if let Some(id) = self.use_grant(ask)? {
            return Ok(Outcome::Approved(id));
        }
        let id = match ask.retry_id.map(|id| self.retry_of(ask, id)).transpose()? {
            Some(Some(id)) => id,
            _ => self.open_request(ask)?,
        };
        let until = Instant::now() + hold;
        loop {
            let a = self.approval(&id)?;
            match a.status {
                ApprovalStatus::Approved => {
                    if self.use_grant(ask)?.is_some() || a.valid_until.is_some() {
                        return Ok(Outcome::Approved(id));
                    }
                    // A once-approval already used by another held call: ask again.
                    return Ok(Outcome::Pending(self.open_request(ask)?));
                }
                ApprovalStatus::Denied => {
                    return Ok(Outcome::Denied {
                        id,
                        by: a.decided_by.unwrap_or_default(),
                        reason: a.reason.unwrap_or_default(),
                    });
                }
                ApprovalStatus::Expired => return Ok(Outcome::Pending(self.open_request(ask)?)),
                ApprovalStatus::Pending => {}
            }
            if Instant::now() >= until {
                return Ok(Outcome::Pending(id));
            }
            std::thread::sleep(POLL);
        }
    }

    /// An approved grant covering this call now: a time box not yet over, or a once-approval
    /// not yet used (marked used here, in the same transaction).
    fn use_grant(&self, ask: &Ask<'_>) -> Result<Option<String>> {
        self.write(|tx, now| {
            let row: Option<(String, Option<String>)> = tx.query_opt(
                "SELECT id, valid_until FROM approvals
                     WHERE agent_id = ?1 AND connection_id = ?2 AND action = ?3
                       AND status = 'approved'
                       AND ((valid_until IS NULL AND used = 0) OR valid_until > ?4)
                       AND substr(id, 1, 5) <> 'ciba_'
                     ORDER BY decided_at DESC LIMIT 1",
                params![ask.agent_id, ask.connection_id, ask.action, ts(now)],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let Some((id, until)) = row else {
                return Ok(None);
            };
            if until.is_none() {
                tx.execute("UPDATE approvals SET used = 1 WHERE id = ?1", params![id])?;
            }
            Ok(Some(id))
        })
    }

    /// The request `id` if it is this agent's for this call.
    fn retry_of(&self, ask: &Ask<'_>, id: &str) -> Result<Option<String>> {
        self.read(|conn| {
            conn.query_opt(
                "SELECT id FROM approvals WHERE id = ?1 AND agent_id = ?2 AND connection_id = ?3
                       AND action = ?4 AND substr(id, 1, 5) <> 'ciba_'",
                params![id, ask.agent_id, ask.connection_id, ask.action],
                |r| r.get(0),
            )
        })
    }

    fn open_request(&self, ask: &Ask<'_>) -> Result<String> {
        let id = format!("apr_{}", uuid::Uuid::new_v4().simple());
        self.write(|tx, now| {
            // One open request per agent and call: a second held call joins the first.
            let open: Option<String> = tx.query_opt(
                "SELECT id FROM approvals WHERE agent_id = ?1 AND connection_id = ?2
                       AND action = ?3 AND status = 'pending' AND expires_at > ?4
                       AND substr(id, 1, 5) <> 'ciba_'",
                params![ask.agent_id, ask.connection_id, ask.action, ts(now)],
                |r| r.get(0),
            )?;
            if let Some(open) = open {
                return Ok(open);
            }
            let expires = now + Duration::minutes(REQUEST_TTL_MINUTES);
            tx.execute(
                "INSERT INTO approvals (id, agent_id, connection_id, action, on_behalf_of, why,
                     trust_state, trust_score, status, requested_at, expires_at, used)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', ?9, ?10, 0)",
                params![
                    id,
                    ask.agent_id,
                    ask.connection_id,
                    ask.action,
                    ask.on_behalf_of.map(|a| a.name.clone()),
                    ask.why,
                    ask.trust_state,
                    ask.trust_score,
                    ts(now),
                    ts(expires),
                ],
            )?;
            let mut ev = NewEvent::new(
                &Actor::agent(ask.agent_id, ask.agent),
                "approval.requested",
                Decision::Allow,
            )
            .agent(ask.agent_id)
            .target(Target::new("connection", ask.connection_id, ask.connection))
            .reason(ask.why.to_string())
            .details(json!({
                "approval": id,
                "action": ask.action,
                "trust_state": ask.trust_state,
                "trust_score": ask.trust_score,
                "expires": ts(expires),
            }));
            if let Some(m) = ask.on_behalf_of {
                ev = ev.on_behalf_of(m.clone());
            }
            audit::append(tx, now, ev)?;
            Ok(id.clone())
        })
    }

    /// One request by id.
    pub fn approval(&self, id: &str) -> Result<Approval> {
        self.read(|conn| {
            load(conn, id)?.ok_or_else(|| {
                Error::not_found_hint(
                    "approval request",
                    id,
                    "`mandate approvals list` shows the open ones".to_string(),
                )
            })
        })
    }

    /// Requests, newest first: the open ones, or (`all`) every one of the last 7 days.
    pub fn list_approvals(&self, all: bool) -> Result<Vec<Approval>> {
        self.read(|conn| {
            let now = self.now();
            let ids: Vec<String> = if all {
                conn.query_map(
                    "SELECT id FROM approvals WHERE requested_at >= ?1 ORDER BY requested_at DESC",
                    params![ts(now - Duration::days(7))],
                    |r| r.get(0),
                )?
            } else {
                conn.query_map(
                    "SELECT id FROM approvals WHERE status = 'pending' AND expires_at > ?1
                     ORDER BY requested_at DESC",
                    params![ts(now)],
                    |r| r.get(0),
                )?
            };
            ids.iter()
                .filter_map(|id| load(conn, id).transpose())
                .collect()
        })
    }

    /// A person says yes, for one call or a time box. Audited as `approval.approved` with the
    /// approver and until when.
    ///
    /// A CIBA request (`ciba_…`) yields a token whose subject is the member it names: only
    /// that member may approve it (anyone may deny it). Another person's attempt is refused
    /// and audited as `approval.refused`.
    pub fn approve(&self, id: &str, window: ApprovalWindow) -> Result<Approval> {
        let actor = self.actor()?;
        if id.starts_with(CIBA_ID_PREFIX) {
            let refused = self.write(|tx, now| {
                let Some(a) = load(tx, id)? else {
                    return Ok(None);
                };
                let Some(member) = a.on_behalf_of.filter(|m| *m != actor.name) else {
                    return Ok(None);
                };
                let why = format!(
                    "only {member} can approve this token request: it asks for a token that acts \
                     as {member}. {member} approves it with `mandate approvals approve {id}`; \
                     you can deny it"
                );
                let agent_id: String = tx.query_row(
                    "SELECT agent_id FROM approvals WHERE id = ?1",
                    params![id],
                    |r| r.get(0),
                )?;
                audit::append(
                    tx,
                    now,
                    NewEvent::new(&actor, "approval.refused", Decision::Deny)
                        .agent(&agent_id)
                        .target(Target::new("agent", &agent_id, &a.agent))
                        .reason(why.clone())
                        .details(json!({"approval": id, "action": a.action, "member": member})),
                )?;
                Ok(Some(why))
            })?;
            if let Some(why) = refused {
                return Err(Error::Refused(why));
            }
        }
        self.decide(id, &actor, |now| {
            let until = window.until(now);
            (
                "approved",
                None,
                until,
                json!({"window": format!("{window:?}").to_lowercase(),
                       "valid_until": until.map(ts)}),
            )
        })
    }

    /// A person says no, with a reason. Audited as `approval.denied`.
    pub fn deny_approval(&self, id: &str, reason: &str) -> Result<Approval> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(Error::invalid(
                "say why you deny it (--reason): the agent is told, and the audit trail records \
                 it",
            ));
        }
        let actor = self.actor()?;
        let r = reason.to_string();
        self.decide(id, &actor, move |_| ("denied", Some(r), None, json!({})))
    }

    #[allow(
        clippy::type_complexity,
        reason = "one private step of approve and deny"
    )]
    fn decide(
        &self,
        id: &str,
        actor: &Actor,
        what: impl FnOnce(
            DateTime<Utc>,
        ) -> (
            &'static str,
            Option<String>,
            Option<DateTime<Utc>>,
            serde_json::Value,
        ),
    ) -> Result<Approval> {
        self.write(|tx, now| {
            let a = load(tx, id)?.ok_or_else(|| {
                Error::not_found_hint(
                    "approval request",
                    id,
                    "`mandate approvals list` shows the open ones".to_string(),
                )
            })?;
            if a.status != ApprovalStatus::Pending || a.expires_at <= now {
                return Err(Error::Conflict(format!(
                    "the request {id} is {} already; nothing to decide",
                    if a.status == ApprovalStatus::Pending {
                        "expired"
                    } else {
                        a.status.as_str()
                    }
                )));
            }
            let (status, reason, until, mut details) = what(now);
            tx.execute(
                "UPDATE approvals SET status = ?2, decided_by = ?3, decided_at = ?4, reason = ?5,
                     valid_until = ?6 WHERE id = ?1",
                params![id, status, actor.name, ts(now), reason, until.map(ts)],
            )?;
            let agent_id: String = tx.query_row(
                "SELECT agent_id FROM approvals WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )?;
            details["approval"] = json!(id);
            details["action"] = json!(a.action);
            details["agent"] = json!(a.agent);
            let mut ev = NewEvent::new(
                actor,
                &format!("approval.{status}"),
                if status == "approved" {
                    Decision::Allow
                } else {
                    Decision::Deny
                },
            )
            .agent(&agent_id)
            .target(Target::new("agent", &agent_id, &a.agent))
            .details(details);
            if let Some(r) = reason {
                ev = ev.reason(r);
            }
            audit::append(tx, now, ev)?;
            Ok(())
        })?;
        self.approval(id)
    }

    /// Close requests nobody answered before they expired, each audited as
    /// `approval.expired` (Mandate's own act). Returns how many.
    pub fn expire_approvals(&self) -> Result<usize> {
        self.write(|tx, now| {
            let ids: Vec<(String, String, String)> = tx.query_map(
                "SELECT p.id, p.agent_id, a.name FROM approvals p
                     JOIN agents a ON a.id = p.agent_id
                     WHERE p.status = 'pending' AND p.expires_at <= ?1",
                params![ts(now)],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            for (id, agent_id, agent) in &ids {
                tx.execute(
                    "UPDATE approvals SET status = 'expired' WHERE id = ?1",
                    params![id],
                )?;
                audit::append(
                    tx,
                    now,
                    NewEvent::new(
                        &Actor::system("approvals", "an unanswered request expired"),
                        "approval.expired",
                        Decision::Deny,
                    )
                    .agent(agent_id)
                    .target(Target::new("agent", agent_id, agent))
                    .details(json!({"approval": id})),
                )?;
            }
            Ok(ids.len())
        })
    }
}

pub(crate) fn load(conn: &Tx<'_>, id: &str) -> Result<Option<Approval>> {
    type Row = (
        String,
        String,
        String,
        String,
        Option<String>,
        String,
        String,
        i32,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        bool,
    );
    let row: Option<Row> = conn.query_opt(
        "SELECT p.id, a.name, c.name, p.action, p.on_behalf_of, p.why, p.trust_state,
                    p.trust_score, p.status, p.requested_at, p.expires_at, p.decided_by,
                    p.decided_at, p.reason, p.valid_until,
                    CASE WHEN EXISTS (SELECT 1 FROM mcp_servers s
                                      WHERE s.connection_id = p.connection_id)
                         THEN 1 ELSE 0 END
             FROM approvals p JOIN agents a ON a.id = p.agent_id
             JOIN connections c ON c.id = p.connection_id
             WHERE p.id = ?1",
        params![id],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
                r.get(10)?,
                r.get(11)?,
                r.get(12)?,
                r.get(13)?,
                r.get(14)?,
                r.get(15)?,
            ))
        },
    )?;
    let Some((
        id,
        agent,
        connection,
        action,
        on_behalf_of,
        why,
        trust_state,
        trust_score,
        status,
        requested,
        expires,
        decided_by,
        decided_at,
        reason,
        valid_until,
        at_mcp_gateway,
    )) = row
    else {
        return Ok(None);
    };
    let requested_at = parse_time(&requested)?;
    let hold = if at_mcp_gateway {
        mcp_hold_from_env()
    } else {
        hold_from_env()
    };
    let held_until = (!id.starts_with(CIBA_ID_PREFIX))
        .then(|| requested_at + Duration::from_std(hold).unwrap_or_else(|_| Duration::zero()));
    Ok(Some(Approval {
        id,
        agent,
        connection,
        action,
        on_behalf_of,
        why,
        trust_state,
        trust_score,
        status: ApprovalStatus::from_db(&status)?,
        held_until,
        requested_at,
        expires_at: parse_time(&expires)?,
        decided_by,
        decided_at: decided_at.as_deref().map(parse_time).transpose()?,
        reason,
        valid_until: valid_until.as_deref().map(parse_time).transpose()?,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn a_time_box_for_today_ends_at_midnight_utc() {
        let now = DateTime::parse_from_rfc3339("2026-12-04T16:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            ApprovalWindow::Today.until(now).unwrap().to_rfc3339(),
            "2026-12-05T00:00:00+00:00"
        );
        assert_eq!(
            ApprovalWindow::Hour.until(now).unwrap() - now,
            Duration::hours(1)
        );
        assert!(ApprovalWindow::Once.until(now).is_none());
    }
}
