//! A client for Mandate's own token endpoint, for callers on this machine that hold an
//! agent's key: `mandate token`, `mandate exec` (and its refreshes) and the desktop wizard's
//! test token all get their tokens here.
//!
//! It opens one connection to `127.0.0.1:PORT` (TLS with the data folder's certificate when
//! the endpoint serves HTTPS) and first asks the endpoint to prove it is this data folder's
//! own (`mandate_core::oauth::endpoint_proof`: a fresh nonce signed with the issuer key).
//! Only then, on the same connection, does it sign a `private_key_jwt` client assertion
//! (RFC 7523) with the agent's Ed25519 key and post a `client_credentials` request, exactly
//! what any OAuth library would send, so the token goes through the same policy checks and
//! audit events as every other request. A program that holds the port without being the
//! endpoint gets a nonce and nothing else.
//!
//! Errors say whether the endpoint is not running, is not ours, refused the request (with its
//! RFC 6749 error and description) or answered nonsense; none holds the key or the token.
//!
//! HTTP is hyper's client over that one connection (reqwest pools connections and cannot
//! promise the token request uses the connection whose endpoint was proven).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Request, StatusCode, header};
use ed25519_dalek::SigningKey;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use mandate_core::Mandate;
use mandate_core::oauth::endpoint_proof::{self, EndpointProof};
use mandate_core::oauth::{ASSERTION_TYPE_JWT_BEARER, GRANT_CLIENT_CREDENTIALS, client_assertion};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls;

/// Longest the whole exchange (connect, proof, token) may take.
pub const TIMEOUT: Duration = Duration::from_secs(15);
/// Largest answer read from the endpoint.
const MAX_ANSWER: usize = 64 * 1024;

