//! The audit chain: append-only events, each hash covering the previous one.
//!
//! An event is serialised as RFC 8785 canonical JSON; its hash is
//! `SHA-256(previous hash || canonical bytes)`, with 32 zero bytes before the first event.
//! Appending happens inside the caller's SQLite transaction, so a change and its event commit
//! together or not at all (STYLE invariant 4). `docs/AUDIT_FORMAT.md` is the normative spec.
//!
//! This module never sees secrets: callers put names, ids and hashes in `details`, never
//! credentials or tokens.

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Who did something.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Actor {
    /// `member`, `agent` or `app`.
    pub kind: String,
    /// The member's or agent's id; for `app`, which part of the app (`cli`, `desktop`, `endpoint`).
    pub id: String,
    /// A human-readable name (member or agent name; for `app`, the OS user where known).
    pub name: String,
}

impl Actor {
    pub fn app(part: &str, name: &str) -> Self {
        Actor {
            kind: "app".into(),
            id: part.into(),
            name: name.into(),
        }
    }
    pub fn member(id: &str, name: &str) -> Self {
        Actor {
            kind: "member".into(),
            id: id.into(),
            name: name.into(),
        }
    }
    pub fn agent(id: &str, name: &str) -> Self {
        Actor {
            kind: "agent".into(),
            id: id.into(),
            name: name.into(),
        }
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
    /// The agent this event concerns, for filtering (not part of the hashed body beyond what
    /// `actor`/`target` already say).
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
    pub action: String,
    pub target: Option<Target>,
    pub decision: Decision,
    pub reason: Option<String>,
    pub details: serde_json::Value,
}

/// Format version of the event body.
pub const EVENT_VERSION: u32 = 1;

/// Format a time the way events carry it.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The RFC 8785 canonical bytes of an event.
pub fn canonical_bytes(ev: &AuditEvent) -> Result<Vec<u8>> {
    serde_json_canonicalizer::to_vec(ev)
        .map_err(|e| Error::Storage(format!("could not canonicalise an audit event: {e}")))
}

/// `SHA-256(prev || canonical)`.
pub fn chain_hash(prev: &[u8; 32], canonical: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(canonical);
    h.finalize().into()
}

/// The hash before the first event.
pub const GENESIS: [u8; 32] = [0u8; 32];

/// Append an event inside the caller's transaction. The transaction must have been started
/// with `BEGIN IMMEDIATE` (the chain reads the previous hash).
pub fn append(tx: &Transaction<'_>, now: DateTime<Utc>, ev: NewEvent) -> Result<AuditEvent> {
    let last: Option<(i64, Vec<u8>)> = tx
        .query_row(
            "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
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
    let event = AuditEvent {
        v: EVENT_VERSION,
        seq,
        time: format_time(now),
        actor: ev.actor,
        on_behalf_of: ev.on_behalf_of,
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

/// Recompute every hash in the store and report the first inconsistency.
pub fn verify_store(conn: &rusqlite::Connection) -> Result<ChainReport> {
    let mut stmt = conn.prepare("SELECT seq, body, hash FROM audit_events ORDER BY seq")?;
    let mut rows = stmt.query([])?;
    let mut prev = GENESIS;
    let mut expected_seq = 1u64;
    let mut count = 0u64;
    while let Some(r) = rows.next()? {
        let seq: i64 = r.get(0)?;
        let body: Vec<u8> = r.get(1)?;
        let stored: Vec<u8> = r.get(2)?;
        let seq = seq as u64;
        let broke = |problem: String| -> Result<ChainReport> {
            Ok(ChainReport {
                events: count,
                head: hex(&prev),
                first_break: Some(ChainBreak { seq, problem }),
            })
        };
        if seq != expected_seq {
            return broke(format!(
                "expected event #{expected_seq} but found #{seq}: events are missing or were \
                 inserted"
            ));
        }
        let parsed: AuditEvent = match serde_json::from_slice(&body) {
            Ok(e) => e,
            Err(e) => return broke(format!("event #{seq} is not valid JSON ({e})")),
        };
        if parsed.seq != seq {
            return broke(format!(
                "event #{seq} says it is #{}: events were reordered",
                parsed.seq
            ));
        }
        let canonical = canonical_bytes(&parsed)?;
        if canonical != body {
            return broke(format!(
                "event #{seq} is not in canonical form: it was edited"
            ));
        }
        let h = chain_hash(&prev, &canonical);
        if h.as_slice() != stored.as_slice() {
            return broke(format!(
                "event #{seq} does not match its hash: it, or an event before it, was changed"
            ));
        }
        prev = h;
        expected_seq += 1;
        count += 1;
    }
    Ok(ChainReport {
        events: count,
        head: hex(&prev),
        first_break: None,
    })
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Read events, newest first, optionally for one agent.
pub fn list(
    conn: &rusqlite::Connection,
    agent_id: Option<&str>,
    limit: u32,
    before_seq: Option<u64>,
) -> Result<Vec<AuditEvent>> {
    let mut stmt = conn.prepare(
        "SELECT body FROM audit_events
         WHERE (?1 IS NULL OR agent_id = ?1) AND (?2 IS NULL OR seq < ?2)
         ORDER BY seq DESC LIMIT ?3",
    )?;
    let rows = stmt.query_map(
        params![agent_id, before_seq.map(|s| s as i64), limit as i64],
        |r| r.get::<_, Vec<u8>>(0),
    )?;
    let mut out = Vec::new();
    for body in rows {
        let body = body?;
        out.push(
            serde_json::from_slice(&body)
                .map_err(|e| Error::Storage(format!("an audit event is unreadable: {e}")))?,
        );
    }
    Ok(out)
}
