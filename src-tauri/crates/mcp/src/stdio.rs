//! `mandate mcp run --agent AGENT SERVER`: the stdio bridge an MCP client starts in place of
//! the server.
//!
//! It starts the registered server as a child process, with its plain variables and its
//! secret ones read from the OS keychain (they exist only in the child's environment and in
//! `Sensitive` values here), and relays this process's standard input and output to the
//! child's through [`crate::bridge::relay`]. The child's standard error is passed on masked.
//! When the client goes away, the child's standard input is closed and it gets two seconds to
//! exit before it is killed; when the child exits, the bridge exits with its status.
//!
//! Trust boundary: whoever can run `mandate` as this OS user can start the bridge for any
//! agent, as they can run `mandate token` for an agent whose key is in the keychain. The
//! bridge keeps the credential out of what the agent is given; it is not a sandbox against the
//! user who configured it.
//!
//! A server registered with `--url` is not started: the relay's server end is then a Streamable
//! HTTP client (`crate::remote`) with the credential in a header.

use std::sync::Arc;
use std::time::Duration;

use mandate_core::mcp::{McpSession, McpTransport};
use mandate_core::secret::Sensitive;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};

use crate::bridge::{self, RelayEnd, RelayOptions};
use crate::mask::Needles;

/// Why the bridge could not run. Sentences for people; never a secret.
#[derive(Debug)]
pub enum RunError {
    /// The registry said no (unknown agent or server, missing secret, locked keychain).
    Core(mandate_core::Error),
    /// The server could not be started or is not a local one.
    Start(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Core(e) => e.fmt(f),
            RunError::Start(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for RunError {}

impl From<mandate_core::Error> for RunError {
    fn from(e: mandate_core::Error) -> Self {
        RunError::Core(e)
    }
}

/// The command that starts a registered stdio server, with its environment, and the secret
/// values (for masking).
pub fn command(
    mandate: &mandate_core::Mandate,
    server: &str,
) -> Result<(tokio::process::Command, Vec<Sensitive<String>>), RunError> {
    let s = mandate.get_mcp_server(server)?;
    let McpTransport::Stdio { command, args } = &s.transport else {
        return Err(RunError::Start(format!(
            "'{}' is a remote (--url) server: Mandate connects to it, there is no command to start",
            s.name
        )));
    };
    let env = mandate.mcp_server_env(server)?;
    let mut cmd = tokio::process::Command::new(command);
    cmd.args(args)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut secrets = Vec::new();
    for (k, v) in &env {
        cmd.env(k, v.expose());
        if s.secret_env.contains(k) {
            secrets.push(v.clone());
        }
    }
    Ok((cmd, secrets))
}

/// Copy a child's standard error to ours, line by line, masked.
pub async fn relay_stderr<R: AsyncRead + Unpin>(err: R, needles: Needles) {
    let mut lines = BufReader::new(err).lines();
    let mut out = tokio::io::stderr();
    while let Ok(Some(mut l)) = lines.next_line().await {
        needles.mask(&mut l);
        l.push('\n');
        if out.write_all(l.as_bytes()).await.is_err() {
            break;
        }
    }
}

/// Run the bridge for `session` on this process's stdin and stdout until either side ends.
/// Returns the exit status to use: the server's when it exited, 0 when the client left.
pub async fn run(session: Arc<McpSession>) -> Result<i32, RunError> {
    let m = session.mandate().clone();
    let server = m.get_mcp_server(session.server())?;
    let opts = RelayOptions {
        call_timeout: Duration::from_secs(u64::from(server.call_timeout_secs)),
        ..RelayOptions::default()
    };
    if matches!(server.transport, McpTransport::Http { .. }) {
        let (server_in, server_out, needles) = crate::remote::connect(&m, session.server())?;
        let _ = bridge::relay(
            session,
            tokio::io::stdin(),
            tokio::io::stdout(),
            server_in,
            server_out,
            needles,
            opts,
        )
        .await;
        return Ok(0);
    }
    let (mut cmd, secrets) = command(&m, session.server())?;
    let program = match &server.transport {
        McpTransport::Stdio { command, .. } => command.clone(),
        McpTransport::Http { url } => url.clone(),
    };
    let mut child = cmd.spawn().map_err(|e| {
        RunError::Start(format!(
            "could not start the MCP server '{}' ({program}): {e}; check the command with \
             `mandate mcp show {}`",
            server.name, server.name
        ))
    })?;
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(RunError::Start(
            "the server's standard streams could not be opened".into(),
        ));
    };
    tokio::spawn(relay_stderr(stderr, Needles::new(secrets.iter())));
    let needles = Needles::new(secrets.iter());
    drop(secrets);
    let end = bridge::relay(
        session,
        tokio::io::stdin(),
        tokio::io::stdout(),
        stdin,
        stdout,
        needles,
        opts,
    )
    .await;
    match end {
        RelayEnd::ClientClosed => {
            if tokio::time::timeout(Duration::from_secs(2), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
            Ok(0)
        }
        RelayEnd::ServerClosed => {
            let status = match tokio::time::timeout(Duration::from_secs(2), child.wait()).await {
                Ok(Ok(s)) => s.code().unwrap_or(1),
                _ => {
                    let _ = child.kill().await;
                    1
                }
            };
            Ok(status)
        }
    }
}
