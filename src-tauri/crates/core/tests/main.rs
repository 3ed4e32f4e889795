//! Core tests through the public API, on real SQLite files with the in-memory keychain
//! (the real keychain is covered by `mandate-keychain`'s tests and the workspace `tests/`).
//!
//! - `registry`: members, connections, agents, rollback when the keychain fails, the chain.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod registry;
