//! The compact JWS splitter and parser (`oauth::jws`), on raw text and on well-formed tokens
//! with mutated headers, claims, encodings and signatures. Oracle: whatever the core parses and
//! verifies under the agent's key must carry a valid signature by that key over exactly the
//! header and claims the core read (checked independently, `mandate_fuzz::signed_by`).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mandate_core::oauth::jws;
use mandate_fuzz::{AGENT, JwtSpec, agent_key, claims_of, signed_by};
use serde_json::{Value, json};

#[derive(Arbitrary, Debug)]
enum Input {
    Raw(String),
    Built(JwtSpec),
}

fuzz_target!(|input: Input| {
    let key = agent_key();
    let token = match input {
        Input::Raw(s) => s,
        Input::Built(spec) => {
            let h = json!({"alg": "EdDSA", "typ": "JWT", "kid": "k1"});
            let c = json!({"iss": AGENT, "sub": AGENT, "aud": "http://127.0.0.1:6263/oauth2/token",
                           "iat": mandate_fuzz::NOW, "exp": mandate_fuzz::NOW + 60, "jti": "j"});
            let (Value::Object(h), Value::Object(c)) = (h, c) else { return };
            spec.build(h, c, &key)
        }
    };
    let Ok(parsed) = jws::parse(&token) else { return };
    let header_ok = parsed.check_common_header(false).is_ok();
    let _ = parsed.check_common_header(true);
    let _ = parsed.header_str("kid");
    let _ = jws::numeric_date(parsed.claims.get("exp"));
    if header_ok && parsed.verify(&key.verifying_key()).is_ok() {
        assert!(signed_by(&token, &key.verifying_key()), "the core verified a token the key did not sign");
        assert_eq!(parsed.claims, claims_of(&token), "the core read other claims than were signed");
    }
});
