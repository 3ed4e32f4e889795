//! Crash safety with real processes: the real `mandate serve` binary, on a real data folder and
//! the real keychain, is killed with SIGKILL at a random moment while several clients request
//! tokens as fast as they can, then restarted, several times over. After every kill,
//! `mandate audit verify` passes and every access token a client actually received has its
//! `token.issued` event in the store (SECURITY.md: the issuance audit event is committed before
//! the response). The random seed is printed; set `MANDATE_CRASH_SEED` to replay a run.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read as _};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::SigningKey;
use mandate_core::keys;
use serde_json::json;

use crate::endpoint::{ASSERTION_TYPE, claims_of, enc, now, sign, try_http};
use crate::fixture::{Env, bin};

/// The agent whose key the test holds (written once to a key file), driven in-process.
const FAST_AGENT: &str = "load-agent";
/// The agent whose key is in the keychain, driven through `mandate token`.
const KEYCHAIN_AGENT: &str = "billing-report-agent";
const ROUNDS: usize = 8;
const FAST_CLIENTS: usize = 3;

/// A small deterministic generator (xorshift64*), so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A running `mandate serve` and the port it printed.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(env: &Env) -> Server {
        let mut child = env
            .cmd(&["serve", "--port", "0", "--no-rate-limit"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mandate serve");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let port = line
            .trim()
            .strip_prefix("Listening on http://127.0.0.1:")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from serve: {line:?}"));
        // Keep draining stdout so the server never blocks or dies on a closed pipe.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = out.read_to_end(&mut sink);
        });
        Server { child, port }
    }

    /// SIGKILL (what `Child::kill` sends on Unix): no shutdown handler runs.
    fn kill_9(mut self) {
        self.child.kill().expect("kill -9 the server");
        let status = self.child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(status.signal(), Some(9), "the server died of SIGKILL");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the clients received, shared between their threads.
#[derive(Default)]
struct Received {
    jtis: Mutex<Vec<String>>,
    /// Tokens received in the current round (reset before each).
    round: AtomicUsize,
}

impl Received {
    fn add(&self, token: &str) {
        let jti = claims_of(token)["jti"]
            .as_str()
            .expect("an access token has a jti")
            .to_string();
        self.jtis.lock().unwrap().push(jti);
        self.round.fetch_add(1, Ordering::SeqCst);
    }
}

/// Request tokens for `FAST_AGENT` until `stop`, recording each one fully received.
fn fast_client(port: u16, key: &SigningKey, id: usize, stop: &AtomicBool, got: &Received) {
    let kid = keys::thumbprint(&key.verifying_key());
    let aud = format!("http://127.0.0.1:{port}/oauth2/token");
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let t = now();
        let assertion = sign(
            &json!({"alg": "EdDSA", "typ": "JWT", "kid": kid}),
            &json!({
                "iss": FAST_AGENT, "sub": FAST_AGENT, "aud": aud, "iat": t, "exp": t + 60,
                "jti": format!("crash-{port}-{id}-{n}"),
            }),
            key,
        );
        let body = format!(
            "grant_type=client_credentials&client_assertion_type={}&client_assertion={assertion}",
            enc(ASSERTION_TYPE)
        );
        let Ok(r) = try_http(
            port,
            "POST",
            "/oauth2/token",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            &body,
        ) else {
            continue; // the server is gone: refused or reset
        };
        // A response cut off by the kill is not a token the client received.
        if r.status == 200
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&r.body)
            && let Some(token) = v["access_token"].as_str()
        {
            got.add(token);
        }
    }
}

/// Request tokens for `KEYCHAIN_AGENT` with `mandate token` (its key is in the keychain).
fn cli_client(env_vars: &[(String, String)], stop: &AtomicBool, got: &Received) {
    while !stop.load(Ordering::SeqCst) {
        let out = Command::new(bin("mandate"))
            .args(["token", KEYCHAIN_AGENT])
            .envs(env_vars.iter().map(|(k, v)| (k, v)))
            .env_remove("MANDATE_ACTOR")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && token.split('.').count() == 3 {
            got.add(&token);
        }
    }
}

