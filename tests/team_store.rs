//! Several processes writing to one store at once, with the real binary: `mandate serve`
//! answering token requests as fast as clients send them while a person's `mandate` commands
//! change the registry. On SQLite the processes share one data folder (one endpoint per folder);
//! on PostgreSQL (when `MANDATE_TEST_POSTGRES` names a server) two `mandate serve` processes on
//! two data folders share one database, as two team-server instances do.
//!
//! After the load: `mandate audit verify` passes from every data folder (one strictly linear
//! chain: every writer took the store's writer lock), every token a client received has its
//! `token.issued` event, and a suspension made through one process is refused by the other
//! endpoint on its next request.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::SigningKey;
use mandate_core::audit::Actor;
use mandate_core::keys;
use mandate_core::secret::MemoryKeychain;
use mandate_core::store::testing::TestStore;
use mandate_core::{Mandate, OpenOptions};
use serde_json::json;

use crate::endpoint::{ASSERTION_TYPE, claims_of, enc, now, sign, try_http};
use crate::fixture::Env;

const LOAD_AGENT: &str = "load-agent";

/// A running `mandate serve` on `data_dir` and the port it printed.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(env: &Env, data_dir: &Path) -> Server {
        let mut child = env
            .cmd(&["serve", "--port", "0", "--no-rate-limit"])
            .env("MANDATE_DATA_DIR", data_dir)
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
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = out.read_to_end(&mut sink);
        });
        Server { child, port }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One token request for `LOAD_AGENT` at `port`: the token's `jti`, or the error code.
fn request(port: u16, key: &SigningKey, jti: &str) -> Result<String, String> {
    let kid = keys::thumbprint(&key.verifying_key());
    let t = now();
    let assertion = sign(
        &json!({"alg": "EdDSA", "typ": "JWT", "kid": kid}),
        &json!({
            "iss": LOAD_AGENT, "sub": LOAD_AGENT,
            "aud": format!("http://127.0.0.1:{port}/oauth2/token"),
            "iat": t, "exp": t + 60, "jti": jti,
        }),
        key,
    );
    let body = format!(
        "grant_type=client_credentials&client_assertion_type={}&client_assertion={assertion}",
        enc(ASSERTION_TYPE)
    );
    let r = try_http(
        port,
        "POST",
        "/oauth2/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &body,
    )
    .map_err(|e| e.to_string())?;
    let v: serde_json::Value = serde_json::from_str(&r.body).map_err(|e| e.to_string())?;
    match v["access_token"].as_str() {
        Some(token) if r.status == 200 => {
            Ok(claims_of(token)["jti"].as_str().unwrap_or_default().into())
        }
        _ => Err(v["error"].as_str().unwrap_or("no error code").to_string()),
    }
}

/// The `jti` of every `token.issued` event, read through the core (either store).
fn issued_jtis(env: &Env, data_dir: &Path) -> HashSet<String> {
    let mut opts = OpenOptions::new(
        data_dir,
        Arc::new(MemoryKeychain::new()),
        Actor::app("test", "reader"),
    );
    if let Some(url) = &env.database {
        opts = opts.database(mandate_core::store::DatabaseUrl::parse(url).unwrap());
    }
    let m = Mandate::open(opts).unwrap();
    m.audit_events(None, 1_000_000, None)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "token.issued")
        .filter_map(|e| e.details["jti"].as_str().map(String::from))
        .collect()
}

fn load_key(env: &Env) -> SigningKey {
    let key_file = env.dir.path().join("load.jwk");
    env.run(&[
        "agent",
        "add",
        LOAD_AGENT,
        "--owner",
        "founder",
        "--purpose",
        "load from two endpoints",
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
    SigningKey::from_bytes(&d)
}

#[test]
fn processes_writing_at_once_keep_one_chain_and_every_token_audited() {
    // SQLite always; PostgreSQL as well when a server is named.
    let pg = mandate_core::store::testing::postgres_server().map(|s| TestStore::postgres(&s));
    let mut stores: Vec<Option<&TestStore>> = vec![None];
    if let Some(s) = &pg {
        stores.push(Some(s));
    }
    for store in stores {
        let env = match store {
            Some(s) => Env::with_database(s.database_url.as_deref().unwrap()),
            None => Env::new(),
        };
        let which = if env.database.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        };
        env.seed();
        let key = Arc::new(load_key(&env));
        // One endpoint per data folder; a second data folder on the same database is a second
        // instance (SQLite has one database per folder, so one endpoint).
        let mut folders: Vec<PathBuf> = vec![env.data_dir()];
        if env.database.is_some() {
            folders.push(env.dir.path().join("data-b"));
        }
        let servers: Vec<Server> = folders.iter().map(|d| Server::start(&env, d)).collect();
        let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();

        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut threads = Vec::new();
        for (i, &port) in ports.iter().cycle().take(4).enumerate() {
            let (key, stop, received) = (key.clone(), stop.clone(), received.clone());
            threads.push(std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    match request(port, &key, &format!("two-{i}-{n}")) {
                        Ok(jti) => received.lock().unwrap().push(jti),
                        Err(e) => panic!("a token request at port {port} failed: {e}"),
                    }
                }
            }));
        }
        // A person's commands, each its own process and write transaction, meanwhile.
        let started = Instant::now();
        let mut members = 0;
        while started.elapsed() < Duration::from_secs(3) || received.lock().unwrap().len() < 100 {
            members += 1;
            env.run(&["member", "add", &format!("member-{members}")])
                .ok();
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{which}: too slow"
            );
        }
        stop.store(true, Ordering::SeqCst);
        for t in threads {
            t.join().expect("a client thread panicked");
        }
        let received = received.lock().unwrap().clone();

        // One chain, verified from every data folder (each keeps its own checkpoint file).
        for d in &folders {
            let v = env
                .cmd(&["--json", "audit", "verify"])
                .env("MANDATE_DATA_DIR", d)
                .output()
                .unwrap();
            let out = String::from_utf8_lossy(&v.stdout);
            assert!(
                v.status.success(),
                "{which}: {out}\n{}",
                String::from_utf8_lossy(&v.stderr)
            );
            let report: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert!(
                report["problems"].as_array().unwrap().is_empty(),
                "{which}: {out}"
            );
        }
        // Every token a client received is in the trail.
        let issued = issued_jtis(&env, &folders[0]);
        let missing: Vec<&String> = received.iter().filter(|j| !issued.contains(*j)).collect();
        assert!(
            missing.is_empty(),
            "{which}: {} of {} tokens have no token.issued event",
            missing.len(),
            received.len()
        );
        assert!(received.len() >= 100, "{which}: {} tokens", received.len());
        eprintln!(
            "{which}: {} tokens from {} endpoint(s) and {members} members added by another process",
            received.len(),
            ports.len()
        );

        // A suspension made through one process refuses the next request at every endpoint.
        env.run(&["agent", "suspend", LOAD_AGENT, "--reason", "load test over"])
            .ok();
        for &port in &ports {
            let err = request(port, &key, &format!("after-{port}")).unwrap_err();
            assert_eq!(err, "invalid_client", "{which}: port {port}");
        }
        drop(servers);
    }
}
