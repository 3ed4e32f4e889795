//! Compact JWS for Ed25519 only: a strict splitter and parser, `verify_strict`, and signing.
//!
//! Why our own and not a JOSE library: the client assertions and DPoP proofs we accept must
//! pass checks that no maintained Rust JOSE crate enforces (see `docs/ARCHITECTURE.md`, "Token
//! endpoint"): duplicate JSON members refused, base64url refused unless canonical and unpadded,
//! `crit` refused, the RFC 9864 `Ed25519` algorithm name accepted beside `EdDSA`, and
//! signatures checked with ed25519-dalek's `verify_strict` (no small-order or non-canonical
//! points). The surface is deliberately tiny: split, decode, parse, verify, sign.
//!
//! What it is not: it never picks a key or an algorithm from a header. Callers pass the key;
//! the only algorithms are `EdDSA` and `Ed25519`, both meaning Ed25519.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde_json::{Map, Value};

/// Longest compact JWS we look at (assertions and proofs are a few hundred bytes).
pub const MAX_JWS_LEN: usize = 8 * 1024;

/// The algorithm names that mean Ed25519 (RFC 8037 `EdDSA`, RFC 9864 `Ed25519`).
pub const ED25519_ALGS: [&str; 2] = ["EdDSA", "Ed25519"];

/// Why a JWS was refused. Messages are fixed sentences: they never echo the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    #[error("it is not a compact JWS (three base64url parts separated by dots)")]
    Shape,
    #[error("it is longer than 8 KiB")]
    TooLong,
    #[error("its {0} is not canonical unpadded base64url")]
    Base64(&'static str),
    #[error("its {0} is not a JSON object without duplicate members")]
    Json(&'static str),
    #[error("its signature is not 64 bytes")]
    SignatureLength,
    #[error("its header has no \"alg\"")]
    MissingAlg,
    #[error("its algorithm is not allowed (only EdDSA / Ed25519)")]
    Alg,
    #[error("its header names critical extensions (\"crit\") that are not understood")]
    Crit,
    #[error("its header carries a key reference ({0}); keys come only from the registry")]
    KeyReference(&'static str),
    #[error("its signature does not verify")]
    Signature,
}

/// A parsed, not yet verified, compact JWS. Its `Debug` shows the header's member names
/// only: the raw text is a credential.
#[derive(Clone)]
pub struct Jws {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    signing_input_len: usize,
    raw: String,
    signature: [u8; 64],
}

/// Decode one part: only the URL-safe alphabet, no padding, canonical trailing bits.
pub fn b64_strict(part: &str, what: &'static str) -> Result<Vec<u8>, JwsError> {
    if part.is_empty()
        || !part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(JwsError::Base64(what));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwsError::Base64(what))?;
    // The engine already rejects non-zero trailing bits; re-encoding makes canonicity explicit.
    if URL_SAFE_NO_PAD.encode(&bytes) != part {
        return Err(JwsError::Base64(what));
    }
    Ok(bytes)
}

/// Parse JSON text that must be an object, refusing duplicate members at any depth. The
/// reading is the audit format's ([`mandate_audit_format::json`]), so a token and a bundle line
/// are read by the same code.
pub fn strict_json_object(
    bytes: &[u8],
    what: &'static str,
) -> Result<Map<String, Value>, JwsError> {
    match mandate_audit_format::json::parse(bytes) {
        Ok((Value::Object(m), found)) if found.duplicate.is_none() => Ok(m),
        _ => Err(JwsError::Json(what)),
    }
}

/// Split, decode and parse a compact JWS. Does not verify anything but its form.
pub fn parse(token: &str) -> Result<Jws, JwsError> {
    if token.len() > MAX_JWS_LEN {
        return Err(JwsError::TooLong);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Shape);
    };
    let header = strict_json_object(&b64_strict(h, "header")?, "header")?;
    let claims = strict_json_object(&b64_strict(c, "payload")?, "payload")?;
    let sig = b64_strict(s, "signature")?;
    let signature: [u8; 64] = sig
        .as_slice()
        .try_into()
        .map_err(|_| JwsError::SignatureLength)?;
    Ok(Jws {
        header,
        claims,
        signing_input_len: h.len() + 1 + c.len(),
        raw: token.to_string(),
        signature,
    })
}

