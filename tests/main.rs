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
//! - `credentials`   issue 17's walk: moved credentials go only to their own kind, never lost
//! - `people_cli`    every change names a person: OS login, `member use`, `--as`; sub-agent rules
//! - `endpoint`      token endpoint fixture: in-process server, hand-built assertions and proofs
//! - `token_endpoint` SECURITY.md's endpoint lines as tables, revocation, delegation, exchange
//! - `endpoint_walk` what a new user's walk found (issue 17 §5): stock clients' assertions,
//!   challenges, 405/chunked errors, floors, port squatters, revoked agents
//! - `interop`       authlib, jose and the example resource server against `mandate serve`
//! - `audit_trail`   sqlite3 tampers named by `verify`, the PDF verified offline, Python verifier
//! - `audit_crash`   `mandate serve` killed with SIGKILL under mixed load: nothing acknowledged lost
//! - `trials`        the crash trials `audit_crash` and `scripts/crash-trials` run
//! - `audit_errors`  damaged bundles and PDFs, foreign keys, bad proofs, unwritable exports
//! - `audit_commands` live verify with the reader's key and checkpoint, prove, exports that
//!   refuse a tampered trail, killed exports' temporary files, the vectors in both verifiers
//! - `audit_tamper`  a database writer without the keychain (forged tail, rewrite, rollback)
//! - `audit_siem`    streaming to a real rsyslog on loopback, retried while it is down
//! - `token_cli`     `mandate delegation`, `jwks export`, `serve` and its data-folder lock
//! - `tls`           `serve --tls`: clients trusting only Mandate's certificate, plain HTTP
//! - `broker`        the secret broker and `mandate exec` against a real upstream process
//! - `service`       `mandate service` under a real systemd user manager: starts at a fresh
//!   login, serves with no app open, hands over, uninstalls
//! - `trust_cli`     issue 19: a burst of denials drops an agent below the floor, signed review
//!   attestations (signed by Python securesystemslib) within their bound, drift and review,
//!   minimum scores on connections and the organisation
//! - `mcp_gateway`   `mandate mcp run` and `/mcp/{server}` between real MCP clients (TypeScript,
//!   Python) and the reference servers: invisible tools, refusals, masking, bad input, crashes
//! - `descriptors`   `mandate serve` keeps no descriptor of a closed connection (the soak's bar)
//! - `faults`        a full disk, a read-only data folder, the database file replaced under the server
//! - `hostile`       the hostile input catalogue: 100+ attacks on the real server, each answered exactly
//! - `team_store`    two `mandate serve` processes and a CLI writing at once to one store
//!   (PostgreSQL when `MANDATE_TEST_POSTGRES` is set; `scripts/with-postgres` sets it): one
//!   linear chain, every token audited, a suspension through one refused at the other
//! - `verifier_page` the verifier page in headless Chromium and `mandate-verify`: a report and
//!   every vector get the CLI's verdict and text, offline, with no network request

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod audit_commands;
mod audit_crash;
mod audit_errors;
mod audit_siem;
mod audit_tamper;
mod audit_trail;
mod broker;
mod ciba;
mod credentials;
mod descriptors;
mod endpoint;
mod endpoint_walk;
mod faults;
mod fixture;
mod hostile;
mod interop;
mod mcp_gateway;
mod people_cli;
mod registry_cli;
mod secrets;
mod service;
mod team_store;
mod tls;
mod token_cli;
mod token_endpoint;
mod trials;
mod trust_cli;
mod verifier_page;
