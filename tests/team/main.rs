//! The team server's tests (issue 20), run by `scripts/test --team` (CI runs them too): real
//! `mandate server` processes, a real SoftHSM2 token, a CA and certificate from `openssl`, and
//! the remote agent on a second host (a network namespace). They need root (the namespace)
//! and fail loudly without it. The witness test also keeps a witness key in the OS keychain:
//! `scripts/test` runs them under `scripts/with-keyring`.
//!
//! Table of contents:
//! - `fixture`     the token, the PKI, the remote host, instances
//! - `acceptance`  the "done when": two instances on PostgreSQL, a remote agent, revocation across
//!   instances, kill -9 under load, the team's export verified
//! - `members`     issue 21: members join with their own keys, sign in for DPoP-bound tokens,
//!   act within their roles; removed members, stolen or expired invite codes, replays and
//!   out-of-role requests are refused, audited and leave the registry unchanged
//! - `events`      the live event stream: `mandate team watch` sees another member's change
//!   within 2 s, within its role; resumes without gaps; stream caps; removal ends it
//! - `postgres`    an outage of PostgreSQL under a running server: 503, nothing half-written,
//!   recovery when it returns
//! - `witness`     a witness cosigns a growing log and catches a history rewritten in
//!   PostgreSQL
//! - `exposure`    HTTPS only off loopback, the Host allow-list, per-source rate limits,
//!   secrets sealed in the database, rotation of both keys with servers running

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod acceptance;
mod events;
mod exposure;
mod fixture;
mod members;
mod postgres;
mod witness;
