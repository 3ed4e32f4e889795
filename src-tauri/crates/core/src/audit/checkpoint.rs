//! Making and keeping signed checkpoints of the audit log.
//!
//! A checkpoint is made automatically once [`EVERY_EVENTS`] events or [`EVERY_MINUTES`]
//! minutes have passed since the previous one (checked after each write), and at every export.
//! Each is kept in `audit_checkpoints` with the right edge of the Merkle tree, so the next one
//! hashes only the new events. Mandate never signs a log it can see was tampered with: before
//! signing ([`make`]'s [`Guards`]), the copies of the newest checkpoint kept outside the
//! database must still be in it word for word, the previous checkpoint's stored state must be
//! the one its signature covers, and every new event must chain from it and carry a valid
//! batch tag (`tag`).
//!
//! The newest checkpoint is also written to [`FILE_NAME`] beside the database (atomically,
//! never replaced by an older one) and kept in the OS keychain (by `api`). Their signatures
//! are their check. A verifier that finds the database smaller than, or inconsistent with,
//! either reports a rollback: this is what catches "truncate the log and restore an older
//! genuine checkpoint" (SECURITY.md, Tamper evidence), and the keychain's copy catches it even
//! when the file was rolled back too.
//!
//! What it is not: verification (see `verify`), or key management (the signing key is the
//! issuer key the registry keeps in the OS keychain).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::store::{Tx, ValueRef, params};
use chrono::{DateTime, Duration, Utc};
use ed25519_dalek::VerifyingKey;

use crate::vault::Ed25519Signer;

use super::merkle::{Frontier, Hash, leaf_hash};
use super::note::{Checkpoint, NoteKey, SignedCheckpoint};
use super::tag::{TagKey, Tiling};
use super::{GENESIS, chain_link, format_time};
use crate::error::{Error, Result};

/// A checkpoint is due after this many new events...
pub const EVERY_EVENTS: u64 = 1000;
/// ...or when the newest is this many minutes old and events were added since.
pub const EVERY_MINUTES: i64 = 10;
/// The newest checkpoint, kept beside the database.
pub const FILE_NAME: &str = "audit-checkpoint.txt";

/// Keeps the "is a checkpoint due?" question off the hot path: the database is asked at most
/// once per [`DueThrottle::WRITES`] writes or per second of the clock, so a checkpoint comes at
/// most that many writes after it fell due. (Asking after every write took the connection lock
/// between group commits and cut durable appends from about 22,000 to 1,000 per second.)
#[derive(Debug, Default)]
pub(crate) struct DueThrottle {
    writes: std::sync::atomic::AtomicU64,
    last_micros: std::sync::atomic::AtomicI64,
}

impl DueThrottle {
    const WRITES: u64 = 64;

    /// Count a write; true when this one should ask the database.
    pub(crate) fn should_check(&self, now: DateTime<Utc>) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let n = self.writes.fetch_add(1, Relaxed) + 1;
        let now = now.timestamp_micros();
        let last = self.last_micros.load(Relaxed);
        if n < Self::WRITES && now - last < 1_000_000 {
            return false;
        }
        if self
            .last_micros
            .compare_exchange(last, now, Relaxed, Relaxed)
            .is_err()
        {
            return false; // another writer is checking
        }
        self.writes.store(0, Relaxed);
        true
    }
}

/// A checkpoint as kept in the database.
#[derive(Debug, Clone)]
pub struct StoredCheckpoint {
    pub size: u64,
    /// The issuer key id (JWK thumbprint) that signed it.
    pub kid: String,
    pub public_key: VerifyingKey,
    /// The signed note, verbatim.
    pub note: String,
}

/// Size and time of the newest checkpoint, if any.
pub(crate) fn newest(conn: &Tx<'_>) -> Result<Option<(u64, DateTime<Utc>)>> {
    let row: Option<(i64, String)> = conn.query_opt(
        "SELECT size, time FROM audit_checkpoints ORDER BY size DESC LIMIT 1",
        params![],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    match row {
        None => Ok(None),
        Some((size, time)) => Ok(Some((size as u64, parse_time(&time)?))),
    }
}

fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::Storage(format!("a checkpoint time is unreadable ({e})")))
}

/// Number of events in the log.
pub(crate) fn log_size(conn: &Tx<'_>) -> Result<u64> {
    let n: Option<i64> =
        conn.query_row("SELECT max(seq) FROM audit_events", params![], |r| r.get(0))?;
    Ok(n.unwrap_or(0) as u64)
}

