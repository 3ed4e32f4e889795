//! RFC 9449 DPoP proofs: the client shows it holds the private key a token is bound to.
//!
//! A proof is a JWS with `typ: dpop+jwt`, an Ed25519 public `jwk` in its header (never a
//! private part), and claims `jti`, `htm` (the request method), `htu` (the request URL,
//! compared without query and fragment), `iat` (within 60 s of now) and, at a resource, `ath`
//! (the hash of the access token). The token is bound by the key's RFC 7638 thumbprint
//! (`cnf.jkt`). Whether the `jti` was seen before is decided by the caller inside its
//! transaction (the used-`jti` table), for the whole acceptance window, across restarts.
//!
//! What it is not: proof keys are Ed25519 only; other algorithms are refused, which RFC 9449
//! allows (the server advertises `dpop_signing_alg_values_supported`).

use ed25519_dalek::VerifyingKey;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::jws;
use crate::keys;

/// How far `iat` may be from now, either way.
pub const IAT_WINDOW_SECS: i64 = 60;

/// A checked proof.
#[derive(Debug, Clone)]
pub struct DpopProof {
    /// RFC 7638 thumbprint of the proof key.
    pub jkt: String,
    pub jti: String,
    pub iat: i64,
}

/// What the proof must match.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    pub htm: &'a str,
    pub htu: &'a str,
    pub now: i64,
    /// At a resource: the access token the proof must hash (`ath`).
    pub access_token: Option<&'a str>,
    /// At a resource: the `cnf.jkt` the token is bound to.
    pub jkt: Option<&'a str>,
}

/// `scheme://host[:port]/path`, lower-cased scheme and host, default ports dropped, without
/// query or fragment. `None` when it is not an absolute http(s) URL.
pub fn normalize_htu(raw: &str) -> Option<String> {
    let u = url::Url::parse(raw).ok()?;
    if !matches!(u.scheme(), "http" | "https") {
        return None;
    }
    let host = u.host_str()?;
    let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
    Some(format!("{}://{}{}{}", u.scheme(), host, port, u.path()))
}

/// Make a proof (the client's side, for `mandate team`): signed with `key`, for `htm` and
/// `htu` at `now`, with a fresh `jti` and, at a resource, the access token's hash (`ath`).
pub fn make_proof(
    key: &ed25519_dalek::SigningKey,
    htm: &str,
    htu: &str,
    now: i64,
    access_token: Option<&str>,
) -> String {
    let mut claims = serde_json::json!({
        "jti": uuid::Uuid::new_v4().to_string(), "htm": htm, "htu": htu, "iat": now,
    });
    if let Some(t) = access_token {
        claims["ath"] = Value::String(keys::b64url(&Sha256::digest(t.as_bytes())));
    }
    let header = serde_json::json!({
        "typ": "dpop+jwt", "alg": "EdDSA", "jwk": keys::public_jwk(&key.verifying_key()),
    });
    jws::sign(&header, &claims, key)
}

