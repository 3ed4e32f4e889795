//! MCP servers: register them, read their tools, import them from a client's config.
//!
//! Adapters over `mandate_core::mcp` (the registry, the import) and `mandate_mcp` (starting a
//! server to read its tools). A secret variable's value travels once, from the password field
//! to [`add_mcp_server`], where it becomes a `Sensitive` for the keychain; no command returns
//! one, and config findings carry masked values only.

use std::time::Duration;

use mandate_core::mcp::{
    ConfigFile, ImportPlan, McpServer, McpTransport, NewMcpServer, RewriteBackup, ToolsUpdate,
};
use mandate_core::secret::Sensitive;
use mandate_core::{Error, ErrorCode, ErrorReport};
use serde::Deserialize;
use tauri::State;

use super::{blocking, mandate};
use crate::AppState;

#[tauri::command]
#[specta::specta]
pub async fn list_mcp_servers(state: State<'_, AppState>) -> Result<Vec<McpServer>, ErrorReport> {
    blocking(&state, |m| m.list_mcp_servers()).await
}

/// A new local MCP server as the UI's form gives it.
#[derive(Debug, Deserialize, specta::Type)]
pub struct NewMcpServerInput {
    pub name: String,
    pub command: String,
    pub args: Vec<String>,
    /// A secret environment variable's name (empty: none).
    pub secret_name: String,
    /// Its value, moved into a `Sensitive` at once; never echoed back.
    pub secret_value: String,
}

#[tauri::command]
#[specta::specta]
pub async fn add_mcp_server(
    state: State<'_, AppState>,
    input: NewMcpServerInput,
) -> Result<McpServer, ErrorReport> {
    let NewMcpServerInput {
        name,
        command,
        args,
        secret_name,
        secret_value,
    } = input;
    let secret = Sensitive::new(secret_value);
    blocking(&state, move |m| {
        let secret_env = if secret_name.trim().is_empty() {
            Vec::new()
        } else {
            vec![(secret_name.trim().to_string(), secret)]
        };
        m.add_mcp_server(NewMcpServer {
            name,
            transport: McpTransport::Stdio { command, args },
            env: Vec::new(),
            secret_env,
            http_secret: None,
            auth: None,
            trust_floor: None,
            call_timeout_secs: None,
            audit_arguments: false,
        })
    })
    .await
}

/// Start the server with its secrets and read its tools, prompts and resources.
#[tauri::command]
#[specta::specta]
pub async fn read_mcp_tools(
    state: State<'_, AppState>,
    name: String,
) -> Result<ToolsUpdate, ErrorReport> {
    let m = mandate(&state)?;
    let offered = mandate_mcp::offer::read_server_offer(&m, &name, Duration::from_secs(60))
        .await
        .map_err(|e| ErrorReport {
            code: ErrorCode::Conflict,
            message: format!(
                "could not read the tools of '{name}': {e}. Check how it is reached, then try again"
            ),
        })?;
    blocking(&state, move |m| m.set_mcp_tools(&name, &offered)).await
}

#[tauri::command]
#[specta::specta]
pub async fn remove_mcp_server(
    state: State<'_, AppState>,
    name: String,
) -> Result<Vec<String>, ErrorReport> {
    blocking(&state, move |m| m.remove_mcp_server(&name)).await
}

/// MCP client configs in a project folder and the user's home (Claude Code, Claude Desktop,
/// Cursor, VS Code) that start servers, with secrets masked.
#[tauri::command]
#[specta::specta]
pub async fn find_mcp_configs(
    state: State<'_, AppState>,
    folder: Option<String>,
) -> Result<Vec<ConfigFile>, ErrorReport> {
    blocking(&state, move |_| {
        let project = folder
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(std::path::PathBuf::from);
        let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
        Ok(
            mandate_core::mcp::config_locations(project.as_deref(), home.as_deref())
                .iter()
                .filter_map(|p| mandate_core::mcp::read_config(p).ok())
                .filter(|c| !c.entries.is_empty())
                .collect(),
        )
    })
    .await
}

/// Import one entry of a config for an agent: register the server, move its secrets into the
/// keychain, rewrite the entry to `mandate mcp run`, keep the original for undo.
#[tauri::command]
#[specta::specta]
pub async fn import_mcp_entry(
    state: State<'_, AppState>,
    path: String,
    key: String,
    server: String,
    agent: String,
) -> Result<RewriteBackup, ErrorReport> {
    blocking(&state, move |m| {
        if agent.trim().is_empty() {
            return Err(Error::Invalid(
                "choose the agent the rewritten entry runs as".into(),
            ));
        }
        m.import_mcp_config(&ImportPlan {
            path: path.into(),
            agent,
            servers: vec![(key, server)],
        })
    })
    .await
}

#[tauri::command]
#[specta::specta]
pub async fn list_mcp_imports(
    state: State<'_, AppState>,
) -> Result<Vec<RewriteBackup>, ErrorReport> {
    blocking(&state, |m| m.mcp_imports()).await
}

#[tauri::command]
#[specta::specta]
pub async fn undo_mcp_import(
    state: State<'_, AppState>,
    id: String,
) -> Result<RewriteBackup, ErrorReport> {
    blocking(&state, move |m| m.undo_mcp_import(&id)).await
}
