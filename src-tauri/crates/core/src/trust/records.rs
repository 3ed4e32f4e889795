//! What people change about trust, each change audited with the person who made it: the
//! thresholds and the organisation's minimum score, attestors (registered, revoked),
//! attestations (verified, stored, listed) and configuration reviews.
//!
//! Also the two reads the score needs beside the registry: the settings and the attestations
//! that count for an agent ([`counted`]). All SQL is plain (ON CONFLICT, no SQLite-only
//! functions) and kept in this file so the PostgreSQL store can take it over in one place.
//!
//! What it is not: the score (see the parent module) or the envelope format ([`super::attest`]).

use crate::store::{Tx, params};
use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::attest::{self, ReviewResult};
use super::{CountedAttestation, Thresholds};
use crate::Mandate;
use crate::audit::{self, Decision, NewEvent, Target};
use crate::error::{Error, Result};
use crate::keys;
use crate::registry::{agent_id_tx, load_agent, parse_time, ts};

/// The trust settings: thresholds and the organisation's minimum score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct TrustSettings {
    pub thresholds: Thresholds,
    /// Every request needs at least this score, whatever the connection (0: no floor).
    pub organisation_floor: i32,
}

/// A registered attestor.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Attestor {
    pub name: String,
    /// The SHA-256 fingerprint of its public key, as `mandate agent show` prints keys.
    pub fingerprint: String,
    /// The most points one of its attestations adds or removes.
    pub max_points: i32,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoke_reason: Option<String>,
}

/// An attestation as `mandate attest list` shows it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct AttestationView {
    pub id: String,
    pub agent: String,
    pub attestor: String,
    pub result: ReviewResult,
    /// What it adds (within the attestor's bound), when it counts.
    pub points: i32,
    pub scope_reviewed: Vec<String>,
    pub config_version: u32,
    pub expires_at: DateTime<Utc>,
    pub added_at: DateTime<Utc>,
    /// Whether it counts now.
    pub counts: bool,
    /// Why it does not count, as a sentence (None when it counts).
    pub why_not: Option<String>,
}

/// The most points one attestor may be given.
pub const MAX_ATTESTOR_POINTS: i32 = 30;

pub(crate) fn settings(conn: &Tx<'_>) -> Result<TrustSettings> {
    let (trusted_min, pending_min, organisation_floor) = conn.query_row(
        "SELECT trusted_min, pending_min, organisation_floor FROM trust_settings WHERE id = 1",
        params![],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok(TrustSettings {
        thresholds: Thresholds {
            trusted_min,
            pending_min,
        },
        organisation_floor,
    })
}

/// The attestations that count for agent `id` at configuration `version`, before expiry
/// (which the score checks at the request's time): the newest of each attestor not revoked.
pub(crate) fn counted(conn: &Tx<'_>, id: &str, version: u32) -> Result<Vec<CountedAttestation>> {
    let rows = conn.query_map(
        "SELECT s.name, a.points, a.result, a.expires_at
         FROM attestations a JOIN attestors s ON s.id = a.attestor_id
         WHERE a.agent_id = ?1 AND a.config_version = ?2 AND s.revoked_at IS NULL
         ORDER BY s.name, a.added_at DESC, a.id",
        params![id, version],
        |r| {
            Ok((
                r.get::<String>(0)?,
                r.get::<i32>(1)?,
                r.get::<String>(2)?,
                r.get::<String>(3)?,
            ))
        },
    )?;
    let mut out: Vec<CountedAttestation> = Vec::new();
    for (attestor, points, result, expires) in rows {
        if out.last().is_some_and(|l| l.attestor == attestor) {
            continue; // an older one from the same attestor: the newest speaks for it
        }
        out.push(CountedAttestation {
            attestor,
            points,
            result: ReviewResult::from_db(&result)?,
            expires_at: parse_time(&expires)?,
        });
    }
    Ok(out)
}

/// The reviewed configuration version of agent `id`.
pub(crate) fn reviewed_version(conn: &Tx<'_>, id: &str) -> Result<u32> {
    conn.query_row(
        "SELECT reviewed_config_version FROM agents WHERE id = ?1",
        params![id],
        |r| r.get(0),
    )
}

/// Keep the reviewed version in step after a change that does not alter what the agent may
/// do (a status change, a trust override, a key rotation within policy): if the version
/// before the change was reviewed, the new one is too.
pub(crate) fn keep_reviewed(tx: &Tx<'_>, id: &str) -> Result<()> {
    tx.execute(
        "UPDATE agents SET reviewed_config_version = config_version
         WHERE id = ?1 AND reviewed_config_version = config_version - 1",
        params![id],
    )?;
    Ok(())
}

/// An attestor's row: id, name, public key, max points, created, revoked, reason.
type AttestorRow = (
    String,
    String,
    Vec<u8>,
    i32,
    String,
    Option<String>,
    Option<String>,
);

fn load_attestor(conn: &Tx<'_>, name: &str) -> Result<(String, Attestor)> {
    let row: Option<AttestorRow> = conn.query_opt(
        "SELECT id, name, public_key, max_points, created_at, revoked_at, revoke_reason
             FROM attestors WHERE name = ?1",
        params![name],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        },
    )?;
    let Some((id, name, pk, max_points, created, revoked, reason)) = row else {
        return Err(Error::not_found_hint(
            "attestor",
            name,
            "`mandate attestor list` shows the registered ones".to_string(),
        ));
    };
    Ok((
        id,
        Attestor {
            name,
            fingerprint: fingerprint_of(&pk)?,
            max_points,
            created_at: parse_time(&created)?,
            revoked_at: revoked.as_deref().map(parse_time).transpose()?,
            revoke_reason: reason,
        },
    ))
}

