//! The audit trail's part of the one API: checkpoints, verification, exports and proofs on
//! [`Mandate`]. Adapters (CLI, desktop, endpoint) call these; the rules live in the sibling
//! modules. Mandate vouches only for a trail that verifies: a checkpoint is signed only over
//! events that chain and carry valid batch tags, and an export or a proof starts with a whole
//! verification and refuses ([`Error::AuditFailed`]) when it fails.

use crate::store::params;
use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;

use super::bundle::{self, BundleScope, Header, KeyEntry};
use super::checkpoint;
use super::merkle::{Hash, Tree, leaf_hash};
use super::note::{NoteKey, SignedCheckpoint};
use super::verify::{self, StoreInputs, VerifyReport};
use super::{AuditEvent, format_time};
use crate::Mandate;
use crate::error::{Error, Result};
use crate::keys;
use crate::secret::{SecretRef, Sensitive};

/// Which events to export. Empty means the whole log.
#[derive(Debug, Clone, Default)]
pub struct ExportSelection {
    /// An agent's name or id.
    pub agent: Option<String>,
    /// Inclusive.
    pub since: Option<DateTime<Utc>>,
    /// Exclusive.
    pub until: Option<DateTime<Utc>>,
}

impl ExportSelection {
    pub fn is_full(&self) -> bool {
        self.agent.is_none() && self.since.is_none() && self.until.is_none()
    }
}

/// An export: the sealed bundle and what a report needs to describe it.
#[derive(Debug, Clone)]
pub struct Export {
    /// The evidence bundle (JSON Lines).
    pub bundle: Vec<u8>,
    /// The checkpoint the export is made against.
    pub checkpoint: SignedCheckpoint,
    /// Fingerprint of the issuer key that sealed it.
    pub key_fingerprint: String,
    /// The exported events, oldest first.
    pub events: Vec<AuditEvent>,
    /// When it was made.
    pub generated: DateTime<Utc>,
    pub scope: BundleScope,
}

/// What the reader brings to a verification of the live trail: keys to trust instead of the
/// installation's own (`SHA256:` fingerprints, JWK thumbprints or verifier keys), and
/// checkpoints seen before (signed notes) that the trail must not be older than.
#[derive(Debug, Clone, Default)]
pub struct LiveCheck {
    pub pinned_keys: Vec<String>,
    pub seen_checkpoints: Vec<String>,
}

/// Progress of a long operation: `(done, total)` in arbitrary units.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

impl Mandate {
    /// The log's name in checkpoints: `mandate/<install id>`.
    pub fn audit_origin(&self) -> String {
        format!("mandate/{}", self.install_id())
    }

    fn has_issuer_key(&self) -> Result<bool> {
        self.read(|tx| {
            Ok(tx
                .query_opt(
                    "SELECT 1 FROM meta WHERE key = 'issuer_kid'",
                    params![],
                    |_| Ok(()),
                )?
                .is_some())
        })
    }

    /// Append several events that are not tied to a registry change in one transaction (one
    /// fsync), in order. All or none are written.
    pub fn record_many(&self, events: Vec<super::NewEvent>) -> Result<u64> {
        self.write(|tx, now| {
            let mut n = 0;
            for ev in events {
                super::append(tx, now, ev)?;
                n += 1;
            }
            Ok(n)
        })
    }

    /// Sign a checkpoint of the whole log now (creating the issuer key on first use), keep it
    /// in the database, in the file beside it and in the OS keychain. When nothing was added
    /// since the newest checkpoint, that one is returned. Refuses ([`Error::AuditFailed`]) to
    /// sign a log that was rolled back behind a kept copy, or whose new events do not chain
    /// or carry no valid batch tag (see [`checkpoint::make`]).
    pub fn audit_checkpoint(&self) -> Result<SignedCheckpoint> {
        let key = self.issuer_key()?;
        let origin = self.audit_origin();
        let trusted = self.audit_trusted_keys()?;
        let tag_key = self.audit_tags().get()?;
        let outside = self.kept_checkpoints()?;
        let now = self.now();
        let cp = self.lock()?.write(|tx| {
            let guards = checkpoint::Guards {
                trusted: &trusted,
                tag_key: tag_key.as_ref(),
                outside: &outside,
            };
            checkpoint::make(tx, &origin, &key.kid, key.signer.as_ref(), now, &guards)
        })?;
        self.keep_checkpoint(&cp)?;
        Ok(cp)
    }

