//! The team server on PostgreSQL: an outage of the primary under a running server answers 503
//! `temporarily_unavailable`, writes nothing half-way, and the server recovers by itself when
//! the database returns.

use std::time::Duration;

use crate::acceptance::{client_for, form, key_of, post};
use crate::fixture::{PgCluster, Team, bundle_events, eventually};

#[test]
fn stopping_postgresql_under_a_running_server_answers_503_and_it_recovers_when_it_returns() {
    let pg = PgCluster::new();
    let team = Team::on_postgres(&pg.url());
    team.init();
    let ip = std::net::Ipv4Addr::new(127, 78, (std::process::id() % 250) as u8, 9);
    let server = team.start(ip, &[]);
    let c = client_for(&team, server.addr);
    let key = key_of(&team, "billing-bot");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ask = || {
        rt.block_on(post(
            &c,
            &team,
            "/oauth2/token",
            form(
                &team,
                "billing-bot",
                &key,
                "/oauth2/token",
                &[("grant_type", "client_credentials")],
            ),
        ))
    };
    let jti = |v: &serde_json::Value| -> String {
        let t = v["access_token"].as_str().unwrap();
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                t.split('.').nth(1).unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        claims["jti"].as_str().unwrap().to_string()
    };
    let (s, v) = ask();
    assert_eq!(s, 200, "{v}");
    let mut received = vec![jti(&v)];

    pg.stop();
    let mut refused = 0;
    for _ in 0..5 {
        let (s, v) = ask();
        assert_eq!(s, 503, "{v}");
        assert_eq!(v["error"], "temporarily_unavailable", "{v}");
        refused += 1;
    }
    // An admin's change during the outage fails with the storage exit code and writes nothing.
    let r = team.mandate(&["member", "add", "bob"]);
    assert_eq!(r.code, 7, "{}", r.stderr);

    pg.start();
    assert!(
        eventually(Duration::from_secs(20), || {
            let (s, v) = ask();
            if s == 200 {
                received.push(jti(&v));
            }
            s == 200
        }),
        "the server did not recover after PostgreSQL returned"
    );
    // Nothing half-written: the trail verifies, bob was never added, and exactly the tokens
    // answered 200 were issued (two: before the outage, and the one that just succeeded).
    team.mandate(&["audit", "verify"]).ok();
    let members = team.mandate(&["--json", "member", "list"]).ok().json();
    assert!(!members.to_string().contains("\"bob\""), "{members}");
    let bundle = team.export_bundle("outage.bundle");
    let issued: Vec<String> = bundle_events(&bundle)
        .iter()
        .filter(|e| e["action"] == "token.issued")
        .filter_map(|e| e["details"]["jti"].as_str().map(String::from))
        .collect();
    for j in &received {
        assert!(
            issued.contains(j),
            "token {j} was answered but has no event"
        );
    }
    eprintln!("outage: {refused} requests refused with 503 while PostgreSQL was down");
}
