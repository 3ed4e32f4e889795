//! Issue 21 §1 and §4: team members sign in with their own keys, against a real `mandate
//! server` on a real PostgreSQL and SoftHSM2 token. The members' machines are the remote host
//! (a network namespace), each with its own data folder and its member key in a real Secret
//! Service (the one `scripts/with-keyring` runs; its socket is a path, so it is reachable from
//! the namespace).
//!
//! Each refusal is checked three ways: the error the person sees, the audit event that records
//! it, and the registry left exactly as it was.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::SigningKey;
use mandate_core::keys;
use mandate_core::oauth::dpop::make_proof;
use mandate_core::oauth::{ASSERTION_TYPE_JWT_BEARER, client_assertion};
use serde_json::{Value, json};

use crate::acceptance::{client_for, form, key_of, post};
use crate::fixture::{PgCluster, RemoteHost, Run, Team, bin, bundle_events, path_str};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A person's machine: the remote host, their own data folder and keychain service.
pub(crate) struct Desk<'a> {
    host: &'a RemoteHost,
    dir: PathBuf,
    service: String,
}

impl<'a> Desk<'a> {
    pub(crate) fn new(host: &'a RemoteHost, team: &Team, name: &str) -> Desk<'a> {
        let dir = team.path(&format!("desk-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        Desk {
            host,
            dir,
            service: format!("mandate-team-members-{}-{name}", std::process::id()),
        }
    }

    pub(crate) fn mandate(&self, args: &[&str]) -> Run {
        let bus = std::env::var("DBUS_SESSION_BUS_ADDRESS").expect(
            "the members' keys live in a Secret Service: run the team tests under \
             scripts/with-keyring (scripts/test --team does)",
        );
        self.host
            .cmd(&bin("mandate"), args)
            .env("DBUS_SESSION_BUS_ADDRESS", bus)
            .env("MANDATE_DATA_DIR", &self.dir)
            .env("MANDATE_KEYCHAIN_SERVICE", &self.service)
            .output()
            .expect("run mandate on the member's machine")
            .into()
    }

    /// [`Desk::mandate`] with `input` on standard input (a secret, as a person pipes one).
    fn mandate_with_stdin(&self, args: &[&str], input: &str) -> Run {
        use std::io::Write as _;
        let bus = std::env::var("DBUS_SESSION_BUS_ADDRESS").expect("under scripts/with-keyring");
        let mut child = self
            .host
            .cmd(&bin("mandate"), args)
            .env("DBUS_SESSION_BUS_ADDRESS", bus)
            .env("MANDATE_DATA_DIR", &self.dir)
            .env("MANDATE_KEYCHAIN_SERVICE", &self.service)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run mandate on the member's machine");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap().into()
    }

    /// `mandate ARGS` on the member's machine, left running with its output piped.
    pub(crate) fn spawn(&self, args: &[&str]) -> std::process::Child {
        let bus = std::env::var("DBUS_SESSION_BUS_ADDRESS").expect("under scripts/with-keyring");
        self.host
            .cmd(&bin("mandate"), args)
            .env("DBUS_SESSION_BUS_ADDRESS", bus)
            .env("MANDATE_DATA_DIR", &self.dir)
            .env("MANDATE_KEYCHAIN_SERVICE", &self.service)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run mandate on the member's machine")
    }

    pub(crate) fn join(&self, team: &Team, code: &str) -> Run {
        let ca = path_str(&team.path("ca.pem"));
        self.mandate(&[
            "--json",
            "team",
            "join",
            &team.public_url(),
            code,
            "--server-ca",
            &ca,
        ])
    }
}

/// What the registry holds: every agent's name, owner and status, every member's name, and
/// every connection with its floor and the agents holding scopes on it.
fn registry(team: &Team) -> Value {
    let agents = team.mandate(&["--json", "agent", "list"]).ok().json();
    let members = team.mandate(&["--json", "member", "list"]).ok().json();
    let mut a: Vec<Value> = agents
        .as_array()
        .unwrap()
        .iter()
        .map(|a| json!([a["name"], a["owner"], a["status"]]))
        .collect();
    a.sort_by_key(|v| v.to_string());
    let mut m: Vec<Value> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].clone())
        .collect();
    m.sort_by_key(|v| v.to_string());
    let connections = team.mandate(&["--json", "connection", "list"]).ok().json();
    let mut c: Vec<Value> = connections
        .as_array()
        .unwrap()
        .iter()
        .map(|c| json!([c["name"], c["trust_floor"], c["granted_to"]]))
        .collect();
    c.sort_by_key(|v| v.to_string());
    json!({"agents": a, "members": m, "connections": c})
}

