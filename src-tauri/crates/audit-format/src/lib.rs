//! Mandate's audit format, and the one verifier of it.
//!
//! Everything an outsider needs to check Mandate's audit evidence lives here: an event's chain
//! link and RFC 9162 Merkle leaf ([`chain`], [`merkle`]), checkpoints as C2SP signed notes
//! ([`note`]), evidence bundles ([`bundle`]), the I-JSON reading of a bundle line ([`json`]),
//! key names ([`keys`]), batch tags ([`tag`]) and verification ([`verify`]), which names what
//! broke and where. `docs/AUDIT_FORMAT.md` is the normative spec.
//!
//! The crate is pure: no SQLite, keychain, tokio, clock or file system. That is why it exists
//! apart from `mandate-core`: the same code verifies in the desktop app, the CLI, the static
//! `mandate-verify` binary and (compiled to WebAssembly) the self-contained verifier page, so
//! there is one implementation behind every door.
//!
//! What it is not: the audit trail's storage or policy. Appending events, making and keeping
//! checkpoints and reading the store live in `mandate-core`, which builds on this crate.

pub mod bundle;
pub mod chain;
pub mod cosignature;
pub mod json;
pub mod keys;
pub mod merkle;
pub mod note;
pub mod pages;
#[cfg(feature = "pdf")]
pub mod pdf;
pub mod tag;
pub mod verify;

pub use chain::{GENESIS, chain_hash, chain_link, hex};
