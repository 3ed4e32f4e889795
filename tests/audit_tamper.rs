//! Issue 22, part 7: someone who can write the data folder (the SQLite file and the checkpoint
//! file beside it) but cannot read the OS keychain. An independent harness
//! (`audit_tamper/tamper.py`: Python's sqlite3 and the spec's hashing, never Mandate's code)
//! makes each attack on a copy of a real installation, many times at random places:
//!
//! - a forged tail: well-formed events, correctly chained, after the newest checkpoint (before
//!   batch tags, 30 of 30 went undetected and the next export signed over them);
//! - rewritten history: an event changed, the chain recomputed to the end, every checkpoint
//!   covering it dropped and the file beside the database rolled back with them (before the
//!   keychain copy, 0 of 60 were caught on the machine itself);
//! - a rollback to an older genuine copy of the database and the file.
//!
//! Each must make `mandate audit verify` fail (exit 10, naming why) and `mandate audit export`
//! refuse (exit 10) without writing a file or signing a checkpoint.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fixture::{Env, Run, bin, sqlite};

/// Trials per attack; `MANDATE_TAMPER_TRIALS` raises it for a measured run (docs/RELIABILITY.md).
fn trials() -> usize {
    std::env::var("MANDATE_TAMPER_TRIALS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10)
}

/// A copy of the data folder (the same installation: same id, same keychain).
fn copy(from: &Path, to: &Path) {
    sqlite(&from.join("mandate.db"), "PRAGMA wal_checkpoint(TRUNCATE)");
    std::fs::create_dir_all(to).unwrap();
    for f in ["mandate.db", "audit-checkpoint.txt"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
}

fn mandate(env: &Env, data: &Path, args: &[&str]) -> Run {
    Command::new(bin("mandate"))
        .args(args)
        .env("MANDATE_DATA_DIR", data)
        .env("MANDATE_KEYCHAIN_SERVICE", &env.service)
        .env_remove("MANDATE_ACTOR")
        .output()
        .unwrap()
        .into()
}

fn harness(data: &Path, args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("audit_tamper/tamper.py");
    let o = Command::new("python3")
        .arg(script)
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "the harness failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A small deterministic generator, so a failing trial can be replayed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Whether the attack was caught: verify fails naming `why`, and export refuses, writing no
/// file and signing no checkpoint.
fn caught(env: &Env, data: &Path, why: &[&str]) -> Result<(), String> {
    let v = mandate(env, data, &["audit", "verify"]);
    if v.code != 10 {
        return Err(format!(
            "verify exited {}: {}{}",
            v.code, v.stdout, v.stderr
        ));
    }
    if !why
        .iter()
        .any(|w| v.stderr.contains(w) || v.stdout.contains(w))
    {
        return Err(format!(
            "verify did not say {why:?}: {}{}",
            v.stdout, v.stderr
        ));
    }
    let db = data.join("mandate.db");
    let before = sqlite(&db, "SELECT count(*) FROM audit_checkpoints");
    let out = data.join("export.jsonl");
    let e = mandate(
        env,
        data,
        &[
            "audit",
            "export",
            "--format",
            "bundle",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    if e.code != 10 || !e.stderr.contains("failed verification") {
        return Err(format!("export exited {}: {}", e.code, e.stderr));
    }
    if out.exists() {
        return Err("export wrote a file".into());
    }
    if sqlite(&db, "SELECT count(*) FROM audit_checkpoints") != before {
        return Err("export signed a checkpoint".into());
    }
    Ok(())
}

#[test]
fn a_database_writer_without_the_keychain_is_caught_and_nothing_is_signed_over_it() {
    let env = Env::new();
    env.seed();
    // Checkpoints at several sizes, and older genuine copies of the folder along the way.
    let backups = env.dir.path().join("backups");
    let mut older: Vec<PathBuf> = Vec::new();
    for round in 0..4 {
        for i in 0..6 {
            env.run(&["member", "add", &format!("member-{round}-{i}")])
                .ok();
        }
        env.run(&["audit", "checkpoint"]).ok();
        let b = backups.join(format!("after-round-{round}"));
        copy(&env.data_dir(), &b);
        older.push(b);
    }
    older.pop(); // the last copy is the current state, not an older one
    // A few genuine events after the newest checkpoint, covered only by their batch tags.
    for i in 0..3 {
        env.run(&["member", "add", &format!("late-{i}")]).ok();
    }
    let db = env.db_path();
    let newest: u64 = sqlite(&db, "SELECT max(size) FROM audit_checkpoints")
        .parse()
        .unwrap();
    let events: u64 = sqlite(&db, "SELECT max(seq) FROM audit_events")
        .parse()
        .unwrap();
    assert_eq!(mandate(&env, &env.data_dir(), &["audit", "verify"]).code, 0);

    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut failures = Vec::new();
    let mut tally = [0usize; 3];
    let trials = trials();
    for trial in 0..trials {
        let attacks: [(&str, Vec<String>, &[&str]); 3] = [
            (
                "forged tail",
                vec!["forge-tail".into(), (1 + rng.below(30)).to_string()],
                &["not authenticated"],
            ),
            (
                "rewritten history",
                vec!["rewrite".into(), (1 + rng.below(newest)).to_string()],
                &["not authenticated", "OS keychain"],
            ),
            (
                "rollback",
                vec![
                    "rollback".into(),
                    older[rng.below(older.len() as u64) as usize]
                        .to_str()
                        .unwrap()
                        .to_string(),
                ],
                &["the checkpoint kept in the OS keychain"],
            ),
        ];
        for (i, (name, args, why)) in attacks.iter().enumerate() {
            let data = env.dir.path().join(format!("trial-{trial}-{i}"));
            copy(&env.data_dir(), &data);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            harness(&data, &args);
            match caught(&env, &data, why) {
                Ok(()) => tally[i] += 1,
                Err(e) => failures.push(format!("trial {trial}, {name} {args:?}: {e}")),
            }
        }
    }
    eprintln!(
        "caught: forged tails {}/{trials}, rewritten histories {}/{trials}, rollbacks \
         {}/{trials} (log of {events} events, newest checkpoint {newest})",
        tally[0], tally[1], tally[2]
    );
    assert!(failures.is_empty(), "{failures:#?}");
    // The real folder was never touched and still verifies.
    assert_eq!(mandate(&env, &env.data_dir(), &["audit", "verify"]).code, 0);
}
