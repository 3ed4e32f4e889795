//! `loadgen soak`: hours-long mixed traffic at a fixed rate against a running endpoint, for the
//! soak in `docs/RELIABILITY.md` (`scripts/reliability`). Not a test.
//!
//! Open loop, as `tokens --rate` (latency from each request's scheduled send time, so a stall
//! counts against every request it delayed). Of every 20 requests: 10 token requests (a fresh
//! assertion each, signed when due), 5 introspections and 2 revocations of tokens it received,
//! 1 JWKS read, and 2 calls through the secret broker (`--proxy PATH`; token requests when it
//! is not given). Prints one JSON line per minute (requests, errors, p50/p99 per kind and
//! overall); one line for each of the first 20 failures (the request, and the status and
//! start of the answer or the transport error); with `--pid PID --data-dir DIR`, one sample
//! every `--sample-secs` (default 10) of the server's resident memory, open file descriptors
//! (in all, the client connections it accepted, and its own), and the SQLite database and WAL
//! sizes; then a summary line, and one more sample 3 s after this program closed its
//! connections (`after_load`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;

use crate::{arg, assertion, ms2, percentile};

/// How many failures are described, one line each (all are counted).
const MAX_FAILURES_SHOWN: usize = 20;

const KINDS: [&str; 5] = ["token", "introspect", "revoke", "jwks", "broker"];

fn kind_of(i: usize, broker: bool) -> usize {
    match i % 20 {
        0..=9 => 0,
        10..=14 => 1,
        15..=16 => 2,
        17 => 3,
        _ if broker => 4,
        _ => 0,
    }
}

struct Ctx {
    http: reqwest::Client,
    url: String,
    client: String,
    key: SigningKey,
    kid: String,
    proxy: Option<String>,
    /// Tokens received for use (introspections, broker calls), newest last; never revoked.
    tokens: Mutex<VecDeque<String>>,
    /// Tokens received to be revoked, oldest first. Kept apart from those in use: a token
    /// revoked while a concurrent request presents it is refused, and refusals are what the
    /// trust score's `denials` signal counts (5 in 10 minutes make an agent UNTRUSTED, after
    /// which every token request is refused). The soak is a well-behaved agent's traffic.
    to_revoke: Mutex<VecDeque<String>>,
}

impl Ctx {
    fn form(&self, path: &str, extra: &str) -> String {
        let aud = format!("{}{path}", self.url);
        format!(
            "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={}{extra}",
            assertion(&self.key, &self.kid, &self.client, &aud, "EdDSA")
        )
    }

    async fn post(&self, path: &str, body: String) -> Result<serde_json::Value, String> {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("POST {path}: {e}"))?;
        if !r.status().is_success() {
            return Err(refused(&format!("POST {path}"), r).await);
        }
        r.json().await.map_err(|e| format!("POST {path}: {e}"))
    }

    fn some_token(&self, i: usize) -> Option<String> {
        let t = self.tokens.lock().unwrap();
        (!t.is_empty()).then(|| t[i % t.len()].clone())
    }

    /// One request of `kind`: what went wrong, if anything.
    async fn run(&self, kind: usize, i: usize) -> Result<(), String> {
        match kind {
            0 => {
                let body = self.form("/oauth2/token", "&grant_type=client_credentials");
                let v = self.post("/oauth2/token", body).await?;
                let Some(t) = v["access_token"].as_str() else {
                    return Err(format!(
                        "a token answer without access_token (error: {})",
                        v["error"]
                    ));
                };
                // Every other token is for revocation.
                let mut q = if i % 40 < 20 {
                    self.tokens.lock().unwrap()
                } else {
                    self.to_revoke.lock().unwrap()
                };
                q.push_back(t.to_string());
                if q.len() > 2000 {
                    q.pop_front();
                }
                Ok(())
            }
            1 => {
                let Some(t) = self.some_token(i) else {
                    return Ok(());
                };
                let body = self.form("/oauth2/introspect", &format!("&token={t}"));
                self.post("/oauth2/introspect", body).await.map(drop)
            }
            2 => {
                let Some(t) = self.to_revoke.lock().unwrap().pop_front() else {
                    return Ok(());
                };
                let body = self.form("/oauth2/revoke", &format!("&token={t}"));
                self.post("/oauth2/revoke", body).await.map(drop)
            }
            3 => match self
                .http
                .get(format!("{}/.well-known/jwks.json", self.url))
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => r
                    .bytes()
                    .await
                    .map(drop)
                    .map_err(|e| format!("GET jwks: {e}")),
                Ok(r) => Err(refused("GET jwks", r).await),
                Err(e) => Err(format!("GET jwks: {e}")),
            },
            _ => {
                let (Some(path), Some(t)) = (&self.proxy, self.some_token(i)) else {
                    return Ok(());
                };
                match self
                    .http
                    .get(format!("{}{path}", self.url))
                    .bearer_auth(t)
                    .send()
                    .await
                {
                    // A token revoked meanwhile is refused (401): the broker answered.
                    Ok(r) if r.status().is_success() || r.status().as_u16() == 401 => r
                        .bytes()
                        .await
                        .map(drop)
                        .map_err(|e| format!("GET {path}: {e}")),
                    Ok(r) => Err(refused(&format!("GET {path}"), r).await),
                    Err(e) => Err(format!("GET {path}: {e}")),
                }
            }
        }
    }
}

