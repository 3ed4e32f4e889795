//! A client for Mandate's own token endpoint, for callers on this machine that hold an
//! agent's key: `mandate token`, `mandate exec` (and its refreshes) and the desktop wizard's
//! test token all get their tokens here.
//!
//! It signs a `private_key_jwt` client assertion (RFC 7523) with the agent's Ed25519 key and
//! posts a `client_credentials` request to `http://127.0.0.1:PORT/oauth2/token`, exactly what
//! any OAuth library would send, so the token goes through the same policy checks and audit
//! events as every other request. Errors say whether the endpoint is not running, refused the
//! request (with its RFC 6749 error and description) or answered nonsense; none holds the key
//! or the token.

use std::time::Duration;

use ed25519_dalek::SigningKey;
use mandate_core::oauth::{ASSERTION_TYPE_JWT_BEARER, GRANT_CLIENT_CREDENTIALS, client_assertion};
use serde::Deserialize;

/// What to ask for.
#[derive(Debug)]
pub struct TokenRequest<'a> {
    /// The endpoint's base URL, `http://127.0.0.1:PORT` (or `https://` with `serve --tls`).
    pub base: &'a str,
    /// The agent's name (its `client_id`).
    pub agent: &'a str,
    /// The key id and private key the assertion is signed with.
    pub kid: &'a str,
    pub key: &'a SigningKey,
    /// Scopes to ask for; none: all of the agent's grants for the audience.
    pub scopes: &'a [String],
    /// The audience (RFC 8707 `resource`).
    pub resource: Option<&'a str>,
    /// Unix seconds, for the assertion's `iat`/`exp`.
    pub now: i64,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    #[serde(default)]
    pub scope: Option<String>,
}

/// Why no token came back.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "no Mandate endpoint is running at {base}; start it (`mandate serve`, or open the app) \
         and try again"
    )]
    NotRunning { base: String },
    #[error("the endpoint at {base} did not answer: {reason}")]
    Unreachable { base: String, reason: String },
    #[error("the endpoint refused the token request ({error}): {description}")]
    Refused { error: String, description: String },
    #[error("the endpoint's answer was not a token response: {0}")]
    BadAnswer(String),
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

impl ClientError {
    /// The CLI's exit code: 9 when the endpoint refused, 8 when it could not be asked.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Refused { .. } => 9,
            _ => 8,
        }
    }
}

/// An HTTP client for the endpoint on loopback: no proxy, a 15 s timeout.
pub fn http_client() -> Result<reqwest::Client, ClientError> {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| ClientError::Unreachable {
            base: "127.0.0.1".into(),
            reason: e.to_string(),
        })
}

/// An error and its causes in one line (reqwest keeps the TLS or socket reason in the chain).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Ask the endpoint at `req.base` for an access token for `req.agent`, through `http`.
pub async fn request_token(
    http: &reqwest::Client,
    req: &TokenRequest<'_>,
) -> Result<TokenResponse, ClientError> {
    let url = format!("{}/oauth2/token", req.base);
    let assertion = client_assertion(req.agent, req.kid, req.key, &url, req.now);
    let mut form: Vec<(&str, String)> = vec![
        ("grant_type", GRANT_CLIENT_CREDENTIALS.into()),
        ("client_assertion_type", ASSERTION_TYPE_JWT_BEARER.into()),
        ("client_assertion", assertion),
    ];
    if !req.scopes.is_empty() {
        form.push(("scope", req.scopes.join(" ")));
    }
    if let Some(r) = req.resource {
        form.push(("resource", r.to_string()));
    }
    let base = req.base.to_string();
    let r = http.post(&url).form(&form).send().await.map_err(|e| {
        if e.is_connect() && base.starts_with("http:") {
            ClientError::NotRunning { base }
        } else {
            ClientError::Unreachable {
                base,
                reason: chain(&e),
            }
        }
    })?;
    let status = r.status();
    let body = r
        .bytes()
        .await
        .map_err(|e| ClientError::BadAnswer(e.to_string()))?;
    if !status.is_success() {
        let e: ErrorBody = serde_json::from_slice(&body).map_err(|_| {
            ClientError::BadAnswer(format!("HTTP {status} without an OAuth error body"))
        })?;
        return Err(ClientError::Refused {
            error: e.error.unwrap_or_else(|| status.to_string()),
            description: e
                .error_description
                .unwrap_or_else(|| "no description".into()),
        });
    }
    serde_json::from_slice(&body).map_err(|e| ClientError::BadAnswer(e.to_string()))
}
