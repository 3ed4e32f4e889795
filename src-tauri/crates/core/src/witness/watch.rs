//! The witness's side: its key, its memory of each log, and whether to cosign.
//!
//! A sync is two steps around the network, so the desktop app and the CLI share every
//! decision and only the HTTP differs:
//!
//! 1. [`Mandate::witness_begin`] reads the checkpoint the server served. The log's checkpoint
//!    key is pinned on the first sync (the one the server offers, or `--log-key` given by the
//!    person, which is safer) and must sign every later checkpoint. The origin must be the one
//!    this witness saw at that URL. It says which consistency proof is needed: from the size
//!    this witness saw last to the new size.
//! 2. [`Mandate::witness_finish`] checks that proof with the one RFC 9162 verifier
//!    (`merkle::verify_consistency`). Only when the new checkpoint extends the old one does
//!    it remember the new one and cosign it (C2SP `cosignature/v1`).
//!
//! A smaller tree than the one seen, another root at the same size, or a proof that does not
//! verify means the server forked or rewrote its log: the sync fails with
//! [`Error::AuditFailed`] naming both sizes and roots, nothing is cosigned, the remembered
//! checkpoint stays the old one (so every later sync keeps failing until a person looks), and
//! the refusal is recorded in this installation's own audit trail (`witness.log_forked`).
//!
//! What it is not: HTTP (`mandate-server`'s `witness_client`), or the server's side (`log`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;
use serde_json::json;

use super::log::ServedCheckpoint;
use crate::Mandate;
use crate::audit::merkle::{Hash, verify_consistency};
use crate::audit::note::{NoteKey, SignedCheckpoint};
use crate::audit::{Actor, Decision, NewEvent, Target, format_time};
use crate::error::{Error, Result};
use crate::secret::{SecretRef, Sensitive};
use crate::store::params;
use mandate_audit_format::cosignature::{self, Cosignature, WitnessKey};

/// The keychain account of this installation's witness key.
const KEY_ACCOUNT: &str = "witness-key";

/// A log this installation witnesses, as it remembers it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WitnessedLog {
    pub origin: String,
    pub url: String,
    /// The log's checkpoint key pinned at the first sync (verifier key string).
    pub log_key: String,
    /// The newest consistent checkpoint seen.
    pub size: u64,
    pub note: String,
    pub seen_at: String,
}

/// A sync between its two steps: the served checkpoint, checked against the pinned key, and
/// what this witness saw before.
#[derive(Debug, Clone)]
pub struct SyncPlan {
    pub url: String,
    pub log_key: NoteKey,
    pub new: SignedCheckpoint,
    pub previous: Option<SignedCheckpoint>,
}

impl SyncPlan {
    /// The consistency proof to ask the server for: (old size, new size), or `None` when the
    /// sizes are equal or this is the first sync.
    pub fn proof_needed(&self) -> Option<(u64, u64)> {
        let old = self.previous.as_ref()?.checkpoint.size;
        let new = self.new.checkpoint.size;
        (old > 0 && old < new).then_some((old, new))
    }
}