/// A refusal as the generator reports it: the request, the status and the start of the body
/// (the endpoint's error code and sentence; never a secret, which it does not echo).
async fn refused(what: &str, r: reqwest::Response) -> String {
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    let body: String = body.chars().take(300).collect();
    format!("{what}: {status} {body}")
}

/// The inodes of the server's TCP sockets on `port` that are connections (not the listener):
/// the load generator's own connections as the server sees them.
fn connection_inodes(pid: u32, port: u16) -> std::collections::HashSet<String> {
    let mut inodes = std::collections::HashSet::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEXIP:HEXPORT; state 0A is LISTEN; field 9 is the inode.
            let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) && *state != "0A" {
                inodes.insert((*inode).to_string());
            }
        }
    }
    inodes
}

/// Resident memory (kB), open descriptors, database and WAL bytes of the server. Descriptors
/// are also split by what they are, because the total moves with the load generator's
/// connection pool: `fds_client_conns` are the connections accepted on `port` (one per open
/// client connection, opened and closed by the client), `fds_own` all the rest (files, the
/// listener, pipes, event and timer descriptors, the broker's connections to its upstream),
/// which is what would grow if the server leaked a descriptor.
fn sample(pid: u32, dir: &str, port: u16) -> serde_json::Value {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // Resident memory by kind: anonymous (the allocators' heaps), file-backed (the program's
    // code and libraries, paged in as new paths run) and shared (SQLite's WAL index).
    let kb = |field: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let (rss_anon_kb, rss_file_kb, rss_shmem_kb) =
        (kb("RssAnon:"), kb("RssFile:"), kb("RssShmem:"));
    // Threads: a burst starts blocking-pool threads (each with allocator caches of its own)
    // that exit when idle, so memory read beside them tells retention from growth.
    let threads: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let conns = connection_inodes(pid, port);
    let (mut fds, mut client, mut files) = (0usize, 0usize, 0usize);
    for e in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
    {
        // A descriptor closed between listing and reading counts as gone.
        let Ok(target) = std::fs::read_link(e.path()) else {
            continue;
        };
        fds += 1;
        let t = target.to_string_lossy();
        match t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
            Some(inode) if conns.contains(inode) => client += 1,
            Some(_) => {}
            None if t.starts_with('/') => files += 1,
            None => {}
        }
    }
    let size = |f: &str| std::fs::metadata(format!("{dir}/{f}")).map_or(0, |m| m.len());
    serde_json::json!({
        "rss_kb": rss_kb, "rss_anon_kb": rss_anon_kb, "rss_file_kb": rss_file_kb,
        "rss_shmem_kb": rss_shmem_kb, "threads": threads, "fds": fds, "fds_client_conns": client, "fds_own": fds - client,
        "fds_files": files,
        "db_bytes": size("mandate.db"), "wal_bytes": size("mandate.db-wal"),
    })
}

#[derive(Default)]
struct Minute {
    all: Vec<f64>,
    by_kind: BTreeMap<usize, Vec<f64>>,
    errors: usize,
}

