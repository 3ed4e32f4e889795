//! `mandate token AGENT`: a credential helper for local agents, like
//! `gcloud auth print-access-token`. It signs a client assertion with the agent's key from the
//! OS keychain, asks the running endpoint for a token and prints only the token, so that
//! `Authorization: Bearer $(mandate token billing-report-agent)` works in a script.
//!
//! Against an HTTPS endpoint (`mandate serve --tls`, or `--tls` here) it trusts exactly the
//! endpoint's certificate from the data folder, not the system's roots.

use clap::Args;
use mandate_core::Mandate;

use crate::context::{CliError, CliResult, Ctx};

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The agent's name (its client_id).
    agent: String,
    /// A scope to ask for (repeatable); none: all of the agent's grants for the audience.
    #[arg(long = "scope", value_name = "S")]
    scopes: Vec<String>,
    /// The audience (RFC 8707 resource): a connection's base URL or name.
    #[arg(long, value_name = "A")]
    aud: Option<String>,
    /// The endpoint's port (default: the running endpoint's, else MANDATE_PORT, else 6263).
    #[arg(long, value_name = "N")]
    port: Option<u16>,
    /// Use HTTPS (automatic when the running endpoint serves HTTPS), trusting only the
    /// endpoint's own certificate (`mandate tls export`).
    #[arg(long)]
    tls: bool,
}

/// The running endpoint's base URL and an HTTP client for it: the port from `--port`, the
/// running endpoint's lock file, `MANDATE_PORT` or 6263; HTTPS when asked or when the running
/// endpoint on that port serves HTTPS, trusting only the endpoint's certificate.
pub fn endpoint(m: &Mandate, port: Option<u16>, tls: bool) -> CliResult<(String, reqwest::Client)> {
    let holder = mandate_server::lock::holder(m.data_dir());
    let port = port
        .or_else(|| holder.as_ref().map(|h| h.port))
        .or_else(|| {
            std::env::var(mandate_server::PORT_ENV)
                .ok()
                .and_then(|p| p.parse().ok())
        })
        .unwrap_or(mandate_server::DEFAULT_PORT);
    let tls = tls || holder.is_some_and(|h| h.tls && h.port == port);
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(15));
    if tls {
        let path = m.tls_cert_path();
        let pem = std::fs::read(&path).map_err(|e| {
            fail(
                8,
                format!(
                    "the endpoint's certificate {} cannot be read ({e}); start the endpoint with \
                     `mandate serve --tls` once, or create it with `mandate tls export`",
                    path.display()
                ),
            )
        })?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
            fail(
                8,
                format!("{} is not a PEM certificate: {e}", path.display()),
            )
        })?;
        builder = builder
            .tls_built_in_root_certs(false)
            .add_root_certificate(cert)
            .https_only(true);
    }
    let client = builder
        .build()
        .map_err(|e| fail(1, format!("could not set up HTTP: {e}")))?;
    let scheme = if tls { "https" } else { "http" };
    Ok((format!("{scheme}://127.0.0.1:{port}"), client))
}

pub fn run(ctx: &mut Ctx, a: TokenArgs) -> CliResult {
    let m = ctx.mandate()?;
    let (kid, key) = m.agent_signing_key(&a.agent)?;
    let (base, client) = endpoint(&m, a.port, a.tls)?;
    let rt = super::serve::runtime()?;
    let res = rt
        .block_on(mandate_server::client::request_token(
            &client,
            &mandate_server::client::TokenRequest {
                base: &base,
                agent: &a.agent,
                kid: &kid,
                key: &key,
                scopes: &a.scopes,
                resource: a.aud.as_deref(),
                now: m.now().timestamp(),
            },
        ))
        .map_err(|e| match e {
            mandate_server::client::ClientError::Unreachable { reason, .. }
                if base.starts_with("https:") =>
            {
                fail(
                    8,
                    format!(
                        "could not reach {base} over HTTPS ({reason}); is `mandate serve --tls` \
                         running there, with the certificate in the data folder?"
                    ),
                )
            }
            e => fail(e.exit_code(), e.to_string()),
        })?;
    println!("{}", res.access_token);
    Ok(())
}

fn fail(code: u8, message: String) -> CliError {
    CliError::Exit { code, message }
}
