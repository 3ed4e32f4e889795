//! `mandate audit verify FILE` and `mandate audit export --out` when something is wrong: a cut
//! off bundle, corrupted JSON, a PDF without the attached bundle, a checkpoint signed by another
//! key, events that disagree with their inclusion proofs, and an export to a place that cannot
//! be written. Each gives exactly one line on stderr that says what is wrong and what to do;
//! verification failures exit 10, usage errors 2, bad `--key`/`--checkpoint` input 3, files
//! that cannot be read or written 7. Offline verification never touches a data folder, and a
//! failed export leaves no file behind (nor a checkpoint signed for nothing).
//!
//! The tampered bundles built from `docs/audit-vectors/` are re-sealed with the vectors' key,
//! so the only thing wrong with them is the tamper under test.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer as _, SigningKey};
use mandate_core::audit::note::{SignedCheckpoint, key_id};
use mandate_core::audit::{bundle, hex};
use serde_json::Value;

use crate::fixture::{Env, Run, bin};

/// `mandate audit verify FILE ARGS` with a data folder that must stay untouched.
fn verify(file: &Path, extra: &[&str]) -> Run {
    let unused = file.with_file_name("no-data-folder");
    let out = Command::new(bin("mandate"))
        .args(["audit", "verify"])
        .arg(file)
        .args(extra)
        .env("MANDATE_DATA_DIR", &unused)
        .env_remove("MANDATE_ACTOR")
        .output()
        .unwrap();
    assert!(
        !unused.exists(),
        "offline verification created a data folder"
    );
    out.into()
}

/// Exit `code`, and exactly one line on stderr, `error: ...`, holding every needle.
#[track_caller]
fn fails_clearly(r: &Run, code: i32, needles: &[&str]) {
    assert_eq!(r.code, code, "exit code; stderr: {}", r.stderr);
    let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {}", r.stderr);
    assert!(lines[0].starts_with("error: "), "{}", lines[0]);
    for n in needles {
        assert!(lines[0].contains(n), "stderr lacks {n:?}: {}", lines[0]);
    }
}

/// The problems of a `--json` verification, as (kind, seq).
fn problems(r: &Run) -> Vec<(String, Option<u64>)> {
    r.json()["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["kind"].as_str().unwrap().to_string(), p["seq"].as_u64()))
        .collect()
}

fn vectors(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/audit-vectors")
        .join(name);
    std::fs::read_to_string(p).unwrap()
}

/// The key of the test vectors (seed 01 02 ... 20; never used for anything else).
fn vectors_key() -> SigningKey {
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = i as u8 + 1;
    }
    SigningKey::from_bytes(&seed)
}

fn is_event(line: &str) -> bool {
    serde_json::from_str::<Value>(line).is_ok_and(|v| v["type"] == "event")
}

/// Replace a bundle's end line with a fresh seal over `lines` (every line but the end).
fn reseal(lines: &[String], origin: &str, checkpoint: u64) -> Vec<u8> {
    let mut body = String::new();
    for l in lines {
        body.push_str(l);
        body.push('\n');
    }
    let key = vectors_key();
    let digest = bundle::seal_digest(body.as_bytes());
    let mut msg = bundle::SEAL_CONTEXT.to_vec();
    msg.extend_from_slice(&digest);
    // The end record in its exact form (AUDIT_FORMAT.md §6): these members, in this order.
    let end = bundle::Line::End(bundle::End {
        events: lines.iter().filter(|l| is_event(l)).count() as u64,
        checkpoint,
        sha256: hex(&digest),
        key: hex(&key_id(origin, &key.verifying_key())),
        signature: STANDARD.encode(key.sign(&msg).to_bytes()),
    });
    body.push_str(&serde_json::to_string(&end).unwrap());
    body.push('\n');
    body.into_bytes()
}

/// A vectors bundle split into lines, without its end line.
fn vector_lines(name: &str) -> (Vec<String>, String) {
    let text = vectors(name);
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let end = lines.pop().unwrap();
    assert!(end.starts_with("{\"type\":\"end\""), "{end}");
    let header: Value = serde_json::from_str(&lines[0]).unwrap();
    (lines, header["origin"].as_str().unwrap().to_string())
}

