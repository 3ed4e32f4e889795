//! Load generator for `docs/BENCHMARKS.md` (not a test): `client_credentials` with
//! `private_key_jwt` against a running token endpoint (Mandate's or another server's), with
//! one fresh assertion per request, pre-generated so that the client's own signing is not
//! measured. Also measures the crypto floor on this machine.
//!
//! Two ways to drive the server:
//! - closed loop (`--concurrency N`): N keep-alive connections, each sending its next request
//!   when the previous answer arrives. Throughput at a given concurrency.
//! - open loop (`--rate R`): R requests per second on a fixed schedule, whatever the answers
//!   do (a slow answer does not delay the next send, and connections are added as needed).
//!   Each latency is measured from the request's *scheduled* send time, not from when it was
//!   actually sent, so a stall in the server (or in this process) counts against every
//!   request it delayed (no coordinated omission).
//!
//! Usage:
//!   loadgen tokens --url URL --aud AUD --client-id ID --key JWK_FILE --concurrency N --seconds S
//!   loadgen tokens --url URL --aud AUD --client-id ID --key JWK_FILE --rate R --seconds S [--timeline]
//!   loadgen floor --seconds S
//!   loadgen bodies --url URL [--aud AUD] --client-id ID --key JWK_FILE --count N
//!   loadgen soak --url URL --client-id ID --key JWK_FILE --rate R --seconds S
//!       [--proxy /proxy/CONN/PATH] [--pid PID --data-dir DIR] [--sample-secs N]
//!
//! `soak` (`soak.rs`) is the mixed traffic of the soak in `docs/RELIABILITY.md`.
//!
//! `bodies` prints N pre-signed token request bodies, one per line, for wrk
//! (`tests/bench/wrk-bodies.lua`), which drives `scripts/bench`'s closed-loop runs with less
//! of the shared CPU than this program's reqwest client.
//!
//! Prints one JSON line per run: requests, errors, tokens/s, p50/p90/p99/max latency in ms
//! (open loop: also the rate asked for and the rate achieved; `--timeline` adds a line with the
//! worst latency of the requests due in each 100 ms of the schedule, to tell one stall from a
//! periodic one).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark tool"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signer as _, SigningKey};
use sha2::{Digest, Sha256};

