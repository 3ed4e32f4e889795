//! What a new user's walk and about 200 hostile requests found at the endpoint and in the CLI
//! (issue 17, part 5), each test named after what broke. In-process endpoint tests use the
//! `endpoint` fixture (real server on 127.0.0.1:0, real SQLite); CLI tests run the real
//! `mandate` binary with the real keychain (`scripts/with-keyring`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::endpoint::*;
use crate::fixture::Env;
use crate::interop::Running;

// ----- the endpoint ---------------------------------------------------------------------------

/// Authlib's `PrivateKeyJWT` signs assertions valid for 3600 s; the 5-minute cap refused every
/// stock Authlib client. Such an assertion works once, and its `jti` stays refused for its
/// hour, also after a restart.
#[test]
fn an_authlib_default_one_hour_assertion_is_accepted_once_and_stays_a_replay_after_restart() {
    let mut ep = Endpoint::start();
    let t = now();
    let hour = |ep: &Endpoint, jti: &str| {
        ep.assertion_with(AGENT, |_, c| {
            c["iat"] = json!(t);
            c["exp"] = json!(t + 3600);
            c["jti"] = json!(jti);
        })
    };
    let body = ep.form(&hour(&ep, "authlib-hour"), &[]);
    let r = ep.post_form("/oauth2/token", &[], &body);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = ep.post_form("/oauth2/token", &[], &body);
    assert_eq!((r.status, r.error().as_str()), (401, "invalid_client"));
    assert!(r.body.contains("replay"), "{}", r.body);
    ep.restart();
    let r = ep.post_form(
        "/oauth2/token",
        &[],
        &ep.form(&hour(&ep, "authlib-hour"), &[]),
    );
    assert_eq!(
        (r.status, r.error().as_str()),
        (401, "invalid_client"),
        "the one-hour jti was forgotten by the restart: {}",
        r.body
    );
    // What stays refused: over an hour.
    let long = ep.assertion_with(AGENT, |_, c| {
        c["iat"] = json!(t);
        c["exp"] = json!(t + 2 * 3600);
    });
    let r = ep.post_form("/oauth2/token", &[], &ep.form(&long, &[]));
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("over one hour"), "{}", r.body);
}

/// Authlib signs introspection assertions with the introspection URL as `aud` (and a revocation
/// one with the revocation URL): both were refused as foreign audiences.
#[test]
fn an_assertion_for_the_introspection_or_revocation_url_is_accepted_and_a_foreign_one_is_not() {
    let ep = Endpoint::start();
    let token = ep.token(AGENT, &[]);
    let body = |aud: &str| {
        let a = ep.assertion_with(AGENT, |_, c| c["aud"] = json!(aud));
        format!(
            "client_assertion_type={}&client_assertion={a}&token={token}",
            "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
        )
    };
    let introspection = format!("{}/oauth2/introspect", ep.issuer());
    let r = ep.post_form("/oauth2/introspect", &[], &body(&introspection));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["active"], true);
    // Strict otherwise: another server's introspection URL, another spelling of ours.
    for foreign in [
        "http://127.0.0.1:1/oauth2/introspect".to_string(),
        format!("http://localhost:{}/oauth2/introspect", ep.port),
        format!("{}/oauth2/introspect/", ep.issuer()),
    ] {
        let r = ep.post_form("/oauth2/introspect", &[], &body(&foreign));
        assert_eq!(r.status, 401, "{foreign}: {}", r.body);
    }
    let revocation = format!("{}/oauth2/revoke", ep.issuer());
    let r = ep.post_form("/oauth2/revoke", &[], &body(&revocation));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = ep.introspect(AGENT, &token);
    assert_eq!(r.json()["active"], false);
}

/// A 401 carried no `WWW-Authenticate`, which every 401 must (RFC 9110 §15.5.2).
#[test]
fn a_401_for_client_authentication_carries_a_challenge() {
    let ep = Endpoint::start();
    let r = ep.post_form("/oauth2/token", &[], "grant_type=client_credentials");
    assert_eq!(r.status, 401);
    let www = r.header("www-authenticate").expect("a challenge");
    assert!(
        www.starts_with("private_key_jwt realm=\"mandate\", error=\"invalid_client\""),
        "{www}"
    );
    assert!(www.contains("error_description=\""), "{www}");
    let r = ep.post_form("/oauth2/introspect", &[], "token=x");
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").is_some());
}

