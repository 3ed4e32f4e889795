//! One module per area of the command line.

pub mod agent;
pub mod approvals;
pub mod attest;
pub mod audit;
pub mod connection;
pub mod delegation;
pub mod exec;
pub mod jwks;
pub mod mcp;
pub mod member;
pub mod org;
pub mod remote;
pub mod scan;
pub mod serve;
pub mod server;
pub mod service;
pub mod team;
pub mod tls;
pub mod token;
pub mod witness;

/// Parse a human duration such as `15m`, `24h` or `7d`.
pub fn parse_duration(s: &str) -> Result<chrono::Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("'{s}' is not a duration ({e}); write it like 15m, 24h or 7d"))?;
    chrono::Duration::from_std(d).map_err(|_| format!("'{s}' is too long"))
}