/// Whether a checkpoint is due at `now`.
pub(crate) fn is_due(conn: &Tx<'_>, now: DateTime<Utc>) -> Result<bool> {
    let size = log_size(conn)?;
    Ok(match newest(conn)? {
        None => {
            let first: Option<String> = conn.query_opt(
                "SELECT time FROM audit_events ORDER BY seq LIMIT 1",
                params![],
                |r| r.get(0),
            )?;
            match first {
                None => false,
                Some(t) => {
                    size >= EVERY_EVENTS
                        || now - parse_time(&t)? >= Duration::minutes(EVERY_MINUTES)
                }
            }
        }
        Some((s, t)) => {
            size > s && (size - s >= EVERY_EVENTS || now - t >= Duration::minutes(EVERY_MINUTES))
        }
    })
}

/// Every stored checkpoint, smallest first.
pub fn all(conn: &Tx<'_>) -> Result<Vec<StoredCheckpoint>> {
    let rows = conn.query_map(
        "SELECT size, kid, public_key, note FROM audit_checkpoints ORDER BY size",
        params![],
        |r| {
            Ok((
                r.get::<i64>(0)?,
                r.get::<String>(1)?,
                r.get::<Vec<u8>>(2)?,
                r.get::<String>(3)?,
            ))
        },
    )?;
    let mut out = Vec::new();
    for (size, kid, pk, note) in rows {
        let public_key = <[u8; 32]>::try_from(pk.as_slice())
            .ok()
            .and_then(|b| VerifyingKey::from_bytes(&b).ok())
            .ok_or_else(|| Error::Storage("a checkpoint's public key is unreadable".into()))?;
        out.push(StoredCheckpoint {
            size: size as u64,
            kid,
            public_key,
            note,
        });
    }
    Ok(out)
}

/// What [`make`] holds the log against before it signs anything.
#[derive(Debug)]
pub(crate) struct Guards<'a> {
    /// The issuer keys: the previous checkpoint, which the new one extends, must verify.
    pub trusted: &'a [NoteKey],
    /// The key that tagged the batches, when the keychain holds one: every new event must be
    /// covered by a valid tag (`audit/tag.rs`).
    pub tag_key: Option<&'a TagKey>,
    /// The copies of the newest checkpoint kept outside the database (where, note text): the
    /// database must still hold each, word for word.
    pub outside: &'a [(&'a str, String)],
}

fn refuse(why: String) -> Error {
    Error::AuditFailed(format!("{why}. Run `mandate audit verify` for details"))
}