mod soak;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn assertion(key: &SigningKey, kid: &str, client: &str, aud: &str, alg: &str) -> String {
    let h = serde_json::json!({"alg": alg, "kid": kid, "typ": "JWT"});
    let t = now();
    let c = serde_json::json!({
        "iss": client, "sub": client, "aud": aud, "iat": t, "exp": t + 240,
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    let input = format!(
        "{}.{}",
        B64.encode(h.to_string()),
        B64.encode(c.to_string())
    );
    let sig = key.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(sig.to_bytes()))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Send one token request; whether it succeeded.
async fn send(http: &reqwest::Client, url: &str, body: String) -> bool {
    let r = http
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await;
    match r {
        Ok(r) => {
            let st = r.status();
            let _ = r.bytes().await;
            st.is_success()
        }
        Err(_) => false,
    }
}

fn ms2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Fixed-rate sends: request `i` is due at `start + i / rate`; its latency runs from then.
/// A dedicated OS thread keeps the schedule with `thread::sleep` (tokio's timer ticks in whole
/// milliseconds, which would add up to 1 ms to every latency) and hands each request to the
/// runtime when it is due. How late each hand-off was is reported too (`dispatch_lag_*`): it
/// is the load generator's own share of the latency, counted against the server anyway.
async fn open_loop(
    url: String,
    bodies: Vec<String>,
    rate: f64,
    secs: u64,
    label: String,
    http: reqwest::Client,
    timeline: bool,
) {
    let n = ((rate * secs as f64) as usize).min(bodies.len());
    let period = Duration::from_secs_f64(1.0 / rate);
    let url = Arc::new(url);
    let errors = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, f64)>();
    let start = Instant::now() + Duration::from_millis(20);
    let mut bodies = bodies;
    bodies.truncate(n);
    let rt = tokio::runtime::Handle::current();
    let pacer = {
        let errors = errors.clone();
        std::thread::spawn(move || {
            let mut lags = Vec::with_capacity(n);
            for (i, body) in bodies.into_iter().enumerate() {
                let due = start + period.mul_f64(i as f64);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                lags.push(Instant::now().duration_since(due).as_secs_f64() * 1000.0);
                let (http, url, errors, tx) =
                    (http.clone(), url.clone(), errors.clone(), tx.clone());
                rt.spawn(async move {
                    let ok = send(&http, &url, body).await;
                    if !ok {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = tx.send((i, Instant::now().duration_since(due).as_secs_f64() * 1000.0));
                });
            }
            lags
        })
    };
    let mut all = Vec::with_capacity(n);
    // The worst latency among the requests due in each 100 ms slice of the schedule.
    let slices = (n as f64 / (rate / 10.0)).ceil() as usize;
    let mut worst = vec![0.0f64; slices.max(1)];
    while let Some((i, l)) = rx.recv().await {
        all.push(l);
        let k = ((i as f64 / rate) * 10.0) as usize;
        if let Some(w) = worst.get_mut(k) {
            *w = f64::max(*w, l);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut lags = pacer.join().unwrap();
    lags.sort_by(|a, b| a.partial_cmp(b).unwrap());
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let errs = errors.load(Ordering::Relaxed);
    println!(
        "{}",
        serde_json::json!({
            "label": label, "mode": "open loop", "rate": rate, "requests": all.len(),
            "errors": errs,
            "achieved_per_s": ((all.len() - errs) as f64 / elapsed).round(),
            "p50_ms": ms2(percentile(&all, 0.50)),
            "p90_ms": ms2(percentile(&all, 0.90)),
            "p99_ms": ms2(percentile(&all, 0.99)),
            "max_ms": ms2(all.last().copied().unwrap_or(0.0)),
            "dispatch_lag_p50_ms": ms2(percentile(&lags, 0.50)),
            "dispatch_lag_p99_ms": ms2(percentile(&lags, 0.99)),
        })
    );
    if timeline {
        let w: Vec<f64> = worst.iter().map(|x| x.round()).collect();
        println!(
            "{}",
            serde_json::json!({"label": label, "worst_ms_per_100ms": w})
        );
    }
}

async fn tokens(args: &[String]) {
    let url = arg(args, "--url").expect("--url");
    let aud = arg(args, "--aud").unwrap_or_else(|| url.clone());
    let client = arg(args, "--client-id").expect("--client-id");
    let (key, kid) = load_key(&arg(args, "--key").expect("--key"));
    let alg = arg(args, "--alg").unwrap_or_else(|| "EdDSA".into());
    let conc: usize = arg(args, "--concurrency").map_or(16, |c| c.parse().unwrap());
    let secs: u64 = arg(args, "--seconds").map_or(10, |c| c.parse().unwrap());
    let max: usize = arg(args, "--max").map_or(60_000, |c| c.parse().unwrap());
    let label = arg(args, "--label").unwrap_or_else(|| "run".into());
    let rate: Option<f64> = arg(args, "--rate").map(|r| r.parse().unwrap());
    let max = match rate {
        Some(r) => max.max((r * secs as f64) as usize),
        None => max,
    };
    // One fresh assertion per request, made before the clock starts.
    let bodies: Vec<String> = (0..max)
        .map(|_| form_body(&key, &kid, &client, &aud, &alg))
        .collect();
    if let Some(rate) = rate {
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()
            .unwrap();
        let timeline = args.iter().any(|a| a == "--timeline");
        return open_loop(url, bodies, rate, secs, label, http, timeline).await;
    }
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(conc)
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (bodies, next, errors, http, url) = (
            bodies.clone(),
            next.clone(),
            errors.clone(),
            http.clone(),
            url.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= bodies.len() || Instant::now() >= deadline {
                    break;
                }
                let t = Instant::now();
                let ok = send(&http, &url, bodies[i].clone()).await;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let errs = errors.load(Ordering::Relaxed);
    println!(
        "{}",
        serde_json::json!({
            "label": label, "mode": "closed loop", "concurrency": conc, "requests": all.len(), "errors": errs,
            "tokens_per_s": ((all.len() - errs) as f64 / elapsed).round(),
            "p50_ms": ms2(percentile(&all, 0.50)),
            "p90_ms": ms2(percentile(&all, 0.90)),
            "p99_ms": ms2(percentile(&all, 0.99)),
            "max_ms": ms2(all.last().copied().unwrap_or(0.0)),
        })
    );
}

/// Pre-signed token request bodies, one per line, for an external load tool (wrk).
fn bodies(args: &[String]) {
    use std::io::Write as _;
    let (key, kid) = load_key(&arg(args, "--key").expect("--key"));
    let url = arg(args, "--url").expect("--url");
    let aud = arg(args, "--aud").unwrap_or_else(|| url.clone());
    let client = arg(args, "--client-id").expect("--client-id");
    let alg = arg(args, "--alg").unwrap_or_else(|| "EdDSA".into());
    let n: usize = arg(args, "--count").map_or(60_000, |c| c.parse().unwrap());
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for _ in 0..n {
        writeln!(out, "{}", form_body(&key, &kid, &client, &aud, &alg)).unwrap();
    }
}

fn form_body(key: &SigningKey, kid: &str, client: &str, aud: &str, alg: &str) -> String {
    format!(
        "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={}",
        assertion(key, kid, client, aud, alg)
    )
}

fn load_key(path: &str) -> (SigningKey, String) {
    let jwk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let seed: [u8; 32] = B64
        .decode(jwk["d"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let kid = jwk["kid"].as_str().unwrap_or("").to_string();
    (SigningKey::from_bytes(&seed), kid)
}

/// One Ed25519 verify + one sign + one SHA-256 chain link + an amortised durable append
/// (WAL, synchronous=FULL, 100 rows per transaction), per token.
fn floor(args: &[String]) {
    let secs: f64 = arg(args, "--seconds").map_or(3.0, |c| c.parse().unwrap());
    let key = SigningKey::from_bytes(&[9; 32]);
    let vk = key.verifying_key();
    let msg = vec![b'x'; 300];
    let sig = key.sign(&msg);
    let dir = tempfile::tempdir().unwrap();
    let db = rusqlite::Connection::open(dir.path().join("floor.db")).unwrap();
    db.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         CREATE TABLE t (seq INTEGER PRIMARY KEY, body BLOB, hash BLOB);",
    )
    .unwrap();
    let mut prev = [0u8; 32];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        let tx = db.unchecked_transaction().unwrap();
        for _ in 0..100 {
            vk.verify_strict(&msg, &sig).unwrap();
            let s = key.sign(&msg);
            let mut h = Sha256::new();
            h.update(prev);
            h.update(s.to_bytes());
            prev = h.finalize().into();
            tx.execute(
                "INSERT INTO t (body, hash) VALUES (?1, ?2)",
                rusqlite::params![&msg[..200], &prev[..]],
            )
            .unwrap();
            n += 1;
        }
        tx.commit().unwrap();
    }
    let el = start.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"label": "crypto floor (one core)", "tokens_per_s": (n as f64 / el).round(), "us_per_token": ((el / n as f64) * 1e7).round() / 10.0})
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("tokens") => tokens(&args).await,
        Some("floor") => floor(&args),
        Some("bodies") => bodies(&args),
        Some("soak") => soak::soak(&args).await,
        _ => eprintln!(
            "usage: loadgen tokens --url URL --client-id ID --key JWK [--aud A] [--concurrency N | --rate R] [--seconds S] | loadgen floor | loadgen bodies --url URL --client-id ID --key JWK --count N | loadgen soak --url URL --client-id ID --key JWK --rate R --seconds S"
        ),
    }
}
