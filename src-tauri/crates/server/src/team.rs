//! `mandate server`: the same endpoint for a team, on a network address.
//!
//! A laptop's endpoint answers only on 127.0.0.1. A team server answers agents on other
//! machines, so what changes is exposure, not rules:
//!
//! - **HTTPS off loopback.** A non-loopback listen address needs `--tls-cert` and `--tls-key`
//!   (PEM files, the operator's certificate); plain HTTP is refused at start-up there. Plain
//!   HTTP remains possible on loopback, behind a TLS-terminating proxy on the same machine.
//!   The private key file must not be readable by every user.
//! - **The Host allow-list is the public URL.** Every request must name exactly the public
//!   URL's host and port (`--public-url https://mandate.acme.internal:8443`; for the scheme's
//!   default port, the bare host too): anything else is 421, as on loopback. The issuer, every
//!   URL in the metadata, the assertion audiences and the DPoP `htu` are that URL.
//! - **Rate limits per source address** on top of the per-agent limit: a token bucket per
//!   peer IP for every request, before the body is read or any crypto runs (429 with
//!   `Retry-After`). The body limit, the request deadline and the refusal of browser requests
//!   (`Origin`) stay as they are.
//!
//! What it is not: another endpoint. The router, the handlers, the broker and the audit are
//! the loopback endpoint's (`crate::router`); only the guard's peer and Host checks differ.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mandate_core::oauth::RateLimit;
use tokio_rustls::rustls;

/// How a team server is exposed.
#[derive(Debug, Clone)]
pub struct TeamOptions {
    /// Where to listen (`0.0.0.0:8443`).
    pub listen: SocketAddr,
    /// The URL agents use, which is also the issuer (`https://mandate.acme.internal:8443`).
    pub public_url: String,
    /// The certificate chain and private key (PEM). Required off loopback.
    pub tls: Option<TlsFiles>,
    /// Requests per source address; `None` turns the limit off (benchmarks only).
    pub per_source: Option<RateLimit>,
}

/// The default per-source limit: generous enough for a NAT-ed office of agents.
pub const DEFAULT_PER_SOURCE: RateLimit = RateLimit {
    per_minute: 6000,
    burst: 600,
};

/// The operator's certificate chain and key, PEM.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why a team server's settings are refused (each message names the fix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TeamConfigError {
    #[error(
        "refusing to serve plain HTTP on {0}: agents on other machines would send signed \
         assertions and receive tokens in clear text. Give --tls-cert and --tls-key, or listen \
         on a loopback address behind a TLS-terminating proxy"
    )]
    PlainHttpOffLoopback(SocketAddr),
    #[error("{0}")]
    PublicUrl(String),
    #[error("{0}")]
    Tls(String),
}

/// What the guard enforces for a team server.
#[derive(Debug)]
pub struct TeamExposure {
    pub public_url: String,
    hosts: Vec<String>,
    limiter: Option<(RateLimit, SourceLimiter)>,
}

impl TeamExposure {
    /// The exposure for `opts`, with its public URL already checked.
    pub fn new(opts: &TeamOptions) -> Result<Self, TeamConfigError> {
        let url = mandate_core::team::check_public_url(&opts.public_url)
            .map_err(|e| TeamConfigError::PublicUrl(e.to_string()))?;
        let u = url::Url::parse(&url).map_err(|e| TeamConfigError::PublicUrl(e.to_string()))?;
        let host = u.host_str().unwrap_or_default().to_ascii_lowercase();
        let mut hosts = Vec::new();
        match u.port() {
            Some(p) => hosts.push(format!("{host}:{p}")),
            // The scheme's default port: clients send the bare host, some add the port.
            None => {
                hosts.push(host.clone());
                if let Some(p) = u.port_or_known_default() {
                    hosts.push(format!("{host}:{p}"));
                }
            }
        }
        if !opts.listen.ip().is_loopback() && opts.tls.is_none() {
            return Err(TeamConfigError::PlainHttpOffLoopback(opts.listen));
        }
        Ok(TeamExposure {
            public_url: url,
            hosts,
            limiter: opts.per_source.map(|l| (l, SourceLimiter::default())),
        })
    }

    /// Whether `host` (a Host header value) names the public URL.
    pub fn host_allowed(&self, host: &str) -> bool {
        let h = host.to_ascii_lowercase();
        self.hosts.contains(&h)
    }

    /// The Host values accepted, for error messages.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// Take one request from `peer`'s bucket; `Err(seconds)` to wait when it is empty.
    pub fn take(&self, peer: IpAddr, now_ms: i64) -> Result<(), u64> {
        match &self.limiter {
            Some((limit, l)) => l.take(*limit, peer, now_ms),
            None => Ok(()),
        }
    }
}

/// Most source addresses remembered at once; past it, full buckets are forgotten.
const MAX_SOURCES: usize = 65_536;

/// Token buckets per source address.
#[derive(Debug, Default)]
pub struct SourceLimiter {
    buckets: Mutex<HashMap<IpAddr, (f64, i64)>>,
}

