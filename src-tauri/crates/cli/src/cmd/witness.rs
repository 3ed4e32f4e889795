//! `mandate team witness ...`: witnesses of a team server's audit log (issue 21 §3).
//!
//! On a witness's machine (a founder's laptop): `key` makes or shows its cosignature key
//! (kept in the OS keychain), `sync URL` checks the server's newest checkpoint against what
//! this machine saw and cosigns it, `list` shows the logs it watches, `forget` starts afresh.
//! On the server host, an admin: `add NAME --public-key KEY`, `remove NAME`, `list`.
//! Adapters only: the rules are in `mandate_core::witness`, the HTTP in
//! `mandate_server::witness_client`.

use std::path::PathBuf;

use clap::Subcommand;

use mandate_server::witness_client::SyncError;

use crate::context::{CliError, CliResult, Ctx};
use crate::output;

#[derive(Debug, Subcommand)]
pub enum WitnessCmd {
    /// Make (first time, with --name) or show this machine's witness key, as the verifier key
    /// an admin registers with `mandate team witness add`.
    Key {
        /// The witness's name, a schema-less URL-like name (witness.acme.example/alice-laptop).
        #[arg(long)]
        name: Option<String>,
    },
    /// On the team server host: register a witness by its verifier key (NAME+KEYID+BASE64, or
    /// a file holding it).
    Add {
        name: String,
        #[arg(long, value_name = "KEY|FILE")]
        public_key: String,
    },
    /// On the team server host: stop accepting a witness's cosignatures (kept ones stay).
    Remove { name: String },
    /// The witnesses registered here (on a server), and the logs this machine witnesses.
    List,
    /// As a member of the team server you joined: make this machine's witness key (if it has
    /// none), register it with the server in your name, and cosign its newest checkpoint.
    /// `mandate team join` does this unless told --no-witness.
    Enrol {
        /// The witness's name (default: the server's host, your member name and this
        /// installation, e.g. team.acme.example/alice-3f2a9c).
        #[arg(long)]
        name: Option<String>,
    },
    /// Check the team server's newest checkpoint against the last one this machine saw
    /// (RFC 9162 consistency proof) and cosign it; a rewritten or forked log is refused.
    Sync {
        /// The team server's public URL (https://HOST[:PORT]); default: the server you joined.
        url: Option<String>,
        /// Trust only this CA (or the server's own certificate), PEM.
        #[arg(long, value_name = "FILE", conflicts_with = "server_fingerprint")]
        server_ca: Option<PathBuf>,
        /// Trust exactly the server certificate with this SHA-256 fingerprint.
        #[arg(long, value_name = "SHA256")]
        server_fingerprint: Option<String>,
        /// On the first sync, pin this log checkpoint key (NAME+KEYID+BASE64, as `mandate
        /// team witness list` prints it on the server) instead of the one the server offers.
        #[arg(long, value_name = "VKEY")]
        log_key: Option<String>,
    },
    /// Forget a log this machine witnessed (its pinned key and last checkpoint).
    Forget {
        /// The log's origin (mandate/...) or the server's URL.
        log: String,
        #[arg(long)]
        reason: String,
    },
}

fn fail(code: u8, message: String) -> CliError {
    CliError::Exit { code, message }
}

