//! A client for a team server, for agents on other machines: `mandate token --server URL` and
//! `mandate exec --server URL`.
//!
//! On a laptop, the local client proves the endpoint is this data folder's own with a signed
//! nonce (`client.rs`). A remote agent has no data folder; what tells it the server is the
//! real one is TLS, so trust is explicit and narrow:
//!
//! - `--server-ca FILE`: the team's CA (or the server's self-signed certificate), trusted alone
//!   instead of the system's roots, with the usual name check against the URL's host;
//! - `--server-fingerprint SHA256`: exactly one certificate, by the SHA-256 of its DER bytes
//!   (`openssl x509 -noout -fingerprint -sha256`), for a server with a self-signed certificate
//!   whose name does not matter; the handshake's signature is still checked with it;
//! - neither: the public Web PKI roots (a server with a certificate from a public CA).
//!
//! Then, on one connection: the RFC 8414 metadata, whose `issuer` must be exactly the URL we
//! were given (RFC 8414 §3.3) and whose `token_endpoint` must be under it, and only then the
//! `private_key_jwt` token request, signed with the agent's own key and addressed to that
//! token endpoint: the same request any OAuth library sends.
//!
//! What it is not: a second set of rules. The server decides and audits as it does for every
//! client.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{Request, StatusCode, header};
use ed25519_dalek::SigningKey;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use mandate_core::oauth::{ASSERTION_TYPE_JWT_BEARER, GRANT_CLIENT_CREDENTIALS, client_assertion};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use crate::client::{AbortOnDrop, ClientError, TIMEOUT, TokenResponse, chain, send, token_answer};

/// How to trust the team server's certificate.
#[derive(Debug, Clone)]
pub enum ServerTrust {
    /// These CA certificates (PEM), alone.
    Ca(Vec<u8>),
    /// Exactly the certificate whose DER bytes hash to this SHA-256.
    Fingerprint([u8; 32]),
    /// The public Web PKI roots.
    WebPki,
}

impl ServerTrust {
    /// How this machine chose to trust the team server it joined (the membership's record).
    pub fn from_record(r: &mandate_core::team_client::ServerTrustRecord) -> Result<Self, String> {
        use mandate_core::team_client::ServerTrustRecord as R;
        Ok(match r {
            R::Ca(pem) => ServerTrust::Ca(pem.as_bytes().to_vec()),
            R::Fingerprint(hex) => ServerTrust::fingerprint(hex)?,
            R::WebPki => ServerTrust::WebPki,
        })
    }

    /// Parse a SHA-256 fingerprint as OpenSSL prints it (`AB:CD:...`) or as plain hex, with an
    /// optional `sha256:`/`SHA256=` prefix.
    pub fn fingerprint(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let t = t
            .strip_prefix("sha256:")
            .or_else(|| t.strip_prefix("SHA256:"))
            .or_else(|| t.strip_prefix("sha256 Fingerprint="))
            .or_else(|| t.strip_prefix("SHA256 Fingerprint="))
            .unwrap_or(t);
        let hex: String = t.chars().filter(|c| *c != ':').collect();
        if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "'{s}' is not a SHA-256 fingerprint (64 hex digits, colons allowed); print the \
                 server's with `openssl x509 -in CERT -noout -fingerprint -sha256`"
            ));
        }
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
        }
        Ok(ServerTrust::Fingerprint(out))
    }
}

