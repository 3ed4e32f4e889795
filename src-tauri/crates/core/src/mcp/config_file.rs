//! MCP client config files (`.mcp.json`, `claude_desktop_config.json`, `.cursor/mcp.json`,
//! `.vscode/mcp.json`): finding them, reading the servers they start with inline secrets, and
//! importing those servers into Mandate.
//!
//! An import registers each chosen server (its secret variables into the keychain), then
//! rewrites only that server's entry to `"command": "mandate", "args": ["mcp", "run",
//! "--agent", AGENT, SERVER]`. The file is edited as a concrete syntax tree (jsonc-parser,
//! dprint's), so comments, key order, other servers and formatting stay as they were. The
//! original text is kept as the import's backup in the OS keychain (it holds the secrets, so it
//! belongs there, not in a `.bak` file beside the config), and `undo_mcp_import` puts it back
//! if the file is still exactly what the import wrote. The new file is written beside the old
//! one, synced and renamed over it, keeping its permissions.
//!
//! What it is not: a general JSON editor, or an importer of remote (`url`) servers: those are
//! listed, and left alone.

use std::path::{Path, PathBuf};

use crate::store::params;
use jsonc_parser::ParseOptions;
use jsonc_parser::cst::{CstInputValue, CstRootNode};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::Digest as _;

use super::{McpTransport, NewMcpServer};
use crate::Mandate;
use crate::audit::{self, Decision, NewEvent, Target};
use crate::error::{Error, Result};
use crate::model::ConnectionName;
use crate::secret::{SecretRef, Sensitive};

/// Which client a config file belongs to (they differ in the key holding the servers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum ConfigFlavor {
    /// `.mcp.json` (project) and `~/.claude.json` (user): `mcpServers`.
    ClaudeCode,
    /// `claude_desktop_config.json`: `mcpServers`.
    ClaudeDesktop,
    /// `.cursor/mcp.json`: `mcpServers`.
    Cursor,
    /// `.vscode/mcp.json` and VS Code's user `mcp.json`: `servers` (JSON with comments).
    VsCode,
}

impl ConfigFlavor {
    fn servers_key(self) -> &'static str {
        match self {
            ConfigFlavor::VsCode => "servers",
            _ => "mcpServers",
        }
    }

    /// The flavor of a file by its name and folder.
    pub fn of(path: &Path) -> ConfigFlavor {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let parent = path
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .unwrap_or("");
        match (name, parent) {
            ("claude_desktop_config.json", _) => ConfigFlavor::ClaudeDesktop,
            ("mcp.json", ".cursor") => ConfigFlavor::Cursor,
            ("mcp.json", ".vscode" | "User") => ConfigFlavor::VsCode,
            _ => ConfigFlavor::ClaudeCode,
        }
    }
}

/// Where MCP clients keep their configs: in the project folder `project`, and the user-level
/// ones under `home` (Claude Code, Claude Desktop, Cursor, VS Code, on Linux, macOS and
/// Windows conventions). Only those that exist are returned.
pub fn config_locations(project: Option<&Path>, home: Option<&Path>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = project {
        for rel in [
            ".mcp.json",
            "claude_desktop_config.json",
            ".cursor/mcp.json",
            ".vscode/mcp.json",
        ] {
            out.push(p.join(rel));
        }
    }
    if let Some(h) = home {
        for rel in [
            ".claude.json",
            ".config/Claude/claude_desktop_config.json",
            "Library/Application Support/Claude/claude_desktop_config.json",
            "AppData/Roaming/Claude/claude_desktop_config.json",
            ".cursor/mcp.json",
            ".config/Code/User/mcp.json",
            "Library/Application Support/Code/User/mcp.json",
            "AppData/Roaming/Code/User/mcp.json",
        ] {
            out.push(h.join(rel));
        }
    }
    out.retain(|p| p.is_file());
    out.dedup();
    out
}

/// One environment variable of an entry: its name, and whether its value is an inline secret
/// (masked; the value itself never leaves this module).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ConfigEnv {
    pub name: String,
    pub secret: bool,
    /// The value, masked when secret; as written otherwise.
    pub shown: String,
    /// What the secret looks like (`GitHub personal access token`), when known.
    pub kind: Option<String>,
}

