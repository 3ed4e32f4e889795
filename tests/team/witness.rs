//! Desktops witness the team's log (issue 21 §3), with real parts: a `mandate server` on a
//! private PostgreSQL cluster with its keys in SoftHSM2, and a witness that is the `mandate`
//! CLI on this host with its key in the OS keychain (the test runs under
//! `scripts/with-keyring`), syncing over HTTPS.
//!
//! The witness cosigns while the log only grows; then the database's administrator rewrites
//! history behind the server's back (deletes the newest events, their checkpoints and the
//! copies the server keeps of its newest checkpoint, and lets new events take their place),
//! so the server signs a fresh checkpoint over the new history. The next sync is refused
//! loudly, naming both sizes and roots; the witness records it in its own audit trail; the
//! server gets no cosignature.

use std::process::{Command, Stdio};

use serde_json::Value;

use crate::fixture::{PgCluster, Run, Team, bin, bundle_events, path_str};

/// A witness's machine: its own data folder and keychain entries, no team store or token.
struct Witness {
    dir: tempfile::TempDir,
    service: String,
}

impl Witness {
    fn new() -> Witness {
        Witness {
            dir: tempfile::tempdir().unwrap(),
            service: format!("mandate-witness-test-{}", std::process::id()),
        }
    }

    fn mandate(&self, args: &[&str]) -> Run {
        Command::new(bin("mandate"))
            .args(args)
            .env("MANDATE_DATA_DIR", self.dir.path())
            .env("MANDATE_KEYCHAIN_SERVICE", &self.service)
            .env_remove("MANDATE_ACTOR")
            .env_remove("MANDATE_DATABASE_URL")
            .env_remove("MANDATE_PKCS11_MODULE")
            .env_remove("MANDATE_PKCS11_TOKEN")
            .env_remove("MANDATE_PKCS11_PIN")
            .stdin(Stdio::null())
            .output()
            .expect("run mandate")
            .into()
    }

    /// The actions in this machine's own audit trail.
    fn actions(&self) -> Vec<Value> {
        let out = self.dir.path().join("own.bundle");
        self.mandate(&[
            "audit",
            "export",
            "--format",
            "bundle",
            "--out",
            &path_str(&out),
        ])
        .ok();
        bundle_events(&out)
    }
}

fn sync(w: &Witness, team: &Team, fp: &str) -> Run {
    w.mandate(&[
        "--json",
        "team",
        "witness",
        "sync",
        &team.public_url(),
        "--server-fingerprint",
        fp,
    ])
}

