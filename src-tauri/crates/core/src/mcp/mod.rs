//! MCP servers as connections (issue 18): the registry half of the MCP gateway.
//!
//! An MCP server is a connection whose actions are its tools, so a scope is `SERVER:tool`
//! (`github-mcp:create_issue`) and everything the registry and the secret broker already do
//! for connections applies: explicit grants, trust floors, per-action costs and essential
//! actions, rate limits and daily budgets, and the audit trail. Besides tools, a server's
//! prompts are actions `prompts/NAME`, and reading its resources is the one action
//! `resources/read` (resource URIs are data, not a stable list to grant from).
//!
//! - `registry`: adding, editing and removing servers; their secrets in the keychain; the
//!   tool list read from the server itself, with its annotations.
//! - `config_file`: MCP client config files (`.mcp.json`, `claude_desktop_config.json`,
//!   Cursor, VS Code): finding them, reading inline secrets, importing with a backup and undo.
//! - `decide`: the decision for one message an agent sends through the gateway (still active,
//!   scope held, trust floor, rate limit, budget) and its audit events.
//!
//! Tool names are compared byte for byte. A scope's action must be plain ASCII
//! ([`is_action_name`]), so a name that differs from a granted one by case or by a Unicode
//! lookalike is a different name, and a tool whose name is not plain ASCII can never be
//! granted at all.
//!
//! What it is not: the protocol. Framing, relaying, filtering lists and starting servers are
//! the `mandate-mcp` crate's; this module holds the rules and the records.

mod config_file;
mod decide;
mod registry;

use std::collections::BTreeMap;

use serde::Serialize;

pub use config_file::{
    ConfigEntry, ConfigEnv, ConfigFile, ConfigFlavor, ImportPlan, ImportedServer, RewriteBackup,
    config_locations, read_config,
};
pub use decide::{McpCall, McpCallOutcome, McpDenial, McpPermit, McpSession, Need};
pub use registry::{McpServerEdit, NewMcpServer};

use crate::broker::CredentialPlacement;
use crate::model::{ConnectionId, ConnectionName, TrustState};

/// The MCP protocol revision the gateway is written against (the newest that rmcp 3.11 knows).
/// Older revisions relay unchanged: the gate looks only at method names and parameters that
/// every revision shares.
pub const PROTOCOL_REVISION: &str = "2026-07-28";

/// The action that covers reading a server's resources.
pub const RESOURCES_ACTION: &str = "resources/read";
/// The prefix of a prompt's action.
pub const PROMPT_PREFIX: &str = "prompts/";
/// The connection base URL of an MCP server: `mcp://NAME`. It is never an HTTP address, so
/// the HTTP broker has nothing to forward to.
pub const BASE_URL_SCHEME: &str = "mcp://";
/// The marker of MCP actions in `connection_actions.method`.
pub const ACTION_METHOD: &str = "MCP";

/// Whether `s` is a tool name the gateway can grant: 1 to 128 ASCII letters, digits, `_`,
/// `-` and `.` (the MCP spec's tool-name characters), or `prompts/` and such a name, or
/// `resources/read`. Case is kept and matters.
pub fn is_action_name(s: &str) -> bool {
    fn plain(n: &str) -> bool {
        !n.is_empty()
            && n.len() <= 128
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    }
    s == RESOURCES_ACTION
        || s.strip_prefix(PROMPT_PREFIX)
            .map_or_else(|| plain(s), plain)
}

/// The scope that lets an agent call `tool` on `server`.
pub fn tool_scope(server: &str, tool: &str) -> String {
    format!("{server}:{tool}")
}

/// The scope for a prompt.
pub fn prompt_scope(server: &str, prompt: &str) -> String {
    format!("{server}:{PROMPT_PREFIX}{prompt}")
}

/// The path under which the endpoint serves each MCP server over Streamable HTTP.
pub const GATEWAY_PREFIX: &str = "/mcp/";

