//! Review attestations (`trust::attest::open`): a DSSE envelope around an in-toto Statement v1,
//! from a file an outsider hands `mandate attest add`. Two kinds of input: raw text, and a
//! well-formed envelope built from `arbitrary` input (the statement's members, the payload's
//! encoding and each signature mutated the way an attacker would try), signed by the registered
//! attestor, a revoked one, a stranger, or not at all.
//!
//! Oracle, written without the core's DSSE code: an envelope that opens carries a signature by
//! the one registered, unrevoked attestor over DSSE's PAE of exactly the payload it decodes
//! to, the payload type is in-toto's, and the review read is what that signed payload says
//! (one subject naming the agent, its sha256 digest, the predicate's result and expiry); the
//! points it adds stay within the attestor's bound and never go against the verdict. An
//! untouched, correctly signed envelope always opens.
#![no_main]

use arbitrary::Arbitrary;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use chrono::DateTime;
use ed25519_dalek::{Signature, Signer as _, SigningKey};
use libfuzzer_sys::fuzz_target;
use mandate_core::trust::attest::{self, ReviewResult, SignerKey};
use mandate_fuzz::{Val, stranger_key};
use serde_json::{Value, json};

const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
const PREDICATE_TYPE: &str = "https://mandate.dev/attestation/review/v1";

fn attestor() -> SigningKey {
    SigningKey::from_bytes(&[21; 32])
}

fn revoked() -> SigningKey {
    SigningKey::from_bytes(&[22; 32])
}

#[derive(Arbitrary, Debug)]
enum Input {
    Raw(String),
    Built(Spec),
}

#[derive(Arbitrary, Debug)]
struct Spec {
    payload_type: Val,
    type_: Val,
    predicate_type: Val,
    subjects: Subjects,
    name: Val,
    digest: Val,
    result: Val,
    scope_reviewed: Val,
    expires: Val,
    points: Val,
    /// A member the reader does not know, at the envelope's top level.
    extra: Option<(String, String)>,
    payload_encoding: B64,
    signatures: Vec<Sig>,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq)]
enum Subjects {
    One,
    None,
    Two,
    NotAnArray,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq)]
enum B64 {
    Standard,
    StandardNoPad,
    UrlSafe,
    UrlSafeNoPad,
    /// Wrapped in whitespace (the reader trims it).
    Spaced,
    /// Not base64.
    Broken,
}

impl B64 {
    fn encode(self, bytes: &[u8]) -> String {
        match self {
            B64::Standard => STANDARD.encode(bytes),
            B64::StandardNoPad => STANDARD_NO_PAD.encode(bytes),
            B64::UrlSafe => URL_SAFE.encode(bytes),
            B64::UrlSafeNoPad => URL_SAFE_NO_PAD.encode(bytes),
            B64::Spaced => format!(" {}\n", STANDARD.encode(bytes)),
            B64::Broken => format!("!{}", STANDARD.encode(bytes)),
        }
    }
}

#[derive(Arbitrary, Debug, Clone, PartialEq)]
enum Sig {
    /// The registered attestor, over the envelope's own PAE.
    Attestor(B64),
    /// The registered attestor, over the payload alone (no PAE) or another payload type.
    AttestorWrongMessage(bool),
    Revoked,
    Stranger,
    /// The attestor's signature with one byte changed.
    Flipped(u8, u8),
    Raw(Vec<u8>),
    /// A signature object without `sig`, or with a number in it.
    Malformed(bool),
}

impl Spec {
    /// Every member as a genuine reviewer writes it, signed once by the attestor.
    fn pristine(&self) -> bool {
        [
            &self.payload_type,
            &self.type_,
            &self.predicate_type,
            &self.name,
            &self.digest,
            &self.result,
            &self.scope_reviewed,
            &self.expires,
            &self.points,
        ]
        .iter()
        .all(|v| matches!(v, Val::Keep))
            && self.subjects == Subjects::One
            && self.payload_encoding != B64::Broken
            && self
                .signatures
                .iter()
                .take(4)
                .any(|s| matches!(s, Sig::Attestor(e) if *e != B64::Broken))
            // A signature object the envelope's schema refuses makes the whole file unreadable.
            && !self.signatures.iter().take(4).any(|s| matches!(s, Sig::Malformed(_)))
            && self.extra.as_ref().is_none_or(|(k, _)| {
                !["payload", "payloadType", "signatures"].contains(&k.as_str())
            })
    }

