//! One module per area of the command line.

pub mod agent;
pub mod connection;
pub mod member;
pub mod scan;

/// Parse a human duration such as `15m`, `24h` or `7d`.
pub fn parse_duration(s: &str) -> Result<chrono::Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("'{s}' is not a duration ({e}); write it like 15m, 24h or 7d"))?;
    chrono::Duration::from_std(d).map_err(|_| format!("'{s}' is too long"))
}
