//! `mandate jwks export`: the issuer's public keys as a JWKS file, for resource servers that
//! cannot reach the loopback endpoint. Public keys only; re-export after a key rotation.

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
    }
}
