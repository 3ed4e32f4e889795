//! The store's invariants across handles: two `Mandate` handles on one store stand for two
//! processes (or two team-server instances), each with its own connections, group committer,
//! replay memory and registry memo. On SQLite and, with `MANDATE_TEST_POSTGRES`, PostgreSQL.
//!
//! - concurrent writers through both handles keep one strictly linear chain that verifies;
//! - a registry change made through one handle applies to the other's next token request
//!   (the registry memo follows the generation number, raised by triggers on both stores);
//! - an assertion used at one handle's endpoint is refused as a replay at the other's.

use std::sync::Arc;

use mandate_core::audit::{Actor, Decision, NewEvent};
use mandate_core::oauth::{
    ASSERTION_TYPE_JWT_BEARER, EndpointConfig, HttpContext, OAuthError, TokenService,
    client_assertion,
};
use mandate_core::store::testing::each_store;
use mandate_core::{AgentEdit, KeyChoice, Mandate, NewAgent, NewConnection};

const ISSUER: &str = "http://127.0.0.1:6263";

/// A member, a connection with two actions and an agent holding both scopes, made through `m`.
fn registry(m: &Mandate) {
    m.add_member("founder", None).unwrap();
    m.add_connection(NewConnection {
        name: "github".into(),
        base_url: "https://api.github.com".into(),
        actions: vec![
            "repo.read=GET:/repos/**".into(),
            "issues.write=POST:/repos/**".into(),
        ],
        trust_floor: None,
    })
    .unwrap();
    m.add_agent(NewAgent {
        name: "billing-report-agent".into(),
        purpose: "monthly billing report".into(),
        owner: "founder".into(),
        parent: None,
        scopes: vec!["github:repo.read".into(), "github:issues.write".into()],
        key: KeyChoice::GenerateInKeychain,
    })
    .unwrap();
}

/// The endpoint's rules on handle `m`, without a rate limit.
fn endpoint(m: Mandate) -> TokenService {
    let mut cfg = EndpointConfig::new(ISSUER);
    cfg.rate_limit = None;
    TokenService::new(Arc::new(m), cfg).unwrap()
}

/// A fresh client assertion for the agent, signed with its key from the (shared) keychain.
fn assertion(svc: &TokenService) -> String {
    let m = svc.mandate();
    let (kid, key) = m.client_signing_key("billing-report-agent").unwrap();
    client_assertion(
        "billing-report-agent",
        &kid,
        &key,
        &format!("{ISSUER}/oauth2/token"),
        m.now().timestamp(),
    )
}

/// Ask `svc` for a token with `assertion`, for `scope` (or every grant).
fn token(svc: &TokenService, assertion: &str, scope: Option<&str>) -> Result<String, OAuthError> {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials")
        .append_pair("client_assertion_type", ASSERTION_TYPE_JWT_BEARER)
        .append_pair("client_assertion", assertion);
    if let Some(s) = scope {
        form.append_pair("scope", s);
    }
    let http = HttpContext {
        method: "POST".into(),
        url: format!("{ISSUER}/oauth2/token"),
        dpop: vec![],
    };
    let r = futures_executor::block_on(svc.token(form.finish().as_bytes(), &http).finish())?;
    Ok(r.scope)
}

#[test]
fn concurrent_writers_through_two_handles_keep_one_linear_chain() {
    each_store(|s| {
        let a = Arc::new(s.open());
        let b = Arc::new(s.open());
        registry(&a);
        let before = a.audit_head().unwrap();
        // Through each handle: grouped writes from four threads and single writes from one,
        // all at once, as two endpoints and a person's CLI would make them.
        let mut threads = Vec::new();
        for (h, m) in [("a", a.clone()), ("b", b.clone())] {
            for t in 0..4 {
                let m = m.clone();
                threads.push(std::thread::spawn(move || {
                    for i in 0..25 {
                        let ev =
                            NewEvent::new(&Actor::app("test", h), "test.grouped", Decision::Allow)
                                .details(serde_json::json!({"h": h, "t": t, "i": i}));
                        m.write_grouped(move |tx, now| mandate_core::audit::append(tx, now, ev))
                            .unwrap();
                    }
                }));
            }
            let m = m.clone();
            threads.push(std::thread::spawn(move || {
                for i in 0..20 {
                    m.record(
                        NewEvent::new(&Actor::app("test", h), "test.single", Decision::Allow)
                            .details(serde_json::json!({"h": h, "i": i})),
                    )
                    .unwrap();
                }
            }));
        }
        for t in threads {
            t.join().unwrap();
        }
        let written = 2 * (4 * 25 + 20);
        assert_eq!(b.audit_head().unwrap(), before + written);
        // Sequence numbers 1..=head with no gap or repeat, each event hashed onto the one
        // before it, checkpoints and all: from either handle.
        for m in [&a, &b] {
            let r = m.verify_audit().unwrap();
            assert!(r.ok(), "{:?}", r.problems);
            assert_eq!(r.events, before + written);
        }
        let seqs: Vec<u64> = a
            .audit_events(None, 1000, None)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, (1..=before + written).rev().collect::<Vec<_>>());
    });
}

