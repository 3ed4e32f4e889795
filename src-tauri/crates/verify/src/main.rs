//! `mandate-verify`: check a Mandate audit report (PDF) or evidence bundle (JSON Lines) offline.
//!
//! For an auditor who prefers a terminal to the verifier page and has no reason to install
//! Mandate: one static binary with no keychain, GTK, WebKit or database. It runs the same
//! verifier as `mandate audit verify` (the `mandate-audit-format` crate), prints the same
//! report and uses the same exit codes (0 verified, 10 failed, 2 usage, 3 bad input, 7 the file
//! could not be read). A bundle is read as a stream, so memory does not grow with its size.
//!
//! What it is not: a way to make or change evidence. It reads files and prints a verdict.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use mandate_audit_format::cosignature::WitnessKey;
use mandate_audit_format::note::{NoteKey, SignedCheckpoint};
use mandate_audit_format::pdf::{AttachmentError, check_report};
use mandate_audit_format::verify::{BundleCheck, BundleOptions, VerifyReport};

const USAGE: &str = "\
Verify a Mandate audit report (PDF) or evidence bundle (JSON Lines), offline.

Usage: mandate-verify [OPTIONS] FILE

Options:
  --key KEY          Trust only this key: the SHA256: fingerprint shown in Mandate and on the
                     report's cover, a JWK thumbprint, or a signed-note verifier key. Repeat
                     for several. Without it, the keys the file lists are trusted and their
                     fingerprints printed for you to compare.
  --checkpoint FILE  A checkpoint you saved before (`mandate audit checkpoint`): the file must
                     be consistent with it and not older. Repeat for several.
  --witness KEY      A witness that must have cosigned a checkpoint in the file (C2SP
                     cosignature/v1): its verifier key (NAME+KEYID+KEY, as `mandate team
                     witness key` prints it) or a file holding it. Repeat for several.
  --json             Print the result as JSON (the same fields as `mandate audit verify --json`).
  -h, --help         Print this help.
  -V, --version      Print the version.

Exit codes:
  0   verified
  2   usage error
  3   invalid input (a --key, --checkpoint or --witness that is not one)
  7   a file could not be read
  10  verification failed (tampered with, damaged, cut off, or not signed by the key you trust)
";

const VERIFY_FAILED: u8 = 10;
const INVALID: u8 = 3;
const USAGE_ERROR: u8 = 2;
const UNREADABLE: u8 = 7;

/// A failure before or instead of a verdict: its exit code and what to do.
struct Fail(u8, String);

struct Args {
    file: PathBuf,
    keys: Vec<String>,
    checkpoints: Vec<PathBuf>,
    witnesses: Vec<String>,
    json: bool,
}

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(code, message)) => {
            if !message.is_empty() {
                eprintln!("mandate-verify: {message}");
            }
            ExitCode::from(code)
        }
    }
}

fn parse_args(args: Vec<String>) -> Result<Option<Args>, Fail> {
    let usage = |m: String| Fail(USAGE_ERROR, format!("{m}; run `mandate-verify --help`"));
    let mut it = args.into_iter();
    let (mut file, mut keys, mut checkpoints, mut json) = (None, Vec::new(), Vec::new(), false);
    let mut witnesses = Vec::new();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(None);
            }
            "-V" | "--version" => {
                println!("mandate-verify {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            "--json" => json = true,
            "--key" => keys.push(
                it.next()
                    .ok_or_else(|| usage("--key needs a value".into()))?,
            ),
            "--checkpoint" => checkpoints.push(PathBuf::from(
                it.next()
                    .ok_or_else(|| usage("--checkpoint needs a file".into()))?,
            )),
            "--witness" => witnesses.push(
                it.next()
                    .ok_or_else(|| usage("--witness needs a key or a file".into()))?,
            ),
            s if s.starts_with("--witness=") => witnesses.push(s["--witness=".len()..].to_string()),
            s if s.starts_with("--key=") => keys.push(s["--key=".len()..].to_string()),
            s if s.starts_with("--checkpoint=") => {
                checkpoints.push(PathBuf::from(&s["--checkpoint=".len()..]))
            }
            s if s.starts_with('-') && s != "-" => {
                return Err(usage(format!("unknown option '{s}'")));
            }
            _ if file.is_some() => return Err(usage("give one file to verify".into())),
            _ => file = Some(PathBuf::from(a)),
        }
    }
    let file = file.ok_or_else(|| usage("give the report or bundle to verify".into()))?;
    Ok(Some(Args {
        file,
        keys,
        checkpoints,
        witnesses,
        json,
    }))
}