/// A server entry of a config file.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ConfigEntry {
    /// The entry's key in the file.
    pub key: String,
    /// A valid Mandate server name derived from the key.
    pub suggested_name: String,
    pub command: Option<String>,
    pub args: Vec<String>,
    pub url: Option<String>,
    pub env: Vec<ConfigEnv>,
    /// Already goes through `mandate mcp run`.
    pub bridged: bool,
    /// Why it cannot be imported, if it cannot.
    pub blocked: Option<String>,
}

impl ConfigEntry {
    /// Whether it holds a secret in plain text.
    pub fn has_inline_secret(&self) -> bool {
        self.env.iter().any(|e| e.secret)
    }
}

/// A config file and its server entries.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ConfigFile {
    pub path: String,
    pub flavor: ConfigFlavor,
    pub entries: Vec<ConfigEntry>,
}

/// Which entries to import, under which server names, for which agent.
#[derive(Debug, Clone)]
pub struct ImportPlan {
    pub path: PathBuf,
    pub agent: String,
    /// `(entry key, server name)`.
    pub servers: Vec<(String, String)>,
}

/// What an import did.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ImportedServer {
    pub key: String,
    pub server: String,
    /// Secret variables moved to the keychain (names only).
    pub secrets_moved: Vec<String>,
}

/// The record of an import, for undoing it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct RewriteBackup {
    pub id: String,
    pub path: String,
    pub agent: String,
    pub servers: Vec<ImportedServer>,
    pub created_at: String,
    pub undone_at: Option<String>,
}

fn sha256_hex(b: &[u8]) -> String {
    crate::audit::hex(&sha2::Sha256::digest(b))
}

/// Whether an environment value is an inline secret: a credential of a known shape, or a
/// literal value under a name that says it is one (`..._TOKEN`, `..._KEY`, `PASSWORD`...).
/// References (`${input:x}`, `${env:X}`, `$X`) are not.
fn classify_env(name: &str, value: &str) -> (bool, Option<String>) {
    if let Some(f) = crate::scan::scan_text("", value).first() {
        return (true, Some(crate::scan::label_of(&f.kind).to_string()));
    }
    let v = value.trim();
    if v.is_empty() || v.starts_with("${") || (v.starts_with('$') && !v.contains(' ')) {
        return (false, None);
    }
    let n = name.to_ascii_uppercase();
    let secretish = [
        "TOKEN",
        "SECRET",
        "KEY",
        "PASSWORD",
        "PASSWD",
        "CREDENTIAL",
        "PAT",
        "AUTH",
    ]
    .iter()
    .any(|w| n.split('_').any(|part| part == *w) || n.ends_with(w));
    (secretish && v.len() >= 8, None)
}

fn mask(v: &str) -> String {
    let keep: String = v.chars().take(4).collect();
    format!(
        "{keep}{}",
        "*".repeat(v.chars().count().saturating_sub(4).min(24))
    )
}

fn suggested_name(key: &str) -> String {
    let mut s: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    let s = s.trim_matches('-').to_string();
    let s = if s.starts_with(|c: char| c.is_ascii_lowercase()) {
        s
    } else {
        format!("mcp-{s}")
    };
    let s: String = s.chars().take(63).collect();
    let s = s.trim_end_matches('-').to_string();
    if s.len() < 2 { "mcp-server".into() } else { s }
}

fn parse_text(path: &Path, text: &str) -> Result<Value> {
    jsonc_parser::parse_to_serde_value::<Value>(text, &ParseOptions::default()).map_err(|e| {
        Error::invalid(format!(
            "{} is not valid JSON ({e}); fix it in its client, then try again",
            path.display()
        ))
    })
}

