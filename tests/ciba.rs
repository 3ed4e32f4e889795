//! OpenID CIBA poll mode against a real `mandate serve`, driven as raw HTTP by Python
//! `requests` with PyJWT-signed assertions (tests/interop/ciba_client.py), and answered by a
//! person from the CLI (`mandate approvals approve|deny`): a yes yields one token for the
//! member with the agent as actor, a no answers `access_denied`, silence `expired_token`,
//! and every step is in the audit trail.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::fixture::Env;
use crate::interop::{audit_actions, interop_dir, python, run_json, serve};

struct Ciba {
    py: String,
    issuer: String,
    key: String,
}

impl Ciba {
    fn call(&self, args: &[&str]) -> Value {
        let (ok, v) = run_json(
            Command::new(&self.py)
                .arg(interop_dir().join("ciba_client.py"))
                .arg(args[0])
                .args([&self.issuer, "ciba-agent", &self.key])
                .args(&args[1..]),
        );
        assert!(ok, "{v}");
        v
    }

    fn start(&self, extra: &[&str]) -> (String, Value) {
        let mut args = vec!["start", "github:repo.read", "founder"];
        args.extend_from_slice(extra);
        let v = self.call(&args);
        assert_eq!(v["status"], 200, "{v}");
        let id = v["body"]["auth_req_id"].as_str().unwrap().to_string();
        (id, v)
    }

    fn poll(&self, id: &str) -> Value {
        self.call(&["poll", id])
    }
}

fn setup(env: &Env) -> (crate::interop::Running, Ciba) {
    env.seed();
    let key = env.dir.path().join("ciba.jwk");
    env.run(&[
        "agent",
        "add",
        "ciba-agent",
        "--owner",
        "founder",
        "--purpose",
        "asks a person before it acts",
        "--scope",
        "github:repo.read",
        "--generate-key",
        "--key-file",
        key.to_str().unwrap(),
        "--key-format",
        "jwk",
    ])
    .ok();
    let py = python();
    let (server, issuer) = serve(env);
    (
        server,
        Ciba {
            py,
            issuer,
            key: key.to_str().unwrap().to_string(),
        },
    )
}

fn error_of(v: &Value) -> &str {
    v["body"]["error"].as_str().unwrap_or_default()
}

