//! Verification of the live store. Everything else about verification (the report, its
//! problems, bundles, the one-pass walk of a log) is the pure `mandate-audit-format` crate,
//! re-exported here, so the app, the CLI, `mandate-verify` and the verifier page share it.
//!
//! What it is not: a second verifier. This module only reads the SQLite rows and the
//! checkpoints kept beside the database and the keychain, and hands them to the walk.

pub use mandate_audit_format::verify::*;

use super::merkle::Hash;
use super::note::{NoteKey, SignedCheckpoint};
use super::tag::TagKey;
use crate::error::Result;
use crate::keys;
use crate::store::{Tx, params};

/// Inputs to a verification of the live store.
#[derive(Debug, Clone, Default)]
pub struct StoreInputs {
    /// `mandate/<install id>`.
    pub origin: String,
    /// The installation's issuer keys (the current one and those it retired).
    pub trusted: Vec<NoteKey>,
    /// Keys the reader trusts (`--key`: `SHA256:` fingerprints, JWK thumbprints or verifier
    /// keys). When any are given, only these are trusted.
    pub pinned_keys: Vec<String>,
    /// The text of the checkpoint file beside the database, if it exists.
    pub file_checkpoint: Option<String>,
    /// The copy of the newest checkpoint kept in the OS keychain, if there is one.
    pub keychain_checkpoint: Option<String>,
    /// Checkpoints the reader brings (`--checkpoint`): the log must not be older than any of
    /// them and must match each at its size.
    pub seen_checkpoints: Vec<String>,
    /// The key the batches were tagged with (`audit/tag.rs`); `None` when the keychain holds
    /// none (a log written before tags, or tags not checked).
    pub tag_key: Option<TagKey>,
}

/// How a verification names the file beside the database and the keychain's copy.
const FILE_SOURCE: &str = "the checkpoint kept beside the database";
const KEYCHAIN_SOURCE: &str = "the checkpoint kept in the OS keychain";

/// Verify the live store: every event and its batch tag, every stored checkpoint, the copies
/// of the newest checkpoint kept outside the database, and the reader's own checkpoints.
pub fn check_store(conn: &Tx<'_>, inputs: &StoreInputs) -> Result<VerifyReport> {
    let mut report = VerifyReport::new("store", &inputs.origin);
    let trusted = if inputs.pinned_keys.is_empty() {
        inputs.trusted.clone()
    } else {
        pinned(
            &mut report,
            &inputs.pinned_keys,
            &inputs.trusted,
            &inputs.origin,
            "the audit trail",
        )
    };
    report.trusted_keys = trusted.iter().map(|k| keys::fingerprint(&k.key)).collect();
    let stored = super::checkpoint::all(conn)?;
    let mut notes: Vec<(String, String, bool)> = stored
        .iter()
        .map(|c| {
            (
                c.note.clone(),
                format!("the checkpoint of {} events", c.size),
                false,
            )
        })
        .collect();
    if let Some(text) = &inputs.file_checkpoint {
        notes.push((text.clone(), FILE_SOURCE.into(), true));
    }
    if let Some(text) = &inputs.keychain_checkpoint {
        notes.push((text.clone(), KEYCHAIN_SOURCE.into(), true));
    }
    for (i, s) in inputs.seen_checkpoints.iter().enumerate() {
        notes.push((s.clone(), format!("{BROUGHT} (#{})", i + 1), true));
    }
    match (&inputs.file_checkpoint, &inputs.keychain_checkpoint) {
        (None, None) if !stored.is_empty() => report.problem(
            ProblemKind::MissingCheckpointFile,
            None,
            format!(
                "the checkpoint file beside the database ({}) is missing and the OS keychain \
                 holds no copy, so a rollback to an older state cannot be ruled out; if you \
                 moved the database on purpose, run `mandate audit checkpoint` to start a new \
                 one",
                super::checkpoint::FILE_NAME
            ),
        ),
        (None, Some(_)) if !stored.is_empty() => report.notes.push(format!(
            "the checkpoint file beside the database ({}) is missing; the copy in the OS \
             keychain stood in for it (`mandate audit checkpoint` writes the file again)",
            super::checkpoint::FILE_NAME
        )),
        _ => {}
    }
    for c in &stored {
        if let Ok(cp) = SignedCheckpoint::parse(&c.note)
            && cp.checkpoint.size != c.size
        {
            report.problem(
                ProblemKind::Malformed,
                Some(c.size),
                format!(
                    "the checkpoint stored for {} events says it covers {}",
                    c.size, cp.checkpoint.size
                ),
            );
        }
    }
    let anchors = check_notes(&mut report, notes, &trusted, &inputs.origin);
    let mut walk = Walk::new(report, anchors);
    if let Some(key) = inputs.tag_key.clone() {
        walk.check_tags(key);
    }
    let mut tagged = false;
    conn.query_each(
        "SELECT seq, body, hash, time, action, decision, agent_id, tag_from, tag
         FROM audit_events ORDER BY seq",
        params![],
        |r| {
            use crate::store::ValueRef;
            let seq = r.get::<i64>(0)?;
            let blob = |i: usize| -> Result<&[u8]> {
                Ok(match r.get_ref(i)? {
                    ValueRef::Blob(b) => b,
                    _ => &[],
                })
            };
            let body = blob(1)?;
            let stored_hash: Hash = blob(2)?.try_into().unwrap_or([0xff; 32]);
            let text = |i: usize| -> Result<&str> {
                Ok(match r.get_ref(i)? {
                    ValueRef::Text(t) => t,
                    _ => "<not text>",
                })
            };
            let columns = Columns {
                time: text(3)?,
                action: text(4)?,
                decision: text(5)?,
                agent_id: match r.get_ref(6)? {
                    ValueRef::Null => None,
                    ValueRef::Text(t) => Some(t),
                    _ => Some("<not text>"),
                },
            };
            let tag = match (r.get_ref(7)?, r.get_ref(8)?) {
                (ValueRef::Int(from), ValueRef::Blob(tag)) => Some((from.max(0) as u64, tag)),
                _ => None,
            };
            tagged |= tag.is_some();
            if seq < 1 {
                walk.flag(
                    ProblemKind::Inserted,
                    0,
                    format!("a row with position {seq} was inserted (positions start at 1)"),
                );
                return Ok(());
            }
            walk.event(seq as u64, body, &stored_hash, Some(&columns), tag);
            Ok(())
        },
    )?;
    let mut report = walk.finish();
    if inputs.tag_key.is_none() {
        if tagged {
            report.problem(
                ProblemKind::Unauthenticated,
                None,
                "the events carry authentication tags, but the OS keychain holds no key to \
                 check them: the keychain was reset or replaced, or this database belongs to \
                 another installation",
            );
        } else if report.events > 0 {
            report.notes.push(
                "the events are not authenticated yet: they were written before Mandate tagged \
                 each committed batch; the next change tags them"
                    .into(),
            );
        }
    }
    Ok(report)
}