/// Check one proof. The error is a sentence for `invalid_dpop_proof`.
pub fn check(proof: &str, expect: Expect<'_>) -> Result<DpopProof, String> {
    let bad = |why: &str| format!("the DPoP proof was refused: {why}");
    let j = jws::parse(proof).map_err(|e| bad(&e.to_string()))?;
    match j.header.get("typ") {
        Some(Value::String(t)) if t == "dpop+jwt" => {}
        Some(_) => return Err(bad("its \"typ\" must be dpop+jwt")),
        None => return Err(bad("it has no \"typ\"")),
    }
    j.check_common_header(true)
        .map_err(|e| bad(&e.to_string()))?;
    let Some(Value::Object(jwk)) = j.header.get("jwk") else {
        return Err(bad("it has no \"jwk\" header with the public key"));
    };
    for private in ["d", "p", "q", "dp", "dq", "qi", "k", "oth"] {
        if jwk.contains_key(private) {
            return Err(bad("its \"jwk\" contains a private key part"));
        }
    }
    if jwk.get("kty").and_then(Value::as_str) != Some("OKP")
        || jwk.get("crv").and_then(Value::as_str) != Some("Ed25519")
    {
        return Err(bad("its \"jwk\" must be an Ed25519 (OKP) public key"));
    }
    let x = jwk
        .get("x")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("its \"jwk\" has no \"x\""))?;
    let raw = jws::b64_strict(x, "jwk").map_err(|e| bad(&e.to_string()))?;
    let arr: [u8; 32] = raw
        .as_slice()
        .try_into()
        .map_err(|_| bad("its \"jwk\" is not a 32-byte Ed25519 key"))?;
    let key =
        VerifyingKey::from_bytes(&arr).map_err(|_| bad("its \"jwk\" is not an Ed25519 point"))?;
    if key.is_weak() {
        return Err(bad("its \"jwk\" is a weak (small-order) key"));
    }
    j.verify(&key).map_err(|e| bad(&e.to_string()))?;

    let jti = match j.claims.get("jti") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => s.clone(),
        Some(_) => return Err(bad("its \"jti\" must be a string of 1 to 256 characters")),
        None => return Err(bad("it has no \"jti\"")),
    };
    match j.claims.get("htm") {
        Some(Value::String(m)) if m == expect.htm => {}
        Some(_) => return Err(bad("its \"htm\" does not match the request method")),
        None => return Err(bad("it has no \"htm\"")),
    }
    let htu = match j.claims.get("htu") {
        Some(Value::String(u)) => u,
        Some(_) => return Err(bad("its \"htu\" is not a string")),
        None => return Err(bad("it has no \"htu\"")),
    };
    if normalize_htu(htu).is_none() || normalize_htu(htu) != normalize_htu(expect.htu) {
        return Err(bad("its \"htu\" does not match the request URL"));
    }
    let iat = match j.claims.get("iat") {
        None => return Err(bad("it has no \"iat\"")),
        Some(v) => jws::numeric_date(Some(v)).ok_or_else(|| bad("its \"iat\" is not a number"))?,
    };
    if (iat - expect.now).abs() > IAT_WINDOW_SECS {
        return Err(bad("its \"iat\" is not within 60 seconds of now"));
    }
    if let Some(token) = expect.access_token {
        let want = keys::b64url(&Sha256::digest(token.as_bytes()));
        match j.claims.get("ath") {
            Some(Value::String(a)) if *a == want => {}
            Some(_) => return Err(bad("its \"ath\" does not match the access token")),
            None => return Err(bad("it has no \"ath\" (the access token's hash)")),
        }
    }
    let jkt = keys::thumbprint(&key);
    if let Some(bound) = expect.jkt
        && bound != jkt
    {
        return Err(bad(
            "its key is not the key the token is bound to (cnf.jkt)",
        ));
    }
    Ok(DpopProof { jkt, jti, iat })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use serde_json::json;

    const HTU: &str = "http://127.0.0.1:6263/oauth2/token";

    fn proof(k: &SigningKey, header: Value, claims: Value) -> String {
        jws::sign(&header, &claims, k)
    }

    fn good(k: &SigningKey) -> (Value, Value) {
        let jwk =
            json!({"kty":"OKP","crv":"Ed25519","x": keys::b64url(k.verifying_key().as_bytes())});
        (
            json!({"typ":"dpop+jwt","alg":"EdDSA","jwk": jwk}),
            json!({"jti":"p1","htm":"POST","htu":HTU,"iat":1000}),
        )
    }

    fn expect(now: i64) -> Expect<'static> {
        Expect {
            htm: "POST",
            htu: HTU,
            now,
            access_token: None,
            jkt: None,
        }
    }

    #[test]
    fn accepts_a_good_proof_and_query_or_fragment_differences() {
        let k = SigningKey::from_bytes(&[3; 32]);
        let (h, mut c) = good(&k);
        let p = check(&proof(&k, h.clone(), c.clone()), expect(1000)).unwrap();
        assert_eq!(p.jkt, keys::thumbprint(&k.verifying_key()));
        c["htu"] = json!(format!("{HTU}?x=1#f"));
        check(&proof(&k, h, c), expect(1000)).unwrap();
    }

    #[test]
    fn refuses_each_broken_proof() {
        let k = SigningKey::from_bytes(&[3; 32]);
        let (h, c) = good(&k);
        let mut cases: Vec<(&str, String)> = Vec::new();
        let mut with = |name: &'static str, hf: &dyn Fn(&mut Value), cf: &dyn Fn(&mut Value)| {
            let (mut h2, mut c2) = (h.clone(), c.clone());
            hf(&mut h2);
            cf(&mut c2);
            cases.push((name, proof(&k, h2, c2)));
        };
        let none = |_: &mut Value| {};
        with(
            "no typ",
            &|h| {
                h.as_object_mut().unwrap().remove("typ");
            },
            &none,
        );
        with("typ JWT", &|h| h["typ"] = json!("JWT"), &none);
        with("alg none", &|h| h["alg"] = json!("none"), &none);
        with("alg HS256", &|h| h["alg"] = json!("HS256"), &none);
        with(
            "no jwk",
            &|h| {
                h.as_object_mut().unwrap().remove("jwk");
            },
            &none,
        );
        with("private jwk", &|h| h["jwk"]["d"] = json!("AAAA"), &none);
        with("no jti", &none, &|c| {
            c.as_object_mut().unwrap().remove("jti");
        });
        with("no htm", &none, &|c| {
            c.as_object_mut().unwrap().remove("htm");
        });
        with("no htu", &none, &|c| {
            c.as_object_mut().unwrap().remove("htu");
        });
        with("no iat", &none, &|c| {
            c.as_object_mut().unwrap().remove("iat");
        });
        with("wrong htm", &none, &|c| c["htm"] = json!("GET"));
        with("wrong htu", &none, &|c| {
            c["htu"] = json!("http://127.0.0.1:6263/oauth2/revoke")
        });
        with("iat an hour off", &none, &|c| c["iat"] = json!(1000 - 3600));
        for (name, p) in cases {
            assert!(check(&p, expect(1000)).is_err(), "{name} was accepted");
        }
        // Bad signature: another key signs, the jwk names ours.
        let other = SigningKey::from_bytes(&[4; 32]);
        assert!(check(&proof(&other, h.clone(), c.clone()), expect(1000)).is_err());
        assert!(check("not.a.jwt", expect(1000)).is_err());
    }

    #[test]
    fn at_a_resource_checks_ath_and_the_bound_key() {
        let k = SigningKey::from_bytes(&[3; 32]);
        let (h, mut c) = good(&k);
        let token = "the-access-token";
        let jkt = keys::thumbprint(&k.verifying_key());
        let mut e = expect(1000);
        e.access_token = Some(token);
        e.jkt = Some(&jkt);
        assert!(
            check(&proof(&k, h.clone(), c.clone()), e).is_err(),
            "missing ath"
        );
        c["ath"] = json!("wrong");
        assert!(
            check(&proof(&k, h.clone(), c.clone()), e).is_err(),
            "wrong ath"
        );
        c["ath"] = json!(keys::b64url(&Sha256::digest(token.as_bytes())));
        check(&proof(&k, h.clone(), c.clone()), e).unwrap();
        let other = "someone-elses-jkt";
        e.jkt = Some(other);
        assert!(check(&proof(&k, h, c), e).is_err(), "key is not cnf.jkt");
    }
}
