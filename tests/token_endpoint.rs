//! The token endpoint against SECURITY.md, line by line: a table of bad inputs with the exact
//! status and RFC error code each must get, then the flows (replay after restart, DPoP,
//! introspection and revocation that bite at once, delegation and sub-agent exchange, the
//! localhost defences). Real server on 127.0.0.1:0, real SQLite, in-memory keychain.

use serde_json::{Value, json};

use crate::endpoint::*;

/// One bad request: what it is, the body and headers, the status and error it must get.
struct Case {
    name: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    body: String,
    status: u16,
    error: &'static str,
}

fn case(name: &'static str, body: String, status: u16, error: &'static str) -> Case {
    Case {
        name,
        path: "/oauth2/token",
        headers: vec![],
        body,
        status,
        error,
    }
}

fn run(ep: &Endpoint, cases: Vec<Case>) {
    let mut failures = Vec::new();
    for c in cases {
        let mut headers: Vec<(&str, &str)> = vec![];
        if !c
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            headers.push(("Content-Type", "application/x-www-form-urlencoded"));
        }
        headers.extend(c.headers.iter().map(|(k, v)| (*k, v.as_str())));
        let r = ep.request("POST", c.path, &headers, &c.body);
        let err = serde_json::from_str::<Value>(&r.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(String::from))
            .unwrap_or_default();
        if r.status != c.status || err != c.error {
            failures.push(format!(
                "{}: expected {} {}, got {} {} ({})",
                c.name, c.status, c.error, r.status, err, r.body
            ));
        }
        assert_eq!(
            r.header("cache-control"),
            Some("no-store"),
            "{}: {}",
            c.name,
            r.body
        );
        assert!(
            !r.body.contains("eyJ"),
            "{}: an error echoed a JWT: {}",
            c.name,
            r.body
        );
        assert!(
            r.headers
                .iter()
                .all(|(k, _)| !k.to_ascii_lowercase().starts_with("access-control-"))
        );
        // Every 401 names its challenge (RFC 9110 §15.5.2).
        if r.status == 401 {
            let www = r.header("www-authenticate").unwrap_or_default();
            if !(www.starts_with("private_key_jwt ") && www.contains("error=\"invalid_client\"")) {
                failures.push(format!("{}: 401 without a challenge: {www:?}", c.name));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn a_valid_assertion_gets_a_token_and_its_audit_event_is_committed_first() {
    let ep = Endpoint::start();
    let r = ep.post_form("/oauth2/token", &[], &ep.form(&ep.assertion(AGENT), &[]));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let v = r.json();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 900);
    assert_eq!(v["scope"], "github:issues.write github:repo.read");
    let token = v["access_token"].as_str().unwrap();
    let h = header_of(token);
    assert_eq!(h["typ"], "at+jwt");
    assert_eq!(h["alg"], "EdDSA");
    let c = claims_of(token);
    for k in [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "nbf",
        "jti",
        "client_id",
        "scope",
    ] {
        assert!(c.get(k).is_some(), "claim {k} missing: {c}");
    }
    assert_eq!(c["iss"], ep.issuer());
    assert_eq!(c["sub"], AGENT);
    assert_eq!(c["aud"], GITHUB);
    // The response came after the commit: the event is in the store now, with the jti.
    let ev = &ep.m.audit_events(Some(AGENT), 1, None).unwrap()[0];
    assert_eq!(ev.action, "token.issued");
    assert_eq!(ev.details["jti"], c["jti"]);
    assert_eq!(ev.details["aud"], json!([GITHUB]));
    let body = serde_json::to_string(ev).unwrap();
    assert!(
        !body.contains(token),
        "the audit trail must not hold the token"
    );
    // The chain still verifies.
    assert!(ep.m.verify_audit_chain().unwrap().ok());
}

#[test]
fn client_authentication_bad_inputs_table() {
    let mut ep = Endpoint::start();
    ep.add_agent("suspended-agent", &["github:repo.read"], None);
    ep.add_agent("revoked-agent", &["github:repo.read"], None);
    ep.m.suspend_agent("suspended-agent", Some("test")).unwrap();
    ep.m.revoke_agent("revoked-agent", "test").unwrap();
    let t = now();
    let te = ep.token_endpoint();
    let a = |f: &dyn Fn(&mut Value, &mut Value)| ep.assertion_with(AGENT, f);
    let form = |assertion: String| ep.form(&assertion, &[]);
    let pk = ep.keys[AGENT].verifying_key().to_bytes();
    let hs256 = hs256_with_public_key(&ep.claims(AGENT), &pk);
    let unsigned = unsigned(&ep.claims(AGENT));
    let foreign_key = mandate_core::keys::generate();
    let foreign = sign(
        &json!({"alg":"EdDSA","kid": ep.kid(AGENT)}),
        &ep.claims(AGENT),
        &foreign_key,
    );
    let dup = {
        let c = ep.claims(AGENT).to_string();
        let c = c.replacen('{', &format!("{{\"sub\":\"{AGENT}\","), 1);
        let input = format!(
            "{}.{}",
            b64(json!({"alg":"EdDSA"}).to_string().as_bytes()),
            b64(c.as_bytes())
        );
        let sig = ed25519_dalek::Signer::sign(&ep.keys[AGENT], input.as_bytes());
        format!("{input}.{}", b64(&sig.to_bytes()))
    };
    let padded = {
        let good = ep.assertion(AGENT);
        let (h, rest) = good.split_once('.').unwrap();
        format!("{h}==.{rest}")
    };
    let access_token = ep.token(AGENT, &[]);
    let mut cases = vec![
        case(
            "expired beyond skew",
            form(a(&|_, c| {
                c["iat"] = json!(t - 300);
                c["exp"] = json!(t - 120);
            })),
            401,
            "invalid_client",
        ),
        case(
            "exp missing",
            form(a(&|_, c| {
                c.as_object_mut().unwrap().remove("exp");
            })),
            401,
            "invalid_client",
        ),
        case(
            "lifetime over one hour",
            form(a(&|_, c| c["exp"] = json!(t + 3600 + 120))),
            401,
            "invalid_client",
        ),
        case(
            "no iat and expiring over one hour from now",
            form(a(&|_, c| {
                c.as_object_mut().unwrap().remove("iat");
                c["exp"] = json!(t + 3600 + 120);
            })),
            401,
            "invalid_client",
        ),
        case(
            "iat in the future",
            form(a(&|_, c| {
                c["iat"] = json!(t + 300);
                c["exp"] = json!(t + 320);
            })),
            401,
            "invalid_client",
        ),
        case(
            "nbf in the future",
            form(a(&|_, c| c["nbf"] = json!(t + 300))),
            401,
            "invalid_client",
        ),
        case(
            "jti missing",
            form(a(&|_, c| {
                c.as_object_mut().unwrap().remove("jti");
            })),
            401,
            "invalid_client",
        ),
        case(
            "aud another issuer",
            form(a(&|_, c| c["aud"] = json!("https://evil.example"))),
            401,
            "invalid_client",
        ),
        case(
            "aud array with a foreign value",
            form(a(&|_, c| c["aud"] = json!([te, "https://evil.example"]))),
            401,
            "invalid_client",
        ),
        case(
            "aud missing",
            form(a(&|_, c| {
                c.as_object_mut().unwrap().remove("aud");
            })),
            401,
            "invalid_client",
        ),
        case(
            "iss differs from sub",
            form(a(&|_, c| c["iss"] = json!("someone-else"))),
            401,
            "invalid_client",
        ),
        case(
            "sub differs from client_id",
            ep.form(&ep.assertion(AGENT), &[("client_id", "other-agent")]),
            401,
            "invalid_client",
        ),
        case("alg none", form(unsigned), 401, "invalid_client"),
        case(
            "alg HS256 keyed with the public key",
            form(hs256),
            401,
            "invalid_client",
        ),
        case(
            "alg RS256",
            form(a(&|h, _| h["alg"] = json!("RS256"))),
            401,
            "invalid_client",
        ),
        case(
            "alg ES256",
            form(a(&|h, _| h["alg"] = json!("ES256"))),
            401,
            "invalid_client",
        ),
        case(
            "alg missing",
            form(a(&|h, _| {
                h.as_object_mut().unwrap().remove("alg");
            })),
            401,
            "invalid_client",
        ),
        case(
            "kid path traversal",
            form(a(&|h, _| h["kid"] = json!("../../etc/passwd"))),
            401,
            "invalid_client",
        ),
        case(
            "kid SQL",
            form(a(&|h, _| h["kid"] = json!("' OR 1=1 --"))),
            401,
            "invalid_client",
        ),
        case(
            "kid 10 KB",
            form(a(&|h, _| h["kid"] = json!("k".repeat(10_000)))),
            401,
            "invalid_client",
        ),
        case(
            "kid NUL",
            form(a(&|h, _| h["kid"] = json!("a\u{0}b"))),
            401,
            "invalid_client",
        ),
        case(
            "kid odd Unicode",
            form(a(&|h, _| h["kid"] = json!("\u{202e}kid\u{fe0f}"))),
            401,
            "invalid_client",
        ),
        case(
            "jku",
            form(a(&|h, _| h["jku"] = json!("https://evil.example/jwks"))),
            401,
            "invalid_client",
        ),
        case(
            "x5u",
            form(a(&|h, _| h["x5u"] = json!("https://evil.example/cert"))),
            401,
            "invalid_client",
        ),
        case(
            "jwk",
            form(a(&|h, _| h["jwk"] = json!({"kty":"OKP"}))),
            401,
            "invalid_client",
        ),
        case(
            "x5c",
            form(a(&|h, _| h["x5c"] = json!(["MIIB"]))),
            401,
            "invalid_client",
        ),
        case(
            "crit unknown",
            form(a(&|h, _| h["crit"] = json!(["urn:x"]))),
            401,
            "invalid_client",
        ),
        case("duplicate JSON members", form(dup), 401, "invalid_client"),
        case(
            "non-canonical base64url",
            form(padded),
            401,
            "invalid_client",
        ),
        case(
            "an access token as the assertion",
            form(access_token),
            401,
            "invalid_client",
        ),
        case(
            "typ at+jwt",
            form(a(&|h, _| h["typ"] = json!("at+jwt"))),
            401,
            "invalid_client",
        ),
        case(
            "signed by another key (another issuer's token)",
            form(foreign),
            401,
            "invalid_client",
        ),
        case(
            "unknown agent",
            form(sign(
                &json!({"alg":"EdDSA"}),
                &json!({"iss":"ghost-agent","sub":"ghost-agent","aud":te,"exp":t+60,"jti":"x"}),
                &ep.keys[AGENT],
            )),
            401,
            "invalid_client",
        ),
        case(
            "suspended agent",
            form(ep.assertion("suspended-agent")),
            401,
            "invalid_client",
        ),
        case(
            "revoked agent",
            form(ep.assertion("revoked-agent")),
            401,
            "invalid_client",
        ),
        case(
            "no client authentication",
            "grant_type=client_credentials".into(),
            401,
            "invalid_client",
        ),
        case(
            "client secret instead",
            "grant_type=client_credentials&client_id=billing-report-agent&client_secret=x".into(),
            401,
            "invalid_client",
        ),
        case(
            "wrong assertion type",
            format!(
                "grant_type=client_credentials&client_assertion_type=x&client_assertion={}",
                ep.assertion(AGENT)
            ),
            401,
            "invalid_client",
        ),
        case(
            "malformed assertion",
            form("not-a-jwt".into()),
            401,
            "invalid_client",
        ),
        case(
            "missing grant_type",
            format!(
                "client_assertion_type={}&client_assertion={}",
                enc(ASSERTION_TYPE),
                ep.assertion(AGENT)
            ),
            400,
            "invalid_request",
        ),
        case(
            "unknown grant_type",
            "grant_type=password&username=a&password=b".into(),
            400,
            "unsupported_grant_type",
        ),
        case(
            "repeated parameter",
            format!(
                "{}&grant_type=client_credentials",
                form(ep.assertion(AGENT))
            ),
            400,
            "invalid_request",
        ),
        case(
            "too many form fields",
            (0..40)
                .map(|i| format!("f{i}=1"))
                .collect::<Vec<_>>()
                .join("&"),
            400,
            "invalid_request",
        ),
        case(
            "scope not granted",
            ep.form(&ep.assertion(AGENT), &[("scope", "github:admin")]),
            400,
            "invalid_scope",
        ),
        case(
            "malformed scope",
            ep.form(&ep.assertion(AGENT), &[("scope", "*")]),
            400,
            "invalid_scope",
        ),
        case(
            "unknown resource",
            ep.form(
                &ep.assertion(AGENT),
                &[("resource", "https://evil.example")],
            ),
            400,
            "invalid_target",
        ),
        case(
            "oversized body",
            "a".repeat(17 * 1024),
            413,
            "invalid_request",
        ),
    ];
    cases.push(Case {
        name: "JSON body",
        path: "/oauth2/token",
        headers: vec![("Content-Type", "application/json".into())],
        body: "{\"grant_type\":\"client_credentials\"}".into(),
        status: 400,
        error: "invalid_request",
    });
    cases.push(Case {
        name: "non-UTF-8 body",
        path: "/oauth2/token",
        headers: vec![],
        body: "grant_type=%FF%FE".into(),
        status: 400,
        error: "unsupported_grant_type",
    });
    let before = (
        ep.count("oauth_tokens"),
        ep.count("agents"),
        ep.count("agent_keys"),
    );
    run(&ep, cases);
    assert_eq!(
        before,
        (
            ep.count("oauth_tokens"),
            ep.count("agents"),
            ep.count("agent_keys")
        ),
        "no side effects"
    );
    // Every denial that reached the rules was audited, with its reason.
    let denied = ep
        .audit_actions(200)
        .into_iter()
        .filter(|(a, d, r)| a == "token.denied" && d == "deny" && r.is_some())
        .count();
    assert!(denied >= 40, "only {denied} denials audited");
}

/// `r` refused a replayed client assertion (401 `invalid_client`, saying "replay"), and the
/// newest audit event is that refusal: a denial named `action` whose reason says "replay".
fn assert_replay_refused(ep: &Endpoint, r: &Resp, action: &str, context: &str) {
    assert_eq!(
        (r.status, r.error().as_str()),
        (401, "invalid_client"),
        "{context}: {}",
        r.body
    );
    let description = r.json()["error_description"].as_str().unwrap().to_string();
    assert!(description.contains("replay"), "{context}: {}", r.body);
    let (a, d, reason) = ep.audit_actions(1).remove(0);
    assert_eq!((a.as_str(), d.as_str()), (action, "deny"), "{context}");
    assert!(reason.unwrap().contains("replay"), "{context}");
}

#[test]
fn a_replayed_assertion_is_refused_even_after_a_restart() {
    let mut ep = Endpoint::start();
    let assertion = ep.assertion(AGENT);
    let body = ep.form(&assertion, &[]);
    assert_eq!(ep.post_form("/oauth2/token", &[], &body).status, 200);
    let r = ep.post_form("/oauth2/token", &[], &body);
    assert_replay_refused(&ep, &r, "token.denied", "before restart");
    // A restart: a new process over the same data folder (on a fresh port, see
    // `Endpoint::restart`). The same assertion (same jti, iat, exp), addressed to the new
    // token endpoint and signed again, is still a replay: the used jti survived the restart.
    let mut claims = claims_of(&assertion);
    ep.restart();
    claims["aud"] = json!(ep.token_endpoint());
    let again = sign(
        &json!({"alg": "EdDSA", "typ": "JWT", "kid": ep.kid(AGENT)}),
        &claims,
        &ep.keys[AGENT],
    );
    let r = ep.post_form("/oauth2/token", &[], &ep.form(&again, &[]));
    assert_replay_refused(&ep, &r, "token.denied", "after restart");
    // A fresh assertion still works after the restart.
    ep.token(AGENT, &[]);
}

#[test]
fn scope_and_resource_select_what_the_token_carries() {
    let ep = Endpoint::start();
    let t = ep.token(AGENT, &[("scope", "github:repo.read")]);
    assert_eq!(claims_of(&t)["scope"], "github:repo.read");
    let t = ep.token(AGENT, &[("resource", GITHUB)]);
    assert_eq!(claims_of(&t)["aud"], GITHUB);
    assert_eq!(
        claims_of(&t)["scope"],
        "github:issues.write github:repo.read"
    );
    let t = ep.token(AGENT, &[("resource", "github")]);
    assert_eq!(claims_of(&t)["aud"], GITHUB);
}

#[test]
fn per_agent_maximum_lifetime_applies() {
    let ep = Endpoint::start();
    ep.m.edit_agent(
        AGENT,
        mandate_core::AgentEdit {
            max_token_ttl_secs: Some(Some(120)),
            ..Default::default()
        },
    )
    .unwrap();
    let r = ep.post_form("/oauth2/token", &[], &ep.form(&ep.assertion(AGENT), &[]));
    assert_eq!(r.json()["expires_in"], 120);
}

#[test]
fn trust_floor_above_the_agent_state_is_refused() {
    let ep = Endpoint::start();
    ep.m.add_connection(mandate_core::NewConnection {
        name: "billing-db".into(),
        base_url: "https://billing.internal".into(),
        actions: vec!["invoices.read=GET:/invoices/**".into()],
        trust_floor: Some(mandate_core::model::TrustState::Trusted),
    })
    .unwrap();
    ep.m.edit_agent(
        AGENT,
        mandate_core::AgentEdit {
            add_scopes: vec!["billing-db:invoices.read".into()],
            ..Default::default()
        },
    )
    .unwrap();
    let r = ep.post_form(
        "/oauth2/token",
        &[],
        &ep.form(
            &ep.assertion(AGENT),
            &[("scope", "billing-db:invoices.read")],
        ),
    );
    assert_eq!(
        (r.status, r.error().as_str()),
        (400, "unauthorized_client"),
        "{}",
        r.body
    );
    assert!(r.body.contains("TRUSTED"), "{}", r.body);
}

#[test]
fn dpop_bad_proofs_table_then_a_good_proof_binds_the_token() {
    let ep = Endpoint::start();
    let key = mandate_core::keys::generate();
    let te = ep.token_endpoint();
    let t = now();
    let p = |f: &dyn Fn(&mut Value, &mut Value)| dpop_proof(&key, &te, f);
    let body = || ep.form(&ep.assertion(AGENT), &[]);
    let with = |name: &'static str, proof: String| Case {
        name,
        path: "/oauth2/token",
        headers: vec![("DPoP", proof)],
        body: body(),
        status: 400,
        error: "invalid_dpop_proof",
    };
    let replayed = p(&|_, _| {});
    let r = ep.post_form("/oauth2/token", &[("DPoP", &replayed)], &body());
    assert_eq!(r.status, 200, "{}", r.body);
    let other_key = mandate_core::keys::generate();
    let bad_sig = {
        let good = p(&|_, _| {});
        let forged = dpop_proof(&other_key, &te, |h, _| {
            h["jwk"]["x"] = json!(b64(key.verifying_key().as_bytes()))
        });
        let _ = good;
        forged
    };
    let cases = vec![
        Case {
            name: "two DPoP headers",
            path: "/oauth2/token",
            headers: vec![("DPoP", p(&|_, _| {})), ("DPoP", p(&|_, _| {}))],
            body: body(),
            status: 400,
            error: "invalid_dpop_proof",
        },
        with("malformed", "not.a.proof".into()),
        with(
            "missing typ",
            p(&|h, _| {
                h.as_object_mut().unwrap().remove("typ");
            }),
        ),
        with(
            "missing alg",
            p(&|h, _| {
                h.as_object_mut().unwrap().remove("alg");
            }),
        ),
        with(
            "missing jwk",
            p(&|h, _| {
                h.as_object_mut().unwrap().remove("jwk");
            }),
        ),
        with(
            "missing jti",
            p(&|_, c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
        ),
        with(
            "missing htm",
            p(&|_, c| {
                c.as_object_mut().unwrap().remove("htm");
            }),
        ),
        with(
            "missing htu",
            p(&|_, c| {
                c.as_object_mut().unwrap().remove("htu");
            }),
        ),
        with(
            "missing iat",
            p(&|_, c| {
                c.as_object_mut().unwrap().remove("iat");
            }),
        ),
        with("typ JWT", p(&|h, _| h["typ"] = json!("JWT"))),
        with("alg none", p(&|h, _| h["alg"] = json!("none"))),
        with("alg HS256", p(&|h, _| h["alg"] = json!("HS256"))),
        with("bad signature", bad_sig),
        with(
            "jwk with a private part",
            p(&|h, _| h["jwk"]["d"] = json!(b64(&[1; 32]))),
        ),
        with("wrong htm", p(&|_, c| c["htm"] = json!("GET"))),
        with(
            "wrong htu",
            p(&|_, c| c["htu"] = json!("http://127.0.0.1:1/oauth2/token")),
        ),
        with("iat an hour off", p(&|_, c| c["iat"] = json!(t - 3600))),
        with("jti replayed", replayed),
    ];
    run(&ep, cases);
    // A correct proof still works, with a query in htu; the token is bound.
    let proof = p(&|_, c| c["htu"] = json!(format!("{te}?x=1#frag")));
    let r = ep.post_form("/oauth2/token", &[("DPoP", &proof)], &body());
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["token_type"], "DPoP");
    let c = claims_of(v["access_token"].as_str().unwrap());
    assert_eq!(
        c["cnf"]["jkt"],
        mandate_core::keys::thumbprint(&key.verifying_key())
    );
    let i = ep
        .introspect(AGENT, v["access_token"].as_str().unwrap())
        .json();
    assert_eq!(i["token_type"], "DPoP");
    assert_eq!(i["cnf"]["jkt"], c["cnf"]["jkt"]);
}

#[test]
fn an_agent_flagged_for_dpop_needs_a_proof() {
    let ep = Endpoint::start();
    ep.m.edit_agent(
        AGENT,
        mandate_core::AgentEdit {
            dpop_required: Some(true),
            ..Default::default()
        },
    )
    .unwrap();
    let r = ep.post_form("/oauth2/token", &[], &ep.form(&ep.assertion(AGENT), &[]));
    assert_eq!(
        (r.status, r.error().as_str()),
        (400, "invalid_dpop_proof"),
        "{}",
        r.body
    );
    let key = mandate_core::keys::generate();
    let proof = dpop_proof(&key, &ep.token_endpoint(), |_, _| {});
    let r = ep.post_form(
        "/oauth2/token",
        &[("DPoP", &proof)],
        &ep.form(&ep.assertion(AGENT), &[]),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn introspection_and_revocation() {
    let mut ep = Endpoint::start();
    ep.add_agent("resource-checker", &["github:repo.read"], None);
    let token = ep.token(AGENT, &[]);
    // Without client authentication: 401.
    let r = ep.post_form("/oauth2/introspect", &[], &format!("token={}", enc(&token)));
    assert_eq!((r.status, r.error().as_str()), (401, "invalid_client"));
    // Active, with claims.
    let v = ep.introspect("resource-checker", &token).json();
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(v["sub"], AGENT);
    assert_eq!(v["client_id"], AGENT);
    // Unknown, malformed, foreign: exactly {"active": false}.
    let foreign = sign(
        &json!({"alg":"EdDSA","typ":"at+jwt","kid":"x"}),
        &claims_of(&token),
        &mandate_core::keys::generate(),
    );
    for t in ["", "garbage", "a.b.c", foreign.as_str()] {
        let r = ep.introspect("resource-checker", t);
        if t.is_empty() {
            assert_eq!((r.status, r.error().as_str()), (400, "invalid_request"));
            continue;
        }
        assert_eq!(r.status, 200);
        assert_eq!(r.json(), json!({"active": false}), "{t}");
    }
    // Revoking another client's token is refused.
    let r = ep.revoke("resource-checker", &token);
    assert_eq!(
        (r.status, r.error().as_str()),
        (400, "unauthorized_client"),
        "{}",
        r.body
    );
    assert_eq!(
        ep.introspect("resource-checker", &token).json()["active"],
        true
    );
    // Revoking an unknown token: 200.
    assert_eq!(ep.revoke(AGENT, "not-a-token").status, 200);
    // Revoking our own: 200, and the next introspection is inactive, audited.
    let r = ep.revoke(AGENT, &token);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        ep.introspect("resource-checker", &token).json(),
        json!({"active": false})
    );
    let actions: Vec<String> = ep.audit_actions(5).into_iter().map(|a| a.0).collect();
    assert!(
        actions.contains(&"token.revoked".to_string()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"token.introspected_inactive".to_string()),
        "{actions:?}"
    );
    let ev =
        ep.m.audit_events(None, 10, None)
            .unwrap()
            .into_iter()
            .find(|e| e.action == "token.introspected_inactive")
            .unwrap();
    assert_eq!(ev.details["jti"], claims_of(&token)["jti"]);
    assert!(!serde_json::to_string(&ev).unwrap().contains(&token));
}

#[test]
fn a_replayed_assertion_at_introspection_or_revocation_is_refused_and_audited() {
    let mut ep = Endpoint::start();
    ep.add_agent("resource-checker", &["github:repo.read"], None);
    let token = ep.token(AGENT, &[]);
    for (path, caller, action) in [
        (
            "/oauth2/introspect",
            "resource-checker",
            "introspection.denied",
        ),
        ("/oauth2/revoke", AGENT, "token.revocation_denied"),
    ] {
        let body = format!(
            "client_assertion_type={}&client_assertion={}&token={}",
            enc(ASSERTION_TYPE),
            ep.assertion(caller),
            enc(&token)
        );
        let first = ep.post_form(path, &[], &body);
        assert_eq!(first.status, 200, "{path}: {}", first.body);
        let again = ep.post_form(path, &[], &body);
        // The refusal was answered after its event committed: it is the newest event.
        assert_replay_refused(&ep, &again, action, path);
    }
    // The replayed revocation wrote nothing else: the token was revoked once.
    let revoked = ep
        .audit_actions(20)
        .into_iter()
        .filter(|(a, _, _)| a == "token.revoked")
        .count();
    assert_eq!(revoked, 1);
}

#[test]
fn suspending_or_revoking_the_agent_bites_at_once() {
    let mut ep = Endpoint::start();
    ep.add_agent("resource-checker", &["github:repo.read"], None);
    let token = ep.token(AGENT, &[]);
    ep.m.suspend_agent(AGENT, Some("investigating")).unwrap();
    assert_eq!(
        ep.introspect("resource-checker", &token).json(),
        json!({"active": false})
    );
    ep.m.resume_agent(AGENT).unwrap();
    assert_eq!(
        ep.introspect("resource-checker", &token).json()["active"],
        true
    );
    ep.m.revoke_agent(AGENT, "compromised").unwrap();
    assert_eq!(
        ep.introspect("resource-checker", &token).json(),
        json!({"active": false})
    );
    let r = ep.post_form("/oauth2/token", &[], &ep.form(&ep.assertion(AGENT), &[]));
    assert_eq!((r.status, r.error().as_str()), (401, "invalid_client"));
}

#[test]
fn a_delegation_mints_member_tokens_and_its_revocation_bites() {
    let mut ep = Endpoint::start();
    ep.add_agent("resource-checker", &["github:repo.read"], None);
    let d =
        ep.m.add_delegation(mandate_core::oauth::NewDelegation {
            agent: AGENT.into(),
            member: "founder".into(),
            scopes: vec!["github:repo.read".into()],
            until: ep.m.now() + chrono_hours(2),
            task: "quarterly report".into(),
        })
        .unwrap();
    let exchange = |scope: Option<&str>| {
        let mut extra = vec![
            (
                "subject_token_type",
                "urn:mandate:params:oauth:token-type:delegation",
            ),
            ("subject_token", d.id.as_str()),
        ];
        if let Some(s) = scope {
            extra.push(("scope", s));
        }
        let body = ep.form(&ep.assertion(AGENT), &extra).replace(
            "grant_type=client_credentials",
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange",
        );
        ep.post_form("/oauth2/token", &[], &body)
    };
    let r = exchange(None);
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        r.json()["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    let c = claims_of(&token);
    assert_eq!(c["sub"], "founder");
    assert_eq!(c["act"]["sub"], AGENT);
    assert_eq!(c["scope"], "github:repo.read");
    // Escalation beyond the delegation: refused and audited.
    let r = exchange(Some("github:issues.write"));
    assert_eq!(
        (r.status, r.error().as_str()),
        (400, "invalid_scope"),
        "{}",
        r.body
    );
    let (action, _, reason) = ep.audit_actions(1).remove(0);
    assert_eq!(action, "token.denied");
    assert!(reason.unwrap().contains("wider than the delegation"));
    // The issuance event names the member it acted for.
    let ev =
        ep.m.audit_events(Some(AGENT), 10, None)
            .unwrap()
            .into_iter()
            .find(|e| e.action == "token.exchanged")
            .unwrap();
    assert_eq!(ev.on_behalf_of.unwrap().name, "founder");
    // Revoking the delegation makes the token inactive at once.
    ep.m.revoke_delegation(&d.id, "task done").unwrap();
    assert_eq!(
        ep.introspect("resource-checker", &token).json(),
        json!({"active": false})
    );
    assert_eq!(exchange(None).error(), "invalid_grant");
}

#[test]
fn a_sub_agent_exchange_is_never_wider_than_the_parent_token() {
    let mut ep = Endpoint::start();
    ep.add_agent(
        "report-helper",
        &["github:repo.read", "github:issues.write"],
        Some(AGENT),
    );
    ep.add_agent("stranger-agent", &["github:repo.read"], None);
    let parent = ep.token(AGENT, &[("scope", "github:repo.read")]);
    let exchange = |who: &str, extra: &[(&str, &str)]| {
        let mut all = vec![
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("subject_token", parent.as_str()),
        ];
        all.extend_from_slice(extra);
        let body = ep.form(&ep.assertion(who), &all).replace(
            "grant_type=client_credentials",
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange",
        );
        ep.post_form("/oauth2/token", &[], &body)
    };
    let r = exchange("report-helper", &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    let child = r.json()["access_token"].as_str().unwrap().to_string();
    let (pc, cc) = (claims_of(&parent), claims_of(&child));
    assert_eq!(cc["scope"], "github:repo.read");
    assert_eq!(cc["sub"], AGENT);
    assert_eq!(cc["act"]["sub"], "report-helper");
    assert_eq!(cc["client_id"], "report-helper");
    assert!(cc["exp"].as_i64() <= pc["exp"].as_i64());
    // Wider scope (the child holds the grant, the parent token does not): refused, audited.
    let r = exchange("report-helper", &[("scope", "github:issues.write")]);
    assert_eq!(
        (r.status, r.error().as_str()),
        (400, "invalid_scope"),
        "{}",
        r.body
    );
    // Another audience: refused.
    let r = exchange("report-helper", &[("resource", "https://evil.example")]);
    assert_eq!(
        (r.status, r.error().as_str()),
        (400, "invalid_target"),
        "{}",
        r.body
    );
    // Not a sub-agent of the holder: refused.
    let r = exchange("stranger-agent", &[]);
    assert_eq!(
        (r.status, r.error().as_str()),
        (400, "invalid_grant"),
        "{}",
        r.body
    );
    // Revoking the parent token makes the child inactive.
    assert_eq!(
        ep.introspect("stranger-agent", &child).json()["active"],
        true
    );
    assert_eq!(ep.revoke(AGENT, &parent).status, 200);
    assert_eq!(
        ep.introspect("stranger-agent", &child).json(),
        json!({"active": false})
    );
}

#[test]
fn the_localhost_defences() {
    let ep = Endpoint::start();
    let port = ep.port;
    let body = ep.form(&ep.assertion(AGENT), &[]);
    let cases = vec![
        Case {
            name: "DNS rebinding Host",
            path: "/oauth2/token",
            headers: vec![("Host", format!("evil.example:{port}"))],
            body: body.clone(),
            status: 421,
            error: "access_denied",
        },
        Case {
            name: "foreign Origin",
            path: "/oauth2/token",
            headers: vec![("Origin", "https://evil.example".into())],
            body: body.clone(),
            status: 403,
            error: "access_denied",
        },
        Case {
            name: "auto-submitted form to revoke",
            path: "/oauth2/revoke",
            headers: vec![("Origin", "null".into())],
            body: body.clone(),
            status: 403,
            error: "access_denied",
        },
        Case {
            name: "Sec-Fetch-Site cross-site",
            path: "/oauth2/token",
            headers: vec![("Sec-Fetch-Site", "cross-site".into())],
            body: body.clone(),
            status: 403,
            error: "access_denied",
        },
    ];
    run(&ep, cases);
    // The same assertion was never consumed: the defences ran before the rules.
    assert_eq!(ep.post_form("/oauth2/token", &[], &body).status, 200);
    // Every loopback name is allowed.
    for host in [format!("localhost:{port}"), format!("[::1]:{port}")] {
        let r = ep.request("GET", "/.well-known/jwks.json", &[("Host", &host)], "");
        assert_eq!(r.status, 200, "{host}");
    }
    // A CORS preflight gets no Access-Control-* header.
    let r = ep.request(
        "OPTIONS",
        "/oauth2/token",
        &[
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Private-Network", "true"),
        ],
        "",
    );
    assert!(
        r.headers
            .iter()
            .all(|(k, _)| !k.to_ascii_lowercase().starts_with("access-control-")),
        "{r:?}"
    );
    // Port already taken: fail closed with a clear message; a second server on the same data
    // folder says who holds it.
    let m = ep.m.clone();
    let err = ep
        .rt
        .block_on(mandate_server::serve(
            m,
            mandate_server::ServeOptions {
                port,
                rate_limit: None,
                ..Default::default()
            },
        ))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("already serves the data folder") && err.contains(&port.to_string()),
        "{err}"
    );
    let other = tempfile::tempdir().unwrap();
    let kc: std::sync::Arc<dyn mandate_core::secret::Keychain> =
        std::sync::Arc::new(mandate_core::secret::MemoryKeychain::new());
    let m2 = std::sync::Arc::new(
        mandate_core::Mandate::open(mandate_core::OpenOptions::new(
            other.path(),
            kc,
            mandate_core::audit::Actor::app("test", "t"),
        ))
        .unwrap(),
    );
    let err = ep
        .rt
        .block_on(mandate_server::serve(
            m2,
            mandate_server::ServeOptions {
                port,
                rate_limit: None,
                ..Default::default()
            },
        ))
        .unwrap_err()
        .to_string();
    assert!(err.contains("already in use"), "{err}");
}

#[test]
fn metadata_and_jwks_describe_the_issuer() {
    let ep = Endpoint::start();
    let md = ep
        .request("GET", "/.well-known/oauth-authorization-server", &[], "")
        .json();
    assert_eq!(md["issuer"], ep.issuer());
    assert_eq!(md["token_endpoint"], ep.token_endpoint());
    assert_eq!(
        md["token_endpoint_auth_methods_supported"],
        json!(["private_key_jwt"])
    );
    let jwks = ep.request("GET", "/.well-known/jwks.json", &[], "").json();
    let k = &jwks["keys"][0];
    assert_eq!(
        (k["kty"].as_str(), k["crv"].as_str(), k["alg"].as_str()),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    let token = ep.token(AGENT, &[]);
    assert_eq!(header_of(&token)["kid"], k["kid"]);
    // Rotation publishes the new kid and keeps the old one while its tokens live.
    let old = k["kid"].as_str().unwrap().to_string();
    let new = ep.m.rotate_issuer_key().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(10));
    let jwks = ep.request("GET", "/.well-known/jwks.json", &[], "").json();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(kids.contains(&old.as_str()), "{kids:?}");
    let _ = new;
}

fn chrono_hours(h: i64) -> chrono::Duration {
    chrono::Duration::hours(h)
}

#[test]
fn a_changed_trust_floor_applies_from_the_next_request() {
    use mandate_core::model::TrustState;
    let ep = Endpoint::start();
    ep.m.add_connection(mandate_core::NewConnection {
        name: "billing-db".into(),
        base_url: "https://billing.internal".into(),
        actions: vec!["invoices.read=GET:/invoices/**".into()],
        trust_floor: Some(TrustState::Trusted),
    })
    .unwrap();
    ep.m.edit_agent(
        AGENT,
        mandate_core::AgentEdit {
            add_scopes: vec!["billing-db:invoices.read".into()],
            ..Default::default()
        },
    )
    .unwrap();
    let ask = || {
        ep.post_form(
            "/oauth2/token",
            &[],
            &ep.form(
                &ep.assertion(AGENT),
                &[("scope", "billing-db:invoices.read")],
            ),
        )
    };
    let floor = |f: TrustState| {
        ep.m.edit_connection(
            "billing-db",
            mandate_core::broker::ConnectionEdit {
                trust_floor: Some(f),
                ..Default::default()
            },
        )
        .unwrap();
    };
    assert_eq!(ask().status, 400, "a PENDING agent under a TRUSTED floor");
    floor(TrustState::Pending);
    assert_eq!(
        ep.m.get_connection("billing-db").unwrap().trust_floor,
        TrustState::Pending
    );
    let r = ask();
    assert_eq!(r.status, 200, "{}", r.body);
    floor(TrustState::Trusted);
    let r = ask();
    assert_eq!(
        (r.status, r.error().as_str()),
        (400, "unauthorized_client"),
        "{}",
        r.body
    );
}

/// A registry row the endpoint cannot read (here a connection whose trust floor is not one of
/// the three states, written past the CHECK constraint as a damaged file might hold it) fails
/// closed: 503 `temporarily_unavailable`, never a token and never "unknown client".
#[test]
fn an_unreadable_registry_fails_closed() {
    let ep = Endpoint::start();
    let db = ep.dir.path().join("mandate.db");
    let damage = |floor: &str| {
        crate::fixture::sqlite(
            &db,
            &format!(
                "PRAGMA ignore_check_constraints=ON; UPDATE connections SET trust_floor = '{floor}';"
            ),
        );
    };
    ep.token(AGENT, &[]);
    damage("SOMETIMES");
    let r = ep.post_form("/oauth2/token", &[], &ep.form(&ep.assertion(AGENT), &[]));
    assert_eq!(
        (r.status, r.error().as_str()),
        (503, "temporarily_unavailable"),
        "{}",
        r.body
    );
    damage("PENDING");
    ep.token(AGENT, &[]);
}

/// Seen in a new user's walk: a sub-agent got tokens for a scope its parent lacked, also while
/// its parent was suspended. The registry now refuses such a grant; a database written before
/// that (the grant put straight into the table here) is still held to the parent at issue time.
#[test]
fn a_sub_agent_token_holds_only_its_parents_scopes_and_names_the_chain() {
    let mut ep = Endpoint::start();
    ep.m.edit_agent(
        AGENT,
        mandate_core::AgentEdit {
            remove_scopes: vec!["github:issues.write".into()],
            ..Default::default()
        },
    )
    .unwrap();
    ep.add_agent("report-helper", &["github:repo.read"], Some(AGENT));
    ep.add_agent("resource-checker", &["github:repo.read"], None);
    let out = crate::fixture::sqlite3(ep.dir.path().join("mandate.db"))
        .arg(
            "INSERT INTO agent_scopes (agent_id, scope, connection_id) \
             SELECT a.id, 'github:issues.write', c.id FROM agents a, connections c \
             WHERE a.name = 'report-helper' AND c.name = 'github';",
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Asked for the scope its parent lacks: refused, naming the parent, audited with the chain.
    let r = ep.post_form(
        "/oauth2/token",
        &[],
        &ep.form(
            &ep.assertion("report-helper"),
            &[("scope", "github:issues.write")],
        ),
    );
    assert_eq!(
        (r.status, r.error().as_str()),
        (400, "invalid_scope"),
        "{}",
        r.body
    );
    let why = r.json()["error_description"].as_str().unwrap().to_string();
    assert!(why.contains(&format!("parent agent '{AGENT}'")), "{why}");
    let denied = &ep.m.audit_events(Some("report-helper"), 1, None).unwrap()[0];
    assert_eq!(denied.action, "token.denied");
    assert_eq!(denied.details["parent_chain"], json!([AGENT]));
    // No scope asked: only what the parent holds too.
    let token = ep.token("report-helper", &[]);
    let c = claims_of(&token);
    assert_eq!(c["scope"], "github:repo.read");
    assert_eq!(c["sub"], "report-helper");
    assert_eq!(c["mandate_parents"], json!([AGENT]));
    let issued = &ep.m.audit_events(Some("report-helper"), 1, None).unwrap()[0];
    assert_eq!(issued.action, "token.issued");
    assert_eq!(issued.actor.name, "report-helper");
    assert_eq!(issued.details["parent_chain"], json!([AGENT]));
    // Introspection tells resource servers the chain too.
    let i = ep.introspect("resource-checker", &token).json();
    assert_eq!(i["active"], true);
    assert_eq!(i["mandate_parents"], json!([AGENT]));
    // A top-level agent's token has no such claim.
    assert!(
        claims_of(&ep.token(AGENT, &[]))
            .get("mandate_parents")
            .is_none()
    );
}

/// Seen in a new user's walk: a sub-agent kept getting tokens while its parent was suspended.
#[test]
fn a_suspended_or_revoked_parent_stops_its_sub_agents_next_request() {
    let mut ep = Endpoint::start();
    ep.add_agent("report-helper", &["github:repo.read"], Some(AGENT));
    ep.add_agent("sub-helper", &["github:repo.read"], Some("report-helper"));
    ep.add_agent("resource-checker", &["github:repo.read"], None);
    let token = ep.token("sub-helper", &[]);
    assert_eq!(
        claims_of(&token)["mandate_parents"],
        json!(["report-helper", AGENT])
    );
    ep.m.suspend_agent(AGENT, Some("investigating")).unwrap();
    // Its token stops at introspection, with the reason audited.
    assert_eq!(
        ep.introspect("resource-checker", &token).json(),
        json!({"active": false})
    );
    let ev =
        ep.m.audit_events(None, 5, None)
            .unwrap()
            .into_iter()
            .find(|e| e.action == "token.introspected_inactive")
            .unwrap();
    assert_eq!(
        ev.details["inactive_because"],
        "a parent agent of its agent is suspended or revoked"
    );
    // Its next token request is refused, naming the parent, and audited with the chain.
    let refused = |who: &str| {
        let r = ep.post_form("/oauth2/token", &[], &ep.form(&ep.assertion(who), &[]));
        assert_eq!(
            (r.status, r.error().as_str()),
            (401, "invalid_client"),
            "{}",
            r.body
        );
        r.json()["error_description"].as_str().unwrap().to_string()
    };
    let why = refused("sub-helper");
    assert!(
        why.contains(&format!("parent agent '{AGENT}' is suspended")),
        "{why}"
    );
    let ev = &ep.m.audit_events(Some("sub-helper"), 1, None).unwrap()[0];
    assert_eq!(
        (ev.action.as_str(), ev.decision.as_str()),
        ("token.denied", "deny")
    );
    assert_eq!(ev.details["parent_chain"], json!(["report-helper", AGENT]));
    // Resumed: it works again, and the old token is active again.
    ep.m.resume_agent(AGENT).unwrap();
    ep.token("sub-helper", &[]);
    assert_eq!(
        ep.introspect("resource-checker", &token).json()["active"],
        true
    );
    // Revoked: refused, and the message says how to go on.
    ep.m.revoke_agent("report-helper", "replaced").unwrap();
    let why = refused("sub-helper");
    assert!(
        why.contains("'report-helper' is revoked") && why.contains("--no-parent"),
        "{why}"
    );
    ep.m.edit_agent(
        "sub-helper",
        mandate_core::AgentEdit {
            parent: Some(None),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(
        claims_of(&ep.token("sub-helper", &[]))
            .get("mandate_parents")
            .is_none()
    );
}
