//! `mandate audit ...`: verify the audit trail (live, or a bundle or PDF offline), export it
//! (evidence bundle, PDF report, OCSF JSON Lines), make checkpoints and consistency proofs,
//! stream it to a syslog server.
//!
//! Exit codes: 0 when verification passes, 10 when it fails (the trail, bundle or report was
//! tampered with or is damaged; an export or proof over such a trail refuses with 10 too), 3
//! for a `--key` or `--checkpoint` that is not one, and the usual codes for usage (2), the
//! keychain (6) and I/O (7). A failure ends with one line on stderr: the main problem and what
//! to do (`VerifyReport::summary`). Exports go through a temporary file made before any work
//! (`Staged`), renamed into place only when complete; one left by a killed export is removed
//! by the next export to the same place.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand, ValueEnum};
use mandate_core::Error;
use mandate_core::audit::note::{NoteKey, SignedCheckpoint};
use mandate_core::audit::verify::{BundleCheck, BundleOptions, VerifyReport};
use mandate_core::audit::{ExportSelection, LiveCheck, ocsf};

use crate::context::{CliError, CliResult, Ctx};
use crate::output;

/// Exit code for a verification that ran and found problems.
pub const VERIFY_FAILED: u8 = 10;

const VERIFY_HELP: &str = "\
Without FILE, the live trail on this machine is verified: every event, its batch tag (made with
a key kept in the OS keychain), every checkpoint, and the copies of the newest checkpoint kept
beside the database and in the keychain. --key and --checkpoint apply to it as to a file.

Exit codes:
  0   verified
  10  verification failed: the trail, bundle or report was altered, is damaged or cut off, is
      not a Mandate bundle or report (a PDF without the attached bundle), is older than or
      inconsistent with a checkpoint you brought, or is not signed by the key you trust; the
      last line on stderr says what is wrong and what to do
  2   usage error (unknown flag, missing value)
  3   a --key value is not a key, or a --checkpoint file is not a signed checkpoint
  6   the live trail: the OS keychain is locked or unavailable, or lacks the issuer key
  7   a file could not be read (the message names it), or the data folder could not be used";

const VERIFIER_HELP: &str = "\
The page is self-contained: the verifier is inlined as WebAssembly, and the page fetches
nothing and uploads nothing. Give it to an auditor with the report; every PDF report also
carries it as an attachment (mandate-verifier.html). Open it, drop the report or bundle on it,
and compare the key fingerprint it shows with the one in the app or `mandate jwks export`.

Exit codes:
  0   written
  5   FILE exists (pass --force to replace it)
  7   FILE could not be written (the message says why)";

const EXPORT_HELP: &str = "\
Mandate first verifies the whole trail on this machine; if it does not verify, nothing is
signed or written (exit 10; run `mandate audit verify` to see every problem).

Exit codes:
  0   written
  10  the trail failed verification, so the export was refused
  3   invalid input (--since after --until, a PDF without --out)
  4   no such agent
  6   the OS keychain is locked or unavailable, or lacks the issuer key
  7   the export could not be written (the message names the place), or the data folder
      could not be used";

const PROVE_HELP: &str = "\
Mandate verifies the whole trail first, holding it against the checkpoint you give: the proof
is given only when the trail verifies and matches that checkpoint event for event.