fn fingerprint_of(pk: &[u8]) -> Result<String> {
    let arr: [u8; 32] = pk
        .try_into()
        .map_err(|_| Error::Storage("a stored attestor key has the wrong length".into()))?;
    let vk = VerifyingKey::from_bytes(&arr)
        .map_err(|_| Error::Storage("a stored attestor key is not a valid point".into()))?;
    Ok(keys::fingerprint(&vk))
}

fn validate_attestor_name(name: &str) -> Result<&str> {
    let name = name.trim();
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(name)
    } else {
        Err(Error::invalid(format!(
            "'{name}' is not an attestor name: use up to 64 letters, digits, '-', '_' or '.'"
        )))
    }
}

impl Mandate {
    /// The thresholds and the organisation's minimum score.
    pub fn trust_settings(&self) -> Result<TrustSettings> {
        self.read(settings)
    }

    /// Change the thresholds and/or the organisation's minimum score (None: keep). Audited as
    /// `trust.settings_changed` with the values before and after.
    pub fn set_trust_settings(
        &self,
        trusted_min: Option<i32>,
        pending_min: Option<i32>,
        organisation_floor: Option<i32>,
    ) -> Result<TrustSettings> {
        let actor = self.actor()?;
        self.write(|tx, now| {
            let before = settings(tx)?;
            let after = TrustSettings {
                thresholds: Thresholds {
                    trusted_min: trusted_min.unwrap_or(before.thresholds.trusted_min),
                    pending_min: pending_min.unwrap_or(before.thresholds.pending_min),
                },
                organisation_floor: organisation_floor.unwrap_or(before.organisation_floor),
            };
            let t = after.thresholds;
            if !(0 < t.pending_min && t.pending_min < t.trusted_min && t.trusted_min <= 100) {
                return Err(Error::invalid(format!(
                    "the thresholds must satisfy 0 < PENDING ({}) < TRUSTED ({}) <= 100; \
                     choose values in that order",
                    t.pending_min, t.trusted_min
                )));
            }
            if !(0..=100).contains(&after.organisation_floor) {
                return Err(Error::invalid(format!(
                    "the organisation's minimum score must be between 0 and 100, not {}",
                    after.organisation_floor
                )));
            }
            if after == before {
                return Ok(after);
            }
            tx.execute(
                "UPDATE trust_settings SET trusted_min = ?1, pending_min = ?2,
                     organisation_floor = ?3 WHERE id = 1",
                params![t.trusted_min, t.pending_min, after.organisation_floor],
            )?;
            audit::append(
                tx,
                now,
                NewEvent::new(&actor, "trust.settings_changed", Decision::Allow)
                    .target(Target::new(
                        "settings",
                        "trust",
                        "trust thresholds and floor",
                    ))
                    .details(json!({
                        "from": {"trusted_min": before.thresholds.trusted_min,
                                 "pending_min": before.thresholds.pending_min,
                                 "organisation_floor": before.organisation_floor},
                        "to": {"trusted_min": t.trusted_min, "pending_min": t.pending_min,
                               "organisation_floor": after.organisation_floor},
                    })),
            )?;
            Ok(after)
        })
    }