/// A seeded installation with a few events and its exported bundle.
fn exported() -> (Env, PathBuf, Vec<u8>) {
    let env = Env::new();
    env.seed();
    env.run(&["member", "add", "cfo"]).ok();
    let file = env.dir.path().join("audit.jsonl");
    env.run(&[
        "audit",
        "export",
        "--format",
        "bundle",
        "--out",
        file.to_str().unwrap(),
    ])
    .ok();
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(verify(&file, &[]).code, 0, "the fresh export verifies");
    (env, file, bytes)
}

#[test]
fn verification_failure_has_its_own_exit_code_documented_in_help() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("x.jsonl");
    std::fs::write(&f, "{}\n").unwrap();
    // Usage errors stay clap's 2 ...
    assert_eq!(verify(&f, &["--no-such-flag"]).code, 2);
    // ... a file that is not a bundle is a verification failure, 10 ...
    fails_clearly(
        &verify(&f, &[]),
        10,
        &["did not verify", "not a Mandate evidence bundle"],
    );
    // ... and a file that cannot be read is 7, naming it.
    fails_clearly(
        &verify(&tmp.path().join("missing.jsonl"), &[]),
        7,
        &["missing.jsonl", "check the path"],
    );
    let help = Command::new(bin("mandate"))
        .args(["audit", "verify", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for needle in ["Exit codes:", "10  verification failed", "2   usage error"] {
        assert!(
            help.contains(needle),
            "verify --help lacks {needle:?}:\n{help}"
        );
    }
}

#[test]
fn a_truncated_bundle_says_it_is_cut_off_and_to_get_it_again() {
    let (_env, file, bytes) = exported();
    let text = String::from_utf8(bytes.clone()).unwrap();
    let without_end = &text[..text.trim_end().rfind('\n').unwrap() + 1];
    let cuts: Vec<(&str, Vec<u8>)> = vec![
        ("mid-line", bytes[..bytes.len() * 2 / 3].to_vec()),
        (
            "at a line end, no end record",
            without_end.as_bytes().to_vec(),
        ),
        (
            "header only",
            text.lines().next().unwrap().as_bytes().to_vec(),
        ),
    ];
    for (name, cut) in cuts {
        let p = file.with_file_name(format!("cut-{}.jsonl", name.len()));
        std::fs::write(&p, &cut).unwrap();
        let r = verify(&p, &[]);
        fails_clearly(
            &r,
            10,
            &[
                "did not verify",
                "the bundle is truncated",
                "get the whole file again",
            ],
        );
        let j = verify(&p, &["--json"]);
        assert_eq!(j.code, 10, "{name}");
        assert!(
            problems(&j).contains(&("truncated".into(), None)),
            "{name}: {:?}",
            problems(&j)
        );
    }
    // An empty file is not a bundle at all.
    let empty = file.with_file_name("empty.jsonl");
    std::fs::write(&empty, b"").unwrap();
    fails_clearly(&verify(&empty, &[]), 10, &["the file is empty"]);
}

#[test]
fn a_bundle_with_corrupted_json_names_the_line() {
    let (_env, file, bytes) = exported();
    let text = String::from_utf8(bytes).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("{\"type\":\"event\""))
        .unwrap();
    lines[at] = lines[at].replacen("\"decision\":\"allow\"", "\"decision\":allow\"", 1);
    let p = file.with_file_name("corrupt.jsonl");
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    let r = verify(&p, &[]);
    fails_clearly(
        &r,
        10,
        &[
            &format!("line {}: the line is not a valid record", at + 1),
            "the file is damaged",
            "get the original again",
        ],
    );
    // Binary garbage: not a bundle.
    let g = file.with_file_name("garbage.jsonl");
    std::fs::write(&g, [0u8, 159, 146, 150, 10, 1, 2]).unwrap();
    fails_clearly(&verify(&g, &[]), 10, &["not a Mandate evidence bundle"]);
}

