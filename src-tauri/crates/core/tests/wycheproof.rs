//! Project Wycheproof's Ed25519 vectors (SECURITY.md: "weak or malleable Ed25519 keys and
//! signatures"), run through the same two steps an agent's key and assertion go through: key
//! registration (`keys::parse_public_key`, which refuses small-order keys) and signature
//! verification (`jws::verify_detached`, `verify_strict`). Every vector marked invalid must be
//! refused by one of them; every vector marked valid must pass both.

use mandate_core::keys;
use mandate_core::oauth::jws;
use serde_json::Value;

const VECTORS: &str = include_str!("vectors/wycheproof_ed25519_test.json");

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn every_wycheproof_ed25519_vector_gets_its_expected_result() {
    let doc: Value = serde_json::from_str(VECTORS).unwrap();
    let (mut valid, mut invalid, mut refused_keys) = (0, 0, 0);
    let mut wrong = Vec::new();
    for group in doc["testGroups"].as_array().unwrap() {
        let pem = group["publicKeyPem"].as_str().unwrap();
        let key = keys::parse_public_key(pem);
        if key.is_err() {
            refused_keys += 1;
        }
        for t in group["tests"].as_array().unwrap() {
            let id = t["tcId"].as_u64().unwrap();
            let msg = hex(t["msg"].as_str().unwrap());
            let sig = hex(t["sig"].as_str().unwrap());
            let accepted = key
                .as_ref()
                .is_ok_and(|k| jws::verify_detached(k, &msg, &sig).is_ok());
            match t["result"].as_str().unwrap() {
                "valid" => {
                    valid += 1;
                    if !accepted {
                        wrong.push(format!("#{id} valid but refused ({})", t["comment"]));
                    }
                }
                "invalid" => {
                    invalid += 1;
                    if accepted {
                        wrong.push(format!("#{id} invalid but accepted ({})", t["comment"]));
                    }
                }
                other => panic!("#{id}: unexpected result {other}"),
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert_eq!(
        valid + invalid,
        doc["numberOfTests"].as_u64().unwrap() as usize,
        "every vector ran"
    );
    assert!(
        valid > 0 && invalid > 50,
        "{valid} valid, {invalid} invalid"
    );
    eprintln!("{valid} valid and {invalid} invalid vectors, {refused_keys} keys refused");
}