    /// Set (or with `None` clear) a connection's or MCP server's minimum trust score, beside
    /// its state floor. Audited as `connection.min_score_set`.
    pub fn set_connection_min_score(
        &self,
        name: &str,
        min_score: Option<i32>,
    ) -> Result<crate::model::Connection> {
        if let Some(n) = min_score
            && !(0..=100).contains(&n)
        {
            return Err(Error::invalid(format!(
                "a minimum score is between 0 and 100, not {n}"
            )));
        }
        let actor = self.actor()?;
        let id = self.write(|tx, now| {
            let c = crate::registry::connection_tx(tx, name)?;
            if c.min_score == min_score {
                return Ok(c.id);
            }
            tx.execute(
                "UPDATE connections SET min_score = ?2, updated_at = ?3 WHERE id = ?1",
                params![c.id.as_str(), min_score, ts(now)],
            )?;
            audit::append(
                tx,
                now,
                NewEvent::new(&actor, "connection.min_score_set", Decision::Allow)
                    .target(Target::new("connection", c.id.as_str(), c.name.as_str()))
                    .details(json!({"from": c.min_score, "to": min_score})),
            )?;
            Ok(c.id)
        })?;
        self.read(|tx| crate::registry::connection_tx(tx, id.as_str()))
    }

    /// Register an attestor with its Ed25519 public key (JWK, PEM or OpenSSH text) and the
    /// most points (1 to [`MAX_ATTESTOR_POINTS`]) one of its attestations may add or remove.
    pub fn add_attestor(&self, name: &str, public_key: &str, max_points: i32) -> Result<Attestor> {
        let name = validate_attestor_name(name)?;
        if !(1..=MAX_ATTESTOR_POINTS).contains(&max_points) {
            return Err(Error::invalid(format!(
                "--max-points must be between 1 and {MAX_ATTESTOR_POINTS}, not {max_points}: \
                 it bounds what one attestation may add to or take from a score of 100"
            )));
        }
        let key = keys::parse_public_key(public_key)?;
        let actor = self.actor()?;
        self.write(|tx, now| {
            let taken: Option<String> = tx.query_opt(
                "SELECT name FROM attestors WHERE name = ?1 OR public_key = ?2",
                params![name, key.as_bytes().as_slice()],
                |r| r.get(0),
            )?;
            if let Some(other) = taken {
                return Err(if other == name {
                    Error::AlreadyExists {
                        kind: "attestor",
                        name: name.into(),
                    }
                } else {
                    Error::Conflict(format!(
                        "this public key is already registered as the attestor '{other}'"
                    ))
                });
            }
            let id = uuid::Uuid::new_v4().to_string();
            tx.execute(
                "INSERT INTO attestors (id, name, public_key, max_points, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, name, key.as_bytes().as_slice(), max_points, ts(now)],
            )?;
            audit::append(
                tx,
                now,
                NewEvent::new(&actor, "attestor.added", Decision::Allow)
                    .target(Target::new("attestor", &id, name))
                    .details(json!({
                        "fingerprint": keys::fingerprint(&key),
                        "max_points": max_points,
                    })),
            )?;
            Ok(())
        })?;
        Ok(self.read(|tx| load_attestor(tx, name))?.1)
    }