    /// The copies of the newest checkpoint kept outside the database: (where, note text).
    fn kept_checkpoints(&self) -> Result<Vec<(&'static str, String)>> {
        let mut out = Vec::new();
        if let Some(text) = checkpoint::read_file(self.data_dir())? {
            out.push(("the checkpoint kept beside the database", text));
        }
        if let Some(text) = self.keychain_get(SecretRef::audit_checkpoint())? {
            out.push((
                "the checkpoint kept in the OS keychain",
                text.expose().clone(),
            ));
        }
        Ok(out)
    }

    /// Keep `cp` in the file beside the database and in the OS keychain, unless each already
    /// holds one at least as large. The keychain's copy is out of reach of someone who can
    /// only write the data folder, so it catches a rollback that also replaced the file.
    fn keep_checkpoint(&self, cp: &SignedCheckpoint) -> Result<()> {
        checkpoint::write_file_if_newer(self.data_dir(), cp)?;
        let kept = self.keychain_get(SecretRef::audit_checkpoint())?;
        let newer = kept
            .as_ref()
            .and_then(|t| SignedCheckpoint::parse(t.expose()).ok())
            .is_none_or(|old| {
                old.checkpoint.origin != cp.checkpoint.origin
                    || old.checkpoint.size < cp.checkpoint.size
            });
        if newer {
            self.keychain_set(
                SecretRef::audit_checkpoint(),
                &Sensitive::new(cp.text.clone()),
            )?;
        }
        Ok(())
    }

    /// Make a checkpoint if one is due (see [`checkpoint::EVERY_EVENTS`]) and the issuer key
    /// exists. Called after every write; a failure is logged, never returned to the writer.
    pub fn audit_checkpoint_if_due(&self) -> Result<Option<SignedCheckpoint>> {
        let now = self.now();
        let due = self.read(|tx| checkpoint::is_due(tx, now))?;
        if !due || !self.has_issuer_key()? {
            return Ok(None);
        }
        self.audit_checkpoint().map(Some)
    }

    /// Sign an audit checkpoint if one is due, on the calling thread. Called after writes; a
    /// failure is logged, never returned to the writer.
    pub fn after_write(&self) {
        if !self.audit_due.should_check(self.now()) {
            return;
        }
        self.checkpoint_logged();
    }

    /// As [`Mandate::after_write`], but a due checkpoint is signed on a thread of its own, so
    /// the caller (an endpoint request) never waits for the keychain or the checkpoint's
    /// transaction. At most one such thread runs at a time.
    pub fn after_write_detached(self: &std::sync::Arc<Self>) {
        use std::sync::atomic::Ordering;
        if !self.audit_due.should_check(self.now()) {
            return;
        }
        if self.checkpointing.swap(true, Ordering::AcqRel) {
            return;
        }
        let m = self.clone();
        let spawned = std::thread::Builder::new()
            .name("mandate-checkpoint".into())
            .spawn(move || {
                m.checkpoint_logged();
                m.checkpointing.store(false, Ordering::Release);
            });
        if spawned.is_err() {
            self.checkpointing.store(false, Ordering::Release);
            self.checkpoint_logged();
        }
    }

    fn checkpoint_logged(&self) {
        if let Err(e) = self.audit_checkpoint_if_due() {
            tracing::warn!(error = %e, "an automatic audit checkpoint could not be made");
        }
    }

