//! Signed review attestations: an in-toto Statement v1 in a DSSE envelope, Ed25519.
//!
//! Why this format: it is what supply-chain tools already produce (in-toto, securesystemslib,
//! cosign `attest-blob`), so an auditor, a CI pipeline that ran an agent's evals or a reviewer
//! who read its prompt can vouch for an agent with tools they have. `docs/ATTESTATIONS.md`
//! documents the predicate.
//!
//! - Envelope (DSSE v1): `{"payloadType": "application/vnd.in-toto+json", "payload": base64,
//!   "signatures": [{"keyid": "...", "sig": base64}]}`; each signature is over
//!   `PAE(payloadType, payload)`. Standard and URL-safe base64 are both accepted, as the DSSE
//!   spec allows.
//! - Statement: `_type` `https://in-toto.io/Statement/v1`, one subject named
//!   `mandate:agent:<agent id>` with `digest.sha256` = the agent's configuration digest
//!   ([`config_digest`]), `predicateType` [`PREDICATE_TYPE`].
//! - Predicate: `result` (`pass` | `fail`), `scope_reviewed` (the scopes the reviewer looked
//!   at), `expires` (RFC 3339), optional `points` (an integer; without it a pass asks for the
//!   attestor's whole bound and a fail for minus it). Whatever it asks, the attestor's
//!   `max_points` bounds it.
//!
//! Why the PAE is written here rather than taken from a crate: the one Rust crate that does
//! only DSSE (`dsse` 0.1) is months old with one maintainer, and the encoding is one line;
//! what matters is that the signature is checked with ed25519-dalek's `verify_strict`
//! (no malleable signatures, no small-order keys), which this module does.
//!
//! What it is not: storage or policy. It opens an envelope against the keys it is given and
//! says who signed what; `records` decides whether that counts (attestor revoked, expired,
//! another configuration version) and stores it.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The DSSE payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The in-toto Statement type this reads.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// Mandate's review predicate.
pub const PREDICATE_TYPE: &str = "https://mandate.dev/attestation/review/v1";
/// The subject name prefix: `mandate:agent:<agent id>`.
pub const SUBJECT_PREFIX: &str = "mandate:agent:";
/// The largest envelope read (a review statement is a few hundred bytes).
pub const MAX_ENVELOPE_BYTES: usize = 64 * 1024;

/// A reviewer's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum ReviewResult {
    Pass,
    Fail,
}

impl ReviewResult {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewResult::Pass => "pass",
            ReviewResult::Fail => "fail",
        }
    }

    pub(crate) fn from_db(s: &str) -> Result<Self> {
        match s {
            "pass" => Ok(ReviewResult::Pass),
            "fail" => Ok(ReviewResult::Fail),
            other => Err(Error::Storage(format!("unknown review result '{other}'"))),
        }
    }
}

/// What a verified review statement says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    pub agent_id: String,
    /// Lowercase hex SHA-256 of the configuration the reviewer saw.
    pub config_digest: String,
    pub result: ReviewResult,
    pub scope_reviewed: Vec<String>,
    pub expires: DateTime<Utc>,
    /// What the statement asks for, before the attestor's bound.
    pub points: Option<i64>,
}

/// A key an envelope may be signed with.
#[derive(Debug, Clone)]
pub struct SignerKey<'a> {
    pub name: &'a str,
    pub key: VerifyingKey,
    pub revoked: bool,
}

/// Who signed an opened envelope, and what it says.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The index in the keys given of the attestor whose key verified a signature.
    pub signer: usize,
    pub review: Review,
}