/// A team server to ask for tokens.
#[derive(Clone)]
pub struct RemoteServer {
    /// The issuer identifier: `https://host[:port]`, no trailing slash.
    url: String,
    host: String,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for RemoteServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteServer")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Accepts exactly one certificate, by fingerprint, and checks the handshake's signature with
/// it (so a server that merely replays the certificate cannot complete the handshake).
#[derive(Debug)]
struct PinnedCert {
    sha256: [u8; 32],
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if Sha256::digest(end_entity.as_ref()).as_slice() == self.sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the server's certificate is not the pinned one (--server-fingerprint)".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Records the certificate a server presents and refuses it, so that nothing is ever sent
/// over the connection: [`peek_fingerprint`].
#[derive(Debug)]
struct Recorder {
    seen: std::sync::Mutex<Option<[u8; 32]>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let hash: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if let Ok(mut s) = self.seen.lock() {
            *s = Some(hash);
        }
        Err(rustls::Error::General(
            "only looking at the certificate".into(),
        ))
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General(
            "only looking at the certificate".into(),
        ))
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General(
            "only looking at the certificate".into(),
        ))
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The SHA-256 fingerprint (hex, colon-separated pairs as OpenSSL prints it) of the
/// certificate the server at `url` presents, for a person to compare with the one its admin
/// gave them before trusting it. The handshake is abandoned at the certificate: nothing is
/// sent to a server not yet trusted.
pub async fn peek_fingerprint(url: &str) -> Result<String, String> {
    // The URL's checks are the same as for a trusted server.
    let probe = RemoteServer::new(url, ServerTrust::Fingerprint([0; 32]))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let recorder = Arc::new(Recorder {
        seen: std::sync::Mutex::new(None),
        provider: provider.clone(),
    });
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::time::timeout(
        TIMEOUT,
        tokio::net::TcpStream::connect((probe.host.as_str(), probe.port)),
    )
    .await
    .map_err(|_| {
        format!(
            "{} did not answer within {} s",
            probe.url,
            TIMEOUT.as_secs()
        )
    })?
    .map_err(|e| format!("{} cannot be reached ({e})", probe.url))?;
    let name = match probe.host.trim_matches(['[', ']']).parse::<IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(probe.host.clone())
            .map_err(|e| format!("'{}' is not a host name ({e})", probe.host))?,
    };
    let _ = tokio::time::timeout(
        TIMEOUT,
        tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp),
    )
    .await;
    let seen = recorder.seen.lock().ok().and_then(|s| *s);
    seen.map(|h| {
        h.iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    })
    .ok_or_else(|| format!("{} presented no certificate over TLS", probe.url))
}

impl RemoteServer {
    /// The team server at `url` (`https://host[:port]`), trusted as `trust` says.
    pub fn new(url: &str, trust: ServerTrust) -> Result<Self, String> {
        let url = url.trim().trim_end_matches('/');
        let u = url::Url::parse(url).map_err(|e| {
            format!("'{url}' is not a URL ({e}); give the team server's public URL, e.g. https://mandate.acme.internal:8443")
        })?;
        if u.scheme() != "https" {
            return Err(format!(
                "'{url}' is not https://; a team server is reached over HTTPS only"
            ));
        }
        if u.path() != "/" && !u.path().is_empty() || u.query().is_some() {
            return Err(format!(
                "'{url}' must be only the server's URL (scheme, host, port), as its admin gave it"
            ));
        }
        let host = u
            .host_str()
            .ok_or_else(|| format!("'{url}' has no host"))?
            .to_string();
        let port = u.port_or_known_default().unwrap_or(443);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let mut cfg = match trust {
            ServerTrust::Ca(pem) => {
                use rustls::pki_types::pem::PemObject;
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|e| format!("it is not a PEM certificate ({e})"))?;
                    roots
                        .add(cert)
                        .map_err(|e| format!("it holds an unusable certificate ({e})"))?;
                }
                if roots.is_empty() {
                    return Err("the CA file holds no certificate".into());
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            ServerTrust::Fingerprint(sha256) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedCert { sha256, provider }))
                .with_no_client_auth(),
            ServerTrust::WebPki => {
                let roots = rustls::RootCertStore::from_iter(
                    webpki_roots::TLS_SERVER_ROOTS.iter().cloned(),
                );
                builder.with_root_certificates(roots).with_no_client_auth()
            }
        };
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(RemoteServer {
            url: format!(
                "https://{}{}",
                u.host_str().unwrap_or_default(),
                u.port().map(|p| format!(":{p}")).unwrap_or_default()
            ),
            host,
            port,
            tls: Arc::new(cfg),
        })
    }

    /// The issuer identifier (the URL given, normalised).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's host name (or address), without the port.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The broker's URL for `connection` on this server.
    pub fn proxy_url(&self, connection: &str) -> String {
        format!(
            "{}{}/{connection}",
            self.url,
            mandate_core::broker::PROXY_PREFIX
        )
    }
}

/// What to ask the team server for.
#[derive(Debug)]
pub struct RemoteTokenRequest<'a> {
    pub agent: &'a str,
    pub kid: &'a str,
    pub key: &'a SigningKey,
    pub scopes: &'a [String],
    pub resource: Option<&'a str>,
    pub now: i64,
}

#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    token_endpoint: String,
}

/// Ask the team server for an access token for `req.agent`.
pub async fn request_token(
    server: &RemoteServer,
    req: &RemoteTokenRequest<'_>,
) -> Result<TokenResponse, ClientError> {
    match tokio::time::timeout(TIMEOUT, exchange(server, req)).await {
        Ok(r) => r,
        Err(_) => Err(ClientError::Unreachable {
            base: server.url.clone(),
            reason: format!("no answer within {} s", TIMEOUT.as_secs()),
        }),
    }
}

