//! Reading what a server offers (`tools/list`, `prompts/list`, and whether it has resources)
//! with rmcp's own client, so the registry can turn each tool into a grantable scope with the
//! server's annotations.
//!
//! The server is started exactly as the gateway starts it (`stdio::command`), with its secrets
//! from the keychain, and stopped afterwards; its standard error is masked like its messages.
//!
//! What it is not: part of the gate. What a server lists here only says what can be granted;
//! what an agent may call is decided per message from its scopes.

use mandate_core::mcp::OfferedTool;
use mandate_core::secret::Sensitive;
use rmcp::ServiceExt as _;
use rmcp::transport::TokioChildProcess;

use crate::mask::Needles;

/// Read the offer of the registered server `name`: a local one is started (and stopped), a
/// remote one is reached over Streamable HTTP with its credential. `Err` is a sentence.
pub async fn read_server_offer(
    mandate: &mandate_core::Mandate,
    name: &str,
    timeout: std::time::Duration,
) -> Result<Vec<OfferedTool>, String> {
    let s = mandate.get_mcp_server(name).map_err(|e| e.to_string())?;
    if matches!(s.transport, mandate_core::mcp::McpTransport::Http { .. }) {
        let (server_in, server_out, _) =
            crate::remote::connect(mandate, name).map_err(|e| e.to_string())?;
        let work = async move {
            let client = ()
                .serve((server_out, server_in))
                .await
                .map_err(|e| format!("the server did not complete the MCP handshake: {e}"))?;
            list(client).await
        };
        return tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| format!("the server did not answer within {} s", timeout.as_secs()))?;
    }
    let (cmd, secrets) = crate::stdio::command(mandate, name).map_err(|e| e.to_string())?;
    read_offer(cmd, &secrets, timeout).await
}

/// Start the server with `command`, read its offer, stop it. `Err` is a sentence for people.
pub async fn read_offer(
    command: tokio::process::Command,
    secrets: &[Sensitive<String>],
    timeout: std::time::Duration,
) -> Result<Vec<OfferedTool>, String> {
    let needles = Needles::new(secrets.iter());
    let (transport, stderr) = TokioChildProcess::builder(command)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start the server: {e}"))?;
    if let Some(err) = stderr {
        tokio::spawn(crate::stdio::relay_stderr(err, needles));
    }
    let work = async move {
        let client = ()
            .serve(transport)
            .await
            .map_err(|e| format!("the server did not complete the MCP handshake: {e}"))?;
        list(client).await
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| format!("the server did not answer within {} s", timeout.as_secs()))?
}

/// List a connected server's tools, prompts and whether it has resources, then disconnect.
async fn list(
    client: rmcp::service::RunningService<rmcp::RoleClient, ()>,
) -> Result<Vec<OfferedTool>, String> {
    let caps = client.peer_info().map(|i| i.capabilities.clone());
    let mut out = Vec::new();
    for t in client
        .list_all_tools()
        .await
        .map_err(|e| format!("the server did not list its tools: {e}"))?
    {
        let a = t.annotations.as_ref();
        out.push(OfferedTool {
            name: t.name.to_string(),
            kind: "tool".into(),
            title: t.title.clone().or_else(|| a.and_then(|a| a.title.clone())),
            description: t.description.as_ref().map(|d| d.to_string()),
            read_only: a.and_then(|a| a.read_only_hint),
            destructive: a.and_then(|a| a.destructive_hint),
            idempotent: a.and_then(|a| a.idempotent_hint),
            open_world: a.and_then(|a| a.open_world_hint),
        });
    }
    if caps.as_ref().is_some_and(|c| c.prompts.is_some()) {
        for p in client
            .list_all_prompts()
            .await
            .map_err(|e| format!("the server did not list its prompts: {e}"))?
        {
            out.push(OfferedTool {
                name: p.name.to_string(),
                kind: "prompt".into(),
                title: p.title.clone(),
                description: p.description.clone(),
                read_only: Some(true),
                ..Default::default()
            });
        }
    }
    if caps.as_ref().is_some_and(|c| c.resources.is_some()) {
        out.push(OfferedTool {
            name: String::new(),
            kind: "resources".into(),
            title: Some("Read its resources".into()),
            description: Some("List, read and subscribe to the server's resources".into()),
            read_only: Some(true),
            ..Default::default()
        });
    }
    let _ = client.cancel().await;
    Ok(out)
}
