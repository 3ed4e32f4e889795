//! DPoP proof checking (`oauth::dpop::check`, RFC 9449) at the token endpoint and at a resource,
//! on raw text and on well-formed proofs with mutated headers, claims and signatures. Oracle: an
//! accepted proof is signed by the public key in its own `jwk` header (checked independently),
//! its thumbprint is that key's, its `htm` and `iat` are the request's, and at a resource its
//! `ath` is the token's hash and its key the one the token is bound to.
#![no_main]

use arbitrary::Arbitrary;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::VerifyingKey;
use libfuzzer_sys::fuzz_target;
use mandate_core::oauth::dpop;
use mandate_fuzz::{ISSUER, JwtSpec, NOW, agent_key, b64, claims_of, signed_by, thumbprint};
use serde_json::{Value, json};
use sha2::Digest as _;

const TOKEN: &str = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJmdXp6In0.sig";

#[derive(Arbitrary, Debug)]
enum Proof {
    Raw(String),
    Built(JwtSpec),
}

#[derive(Arbitrary, Debug)]
struct Input {
    proof: Proof,
    /// Checked at a resource (with `ath` and the bound key) rather than the token endpoint.
    at_resource: bool,
    htu_variant: u8,
}

fuzz_target!(|input: Input| {
    let key = agent_key();
    let htu = format!("{ISSUER}/oauth2/token");
    let ath = b64(&sha2::Sha256::digest(TOKEN.as_bytes()));
    let jkt = thumbprint(&key.verifying_key());
    let proof = match &input.proof {
        Proof::Raw(s) => s.clone(),
        Proof::Built(spec) => {
            let claim_htu = match input.htu_variant % 4 {
                0 => htu.clone(),
                1 => format!("{htu}?q=1#f"),
                2 => "HTTP://127.0.0.1:6263/oauth2/token".to_string(),
                _ => "http://127.0.0.1:80/oauth2/token".to_string(),
            };
            let h = json!({"typ": "dpop+jwt", "alg": "EdDSA",
                "jwk": {"kty": "OKP", "crv": "Ed25519", "x": b64(key.verifying_key().as_bytes())}});
            let c = json!({"jti": "p1", "htm": "POST", "htu": claim_htu, "iat": NOW, "ath": ath});
            let (Value::Object(h), Value::Object(c)) = (h, c) else { return };
            spec.build(h, c, &key)
        }
    };
    let expect = dpop::Expect {
        htm: "POST",
        htu: &htu,
        now: NOW,
        access_token: input.at_resource.then_some(TOKEN),
        jkt: input.at_resource.then_some(jkt.as_str()),
    };
    let Ok(checked) = dpop::check(&proof, expect) else { return };
    // Independently: the key in the header signed it.
    let header: Value = proof
        .split('.')
        .next()
        .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .expect("an accepted proof has a JSON header");
    let x = header["jwk"]["x"].as_str().expect("an accepted proof names its key");
    let x: [u8; 32] = URL_SAFE_NO_PAD.decode(x).unwrap().try_into().unwrap();
    let proof_key = VerifyingKey::from_bytes(&x).unwrap();
    assert!(signed_by(&proof, &proof_key), "accepted a proof its own key did not sign");
    assert_eq!(checked.jkt, thumbprint(&proof_key));
    let claims = claims_of(&proof);
    assert_eq!(claims["htm"], json!("POST"));
    let iat = claims["iat"].as_f64().expect("iat is a number");
    assert!((iat - NOW as f64).abs() <= 61.0, "iat {iat} accepted");
    if input.at_resource {
        assert_eq!(claims["ath"], json!(ath));
        assert_eq!(checked.jkt, jkt);
    }
});