/// One grant under a connection's trust floor made a request without `scope` fail entirely.
/// Now it gets the grantable subset, and the response and the audit event say what was left
/// out; a scope or audience asked for by name is still refused.
#[test]
fn a_request_without_scope_gets_the_grantable_subset_and_names_what_a_trust_floor_held_back() {
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
    let r = ep.post_form("/oauth2/token", &[], &ep.form(&ep.assertion(AGENT), &[]));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["scope"], "github:issues.write github:repo.read");
    assert_eq!(v["withheld_scope"], "billing-db:invoices.read");
    let why = v["withheld_description"].as_str().unwrap();
    assert!(
        why.contains("PENDING") && why.contains("'billing-db' requires TRUSTED"),
        "{why}"
    );
    let c = claims_of(v["access_token"].as_str().unwrap());
    assert_eq!(c["aud"], GITHUB);
    let ev = &ep.m.audit_events(Some(AGENT), 1, None).unwrap()[0];
    assert_eq!(ev.action, "token.issued");
    assert_eq!(
        ev.details["withheld_scopes"][0]["scope"],
        "billing-db:invoices.read"
    );
    assert_eq!(ev.details["withheld_scopes"][0]["requires"], "TRUSTED");
    // Asked for by name (scope or audience): refused as before.
    for extra in [
        ("scope", "billing-db:invoices.read"),
        ("resource", "billing-db"),
    ] {
        let r = ep.post_form(
            "/oauth2/token",
            &[],
            &ep.form(&ep.assertion(AGENT), &[extra]),
        );
        assert_eq!(
            (r.status, r.error().as_str()),
            (400, "unauthorized_client"),
            "{extra:?}: {}",
            r.body
        );
    }
    // Nothing grantable at all: the floor is the answer, not "no grant".
    ep.m.edit_agent(
        AGENT,
        mandate_core::AgentEdit {
            remove_scopes: vec!["github:repo.read".into(), "github:issues.write".into()],
            ..Default::default()
        },
    )
    .unwrap();
    let r = ep.post_form("/oauth2/token", &[], &ep.form(&ep.assertion(AGENT), &[]));
    assert_eq!(
        (r.status, r.error().as_str()),
        (400, "unauthorized_client"),
        "{}",
        r.body
    );
}

/// A 405 came back with an empty body; every other refusal is RFC 6749 §5.2 JSON.
#[test]
fn a_405_answers_with_the_json_error_shape_and_an_allow_header() {
    let ep = Endpoint::start();
    for (method, path, allow) in [
        ("GET", "/oauth2/token", "POST"),
        ("DELETE", "/oauth2/revoke", "POST"),
        ("POST", "/.well-known/jwks.json", "GET"),
    ] {
        let r = ep.request(method, path, &[], "");
        assert_eq!(r.status, 405, "{method} {path}");
        assert_eq!(r.error(), "invalid_request", "{method} {path}: {}", r.body);
        assert!(
            r.json()["error_description"]
                .as_str()
                .unwrap()
                .contains(method),
            "{}",
            r.body
        );
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(
            r.header("allow").is_some_and(|a| a.contains(allow)),
            "{method} {path}: {:?}",
            r.headers
        );
    }
}

/// Raw bytes to the endpoint, the answer's status line and body.
fn raw(port: u16, request: &[u8]) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.lines().next().unwrap_or_default().to_string();
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

/// A malformed chunked body was answered "413: larger than 16 KiB".
#[test]
fn a_malformed_chunked_body_is_a_400_that_says_so_and_only_an_oversized_one_is_a_413() {
    let ep = Endpoint::start();
    let head = format!(
        "POST /oauth2/token HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: \
         application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        ep.port
    );
    let (status, body) = raw(ep.port, format!("{head}zz\r\nabc\r\n0\r\n\r\n").as_bytes());
    assert!(status.contains(" 400 "), "{status} {body}");
    assert!(body.contains("could not be read"), "{body}");
    assert!(!body.contains("16 KiB"), "{body}");
    let big = "a".repeat(17 * 1024);
    let (status, body) = raw(
        ep.port,
        format!("{head}{:x}\r\n{big}\r\n0\r\n\r\n", big.len()).as_bytes(),
    );
    assert!(status.contains(" 413 "), "{status} {body}");
    assert!(body.contains("16 KiB"), "{body}");
}

/// The endpoint signs a local client's nonce with the issuer key, for a nonce of one shape.
#[test]
fn the_endpoint_proves_it_holds_this_data_folders_issuer_key() {
    let ep = Endpoint::start();
    let nonce = mandate_core::oauth::endpoint_proof::new_nonce();
    let r = ep.request(
        "GET",
        &format!("/mandate/endpoint-proof?nonce={nonce}"),
        &[],
        "",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let proof: mandate_core::oauth::endpoint_proof::EndpointProof =
        serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        ep.m.check_endpoint_proof(&ep.issuer(), &nonce, &proof)
            .unwrap(),
        Ok(())
    );
    for bad in ["", "short", "a%0Ab"] {
        let r = ep.request(
            "GET",
            &format!("/mandate/endpoint-proof?nonce={bad}"),
            &[],
            "",
        );
        assert_eq!((r.status, r.error().as_str()), (400, "invalid_request"));
    }
}