impl SourceLimiter {
    fn take(&self, limit: RateLimit, peer: IpAddr, now_ms: i64) -> Result<(), u64> {
        let Ok(mut b) = self.buckets.lock() else {
            return Ok(());
        };
        let rate = f64::from(limit.per_minute.max(1)) / 60_000.0;
        let cap = f64::from(limit.burst.max(1));
        if b.len() >= MAX_SOURCES {
            // A bucket that has refilled is the same as a new one: forget those.
            b.retain(|_, (tokens, last)| *tokens + (now_ms - *last).max(0) as f64 * rate < cap);
        }
        let (tokens, last) = b.entry(peer).or_insert((cap, now_ms));
        *tokens = (*tokens + (now_ms - *last).max(0) as f64 * rate).min(cap);
        *last = now_ms;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / rate / 1000.0).ceil().max(1.0) as u64)
        }
    }
}

/// The rustls server configuration from the operator's PEM files: TLS 1.2 and 1.3, ALPN
/// `http/1.1`, no client certificates. The key file must not be readable by every user.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TeamConfigError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read = |p: &Path, what: &str| {
        std::fs::read(p).map_err(|e| {
            TeamConfigError::Tls(format!("the {what} {} cannot be read ({e})", p.display()))
        })
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(md) = std::fs::metadata(&files.key)
            && md.permissions().mode() & 0o004 != 0
        {
            return Err(TeamConfigError::Tls(format!(
                "the TLS key {} is readable by every user on this machine; narrow it first \
                 (`chmod 600 {}`, or 640 with a group the server runs in)",
                files.key.display(),
                files.key.display()
            )));
        }
    }
    let cert_pem = read(&files.cert, "certificate file")?;
    let key_pem = read(&files.key, "TLS key file")?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            TeamConfigError::Tls(format!(
                "{} is not a PEM certificate chain ({e})",
                files.cert.display()
            ))
        })?;
    if chain.is_empty() {
        return Err(TeamConfigError::Tls(format!(
            "{} holds no certificate",
            files.cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        TeamConfigError::Tls(format!(
            "{} is not a PEM private key ({e})",
            files.key.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TeamConfigError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            TeamConfigError::Tls(format!(
                "the certificate {} and the key {} do not fit together ({e})",
                files.cert.display(),
                files.key.display()
            ))
        })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn opts(listen: &str, url: &str, tls: bool) -> TeamOptions {
        TeamOptions {
            listen: listen.parse().unwrap(),
            public_url: url.into(),
            tls: tls.then(|| TlsFiles {
                cert: "c.pem".into(),
                key: "k.pem".into(),
            }),
            per_source: Some(RateLimit {
                per_minute: 60,
                burst: 2,
            }),
        }
    }

    #[test]
    fn plain_http_is_refused_off_loopback() {
        let e =
            TeamExposure::new(&opts("0.0.0.0:8443", "https://m.example:8443", false)).unwrap_err();
        assert!(matches!(e, TeamConfigError::PlainHttpOffLoopback(_)), "{e}");
        assert!(e.to_string().contains("--tls-cert"));
        assert!(TeamExposure::new(&opts("127.0.0.1:8080", "https://m.example", false)).is_ok());
        assert!(TeamExposure::new(&opts("0.0.0.0:8443", "https://m.example:8443", true)).is_ok());
    }

    #[test]
    fn only_the_public_urls_host_and_port_are_allowed() {
        let t = TeamExposure::new(&opts(
            "0.0.0.0:8443",
            "https://Mandate.Acme.internal:8443",
            true,
        ))
        .unwrap();
        assert!(t.host_allowed("mandate.acme.internal:8443"));
        assert!(t.host_allowed("MANDATE.ACME.INTERNAL:8443"));
        for bad in [
            "mandate.acme.internal",
            "mandate.acme.internal:443",
            "10.0.0.1:8443",
            "127.0.0.1:8443",
            "evil.example:8443",
            "mandate.acme.internal:8443.evil.example",
            "",
        ] {
            assert!(!t.host_allowed(bad), "{bad}");
        }
        let d =
            TeamExposure::new(&opts("0.0.0.0:443", "https://mandate.acme.internal", true)).unwrap();
        assert!(d.host_allowed("mandate.acme.internal"));
        assert!(d.host_allowed("mandate.acme.internal:443"));
        assert!(!d.host_allowed("mandate.acme.internal:8443"));
    }

    #[test]
    fn each_source_address_has_its_own_bucket() {
        let t = TeamExposure::new(&opts("0.0.0.0:8443", "https://m.example:8443", true)).unwrap();
        let a: IpAddr = "10.1.0.2".parse().unwrap();
        let b: IpAddr = "10.1.0.6".parse().unwrap();
        assert!(t.take(a, 0).is_ok());
        assert!(t.take(a, 0).is_ok());
        let wait = t.take(a, 0).unwrap_err();
        assert!(wait >= 1);
        assert!(t.take(b, 0).is_ok(), "another source is not held back");
        assert!(t.take(a, 1_000).is_ok(), "one per second refills");
    }
}
