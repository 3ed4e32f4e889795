//! Audit trail speed (docs/BENCHMARKS.md): verification of the chain and Merkle tree, and
//! durable appends with group commit. Run with `cargo bench -p mandate-core --bench audit`.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark setup")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mandate_core::audit::verify::{StoreInputs, check_store};
use mandate_core::audit::{Actor, Decision, NewEvent, Target, append};
use mandate_core::secret::MemoryKeychain;
use mandate_core::store::Location;
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
    open_with(dir, Arc::new(MemoryKeychain::new()))
}

fn open_with(dir: &std::path::Path, keychain: Arc<MemoryKeychain>) -> Mandate {
    Mandate::open(OpenOptions::new(
        dir,
        keychain,
        Actor::app("bench", "bench"),
    ))
    .unwrap()
}

fn verification(c: &mut Criterion) {
    const N: u64 = 200_000;
    let dir = tempfile::tempdir().unwrap();
    let keychain = Arc::new(MemoryKeychain::new());
    let m = open_with(dir.path(), keychain.clone());
    let mut i = 0;
    while i < N {
        let batch: Vec<_> = (i..(i + 10_000).min(N)).map(token_event).collect();
        i += batch.len() as u64;
        m.record_many(batch).unwrap();
    }
    let mut store = mandate_core::store::Store::open(Location::Folder(dir.path().to_path_buf()))
        .unwrap()
        .1;
    let conn = store.tx().unwrap();
    let body_len: i64 = conn
        .query_row(
            "SELECT CAST(avg(length(body)) AS BIGINT) FROM audit_events",
            &[],
            |r| r.get(0),
        )
        .unwrap();
    eprintln!("average event size: {body_len} bytes");
    // The batch tags are checked too (one HMAC per committed batch).
    let tag_key = mandate_core::audit::tag::TagKeys::new(
        keychain,
        mandate_core::secret::SecretRef {
            account: format!("{}/audit-tag-key", m.install_id()),
        },
    )
    .get()
    .unwrap();
    assert!(tag_key.is_some());
    let inputs = StoreInputs {
        origin: m.audit_origin(),
        tag_key,
        ..Default::default()
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
        .query_map(
            "SELECT seq, body, hash FROM audit_events ORDER BY seq",
            &[],
            |r| {
                let h: Vec<u8> = r.get(2)?;
                Ok((r.get::<u64>(0)?, r.get(1)?, h.try_into().unwrap()))
            },
        )
        .unwrap();
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

/// What authenticating each committed batch (`audit/tag.rs`) adds to the committer: the HMAC
/// alone, and a whole transaction that appends one token event or a batch of 16 with and
/// without the tag (two small reads, one HMAC, one row update). The transactions are rolled
/// back, so no fsync hides the difference.
fn batch_tags(c: &mut Criterion) {
    use mandate_core::audit::tag::{self, TagKey, TagKeys};
    use mandate_core::secret::SecretRef;
    let mut g = c.benchmark_group("tag");
    let key = TagKey::new(&[7; 32], 0);
    g.bench_function("hmac_one_batch", |b| {
        b.iter(|| key.tag(1, 16, std::hint::black_box(&[9; 32])))
    });
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    m.record_many((0..1000).map(token_event).collect()).unwrap();
    drop(m);
    let mut conn = mandate_core::store::Store::open(Location::Folder(dir.path().to_path_buf()))
        .unwrap()
        .1;
    let keys = TagKeys::new(
        Arc::new(MemoryKeychain::new()),
        SecretRef {
            account: "bench/audit-tag-key".into(),
        },
    );
    let now = chrono::Utc::now();
    for batch in [1u64, 16] {
        for tagged in [false, true] {
            let name = format!(
                "transaction_{batch}_events_{}",
                if tagged { "tagged" } else { "untagged" }
            );
            g.bench_function(name, |b| {
                b.iter(|| {
                    // Rolled back: the closure's error is the point.
                    let _ = conn.write(|tx| {
                        let before = tag::head(tx).unwrap();
                        for i in 0..batch {
                            append(tx, now, token_event(i)).unwrap();
                        }
                        if tagged {
                            tag::seal(tx, before, &keys).unwrap();
                        }
                        Err::<(), _>(mandate_core::Error::Storage("rolled back".into()))
                    });
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, verification, durable_appends, batch_tags);
criterion_main!(benches);