// ----- the CLI ------------------------------------------------------------------------------

/// `mandate serve --port 0` on `env`; its process and port.
pub fn serve(env: &Env) -> (Running, u16) {
    let mut child = env
        .cmd(&["serve", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("mandate serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().rsplit(':').next().unwrap().parse().unwrap();
    (Running(child), port)
}

/// What a program squatting on a port does with a connection.
#[derive(Clone, Copy)]
enum Squatter {
    /// Answers 404 to everything.
    NotFound,
    /// Answers the proof request with a proof signed by a key of its own.
    Forges,
    /// Forwards everything to the real endpoint (Host rewritten), and its answers back.
    Relays(u16),
}

/// A fake listener on 127.0.0.1:0; everything clients send it is recorded.
fn squat(how: Squatter) -> (u16, Arc<Mutex<Vec<u8>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rec = seen.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { return };
            let rec = rec.clone();
            std::thread::spawn(move || match how {
                Squatter::Relays(real) => relay(c, port, real, rec),
                _ => {
                    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut buf = [0u8; 65536];
                    while let Ok(n) = c.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        rec.lock().unwrap().extend_from_slice(&buf[..n]);
                        let answer = match how {
                            Squatter::Forges => forged_proof(&buf[..n], port),
                            _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".into(),
                        };
                        if c.write_all(answer.as_bytes()).is_err() {
                            break;
                        }
                    }
                }
            });
        }
    });
    (port, seen)
}

/// A proof for the nonce in `request`, signed by a fresh key (not the issuer's).
fn forged_proof(request: &[u8], port: u16) -> String {
    let text = String::from_utf8_lossy(request);
    let nonce = text
        .split("nonce=")
        .nth(1)
        .and_then(|r| r.split([' ', '&']).next())
        .unwrap_or_default()
        .to_string();
    let key = mandate_core::keys::generate();
    let issuer = format!("http://127.0.0.1:{port}");
    let msg = mandate_core::oauth::endpoint_proof::message(&issuer, &nonce);
    let sig = ed25519_dalek::Signer::sign(&key, &msg);
    let body = json!({
        "issuer": issuer, "nonce": nonce,
        "kid": mandate_core::keys::thumbprint(&key.verifying_key()),
        "x": b64(key.verifying_key().as_bytes()), "signature": b64(&sig.to_bytes()),
    })
    .to_string();
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn relay(client: TcpStream, own: u16, real: u16, rec: Arc<Mutex<Vec<u8>>>) {
    let upstream = TcpStream::connect(("127.0.0.1", real)).unwrap();
    let (mut c_in, mut u_out) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    let (from, to) = (format!("127.0.0.1:{own}"), format!("127.0.0.1:{real}"));
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n) = c_in.read(&mut buf) {
            if n == 0 {
                break;
            }
            rec.lock().unwrap().extend_from_slice(&buf[..n]);
            let fixed = String::from_utf8_lossy(&buf[..n]).replace(&from, &to);
            if u_out.write_all(fixed.as_bytes()).is_err() {
                break;
            }
        }
    });
    let (mut u_in, mut c_out) = (upstream, client);
    let _ = std::io::copy(&mut u_in, &mut c_out);
}

/// `mandate token` and `mandate exec` sent a signed assertion to whatever listened on the port.
/// A squatter that answers nothing useful, one that forges a proof, and one that relays to the
/// real endpoint all get a nonce and nothing else; the client says why and exits 8.
#[test]
fn a_program_squatting_on_the_port_never_receives_an_assertion() {
    let env = Env::new();
    env.seed();
    let (_server, real) = serve(&env);
    // The real endpoint works, through the same check.
    let ok = env
        .run(&["token", "billing-report-agent", "--port", &real.to_string()])
        .ok();
    assert_eq!(ok.stdout.trim().split('.').count(), 3);
    for (how, why) in [
        (
            Squatter::NotFound,
            "answered the proof request with HTTP 404".to_string(),
        ),
        (
            Squatter::Forges,
            "not this data folder's issuer key".to_string(),
        ),
        (
            Squatter::Relays(real),
            format!("it says it serves http://127.0.0.1:{real}"),
        ),
    ] {
        let (port, seen) = squat(how);
        let r = env.run(&["token", "billing-report-agent", "--port", &port.to_string()]);
        assert_eq!(r.code, 8, "{}", r.stderr);
        assert!(
            r.stderr.contains("did not prove") && r.stderr.contains("nothing was sent"),
            "{}",
            r.stderr
        );
        assert!(r.stderr.contains(&why), "{why}: {}", r.stderr);
        let x = env.run(&[
            "exec",
            "billing-report-agent",
            "--port",
            &port.to_string(),
            "--",
            "true",
        ]);
        assert_eq!(x.code, 8, "{}", x.stderr);
        std::thread::sleep(Duration::from_millis(200));
        let got = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
        assert!(
            got.contains("/mandate/endpoint-proof?nonce="),
            "the squatter saw no proof request: {got}"
        );
        assert!(
            !got.contains("client_assertion") && !got.contains("eyJ"),
            "the squatter received an assertion: {got}"
        );
    }
}