    /// Withdraw an attestor: its attestations stop counting at once (they stay listed).
    pub fn revoke_attestor(&self, name: &str, reason: &str) -> Result<Attestor> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(Error::invalid(
                "say why the attestor is revoked (--reason): the audit trail records it",
            ));
        }
        let actor = self.actor()?;
        self.write(|tx, now| {
            let (id, a) = load_attestor(tx, name)?;
            if a.revoked_at.is_some() {
                return Err(Error::Conflict(format!(
                    "the attestor '{}' is already revoked",
                    a.name
                )));
            }
            tx.execute(
                "UPDATE attestors SET revoked_at = ?2, revoke_reason = ?3 WHERE id = ?1",
                params![id, ts(now), reason],
            )?;
            let withdrawn: i64 = tx.query_row(
                "SELECT COUNT(*) FROM attestations WHERE attestor_id = ?1",
                params![id],
                |r| r.get(0),
            )?;
            audit::append(
                tx,
                now,
                NewEvent::new(&actor, "attestor.revoked", Decision::Allow)
                    .target(Target::new("attestor", &id, &a.name))
                    .reason(reason)
                    .details(json!({"attestations_withdrawn": withdrawn})),
            )?;
            Ok(())
        })?;
        Ok(self.read(|tx| load_attestor(tx, name))?.1)
    }

    /// Every attestor, revoked ones included.
    pub fn list_attestors(&self) -> Result<Vec<Attestor>> {
        self.read(|conn| {
            let names: Vec<String> =
                conn.query_map("SELECT name FROM attestors ORDER BY name", params![], |r| {
                    r.get(0)
                })?;
            names
                .iter()
                .map(|n| load_attestor(conn, n).map(|(_, a)| a))
                .collect()
        })
    }

    /// What an attestor signs for `agent` now: the in-toto subject (name and digest of the
    /// agent's current configuration version) and the predicate type.
    pub fn attestation_subject(&self, agent: &str) -> Result<serde_json::Value> {
        self.read(|conn| {
            let id = agent_id_tx(conn, agent)?;
            let a = load_agent(conn, id.as_str(), self.now())?;
            let digest = config_digest_tx(conn, id.as_str())?;
            Ok(json!({
                "subject": [{"name": format!("{}{}", attest::SUBJECT_PREFIX, id.as_str()),
                             "digest": {"sha256": digest}}],
                "predicateType": attest::PREDICATE_TYPE,
                "agent": a.name.as_str(),
                "config_version": a.config_version,
                "scopes": a.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            }))
        })
    }

    /// Verify and store a DSSE-enveloped review attestation. Refused (and the refusal
    /// audited as `attestation.refused`), each with its reason: an unknown or revoked
    /// attestor, a bad signature, an expired review, an agent that does not exist, or another
    /// configuration version than the agent's current one.
    pub fn add_attestation(&self, envelope: &str) -> Result<AttestationView> {
        let actor = self.actor()?;
        let checked = self.check_attestation(envelope);
        let (opened, attestor_id, attestor_name, max_points, agent_id, agent_name, version) =
            match checked {
                Ok(c) => c,
                Err(e) => {
                    let mut ev = NewEvent::new(&actor, "attestation.refused", Decision::Deny)
                        .reason(e.to_string())
                        .details(json!({
                            "envelope_sha256": attest::hex(&Sha256::digest(envelope.as_bytes()))
                        }));
                    if let Some(id) = agent_in(envelope) {
                        ev.details["subject_agent"] = json!(id);
                    }
                    self.record(ev)?;
                    return Err(e);
                }
            };
        let points = attest::bounded_points(&opened.review, max_points);
        let digest = attest::hex(&Sha256::digest(envelope.as_bytes()));
        let id = uuid::Uuid::new_v4().to_string();
        self.write(|tx, now| {
            let exists: Option<String> = tx.query_opt(
                "SELECT id FROM attestations WHERE envelope_sha256 = ?1",
                params![digest],
                |r| r.get(0),
            )?;
            if exists.is_some() {
                return Err(Error::Conflict(
                    "this attestation is already stored; `mandate attest list AGENT` shows it"
                        .into(),
                ));
            }
            let r = &opened.review;
            tx.execute(
                "INSERT INTO attestations (id, agent_id, attestor_id, config_version,
                     config_digest, result, points, scope_reviewed, expires_at, envelope_sha256,
                     envelope, added_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    id,
                    agent_id,
                    attestor_id,
                    version,
                    r.config_digest,
                    r.result.as_str(),
                    points,
                    serde_json::to_string(&r.scope_reviewed).unwrap_or_default(),
                    ts(r.expires),
                    digest,
                    envelope,
                    ts(now),
                ],
            )?;
            audit::append(
                tx,
                now,
                NewEvent::new(&actor, "attestation.added", Decision::Allow)
                    .target(Target::new("agent", &agent_id, &agent_name))
                    .agent(&agent_id)
                    .details(json!({
                        "attestor": attestor_name,
                        "result": r.result.as_str(),
                        "points": points,
                        "max_points": max_points,
                        "config_version": version,
                        "expires": ts(r.expires),
                        "envelope_sha256": digest,
                    })),
            )?;
            Ok(())
        })?;
        self.list_attestations(&agent_name)?
            .into_iter()
            .find(|a| a.id == id)
            .ok_or_else(|| Error::Storage("a stored attestation could not be read back".into()))
    }

    #[allow(
        clippy::type_complexity,
        reason = "one private step of add_attestation"
    )]
    fn check_attestation(
        &self,
        envelope: &str,
    ) -> Result<(attest::Opened, String, String, i32, String, String, u32)> {
        self.read(|conn| {
            let now = self.now();
            let rows: Vec<(String, String, Vec<u8>, i32, Option<String>)> = conn.query_map(
                "SELECT id, name, public_key, max_points, revoked_at FROM attestors",
                params![],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )?;
            let mut keys_ = Vec::with_capacity(rows.len());
            for (_, name, pk, _, revoked) in &rows {
                let arr: [u8; 32] = pk.as_slice().try_into().map_err(|_| {
                    Error::Storage("a stored attestor key has the wrong length".into())
                })?;
                keys_.push(attest::SignerKey {
                    name,
                    key: VerifyingKey::from_bytes(&arr).map_err(|_| {
                        Error::Storage("a stored attestor key is not a valid point".into())
                    })?,
                    revoked: revoked.is_some(),
                });
            }
            let opened = attest::open(envelope, &keys_)?;
            let (attestor_id, attestor_name, _, max_points, _) = rows[opened.signer].clone();
            let r = &opened.review;
            if r.expires <= now {
                return Err(Error::Refused(format!(
                    "the attestation from '{attestor_name}' expired on {}; ask for a new review",
                    r.expires.format("%Y-%m-%d %H:%M UTC")
                )));
            }
            let agent_id: Option<(String, String, u32)> = conn.query_opt(
                "SELECT id, name, config_version FROM agents WHERE id = ?1",
                params![r.agent_id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )?;
            let Some((agent_id, agent_name, version)) = agent_id else {
                return Err(Error::not_found_hint(
                    "agent",
                    r.agent_id.clone(),
                    "the attestation's subject names an agent id this installation does not have"
                        .to_string(),
                ));
            };
            let current = config_digest_tx(conn, &agent_id)?;
            if current != r.config_digest {
                return Err(Error::Refused(format!(
                    "the attestation from '{attestor_name}' is for another configuration of \
                     '{agent_name}' than its current version {version}; ask for a review of the \
                     current one (`mandate attest subject {agent_name}` prints what to sign)"
                )));
            }
            Ok((
                opened,
                attestor_id,
                attestor_name,
                max_points,
                agent_id,
                agent_name,
                version,
            ))
        })
    }

    /// An agent's attestations, newest first, each saying whether it counts now and why not.
    pub fn list_attestations(&self, agent: &str) -> Result<Vec<AttestationView>> {
        self.read(|conn| {
            let now = self.now();
            let id = agent_id_tx(conn, agent)?;
            let (name, version): (String, u32) = conn.query_row(
                "SELECT name, config_version FROM agents WHERE id = ?1",
                params![id.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let counting: Vec<String> = counted(conn, id.as_str(), version)?
                .into_iter()
                .map(|c| c.attestor)
                .collect();
            type Row = (
                String,
                String,
                String,
                i32,
                String,
                u32,
                String,
                String,
                Option<String>,
            );
            let rows: Vec<Row> = conn.query_map(
                "SELECT a.id, s.name, a.result, a.points, a.scope_reviewed, a.config_version,
                            a.expires_at, a.added_at, s.revoked_at
                     FROM attestations a JOIN attestors s ON s.id = a.attestor_id
                     WHERE a.agent_id = ?1 ORDER BY a.added_at DESC, a.id",
                params![id.as_str()],
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
                    ))
                },
            )?;
            let mut seen_attestors = std::collections::BTreeSet::new();
            let mut out = Vec::with_capacity(rows.len());
            for (aid, attestor, result, points, scopes, v, expires, added, revoked) in rows {
                let expires_at = parse_time(&expires)?;
                let newest_of_attestor = seen_attestors.insert(attestor.clone());
                let why_not = if revoked.is_some() {
                    Some(format!("the attestor '{attestor}' was revoked"))
                } else if v != version {
                    Some(format!(
                        "it is for configuration version {v}; the agent is at version {version} now"
                    ))
                } else if expires_at <= now {
                    Some("it expired".to_string())
                } else if !newest_of_attestor || !counting.contains(&attestor) {
                    Some(format!("a newer attestation from '{attestor}' replaces it"))
                } else {
                    None
                };
                out.push(AttestationView {
                    id: aid,
                    agent: name.clone(),
                    attestor,
                    result: ReviewResult::from_db(&result)?,
                    points,
                    scope_reviewed: serde_json::from_str(&scopes).unwrap_or_default(),
                    config_version: v,
                    expires_at,
                    added_at: parse_time(&added)?,
                    counts: why_not.is_none(),
                    why_not,
                });
            }
            Ok(out)
        })
    }

    /// A member reviews an agent's current configuration: drift no longer holds it at
    /// PENDING. Audited as `agent.reviewed` with the versions.
    pub fn review_agent(&self, name: &str, note: Option<&str>) -> Result<crate::model::Agent> {
        let actor = self.actor()?;
        let id = self.write(|tx, now| {
            let id = agent_id_tx(tx, name)?;
            let agent = load_agent(tx, id.as_str(), now)?;
            let reviewed = reviewed_version(tx, id.as_str())?;
            if reviewed >= agent.config_version {
                return Err(Error::Conflict(format!(
                    "'{}' has no configuration change to review: version {} was already \
                     reviewed",
                    agent.name, agent.config_version
                )));
            }
            tx.execute(
                "UPDATE agents SET reviewed_config_version = config_version WHERE id = ?1",
                params![id.as_str()],
            )?;
            let mut ev = NewEvent::new(&actor, "agent.reviewed", Decision::Allow)
                .target(Target::new("agent", id.as_str(), agent.name.as_str()))
                .agent(id.as_str())
                .details(json!({
                    "config_version": agent.config_version,
                    "previously_reviewed": reviewed,
                    "score": agent.trust.score,
                }));
            if let Some(n) = note.map(str::trim).filter(|n| !n.is_empty()) {
                ev = ev.reason(n);
            }
            audit::append(tx, now, ev)?;
            Ok(id)
        })?;
        self.get_agent(id.as_str())
    }
}