#[test]
fn a_registry_change_through_one_handle_applies_to_the_other_handles_next_token_request() {
    each_store(|s| {
        let admin = s.open();
        registry(&admin);
        let svc = endpoint(s.open());
        // Warm the endpoint's registry memo.
        let got = token(&svc, &assertion(&svc), None).unwrap();
        assert_eq!(got, "github:issues.write github:repo.read");
        assert_eq!(
            token(&svc, &assertion(&svc), None).unwrap(),
            "github:issues.write github:repo.read"
        );

        // A scope removed through the other handle is gone from the next token.
        admin
            .edit_agent(
                "billing-report-agent",
                AgentEdit {
                    remove_scopes: vec!["github:issues.write".into()],
                    ..AgentEdit::default()
                },
            )
            .unwrap();
        assert_eq!(
            token(&svc, &assertion(&svc), None).unwrap(),
            "github:repo.read"
        );
        let err = token(&svc, &assertion(&svc), Some("github:issues.write")).unwrap_err();
        assert_eq!(err.code(), "invalid_scope", "{err}");

        // A suspension through the other handle refuses the next request outright.
        admin
            .suspend_agent("billing-report-agent", Some("investigating"))
            .unwrap();
        let err = token(&svc, &assertion(&svc), None).unwrap_err();
        assert_eq!(err.code(), "invalid_client", "{err}");
        // And resuming it lets the next one through again.
        admin.resume_agent("billing-report-agent").unwrap();
        assert_eq!(
            token(&svc, &assertion(&svc), None).unwrap(),
            "github:repo.read"
        );
        // Every decision, the refusals too, is in the one chain.
        let denied = admin
            .audit_events(Some("billing-report-agent"), 100, None)
            .unwrap()
            .iter()
            .filter(|e| e.action == "token.denied")
            .count();
        assert_eq!(denied, 2);
        assert!(admin.verify_audit().unwrap().ok());
    });
}

#[test]
fn an_assertion_used_at_one_handle_is_refused_as_a_replay_at_the_other() {
    each_store(|s| {
        registry(&s.open());
        let one = endpoint(s.open());
        let two = endpoint(s.open());
        let used = assertion(&one);
        token(&one, &used, None).unwrap();
        let err = token(&two, &used, None).unwrap_err();
        assert_eq!(err.code(), "invalid_client");
        assert!(err.to_string().contains("replay"), "{err}");
        // And the other way round, with both memories warm.
        let used = assertion(&two);
        token(&two, &used, None).unwrap();
        let err = token(&one, &used, None).unwrap_err();
        assert!(err.to_string().contains("replay"), "{err}");
        // A restart (a third handle, an empty memory) refuses both too.
        let three = endpoint(s.open());
        let err = token(&three, &used, None).unwrap_err();
        assert!(err.to_string().contains("replay"), "{err}");
        // Fresh assertions pass everywhere.
        for svc in [&one, &two, &three] {
            token(svc, &assertion(svc), None).unwrap();
        }
        assert!(s.open().verify_audit().unwrap().ok());
    });
}

#[test]
fn tokens_issued_through_two_handles_at_once_each_have_their_event() {
    each_store(|s| {
        registry(&s.open());
        let svcs = [Arc::new(endpoint(s.open())), Arc::new(endpoint(s.open()))];
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let svc = svcs[t % 2].clone();
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        token(&svc, &assertion(&svc), None).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let m = s.open();
        let issued = m
            .audit_events(Some("billing-report-agent"), 1000, None)
            .unwrap()
            .iter()
            .filter(|e| e.action == "token.issued")
            .count();
        assert_eq!(issued, 160);
        assert_eq!(m.outstanding_tokens(None).unwrap().len(), 160);
        let r = m.verify_audit().unwrap();
        assert!(r.ok(), "{:?}", r.problems);
    });
}