#[test]
fn ciba_poll_waits_for_a_person_then_yields_one_token_for_the_member() {
    let env = Env::new();
    let (_server, c) = setup(&env);
    let (id, v) = c.start(&["Deploy report for March"]);
    assert_eq!(
        v["metadata"]["backchannel_token_delivery_modes_supported"],
        serde_json::json!(["poll"]),
        "{v}"
    );
    assert_eq!(
        v["metadata"]["backchannel_authentication_endpoint"],
        format!("{}/oauth2/bc-authorize", c.issuer)
    );
    assert!(
        v["metadata"]["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("urn:openid:params:grant-type:ciba"))
    );
    assert_eq!(v["body"]["interval"], 5, "{v}");
    assert_eq!(v["body"]["expires_in"], 600, "{v}");
    assert_eq!(v["cache_control"], "no-store");
    assert!(id.starts_with("ciba_"), "{id}");

    // The request waits in the inbox with who asks, for what, for whom and the message.
    let list = env.run(&["--json", "approvals", "list"]).ok().stdout;
    assert!(list.contains(&id), "{list}");
    assert!(list.contains("Deploy report for March"), "{list}");
    assert!(list.contains("founder"), "{list}");

    let v = c.poll(&id);
    assert_eq!(v["status"], 400, "{v}");
    assert_eq!(error_of(&v), "authorization_pending", "{v}");
    let v = c.poll(&id);
    assert_eq!(error_of(&v), "slow_down", "{v}");

    env.run(&["--as", "founder", "approvals", "approve", &id])
        .ok();
    std::thread::sleep(Duration::from_secs(5));
    let v = c.poll(&id);
    assert_eq!(v["status"], 200, "{v}");
    let claims = &v["body"]["claims"];
    assert_eq!(claims["sub"], "founder", "{v}");
    assert_eq!(claims["act"]["sub"], "ciba-agent", "{v}");
    assert_eq!(claims["client_id"], "ciba-agent", "{v}");
    assert_eq!(claims["scope"], "github:repo.read", "{v}");
    assert_eq!(claims["aud"], "https://api.github.com", "{v}");

    // One yes, one token.
    std::thread::sleep(Duration::from_secs(5));
    let v = c.poll(&id);
    assert_eq!(error_of(&v), "invalid_grant", "{v}");

    let actions = audit_actions(&env).join("\n");
    for step in [
        "approval.requested:allow",
        "approval.approved:allow",
        "token.issued:allow",
        "token.denied:deny",
    ] {
        assert!(actions.contains(step), "{step} missing from\n{actions}");
    }
}

#[test]
fn ciba_request_a_person_denies_answers_access_denied_with_the_reason() {
    let env = Env::new();
    let (_server, c) = setup(&env);
    let (id, _) = c.start(&[]);
    env.run(&["approvals", "deny", &id, "--reason", "not this month"])
        .ok();
    let v = c.poll(&id);
    assert_eq!(v["status"], 400, "{v}");
    assert_eq!(error_of(&v), "access_denied", "{v}");
    let why = v["body"]["error_description"].as_str().unwrap();
    assert!(why.contains("not this month"), "{why}");
    let actions = audit_actions(&env).join("\n");
    assert!(actions.contains("approval.denied:deny"), "{actions}");
    assert!(!actions.contains("token.issued"), "{actions}");
}

#[test]
fn ciba_request_nobody_answers_expires_and_can_no_longer_be_approved() {
    let env = Env::new();
    let (_server, c) = setup(&env);
    let (id, v) = c.start(&["quick one", "1"]);
    assert_eq!(v["body"]["expires_in"], 1, "{v}");
    std::thread::sleep(Duration::from_secs(2));
    let v = c.poll(&id);
    assert_eq!(error_of(&v), "expired_token", "{v}");
    let out = env.run(&["--as", "founder", "approvals", "approve", &id]);
    assert_ne!(out.code, 0, "{}", out.stdout);
}

#[test]
fn ciba_request_for_an_unknown_member_or_a_foreign_scope_is_refused_and_audited() {
    let env = Env::new();
    let (_server, c) = setup(&env);
    let v = c.call(&["start", "github:repo.read", "nobody"]);
    assert_eq!(error_of(&v), "unknown_user_id", "{v}");
    let v = c.call(&["start", "github:issues.write", "founder"]);
    assert_eq!(error_of(&v), "invalid_scope", "{v}");
    let actions = audit_actions(&env);
    assert_eq!(
        actions.iter().filter(|a| *a == "ciba.denied:deny").count(),
        2,
        "{actions:?}"
    );
}

#[test]
fn ciba_request_for_another_member_cannot_be_approved_by_someone_else() {
    let env = Env::new();
    let (_server, c) = setup(&env);
    env.run(&["member", "add", "alice"]).ok();
    let v = c.call(&["start", "github:repo.read", "alice", "read alice's repos"]);
    assert_eq!(v["status"], 200, "{v}");
    let id = v["body"]["auth_req_id"].as_str().unwrap().to_string();
    // The founder may not hand the agent a token that acts as alice (attribution, like every
    // `--as`: the OS login stays the security boundary).
    let r = env.run(&["--as", "founder", "approvals", "approve", &id]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(r.stderr.contains("only alice can approve"), "{}", r.stderr);
    let v = c.poll(&id);
    assert_eq!(error_of(&v), "authorization_pending", "{v}");
    let actions = audit_actions(&env).join("\n");
    assert!(actions.contains("approval.refused:deny"), "{actions}");
    // Alice herself can.
    env.run(&["--as", "alice", "approvals", "approve", &id])
        .ok();
    std::thread::sleep(Duration::from_secs(5));
    let v = c.poll(&id);
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["body"]["claims"]["sub"], "alice", "{v}");
}
