//! The audit trail: append-only events, a hash chain, an RFC 9162 Merkle tree over the same
//! events, signed checkpoints, evidence bundles and their offline verification.
//!
//! An event is serialised as RFC 8785 canonical JSON; its Merkle leaf hash is
//! `SHA-256(0x00 || canonical bytes)` and its chain hash `SHA-256(previous hash || leaf hash)`,
//! with 32 zero bytes before the first event. Appending happens inside the
//! caller's SQLite transaction, so a change and its event commit together or not at all
//! (STYLE invariant 4). `docs/AUDIT_FORMAT.md` is the normative spec; the submodules are:
//!
//! - [`merkle`]: RFC 9162 tree hashes, inclusion and consistency proofs;
//! - [`note`]: checkpoints as C2SP signed notes;
//! - [`checkpoint`]: making and keeping checkpoints (database and the file beside it);
//! - [`verify`]: checking the live store or an evidence bundle, naming what broke and where;
//! - [`bundle`]: writing evidence bundles (whole log or an excerpt with proofs);
//! - [`tag`]: an HMAC over every committed batch, keyed from the OS keychain, so events written
//!   by someone without the keychain are told apart from Mandate's;
//! - `canonical`: an event's RFC 8785 bytes, with a fast path for the common shape;
//! - [`ocsf`] and [`syslog`]: shapes and transport for SIEMs.
//!
//! This module never sees secrets: callers put names, ids and hashes in `details`, never
//! credentials or tokens.

mod api;
mod canonical;
pub mod checkpoint;
// The format itself (bundles, Merkle trees, signed notes, I-JSON reading) is the pure
// `mandate-audit-format` crate, shared with `mandate-verify` and the verifier page.
pub use mandate_audit_format::{bundle, cosignature, json, merkle, note, pages, pdf};
pub mod ocsf;
pub mod syslog;
pub mod tag;
pub mod verify;

use crate::store::{Tx, params};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use api::{Export, ExportSelection, LiveCheck, Progress};
pub use canonical::canonical_bytes;

/// Who did something.
///
/// Every change names a person or an agent: `member` (a team member, the person who used the
/// app or the CLI), `agent` (an agent's own request to the endpoint or the broker), or
/// `os_user` (the CLI run by a login that has chosen no member: the login name, stated as
/// such). `system` is kept for what Mandate does when no person or agent acted (a request
/// whose client could not be identified; an issuer key made at the first start before anyone
/// chose who they are); docs/ARCHITECTURE.md lists each use. `app` is what versions before
/// people were named wrote (`id` the part of the app, `name` the login name); old events keep
/// it, and it still reads and verifies.
///
/// The serialised shape (`kind`, `id`, `name`) is the same for every kind, so events written
/// by any version hash the same (docs/AUDIT_FORMAT.md §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Actor {
    /// `member`, `agent`, `os_user`, `system`, or (older events) `app`.
    pub kind: String,
    /// The member's or agent's id; the login name for `os_user`; the part of Mandate for
    /// `system` (`endpoint`, `broker`) and `app` (`cli`, `desktop`).
    pub id: String,
    /// A human-readable name: the member's or agent's name, the login name, or what the
    /// system part is.
    pub name: String,
}

/// The actor kinds in use, as [`Actor::kind`] spells them.
pub mod actor_kind {
    pub const MEMBER: &str = "member";
    pub const AGENT: &str = "agent";
    pub const OS_USER: &str = "os_user";
    pub const SYSTEM: &str = "system";
    /// Written by versions before people were named; read, never written.
    pub const APP: &str = "app";
}

impl Actor {
    /// The kind older versions wrote for every change. Only tests and old logs use it.
    pub fn app(part: &str, name: &str) -> Self {
        Actor {
            kind: actor_kind::APP.into(),
            id: part.into(),
            name: name.into(),
        }
    }
    pub fn member(id: &str, name: &str) -> Self {
        Actor {
            kind: actor_kind::MEMBER.into(),
            id: id.into(),
            name: name.into(),
        }
    }
    pub fn agent(id: &str, name: &str) -> Self {
        Actor {
            kind: actor_kind::AGENT.into(),
            id: id.into(),
            name: name.into(),
        }
    }
    /// A login that chose no member: the CLI's last resort (see `people`).
    pub fn os_user(login: &str) -> Self {
        Actor {
            kind: actor_kind::OS_USER.into(),
            id: login.into(),
            name: login.into(),
        }
    }
    /// Mandate itself, where no person or agent acted; `part` says which (`endpoint`,
    /// `broker`), `what` says it in words.
    pub fn system(part: &str, what: &str) -> Self {
        Actor {
            kind: actor_kind::SYSTEM.into(),
            id: part.into(),
            name: what.into(),
        }
    }

    /// Whether this actor is a person (a member, or a login that chose no member).
    pub fn is_person(&self) -> bool {
        self.kind == actor_kind::MEMBER || self.kind == actor_kind::OS_USER
    }

