//! `mandate mcp ...`: MCP servers as connections, their tools as scopes, and the stdio bridge.
//!
//! Secret values (`--secret-env NAME`, a remote server's `--credential`) are read from standard
//! input, one line per value in the order given, never from arguments. `mandate mcp run` is
//! what an MCP client starts in place of the server (see `mandate mcp run --help`).

use std::io::{IsTerminal, Read};
use std::sync::Arc;
use std::time::Duration;

use clap::Subcommand;
use mandate_core::broker::CredentialPlacement;
use mandate_core::mcp::{McpServer, McpServerEdit, McpSession, McpTransport, NewMcpServer};
use mandate_core::model::TrustState;
use mandate_core::secret::Sensitive;
use zeroize::Zeroize;

use crate::context::{CliError, CliResult, Ctx};
use crate::output;

const RUN_HELP: &str = "\
In an MCP client's config (Claude Code's .mcp.json, claude_desktop_config.json, Cursor's
.cursor/mcp.json), replace the server's entry with:

  \"github-mcp\": {\"command\": \"mandate\", \"args\": [\"mcp\", \"run\", \"--agent\", \"coder\", \"github-mcp\"]}

The bridge starts the registered server with its secrets from the OS keychain, shows the
agent only the tools its scopes allow (SERVER:tool), refuses any other call with a JSON-RPC
error naming the missing scope, and records every call in the audit trail. Logs go to
standard error (MANDATE_LOG=info for more).";

