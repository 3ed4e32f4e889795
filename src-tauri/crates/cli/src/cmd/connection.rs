//! `mandate connection ...`: the systems agents reach and their credentials.
//!
//! A credential is read from standard input (or typed at a hidden prompt), never from an
//! argument, so it does not land in shell history or `ps` output.

use std::io::{IsTerminal, Read};

use clap::Subcommand;
use mandate_core::NewConnection;
use mandate_core::model::TrustState;
use mandate_core::secret::Sensitive;
use zeroize::Zeroize;

use crate::context::{CliError, CliResult, Ctx};
use crate::output;

#[derive(Debug, Subcommand)]
pub enum ConnectionCmd {
    /// Register a connection and the actions it offers.
    Add {
        /// Its name, the first half of its scopes (e.g. `github` for `github:repo.read`).
        name: String,
        /// The API's base URL, e.g. https://api.github.com
        #[arg(long)]
        base_url: String,
        /// An action as NAME=METHOD:PATH-PATTERN, e.g. repo.read=GET:/repos/** (repeatable).
        #[arg(long = "action", value_name = "NAME=METHOD:PATH")]
        actions: Vec<String>,
        /// Agents below this trust state get no tokens for it (TRUSTED, PENDING, UNTRUSTED).
        #[arg(long, value_name = "STATE")]
        trust_floor: Option<TrustState>,
    },
    /// List connections.
    List,
    /// Show one connection, its actions and which agents hold scopes on it.
    Show { name: String },
    /// Store or replace the connection's credential in the OS keychain (read from stdin).
    SetSecret { name: String },
    /// Remove a connection, its credential, and every scope granted on it.
    Remove { name: String },
}

fn read_secret() -> CliResult<Sensitive<String>> {
    let stdin = std::io::stdin();
    let raw = if stdin.is_terminal() {
        rpassword::prompt_password("Secret (input hidden): ").map_err(|e| CliError::Exit {
            code: 1,
            message: format!("could not read the secret from the terminal: {e}"),
        })?
    } else {
        let mut s = String::new();
        stdin
            .lock()
            .read_to_string(&mut s)
            .map_err(|e| CliError::Exit {
                code: 3,
                message: format!("could not read the secret from standard input: {e}"),
            })?;
        s
    };
    // A trailing newline from `echo` is not part of the credential.
    let trimmed = raw.trim_end_matches(['\n', '\r']).to_string();
    let mut raw = raw;
    raw.zeroize();
    Ok(Sensitive::new(trimmed))
}

pub fn run(ctx: &mut Ctx, cmd: ConnectionCmd) -> CliResult {
    let m = ctx.mandate()?;
    match cmd {
        ConnectionCmd::Add {
            name,
            base_url,
            actions,
            trust_floor,
        } => {
            let c = m.add_connection(NewConnection {
                name,
                base_url,
                actions,
                trust_floor,
            })?;
            if ctx.json {
                return output::json(&c);
            }
            println!(
                "Added connection '{}' ({}) with {} action(s).",
                c.name,
                c.base_url,
                c.actions.len()
            );
            println!(
                "Store its credential with: mandate connection set-secret {} (reads stdin)",
                c.name
            );
            Ok(())
        }
        ConnectionCmd::List => {
            let list = m.list_connections()?;
            if ctx.json {
                return output::json(&list);
            }
            if list.is_empty() {
                println!(
                    "No connections yet. Add one with `mandate connection add NAME --base-url URL \
                     --action NAME=METHOD:PATH`."
                );
                return Ok(());
            }
            let mut t = output::table(&["NAME", "BASE URL", "ACTIONS", "SECRET", "AGENTS"]);
            for c in list {
                t.add_row(vec![
                    c.name.to_string(),
                    c.base_url.clone(),
                    c.actions
                        .iter()
                        .map(|a| a.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    if c.has_secret {
                        "in keychain"
                    } else {
                        "not set"
                    }
                    .into(),
                    c.granted_to
                        .iter()
                        .map(|a| a.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                ]);
            }
            println!("{t}");
            Ok(())
        }
        ConnectionCmd::Show { name } => {
            let c = m.get_connection(&name)?;
            if ctx.json {
                return output::json(&c);
            }
            println!("Connection   {}", c.name);
            println!("Base URL     {}", c.base_url);
            println!(
                "Credential   {}",
                if c.has_secret {
                    "stored in the OS keychain"
                } else {
                    "not set (mandate connection set-secret)"
                }
            );
            println!("Trust floor  {}", c.trust_floor);
            let mut t = output::table(&["ACTION", "METHOD", "PATH"]);
            for a in &c.actions {
                t.add_row(vec![
                    a.name.clone(),
                    a.method.clone(),
                    a.path_pattern.clone(),
                ]);
            }
            println!("{t}");
            if !c.granted_to.is_empty() {
                let names: Vec<&str> = c.granted_to.iter().map(|a| a.as_str()).collect();
                println!("Granted to   {}", names.join(", "));
            }
            Ok(())
        }
        ConnectionCmd::SetSecret { name } => {
            // Check the connection exists before asking for a secret.
            m.get_connection(&name)?;
            let secret = read_secret()?;
            m.set_connection_secret(&name, secret)?;
            if ctx.json {
                return output::json(&serde_json::json!({"connection": name, "stored": true}));
            }
            println!("Stored the credential of '{name}' in the OS keychain.");
            Ok(())
        }
        ConnectionCmd::Remove { name } => {
            let affected = m.remove_connection(&name)?;
            if ctx.json {
                return output::json(
                    &serde_json::json!({"removed": name, "scopes_removed_from": affected}),
                );
            }
            println!("Removed connection '{name}' and its credential.");
            if !affected.is_empty() {
                let names: Vec<&str> = affected.iter().map(|a| a.as_str()).collect();
                println!("Scopes on it were removed from: {}", names.join(", "));
            }
            Ok(())
        }
    }
}