Exit codes:
  0   consistent: the log only grew since that checkpoint (the JSON holds the proof)
  10  not consistent, or the trail failed verification: events that checkpoint covers were
      changed, the log is older than it (rolled back), or it is from another log or key
  3   the file is not a signed checkpoint
  6   the OS keychain is locked or unavailable, or lacks the issuer key
  7   the file could not be read, or the data folder could not be used";

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Verify the live audit trail, or an exported bundle or PDF report offline.
    #[command(after_help = VERIFY_HELP)]
    Verify(VerifyArgs),
    /// Export the audit trail: a PDF report, the evidence bundle, or OCSF JSON Lines.
    #[command(after_help = EXPORT_HELP)]
    Export(ExportArgs),
    /// Sign a checkpoint of the log now and print it (C2SP signed note).
    Checkpoint,
    /// Prove that the log only grew since an older checkpoint (RFC 9162 consistency proof).
    #[command(after_help = PROVE_HELP)]
    Prove {
        /// A checkpoint file saved earlier (for example from an older export).
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
    /// Send new audit events to a syslog server as they are written (RFC 5424 over TCP).
    Stream(StreamArgs),
    /// Write the verifier page: one HTML file that verifies a report or bundle in any browser,
    /// offline, with the same verifier as `mandate audit verify`.
    #[command(after_help = VERIFIER_HELP)]
    Verifier {
        /// Where to write the page, e.g. verify.html.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// An evidence bundle (.jsonl) or PDF report to verify offline; without it, the live store.
    file: Option<PathBuf>,
    /// Trust only this issuer key (a `SHA256:` fingerprint or a signed-note verifier key).
    #[arg(long = "key", value_name = "KEY")]
    keys: Vec<String>,
    /// A checkpoint you saw before (a signed-note file): the bundle must not be older than it
    /// and must be consistent with it.
    #[arg(long = "checkpoint", value_name = "FILE")]
    checkpoints: Vec<PathBuf>,
    /// A witness that must have cosigned a checkpoint in FILE (C2SP cosignature/v1): its
    /// verifier key (NAME+KEYID+KEY, as `mandate team witness key` prints it) or a file
    /// holding it. Repeat for several; a missing or bad cosignature fails with the reason.
    #[arg(long = "witness", value_name = "KEY", requires = "file")]
    witnesses: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The due-diligence PDF with the evidence bundle attached.
    Pdf,
    /// The evidence bundle (JSON Lines with checkpoints, hashes or proofs, sealed).
    Bundle,
    /// One OCSF-shaped JSON object per line, for SIEMs.
    Jsonl,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[arg(long, value_enum)]
    format: Format,
    /// Where to write; `-` (the default for bundle and jsonl) is standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Only this agent's events (with inclusion proofs).
    #[arg(long, value_name = "NAME")]
    agent: Option<String>,
    /// Only events at or after this time (RFC 3339, or a date: 2026-11-01).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    since: Option<DateTime<Utc>>,
    /// Only events before this time.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    until: Option<DateTime<Utc>>,
    /// Organisation name on the PDF's cover (default: the one set with `mandate org` or in the
    /// app's Settings).
    #[arg(long, value_name = "NAME")]
    org: Option<String>,
}

#[derive(Debug, Args)]
pub struct StreamArgs {
    /// The syslog server, HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    syslog: String,
    /// Use TLS (RFC 5425).
    #[arg(long)]
    tls: bool,
    /// A PEM file of CA certificates to trust for TLS (default: the system's).
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Send what is pending and exit instead of following new events.
    #[arg(long)]
    once: bool,
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(t.and_utc());
    }
    Err(format!(
        "'{s}' is not a time: write 2026-11-01 or 2026-11-01T09:00:00Z"
    ))
}

fn is_b64url(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn read(path: &Path, what: &'static str) -> CliResult<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        CliError::Core(Error::Io {
            action: what,
            path: path.to_path_buf(),
            reason: format!("{e}; check the path, and that you may read the file"),
        })
    })
}

/// An export on its way to `path`: a temporary file beside it, made before any work so an
/// unwritable destination fails at once (before a checkpoint is signed or a PDF is built),
/// filled and synced, then renamed over `path`. Dropped without [`Staged::commit`], it
/// removes the temporary file, so a failed export never leaves half a file.
struct Staged {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<std::fs::File>,
}

impl Staged {
    fn io(path: &Path, e: &std::io::Error) -> CliError {
        let hint = match e.kind() {
            std::io::ErrorKind::PermissionDenied => "choose a folder you can write to",
            std::io::ErrorKind::NotFound => "create the folder first, or choose another",
            std::io::ErrorKind::NotADirectory => {
                "part of that path is a file, not a folder: choose another path"
            }
            _ => "choose a folder you can write to",
        };
        CliError::Core(Error::Io {
            action: "could not write the export to",
            path: path.to_path_buf(),
            reason: format!("{e}; {hint}"),
        })
    }

