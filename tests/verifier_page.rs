//! Issue 24's outsider: evidence checked without installing Mandate. The verifier page that
//! `mandate audit verifier` writes, and that every PDF report carries as an attachment, is
//! opened in headless Chromium (Debian's `chromium`, driven by playwright-core): a real report
//! passes; a changed event, and a changed page of a report that signs its pages, fail with the
//! reason `mandate audit verify` gives; every vector of
//! `docs/audit-vectors/` gets the very text the CLI prints; and the page makes no network
//! request. `mandate-verify`, the static binary, prints the same text and exit codes too.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::fixture::{Env, Run, bin};

/// playwright-core in the cache folder (tests/verifier_page/setup.sh): its folder.
fn browser_driver() -> PathBuf {
    let setup = Path::new(env!("CARGO_MANIFEST_DIR")).join("verifier_page/setup.sh");
    let o = Command::new(setup).output().unwrap();
    assert!(
        o.status.success(),
        "tests/verifier_page/setup.sh failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
}

/// What the page showed for each file, in order, and the requests it made overall.
fn open_in_chromium(page: &Path, files: &[PathBuf]) -> (Vec<Value>, Value) {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Debian's chromium is needed for the verifier page's test (scripts/lib.sh installs it)"
    );
    let dir = browser_driver();
    let o = Command::new("node")
        .current_dir(&dir)
        .arg("run.mjs")
        .arg(page)
        .args(files)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "the browser run failed: {}\n{out}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let done = lines.pop().unwrap();
    assert_eq!(done["done"], true, "{out}");
    (lines, done)
}

/// `mandate audit verify FILE` run in `dir` (so it names the file as the page does).
fn cli_verify(dir: &Path, file: &str, args: &[&str]) -> Run {
    Command::new(bin("mandate"))
        .current_dir(dir)
        .args(["audit", "verify", file])
        .args(args)
        .env("MANDATE_DATA_DIR", dir.join("no-data-needed"))
        .output()
        .unwrap()
        .into()
}

