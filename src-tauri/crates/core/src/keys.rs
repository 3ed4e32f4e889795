//! Ed25519 keys: parse what agents bring, generate what they do not, name keys by thumbprint.
//!
//! Agents authenticate with Ed25519 only. Public keys arrive as an RFC 8037 JWK, a PEM
//! `PUBLIC KEY` (SPKI) or an OpenSSH `ssh-ed25519` line; parsing is done by maintained
//! libraries (ed25519-dalek's pkcs8 support, ssh-key), never by hand. Weak (small-order) keys
//! are refused. A key's id is its RFC 7638 JWK thumbprint, so it is the same wherever it is
//! computed.
//!
//! This module does not store anything: see `registry` for where keys go.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{DecodePublicKey, EncodePrivateKey, spki::der::pem::LineEnding};
use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::error::{Error, Result};
use crate::secret::Sensitive;

const NOT_ED25519: &str = "Mandate agents use Ed25519 keys: make one with `ssh-keygen -t ed25519` \
                           or let Mandate generate it with --generate-key";

/// Base64url without padding, as JOSE uses it.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decode strict base64url without padding.
pub fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

// Key names are part of the audit format, so the one definition lives there.
pub use mandate_audit_format::keys::{fingerprint, thumbprint};

/// The public key as an RFC 8037 JWK.
pub fn public_jwk(key: &VerifyingKey) -> serde_json::Value {
    serde_json::json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64url(key.as_bytes()),
        "kid": thumbprint(key),
        "alg": "EdDSA",
        "use": "sig",
    })
}

fn checked(key: VerifyingKey) -> Result<VerifyingKey> {
    if key.is_weak() {
        return Err(Error::invalid(
            "this Ed25519 public key is a weak (small-order) point and would let anyone forge \
             signatures; generate a new key",
        ));
    }
    Ok(key)
}

fn from_x(x: &str) -> Result<VerifyingKey> {
    let bytes = b64url_decode(x).ok_or_else(|| {
        Error::invalid("the JWK's \"x\" is not base64url without padding; export the key again")
    })?;
    let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        Error::invalid(format!(
            "the JWK's \"x\" holds {} bytes, but an Ed25519 public key has 32; the key looks \
             truncated",
            bytes.len()
        ))
    })?;
    let key = VerifyingKey::from_bytes(&arr)
        .map_err(|_| Error::invalid("the JWK's \"x\" is not a valid Ed25519 point"))?;
    checked(key)
}

/// Parse a public key in any supported format (detected from the text).
pub fn parse_public_key(text: &str) -> Result<VerifyingKey> {
    let t = text.trim();
    if t.is_empty() {
        return Err(Error::invalid(
            "the public key file is empty; give a JWK, PEM or ssh-ed25519 public key",
        ));
    }
    if t.starts_with('{') {
        return parse_jwk(t);
    }
    if t.starts_with("-----BEGIN") {
        return parse_pem(t);
    }
    if t.starts_with("ssh-") || t.starts_with("ecdsa-") || t.starts_with("sk-") {
        return parse_openssh(t);
    }
    Err(Error::invalid(format!(
        "the public key is in no format Mandate reads: give an Ed25519 JWK ({{\"kty\":\"OKP\",...}}), \
         a PEM 'PUBLIC KEY' or an OpenSSH 'ssh-ed25519 ...' line. {NOT_ED25519}"
    )))
}

fn parse_jwk(t: &str) -> Result<VerifyingKey> {
    let v: serde_json::Value = serde_json::from_str(t)
        .map_err(|e| Error::invalid(format!("the JWK is not valid JSON ({e})")))?;
    if v.get("d").is_some() {
        return Err(Error::invalid(
            "this JWK contains a private key (\"d\"); register only the public part and keep the \
             private key with the agent",
        ));
    }
    let kty = v.get("kty").and_then(|k| k.as_str()).unwrap_or("");
    let crv = v.get("crv").and_then(|k| k.as_str()).unwrap_or("");
    match (kty, crv) {
        ("OKP", "Ed25519") => {}
        ("OKP", other) => {
            return Err(Error::invalid(format!(
                "the JWK is an OKP key on curve '{other}'. {NOT_ED25519}"
            )));
        }
        ("", _) => return Err(Error::invalid("the JWK has no \"kty\" member")),
        (other, _) => {
            return Err(Error::invalid(format!(
                "the JWK is a {other} key. {NOT_ED25519}"
            )));
        }
    }
    let x = v
        .get("x")
        .and_then(|x| x.as_str())
        .ok_or_else(|| Error::invalid("the Ed25519 JWK has no \"x\" member"))?;
    from_x(x)
}

