//! What Mandate's fuzz targets share: fixed keys and time, an independent check of a compact
//! JWS signature (the oracle "anything accepted verifies under the known key"), and
//! structure-aware JWTs built from `arbitrary` input (a well-formed token whose header, claims,
//! encoding and signature are each mutated in ways an attacker would try).
//!
//! Each target in `fuzz_targets/` feeds one parser that takes outside bytes (SECURITY.md,
//! "Fuzzing"); `docs/RELIABILITY.md` lists them with their figures.
//!
//! What it is not: a test suite. The targets run only under libFuzzer (`scripts/fuzz`); the
//! workspace never builds this crate.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "fuzz harness")]

use arbitrary::Arbitrary;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde_json::{Map, Value, json};
use sha2::Digest as _;

/// The fixed "now" of every target (2027-01-15T08:00:00Z): inputs replay identically.
pub const NOW: i64 = 1_800_000_000;

/// The agent whose private key the harness holds.
pub const AGENT: &str = "fuzz-agent";
/// Its registered sub-agent (for token exchange).
pub const CHILD: &str = "fuzz-child";

/// The issuer the targets' endpoint believes it is.
pub const ISSUER: &str = "http://127.0.0.1:6263";

/// The agent's key (a fixed seed, so the corpus stays valid across runs).
pub fn agent_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

/// The sub-agent's key.
pub fn child_key() -> SigningKey {
    SigningKey::from_bytes(&[8; 32])
}

/// A key nobody registered.
pub fn stranger_key() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// RFC 7638 thumbprint of an Ed25519 key, computed here rather than by the core.
pub fn thumbprint(key: &VerifyingKey) -> String {
    let canon = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        b64(key.as_bytes())
    );
    b64(&sha2::Sha256::digest(canon.as_bytes()))
}

/// The independent oracle: does `compact` carry a valid Ed25519 signature by `key` over its
/// first two parts, with an Ed25519 algorithm name in a header that is a JSON object? Written
/// without the core's JWS code, so a bypass there cannot hide here.
pub fn signed_by(compact: &str, key: &VerifyingKey) -> bool {
    let parts: Vec<&str> = compact.split('.').collect();
    let [h, c, s] = parts.as_slice() else {
        return false;
    };
    let (Ok(hb), Ok(sig)) = (URL_SAFE_NO_PAD.decode(h), URL_SAFE_NO_PAD.decode(s)) else {
        return false;
    };
    let Ok(Value::Object(header)) = serde_json::from_slice::<Value>(&hb) else {
        return false;
    };
    if !matches!(header.get("alg").and_then(Value::as_str), Some("EdDSA" | "Ed25519")) {
        return false;
    }
    let Ok(sig) = Signature::from_slice(&sig) else {
        return false;
    };
    URL_SAFE_NO_PAD.decode(c).is_ok()
        && key
            .verify_strict(format!("{h}.{c}").as_bytes(), &sig)
            .is_ok()
}

