//! Registering MCP servers: how to reach them, their secrets, and what they offer.
//!
//! Like every registry change, input is checked first, keychain writes happen before the
//! transaction (and are undone if it fails), and the change commits with its audit event.
//! Secret environment values go to the keychain under `mcp-env/<connection id>/<NAME>`; a
//! remote server's credential is the connection's own secret (`connection/<id>`), placed as
//! the broker places it (`bearer`, `header:NAME`, `basic`). Arguments of a stdio server are
//! stored in the database, so an argument that looks like a credential is refused.
//!
//! What it is not: talking to the server. The tool list comes from the protocol layer
//! (`mandate-mcp`), which reads it from the server and hands it to [`Mandate::set_mcp_tools`].

use std::collections::{BTreeMap, BTreeSet};

use crate::store::{Tx, params};
use serde_json::json;

use super::{
    ACTION_METHOD, BASE_URL_SCHEME, McpServer, McpTool, McpTransport, OfferedTool, ToolsUpdate,
    is_action_name,
};
use crate::Mandate;
use crate::audit::{self, Decision, NewEvent, Target};
use crate::broker::CredentialPlacement;
use crate::error::{Error, Result};
use crate::model::{ConnectionId, ConnectionName, TrustState};
use crate::registry::{connection_tx, exists, parse_time, ts};
use crate::secret::{SecretRef, Sensitive};

/// Default longest wait for one answer from a server.
pub const DEFAULT_CALL_TIMEOUT_SECS: u32 = 120;

/// A new MCP server.
#[derive(Debug)]
pub struct NewMcpServer {
    pub name: String,
    pub transport: McpTransport,
    /// Plain environment variables (stdio).
    pub env: Vec<(String, String)>,
    /// Environment variables whose values go to the keychain (stdio).
    pub secret_env: Vec<(String, Sensitive<String>)>,
    /// A remote server's credential and where it goes.
    pub http_secret: Option<Sensitive<String>>,
    pub auth: Option<CredentialPlacement>,
    pub trust_floor: Option<TrustState>,
    pub call_timeout_secs: Option<u32>,
    pub audit_arguments: bool,
}

/// Changes to an MCP server; `None` and empty leave things as they are.
#[derive(Debug, Default)]
pub struct McpServerEdit {
    /// A new program and arguments (stdio servers only).
    pub command: Option<(String, Vec<String>)>,
    pub url: Option<String>,
    pub set_env: Vec<(String, String)>,
    pub unset_env: Vec<String>,
    /// Store (or replace) these secret variables.
    pub set_secret_env: Vec<(String, Sensitive<String>)>,
    /// Forget these secret variables (and their keychain entries).
    pub unset_secret_env: Vec<String>,
    pub http_secret: Option<Sensitive<String>>,
    pub auth: Option<CredentialPlacement>,
    pub call_timeout_secs: Option<u32>,
    pub audit_arguments: Option<bool>,
}

fn env_ref(connection_id: &str, name: &str) -> SecretRef {
    SecretRef {
        account: format!("mcp-env/{connection_id}/{name}"),
    }
}

/// `NAME` of an environment variable: letters, digits and `_`, not starting with a digit.
fn check_env_name(n: &str) -> Result<()> {
    let ok = !n.is_empty()
        && n.len() <= 128
        && !n.starts_with(|c: char| c.is_ascii_digit())
        && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "'{}' is not an environment variable name: use letters, digits and '_' (for example \
             GITHUB_PERSONAL_ACCESS_TOKEN)",
            n.escape_default()
        )))
    }
}

/// Refuse a value that is stored in plain text but looks like a credential.
fn refuse_credential_in(what: &str, value: &str) -> Result<()> {
    if let Some(f) = crate::scan::scan_text("", value).first() {
        return Err(Error::invalid(format!(
            "{what} looks like a {} ({}); Mandate keeps credentials only in the OS keychain: \
             pass it as a secret environment variable instead (`--secret-env NAME`, value on \
             standard input)",
            crate::scan::label_of(&f.kind),
            f.masked
        )));
    }
    Ok(())
}

