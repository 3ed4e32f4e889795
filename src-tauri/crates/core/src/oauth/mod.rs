//! The token endpoint's rules: who gets which token, for how long, bound to what, and what
//! revoking means. The HTTP server (`mandate-server`) is an adapter over [`TokenService`]: it
//! parses the request, calls one method here and maps the [`OAuthError`] to RFC 6749 §5.2
//! JSON. Nothing in this module knows about HTTP beyond the method and URL a DPoP proof names.
//!
//! - [`jws`]: strict compact-JWS parsing, `verify_strict`, signing (why not a JOSE crate:
//!   see its docs and `docs/ARCHITECTURE.md`).
//! - `assertion`: RFC 7523 `private_key_jwt` client authentication.
//! - `client_agent`: the narrow view of the client agent read on every request.
//! - `dpop`: RFC 9449 proofs.
//! - `policy`: scopes, audiences, lifetimes, trust floors, rate limits.
//! - `records`: the token and delegation rows; what "active" means.
//! - `replay`: which assertion and DPoP `jti`s were already accepted (each is, once).
//! - [`resource`]: checking a token where it is used (the secret broker), with the same code.
//! - `service`: the three endpoints (token, introspect, revoke) and their audit events.
//! - `ciba`: OpenID CIBA poll mode: a backchannel request waits in the approvals inbox.
//! - `delegation`: "agent X may act for member M" (the `Mandate` methods the CLI and app use).
//! - `issuer`: the issuer keys, rotation and the JWKS.
//! - `local_client`: the agent key a client on this machine signs with (a revoked agent is
//!   refused there, audited).
//! - [`endpoint_proof`]: how a local client knows the endpoint on a port is this
//!   installation's own before it sends an assertion.
//!
//! What it is not: it never stores a token (only its `jti` and claims), never logs one, and
//! never reads the system clock (time comes from the `Mandate`'s clock).

mod assertion;
mod ciba;
mod client_agent;
mod delegation;
pub mod dpop;
pub mod endpoint_proof;
mod issuer;
pub mod jws;
mod local_client;
pub mod member;
mod policy;
mod readers;
mod records;
mod registry_memo;
pub(crate) mod replay;
pub mod resource;
mod service;

pub use delegation::{Delegation, NewDelegation};
pub use issuer::IssuerJwks;
pub use policy::RateLimit;
pub use service::{HttpContext, TokenResponse, TokenService};

use crate::secret::Sensitive;

/// `grant_type` of RFC 6749 §4.4.
pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
/// `grant_type` of RFC 8693.
pub const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// `grant_type` of OpenID CIBA Core 1.0 §10.1 (poll mode).
pub const GRANT_CIBA: &str = "urn:openid:params:grant-type:ciba";
/// `client_assertion_type` of RFC 7523 §2.2.
pub const ASSERTION_TYPE_JWT_BEARER: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// RFC 8693 token type of an access token.
pub const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 8693 token type of a JWT.
pub const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
/// Mandate's subject token type for acting under a registered delegation: the subject token
/// is the delegation's id.
pub const TOKEN_TYPE_DELEGATION: &str = "urn:mandate:params:oauth:token-type:delegation";

/// A `private_key_jwt` client assertion (RFC 7523 §2.2) for `client_id`, signed with its key
/// `kid`, addressed to `token_endpoint`, valid for one minute from `now` (Unix seconds) with a
/// fresh `jti`. What `mandate token` and the app's test token send.
pub fn client_assertion(
    client_id: &str,
    kid: &str,
    key: &ed25519_dalek::SigningKey,
    token_endpoint: &str,
    now: i64,
) -> String {
    jws::sign(
        &serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": kid}),
        &serde_json::json!({
            "iss": client_id, "sub": client_id, "aud": token_endpoint,
            "iat": now, "exp": now + 60, "jti": uuid::Uuid::new_v4().to_string(),
        }),
        key,
    )
}

/// Default access-token lifetime: 15 minutes.
pub const DEFAULT_TTL_SECS: u32 = 15 * 60;
/// Longest lifetime of a client assertion (`exp - iat`): one hour, the default of stock clients
/// (Authlib's `PrivateKeyJWT` signs assertions valid for 3600 s). Each `jti` is remembered until
/// its assertion expires, so a longer lifetime costs memory, never a replay.
pub const MAX_ASSERTION_LIFETIME_SECS: i64 = 60 * 60;
/// Clock skew tolerated on `exp`, `iat` and `nbf`.
pub const SKEW_SECS: i64 = 60;
/// Most form fields a request may carry.
pub const MAX_FORM_FIELDS: usize = 32;

