//! `mandate connection ...`: the systems agents reach and their credentials.
//!
//! A credential is read from standard input (or typed at a hidden prompt), never from an
//! argument, so it does not land in shell history or `ps` output.

use std::io::{IsTerminal, Read};

use clap::{Args, Subcommand};
use mandate_core::NewConnection;
use mandate_core::approvals::ApprovalMode;
use mandate_core::broker::{BrokerSetup, ConnectionEdit, CredentialPlacement, presets};
use mandate_core::model::{ConnectionKind, TrustState};
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
        /// `http` (default): an API the broker calls with the credential. `database`: its
        /// credential is a database URL that `mandate exec` hands to the program as
        /// --variable when its token holds the scope NAME:connect.
        #[arg(long, value_name = "KIND")]
        kind: Option<ConnectionKind>,
        /// For a database: the environment variable the URL is handed over in (default
        /// DATABASE_URL).
        #[arg(long, value_name = "VAR")]
        variable: Option<String>,
        /// The API's base URL, e.g. https://api.github.com (a --preset gives one).
        #[arg(long, required_unless_present_any = ["preset", "kind"])]
        base_url: Option<String>,
        /// An action as NAME=METHOD:PATH-PATTERN, e.g. repo.read=GET:/repos/** (repeatable;
        /// replaces a preset's action of the same name).
        #[arg(long = "action", value_name = "NAME=METHOD:PATH")]
        actions: Vec<String>,
        /// Agents below this trust state get no tokens for it (TRUSTED, PENDING, UNTRUSTED).
        #[arg(long, value_name = "STATE")]
        trust_floor: Option<TrustState>,
        #[command(flatten)]
        broker: BrokerArgs,
    },
    /// Change a connection's actions, credential placement, limits, costs or essential actions.
    Edit {
        name: String,
        /// Add an action NAME=METHOD:PATH (repeatable).
        #[arg(long = "add-action", value_name = "NAME=METHOD:PATH")]
        add_actions: Vec<String>,
        /// Remove an action (refused while an agent holds a scope on it; repeatable).
        #[arg(long = "remove-action", value_name = "NAME")]
        remove_actions: Vec<String>,
        /// Where the credential goes: bearer, basic, header:NAME or query:NAME.
        #[arg(long, value_name = "HOW")]
        auth: Option<String>,
        /// Calls per minute per agent.
        #[arg(long, value_name = "N", conflicts_with = "no_rate_limit")]
        rate_limit: Option<u32>,
        /// Remove the rate limit.
        #[arg(long)]
        no_rate_limit: bool,
        /// Cost units per agent per UTC day.
        #[arg(long, value_name = "N", conflicts_with = "no_daily_budget")]
        daily_budget: Option<u64>,
        /// Remove the daily budget.
        #[arg(long)]
        no_daily_budget: bool,
        /// Agents below this trust state get no tokens for it (TRUSTED, PENDING, UNTRUSTED).
        #[arg(long, value_name = "STATE")]
        trust_floor: Option<TrustState>,
        /// Agents whose trust score (0-100) is below this get nothing from it either.
        #[arg(long, value_name = "SCORE", conflicts_with = "no_min_score")]
        min_score: Option<i32>,
        /// Remove the minimum score (the state floor stays).
        #[arg(long)]
        no_min_score: bool,
        /// Every call to the connection waits for a person's approval (`always`), or only
        /// calls below its floors do instead of being refused (`below-floor`); `off` removes
        /// the mark.
        #[arg(long, value_name = "MODE")]
        approval: Option<String>,
        /// The same for one action or MCP tool, ACTION=always|below-floor|off (repeatable).
        #[arg(long = "action-approval", value_name = "ACTION=MODE")]
        action_approvals: Vec<String>,
        /// What an action costs, ACTION=UNITS (repeatable; default 1).
        #[arg(long = "cost", value_name = "ACTION=N")]
        costs: Vec<String>,
        /// Mark an action essential: it still passes after 90% of the budget (repeatable).
        #[arg(long = "essential", value_name = "ACTION")]
        essential: Vec<String>,
        /// Unmark an essential action (repeatable).
        #[arg(long = "not-essential", value_name = "ACTION")]
        not_essential: Vec<String>,
    },
    /// List the connection presets (base URL, credential placement, actions, SDK variables).
    Presets,
    /// List connections.
    List,
    /// Show one connection, its actions and which agents hold scopes on it.
    Show { name: String },
    /// Store or replace the connection's credential in the OS keychain (read from stdin).
    SetSecret { name: String },
    /// Remove a connection, its credential, and every scope granted on it.
    Remove { name: String },
}