    /// In words, for reports: "member maria", "agent billing-bot", "OS user ann (no member
    /// chosen)", "Mandate (token endpoint)"; older events: "ann (the CLI)", or "the app" when
    /// no login name was recorded.
    pub fn describe(&self) -> String {
        match self.kind.as_str() {
            actor_kind::OS_USER => format!("OS user {} (no member chosen)", self.name),
            actor_kind::SYSTEM => format!("Mandate ({})", self.name),
            actor_kind::APP => {
                let part = match self.id.as_str() {
                    "cli" => "the CLI".to_string(),
                    "desktop" => "the app".to_string(),
                    other => format!("Mandate ({other})"),
                };
                let name = self.name.trim();
                if name.is_empty() || name == "unknown" || name == "Mandate app" {
                    part
                } else {
                    format!("{name} ({part})")
                }
            }
            kind => format!("{kind} {}", self.name),
        }
    }
}

#[cfg(test)]
mod actor_tests {
    use super::Actor;

    #[test]
    fn actors_say_who_in_words() {
        assert_eq!(Actor::member("m", "maria").describe(), "member maria");
        assert_eq!(Actor::agent("a", "bot").describe(), "agent bot");
        assert_eq!(
            Actor::os_user("ann").describe(),
            "OS user ann (no member chosen)"
        );
        assert_eq!(
            Actor::system("endpoint", "token endpoint").describe(),
            "Mandate (token endpoint)"
        );
        assert!(Actor::os_user("ann").is_person() && Actor::member("m", "m").is_person());
        assert!(!Actor::agent("a", "a").is_person() && !Actor::system("x", "x").is_person());
    }

    #[test]
    fn events_of_older_versions_still_describe_their_app_actor() {
        assert_eq!(Actor::app("cli", "ann").describe(), "ann (the CLI)");
        assert_eq!(Actor::app("desktop", "").describe(), "the app");
        assert_eq!(Actor::app("cli", "unknown").describe(), "the CLI");
        assert_eq!(Actor::app("endpoint", "").describe(), "Mandate (endpoint)");
    }
}

/// What an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Target {
    /// `agent`, `member`, `connection`, `token`, `key`, `issuer`, `delegation`...
    pub kind: String,
    pub id: String,
    pub name: String,
}

impl Target {
    pub fn new(kind: &str, id: &str, name: &str) -> Self {
        Target {
            kind: kind.into(),
            id: id.into(),
            name: name.into(),
        }
    }
}

/// The outcome recorded by an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// A change was made or a request was granted.
    Allow,
    /// A request was refused.
    Deny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        }
    }
}

/// An event before it is sequenced and hashed.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub actor: Actor,
    pub on_behalf_of: Option<Actor>,
    pub action: String,
    pub target: Option<Target>,
    pub decision: Decision,
    pub reason: Option<String>,
    pub details: serde_json::Value,
    /// The id of the agent this event concerns; hashed with the event (as `agent`) and kept in
    /// an indexed column for per-agent excerpts.
    pub agent_id: Option<String>,
}

impl NewEvent {
    pub fn new(actor: &Actor, action: &str, decision: Decision) -> Self {
        NewEvent {
            actor: actor.clone(),
            on_behalf_of: None,
            action: action.into(),
            target: None,
            decision,
            reason: None,
            details: serde_json::Value::Object(Default::default()),
            agent_id: None,
        }
    }
    pub fn target(mut self, t: Target) -> Self {
        self.target = Some(t);
        self
    }
    pub fn agent(mut self, agent_id: &str) -> Self {
        self.agent_id = Some(agent_id.into());
        self
    }
    pub fn reason(mut self, r: impl Into<String>) -> Self {
        self.reason = Some(r.into());
        self
    }
    pub fn details(mut self, d: serde_json::Value) -> Self {
        self.details = d;
        self
    }
    pub fn on_behalf_of(mut self, a: Actor) -> Self {
        self.on_behalf_of = Some(a);
        self
    }
}

/// A sequenced, hashed event as stored and exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct AuditEvent {
    pub v: u32,
    pub seq: u64,
    /// RFC 3339 UTC with microseconds, e.g. `2026-11-22T09:00:00.000000Z`.
    pub time: String,
    pub actor: Actor,
    pub on_behalf_of: Option<Actor>,
    /// The id of the agent the event concerns, if any.
    pub agent: Option<String>,
    pub action: String,
    pub target: Option<Target>,
    pub decision: Decision,
    pub reason: Option<String>,
    /// Strings, integers (|n| < 2^53), booleans, null, arrays and objects; no fractions.
    pub details: serde_json::Value,
}

/// Format version of the event body.
pub const EVENT_VERSION: u32 = 1;