    /// The keys whose checkpoints this installation trusts: the current issuer key (from the
    /// keychain) and each retired issuer key that a rotation event in the log names.
    fn audit_trusted_keys(&self) -> Result<Vec<NoteKey>> {
        let origin = self.audit_origin();
        let mut out = Vec::new();
        if self.has_issuer_key()? {
            out.push(NoteKey::new(&origin, self.issuer_key()?.public));
        }
        let rows = self.read(|tx| {
            // The retired key a rotation event names, inside the event's hashed body.
            let named = tx.dialect().pick(
                "json_extract(CAST(e.body AS TEXT), '$.details.retired_kid')",
                "mandate_event_json(e.body) #>> '{details,retired_kid}'",
            );
            tx.query_map(
                &format!(
                    "SELECT r.kid, r.public_key FROM issuer_keys_retired r
                     WHERE EXISTS (SELECT 1 FROM audit_events e
                                   WHERE e.action = 'issuer.key_rotated' AND {named} = r.kid)"
                ),
                params![],
                |r| Ok((r.get::<String>(0)?, r.get::<Vec<u8>>(1)?)),
            )
        })?;
        for (kid, pk) in rows {
            if let Some(vk) = <[u8; 32]>::try_from(pk.as_slice())
                .ok()
                .and_then(|b| VerifyingKey::from_bytes(&b).ok())
                && keys::thumbprint(&vk) == kid
            {
                out.push(NoteKey::new(&origin, vk));
            }
        }
        Ok(out)
    }

    /// Verify the live store: every event's hash link and batch tag, every checkpoint's
    /// signature and Merkle root, and the copies of the newest checkpoint kept beside the
    /// database and in the OS keychain. When all is well and the database holds a newer
    /// checkpoint than those copies, they are brought up to date.
    pub fn verify_audit(&self) -> Result<VerifyReport> {
        self.verify_audit_with(&LiveCheck::default())
    }

    /// As [`Mandate::verify_audit`], also holding the log against the reader's own keys and
    /// checkpoints (`mandate audit verify --key --checkpoint`).
    pub fn verify_audit_with(&self, check: &LiveCheck) -> Result<VerifyReport> {
        let kept = self.keychain_get(SecretRef::audit_checkpoint())?;
        let inputs = StoreInputs {
            origin: self.audit_origin(),
            trusted: self.audit_trusted_keys()?,
            pinned_keys: check.pinned_keys.clone(),
            file_checkpoint: checkpoint::read_file(self.data_dir())?,
            keychain_checkpoint: kept.map(|t| t.expose().clone()),
            seen_checkpoints: check.seen_checkpoints.clone(),
            tag_key: self.audit_tags().get()?,
        };
        let report = self.read(|tx| verify::check_store(tx, &inputs))?;
        if report.ok() {
            let newest = self.read(checkpoint::all)?.pop();
            if let Some(c) = newest
                && let Ok(cp) = SignedCheckpoint::parse(&c.note)
            {
                self.keep_checkpoint(&cp)?;
            }
        }
        Ok(report)
    }

    /// Verify the whole trail and fail with [`Error::AuditFailed`] (its one-line summary) when
    /// it does not verify: Mandate signs, exports and proves only a trail that verifies.
    fn require_verified(&self, check: &LiveCheck) -> Result<VerifyReport> {
        let report = self.verify_audit_with(check)?;
        match report.summary() {
            None => Ok(report),
            Some(why) => Err(Error::AuditFailed(why)),
        }
    }

    /// Sign the digests of a report's pages with the issuer key, bound to the evidence bundle
    /// the report attaches (`mandate_audit_format::pages`), so a verifier can name any page
    /// that was changed afterwards.
    pub fn sign_report_pages(
        &self,
        bundle: &[u8],
        pages: &[super::merkle::Hash],
    ) -> Result<super::pages::Manifest> {
        let key = self.issuer_key()?;
        Ok(super::pages::Manifest::sign_with(
            bundle,
            pages,
            &self.audit_origin(),
            &key.public,
            |m| key.signer.try_sign(m),
        )?)
    }