    fn create(path: &Path) -> CliResult<Staged> {
        if path.is_dir() {
            return Err(CliError::Core(Error::Io {
                action: "could not write the export to",
                path: path.to_path_buf(),
                reason: "it is a folder; give a file name inside it".into(),
            }));
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "export".into());
        remove_stale(&dir, &name);
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Self::io(path, &e))?;
        // Held until the file is renamed or removed, and released by the OS if this process is
        // killed: how the next export tells a live temporary file from a stale one. Where the
        // file system has no locks, exports still work; stale files are then left alone.
        let _ = fs4::FileExt::try_lock(&file);
        Ok(Staged {
            path: path.to_path_buf(),
            tmp,
            file: Some(file),
        })
    }

    fn commit(mut self, bytes: &[u8]) -> CliResult {
        let mut f = self.file.take().ok_or_else(|| CliError::Exit {
            code: 1,
            message: "the export file was already written".into(),
        })?;
        let res = (|| -> std::io::Result<()> {
            f.write_all(bytes)?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&self.tmp, &self.path)
        })();
        res.map_err(|e| Self::io(&self.path, &e))
    }
}

/// Remove the temporary files of earlier exports to `dir/name` that were killed before they
/// finished: `.NAME.PID.tmp` files that no process holds locked. Another export still writing
/// holds its lock, so its file stays; files of other names are never touched.
fn remove_stale(dir: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|n| n.strip_suffix(".tmp"))
        else {
            continue;
        };
        if pid.is_empty()
            || !pid.bytes().all(|b| b.is_ascii_digit())
            || !entry.file_type().is_ok_and(|t| t.is_file())
        {
            continue;
        }
        let path = entry.path();
        let Ok(f) = std::fs::OpenOptions::new().write(true).open(&path) else {
            continue;
        };
        if fs4::FileExt::try_lock(&f).is_ok() {
            let _ = std::fs::remove_file(&path);
        }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        // After a successful rename the temporary name is gone and this does nothing.
        let _ = std::fs::remove_file(&self.tmp);
    }
}

fn print_report(ctx: &Ctx, r: &VerifyReport, what: &str) -> CliResult {
    if ctx.json {
        output::json(r)?;
    } else {
        print!("{}", r.to_text(what));
    }
    if r.ok() {
        Ok(())
    } else {
        Err(CliError::Exit {
            code: VERIFY_FAILED,
            message: format!("{what} did not verify: {}", r.summary().unwrap_or_default()),
        })
    }
}

/// The reader's `--key` values, checked to be keys at all: a typo is not a failed
/// verification (exit 3, not 10).
fn keys_given(keys: &[String]) -> CliResult<Vec<String>> {
    for k in keys {
        let fingerprint = k.strip_prefix("SHA256:").is_some_and(is_b64url);
        let thumbprint = k.len() == 43 && is_b64url(k);
        if !fingerprint && !thumbprint && NoteKey::parse_vkey(k).is_err() {
            return Err(CliError::Core(Error::Invalid(format!(
                "--key '{k}' is not a key: give the SHA256: fingerprint shown in the app and on \
                 the report's cover, or a signed-note verifier key (NAME+KEYID+KEY)"
            ))));
        }
    }
    Ok(keys.to_vec())
}

/// A checkpoint file the reader brings, read and checked to be a signed note (exit 7 when it
/// cannot be read, 3 when it is not a checkpoint).
fn checkpoint_given(path: &Path, flag: &str) -> CliResult<SignedCheckpoint> {
    let text = String::from_utf8_lossy(&read(path, "could not read the checkpoint")?).into_owned();
    SignedCheckpoint::parse(&text).map_err(|e| {
        CliError::Core(Error::Invalid(format!(
            "{flag} {} is not a signed checkpoint ({e}): pass a file saved from `mandate audit \
             checkpoint` or a copy of audit-checkpoint.txt",
            path.display()
        )))
    })
}

