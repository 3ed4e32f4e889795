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
//! This module is the pure part (the key's MAC and the [`Tiling`] check); `mandate-core` keeps
//! the key in the OS keychain and writes the tags.
//!
//! What it is not: a signature. Only a holder of the keychain can check a tag, so tags never
//! leave the machine (bundles carry signed checkpoints instead), and a keychain holder can make
//! them. docs/AUDIT_FORMAT.md §9 states what each kind of attacker can and cannot do.

use std::fmt;

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::merkle::Hash;

type HmacSha256 = Hmac<Sha256>;

/// What every tag's message starts with.
pub const CONTEXT: &[u8] = b"mandate-audit-batch/1\n";

/// The key that authenticates batches, and the log size it was made at. Never printed.
#[derive(Clone)]
pub struct TagKey {
    mac: HmacSha256,
    adopted_to: u64,
}

impl fmt::Debug for TagKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TagKey")
            .field("key", &"[REDACTED]")
            .field("adopted_to", &self.adopted_to)
            .finish()
    }
}

impl TagKey {
    /// A key from its 32 bytes, made when the log held `adopted_to` events.
    pub fn new(key: &[u8; 32], adopted_to: u64) -> Self {
        // A key shorter than SHA-256's 64-byte block is zero-padded to it (RFC 2104), so the
        // infallible block-sized constructor gives the standard HMAC of the 32-byte key.
        let mut block = zeroize::Zeroizing::new([0u8; 64]);
        block[..32].copy_from_slice(key);
        TagKey {
            mac: <HmacSha256 as KeyInit>::new(&(*block).into()),
            adopted_to,
        }
    }

    /// The log's size when this key was made: tags ending at or before it are not checked.
    pub fn adopted_to(&self) -> u64 {
        self.adopted_to
    }

    fn keyed(&self, from: u64, to: u64, hash: &Hash) -> HmacSha256 {
        let mut m = self.mac.clone();
        m.update(CONTEXT);
        m.update(&from.to_be_bytes());
        m.update(&to.to_be_bytes());
        m.update(hash);
        m
    }

    /// The tag of the batch of events `from..=to` whose last chain hash is `hash`.
    pub fn tag(&self, from: u64, to: u64, hash: &Hash) -> Hash {
        self.keyed(from, to, hash).finalize().into_bytes().into()
    }

    /// Whether `tag` is that batch's tag (compared in constant time).
    pub fn verifies(&self, from: u64, to: u64, hash: &Hash, tag: &[u8]) -> bool {
        from >= 1 && from <= to && self.keyed(from, to, hash).verify_slice(tag).is_ok()
    }
}

/// Follows the tags along a walk of the log, in order, and collects the runs of events that
/// no valid tag covers.
#[derive(Debug)]
pub struct Tiling {
    key: TagKey,
    /// The uncovered events since the last valid tag: (position, already reported as wrong).
    run: Vec<(u64, bool)>,
    /// Runs no valid tag covers, with an event not already reported otherwise: (first, last).
    gaps: Vec<(u64, u64)>,
}

impl Tiling {
    /// A walk that starts after event `covered` (0 for the whole log).
    pub fn new(key: TagKey) -> Self {
        Tiling {
            key,
            run: Vec::new(),
            gaps: Vec::new(),
        }
    }

    /// The event at `pos` with its stored chain hash and its row's tag; `flagged` when the walk
    /// already reported this event as edited, deleted, inserted or reordered.
    pub fn event(&mut self, pos: u64, hash: &Hash, tag: Option<(u64, &[u8])>, flagged: bool) {
        self.run.push((pos, flagged));
        let Some((from, tag)) = tag else { return };
        if pos <= self.key.adopted_to() || !self.key.verifies(from, pos, hash, tag) {
            return;
        }
        let uncovered: Vec<(u64, bool)> = self.run.drain(..).filter(|(p, _)| *p < from).collect();
        self.close(&uncovered);
    }