/// DSSE's pre-authentication encoding:
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// The digest of an agent's configuration that attestations name: lowercase hex SHA-256 of
/// the RFC 8785 canonical JSON of `{"agent", "config_version", "parent", "purpose",
/// "scopes"}` (scopes sorted; `parent` is the parent's id or null).
pub fn config_digest(
    agent_id: &str,
    config_version: u32,
    parent_id: Option<&str>,
    purpose: &str,
    scopes: &[String],
) -> Result<String> {
    let mut scopes = scopes.to_vec();
    scopes.sort();
    let v = serde_json::json!({
        "agent": agent_id,
        "config_version": config_version,
        "parent": parent_id,
        "purpose": purpose,
        "scopes": scopes,
    });
    let bytes = serde_json_canonicalizer::to_vec(&v)
        .map_err(|e| Error::Storage(format!("could not canonicalise a configuration: {e}")))?;
    Ok(hex(&Sha256::digest(&bytes)))
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn b64(s: &str) -> Option<Vec<u8>> {
    [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(s.trim()).ok())
}

#[derive(Deserialize)]
struct Envelope {
    payload: String,
    #[serde(rename = "payloadType")]
    payload_type: String,
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Deserialize)]
struct EnvelopeSignature {
    sig: String,
}

#[derive(Deserialize)]
struct Statement {
    #[serde(rename = "_type")]
    type_: String,
    subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
    predicate: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Subject {
    name: Option<String>,
    #[serde(default)]
    digest: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Predicate {
    result: String,
    scope_reviewed: Vec<String>,
    expires: String,
    /// A number: JSON from protobuf's Struct (what in-toto-attestation builds) writes every
    /// number as a double, so `12.0` is read as 12.
    points: Option<serde_json::Value>,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::invalid(msg)
}

/// Verify `envelope` (DSSE JSON) against `keys` and read the review it carries.
///
/// Refused, each with a sentence saying why: not a DSSE envelope, another payload type, a
/// signature no registered attestor's key verifies (unknown attestor), one only a revoked
/// attestor's key verifies, a statement that is not an in-toto Statement v1 of the review
/// predicate, or that names no single Mandate agent.
pub fn open(envelope: &str, keys: &[SignerKey<'_>]) -> Result<Opened> {
    if envelope.len() > MAX_ENVELOPE_BYTES {
        return Err(bad(format!(
            "the attestation is larger than {} KiB; a review attestation is a few hundred bytes",
            MAX_ENVELOPE_BYTES / 1024
        )));
    }
    let env: Envelope = serde_json::from_str(envelope).map_err(|e| {
        bad(format!(
            "the file is not a DSSE envelope ({e}); give the JSON envelope with payload, \
             payloadType and signatures"
        ))
    })?;
    if env.payload_type != PAYLOAD_TYPE {
        return Err(bad(format!(
            "the envelope's payloadType is '{}'; Mandate reads in-toto statements \
             ('{PAYLOAD_TYPE}')",
            env.payload_type
        )));
    }
    let payload = b64(&env.payload)
        .ok_or_else(|| bad("the envelope's payload is not base64; the file may be damaged"))?;
    if env.signatures.is_empty() {
        return Err(bad(
            "the envelope has no signature; have the attestor sign it",
        ));
    }
    let message = pae(&env.payload_type, &payload);
    let mut revoked_signer = None;
    let mut signer = None;
    'sigs: for s in &env.signatures {
        let Some(raw) = b64(&s.sig) else { continue };
        let Ok(sig) = Signature::from_slice(&raw) else {
            continue;
        };
        for (i, k) in keys.iter().enumerate() {
            if k.key.verify_strict(&message, &sig).is_ok() {
                if k.revoked {
                    revoked_signer.get_or_insert(k.name);
                } else {
                    signer = Some(i);
                    break 'sigs;
                }
            }
        }
    }
    let signer = match (signer, revoked_signer) {
        (Some(i), _) => i,
        (None, Some(name)) => {
            return Err(Error::Refused(format!(
                "the attestation is signed by '{name}', whose attestor registration was \
                 revoked; its attestations no longer count"
            )));
        }
        (None, None) => {
            return Err(Error::Refused(
                "no registered attestor's key verifies this signature (unknown attestor): \
                 register the signer with `mandate attestor add NAME --public-key FILE \
                 --max-points N`, or check the file was not changed after signing"
                    .into(),
            ));
        }
    };
    let review = read_statement(&payload)?;
    Ok(Opened { signer, review })
}

fn read_statement(payload: &[u8]) -> Result<Review> {
    let st: Statement = serde_json::from_slice(payload).map_err(|e| {
        bad(format!(
            "the signed payload is not an in-toto statement ({e})"
        ))
    })?;
    if st.type_ != STATEMENT_TYPE {
        return Err(bad(format!(
            "the statement's _type is '{}'; Mandate reads '{STATEMENT_TYPE}'",
            st.type_
        )));
    }
    if st.predicate_type != PREDICATE_TYPE {
        return Err(bad(format!(
            "the statement's predicateType is '{}'; Mandate counts '{PREDICATE_TYPE}' \
             (see docs/ATTESTATIONS.md)",
            st.predicate_type
        )));
    }
    let [subject] = st.subject.as_slice() else {
        return Err(bad(format!(
            "the statement names {} subjects; a review names exactly one agent \
             ('{SUBJECT_PREFIX}<agent id>')",
            st.subject.len()
        )));
    };
    let agent_id = subject
        .name
        .as_deref()
        .and_then(|n| n.strip_prefix(SUBJECT_PREFIX))
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            bad(format!(
                "the statement's subject is not a Mandate agent: its name must be \
                 '{SUBJECT_PREFIX}<agent id>' (`mandate attest subject AGENT` prints it)"
            ))
        })?;
    let digest = subject
        .digest
        .get("sha256")
        .filter(|d| d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| {
            bad(
                "the statement's subject has no sha256 digest of the agent's configuration \
                 (`mandate attest subject AGENT` prints it)",
            )
        })?;
    let predicate: Predicate =
        serde_json::from_value(st.predicate.unwrap_or_default()).map_err(|e| {
            bad(format!(
                "the review predicate is incomplete ({e}); it needs result, scope_reviewed \
                 and expires"
            ))
        })?;
    let result = match predicate.result.as_str() {
        "pass" => ReviewResult::Pass,
        "fail" => ReviewResult::Fail,
        other => {
            return Err(bad(format!(
                "the review's result is '{other}'; it must be 'pass' or 'fail'"
            )));
        }
    };
    let expires = DateTime::parse_from_rfc3339(&predicate.expires)
        .map_err(|_| {
            bad(format!(
                "the review's expires ('{}') is not an RFC 3339 time such as \
                 2027-01-31T00:00:00Z",
                predicate.expires
            ))
        })?
        .with_timezone(&Utc);
    let points = match &predicate.points {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .or_else(|| {
                    v.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() <= 1000.0)
                        .map(|f| f as i64)
                })
                .ok_or_else(|| {
                    bad(format!(
                        "the review's points ({v}) are not a whole number; leave them out to \
                         ask for the attestor's whole bound"
                    ))
                })?,
        ),
    };
    Ok(Review {
        agent_id: agent_id.to_string(),
        config_digest: digest.to_ascii_lowercase(),
        result,
        scope_reviewed: predicate.scope_reviewed,
        expires,
        points,
    })
}

