//! `mandate jwks export`: the issuer's public keys as a JWKS file, for resource servers that
//! cannot reach the loopback endpoint. Public keys only; re-export after a key rotation.
//! `mandate jwks rotate`: a new issuer key, wherever keys live (the OS keychain, or a team
//! server's PKCS#11 token); the old public key stays published until its last token expires.

use std::path::PathBuf;

use clap::Subcommand;

use crate::context::{CliError, CliResult, Ctx};

#[derive(Debug, Subcommand)]
pub enum JwksCmd {
    /// Write the current public keys (JWKS JSON) to a file or standard output.
    Export {
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Replace the issuer signing key (audited). Tokens signed by the old key stay valid until
    /// they expire: its public key stays in the JWKS until then (and at least 24 hours), and
    /// its private key is destroyed now. Running endpoints pick the new key up within seconds.
    Rotate,
}

pub fn run(ctx: &mut Ctx, cmd: JwksCmd) -> CliResult {
    let m = ctx.mandate()?;
    match cmd {
        JwksCmd::Export { out } => {
            let jwks = m.issuer_jwks()?;
            let text = serde_json::to_string_pretty(&jwks).map_err(|e| CliError::Exit {
                code: 1,
                message: format!("could not encode the keys: {e}"),
            })?;
            match out {
                None => println!("{text}"),
                Some(path) => {
                    std::fs::write(&path, format!("{text}\n")).map_err(|e| CliError::Exit {
                        code: 7,
                        message: format!("could not write {}: {e}", path.display()),
                    })?;
                    eprintln!(
                        "Wrote {} public key(s) to {}.",
                        jwks.keys.len(),
                        path.display()
                    );
                }
            }
            Ok(())
        }
        JwksCmd::Rotate => {
            let old = m.issuer_key()?.kid;
            let new = m.rotate_issuer_key()?;
            if ctx.json {
                return crate::output::json(&serde_json::json!({"kid": new, "retired_kid": old}));
            }
            println!(
                "New issuer key {new} (in {}). The retired key {old} stays published until its \
                 last token expires; re-export the JWKS for resource servers that keep a copy \
                 (`mandate jwks export`).",
                m.issuer_keys_description()
            );
            Ok(())
        }
    }
}
