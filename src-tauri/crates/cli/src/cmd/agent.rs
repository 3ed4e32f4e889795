//! `mandate agent ...`: register agents, show them, change them, suspend, resume, revoke,
//! rotate keys and override trust.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use mandate_core::keys::PrivateKeyFormat;
use mandate_core::model::{Agent, TrustState};
use mandate_core::trust::SignalOutcome;
use mandate_core::{AgentEdit, KeyChoice, NewAgent};

use crate::cmd::parse_duration;
use crate::context::{CliError, CliResult, Ctx};
use crate::output;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KeyFormat {
    /// RFC 8037 JSON Web Key with the private part `d`.
    Jwk,
    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    Pem,
}

impl From<KeyFormat> for PrivateKeyFormat {
    fn from(f: KeyFormat) -> Self {
        match f {
            KeyFormat::Jwk => PrivateKeyFormat::Jwk,
            KeyFormat::Pem => PrivateKeyFormat::Pem,
        }
    }
}

/// Where the agent's key comes from.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// Generate an Ed25519 key pair here; the private key stays in the OS keychain
    /// (or goes once to --key-file).
    #[arg(long, conflicts_with = "public_key")]
    generate_key: bool,
    /// With --generate-key: write the private key to this new file (mode 0600) instead of
    /// the keychain; Mandate keeps no copy.
    #[arg(long, value_name = "PATH", requires = "generate_key")]
    key_file: Option<PathBuf>,
    /// Format of --key-file.
    #[arg(long, value_enum, default_value = "jwk", requires = "key_file")]
    key_format: KeyFormat,
    /// Register a public key the agent made itself: a file holding a JWK, a PEM public key
    /// or an OpenSSH `ssh-ed25519` line (`-` reads stdin).
    #[arg(long, value_name = "FILE")]
    public_key: Option<PathBuf>,
}

impl KeyArgs {
    fn choice(&self) -> CliResult<KeyChoice> {
        if let Some(path) = &self.public_key {
            let text = if path.as_os_str() == "-" {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map_err(|e| {
                    CliError::Exit {
                        code: 3,
                        message: format!("could not read the public key from stdin: {e}"),
                    }
                })?;
                s
            } else {
                std::fs::read_to_string(path).map_err(|e| CliError::Exit {
                    code: 3,
                    message: format!("could not read the public key file {}: {e}", path.display()),
                })?
            };
            return Ok(KeyChoice::Register { public_key: text });
        }
        if self.generate_key {
            return Ok(match &self.key_file {
                Some(path) => KeyChoice::GenerateToFile {
                    path: path.clone(),
                    format: self.key_format.into(),
                },
                None => KeyChoice::GenerateInKeychain,
            });
        }
        Ok(KeyChoice::None)
    }
}