/// The same with `mandate-verify`, the static binary.
fn static_verify(dir: &Path, file: &str) -> Run {
    Command::new(bin("mandate-verify"))
        .current_dir(dir)
        .arg(file)
        .output()
        .unwrap()
        .into()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// An uncompressed copy (qpdf) of the report `pdf`, next to it.
fn uncompressed(pdf: &Path) -> PathBuf {
    let plain = pdf.with_extension("plain.pdf");
    let st = Command::new("qpdf")
        .args(["--stream-data=uncompress", "--object-streams=disable"])
        .arg(pdf)
        .arg(&plain)
        .status()
        .unwrap();
    assert!(st.success());
    plain
}

/// The uncompressed report `plain` with one digit of page `n`'s drawing changed, outside the
/// attachments.
fn page_digit_changed(plain: &Path, n: usize) -> Vec<u8> {
    let mut raw = std::fs::read(plain).unwrap();
    let shown = Command::new("qpdf")
        .arg("--show-pages")
        .arg(plain)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&shown.stdout);
    let content = listing
        .split(&format!("page {n}:"))
        .nth(1)
        .and_then(|rest| rest.split("content:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("qpdf lists the page's content stream")
        .to_string();
    let obj = find(&raw, format!("\n{content} 0 obj").as_bytes()).unwrap();
    let stream = obj + find(&raw[obj..], b"stream").unwrap();
    let digit = stream + raw[stream..].iter().position(u8::is_ascii_digit).unwrap();
    raw[digit] = if raw[digit] == b'1' { b'2' } else { b'1' };
    raw
}

#[test]
fn the_attached_verifier_page_passes_a_report_and_names_a_changed_event_offline() {
    let env = Env::new();
    env.seed();
    for i in 0..40 {
        env.run(&["member", "add", &format!("member-{i}")]).ok();
    }
    let dir = env.dir.path().join("auditor");
    std::fs::create_dir_all(&dir).unwrap();
    let pdf = dir.join("report.pdf");
    env.run(&[
        "audit",
        "export",
        "--format",
        "pdf",
        "--out",
        pdf.to_str().unwrap(),
    ])
    .ok();

    // The page the auditor opens is the one attached to the report, and it is the page
    // `mandate audit verifier` writes.
    let attached = dir.join("attached-verifier.html");
    let st = Command::new("qpdf")
        .arg(&pdf)
        .arg("--show-attachment=mandate-verifier.html")
        .output()
        .unwrap();
    assert!(st.status.success(), "the report carries the verifier page");
    std::fs::write(&attached, &st.stdout).unwrap();
    let written = dir.join("verify.html");
    env.run(&["audit", "verifier", "--out", written.to_str().unwrap()])
        .ok();
    assert_eq!(std::fs::read(&written).unwrap(), st.stdout);
    // Not replaced without being asked.
    env.run(&["audit", "verifier", "--out", written.to_str().unwrap()])
        .fails(5, "already exists");

    // One byte of one event changed inside the attachment (qpdf writes it uncompressed).
    let plain = uncompressed(&pdf);
    let mut raw = std::fs::read(&plain).unwrap();
    let at = find(&raw, b"\"action\":\"member.added\"").unwrap();
    raw[at + 11] ^= 0x01;
    let edited = dir.join("edited.pdf");
    std::fs::write(&edited, &raw).unwrap();

    // One digit of page 2's drawing changed, outside the attachments: the report signs its
    // pages, so the page names page 2 as the AUDIT_FORMAT §6 check does.
    let page_edited = dir.join("page-edited.pdf");
    std::fs::write(&page_edited, page_digit_changed(&plain, 2)).unwrap();

    let files = [pdf.clone(), edited.clone(), page_edited.clone()];
    let (shown, done) = open_in_chromium(&attached, &files);
    assert_eq!(done["requests"], Value::Array(vec![]), "no network request");
    assert_eq!(done["errors"], Value::Array(vec![]), "no script error");

    assert_eq!(shown[0]["verdict"], "ok", "{}", shown[0]);
    let cli = cli_verify(&dir, "report.pdf", &[]);
    assert_eq!(cli.code, 0, "{}", cli.stderr);
    assert_eq!(shown[0]["text"].as_str().unwrap(), cli.stdout);
    assert!(
        cli.stdout
            .starts_with("OK: the report report.pdf verified.")
    );

    assert_eq!(shown[1]["verdict"], "failed", "{}", shown[1]);
    let cli = cli_verify(&dir, "edited.pdf", &[]);
    assert_eq!(cli.code, 10);
    assert_eq!(shown[1]["text"].as_str().unwrap(), cli.stdout);
    assert!(
        shown[1]["summary"]
            .as_str()
            .unwrap()
            .contains("changed after it was exported"),
        "{}",
        shown[1]
    );

    assert_eq!(shown[2]["verdict"], "failed", "{}", shown[2]);
    let cli = cli_verify(&dir, "page-edited.pdf", &[]);
    assert_eq!(cli.code, 10, "{}", cli.stdout);
    assert_eq!(shown[2]["text"].as_str().unwrap(), cli.stdout);
    assert!(
        shown[2]["text"]
            .as_str()
            .unwrap()
            .contains("page 2 of the report was changed"),
        "{}",
        shown[2]
    );

    // The static binary says the same, with the same exit codes.
    for (file, code) in [
        ("report.pdf", 0),
        ("edited.pdf", 10),
        ("page-edited.pdf", 10),
    ] {
        let ours = static_verify(&dir, file);
        let cli = cli_verify(&dir, file, &[]);
        assert_eq!(ours.code, code, "{file}: {}", ours.stderr);
        assert_eq!(ours.stdout, cli.stdout, "{file}");
    }
}

#[test]
fn every_vector_gets_the_clis_verdict_and_reasons_in_the_page_and_the_static_binary() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/audit-vectors");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(docs.join("expected.json")).unwrap())
            .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let page = tmp.path().join("verify.html");
    std::fs::write(&page, mandate_report::VERIFIER_PAGE).unwrap();
    // Cases the page can take as they are: no --checkpoint (the page trusts what it is given).
    let mut cases = Vec::new();
    for case in expected["cases"].as_array().unwrap() {
        if case["args"].as_array().unwrap().is_empty() {
            let file = docs.join(case["file"].as_str().unwrap());
            cases.push((case["name"].as_str().unwrap().to_string(), file));
        }
    }
    assert!(cases.len() >= 25, "{}", cases.len());
    assert!(
        cases.iter().any(|(n, _)| n == "pdf-pages-edited"),
        "a report from before page digests is among the cases"
    );
    let files: Vec<PathBuf> = cases.iter().map(|(_, f)| f.clone()).collect();
    let (shown, done) = open_in_chromium(&page, &files);
    assert_eq!(done["requests"], Value::Array(vec![]), "no network request");
    for ((name, file), shown) in cases.iter().zip(&shown) {
        let dir = file.parent().unwrap();
        let base = file.file_name().unwrap().to_str().unwrap();
        let cli = cli_verify(dir, base, &[]);
        // A report from before page digests passes as its evidence only, and the page's
        // headline says so in the CLI's words (AUDIT_FORMAT §6), not only a detail line.
        let evidence_only = cli.stdout.contains("verified, its evidence only");
        assert_eq!(
            shown["verdict"],
            match (cli.code, evidence_only) {
                (0, true) => "evidence-only",
                (0, false) => "ok",
                _ => "failed",
            },
            "{name}: {shown}"
        );
        if !cli.stdout.is_empty() {
            assert_eq!(
                shown["headline"].as_str().unwrap(),
                cli.stdout.lines().next().unwrap(),
                "{name}"
            );
        }
        if cli.stdout.is_empty() {
            // A file the CLI cannot read as evidence at all: it says why in one sentence on
            // stderr; the page lists the same reason as the report's one problem.
            let reason = cli
                .stderr
                .split_once("did not verify: ")
                .and_then(|(_, rest)| rest.split("; ").next())
                .unwrap_or_else(|| panic!("{name}: {}", cli.stderr));
            assert!(
                shown["text"].as_str().unwrap().contains(reason),
                "{name}: {shown}\n{}",
                cli.stderr
            );
        } else {
            assert_eq!(shown["text"].as_str().unwrap(), cli.stdout, "{name}");
        }
        let ours = static_verify(dir, base);
        assert_eq!(ours.code, cli.code, "{name}: {}", ours.stderr);
        assert_eq!(ours.stdout, cli.stdout, "{name}");
    }
}

/// A whole-log bundle of `n` events of about 800 bytes each, made with the format crate's
/// own writer and signed with a fresh key: (bytes, the key's fingerprint).
fn synthetic_bundle(n: u64) -> (Vec<u8>, String) {
    use mandate_core::audit::bundle::{BundleScope, FORMAT, Header, KeyEntry, Writer};
    use mandate_core::audit::merkle::{Frontier, leaf_hash};
    use mandate_core::audit::note::{Checkpoint, NoteKey};
    use mandate_core::audit::{GENESIS, chain_link};
    let key = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let origin = "mandate/synthetic";
    let nk = NoteKey::new(origin, key.verifying_key());
    let fingerprint = mandate_core::keys::fingerprint(&key.verifying_key());
    let header = Header {
        format: FORMAT.into(),
        origin: origin.into(),
        generated: "2026-12-04T00:00:00.000000Z".into(),
        scope: BundleScope::Full,
        keys: vec![KeyEntry {
            vkey: nk.vkey(),
            kid: mandate_core::keys::thumbprint(&key.verifying_key()),
            fingerprint: fingerprint.clone(),
        }],
    };
    let reason = "a long reason that makes each event the size of a real one ".repeat(11);
    let mut events = Vec::with_capacity(n as usize);
    let (mut prev, mut frontier) = (GENESIS, Frontier::new());
    for seq in 1..=n {
        let canonical = format!(
            r#"{{"action":"token.issue","agent":"ag_synthetic","decision":"allow","reason":"{reason}","seq":{seq},"time":"2026-12-04T00:00:00.000000Z","v":1}}"#
        )
        .into_bytes();
        let leaf = leaf_hash(&canonical);
        prev = chain_link(&prev, &leaf);
        frontier.push(leaf);
        events.push((canonical, prev));
    }
    let note = Checkpoint {
        origin: origin.into(),
        size: n,
        root: frontier.root(),
        chain_head: prev,
        time: "2026-12-04T00:00:00.000000Z".into(),
    }
    .sign(origin, &key);
    let mut w = Writer::new(&header);
    w.checkpoint(&note);
    for (canonical, hash) in &events {
        w.event(canonical, Some(hash), None);
    }
    (w.finish(n, origin, &key), fingerprint)
}

/// Exit code and peak resident memory (KiB) of a command, measured by the kernel.
fn peak_rss(cmd: &[&std::ffi::OsStr]) -> (i32, u64) {
    let o = Command::new("python3")
        .arg("-c")
        .arg(
            "import resource, subprocess, sys\n\
             r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n\
             print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)",
        )
        .args(cmd)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let mut it = out.split_whitespace();
    (
        it.next().unwrap().parse().unwrap(),
        it.next().unwrap().parse().unwrap(),
    )
}

#[test]
fn verifying_a_100k_event_bundle_held_it_all_in_memory() {
    let (bytes, fingerprint) = synthetic_bundle(100_000);
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("big.jsonl");
    std::fs::write(&file, &bytes).unwrap();
    let size_kib = bytes.len() as u64 / 1024;
    drop(bytes);
    assert!(size_kib > 60 * 1024, "the bundle is {size_kib} KiB");
    let verify = bin("mandate-verify");
    let (code, rss) = peak_rss(&[
        verify.as_os_str(),
        "--key".as_ref(),
        fingerprint.as_ref(),
        file.as_os_str(),
    ]);
    assert_eq!(code, 0);
    // One pass with memory that does not grow with the bundle: far below the file's size.
    assert!(
        rss < 40 * 1024,
        "mandate-verify peaked at {rss} KiB on a {size_kib} KiB bundle"
    );
    let mandate = bin("mandate");
    let data = tmp.path().join("no-data-needed");
    let (code, rss) = peak_rss(&[
        "env".as_ref(),
        format!("MANDATE_DATA_DIR={}", data.display()).as_ref(),
        mandate.as_os_str(),
        "audit".as_ref(),
        "verify".as_ref(),
        file.as_os_str(),
    ]);
    assert_eq!(code, 0);
    assert!(
        rss < 48 * 1024,
        "mandate audit verify peaked at {rss} KiB on a {size_kib} KiB bundle"
    );
}

/// The independent Python verifier (written from AUDIT_FORMAT.md alone) checks a report's
/// signed page digests too: an edited page, or edited digests, fail there as in Mandate, and
/// a report made now is not "evidence only".
#[test]
fn the_python_verifier_fails_a_report_whose_page_or_page_digests_were_edited() {
    let env = Env::new();
    env.seed();
    for i in 0..20 {
        env.run(&["member", "add", &format!("member-{i}")]).ok();
    }
    let dir = env.dir.path().join("auditor");
    std::fs::create_dir_all(&dir).unwrap();
    let pdf = dir.join("report.pdf");
    env.run(&[
        "audit",
        "export",
        "--format",
        "pdf",
        "--out",
        pdf.to_str().unwrap(),
    ])
    .ok();
    let plain = uncompressed(&pdf);
    std::fs::write(dir.join("page-edited.pdf"), page_digit_changed(&plain, 2)).unwrap();
    // One hex digit of the first page's signed digest changed inside mandate-pages.json.
    let mut raw = std::fs::read(&plain).unwrap();
    let at = find(&raw, b"\"pages\":[\"").unwrap() + 10;
    raw[at] = if raw[at] == b'0' { b'1' } else { b'0' };
    std::fs::write(dir.join("digests-edited.pdf"), &raw).unwrap();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("audit_verifier_py/verify.py");
    let python = |file: &str| -> Run {
        Command::new(crate::fixture::verifier_python())
            .current_dir(&dir)
            .arg(&script)
            .arg(file)
            .output()
            .unwrap()
            .into()
    };
    let ok = python("report.pdf");
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    assert_eq!(ok.json()["evidence_only"], false);
    for (file, says) in [
        ("page-edited.pdf", "page 2 of the report was changed"),
        ("digests-edited.pdf", "signature that does not verify"),
    ] {
        let theirs = python(file);
        assert_eq!(
            theirs.code, 10,
            "{file}: {}{}",
            theirs.stdout, theirs.stderr
        );
        let problems = theirs.json()["problems"].clone();
        assert!(
            problems
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["kind"] == "edited" && p["message"].as_str().unwrap().contains(says)),
            "{file}: {problems}"
        );
        // Mandate's own verifier agrees.
        let ours = cli_verify(&dir, file, &[]);
        assert_eq!(ours.code, 10, "{file}: {}", ours.stdout);
        assert!(ours.stdout.contains(says), "{file}: {}", ours.stdout);
    }
    // A report from before page digests verifies as evidence only there too.
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/audit-vectors/cases");
    let old: Run = Command::new(crate::fixture::verifier_python())
        .arg(&script)
        .arg(docs.join("pdf-pages-edited.pdf"))
        .output()
        .unwrap()
        .into();
    assert_eq!(old.code, 0, "{}", old.stderr);
    assert_eq!(old.json()["evidence_only"], true, "{}", old.stdout);
}