/// The digest of agent `id`'s current configuration (see [`attest::config_digest`]).
pub(crate) fn config_digest_tx(conn: &Tx<'_>, id: &str) -> Result<String> {
    let (version, parent, purpose): (u32, Option<String>, String) = conn.query_row(
        "SELECT config_version, parent_id, purpose FROM agents WHERE id = ?1",
        params![id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let scopes: Vec<String> = conn.query_map(
        "SELECT scope FROM agent_scopes WHERE agent_id = ?1",
        params![id],
        |r| r.get(0),
    )?;
    attest::config_digest(id, version, parent.as_deref(), &purpose, &scopes)
}

/// The agent id an envelope's statement names, if it can be read (for auditing a refusal).
fn agent_in(envelope: &str) -> Option<String> {
    use base64::Engine;
    let v: serde_json::Value = serde_json::from_str(envelope).ok()?;
    let payload = v.get("payload")?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .ok()?;
    let st: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let name = st.get("subject")?.get(0)?.get("name")?.as_str()?;
    name.strip_prefix(attest::SUBJECT_PREFIX)
        .map(|s| s.chars().take(64).collect())
}

/// The trust records on both stores (SQLite, and PostgreSQL when `MANDATE_TEST_POSTGRES` names
/// one): every query of this module, of the approvals inbox and of the refresher runs through
/// the storage seam, so each must read back what it wrote on either engine.
#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod on_both_stores {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use ed25519_dalek::{Signer, SigningKey};

    use crate::approvals::{ApprovalMode, ApprovalWindow, Ask, Outcome};
    use crate::store::testing::each_store;
    use crate::trust::attest::{PAYLOAD_TYPE, PREDICATE_TYPE, STATEMENT_TYPE, pae};

    fn signed(key: &SigningKey, subject: &serde_json::Value) -> String {
        let payload = serde_json::to_vec(&serde_json::json!({
            "_type": STATEMENT_TYPE,
            "subject": subject["subject"],
            "predicateType": PREDICATE_TYPE,
            "predicate": {"result": "pass", "scope_reviewed": [],
                          "expires": "2030-01-01T00:00:00Z"},
        }))
        .unwrap();
        let sig = key.sign(&pae(PAYLOAD_TYPE, &payload));
        serde_json::json!({
            "payloadType": PAYLOAD_TYPE,
            "payload": STANDARD.encode(&payload),
            "signatures": [{"keyid": "k", "sig": STANDARD.encode(sig.to_bytes())}],
        })
        .to_string()
    }

    #[test]
    fn the_refresher_sums_minutes_on_postgresql_and_every_trust_record_round_trips_on_each_store() {
        each_store(|s| {
            let m = s.open();
            m.add_member("founder", None).unwrap();
            m.add_connection(crate::NewConnection {
                name: "billing".into(),
                base_url: "https://api.example.com".into(),
                actions: vec!["read=GET:/v1/invoices".into()],
                trust_floor: None,
            })
            .unwrap();
            m.add_agent(crate::NewAgent {
                name: "billing-report-agent".into(),
                purpose: "monthly billing report".into(),
                owner: "founder".into(),
                parent: None,
                scopes: vec![],
                key: crate::KeyChoice::GenerateInKeychain,
            })
            .unwrap();

            // Thresholds, the organisation's floor and a connection's minimum score.
            let t = m.set_trust_settings(Some(80), Some(30), Some(10)).unwrap();
            assert_eq!(m.trust_settings().unwrap(), t);
            assert_eq!(t.thresholds.trusted_min, 80);
            assert_eq!(t.organisation_floor, 10);
            assert!(m.set_trust_settings(Some(20), Some(30), None).is_err());
            assert_eq!(
                m.trust_settings().unwrap(),
                t,
                "a refused change writes nothing"
            );
            let c = m.set_connection_min_score("billing", Some(50)).unwrap();
            assert_eq!(c.min_score, Some(50));

            // An attestor (its key a BYTEA/BLOB), an attestation that counts, and revocation.
            let key = SigningKey::from_bytes(&[7; 32]);
            let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes())})
            .to_string();
            let a = m.add_attestor("acme-review", &jwk, 10).unwrap();
            assert_eq!(a.max_points, 10);
            assert!(
                m.add_attestor("copy", &jwk, 5).is_err(),
                "one key, one attestor"
            );
            let subject = m.attestation_subject("billing-report-agent").unwrap();
            let view = m.add_attestation(&signed(&key, &subject)).unwrap();
            assert!(view.counts, "{:?}", view.why_not);
            assert_eq!(view.points, 10);
            assert_eq!(
                m.list_attestations("billing-report-agent").unwrap().len(),
                1
            );
            m.revoke_attestor("acme-review", "key lost").unwrap();
            let after = m.list_attestations("billing-report-agent").unwrap();
            assert!(!after[0].counts);
            assert_eq!(m.list_attestors().unwrap().len(), 1);

            // Approvals: a rule, a held call opened as a request, approved once, used once.
            m.set_approval_rule("billing", Some("read"), Some(ApprovalMode::Always))
                .unwrap();
            let agent = m.get_agent("billing-report-agent").unwrap();
            let ask = Ask {
                agent_id: agent.id.as_str(),
                agent: agent.name.as_str(),
                connection_id: c.id.as_str(),
                connection: "billing",
                action: "billing:read",
                on_behalf_of: None,
                why: "this tool always asks a person",
                trust_state: "PENDING",
                trust_score: agent.trust.score,
                retry_id: None,
            };
            let zero = std::time::Duration::ZERO;
            let Outcome::Pending(id) = m.hold_for_approval(&ask, zero).unwrap() else {
                panic!("a call under an `always` rule waits for a person")
            };
            assert_eq!(m.list_approvals(false).unwrap().len(), 1);
            m.approve(&id, ApprovalWindow::Once).unwrap();
            assert_eq!(
                m.hold_for_approval(&ask, zero).unwrap(),
                Outcome::Approved(id.clone())
            );
            let Outcome::Pending(again) = m.hold_for_approval(&ask, zero).unwrap() else {
                panic!("a once-approval lets one call through")
            };
            assert_ne!(again, id);
            m.deny_approval(&again, "not this month").unwrap();
            assert!(matches!(
                m.hold_for_approval(
                    &Ask {
                        retry_id: Some(&again),
                        ..ask
                    },
                    zero
                )
                .unwrap(),
                Outcome::Denied { .. }
            ));
            assert_eq!(m.list_approvals(true).unwrap().len(), 2);
            assert_eq!(m.expire_approvals().unwrap(), 0);

            // A CIBA request approved once for the same agent and scope is the token
            // endpoint's to use: a held broker call neither takes up its yes nor joins it.
            let now = crate::registry::ts(m.now());
            let later = crate::registry::ts(m.now() + chrono::Duration::hours(1));
            s.conn()
                .write(|tx| {
                    tx.execute(
                        "INSERT INTO approvals (id, agent_id, connection_id, action, why,
                             trust_state, trust_score, status, requested_at, expires_at,
                             decided_by, decided_at, used)
                         VALUES ('ciba_1', ?1, ?2, 'billing:read', 'asks for a token by CIBA',
                             'PENDING', 0, 'approved', ?3, ?4, 'founder', ?3, 0)",
                        crate::store::params![agent.id.as_str(), c.id.as_str(), now, later],
                    )
                })
                .unwrap();
            let Outcome::Pending(held) = m.hold_for_approval(&ask, zero).unwrap() else {
                panic!("a broker call took up a CIBA request's yes")
            };
            assert!(!held.starts_with("ciba_"), "{held}");
            assert!(matches!(
                m.hold_for_approval(
                    &Ask {
                        retry_id: Some("ciba_1"),
                        ..ask
                    },
                    zero
                )
                .unwrap(),
                Outcome::Pending(ref id) if id == &held
            ));

            // The refresher folds the trail (the agent's requests) and stores its signals.
            m.refresh_trust().unwrap();
            m.refresh_trust().unwrap();
            // A budgeted connection spent past its budget today: the burn-rate signal reads
            // broker_usage through the seam and fails.
            let today = crate::broker::config::day_of(m.now());
            s.conn()
                .write(|tx| {
                    tx.execute(
                        "INSERT INTO broker_connections (connection_id, daily_budget)
                         VALUES (?1, 100)
                         ON CONFLICT (connection_id) DO UPDATE SET daily_budget = 100",
                        crate::store::params![c.id.as_str()],
                    )?;
                    tx.execute(
                        "INSERT INTO broker_usage (agent_id, connection_id, day, units, calls)
                         VALUES (?1, ?2, ?3, 101, 101)",
                        crate::store::params![agent.id.as_str(), c.id.as_str(), today],
                    )
                })
                .unwrap();
            m.refresh_trust().unwrap();
            let (signals, _) = m
                .read(|tx| crate::trust::behaviour::stored(tx, agent.id.as_str()))
                .unwrap();
            let burn = signals.iter().find(|s| s.id == "budget_burn").unwrap();
            assert_eq!(burn.outcome, crate::trust::SignalOutcome::Fail, "{burn:?}");
            assert!(
                burn.detail.contains("101 of the 100 units of 'billing'"),
                "{burn:?}"
            );
            assert!(
                m.review_agent("billing-report-agent", None).is_err(),
                "nothing changed since the last review"
            );
            m.verify_audit().unwrap();
        });
    }
}
