//! `mandate tls export|rotate`: the certificate of the HTTPS endpoint (`mandate serve --tls`),
//! for clients that must be told to trust it (`curl --cacert`, `requests`' `verify=`,
//! reqwest's `add_root_certificate`, `NODE_EXTRA_CA_CERTS`). Public certificate only: its key
//! stays in the OS keychain.

use std::path::PathBuf;

use clap::Subcommand;

use crate::context::{CliError, CliResult, Ctx};

#[derive(Debug, Subcommand)]
pub enum TlsCmd {
    /// Write the endpoint's certificate (PEM) for clients to trust; creates it on first use.
    ///
    /// The certificate is self-signed, for 127.0.0.1, ::1 and localhost only; its private key
    /// is in the OS keychain and is never exported. Example:
    /// `mandate tls export --out mandate.pem && curl --cacert mandate.pem https://127.0.0.1:6263/.well-known/oauth-authorization-server`
    Export {
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Replace the certificate and its key now (restart `mandate serve --tls` and give clients
    /// the new certificate afterwards).
    Rotate,
}

pub fn run(ctx: &mut Ctx, cmd: TlsCmd) -> CliResult {
    let m = ctx.mandate()?;
    match cmd {
        TlsCmd::Export { out } => {
            let t = m.loopback_tls()?;
            match out {
                None => print!("{}", t.cert_pem),
                Some(path) => {
                    std::fs::write(&path, &t.cert_pem).map_err(|e| CliError::Exit {
                        code: 7,
                        message: format!("could not write {}: {e}", path.display()),
                    })?;
                    eprintln!(
                        "Wrote the endpoint's certificate (SHA-256 {}) to {}.",
                        t.fingerprint,
                        path.display()
                    );
                }
            }
            Ok(())
        }
        TlsCmd::Rotate => {
            let t = m.rotate_loopback_tls()?;
            if ctx.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "certificate": t.cert_path,
                        "sha256": t.fingerprint,
                        "not_after": t.not_after.to_rfc3339(),
                    })
                );
            } else {
                println!(
                    "New certificate {} (SHA-256 {}), valid until {}. Restart `mandate serve \
                     --tls` and give clients the new certificate (`mandate tls export`).",
                    t.cert_path.display(),
                    t.fingerprint,
                    t.not_after.format("%Y-%m-%d")
                );
            }
            Ok(())
        }
    }
}