/// The events of the team's trail (exported and read back, as an auditor would).
fn events(team: &Team, name: &str) -> Vec<Value> {
    bundle_events(&team.export_bundle(name))
}

fn actor_name(e: &Value) -> &str {
    e["actor"]["name"].as_str().unwrap_or("")
}

#[track_caller]
fn refused(r: &Run, code: i32, words: &str) {
    assert_eq!(r.code, code, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(words),
        "expected '{words}' in: {}",
        r.stderr
    );
}

pub(crate) fn add_agent(team: &Team, name: &str, owner: &str) {
    team.mandate(&[
        "agent",
        "add",
        name,
        "--owner",
        owner,
        "--purpose",
        "nightly reconciliation",
        "--scope",
        "billing-db:invoices.read",
        "--generate-key",
        "--key-file",
        team.path(&format!("{name}.pem")).to_str().unwrap(),
        "--key-format",
        "pem",
    ])
    .ok();
}

#[test]
fn members_sign_in_with_their_own_keys_and_act_only_within_their_roles() {
    let pg = PgCluster::new();
    let team = Team::on_postgres(&pg.url());
    let alice_code = team.init_with_admin("alice");
    team.mandate(&[
        "connection",
        "add",
        "billing-db",
        "--base-url",
        "https://billing.example",
        "--action",
        "invoices.read=GET:/invoices/**",
    ])
    .ok();
    add_agent(&team, "billing-bot", "alice");

    // Before any admin joined, the server host may invite (here: a code that expires at once).
    let dave = team
        .mandate(&[
            "--json", "team", "invite", "dave", "--role", "member", "--ttl", "1s",
        ])
        .ok()
        .json();
    let dave_code = dave["invite_code"].as_str().unwrap().to_string();

    let host = RemoteHost::new();
    // A held call answers at once (`approval_pending`) instead of waiting a minute.
    let server = team.start_with_env(
        host.server_ips[0],
        &[],
        &[("MANDATE_APPROVAL_HOLD_SECS", "0")],
    );
    let alice = Desk::new(&host, &team, "alice");
    let bob = Desk::new(&host, &team, "bob");
    let carol = Desk::new(&host, &team, "carol");
    let mallory = Desk::new(&host, &team, "mallory");

    // A code that was never issued (and begins with a dash, which once read as a flag):
    // refused by the server, not by the command line.
    let before = registry(&team);
    refused(&mallory.join(&team, "-Vnot-a-code"), 9, "not valid");
    assert_eq!(registry(&team), before);

    // An expired code: refused, audited, nothing enrolled.
    std::thread::sleep(Duration::from_millis(1500));
    let before = registry(&team);
    refused(&mallory.join(&team, &dave_code), 9, "expired");
    assert_eq!(registry(&team), before);

    // A server with another certificate than the one pinned: nothing is sent, the code stays
    // usable, no key is kept.
    let wrong_pin = "00".repeat(32);
    let r = alice.mandate(&[
        "team",
        "join",
        &team.public_url(),
        &alice_code,
        "--server-fingerprint",
        &wrong_pin,
    ]);
    refused(&r, 8, "not the pinned one");

    // Alice joins with her code; her key is in her keychain, the server has its public half.
    let j = alice.join(&team, &alice_code).ok().json();
    assert_eq!(
        (j["member"].as_str(), j["role"].as_str()),
        (Some("alice"), Some("admin"))
    );
    let who = alice.mandate(&["--json", "team", "whoami"]).ok().json();
    assert_eq!(who["name"], "alice");
    assert_eq!(who["role"], "admin");

    // A stolen code used a second time: refused and audited; the registry is unchanged.
    let before = registry(&team);
    refused(&mallory.join(&team, &alice_code), 9, "already used");
    assert_eq!(registry(&team), before);
    assert!(
        mallory.mandate(&["team", "agents"]).code != 0,
        "mallory enrolled nothing, so has nothing to sign in with"
    );

    let reasons: Vec<String> = events(&team, "t0.jsonl")
        .iter()
        .filter(|e| e["action"] == "member.invite_refused")
        .map(|e| e["reason"].as_str().unwrap_or("").to_string())
        .collect();
    for want in ["not valid", "expired", "already used"] {
        assert!(
            reasons.iter().any(|r| r.contains(want)),
            "'{want}' refusal audited: {reasons:?}"
        );
    }

    // Once an admin has joined, the server host no longer invites: admins do.
    refused(
        &team.mandate(&["team", "invite", "eve", "--role", "admin"]),
        5,
        "invites now come from an admin",
    );
    let inv = alice
        .mandate(&["--json", "team", "invite", "bob", "--role", "member"])
        .ok()
        .json();
    bob.join(&team, inv["invite_code"].as_str().unwrap()).ok();
    let inv = alice
        .mandate(&["--json", "team", "invite", "carol", "--role", "auditor"])
        .ok()
        .json();
    carol.join(&team, inv["invite_code"].as_str().unwrap()).ok();
    add_agent(&team, "ops-bot", "bob");

    // Bob's token is reused between commands until near its expiry.
    let listed = bob.mandate(&["--json", "team", "agents"]).ok().json();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    bob.mandate(&["--json", "team", "approvals"]).ok();
    let issued_to_bob = events(&team, "t1.jsonl")
        .iter()
        .filter(|e| e["action"] == "member.token_issued" && actor_name(e) == "bob")
        .count();
    assert_eq!(issued_to_bob, 1, "one token for two commands");

    // An approval requested by bob's agent shows to bob (and the admin), not to the auditor,
    // and only its owner or an admin decides it.
    team.mandate(&["connection", "edit", "billing-db", "--approval", "always"])
        .ok();
    let c = client_for(&team, server.addr);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ops_key = key_of(&team, "ops-bot");
    let (s, v) = rt.block_on(post(
        &c,
        &team,
        "/oauth2/token",
        form(
            &team,
            "ops-bot",
            &ops_key,
            "/oauth2/token",
            &[("grant_type", "client_credentials")],
        ),
    ));
    assert_eq!(s, 200, "{v}");
    let agent_token = v["access_token"].as_str().unwrap().to_string();
    let (s, id) = rt.block_on(async {
        let r = c
            .get(format!("{}/proxy/billing-db/invoices/7", team.public_url()))
            .bearer_auth(&agent_token)
            .send()
            .await
            .unwrap();
        let id = r
            .headers()
            .get("mandate-approval")
            .map(|h| h.to_str().unwrap().to_string());
        (r.status().as_u16(), id)
    });
    assert_eq!(s, 403);
    let id = id.expect("the request's id");
    let ids = |d: &Desk| -> Vec<String> {
        d.mandate(&["--json", "team", "approvals"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&bob), vec![id.clone()]);
    assert_eq!(ids(&alice), vec![id.clone()]);
    assert!(ids(&carol).is_empty(), "auditors decide nothing");
    refused(
        &carol.mandate(&["team", "approve", &id]),
        9,
        "auditors read and export",
    );
    bob.mandate(&["team", "approve", &id, "--for", "1h"]).ok();
    let ev = events(&team, "t15.jsonl");
    let approved = ev
        .iter()
        .rev()
        .find(|e| e["action"] == "approval.approved")
        .expect("approval.approved");
    assert_eq!(actor_name(approved), "bob");

    // A member acting outside their role: revoking an agent someone else owns; inviting.
    let before = registry(&team);
    refused(
        &bob.mandate(&["team", "revoke", "billing-bot", "--reason", "mine now"]),
        9,
        "does not own the agent 'billing-bot'",
    );
    refused(
        &bob.mandate(&["team", "invite", "eve", "--role", "admin"]),
        9,
        "only admins invite",
    );
    refused(
        &bob.mandate(&["team", "remove", "carol"]),
        9,
        "only admins remove",
    );
    refused(
        &bob.mandate(&["team", "remove-connection", "billing-db"]),
        9,
        "only admins remove connections",
    );
    // An auditor trying a change.
    refused(
        &carol.mandate(&["team", "suspend", "billing-bot"]),
        9,
        "auditors read and export",
    );
    assert_eq!(registry(&team), before, "no refused change left a trace");
    let ev = events(&team, "t2.jsonl");
    let denials: Vec<(&str, &str)> = ev
        .iter()
        .filter(|e| e["action"] == "team.request_denied")
        .map(|e| {
            (
                actor_name(e),
                e["details"]["request"].as_str().unwrap_or(""),
            )
        })
        .collect();
    for want in [
        ("bob", "agent.revoke"),
        ("bob", "member.invite"),
        ("bob", "member.remove"),
        ("bob", "connection.remove"),
        ("carol", "agent.suspend"),
    ] {
        assert!(denials.contains(&want), "{want:?} not in {denials:?}");
    }
    // The auditor exports the trail, and it verifies on her machine against the issuer key's
    // fingerprint as the server host knows it (not as the export claims it).
    let out = team.path("carol-export.jsonl");
    carol
        .mandate(&["team", "export", "--out", &path_str(&out)])
        .ok();
    let fp = team.mandate(&["--json", "audit", "verify"]).ok().json()["trusted_keys"][0]
        .as_str()
        .unwrap()
        .to_string();
    let v = carol.mandate(&["--json", "audit", "verify", &path_str(&out), "--key", &fp]);
    assert_eq!(v.code, 0, "{}\n{}", v.stderr, v.stdout);
    assert!(v.json()["problems"].as_array().unwrap().is_empty());

    // The auditor reads the connections and the trail.
    let conns = carol
        .mandate(&["--json", "team", "connections"])
        .ok()
        .json();
    assert_eq!(conns[0]["name"], "billing-db");
    let trail = carol
        .mandate(&["--json", "team", "audit", "--limit", "5"])
        .ok()
        .json();
    assert_eq!(trail.as_array().unwrap().len(), 5);

    // Within their role: bob revokes his own agent, and the event names him.
    bob.mandate(&["team", "revoke", "ops-bot", "--reason", "replaced"])
        .ok();
    let ev = events(&team, "t3.jsonl");
    let revoked = ev
        .iter()
        .rev()
        .find(|e| e["action"] == "agent.revoked")
        .expect("agent.revoked");
    assert_eq!(revoked["actor"]["kind"], "member");
    assert_eq!(actor_name(revoked), "bob");

    // Removing a member takes effect on their next request (bob's token is still cached and
    // unexpired): the API refuses it, and so does the token endpoint.
    alice.mandate(&["team", "remove", "bob"]).ok();
    let before = registry(&team);
    refused(&bob.mandate(&["team", "agents"]), 9, "removed");
    refused(
        &bob.mandate(&["team", "suspend", "billing-bot"]),
        9,
        "removed",
    );
    assert_eq!(registry(&team), before);
    let ev = events(&team, "t4.jsonl");
    let removed = ev
        .iter()
        .rev()
        .find(|e| e["action"] == "member.removed")
        .unwrap();
    assert_eq!(actor_name(removed), "alice");
    assert!(
        ev.iter()
            .any(|e| e["action"] == "member.token_denied" && actor_name(e) == "bob"),
        "bob's sign-in after removal is on the record"
    );
    // The last admin cannot be removed (nobody could invite again).
    refused(
        &alice.mandate(&["team", "remove", "alice"]),
        5,
        "only admin",
    );
    drop(server);
}

/// The protocol with a client of the test's own (reqwest), for what the CLI never does:
/// replaying a DPoP proof, a client assertion and a stolen token without its key.
#[test]
fn replayed_member_assertions_proofs_and_stolen_tokens_are_refused_and_audited() {
    let pg = PgCluster::new();
    let team = Team::on_postgres(&pg.url());
    let code = team.init_with_admin("alice");
    let ip = std::net::Ipv4Addr::new(127, 79, (std::process::id() % 250) as u8, 9);
    let server = team.start(ip, &[]);
    let c = client_for(&team, server.addr);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = team.public_url();
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let kid = keys::thumbprint(&key.verifying_key());

    // Join with the test's own key.
    let (s, v) = rt.block_on(async {
        let r = c
            .post(format!("{url}/team/join"))
            .json(&json!({"code": code, "public_key": B64.encode(key.verifying_key().as_bytes())}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    });
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["kid"], kid.as_str());

    let token_at = format!("{url}/oauth2/token");
    let ask_token = |assertion: &str, proof: &str| {
        rt.block_on(async {
            let form = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("client_id", "member:alice")
                .append_pair("client_assertion_type", ASSERTION_TYPE_JWT_BEARER)
                .append_pair("client_assertion", assertion)
                .finish();
            let r = c
                .post(&token_at)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .header("DPoP", proof)
                .body(form)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    };
    let assertion = client_assertion("member:alice", &kid, &key, &token_at, now());
    let proof = make_proof(&key, "POST", &token_at, now(), None);
    let (s, v) = ask_token(&assertion, &proof);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["token_type"], "DPoP");
    let token = v["access_token"].as_str().unwrap().to_string();
    let claims: Value =
        serde_json::from_slice(&B64.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert!(claims["sub"].as_str().unwrap().starts_with("member:"));
    assert!(
        claims["exp"].as_i64().unwrap() - now() <= 300,
        "short-lived"
    );

    // The same assertion again, with a fresh proof: a replay.
    let (s, v) = ask_token(
        &assertion,
        &make_proof(&key, "POST", &token_at, now(), None),
    );
    assert_eq!(
        (s, v["error"].as_str()),
        (401, Some("invalid_client")),
        "{v}"
    );
    assert!(
        v["error_description"].as_str().unwrap().contains("replay"),
        "{v}"
    );
    // A fresh assertion with the used proof: a replay too.
    let fresh = client_assertion("member:alice", &kid, &key, &token_at, now());
    let (s, v) = ask_token(&fresh, &proof);
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error_description"].as_str().unwrap().contains("replay"),
        "{v}"
    );

    let agents_at = format!("{url}/team/v1/agents");
    let get = |auth: Option<&str>, proof: Option<&str>| {
        rt.block_on(async {
            let mut r = c.get(&agents_at);
            if let Some(a) = auth {
                r = r.header("Authorization", format!("DPoP {a}"));
            }
            if let Some(p) = proof {
                r = r.header("DPoP", p);
            }
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    };
    let p = make_proof(&key, "GET", &agents_at, now(), Some(&token));
    assert_eq!(get(Some(&token), Some(&p)).0, 200);
    // The same proof replayed.
    let (s, v) = get(Some(&token), Some(&p));
    assert_eq!(s, 401, "{v}");
    assert!(
        v["error_description"].as_str().unwrap().contains("replay"),
        "{v}"
    );
    // A stolen token with a proof from another key.
    let thief = SigningKey::from_bytes(&[9u8; 32]);
    let (s, v) = get(
        Some(&token),
        Some(&make_proof(&thief, "GET", &agents_at, now(), Some(&token))),
    );
    assert_eq!(s, 401, "{v}");
    // The token without any proof, and no token at all.
    assert_eq!(get(Some(&token), None).0, 401);
    assert_eq!(get(None, None).0, 401);
    // A member's token is no agent's: the broker and introspection do not take it.
    let (s, _) = rt.block_on(async {
        let r = c
            .get(format!("{url}/proxy/billing-db/invoices"))
            .header("Authorization", format!("DPoP {token}"))
            .header(
                "DPoP",
                make_proof(
                    &key,
                    "GET",
                    &format!("{url}/proxy/billing-db/invoices"),
                    now(),
                    Some(&token),
                ),
            )
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), ())
    });
    assert!(s == 401 || s == 403 || s == 404, "the broker answered {s}");

    let bundle = team.export_bundle("replays.jsonl");
    let ev = bundle_events(&bundle);
    let denied: Vec<&str> = ev
        .iter()
        .filter(|e| e["action"] == "member.token_denied" || e["action"] == "team.request_denied")
        .map(|e| e["reason"].as_str().unwrap_or(""))
        .collect();
    assert!(
        denied.iter().filter(|r| r.contains("replay")).count() >= 3,
        "{denied:?}"
    );
    assert!(denied.len() >= 6, "{denied:?}");
    assert!(!Path::new(&bundle).to_string_lossy().is_empty());
    drop(server);
}

/// Issue 21's "Done when": two founders on two machines, each change in their name, both
/// machines' cosignatures in the exported PDF. Joining enrols each machine as a witness of the
/// team's log (its key in that person's keychain, registered in their name) and cosigns at
/// once; later syncs use the server joined. Admins add connections (and their credentials)
/// and remote MCP servers from their own machine; a member cannot, and a credential never
/// comes back in an answer or the trail.
#[test]
fn members_machines_witness_the_log_and_admins_add_connections_and_mcp_servers_remotely() {
    let pg = PgCluster::new();
    let team = Team::on_postgres(&pg.url());
    let alice_code = team.init_with_admin("alice");
    let host = RemoteHost::new();
    let server = team.start(host.server_ips[0], &[]);
    let alice = Desk::new(&host, &team, "alice");
    let bob = Desk::new(&host, &team, "bob");

    let j = alice.join(&team, &alice_code).ok().json();
    assert!(
        j["witness"]["cosigned_size"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "joining enrols the machine as a witness and cosigns: {j}"
    );
    let inv = alice
        .mandate(&["--json", "team", "invite", "bob", "--role", "member"])
        .ok()
        .json();
    let j = bob
        .join(&team, inv["invite_code"].as_str().unwrap())
        .ok()
        .json();
    let bob_witness = j["witness"]["name"].as_str().unwrap().to_string();
    assert!(bob_witness.contains("/bob-"), "{j}");

    // Both registered, each in its member's name.
    let listed = team
        .mandate(&["--json", "team", "witness", "list"])
        .ok()
        .json();
    let by: Vec<(String, String)> = listed["witnesses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["name"].as_str().unwrap().to_string(),
                w["added_by"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(by.len(), 2, "{listed}");
    assert!(
        by.iter()
            .any(|(n, a)| n.contains("/alice-") && a.contains("alice")),
        "{by:?}"
    );
    assert!(
        by.iter()
            .any(|(n, a)| n == &bob_witness && a.contains("bob")),
        "{by:?}"
    );
    // Enrolling again with the same key is fine; nothing is registered twice.
    alice.mandate(&["team", "witness", "enrol"]).ok();
    let again = team
        .mandate(&["--json", "team", "witness", "list"])
        .ok()
        .json();
    assert_eq!(again["witnesses"].as_array().unwrap().len(), 2);

    // A member may not add connections or MCP servers: refused, audited, nothing added.
    let before = registry(&team);
    refused(
        &bob.mandate(&[
            "team",
            "add-connection",
            "crm",
            "--base-url",
            "https://crm.example",
        ]),
        9,
        "admin",
    );
    refused(
        &bob.mandate(&[
            "team",
            "add-mcp-server",
            "docs",
            "--url",
            "https://mcp.example/mcp",
        ]),
        9,
        "admin",
    );
    refused(
        &bob.mandate_with_stdin(&["team", "set-secret", "crm"], "bob-guess"),
        9,
        "admin",
    );
    assert_eq!(registry(&team), before);

    // An admin adds them from her machine; the credential goes to the server's keychain.
    const SECRET: &str = "crm-live-9f8e7d6c5b4a";
    const MCP_SECRET: &str = "mcp-live-0a1b2c3d4e5f";
    alice
        .mandate(&[
            "team",
            "add-connection",
            "crm",
            "--base-url",
            "https://crm.example",
            "--action",
            "contacts.read=GET:/contacts/**",
            "--trust-floor",
            "PENDING",
        ])
        .ok();
    let set = alice
        .mandate_with_stdin(&["--json", "team", "set-secret", "crm"], SECRET)
        .ok();
    assert!(!set.stdout.contains(SECRET) && !set.stderr.contains(SECRET));
    let mcp = alice
        .mandate_with_stdin(
            &[
                "--json",
                "team",
                "add-mcp-server",
                "docs",
                "--url",
                "https://mcp.example/mcp",
                "--auth",
                "header:x-api-key",
                "--secret-stdin",
            ],
            MCP_SECRET,
        )
        .ok();
    assert!(!mcp.stdout.contains(MCP_SECRET), "{}", mcp.stdout);
    let conns = alice.mandate(&["--json", "team", "connections"]).ok();
    assert!(!conns.stdout.contains(SECRET));
    let crm = conns
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "crm")
        .cloned()
        .expect("crm listed");
    assert_eq!(crm["has_secret"], true, "{crm}");
    let servers = alice
        .mandate(&["--json", "team", "mcp-servers"])
        .ok()
        .json();
    assert!(
        servers
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "docs"),
        "{servers}"
    );

    // Each change names alice; the credentials are nowhere in the trail.
    let evs = events(&team, "t1.jsonl");
    for action in ["connection.added", "mcp.server_added"] {
        let e = evs
            .iter()
            .find(|e| e["action"] == action)
            .unwrap_or_else(|| panic!("{action} audited"));
        assert_eq!(actor_name(e), "alice", "{e}");
    }
    let denied: Vec<&Value> = evs
        .iter()
        .filter(|e| e["action"] == "team.request_denied" && actor_name(e) == "bob")
        .collect();
    assert_eq!(
        denied.len(),
        3,
        "each of bob's three attempts audited: {denied:?}"
    );
    let trail = std::fs::read_to_string(team.path("t1.jsonl")).unwrap();
    assert!(!trail.contains(SECRET) && !trail.contains(MCP_SECRET));

    // Both machines cosign the grown log (sync needs no URL once joined); the exported PDF
    // carries both cosignatures, each checked with that machine's key.
    for desk in [&alice, &bob] {
        let synced = desk
            .mandate(&["--json", "team", "witness", "sync"])
            .ok()
            .json();
        assert!(synced["size"].as_u64().unwrap() > synced["previous_size"].as_u64().unwrap());
    }
    // Cosignatures alone do not make a new checkpoint: witnesses syncing again and again
    // leave a quiet log as it is (each cosignature used to call for the next, forever).
    let quiet: Vec<u64> = (0..3)
        .map(|_| {
            alice.mandate(&["--json", "team", "witness", "sync"]).ok();
            bob.mandate(&["--json", "team", "witness", "sync"])
                .ok()
                .json()["size"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(quiet.windows(2).all(|w| w[0] == w[1]), "{quiet:?}");
    let pdf = team.path("team-report.pdf");
    team.mandate(&[
        "audit",
        "export",
        "--format",
        "pdf",
        "--out",
        &path_str(&pdf),
    ])
    .ok();
    for desk in [&alice, &bob] {
        let vkey = desk
            .mandate(&["--json", "team", "witness", "key"])
            .ok()
            .json()["vkey"]
            .as_str()
            .unwrap()
            .to_string();
        let name = vkey.split('+').next().unwrap().to_string();
        let verified = desk
            .mandate(&["audit", "verify", &path_str(&pdf), "--witness", &vkey])
            .ok();
        assert!(
            verified
                .stdout
                .contains(&format!("witness {name} cosigned the checkpoint of")),
            "{}",
            verified.stdout
        );
    }

    // The server goes down: a member's command says the team server did not answer (exit 8),
    // never the advice meant for this computer's own endpoint (start `mandate serve`).
    server.kill_9();
    let down = bob.mandate(&["team", "whoami"]);
    assert_eq!(down.code, 8, "{}", down.stderr);
    assert!(
        down.stderr.contains("did not answer") && !down.stderr.contains("mandate serve"),
        "{}",
        down.stderr
    );
}
