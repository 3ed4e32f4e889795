//! The token endpoint's rules end to end (`oauth::TokenService`: form body, `private_key_jwt`
//! client assertion, policy, DPoP, token exchange, introspection, revocation, and the audit
//! write of every decision), on a real SQLite installation in a temporary folder with a fixed
//! clock. Requests are structure-aware: a well-formed form and a well-formed assertion for a
//! registered agent, each part mutated (claims, header, encoding, signature, grant, subject
//! token, DPoP), or raw bytes. Oracle ("anything accepted must verify under the known key"):
//! every request answered with success carried an assertion that the agent's registered key
//! signed, naming that agent in `iss` and `sub`, addressed to one of this endpoint's URLs and
//! within its lifetime; every token issued is signed by the issuer key and grants nothing the
//! agent was not granted.
#![no_main]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arbitrary::Arbitrary;
use ed25519_dalek::{SigningKey, VerifyingKey};
use libfuzzer_sys::fuzz_target;
use mandate_core::audit::Actor;
use mandate_core::clock::ManualClock;
use mandate_core::oauth::{EndpointConfig, HttpContext, NewDelegation, TokenService};
use mandate_core::secret::{Keychain, MemoryKeychain, Sensitive};
use mandate_core::{KeyChoice, Mandate, NewAgent, NewConnection, OpenOptions, keys};
use mandate_fuzz::{AGENT, CHILD, ISSUER, JwtSpec, NOW, Val, agent_key, b64, child_key, claims_of, signed_by};
use serde_json::{Map, Value, json};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const DELEGATION_TYPE: &str = "urn:mandate:params:oauth:token-type:delegation";

struct World {
    svc: TokenService,
    issuer: VerifyingKey,
    parent_token: String,
    delegation: String,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        // A folder of its own, left for the runner (scripts/fuzz) to remove: libFuzzer exits
        // without running destructors.
        let dir = std::env::temp_dir().join(format!("mandate-fuzz-client-token-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let kc: Arc<dyn Keychain> = Arc::new(MemoryKeychain::new());
        let clock = Arc::new(ManualClock::new(chrono::DateTime::from_timestamp(NOW, 0).unwrap()));
        let m = Arc::new(
            Mandate::open(OpenOptions::new(&dir, kc, Actor::app("fuzz", "fuzz")).clock(clock)).unwrap(),
        );
        m.add_member("founder", None).unwrap();
        m.add_connection(NewConnection {
            name: "github".into(),
            base_url: "https://api.github.com".into(),
            actions: vec!["repo.read=GET:/repos/**".into(), "issues.write=POST:/repos/*/*/issues".into()],
            trust_floor: None,
        })
        .unwrap();
        for (name, key, parent, scopes) in [
            (AGENT, agent_key(), None, vec!["github:repo.read", "github:issues.write"]),
            (CHILD, child_key(), Some(AGENT), vec!["github:repo.read"]),
        ] {
            m.add_agent(NewAgent {
                name: name.into(),
                purpose: "fuzzing".into(),
                owner: "founder".into(),
                parent: parent.map(String::from),
                scopes: scopes.into_iter().map(String::from).collect(),
                key: KeyChoice::Register { public_key: keys::public_jwk(&key.verifying_key()).to_string() },
            })
            .unwrap();
        }
        let delegation = m
            .add_delegation(NewDelegation {
                agent: AGENT.into(),
                member: "founder".into(),
                scopes: vec!["github:repo.read".into()],
                until: chrono::DateTime::from_timestamp(NOW + 86_400, 0).unwrap(),
                task: "fuzzing".into(),
            })
            .unwrap()
            .id;
        let mut cfg = EndpointConfig::new(ISSUER);
        cfg.rate_limit = None;
        let svc = TokenService::new(m, cfg).unwrap();
        let jwks = serde_json::to_value(svc.jwks().unwrap()).unwrap();
        let x = jwks["keys"][0]["x"].as_str().unwrap();
        let x: [u8; 32] = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, x)
            .unwrap()
            .try_into()
            .unwrap();
        let issuer = VerifyingKey::from_bytes(&x).unwrap();
        let mut w = World { svc, issuer, parent_token: String::new(), delegation };
        let body = form(&[
            ("grant_type", "client_credentials".into()),
            ("client_assertion_type", ASSERTION_TYPE.into()),
            ("client_assertion", good_assertion(AGENT, &agent_key(), "/oauth2/token")),
        ]);
        let t = futures_executor::block_on(w.svc.token(body.as_bytes(), &ctx(vec![])).finish()).unwrap();
        w.parent_token = t.access_token.expose().clone();
        w
    })
}