fn check_command(command: &str, args: &[String]) -> Result<()> {
    if command.trim().is_empty() {
        return Err(Error::invalid(
            "the server's command is empty: give the program after `--`, for example \
             `mandate mcp add github-mcp -- npx -y @modelcontextprotocol/server-github`",
        ));
    }
    if command.contains('\0') || args.iter().any(|a| a.contains('\0')) {
        return Err(Error::invalid("the command contains a NUL character"));
    }
    refuse_credential_in("the command", command)?;
    for (i, a) in args.iter().enumerate() {
        refuse_credential_in(&format!("argument {}", i + 1), a)?;
    }
    Ok(())
}

fn check_url(raw: &str) -> Result<String> {
    let raw = raw.trim();
    let u = url::Url::parse(raw).map_err(|e| {
        Error::invalid(format!(
            "'{raw}' is not a URL ({e}); give the MCP server's Streamable HTTP address, for \
             example https://api.githubcopilot.com/mcp/"
        ))
    })?;
    if !matches!(u.scheme(), "https" | "http") || u.host_str().is_none() {
        return Err(Error::invalid(format!(
            "'{raw}' must be an http(s) URL with a host"
        )));
    }
    if !u.username().is_empty() || u.password().is_some() || u.fragment().is_some() {
        return Err(Error::invalid(
            "the URL must not hold a user name, password or fragment; store the credential with \
             the server (value on standard input)",
        ));
    }
    if let Some(q) = u.query() {
        refuse_credential_in("the URL's query", q)?;
    }
    Ok(raw.to_string())
}

fn check_timeout(t: Option<u32>) -> Result<u32> {
    match t {
        None => Ok(DEFAULT_CALL_TIMEOUT_SECS),
        Some(t) if (1..=3600).contains(&t) => Ok(t),
        Some(_) => Err(Error::invalid(
            "the call timeout must be between 1 second and 1 hour",
        )),
    }
}

type ServerRow = (
    String,
    Option<String>,
    String,
    String,
    String,
    Option<String>,
    i64,
    bool,
    Option<String>,
);

/// The server row of a connection, `None` if it is not an MCP server.
pub(crate) fn load_server(conn: &Tx<'_>, name: &str) -> Result<Option<McpServer>> {
    let c = connection_tx(conn, name)?;
    let row: Option<ServerRow> = conn.query_opt(
        "SELECT transport, command, args, env, secret_env, url, call_timeout_secs,
                    audit_arguments, tools_read_at
             FROM mcp_servers WHERE connection_id = ?1",
        params![c.id.as_str()],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
            ))
        },
    )?;
    let Some((transport, command, args, env, secret_env, url, timeout, audit_args, read_at)) = row
    else {
        return Ok(None);
    };
    let bad = |what: &str| Error::Storage(format!("an MCP server's stored {what} is unreadable"));
    let transport = match transport.as_str() {
        "stdio" => McpTransport::Stdio {
            command: command.ok_or_else(|| bad("command"))?,
            args: serde_json::from_str(&args).map_err(|_| bad("arguments"))?,
        },
        _ => McpTransport::Http {
            url: url.ok_or_else(|| bad("URL"))?,
        },
    };
    let cfg = crate::broker::config::load(conn, &c)?;
    let mut tools = conn.query_map(
        "SELECT action, kind, title, description, read_only, destructive, idempotent, open_world
         FROM mcp_tools WHERE connection_id = ?1",
        params![c.id.as_str()],
        |r| {
            Ok(McpTool {
                action: r.get(0)?,
                kind: r.get(1)?,
                scope: String::new(),
                title: r.get(2)?,
                description: r.get(3)?,
                read_only: r.get(4)?,
                destructive: r.get(5)?,
                idempotent: r.get(6)?,
                open_world: r.get(7)?,
                cost: 1,
                essential: false,
            })
        },
    )?;
    for t in &mut tools {
        t.scope = super::tool_scope(c.name.as_str(), &t.action);
        if let Some(p) = cfg.action(&t.action) {
            t.cost = p.cost;
            t.essential = p.essential;
        }
    }
    tools.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
    let is_http = matches!(transport, McpTransport::Http { .. });
    Ok(Some(McpServer {
        id: c.id.clone(),
        name: c.name.clone(),
        transport,
        env: serde_json::from_str(&env).map_err(|_| bad("environment"))?,
        secret_env: serde_json::from_str(&secret_env).map_err(|_| bad("secret names"))?,
        auth: is_http.then(|| cfg.auth.clone()),
        has_secret: c.has_secret,
        call_timeout_secs: u32::try_from(timeout).unwrap_or(DEFAULT_CALL_TIMEOUT_SECS),
        audit_arguments: audit_args,
        trust_floor: c.trust_floor,
        tools,
        tools_read_at: read_at
            .map(|t| parse_time(&t).map(audit::format_time))
            .transpose()?,
        granted_to: c.granted_to.iter().map(|a| a.to_string()).collect(),
    }))
}

