//! Crash safety with real processes, the short version CI runs: three `kill -9` trials of the
//! real `mandate serve` (debug build) under mixed load, each restarted and checked (see
//! `trials.rs` for the load and the checks). `scripts/reliability` runs 100 of them on a
//! release build, and 20 power cuts under LazyFS. `MANDATE_TRIALS_SEED` replays a run.

use std::time::{Duration, Instant};

use crate::trials::{Options, run};

#[test]
fn kill_9_under_mixed_load_loses_nothing_acknowledged_and_the_trail_verifies() {
    let started = Instant::now();
    let report = run(&Options::kill(3));
    eprintln!("{}", report.to_json());
    assert!(
        report.failures.is_empty(),
        "seed {}: {}",
        report.seed,
        report.failures.join("\n")
    );
    assert_eq!(report.trials, 3);
    // Every kind of client was acknowledged at least once, so every check had something to do.
    assert!(
        report.tokens > 0 && report.revocations > 0,
        "{}",
        report.to_json()
    );
    assert!(
        report.proxied > 0 && report.registry_changes > 0,
        "{}",
        report.to_json()
    );
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "the crash trials took {:?}",
        started.elapsed()
    );
}