/// A checkpoint this witness checked and cosigned.
#[derive(Debug, Clone)]
pub struct Cosigned {
    pub origin: String,
    pub size: u64,
    /// The size seen before (0 on the first sync).
    pub previous_size: u64,
    pub cosignature: Cosignature,
    /// Whether the log's key was pinned by this sync.
    pub pinned_now: bool,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredKey {
    name: String,
    /// The Ed25519 seed, base64.
    seed: String,
}

fn b64(h: &Hash) -> String {
    STANDARD.encode(h)
}

impl Mandate {
    /// This installation's witness key: made in the OS keychain on first use, under `name`
    /// (required then), and returned as it is afterwards (a different `name` is refused: a
    /// witness key belongs to one name). Returns the key and whether it was made now.
    pub fn witness_key(&self, name: Option<&str>) -> Result<(WitnessKey, bool)> {
        if let Some((key, _)) = self.witness_signing_key()? {
            if let Some(n) = name
                && n != key.name
            {
                return Err(Error::Conflict(format!(
                    "this installation already witnesses as '{}'; its key belongs to that name",
                    key.name
                )));
            }
            return Ok((key, false));
        }
        let name = name.ok_or_else(|| {
            Error::invalid(
                "this installation has no witness key yet; make one with a name, for example \
                 `mandate team witness key --name witness.acme.example/alice-laptop`",
            )
        })?;
        let signing = SigningKey::generate(&mut rand_core::OsRng);
        let key = WitnessKey::new(name, signing.verifying_key())
            .map_err(|e| Error::invalid(e.to_string()))?;
        let stored = StoredKey {
            name: key.name.clone(),
            seed: STANDARD.encode(signing.to_bytes()),
        };
        let text = serde_json::to_string(&stored)
            .map_err(|e| Error::Storage(format!("the witness key could not be encoded: {e}")))?;
        self.keychain_set(
            SecretRef {
                account: KEY_ACCOUNT.into(),
            },
            &Sensitive::new(text),
        )?;
        Ok((key, true))
    }

    fn witness_signing_key(&self) -> Result<Option<(WitnessKey, SigningKey)>> {
        let Some(text) = self.keychain_get(SecretRef {
            account: KEY_ACCOUNT.into(),
        })?
        else {
            return Ok(None);
        };
        let damaged = || {
            Error::Storage(
                "the witness key in the OS keychain is unreadable; remove the keychain entry \
                 'witness-key' and make a new key (then have it registered again)"
                    .into(),
            )
        };
        let stored: StoredKey = serde_json::from_str(text.expose()).map_err(|_| damaged())?;
        let seed: [u8; 32] = STANDARD
            .decode(&stored.seed)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(damaged)?;
        let signing = SigningKey::from_bytes(&seed);
        let key = WitnessKey::new(&stored.name, signing.verifying_key()).map_err(|_| damaged())?;
        Ok(Some((key, signing)))
    }

    /// The logs this installation witnesses.
    pub fn witnessed_logs(&self) -> Result<Vec<WitnessedLog>> {
        self.read(|tx| {
            tx.query_map(
                "SELECT origin, url, log_key, size, note, seen_at FROM witnessed_logs
                 ORDER BY origin",
                params![],
                |r| {
                    Ok(WitnessedLog {
                        origin: r.get(0)?,
                        url: r.get(1)?,
                        log_key: r.get(2)?,
                        size: r.get::<i64>(3)? as u64,
                        note: r.get(4)?,
                        seen_at: r.get(5)?,
                    })
                },
            )
        })
    }