/// The `details` key (value `true`) of a refusal that only enforced the agent's own trust
/// verdict (it is below a connection's or MCP server's floor). Behaviour does not count such
/// refusals as denials: counting them would keep an agent that a burst of denials made
/// UNTRUSTED there for as long as it keeps calling, even after a person reviewed it.
pub const TRUST_GATE: &str = "trust_gate";

/// Format a time the way events carry it.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub use mandate_audit_format::{GENESIS, chain_hash, chain_link, hex};

/// Refuse numbers that canonical JSON implementations disagree on (fractions, exponents,
/// integers beyond 2^53), so every verifier recomputes the same bytes.
fn check_details(v: &serde_json::Value) -> Result<()> {
    match v {
        serde_json::Value::Number(n) => {
            const MAX: u64 = 1 << 53;
            let ok = n.as_u64().map(|u| u < MAX).unwrap_or(false)
                || n.as_i64().map(|i| i.unsigned_abs() < MAX).unwrap_or(false);
            if ok {
                Ok(())
            } else {
                Err(Error::invalid(format!(
                    "audit details may hold integers below 2^53 only, not {n}; record it as a \
                     string"
                )))
            }
        }
        serde_json::Value::Array(a) => a.iter().try_for_each(check_details),
        serde_json::Value::Object(o) => o.values().try_for_each(check_details),
        _ => Ok(()),
    }
}

/// Append an event inside the caller's transaction. The transaction must have been started
/// with `BEGIN IMMEDIATE` (the chain reads the previous hash).
pub fn append(tx: &Tx<'_>, now: DateTime<Utc>, ev: NewEvent) -> Result<AuditEvent> {
    let last: Option<(i64, Vec<u8>)> = tx.query_opt(
        "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1",
        params![],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (seq, prev) = match last {
        Some((s, h)) => {
            let prev: [u8; 32] = h
                .as_slice()
                .try_into()
                .map_err(|_| Error::Storage("an audit hash has the wrong length".into()))?;
            (s as u64 + 1, prev)
        }
        None => (1, GENESIS),
    };
    check_details(&ev.details)?;
    let event = AuditEvent {
        v: EVENT_VERSION,
        seq,
        time: format_time(now),
        actor: ev.actor,
        on_behalf_of: ev.on_behalf_of,
        agent: ev.agent_id.clone(),
        action: ev.action,
        target: ev.target,
        decision: ev.decision,
        reason: ev.reason,
        details: ev.details,
    };
    let canonical = canonical_bytes(&event)?;
    let hash = chain_hash(&prev, &canonical);
    tx.execute(
        "INSERT INTO audit_events (seq, time, agent_id, action, decision, body, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            seq as i64,
            event.time,
            ev.agent_id,
            event.action,
            event.decision.as_str(),
            canonical,
            hash.as_slice()
        ],
    )?;
    Ok(event)
}

/// Where the chain first broke, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ChainBreak {
    pub seq: u64,
    pub problem: String,
}

/// The result of checking the live chain.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ChainReport {
    pub events: u64,
    /// Hex of the newest event's hash (the head), or of the genesis value when empty.
    pub head: String,
    pub first_break: Option<ChainBreak>,
}

impl ChainReport {
    pub fn ok(&self) -> bool {
        self.first_break.is_none()
    }
}

/// Recompute every hash link in the store and report the first inconsistency. Checkpoints
/// are not looked at: see [`Mandate::verify_audit`](crate::Mandate::verify_audit) for that.
pub fn verify_store(conn: &Tx<'_>) -> Result<ChainReport> {
    let inputs = verify::StoreInputs::default();
    let r = verify::check_store(conn, &inputs)?;
    let first = r.problems.iter().find(|p| {
        use verify::ProblemKind as K;
        matches!(p.kind, K::Edited | K::Deleted | K::Inserted | K::Reordered)
    });
    Ok(ChainReport {
        events: r.events,
        head: r.chain_head,
        first_break: first.map(|p| ChainBreak {
            seq: p.seq.unwrap_or(0),
            problem: p.message.clone(),
        }),
    })
}

/// Read events, newest first, optionally for one agent.
pub fn list(
    conn: &Tx<'_>,
    agent_id: Option<&str>,
    limit: u32,
    before_seq: Option<u64>,
) -> Result<Vec<AuditEvent>> {
    let rows = conn.query_map(
        "SELECT body FROM audit_events
         WHERE (CAST(?1 AS TEXT) IS NULL OR agent_id = ?1)
           AND (CAST(?2 AS BIGINT) IS NULL OR seq < ?2)
         ORDER BY seq DESC LIMIT ?3",
        params![agent_id, before_seq.map(|s| s as i64), limit as i64],
        |r| r.get::<Vec<u8>>(0),
    )?;
    let mut out = Vec::new();
    for body in rows {
        out.push(
            serde_json::from_slice(&body)
                .map_err(|e| Error::Storage(format!("an audit event is unreadable: {e}")))?,
        );
    }
    Ok(out)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]
mod tests;

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]
mod vectors;