/// Where the endpoint listens and how to reach it.
#[derive(Clone)]
pub struct EndpointAddr {
    pub port: u16,
    /// Trust for an HTTPS endpoint: exactly the data folder's certificate, no system roots.
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for EndpointAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointAddr")
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl EndpointAddr {
    /// A plain-HTTP endpoint on 127.0.0.1:`port`.
    pub fn http(port: u16) -> Self {
        EndpointAddr { port, tls: None }
    }

    /// An HTTPS endpoint on 127.0.0.1:`port` whose certificate is `cert_pem` (trusted alone).
    pub fn https(port: u16, cert_pem: &[u8]) -> Result<Self, String> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        let mut any = false;
        for cert in CertificateDer::pem_slice_iter(cert_pem) {
            let cert = cert.map_err(|e| format!("it is not a PEM certificate ({e})"))?;
            roots
                .add(cert)
                .map_err(|e| format!("it holds an unusable certificate ({e})"))?;
            any = true;
        }
        if !any {
            return Err("it holds no certificate".into());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(EndpointAddr {
            port,
            tls: Some(Arc::new(cfg)),
        })
    }

    /// `http://127.0.0.1:PORT` or `https://...`: the issuer identifier.
    pub fn base(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// What to ask for.
#[derive(Debug)]
pub struct TokenRequest<'a> {
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
    /// Grants the endpoint left out (a connection's trust floor), and why.
    #[serde(default)]
    pub withheld_scope: Option<String>,
    #[serde(default)]
    pub withheld_description: Option<String>,
}

/// Why no token came back.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "no Mandate endpoint is running at {base}; start it (`mandate serve`, `mandate service \
         install`, or open the app) and try again"
    )]
    NotRunning { base: String },
    #[error("{base} did not answer: {reason}")]
    Unreachable { base: String, reason: String },
    #[error(
        "the program listening on {base} did not prove that it is this data folder's Mandate \
         endpoint ({reason}), so nothing was sent to it. If it is an older Mandate, restart it \
         (`mandate service install` again, or reopen the app); otherwise another program holds \
         the port: find it with `ss -ltnp 'sport = :{port}'` (or `lsof -i :{port}`) and stop it"
    )]
    NotOurs {
        base: String,
        port: u16,
        reason: String,
    },
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
    /// The CLI's exit code: 9 when the endpoint refused, 8 when it could not be asked (not
    /// running, not answering, or not ours).
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Refused { .. } => 9,
            _ => 8,
        }
    }
}

/// An error and its causes in one line (the TLS or socket reason is in the chain).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Ask the endpoint at `addr` for an access token for `req.agent`, after it has proven it is
/// `m`'s own endpoint.
pub async fn request_token(
    m: &Arc<Mandate>,
    addr: &EndpointAddr,
    req: &TokenRequest<'_>,
) -> Result<TokenResponse, ClientError> {
    let base = addr.base();
    match tokio::time::timeout(TIMEOUT, exchange(m, addr, req)).await {
        Ok(r) => r,
        Err(_) => Err(ClientError::Unreachable {
            base,
            reason: format!("no answer within {} s", TIMEOUT.as_secs()),
        }),
    }
}

async fn exchange(
    m: &Arc<Mandate>,
    addr: &EndpointAddr,
    req: &TokenRequest<'_>,
) -> Result<TokenResponse, ClientError> {
    let base = addr.base();
    let unreachable = |reason: String| ClientError::Unreachable {
        base: base.clone(),
        reason,
    };
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", addr.port))
        .await
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::ConnectionRefused {
                ClientError::NotRunning { base: base.clone() }
            } else {
                unreachable(e.to_string())
            }
        })?;
    let _ = tcp.set_nodelay(true);
    match &addr.tls {
        None => on_connection(m, addr, req, tcp).await,
        Some(cfg) => {
            let name =
                rustls::pki_types::ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
            let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| {
                    unreachable(format!(
                        "it could not be reached over HTTPS: the TLS handshake failed ({}); is \
                         `mandate serve --tls` running there, with the certificate that is in the \
                         data folder now?",
                        chain(&e)
                    ))
                })?;
            on_connection(m, addr, req, tls).await
        }
    }
}

/// The proof, then the token request, on one connection.
async fn on_connection<S>(
    m: &Arc<Mandate>,
    addr: &EndpointAddr,
    req: &TokenRequest<'_>,
    io: S,
) -> Result<TokenResponse, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let base = addr.base();
    let host = format!("127.0.0.1:{}", addr.port);
    let unreachable = |reason: String| ClientError::Unreachable {
        base: base.clone(),
        reason,
    };
    let not_ours = |reason: String| ClientError::NotOurs {
        base: base.clone(),
        port: addr.port,
        reason,
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| unreachable(chain(&e)))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let _stop_driver = AbortOnDrop(driver);

    // 1. The proof.
    let nonce = endpoint_proof::new_nonce();
    let ask = Request::get(format!("{}?nonce={nonce}", endpoint_proof::PATH))
        .header(header::HOST, &host)
        .header(header::ACCEPT, "application/json")
        .body(Full::new(Bytes::new()))
        .map_err(|e| unreachable(e.to_string()))?;
    let (status, body) = send(&mut sender, ask)
        .await
        .map_err(|e| not_ours(format!("it did not answer the proof request: {e}")))?;
    if status != StatusCode::OK {
        return Err(not_ours(format!(
            "it answered the proof request with HTTP {status}"
        )));
    }
    let proof: EndpointProof = serde_json::from_slice(&body)
        .map_err(|_| not_ours("its answer to the proof request is not a proof".into()))?;
    let verdict = {
        let m = m.clone();
        let (base, nonce) = (base.clone(), nonce.clone());
        tokio::task::spawn_blocking(move || m.check_endpoint_proof(&base, &nonce, &proof))
            .await
            .map_err(|e| unreachable(e.to_string()))?
            .map_err(|e| unreachable(format!("the data folder could not be read ({e})")))?
    };
    verdict.map_err(|e| not_ours(e.0))?;

    // 2. The token request: only now is anything secret sent, on the proven connection.
    let token_url = format!("{base}/oauth2/token");
    let assertion = client_assertion(req.agent, req.kid, req.key, &token_url, req.now);
    let form = {
        let mut f = url::form_urlencoded::Serializer::new(String::new());
        f.append_pair("grant_type", GRANT_CLIENT_CREDENTIALS)
            .append_pair("client_assertion_type", ASSERTION_TYPE_JWT_BEARER)
            .append_pair("client_assertion", &assertion);
        if !req.scopes.is_empty() {
            f.append_pair("scope", &req.scopes.join(" "));
        }
        if let Some(r) = req.resource {
            f.append_pair("resource", r);
        }
        f.finish()
    };
    let post = Request::post("/oauth2/token")
        .header(header::HOST, &host)
        .header(header::ACCEPT, "application/json")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form)))
        .map_err(|e| unreachable(e.to_string()))?;
    let (status, body) = send(&mut sender, post).await.map_err(&unreachable)?;
    token_answer(status, &body)
}

/// The token endpoint's answer: the token, or the OAuth error it refused with. (Also the team
/// server client's, `remote.rs`.)
pub(crate) fn token_answer(status: StatusCode, body: &[u8]) -> Result<TokenResponse, ClientError> {
    if !status.is_success() {
        let e: ErrorBody = serde_json::from_slice(body).map_err(|_| {
            ClientError::BadAnswer(format!("HTTP {status} without an OAuth error body"))
        })?;
        return Err(ClientError::Refused {
            error: e.error.unwrap_or_else(|| status.to_string()),
            description: e
                .error_description
                .unwrap_or_else(|| "no description".into()),
        });
    }
    serde_json::from_slice(body).map_err(|e| ClientError::BadAnswer(e.to_string()))
}

/// Send one request and read its answer (at most [`MAX_ANSWER`] bytes).
pub(crate) async fn send(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), String> {
    send_limited(sender, req, MAX_ANSWER).await
}

/// [`send`] with another limit on the answer (a team's exported audit trail).
pub(crate) async fn send_limited(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
    max: usize,
) -> Result<(StatusCode, Bytes), String> {
    sender.ready().await.map_err(|e| chain(&e))?;
    let res = sender.send_request(req).await.map_err(|e| chain(&e))?;
    let status = res.status();
    let body = Limited::new(res.into_body(), max)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

/// Stops the connection's driver task when the exchange ends, however it ends.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