/// The `jti` of every `token.issued` event in the store, read with the sqlite3 tool.
fn issued_jtis(env: &Env) -> HashSet<String> {
    let o = Command::new("sqlite3")
        .arg(env.db_path())
        .arg(
            "SELECT json_extract(CAST(body AS TEXT), '$.details.jti') FROM audit_events \
             WHERE action = 'token.issued' AND decision = 'allow'",
        )
        .output()
        .expect("sqlite3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn kill_9_mid_load_loses_no_issued_token_and_the_trail_verifies() {
    let env = Env::new();
    env.seed(); // billing-report-agent, key in the keychain
    let key_file = env.dir.path().join("load.jwk");
    env.run(&[
        "agent",
        "add",
        FAST_AGENT,
        "--owner",
        "founder",
        "--purpose",
        "crash test load",
        "--scope",
        "github:repo.read",
        "--generate-key",
        "--key-file",
        key_file.to_str().unwrap(),
        "--key-format",
        "jwk",
    ])
    .ok();
    let jwk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
    let d: [u8; 32] = B64
        .decode(jwk["d"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let key = Arc::new(SigningKey::from_bytes(&d));
    let env_vars: Arc<Vec<(String, String)>> = Arc::new(vec![
        (
            "MANDATE_DATA_DIR".into(),
            env.data_dir().to_string_lossy().into_owned(),
        ),
        ("MANDATE_KEYCHAIN_SERVICE".into(), env.service.clone()),
    ]);

    let seed = std::env::var("MANDATE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let mut rng = Rng(seed);
    let got = Arc::new(Received::default());
    let started = Instant::now();

    for round in 1..=ROUNDS {
        let ctx = format!("round {round}, MANDATE_CRASH_SEED={seed}");
        let server = Server::start(&env);
        let port = server.port;
        got.round.store(0, Ordering::SeqCst);
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for id in 0..FAST_CLIENTS {
            let (key, stop, got) = (key.clone(), stop.clone(), got.clone());
            threads.push(std::thread::spawn(move || {
                fast_client(port, &key, id, &stop, &got)
            }));
        }
        {
            let (vars, stop, got) = (env_vars.clone(), stop.clone(), got.clone());
            threads.push(std::thread::spawn(move || cli_client(&vars, &stop, &got)));
        }
        // Wait until tokens flow, then kill at a random moment under full load.
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.round.load(Ordering::SeqCst) < 20 {
            assert!(Instant::now() < deadline, "{ctx}: no tokens were issued");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rng.below(800)));
        server.kill_9();
        stop.store(true, Ordering::SeqCst);
        for t in threads {
            t.join().expect("a client thread panicked");
        }

        // The trail verifies after the crash...
        let v = env.run(&["--json", "audit", "verify"]);
        assert_eq!(v.code, 0, "{ctx}: {}\n{}", v.stderr, v.stdout);
        let report = v.json();
        assert!(report["problems"].as_array().unwrap().is_empty(), "{ctx}");
        // ...and holds every token any client received, in this round and before.
        let issued = issued_jtis(&env);
        let received = got.jtis.lock().unwrap().clone();
        let missing: Vec<&String> = received.iter().filter(|j| !issued.contains(*j)).collect();
        assert!(
            missing.is_empty(),
            "{ctx}: {} of {} received tokens have no token.issued event, e.g. {:?}",
            missing.len(),
            received.len(),
            missing.iter().take(3).collect::<Vec<_>>()
        );
        eprintln!(
            "{ctx}: {} tokens received this round, {} in all, {} events in the trail",
            got.round.load(Ordering::SeqCst),
            received.len(),
            report["events"]
        );
    }
    // Every jti is distinct (no token was counted twice), and the restarted server still works.
    let received = got.jtis.lock().unwrap().clone();
    assert_eq!(
        received.iter().collect::<HashSet<_>>().len(),
        received.len()
    );
    let server = Server::start(&env);
    let t = env.run(&["token", KEYCHAIN_AGENT]).ok();
    assert!(
        issued_jtis(&env).contains(claims_of(t.stdout.trim())["jti"].as_str().unwrap()),
        "a token issued after the last restart is in the trail"
    );
    drop(server);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the crash test took {:?}",
        started.elapsed()
    );
}