fn read_text(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| Error::Io {
        action: "could not read",
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if meta.len() > crate::scan::MAX_FILE_BYTES {
        return Err(Error::invalid(format!(
            "{} is larger than 1 MiB; that is not an MCP config",
            path.display()
        )));
    }
    std::fs::read_to_string(path).map_err(|e| Error::Io {
        action: "could not read",
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn entries_of(root: &Value, flavor: ConfigFlavor) -> Vec<ConfigEntry> {
    let Some(servers) = root.get(flavor.servers_key()).and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, v) in servers {
        let strs = |k: &str| -> Vec<String> {
            v.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let command = v.get("command").and_then(Value::as_str).map(String::from);
        let url = v
            .get("url")
            .or_else(|| v.get("serverUrl"))
            .and_then(Value::as_str)
            .map(String::from);
        let args = strs("args");
        let mut env = Vec::new();
        if let Some(e) = v.get("env").and_then(Value::as_object) {
            for (name, val) in e {
                let val = val
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(|| val.to_string());
                let (secret, kind) = classify_env(name, &val);
                env.push(ConfigEnv {
                    name: name.clone(),
                    secret,
                    shown: if secret { mask(&val) } else { val.clone() },
                    kind,
                });
            }
        }
        let bridged = command.as_deref() == Some("mandate")
            && args.first().map(String::as_str) == Some("mcp");
        let blocked = if command.is_none() {
            Some("a remote (url) server: Mandate's bridge starts local servers only, so it is left as it is".into())
        } else if args
            .iter()
            .any(|a| !crate::scan::scan_text("", a).is_empty())
        {
            Some("an argument holds a credential: move it into an environment variable of the server first".into())
        } else {
            None
        };
        out.push(ConfigEntry {
            key: key.clone(),
            suggested_name: suggested_name(key),
            command,
            args,
            url,
            env,
            bridged,
            blocked,
        });
    }
    out
}

/// Read a config file's server entries (secrets masked).
pub fn read_config(path: &Path) -> Result<ConfigFile> {
    let text = read_text(path)?;
    let flavor = ConfigFlavor::of(path);
    let root = parse_text(path, &text)?;
    Ok(ConfigFile {
        path: path.display().to_string(),
        flavor,
        entries: entries_of(&root, flavor),
    })
}

/// Write `text` to `path` atomically, keeping its permissions.
fn replace_file(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let io = |e: std::io::Error| Error::Io {
        action: "could not rewrite",
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let perms = std::fs::metadata(path).map_err(io)?.permissions();
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    tmp.write_all(text.as_bytes()).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    std::fs::set_permissions(tmp.path(), perms).map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

fn import_ref(id: &str) -> SecretRef {
    SecretRef {
        account: format!("mcp-import/{id}"),
    }
}

impl Mandate {
    /// Import the chosen entries of a config file for `agent`: register each server (secrets
    /// into the keychain), rewrite its entry to `mandate mcp run`, keep the original as the
    /// import's backup in the keychain. Checked before anything is written: the agent exists,
    /// every entry exists and can be imported, every name is free. If a later step fails, the
    /// servers registered so far are removed again and the file is left as it was.
    pub fn import_mcp_config(&self, plan: &ImportPlan) -> Result<RewriteBackup> {
        let actor = self.actor()?;
        let agent = self.get_agent(&plan.agent)?;
        let path = std::fs::canonicalize(&plan.path).map_err(|e| Error::Io {
            action: "could not open",
            path: plan.path.clone(),
            reason: e.to_string(),
        })?;
        let text = read_text(&path)?;
        let flavor = ConfigFlavor::of(&path);
        let root_value = parse_text(&path, &text)?;
        let entries = entries_of(&root_value, flavor);
        if plan.servers.is_empty() {
            return Err(Error::invalid("choose at least one server to import"));
        }
        let mut chosen = Vec::new();
        for (key, name) in &plan.servers {
            let e = entries.iter().find(|e| &e.key == key).ok_or_else(|| {
                Error::not_found_hint(
                    "server entry",
                    key.clone(),
                    format!(
                        "{} lists: {}",
                        path.display(),
                        entries
                            .iter()
                            .map(|e| e.key.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?;
            if let Some(why) = &e.blocked {
                return Err(Error::invalid(format!("'{key}' cannot be imported: {why}")));
            }
            if e.bridged {
                return Err(Error::Conflict(format!(
                    "'{key}' already goes through `mandate mcp run`"
                )));
            }
            let name = ConnectionName::parse(name)?;
            if self.get_connection(name.as_str()).is_ok() {
                return Err(Error::AlreadyExists {
                    kind: "connection",
                    name: name.to_string(),
                });
            }
            chosen.push((e.clone(), name));
        }
        // The new text, before anything is registered.
        let root = CstRootNode::parse(&text, &ParseOptions::default()).map_err(|e| {
            Error::invalid(format!(
                "{} could not be parsed for editing ({e})",
                path.display()
            ))
        })?;
        let servers_obj = root
            .object_value()
            .and_then(|o| o.object_value(flavor.servers_key()))
            .ok_or_else(|| Error::invalid(format!("{} has no servers object", path.display())))?;
        for (e, name) in &chosen {
            let prop = servers_obj.get(&e.key).ok_or_else(|| {
                Error::invalid(format!("the entry '{}' disappeared while reading", e.key))
            })?;
            let mut fields: Vec<(String, CstInputValue)> = Vec::new();
            if let Some(t) = root_value[flavor.servers_key()][&e.key]
                .get("type")
                .and_then(Value::as_str)
            {
                fields.push(("type".into(), CstInputValue::String(t.to_string())));
            }
            fields.push(("command".into(), CstInputValue::String("mandate".into())));
            fields.push((
                "args".into(),
                CstInputValue::Array(
                    ["mcp", "run", "--agent", agent.name.as_str(), name.as_str()]
                        .iter()
                        .map(|s| CstInputValue::String((*s).to_string()))
                        .collect(),
                ),
            ));
            prop.set_value(CstInputValue::Object(fields));
        }
        let new_text = root.to_string();
        drop(root);
        // Register the servers (secrets into the keychain).
        let mut done: Vec<ImportedServer> = Vec::new();
        let undo = |done: &[ImportedServer]| {
            for d in done {
                let _ = self.remove_mcp_server(&d.server);
            }
        };
        for (e, name) in &chosen {
            let raw = &root_value[flavor.servers_key()][&e.key];
            let mut env = Vec::new();
            let mut secret_env = Vec::new();
            if let Some(obj) = raw.get("env").and_then(Value::as_object) {
                for (k, v) in obj {
                    let v = v
                        .as_str()
                        .map(String::from)
                        .unwrap_or_else(|| v.to_string());
                    if classify_env(k, &v).0 {
                        secret_env.push((k.clone(), Sensitive::new(v)));
                    } else {
                        env.push((k.clone(), v));
                    }
                }
            }
            let moved: Vec<String> = secret_env.iter().map(|(k, _)| k.clone()).collect();
            let r = self.add_mcp_server(NewMcpServer {
                name: name.to_string(),
                transport: McpTransport::Stdio {
                    command: e.command.clone().unwrap_or_default(),
                    args: e.args.clone(),
                },
                env,
                secret_env,
                http_secret: None,
                auth: None,
                trust_floor: None,
                call_timeout_secs: None,
                audit_arguments: false,
            });
            if let Err(err) = r {
                undo(&done);
                return Err(err);
            }
            done.push(ImportedServer {
                key: e.key.clone(),
                server: name.to_string(),
                secrets_moved: moved,
            });
        }
        // The backup (the original text, secrets and all) goes to the keychain.
        let id = uuid::Uuid::now_v7().to_string();
        if let Err(err) = self.keychain_set(import_ref(&id), &Sensitive::new(text.clone())) {
            undo(&done);
            return Err(err);
        }
        // The file must still be what was read; then it is replaced.
        let still = read_text(&path).map(|t| t == text).unwrap_or(false);
        if !still {
            undo(&done);
            let _ = self.keychain_delete(import_ref(&id));
            return Err(Error::Conflict(format!(
                "{} changed while it was being imported; nothing was changed, try again",
                path.display()
            )));
        }
        if let Err(err) = replace_file(&path, &new_text) {
            undo(&done);
            let _ = self.keychain_delete(import_ref(&id));
            return Err(err);
        }
        let path_s = path.display().to_string();
        let rewritten = sha256_hex(new_text.as_bytes());
        let servers_json = serde_json::to_string(&done).unwrap_or_default();
        let res = self.write(|tx, now| {
            tx.execute(
                "INSERT INTO mcp_imports (id, path, agent_id, servers, rewritten_sha256, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, path_s, agent.id.as_str(), servers_json, rewritten, audit::format_time(now)],
            )?;
            audit::append(
                tx,
                now,
                NewEvent::new(&actor, "mcp.config_imported", Decision::Allow)
                    .agent(agent.id.as_str())
                    .target(Target::new("agent", agent.id.as_str(), agent.name.as_str()))
                    .details(json!({
                        "import": id,
                        "path": path_s,
                        "flavor": flavor,
                        "servers": done,
                        "backup": "os-keychain",
                    })),
            )?;
            Ok(())
        });
        if let Err(err) = res {
            // Put the file back as it was, and forget what was registered.
            let _ = replace_file(&path, &text);
            undo(&done);
            let _ = self.keychain_delete(import_ref(&id));
            return Err(err);
        }
        self.mcp_import(&id)
    }

    /// One import by id.
    pub fn mcp_import(&self, id: &str) -> Result<RewriteBackup> {
        self.mcp_imports()?
            .into_iter()
            .find(|i| i.id == id)
            .ok_or_else(|| Error::not_found_hint("import", id, "`mandate mcp imports` lists them"))
    }

    /// Every import, newest first.
    pub fn mcp_imports(&self) -> Result<Vec<RewriteBackup>> {
        let mut guard = self.lock()?;
        let conn = guard.tx()?;
        let rows = conn.query_map(
            "SELECT i.id, i.path, a.name, i.servers, i.created_at, i.undone_at
             FROM mcp_imports i JOIN agents a ON a.id = i.agent_id ORDER BY i.created_at DESC",
            params![],
            |r| {
                Ok((
                    r.get::<String>(0)?,
                    r.get::<String>(1)?,
                    r.get::<String>(2)?,
                    r.get::<String>(3)?,
                    r.get::<String>(4)?,
                    r.get::<Option<String>>(5)?,
                ))
            },
        )?;
        let mut out = Vec::new();
        for (id, path, agent, servers, created_at, undone_at) in rows {
            let servers: Vec<Value> = serde_json::from_str(&servers).unwrap_or_default();
            out.push(RewriteBackup {
                id,
                path,
                agent,
                servers: servers
                    .iter()
                    .map(|s| ImportedServer {
                        key: s["key"].as_str().unwrap_or("").into(),
                        server: s["server"].as_str().unwrap_or("").into(),
                        secrets_moved: s["secrets_moved"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .filter_map(|x| x.as_str().map(String::from))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    })
                    .collect(),
                created_at,
                undone_at,
            });
        }
        Ok(out)
    }

    /// Put a config file back as it was before an import, if it is still exactly what the
    /// import wrote (a file changed since is refused, never overwritten). The servers stay
    /// registered; remove them with `remove_mcp_server` if they are no longer wanted.
    pub fn undo_mcp_import(&self, id: &str) -> Result<RewriteBackup> {
        let actor = self.actor()?;
        let imp = self.mcp_import(id)?;
        if imp.undone_at.is_some() {
            return Err(Error::Conflict(format!(
                "the import {id} was already undone"
            )));
        }
        let path = PathBuf::from(&imp.path);
        let expected: String = {
            let mut guard = self.lock()?;
            let conn = guard.tx()?;
            conn.query_opt(
                "SELECT rewritten_sha256 FROM mcp_imports WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )?
            .unwrap_or_default()
        };
        let now_text = read_text(&path)?;
        if sha256_hex(now_text.as_bytes()) != expected {
            return Err(Error::Conflict(format!(
                "{} was changed after the import, so Mandate will not overwrite it; the original \
                 is still kept, edit the file by hand or undo those changes first",
                path.display()
            )));
        }
        let original = self.keychain_get(import_ref(id))?.ok_or_else(|| {
            Error::Conflict(format!(
                "the backup of import {id} is missing from the OS keychain; the file was left as it is"
            ))
        })?;
        replace_file(&path, original.expose())?;
        let res = self.write(|tx, now| {
            tx.execute(
                "UPDATE mcp_imports SET undone_at = ?2 WHERE id = ?1",
                params![id, audit::format_time(now)],
            )?;
            audit::append(
                tx,
                now,
                NewEvent::new(&actor, "mcp.config_import_undone", Decision::Allow)
                    .target(Target::new("import", id, &imp.path))
                    .details(json!({"import": id, "path": imp.path, "servers_kept": imp.servers})),
            )?;
            Ok(())
        });
        if let Err(e) = res {
            let _ = replace_file(&path, &now_text);
            return Err(e);
        }
        let _ = self.keychain_delete(import_ref(id));
        self.mcp_import(id)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
mod tests {
    use super::*;
    use crate::registry::{KeyChoice, NewAgent};
    use crate::store::testing::each_store;

    const TOKEN: &str = "ghp_Z7cQ2mN8vR4tY6uI0oP3aS5dF7gH9jK1lL2x";

    fn config(dir: &Path) -> PathBuf {
        let p = dir.join(".mcp.json");
        std::fs::write(
            &p,
            format!(
                r#"{{
  // my servers
  "mcpServers": {{
    "github": {{
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-github"],
      "env": {{ "GITHUB_PERSONAL_ACCESS_TOKEN": "{TOKEN}", "GITHUB_HOST": "github.com" }}
    }},
    "remote": {{ "type": "http", "url": "https://example.com/mcp" }}
  }},
  "other": [1, 2, 3]
}}
"#
            ),
        )
        .unwrap();
        p
    }

    #[test]
    fn import_moves_the_secret_rewrites_one_entry_and_undo_restores_the_file() {
        each_store(|s| {
            let dir = tempfile::tempdir().unwrap();
            let m = s.open();
            m.add_member("ann", None).unwrap();
            m.add_agent(NewAgent {
                name: "coder".into(),
                purpose: "writes code".into(),
                owner: "ann".into(),
                parent: None,
                scopes: vec![],
                key: KeyChoice::None,
            })
            .unwrap();
            let p = config(dir.path());
            let original = std::fs::read_to_string(&p).unwrap();
            let found = read_config(&p).unwrap();
            let gh = found.entries.iter().find(|e| e.key == "github").unwrap();
            assert!(gh.has_inline_secret());
            assert!(
                !format!("{found:?}").contains(TOKEN),
                "a finding leaked the value"
            );
            assert!(
                found
                    .entries
                    .iter()
                    .find(|e| e.key == "remote")
                    .unwrap()
                    .blocked
                    .is_some()
            );

            let imp = m
                .import_mcp_config(&ImportPlan {
                    path: p.clone(),
                    agent: "coder".into(),
                    servers: vec![("github".into(), "github-mcp".into())],
                })
                .unwrap();
            assert_eq!(
                imp.servers[0].secrets_moved,
                ["GITHUB_PERSONAL_ACCESS_TOKEN"]
            );
            let now = std::fs::read_to_string(&p).unwrap();
            assert!(!now.contains("ghp_"), "{now}");
            assert!(now.contains("// my servers"), "comments kept: {now}");
            assert!(now.contains(r#""other": [1, 2, 3]"#), "{now}");
            assert!(now.contains(r#""url": "https://example.com/mcp""#), "{now}");
            let v: Value =
                jsonc_parser::parse_to_serde_value(&now, &ParseOptions::default()).unwrap();
            assert_eq!(v["mcpServers"]["github"]["command"], "mandate");
            assert_eq!(
                v["mcpServers"]["github"]["args"],
                json!(["mcp", "run", "--agent", "coder", "github-mcp"])
            );
            let s = m.get_mcp_server("github-mcp").unwrap();
            assert_eq!(
                s.env.get("GITHUB_HOST").map(String::as_str),
                Some("github.com")
            );
            let env = m.mcp_server_env("github-mcp").unwrap();
            assert!(
                env.iter()
                    .any(|(k, v)| k == "GITHUB_PERSONAL_ACCESS_TOKEN" && v.expose() == TOKEN)
            );

            m.undo_mcp_import(&imp.id).unwrap();
            assert_eq!(std::fs::read_to_string(&p).unwrap(), original);
            assert!(m.undo_mcp_import(&imp.id).is_err(), "only once");
        });
    }

    #[test]
    fn undo_refuses_to_overwrite_a_file_changed_since() {
        each_store(|s| {
            let dir = tempfile::tempdir().unwrap();
            let m = s.open();
            m.add_member("ann", None).unwrap();
            m.add_agent(NewAgent {
                name: "coder".into(),
                purpose: "writes code".into(),
                owner: "ann".into(),
                parent: None,
                scopes: vec![],
                key: KeyChoice::None,
            })
            .unwrap();
            let p = config(dir.path());
            let imp = m
                .import_mcp_config(&ImportPlan {
                    path: p.clone(),
                    agent: "coder".into(),
                    servers: vec![("github".into(), "github-mcp".into())],
                })
                .unwrap();
            std::fs::write(&p, "{\"mcpServers\": {}}\n").unwrap();
            let e = m.undo_mcp_import(&imp.id).unwrap_err();
            assert!(e.to_string().contains("changed after the import"), "{e}");
            assert_eq!(
                std::fs::read_to_string(&p).unwrap(),
                "{\"mcpServers\": {}}\n"
            );
            // A name already taken is refused before anything is written.
            let p2 = config(&dir.path().join("x").tap_mkdir());
            let before = std::fs::read_to_string(&p2).unwrap();
            let e = m
                .import_mcp_config(&ImportPlan {
                    path: p2.clone(),
                    agent: "coder".into(),
                    servers: vec![("github".into(), "github-mcp".into())],
                })
                .unwrap_err();
            assert!(e.to_string().contains("already exists"), "{e}");
            assert_eq!(std::fs::read_to_string(&p2).unwrap(), before);
        });
    }

    trait TapMkdir {
        fn tap_mkdir(self) -> Self;
    }
    impl TapMkdir for PathBuf {
        fn tap_mkdir(self) -> Self {
            std::fs::create_dir_all(&self).unwrap();
            self
        }
    }
}