pub fn run(ctx: &mut Ctx, cmd: WitnessCmd) -> CliResult {
    let m = ctx.mandate()?;
    match cmd {
        WitnessCmd::Enrol { name } => super::team::enrol_witness(ctx, name.as_deref()),
        WitnessCmd::Key { name } => {
            let (key, made) = m.witness_key(name.as_deref())?;
            if ctx.json {
                return output::json(&serde_json::json!({
                    "name": key.name,
                    "vkey": key.vkey(),
                    "created": made,
                }));
            }
            if made {
                println!(
                    "Made the witness key '{}' in the OS keychain. Have an admin of the team \
                     server register it:",
                    key.name
                );
                println!(
                    "  mandate team witness add {} --public-key {}",
                    key.name,
                    key.vkey()
                );
            } else {
                println!("{}", key.vkey());
            }
            Ok(())
        }
        WitnessCmd::Add { name, public_key } => {
            let key = if std::path::Path::new(&public_key).is_file() {
                std::fs::read_to_string(&public_key).map_err(|e| {
                    fail(3, format!("the key file {public_key} cannot be read ({e})"))
                })?
            } else {
                public_key
            };
            let w = m.add_witness(&name, &key)?;
            if ctx.json {
                return output::json(&w);
            }
            println!(
                "Witness '{}' registered: its cosignatures of this log's checkpoints are kept \
                 and go into audit exports.",
                w.name
            );
            Ok(())
        }
        WitnessCmd::Remove { name } => {
            let w = m.remove_witness(&name)?;
            if ctx.json {
                return output::json(&w);
            }
            println!(
                "Witness '{}' removed: its new cosignatures are refused; those it made stay.",
                w.name
            );
            Ok(())
        }
        WitnessCmd::List => {
            let witnesses = m.witnesses()?;
            let logs = m.witnessed_logs()?;
            if ctx.json {
                return output::json(&serde_json::json!({
                    "log_key": if witnesses.is_empty() {
                        None
                    } else {
                        m.witness_log_key().ok()
                    },
                    "witnesses": witnesses,
                    "witnessed_logs": logs,
                }));
            }
            if witnesses.is_empty() && logs.is_empty() {
                println!(
                    "No witnesses registered here, and this machine witnesses no log. A witness \
                     runs `mandate team witness key --name NAME`, an admin registers it with \
                     `mandate team witness add`, and the witness runs `mandate team witness \
                     sync URL`."
                );
                return Ok(());
            }
            if !witnesses.is_empty() {
                let mut t = output::table(&["WITNESS", "LAST COSIGNED", "STATE"]);
                for w in &witnesses {
                    t.add_row(vec![
                        w.name.clone(),
                        match (&w.last_cosigned_size, &w.last_cosigned_at) {
                            (Some(s), Some(at)) => format!("{s} events (received {at})"),
                            _ => "never".into(),
                        },
                        match &w.removed_at {
                            Some(at) => format!("removed {at}"),
                            None => "active".into(),
                        },
                    ]);
                }
                println!("Witnesses of this log (log key {}):", log_key(&m));
                println!("{t}");
            }
            if !logs.is_empty() {
                let mut t = output::table(&["LOG", "SERVER", "SEEN", "AT"]);
                for l in &logs {
                    t.add_row(vec![
                        l.origin.clone(),
                        l.url.clone(),
                        format!("{} events", l.size),
                        l.seen_at.clone(),
                    ]);
                }
                println!("Logs this machine witnesses:");
                println!("{t}");
            }
            Ok(())
        }
        WitnessCmd::Sync {
            url,
            server_ca,
            server_fingerprint,
            log_key,
        } => {
            let server = match url {
                Some(url) => super::remote::server_from_args(
                    &url,
                    server_ca.as_deref(),
                    server_fingerprint.as_deref(),
                )?,
                None => super::team::joined_server(&m)?,
            };
            let rt = super::serve::runtime()?;
            let done = rt
                .block_on(mandate_server::witness_client::sync(
                    m.clone(),
                    &server,
                    log_key,
                ))
                .map_err(|e| match e {
                    SyncError::Client(c) => fail(c.exit_code(), c.to_string()),
                    SyncError::Core(c) => CliError::from(c),
                    e @ SyncError::NotAccepted { .. } => fail(9, e.to_string()),
                })?;
            let c = &done.cosigned;
            if ctx.json {
                return output::json(&serde_json::json!({
                    "url": done.url,
                    "origin": c.origin,
                    "size": c.size,
                    "previous_size": c.previous_size,
                    "cosignature": c.cosignature.line(),
                    "log_key_pinned_now": c.pinned_now,
                    "new": done.new,
                }));
            }
            if c.pinned_now {
                println!(
                    "First sync with {}: pinned its log key; every later checkpoint must be \
                     signed by it and extend this one.",
                    done.url
                );
            }
            println!(
                "Cosigned the checkpoint of {} events of {} (consistent with the {} events seen \
                 before); the server kept the cosignature.",
                c.size, c.origin, c.previous_size
            );
            Ok(())
        }
        WitnessCmd::Forget { log, reason } => {
            let l = m.forget_witnessed_log(&log, &reason)?;
            if ctx.json {
                return output::json(&l);
            }
            println!(
                "Forgot {} ({}): its next checkpoint will be pinned afresh.",
                l.origin, l.url
            );
            Ok(())
        }
    }
}

/// This log's checkpoint key (verifier key string), for an admin to hand to witnesses.
fn log_key(m: &mandate_core::Mandate) -> String {
    m.witness_log_key()
        .unwrap_or_else(|e| format!("unavailable: {e}"))
}