fn next_jti() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("fuzz-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

fn good_claims(client: &str, path: &str) -> Map<String, Value> {
    let Value::Object(c) = json!({
        "iss": client, "sub": client, "aud": format!("{ISSUER}{path}"),
        "iat": NOW, "exp": NOW + 60, "jti": next_jti(),
    }) else { unreachable!() };
    c
}

fn good_header(key: &SigningKey) -> Map<String, Value> {
    let Value::Object(h) = json!({"alg": "EdDSA", "typ": "JWT", "kid": keys::thumbprint(&key.verifying_key())})
    else { unreachable!() };
    h
}

fn good_assertion(client: &str, key: &SigningKey, path: &str) -> String {
    let spec = JwtSpec {
        header: mandate_fuzz::HeaderSpec { alg: mandate_fuzz::Alg::EdDSA, typ: Val::Keep, kid: Val::Keep, extra: vec![] },
        claims: vec![],
        signer: mandate_fuzz::Signer::Known,
        encoding: mandate_fuzz::Encoding::Canonical,
    };
    spec.build(good_header(key), good_claims(client, path), key)
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

fn form(fields: &[(&str, String)]) -> String {
    fields.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

fn ctx(dpop: Vec<String>) -> HttpContext {
    HttpContext {
        method: "POST".into(),
        url: format!("{ISSUER}/oauth2/token"),
        dpop: dpop.into_iter().map(Sensitive::new).collect(),
    }
}

#[derive(Arbitrary, Debug)]
enum Call { Token, Introspect, Revoke }

#[derive(Arbitrary, Debug)]
enum Client { Agent, Child, Named(String) }

#[derive(Arbitrary, Debug)]
enum Text { Keep, Drop, Raw(String) }

#[derive(Arbitrary, Debug)]
enum Grant { ClientCredentials, Exchange, Missing, Other(String) }

#[derive(Arbitrary, Debug)]
enum Subject { ParentToken, Delegation, Raw(String), Missing }

#[derive(Arbitrary, Debug)]
enum SubjectType { AccessToken, Delegation, Raw(String), Missing }

#[derive(Arbitrary, Debug)]
enum Dpop { None, Good, Raw(String), Two }

#[derive(Arbitrary, Debug)]
enum Scope { Missing, Read, Write, Both, Raw(String) }

#[derive(Arbitrary, Debug)]
struct Req {
    call: Call,
    client: Client,
    assertion: JwtSpec,
    assertion_type: Text,
    client_id: Text,
    grant: Grant,
    scope: Scope,
    resources: Vec<String>,
    subject: Subject,
    subject_type: SubjectType,
    token: Subject,
    dpop: Dpop,
    extra: Vec<(String, String)>,
    /// Instead of all the above: these bytes as the body.
    raw: Option<Vec<u8>>,
}

fn granted(client: &str) -> &'static [&'static str] {
    if client == CHILD { &["github:repo.read"] } else { &["github:repo.read", "github:issues.write"] }
}

fuzz_target!(|req: Req| {
    let w = world();
    let path = match req.call { Call::Token => "/oauth2/token", Call::Introspect => "/oauth2/introspect", Call::Revoke => "/oauth2/revoke" };
    let (client, key) = match &req.client {
        Client::Agent => (AGENT.to_string(), agent_key()),
        Client::Child => (CHILD.to_string(), child_key()),
        Client::Named(n) => (n.clone(), agent_key()),
    };
    let assertion = req.assertion.build(good_header(&key), good_claims(&client, path), &key);
    let mut fields: Vec<(&str, String)> = Vec::new();
    match &req.grant {
        _ if !matches!(req.call, Call::Token) => {}
        Grant::ClientCredentials => fields.push(("grant_type", "client_credentials".into())),
        Grant::Exchange => fields.push(("grant_type", EXCHANGE.into())),
        Grant::Missing => {}
        Grant::Other(g) => fields.push(("grant_type", g.clone())),
    }
    match &req.assertion_type {
        Text::Keep => fields.push(("client_assertion_type", ASSERTION_TYPE.into())),
        Text::Drop => {}
        Text::Raw(s) => fields.push(("client_assertion_type", s.clone())),
    }
    fields.push(("client_assertion", assertion.clone()));
    match &req.client_id {
        Text::Keep => fields.push(("client_id", client.clone())),
        Text::Drop => {}
        Text::Raw(s) => fields.push(("client_id", s.clone())),
    }
    match &req.scope {
        Scope::Missing => {}
        Scope::Read => fields.push(("scope", "github:repo.read".into())),
        Scope::Write => fields.push(("scope", "github:issues.write".into())),
        Scope::Both => fields.push(("scope", "github:repo.read github:issues.write".into())),
        Scope::Raw(s) => fields.push(("scope", s.clone())),
    }
    for r in req.resources.iter().take(3) {
        fields.push(("resource", if r.is_empty() { "https://api.github.com".into() } else { r.clone() }));
    }
    let subject = |s: &Subject| match s {
        Subject::ParentToken => Some(w.parent_token.clone()),
        Subject::Delegation => Some(w.delegation.clone()),
        Subject::Raw(r) => Some(r.clone()),
        Subject::Missing => None,
    };
    if let Some(s) = subject(&req.subject) {
        fields.push(("subject_token", s));
    }
    match &req.subject_type {
        SubjectType::AccessToken => fields.push(("subject_token_type", ACCESS_TOKEN_TYPE.into())),
        SubjectType::Delegation => fields.push(("subject_token_type", DELEGATION_TYPE.into())),
        SubjectType::Raw(r) => fields.push(("subject_token_type", r.clone())),
        SubjectType::Missing => {}
    }
    if let Some(t) = subject(&req.token) {
        fields.push(("token", t));
    }
    for (k, v) in req.extra.iter().take(4) {
        fields.push((k.as_str(), v.clone()));
    }
    let body = match &req.raw {
        Some(raw) => raw.clone(),
        None => form(&fields).into_bytes(),
    };
    let dpop_key = SigningKey::from_bytes(&[11; 32]);
    let proof = || {
        let h = json!({"typ": "dpop+jwt", "alg": "EdDSA",
            "jwk": {"kty": "OKP", "crv": "Ed25519", "x": b64(dpop_key.verifying_key().as_bytes())}});
        let c = json!({"jti": next_jti(), "htm": "POST", "htu": format!("{ISSUER}/oauth2/token"), "iat": NOW});
        mandate_core::oauth::jws::sign(&h, &c, &dpop_key)
    };
    let dpop = match &req.dpop {
        Dpop::None => vec![],
        Dpop::Good => vec![proof()],
        Dpop::Raw(s) => vec![s.clone()],
        Dpop::Two => vec![proof(), proof()],
    };
    let ok = match req.call {
        Call::Token => match futures_executor::block_on(w.svc.token(&body, &ctx(dpop)).finish()) {
            Ok(t) => {
                let at = t.access_token.expose();
                assert!(signed_by(at, &w.issuer), "an issued token is not signed by the issuer key");
                let c = claims_of(at);
                for s in t.scope.split(' ').filter(|s| !s.is_empty()) {
                    assert!(granted(AGENT).contains(&s), "a token grants {s}, which nobody was granted");
                }
                assert!(c["sub"] == json!(AGENT) || c["sub"] == json!(CHILD) || c["sub"] == json!("founder"));
                true
            }
            Err(_) => false,
        },
        Call::Introspect => futures_executor::block_on(w.svc.introspect(&body).finish()).is_ok(),
        Call::Revoke => futures_executor::block_on(w.svc.revoke(&body).finish()).is_ok(),
    };
    if ok {
        // Whoever was answered authenticated with an assertion its registered key signed.
        let sent = mandate_core::oauth::Form::parse(&body).expect("an answered body parses");
        let a = sent.get("client_assertion").expect("an answered request carried an assertion");
        let c = claims_of(a);
        let who = c["sub"].as_str().expect("sub is a string");
        assert_eq!(c["iss"], c["sub"]);
        let key = match who {
            AGENT => agent_key(),
            CHILD => child_key(),
            other => panic!("an assertion for '{other}', who has no key, was accepted"),
        };
        assert!(signed_by(a, &key.verifying_key()), "an assertion the key did not sign was accepted");
        let own = |v: &Value| {
            v.as_str().is_some_and(|s| {
                [ISSUER.to_string(), format!("{ISSUER}/oauth2/token"), format!("{ISSUER}/oauth2/introspect"), format!("{ISSUER}/oauth2/revoke")]
                    .contains(&s.to_string())
            })
        };
        let aud_ok = own(&c["aud"]) || c["aud"].as_array().is_some_and(|v| v.len() == 1 && own(&v[0]));
        assert!(aud_ok, "an assertion for another audience was accepted: {}", c["aud"]);
        let exp = c["exp"].as_f64().expect("exp is a number");
        assert!(exp > (NOW - 60) as f64 && exp <= (NOW + 3600 + 60) as f64, "exp {exp} accepted");
    }
});
