//! Crash trials of the real `mandate serve`, shared by the integration test (`audit_crash`: a
//! few kill -9 trials on the debug build) and the reliability harness (`tests/reliability/`:
//! 100 kill -9 trials on a release build, run by `scripts/crash-trials`).
//!
//! One installation (a real data folder, the real keychain) serves every trial. In each, the
//! real server runs under mixed load from threads that each record what they were told:
//! tokens (in-process clients signing assertions with a key file, and `mandate token` with the
//! key in the keychain), introspections, revocations, broker calls to an upstream on loopback,
//! and registry changes from the `mandate` CLI. At a random moment the server is killed with
//! SIGKILL. It restarts and the trial checks, with the `sqlite3` tool and the CLI rather than
//! the code under test:
//! - `mandate audit verify` passes;
//! - every token a client received has its `token.issued` event, every inactive introspection
//!   answer its `token.introspected_inactive` event, every broker call answered 200 its
//!   `proxy.allowed` event, every acknowledged revocation its `token.revoked` event;
//! - every acknowledged revocation still holds (its row says revoked: the row is what the
//!   restarted server reads);
//! - every registry change the CLI acknowledged is still there.
//!
//! Each restart gets a new port, so a new issuer (`http://127.0.0.1:PORT`): tokens of an earlier
//! server lifetime are foreign to the restarted one (introspection says inactive "not a token of
//! this issuer", revocation answers 200 without revoking, as RFC 7009 asks). The clients
//! therefore only revoke and introspect tokens of the server they talk to, and inactive
//! introspections are matched by the token's SHA-256, which every such event records.
//!
//! The random seed is printed; `MANDATE_TRIALS_SEED` replays a run. What it is not: a power
//! cut (the OS keeps what a killed process wrote; simulated power loss is LazyFS's job in the
//! power-cut trials).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::SigningKey;
use mandate_core::keys;
use serde_json::{Value, json};

use crate::endpoint::{ASSERTION_TYPE, claims_of, enc, now, sign, try_http};
use crate::fixture::{Env, bin};

/// The agent whose key file the in-process clients sign with.
const LOAD_AGENT: &str = "load-agent";
/// The agent whose key is in the keychain, driven through `mandate token`.
const KEYCHAIN_AGENT: &str = "keychain-agent";

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub trials: usize,
    pub seed: u64,
    /// Tokens a trial waits for before it may kill (load is flowing).
    pub warmup_tokens: usize,
    /// The kill comes up to this long after warm-up.
    pub max_kill_delay: Duration,
    /// Print a line per trial.
    pub verbose: bool,
}

impl Options {
    /// `n` kill -9 trials with a seed from `MANDATE_TRIALS_SEED` or the clock.
    pub fn kill(n: usize) -> Self {
        Options {
            trials: n,
            seed: seed_from_env(),
            warmup_tokens: 20,
            max_kill_delay: Duration::from_millis(1500),
            verbose: true,
        }
    }
}

/// The seed from `MANDATE_TRIALS_SEED`, else from the clock.
pub fn seed_from_env() -> u64 {
    std::env::var("MANDATE_TRIALS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        })
}

/// What a run found.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub trials: usize,
    pub seed: u64,
    /// One sentence per failed check, naming the trial.
    pub failures: Vec<String>,
    /// Trials with at least one failed check.
    pub failed_trials: usize,
    /// From spawning the restarted server to its first answer.
    pub recoveries: Vec<Duration>,
    pub tokens: usize,
    pub introspections_inactive: usize,
    pub revocations: usize,
    pub proxied: usize,
    pub registry_changes: usize,
    pub events: u64,
}

impl Report {
    pub fn longest_recovery(&self) -> Duration {
        self.recoveries.iter().max().copied().unwrap_or_default()
    }

    pub fn to_json(&self) -> Value {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut r: Vec<f64> = self.recoveries.iter().map(|d| ms(*d)).collect();
        r.sort_by(f64::total_cmp);
        json!({
            "trials": self.trials,
            "seed": self.seed,
            "failed_trials": self.failed_trials,
            "failures": self.failures,
            "longest_recovery_ms": ms(self.longest_recovery()),
            "median_recovery_ms": r.get(r.len() / 2).copied().unwrap_or(0.0),
            "tokens": self.tokens,
            "introspections_inactive": self.introspections_inactive,
            "revocations": self.revocations,
            "proxied": self.proxied,
            "registry_changes": self.registry_changes,
            "events": self.events,
        })
    }
}

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
        self.next() % n.max(1)
    }
}