/// Where the endpoint lives and its policy knobs.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// The issuer identifier, `http://127.0.0.1:PORT` (no trailing slash).
    pub issuer: String,
    /// Lifetime of a token when the agent has no maximum of its own.
    pub default_ttl_secs: u32,
    /// Per-agent token rate limit; `None` turns it off (benchmarks).
    pub rate_limit: Option<RateLimit>,
}

impl EndpointConfig {
    /// The configuration for an endpoint at `issuer` with the default policy.
    pub fn new(issuer: impl Into<String>) -> Self {
        EndpointConfig {
            issuer: issuer.into().trim_end_matches('/').to_string(),
            default_ttl_secs: DEFAULT_TTL_SECS,
            rate_limit: Some(RateLimit::default()),
        }
    }

    pub fn token_endpoint(&self) -> String {
        format!("{}/oauth2/token", self.issuer)
    }

    pub fn introspection_endpoint(&self) -> String {
        format!("{}/oauth2/introspect", self.issuer)
    }

    pub fn revocation_endpoint(&self) -> String {
        format!("{}/oauth2/revoke", self.issuer)
    }

    /// OpenID CIBA's backchannel authentication endpoint.
    pub fn backchannel_endpoint(&self) -> String {
        format!("{}/oauth2/bc-authorize", self.issuer)
    }

    /// Whether `aud` names this server: its issuer identifier or one of the endpoints a client
    /// authenticates at (RFC 7523 §3: the token endpoint; stock clients also use the
    /// introspection or revocation URL when they call those). Exact string match: anything
    /// else, another server included, is refused (the audience-injection fix of the RFC 7523
    /// update).
    pub fn is_own_audience(&self, aud: &str) -> bool {
        aud == self.issuer
            || aud == self.token_endpoint()
            || aud == self.introspection_endpoint()
            || aud == self.revocation_endpoint()
            || aud == self.backchannel_endpoint()
    }
}

/// An OAuth error: an RFC 6749 §5.2 (or RFC 8693, 8707, 9449, 7009) code and a description
/// that says why. Descriptions never echo a token, an assertion or a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidClient(String),
    #[error("{0}")]
    InvalidGrant(String),
    #[error("{0}")]
    UnauthorizedClient(String),
    /// `unauthorized_client` because the agent is below a connection's trust floor: its own
    /// trust verdict enforced, audited with [`crate::audit::TRUST_GATE`].
    #[error("{0}")]
    BelowTrustFloor(String),
    #[error("{0}")]
    UnsupportedGrantType(String),
    #[error("{0}")]
    InvalidScope(String),
    #[error("{0}")]
    InvalidTarget(String),
    #[error("{0}")]
    InvalidDpopProof(String),
    #[error("{0}")]
    UnsupportedTokenType(String),
    #[error("too many token requests for this agent; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("{0}")]
    TemporarilyUnavailable(String),
    /// CIBA (§11): nobody has answered yet; poll again after the interval.
    #[error("{0}")]
    AuthorizationPending(String),
    /// CIBA: polled faster than the interval; add 5 seconds to it.
    #[error("{0}")]
    SlowDown(String),
    /// CIBA: the request expired before anyone answered.
    #[error("{0}")]
    ExpiredToken(String),
    /// CIBA: a person said no.
    #[error("{0}")]
    AccessDenied(String),
    /// CIBA (§13): `login_hint` names no member.
    #[error("{0}")]
    UnknownUserId(String),
    /// CIBA (§13): the binding message is too long or not printable.
    #[error("{0}")]
    InvalidBindingMessage(String),
}

impl OAuthError {
    /// The `error` code of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient(_) => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnauthorizedClient(_) | OAuthError::BelowTrustFloor(_) => {
                "unauthorized_client"
            }
            OAuthError::UnsupportedGrantType(_) => "unsupported_grant_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::InvalidTarget(_) => "invalid_target",
            OAuthError::InvalidDpopProof(_) => "invalid_dpop_proof",
            OAuthError::UnsupportedTokenType(_) => "unsupported_token_type",
            OAuthError::RateLimited { .. } => "temporarily_unavailable",
            OAuthError::TemporarilyUnavailable(_) => "temporarily_unavailable",
            OAuthError::AuthorizationPending(_) => "authorization_pending",
            OAuthError::SlowDown(_) => "slow_down",
            OAuthError::ExpiredToken(_) => "expired_token",
            OAuthError::AccessDenied(_) => "access_denied",
            OAuthError::UnknownUserId(_) => "unknown_user_id",
            OAuthError::InvalidBindingMessage(_) => "invalid_binding_message",
        }
    }

    /// The HTTP status: 401 for client authentication failures, 429 and 503 where the
    /// request may be retried, 400 otherwise (CIBA's poll answers included, §11).
    pub fn status(&self) -> u16 {
        match self {
            OAuthError::InvalidClient(_) => 401,
            OAuthError::RateLimited { .. } => 429,
            OAuthError::TemporarilyUnavailable(_) => 503,
            _ => 400,
        }
    }

    /// Seconds after which a retry makes sense, for a `Retry-After` header.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            OAuthError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }
}

