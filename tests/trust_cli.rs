//! Issue 19's trust that moves, through the real `mandate` binary, the real keychain and a
//! real `mandate serve`: a burst of denials drops an agent below the floor within a minute
//! (the refresher in `serve`, not the test, notices), signed review attestations made by an
//! independent implementation (Python securesystemslib + in-toto-attestation) count within
//! their attestor's bound and stop counting when the attestor is revoked, configuration drift
//! holds an agent at PENDING until a member reviews it, and minimum scores on a connection and
//! on the organisation apply at the token endpoint.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::endpoint_walk::serve;
use crate::fixture::Env;
use crate::interop::interop_dir;

const AGENT: &str = "billing-report-agent";

/// The attestation signers' venv python (installed once, cached).
fn signer_python() -> String {
    let out = Command::new(interop_dir().join("attest").join("setup.sh"))
        .output()
        .expect("attest/setup.sh");
    assert!(
        out.status.success(),
        "attest/setup.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn signer(args: &[&str]) -> String {
    let out = Command::new(signer_python())
        .arg(interop_dir().join("attest").join("sign_review.py"))
        .args(args)
        .output()
        .expect("sign_review.py");
    assert!(
        out.status.success(),
        "sign_review.py {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A fresh key pair of an outside attestor, in `env`'s temp folder.
fn attestor_keys(env: &Env, name: &str) -> PathBuf {
    let dir = env.dir.path().join(format!("attestor-{name}"));
    signer(&["keygen", dir.to_str().unwrap()]);
    dir
}

/// An envelope signed with `keys` for what `mandate attest subject` prints now.
fn signed_review(env: &Env, keys: &Path, result: &str, expires: &str, points: &str) -> PathBuf {
    let subject = env.run(&["attest", "subject", AGENT]).ok().stdout;
    let envelope = signer(&[
        "sign",
        keys.to_str().unwrap(),
        &subject,
        result,
        expires,
        points,
    ]);
    let path = env.dir.path().join(format!(
        "review-{}.json",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::write(&path, envelope).unwrap();
    path
}

fn trust(env: &Env) -> Value {
    env.run(&["agent", "show", AGENT, "--json"]).ok().json()["trust"].clone()
}

fn signal<'a>(trust: &'a Value, id: &str) -> Option<&'a Value> {
    trust["signals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
}

/// Every audit event as JSON (`action`, `actor`, `reason`, `details`...), oldest first, read
/// with sqlite3.
fn audit(env: &Env) -> Vec<Value> {
    let o = crate::fixture::sqlite3(env.db_path())
        .arg("SELECT CAST(body AS TEXT) FROM audit_events ORDER BY seq")
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn audit_actions(env: &Env) -> Vec<String> {
    audit(env)
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_burst_of_denials_drops_the_score_below_the_floor_within_a_minute_and_the_signal_says_why() {
    let env = Env::new();
    env.seed();
    let (_server, _port) = serve(&env);
    // A new agent is PENDING and github's floor is PENDING: tokens are issued.
    env.run(&["token", AGENT]).ok();
    let before = trust(&env);
    assert_eq!(before["state"], "PENDING");
    // Ten requests for a scope it does not hold: each refused and audited.
    for _ in 0..10 {
        let r = env.run(&["token", AGENT, "--scope", "github:issues.write"]);
        assert_ne!(r.code, 0, "an ungranted scope must be refused");
    }
    // The endpoint's own refresher (not this test) notices: within a minute the token
    // endpoint refuses the agent at the floor.
    let start = Instant::now();
    let refused = loop {
        let r = env.run(&["token", AGENT]);
        if r.code != 0 {
            break r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "after a minute the agent still gets tokens"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        refused.stderr.contains("requires at least PENDING"),
        "{}",
        refused.stderr
    );
    let after = trust(&env);
    assert_eq!(after["state"], "UNTRUSTED");
    assert!(
        after["score"].as_i64().unwrap() < after["thresholds"]["pending_min"].as_i64().unwrap()
    );
    let d = signal(&after, "denials").expect("a denials signal");
    assert_eq!(d["outcome"], "fail");
    assert!(d["contribution"].as_i64().unwrap() < 0);
    let detail = d["detail"].as_str().unwrap();
    assert!(
        detail.contains("were refused in the last 10 minutes"),
        "{detail}"
    );
    assert!(detail.contains("Clears once"), "{detail}");
    // The score is the sum of the signals' points.
    let sum: i64 = after["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["contribution"].as_i64().unwrap())
        .sum();
    assert_eq!(after["score"].as_i64().unwrap(), sum.clamp(0, 100));

    // Refusals at the floor only enforce that verdict: audited as such, and not counted as
    // new denials, so the burst clears once its ten minutes pass even while the agent keeps
    // asking (counting them kept an UNTRUSTED agent there for as long as it called).
    let refused_before = denials_in(&after);
    for _ in 0..8 {
        let r = env.run(&["token", AGENT]);
        assert!(
            r.code != 0 && r.stderr.contains("requires at least PENDING"),
            "{}",
            r.stderr
        );
    }
    let gated = audit(&env)
        .into_iter()
        .filter(|e| {
            e["action"] == "token.denied" && e["details"]["trust_gate"] == Value::Bool(true)
        })
        .count();
    assert!(
        gated >= 9,
        "each floor refusal is marked as the trust gate: {gated}"
    );
    let scope_refusals = audit(&env)
        .into_iter()
        .filter(|e| {
            e["action"] == "token.denied"
                && e["details"]["error"] == "invalid_scope"
                && e["details"].get("trust_gate").is_none()
        })
        .count();
    assert_eq!(scope_refusals, 10);
    // Once the refresher has folded the new requests, the refusals counted are the same.
    let start = Instant::now();
    let later = loop {
        let t = trust(&env);
        if requests_in(&t) >= requests_in(&after) + 8 {
            break t;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the refresher did not fold the new requests within a minute"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(denials_in(&later), refused_before, "{later}");
}

/// The refusals and requests the denials signal counted ("N of its last M requests were
/// refused ...").
fn denials_in(trust: &Value) -> u64 {
    count_in(trust, 0)
}

fn requests_in(trust: &Value) -> u64 {
    count_in(trust, 4)
}

fn count_in(trust: &Value, word: usize) -> u64 {
    let detail = signal(trust, "denials").unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_string();
    detail
        .split_whitespace()
        .nth(word)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no count at word {word} of: {detail}"))
}

#[test]
fn a_signed_review_attestation_raises_the_score_by_at_most_its_bound_and_stops_counting_when_its_attestor_is_revoked()
 {
    let env = Env::new();
    env.seed();
    let keys = attestor_keys(&env, "ci");
    let public = keys.join("public.pem");
    env.run(&[
        "attestor",
        "add",
        "ci-evals",
        "--public-key",
        public.to_str().unwrap(),
        "--max-points",
        "10",
    ])
    .ok();
    let base = trust(&env)["score"].as_i64().unwrap();
    // It asks for 25 points; its attestor may give at most 10.
    let review = signed_review(&env, &keys, "pass", "2099-01-01T00:00:00Z", "25");
    let added = env
        .run(&["attest", "add", review.to_str().unwrap(), "--json"])
        .ok()
        .json();
    assert_eq!(added["points"], 10);
    assert_eq!(added["counts"], true);
    let with = trust(&env);
    assert_eq!(with["score"].as_i64().unwrap(), base + 10);
    let s = signal(&with, "attestation:ci-evals").expect("the attestation's signal");
    assert_eq!(s["contribution"], 10);
    // The same file again is refused (already stored).
    env.run(&["attest", "add", review.to_str().unwrap()])
        .fails(5, "already stored");

    // Refused with clear reasons: expired, another signer, another configuration version.
    let expired = signed_review(&env, &keys, "pass", "2001-01-01T00:00:00Z", "5");
    env.run(&["attest", "add", expired.to_str().unwrap()])
        .fails(9, "expired");
    let stranger = attestor_keys(&env, "stranger");
    let unknown = signed_review(&env, &stranger, "pass", "2099-01-01T00:00:00Z", "5");
    env.run(&["attest", "add", unknown.to_str().unwrap()])
        .fails(9, "unknown attestor");

    // Revoked: the attestation no longer counts, is listed with why, and new ones are refused.
    env.run(&[
        "attestor",
        "revoke",
        "ci-evals",
        "--reason",
        "its signing key leaked",
    ])
    .ok();
    let without = trust(&env);
    assert_eq!(without["score"].as_i64().unwrap(), base);
    assert!(signal(&without, "attestation:ci-evals").is_none());
    let list = env.run(&["attest", "list", AGENT, "--json"]).ok().json();
    assert_eq!(list[0]["counts"], false);
    assert!(
        list[0]["why_not"].as_str().unwrap().contains("was revoked"),
        "{list}"
    );
    let again = signed_review(&env, &keys, "pass", "2099-01-01T00:00:00Z", "5");
    env.run(&["attest", "add", again.to_str().unwrap()])
        .fails(9, "revoked");

    // A second attestor's review, then a configuration change: signed for the old version,
    // it stops counting, and a review of the old version is refused.
    let keys2 = attestor_keys(&env, "auditor");
    env.run(&[
        "attestor",
        "add",
        "auditor",
        "--public-key",
        keys2.join("public.pem").to_str().unwrap(),
        "--max-points",
        "5",
    ])
    .ok();
    let old = signed_review(&env, &keys2, "pass", "2099-01-01T00:00:00Z", "5");
    let stale = signed_review(&env, &keys2, "pass", "2099-06-01T00:00:00Z", "5");
    env.run(&["attest", "add", old.to_str().unwrap()]).ok();
    assert_eq!(trust(&env)["score"].as_i64().unwrap(), base + 5);
    env.run(&[
        "agent",
        "edit",
        AGENT,
        "--purpose",
        "quarterly billing report",
    ])
    .ok();
    let list = env.run(&["attest", "list", AGENT, "--json"]).ok().json();
    assert!(
        list[0]["why_not"]
            .as_str()
            .unwrap()
            .contains("configuration version"),
        "{list}"
    );
    env.run(&["attest", "add", stale.to_str().unwrap()])
        .fails(9, "another configuration");

    let actions = audit_actions(&env);
    for a in [
        "attestor.added",
        "attestation.added",
        "attestation.refused",
        "attestor.revoked",
    ] {
        assert!(
            actions.iter().any(|x| x == a),
            "{a} missing from {actions:?}"
        );
    }
    // The PDF report tells the same story from these real events, in words.
    let text = env.report_text();
    for needle in [
        "Approvals and attestations",
        // Table cells wrap, so each needle stays within a line of its cell.
        "attestation by ci-evals: pass, valid until",
        "attestation refused: the attestation from",
        "attestor revoked; 1 attestation(s) withdrawn: its",
        "attestation by auditor: pass",
    ] {
        assert!(
            text.contains(needle),
            "the report lacks {needle:?}:\n{text}"
        );
    }
}

#[test]
fn a_configuration_change_holds_the_agent_at_pending_until_a_member_reviews_it() {
    let env = Env::new();
    env.seed();
    // Thresholds low enough that the new agent's score makes it TRUSTED.
    env.run(&["trust", "--trusted-min", "41", "--pending-min", "20"])
        .ok();
    assert_eq!(trust(&env)["state"], "TRUSTED");
    env.run(&["agent", "edit", AGENT, "--add-scope", "github:issues.write"])
        .ok();
    let t = trust(&env);
    assert_eq!(t["state"], "PENDING", "{t}");
    assert!(
        t["score"].as_i64().unwrap() >= 41,
        "the score itself is unchanged"
    );
    let review = signal(&t, "review").unwrap();
    assert_eq!(review["outcome"], "warn");
    assert!(
        review["detail"]
            .as_str()
            .unwrap()
            .contains("mandate agent review"),
        "{review}"
    );
    let shown = env.run(&["agent", "show", AGENT]).ok().stdout;
    assert!(shown.contains("Review needed"), "{shown}");
    env.run(&[
        "agent",
        "review",
        AGENT,
        "--note",
        "issues.write is for the monthly summary issue",
        "--as",
        "founder",
    ])
    .ok();
    assert_eq!(trust(&env)["state"], "TRUSTED");
    env.run(&["agent", "review", AGENT])
        .fails(5, "no configuration change");
    // Suspending and resuming is no configuration change to review.
    env.run(&["agent", "suspend", AGENT]).ok();
    env.run(&["agent", "resume", AGENT]).ok();
    assert_eq!(trust(&env)["state"], "TRUSTED");
    let events = audit(&env);
    let reviewed = events
        .iter()
        .find(|e| e["action"] == "agent.reviewed")
        .expect("agent.reviewed audited");
    assert_eq!(reviewed["actor"]["name"], "founder");
    assert_eq!(
        reviewed["reason"],
        "issues.write is for the monthly summary issue"
    );
    assert!(
        audit_actions(&env)
            .iter()
            .any(|a| a == "trust.settings_changed")
    );
    // Thresholds out of order are refused and change nothing.
    env.run(&["trust", "--pending-min", "90"])
        .fails(3, "0 < PENDING");
}

#[test]
fn minimum_scores_on_a_connection_and_the_organisation_apply_at_the_token_endpoint() {
    let env = Env::new();
    env.seed();
    let (_server, _port) = serve(&env);
    env.run(&["token", AGENT]).ok();
    let score = trust(&env)["score"].as_i64().unwrap();
    let above = (score + 1).to_string();
    env.run(&["connection", "edit", "github", "--min-score", &above])
        .ok();
    env.run(&["token", AGENT])
        .fails(9, &format!("requires a score of at least {above}"));
    env.run(&["connection", "edit", "github", "--no-min-score"])
        .ok();
    env.run(&["token", AGENT]).ok();
    env.run(&["trust", "--organisation-floor", &above]).ok();
    env.run(&["token", AGENT])
        .fails(9, "the organisation requires a score");
    env.run(&["trust", "--organisation-floor", "0"]).ok();
    env.run(&["token", AGENT]).ok();
    let actions = audit_actions(&env);
    assert!(actions.iter().any(|a| a == "connection.min_score_set"));
}
