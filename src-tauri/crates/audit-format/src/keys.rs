//! How Ed25519 public keys are named: the RFC 7638 JWK thumbprint, and the short fingerprint
//! people compare (`SHA256:` and its first 16 characters).
//!
//! The names are the same wherever they are computed: in the app, in `mandate jwks export`,
//! in a bundle's header and in every verifier.
//!
//! What it is not: key parsing or generation (`mandate-core`'s `keys` does that).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};

/// The RFC 7638 thumbprint of an Ed25519 key (base64url SHA-256 of its canonical JWK).
pub fn thumbprint(key: &VerifyingKey) -> String {
    let x = URL_SAFE_NO_PAD.encode(key.as_bytes());
    // Members in lexicographic order, no whitespace (RFC 7638 §3.2).
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// A short fingerprint for people: `SHA256:` and the first 16 characters of the thumbprint.
pub fn fingerprint(key: &VerifyingKey) -> String {
    let t = thumbprint(key);
    format!("SHA256:{}", &t[..16])
}