fn parse_pem(t: &str) -> Result<VerifyingKey> {
    if t.contains("PRIVATE KEY-----") {
        return Err(Error::invalid(
            "this PEM holds a private key; register only the public key (for example `openssl \
             pkey -in key.pem -pubout`)",
        ));
    }
    if t.starts_with("-----BEGIN RSA PUBLIC KEY") {
        return Err(Error::invalid(format!("this is an RSA key. {NOT_ED25519}")));
    }
    match VerifyingKey::from_public_key_pem(t) {
        Ok(k) => checked(k),
        Err(e) => {
            let msg = e.to_string();
            // SPKI parsed, but the algorithm is not Ed25519 (RSA, P-256...).
            if msg.contains("OID") || msg.contains("algorithm") {
                Err(Error::invalid(format!(
                    "the PEM public key is not an Ed25519 key. {NOT_ED25519}"
                )))
            } else {
                Err(Error::invalid(format!(
                    "the PEM public key could not be read ({msg}); it may be truncated"
                )))
            }
        }
    }
}

fn parse_openssh(t: &str) -> Result<VerifyingKey> {
    let alg = t.split_whitespace().next().unwrap_or_default();
    if alg != "ssh-ed25519" {
        return Err(Error::invalid(format!(
            "this is an OpenSSH {alg} key. {NOT_ED25519}"
        )));
    }
    let key = ssh_key::PublicKey::from_openssh(t).map_err(|e| {
        Error::invalid(format!(
            "the OpenSSH public key could not be read ({e}); it may be truncated"
        ))
    })?;
    match key.key_data() {
        ssh_key::public::KeyData::Ed25519(pk) => {
            let key = VerifyingKey::from_bytes(&pk.0)
                .map_err(|_| Error::invalid("the ssh-ed25519 key is not a valid Ed25519 point"))?;
            checked(key)
        }
        other => Err(Error::invalid(format!(
            "this is an OpenSSH {} key. {NOT_ED25519}",
            other.algorithm()
        ))),
    }
}

/// Generate a new Ed25519 key pair from the OS random source.
pub fn generate() -> SigningKey {
    SigningKey::generate(&mut rand_core::OsRng)
}

/// The private key as text for the keychain: base64url of the 32-byte seed.
pub fn signing_key_to_secret(key: &SigningKey) -> Sensitive<String> {
    Sensitive::new(b64url(key.as_bytes()))
}

/// Read back a private key stored with [`signing_key_to_secret`].
pub fn signing_key_from_secret(secret: &Sensitive<String>) -> Result<SigningKey> {
    let bytes = b64url_decode(secret.expose())
        .ok_or_else(|| Error::Storage("a key in the keychain is not valid base64url".into()))?;
    let seed: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| Error::Storage("a key in the keychain has the wrong length".into()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// File formats for a generated private key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivateKeyFormat {
    /// RFC 8037 JWK with `d`.
    Jwk,
    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    Pem,
}

/// Encode a private key for a file handed to the agent.
pub fn private_key_file_contents(
    key: &SigningKey,
    format: PrivateKeyFormat,
) -> Result<Sensitive<String>> {
    match format {
        PrivateKeyFormat::Jwk => {
            let vk = key.verifying_key();
            let jwk = serde_json::json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": b64url(vk.as_bytes()),
                "d": b64url(key.as_bytes()),
                "kid": thumbprint(&vk),
                "alg": "EdDSA",
            });
            Ok(Sensitive::new(format!("{jwk}\n")))
        }
        PrivateKeyFormat::Pem => {
            let pem = key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| Error::invalid(format!("could not encode the key as PEM: {e}")))?;
            Ok(Sensitive::new(pem.to_string()))
        }
    }
}