    /// Export the log, or a selection of it, as a sealed evidence bundle. Makes a checkpoint
    /// first, so the export covers every event written before it.
    pub fn export_audit(
        &self,
        sel: &ExportSelection,
        progress: Option<Progress<'_>>,
    ) -> Result<Export> {
        let mut noop = |_: u64, _: u64| {};
        let progress: Progress<'_> = progress.unwrap_or(&mut noop);
        self.require_verified(&LiveCheck::default())?;
        let cp = self.audit_checkpoint()?;
        let key = self.issuer_key()?;
        let origin = self.audit_origin();
        let n = cp.checkpoint.size;
        let agent = match &sel.agent {
            Some(a) => Some(self.agent_id_by_name(a).or_else(|_| {
                let found: Option<String> = self.read(|tx| {
                    tx.query_opt("SELECT id FROM agents WHERE id = ?1", params![a], |r| {
                        r.get(0)
                    })
                })?;
                found
                    .map(crate::model::AgentId)
                    .ok_or_else(|| Error::not_found("agent", a.clone()))
            })?),
            None => None,
        };
        let agent_name = match &agent {
            Some(id) => self.read(|tx| {
                tx.query_opt(
                    "SELECT name FROM agents WHERE id = ?1",
                    params![id.as_str()],
                    |r| r.get::<String>(0),
                )
            })?,
            None => None,
        };
        let scope = if sel.is_full() {
            BundleScope::Full
        } else {
            BundleScope::Excerpt {
                agent: agent.as_ref().map(|a| a.as_str().to_string()),
                agent_name,
                since: sel.since.map(format_time),
                until: sel.until.map(format_time),
            }
        };
        let generated = self.now();
        // Checkpoints witnesses cosigned go into the bundle with their cosignature lines
        // (C2SP cosignature/v1 after the log's own signature), so `--witness` can check them.
        let cosigned: std::collections::HashMap<u64, String> = self
            .cosigned_checkpoints()?
            .into_iter()
            .filter_map(|n| {
                SignedCheckpoint::parse(&n)
                    .ok()
                    .map(|c| (c.checkpoint.size, n))
            })
            .collect();
        let mut conn = self.lock()?;
        let (w, events) = conn.auto(|tx| -> Result<_> {
        let stored = checkpoint::all(tx)?;
        let stored: Vec<_> = stored.into_iter().filter(|c| c.size <= n).collect();
        let mut keys_seen: Vec<VerifyingKey> = vec![key.public];
        for c in &stored {
            if !keys_seen.contains(&c.public_key) {
                keys_seen.push(c.public_key);
            }
        }
        let header = Header {
            format: bundle::FORMAT.into(),
            origin: origin.clone(),
            generated: format_time(generated),
            scope: scope.clone(),
            keys: keys_seen
                .iter()
                .map(|k| KeyEntry {
                    vkey: NoteKey::new(&origin, *k).vkey(),
                    kid: keys::thumbprint(k),
                    fingerprint: keys::fingerprint(k),
                })
                .collect(),
        };
        let mut w = bundle::Writer::new(&header);
        for c in &stored {
            w.checkpoint(cosigned.get(&c.size).unwrap_or(&c.note));
        }
        let mut events = Vec::new();
        const ROWS: &str =
            "SELECT seq, body, hash, time, agent_id FROM audit_events WHERE seq <= ?1 ORDER BY seq";
        let until = sel.until.map(format_time);
        let since = sel.since.map(format_time);
        let wanted = |time: &str, agent_id: Option<&str>| {
            agent
                .as_ref()
                .map(|a| agent_id == Some(a.as_str()))
                .unwrap_or(true)
                && since.as_deref().map(|s| time >= s).unwrap_or(true)
                && until.as_deref().map(|u| time < u).unwrap_or(true)
        };
        let step = (n / 100).max(1);
        if sel.is_full() {
            tx.query_each(ROWS, params![n as i64], |r| {
                let seq = r.get::<i64>(0)? as u64;
                let body = r.get_blob(1)?;
                let hash: Hash = r
                    .get_blob(2)?
                    .try_into()
                    .map_err(|_| Error::Storage("an audit hash has the wrong length".into()))?;
                w.event(body, Some(&hash), None);
                events.push(parse_event(body)?);
                if seq.is_multiple_of(step) {
                    progress(seq, n);
                }
                Ok(())
            })?;
        } else {
            // Proofs need the whole tree; only the selected events are written.
            let mut leaves = Vec::with_capacity(n as usize);
            let mut selected: Vec<(u64, Vec<u8>)> = Vec::new();
            tx.query_each(ROWS, params![n as i64], |r| {
                let seq = r.get::<i64>(0)? as u64;
                let body = r.get_blob(1)?;
                leaves.push(leaf_hash(body));
                let time = r.get_str(3)?;
                let agent_id: Option<String> = r.get(4)?;
                if wanted(time, agent_id.as_deref()) {
                    selected.push((seq, body.to_vec()));
                }
                if seq.is_multiple_of(step) {
                    progress(seq, n * 2);
                }
                Ok(())
            })?;
            let tree = Tree::from_leaves(leaves);
            for c in &stored {
                if c.size < n {
                    let proof = tree.consistency_proof(c.size, n).ok_or_else(|| {
                        Error::Storage("a checkpoint is larger than the log".into())
                    })?;
                    w.consistency(c.size, n, &proof);
                }
            }
            for (seq, body) in &selected {
                let proof = tree.inclusion_proof(seq - 1, n).ok_or_else(|| {
                    Error::Storage("an event is outside the checkpointed log".into())
                })?;
                w.event(body, None, Some(&proof));
                let ev = parse_event(body)?;
                events.push(ev);
            }
            progress(n * 2, n * 2);
        }
        Ok((w, events))
        })?;
        drop(conn);
        let bytes = w.seal(n, &origin, &key.public, |m| key.signer.try_sign(m))?;
        Ok(Export {
            bundle: bytes,
            checkpoint: cp,
            key_fingerprint: keys::fingerprint(&key.public),
            events,
            generated,
            scope,
        })
    }