/// The claims of a compact JWS, read independently of the core.
pub fn claims_of(compact: &str) -> Map<String, Value> {
    let part = compact.split('.').nth(1).unwrap_or("");
    match URL_SAFE_NO_PAD
        .decode(part)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// A JSON value an attacker might put where a claim or header member goes.
#[derive(Arbitrary, Debug, Clone)]
pub enum Val {
    /// The well-formed value.
    Keep,
    /// Left out.
    Drop,
    Str(String),
    Int(i64),
    /// `NOW` plus this many seconds.
    Rel(i16),
    Float(f64),
    Bool(bool),
    Null,
    Arr(Vec<String>),
    Obj(Vec<(String, String)>),
}

impl Val {
    /// The value to write, given the well-formed one.
    pub fn apply(&self, good: Value) -> Option<Value> {
        Some(match self {
            Val::Keep => good,
            Val::Drop => return None,
            Val::Str(s) => json!(s),
            Val::Int(i) => json!(i),
            Val::Rel(r) => json!(NOW + i64::from(*r)),
            Val::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Val::Bool(b) => json!(b),
            Val::Null => Value::Null,
            Val::Arr(v) => json!(v),
            Val::Obj(kv) => Value::Object(kv.iter().map(|(k, v)| (k.clone(), json!(v))).collect()),
        })
    }
}

/// The algorithm named in the header.
#[derive(Arbitrary, Debug, Clone)]
pub enum Alg {
    EdDSA,
    Ed25519,
    None,
    Hs256,
    Rs256,
    Es256,
    Other(String),
    Missing,
}

/// A header member that references keys or extensions.
#[derive(Arbitrary, Debug, Clone)]
pub enum HeaderExtra {
    Jku,
    X5u,
    Jwk,
    X5c,
    Crit,
    Cty,
    Other(String),
}

#[derive(Arbitrary, Debug, Clone)]
pub struct HeaderSpec {
    pub alg: Alg,
    pub typ: Val,
    pub kid: Val,
    pub extra: Vec<(HeaderExtra, Val)>,
}

/// How the token is signed.
#[derive(Arbitrary, Debug, Clone)]
pub enum Signer {
    /// The holder's registered key.
    Known,
    /// A key nobody registered.
    Stranger,
    /// Signed by the known key, then one signature byte changed.
    FlipSig(u8, u8),
    /// Signed by the known key, signature cut short.
    Truncate(u8),
    /// HMAC-SHA256 keyed with the public key bytes (the classic confusion attack).
    HmacWithPublicKey,
    /// No signature at all.
    Unsigned,
    /// A signature from arbitrary bytes.
    Raw(Vec<u8>),
}

/// How the parts are encoded.
#[derive(Arbitrary, Debug, Clone)]
pub enum Encoding {
    Canonical,
    /// `=` padding added.
    Padded,
    /// The standard alphabet (`+` and `/`).
    Standard,
    /// A claim repeated as a duplicate JSON member.
    DuplicateClaim(String),
    /// Extra whitespace or text around the JSON.
    Wrapped(String, String),
    /// Four parts (a JWE-like shape) or two.
    WrongPartCount(bool),
}

/// A JWT built from a well-formed one, mutated as `arbitrary` input says.
#[derive(Arbitrary, Debug, Clone)]
pub struct JwtSpec {
    pub header: HeaderSpec,
    pub claims: Vec<(String, Val)>,
    pub signer: Signer,
    pub encoding: Encoding,
}

impl JwtSpec {
    /// The compact token: `good_header` and `good_claims` after the spec's mutations, signed by
    /// `key` (or as the spec says).
    pub fn build(&self, good_header: Map<String, Value>, good_claims: Map<String, Value>, key: &SigningKey) -> String {
        let mut header = good_header;
        let alg = match &self.header.alg {
            Alg::EdDSA => Some("EdDSA".to_string()),
            Alg::Ed25519 => Some("Ed25519".to_string()),
            Alg::None => Some("none".to_string()),
            Alg::Hs256 => Some("HS256".to_string()),
            Alg::Rs256 => Some("RS256".to_string()),
            Alg::Es256 => Some("ES256".to_string()),
            Alg::Other(s) => Some(s.clone()),
            Alg::Missing => None,
        };
        match alg {
            Some(a) => header.insert("alg".into(), json!(a)),
            None => header.remove("alg"),
        };
        for (name, val) in [("typ", &self.header.typ), ("kid", &self.header.kid)] {
            let good = header.get(name).cloned().unwrap_or(Value::Null);
            match val.apply(good) {
                Some(v) if !(matches!(val, Val::Keep) && v.is_null()) => {
                    header.insert(name.into(), v);
                }
                _ => {
                    header.remove(name);
                }
            }
        }
        for (extra, val) in self.header.extra.iter().take(4) {
            let name = match extra {
                HeaderExtra::Jku => "jku".to_string(),
                HeaderExtra::X5u => "x5u".to_string(),
                HeaderExtra::Jwk => "jwk".to_string(),
                HeaderExtra::X5c => "x5c".to_string(),
                HeaderExtra::Crit => "crit".to_string(),
                HeaderExtra::Cty => "cty".to_string(),
                HeaderExtra::Other(s) => s.clone(),
            };
            let good = if name == "jwk" {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(key.verifying_key().as_bytes())})
            } else {
                json!("x")
            };
            if let Some(v) = val.apply(good) {
                header.insert(name, v);
            }
        }
        let mut claims = good_claims;
        for (name, val) in self.claims.iter().take(8) {
            let good = claims.get(name).cloned().unwrap_or(Value::Null);
            match val.apply(good) {
                Some(v) => {
                    claims.insert(name.clone(), v);
                }
                None => {
                    claims.remove(name);
                }
            }
        }
        let (mut htext, mut ctext) = (Value::Object(header).to_string(), Value::Object(claims).to_string());
        let enc: fn(&[u8]) -> String = match &self.encoding {
            Encoding::Padded => |b| URL_SAFE.encode(b),
            Encoding::Standard => |b| STANDARD.encode(b),
            _ => |b| URL_SAFE_NO_PAD.encode(b),
        };
        match &self.encoding {
            Encoding::DuplicateClaim(name) => {
                ctext = ctext.replacen('{', &format!("{{{}:\"dup\",", json!(name)), 1);
            }
            Encoding::Wrapped(before, after) => {
                htext = format!("{before}{htext}{after}");
            }
            _ => {}
        }
        let input = format!("{}.{}", enc(htext.as_bytes()), enc(ctext.as_bytes()));
        let sig: Vec<u8> = match &self.signer {
            Signer::Known => key.sign(input.as_bytes()).to_bytes().to_vec(),
            Signer::Stranger => stranger_key().sign(input.as_bytes()).to_bytes().to_vec(),
            Signer::FlipSig(i, x) => {
                let mut s = key.sign(input.as_bytes()).to_bytes();
                s[usize::from(*i) % 64] ^= x.max(&1);
                s.to_vec()
            }
            Signer::Truncate(n) => key.sign(input.as_bytes()).to_bytes()[..usize::from(*n) % 64].to_vec(),
            Signer::HmacWithPublicKey => hmac_sha256(key.verifying_key().as_bytes(), input.as_bytes()),
            Signer::Unsigned => Vec::new(),
            Signer::Raw(b) => b.clone(),
        };
        let token = format!("{input}.{}", enc(&sig));
        match &self.encoding {
            Encoding::WrongPartCount(true) => format!("{token}.{}", enc(b"extra")),
            Encoding::WrongPartCount(false) => input,
            _ => token,
        }
    }
}

/// HMAC-SHA256 (RFC 2104), to forge the "HS256 keyed with the public key" token.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    k[..key.len().min(64)].copy_from_slice(&key[..key.len().min(64)]);
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = sha2::Sha256::new().chain_update(&ipad).chain_update(msg).finalize();
    sha2::Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .to_vec()
}