#[derive(Debug, Subcommand)]
pub enum McpCmd {
    /// Register an MCP server: `mandate mcp add NAME [--secret-env VAR]... -- COMMAND [ARGS]`,
    /// or `mandate mcp add NAME --url URL [--credential]` for a remote server.
    ///
    /// Secret values are read from standard input, one line each, in the order of the flags
    /// (`--secret-env` first, then `--credential`). The server is then started once to read
    /// its tools (skip with --no-read-tools).
    Add {
        /// Its name, the first half of its scopes (`github-mcp` for `github-mcp:create_issue`).
        name: String,
        /// A remote Streamable HTTP server instead of a local command.
        #[arg(long, value_name = "URL", conflicts_with = "command")]
        url: Option<String>,
        /// An environment variable whose value is secret: stored in the OS keychain, given
        /// only to the server (repeatable; values on stdin).
        #[arg(long = "secret-env", value_name = "NAME")]
        secret_env: Vec<String>,
        /// A plain environment variable NAME=VALUE (repeatable; refused if it looks like a
        /// credential).
        #[arg(long = "env", value_name = "NAME=VALUE")]
        env: Vec<String>,
        /// A remote server's credential, read from standard input.
        #[arg(long, requires = "url")]
        credential: bool,
        /// Where a remote server's credential goes: bearer (default), basic or header:NAME.
        #[arg(long, value_name = "HOW", requires = "url")]
        auth: Option<String>,
        /// Agents below this trust state are refused (TRUSTED, PENDING, UNTRUSTED).
        #[arg(long, value_name = "STATE")]
        trust_floor: Option<TrustState>,
        /// Longest wait for one answer, in seconds (default 120).
        #[arg(long, value_name = "SECS")]
        call_timeout: Option<u32>,
        /// Record tool-call arguments in the audit trail (by default only their SHA-256).
        #[arg(long)]
        audit_arguments: bool,
        /// Do not start the server to read its tools now (`mandate mcp tools NAME --refresh`).
        #[arg(long)]
        no_read_tools: bool,
        /// The program and its arguments (after `--`).
        #[arg(last = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// List MCP servers.
    List,
    /// Show one server: how it is reached, its secrets (names only), tools and grants.
    Show { name: String },
    /// Its tools, prompts and resources with their scopes, read-only first, destructive marked.
    Tools {
        name: String,
        /// Start the server and read its tools again.
        #[arg(long)]
        refresh: bool,
    },
    /// Change a server: command, variables, secrets, URL, credential, timeout, auditing.
    ///
    /// New secret values (`--secret-env`, `--credential`) are read from standard input, one
    /// line each.
    Edit {
        name: String,
        /// Store or replace a secret variable (value on stdin; repeatable).
        #[arg(long = "secret-env", value_name = "NAME")]
        secret_env: Vec<String>,
        /// Forget a secret variable (repeatable).
        #[arg(long = "unset-secret-env", value_name = "NAME")]
        unset_secret_env: Vec<String>,
        /// Set a plain variable NAME=VALUE (repeatable).
        #[arg(long = "env", value_name = "NAME=VALUE")]
        env: Vec<String>,
        /// Remove a plain variable (repeatable).
        #[arg(long = "unset-env", value_name = "NAME")]
        unset_env: Vec<String>,
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Replace a remote server's credential (value on stdin).
        #[arg(long)]
        credential: bool,
        /// Where a remote server's credential goes: bearer, basic or header:NAME.
        #[arg(long, value_name = "HOW")]
        auth: Option<String>,
        /// Longest wait for one answer, in seconds.
        #[arg(long, value_name = "SECS")]
        call_timeout: Option<u32>,
        /// Record tool-call arguments in the audit trail (true or false).
        #[arg(long, value_name = "BOOL")]
        audit_arguments: Option<bool>,
        /// A new program and arguments (after `--`).
        #[arg(last = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Remove a server, every scope granted on it and its secrets.
    Remove { name: String },
    /// Import servers from an MCP client's config (.mcp.json, claude_desktop_config.json,
    /// .cursor/mcp.json, .vscode/mcp.json): register each, move its inline secrets into the
    /// OS keychain, and rewrite its entry to `mandate mcp run --agent AGENT SERVER`.
    ///
    /// Only the chosen entries change; comments, order and other servers stay. The original
    /// file is kept in the OS keychain (it held the secrets): `mandate mcp undo-import ID`
    /// puts it back. Without --server, lists what the file holds and changes nothing.
    Import {
        /// The config file.
        file: std::path::PathBuf,
        /// The agent the rewritten entries run as.
        #[arg(long, value_name = "AGENT")]
        agent: Option<String>,
        /// An entry to import, as KEY or KEY=SERVER-NAME (repeatable).
        #[arg(long = "server", value_name = "KEY[=NAME]")]
        servers: Vec<String>,
        /// After reading the servers' tools, grant the agent these scopes (SERVER:TOOL,
        /// repeatable).
        #[arg(long = "grant", value_name = "SERVER:TOOL")]
        grants: Vec<String>,
    },
    /// List config imports (newest first), to undo one.
    Imports,
    /// Put a config file back as it was before an import (refused if it changed since).
    UndoImport {
        /// The import's id (`mandate mcp imports`).
        id: String,
    },
    /// The stdio bridge an MCP client starts in place of the server.
    #[command(after_help = RUN_HELP)]
    Run {
        /// The agent whose scopes apply.
        #[arg(long, value_name = "AGENT")]
        agent: String,
        /// The registered server.
        server: String,
    },
}

fn usage(message: String) -> CliError {
    CliError::Exit { code: 2, message }
}

/// Read `n` secret values from standard input (one per line) or a hidden prompt each.
fn read_secrets(names: &[String]) -> CliResult<Vec<Sensitive<String>>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return names
            .iter()
            .map(|n| {
                rpassword::prompt_password(format!("{n} (input hidden): "))
                    .map(Sensitive::new)
                    .map_err(|e| CliError::Exit {
                        code: 1,
                        message: format!("could not read {n} from the terminal: {e}"),
                    })
            })
            .collect();
    }
    let mut raw = String::new();
    stdin
        .lock()
        .read_to_string(&mut raw)
        .map_err(|e| CliError::Exit {
            code: 3,
            message: format!("could not read the secret values from standard input: {e}"),
        })?;
    let values: Vec<Sensitive<String>> = raw
        .lines()
        .map(|l| Sensitive::new(l.trim_end_matches('\r').to_string()))
        .collect();
    raw.zeroize();
    if values.len() < names.len() {
        return Err(CliError::Exit {
            code: 3,
            message: format!(
                "standard input holds {} line(s) but {} secret value(s) were asked for ({}); \
                 give one value per line, in that order",
                values.len(),
                names.len(),
                names.join(", ")
            ),
        });
    }
    Ok(values.into_iter().take(names.len()).collect())
}

