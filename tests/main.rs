//! Mandate's integration tests: one binary, a module per area.
//!
//! They drive the real `mandate` binary (built by `scripts/test` before this runs) against real
//! SQLite files in temporary data folders, and the real OS keychain: run them inside
//! `scripts/with-keyring`, which starts a private Secret Service (gnome-keyring on its own
//! D-Bus session) and sets `MANDATE_KEYRING_HARNESS=1`.
//!
//! Table of contents:
//! - `fixture`       temp data folders, running `mandate`, JSON helpers
//! - `registry_cli`  members, connections, agents, keys, trust, bad input, nothing half-written
//! - `secrets`       connection credentials reach the keychain and nowhere else

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod fixture;
mod registry_cli;
mod secrets;