/// The points a review adds, within the attestor's bound `max_points`.
pub fn bounded_points(review: &Review, max_points: i32) -> i32 {
    let max = i64::from(max_points);
    let asked = review.points.unwrap_or(match review.result {
        ReviewResult::Pass => max,
        ReviewResult::Fail => -max,
    });
    // A fail never adds points, a pass never removes them.
    let asked = match review.result {
        ReviewResult::Pass => asked.max(0),
        ReviewResult::Fail => asked.min(0),
    };
    i32::try_from(asked.clamp(-max, max)).unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn statement(agent: &str, digest: &str, predicate: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "_type": STATEMENT_TYPE,
            "subject": [{"name": format!("{SUBJECT_PREFIX}{agent}"), "digest": {"sha256": digest}}],
            "predicateType": PREDICATE_TYPE,
            "predicate": predicate,
        }))
        .unwrap()
    }

    fn envelope(key: &SigningKey, payload: &[u8]) -> String {
        let sig = key.sign(&pae(PAYLOAD_TYPE, payload));
        serde_json::json!({
            "payloadType": PAYLOAD_TYPE,
            "payload": STANDARD.encode(payload),
            "signatures": [{"keyid": "k", "sig": STANDARD.encode(sig.to_bytes())}],
        })
        .to_string()
    }

    fn review() -> serde_json::Value {
        serde_json::json!({"result": "pass", "scope_reviewed": ["github:repo.read"],
                           "expires": "2030-01-01T00:00:00Z"})
    }

    /// The DSSE spec's own example: PAE("http://example.com/HelloWorld", "hello world").
    #[test]
    fn pae_matches_the_dsse_spec_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn a_signed_review_opens_and_names_its_signer() {
        let a = SigningKey::from_bytes(&[1; 32]);
        let b = SigningKey::from_bytes(&[2; 32]);
        let env = envelope(&b, &statement("agent-1", &"ab".repeat(32), review()));
        let keys = [
            SignerKey {
                name: "a",
                key: a.verifying_key(),
                revoked: false,
            },
            SignerKey {
                name: "b",
                key: b.verifying_key(),
                revoked: false,
            },
        ];
        let o = open(&env, &keys).unwrap();
        assert_eq!(o.signer, 1);
        assert_eq!(o.review.agent_id, "agent-1");
        assert_eq!(o.review.result, ReviewResult::Pass);
    }

    #[test]
    fn unknown_revoked_and_tampered_signers_are_refused_with_reasons() {
        let a = SigningKey::from_bytes(&[1; 32]);
        let stranger = SigningKey::from_bytes(&[3; 32]);
        let payload = statement("agent-1", &"ab".repeat(32), review());
        let keys = [SignerKey {
            name: "auditor",
            key: a.verifying_key(),
            revoked: false,
        }];
        let err = open(&envelope(&stranger, &payload), &keys).unwrap_err();
        assert!(err.to_string().contains("unknown attestor"), "{err}");
        let revoked = [SignerKey {
            revoked: true,
            ..keys[0].clone()
        }];
        let err = open(&envelope(&a, &payload), &revoked).unwrap_err();
        assert!(err.to_string().contains("'auditor'"), "{err}");
        assert!(err.to_string().contains("revoked"), "{err}");
        // The payload type is inside the signature: the same signature under another type
        // does not verify (CVE-2022-35929's class).
        let mut env: serde_json::Value = serde_json::from_str(&envelope(&a, &payload)).unwrap();
        env["payload"] = STANDARD
            .encode(statement("agent-2", &"ab".repeat(32), review()))
            .into();
        let err = open(&env.to_string(), &keys).unwrap_err();
        assert!(err.to_string().contains("unknown attestor"), "{err}");
    }

    #[test]
    fn statements_of_another_kind_are_refused() {
        let a = SigningKey::from_bytes(&[1; 32]);
        let keys = [SignerKey {
            name: "a",
            key: a.verifying_key(),
            revoked: false,
        }];
        let mut p: serde_json::Value =
            serde_json::from_slice(&statement("x", &"ab".repeat(32), review())).unwrap();
        p["predicateType"] = "https://slsa.dev/provenance/v1".into();
        let err = open(&envelope(&a, &serde_json::to_vec(&p).unwrap()), &keys).unwrap_err();
        assert!(err.to_string().contains("predicateType"), "{err}");
        let bad_result = serde_json::json!({"result": "maybe", "scope_reviewed": [],
                                            "expires": "2030-01-01T00:00:00Z"});
        let err = open(
            &envelope(&a, &statement("x", &"ab".repeat(32), bad_result)),
            &keys,
        )
        .unwrap_err();
        assert!(err.to_string().contains("'pass' or 'fail'"), "{err}");
    }

    #[test]
    fn points_stay_within_the_attestors_bound() {
        let mut r = read_statement(&statement("x", &"ab".repeat(32), review())).unwrap();
        assert_eq!(bounded_points(&r, 15), 15);
        r.points = Some(1000);
        assert_eq!(bounded_points(&r, 15), 15);
        r.points = Some(5);
        assert_eq!(bounded_points(&r, 15), 5);
        r.points = Some(-5);
        assert_eq!(bounded_points(&r, 15), 0, "a pass never removes points");
        r.result = ReviewResult::Fail;
        r.points = None;
        assert_eq!(bounded_points(&r, 15), -15);
        r.points = Some(-1000);
        assert_eq!(bounded_points(&r, 15), -15);
    }
}