/// Make a checkpoint of the whole log inside `tx` (a `BEGIN IMMEDIATE` transaction), signed
/// by `key` under `origin`. Returns the newest checkpoint unchanged when no event was added
/// since it. Signs nothing, failing with [`Error::AuditFailed`], when the log is not the one
/// Mandate wrote: a copy kept outside the database is missing from it (rolled back), the
/// previous checkpoint's stored state does not match its signed note, or an event since it
/// does not chain or is not covered by a valid batch tag (forged).
pub(crate) fn make(
    tx: &Tx<'_>,
    origin: &str,
    kid: &str,
    key: &dyn Ed25519Signer,
    now: DateTime<Utc>,
    guards: &Guards<'_>,
) -> Result<SignedCheckpoint> {
    for (source, text) in guards.outside {
        let Ok(kept) = SignedCheckpoint::parse(text) else {
            continue;
        };
        if kept.checkpoint.origin != origin {
            continue;
        }
        let stored: Option<String> = tx.query_opt(
            "SELECT note FROM audit_checkpoints WHERE size = ?1",
            params![kept.checkpoint.size as i64],
            |r| r.get(0),
        )?;
        if stored.as_deref() != Some(text.as_str()) {
            return Err(refuse(format!(
                "the database no longer holds {source} (of {} events, signed {}): it was rolled \
                 back or replaced",
                kept.checkpoint.size, kept.checkpoint.time
            )));
        }
    }
    let prev: Option<(i64, Vec<u8>, Vec<u8>, String)> = tx.query_opt(
        "SELECT size, head, frontier, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1",
        params![],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let size = log_size(tx)?;
    let (mut frontier, mut head) = match &prev {
        Some((s, _, _, note)) if *s as u64 == size => {
            return SignedCheckpoint::parse(note)
                .map_err(|e| Error::Storage(format!("the newest checkpoint is unreadable: {e}")));
        }
        Some((s, head, frontier, note)) => {
            let damaged = || refuse(format!("the stored checkpoint of {s} events is damaged"));
            let f = Frontier::from_bytes(*s as u64, frontier).ok_or_else(damaged)?;
            let h: Hash = head.as_slice().try_into().map_err(|_| damaged())?;
            // The state the new checkpoint continues from must be the one that was signed.
            let signed = SignedCheckpoint::parse(note).map_err(|_| damaged())?;
            signed.verify(guards.trusted).map_err(|e| {
                refuse(format!(
                    "the stored checkpoint of {s} events does not verify ({e})"
                ))
            })?;
            if signed.checkpoint.size != *s as u64
                || signed.checkpoint.root != f.root()
                || signed.checkpoint.chain_head != h
            {
                return Err(damaged());
            }
            (f, h)
        }
        None => (Frontier::new(), GENESIS),
    };
    if frontier.size() > size {
        return Err(refuse(format!(
            "the audit log has {size} events but a checkpoint covers {}: events were removed",
            frontier.size()
        )));
    }
    let mut tiling = guards.tag_key.map(|k| Tiling::new(k.clone()));
    tx.query_each(
        "SELECT seq, body, hash, tag_from, tag FROM audit_events WHERE seq > ?1 ORDER BY seq",
        params![frontier.size() as i64],
        |r| {
            let seq = r.get::<i64>(0)? as u64;
            let stored: Hash = r.get_blob(2)?.try_into().unwrap_or([0xff; 32]);
            let expected = frontier.size() + 1;
            let leaf = leaf_hash(r.get_blob(1)?);
            let computed = chain_link(&head, &leaf);
            if seq != expected || computed != stored {
                return Err(refuse(format!(
                    "the audit log is damaged at event #{expected}, so no checkpoint was signed"
                )));
            }
            if let Some(t) = &mut tiling {
                let tag = match (r.get_ref(3)?, r.get_ref(4)?) {
                    (ValueRef::Int(from), ValueRef::Blob(tag)) => Some((from.max(0) as u64, tag)),
                    _ => None,
                };
                t.event(seq, &stored, tag, false);
            }
            head = computed;
            frontier.push(leaf);
            Ok(())
        },
    )?;
    if let Some((first, last)) = tiling.and_then(|t| t.finish().into_iter().next()) {
        return Err(refuse(super::tag::gap_message(first, last)));
    }
    let cp = Checkpoint {
        origin: origin.to_string(),
        size,
        root: frontier.root(),
        chain_head: head,
        time: format_time(now),
    };
    let note = cp.sign_parts(origin, &key.public_key(), |m| key.try_sign(m))?;
    tx.execute(
        "INSERT INTO audit_checkpoints
         (size, time, root, head, kid, public_key, note, frontier)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
        params![
            size as i64,
            cp.time,
            cp.root.as_slice(),
            cp.chain_head.as_slice(),
            kid,
            key.public_key().as_bytes().as_slice(),
            note,
            frontier.to_bytes()
        ],
    )?;
    SignedCheckpoint::parse(&note)
        .map_err(|e| Error::Storage(format!("a fresh checkpoint is unreadable: {e}")))
}

/// The path of the checkpoint file in `data_dir`.
pub fn file_path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// Read the checkpoint file, if there is one.
pub fn read_file(data_dir: &Path) -> Result<Option<String>> {
    let path = file_path(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io {
            action: "could not read the checkpoint file",
            path,
            reason: e.to_string(),
        }),
    }
}

/// Replace the checkpoint file with `cp` unless it already holds one at least as large.
/// Written to a temporary file, synced, then renamed, so a crash leaves the old or the new.
pub fn write_file_if_newer(data_dir: &Path, cp: &SignedCheckpoint) -> Result<bool> {
    if let Some(existing) = read_file(data_dir)?
        && let Ok(old) = SignedCheckpoint::parse(&existing)
        && old.checkpoint.origin == cp.checkpoint.origin
        && old.checkpoint.size >= cp.checkpoint.size
    {
        return Ok(false);
    }
    let path = file_path(data_dir);
    let tmp = data_dir.join(format!(".{FILE_NAME}.{}.tmp", std::process::id()));
    let io = |e: std::io::Error| Error::Io {
        action: "could not write the checkpoint file",
        path: path.clone(),
        reason: e.to_string(),
    };
    let write = || -> std::io::Result<()> {
        let mut f = crate::private_file::create(&tmp)?;
        f.write_all(cp.text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        if let Ok(d) = std::fs::File::open(data_dir) {
            let _ = d.sync_all();
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })?;
    Ok(true)
}