fn parse_env(raw: &[String]) -> CliResult<Vec<(String, String)>> {
    raw.iter()
        .map(|e| {
            e.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .ok_or_else(|| usage(format!("'{e}' is not NAME=VALUE")))
        })
        .collect()
}

fn parse_auth(raw: Option<&str>) -> CliResult<Option<CredentialPlacement>> {
    Ok(raw.map(str::parse).transpose()?)
}

/// Start a stdio server, read its offer and store it; prints nothing.
pub fn refresh_tools(
    m: &Arc<mandate_core::Mandate>,
    name: &str,
) -> CliResult<mandate_core::mcp::ToolsUpdate> {
    let rt = super::serve::runtime()?;
    let offered = rt
        .block_on(mandate_mcp::offer::read_server_offer(
            m,
            name,
            Duration::from_secs(60),
        ))
        .map_err(|e| CliError::Exit {
            code: 1,
            message: format!(
                "could not read the tools of '{name}': {e}. Check it with `mandate mcp show \
                 {name}`; the server is registered, so you can retry with `mandate mcp tools \
                 {name} --refresh`"
            ),
        })?;
    Ok(m.set_mcp_tools(name, &offered)?)
}

fn run_error(e: mandate_mcp::stdio::RunError) -> CliError {
    match e {
        mandate_mcp::stdio::RunError::Core(e) => CliError::Core(e),
        mandate_mcp::stdio::RunError::Start(message) => CliError::Exit { code: 1, message },
    }
}

fn transport_text(s: &McpServer) -> String {
    match &s.transport {
        McpTransport::Stdio { command, args } => {
            let mut v = vec![command.clone()];
            v.extend(args.iter().cloned());
            v.join(" ")
        }
        McpTransport::Http { url } => url.clone(),
    }
}

fn print_tools(s: &McpServer) {
    if s.tools.is_empty() {
        println!(
            "No tools read yet: `mandate mcp tools {} --refresh` starts the server and reads them.",
            s.name
        );
        return;
    }
    let mut t = output::table(&["SCOPE", "KIND", "HINTS", "COST", "DESCRIPTION"]);
    for tool in &s.tools {
        let mut hints = Vec::new();
        if tool.read_only == Some(true) {
            hints.push("read-only");
        } else if tool.is_destructive() {
            hints.push("DESTRUCTIVE");
        } else if tool.kind == "tool" {
            hints.push("writes");
        }
        if tool.open_world == Some(true) {
            hints.push("open world");
        }
        if tool.essential {
            hints.push("essential");
        }
        let desc: String = tool
            .description
            .as_deref()
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(80)
            .collect();
        t.add_row(vec![
            tool.scope.clone(),
            tool.kind.clone(),
            hints.join(", "),
            tool.cost.to_string(),
            desc,
        ]);
    }
    println!("{t}");
}