    /// Forget a log this installation witnessed (its pinned key and the checkpoint it saw), so
    /// the next sync starts afresh. Audited (`witness.log_forgotten`); the person must say why.
    pub fn forget_witnessed_log(&self, origin: &str, reason: &str) -> Result<WitnessedLog> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(Error::invalid(
                "say why this log is forgotten (--reason): its next checkpoint will be trusted \
                 without a consistency check, and the audit trail records why",
            ));
        }
        let log = self
            .witnessed_logs()?
            .into_iter()
            .find(|l| l.origin == origin || l.url == origin)
            .ok_or_else(|| Error::NotFound {
                kind: "witnessed log",
                name: origin.into(),
                hint: "; list them with `mandate team witness list`".into(),
            })?;
        let actor = self.actor()?;
        self.write(|tx, now| {
            tx.execute(
                "DELETE FROM witnessed_logs WHERE origin = ?1",
                params![log.origin],
            )?;
            crate::audit::append(
                tx,
                now,
                NewEvent::new(&actor, "witness.log_forgotten", Decision::Allow)
                    .target(Target::new("log", &log.origin, &log.url))
                    .reason(reason)
                    .details(json!({ "size": log.size, "log_key": log.log_key })),
            )?;
            Ok(())
        })?;
        Ok(log)
    }

    /// The person syncing, or Mandate itself when nobody is named (a scheduled sync).
    fn witness_actor(&self) -> Result<Actor> {
        Ok(self
            .person()?
            .unwrap_or_else(|| Actor::system("witness", "the witness")))
    }

    /// Record a refusal in this installation's audit trail and return the loud error.
    fn witness_refuse(
        &self,
        url: &str,
        origin: &str,
        action: &str,
        why: String,
        details: serde_json::Value,
    ) -> Error {
        let ev = NewEvent::new(
            &self
                .witness_actor()
                .unwrap_or_else(|_| Actor::system("witness", "the witness")),
            action,
            Decision::Deny,
        )
        .target(Target::new("log", origin, url))
        .reason(why.clone())
        .details(details);
        if let Err(e) = self.record(ev) {
            return e;
        }
        Error::AuditFailed(why)
    }

    /// Step 1 of a sync with the team server at `url`: check the checkpoint it served against
    /// the pinned log key (pinning `log_key`, or the offered one, on the first sync).
    pub fn witness_begin(
        &self,
        url: &str,
        served: &ServedCheckpoint,
        log_key: Option<&str>,
    ) -> Result<SyncPlan> {
        let new = SignedCheckpoint::parse(&served.checkpoint).map_err(|e| {
            Error::Refused(format!(
                "the server at {url} served no readable checkpoint: {e}"
            ))
        })?;
        let origin = new.checkpoint.origin.clone();
        let known: Option<WitnessedLog> = self
            .witnessed_logs()?
            .into_iter()
            .find(|l| l.origin == origin || l.url == url);
        if let Some(k) = &known
            && k.origin != origin
        {
            return Err(self.witness_refuse(
                url,
                &origin,
                "witness.checkpoint_refused",
                format!(
                    "the server at {url} now serves the log '{origin}', but this witness saw the \
                     log '{}' there; a server that replaced its log is not cosigned. If the team \
                     really started a new server, forget the old one with `mandate team witness \
                     forget {} --reason ...` first",
                    k.origin, k.origin
                ),
                json!({ "served_origin": origin, "known_origin": k.origin }),
            ));
        }
        let pinned = match (&known, log_key) {
            (Some(k), _) => k.log_key.clone(),
            (None, Some(given)) => given.trim().to_string(),
            (None, None) => served.log_key.clone(),
        };
        let key = NoteKey::parse_vkey(&pinned).map_err(|e| {
            Error::invalid(format!(
                "{e}; give the log's checkpoint key as `mandate audit export` prints it on the \
                 server (NAME+KEYID+BASE64)"
            ))
        })?;
        if let Err(e) = new.verify(std::slice::from_ref(&key)) {
            return Err(self.witness_refuse(
                url,
                &origin,
                "witness.checkpoint_refused",
                format!(
                    "the checkpoint of {} events served by {url} is not signed by the log key \
                     this witness pinned ({}): {e}. Nothing was cosigned",
                    new.checkpoint.size,
                    key.vkey()
                ),
                json!({ "size": new.checkpoint.size }),
            ));
        }
        let previous = match &known {
            Some(k) => Some(SignedCheckpoint::parse(&k.note).map_err(|e| {
                Error::Storage(format!(
                    "the remembered checkpoint of {origin} is unreadable: {e}"
                ))
            })?),
            None => None,
        };
        if let Some(prev) = &previous {
            let (p, n) = (&prev.checkpoint, &new.checkpoint);
            if n.size < p.size {
                return Err(self.fork(
                    url,
                    prev,
                    &new,
                    format!(
                        "it now serves a checkpoint of {} events (root {}), smaller than the {} \
                         events (root {}) this witness saw",
                        n.size,
                        b64(&n.root),
                        p.size,
                        b64(&p.root)
                    ),
                ));
            }
            if n.size == p.size && n.root != p.root {
                return Err(self.fork(
                    url,
                    prev,
                    &new,
                    format!(
                        "it serves a checkpoint of {} events with root {}, but this witness saw \
                         root {} for the same size",
                        n.size,
                        b64(&n.root),
                        b64(&p.root)
                    ),
                ));
            }
        }
        Ok(SyncPlan {
            url: url.to_string(),
            log_key: key,
            new,
            previous,
        })
    }

    fn fork(
        &self,
        url: &str,
        prev: &SignedCheckpoint,
        new: &SignedCheckpoint,
        what: String,
    ) -> Error {
        self.witness_refuse(
            url,
            &new.checkpoint.origin,
            "witness.log_forked",
            format!(
                "THE TEAM SERVER'S AUDIT LOG WAS REWRITTEN OR FORKED: the server at {url} {what}. \
                 Its history no longer matches what this witness saw, so nothing was cosigned. \
                 Keep this machine's audit trail and the last checkpoint it saw (`mandate team \
                 witness list --json`) as evidence, and ask the server's operator what happened"
            ),
            json!({
                "seen_size": prev.checkpoint.size,
                "seen_root": b64(&prev.checkpoint.root),
                "served_size": new.checkpoint.size,
                "served_root": b64(&new.checkpoint.root),
            }),
        )
    }

    /// Step 2: check `proof` (for [`SyncPlan::proof_needed`]; empty otherwise), then remember
    /// the new checkpoint and cosign it. Refuses loudly, cosigning nothing, when the proof
    /// does not show the new checkpoint extends the one seen.
    pub fn witness_finish(&self, plan: &SyncPlan, proof: &[Hash]) -> Result<Cosigned> {
        let (key, signing) = self.witness_signing_key()?.ok_or_else(|| {
            Error::invalid(
                "this installation has no witness key yet; make one with `mandate team witness \
                 key --name NAME` and have an admin register it",
            )
        })?;
        let new = &plan.new.checkpoint;
        if let Some(prev) = &plan.previous {
            let p = &prev.checkpoint;
            if !verify_consistency(p.size, new.size, &p.root, &new.root, proof) {
                return Err(self.fork(
                    &plan.url,
                    prev,
                    &plan.new,
                    format!(
                        "served a checkpoint of {} events (root {}) that is not an append-only \
                         extension of the {} events (root {}) this witness saw: the RFC 9162 \
                         consistency proof does not verify",
                        new.size,
                        b64(&new.root),
                        p.size,
                        b64(&p.root)
                    ),
                ));
            }
        }
        let body = cosignature::note_body(&plan.new.text)
            .ok_or_else(|| Error::Refused("the served checkpoint has no signature".into()))?;
        let now = self.now();
        let cosig = Cosignature::sign(body, &key, &signing, now.timestamp().max(0) as u64);
        let actor = self.witness_actor()?;
        let previous_size = plan.previous.as_ref().map_or(0, |p| p.checkpoint.size);
        let pinned_now = plan.previous.is_none();
        self.write(|tx, now| {
            tx.execute(
                "INSERT INTO witnessed_logs (origin, url, log_key, size, note, seen_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (origin) DO UPDATE SET url = excluded.url, size = excluded.size,
                     note = excluded.note, seen_at = excluded.seen_at",
                params![
                    new.origin,
                    plan.url,
                    plan.log_key.vkey(),
                    new.size as i64,
                    plan.new.text,
                    format_time(now)
                ],
            )?;
            crate::audit::append(
                tx,
                now,
                NewEvent::new(&actor, "witness.checkpoint_cosigned", Decision::Allow)
                    .target(Target::new("log", &new.origin, &plan.url))
                    .details(json!({
                        "size": new.size,
                        "root": b64(&new.root),
                        "previous_size": previous_size,
                        "witness": key.name,
                        "log_key_pinned_now": pinned_now,
                    })),
            )?;
            Ok(())
        })?;
        Ok(Cosigned {
            origin: new.origin.clone(),
            size: new.size,
            previous_size,
            cosignature: cosig,
            pinned_now,
        })
    }
}
