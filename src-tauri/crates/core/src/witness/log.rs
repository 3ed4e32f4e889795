//! The team server's side of witnessing: which witnesses count, what they are shown, and the
//! cosignatures they send back.
//!
//! - **Registration.** An admin adds a witness by its cosignature verifier key
//!   (`NAME+KEYID+BASE64`, what `mandate team witness key` prints on the witness's machine);
//!   audited as `witness.added` / `witness.removed`.
//! - **What a witness is shown.** The newest checkpoint (made now if events were added since
//!   the last one), with the log's checkpoint key, and RFC 9162 consistency proofs between a
//!   size the witness saw and a checkpoint's size. A proof is computed from the events as they
//!   are in the store now; before it is served, the server checks the events still give the
//!   root its own newer checkpoint signed (an honest server never serves a proof it knows is
//!   wrong). It does not check the older side: that is the witness's job, and a server whose
//!   history was rewritten answers with a proof that cannot verify.
//! - **Cosignatures.** A cosignature is accepted only from a registered, not removed, witness,
//!   over a checkpoint this server signed, with a signature that verifies and a timestamp no
//!   more than [`MAX_FUTURE_SECS`] ahead; it is kept (`witness_cosignatures`) and audited
//!   (`witness.cosigned`, the witness as actor). Every refusal is audited too
//!   (`witness.cosignature_refused`).
//!
//! What it is not: the consistency check a witness makes (`watch`), or HTTP.

use ed25519_dalek::VerifyingKey;
use serde_json::json;

use crate::Mandate;
use crate::audit::merkle::{Hash, Tree, leaf_hash};
use crate::audit::note::{NoteKey, SignedCheckpoint};
use crate::audit::{self, Decision, NewEvent, Target, format_time};
use crate::error::{Error, Result};
use crate::store::{Tx, params};
use mandate_audit_format::cosignature::{self, Cosignature, WitnessKey};

/// How far in the future a cosignature's timestamp may be (clock skew between machines).
pub const MAX_FUTURE_SECS: i64 = 600;

/// A registered witness, as listed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WitnessInfo {
    pub name: String,
    /// Its cosignature verifier key.
    pub vkey: String,
    pub added_at: String,
    pub added_by: String,
    pub removed_at: Option<String>,
    /// The largest checkpoint it cosigned, and when it was received.
    pub last_cosigned_size: Option<u64>,
    pub last_cosigned_at: Option<String>,
}

/// The newest checkpoint as a witness is shown it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServedCheckpoint {
    /// The signed note.
    pub checkpoint: String,
    /// The log's checkpoint key as a verifier key string, for a witness's first sync.
    pub log_key: String,
}

/// What an accepted cosignature was.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CosignatureReceipt {
    pub witness: String,
    pub size: u64,
    /// Whether it was new (a repeat of a kept one is accepted and changes nothing).
    pub new: bool,
}

fn parse_key(name: &str, public_key: &str) -> Result<WitnessKey> {
    let key = WitnessKey::parse_vkey(public_key).map_err(|e| {
        Error::invalid(format!(
            "{e}. Give the witness's verifier key as `mandate team witness key` prints it on \
             the witness's machine (NAME+KEYID+BASE64)"
        ))
    })?;
    if key.name != name {
        return Err(Error::invalid(format!(
            "the verifier key is for the witness '{}', not '{name}'; give the name it was made \
             with",
            key.name
        )));
    }
    Ok(key)
}

