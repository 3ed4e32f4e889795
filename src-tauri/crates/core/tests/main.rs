//! Core tests through the public API, on real SQLite files (and a real PostgreSQL when
//! `MANDATE_TEST_POSTGRES` is set) with the in-memory keychain
//! (the real keychain is covered by `mandate-keychain`'s tests and the workspace `tests/`).
//!
//! - `registry`: members, connections, agents, rollback when the keychain fails, the chain.
//! - `subagents`: a sub-agent never exceeds its parent; narrowing and holding back.
//! - `stores`: two handles on one store (two processes or server instances): one linear
//!   chain, registry changes seen by the other's next token request, replays refused.
//! - `tls`: the endpoint's loopback certificate (names, key only in the keychain, renewal).
//! - `wycheproof`: Project Wycheproof's Ed25519 vectors through key registration and verification.
//! - `fuzz`: property tests feeding arbitrary input to every parser an attacker reaches.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod fuzz;
mod registry;
mod stores;
mod subagents;
mod tls;
mod wycheproof;
