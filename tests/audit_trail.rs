//! The audit trail end to end: thousands of real token events from the endpoint, each kind of
//! tamper made in the SQLite file with the `sqlite3` tool and named by verification, the PDF
//! report verified offline by the `mandate` binary (and failing when one byte of its
//! attachment changes), and the independent Python verifier agreeing with ours.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use mandate_core::audit::Actor;
use mandate_core::audit::ExportSelection;
use mandate_core::audit::verify::{BundleOptions, ProblemKind, VerifyReport, check_bundle};
use mandate_core::{Mandate, OpenOptions};

use crate::endpoint::{AGENT, Endpoint};
use crate::fixture::bin;

/// Damage `db` with `sql` (the cases below are closures that return nothing).
fn sqlite(db: &Path, sql: &str) {
    crate::fixture::sqlite(db, sql);
}

fn kinds(r: &VerifyReport) -> Vec<(ProblemKind, Option<u64>)> {
    r.problems.iter().map(|p| (p.kind, p.seq)).collect()
}

/// An endpoint that has issued `n` tokens (and refused every 50th request).
fn busy_endpoint(n: usize) -> Endpoint {
    let ep = Endpoint::start();
    for i in 0..n {
        if i % 50 == 49 {
            let r = ep.post_form(
                "/oauth2/token",
                &[],
                &ep.form(&ep.assertion(AGENT), &[("scope", "github:admin")]),
            );
            assert_eq!(r.status, 400, "{}", r.body);
        } else {
            ep.token(AGENT, &[]);
        }
    }
    ep
}

/// A copy of the endpoint's data folder, opened with the same keychain.
fn copy_of(ep: &Endpoint, into: &Path) -> (Mandate, PathBuf) {
    let data = into.join("data");
    std::fs::create_dir_all(&data).unwrap();
    // Make the WAL part of the main file first, so a plain copy is complete.
    sqlite(
        &ep.dir.path().join("mandate.db"),
        "PRAGMA wal_checkpoint(TRUNCATE)",
    );
    for f in ["mandate.db", "audit-checkpoint.txt"] {
        let from = ep.dir.path().join(f);
        if from.exists() {
            std::fs::copy(from, data.join(f)).unwrap();
        }
    }
    let kc: Arc<dyn mandate_core::secret::Keychain> = ep.keychain.clone();
    let m = Mandate::open(OpenOptions::new(&data, kc, Actor::app("test", "tests"))).unwrap();
    (m, data.join("mandate.db"))
}

#[test]
fn thousands_of_endpoint_events_verify_and_one_changed_row_is_named() {
    let ep = busy_endpoint(2500);
    let r = ep.m.verify_audit().unwrap();
    assert!(r.ok(), "{:?}", r.problems);
    assert!(r.events > 2500, "{}", r.events);
    // Checkpoints were made automatically along the way (every 1000 events).
    assert!(r.checkpoints_verified >= 2, "{}", r.checkpoints_verified);
    assert!(ep.dir.path().join("audit-checkpoint.txt").exists());
    let db = ep.dir.path().join("mandate.db");
    sqlite(
        &db,
        "UPDATE audit_events SET body = CAST(replace(CAST(body AS TEXT), 'token.issued', \
         'token.issueD') AS BLOB) WHERE seq = 1234",
    );
    let r = ep.m.verify_audit().unwrap();
    assert_eq!(
        kinds(&r),
        vec![(ProblemKind::Edited, Some(1234))],
        "{:?}",
        r.problems
    );
    assert!(
        r.problems[0].message.contains("event #1234"),
        "{}",
        r.problems[0].message
    );
}