impl From<crate::Error> for OAuthError {
    /// Failures of the store or keychain: the endpoint fails closed. The message names no
    /// detail a client could use, and no token is ever issued without its audit event.
    fn from(e: crate::Error) -> Self {
        tracing::error!(error = %e, "the token endpoint could not use its store or keychain");
        OAuthError::TemporarilyUnavailable(
            "Mandate could not record this decision in its audit trail, so it refused the \
             request; the desktop app or `mandate serve` logs say why. Try again later"
                .into(),
        )
    }
}

/// A parsed `application/x-www-form-urlencoded` body (RFC 6749 §3.2: single-valued
/// parameters appear at most once; `resource` and `audience` may repeat).
#[derive(Default)]
pub struct Form {
    fields: Vec<(String, String)>,
}

impl std::fmt::Debug for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: values can be assertions and tokens.
        f.debug_list()
            .entries(self.fields.iter().map(|(k, _)| k))
            .finish()
    }
}

const MULTI_VALUED: [&str; 2] = ["resource", "audience"];

impl Form {
    /// Parse a body. Refuses more than [`MAX_FORM_FIELDS`] fields, repeated single-valued
    /// parameters, and empty parameter names.
    pub fn parse(body: &[u8]) -> Result<Form, OAuthError> {
        if std::str::from_utf8(body).is_err() {
            return Err(OAuthError::InvalidRequest(
                "the request body is not UTF-8 form data".into(),
            ));
        }
        let mut fields: Vec<(String, String)> = Vec::new();
        for (k, v) in form_urlencoded::parse(body) {
            if fields.len() >= MAX_FORM_FIELDS {
                return Err(OAuthError::InvalidRequest(format!(
                    "the request has more than {MAX_FORM_FIELDS} form fields"
                )));
            }
            if k.is_empty() {
                continue;
            }
            if !MULTI_VALUED.contains(&k.as_ref()) && fields.iter().any(|(n, _)| *n == k) {
                let name: String = k.chars().take(40).collect();
                return Err(OAuthError::InvalidRequest(format!(
                    "the parameter '{}' is given more than once",
                    name.escape_default()
                )));
            }
            fields.push((k.into_owned(), v.into_owned()));
        }
        Ok(Form { fields })
    }

    /// A single-valued parameter; empty values count as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Every value of a multi-valued parameter.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A secret parameter (an assertion or a token).
    pub fn secret(&self, name: &str) -> Option<Sensitive<String>> {
        self.get(name).map(|v| Sensitive::new(v.to_string()))
    }
}

/// Lower-case hex SHA-256 of a token: how the audit trail names a token it must not hold.
pub fn token_hash(token: &str) -> String {
    use sha2::Digest as _;
    crate::audit::hex(&sha2::Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_refuses_repeats_and_too_many_fields() {
        let f = Form::parse(b"grant_type=client_credentials&resource=a&resource=b").unwrap();
        assert_eq!(f.get("grant_type"), Some("client_credentials"));
        assert_eq!(f.all("resource"), vec!["a", "b"]);
        let e = Form::parse(b"scope=a&scope=b").unwrap_err();
        assert_eq!(e.code(), "invalid_request");
        let many: String = (0..40).map(|i| format!("f{i}=1&")).collect();
        assert_eq!(
            Form::parse(many.as_bytes()).unwrap_err().code(),
            "invalid_request"
        );
        assert!(Form::parse(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn statuses_follow_rfc6749() {
        assert_eq!(OAuthError::InvalidClient(String::new()).status(), 401);
        assert_eq!(OAuthError::InvalidScope(String::new()).status(), 400);
        assert_eq!(
            OAuthError::TemporarilyUnavailable(String::new()).status(),
            503
        );
    }
}