fn not_mcp(name: &str) -> Error {
    Error::not_found_hint(
        "MCP server",
        name,
        "`mandate mcp list` shows the MCP servers (a plain connection is managed with `mandate \
         connection`)",
    )
}

impl Mandate {
    /// Register an MCP server. Its secret values go to the keychain first; the server, its
    /// connection row and the `mcp.server_added` event commit together.
    pub fn add_mcp_server(&self, new: NewMcpServer) -> Result<McpServer> {
        let actor = self.actor()?;
        let name = ConnectionName::parse(&new.name)?;
        let timeout = check_timeout(new.call_timeout_secs)?;
        let (transport_s, command, args, url) = match &new.transport {
            McpTransport::Stdio { command, args } => {
                check_command(command, args)?;
                if new.http_secret.is_some() || new.auth.is_some() {
                    return Err(Error::invalid(
                        "a local (stdio) server takes its credentials as environment variables: \
                         use --secret-env NAME",
                    ));
                }
                ("stdio", Some(command.clone()), args.clone(), None)
            }
            McpTransport::Http { url } => {
                if !new.env.is_empty() || !new.secret_env.is_empty() {
                    return Err(Error::invalid(
                        "a remote (--url) server gets no environment variables: its credential \
                         goes in a header (--auth bearer or --auth header:NAME)",
                    ));
                }
                ("http", None, Vec::new(), Some(check_url(url)?))
            }
        };
        let mut env = BTreeMap::new();
        for (k, v) in &new.env {
            check_env_name(k)?;
            refuse_credential_in(&format!("the variable {k}"), v)?;
            if env.insert(k.clone(), v.clone()).is_some() {
                return Err(Error::invalid(format!("the variable {k} is given twice")));
            }
        }
        let mut secret_names = Vec::new();
        for (k, v) in &new.secret_env {
            check_env_name(k)?;
            if env.contains_key(k) || secret_names.contains(k) {
                return Err(Error::invalid(format!("the variable {k} is given twice")));
            }
            if v.expose().trim().is_empty() {
                return Err(Error::invalid(format!(
                    "the value of {k} is empty; nothing was stored. Pipe it on standard input"
                )));
            }
            secret_names.push(k.clone());
        }
        if new
            .http_secret
            .as_ref()
            .is_some_and(|s| s.expose().trim().is_empty())
        {
            return Err(Error::invalid(
                "the credential is empty; nothing was stored. Pipe it on standard input",
            ));
        }
        let id = ConnectionId::generate();
        // Secrets first; undone if the transaction fails.
        let mut stored: Vec<SecretRef> = Vec::new();
        let undo = |stored: &[SecretRef]| {
            for r in stored {
                let _ = self.keychain_delete(r.clone());
            }
        };
        for (k, v) in &new.secret_env {
            let r = env_ref(id.as_str(), k);
            if let Err(e) = self.keychain_set(r.clone(), v) {
                undo(&stored);
                return Err(e);
            }
            stored.push(r);
        }
        if let Some(s) = &new.http_secret {
            let r = SecretRef::connection(id.as_str());
            if let Err(e) = self.keychain_set(r.clone(), s) {
                undo(&stored);
                return Err(e);
            }
            stored.push(r);
        }
        let floor = new.trust_floor.unwrap_or(TrustState::Pending);
        let has_secret = transport_s == "stdio" || new.http_secret.is_some();
        let auth = new.auth.clone().unwrap_or_default();
        let res = self.write(|tx, now| {
            if exists(tx, "connections", name.as_str())? {
                return Err(Error::AlreadyExists {
                    kind: "connection",
                    name: name.to_string(),
                });
            }
            tx.execute(
                "INSERT INTO connections (id, name, base_url, has_secret, trust_floor, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                params![
                    id.as_str(),
                    name.as_str(),
                    format!("{BASE_URL_SCHEME}{name}"),
                    has_secret,
                    floor.as_str(),
                    ts(now)
                ],
            )?;
            tx.execute(
                "INSERT INTO mcp_servers (connection_id, transport, command, args, env, secret_env,
                     url, call_timeout_secs, audit_arguments)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    id.as_str(),
                    transport_s,
                    command,
                    serde_json::to_string(&args).unwrap_or_else(|_| "[]".into()),
                    serde_json::to_string(&env).unwrap_or_else(|_| "{}".into()),
                    serde_json::to_string(&secret_names).unwrap_or_else(|_| "[]".into()),
                    url,
                    timeout,
                    new.audit_arguments
                ],
            )?;
            if transport_s == "http" {
                crate::broker::config::write_settings(tx, id.as_str(), &auth, None, None, None)?;
            }
            audit::append(
                tx,
                now,
                NewEvent::new(&actor, "mcp.server_added", Decision::Allow)
                    .target(Target::new("connection", id.as_str(), name.as_str()))
                    .details(json!({
                        "transport": transport_s,
                        "command": command,
                        "args": args,
                        "url": url,
                        "env": env.keys().collect::<Vec<_>>(),
                        "secret_env": secret_names,
                        "credential_stored": new.http_secret.is_some(),
                        "auth": (transport_s == "http").then(|| auth.to_string()),
                        "trust_floor": floor.as_str(),
                        "call_timeout_secs": timeout,
                        "audit_arguments": new.audit_arguments,
                    })),
            )?;
            Ok(())
        });
        if let Err(e) = res {
            undo(&stored);
            return Err(e);
        }
        self.get_mcp_server(name.as_str())
    }

    /// Every MCP server, by name.
    pub fn list_mcp_servers(&self) -> Result<Vec<McpServer>> {
        let mut guard = self.lock()?;
        let conn = guard.tx()?;
        let names: Vec<String> = conn.query_map(
            "SELECT c.name FROM mcp_servers s JOIN connections c ON c.id = s.connection_id
             ORDER BY c.name",
            params![],
            |r| r.get(0),
        )?;
        let mut out = Vec::new();
        for n in names {
            if let Some(s) = load_server(&conn, &n)? {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// One MCP server by name (or connection id).
    pub fn get_mcp_server(&self, name: &str) -> Result<McpServer> {
        let mut guard = self.lock()?;
        let conn = guard.tx()?;
        match connection_tx(&conn, name) {
            Ok(_) => load_server(&conn, name)?.ok_or_else(|| not_mcp(name)),
            Err(_) => Err(not_mcp(name)),
        }
    }

    /// The environment a stdio server starts with: its plain variables and its secret ones
    /// from the keychain. Fails (naming the fix) when a secret is missing.
    pub fn mcp_server_env(&self, name: &str) -> Result<Vec<(String, Sensitive<String>)>> {
        let s = self.get_mcp_server(name)?;
        let mut out: Vec<(String, Sensitive<String>)> = s
            .env
            .iter()
            .map(|(k, v)| (k.clone(), Sensitive::new(v.clone())))
            .collect();
        for k in &s.secret_env {
            let v = self
                .keychain_get(env_ref(s.id.as_str(), k))?
                .ok_or_else(|| {
                    Error::Conflict(format!(
                        "the secret {k} of the MCP server '{}' is missing from the OS keychain; \
                     store it again with `mandate mcp edit {} --secret-env {k}` (value on \
                     standard input)",
                        s.name, s.name
                    ))
                })?;
            out.push((k.clone(), v));
        }
        Ok(out)
    }

    /// Change how a server is reached, its variables, secrets, timeout or argument auditing.
    pub fn edit_mcp_server(&self, name: &str, edit: McpServerEdit) -> Result<McpServer> {
        let actor = self.actor()?;
        let s = self.get_mcp_server(name)?;
        let is_stdio = matches!(s.transport, McpTransport::Stdio { .. });
        let wrong = |what: &str| {
            Err(Error::invalid(format!(
                "'{}' is a {} server: {what}",
                s.name,
                if is_stdio {
                    "local (stdio)"
                } else {
                    "remote (--url)"
                }
            )))
        };
        if is_stdio && (edit.url.is_some() || edit.http_secret.is_some() || edit.auth.is_some()) {
            return wrong("it has no URL or header credential; use environment variables");
        }
        if !is_stdio
            && (edit.command.is_some()
                || !edit.set_env.is_empty()
                || !edit.unset_env.is_empty()
                || !edit.set_secret_env.is_empty()
                || !edit.unset_secret_env.is_empty())
        {
            return wrong("it has no command or environment; change --url or its credential");
        }
        if let Some((c, a)) = &edit.command {
            check_command(c, a)?;
        }
        let url = edit.url.as_deref().map(check_url).transpose()?;
        let timeout = match edit.call_timeout_secs {
            Some(t) => Some(check_timeout(Some(t))?),
            None => None,
        };
        let mut env = s.env.clone();
        for k in &edit.unset_env {
            if env.remove(k).is_none() {
                return Err(Error::invalid(format!("'{}' has no variable {k}", s.name)));
            }
        }
        let mut secret_names = s.secret_env.clone();
        for k in &edit.unset_secret_env {
            if !secret_names.contains(k) {
                return Err(Error::invalid(format!(
                    "'{}' has no secret variable {k}",
                    s.name
                )));
            }
            secret_names.retain(|n| n != k);
        }
        for (k, v) in &edit.set_env {
            check_env_name(k)?;
            refuse_credential_in(&format!("the variable {k}"), v)?;
            if secret_names.contains(k) {
                return Err(Error::invalid(format!(
                    "{k} is a secret variable of '{}'; remove it first with --unset-secret-env",
                    s.name
                )));
            }
            env.insert(k.clone(), v.clone());
        }
        for (k, v) in &edit.set_secret_env {
            check_env_name(k)?;
            if env.contains_key(k) {
                return Err(Error::invalid(format!(
                    "{k} is a plain variable of '{}'; remove it first with --unset-env",
                    s.name
                )));
            }
            if v.expose().trim().is_empty() {
                return Err(Error::invalid(format!(
                    "the value of {k} is empty; nothing was stored"
                )));
            }
            if !secret_names.contains(k) {
                secret_names.push(k.clone());
            }
        }
        // Secrets first (a replaced value is overwritten in place).
        for (k, v) in &edit.set_secret_env {
            self.keychain_set(env_ref(s.id.as_str(), k), v)?;
        }
        if let Some(v) = &edit.http_secret {
            if v.expose().trim().is_empty() {
                return Err(Error::invalid(
                    "the credential is empty; nothing was stored",
                ));
            }
            self.keychain_set(SecretRef::connection(s.id.as_str()), v)?;
        }
        let id = s.id.to_string();
        self.write(|tx, now| {
            if let Some((c, a)) = &edit.command {
                tx.execute(
                    "UPDATE mcp_servers SET command = ?2, args = ?3 WHERE connection_id = ?1",
                    params![id, c, serde_json::to_string(a).unwrap_or_default()],
                )?;
            }
            if let Some(u) = &url {
                tx.execute(
                    "UPDATE mcp_servers SET url = ?2 WHERE connection_id = ?1",
                    params![id, u],
                )?;
            }
            tx.execute(
                "UPDATE mcp_servers SET env = ?2, secret_env = ?3 WHERE connection_id = ?1",
                params![
                    id,
                    serde_json::to_string(&env).unwrap_or_default(),
                    serde_json::to_string(&secret_names).unwrap_or_default()
                ],
            )?;
            if let Some(t) = timeout {
                tx.execute(
                    "UPDATE mcp_servers SET call_timeout_secs = ?2 WHERE connection_id = ?1",
                    params![id, t],
                )?;
            }
            if let Some(a) = edit.audit_arguments {
                tx.execute(
                    "UPDATE mcp_servers SET audit_arguments = ?2 WHERE connection_id = ?1",
                    params![id, a],
                )?;
            }
            if let Some(a) = &edit.auth {
                let c = connection_tx(tx, &id)?;
                let cfg = crate::broker::config::load(tx, &c)?;
                crate::broker::config::write_settings(
                    tx,
                    &id,
                    a,
                    None,
                    cfg.rate_per_minute,
                    cfg.daily_budget,
                )?;
            }
            let has_secret = is_stdio || edit.http_secret.is_some() || s.has_secret;
            tx.execute(
                "UPDATE connections SET has_secret = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, has_secret, ts(now)],
            )?;
            audit::append(
                tx,
                now,
                NewEvent::new(&actor, "mcp.server_edited", Decision::Allow)
                    .target(Target::new("connection", &id, s.name.as_str()))
                    .details(json!({
                        "command": edit.command.as_ref().map(|(c, _)| c),
                        "args": edit.command.as_ref().map(|(_, a)| a),
                        "url": url,
                        "env_set": edit.set_env.iter().map(|(k, _)| k).collect::<Vec<_>>(),
                        "env_unset": edit.unset_env,
                        "secret_env_set": edit.set_secret_env.iter().map(|(k, _)| k).collect::<Vec<_>>(),
                        "secret_env_unset": edit.unset_secret_env,
                        "credential_replaced": edit.http_secret.is_some(),
                        "auth": edit.auth.as_ref().map(|a| a.to_string()),
                        "call_timeout_secs": timeout,
                        "audit_arguments": edit.audit_arguments,
                    })),
            )?;
            Ok(())
        })?;
        for k in &edit.unset_secret_env {
            if let Err(e) = self.keychain_delete(env_ref(s.id.as_str(), k)) {
                tracing::warn!(server = %s.name, error = %e, "a removed MCP secret could not be deleted from the keychain");
            }
        }
        self.get_mcp_server(s.name.as_str())
    }

    /// Remove an MCP server, every scope granted on it and its secrets.
    pub fn remove_mcp_server(&self, name: &str) -> Result<Vec<String>> {
        let s = self.get_mcp_server(name)?;
        let affected = self.remove_connection(s.id.as_str())?;
        Ok(affected.iter().map(|a| a.to_string()).collect())
    }

    /// Delete the keychain entries of a removed server's secret variables (called by
    /// `remove_connection` after its rows are gone).
    pub(crate) fn forget_mcp_secrets(&self, connection_id: &str, names: &[String]) {
        for k in names {
            if let Err(e) = self.keychain_delete(env_ref(connection_id, k)) {
                tracing::warn!(error = %e, "an MCP secret could not be deleted from the keychain");
            }
        }
    }

    /// Replace what a server offers with what it just listed. New tools become actions (so
    /// they can be granted); tools it no longer lists are removed unless an agent holds them
    /// (then they stay, and are reported). Names that cannot be granted are skipped.
    pub fn set_mcp_tools(&self, name: &str, offered: &[OfferedTool]) -> Result<ToolsUpdate> {
        let actor = self.actor()?;
        let s = self.get_mcp_server(name)?;
        let mut update = ToolsUpdate::default();
        let mut wanted: BTreeMap<String, &OfferedTool> = BTreeMap::new();
        for t in offered {
            let action = t.action();
            if !is_action_name(&action) {
                update.skipped.push(t.name.escape_default().to_string());
                continue;
            }
            wanted.entry(action).or_insert(t);
        }
        let id = s.id.to_string();
        self.write(|tx, now| {
            // The action part of each scope granted on this server (`SERVER:tool`).
            let held: BTreeSet<String> = tx
                .query_map(
                    "SELECT DISTINCT scope FROM agent_scopes WHERE connection_id = ?1",
                    params![&id],
                    |r| r.get::<String>(0),
                )?
                .into_iter()
                .filter_map(|s| s.split_once(':').map(|(_, a)| a.to_string()))
                .collect();
            for old in &s.tools {
                if !wanted.contains_key(&old.action) {
                    if held.contains(&old.action) {
                        update.kept_while_granted.push(old.action.clone());
                    } else {
                        tx.execute(
                            "DELETE FROM connection_actions WHERE connection_id = ?1 AND name = ?2",
                            params![id, old.action],
                        )?;
                        update.removed.push(old.action.clone());
                    }
                }
            }
            for (action, t) in &wanted {
                let path = match t.kind.as_str() {
                    "prompt" => "prompts/get",
                    "resources" => "resources/read",
                    _ => "tools/call",
                };
                let inserted = tx.execute(
                    "INSERT INTO connection_actions (connection_id, name, method, path_pattern)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT DO NOTHING",
                    params![id, action, ACTION_METHOD, path],
                )?;
                if inserted == 1 {
                    update.added.push(action.clone());
                }
                let clip = |s: &Option<String>, n: usize| {
                    s.as_ref().map(|v| v.chars().take(n).collect::<String>())
                };
                tx.execute(
                    "INSERT INTO mcp_tools (connection_id, action, kind, title, description,
                         read_only, destructive, idempotent, open_world)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (connection_id, action) DO UPDATE SET kind = ?3, title = ?4,
                         description = ?5, read_only = ?6, destructive = ?7, idempotent = ?8,
                         open_world = ?9",
                    params![
                        id,
                        action,
                        t.kind,
                        clip(&t.title, 200),
                        clip(&t.description, 2000),
                        t.read_only,
                        t.destructive,
                        t.idempotent,
                        t.open_world
                    ],
                )?;
            }
            tx.execute(
                "UPDATE mcp_servers SET tools_read_at = ?2 WHERE connection_id = ?1",
                params![id, ts(now)],
            )?;
            tx.execute(
                "UPDATE connections SET updated_at = ?2 WHERE id = ?1",
                params![id, ts(now)],
            )?;
            audit::append(
                tx,
                now,
                NewEvent::new(&actor, "mcp.tools_read", Decision::Allow)
                    .target(Target::new("connection", &id, s.name.as_str()))
                    .details(json!({
                        "offered": wanted.len(),
                        "added": update.added,
                        "removed": update.removed,
                        "kept_while_granted": update.kept_while_granted,
                        "skipped": update.skipped,
                    })),
            )?;
            Ok(())
        })?;
        Ok(update)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
mod tests {
    use super::*;
    use crate::registry::{KeyChoice, NewAgent};
    use crate::store::testing::each_store;

    fn stdio(name: &str) -> NewMcpServer {
        NewMcpServer {
            name: name.into(),
            transport: McpTransport::Stdio {
                command: "npx".into(),
                args: vec!["-y".into(), "@modelcontextprotocol/server-github".into()],
            },
            env: vec![("GITHUB_HOST".into(), "github.com".into())],
            secret_env: vec![(
                "GITHUB_PERSONAL_ACCESS_TOKEN".into(),
                Sensitive::new("ghp_abcdefghijklmnopqrstuvwxyz0123456789".into()),
            )],
            http_secret: None,
            auth: None,
            trust_floor: None,
            call_timeout_secs: None,
            audit_arguments: false,
        }
    }

    fn tool(name: &str, read_only: bool) -> OfferedTool {
        OfferedTool {
            name: name.into(),
            kind: "tool".into(),
            read_only: Some(read_only),
            ..Default::default()
        }
    }

    #[test]
    fn a_server_keeps_its_secret_in_the_keychain_only() {
        each_store(|st| {
            let m = st.open();
            let s = m.add_mcp_server(stdio("github-mcp")).unwrap();
            assert_eq!(s.secret_env, ["GITHUB_PERSONAL_ACCESS_TOKEN"]);
            assert!(s.has_secret);
            let env = m.mcp_server_env("github-mcp").unwrap();
            let tok = env
                .iter()
                .find(|(k, _)| k == "GITHUB_PERSONAL_ACCESS_TOKEN")
                .unwrap();
            assert!(tok.1.expose().starts_with("ghp_"));
            // Nowhere in the database file.
            drop(m);
            assert!(!st.holds("ghp_abcdef"), "the token reached the database");
        });
    }

    #[test]
    fn an_argument_that_looks_like_a_credential_is_refused_before_anything_is_written() {
        each_store(|s| {
            let m = s.open();
            let mut n = stdio("leaky");
            n.transport = McpTransport::Stdio {
                command: "server".into(),
                args: vec![
                    "--token".into(),
                    "ghp_abcdefghijklmnopqrstuvwxyz0123456789".into(),
                ],
            };
            let e = m.add_mcp_server(n).unwrap_err().to_string();
            assert!(
                e.contains("argument 2") && e.contains("--secret-env"),
                "{e}"
            );
            assert!(m.list_mcp_servers().unwrap().is_empty());
            assert!(
                !e.contains("ghp_abcdefghij"),
                "the error echoed the secret: {e}"
            );
        });
    }

    #[test]
    fn tools_become_grantable_actions_and_granted_ones_survive_a_refresh() {
        each_store(|s| {
            let m = s.open();
            m.add_mcp_server(stdio("github-mcp")).unwrap();
            let u = m
                .set_mcp_tools(
                    "github-mcp",
                    &[
                        tool("create_issue", false),
                        tool("get_file_contents", true),
                        tool("naïve", true),
                    ],
                )
                .unwrap();
            assert_eq!(u.added, ["create_issue", "get_file_contents"]);
            assert_eq!(u.skipped.len(), 1);
            m.add_member("ann", None).unwrap();
            m.add_agent(NewAgent {
                name: "coder".into(),
                purpose: "writes code".into(),
                owner: "ann".into(),
                parent: None,
                scopes: vec!["github-mcp:get_file_contents".into()],
                key: KeyChoice::None,
            })
            .unwrap();
            // A case variant is another name, which the server does not offer.
            let e = m
                .edit_agent(
                    "coder",
                    crate::AgentEdit {
                        add_scopes: vec!["github-mcp:Create_Issue".into()],
                        ..Default::default()
                    },
                )
                .unwrap_err();
            assert!(e.to_string().contains("offers no action"), "{e}");
            let s = m.get_mcp_server("github-mcp").unwrap();
            assert_eq!(s.tools[0].action, "get_file_contents", "read-only first");
            // The server stops listing both tools: the granted one stays.
            let u = m.set_mcp_tools("github-mcp", &[]).unwrap();
            assert_eq!(u.removed, ["create_issue"]);
            assert_eq!(u.kept_while_granted, ["get_file_contents"]);
        });
    }

    #[test]
    fn removing_a_server_forgets_its_secrets() {
        each_store(|s| {
            let kc = std::sync::Arc::new(crate::secret::MemoryKeychain::new());
            let m = Mandate::open(s.options(kc.clone(), crate::audit::Actor::app("test", "t")))
                .unwrap();
            m.add_mcp_server(stdio("github-mcp")).unwrap();
            assert!(kc.accounts().iter().any(|a| a.contains("mcp-env/")));
            m.remove_mcp_server("github-mcp").unwrap();
            assert!(
                !kc.accounts().iter().any(|a| a.contains("mcp-env/")),
                "{:?}",
                kc.accounts()
            );
            assert!(m.get_mcp_server("github-mcp").is_err());
        });
    }
}