    fn close(&mut self, run: &[(u64, bool)]) {
        if let (Some(first), Some(last)) = (run.first(), run.last())
            && run.iter().any(|(_, flagged)| !flagged)
        {
            self.gaps.push((first.0, last.0));
        }
    }

    /// The runs of events no valid tag covers, oldest first.
    pub fn finish(mut self) -> Vec<(u64, u64)> {
        let run = std::mem::take(&mut self.run);
        self.close(&run);
        self.gaps
    }
}

/// The message for events no valid tag covers.
pub fn gap_message(first: u64, last: u64) -> String {
    let which = if first == last {
        format!("event #{first} is")
    } else {
        format!("events #{first} to #{last} are")
    };
    format!(
        "{which} not authenticated: no valid tag made with this installation's key from the OS \
         keychain covers them, so they were written or changed by someone without Mandate's \
         keys (forged, or rewritten and the hash chain recomputed)"
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn the_padded_key_gives_the_standard_hmac() {
        let k = TagKey::new(&[0x0b; 32], 0);
        let mut std = <HmacSha256 as Mac>::new_from_slice(&[0x0b; 32]).unwrap();
        std.update(CONTEXT);
        std.update(&1u64.to_be_bytes());
        std.update(&2u64.to_be_bytes());
        std.update(&[5; 32]);
        assert_eq!(
            k.tag(1, 2, &[5; 32]).as_slice(),
            std.finalize().into_bytes().as_slice()
        );
    }

    #[test]
    fn a_tag_binds_its_range_and_hash_and_the_key() {
        let k = TagKey::new(&[1; 32], 0);
        let t = k.tag(3, 5, &[7; 32]);
        assert!(k.verifies(3, 5, &[7; 32], &t));
        assert!(!k.verifies(4, 5, &[7; 32], &t));
        assert!(!k.verifies(3, 6, &[7; 32], &t));
        assert!(!k.verifies(3, 5, &[8; 32], &t));
        assert!(!TagKey::new(&[2; 32], 0).verifies(3, 5, &[7; 32], &t));
        assert!(!k.verifies(0, 5, &[7; 32], &k.tag(0, 5, &[7; 32])));
        assert_eq!(
            format!("{k:?}"),
            "TagKey { key: \"[REDACTED]\", adopted_to: 0 }"
        );
    }

    #[test]
    fn tiling_reports_runs_no_tag_covers_unless_already_reported() {
        let k = TagKey::new(&[1; 32], 0);
        let h = |n: u8| [n; 32];
        let mut t = Tiling::new(k.clone());
        // Batches 1..=2 and 3..=3, then 4..=5 untagged (forged), then 6 tagged alone.
        t.event(1, &h(1), None, false);
        t.event(2, &h(2), Some((1, &k.tag(1, 2, &h(2)))), false);
        t.event(3, &h(3), Some((3, &k.tag(3, 3, &h(3)))), false);
        t.event(4, &h(4), None, false);
        t.event(5, &h(5), None, false);
        t.event(6, &h(6), Some((6, &k.tag(6, 6, &h(6)))), false);
        t.event(7, &h(7), None, false);
        assert_eq!(t.finish(), vec![(4, 5), (7, 7)]);
        // A run whose every event was already reported is not reported again.
        let mut t = Tiling::new(k.clone());
        t.event(1, &h(1), None, true);
        t.event(2, &h(2), Some((2, &k.tag(2, 2, &h(2)))), false);
        assert_eq!(t.finish(), vec![]);
        // Tags at or before the adoption point are not checked; the adopting batch covers all.
        let k = TagKey::new(&[1; 32], 3);
        let mut t = Tiling::new(k.clone());
        t.event(1, &h(1), Some((1, &[0u8; 32][..])), false);
        t.event(2, &h(2), None, false);
        t.event(3, &h(3), None, false);
        t.event(4, &h(4), Some((1, &k.tag(1, 4, &h(4)))), false);
        assert_eq!(t.finish(), vec![]);
    }
}