#[test]
fn a_pdf_without_the_attached_bundle_is_a_verification_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let pdf = tmp.path().join("plain.pdf");
    let st = Command::new("qpdf")
        .arg("--empty")
        .arg(&pdf)
        .status()
        .unwrap();
    assert!(st.success());
    fails_clearly(
        &verify(&pdf, &[]),
        10,
        &[
            "plain.pdf did not verify",
            "has no attached evidence bundle",
            "verify the original report",
        ],
    );
    // Starts like a PDF, is not one.
    let bad = tmp.path().join("bad.pdf");
    std::fs::write(&bad, b"%PDF-1.7\nnot really\n").unwrap();
    fails_clearly(
        &verify(&bad, &[]),
        10,
        &["not a readable PDF", "get the original report again"],
    );
}

#[test]
fn a_checkpoint_signed_by_another_key_is_named() {
    // The resealed vectors verify: only the tampers below are wrong.
    let tmp = tempfile::tempdir().unwrap();
    let (lines, origin) = vector_lines("bundle.jsonl");
    let good = tmp.path().join("good.jsonl");
    std::fs::write(&good, reseal(&lines, &origin, 5)).unwrap();
    assert_eq!(verify(&good, &[]).code, 0, "{}", verify(&good, &[]).stderr);

    // The checkpoint of 3 events, same text, signed by another key under the same name.
    let at = lines
        .iter()
        .position(|l| l.starts_with("{\"type\":\"checkpoint\""))
        .unwrap();
    let note: Value = serde_json::from_str(&lines[at]).unwrap();
    let cp = SignedCheckpoint::parse(note["note"].as_str().unwrap()).unwrap();
    assert_eq!(cp.checkpoint.size, 3);
    let forged = cp
        .checkpoint
        .sign(&origin, &SigningKey::from_bytes(&[7; 32]));
    let mut tampered = lines.clone();
    tampered[at] = serde_json::json!({"type": "checkpoint", "note": forged}).to_string();
    let p = tmp.path().join("other-key.jsonl");
    std::fs::write(&p, reseal(&tampered, &origin, 5)).unwrap();
    let j = verify(&p, &["--json"]);
    assert_eq!(j.code, 10, "{}", j.stderr);
    assert_eq!(problems(&j), vec![("unknown_key".into(), Some(3))]);
    fails_clearly(
        &verify(&p, &[]),
        10,
        &[
            "other-key.jsonl did not verify",
            "the checkpoint of 3 events",
            "not signed by the key you trust",
        ],
    );

    // A checkpoint the reader brings from another installation.
    let other = Env::new();
    other.seed();
    let note = other.run(&["audit", "checkpoint"]).ok().stdout;
    let seen = tmp.path().join("other-install.txt");
    std::fs::write(&seen, &note).unwrap();
    let r = verify(&good, &["--checkpoint", seen.to_str().unwrap()]);
    fails_clearly(
        &r,
        10,
        &[
            "good.jsonl did not verify",
            "the checkpoint you brought (#1) belongs to another log",
            "check that the checkpoint you brought is from this same log",
        ],
    );

    // Pinning a key the bundle was not signed with.
    let r = verify(&good, &["--key", "SHA256:AAAAAAAAAAAAAAAA"]);
    fails_clearly(
        &r,
        10,
        &["SHA256:AAAAAAAAAAAAAAAA", "not signed by the key you trust"],
    );
    // Input that is not a key or a checkpoint at all: invalid input (3), not a failed check.
    fails_clearly(
        &verify(&good, &["--key", "not a key"]),
        3,
        &["--key 'not a key' is not a key"],
    );
    fails_clearly(
        &verify(&good, &["--checkpoint", good.to_str().unwrap()]),
        3,
        &["is not a signed checkpoint"],
    );
}