pub fn run(ctx: &mut Ctx, cmd: McpCmd) -> CliResult {
    let m = ctx.mandate()?;
    match cmd {
        McpCmd::Add {
            name,
            url,
            secret_env,
            env,
            credential,
            auth,
            trust_floor,
            call_timeout,
            audit_arguments,
            no_read_tools,
            command,
        } => {
            let transport = match (url, command.split_first()) {
                (Some(url), None) => McpTransport::Http { url },
                (None, Some((c, a))) => McpTransport::Stdio {
                    command: c.clone(),
                    args: a.to_vec(),
                },
                (None, None) => {
                    return Err(usage(
                        "give the server's command after `--` (for example `mandate mcp add \
                         github-mcp --secret-env GITHUB_PERSONAL_ACCESS_TOKEN -- npx -y \
                         @modelcontextprotocol/server-github`) or --url URL"
                            .into(),
                    ));
                }
                (Some(_), Some(_)) => {
                    return Err(usage("give either --url or a command, not both".into()));
                }
            };
            let mut names = secret_env.clone();
            if credential {
                names.push("the credential".into());
            }
            let mut values = read_secrets(&names)?;
            let http_secret = if credential { values.pop() } else { None };
            let new = NewMcpServer {
                name: name.clone(),
                transport,
                env: parse_env(&env)?,
                secret_env: secret_env.into_iter().zip(values).collect(),
                http_secret,
                auth: parse_auth(auth.as_deref())?,
                trust_floor,
                call_timeout_secs: call_timeout,
                audit_arguments,
            };
            let s = m.add_mcp_server(new)?;
            let update = if !no_read_tools {
                match refresh_tools(&m, s.name.as_str()) {
                    Ok(u) => Some(u),
                    Err(e) => {
                        ctx.report_error(&e);
                        None
                    }
                }
            } else {
                None
            };
            let s = m.get_mcp_server(s.name.as_str())?;
            if ctx.json {
                return output::json(&s);
            }
            println!("Added MCP server '{}' ({}).", s.name, transport_text(&s));
            if !s.secret_env.is_empty() {
                println!(
                    "Secrets in the OS keychain: {} (given only to the server).",
                    s.secret_env.join(", ")
                );
            }
            if let Some(u) = update {
                println!(
                    "Read {} tool(s), prompt(s) and resource grants from the server.",
                    u.added.len()
                );
                if !u.skipped.is_empty() {
                    println!(
                        "Not grantable (name not plain ASCII): {}",
                        u.skipped.join(", ")
                    );
                }
                print_tools(&s);
            }
            println!(
                "Grant tools with: mandate agent edit AGENT --add-scope {}:TOOL",
                s.name
            );
            println!(
                "Then point the client at: mandate mcp run --agent AGENT {}",
                s.name
            );
            Ok(())
        }
        McpCmd::List => {
            let all = m.list_mcp_servers()?;
            if ctx.json {
                return output::json(&all);
            }
            if all.is_empty() {
                println!(
                    "No MCP servers yet. Add one with `mandate mcp add NAME -- COMMAND [ARGS]`."
                );
                return Ok(());
            }
            let mut t = output::table(&["NAME", "REACHED BY", "SECRETS", "TOOLS", "GRANTED TO"]);
            for s in &all {
                t.add_row(vec![
                    s.name.to_string(),
                    transport_text(s),
                    if s.secret_env.is_empty() {
                        if s.has_secret { "credential" } else { "none" }.to_string()
                    } else {
                        s.secret_env.join(", ")
                    },
                    s.tools.len().to_string(),
                    s.granted_to.join(", "),
                ]);
            }
            println!("{t}");
            Ok(())
        }
        McpCmd::Show { name } => {
            let s = m.get_mcp_server(&name)?;
            if ctx.json {
                return output::json(&s);
            }
            println!("MCP server '{}'", s.name);
            println!("  reached by:    {}", transport_text(&s));
            if !s.env.is_empty() {
                let kv: Vec<String> = s.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!("  environment:   {}", kv.join(" "));
            }
            println!(
                "  secrets:       {}",
                if s.secret_env.is_empty() {
                    match (&s.auth, s.has_secret) {
                        (Some(a), true) => format!("credential in the OS keychain ({a})"),
                        _ => "none".into(),
                    }
                } else {
                    format!("{} (in the OS keychain)", s.secret_env.join(", "))
                }
            );
            println!("  trust floor:   {}", s.trust_floor);
            println!("  call timeout:  {} s", s.call_timeout_secs);
            println!(
                "  audit:         {}",
                if s.audit_arguments {
                    "each call with its arguments"
                } else {
                    "each call with the SHA-256 of its arguments"
                }
            );
            println!(
                "  granted to:    {}",
                if s.granted_to.is_empty() {
                    "no agent yet".into()
                } else {
                    s.granted_to.join(", ")
                }
            );
            print_tools(&s);
            Ok(())
        }
        McpCmd::Tools { name, refresh } => {
            if refresh {
                let u = refresh_tools(&m, &name)?;
                if !ctx.json {
                    println!(
                        "Read the server's tools: {} new, {} gone{}.",
                        u.added.len(),
                        u.removed.len(),
                        if u.kept_while_granted.is_empty() {
                            String::new()
                        } else {
                            format!(
                                ", {} no longer listed but kept while granted ({})",
                                u.kept_while_granted.len(),
                                u.kept_while_granted.join(", ")
                            )
                        }
                    );
                }
            }
            let s = m.get_mcp_server(&name)?;
            if ctx.json {
                return output::json(&s.tools);
            }
            print_tools(&s);
            Ok(())
        }
        McpCmd::Edit {
            name,
            secret_env,
            unset_secret_env,
            env,
            unset_env,
            url,
            credential,
            auth,
            call_timeout,
            audit_arguments,
            command,
        } => {
            let mut names = secret_env.clone();
            if credential {
                names.push("the credential".into());
            }
            let mut values = read_secrets(&names)?;
            let http_secret = if credential { values.pop() } else { None };
            let edit = McpServerEdit {
                command: command.split_first().map(|(c, a)| (c.clone(), a.to_vec())),
                url,
                set_env: parse_env(&env)?,
                unset_env,
                set_secret_env: secret_env.into_iter().zip(values).collect(),
                unset_secret_env,
                http_secret,
                auth: parse_auth(auth.as_deref())?,
                call_timeout_secs: call_timeout,
                audit_arguments,
            };
            let s = m.edit_mcp_server(&name, edit)?;
            if ctx.json {
                return output::json(&s);
            }
            println!("Updated MCP server '{}'.", s.name);
            Ok(())
        }
        McpCmd::Remove { name } => {
            let affected = m.remove_mcp_server(&name)?;
            if ctx.json {
                return output::json(
                    &serde_json::json!({"removed": name, "scopes_removed_from": affected}),
                );
            }
            println!("Removed MCP server '{name}' and its secrets.");
            if !affected.is_empty() {
                println!("Scopes on it were removed from: {}", affected.join(", "));
            }
            Ok(())
        }
        McpCmd::Import {
            file,
            agent,
            servers,
            grants,
        } => {
            let found = mandate_core::mcp::read_config(&file)?;
            if servers.is_empty() {
                if ctx.json {
                    return output::json(&found);
                }
                let mut t = output::table(&["KEY", "STARTS", "INLINE SECRETS", "IMPORT"]);
                for e in &found.entries {
                    t.add_row(vec![
                        e.key.clone(),
                        e.command
                            .clone()
                            .map(|c| format!("{c} {}", e.args.join(" ")))
                            .or_else(|| e.url.clone())
                            .unwrap_or_default(),
                        e.env
                            .iter()
                            .filter(|v| v.secret)
                            .map(|v| format!("{}={}", v.name, v.shown))
                            .collect::<Vec<_>>()
                            .join(", "),
                        if e.bridged {
                            "already through Mandate".into()
                        } else if let Some(b) = &e.blocked {
                            b.clone()
                        } else {
                            format!("--server {}={}", e.key, e.suggested_name)
                        },
                    ]);
                }
                println!("{t}");
                println!("Import with: mandate mcp import FILE --agent AGENT --server KEY[=NAME]");
                return Ok(());
            }
            let agent = agent.ok_or_else(|| {
                usage("give --agent AGENT: the rewritten entries run as that agent".into())
            })?;
            let chosen: Vec<(String, String)> = servers
                .iter()
                .map(|s| match s.split_once('=') {
                    Some((k, n)) => (k.to_string(), n.to_string()),
                    None => {
                        let name = found
                            .entries
                            .iter()
                            .find(|e| e.key == *s)
                            .map(|e| e.suggested_name.clone())
                            .unwrap_or_else(|| s.clone());
                        (s.clone(), name)
                    }
                })
                .collect();
            let imp = m.import_mcp_config(&mandate_core::mcp::ImportPlan {
                path: file.clone(),
                agent: agent.clone(),
                servers: chosen,
            })?;
            let mut read_errors = Vec::new();
            for s in &imp.servers {
                if let Err(e) = refresh_tools(&m, &s.server) {
                    read_errors.push(e);
                }
            }
            if !grants.is_empty() {
                m.edit_agent(
                    &agent,
                    mandate_core::AgentEdit {
                        add_scopes: grants.clone(),
                        ..Default::default()
                    },
                )?;
            }
            if ctx.json {
                return output::json(&imp);
            }
            for s in &imp.servers {
                println!(
                    "Imported '{}' as MCP server '{}'{}.",
                    s.key,
                    s.server,
                    if s.secrets_moved.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; moved {} into the OS keychain",
                            s.secrets_moved.join(", ")
                        )
                    }
                );
            }
            println!(
                "{} now starts them through `mandate mcp run --agent {agent}`; the original is \
                 kept in the OS keychain (undo: mandate mcp undo-import {}).",
                imp.path, imp.id
            );
            if !grants.is_empty() {
                println!("Granted {agent}: {}", grants.join(", "));
            } else {
                println!(
                    "{agent} sees no tool until you grant some: mandate agent edit {agent}                      --add-scope SERVER:TOOL (`mandate mcp tools SERVER` lists them)."
                );
            }
            for e in &read_errors {
                ctx.report_error(e);
            }
            Ok(())
        }
        McpCmd::Imports => {
            let all = m.mcp_imports()?;
            if ctx.json {
                return output::json(&all);
            }
            let mut t = output::table(&["ID", "WHEN", "FILE", "AGENT", "SERVERS", "UNDONE"]);
            for i in &all {
                t.add_row(vec![
                    i.id.clone(),
                    i.created_at.clone(),
                    i.path.clone(),
                    i.agent.clone(),
                    i.servers
                        .iter()
                        .map(|s| s.server.clone())
                        .collect::<Vec<_>>()
                        .join(", "),
                    i.undone_at.clone().unwrap_or_default(),
                ]);
            }
            println!("{t}");
            Ok(())
        }
        McpCmd::UndoImport { id } => {
            let i = m.undo_mcp_import(&id)?;
            if ctx.json {
                return output::json(&i);
            }
            println!(
                "Put {} back as it was before the import (its secrets are in it again). The \
                 servers stay registered: remove them with `mandate mcp remove NAME`.",
                i.path
            );
            Ok(())
        }
        McpCmd::Run { agent, server } => {
            let session = McpSession::open(m.clone(), &agent, &server, "stdio")?;
            let rt = super::serve::runtime()?;
            let status = rt
                .block_on(mandate_mcp::stdio::run(Arc::new(session)))
                .map_err(run_error)?;
            // Every audit write has committed (the relay waits for them). A thread may still
            // be blocked reading our standard input (the client keeps it open while the
            // server died): do not wait for it.
            rt.shutdown_timeout(Duration::from_millis(100));
            if status == 0 {
                Ok(())
            } else {
                Err(CliError::Exit {
                    code: u8::try_from(status.clamp(1, 125)).unwrap_or(1),
                    message: format!("the MCP server '{server}' exited with status {status}"),
                })
            }
        }
    }
}