    fn build(&self) -> String {
        let mut predicate = serde_json::Map::new();
        for (k, v, good) in [
            ("result", &self.result, json!("pass")),
            (
                "scope_reviewed",
                &self.scope_reviewed,
                json!(["github:repo.read"]),
            ),
            ("expires", &self.expires, json!("2030-01-01T00:00:00Z")),
            ("points", &self.points, json!(12)),
        ] {
            if let Some(v) = v.apply(good) {
                predicate.insert(k.into(), v);
            }
        }
        let mut subject = serde_json::Map::new();
        if let Some(n) = self.name.apply(json!("mandate:agent:agt_fuzz")) {
            subject.insert("name".into(), n);
        }
        if let Some(d) = self.digest.apply(json!("ab".repeat(32))) {
            subject.insert("digest".into(), json!({ "sha256": d }));
        }
        let subject = Value::Object(subject);
        let subjects = match self.subjects {
            Subjects::One => json!([subject]),
            Subjects::None => json!([]),
            Subjects::Two => json!([subject.clone(), subject]),
            Subjects::NotAnArray => subject,
        };
        let mut statement = serde_json::Map::new();
        statement.insert("subject".into(), subjects);
        for (k, v, good) in [
            ("_type", &self.type_, json!(STATEMENT_TYPE)),
            ("predicateType", &self.predicate_type, json!(PREDICATE_TYPE)),
            ("predicate", &Val::Keep, Value::Object(predicate)),
        ] {
            if let Some(v) = v.apply(good) {
                statement.insert(k.into(), v);
            }
        }
        let payload = serde_json::to_vec(&Value::Object(statement)).unwrap();
        let payload_type = self.payload_type.apply(json!(PAYLOAD_TYPE));
        let type_text = payload_type.as_ref().and_then(Value::as_str).unwrap_or("");
        let message = pae(type_text.as_bytes(), &payload);
        let signatures: Vec<Value> = self
            .signatures
            .iter()
            .take(4)
            .map(|s| {
                let sig = |k: &SigningKey, m: &[u8], e: B64| json!({"keyid": "", "sig": e.encode(&k.sign(m).to_bytes())});
                match s {
                    Sig::Attestor(e) => sig(&attestor(), &message, *e),
                    Sig::AttestorWrongMessage(true) => sig(&attestor(), &payload, B64::Standard),
                    Sig::AttestorWrongMessage(false) => {
                        sig(&attestor(), &pae(b"application/json", &payload), B64::Standard)
                    }
                    Sig::Revoked => sig(&revoked(), &message, B64::Standard),
                    Sig::Stranger => sig(&stranger_key(), &message, B64::Standard),
                    Sig::Flipped(i, x) => {
                        let mut b = attestor().sign(&message).to_bytes();
                        b[usize::from(*i) % 64] ^= (*x).max(1);
                        json!({"sig": STANDARD.encode(b)})
                    }
                    Sig::Raw(b) => json!({"sig": STANDARD.encode(b)}),
                    Sig::Malformed(true) => json!({"keyid": "k"}),
                    Sig::Malformed(false) => json!({"sig": 5}),
                }
            })
            .collect();
        let mut env = serde_json::Map::new();
        if let Some((k, v)) = &self.extra {
            env.insert(k.clone(), json!(v));
        }
        env.insert(
            "payload".into(),
            json!(self.payload_encoding.encode(&payload)),
        );
        if let Some(t) = payload_type {
            env.insert("payloadType".into(), t);
        }
        env.insert("signatures".into(), json!(signatures));
        Value::Object(env).to_string()
    }
}

/// DSSE v1's pre-authentication encoding, written here from the spec.
fn pae(payload_type: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut m = format!("DSSEv1 {} ", payload_type.len()).into_bytes();
    m.extend_from_slice(payload_type);
    m.extend_from_slice(format!(" {} ", payload.len()).as_bytes());
    m.extend_from_slice(payload);
    m
}

/// Base64 as DSSE allows it: standard or URL-safe, padded or not.
fn unbase64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(s).ok())
}

