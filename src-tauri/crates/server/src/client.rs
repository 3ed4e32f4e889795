//! A client for Mandate's own token endpoint, for callers on this machine that hold an
//! agent's key: the desktop wizard's test token (and, like it, `mandate token`).
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
    /// The endpoint's port on 127.0.0.1.
    pub port: u16,
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
        "no Mandate endpoint is running on 127.0.0.1:{port}; start it (the app's Settings, or \
         `mandate serve`) and try again"
    )]
    NotRunning { port: u16 },
    #[error("the endpoint on 127.0.0.1:{port} did not answer: {reason}")]
    Unreachable { port: u16, reason: String },
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

/// The token endpoint's URL for `port`, as the assertion's `aud` names it.
pub fn token_endpoint(port: u16) -> String {
    format!("http://127.0.0.1:{port}/oauth2/token")
}

/// Ask the endpoint on `req.port` for an access token for `req.agent`.
pub async fn request_token(req: &TokenRequest<'_>) -> Result<TokenResponse, ClientError> {
    let url = token_endpoint(req.port);
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
    let port = req.port;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| ClientError::Unreachable {
            port,
            reason: e.to_string(),
        })?;
    let r = client.post(&url).form(&form).send().await.map_err(|e| {
        if e.is_connect() {
            ClientError::NotRunning { port }
        } else {
            ClientError::Unreachable {
                port,
                reason: e.to_string(),
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