#[derive(Debug, Subcommand)]
pub enum AgentCmd {
    /// Register an agent with its own identity.
    Add {
        /// A name after its job: lowercase letters, digits, dashes (e.g. billing-report-agent).
        name: String,
        /// The team member accountable for it.
        #[arg(long)]
        owner: String,
        /// What it does, in a few words.
        #[arg(long)]
        purpose: String,
        /// A scope as connection:action (repeatable), e.g. github:repo.read.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Parent agent, for a sub-agent.
        #[arg(long)]
        parent: Option<String>,
        /// Longest token lifetime for this agent, e.g. 15m or 2h (at most 24h; default 15m).
        #[arg(long, value_name = "DURATION")]
        max_ttl: Option<String>,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// List every agent with its status and trust state.
    List,
    /// Show one agent: identity, keys, scopes, trust signals.
    Show { name: String },
    /// Change an agent (its config version goes up by one).
    Edit {
        name: String,
        #[arg(long)]
        purpose: Option<String>,
        #[arg(long)]
        owner: Option<String>,
        /// Make it a sub-agent of PARENT.
        #[arg(long, conflicts_with = "no_parent")]
        parent: Option<String>,
        /// Make it a top-level agent.
        #[arg(long)]
        no_parent: bool,
        /// Grant a scope (repeatable).
        #[arg(long = "add-scope", value_name = "SCOPE")]
        add_scopes: Vec<String>,
        /// Withdraw a scope (repeatable).
        #[arg(long = "remove-scope", value_name = "SCOPE")]
        remove_scopes: Vec<String>,
        /// Require DPoP-bound tokens (RFC 9449): true or false.
        #[arg(long, value_name = "BOOL")]
        dpop_required: Option<bool>,
        /// Longest token lifetime for this agent, e.g. 15m or 2h (at most 24h).
        #[arg(long, value_name = "DURATION", conflicts_with = "default_max_ttl")]
        max_ttl: Option<String>,
        /// Use the global default token lifetime again.
        #[arg(long)]
        default_max_ttl: bool,
    },
    /// Suspend an agent: it gets no tokens until resumed.
    Suspend {
        name: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Resume a suspended agent.
    Resume { name: String },
    /// Revoke an agent for good. Its tokens stop working; this cannot be undone.
    Revoke {
        name: String,
        /// Why (recorded in the audit trail).
        #[arg(long)]
        reason: String,
    },
    /// Give an agent a new key; the old one stays valid for the overlap period.
    RotateKey {
        name: String,
        /// How long the current key(s) keep working, e.g. 1h or 7d (at most 30d).
        #[arg(long, default_value = "24h", value_name = "DURATION")]
        overlap: String,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Review an agent's changed configuration: drift no longer holds it at PENDING.
    Review {
        name: String,
        /// What you checked (recorded in the audit trail).
        #[arg(long)]
        note: Option<String>,
    },
    /// Override the computed trust state (with a reason), or clear the override.
    Trust {
        name: String,
        /// TRUSTED, PENDING or UNTRUSTED.
        #[arg(
            long,
            value_name = "STATE",
            conflicts_with = "clear",
            required_unless_present = "clear"
        )]
        set: Option<TrustState>,
        /// Return to the computed state.
        #[arg(long)]
        clear: bool,
        /// Why (recorded in the audit trail).
        #[arg(long, default_value = "")]
        reason: String,
    },
}

fn usage(message: String) -> CliError {
    CliError::Exit { code: 3, message }
}

pub fn run(ctx: &mut Ctx, cmd: AgentCmd) -> CliResult {
    let m = ctx.mandate()?;
    let agent = match cmd {
        AgentCmd::Add {
            name,
            owner,
            purpose,
            scopes,
            parent,
            max_ttl,
            key,
        } => {
            let choice = key.choice()?;
            let max_ttl = max_ttl
                .map(|s| {
                    let d = parse_duration(&s).map_err(usage)?;
                    u32::try_from(d.num_seconds()).map_err(|_| usage(format!("'{s}' is too long")))
                })
                .transpose()?;
            let a = m.add_agent_with_ttl(
                NewAgent {
                    name,
                    purpose,
                    owner,
                    parent,
                    scopes,
                    key: choice.clone(),
                },
                max_ttl,
            )?;
            if !ctx.json {
                println!("Registered agent '{}' (trust: {}).", a.name, a.trust.state);
                match choice {
                    KeyChoice::GenerateInKeychain => {
                        println!(
                            "Its private key is in the OS keychain; `mandate token {}` gets it a token.",
                            a.name
                        )
                    }
                    KeyChoice::GenerateToFile { path, .. } => println!(
                        "Its private key was written to {} (mode 0600); Mandate kept no copy.",
                        path.display()
                    ),
                    KeyChoice::Register { .. } => println!("Its own public key is registered."),
                    KeyChoice::None => println!(
                        "It has no key yet: add one with `mandate agent rotate-key {} --generate-key`.",
                        a.name
                    ),
                }
                return Ok(());
            }
            a
        }
        AgentCmd::List => {
            if let Err(e) = m.refresh_trust() {
                tracing::warn!(error = %e, "trust signals could not be refreshed");
            }
            let agents = m.list_agents()?;
            if ctx.json {
                return output::json(&agents);
            }
            if agents.is_empty() {
                println!(
                    "No agents yet. Register one with `mandate agent add NAME --owner MEMBER \
                     --purpose TEXT --generate-key`."
                );
                return Ok(());
            }
            let now = m.now();
            let mut t = output::table(&[
                "NAME",
                "OWNER",
                "PURPOSE",
                "SCOPES",
                "STATUS",
                "TRUST",
                "LAST ACTIVITY",
            ]);
            for a in agents {
                t.add_row(vec![
                    a.name.to_string(),
                    a.owner.map(|o| o.to_string()).unwrap_or_else(|| "-".into()),
                    a.purpose.clone(),
                    a.scopes
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    a.status.to_string(),
                    format!("{} ({})", a.trust.state, a.trust.score),
                    a.last_activity
                        .map(|t| output::ago(t, now))
                        .unwrap_or_else(|| "-".into()),
                ]);
            }
            println!("{t}");
            return Ok(());
        }
        AgentCmd::Show { name } => {
            // Bring the behaviour signals up to date first (the endpoint does this every few
            // seconds while it runs; the CLI may be used without it).
            if let Err(e) = m.refresh_trust() {
                tracing::warn!(error = %e, "trust signals could not be refreshed");
            }
            let agent = m.get_agent(&name)?;
            let budgets = m.broker_usage(&name)?;
            if ctx.json {
                let mut v = serde_json::to_value(&agent).map_err(|e| CliError::Exit {
                    code: 1,
                    message: format!("could not encode the output as JSON: {e}"),
                })?;
                v["budgets"] = serde_json::json!(budgets);
                return output::json(&v);
            }
            print_agent(&agent, m.now());
            print_budgets(&budgets);
            return Ok(());
        }
        AgentCmd::Edit {
            name,
            purpose,
            owner,
            parent,
            no_parent,
            add_scopes,
            remove_scopes,
            dpop_required,
            max_ttl,
            default_max_ttl,
        } => {
            let max_token_ttl_secs = match (max_ttl, default_max_ttl) {
                (Some(s), _) => {
                    let d = parse_duration(&s).map_err(usage)?;
                    let secs = u32::try_from(d.num_seconds())
                        .map_err(|_| usage(format!("'{s}' is too long")))?;
                    Some(Some(secs))
                }
                (None, true) => Some(None),
                (None, false) => None,
            };
            let parent = match (parent, no_parent) {
                (Some(p), _) => Some(Some(p)),
                (None, true) => Some(None),
                (None, false) => None,
            };
            m.edit_agent(
                &name,
                AgentEdit {
                    purpose,
                    owner,
                    parent,
                    add_scopes,
                    remove_scopes,
                    dpop_required,
                    max_token_ttl_secs,
                },
            )?
        }
        AgentCmd::Suspend { name, reason } => m.suspend_agent(&name, reason.as_deref())?,
        AgentCmd::Resume { name } => m.resume_agent(&name)?,
        AgentCmd::Revoke { name, reason } => m.revoke_agent(&name, &reason)?,
        AgentCmd::RotateKey { name, overlap, key } => {
            let overlap = parse_duration(&overlap).map_err(usage)?;
            let mut choice = key.choice()?;
            if matches!(choice, KeyChoice::None) {
                // Rotation without flags generates a new keychain key: the common case.
                choice = KeyChoice::GenerateInKeychain;
            }
            m.rotate_agent_key(&name, choice, overlap)?
        }
        AgentCmd::Review { name, note } => m.review_agent(&name, note.as_deref())?,
        AgentCmd::Trust {
            name,
            set,
            clear,
            reason,
        } => {
            let state = if clear { None } else { set };
            m.set_trust_override(&name, state, &reason)?
        }
    };
    if ctx.json {
        output::json(&agent)
    } else {
        print_agent(&agent, m.now());
        Ok(())
    }
}

/// The secret broker's limits and today's use, per connection the agent holds scopes on.
fn print_budgets(budgets: &[mandate_core::broker::BudgetUsage]) {
    use mandate_core::broker::BudgetState;
    if budgets.is_empty() {
        return;
    }
    let mut t = output::table(&[
        "CONNECTION",
        "RATE LIMIT",
        "BUDGET TODAY (UTC)",
        "CALLS",
        "DENIED",
        "STATE",
    ]);
    for b in budgets {
        t.add_row(vec![
            b.connection.clone(),
            b.rate_per_minute
                .map_or("none".to_string(), |n| format!("{n}/min")),
            match b.daily_budget {
                Some(d) => format!("{} of {d} units", b.used),
                None => format!("{} units (no budget)", b.used),
            },
            b.calls.to_string(),
            b.denied.to_string(),
            match b.state {
                BudgetState::Unlimited | BudgetState::Ok => "ok",
                BudgetState::EssentialOnly => "essential actions only (90% used)",
                BudgetState::Exhausted => "exhausted until 00:00 UTC",
            }
            .to_string(),
        ]);
    }
    println!("Broker budgets ({})", budgets[0].day);
    println!("{t}");
}

fn print_agent(a: &Agent, now: chrono::DateTime<chrono::Utc>) {
    println!("Agent          {}", a.name);
    println!("Id             {}", a.id);
    println!("Purpose        {}", a.purpose);
    println!(
        "Owner          {}",
        a.owner.as_ref().map(|o| o.as_str()).unwrap_or("-")
    );
    if a.parent.is_some() {
        let chain: Vec<&str> = a.parents.iter().map(|p| p.as_str()).collect();
        println!("Parents        {} (it never holds more)", chain.join(" → "));
    }
    match &a.status_reason {
        Some(r) => println!("Status         {} ({r})", a.status),
        None => println!("Status         {}", a.status),
    }
    if let Some(h) = &a.held_by_parent {
        println!("Held back      {}", h.message);
    }
    println!("Config version {}", a.config_version);
    let scopes: Vec<&str> = a.scopes.iter().map(|s| s.as_str()).collect();
    println!(
        "Scopes         {}",
        if scopes.is_empty() {
            "none".to_string()
        } else {
            scopes.join(", ")
        }
    );
    println!(
        "DPoP required  {}",
        if a.dpop_required { "yes" } else { "no" }
    );
    if let Some(ttl) = a.max_token_ttl_secs {
        println!("Max token TTL  {ttl} s");
    }
    if !a.keys.is_empty() {
        let mut t = output::table(&[
            "KEY ID (kid)",
            "FINGERPRINT",
            "PRIVATE KEY",
            "CREATED",
            "STATE",
        ]);
        for k in &a.keys {
            let state = match k.expires_at {
                None => "active".to_string(),
                Some(e) if e > now => format!("retiring {}", e.format("%Y-%m-%d %H:%M UTC")),
                Some(_) => "retired".to_string(),
            };
            t.add_row(vec![
                k.kid.clone(),
                k.fingerprint.clone(),
                k.origin.as_str().to_string(),
                output::ago(k.created_at, now),
                state,
            ]);
        }
        println!("{t}");
    }
    let o = &a.trust;
    match &o.override_ {
        Some(ov) => println!(
            "Trust          {} (manual override: {}; computed {})",
            o.state, ov.reason, o.computed
        ),
        None => println!(
            "Trust          {} (score {}/100; TRUSTED from {}, PENDING from {})",
            o.state, o.score, o.thresholds.trusted_min, o.thresholds.pending_min
        ),
    }
    if let Some(d) = &o.drift {
        println!(
            "Review needed  configuration version {} changed since version {} was reviewed: \
             `mandate agent review {}`",
            d.config_version, d.reviewed_version, a.name
        );
    }
    let mut t = output::table(&["SIGNAL", "RESULT", "POINTS", "DETAIL"]);
    for s in &o.signals {
        t.add_row(vec![
            s.label.clone(),
            match s.outcome {
                SignalOutcome::Pass => "pass",
                SignalOutcome::Warn => "warn",
                SignalOutcome::Fail => "fail",
            }
            .to_string(),
            format!("{:+}", s.contribution),
            s.detail.clone(),
        ]);
    }
    println!("{t}");
}
