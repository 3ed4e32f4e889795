//! The endpoint's HTTPS identity on loopback, for clients that insist on HTTPS (the MCP
//! authorization spec requires it of authorization-server endpoints).
//!
//! One self-signed certificate (ECDSA P-256) whose subject alternative names are exactly
//! `127.0.0.1`, `::1` and `localhost`, created on first use and valid for 397 days; it is
//! replaced when fewer than 30 days are left, when its key is missing from the keychain, or on
//! request ([`Mandate::rotate_loopback_tls`]). The private key lives only in the OS keychain,
//! under the account `tls-key/<SHA-256 of the certificate>`, so a certificate can only ever be
//! paired with its own key (two processes creating one at once cannot cross them). The public
//! certificate is written to the data folder ([`CERT_FILE`]), where clients take it to trust
//! it (`mandate tls export`). Creating or rotating it is audited as
//! `endpoint.tls_certificate_created`.
//!
//! What it is not: a certificate authority. Clients trust this one certificate for these three
//! names, not anything it could sign (it is not a CA certificate), and nobody else trusts it.
//! The HTTP side (rustls server, handshakes) lives in `mandate-server`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::store::params;
use chrono::{DateTime, Datelike, Utc};
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::Mandate;
use crate::audit::{self, Decision, NewEvent, Target};
use crate::error::{Error, Result};
use crate::secret::{SecretRef, Sensitive};

/// The certificate's file in the data folder (public; PEM).
pub const CERT_FILE: &str = "tls-cert.pem";
/// The names the certificate is valid for, and no others.
pub const LOOPBACK_NAMES: [&str; 3] = ["127.0.0.1", "::1", "localhost"];
/// How long a new certificate is valid.
pub const VALID_DAYS: i64 = 397;
/// A certificate with fewer days than this left is replaced at the next use.
pub const RENEW_BEFORE_DAYS: i64 = 30;

/// The certificate and its key, ready for a TLS server.
#[derive(Debug)]
pub struct LoopbackTls {
    /// The certificate, PEM (what clients trust).
    pub cert_pem: String,
    /// The certificate, DER (what the server presents).
    pub cert_der: Vec<u8>,
    /// The private key, PKCS#8 DER. Never written to disk.
    pub key_pkcs8: Sensitive<Vec<u8>>,
    /// Where the certificate is in the data folder.
    pub cert_path: PathBuf,
    /// SHA-256 of the certificate, `AB:CD:...` as `openssl x509 -fingerprint -sha256` prints.
    pub fingerprint: String,
    /// The last day it is valid.
    pub not_after: DateTime<Utc>,
    /// Whether this call created it (clients must be given the new certificate).
    pub created: bool,
}

impl LoopbackTls {
    /// The key as rustls takes it.
    pub fn private_key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.expose().clone()))
    }

    /// The certificate as rustls takes it.
    pub fn certificate_der(&self) -> CertificateDer<'static> {
        CertificateDer::from(self.cert_der.clone())
    }
}

fn sha256_hex(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn key_ref(cert_der: &[u8]) -> SecretRef {
    SecretRef {
        account: format!("tls-key/{}", sha256_hex(cert_der)),
    }
}

fn tls_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Storage(format!("{what}: {e}"))
}

/// The first certificate in a PEM text.
fn parse_cert_pem(text: &str) -> Option<Vec<u8>> {
    use rustls_pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(text.as_bytes())
        .next()
        .and_then(|c| c.ok())
        .map(|c| c.as_ref().to_vec())
}

