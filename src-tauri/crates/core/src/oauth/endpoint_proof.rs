//! Proof that the endpoint on a port is this installation's own, before a client on this
//! machine sends it anything secret.
//!
//! Why: `mandate token`, `mandate exec` and the wizard's test token sign a client assertion
//! with an agent's key and post it to `127.0.0.1:PORT`. Any local process that holds that port
//! (the endpoint is stopped, or a client was pointed at another port) would receive a usable
//! assertion. So the client first sends a fresh random nonce; the endpoint answers with an
//! Ed25519 signature by its issuer key over the nonce and its own issuer URL; the client checks
//! it against the issuer key recorded in its data folder (`meta.issuer_kid`, an RFC 7638
//! thumbprint, or a retired issuer key still published), and only then sends the assertion,
//! on the same connection.
//!
//! Threat model: a process of another OS user (or a sandboxed one) that can bind loopback ports
//! but cannot read the data folder (0700) or the OS keychain. It cannot sign (no issuer key).
//! It could relay the nonce to the real endpoint, but the signed message names the issuer URL
//! the real endpoint serves, and the client refuses a proof whose issuer is not the URL it
//! connected to: the real endpoint holds its port exclusively, so a relay sits on another port.
//! (A client assertion's `aud` names that URL too, so a captured one is useless elsewhere.)
//! The proof and the token request share one connection, so the endpoint cannot change between
//! them. A process running as the same OS user is out of scope: it can read the keychain itself.
//!
//! What it is not: TLS. Over `serve --tls` the pinned certificate already authenticates the
//! endpoint; the proof is checked there too, as one rule for both.
//!
//! Domain separation: the issuer key also signs access tokens (JWS signing input, base64url
//! and dots) and audit checkpoints (signed-note text). The proof's message starts with a fixed
//! tag and NUL bytes, which neither can contain, and the nonce is 43 base64url characters, so
//! a proof can never be replayed as a token or a checkpoint, nor one of those as a proof.

use crate::store::params;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::Mandate;
use crate::error::{Error, Result};
use crate::keys;
use crate::registry::IssuerKey;

/// The path the endpoint answers proofs on (`GET ...?nonce=N`).
pub const PATH: &str = "/mandate/endpoint-proof";
/// Length of a nonce: 32 random bytes, unpadded base64url.
pub const NONCE_LEN: usize = 43;
const TAG: &[u8] = b"mandate-endpoint-proof/v1\0";

/// The endpoint's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointProof {
    /// The issuer URL the endpoint serves (`http://127.0.0.1:PORT`).
    pub issuer: String,
    pub nonce: String,
    /// The issuer key's id (RFC 7638 thumbprint) and public key (base64url).
    pub kid: String,
    pub x: String,
    /// Ed25519 over [`message`], base64url.
    pub signature: String,
}

/// A fresh nonce.
pub fn new_nonce() -> String {
    let mut b = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    keys::b64url(&b)
}