/// The members of a DSSE envelope this check reads (others, such as `keyid`, are ignored;
/// read into structs rather than values, which cannot hold a number such as 1e400).
#[derive(serde::Deserialize)]
struct Dsse {
    #[serde(rename = "payloadType")]
    payload_type: String,
    payload: String,
    signatures: Vec<DsseSig>,
}

#[derive(serde::Deserialize)]
struct DsseSig {
    sig: String,
}

/// The independent check of an envelope `open` accepted.
fn check_opened(envelope: &str, review: &attest::Review) {
    let env: Dsse = serde_json::from_str(envelope).expect("an opened envelope is DSSE JSON");
    assert_eq!(
        env.payload_type, PAYLOAD_TYPE,
        "opened with another payload type"
    );
    let payload = unbase64(&env.payload).expect("an opened envelope's payload is base64");
    let message = pae(PAYLOAD_TYPE.as_bytes(), &payload);
    let key = attestor().verifying_key();
    let signed = env
        .signatures
        .iter()
        .filter_map(|s| unbase64(&s.sig))
        .filter_map(|b| Signature::from_slice(&b).ok())
        .any(|sig| key.verify_strict(&message, &sig).is_ok());
    assert!(
        signed,
        "an envelope opened without the attestor's signature over its PAE"
    );
    // A member the reader ignores may hold a number values cannot (1e400): the signature is
    // checked above; the statement's reading only where values can hold it.
    let Ok(st) = serde_json::from_slice::<Value>(&payload) else {
        return;
    };
    assert_eq!(st["_type"], STATEMENT_TYPE);
    assert_eq!(st["predicateType"], PREDICATE_TYPE);
    let subjects = st["subject"].as_array().expect("subject is an array");
    assert_eq!(subjects.len(), 1, "a review names one subject");
    assert_eq!(
        subjects[0]["name"].as_str(),
        Some(format!("mandate:agent:{}", review.agent_id).as_str()),
        "the agent read is not the one signed"
    );
    assert!(!review.agent_id.is_empty());
    let digest = subjects[0]["digest"]["sha256"]
        .as_str()
        .expect("a sha256 digest");
    assert_eq!(digest.to_ascii_lowercase(), review.config_digest);
    assert!(
        review.config_digest.len() == 64
            && review.config_digest.bytes().all(|b| b.is_ascii_hexdigit())
    );
    let p = &st["predicate"];
    assert_eq!(p["result"].as_str(), Some(review.result.as_str()));
    let expires = DateTime::parse_from_rfc3339(p["expires"].as_str().expect("expires is text"))
        .expect("expires is RFC 3339");
    assert_eq!(expires, review.expires);
    let scopes: Vec<&str> = p["scope_reviewed"]
        .as_array()
        .expect("scope_reviewed is a list")
        .iter()
        .map(|s| s.as_str().expect("scopes are text"))
        .collect();
    assert_eq!(scopes, review.scope_reviewed);
    for max in [0, 1, 30, i32::MAX] {
        let pts = attest::bounded_points(review, max);
        assert!((-max..=max).contains(&pts), "{pts} outside ±{max}");
        match review.result {
            ReviewResult::Pass => assert!(pts >= 0, "a pass removed points"),
            ReviewResult::Fail => assert!(pts <= 0, "a fail added points"),
        }
    }
}

fuzz_target!(|input: Input| {
    let (text, pristine) = match &input {
        Input::Raw(s) => (s.clone(), false),
        Input::Built(spec) => (spec.build(), spec.pristine()),
    };
    let keys = [
        SignerKey {
            name: "auditor",
            key: attestor().verifying_key(),
            revoked: false,
        },
        SignerKey {
            name: "former",
            key: revoked().verifying_key(),
            revoked: true,
        },
    ];
    match attest::open(&text, &keys) {
        Ok(opened) => {
            assert_eq!(
                opened.signer, 0,
                "opened under a key that is not the registered attestor's"
            );
            check_opened(&text, &opened.review);
        }
        Err(e) => {
            assert!(
                !pristine,
                "a genuine, correctly signed review was refused: {e}\n{text}"
            );
            assert!(!e.to_string().is_empty());
        }
    }
});
