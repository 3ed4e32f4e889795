//! The hash chain over the audit events.
//!
//! Each event's chain hash is `SHA-256(previous hash || leaf hash)`, where the leaf hash is the
//! event's RFC 9162 Merkle leaf `SHA-256(0x00 || canonical bytes)` and the hash before the first
//! event is 32 zero bytes ([`GENESIS`]). The chain names the first edited event; the Merkle tree
//! (`merkle`) gives the proofs and checkpoints.
//!
//! What it is not: canonicalisation. An event's canonical bytes are made by `mandate-core`
//! (RFC 8785); here they are only hashed.

use sha2::{Digest, Sha256};

use crate::merkle;

/// The hash before the first event.
pub const GENESIS: [u8; 32] = [0u8; 32];

/// The chain hash of an event: `SHA-256(prev || leaf hash)`, where the leaf hash is
/// `SHA-256(0x00 || canonical)`, the event's RFC 9162 Merkle leaf. The link covers the
/// canonical bytes through the leaf hash, so each event's bytes are hashed once for both the
/// chain and the tree (which is what lets verification run at a million events a second).
pub fn chain_hash(prev: &[u8; 32], canonical: &[u8]) -> [u8; 32] {
    chain_link(prev, &merkle::leaf_hash(canonical))
}

/// `SHA-256(prev || leaf)`.
pub fn chain_link(prev: &[u8; 32], leaf: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(leaf);
    h.finalize().into()
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}
