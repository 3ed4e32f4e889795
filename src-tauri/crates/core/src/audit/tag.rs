//! Batch tags: every committed batch of audit events is authenticated with a key that lives
//! only in the OS keychain, so someone who can write the database but cannot read the keychain
//! cannot append events, or rewrite and re-chain old ones, that pass as Mandate's.
//!
//! The newest event a transaction appends carries `tag_from` (the first event that
//! transaction appended) and `tag = HMAC-SHA256(K, "mandate-audit-batch/1\n" || be64(tag_from)
//! || be64(seq) || hash)`, where `hash` is that event's chain hash. The chain hash commits to
//! every earlier event, so a tag vouches for the whole log up to its event, and the tags of
//! successive transactions tile the log: each batch starts right after the one before it.
//! A group commit of many tokens pays for one HMAC and one row update (docs/BENCHMARKS.md).
//!
//! The keychain entry holds the key and `adopted_to`, the log's size when the key was made.
//! The first transaction after that tags from #1: its chain hash vouches for the history the
//! key found (which the signed checkpoints also cover), so upgrading rewrites nothing, and a
//! key lost and made again starts a new tiling instead of failing every write. Tags ending at
//! or before `adopted_to` are not checked: an earlier key made them, or none existed.
//!
//! Every writer tags (`Mandate::write` and the group committer); [`Tiling`] checks the tags
//! along a walk of the log (verification, and before a checkpoint is signed).
//!
//! What it is not: a signature. Only a holder of the keychain can check a tag, so tags never
//! leave the machine (bundles carry signed checkpoints instead), and a keychain holder can make
//! them. docs/AUDIT_FORMAT.md §9 states what each kind of attacker can and cannot do.

use std::fmt;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::{OsRng, RngCore};

use super::merkle::Hash;
use crate::error::{Error, Result};
use crate::secret::{Keychain, KeychainError, SecretRef, Sensitive};
use crate::store::{Tx, params};

// The key's MAC and the tiling check are part of the pure audit format.
pub use mandate_audit_format::tag::{CONTEXT, TagKey};
pub(crate) use mandate_audit_format::tag::{Tiling, gap_message};

/// The first word of the keychain entry; the format of what follows it.
const ENTRY: &str = "mandate-audit-tag-key/1";

/// The keychain entry for `tag_key`, made from `key`.
fn to_secret(tag_key: &TagKey, key: &[u8; 32]) -> Sensitive<String> {
    Sensitive::new(format!(
        "{ENTRY} {} {}",
        URL_SAFE_NO_PAD.encode(key),
        tag_key.adopted_to()
    ))
}

/// The key a keychain entry holds; a damaged entry is refused.
fn from_secret(s: &Sensitive<String>) -> Result<TagKey> {
    let bad = || {
        Error::Keychain(KeychainError::Missing(
            "the audit trail's authentication key in the OS keychain is damaged; restore \
             the keychain from a backup"
                .into(),
        ))
    };
    let mut parts = s.expose().split(' ');
    let (Some(ENTRY), Some(key), Some(adopted), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let mut raw = zeroize::Zeroizing::new([0u8; 32]);
    let decoded = zeroize::Zeroizing::new(URL_SAFE_NO_PAD.decode(key).map_err(|_| bad())?);
    if decoded.len() != 32 {
        return Err(bad());
    }
    raw.copy_from_slice(&decoded);
    let adopted_to = adopted.parse().map_err(|_| bad())?;
    Ok(TagKey::new(&raw, adopted_to))
}

/// The installation's tag key: read from the keychain once, then kept in memory.
pub struct TagKeys {
    keychain: Arc<dyn Keychain>,
    /// The installation's keychain account (namespaced by install id).
    account: SecretRef,
    cached: Mutex<Option<TagKey>>,
}

impl fmt::Debug for TagKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TagKeys").finish_non_exhaustive()
    }
}

impl TagKeys {
    /// The key kept under `account` (already namespaced by installation) in `keychain`.
    pub fn new(keychain: Arc<dyn Keychain>, account: SecretRef) -> Self {
        TagKeys {
            keychain,
            account,
            cached: Mutex::new(None),
        }
    }

