//! `mandate audit ...`: verify the audit trail (live, or a bundle or PDF offline), export it
//! (evidence bundle, PDF report, OCSF JSON Lines), make checkpoints and consistency proofs,
//! stream it to a syslog server.
//!
//! Exit codes: 0 when verification passes, 10 when it fails (the trail, bundle or report was
//! tampered with or is damaged), and the usual codes for usage, I/O and keychain problems.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand, ValueEnum};
use mandate_core::Error;
use mandate_core::audit::verify::{BundleOptions, VerifyReport, check_bundle};
use mandate_core::audit::{ExportSelection, ocsf};

use crate::context::{CliError, CliResult, Ctx};
use crate::output;

/// Exit code for a verification that ran and found problems.
pub const VERIFY_FAILED: u8 = 10;

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Verify the live audit trail, or an exported bundle or PDF report offline.
    Verify(VerifyArgs),
    /// Export the audit trail: a PDF report, the evidence bundle, or OCSF JSON Lines.
    Export(ExportArgs),
    /// Sign a checkpoint of the log now and print it (C2SP signed note).
    Checkpoint,
    /// Prove that the log only grew since an older checkpoint (RFC 9162 consistency proof).
    Prove {
        /// A checkpoint file saved earlier (for example from an older export).
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
    /// Send new audit events to a syslog server as they are written (RFC 5424 over TCP).
    Stream(StreamArgs),
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
    /// Organisation name on the PDF's cover.
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

fn read(path: &Path, what: &'static str) -> CliResult<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        CliError::Core(Error::Io {
            action: what,
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    })
}

/// Write `bytes` to `path` through a temporary file in the same folder, so a failed export
/// never leaves half a file.
fn write_out(path: &Path, bytes: &[u8]) -> CliResult {
    let io = |e: std::io::Error| {
        CliError::Core(Error::Io {
            action: "could not write the export to",
            path: path.to_path_buf(),
            reason: format!("{e}; choose a folder you can write to"),
        })
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let res = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(())
}

fn print_report(ctx: &Ctx, r: &VerifyReport, what: &str) -> CliResult {
    if ctx.json {
        output::json(r)?;
    } else {
        if r.ok() {
            println!("OK: {what} verified.");
        } else {
            println!("FAILED: {what} did not verify.");
        }
        println!("  log          {}", r.origin);
        if r.subject == "excerpt" {
            println!(
                "  events       {} (an excerpt of a log of {})",
                r.events, r.log_size
            );
        } else {
            println!("  events       {}", r.events);
        }
        if let Some(c) = &r.newest_checkpoint {
            println!(
                "  checkpoint   {} events, signed {} by {}",
                c.size, c.time, c.key_fingerprint
            );
            println!("  root         {}", c.root);
        }
        println!("  checkpoints  {} verified", r.checkpoints_verified);
        for n in &r.notes {
            println!("  note: {n}");
        }
        for p in &r.problems {
            let at = p.seq.map(|s| format!(" at #{s}")).unwrap_or_default();
            println!(
                "  problem ({}{at}): {}",
                serde_json::to_value(p.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                p.message
            );
        }
    }
    if r.ok() {
        Ok(())
    } else {
        Err(CliError::Exit {
            code: VERIFY_FAILED,
            message: format!(
                "verification failed: {} problem(s); {}",
                r.problems.len(),
                r.problems
                    .first()
                    .map(|p| p.message.clone())
                    .unwrap_or_default()
            ),
        })
    }
}

fn verify(ctx: &mut Ctx, a: VerifyArgs) -> CliResult {
    let Some(file) = a.file else {
        let m = ctx.mandate()?;
        let r = m.verify_audit()?;
        return print_report(ctx, &r, "the audit trail");
    };
    let bytes = read(&file, "could not read")?;
    let mut seen = Vec::new();
    for c in &a.checkpoints {
        let b = read(c, "could not read the checkpoint")?;
        seen.push(String::from_utf8_lossy(&b).into_owned());
    }
    let opts = BundleOptions {
        pinned_keys: a.keys,
        seen_checkpoints: seen,
    };
    let (bundle, what) = if bytes.starts_with(b"%PDF-") {
        match mandate_report::extract_bundle(&bytes) {
            Ok(b) => (b, format!("the report {}", file.display())),
            Err(e) => {
                return Err(CliError::Exit {
                    code: VERIFY_FAILED,
                    message: format!("{}: {e}", file.display()),
                });
            }
        }
    } else {
        (bytes, format!("the bundle {}", file.display()))
    };
    let r = check_bundle(&bundle, &opts);
    print_report(ctx, &r, &what)
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
            write_out(&out, &built.pdf)?;
            let ok = built.data.bundle_check.ok()
                && built.data.store_check.as_ref().is_none_or(|s| s.ok());
            if ctx.json {
                output::json(&serde_json::json!({
                    "out": out,
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
            let e = m.export_audit(&sel, None)?;
            if to_stdout {
                std::io::stdout()
                    .write_all(&e.bundle)
                    .map_err(|e| CliError::Exit {
                        code: 7,
                        message: format!("could not write to standard output: {e}"),
                    })?;
            } else if let Some(out) = &a.out {
                write_out(out, &e.bundle)?;
                eprintln!(
                    "Wrote {} ({} events, checkpoint of {} events).",
                    out.display(),
                    e.events.len(),
                    e.checkpoint.checkpoint.size
                );
            }
            Ok(())
        }
        Format::Jsonl => {
            let e = m.export_audit(&sel, None)?;
            let origin = m.audit_origin();
            let mut buf = Vec::new();
            for ev in &e.events {
                if let Ok(line) = serde_json::to_vec(&ocsf::to_ocsf(&origin, ev)) {
                    buf.extend_from_slice(&line);
                    buf.push(b'\n');
                }
            }
            if to_stdout {
                std::io::stdout()
                    .write_all(&buf)
                    .map_err(|e| CliError::Exit {
                        code: 7,
                        message: format!("could not write to standard output: {e}"),
                    })?;
            } else if let Some(out) = &a.out {
                write_out(out, &buf)?;
            }
            Ok(())
        }
    }
}

pub fn run(ctx: &mut Ctx, cmd: AuditCmd) -> CliResult {
    match cmd {
        AuditCmd::Verify(a) => verify(ctx, a),
        AuditCmd::Export(a) => export(ctx, a),
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
            let m = ctx.mandate()?;
            let text = String::from_utf8_lossy(&read(&from, "could not read the checkpoint")?)
                .into_owned();
            let old = mandate_core::audit::note::SignedCheckpoint::parse(&text)
                .map_err(|e| CliError::Core(Error::Invalid(format!("{}: {e}", from.display()))))?;
            let (new, proof) = m.audit_consistency_proof(old.checkpoint.size)?;
            let ok = mandate_core::audit::merkle::verify_consistency(
                old.checkpoint.size,
                new.checkpoint.size,
                &old.checkpoint.root,
                &new.checkpoint.root,
                &proof,
            );
            output::json(&serde_json::json!({
                "from": old.checkpoint.size,
                "to": new.checkpoint.size,
                "proof": proof.iter().map(|h| mandate_core::audit::hex(h)).collect::<Vec<_>>(),
                "old_checkpoint": old.text,
                "new_checkpoint": new.text,
                "consistent": ok,
            }))?;
            if ok {
                Ok(())
            } else {
                Err(CliError::Exit {
                    code: VERIFY_FAILED,
                    message: format!(
                        "the log is not consistent with {}: it did not only grow since then",
                        from.display()
                    ),
                })
            }
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
