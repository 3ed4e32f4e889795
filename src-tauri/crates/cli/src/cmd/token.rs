//! `mandate token AGENT`: a credential helper for local agents, like
//! `gcloud auth print-access-token`. It signs a client assertion with the agent's key from the
//! OS keychain, asks the running endpoint for a token and prints only the token, so that
//! `Authorization: Bearer $(mandate token billing-report-agent)` works in a script.
//!
//! Before it sends the assertion, the endpoint must prove it is this data folder's own (a nonce
//! signed with the issuer key; `mandate_server::client`), so a program squatting on the port
//! gets nothing. Against an HTTPS endpoint (`mandate serve --tls`, or `--tls` here) it trusts
//! exactly the endpoint's certificate from the data folder, not the system's roots. `--json`
//! prints the whole token response (with its expiry time) instead of the bare token.
//!
//! A revoked agent is refused here, as revoked (exit code 9), before anything is sent.
//!
//! With `--server URL` (an agent on another machine) it asks the team server instead, signing
//! with the agent's key file and trusting the server's certificate as `--server-ca` or
//! `--server-fingerprint` say (`cmd::remote`); no data folder or keychain is used.

use clap::Args;
use mandate_core::Mandate;
use mandate_server::client::EndpointAddr;
use serde::Serialize;

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
    #[command(flatten)]
    remote: super::remote::RemoteArgs,
}

/// The running endpoint's address: the port from `--port`, the running endpoint's lock file,
/// `MANDATE_PORT` or 6263; HTTPS when asked or when the running endpoint on that port serves
/// HTTPS, trusting only the endpoint's certificate. Whatever listens there must still prove it
/// is this data folder's endpoint before anything is sent (`mandate_server::client`).
pub fn endpoint(m: &Mandate, port: Option<u16>, tls: bool) -> CliResult<EndpointAddr> {
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
    if !tls {
        return Ok(EndpointAddr::http(port));
    }
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
    EndpointAddr::https(port, &pem).map_err(|e| fail(8, format!("{}: {e}", path.display())))
}

/// What `--json` prints.
#[derive(Debug, Serialize)]
struct TokenJson<'a> {
    access_token: &'a str,
    token_type: &'a str,
    expires_in: u64,
    /// RFC 3339, from this machine's clock.
    expires_at: String,
    scope: Option<&'a str>,
    /// Grants the endpoint left out (a connection's trust floor) and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    withheld_scope: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    withheld_description: Option<&'a str>,
    issuer: String,
}

pub fn run(ctx: &mut Ctx, a: TokenArgs) -> CliResult {
    let rt = super::serve::runtime()?;
    let (res, now, issuer) = match a.remote.resolve()? {
        Some(r) => {
            let now = chrono::Utc::now();
            let res = rt
                .block_on(mandate_server::remote::request_token(
                    &r.server,
                    &mandate_server::remote::RemoteTokenRequest {
                        agent: &a.agent,
                        kid: &r.kid,
                        key: &r.key,
                        scopes: &a.scopes,
                        resource: a.aud.as_deref(),
                        now: now.timestamp(),
                    },
                ))
                .map_err(|e| fail(e.exit_code(), e.to_string()))?;
            (res, now, r.server.url().to_string())
        }
        None => {
            let m = ctx.mandate()?;
            let (kid, key) = m.client_signing_key(&a.agent)?;
            let addr = endpoint(&m, a.port, a.tls)?;
            let now = m.now();
            let res = rt
                .block_on(mandate_server::client::request_token(
                    &m,
                    &addr,
                    &mandate_server::client::TokenRequest {
                        agent: &a.agent,
                        kid: &kid,
                        key: &key,
                        scopes: &a.scopes,
                        resource: a.aud.as_deref(),
                        now: now.timestamp(),
                    },
                ))
                .map_err(|e| fail(e.exit_code(), e.to_string()))?;
            (res, now, addr.base())
        }
    };
    if ctx.json {
        let expires_at = now + chrono::Duration::seconds(res.expires_in.min(86_400 * 365) as i64);
        return crate::output::json(&TokenJson {
            access_token: &res.access_token,
            token_type: &res.token_type,
            expires_in: res.expires_in,
            expires_at: expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            scope: res.scope.as_deref(),
            withheld_scope: res.withheld_scope.as_deref(),
            withheld_description: res.withheld_description.as_deref(),
            issuer,
        });
    }
    if let Some(d) = &res.withheld_description {
        eprintln!("note: {d}");
    }
    println!("{}", res.access_token);
    Ok(())
}

fn fail(code: u8, message: String) -> CliError {
    CliError::Exit { code, message }
}
