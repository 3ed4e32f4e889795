//! The long crash trials behind `scripts/crash-trials` (docs/RELIABILITY.md), on the `mandate`
//! next to this example or in `MANDATE_TEST_BIN_DIR` (the script's release build):
//!
//! ```text
//! reliability crash --trials 100 [--max-kill-delay-ms 1500]
//! ```
//!
//! It prints one JSON line with its figures (trials, failures, longest recovery, what the
//! clients were acknowledged) on stdout; progress goes to stderr. Run it inside
//! `scripts/with-keyring` (the real keychain). `MANDATE_TRIALS_SEED` replays a run.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code,
    reason = "a benchmark harness that shares the integration tests' modules"
)]

#[path = "../endpoint.rs"]
mod endpoint;
#[path = "../fixture.rs"]
mod fixture;
#[path = "../trials.rs"]
mod trials;

use std::time::Duration;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some("crash") {
        eprintln!("usage: reliability crash --trials N [--max-kill-delay-ms MS]");
        std::process::exit(2);
    }
    let n: usize = arg(&args, "--trials")
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let mut opts = trials::Options::kill(n);
    if let Some(ms) = arg(&args, "--max-kill-delay-ms").and_then(|s| s.parse().ok()) {
        opts.max_kill_delay = Duration::from_millis(ms);
    }
    let report = trials::run(&opts);
    println!("{}", report.to_json());
    if !report.failures.is_empty() {
        std::process::exit(1);
    }
}
