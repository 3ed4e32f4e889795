//! `mandate token AGENT`: a credential helper for local agents, like
//! `gcloud auth print-access-token`. It signs a client assertion with the agent's key from the
//! OS keychain, asks the running endpoint for a token and prints only the token, so that
//! `Authorization: Bearer $(mandate token billing-report-agent)` works in a script.
//!
//! Against an HTTPS endpoint (`mandate serve --tls`, or `--tls` here) it trusts exactly the
//! endpoint's certificate from the data folder, not the system's roots.

use clap::Args;
use mandate_core::Mandate;
use mandate_core::oauth::{ASSERTION_TYPE_JWT_BEARER, GRANT_CLIENT_CREDENTIALS, client_assertion};

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

/// An error and its causes in one line (reqwest hides the TLS reason in the source chain).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

pub fn run(ctx: &mut Ctx, a: TokenArgs) -> CliResult {
    let m = ctx.mandate()?;
    let (kid, key) = m.agent_signing_key(&a.agent)?;
    let (base, client) = endpoint(&m, a.port, a.tls)?;
    let token_endpoint = format!("{base}/oauth2/token");
    let assertion = client_assertion(&a.agent, &kid, &key, &token_endpoint, m.now().timestamp());
    let mut form: Vec<(&str, String)> = vec![
        ("grant_type", GRANT_CLIENT_CREDENTIALS.into()),
        ("client_assertion_type", ASSERTION_TYPE_JWT_BEARER.into()),
        ("client_assertion", assertion),
    ];
    if !a.scopes.is_empty() {
        form.push(("scope", a.scopes.join(" ")));
    }
    if let Some(aud) = &a.aud {
        form.push(("resource", aud.clone()));
    }
    let rt = super::serve::runtime()?;
    let (status, body) = rt.block_on(async {
        let r = client
            .post(&token_endpoint)
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() && base.starts_with("https:") {
                    fail(
                        8,
                        format!(
                            "could not reach {base} over HTTPS ({}); is `mandate serve --tls` \
                             running there, with the certificate in the data folder?",
                            chain(&e)
                        ),
                    )
                } else if e.is_connect() {
                    fail(
                        8,
                        format!(
                            "no Mandate endpoint is running at {base}; start it with \
                         `mandate serve` (or open the app), or give --port"
                        ),
                    )
                } else {
                    fail(8, format!("the endpoint did not answer: {}", chain(&e)))
                }
            })?;
        let status = r.status();
        let body: serde_json::Value = r
            .json()
            .await
            .map_err(|e| fail(8, format!("the endpoint's answer is not JSON: {e}")))?;
        Ok::<_, CliError>((status, body))
    })?;
    if !status.is_success() {
        return Err(fail(
            9,
            format!(
                "the endpoint refused the token request ({}): {}",
                body["error"].as_str().unwrap_or("error"),
                body["error_description"]
                    .as_str()
                    .unwrap_or("no description")
            ),
        ));
    }
    match body["access_token"].as_str() {
        Some(t) => {
            println!("{t}");
            Ok(())
        }
        None => Err(fail(8, "the endpoint's answer has no access_token".into())),
    }
}

fn fail(code: u8, message: String) -> CliError {
    CliError::Exit { code, message }
}