/// A revoked agent was told its key was missing from the keychain (exit 5).
#[test]
fn a_revoked_agent_asking_for_a_token_is_told_it_is_revoked_with_exit_code_9() {
    let env = Env::new();
    env.seed();
    env.run(&[
        "agent",
        "revoke",
        "billing-report-agent",
        "--reason",
        "replaced",
    ])
    .ok();
    let r = env
        .run(&["token", "billing-report-agent"])
        .fails(9, "'billing-report-agent' is revoked");
    assert!(!r.stderr.contains("keychain"), "{}", r.stderr);
    let r = env.run(&["--json", "token", "billing-report-agent"]);
    assert_eq!(r.code, 9);
    let e: Value = serde_json::from_str(r.stderr.trim()).unwrap();
    assert_eq!(e["error"]["code"], "refused");
    env.run(&["exec", "billing-report-agent", "--", "true"])
        .fails(9, "is revoked");
    // Each refusal is on the record.
    let o = crate::fixture::sqlite3(env.db_path())
        .arg("SELECT count(*) FROM audit_events WHERE action = 'token.denied'")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "3");
}

/// `mandate token --json` printed the bare token.
#[test]
fn mandate_token_json_prints_the_token_response_and_what_a_floor_left_out() {
    let env = Env::new();
    env.seed();
    env.run(&[
        "connection",
        "add",
        "billing-db",
        "--base-url",
        "https://billing.internal",
        "--action",
        "invoices.read=GET:/invoices/**",
        "--trust-floor",
        "TRUSTED",
    ])
    .ok();
    env.run(&[
        "agent",
        "edit",
        "billing-report-agent",
        "--add-scope",
        "billing-db:invoices.read",
    ])
    .ok();
    let (_server, port) = serve(&env);
    let v = env
        .run(&["token", "billing-report-agent", "--json"])
        .ok()
        .json();
    assert_eq!(v["access_token"].as_str().unwrap().split('.').count(), 3);
    assert_eq!(v["token_type"], "Bearer");
    assert!(v["expires_in"].as_u64().unwrap() > 0);
    assert!(v["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v["scope"], "github:repo.read");
    assert_eq!(v["withheld_scope"], "billing-db:invoices.read");
    assert_eq!(v["issuer"], format!("http://127.0.0.1:{port}"));
    // Without --json: only the token on stdout, the note on stderr.
    let r = env.run(&["token", "billing-report-agent"]).ok();
    assert_eq!(r.stdout.trim().split('.').count(), 3);
    assert!(
        r.stderr.contains("left out billing-db:invoices.read"),
        "{}",
        r.stderr
    );
}

/// The database was created 0644 in a data folder that already existed.
#[cfg(unix)]
#[test]
fn every_file_in_an_existing_data_folder_is_the_owners_alone() {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let env = Env::new();
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(env.data_dir())
        .unwrap();
    env.seed();
    env.run(&["audit", "checkpoint"]).ok();
    let (_server, _port) = serve(&env);
    env.run(&["token", "billing-report-agent"]).ok();
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(env.data_dir()).unwrap() {
        let entry = entry.unwrap();
        if !entry.file_type().unwrap().is_file() {
            continue;
        }
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        let name = entry.file_name().to_string_lossy().into_owned();
        assert_eq!(mode, 0o600, "{name} is {mode:o}");
        checked.push(name);
    }
    for must in [
        "mandate.db",
        "mandate.db-wal",
        "mandate.db-shm",
        "serve.lock",
        "audit-checkpoint.txt",
    ] {
        assert!(
            checked.iter().any(|c| c == must),
            "{must} not in {checked:?}"
        );
    }
}