pub async fn soak(args: &[String]) {
    let url = arg(args, "--url").expect("--url");
    let port: u16 = url
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .expect("--url with a port, as http://127.0.0.1:PORT");
    let client = arg(args, "--client-id").expect("--client-id");
    let (key, kid) = crate::load_key(&arg(args, "--key").expect("--key"));
    let rate: f64 = arg(args, "--rate").map_or(500.0, |r| r.parse().unwrap());
    let secs: u64 = arg(args, "--seconds").map_or(1800, |r| r.parse().unwrap());
    let proxy = arg(args, "--proxy");
    let pid: Option<u32> = arg(args, "--pid").map(|p| p.parse().unwrap());
    let dir = arg(args, "--data-dir").unwrap_or_default();
    let every: u64 = arg(args, "--sample-secs").map_or(10, |r| r.parse().unwrap());
    let broker = proxy.is_some();
    let ctx = Arc::new(Ctx {
        http: reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        url,
        client,
        key,
        kid,
        proxy,
        tokens: Mutex::new(VecDeque::new()),
        to_revoke: Mutex::new(VecDeque::new()),
    });
    let n = (rate * secs as f64) as usize;
    let period = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now() + Duration::from_millis(50);
    let done = Arc::new(AtomicBool::new(false));
    let sampler = pid.map(|pid| {
        let (done, dir) = (done.clone(), dir.clone());
        std::thread::spawn(move || {
            let mut k = 0u64;
            while !done.load(Ordering::Relaxed) {
                let due = start + Duration::from_secs(every * k);
                if let Some(d) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
                let mut s = sample(pid, &dir, port);
                s["sample_s"] = serde_json::json!(every * k);
                println!("{s}");
                k += 1;
            }
        })
    });
    let (tx, mut rx) =
        tokio::sync::mpsc::unbounded_channel::<(usize, usize, f64, Result<(), String>)>();
    let rt = tokio::runtime::Handle::current();
    let pacer = {
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            for i in 0..n {
                let due = start + period.mul_f64(i as f64);
                if let Some(d) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
                let (ctx, tx) = (ctx.clone(), tx.clone());
                let kind = kind_of(i, broker);
                rt.spawn(async move {
                    let outcome = ctx.run(kind, i).await;
                    let l = Instant::now().duration_since(due).as_secs_f64() * 1000.0;
                    let _ = tx.send((i, kind, l, outcome));
                });
            }
        })
    };
    let mut minutes: BTreeMap<usize, Minute> = BTreeMap::new();
    let mut printed = 0usize;
    let mut all = Vec::with_capacity(n);
    let mut errors = 0usize;
    let report = |m: usize, s: &mut Minute| {
        s.all.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let mut kinds = serde_json::Map::new();
        for (k, v) in &mut s.by_kind {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            kinds.insert(
                KINDS[*k].into(),
                serde_json::json!({"n": v.len(), "p50_ms": ms2(percentile(v, 0.5)), "p99_ms": ms2(percentile(v, 0.99))}),
            );
        }
        println!(
            "{}",
            serde_json::json!({
                "minute": m + 1, "requests": s.all.len(), "errors": s.errors,
                "p50_ms": ms2(percentile(&s.all, 0.5)), "p99_ms": ms2(percentile(&s.all, 0.99)),
                "max_ms": ms2(s.all.last().copied().unwrap_or(0.0)), "kinds": kinds,
            })
        );
    };
    while let Some((i, kind, l, outcome)) = rx.recv().await {
        let m = ((i as f64 / rate) / 60.0) as usize;
        let e = minutes.entry(m).or_default();
        e.all.push(l);
        e.by_kind.entry(kind).or_default().push(l);
        all.push(l);
        if let Err(why) = outcome {
            e.errors += 1;
            errors += 1;
            // The first failures, each on a line of its own: an error counted but not
            // described cannot be looked into.
            if errors <= MAX_FAILURES_SHOWN {
                println!(
                    "{}",
                    serde_json::json!({"failure": why, "kind": KINDS[kind], "request": i,
                        "at_s": ms2(i as f64 / rate)})
                );
            }
        }
        // A minute is complete once requests two minutes later have come back.
        while printed + 2 <= m {
            if let Some(mut s) = minutes.remove(&printed) {
                report(printed, &mut s);
            }
            printed += 1;
        }
    }
    pacer.join().unwrap();
    for (m, mut s) in std::mem::take(&mut minutes) {
        report(m, &mut s);
    }
    done.store(true, Ordering::Relaxed);
    if let Some(s) = sampler {
        s.join().unwrap();
    }
    // Every request has answered and the pacer is done, so this is the last handle on the
    // client: dropping it closes the pool's connections. Once the server has seen them close,
    // what it still holds is its own; compared with the first sample (before any request) it
    // says whether anything leaked.
    drop(ctx);
    if let Some(pid) = pid {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut s = sample(pid, &dir, port);
        s["after_load"] = serde_json::json!(true);
        println!("{s}");
    }
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{}",
        serde_json::json!({
            "summary": "soak", "rate": rate, "seconds": secs, "requests": all.len(), "errors": errors,
            "achieved_per_s": (all.len() as f64 / start.elapsed().as_secs_f64()).round(),
            "p50_ms": ms2(percentile(&all, 0.5)), "p99_ms": ms2(percentile(&all, 0.99)),
            "max_ms": ms2(all.last().copied().unwrap_or(0.0)),
        })
    );
}
