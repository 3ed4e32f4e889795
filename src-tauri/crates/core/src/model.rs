//! The registry's vocabulary: ids, validated names, scopes, statuses and the view types that
//! adapters return to users (CLI JSON, IPC, HTTP).
//!
//! Validation lives in the constructors (`AgentName::parse`, `Scope::parse`...), so a value of
//! these types is valid by construction. View types are plain data: they hold no secrets.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "specta", derive(specta::Type))]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub(crate) fn generate() -> Self {
                $name(uuid::Uuid::now_v7().to_string())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// An agent's stable id (a UUIDv7), unlike its name which an admin may choose.
    AgentId
);
id_type!(
    /// A team member's stable id.
    MemberId
);
id_type!(
    /// A connection's stable id.
    ConnectionId
);

/// Names of agents, members and connections: 2 to 63 characters of lowercase ASCII letters,
/// digits and dashes, starting with a letter, not ending with a dash, no double dash.
/// Agents are named after their job (`billing-report-agent`), which is what ends up in logs.
fn validate_name(kind: &str, raw: &str) -> Result<String> {
    let s = raw.trim();
    let bad = |why: &str| {
        Err(Error::invalid(format!(
            "'{raw}' is not a valid {kind} name: {why}. Use lowercase letters, digits and dashes, \
             starting with a letter (for example 'billing-report-agent')"
        )))
    };
    if s.len() < 2 {
        return bad("it must be at least 2 characters long");
    }
    if s.len() > 63 {
        return bad("it must be at most 63 characters long");
    }
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        return bad("it must start with a lowercase letter");
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return bad(&format!("'{}' is not allowed", c.escape_default()));
    }
    if s.ends_with('-') {
        return bad("it must not end with a dash");
    }
    if s.contains("--") {
        return bad("it must not contain two dashes in a row");
    }
    Ok(s.to_string())
}

macro_rules! name_type {
    ($(#[$m:meta])* $name:ident, $kind:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[cfg_attr(feature = "specta", derive(specta::Type))]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validate a name (see the module docs for the rules).
            pub fn parse(raw: &str) -> Result<Self> {
                validate_name($kind, raw).map($name)
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// For values read back from the database, which were validated when written.
            pub(crate) fn from_db(s: String) -> Self {
                $name(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::parse(s)
            }
        }
    };
}

name_type!(
    /// An agent's job name, also its OAuth `client_id`.
    AgentName,
    "agent"
);
name_type!(
    /// A team member's handle.
    MemberName,
    "member"
);
name_type!(
    /// A connection's name, the first half of its scopes.
    ConnectionName,
    "connection"
);

/// An action a connection offers, the second half of a scope: lowercase letters, digits, dots,
/// dashes and underscores (`repo.read`, `invoices.read`).
pub fn validate_action_name(raw: &str) -> Result<String> {
    let ok = !raw.is_empty()
        && raw.len() <= 64
        && raw.starts_with(|c: char| c.is_ascii_lowercase())
        && raw.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-' || c == '_'
        });
    if ok {
        Ok(raw.to_string())
    } else {
        Err(Error::invalid(format!(
            "'{raw}' is not a valid action name: use lowercase letters, digits, '.', '-' and '_', \
             starting with a letter (for example 'repo.read')"
        )))
    }
}

/// A grant of one action on one connection: `connection:action`. No wildcards. On an MCP
/// server the action is a tool's exact name (case kept, ASCII only: `github-mcp:create_issue`,
/// `everything:getTinyImage`), `prompts/NAME` or `resources/read` (see [`crate::mcp`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(transparent)]
pub struct Scope(String);

impl Scope {
    /// Parse `connection:action`. Whether the connection offers the action is checked by the
    /// registry, which knows the connections.
    pub fn parse(raw: &str) -> Result<Self> {
        let raw = raw.trim();
        let Some((conn, action)) = raw.split_once(':') else {
            return Err(Error::invalid(format!(
                "'{raw}' is not a scope: write it as connection:action, for example \
                 'github:repo.read'"
            )));
        };
        if conn.contains('*') || action.contains('*') {
            return Err(Error::invalid(format!(
                "'{raw}' uses a wildcard; Mandate grants explicit actions only, so list each \
                 action the agent needs"
            )));
        }
        let conn = ConnectionName::parse(conn)?;
        let action = match validate_action_name(action) {
            Ok(a) => a,
            Err(e) => {
                if crate::mcp::is_action_name(action) {
                    action.to_string()
                } else {
                    return Err(e);
                }
            }
        };
        Ok(Scope(format!("{conn}:{action}")))
    }