fn load(tx: &Tx<'_>, name: &str) -> Result<Option<(WitnessKey, Option<String>)>> {
    let row: Option<(Vec<u8>, Option<String>)> = tx.query_opt(
        "SELECT public_key, removed_at FROM witnesses WHERE name = ?1",
        params![name],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let Some((pk, removed)) = row else {
        return Ok(None);
    };
    let key = <[u8; 32]>::try_from(pk.as_slice())
        .ok()
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        .ok_or_else(|| Error::Storage(format!("the key of witness '{name}' is unreadable")))?;
    let key = WitnessKey::new(name, key).map_err(|e| Error::Storage(e.to_string()))?;
    Ok(Some((key, removed)))
}

fn list(tx: &Tx<'_>, name: Option<&str>) -> Result<Vec<WitnessInfo>> {
    let sql = format!(
        "SELECT w.name, w.public_key, w.added_at, w.added_by, w.removed_at,
                (SELECT max(c.size) FROM witness_cosignatures c WHERE c.witness = w.name),
                (SELECT max(c.received_at) FROM witness_cosignatures c WHERE c.witness = w.name)
         FROM witnesses w {} ORDER BY w.name",
        if name.is_some() {
            "WHERE w.name = ?1"
        } else {
            ""
        }
    );
    let only = [name.unwrap_or_default()];
    let by_name = params![only[0]];
    let rows = tx.query_map(
        &sql,
        if name.is_some() { by_name } else { params![] },
        |r| {
            Ok((
                r.get::<String>(0)?,
                r.get::<Vec<u8>>(1)?,
                r.get::<String>(2)?,
                r.get::<String>(3)?,
                r.get::<Option<String>>(4)?,
                r.get::<Option<i64>>(5)?,
                r.get::<Option<String>>(6)?,
            ))
        },
    )?;
    let mut out = Vec::new();
    for (name, pk, added_at, added_by, removed_at, size, at) in rows {
        let key = <[u8; 32]>::try_from(pk.as_slice())
            .ok()
            .and_then(|b| VerifyingKey::from_bytes(&b).ok())
            .and_then(|k| WitnessKey::new(&name, k).ok())
            .ok_or_else(|| Error::Storage(format!("the key of witness '{name}' is unreadable")))?;
        out.push(WitnessInfo {
            vkey: key.vkey(),
            name,
            added_at,
            added_by,
            removed_at,
            last_cosigned_size: size.map(|s| s as u64),
            last_cosigned_at: at,
        });
    }
    Ok(out)
}

impl Mandate {
    /// Register a witness of this log by its cosignature verifier key. Audited
    /// (`witness.added`) with the person who added it.
    pub fn add_witness(&self, name: &str, public_key: &str) -> Result<WitnessInfo> {
        let key = parse_key(name.trim(), public_key)?;
        let actor = self.actor()?;
        self.write(|tx, now| {
            let taken: Option<String> = tx.query_opt(
                "SELECT name FROM witnesses WHERE name = ?1 OR public_key = ?2",
                params![key.name, key.key.as_bytes().as_slice()],
                |r| r.get(0),
            )?;
            if let Some(other) = taken {
                return Err(if other == key.name {
                    Error::AlreadyExists {
                        kind: "witness",
                        name: key.name.clone(),
                    }
                } else {
                    Error::Conflict(format!(
                        "this key is already registered as the witness '{other}'; a witness key \
                         belongs to one witness"
                    ))
                });
            }
            tx.execute(
                "INSERT INTO witnesses (name, public_key, added_at, added_by)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    key.name,
                    key.key.as_bytes().as_slice(),
                    format_time(now),
                    actor.describe()
                ],
            )?;
            audit::append(
                tx,
                now,
                NewEvent::new(&actor, "witness.added", Decision::Allow)
                    .target(Target::new(
                        "witness",
                        &mandate_audit_format::hex(&key.key_id()),
                        &key.name,
                    ))
                    .details(json!({ "vkey": key.vkey() })),
            )?;
            Ok(())
        })?;
        self.witness(&key.name)
    }

    /// Stop counting a witness's future cosignatures (those it made stay kept and exported).
    /// Audited (`witness.removed`).
    pub fn remove_witness(&self, name: &str) -> Result<WitnessInfo> {
        let actor = self.actor()?;
        self.write(|tx, now| {
            let (key, removed) = load(tx, name)?.ok_or_else(|| not_found(name))?;
            if removed.is_some() {
                return Err(Error::Conflict(format!(
                    "the witness '{name}' was already removed"
                )));
            }
            tx.execute(
                "UPDATE witnesses SET removed_at = ?1 WHERE name = ?2",
                params![format_time(now), name],
            )?;
            audit::append(
                tx,
                now,
                NewEvent::new(&actor, "witness.removed", Decision::Allow).target(Target::new(
                    "witness",
                    &mandate_audit_format::hex(&key.key_id()),
                    name,
                )),
            )?;
            Ok(())
        })?;
        self.witness(name)
    }

    /// One registered witness.
    pub fn witness(&self, name: &str) -> Result<WitnessInfo> {
        self.read(|tx| list(tx, Some(name)))?
            .into_iter()
            .next()
            .ok_or_else(|| not_found(name))
    }

    /// Every registered witness, removed ones included.
    pub fn witnesses(&self) -> Result<Vec<WitnessInfo>> {
        self.read(|tx| list(tx, None))
    }

    /// This log's checkpoint key as a verifier key string (what witnesses pin).
    pub fn witness_log_key(&self) -> Result<String> {
        Ok(NoteKey::new(&self.audit_origin(), self.issuer_key()?.public).vkey())
    }

    /// The newest checkpoint and the log's checkpoint key, for a witness. A new one is signed
    /// when events were added since the last, unless every one of them is a witness's
    /// cosignature: signing over those would have each cosignature call for the next, and the
    /// witnesses would grow a quiet log by themselves forever.
    pub fn witness_checkpoint(&self) -> Result<ServedCheckpoint> {
        let stored: Option<String> = self.read(|tx| {
            tx.query_opt(
                "SELECT c.note FROM audit_checkpoints c
                 WHERE c.size = (SELECT max(size) FROM audit_checkpoints)
                   AND NOT EXISTS (SELECT 1 FROM audit_events e
                                   WHERE e.seq > c.size AND e.action <> 'witness.cosigned')",
                params![],
                |r| r.get(0),
            )
        })?;
        let text = match stored {
            Some(note) => note,
            None => self.audit_checkpoint()?.text,
        };
        Ok(ServedCheckpoint {
            checkpoint: text,
            log_key: self.witness_log_key()?,
        })
    }

    /// The RFC 9162 consistency proof from the first `old` events to the first `new`, where
    /// `new` is the size of a checkpoint this log signed. Computed from the events as stored
    /// now; refused when they no longer give that checkpoint's root.
    pub fn witness_consistency(&self, old: u64, new: u64) -> Result<Vec<Hash>> {
        if old > new {
            return Err(Error::invalid(format!(
                "a consistency proof goes from a smaller tree to a larger one, not from {old} \
                 events to {new}"
            )));
        }
        let (leaves, note) = self.read(|tx| {
            let note: Option<String> = tx.query_opt(
                "SELECT note FROM audit_checkpoints WHERE size = ?1",
                params![new as i64],
                |r| r.get(0),
            )?;
            let mut leaves = Vec::with_capacity(new as usize);
            tx.query_each(
                "SELECT body FROM audit_events WHERE seq <= ?1 ORDER BY seq",
                params![new as i64],
                |r| {
                    leaves.push(leaf_hash(r.get_blob(0)?));
                    Ok(())
                },
            )?;
            Ok((leaves, note))
        })?;
        let note = note.ok_or_else(|| {
            Error::invalid(format!(
                "this log has no checkpoint of {new} events; ask for a proof to the size of the \
                 newest checkpoint"
            ))
        })?;
        let cp = SignedCheckpoint::parse(&note).map_err(|e| {
            Error::Storage(format!("the checkpoint of {new} events is unreadable: {e}"))
        })?;
        let tree = Tree::from_leaves(leaves);
        if tree.size() != new || tree.root_at(new) != Some(cp.checkpoint.root) {
            return Err(Error::AuditFailed(format!(
                "the stored events no longer give the root this log signed for its checkpoint \
                 of {new} events; run `mandate audit verify` on the server"
            )));
        }
        tree.consistency_proof(old, new).ok_or_else(|| {
            Error::invalid(format!("no consistency proof from {old} to {new} events"))
        })
    }

    /// Check and keep a witness's cosignature (`line`, a note signature line) of this log's
    /// checkpoint of `size` events. Accepted and refused cosignatures are both audited.
    pub fn accept_cosignature(&self, size: u64, line: &str) -> Result<CosignatureReceipt> {
        let now = self.now();
        let refuse = |claimed: Option<&Cosignature>, why: String| -> Error {
            let actor = match claimed {
                Some(c) => crate::audit::Actor {
                    kind: super::ACTOR_KIND.into(),
                    id: mandate_audit_format::hex(&c.key_id),
                    name: c.name.clone(),
                },
                None => crate::audit::Actor::system("witness", "the witness endpoint"),
            };
            let ev = NewEvent::new(&actor, "witness.cosignature_refused", Decision::Deny)
                .reason(why.clone())
                .details(json!({ "size": size }));
            if let Err(e) = self.record(ev) {
                return e;
            }
            Error::Refused(why)
        };
        let c = match Cosignature::parse_line(line) {
            Ok(Some(c)) => c,
            Ok(None) => {
                return Err(refuse(
                    None,
                    "the line is not an Ed25519 cosignature/v1 signature line".into(),
                ));
            }
            Err(e) => return Err(refuse(None, e.to_string())),
        };
        if c.timestamp as i64 > now.timestamp() + MAX_FUTURE_SECS {
            return Err(refuse(
                Some(&c),
                format!(
                    "the cosignature's time ({}) is more than {MAX_FUTURE_SECS} seconds ahead of \
                     this server's clock; check the witness's clock",
                    c.timestamp
                ),
            ));
        }
        let (key, note) = self.read(|tx| {
            let key = load(tx, &c.name)?;
            let note: Option<String> = tx.query_opt(
                "SELECT note FROM audit_checkpoints WHERE size = ?1",
                params![size as i64],
                |r| r.get(0),
            )?;
            Ok((key, note))
        })?;
        let key = match key {
            Some((k, None)) if k.key_id() == c.key_id => k,
            Some((_, Some(_))) => {
                return Err(refuse(
                    Some(&c),
                    format!("the witness '{}' was removed from this server", c.name),
                ));
            }
            _ => {
                return Err(refuse(
                    Some(&c),
                    format!(
                        "no witness '{}' with key id {} is registered on this server; an admin \
                         adds it with `mandate team witness add {} --public-key KEY`",
                        c.name,
                        mandate_audit_format::hex(&c.key_id),
                        c.name
                    ),
                ));
            }
        };
        let Some(note) = note else {
            return Err(refuse(
                Some(&c),
                format!("this log has no checkpoint of {size} events"),
            ));
        };
        let body = cosignature::note_body(&note).ok_or_else(|| {
            Error::Storage(format!("the checkpoint of {size} events is unreadable"))
        })?;
        if let Err(e) = c.verify(body, &key) {
            return Err(refuse(Some(&c), e.to_string()));
        }
        let actor = super::actor(&key);
        let root = SignedCheckpoint::parse(&note)
            .map(|s| mandate_audit_format::hex(&s.checkpoint.root))
            .unwrap_or_default();
        let new = self.write(|tx, now| {
            let n = tx.execute(
                "INSERT INTO witness_cosignatures (witness, size, timestamp, line, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                params![
                    key.name,
                    size as i64,
                    c.timestamp as i64,
                    c.line(),
                    format_time(now)
                ],
            )?;
            if n > 0 {
                audit::append(
                    tx,
                    now,
                    NewEvent::new(&actor, "witness.cosigned", Decision::Allow)
                        .target(Target::new("checkpoint", &size.to_string(), &root))
                        .details(json!({
                            "size": size,
                            "root": root,
                            "timestamp": c.timestamp,
                        })),
                )?;
            }
            Ok(n > 0)
        })?;
        Ok(CosignatureReceipt {
            witness: key.name,
            size,
            new,
        })
    }

    /// Every checkpoint some witness cosigned, as a note with the kept cosignature lines after
    /// the log's signature, smallest first (what an export carries).
    pub fn cosigned_checkpoints(&self) -> Result<Vec<String>> {
        let rows: Vec<(i64, String, String)> = self.read(|tx| {
            tx.query_map(
                "SELECT c.size, p.note, c.line FROM witness_cosignatures c
                 JOIN audit_checkpoints p ON p.size = c.size
                 ORDER BY c.size, c.witness",
                params![],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
        })?;
        let mut out: Vec<(i64, String)> = Vec::new();
        for (size, note, line) in rows {
            match out.last_mut() {
                Some((s, text)) if *s == size => {
                    text.push_str(&line);
                    text.push('\n');
                }
                _ => {
                    let mut text = note;
                    if !text.ends_with('\n') {
                        text.push('\n');
                    }
                    text.push_str(&line);
                    text.push('\n');
                    out.push((size, text));
                }
            }
        }
        Ok(out.into_iter().map(|(_, t)| t).collect())
    }
}

fn not_found(name: &str) -> Error {
    Error::NotFound {
        kind: "witness",
        name: name.into(),
        hint: "; list them with `mandate team witness list`".into(),
    }
}