impl std::fmt::Debug for Jws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jws")
            .field("header_members", &self.header.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Jws {
    /// A header member as a string.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }

    /// A claim as a string.
    pub fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// Check the header rules every JWS we accept shares: `alg` is Ed25519, no `crit`, and
    /// (unless `allow_jwk`) no key references at all.
    pub fn check_common_header(&self, allow_jwk: bool) -> Result<(), JwsError> {
        match self.header.get("alg") {
            None => return Err(JwsError::MissingAlg),
            Some(Value::String(a)) if ED25519_ALGS.contains(&a.as_str()) => {}
            Some(_) => return Err(JwsError::Alg),
        }
        if self.header.contains_key("crit") {
            return Err(JwsError::Crit);
        }
        for k in ["jku", "x5u", "x5c", "x5t", "x5t#S256"] {
            if self.header.contains_key(k) {
                return Err(JwsError::KeyReference(k));
            }
        }
        if !allow_jwk && self.header.contains_key("jwk") {
            return Err(JwsError::KeyReference("jwk"));
        }
        Ok(())
    }

    /// Verify the signature with `key`, strictly (RFC 8032 plus no small-order points and
    /// canonical scalars).
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), JwsError> {
        let input = &self.raw.as_bytes()[..self.signing_input_len];
        verify_detached(key, input, &self.signature)
    }
}

/// The one Ed25519 check every signature in Mandate goes through: exactly 64 bytes, then
/// `verify_strict` (RFC 8032 with canonical `S`, no small-order `R` or key). Tested against
/// Project Wycheproof's vectors (`tests/wycheproof.rs`).
pub fn verify_detached(key: &VerifyingKey, msg: &[u8], sig: &[u8]) -> Result<(), JwsError> {
    let sig: [u8; 64] = sig.try_into().map_err(|_| JwsError::SignatureLength)?;
    key.verify_strict(msg, &Signature::from_bytes(&sig))
        .map_err(|_| JwsError::Signature)
}

/// Sign `claims` under `header` (which must already name `alg`) with `key`.
pub fn sign(header: &Value, claims: &Value, key: &SigningKey) -> String {
    match sign_with(header, claims, |m| {
        Ok::<_, std::convert::Infallible>(key.sign(m))
    }) {
        Ok(s) => s,
        Err(never) => match never {},
    }
}

/// Sign `claims` under `header` with a signer that may fail (an issuer key inside a PKCS#11
/// token): `sign` gets the JWS signing input and returns the signature.
pub fn sign_with<E>(
    header: &Value,
    claims: &Value,
    sign: impl FnOnce(&[u8]) -> Result<Signature, E>,
) -> Result<String, E> {
    let mut out = String::with_capacity(768);
    URL_SAFE_NO_PAD.encode_string(json_bytes(header), &mut out);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(json_bytes(claims), &mut out);
    let sig = sign(out.as_bytes())?;
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(sig.to_bytes(), &mut out);
    Ok(out)
}

/// Compact JSON of `v`, written straight into bytes (`Value`'s `Display` goes through
/// `fmt::Write`, measurably slower on the token path). Serialising a `Value` cannot fail; the
/// fallback only keeps that out of the types.
pub fn json_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_else(|_| v.to_string().into_bytes())
}