    pub fn connection(&self) -> &str {
        self.0.split_once(':').map_or("", |(c, _)| c)
    }

    pub fn action(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, a)| a)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn from_db(s: String) -> Self {
        Scope(s)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An agent's lifecycle status. `Revoked` is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    Active,
    Suspended,
    Revoked,
}

impl AgentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Active => "active",
            AgentStatus::Suspended => "suspended",
            AgentStatus::Revoked => "revoked",
        }
    }

    pub(crate) fn from_db(s: &str) -> Result<Self> {
        match s {
            "active" => Ok(AgentStatus::Active),
            "suspended" => Ok(AgentStatus::Suspended),
            "revoked" => Ok(AgentStatus::Revoked),
            other => Err(Error::Storage(format!("unknown agent status '{other}'"))),
        }
    }
}

impl fmt::Display for AgentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How far Mandate trusts an agent right now. Ordered: `Untrusted < Pending < Trusted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TrustState {
    Untrusted,
    Pending,
    Trusted,
}

impl TrustState {
    pub fn as_str(self) -> &'static str {
        match self {
            TrustState::Untrusted => "UNTRUSTED",
            TrustState::Pending => "PENDING",
            TrustState::Trusted => "TRUSTED",
        }
    }
}

impl fmt::Display for TrustState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TrustState {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_uppercase().as_str() {
            "TRUSTED" => Ok(TrustState::Trusted),
            "PENDING" => Ok(TrustState::Pending),
            "UNTRUSTED" => Ok(TrustState::Untrusted),
            _ => Err(Error::invalid(format!(
                "'{s}' is not a trust state: use TRUSTED, PENDING or UNTRUSTED"
            ))),
        }
    }
}

/// A team member: a human who owns agents and on whose behalf agents may act.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Member {
    pub id: MemberId,
    pub name: MemberName,
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// One action a connection offers: a name and the HTTP requests it covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ConnectionAction {
    pub name: String,
    /// HTTP method in upper case (`GET`), or `*` for any method.
    pub method: String,
    /// Path pattern: `*` matches one segment, `**` any number of segments (`/repos/**`).
    pub path_pattern: String,
}

impl ConnectionAction {
    /// Parse `NAME=METHOD:PATH-PATTERN`, e.g. `repo.read=GET:/repos/**`.
    pub fn parse(raw: &str) -> Result<Self> {
        let usage = || {
            Error::invalid(format!(
                "'{raw}' is not an action: write NAME=METHOD:PATH, for example \
                 'repo.read=GET:/repos/**'"
            ))
        };
        let (name, rest) = raw.split_once('=').ok_or_else(usage)?;
        let (method, path) = rest.split_once(':').ok_or_else(usage)?;
        let name = validate_action_name(name.trim())?;
        let method = method.trim().to_ascii_uppercase();
        const METHODS: [&str; 8] = [
            "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "*",
        ];
        if !METHODS.contains(&method.as_str()) {
            return Err(Error::invalid(format!(
                "'{method}' is not an HTTP method Mandate knows: use one of {}",
                METHODS.join(", ")
            )));
        }
        let path = path.trim();
        if !path.starts_with('/') {
            return Err(Error::invalid(format!(
                "the path pattern '{path}' must start with '/'"
            )));
        }
        if path.split('/').any(|seg| seg == ".." || seg == ".") {
            return Err(Error::invalid(format!(
                "the path pattern '{path}' must not contain '.' or '..' segments"
            )));
        }
        Ok(ConnectionAction {
            name,
            method,
            path_pattern: path.to_string(),
        })
    }
}

/// What kind of system a connection is, which decides how its credential reaches an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum ConnectionKind {
    /// An HTTP API. The broker adds the credential to each call under `/proxy/NAME`; the
    /// agent's program never holds it.
    #[default]
    Http,
    /// A database. The credential is its URL (with the password), which `mandate exec` hands
    /// to the program in an environment variable when its token holds `NAME:connect`: the
    /// program holds the URL while it runs.
    Database,
}

impl ConnectionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionKind::Http => "http",
            ConnectionKind::Database => "database",
        }
    }

    pub(crate) fn from_db(s: &str) -> Result<Self> {
        match s {
            "http" => Ok(ConnectionKind::Http),
            "database" => Ok(ConnectionKind::Database),
            other => Err(Error::Storage(format!("unknown connection kind '{other}'"))),
        }
    }
}

impl fmt::Display for ConnectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConnectionKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "http" => Ok(ConnectionKind::Http),
            "database" | "db" => Ok(ConnectionKind::Database),
            _ => Err(Error::invalid(format!(
                "'{s}' is not a kind of connection: use http (an API the broker calls) or \
                 database (a URL `mandate exec` hands to the program)"
            ))),
        }
    }
}

/// The one action of a database connection: its scope `NAME:connect` lets `mandate exec` hand
/// the program the database URL.
pub const DATABASE_ACTION: &str = "connect";

/// The variable a database URL is handed over in when nothing else was said.
pub const DEFAULT_DATABASE_VARIABLE: &str = "DATABASE_URL";

/// Check the name of an environment variable a database URL is handed over in: a shell
/// identifier, not one of Mandate's own (`MANDATE_*`) and not one that changes how programs
/// run (`PATH`, `LD_*`...).
pub fn validate_variable(raw: &str) -> Result<String> {
    let v = raw.trim();
    let ok = !v.is_empty()
        && v.len() <= 128
        && v.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(Error::invalid(format!(
            "'{raw}' is not an environment variable name: use letters, digits and '_', \
             starting with a letter (for example DATABASE_URL)"
        )));
    }
    let upper = v.to_ascii_uppercase();
    const RESERVED: [&str; 8] = [
        "PATH", "HOME", "SHELL", "USER", "LOGNAME", "PWD", "IFS", "ENV",
    ];
    if upper.starts_with("MANDATE_")
        || upper.starts_with("LD_")
        || upper.starts_with("DYLD_")
        || RESERVED.contains(&upper.as_str())
    {
        return Err(Error::invalid(format!(
            "{v} is a variable programs or Mandate rely on; hand the database URL over in \
             another one, for example DATABASE_URL"
        )));
    }
    Ok(v.to_string())
}

/// A system agents reach. Its credential lives only in the OS keychain; `has_secret` says
/// whether one is set, never what it is.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Connection {
    pub id: ConnectionId,
    pub name: ConnectionName,
    pub kind: ConnectionKind,
    /// For an HTTP API, its base URL; a database connection has
    /// `urn:mandate:connection:NAME` (the audience its tokens carry), since its real address
    /// is part of the URL in the keychain.
    pub base_url: String,
    /// The preset it was made from (`github`, `openai`...), if any.
    pub preset: Option<String>,
    /// For a database: the environment variable `mandate exec` hands its URL over in.
    pub variable: Option<String>,
    pub actions: Vec<ConnectionAction>,
    pub has_secret: bool,
    /// When the credential last changed (set, replaced, moved in or restored); `None` when
    /// that happened before Mandate recorded it, or never.
    pub secret_changed_at: Option<DateTime<Utc>>,
    /// Agents below this trust state are refused tokens for this connection.
    pub trust_floor: TrustState,
    /// Agents whose trust score is below this are refused too (None: no minimum score).
    pub min_score: Option<i32>,
    /// Names of agents that hold at least one scope on this connection.
    pub granted_to: Vec<AgentName>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An agent that holds scopes on a connection, and which: what changing the connection's
/// credential affects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct AgentUse {
    pub agent: AgentName,
    pub scopes: Vec<Scope>,
}

/// Where an agent's key came from and where its private half is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum KeyOrigin {
    /// Generated here; the private key is in the OS keychain.
    Keychain,
    /// Generated here and written once to a file; Mandate kept no copy.
    File,
    /// Registered by the agent, which made it and keeps the private key.
    Registered,
}

impl KeyOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyOrigin::Keychain => "keychain",
            KeyOrigin::File => "file",
            KeyOrigin::Registered => "registered",
        }
    }
    pub(crate) fn from_db(s: &str) -> Result<Self> {
        match s {
            "keychain" => Ok(KeyOrigin::Keychain),
            "file" => Ok(KeyOrigin::File),
            "registered" => Ok(KeyOrigin::Registered),
            other => Err(Error::Storage(format!("unknown key origin '{other}'"))),
        }
    }
}

/// One of an agent's Ed25519 public keys.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct AgentKey {
    /// The RFC 7638 JWK thumbprint of the public key, used as its `kid`.
    pub kid: String,
    /// The public key as an RFC 8037 JWK `x` value (base64url, 32 bytes).
    pub public_x: String,
    /// A short human fingerprint: `SHA256:` and the first 16 characters of the thumbprint.
    pub fingerprint: String,
    pub origin: KeyOrigin,
    pub created_at: DateTime<Utc>,
    /// After rotation, the end of the overlap period; the key is refused from then on.
    pub expires_at: Option<DateTime<Utc>>,
}

impl AgentKey {
    /// Whether the key is accepted at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|t| now < t)
    }
}

/// An agent as users see it: everything but secrets, with its trust evaluation.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Agent {
    pub id: AgentId,
    pub name: AgentName,
    pub purpose: String,
    pub owner: Option<MemberName>,
    pub parent: Option<AgentName>,
    pub config_version: u32,
    pub status: AgentStatus,
    /// Why the agent was last suspended or revoked.
    pub status_reason: Option<String>,
    pub scopes: Vec<Scope>,
    pub keys: Vec<AgentKey>,
    pub trust: crate::trust::TrustReport,
    /// Whether tokens must be bound to a DPoP key (RFC 9449).
    pub dpop_required: bool,
    /// The longest token lifetime this agent may get, in seconds (None: the global default).
    pub max_token_ttl_secs: Option<u32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Time of the newest audit event about or by this agent.
    pub last_activity: Option<DateTime<Utc>>,
    /// The agents above this one, its parent first (empty unless it is a sub-agent).
    pub parents: Vec<AgentName>,
    /// Set while an agent above it is suspended or revoked: it then gets nothing.
    pub held_by_parent: Option<ParentHold>,
}

/// A suspended or revoked agent above a sub-agent, which holds the sub-agent back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ParentHold {
    pub parent: AgentName,
    pub status: AgentStatus,
    /// What this means and what to do, as a sentence.
    pub message: String,
}

/// A generated private key handed back once, when the user asked for a file.
#[derive(Debug)]
pub struct GeneratedKeyFile {
    pub kid: String,
    pub path: std::path::PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_names_follow_the_job_rule() {
        for ok in ["billing-report-agent", "ci2", "a1-b2"] {
            assert!(AgentName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a",
            "Billing",
            "billing_report",
            "-x",
            "x-",
            "x--y",
            "1abc",
            "agent name",
            "agent.name",
            "ägent",
        ] {
            let err = AgentName::parse(bad).unwrap_err().to_string();
            assert!(err.contains("not a valid agent name"), "{bad}: {err}");
        }
        assert!(AgentName::parse(&"a".repeat(64)).is_err());
    }

    #[test]
    fn scopes_are_connection_action_without_wildcards() {
        let s = Scope::parse("github:repo.read").unwrap();
        assert_eq!((s.connection(), s.action()), ("github", "repo.read"));
        assert!(Scope::parse("github").is_err());
        assert!(
            Scope::parse("github:*")
                .unwrap_err()
                .to_string()
                .contains("wildcard")
        );
        assert!(Scope::parse("*:read").is_err());
        assert!(Scope::parse("GitHub:repo.read").is_err());
        assert!(Scope::parse("github:").is_err());
    }

    #[test]
    fn actions_parse_name_method_and_path() {
        let a = ConnectionAction::parse("repo.read=get:/repos/**").unwrap();
        assert_eq!(a.method, "GET");
        assert_eq!(a.path_pattern, "/repos/**");
        assert!(ConnectionAction::parse("repo.read").is_err());
        assert!(ConnectionAction::parse("repo.read=FETCH:/x").is_err());
        assert!(ConnectionAction::parse("repo.read=GET:repos").is_err());
        assert!(ConnectionAction::parse("repo.read=GET:/a/../b").is_err());
    }
}