#[test]
fn an_excerpt_whose_events_and_proofs_disagree_names_the_events() {
    let tmp = tempfile::tempdir().unwrap();
    let (lines, origin) = vector_lines("excerpt.jsonl");
    let good = tmp.path().join("good.jsonl");
    std::fs::write(&good, reseal(&lines, &origin, 5)).unwrap();
    assert_eq!(verify(&good, &[]).code, 0);

    let events: Vec<usize> = (0..lines.len()).filter(|&i| is_event(&lines[i])).collect();
    let parse = |i: usize| -> Value { serde_json::from_str(&lines[i]).unwrap() };
    let (a, b) = (parse(events[0]), parse(events[2]));
    let (seq_a, seq_b) = (
        a["event"]["seq"].as_u64().unwrap(),
        b["event"]["seq"].as_u64().unwrap(),
    );
    // Swap two events' proofs.
    let mut swapped = lines.clone();
    let mut a2 = a.clone();
    let mut b2 = b.clone();
    a2["proof"] = b["proof"].clone();
    b2["proof"] = a["proof"].clone();
    swapped[events[0]] = a2.to_string();
    swapped[events[2]] = b2.to_string();
    let p = tmp.path().join("swapped.jsonl");
    std::fs::write(&p, reseal(&swapped, &origin, 5)).unwrap();
    let j = verify(&p, &["--json"]);
    assert_eq!(j.code, 10);
    assert_eq!(
        problems(&j),
        vec![
            ("edited".into(), Some(seq_a)),
            ("edited".into(), Some(seq_b))
        ]
    );
    fails_clearly(
        &verify(&p, &[]),
        10,
        &[
            &format!("event #{seq_a} does not match its inclusion proof"),
            "(and 1 other problem)",
            "do not rely on this file",
        ],
    );

    // An event changed under an intact proof.
    let mut edited = lines.clone();
    edited[events[1]] = lines[events[1]].replacen("token.issued", "token.revoked", 1);
    assert_ne!(edited[events[1]], lines[events[1]]);
    let p = tmp.path().join("edited.jsonl");
    std::fs::write(&p, reseal(&edited, &origin, 5)).unwrap();
    let seq = parse(events[1])["event"]["seq"].as_u64().unwrap();
    let j = verify(&p, &["--json"]);
    assert_eq!(problems(&j), vec![("edited".into(), Some(seq))]);
}

/// Names of the entries in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn checkpoints(env: &Env) -> String {
    let o = crate::fixture::sqlite3(env.db_path())
        .arg("SELECT count(*) FROM audit_checkpoints")
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn export_to_a_place_that_cannot_be_written_fails_at_once_and_leaves_nothing() {
    use std::os::unix::fs::PermissionsExt as _;
    let (env, _, _) = exported();
    let out = env.dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o500)).unwrap();
    // Root writes into a 0500 folder anyway: then aim below a regular file instead.
    let probe = out.join("probe");
    let (target, needle) = if std::fs::write(&probe, b"x").is_ok() {
        std::fs::remove_file(&probe).unwrap();
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(out.join("somefile"), b"keep me").unwrap();
        (
            out.join("somefile").join("report.pdf"),
            "part of that path is a file, not a folder",
        )
    } else {
        (out.join("report.pdf"), "choose a folder you can write to")
    };
    let before = listing(&out);
    let cps = checkpoints(&env);
    assert_ne!(cps, "0");
    for format in ["pdf", "bundle", "jsonl"] {
        // A new event, so an export that got as far as the store would sign a checkpoint.
        env.run(&["member", "add", &format!("auditor-{format}")])
            .ok();
        let r = env.run(&[
            "audit",
            "export",
            "--format",
            format,
            "--out",
            target.to_str().unwrap(),
        ]);
        fails_clearly(
            &r,
            7,
            &[
                &format!("could not write the export to {}", target.display()),
                needle,
            ],
        );
        assert_eq!(listing(&out), before, "{format}: nothing was written");
        assert_eq!(checkpoints(&env), cps, "{format}: no checkpoint was signed");
    }
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o700)).unwrap();
    // A folder given as the output file.
    let r = env.run(&[
        "audit",
        "export",
        "--format",
        "pdf",
        "--out",
        out.to_str().unwrap(),
    ]);
    fails_clearly(&r, 7, &["it is a folder; give a file name inside it"]);
    // A folder that does not exist.
    let r = env.run(&[
        "audit",
        "export",
        "--format",
        "bundle",
        "--out",
        out.join("nope/a.jsonl").to_str().unwrap(),
    ]);
    fails_clearly(&r, 7, &["create the folder first"]);
    assert_eq!(listing(&out), before);
    // A good export leaves exactly its file, no temporary one.
    let good = out.join("report.pdf");
    env.run(&[
        "audit",
        "export",
        "--format",
        "pdf",
        "--out",
        good.to_str().unwrap(),
    ])
    .ok();
    let mut want = before.clone();
    want.push("report.pdf".into());
    want.sort();
    assert_eq!(listing(&out), want);
    assert_eq!(verify(&good, &[]).code, 0);
}
