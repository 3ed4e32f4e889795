//! Delegations: "agent X may act for member M, with scopes S, until T, for task K".
//!
//! A delegation lets the agent obtain, through RFC 8693 token exchange, a token whose `sub`
//! is the member and whose `act.sub` is the agent. Its scopes must be among the agent's
//! grants when it is made, and a token minted under it never outlives it. Revoking it makes
//! every token minted under it inactive at the next introspection.
//!
//! What it is not: approval workflows (a person registers the delegation through the CLI or
//! the app; agents cannot create them over HTTP).

use crate::store::{Tx, params};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::Serialize;
use serde_json::json;

use crate::Mandate;
use crate::audit::{self, Actor, Decision, NewEvent, Target};
use crate::error::{Error, Result};
use crate::model::{AgentStatus, Scope};

/// The longest a delegation may run.
pub const MAX_DELEGATION_DAYS: i64 = 90;

/// A new delegation.
#[derive(Debug, Clone)]
pub struct NewDelegation {
    /// The agent (name) that will act.
    pub agent: String,
    /// The team member (name) it acts for.
    pub member: String,
    pub scopes: Vec<String>,
    pub until: DateTime<Utc>,
    pub task: String,
}

/// A delegation as users see it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Delegation {
    pub id: String,
    pub agent: String,
    pub member: String,
    pub scopes: Vec<String>,
    pub task: String,
    pub until: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_reason: Option<String>,
    /// Unrevoked and not yet past `until`.
    pub active: bool,
    #[serde(skip)]
    pub(crate) agent_id: String,
    #[serde(skip)]
    pub(crate) member_id: String,
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap_or_default()
}

fn load(
    conn: &Tx<'_>,
    id: Option<&str>,
    agent_id: Option<&str>,
    now: i64,
) -> Result<Vec<Delegation>> {
    let rows = conn.query_map(
        "SELECT d.id, a.name, m.name, d.scopes, d.task, d.not_after, d.created_at, d.revoked_at,
                d.revoked_reason, d.agent_id, d.member_id
         FROM delegations d JOIN agents a ON a.id = d.agent_id JOIN members m ON m.id = d.member_id
         WHERE (CAST(?1 AS TEXT) IS NULL OR d.id = ?1)
           AND (CAST(?2 AS TEXT) IS NULL OR d.agent_id = ?2)
         ORDER BY d.created_at, d.id",
        params![id, agent_id],
        |r| {
            Ok((
                r.get::<String>(0)?,
                r.get::<String>(1)?,
                r.get::<String>(2)?,
                r.get::<String>(3)?,
                r.get::<String>(4)?,
                r.get::<i64>(5)?,
                r.get::<i64>(6)?,
                r.get::<Option<i64>>(7)?,
                r.get::<Option<String>>(8)?,
                r.get::<String>(9)?,
                r.get::<String>(10)?,
            ))
        },
    )?;
    let mut out = Vec::new();
    for (
        id,
        agent,
        member,
        scopes,
        task,
        not_after,
        created,
        revoked,
        reason,
        agent_id,
        member_id,
    ) in rows
    {
        out.push(Delegation {
            id,
            agent,
            member,
            scopes: serde_json::from_str(&scopes).map_err(|e| {
                Error::Storage(format!("a delegation's scopes are unreadable ({e})"))
            })?,
            task,
            until: at(not_after),
            created_at: at(created),
            revoked_at: revoked.map(at),
            revoked_reason: reason,
            active: revoked.is_none() && not_after > now,
            agent_id,
            member_id,
        });
    }
    Ok(out)
}

