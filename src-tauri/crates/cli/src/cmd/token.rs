//! `mandate token AGENT`: a credential helper for local agents, like
//! `gcloud auth print-access-token`. It signs a client assertion with the agent's key from the
//! OS keychain, asks the running endpoint for a token and prints only the token, so that
//! `Authorization: Bearer $(mandate token billing-report-agent)` works in a script.

use clap::Args;
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
}

pub fn run(ctx: &mut Ctx, a: TokenArgs) -> CliResult {
    let m = ctx.mandate()?;
    let (kid, key) = m.agent_signing_key(&a.agent)?;
    let port = a
        .port
        .or_else(|| mandate_server::lock::holder(m.data_dir()).map(|h| h.port))
        .or_else(|| {
            std::env::var(mandate_server::PORT_ENV)
                .ok()
                .and_then(|p| p.parse().ok())
        })
        .unwrap_or(mandate_server::DEFAULT_PORT);
    let token_endpoint = format!("http://127.0.0.1:{port}/oauth2/token");
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
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(15))
            .build()
            .map_err(|e| fail(1, format!("could not set up HTTP: {e}")))?;
        let r = client
            .post(&token_endpoint)
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    fail(
                        8,
                        format!(
                            "no Mandate endpoint is running on 127.0.0.1:{port}; start it with \
                         `mandate serve` (or open the app), or give --port"
                        ),
                    )
                } else {
                    fail(8, format!("the endpoint did not answer: {e}"))
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