fn verify(ctx: &mut Ctx, a: VerifyArgs) -> CliResult {
    // What the reader brings must at least be well formed, for a file and the live trail alike.
    let keys = keys_given(&a.keys)?;
    let mut seen = Vec::new();
    for c in &a.checkpoints {
        seen.push(checkpoint_given(c, "--checkpoint")?.text);
    }
    let Some(file) = a.file else {
        let m = ctx.mandate()?;
        let r = m.verify_audit_with(&LiveCheck {
            pinned_keys: keys,
            seen_checkpoints: seen,
        })?;
        return print_report(ctx, &r, "the audit trail");
    };
    let mut witnesses = Vec::new();
    for w in &a.witnesses {
        let p = std::path::Path::new(w);
        let key = if p.is_file() {
            String::from_utf8_lossy(&read(p, "could not read the witness key file")?)
                .trim()
                .to_string()
        } else {
            w.clone()
        };
        mandate_core::audit::cosignature::WitnessKey::parse_vkey(&key).map_err(|e| {
            CliError::Core(Error::Invalid(format!(
                "--witness {w}: {e}; give the witness's verifier key as `mandate team witness \
                 key` prints it, or a file holding it"
            )))
        })?;
        witnesses.push(key);
    }
    let opts = BundleOptions {
        pinned_keys: keys,
        seen_checkpoints: seen,
        witnesses,
    };
    let io = |e: std::io::Error| {
        CliError::Core(Error::Io {
            action: "could not read",
            path: file.clone(),
            reason: format!("{e}; check the path, and that you may read the file"),
        })
    };
    let mut f = std::fs::File::open(&file).map_err(io)?;
    let mut start = [0u8; 5];
    let n = read_up_to(&mut f, &mut start).map_err(io)?;
    if &start[..n] != b"%PDF-" {
        // A bundle streams: one pass, and memory that does not grow with the file.
        let mut check = BundleCheck::new(opts);
        check.feed(&start[..n]);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let got = read_up_to(&mut f, &mut buf).map_err(io)?;
            if got == 0 {
                break;
            }
            check.feed(&buf[..got]);
        }
        let r = check.finish();
        return print_report(ctx, &r, &format!("the bundle {}", file.display()));
    }
    drop(f);
    let bytes = read(&file, "could not read")?;
    // A report: its attached bundle, and its pages against the digests signed with it.
    let r = match mandate_core::audit::pdf::check_report(&bytes, &opts) {
        Ok(r) => r,
        Err(e) => {
            use mandate_core::audit::pdf::AttachmentError;
            let advice = match e {
                AttachmentError::NoAttachment => {
                    "verify the original report, or the evidence bundle exported with it \
                     (`mandate audit export --format bundle`)"
                }
                _ => "the file is damaged: get the original report again",
            };
            if ctx.json {
                output::json(&VerifyReport::unreadable(e.to_string()))?;
            }
            return Err(CliError::Exit {
                code: VERIFY_FAILED,
                message: format!(
                    "the report {} did not verify: {e}; {advice}",
                    file.display()
                ),
            });
        }
    };
    print_report(ctx, &r, &format!("the report {}", file.display()))
}