/// Whether `nonce` has the one shape a proof signs (so an endpoint never signs chosen text).
pub fn nonce_ok(nonce: &str) -> bool {
    nonce.len() == NONCE_LEN
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The signed bytes: a fixed tag, the issuer URL and the nonce, NUL-separated.
pub fn message(issuer: &str, nonce: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(TAG.len() + issuer.len() + 1 + nonce.len());
    m.extend_from_slice(TAG);
    m.extend_from_slice(issuer.as_bytes());
    m.push(0);
    m.extend_from_slice(nonce.as_bytes());
    m
}

/// The endpoint's side: sign `nonce` for `issuer` with the issuer key. `None` for a nonce of
/// the wrong shape.
pub fn sign(key: &IssuerKey, issuer: &str, nonce: &str) -> crate::Result<Option<EndpointProof>> {
    if !nonce_ok(nonce) {
        return Ok(None);
    }
    let sig = key.sign(&message(issuer, nonce))?;
    Ok(Some(EndpointProof {
        issuer: issuer.to_string(),
        nonce: nonce.to_string(),
        kid: key.kid.clone(),
        x: keys::b64url(key.public.as_bytes()),
        signature: keys::b64url(&sig.to_bytes()),
    }))
}

/// Why a proof was refused (a sentence for the person running the client).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotOurs(pub String);

impl Mandate {
    /// The client's side: whether `proof` shows that the endpoint at `issuer` holds this data
    /// folder's issuer key and answered the nonce `nonce` just now. Reads only the database (no
    /// keychain): the current issuer key's thumbprint, and retired issuer keys still published.
    pub fn check_endpoint_proof(
        &self,
        issuer: &str,
        nonce: &str,
        proof: &EndpointProof,
    ) -> Result<std::result::Result<(), NotOurs>> {
        let refuse = |why: &str| Ok(Err(NotOurs(why.to_string())));
        if proof.nonce != nonce {
            return refuse("it answered another nonce than the one sent");
        }
        if proof.issuer != issuer {
            return refuse(&format!(
                "it says it serves {}, not {issuer}",
                printable(&proof.issuer)
            ));
        }
        let Some(vk) = keys::b64url_decode(&proof.x)
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        else {
            return refuse("its key is not an Ed25519 public key");
        };
        let Some(sig) = keys::b64url_decode(&proof.signature)
            .and_then(|b| <[u8; 64]>::try_from(b.as_slice()).ok())
            .map(|b| Signature::from_bytes(&b))
        else {
            return refuse("its signature is malformed");
        };
        if !self.is_issuer_key(&proof.kid, &vk)? {
            return refuse("it signs with a key that is not this data folder's issuer key");
        }
        if vk.verify_strict(&message(issuer, nonce), &sig).is_err() {
            return refuse("its signature does not verify");
        }
        Ok(Ok(()))
    }

    /// Whether `vk` (named `kid`) is this installation's current issuer key or a retired one
    /// still published.
    fn is_issuer_key(&self, kid: &str, vk: &VerifyingKey) -> Result<bool> {
        let mut guard = self.lock()?;
        let conn = guard.tx()?;
        let current: Option<String> = conn.query_opt(
            "SELECT value FROM meta WHERE key = 'issuer_kid'",
            params![],
            |r| r.get(0),
        )?;
        if current.as_deref() == Some(kid) && keys::thumbprint(vk) == kid {
            return Ok(true);
        }
        let now = self.now().timestamp();
        let retired = super::issuer::retired_keys_on(&conn, now)?;
        Ok(retired
            .iter()
            .any(|(k, key)| k == kid && key.as_bytes() == vk.as_bytes()))
    }
}

fn printable(s: &str) -> String {
    s.chars()
        .take(80)
        .filter(|c| c.is_ascii_graphic())
        .collect::<String>()
}

impl From<NotOurs> for Error {
    fn from(e: NotOurs) -> Self {
        Error::Conflict(e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::each_store;

    fn key() -> IssuerKey {
        let signing = keys::generate();
        IssuerKey {
            kid: keys::thumbprint(&signing.verifying_key()),
            public: signing.verifying_key(),
            signer: std::sync::Arc::new(signing),
        }
    }

    #[test]
    fn the_message_can_be_neither_a_jws_signing_input_nor_a_signed_note() {
        let m = message("http://127.0.0.1:6263", &new_nonce());
        assert!(m.contains(&0), "NUL bytes separate the parts");
        assert!(!m.starts_with(b"eyJ"));
        assert!(std::str::from_utf8(&m).is_ok_and(|t| !t.ends_with('\n')));
    }

    #[test]
    fn signs_only_well_formed_nonces() {
        let k = key();
        let n = new_nonce();
        assert!(nonce_ok(&n));
        assert!(sign(&k, "http://127.0.0.1:1", &n).unwrap().is_some());
        for bad in ["", "short", &format!("{n}x"), &"a\nb".repeat(15)] {
            assert!(
                sign(&k, "http://127.0.0.1:1", bad).unwrap().is_none(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_proof_checks_against_the_data_folders_issuer_key_and_nothing_else() {
        each_store(|s| {
            let m = s.open();
            let ours = m.issuer_key().unwrap();
            let issuer = "http://127.0.0.1:6263";
            let nonce = new_nonce();
            let good = sign(&ours, issuer, &nonce).unwrap().unwrap();
            assert_eq!(
                m.check_endpoint_proof(issuer, &nonce, &good).unwrap(),
                Ok(())
            );

            let refused = |p: &EndpointProof, iss: &str, n: &str| {
                m.check_endpoint_proof(iss, n, p).unwrap().unwrap_err().0
            };
            // A stranger's key, even one that names our kid.
            let stranger = key();
            let foreign = sign(&stranger, issuer, &nonce).unwrap().unwrap();
            assert!(refused(&foreign, issuer, &nonce).contains("not this data folder's"));
            let mut posing = foreign.clone();
            posing.kid = ours.kid.clone();
            assert!(refused(&posing, issuer, &nonce).contains("not this data folder's"));
            // Our real key, relayed from another port, or answering an old nonce.
            assert!(refused(&good, "http://127.0.0.1:9999", &nonce).contains("serves"));
            assert!(refused(&good, issuer, &new_nonce()).contains("nonce"));
            // A tampered signature.
            let mut bent = good.clone();
            bent.signature = keys::b64url(&[7u8; 64]);
            assert!(refused(&bent, issuer, &nonce).contains("does not verify"));
        });
    }
}