/// Each row of SECURITY.md's tamper table, made with sqlite3 on a copy of a real store.
#[test]
fn each_sqlite_tamper_is_named_where_it_happened() {
    let ep = busy_endpoint(150);
    ep.m.audit_checkpoint().unwrap();
    let n = ep.m.verify_audit().unwrap().events;
    let other_key = {
        let k = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        mandate_core::audit::note::Checkpoint {
            origin: ep.m.audit_origin(),
            size: n,
            root: [0; 32],
            chain_head: [0; 32],
            time: "2026-11-22T00:00:00.000000Z".into(),
        }
        .sign(&ep.m.audit_origin(), &k)
    };
    type Tamper = Box<dyn Fn(&Path)>;
    type Expected = Vec<(ProblemKind, Option<u64>)>;
    let cases: Vec<(&str, Tamper, Expected)> = vec![
        (
            "edit an event's body",
            Box::new(|db: &Path| {
                sqlite(
                    db,
                    "UPDATE audit_events SET body = CAST(replace(CAST(body AS TEXT), '\"allow\"', \
                     '\"deny\"') AS BLOB) WHERE seq = 40",
                )
            }),
            vec![(ProblemKind::Edited, Some(40))],
        ),
        (
            "edit an indexed column",
            Box::new(|db: &Path| sqlite(db, "UPDATE audit_events SET action = 'x' WHERE seq = 41")),
            vec![(ProblemKind::Edited, Some(41))],
        ),
        (
            "delete an event",
            Box::new(|db: &Path| sqlite(db, "DELETE FROM audit_events WHERE seq = 42")),
            vec![(ProblemKind::Deleted, Some(42))],
        ),
        (
            "insert a copy of an event",
            Box::new(move |db: &Path| {
                sqlite(
                    db,
                    &format!(
                        "INSERT INTO audit_events (seq, time, agent_id, action, decision, body, \
                         hash) SELECT {}, time, agent_id, action, decision, body, hash FROM \
                         audit_events WHERE seq = 43",
                        n + 1
                    ),
                )
            }),
            vec![(ProblemKind::Inserted, Some(n + 1))],
        ),
        (
            "swap two events",
            Box::new(|db: &Path| {
                sqlite(
                    db,
                    "UPDATE audit_events SET seq = -1 WHERE seq = 44; \
                     UPDATE audit_events SET seq = 44 WHERE seq = 45; \
                     UPDATE audit_events SET seq = 45 WHERE seq = -1;",
                )
            }),
            vec![
                (ProblemKind::Reordered, Some(44)),
                (ProblemKind::Reordered, Some(45)),
            ],
        ),
        (
            "truncate the tail behind a signed checkpoint",
            Box::new(|db: &Path| sqlite(db, "DELETE FROM audit_events WHERE seq > 100")),
            vec![(ProblemKind::Truncated, Some(101))],
        ),
        (
            "truncate and roll back to an older genuine checkpoint",
            Box::new(|db: &Path| {
                sqlite(
                    db,
                    "DELETE FROM audit_events WHERE seq > 100; \
                     DELETE FROM audit_checkpoints WHERE size > 100;",
                )
            }),
            vec![(ProblemKind::RolledBack, Some(101))],
        ),
        (
            "forge a checkpoint",
            Box::new(move |db: &Path| {
                sqlite(
                    db,
                    &format!(
                        "UPDATE audit_checkpoints SET note = replace(note, char(10) || '{n}' || \
                         char(10), char(10) || '{}' || char(10)) WHERE size = {n}",
                        n - 1
                    ),
                )
            }),
            vec![
                (ProblemKind::Malformed, Some(n)),
                (ProblemKind::ForgedCheckpoint, Some(n - 1)),
            ],
        ),
        (
            "a checkpoint signed by another key",
            Box::new(move |db: &Path| {
                sqlite(
                    db,
                    &format!(
                        "UPDATE audit_checkpoints SET note = '{}' WHERE size = {n}",
                        other_key.replace('\'', "''")
                    ),
                )
            }),
            vec![(ProblemKind::UnknownKey, Some(n))],
        ),
    ];
    for (name, tamper, expected) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let (m, db) = copy_of(&ep, tmp.path());
        assert!(
            m.verify_audit().unwrap().ok(),
            "{name}: the copy verifies first"
        );
        tamper(&db);
        let r = m.verify_audit().unwrap();
        assert_eq!(kinds(&r), expected, "{name}: {:#?}", r.problems);
    }
}