/// Fill `buf` as far as the file allows; the number of bytes read (0 at the end).
fn read_up_to(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read as _;
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

fn export(ctx: &mut Ctx, a: ExportArgs) -> CliResult {
    let m = ctx.mandate()?;
    let sel = ExportSelection {
        agent: a.agent.clone(),
        since: a.since,
        until: a.until,
    };
    if let (Some(s), Some(u)) = (a.since, a.until)
        && s >= u
    {
        return Err(CliError::Core(Error::Invalid(
            "--since must be before --until".into(),
        )));
    }
    let to_stdout = a.out.as_deref().is_none_or(|p| p == Path::new("-"));
    match a.format {
        Format::Pdf => {
            let Some(out) = a.out.filter(|_| !to_stdout) else {
                return Err(CliError::Core(Error::Invalid(
                    "a PDF needs --out FILE".into(),
                )));
            };
            let staged = Staged::create(&out)?;
            let show = !ctx.json && std::io::IsTerminal::is_terminal(&std::io::stderr());
            let opts = mandate_report::PdfOptions {
                organisation: a.org,
                selection: sel,
            };
            let mut progress = |pct: u32, stage: &str| {
                if show {
                    eprint!("\r{pct:>3}% {stage:<40}");
                }
            };
            let built = mandate_report::build(&m, &opts, &mut progress).map_err(|e| match e {
                mandate_report::ReportError::Core(c) => CliError::Core(c),
                other => CliError::Exit {
                    code: 1,
                    message: other.to_string(),
                },
            })?;
            if show {
                eprintln!();
            }
            staged.commit(&built.pdf)?;
            let ok = built.data.bundle_check.ok()
                && built.data.store_check.as_ref().is_none_or(|s| s.ok());
            if ctx.json {
                output::json(&serde_json::json!({
                    "out": out,
                    "organisation": built.data.organisation,
                    "events": built.data.events.len(),
                    "checkpoint": {"size": built.data.checkpoint_size, "root": built.data.checkpoint_root},
                    "key_fingerprint": built.data.key_fingerprint,
                    "verified": ok,
                }))?;
            } else {
                println!(
                    "Wrote {} ({} events, checkpoint of {} events, root {}).",
                    out.display(),
                    built.data.events.len(),
                    built.data.checkpoint_size,
                    built.data.checkpoint_root
                );
            }
            if !ok {
                return Err(CliError::Exit {
                    code: VERIFY_FAILED,
                    message: "the report was written, but the audit trail did not verify: see \
                              its cover"
                        .into(),
                });
            }
            Ok(())
        }
        Format::Bundle => {
            let staged = match &a.out {
                Some(out) if !to_stdout => Some(Staged::create(out)?),
                _ => None,
            };
            let e = m.export_audit(&sel, None)?;
            if let (Some(staged), Some(out)) = (staged, &a.out) {
                staged.commit(&e.bundle)?;
                eprintln!(
                    "Wrote {} ({} events, checkpoint of {} events).",
                    out.display(),
                    e.events.len(),
                    e.checkpoint.checkpoint.size
                );
            } else {
                std::io::stdout()
                    .write_all(&e.bundle)
                    .map_err(|e| CliError::Exit {
                        code: 7,
                        message: format!("could not write to standard output: {e}"),
                    })?;
            }
            Ok(())
        }
        Format::Jsonl => {
            let staged = match &a.out {
                Some(out) if !to_stdout => Some(Staged::create(out)?),
                _ => None,
            };
            let e = m.export_audit(&sel, None)?;
            let origin = m.audit_origin();
            let mut buf = Vec::new();
            for ev in &e.events {
                if let Ok(line) = serde_json::to_vec(&ocsf::to_ocsf(&origin, ev)) {
                    buf.extend_from_slice(&line);
                    buf.push(b'\n');
                }
            }
            if let Some(staged) = staged {
                staged.commit(&buf)?;
            } else {
                std::io::stdout()
                    .write_all(&buf)
                    .map_err(|e| CliError::Exit {
                        code: 7,
                        message: format!("could not write to standard output: {e}"),
                    })?;
            }
            Ok(())
        }
    }
}

pub fn run(ctx: &mut Ctx, cmd: AuditCmd) -> CliResult {
    match cmd {
        AuditCmd::Verify(a) => verify(ctx, a),
        AuditCmd::Export(a) => export(ctx, a),
        AuditCmd::Verifier { out, force } => {
            if !mandate_report::verifier_page_built() {
                return Err(CliError::Exit {
                    code: 1,
                    message: "this build of mandate holds no verifier page: build it with \
                              scripts/build-verifier-page and rebuild mandate"
                        .into(),
                });
            }
            if out.exists() && !force {
                return Err(CliError::Core(Error::Conflict(format!(
                    "{} already exists: choose another file name, or pass --force to replace it",
                    out.display()
                ))));
            }
            Staged::create(&out)?.commit(mandate_report::VERIFIER_PAGE.as_bytes())?;
            if ctx.json {
                output::json(&serde_json::json!({
                    "written": out.display().to_string(),
                    "bytes": mandate_report::VERIFIER_PAGE.len(),
                }))?;
            } else {
                println!(
                    "Wrote the verifier page to {} ({} KB). Open it in a browser and drop a \
                     report or bundle on it; it works offline.",
                    out.display(),
                    mandate_report::VERIFIER_PAGE.len() / 1024
                );
            }
            Ok(())
        }
        AuditCmd::Checkpoint => {
            let m = ctx.mandate()?;
            let cp = m.audit_checkpoint()?;
            if ctx.json {
                output::json(&serde_json::json!({
                    "size": cp.checkpoint.size,
                    "root": mandate_core::audit::hex(&cp.checkpoint.root),
                    "note": cp.text,
                }))
            } else {
                print!("{}", cp.text);
                Ok(())
            }
        }
        AuditCmd::Prove { from } => {
            let old = checkpoint_given(&from, "--from")?;
            let m = ctx.mandate()?;
            let (new, proof) = m.audit_consistency_proof(&old)?;
            // The core verified the trail against `old`; the proof is checked once more here,
            // as any reader would check it.
            let ok = mandate_core::audit::merkle::verify_consistency(
                old.checkpoint.size,
                new.checkpoint.size,
                &old.checkpoint.root,
                &new.checkpoint.root,
                &proof,
            );
            if !ok {
                return Err(CliError::Exit {
                    code: VERIFY_FAILED,
                    message: format!(
                        "the log is not consistent with {}: it did not only grow since then",
                        from.display()
                    ),
                });
            }
            output::json(&serde_json::json!({
                "from": old.checkpoint.size,
                "to": new.checkpoint.size,
                "proof": proof.iter().map(|h| mandate_core::audit::hex(h)).collect::<Vec<_>>(),
                "old_checkpoint": old.text,
                "new_checkpoint": new.text,
                "consistent": true,
            }))
        }
        AuditCmd::Stream(a) => {
            use mandate_core::audit::syslog::{StreamOptions, SyslogTarget};
            let m = ctx.mandate()?;
            let target = SyslogTarget {
                address: a.syslog,
                tls: a.tls,
                ca_file: a.ca,
            };
            let hostname = std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty() && h.is_ascii())
                .unwrap_or_else(|| "-".into());
            let opts = StreamOptions {
                once: a.once,
                max_attempts: a.once.then_some(5),
                hostname,
                ..Default::default()
            };
            // Ctrl-C ends the process; the cursor is saved after every delivered batch, so
            // the next run resumes where this one stopped.
            let stop = std::sync::atomic::AtomicBool::new(false);
            let sent = m.stream_audit_syslog(&target, &opts, &stop, &mut |e| {
                eprintln!("warning: {e}");
            })?;
            if ctx.json {
                output::json(
                    &serde_json::json!({"sent": sent, "destination": target.destination()}),
                )
            } else {
                println!("Sent {sent} audit events to {}.", target.destination());
                Ok(())
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::Staged;

    fn names(dir: &std::path::Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_staged_export_replaces_the_file_whole_or_leaves_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("report.pdf");
        std::fs::write(&out, b"the previous report").unwrap();

        // Abandoned (the export failed before writing): the old file stays, no temp file.
        drop(Staged::create(&out).unwrap());
        assert_eq!(names(dir.path()), ["report.pdf"]);
        assert_eq!(std::fs::read(&out).unwrap(), b"the previous report");

        // The rename fails (the destination became a folder meanwhile): an error, and again
        // nothing half-written is left.
        let other = dir.path().join("other.pdf");
        let staged = Staged::create(&other).unwrap();
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join("keep"), b"x").unwrap();
        assert!(staged.commit(b"new bytes").is_err());
        assert_eq!(names(dir.path()), ["other.pdf", "report.pdf"]);
        assert_eq!(names(&other), ["keep"]);

        // Committed: the new bytes, whole, and no temp file.
        Staged::create(&out).unwrap().commit(b"new report").unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"new report");
        assert_eq!(names(dir.path()), ["other.pdf", "report.pdf"]);
    }
}