fn unreadable(path: &Path, e: std::io::Error) -> Fail {
    Fail(
        UNREADABLE,
        format!(
            "could not read {}: {e}; check the path, and that you may read the file",
            path.display()
        ),
    )
}

fn run(args: Vec<String>) -> Result<(), Fail> {
    let Some(args) = parse_args(args)? else {
        return Ok(());
    };
    for k in &args.keys {
        let b64url = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        let fingerprint = k.strip_prefix("SHA256:").is_some_and(b64url);
        let thumbprint = k.len() == 43 && b64url(k);
        if !fingerprint && !thumbprint && NoteKey::parse_vkey(k).is_err() {
            return Err(Fail(
                INVALID,
                format!(
                    "--key '{k}' is not a key: give the SHA256: fingerprint shown in Mandate and \
                     on the report's cover, or a signed-note verifier key (NAME+KEYID+KEY)"
                ),
            ));
        }
    }
    let mut witnesses = Vec::new();
    for w in &args.witnesses {
        let p = Path::new(w);
        let key = if p.is_file() {
            let bytes = std::fs::read(p).map_err(|e| unreadable(p, e))?;
            String::from_utf8_lossy(&bytes).trim().to_string()
        } else {
            w.clone()
        };
        WitnessKey::parse_vkey(&key).map_err(|e| {
            Fail(
                INVALID,
                format!(
                    "--witness {w}: {e}; give the witness's verifier key as `mandate team \
                     witness key` prints it, or a file holding it"
                ),
            )
        })?;
        witnesses.push(key);
    }
    let mut seen = Vec::new();
    for c in &args.checkpoints {
        let bytes = std::fs::read(c).map_err(|e| unreadable(c, e))?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let cp = SignedCheckpoint::parse(&text).map_err(|e| {
            Fail(
                INVALID,
                format!(
                    "--checkpoint {} is not a signed checkpoint ({e}): pass a file saved from \
                     `mandate audit checkpoint` or a copy of audit-checkpoint.txt",
                    c.display()
                ),
            )
        })?;
        seen.push(cp.text);
    }
    let opts = BundleOptions {
        pinned_keys: args.keys,
        seen_checkpoints: seen,
        witnesses,
    };
    let path = &args.file;
    let mut f = std::fs::File::open(path).map_err(|e| unreadable(path, e))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut n = fill(&mut f, &mut buf).map_err(|e| unreadable(path, e))?;
    let (report, what) = if buf[..n].starts_with(b"%PDF-") {
        // A report is read whole: its attachment is found through the PDF's structure.
        let mut bytes = buf[..n].to_vec();
        f.read_to_end(&mut bytes).map_err(|e| unreadable(path, e))?;
        let report = check_report(&bytes, &opts).map_err(|e| {
            let advice = match e {
                AttachmentError::NoAttachment => {
                    "verify the original report, or the evidence bundle exported with it"
                }
                _ => "the file is damaged: get the original report again",
            };
            Fail(
                VERIFY_FAILED,
                format!(
                    "the report {} did not verify: {e}; {advice}",
                    path.display()
                ),
            )
        })?;
        (report, format!("the report {}", path.display()))
    } else {
        // A bundle streams: one pass, and memory that does not grow with the file.
        let mut check = BundleCheck::new(opts);
        while n > 0 {
            check.feed(&buf[..n]);
            n = fill(&mut f, &mut buf).map_err(|e| unreadable(path, e))?;
        }
        (check.finish(), format!("the bundle {}", path.display()))
    };
    print(&report, &what, args.json)
}

/// Fill `buf` as far as the file allows; the number of bytes read (0 at the end).
fn fill(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn print(report: &VerifyReport, what: &str, json: bool) -> Result<(), Fail> {
    if json {
        let text = serde_json::to_string_pretty(report)
            .map_err(|e| Fail(1, format!("could not write the result as JSON: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", report.to_text(what));
    }
    if report.ok() {
        Ok(())
    } else {
        Err(Fail(
            VERIFY_FAILED,
            format!(
                "{what} did not verify: {}",
                report.summary().unwrap_or_default()
            ),
        ))
    }
}