    /// An RFC 9162 consistency proof from `old` (a checkpoint the reader kept) to the newest
    /// checkpoint, made now: (the newest checkpoint, proof). The whole trail is verified first
    /// with `old` as one of the reader's checkpoints, so a proof is given only for a log that
    /// verifies and that matches `old` event for event; otherwise [`Error::AuditFailed`].
    pub fn audit_consistency_proof(
        &self,
        old: &SignedCheckpoint,
    ) -> Result<(SignedCheckpoint, Vec<Hash>)> {
        self.require_verified(&LiveCheck {
            seen_checkpoints: vec![old.text.clone()],
            ..Default::default()
        })?;
        let cp = self.audit_checkpoint()?;
        let (m, n) = (old.checkpoint.size, cp.checkpoint.size);
        let mut leaves = Vec::with_capacity(n as usize);
        self.read(|tx| {
            tx.query_each(
                "SELECT body FROM audit_events WHERE seq <= ?1 ORDER BY seq",
                params![n as i64],
                |r| {
                    leaves.push(leaf_hash(r.get_blob(0)?));
                    Ok(())
                },
            )
        })?;
        let tree = Tree::from_leaves(leaves);
        // The events read now are the ones both checkpoints signed.
        let changed = || {
            Error::AuditFailed(
                "the events changed while the proof was made; run `mandate audit verify`".into(),
            )
        };
        if tree.root_at(m) != Some(old.checkpoint.root)
            || tree.root_at(n) != Some(cp.checkpoint.root)
        {
            return Err(changed());
        }
        let proof = tree.consistency_proof(m, n).ok_or_else(changed)?;
        Ok((cp, proof))
    }
}

fn parse_event(body: &[u8]) -> Result<AuditEvent> {
    serde_json::from_slice(body)
        .map_err(|e| Error::Storage(format!("an audit event is unreadable: {e}")))
}