/// The page's peak in Chromium on one file: (verdict, the renderer's peak resident KiB), from
/// `bench.mjs` (the process's VmHWM, as scripts/bench-verify reports it).
fn page_peak(page: &Path, file: &Path) -> (String, u64) {
    let o = Command::new("node")
        .current_dir(browser_driver())
        .arg("bench.mjs")
        .arg(page)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "bench.mjs failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    (
        v["verdict"].as_str().unwrap().to_string(),
        v["renderer_peak_kib"].as_u64().unwrap(),
    )
}

/// The page streams a bundle through one reused buffer: on a 100,000-event (88 MB) bundle its
/// renderer peaks within a few MiB of what a 1,000-event one costs. With the default stream
/// reader it grew by about 85 MiB here (and to 462 MiB at a million events).
#[test]
fn the_verifier_page_verifies_a_100k_event_bundle_without_its_memory_growing() {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Debian's chromium is needed for the verifier page's test (scripts/lib.sh installs it)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let page = tmp.path().join("verify.html");
    std::fs::write(&page, mandate_report::VERIFIER_PAGE).unwrap();
    let mut peaks = Vec::new();
    for n in [1_000, 100_000] {
        let file = tmp.path().join(format!("bundle-{n}.jsonl"));
        std::fs::write(&file, synthetic_bundle(n).0).unwrap();
        let (verdict, peak) = page_peak(&page, &file);
        assert_eq!(verdict, "ok", "{n} events");
        std::fs::remove_file(&file).unwrap();
        peaks.push(peak);
    }
    assert!(
        peaks[1] < peaks[0] + 40 * 1024,
        "the page's renderer peaked at {} KiB on 1,000 events and {} KiB on 100,000",
        peaks[0],
        peaks[1]
    );
}