/// Read an agent's private key file, as [`private_key_file_contents`] writes it: a PKCS#8 PEM
/// (`-----BEGIN PRIVATE KEY-----`) or an RFC 8037 JWK with `d`. What an agent on another
/// machine signs its assertions with (`mandate token --server URL --key-file FILE`). Errors
/// never echo the file's contents.
pub fn parse_private_key(text: &Sensitive<String>) -> Result<SigningKey> {
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    let t = text.expose().trim();
    if t.starts_with("-----BEGIN PRIVATE KEY-----") {
        return SigningKey::from_pkcs8_pem(t).map_err(|_| {
            Error::invalid(format!(
                "the PEM private key is not an Ed25519 PKCS#8 key. {NOT_ED25519}"
            ))
        });
    }
    if t.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(t)
            .map_err(|_| Error::invalid("the key file is not valid JSON (a JWK)"))?;
        if v["kty"] != "OKP" || v["crv"] != "Ed25519" {
            return Err(Error::invalid(format!(
                "the JWK is not an Ed25519 (OKP) key. {NOT_ED25519}"
            )));
        }
        let seed: [u8; 32] = v["d"]
            .as_str()
            .and_then(b64url_decode)
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| {
                Error::invalid("the JWK has no private part (\"d\", 32 bytes base64url)")
            })?;
        let key = SigningKey::from_bytes(&seed);
        if let Some(x) = v["x"].as_str()
            && b64url_decode(x).as_deref() != Some(key.verifying_key().as_bytes().as_slice())
        {
            return Err(Error::invalid(
                "the JWK's public part (\"x\") does not belong to its private part (\"d\")",
            ));
        }
        return Ok(key);
    }
    Err(Error::invalid(
        "the key file is neither a PKCS#8 PEM private key nor a JWK; use the file \
         `mandate agent add --generate-key-file` wrote",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::EncodePublicKey;

    #[test]
    fn thumbprint_matches_rfc8037_appendix_a3() {
        // RFC 8037 A.3: the thumbprint of the A.2 public key.
        let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        let key = from_x(x).unwrap();
        assert_eq!(
            thumbprint(&key),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn parses_jwk_pem_and_openssh_to_the_same_key() {
        let sk = generate();
        let vk = sk.verifying_key();
        let jwk = public_jwk(&vk).to_string();
        let pem = vk.to_public_key_pem(LineEnding::LF).unwrap();
        let ssh = ssh_key::PublicKey::from(ssh_key::public::Ed25519PublicKey(vk.to_bytes()))
            .to_openssh()
            .unwrap();
        for text in [jwk, pem, ssh] {
            assert_eq!(parse_public_key(&text).unwrap(), vk, "{text}");
        }
    }

    #[test]
    fn refuses_other_key_types_truncation_and_private_keys() {
        let cases = [
            (r#"{"kty":"RSA","n":"AQAB","e":"AQAB"}"#, "RSA"),
            (r#"{"kty":"EC","crv":"P-256","x":"a","y":"b"}"#, "EC key"),
            (r#"{"kty":"OKP","crv":"X25519","x":"abc"}"#, "X25519"),
            (
                r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg"}"#,
                "truncated",
            ),
            (
                r#"{"kty":"OKP","crv":"Ed25519","x":"a","d":"b"}"#,
                "private key",
            ),
            (
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0",
                "truncated",
            ),
            (
                "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----",
                "private key",
            ),
            ("hello", "no format"),
            ("", "empty"),
        ];
        for (text, want) in cases {
            let err = parse_public_key(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn refuses_p256_pem_and_ecdsa_ssh() {
        // A P-256 SPKI public key (from RFC 9500 test keys).
        let p256 = "-----BEGIN PUBLIC KEY-----\n\
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQiVI+I+3gv+17KN0RFLHKh5Vj71v\n\
c75eSOkyMsxFxbFsTNEMTLjVuKFxOelIgsiZJXKZNCX0FBmrfpCgKHvh6A==\n\
-----END PUBLIC KEY-----";
        let err = parse_public_key(p256).unwrap_err().to_string();
        assert!(
            err.contains("not an Ed25519 key") || err.contains("could not be read"),
            "{err}"
        );
        let ecdsa = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEIlSPiPt4L/teyjdERSxyoeVY+9b3O+XkjpMjLMRcWxbEzRDEy41bihcTnpSILImSVymTQl9BQZq36QoCh74eg=";
        let err = parse_public_key(ecdsa).unwrap_err().to_string();
        assert!(err.contains("Ed25519"), "{err}");
    }

    #[test]
    fn refuses_small_order_keys() {
        // The identity point (small order 1), encoded as 0x01 followed by zeros.
        let mut id = [0u8; 32];
        id[0] = 1;
        let err = from_x(&b64url(&id)).unwrap_err().to_string();
        assert!(err.contains("weak"), "{err}");
    }

    #[test]
    fn private_key_round_trips_through_the_keychain_text() {
        let sk = generate();
        let back = signing_key_from_secret(&signing_key_to_secret(&sk)).unwrap();
        assert_eq!(back.to_bytes(), sk.to_bytes());
        let jwk = private_key_file_contents(&sk, PrivateKeyFormat::Jwk).unwrap();
        assert!(jwk.expose().contains("\"d\""));
        let pem = private_key_file_contents(&sk, PrivateKeyFormat::Pem).unwrap();
        assert!(pem.expose().starts_with("-----BEGIN PRIVATE KEY-----"));
    }

    #[test]
    fn private_key_files_read_back_in_both_formats_and_nothing_else() {
        let k = generate();
        for f in [PrivateKeyFormat::Pem, PrivateKeyFormat::Jwk] {
            let text = private_key_file_contents(&k, f).unwrap();
            assert_eq!(parse_private_key(&text).unwrap().to_bytes(), k.to_bytes());
        }
        let other = generate();
        let mut jwk: serde_json::Value = serde_json::from_str(
            private_key_file_contents(&k, PrivateKeyFormat::Jwk)
                .unwrap()
                .expose(),
        )
        .unwrap();
        jwk["x"] = serde_json::json!(b64url(other.verifying_key().as_bytes()));
        assert!(parse_private_key(&Sensitive::new(jwk.to_string())).is_err());
        for bad in [
            "",
            "ssh-ed25519 AAAA",
            "{\"kty\":\"RSA\"}",
            "-----BEGIN PRIVATE KEY-----\nx\n",
        ] {
            let e = parse_private_key(&Sensitive::new(bad.to_string()))
                .unwrap_err()
                .to_string();
            assert!(!e.contains("AAAA"), "{e}");
        }
    }
}