/// Whether a client that trusts exactly `cert` accepts it for every loopback name at `at`.
/// This is the check the clients themselves make (rustls-webpki), so it covers the validity
/// window, the names, the key usage and the signature.
fn accepted_at(cert: &[u8], at: DateTime<Utc>) -> bool {
    let der = CertificateDer::from(cert.to_vec());
    let mut roots = rustls::RootCertStore::empty();
    if roots.add(der.clone()).is_err() {
        return false;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let Ok(verifier) =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
    else {
        return false;
    };
    let Ok(secs) = u64::try_from(at.timestamp()) else {
        return false;
    };
    let now = UnixTime::since_unix_epoch(Duration::from_secs(secs));
    LOOPBACK_NAMES.iter().all(|name| {
        ServerName::try_from(*name).is_ok_and(|sn| {
            verifier
                .verify_server_cert(&der, &[], &sn, &[], now)
                .is_ok()
        })
    })
}

/// Whether `key` (PKCS#8) is the private half of `cert`.
fn key_matches(cert: &[u8], key: &[u8]) -> bool {
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_vec()));
    let Ok(signer) = rustls::crypto::ring::sign::any_ecdsa_type(&der) else {
        return false;
    };
    rustls::sign::CertifiedKey::new(vec![CertificateDer::from(cert.to_vec())], signer)
        .keys_match()
        .is_ok()
}

/// A fresh key and certificate, valid from yesterday for [`VALID_DAYS`].
fn generate(install_id: &str, now: DateTime<Utc>) -> Result<(Vec<u8>, String, Sensitive<Vec<u8>>)> {
    let mut key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| tls_error("could not generate the TLS key", e))?;
    let mut params = rcgen::CertificateParams::new(
        LOOPBACK_NAMES
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
    )
    .map_err(|e| tls_error("could not describe the TLS certificate", e))?;
    let day = |d: DateTime<Utc>| {
        rcgen::date_time_ymd(
            d.year(),
            u8::try_from(d.month()).unwrap_or(1),
            u8::try_from(d.day()).unwrap_or(1),
        )
    };
    params.not_before = day(now - chrono::Duration::days(1));
    params.not_after = day(now + chrono::Duration::days(VALID_DAYS));
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "Mandate endpoint on this computer",
    );
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationalUnitName, install_id);
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    let cert = params
        .self_signed(&key)
        .map_err(|e| tls_error("could not sign the TLS certificate", e))?;
    let pkcs8 = Sensitive::new(key.serialize_der());
    // rcgen keeps a PKCS#8 copy; wipe it (the Sensitive copy is wiped when dropped).
    zeroize::Zeroize::zeroize(&mut key);
    Ok((cert.der().as_ref().to_vec(), cert.pem(), pkcs8))
}

/// Write `text` to `path` through a temporary file and a rename, so a reader never sees half.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let io = |action: &'static str, e: std::io::Error| Error::Io {
        action,
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let tmp = path.with_extension(format!("pem.{}.tmp", std::process::id()));
    crate::private_file::write(&tmp, text.as_bytes()).map_err(|e| io("could not write", e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io("could not write", e)
    })
}

/// The last instant the certificate is valid, as a client sees it (found by asking the
/// verifier, since we do not parse X.509 ourselves): a day's precision is enough.
fn not_after(cert: &[u8], now: DateTime<Utc>) -> DateTime<Utc> {
    let mut lo = 0i64;
    let mut hi = VALID_DAYS + 2;
    if !accepted_at(cert, now) {
        return now;
    }
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if accepted_at(cert, now + chrono::Duration::days(mid)) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    now + chrono::Duration::days(lo)
}

impl Mandate {
    /// Where the endpoint's certificate is (it may not exist yet).
    pub fn tls_cert_path(&self) -> PathBuf {
        self.data_dir().join(CERT_FILE)
    }