/// The secret broker's options of `connection add`.
#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// Start from a preset: github, slack, stripe, openai, anthropic or http (base URL,
    /// credential placement, read-only-first actions; all editable).
    #[arg(long, value_name = "NAME")]
    preset: Option<String>,
    /// Where the broker puts the credential: bearer (default), basic, header:NAME, query:NAME.
    #[arg(long, value_name = "HOW")]
    auth: Option<String>,
    /// Calls per minute per agent through the broker.
    #[arg(long, value_name = "N")]
    rate_limit: Option<u32>,
    /// Cost units per agent per UTC day; at 90% only essential actions pass.
    #[arg(long, value_name = "N")]
    daily_budget: Option<u64>,
    /// What an action costs, ACTION=UNITS (repeatable; default 1).
    #[arg(long = "cost", value_name = "ACTION=N")]
    costs: Vec<String>,
    /// An action that still passes after 90% of the budget (repeatable).
    #[arg(long = "essential", value_name = "ACTION")]
    essential: Vec<String>,
}

fn usage(message: String) -> CliError {
    CliError::Exit { code: 2, message }
}

fn parse_auth(raw: &str) -> CliResult<CredentialPlacement> {
    Ok(raw.parse::<CredentialPlacement>()?)
}

fn parse_costs(raw: &[String]) -> CliResult<Vec<(String, u32)>> {
    raw.iter()
        .map(|c| {
            let (a, n) = c
                .split_once('=')
                .ok_or_else(|| usage(format!("'{c}' is not ACTION=UNITS, for example chat=10")))?;
            let n: u32 = n
                .trim()
                .parse()
                .map_err(|_| usage(format!("'{n}' in '{c}' is not a whole number of units")))?;
            Ok((a.trim().to_string(), n))
        })
        .collect()
}

/// The preset's actions, with same-named `--action`s replacing them, then the other ones.
fn merge_actions(preset: &[presets::PresetAction], given: &[String]) -> Vec<String> {
    let name_of = |a: &str| a.split_once('=').map(|(n, _)| n.trim().to_string());
    let mut out: Vec<String> = preset
        .iter()
        .map(|p| {
            given
                .iter()
                .find(|g| name_of(g) == name_of(p.spec))
                .cloned()
                .unwrap_or_else(|| p.spec.to_string())
        })
        .collect();
    for g in given {
        if !out.contains(g) {
            out.push(g.clone());
        }
    }
    out
}