    fn cached(&self) -> Option<TagKey> {
        self.cached.lock().ok().and_then(|c| c.clone())
    }

    fn remember(&self, k: &TagKey) {
        if let Ok(mut c) = self.cached.lock() {
            *c = Some(k.clone());
        }
    }

    /// The key, if the keychain holds one. Never makes one: for verification.
    pub fn get(&self) -> Result<Option<TagKey>> {
        if let Some(k) = self.cached() {
            return Ok(Some(k));
        }
        match self.keychain.get(&self.account)? {
            None => Ok(None),
            Some(s) => {
                let k = from_secret(&s)?;
                self.remember(&k);
                Ok(Some(k))
            }
        }
    }

    /// The key for a writer holding the database's write lock, who found the log at `size`
    /// events: made now (adopting those events) if the keychain has none. Holding the write
    /// lock is what keeps two processes from making two keys.
    fn for_write(&self, tx: &Tx<'_>, size: u64) -> Result<TagKey> {
        if let Some(k) = self.get()? {
            return Ok(k);
        }
        let mut raw = zeroize::Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(raw.as_mut());
        let k = TagKey::new(&raw, size);
        self.keychain
            .set_during(tx, &self.account, &to_secret(&k, &raw))?;
        tracing::info!(
            adopted_to = size,
            "made the key that authenticates the audit trail"
        );
        self.remember(&k);
        Ok(k)
    }
}

/// The newest event's position (0 for an empty log): read at the start of a write transaction.
/// `Mandate`'s writers call this and [`seal`] themselves; they are public for benchmarks.
pub fn head(conn: &Tx<'_>) -> Result<u64> {
    let n: Option<i64> = conn.query_opt(
        "SELECT seq FROM audit_events ORDER BY seq DESC LIMIT 1",
        params![],
        |r| r.get(0),
    )?;
    Ok(n.unwrap_or(0).max(0) as u64)
}

/// Tag the events `tx` appended after position `before` (see the module docs); nothing when it
/// appended none. Fails, so the transaction rolls back, when the keychain cannot be used.
pub fn seal(tx: &Tx<'_>, before: u64, keys: &TagKeys) -> Result<()> {
    let newest = || -> Result<Option<(i64, Vec<u8>)>> {
        tx.query_opt(
            "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1",
            params![],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    };
    match newest()? {
        Some((to, _)) if to.max(0) as u64 > before => {}
        _ => return Ok(()),
    }
    let key = keys.for_write(tx, before)?;
    // Read again: making the key may itself have appended an event (a team server's sealing
    // key, made with the first sealed secret), which this batch covers too.
    let Some((to, hash)) = newest()? else {
        return Ok(());
    };
    let to = to.max(0) as u64;
    let hash: Hash = hash
        .as_slice()
        .try_into()
        .map_err(|_| Error::Storage("an audit hash has the wrong length".into()))?;
    // The first batch under a key vouches for the history it found.
    let from = if before == key.adopted_to() {
        1
    } else {
        before + 1
    };
    tx.execute(
        "UPDATE audit_events SET tag_from = ?1, tag = ?2 WHERE seq = ?3",
        params![from as i64, key.tag(from, to, &hash).as_slice(), to as i64],
    )?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn the_keychain_entry_round_trips_and_a_damaged_one_is_refused() {
        let raw = [9u8; 32];
        let k = TagKey::new(&raw, 42);
        let s = to_secret(&k, &raw);
        let back = from_secret(&s).unwrap();
        assert_eq!(back.adopted_to(), 42);
        assert_eq!(back.tag(1, 2, &[0; 32]), k.tag(1, 2, &[0; 32]));
        for bad in [
            "",
            "mandate-audit-tag-key/1 AAAA 1",
            "other x 1",
            "mandate-audit-tag-key/1",
        ] {
            assert!(from_secret(&Sensitive::new(bad.to_string())).is_err());
        }
    }
}