    /// The current certificate and key if the file holds a certificate that clients accept
    /// for the loopback names until at least `until`, and the keychain holds its key.
    fn current_tls(&self, until: DateTime<Utc>) -> Result<Option<LoopbackTls>> {
        let path = self.tls_cert_path();
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(None);
        };
        let Some(der) = parse_cert_pem(&text) else {
            return Ok(None);
        };
        let now = self.now();
        if !accepted_at(&der, now) || !accepted_at(&der, until) {
            return Ok(None);
        }
        let Some(key) = self.keychain_get(key_ref(&der))? else {
            return Ok(None);
        };
        let Some(pkcs8) = crate::keys::b64url_decode(key.expose()) else {
            return Ok(None);
        };
        let pkcs8 = Sensitive::new(pkcs8);
        if !key_matches(&der, pkcs8.expose()) {
            return Ok(None);
        }
        Ok(Some(LoopbackTls {
            cert_pem: text,
            fingerprint: fingerprint(&der),
            not_after: not_after(&der, now),
            cert_der: der,
            key_pkcs8: pkcs8,
            cert_path: path,
            created: false,
        }))
    }

    /// The endpoint's TLS certificate and key, created on first use (and replaced when it is
    /// about to expire or its key is gone). Needs the keychain.
    pub fn loopback_tls(&self) -> Result<LoopbackTls> {
        let renew_at = self.now() + chrono::Duration::days(RENEW_BEFORE_DAYS);
        if let Some(t) = self.current_tls(renew_at)? {
            return Ok(t);
        }
        let why = if self.tls_cert_path().exists() {
            "renewed"
        } else {
            "first use"
        };
        self.create_tls(why, Some(renew_at))
    }

    /// Replace the certificate and key now. Clients must trust the new certificate.
    pub fn rotate_loopback_tls(&self) -> Result<LoopbackTls> {
        self.create_tls("rotated", None)
    }

    /// Make a new certificate. With `reuse_until`, a good certificate that another process
    /// wrote meanwhile is used instead.
    fn create_tls(&self, why: &str, reuse_until: Option<DateTime<Utc>>) -> Result<LoopbackTls> {
        // Made at first use or renewal as part of a person's work (`mandate serve --tls`).
        let actor = self.actor_or_system("endpoint", "HTTPS certificate made at first use");
        let (der, pem, pkcs8) = generate(self.install_id(), self.now())?;
        // The key goes to the keychain first (invariant 4), under an account only this
        // certificate names.
        let kref = key_ref(&der);
        self.keychain_set(
            kref.clone(),
            &Sensitive::new(crate::keys::b64url(pkcs8.expose())),
        )?;
        let path = self.tls_cert_path();
        let fp = fingerprint(&der);
        let na = not_after(&der, self.now());
        let res = self.write(|tx, now| {
            // BEGIN IMMEDIATE serialises us with any other process doing the same.
            if let Some(until) = reuse_until
                && let Some(theirs) = self.current_tls(until)?
            {
                return Ok((Some(theirs), None));
            }
            // The certificate this one replaces, whose key is deleted after the commit (the
            // file itself may be gone or unreadable, so the database remembers).
            let old: Option<String> = tx.query_opt(
                "SELECT value FROM meta WHERE key = 'tls_cert_sha256'",
                params![],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('tls_cert_sha256', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![sha256_hex(&der)],
            )?;
            audit::append(
                tx,
                now,
                NewEvent::new(&actor, "endpoint.tls_certificate_created", Decision::Allow)
                    .target(Target::new(
                        "certificate",
                        &fp,
                        "endpoint HTTPS certificate",
                    ))
                    .reason(format!("TLS certificate created ({why})"))
                    .details(json!({
                        "sha256": fp,
                        "names": LOOPBACK_NAMES,
                        "not_after": na.to_rfc3339(),
                        "why": why,
                    })),
            )?;
            write_atomically(&path, &pem)?;
            Ok((None, old))
        });
        match res {
            Ok((Some(theirs), _)) => {
                let _ = self.keychain_delete(kref);
                Ok(theirs)
            }
            Ok((None, old)) => {
                if let Some(old) = old.filter(|o| *o != sha256_hex(&der)) {
                    let _ = self.keychain_delete(SecretRef {
                        account: format!("tls-key/{old}"),
                    });
                }
                tracing::info!(sha256 = %fp, "created the endpoint's TLS certificate ({why})");
                Ok(LoopbackTls {
                    cert_pem: pem,
                    cert_der: der,
                    key_pkcs8: pkcs8,
                    cert_path: path,
                    fingerprint: fp,
                    not_after: na,
                    created: true,
                })
            }
            Err(e) => {
                let _ = self.keychain_delete(kref);
                Err(e)
            }
        }
    }
}