/// A loopback HTTP upstream for the broker: answers every request 200 `{}` and closes.
pub fn start_upstream() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\
                      Connection: close\r\n\r\n{}",
                );
            });
        }
    });
    port
}

/// Sets a trial's stop flag when dropped. A trial that panics (one of its assertions, say after
/// the keychain daemon crashed under it) would otherwise leave its seven client threads running
/// for the rest of the test binary: spawning `mandate` processes in a loop against a dead
/// server, they starved every other test of a 2-core CI machine until the run timed out.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A running `mandate serve`, its port and when it was spawned.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    /// Spawn and wait until it answers; returns the server and how long that took.
    fn start(env: &Env, log: &Path) -> (Server, Duration) {
        let t0 = Instant::now();
        let mut child = env
            .cmd(&["serve", "--port", "0", "--no-rate-limit"])
            .env("MANDATE_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                    .unwrap(),
            )
            .spawn()
            .expect("mandate serve");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let port = line
            .trim()
            .strip_prefix("Listening on http://127.0.0.1:")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line from serve: {line:?} (log: {})",
                    log.display()
                )
            });
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = out.read_to_end(&mut sink);
        });
        loop {
            if try_http(port, "GET", "/.well-known/jwks.json", &[], "")
                .is_ok_and(|r| r.status == 200)
            {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "the restarted server never answered"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        (Server { child, port }, t0.elapsed())
    }

    fn kill_9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the clients were told, over every trial.
#[derive(Default)]
struct Told {
    /// jti of every token received.
    tokens: Mutex<Vec<String>>,
    /// (jti, token) of tokens not yet revoked, for the other clients.
    pool: Mutex<Vec<(String, String)>>,
    /// (jti, token) of tokens whose revocation was acknowledged.
    revoked: Mutex<Vec<(String, String)>>,
    /// SHA-256 (hex) of tokens an introspection answered inactive.
    inactive: Mutex<Vec<String>>,
    /// (jti, token) of this trial's acknowledged revocations, which introspection then asks about.
    revoked_this_trial: Mutex<Vec<(String, String)>>,
    /// Paths of broker calls answered 200 with the upstream's body.
    proxied: Mutex<Vec<String>>,
    /// Agents created by the CLI (acknowledged), and those it then suspended.
    created: Mutex<Vec<String>>,
    suspended: Mutex<Vec<String>>,
    /// Tokens received in the current trial.
    this_trial: AtomicUsize,
}

impl Told {
    fn token(&self, token: &str) {
        let jti = claims_of(token)["jti"].as_str().unwrap().to_string();
        self.tokens.lock().unwrap().push(jti.clone());
        let mut pool = self.pool.lock().unwrap();
        pool.push((jti, token.to_string()));
        if pool.len() > 200 {
            pool.remove(0);
        }
        self.this_trial.fetch_add(1, Ordering::SeqCst);
    }

    fn pick(&self, n: u64) -> Option<(String, String)> {
        let pool = self.pool.lock().unwrap();
        (!pool.is_empty()).then(|| pool[(n as usize) % pool.len()].clone())
    }
}

/// Run `mandate ARGS`; its output.
fn cli(env_vars: &[(String, String)], args: &[&str]) -> Option<std::process::Output> {
    Command::new(bin("mandate"))
        .args(args)
        .envs(env_vars.iter().map(|(k, v)| (k, v)))
        .env_remove("MANDATE_ACTOR")
        .stdin(Stdio::null())
        .output()
        .ok()
}

struct Load {
    port: u16,
    key: Arc<SigningKey>,
    told: Arc<Told>,
    stop: Arc<AtomicBool>,
    counter: Arc<AtomicU64>,
    trial: usize,
}

impl Load {
    fn assertion(&self, aud: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let t = now();
        sign(
            &json!({"alg": "EdDSA", "typ": "JWT", "kid": keys::thumbprint(&self.key.verifying_key())}),
            &json!({
                "iss": LOAD_AGENT, "sub": LOAD_AGENT, "aud": aud, "iat": t, "exp": t + 60,
                "jti": format!("trial-{}-{}-{n}", std::process::id(), self.trial),
            }),
            &self.key,
        )
    }

    fn post(&self, path: &str, body: &str) -> Option<crate::endpoint::Resp> {
        try_http(
            self.port,
            "POST",
            path,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body,
        )
        .ok()
    }

    fn tokens(&self) {
        let aud = format!("http://127.0.0.1:{}/oauth2/token", self.port);
        while !self.stop.load(Ordering::SeqCst) {
            let body = format!(
                "grant_type=client_credentials&client_assertion_type={}&client_assertion={}",
                enc(ASSERTION_TYPE),
                self.assertion(&aud)
            );
            // A response cut off by the kill is not a token the client received.
            if let Some(r) = self.post("/oauth2/token", &body)
                && r.status == 200
                && let Ok(v) = serde_json::from_str::<Value>(&r.body)
                && let Some(t) = v["access_token"].as_str()
            {
                self.told.token(t);
            }
        }
    }

    fn authenticated(&self, token: &str) -> String {
        let aud = format!("http://127.0.0.1:{}/oauth2/token", self.port);
        format!(
            "client_assertion_type={}&client_assertion={}&token={}",
            enc(ASSERTION_TYPE),
            self.assertion(&aud),
            enc(token)
        )
    }

    fn introspections(&self) {
        let mut n = 0u64;
        while !self.stop.load(Ordering::SeqCst) {
            n += 7;
            // Every other question is about a token this trial revoked (answered inactive).
            let picked = if n.is_multiple_of(2) {
                let r = self.told.revoked_this_trial.lock().unwrap();
                (!r.is_empty()).then(|| r[(n as usize) % r.len()].clone())
            } else {
                self.told.pick(n)
            };
            let Some((_, token)) = picked else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            if let Some(r) = self.post("/oauth2/introspect", &self.authenticated(&token))
                && r.status == 200
                && let Ok(v) = serde_json::from_str::<Value>(&r.body)
                && v["active"] == json!(false)
            {
                let hash = mandate_core::oauth::token_hash(&token);
                self.told.inactive.lock().unwrap().push(hash);
            }
        }
    }

    fn revocations(&self) {
        let mut n = 0u64;
        while !self.stop.load(Ordering::SeqCst) {
            n += 13;
            std::thread::sleep(Duration::from_millis(3));
            let Some((jti, token)) = self.told.pick(n) else {
                continue;
            };
            if let Some(r) = self.post("/oauth2/revoke", &self.authenticated(&token))
                && r.status == 200
            {
                self.told.pool.lock().unwrap().retain(|(j, _)| *j != jti);
                (self.told.revoked_this_trial.lock().unwrap()).push((jti.clone(), token.clone()));
                self.told.revoked.lock().unwrap().push((jti, token));
            }
        }
    }

    fn broker(&self) {
        let mut n = 0u64;
        while !self.stop.load(Ordering::SeqCst) {
            n += 1;
            let Some((_, token)) = self.told.pick(n * 3) else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            let path = format!(
                "/proxy/github/repos/acme/t{}-{}-{n}",
                self.trial,
                std::process::id()
            );
            let auth = format!("Bearer {token}");
            if let Ok(r) = try_http(self.port, "GET", &path, &[("Authorization", &auth)], "")
                && r.status == 200
                && r.body == "{}"
            {
                let audited = path.strip_prefix("/proxy/github").unwrap().to_string();
                self.told.proxied.lock().unwrap().push(audited);
            }
        }
    }
}

fn cli_tokens(vars: &[(String, String)], told: &Told, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        if let Some(out) = cli(vars, &["token", KEYCHAIN_AGENT]) {
            let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && token.split('.').count() == 3 {
                told.token(&token);
            }
        }
    }
}