#[test]
fn a_history_rewritten_in_postgresql_is_caught_by_the_next_sync_and_not_cosigned() {
    let pg = PgCluster::new();
    let ip = std::net::Ipv4Addr::new(127, 79, (std::process::id() % 250) as u8, 21);
    let mut team = Team::on_postgres(&pg.url());
    team.public_host = ip.to_string();
    team.init();
    let fp = team.cert_fingerprint();
    let mut server = team.start(ip, &[]);

    // The witness makes its key; an admin registers it on the server host.
    let w = Witness::new();
    let key = w
        .mandate(&[
            "--json",
            "team",
            "witness",
            "key",
            "--name",
            "witness.test/alice",
        ])
        .ok()
        .json();
    let vkey = key["vkey"].as_str().unwrap().to_string();
    assert_eq!(key["created"], true, "{key}");
    team.mandate(&[
        "team",
        "witness",
        "add",
        "witness.test/alice",
        "--public-key",
        &vkey,
    ])
    .ok();

    // While the log only grows, every sync is cosigned and the server keeps it.
    let first = sync(&w, &team, &fp).ok().json();
    assert_eq!(first["log_key_pinned_now"], true, "{first}");
    let m1 = first["size"].as_u64().unwrap();
    for name in ["bob", "carol"] {
        team.mandate(&["member", "add", name]).ok();
    }
    let second = sync(&w, &team, &fp).ok().json();
    let m2 = second["size"].as_u64().unwrap();
    assert!(m2 > m1, "{first} {second}");
    assert_eq!(second["previous_size"].as_u64(), Some(m1));
    let listed = team
        .mandate(&["--json", "team", "witness", "list"])
        .ok()
        .json();
    assert_eq!(
        listed["witnesses"][0]["last_cosigned_size"].as_u64(),
        Some(m2),
        "{listed}"
    );
    // The team's PDF carries the cosignature; anyone holding the witness's key checks it,
    // and a witness that never cosigned fails with the reason.
    let pdf = team.path("team-report.pdf");
    team.mandate(&[
        "audit",
        "export",
        "--format",
        "pdf",
        "--out",
        &path_str(&pdf),
    ])
    .ok();
    let verified = w
        .mandate(&["audit", "verify", &path_str(&pdf), "--witness", &vkey])
        .ok();
    assert!(
        verified
            .stdout
            .contains("witness witness.test/alice cosigned the checkpoint of"),
        "{}",
        verified.stdout
    );
    let stranger = w.mandate(&["--json", "team", "witness", "key"]).ok().json()["vkey"]
        .as_str()
        .unwrap()
        .replace("witness.test/alice", "witness.test/zed");
    // (Renamed, its key id no longer matches: give a real other key instead.)
    assert!(
        w.mandate(&["audit", "verify", &path_str(&pdf), "--witness", &stranger])
            .code
            == 3
    );
    let other = Witness::new();
    let zed = other
        .mandate(&[
            "--json",
            "team",
            "witness",
            "key",
            "--name",
            "witness.test/zed",
        ])
        .ok()
        .json()["vkey"]
        .as_str()
        .unwrap()
        .to_string();
    w.mandate(&["audit", "verify", &path_str(&pdf), "--witness", &zed])
        .fails(
            10,
            "no checkpoint in this file is cosigned by witness witness.test/zed",
        );
    let mv = Command::new(bin("mandate-verify"))
        .args([&path_str(&pdf), "--witness", &vkey])
        .output()
        .unwrap();
    assert!(
        mv.status.success(),
        "{}",
        String::from_utf8_lossy(&mv.stderr)
    );

    let seen_root = pg.psql(&format!(
        "SELECT encode(root, 'base64') FROM audit_checkpoints WHERE size = {m2}"
    ));

    // The operator rewrites history: the events after the first cosigned checkpoint go, with
    // their checkpoints and the copies kept of the newest one, and new events take their
    // place. The server, restarted, signs a checkpoint over the new history.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    pg.psql(&format!(
        "DELETE FROM audit_events WHERE seq > {m1};
         DELETE FROM audit_checkpoints WHERE size > {m1};
         DELETE FROM sealed_secrets WHERE account LIKE '%/audit-checkpoint'"
    ));
    std::fs::remove_file(team.data_dir().join("audit-checkpoint.txt")).unwrap();
    server = team.start(ip, &[]);
    for i in 0..(m2 - m1 + 3) {
        team.mandate(&["member", "add", &format!("someone-{i}")])
            .ok();
    }
    let rewritten = pg.psql("SELECT max(seq) FROM audit_events");
    assert!(
        rewritten.trim().parse::<u64>().unwrap() > m2,
        "the new history must be longer than what the witness saw: {rewritten}"
    );

    // The next sync is refused, loudly, naming both trees; nothing is cosigned.
    let refused = sync(&w, &team, &fp);
    assert_eq!(refused.code, 10, "{}{}", refused.stdout, refused.stderr);
    let msg = &refused.stderr;
    eprintln!("the witness refused: {msg}");
    assert!(msg.contains("REWRITTEN OR FORKED"), "{msg}");
    assert!(
        msg.contains(&format!("{m2} events (root {})", seen_root.trim())),
        "{msg}"
    );
    assert!(msg.contains("consistency proof does not verify"), "{msg}");
    let listed = team
        .mandate(&["--json", "team", "witness", "list"])
        .ok()
        .json();
    assert_eq!(
        listed["witnesses"][0]["last_cosigned_size"].as_u64(),
        Some(m2),
        "no new cosignature was kept: {listed}"
    );
    // The witness still remembers the honest checkpoint, so it keeps refusing.
    let seen = w
        .mandate(&["--json", "team", "witness", "list"])
        .ok()
        .json();
    assert_eq!(
        seen["witnessed_logs"][0]["size"].as_u64(),
        Some(m2),
        "{seen}"
    );
    sync(&w, &team, &fp).fails(10, "REWRITTEN OR FORKED");
    // Each refusal is in the witness's own audit trail, with the sizes and roots.
    let forks: Vec<Value> = w
        .actions()
        .into_iter()
        .filter(|e| e["action"] == "witness.log_forked")
        .collect();
    assert_eq!(forks.len(), 2, "{forks:?}");
    assert_eq!(forks[0]["decision"], "deny");
    assert_eq!(forks[0]["details"]["seen_size"].as_u64(), Some(m2));
    assert_eq!(
        forks[0]["details"]["seen_root"].as_str(),
        Some(seen_root.trim())
    );
    drop(server);
}
