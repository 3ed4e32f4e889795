//! Interoperability proven by others' code, against a real `mandate serve` process and the
//! real keychain: Python Authlib and Node openid-client, each with its own default
//! `private_key_jwt` (Authlib: one-hour assertions to the URL called; openid-client: 60 s to the
//! issuer), obtain, introspect and revoke tokens and verify them through the JWKS with stock
//! JWT libraries (PyJWT, jose); `mandate token` prints a usable token; revoking the agent
//! makes the very next introspection inactive and the next token request `invalid_client`; and the example MCP-style resource server accepts Mandate tokens,
//! checking audience and scope. Dependencies come from `tests/interop/setup.sh` (cached).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::endpoint::{claims_of, http};
use crate::fixture::{Env, bin};

/// A child process we started, killed when the test ends (by its own handle).
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// Install (once, cached) and return the venv's python.
pub fn python() -> String {
    let out = Command::new(interop_dir().join("setup.sh"))
        .output()
        .expect("setup.sh");
    assert!(
        out.status.success(),
        "setup.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Start `mandate serve --port 0` and return it with the issuer URL it prints.
pub fn serve(env: &Env) -> (Running, String) {
    let mut child = env
        .cmd(&["serve", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("mandate serve");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("Listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    (Running(child), url)
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

pub fn run_json(cmd: &mut Command) -> (bool, Value) {
    let out = cmd.output().expect("run client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "client output is not JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), v)
}

pub fn audit_actions(env: &Env) -> Vec<String> {
    let o = crate::fixture::sqlite3(env.db_path())
        .arg("SELECT action || ':' || decision FROM audit_events ORDER BY seq")
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn authlib_and_openid_client_with_their_default_assertions_get_tokens_and_revocation_bites() {
    let env = Env::new();
    env.seed();
    let dir = env.dir.path();
    for (agent, file) in [
        ("interop-agent", "interop.jwk"),
        ("checker-agent", "checker.jwk"),
    ] {
        let key = dir.join(file);
        env.run(&[
            "agent",
            "add",
            agent,
            "--owner",
            "founder",
            "--purpose",
            "interop test",
            "--scope",
            "github:repo.read",
            "--generate-key",
            "--key-file",
            key.to_str().unwrap(),
            "--key-format",
            "jwk",
        ])
        .ok();
    }
    let py = python();
    let (_server, issuer) = serve(&env);
    let key = dir.join("interop.jwk");

    // Python: Authlib's private_key_jwt as it ships (one-hour assertions, each addressed to
    // the endpoint it is sent to: token, introspection, revocation), PyJWT verification.
    let (ok, v) = run_json(
        Command::new(&py)
            .arg(interop_dir().join("authlib_client.py"))
            .args([
                &issuer,
                "interop-agent",
                key.to_str().unwrap(),
                "github:repo.read",
            ])
            .env("REVOKE", "1"),
    );
    assert!(ok, "{v}");
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["typ"], "at+jwt");
    assert_eq!(v["claims"]["sub"], "interop-agent");
    assert_eq!(v["claims"]["client_id"], "interop-agent");
    assert_eq!(v["claims"]["scope"], "github:repo.read");
    assert_eq!(v["claims"]["aud"], "https://api.github.com");
    assert_eq!(v["introspection"]["active"], true, "{v}");
    assert_eq!(v["revocation_status"], 200, "{v}");
    assert_eq!(v["after_revocation"], serde_json::json!({"active": false}));
    // The library's defaults were what Mandate accepted.
    let sent = v["assertions"].as_array().unwrap();
    let auds: Vec<&str> = sent.iter().map(|a| a["aud"].as_str().unwrap()).collect();
    assert_eq!(
        auds,
        [
            format!("{issuer}/oauth2/token"),
            format!("{issuer}/oauth2/introspect"),
            format!("{issuer}/oauth2/revoke"),
            format!("{issuer}/oauth2/introspect"),
        ],
        "{v}"
    );
    assert!(sent.iter().all(|a| a["lifetime"] == 3600), "{v}");

    // Node: openid-client as it ships (60 s assertions to the issuer, alg Ed25519), jose JWKS
    // verification, openid-client introspection.
    let token_file = dir.join("token.txt");
    let (ok, v) = run_json(
        Command::new("node")
            .arg(interop_dir().join("node/client.mjs"))
            .args([&issuer, "interop-agent", key.to_str().unwrap()])
            .env("TOKEN_OUT", &token_file),
    );
    assert!(ok, "{v}");
    assert_eq!(v["claims"]["iss"], issuer.as_str());
    assert_eq!(v["introspection"]["active"], true);

    // The credential helper prints only a token.
    let out = env.run(&["token", "billing-report-agent"]).ok();
    let token = out.stdout.trim();
    assert_eq!(token.split('.').count(), 3, "{}", out.stdout);
    assert_eq!(claims_of(token)["sub"], "billing-report-agent");

    // Revoking the agent: the very next introspection is inactive, the next token request is
    // invalid_client, and every step is in the audit trail.
    env.run(&[
        "agent",
        "revoke",
        "interop-agent",
        "--reason",
        "interop test",
    ])
    .ok();
    let (ok, v) = run_json(
        Command::new("node")
            .arg(interop_dir().join("node/introspect.mjs"))
            .args([
                &issuer,
                "checker-agent",
                dir.join("checker.jwk").to_str().unwrap(),
            ])
            .arg(&token_file),
    );
    assert!(ok, "{v}");
    assert_eq!(v["body"], serde_json::json!({"active": false}));
    let (ok, v) = run_json(
        Command::new("node")
            .arg(interop_dir().join("node/client.mjs"))
            .args([&issuer, "interop-agent", key.to_str().unwrap()]),
    );
    assert!(!ok);
    assert_eq!(
        (v["status"].as_i64(), v["error"].as_str()),
        (Some(401), Some("invalid_client")),
        "{v}"
    );
    // The 401's challenge, parsed by openid-client's own WWW-Authenticate parser.
    assert_eq!(v["scheme"], "private_key_jwt", "{v}");
    assert!(
        v["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("revoked")),
        "{v}"
    );
    let actions = audit_actions(&env);
    for want in [
        "token.issued:allow",
        "agent.revoked:allow",
        "token.introspected_inactive:deny",
        "token.denied:deny",
    ] {
        assert!(
            actions.iter().any(|a| a == want),
            "{want} missing from {actions:?}"
        );
    }
    let _ = std::fs::remove_file(token_file);
}

#[test]
fn example_resource_server_checks_audience_and_scope() {
    let env = Env::new();
    env.seed();
    let rs_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let resource = format!("http://127.0.0.1:{rs_port}");
    env.run(&[
        "connection",
        "add",
        "notes",
        "--base-url",
        &resource,
        "--action",
        "read=GET:/notes",
        "--action",
        "write=POST:/notes",
    ])
    .ok();
    for (agent, scope) in [
        ("notes-agent", "notes:read"),
        ("notes-writer", "notes:write"),
    ] {
        env.run(&[
            "agent",
            "add",
            agent,
            "--owner",
            "founder",
            "--purpose",
            "notes",
            "--scope",
            scope,
            "--scope",
            "github:repo.read",
            "--generate-key",
        ])
        .ok();
    }
    let py = python();
    let (_server, issuer) = serve(&env);
    let mut rs = Command::new(&py)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/resource-server/server.py"))
        .env("MANDATE_ISSUER", &issuer)
        .env("RESOURCE", &resource)
        .env("REQUIRED_SCOPE", "notes:read")
        .stdout(Stdio::piped())
        .spawn()
        .expect("resource server");
    let mut line = String::new();
    BufReader::new(rs.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _rs = Running(rs);
    assert!(line.contains("resource server"), "{line}");

    // No token: 401 pointing at the protected resource metadata, which names Mandate.
    let r = http(rs_port, "GET", "/notes", &[], "");
    assert_eq!(r.status, 401);
    let www = r.header("www-authenticate").unwrap().to_string();
    assert!(
        www.contains(&format!(
            "resource_metadata=\"{resource}/.well-known/oauth-protected-resource\""
        )),
        "{www}"
    );
    let md = http(
        rs_port,
        "GET",
        "/.well-known/oauth-protected-resource",
        &[],
        "",
    )
    .json();
    assert_eq!(md["authorization_servers"][0], issuer.as_str());
    assert_eq!(md["resource"], resource.as_str());

    let bearer = |agent: &str, aud: &str| {
        let t = env
            .run(&["token", agent, "--aud", aud])
            .ok()
            .stdout
            .trim()
            .to_string();
        format!("Bearer {t}")
    };
    let _ = port_of(&issuer);
    // Right audience and scope: 200.
    let r = http(
        rs_port,
        "GET",
        "/notes",
        &[("Authorization", &bearer("notes-agent", "notes"))],
        "",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["caller"], "notes-agent");
    // Another audience: 401 invalid_token.
    let r = http(
        rs_port,
        "GET",
        "/notes",
        &[("Authorization", &bearer("notes-agent", "github"))],
        "",
    );
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );
    // Right audience, missing scope: 403 insufficient_scope.
    let r = http(
        rs_port,
        "GET",
        "/notes",
        &[("Authorization", &bearer("notes-writer", "notes"))],
        "",
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("insufficient_scope")
    );
    let _ = bin("mandate");
}

/// A sub-agent's token names its parents in `mandate_parents`, and stock libraries that know
/// nothing of the claim (Authlib to get it, PyJWT to verify it through the JWKS) accept it.
#[test]
fn a_sub_agents_token_names_its_parents_and_verifies_with_pyjwt() {
    let env = Env::new();
    env.seed();
    let key = env.dir.path().join("helper.jwk");
    env.run(&[
        "agent",
        "add",
        "report-helper",
        "--owner",
        "founder",
        "--purpose",
        "helps the billing report",
        "--parent",
        "billing-report-agent",
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
    let (_server, issuer) = serve(&env);
    let (ok, v) = run_json(
        Command::new(&py)
            .arg(interop_dir().join("authlib_client.py"))
            .args([
                &issuer,
                "report-helper",
                key.to_str().unwrap(),
                "github:repo.read",
            ]),
    );
    assert!(ok, "{v}");
    assert_eq!(v["claims"]["sub"], "report-helper");
    assert_eq!(
        v["claims"]["mandate_parents"],
        serde_json::json!(["billing-report-agent"])
    );
}