/// The server name in a gateway resource URL (`http(s)://127.0.0.1:PORT/mcp/NAME`, also
/// `localhost` and `[::1]`), the RFC 8707 `resource` an HTTP MCP client asks a token for.
pub fn gateway_resource_name(resource: &str) -> Option<String> {
    let u = url::Url::parse(resource).ok()?;
    let loopback = matches!(
        u.host()?,
        url::Host::Domain("localhost") | url::Host::Ipv4(_) | url::Host::Ipv6(_)
    ) && match u.host()? {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(_) => true,
    };
    if !loopback || !matches!(u.scheme(), "http" | "https") || u.query().is_some() {
        return None;
    }
    let name = u.path().strip_prefix(GATEWAY_PREFIX)?.trim_end_matches('/');
    ConnectionName::parse(name).ok().map(|n| n.to_string())
}

/// The audience a token for the gateway's `/mcp/NAME` carries.
pub fn audience(server: &str) -> String {
    format!("{BASE_URL_SCHEME}{server}")
}

/// Whether a connection's base URL marks it as an MCP server.
pub fn is_mcp_base_url(base_url: &str) -> bool {
    base_url.starts_with(BASE_URL_SCHEME)
}

/// How Mandate reaches a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(tag = "transport", rename_all = "snake_case")]
pub enum McpTransport {
    /// A local program Mandate starts, speaking MCP on its standard input and output.
    Stdio { command: String, args: Vec<String> },
    /// A remote Streamable HTTP server; its credential goes in a header.
    Http { url: String },
}

/// What a server offers, as it described it (`tools/list`, `prompts/list`), with the
/// broker's policy for the action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct McpTool {
    /// The action: the tool's exact name, `prompts/NAME` or `resources/read`.
    pub action: String,
    /// `tool`, `prompt` or `resources`.
    pub kind: String,
    /// The scope that grants it: `SERVER:action`.
    pub scope: String,
    pub title: Option<String>,
    pub description: Option<String>,
    /// The server's hints (MCP tool annotations). Hints only: never used for a decision.
    pub read_only: Option<bool>,
    pub destructive: Option<bool>,
    pub idempotent: Option<bool>,
    pub open_world: Option<bool>,
    /// Budget units a call costs (1 unless set with `mandate connection edit --cost`).
    pub cost: u32,
    /// Still allowed after 90 % of the daily budget.
    pub essential: bool,
}

impl McpTool {
    /// Read-only tools first, then the rest, destructive last; by name within each group.
    pub fn order_key(&self) -> (u8, &str) {
        let rank = match (self.kind.as_str(), self.read_only, self.destructive) {
            ("tool", Some(true), _) => 0,
            ("tool", _, Some(false)) => 1,
            // The MCP default for a tool that is not read-only is "may be destructive".
            ("tool", _, _) => 2,
            ("prompt", _, _) => 3,
            _ => 4,
        };
        (rank, self.action.as_str())
    }

    /// Whether a person should be warned before granting it: the server says it may destroy
    /// (or says nothing, which the MCP spec reads as "may").
    pub fn is_destructive(&self) -> bool {
        self.kind == "tool" && self.read_only != Some(true) && self.destructive != Some(false)
    }
}

/// An MCP server as users see it: how it is reached, what it offers, never a secret value.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct McpServer {
    pub id: ConnectionId,
    pub name: ConnectionName,
    pub transport: McpTransport,
    /// Plain (non-secret) environment variables for a stdio server.
    pub env: BTreeMap<String, String>,
    /// Names of the environment variables whose values are in the OS keychain.
    pub secret_env: Vec<String>,
    /// Where a remote server's credential goes (`bearer`, `header:NAME`, `basic`).
    pub auth: Option<CredentialPlacement>,
    /// Whether every credential it needs is in the keychain.
    pub has_secret: bool,
    pub call_timeout_secs: u32,
    /// Whether tool-call events carry the arguments themselves (always their SHA-256).
    pub audit_arguments: bool,
    pub trust_floor: TrustState,
    /// Its tools, prompts and resources, read-only tools first.
    pub tools: Vec<McpTool>,
    /// When the tool list was last read from the server.
    pub tools_read_at: Option<String>,
    /// Agents holding at least one scope on it.
    pub granted_to: Vec<String>,
}

