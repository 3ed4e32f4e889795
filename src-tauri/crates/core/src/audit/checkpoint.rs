//! Making and keeping signed checkpoints of the audit log.
//!
//! A checkpoint is made automatically once [`EVERY_EVENTS`] events or [`EVERY_MINUTES`]
//! minutes have passed since the previous one (checked after each write), and at every export.
//! Each is kept in `audit_checkpoints` with the right edge of the Merkle tree, so the next one
//! hashes only the new events. Before signing, the new events' hash chain is rechecked from the
//! previous checkpoint's head: Mandate never signs a log it can see was tampered with.
//!
//! The newest checkpoint is also written to [`FILE_NAME`] beside the database (atomically,
//! never replaced by an older one). Its signature is its check. A verifier that finds the
//! database smaller than, or inconsistent with, that file reports a rollback: this is what
//! catches "truncate the log and restore an older genuine checkpoint" (SECURITY.md, Tamper
//! evidence).
//!
//! What it is not: verification (see `verify`), or key management (the signing key is the
//! issuer key the registry keeps in the OS keychain).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use ed25519_dalek::{SigningKey, VerifyingKey};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::merkle::{Frontier, Hash, leaf_hash};
use super::note::{Checkpoint, SignedCheckpoint};
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
pub(crate) fn newest(conn: &Connection) -> Result<Option<(u64, DateTime<Utc>)>> {
    let row: Option<(i64, String)> = conn
        .query_row(
            "SELECT size, time FROM audit_checkpoints ORDER BY size DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
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
pub(crate) fn log_size(conn: &Connection) -> Result<u64> {
    let n: Option<i64> = conn.query_row("SELECT max(seq) FROM audit_events", [], |r| r.get(0))?;
    Ok(n.unwrap_or(0) as u64)
}

/// Whether a checkpoint is due at `now`.
pub(crate) fn is_due(conn: &Connection, now: DateTime<Utc>) -> Result<bool> {
    let size = log_size(conn)?;
    Ok(match newest(conn)? {
        None => {
            let first: Option<String> = conn
                .query_row(
                    "SELECT time FROM audit_events ORDER BY seq LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
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
pub fn all(conn: &Connection) -> Result<Vec<StoredCheckpoint>> {
    let mut stmt =
        conn.prepare("SELECT size, kid, public_key, note FROM audit_checkpoints ORDER BY size")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Vec<u8>>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (size, kid, pk, note) = row?;
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

/// Make a checkpoint of the whole log inside `tx` (a `BEGIN IMMEDIATE` transaction), signed
/// by `key` under `origin`. Returns the newest checkpoint unchanged when no event was added
/// since it. Fails, signing nothing, if the events since the previous checkpoint do not chain.
pub(crate) fn make(
    tx: &Transaction<'_>,
    origin: &str,
    kid: &str,
    key: &SigningKey,
    now: DateTime<Utc>,
) -> Result<SignedCheckpoint> {
    let prev: Option<(i64, Vec<u8>, Vec<u8>, String)> = tx
        .query_row(
            "SELECT size, head, frontier, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let size = log_size(tx)?;
    let (mut frontier, mut head) = match &prev {
        Some((s, _, _, note)) if *s as u64 == size => {
            return SignedCheckpoint::parse(note)
                .map_err(|e| Error::Storage(format!("the newest checkpoint is unreadable: {e}")));
        }
        Some((s, head, frontier, _)) => {
            let f = Frontier::from_bytes(*s as u64, frontier)
                .ok_or_else(|| Error::Storage("a stored checkpoint is damaged".into()))?;
            let h: Hash = head
                .as_slice()
                .try_into()
                .map_err(|_| Error::Storage("a stored checkpoint is damaged".into()))?;
            (f, h)
        }
        None => (Frontier::new(), GENESIS),
    };
    if frontier.size() > size {
        return Err(Error::Conflict(format!(
            "the audit log has {size} events but a checkpoint covers {}: events were removed. \
             Run `mandate audit verify` for details",
            frontier.size()
        )));
    }
    let mut stmt =
        tx.prepare("SELECT seq, body, hash FROM audit_events WHERE seq > ?1 ORDER BY seq")?;
    let mut rows = stmt.query([frontier.size() as i64])?;
    while let Some(r) = rows.next()? {
        let seq = r.get::<_, i64>(0)? as u64;
        let body: Vec<u8> = r.get(1)?;
        let stored: Vec<u8> = r.get(2)?;
        let expected = frontier.size() + 1;
        let leaf = leaf_hash(&body);
        let computed = chain_link(&head, &leaf);
        if seq != expected || computed.as_slice() != stored.as_slice() {
            return Err(Error::Conflict(format!(
                "the audit log is damaged at event #{expected}, so no checkpoint was signed. \
                 Run `mandate audit verify` for details"
            )));
        }
        head = computed;
        frontier.push(leaf);
    }
    drop(rows);
    drop(stmt);
    let cp = Checkpoint {
        origin: origin.to_string(),
        size,
        root: frontier.root(),
        chain_head: head,
        time: format_time(now),
    };
    let note = cp.sign(origin, key);
    tx.execute(
        "INSERT OR IGNORE INTO audit_checkpoints
         (size, time, root, head, kid, public_key, note, frontier)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            size as i64,
            cp.time,
            cp.root.as_slice(),
            cp.chain_head.as_slice(),
            kid,
            key.verifying_key().as_bytes().as_slice(),
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
