//! Property tests in place of cargo-fuzz (which needs a nightly compiler): arbitrary and
//! mutated input to every parser an attacker can reach (SECURITY.md, "Fuzzing"). None may
//! panic, and no mutation of a signed input may still verify unless it changed nothing that
//! was signed (else it would be a signature bypass). Inputs are bounded so each case is fast.

use mandate_core::audit::note::{NoteKey, SignedCheckpoint};
use mandate_core::audit::verify::{BundleOptions, check_bundle};
use mandate_core::keys;
use mandate_core::oauth::{dpop, jws};
use proptest::prelude::*;
use serde_json::json;

fn signed_token() -> (String, ed25519_dalek::VerifyingKey) {
    let key = keys::generate();
    let t = jws::sign(
        &json!({"alg": "EdDSA", "typ": "JWT", "kid": "k1"}),
        &json!({"iss": "bot", "sub": "bot", "aud": "http://127.0.0.1:6263/oauth2/token",
                "iat": 1_700_000_000, "exp": 1_700_000_060, "jti": "j"}),
        &key,
    );
    (t, key.verifying_key())
}

/// Arbitrary printable text with the JWS alphabet over-represented.
fn jws_like() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            3 => prop::sample::select(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.".chars().collect::<Vec<_>>()
            ),
            1 => any::<char>(),
        ],
        0..600,
    )
    .prop_map(|v| v.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn jws_parsing_never_panics(s in jws_like()) {
        if let Ok(j) = jws::parse(&s) {
            let _ = j.check_common_header(false);
            let _ = j.verify(&keys::generate().verifying_key());
        }
    }

    /// Flip, insert or delete bytes of a valid token: whatever still parses and verifies must
    /// carry exactly the signed header and claims.
    #[test]
    fn no_mutation_of_a_signed_token_verifies_with_other_content(
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 1..4)
    ) {
        let (token, key) = signed_token();
        let original = jws::parse(&token).unwrap();
        let mut bytes = token.clone().into_bytes();
        for (at, kind, b) in edits {
            let i = at.index(bytes.len().max(1));
            match kind {
                0 if i < bytes.len() => bytes[i] = b,
                1 => bytes.insert(i.min(bytes.len()), b),
                _ if i < bytes.len() => { bytes.remove(i); }
                _ => {}
            }
        }
        let Ok(s) = String::from_utf8(bytes) else { return Ok(()) };
        if let Ok(j) = jws::parse(&s) && j.verify(&key).is_ok() {
            prop_assert_eq!(j.header_str("kid"), original.header_str("kid"));
            prop_assert_eq!(j.claim_str("sub"), original.claim_str("sub"));
            prop_assert_eq!(j.claim_str("jti"), original.claim_str("jti"));
            prop_assert_eq!(s, token, "a different token verified");
        }
    }

    #[test]
    fn dpop_proof_checking_never_panics(s in jws_like(), htu in "[ -~]{0,80}") {
        let _ = dpop::check(&s, dpop::Expect {
            htm: "POST",
            htu: &htu,
            now: 1_700_000_000,
            access_token: Some("t"),
            jkt: Some("x"),
        });
        let _ = dpop::normalize_htu(&htu);
    }

    #[test]
    fn checkpoint_notes_never_panic(s in "(?s)[ -~\n\u{2014}]{0,400}") {
        if let Ok(cp) = SignedCheckpoint::parse(&s) {
            let key = NoteKey::new("mandate", keys::generate().verifying_key());
            prop_assert!(cp.verify(std::slice::from_ref(&key)).is_err(), "verified under a fresh key");
        }
        let _ = NoteKey::parse_vkey(&s);
    }

    #[test]
    fn bundle_verification_never_panics_and_never_passes_garbage(
        lines in prop::collection::vec("[ -~]{0,120}", 0..12)
    ) {
        let text = lines.join("\n");
        let report = check_bundle(text.as_bytes(), &BundleOptions::default());
        prop_assert!(!report.ok(), "garbage verified: {text}");
    }

    #[test]
    fn public_key_parsing_never_panics(s in "(?s).{0,300}") {
        let _ = keys::parse_public_key(&s);
    }
}