impl McpServer {
    /// The tool with exactly this action name.
    pub fn tool(&self, action: &str) -> Option<&McpTool> {
        self.tools.iter().find(|t| t.action == action)
    }
}

/// One entry of a server's offer, as the protocol layer read it, for
/// [`crate::Mandate::set_mcp_tools`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OfferedTool {
    /// The tool's or prompt's name exactly as the server spelled it.
    pub name: String,
    /// `tool`, `prompt` or `resources`.
    pub kind: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub read_only: Option<bool>,
    pub destructive: Option<bool>,
    pub idempotent: Option<bool>,
    pub open_world: Option<bool>,
}

impl OfferedTool {
    /// The action name it is granted under.
    pub fn action(&self) -> String {
        match self.kind.as_str() {
            "prompt" => format!("{PROMPT_PREFIX}{}", self.name),
            "resources" => RESOURCES_ACTION.to_string(),
            _ => self.name.clone(),
        }
    }
}

/// What [`crate::Mandate::set_mcp_tools`] did.
#[derive(Debug, Clone, Default, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ToolsUpdate {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Tools still held by an agent that the server no longer lists: kept, so the grant
    /// stays visible until a person removes it.
    pub kept_while_granted: Vec<String>,
    /// Names that cannot be granted (not plain ASCII, or too long); they stay invisible.
    pub skipped: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_are_plain_ascii_with_case_kept() {
        for ok in [
            "create_issue",
            "getTinyImage",
            "get-env",
            "a.b",
            "prompts/simple_prompt",
            "resources/read",
        ] {
            assert!(is_action_name(ok), "{ok}");
        }
        for bad in [
            "",
            "create issue",
            "create_іssue",  // Cyrillic і
            "ｃreate_issue", // fullwidth
            "prompts/",
            "resources/write",
            "a/b",
            "tool:x",
            &"x".repeat(129),
        ] {
            assert!(!is_action_name(bad), "{bad}");
        }
    }

    #[test]
    fn gateway_resource_urls_name_their_server() {
        for (url, name) in [
            ("http://127.0.0.1:6263/mcp/github-mcp", Some("github-mcp")),
            ("https://localhost:6263/mcp/fs/", Some("fs")),
            ("http://[::1]:9/mcp/fs", Some("fs")),
            ("http://evil.example:6263/mcp/fs", None),
            ("http://127.0.0.1:6263/proxy/fs", None),
            ("http://127.0.0.1:6263/mcp/Fs", None),
            ("http://127.0.0.1:6263/mcp/fs?x=1", None),
        ] {
            assert_eq!(gateway_resource_name(url).as_deref(), name, "{url}");
        }
    }

    #[test]
    fn tools_order_read_only_first_destructive_last() {
        let t = |a: &str, ro: Option<bool>, de: Option<bool>| McpTool {
            action: a.into(),
            kind: "tool".into(),
            scope: String::new(),
            title: None,
            description: None,
            read_only: ro,
            destructive: de,
            idempotent: None,
            open_world: None,
            cost: 1,
            essential: false,
        };
        let mut v = [
            t("zap", None, None),
            t("write", Some(false), Some(false)),
            t("read", Some(true), None),
        ];
        v.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
        let names: Vec<&str> = v.iter().map(|t| t.action.as_str()).collect();
        assert_eq!(names, ["read", "write", "zap"]);
        assert!(v[2].is_destructive() && !v[0].is_destructive() && !v[1].is_destructive());
    }
}