impl Mandate {
    /// Register a delegation. Its scopes must be among the agent's grants.
    pub fn add_delegation(&self, new: NewDelegation) -> Result<Delegation> {
        let task = new.task.trim().to_string();
        if task.is_empty() || task.chars().count() > 200 {
            return Err(Error::invalid(
                "say what the delegation is for with --task (1 to 200 characters): the audit \
                 trail and every token minted under it name the task",
            ));
        }
        if new.scopes.is_empty() {
            return Err(Error::invalid(
                "a delegation needs at least one --scope (connection:action)",
            ));
        }
        let mut scopes: Vec<String> = Vec::new();
        for s in &new.scopes {
            let s = Scope::parse(s)?.as_str().to_string();
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
        scopes.sort();
        let now = self.now();
        if new.until <= now {
            return Err(Error::invalid("--until must be in the future"));
        }
        if new.until > now + Duration::days(MAX_DELEGATION_DAYS) {
            return Err(Error::invalid(format!(
                "a delegation may run at most {MAX_DELEGATION_DAYS} days; choose an earlier --until"
            )));
        }
        let agent = self.get_agent(&new.agent)?;
        if agent.status == AgentStatus::Revoked {
            return Err(Error::Conflict(format!(
                "'{}' is revoked and cannot act for anyone",
                agent.name
            )));
        }
        for s in &scopes {
            if !agent.scopes.iter().any(|g| g.as_str() == s) {
                return Err(Error::invalid(format!(
                    "'{}' holds no grant for {s}; a delegation can only narrow what the agent may \
                     do. Grant it first with `mandate agent edit {} --add-scope {s}`",
                    agent.name, agent.name
                )));
            }
        }
        let member = self.member_actor(&new.member)?;
        let actor = self.actor()?;
        let id = uuid::Uuid::now_v7().to_string();
        let until = new.until.timestamp();
        let scopes_json =
            serde_json::to_string(&scopes).map_err(|e| Error::Storage(e.to_string()))?;
        let agent_id = agent.id.as_str().to_string();
        self.write(|tx, now| {
            tx.execute(
                "INSERT INTO delegations (id, agent_id, member_id, scopes, task, not_after, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![id, agent_id, member.id, scopes_json, task, until, now.timestamp()],
            )?;
            audit::append(
                tx,
                now,
                NewEvent::new(&actor, "delegation.added", Decision::Allow)
                    .target(Target::new("delegation", &id, &task))
                    .agent(&agent_id)
                    .on_behalf_of(member.clone())
                    .details(json!({
                        "agent": agent.name.as_str(),
                        "member": member.name,
                        "scopes": scopes,
                        "until": audit::format_time(at(until)),
                        "task": task,
                    })),
            )?;
            Ok(())
        })?;
        self.delegation(&id)
    }

    /// One delegation by id.
    pub fn delegation(&self, id: &str) -> Result<Delegation> {
        let mut guard = self.lock()?;
        let conn = guard.tx()?;
        load(&conn, Some(id), None, self.now().timestamp())?
            .pop()
            .ok_or_else(|| {
                Error::not_found_hint("delegation", id, "`mandate delegation list` shows them")
            })
    }

    /// Every delegation, or one agent's.
    pub fn list_delegations(&self, agent: Option<&str>) -> Result<Vec<Delegation>> {
        let agent_id = match agent {
            Some(a) => Some(self.agent_id_by_name(a)?),
            None => None,
        };
        let mut guard = self.lock()?;
        let conn = guard.tx()?;
        load(
            &conn,
            None,
            agent_id.as_ref().map(|a| a.as_str()),
            self.now().timestamp(),
        )
    }

    /// Revoke a delegation: every token minted under it is inactive from the next request.
    pub fn revoke_delegation(&self, id: &str, reason: &str) -> Result<Delegation> {
        let reason = reason.trim().to_string();
        if reason.is_empty() {
            return Err(Error::invalid(
                "say why the delegation is revoked (--reason): the audit trail records it",
            ));
        }
        let d = self.delegation(id)?;
        if d.revoked_at.is_some() {
            return Err(Error::Conflict(format!(
                "the delegation {id} is already revoked"
            )));
        }
        let actor = self.actor()?;
        let member = Actor::member(&d.member_id, &d.member);
        self.write(|tx, now| {
            let n = tx.execute(
                "UPDATE delegations SET revoked_at = ?2, revoked_reason = ?3
                 WHERE id = ?1 AND revoked_at IS NULL",
                params![d.id, now.timestamp(), reason],
            )?;
            if n != 1 {
                return Err(Error::Conflict(format!(
                    "the delegation {id} is already revoked"
                )));
            }
            audit::append(
                tx,
                now,
                NewEvent::new(&actor, "delegation.revoked", Decision::Allow)
                    .target(Target::new("delegation", &d.id, &d.task))
                    .agent(&d.agent_id)
                    .on_behalf_of(member.clone())
                    .reason(reason.clone())
                    .details(json!({"agent": d.agent, "member": d.member, "scopes": d.scopes})),
            )?;
            Ok(())
        })?;
        self.delegation(id)
    }

    /// The delegation row for an exchange, if it exists.
    /// The team member a delegation lets its agent act for, as an audit actor (`None` when
    /// the delegation is unknown).
    pub fn delegation_member(&self, id: &str) -> Option<crate::audit::Actor> {
        self.delegation_row(id)
            .ok()
            .flatten()
            .map(|d| crate::audit::Actor::member(&d.member_id, &d.member))
    }

    pub(crate) fn delegation_row(&self, id: &str) -> Result<Option<Delegation>> {
        let now = self.now().timestamp();
        self.read(|tx| delegation_row_on(tx, id, now))
    }
}

/// [`Mandate::delegation_row`] on a given connection (the endpoint passes a read-only one, so
/// that a token exchange never waits behind a group commit on the write connection).
pub(crate) fn delegation_row_on(conn: &Tx<'_>, id: &str, now: i64) -> Result<Option<Delegation>> {
    let exists: Option<i64> = conn.query_opt(
        "SELECT 1 FROM delegations WHERE id = ?1",
        params![id],
        |r| r.get(0),
    )?;
    if exists.is_none() {
        return Ok(None);
    }
    Ok(load(conn, Some(id), None, now)?.pop())
}