pub(crate) fn read_secret() -> CliResult<Sensitive<String>> {
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
            kind,
            variable,
            base_url,
            actions,
            trust_floor,
            broker,
        } => {
            if kind == Some(ConnectionKind::Database) {
                let http_only = base_url.is_some()
                    || !actions.is_empty()
                    || broker.preset.is_some()
                    || broker.auth.is_some()
                    || broker.rate_limit.is_some()
                    || broker.daily_budget.is_some()
                    || !broker.costs.is_empty()
                    || !broker.essential.is_empty();
                if http_only {
                    return Err(usage(
                        "a database connection has no base URL, actions, preset or broker \
                         settings: its one action is `connect`, and its credential is the \
                         database URL (`mandate connection set-secret NAME`)"
                            .to_string(),
                    ));
                }
                let c = m.add_database_connection(&name, variable.as_deref(), trust_floor)?;
                if ctx.json {
                    return output::json(&c);
                }
                let var = c.variable.clone().unwrap_or_default();
                println!(
                    "Added database connection '{}'. Grant it with the scope {}:connect; \
                     `mandate exec` then hands the program the URL as {var}, and the program \
                     holds it while it runs.",
                    c.name, c.name
                );
                println!(
                    "Store its URL with: mandate connection set-secret {} (reads stdin, e.g. \
                     postgres://USER:PASSWORD@HOST:5432/DB)",
                    c.name
                );
                return Ok(());
            }
            if variable.is_some() {
                return Err(usage(
                    "--variable is for database connections (--kind database)".to_string(),
                ));
            }
            let preset = match &broker.preset {
                Some(p) => Some(presets::preset(p).ok_or_else(|| {
                    usage(format!(
                        "there is no preset '{p}'; presets: {}",
                        presets::names().join(", ")
                    ))
                })?),
                None => None,
            };
            let base_url = match (base_url, preset) {
                (Some(b), _) => b,
                (None, Some(p)) if !p.base_url.is_empty() => p.base_url.to_string(),
                _ => {
                    return Err(usage(
                        "the http preset has no base URL: give --base-url".to_string(),
                    ));
                }
            };
            let actions = match preset {
                Some(p) => merge_actions(p.actions, &actions),
                None => actions,
            };
            let new = NewConnection {
                name,
                base_url,
                actions,
                trust_floor,
            };
            let brokered = preset.is_some()
                || broker.auth.is_some()
                || broker.rate_limit.is_some()
                || broker.daily_budget.is_some()
                || !broker.costs.is_empty()
                || !broker.essential.is_empty();
            let c = if brokered {
                let mut costs: Vec<(String, u32)> = Vec::new();
                let mut essential: Vec<String> = Vec::new();
                if let Some(p) = preset {
                    for a in p.actions {
                        let n = a.spec.split_once('=').map_or("", |(n, _)| n).to_string();
                        if new.actions.iter().any(|x| x.starts_with(&format!("{n}="))) {
                            if a.cost != 1 {
                                costs.push((n.clone(), a.cost));
                            }
                            if a.essential {
                                essential.push(n);
                            }
                        }
                    }
                }
                costs.extend(parse_costs(&broker.costs)?);
                essential.extend(broker.essential.iter().cloned());
                let auth = match (&broker.auth, preset) {
                    (Some(a), _) => parse_auth(a)?,
                    (None, Some(p)) => p.placement(),
                    (None, None) => CredentialPlacement::Bearer,
                };
                m.add_brokered_connection(
                    new,
                    BrokerSetup {
                        auth,
                        preset: preset.map(|p| p.name.to_string()),
                        rate_per_minute: broker.rate_limit,
                        daily_budget: broker.daily_budget,
                        costs,
                        essential,
                    },
                )?
            } else {
                m.add_connection(new)?
            };
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
        ConnectionCmd::Edit {
            name,
            add_actions,
            remove_actions,
            auth,
            rate_limit,
            no_rate_limit,
            daily_budget,
            no_daily_budget,
            costs,
            essential,
            not_essential,
            trust_floor,
            min_score,
            no_min_score,
            approval,
            action_approvals,
        } => {
            let mode = |v: &str| -> Result<Option<ApprovalMode>, CliError> {
                if v == "off" {
                    Ok(None)
                } else {
                    Ok(Some(v.parse()?))
                }
            };
            let mut rules = Vec::new();
            if let Some(a) = &approval {
                rules.push((None, mode(a)?));
            }
            for raw in &action_approvals {
                let (action, m_) = raw.split_once('=').ok_or_else(|| CliError::Exit {
                    code: 3,
                    message: format!("'{raw}' is not ACTION=MODE; write it like repo.write=always"),
                })?;
                rules.push((Some(action.to_string()), mode(m_)?));
            }
            for (action, mode) in &rules {
                m.set_approval_rule(&name, action.as_deref(), *mode)?;
                if !ctx.json {
                    let what = action
                        .as_ref()
                        .map_or_else(|| "every call".to_string(), |a| format!("'{a}'"));
                    match mode {
                        Some(ApprovalMode::Always) => {
                            println!("{what} on '{name}' now waits for a person's approval.")
                        }
                        Some(ApprovalMode::BelowFloor) => println!(
                            "{what} on '{name}' below its floors now waits for a person's \
                             approval instead of being refused."
                        ),
                        None => println!("{what} on '{name}' needs no approval now."),
                    }
                }
            }
            let score_change = match (min_score, no_min_score) {
                (Some(n), _) => Some(Some(n)),
                (None, true) => Some(None),
                (None, false) => None,
            };
            let trust_side_only = trust_floor.is_none()
                && auth.is_none()
                && add_actions.is_empty()
                && remove_actions.is_empty()
                && rate_limit.is_none()
                && !no_rate_limit
                && daily_budget.is_none()
                && !no_daily_budget
                && costs.is_empty()
                && essential.is_empty()
                && not_essential.is_empty();
            if score_change.is_none() && !rules.is_empty() && trust_side_only {
                return Ok(());
            }
            if let Some(s) = score_change {
                let c = m.set_connection_min_score(&name, s)?;
                let only_score = trust_floor.is_none()
                    && auth.is_none()
                    && add_actions.is_empty()
                    && remove_actions.is_empty()
                    && rate_limit.is_none()
                    && !no_rate_limit
                    && daily_budget.is_none()
                    && !no_daily_budget
                    && costs.is_empty()
                    && essential.is_empty()
                    && not_essential.is_empty();
                if only_score {
                    if ctx.json {
                        return crate::output::json(&c);
                    } else {
                        match c.min_score {
                            Some(n) => println!(
                                "'{}' now also needs a trust score of at least {n}.",
                                c.name
                            ),
                            None => println!("'{}' has no minimum score now.", c.name),
                        }
                    }
                    return Ok(());
                }
            }
            let edit = ConnectionEdit {
                trust_floor,
                auth: auth.as_deref().map(parse_auth).transpose()?,
                add_actions,
                remove_actions,
                rate_per_minute: match (rate_limit, no_rate_limit) {
                    (Some(n), _) => Some(Some(n)),
                    (None, true) => Some(None),
                    (None, false) => None,
                },
                daily_budget: match (daily_budget, no_daily_budget) {
                    (Some(n), _) => Some(Some(n)),
                    (None, true) => Some(None),
                    (None, false) => None,
                },
                costs: parse_costs(&costs)?,
                essential,
                not_essential,
            };
            let cfg = m.edit_connection(&name, edit)?;
            if ctx.json {
                return output::json(&cfg);
            }
            println!("Updated connection '{}'.", cfg.connection);
            Ok(())
        }
        ConnectionCmd::Presets => {
            let views: Vec<_> = presets::PRESETS.iter().map(|p| p.view()).collect();
            if ctx.json {
                return output::json(&views);
            }
            let mut t = output::table(&[
                "PRESET",
                "BASE URL",
                "CREDENTIAL",
                "ACTIONS",
                "SDK VARIABLES",
            ]);
            for v in views {
                t.add_row(vec![
                    v.name,
                    if v.base_url.is_empty() {
                        "(give --base-url)".into()
                    } else {
                        v.base_url
                    },
                    v.auth,
                    v.actions.join("\n"),
                    v.sdk_variables.join(", "),
                ]);
            }
            println!("{t}");
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
                    match c.kind {
                        ConnectionKind::Database => format!(
                            "database (handed over as {})",
                            c.variable.as_deref().unwrap_or("DATABASE_URL")
                        ),
                        ConnectionKind::Http => c.base_url.clone(),
                    },
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
                // The connection and, under "broker", where its credential goes, its limits
                // and each action's cost and essential flag.
                let mut v = serde_json::to_value(&c).map_err(|e| CliError::Exit {
                    code: 1,
                    message: format!("could not serialise the connection: {e}"),
                })?;
                v["broker"] =
                    serde_json::to_value(m.broker_config(&name)?).map_err(|e| CliError::Exit {
                        code: 1,
                        message: format!("could not serialise the broker settings: {e}"),
                    })?;
                return output::json(&v);
            }
            println!("Connection   {}", c.name);
            let changed = c
                .secret_changed_at
                .map(|t| format!(", last changed {}", t.format("%Y-%m-%d %H:%M UTC")))
                .unwrap_or_default();
            if c.kind == ConnectionKind::Database {
                let var = c.variable.as_deref().unwrap_or("DATABASE_URL");
                println!("Kind         database");
                println!(
                    "Credential   {}",
                    if c.has_secret {
                        format!("its URL, stored in the OS keychain{changed}")
                    } else {
                        "not set (mandate connection set-secret, the URL on stdin)".into()
                    }
                );
                println!(
                    "Trust floor  {}{}",
                    c.trust_floor,
                    min_score_note(c.min_score)
                );
                println!(
                    "Handed over  as {var} by `mandate exec` to programs whose token holds \
                     {}:connect. Unlike an HTTP connection, the program then holds the URL \
                     while it runs; every hand-over is audited (secret.handed_over).",
                    c.name
                );
                if !c.granted_to.is_empty() {
                    let names: Vec<&str> = c.granted_to.iter().map(|a| a.as_str()).collect();
                    println!("Granted to   {}", names.join(", "));
                }
                return Ok(());
            }
            println!("Base URL     {}", c.base_url);
            println!(
                "Credential   {}",
                if c.has_secret {
                    format!("stored in the OS keychain{changed}")
                } else {
                    "not set (mandate connection set-secret)".into()
                }
            );
            println!(
                "Trust floor  {}{}",
                c.trust_floor,
                min_score_note(c.min_score)
            );
            let cfg = m.broker_config(&name)?;
            println!(
                "Sent as      {} (by the broker at /proxy/{})",
                cfg.auth, c.name
            );
            println!(
                "Rate limit   {}",
                cfg.rate_per_minute.map_or("none".to_string(), |n| format!(
                    "{n} calls per minute per agent"
                ))
            );
            println!(
                "Budget       {}",
                cfg.daily_budget.map_or("none".to_string(), |n| format!(
                    "{n} units per agent per UTC day"
                ))
            );
            let mut t = output::table(&["ACTION", "METHOD", "PATH", "COST", "ESSENTIAL"]);
            for a in &cfg.actions {
                t.add_row(vec![
                    a.name.clone(),
                    a.method.clone(),
                    a.path_pattern.clone(),
                    a.cost.to_string(),
                    if a.essential { "yes" } else { "" }.to_string(),
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
            let before = m.get_connection(&name)?;
            let secret = read_secret()?;
            m.set_connection_secret(&name, secret)?;
            if ctx.json {
                return output::json(&serde_json::json!({
                    "connection": name,
                    "stored": true,
                    "replaced": before.has_secret,
                }));
            }
            if before.has_secret {
                println!(
                    "Replaced the credential of '{name}' in {}; the previous one is gone.",
                    m.secrets_home()
                );
                if !before.granted_to.is_empty() {
                    let names: Vec<&str> = before.granted_to.iter().map(|a| a.as_str()).collect();
                    println!("{} use the new one from their next call.", names.join(", "));
                }
            } else {
                println!("Stored the credential of '{name}' in {}.", m.secrets_home());
            }
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

/// ", and a score of at least N" when a connection has a minimum score.
fn min_score_note(min_score: Option<i32>) -> String {
    min_score.map_or_else(String::new, |n| {
        format!(", and a trust score of at least {n}")
    })
}
