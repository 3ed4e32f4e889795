//! Audit trail speed (docs/BENCHMARKS.md): verification of the chain and Merkle tree, and
//! durable appends with group commit. Run with `cargo bench -p mandate-core --bench audit`.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark setup")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mandate_core::audit::verify::{StoreInputs, check_store};
use mandate_core::audit::{Actor, Decision, NewEvent, Target, append};
use mandate_core::secret::MemoryKeychain;
use mandate_core::{Mandate, OpenOptions};

fn token_event(i: u64) -> NewEvent {
    let agent = Actor::agent(
        "0190c0de-0000-7000-8000-00000000a9e1",
        "billing-report-agent",
    );
    NewEvent::new(&agent, "token.issued", Decision::Allow)
        .agent("0190c0de-0000-7000-8000-00000000a9e1")
        .target(Target::new(
            "token",
            &format!("01934a5e-7c1d-7000-8000-{i:012}"),
            "",
        ))
        .details(serde_json::json!({
            "scope": "billing-db:invoices.read",
            "aud": ["https://billing.internal.example"],
            "ttl": 900,
        }))
}

fn open(dir: &std::path::Path) -> Mandate {
    Mandate::open(OpenOptions::new(
        dir,
        Arc::new(MemoryKeychain::new()),
        Actor::app("bench", "bench"),
    ))
    .unwrap()
}

fn verification(c: &mut Criterion) {
    const N: u64 = 200_000;
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let mut i = 0;
    while i < N {
        let batch: Vec<_> = (i..(i + 10_000).min(N)).map(token_event).collect();
        i += batch.len() as u64;
        m.record_many(batch).unwrap();
    }
    let conn = rusqlite::Connection::open(dir.path().join("mandate.db")).unwrap();
    let body_len: f64 = conn
        .query_row("SELECT avg(length(body)) FROM audit_events", [], |r| {
            r.get(0)
        })
        .unwrap();
    eprintln!("average event size: {body_len:.0} bytes");
    let inputs = StoreInputs {
        origin: m.audit_origin(),
        trusted: Vec::new(),
        file_checkpoint: None,
    };
    let mut g = c.benchmark_group("verify");
    g.throughput(Throughput::Elements(N));
    g.sample_size(10);
    g.bench_function("store_200k_events", |b| {
        b.iter(|| {
            let r = check_store(&conn, &inputs).unwrap();
            assert_eq!(r.events, N);
        })
    });
    // The same events already in memory: the hash chain, Merkle tree and per-event checks
    // without SQLite's reads.
    let rows: Vec<(u64, Vec<u8>, [u8; 32])> = conn
        .prepare("SELECT seq, body, hash FROM audit_events ORDER BY seq")
        .unwrap()
        .query_map([], |r| {
            let h: Vec<u8> = r.get(2)?;
            Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, h.try_into().unwrap()))
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    g.bench_function("in_memory_200k_events", |b| {
        b.iter(|| {
            let r = mandate_core::audit::verify::check_chain(
                rows.iter().map(|(s, b, h)| (*s, b.as_slice(), h)),
            );
            assert!(r.ok());
        })
    });
    g.finish();
}

/// Durable appends (WAL, synchronous=FULL) from concurrent writers through group commit, as
/// the token endpoint makes them (one request, one writer).
fn durable_appends(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    const TOTAL: u64 = 32_768;
    g.throughput(Throughput::Elements(TOTAL));
    for writers in [16u64, 64, 256] {
        g.bench_function(format!("group_commit_{writers}_writers"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().unwrap();
                    let m = Arc::new(open(dir.path()));
                    let start = Instant::now();
                    let threads: Vec<_> = (0..writers)
                        .map(|t| {
                            let m = m.clone();
                            std::thread::spawn(move || {
                                let per = TOTAL / writers;
                                for i in 0..per {
                                    let ev = token_event(t * per + i);
                                    m.write_grouped(move |tx, now| append(tx, now, ev)).unwrap();
                                }
                            })
                        })
                        .collect();
                    for t in threads {
                        t.join().unwrap();
                    }
                    total += start.elapsed();
                }
                total
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("append_without_group_commit");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1000));
    g.bench_function("one_transaction_per_event", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let m = open(dir.path());
                let start = Instant::now();
                for i in 0..1000 {
                    m.record(token_event(i)).unwrap();
                }
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, verification, durable_appends);
criterion_main!(benches);