/// A NumericDate claim (RFC 7519 §2): a JSON number of seconds; fractions are truncated.
pub fn numeric_date(v: Option<&Value>) -> Option<i64> {
    let v = v?;
    if let Some(i) = v.as_i64() {
        return Some(i);
    }
    let f = v.as_f64()?;
    if f.is_finite() && f.abs() < 1e15 {
        #[allow(clippy::cast_possible_truncation, reason = "bounded above")]
        Some(f.floor() as i64)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    #[test]
    fn signs_and_verifies_strictly() {
        let t = sign(&json!({"alg":"EdDSA"}), &json!({"a":1}), &key());
        let j = parse(&t).unwrap();
        j.check_common_header(false).unwrap();
        j.verify(&key().verifying_key()).unwrap();
        let other = SigningKey::from_bytes(&[8u8; 32]).verifying_key();
        assert_eq!(j.verify(&other), Err(JwsError::Signature));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let t = sign(
            &json!({"alg":"EdDSA"}),
            &json!({"sub":"secret-sub"}),
            &key(),
        );
        let shown = format!("{:?}", parse(&t).unwrap());
        assert!(
            !shown.contains("eyJ") && !shown.contains("secret-sub"),
            "{shown}"
        );
    }

    #[test]
    fn refuses_duplicate_members_at_any_depth() {
        assert!(strict_json_object(br#"{"a":1,"a":2}"#, "x").is_err());
        assert!(strict_json_object(br#"{"a":{"b":1,"b":1}}"#, "x").is_err());
        assert!(strict_json_object(br#"{"a":[{"b":1,"b":1}]}"#, "x").is_err());
        assert!(strict_json_object(br#"{"a":1} x"#, "x").is_err());
        assert!(strict_json_object(br#"[1]"#, "x").is_err());
        assert!(strict_json_object(br#"{"a":1,"b":2}"#, "x").is_ok());
    }

    #[test]
    fn refuses_non_canonical_base64url() {
        assert!(b64_strict("YQ", "x").is_ok());
        assert!(b64_strict("YR", "x").is_err(), "non-zero trailing bits");
        assert!(b64_strict("YQ==", "x").is_err(), "padding");
        assert!(b64_strict("Y+/Q", "x").is_err(), "standard alphabet");
        assert!(b64_strict("", "x").is_err());
        assert!(b64_strict("Y Q", "x").is_err());
    }

    #[test]
    fn refuses_non_canonical_signature_scalar() {
        // S + L verifies under lax checks in some libraries; verify_strict refuses it.
        let t = sign(&json!({"alg":"EdDSA"}), &json!({"a":1}), &key());
        let (input, sig) = t.rsplit_once('.').unwrap();
        let mut sig = b64_strict(sig, "s").unwrap();
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut carry = 0u16;
        for i in 0..32 {
            let s = sig[32 + i] as u16 + L[i] as u16 + carry;
            sig[32 + i] = s as u8;
            carry = s >> 8;
        }
        let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&sig));
        let j = parse(&forged).unwrap();
        assert_eq!(j.verify(&key().verifying_key()), Err(JwsError::Signature));
    }

    #[test]
    fn header_rules() {
        let k = key();
        let cases = [
            (json!({"alg":"none"}), Some(JwsError::Alg)),
            (json!({"alg":"HS256"}), Some(JwsError::Alg)),
            (json!({"typ":"JWT"}), Some(JwsError::MissingAlg)),
            (json!({"alg":"EdDSA","crit":["exp"]}), Some(JwsError::Crit)),
            (
                json!({"alg":"EdDSA","jku":"https://x"}),
                Some(JwsError::KeyReference("jku")),
            ),
            (
                json!({"alg":"EdDSA","jwk":{}}),
                Some(JwsError::KeyReference("jwk")),
            ),
            (json!({"alg":"Ed25519"}), None),
        ];
        for (h, want) in cases {
            let j = parse(&sign(&h, &json!({}), &k)).unwrap();
            assert_eq!(j.check_common_header(false).err(), want, "{h}");
        }
    }

    #[test]
    fn shape_errors() {
        assert_eq!(parse("a.b").unwrap_err(), JwsError::Shape);
        assert_eq!(parse("a.b.c.d").unwrap_err(), JwsError::Shape);
        assert_eq!(parse(&"a".repeat(9000)).unwrap_err(), JwsError::TooLong);
        assert!(matches!(
            parse("e30.e30.").unwrap_err(),
            JwsError::Base64(_)
        ));
        assert_eq!(
            parse("e30.e30.AAAA").unwrap_err(),
            JwsError::SignatureLength
        );
    }
}