fn mandate_verify(file: &Path, extra: &[&str]) -> (i32, String) {
    let o = Command::new(bin("mandate"))
        .args(["audit", "verify"])
        .arg(file)
        .args(extra)
        .env(
            "MANDATE_DATA_DIR",
            file.parent().unwrap().join("no-data-needed"),
        )
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn the_pdf_report_verifies_offline_and_fails_when_its_attachment_changes() {
    let ep = busy_endpoint(300);
    let built = mandate_report::build(
        &ep.m,
        &mandate_report::PdfOptions {
            organisation: Some("Example Robotics Ltd".into()),
            ..Default::default()
        },
        &mut |_, _| {},
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let pdf = tmp.path().join("report.pdf");
    std::fs::write(&pdf, &built.pdf).unwrap();

    // It is a clean PDF with extractable text.
    let q = Command::new("qpdf")
        .arg("--check")
        .arg(&pdf)
        .output()
        .unwrap();
    assert!(q.status.success(), "{}", String::from_utf8_lossy(&q.stdout));
    let text = Command::new("pdftotext")
        .arg(&pdf)
        .arg("-")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    for needle in [
        "Audit evidence report",
        "Example Robotics Ltd",
        "Verification: PASSED",
        AGENT,
        "SOC 2 CC6.1",
        "ISO 27001:2022 A.8.15",
        "Appendix",
        &built.data.checkpoint_root,
    ] {
        assert!(text.contains(needle), "the PDF text lacks {needle:?}");
    }
    // Commands are set as code (monospace), not printed with literal backticks.
    assert!(
        text.contains("mandate audit verify <this file>"),
        "the PDF text lacks the verify command"
    );
    assert!(
        !text.contains('`'),
        "a literal backtick is printed in the PDF"
    );

    // `mandate audit verify report.pdf` checks the attached bundle.
    let (code, out) = mandate_verify(&pdf, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK"), "{out}");
    python_says(&pdf, 0);
    let (code, out) = mandate_verify(&pdf, &["--key", &built.data.key_fingerprint]);
    assert_eq!(code, 0, "{out}");

    // One byte of the attachment changed: verification fails (exit 10).
    let bytes = built.pdf.clone();
    let at = find(&bytes, b"/Type/EmbeddedFile").expect("embedded file stream");
    let start = at + find(&bytes[at..], b"stream\n").unwrap() + 7;
    let len = find(&bytes[start..], b"endstream").unwrap();
    for offset in [len / 3, len / 2, len - 10] {
        let mut bad = bytes.clone();
        bad[start + offset] ^= 0x01;
        let p = tmp.path().join(format!("bad-{offset}.pdf"));
        std::fs::write(&p, &bad).unwrap();
        let (code, out) = mandate_verify(&p, &[]);
        assert_eq!(code, 10, "one changed byte at {offset} must fail: {out}");
    }

    // The same attachment byte changed after decompression (qpdf rewrites the streams).
    let plain = tmp.path().join("plain.pdf");
    let st = Command::new("qpdf")
        .args(["--stream-data=uncompress", "--object-streams=disable"])
        .arg(&pdf)
        .arg(&plain)
        .status()
        .unwrap();
    assert!(st.success());
    let (code, out) = mandate_verify(&plain, &[]);
    assert_eq!(code, 0, "an uncompressed rewrite still verifies: {out}");
    python_says(&plain, 0);
    let mut raw = std::fs::read(&plain).unwrap();
    let at = find(&raw, b"\"type\":\"event\"").unwrap();
    raw[at + 40] ^= 0x01;
    let p = tmp.path().join("plain-bad.pdf");
    std::fs::write(&p, &raw).unwrap();
    let (code, out) = mandate_verify(&p, &[]);
    assert_eq!(code, 10, "{out}");
    assert!(out.contains("changed after it was exported"), "{out}");
    python_says(&p, 10);

    // Without the attachment: a clear failure.
    let none = tmp.path().join("none.pdf");
    let st = Command::new("qpdf")
        .arg(&pdf)
        .arg(format!(
            "--remove-attachment={}",
            mandate_report::ATTACHMENT_NAME
        ))
        .arg("--")
        .arg(&none)
        .status()
        .unwrap();
    assert!(st.success());
    let (code, out) = mandate_verify(&none, &[]);
    assert_eq!(code, 10, "{out}");
    assert!(out.contains("no attached evidence bundle"), "{out}");
    python_says(&none, 10);

    // Pinning another key fails.
    let (code, out) = mandate_verify(&pdf, &["--key", "SHA256:AAAAAAAAAAAAAAAA"]);
    assert_eq!(code, 10, "{out}");
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The independent Python verifier gives `code` for the PDF report at `p` (it reads the
/// attachment with pypdf, following AUDIT_FORMAT.md §6).
fn python_says(p: &Path, code: i32) {
    let (got, _, out) = python(&[p.to_str().unwrap()]);
    assert_eq!(got, code, "the Python verifier on {}: {out}", p.display());
}

fn python(args: &[&str]) -> (i32, serde_json::Value, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("audit_verifier_py/verify.py");
    let o = Command::new(crate::fixture::verifier_python())
        .arg(script)
        .args(args)
        .output()
        .expect("python3");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let v = serde_json::from_str(&out).unwrap_or(serde_json::Value::Null);
    (
        o.status.code().unwrap_or(-1),
        v,
        out + &String::from_utf8_lossy(&o.stderr),
    )
}

#[test]
fn the_independent_python_verifier_agrees_with_ours() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/audit-vectors");
    let (code, _, out) = python(&["--vectors", docs.join("expected.json").to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");

    let ep = busy_endpoint(120);
    let tmp = tempfile::tempdir().unwrap();
    let full =
        ep.m.export_audit(&ExportSelection::default(), None)
            .unwrap()
            .bundle;
    let excerpt =
        ep.m.export_audit(
            &ExportSelection {
                agent: Some(AGENT.into()),
                ..Default::default()
            },
            None,
        )
        .unwrap()
        .bundle;
    let edited = String::from_utf8(full.clone())
        .unwrap()
        .replacen("token.issued", "token.revoked", 1)
        .into_bytes();
    let mut truncated = full.clone();
    truncated.truncate(full.len() * 2 / 3);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("full", full),
        ("excerpt", excerpt),
        ("edited", edited),
        ("truncated", truncated),
        ("vectors", std::fs::read(docs.join("bundle.jsonl")).unwrap()),
        (
            "vectors-excerpt",
            std::fs::read(docs.join("excerpt.jsonl")).unwrap(),
        ),
    ];
    for (name, bytes) in cases {
        let p = tmp.path().join(format!("{name}.jsonl"));
        std::fs::write(&p, &bytes).unwrap();
        let ours = check_bundle(&bytes, &BundleOptions::default());
        let (code, theirs, out) = python(&[p.to_str().unwrap()]);
        assert_eq!(
            theirs["ok"].as_bool(),
            Some(ours.ok()),
            "{name}: {out}\nours: {:?}",
            ours.problems
        );
        assert_eq!(code, if ours.ok() { 0 } else { 10 }, "{name}");
        if ours.ok() {
            assert_eq!(theirs["root"].as_str(), Some(ours.root.as_str()), "{name}");
            assert_eq!(theirs["events"].as_u64(), Some(ours.events), "{name}");
        } else {
            // The same kinds of problem, in the same places.
            let mut a: Vec<(String, Option<u64>)> = ours
                .problems
                .iter()
                .map(|p| {
                    (
                        serde_json::to_value(p.kind)
                            .unwrap()
                            .as_str()
                            .unwrap()
                            .to_string(),
                        p.seq,
                    )
                })
                .collect();
            let mut b: Vec<(String, Option<u64>)> = theirs["problems"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p["kind"].as_str().unwrap().to_string(), p["seq"].as_u64()))
                .collect();
            a.sort();
            b.sort();
            a.dedup();
            b.dedup();
            let a_kinds: Vec<_> = a.iter().filter(|(k, _)| k != "malformed").collect();
            let b_kinds: Vec<_> = b.iter().filter(|(k, _)| k != "malformed").collect();
            assert_eq!(a_kinds, b_kinds, "{name}: ours {a:?} theirs {b:?}");
        }
    }
}