/// One HTTP/1.1 connection to a team server over TLS (trusted as the server was told), and
/// the `Host` value its requests carry.
pub(crate) struct Connection {
    pub sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    pub authority: String,
    _driver: AbortOnDrop,
}

impl RemoteServer {
    /// Open a connection to the server.
    pub(crate) async fn connect(&self) -> Result<Connection, ClientError> {
        let server = self;
        let base = server.url.clone();
        let unreachable = |reason: String| ClientError::Unreachable {
            base: base.clone(),
            reason,
        };
        let tcp = tokio::net::TcpStream::connect((server.host.as_str(), server.port))
            .await
            .map_err(|e| {
                // Not `NotRunning`: its advice (start `mandate serve`) is for this computer's
                // own endpoint, not for a team server someone else runs.
                if e.kind() == std::io::ErrorKind::ConnectionRefused {
                    unreachable("nothing is listening there (connection refused)".into())
                } else {
                    unreachable(e.to_string())
                }
            })?;
        let _ = tcp.set_nodelay(true);
        let name = match server.host.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(server.host.clone())
                .map_err(|e| unreachable(format!("'{}' is not a host name ({e})", server.host)))?,
        };
        let tls = tokio_rustls::TlsConnector::from(server.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| {
                unreachable(format!(
                    "the TLS handshake failed ({}); check the server's certificate against \
                     --server-ca or --server-fingerprint (ask the team server's admin)",
                    chain(&e)
                ))
            })?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| unreachable(chain(&e)))?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let authority = url::Url::parse(&server.url)
            .ok()
            .map(|u| {
                format!(
                    "{}{}",
                    u.host_str().unwrap_or_default(),
                    u.port().map(|p| format!(":{p}")).unwrap_or_default()
                )
            })
            .unwrap_or_default();
        Ok(Connection {
            sender,
            authority,
            _driver: AbortOnDrop(driver),
        })
    }

    /// Read the server's RFC 8414 metadata on `conn` and check that its issuer is exactly the
    /// URL we were given; the token endpoint's path on this server.
    pub(crate) async fn check_metadata(
        &self,
        conn: &mut Connection,
    ) -> Result<String, ClientError> {
        let base = self.url.clone();
        let unreachable = |reason: String| ClientError::Unreachable {
            base: base.clone(),
            reason,
        };
        let ask = Request::get("/.well-known/oauth-authorization-server")
            .header(header::HOST, &conn.authority)
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| unreachable(e.to_string()))?;
        let (status, body) = send(&mut conn.sender, ask).await.map_err(&unreachable)?;
        if status != StatusCode::OK {
            return Err(ClientError::BadAnswer(format!(
                "the server answered its metadata request with HTTP {status}; is {base} a Mandate \
                 team server?"
            )));
        }
        let md: Metadata = serde_json::from_slice(&body)
            .map_err(|_| ClientError::BadAnswer("its metadata is not RFC 8414 JSON".into()))?;
        if md.issuer != base {
            return Err(ClientError::BadAnswer(format!(
                "the server says its issuer is {}, not {base}; use exactly the URL its admin gave",
                md.issuer
            )));
        }
        md.token_endpoint
            .strip_prefix(&base)
            .filter(|p| p.starts_with('/'))
            .map(str::to_string)
            .ok_or_else(|| {
                ClientError::BadAnswer(format!(
                    "its token endpoint {} is not on {base}",
                    md.token_endpoint
                ))
            })
    }
}

async fn exchange(
    server: &RemoteServer,
    req: &RemoteTokenRequest<'_>,
) -> Result<TokenResponse, ClientError> {
    let base = server.url.clone();
    let unreachable = |reason: String| ClientError::Unreachable {
        base: base.clone(),
        reason,
    };
    let mut conn = server.connect().await?;
    let token_path = server.check_metadata(&mut conn).await?;
    let md_token_endpoint = format!("{base}{token_path}");
    let authority = conn.authority.clone();

    // 2. The token request, addressed to that endpoint.
    let assertion = client_assertion(req.agent, req.kid, req.key, &md_token_endpoint, req.now);
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
    let post = Request::post(token_path)
        .header(header::HOST, &authority)
        .header(header::ACCEPT, "application/json")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form)))
        .map_err(|e| unreachable(e.to_string()))?;
    let (status, body) = send(&mut conn.sender, post).await.map_err(&unreachable)?;
    token_answer(status, &body)
}