fn cli_registry(vars: &[(String, String)], told: &Told, stop: &AtomicBool, trial: usize) {
    let mut n: u32 = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let name = format!("churn-{trial}-{n}");
        let ok = cli(
            vars,
            &[
                "agent",
                "add",
                &name,
                "--owner",
                "founder",
                "--purpose",
                "registry churn",
                "--scope",
                "github:repo.read",
            ],
        )
        .is_some_and(|o| o.status.success());
        if ok {
            told.created.lock().unwrap().push(name.clone());
            if n.is_multiple_of(2)
                && cli(vars, &["agent", "suspend", &name, "--reason", "churn"])
                    .is_some_and(|o| o.status.success())
            {
                told.suspended.lock().unwrap().push(name);
            }
        }
    }
}

/// `sqlite3 DB SQL`, one line per row.
fn sql(db: &Path, query: &str) -> Vec<String> {
    let o = crate::fixture::sqlite3(db)
        .arg(query)
        .output()
        .expect("sqlite3");
    assert!(
        o.status.success(),
        "sqlite3: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(String::from)
        .collect()
}

fn set(db: &Path, query: &str) -> HashSet<String> {
    sql(db, query).into_iter().collect()
}

/// Every check of one trial; a sentence per failure.
fn check(env: &Env, told: &Told) -> (Vec<String>, u64) {
    let mut failures = Vec::new();
    let db = env.db_path();
    let v = env.run(&["--json", "audit", "verify"]);
    let events = serde_json::from_str::<Value>(&v.stdout)
        .ok()
        .and_then(|r| r["events"].as_u64())
        .unwrap_or(0);
    if v.code != 0 {
        failures.push(format!(
            "mandate audit verify failed (exit {}): {} {}",
            v.code,
            v.stdout.chars().take(400).collect::<String>(),
            v.stderr.chars().take(400).collect::<String>()
        ));
    }
    let mut missing = |what: &str, told: Vec<String>, have: HashSet<String>| {
        let lost: Vec<&String> = told.iter().filter(|j| !have.contains(*j)).collect();
        if !lost.is_empty() {
            failures.push(format!(
                "{} of {} {what} have no committed event, e.g. {:?}",
                lost.len(),
                told.len(),
                lost.iter().take(3).collect::<Vec<_>>()
            ));
        }
    };
    missing(
        "received tokens",
        told.tokens.lock().unwrap().clone(),
        set(
            &db,
            "SELECT json_extract(CAST(body AS TEXT), '$.details.jti') FROM audit_events \
             WHERE action = 'token.issued' AND decision = 'allow'",
        ),
    );
    missing(
        "inactive introspection answers",
        told.inactive.lock().unwrap().clone(),
        set(
            &db,
            "SELECT json_extract(CAST(body AS TEXT), '$.details.token_sha256') FROM audit_events \
             WHERE action = 'token.introspected_inactive'",
        ),
    );
    let revoked: Vec<String> = told
        .revoked
        .lock()
        .unwrap()
        .iter()
        .map(|(j, _)| j.clone())
        .collect();
    missing(
        "acknowledged revocations",
        revoked.clone(),
        set(
            &db,
            "SELECT json_extract(CAST(body AS TEXT), '$.target.id') FROM audit_events \
             WHERE action = 'token.revoked'",
        ),
    );
    missing(
        "broker calls answered 200",
        told.proxied.lock().unwrap().clone(),
        set(
            &db,
            "SELECT json_extract(CAST(body AS TEXT), '$.details.path') FROM audit_events \
             WHERE action = 'proxy.allowed'",
        ),
    );
    // Acknowledged revocations still hold: in the row, and at the restarted endpoint.
    let revoked_rows = set(
        &db,
        "SELECT jti FROM oauth_tokens WHERE revoked_at IS NOT NULL",
    );
    let undone: Vec<&String> = revoked
        .iter()
        .filter(|j| !revoked_rows.contains(*j))
        .collect();
    if !undone.is_empty() {
        failures.push(format!(
            "{} acknowledged revocations were undone, e.g. {:?}",
            undone.len(),
            undone.iter().take(3).collect::<Vec<_>>()
        ));
    }
    // Registry changes the CLI acknowledged.
    let agents: HashMap<String, String> = sql(&db, "SELECT name, status FROM agents")
        .into_iter()
        .filter_map(|l| {
            l.split_once('|')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        })
        .collect();
    let created = told.created.lock().unwrap().clone();
    let lost: Vec<&String> = created
        .iter()
        .filter(|a| !agents.contains_key(*a))
        .collect();
    if !lost.is_empty() {
        failures.push(format!(
            "{} acknowledged agents were lost, e.g. {:?}",
            lost.len(),
            lost.iter().take(3).collect::<Vec<_>>()
        ));
    }
    let unsuspended: Vec<String> = told
        .suspended
        .lock()
        .unwrap()
        .iter()
        .filter(|a| agents.get(*a).map(String::as_str) != Some("suspended"))
        .cloned()
        .collect();
    if !unsuspended.is_empty() {
        failures.push(format!(
            "{} acknowledged suspensions were lost, e.g. {:?}",
            unsuspended.len(),
            unsuspended.iter().take(3).collect::<Vec<_>>()
        ));
    }
    (failures, events)
}

/// Set up an installation, run the trials, report.
pub fn run(opts: &Options) -> Report {
    let env = Env::new();
    let work = env.dir.path().to_path_buf();
    let upstream = start_upstream();
    let base = format!("http://127.0.0.1:{upstream}");
    env.run(&["member", "add", "founder"]).ok();
    env.run(&[
        "connection",
        "add",
        "github",
        "--preset",
        "github",
        "--base-url",
        &base,
    ])
    .ok();
    env.run_stdin(
        &["connection", "set-secret", "github"],
        b"ghp_TRIALsecret0123456789",
    )
    .ok();
    let key_file = work.join("load.jwk");
    env.run(&[
        "agent",
        "add",
        LOAD_AGENT,
        "--owner",
        "founder",
        "--purpose",
        "trial load",
        "--scope",
        "github:repo.read",
        "--generate-key",
        "--key-file",
        key_file.to_str().unwrap(),
        "--key-format",
        "jwk",
    ])
    .ok();
    env.run(&[
        "agent",
        "add",
        KEYCHAIN_AGENT,
        "--owner",
        "founder",
        "--purpose",
        "trial load",
        "--scope",
        "github:repo.read",
        "--generate-key",
    ])
    .ok();
    let jwk: Value = serde_json::from_str(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
    let d: [u8; 32] = B64
        .decode(jwk["d"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let key = Arc::new(SigningKey::from_bytes(&d));
    let vars: Arc<Vec<(String, String)>> = Arc::new(vec![
        (
            "MANDATE_DATA_DIR".into(),
            env.data_dir().to_string_lossy().into_owned(),
        ),
        ("MANDATE_KEYCHAIN_SERVICE".into(), env.service.clone()),
    ]);
    let log = work.join("serve.log");
    let told = Arc::new(Told::default());
    let counter = Arc::new(AtomicU64::new(0));
    let mut rng = Rng(opts.seed);
    let mut report = Report {
        seed: opts.seed,
        ..Default::default()
    };
    let (mut server, _) = Server::start(&env, &log);
    for trial in 1..=opts.trials {
        told.this_trial.store(0, Ordering::SeqCst);
        // Tokens of the previous server lifetime name its port as issuer (see the module docs).
        told.pool.lock().unwrap().clear();
        told.revoked_this_trial.lock().unwrap().clear();
        let stop = Arc::new(AtomicBool::new(false));
        let _stop_on_panic = StopOnDrop(stop.clone());
        let load = Arc::new(Load {
            port: server.port,
            key: key.clone(),
            told: told.clone(),
            stop: stop.clone(),
            counter: counter.clone(),
            trial,
        });
        let mut threads = Vec::new();
        for role in 0..5 {
            let l = load.clone();
            threads.push(std::thread::spawn(move || match role {
                0 | 1 => l.tokens(),
                2 => l.introspections(),
                3 => l.revocations(),
                _ => l.broker(),
            }));
        }
        {
            let (vars, told, stop) = (vars.clone(), told.clone(), stop.clone());
            threads.push(std::thread::spawn(move || cli_tokens(&vars, &told, &stop)));
        }
        {
            let (vars, told, stop) = (vars.clone(), told.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                cli_registry(&vars, &told, &stop, trial)
            }));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while told.this_trial.load(Ordering::SeqCst) < opts.warmup_tokens {
            assert!(
                Instant::now() < deadline,
                "trial {trial}: no tokens were issued (log: {})",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(
            rng.below(opts.max_kill_delay.as_millis() as u64),
        ));
        server.kill_9();
        stop.store(true, Ordering::SeqCst);
        for t in threads {
            t.join().expect("a client thread panicked");
        }
        let (restarted, recovery) = Server::start(&env, &log);
        server = restarted;
        report.recoveries.push(recovery);
        let (mut failures, events) = check(&env, &told);
        report.events = events;
        if !failures.is_empty() {
            report.failed_trials += 1;
            for f in failures.drain(..) {
                report
                    .failures
                    .push(format!("trial {trial} (seed {}): {f}", opts.seed));
            }
        }
        report.trials = trial;
        if opts.verbose {
            eprintln!(
                "trial {trial}/{}: {} tokens this trial, recovery {:.0} ms, {} events, {} failures so far",
                opts.trials,
                told.this_trial.load(Ordering::SeqCst),
                recovery.as_secs_f64() * 1000.0,
                events,
                report.failures.len()
            );
        }
    }
    report.tokens = told.tokens.lock().unwrap().len();
    report.introspections_inactive = told.inactive.lock().unwrap().len();
    report.revocations = told.revoked.lock().unwrap().len();
    report.proxied = told.proxied.lock().unwrap().len();
    report.registry_changes =
        told.created.lock().unwrap().len() + told.suspended.lock().unwrap().len();
    // No panic in the server's log.
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    if log_text.contains("panicked") {
        report
            .failures
            .push(format!("the server log has a panic: {}", log.display()));
    }
    server.kill_9();
    report
}
