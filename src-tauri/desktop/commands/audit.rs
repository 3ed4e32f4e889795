//! The audit timeline: pages of events, verification, and exports (PDF, JSON Lines) with
//! progress and a native save dialog.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use mandate_core::audit::verify::{self, ProblemKind};
use mandate_core::audit::{Actor, AuditEvent, Decision, ExportSelection, Target};
use mandate_core::views::AuditFilter;
use mandate_core::{ErrorCode, ErrorReport};
use serde::{Deserialize, Serialize};
use tauri::ipc::Channel;
use tauri::{AppHandle, State};
use tauri_plugin_dialog::DialogExt;

use super::blocking;
use crate::AppState;

/// Which events the timeline shows. Every field narrows; all empty means every event.
#[derive(Debug, Clone, Default, Deserialize, specta::Type)]
pub struct AuditQuery {
    pub agent: Option<String>,
    /// An exact action, or a prefix ending in a dot (`token.`).
    pub action: Option<String>,
    pub decision: Option<Decision>,
    /// A team member's name: events they did or that were done on their behalf.
    pub member: Option<String>,
    /// Events at or after this time: RFC 3339 (`2026-11-01T09:00:00+01:00`) or a date
    /// (`2026-11-01`, midnight UTC, as on the command line).
    pub since: Option<String>,
    /// Events before this time (exclusive), written like `since`.
    pub until: Option<String>,
}

/// An RFC 3339 time or a date (midnight UTC); empty means none.
fn parse_time(field: &str, s: Option<&str>) -> Result<Option<DateTime<Utc>>, ErrorReport> {
    let Some(s) = s.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(Some(t.and_utc()));
    }
    Err(ErrorReport {
        code: ErrorCode::InvalidInput,
        message: format!(
            "'{s}' is not a time for {field}: write 2026-11-01 or 2026-11-01T09:00:00Z"
        ),
    })
}

impl AuditQuery {
    /// The core's filter; an unreadable time is refused with the form to use.
    pub fn filter(self) -> Result<AuditFilter, ErrorReport> {
        Ok(AuditFilter {
            since: parse_time("the start of the range", self.since.as_deref())?,
            until: parse_time("the end of the range", self.until.as_deref())?,
            agent: self.agent,
            action: self.action,
            decision: self.decision,
            member: self.member,
        })
    }
}

// Sequence numbers and counts are `u64` in the core; JavaScript numbers hold them exactly up
// to 2^53, far beyond any audit log, so the IPC types say `number` (specta refuses to guess).
type Num = specta_typescript::Number;

/// An audit event as the timeline shows it (the core's `AuditEvent`, with `seq` as a number).
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct TimelineEvent {
    #[specta(type = Num)]
    pub seq: u64,
    pub time: String,
    pub actor: Actor,
    pub on_behalf_of: Option<Actor>,
    pub agent: Option<String>,
    pub action: String,
    pub target: Option<Target>,
    pub decision: Decision,
    pub reason: Option<String>,
    /// Plain JSON: names, ids and hashes, never secrets.
    #[specta(type = specta_typescript::Unknown)]
    pub details: serde_json::Value,
}

impl From<AuditEvent> for TimelineEvent {
    fn from(e: AuditEvent) -> Self {
        TimelineEvent {
            seq: e.seq,
            time: e.time,
            actor: e.actor,
            on_behalf_of: e.on_behalf_of,
            agent: e.agent,
            action: e.action,
            target: e.target,
            decision: e.decision,
            reason: e.reason,
            details: e.details,
        }
    }
}

/// One page of the timeline.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct AuditPage {
    /// Newest first.
    pub events: Vec<TimelineEvent>,
    /// The newest event's sequence number in the whole log (0 when empty).
    #[specta(type = Num)]
    pub head: u64,
}

/// A signed checkpoint, as the banner names it.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct CheckpointInfo {
    #[specta(type = Num)]
    pub size: u64,
    pub time: String,
    pub root: String,
    pub key_fingerprint: String,
}

/// A problem verification found: what broke, and at which event.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct AuditProblem {
    pub kind: ProblemKind,
    #[specta(type = Option<Num>)]
    pub seq: Option<u64>,
    pub message: String,
}

impl From<verify::Problem> for AuditProblem {
    fn from(p: verify::Problem) -> Self {
        AuditProblem {
            kind: p.kind,
            seq: p.seq,
            message: p.message,
        }
    }
}

/// Which page: at most `limit` events, each older than `before_seq` when given.
#[derive(Debug, Clone, Deserialize, specta::Type)]
pub struct PageRequest {
    pub limit: u32,
    #[specta(type = Option<Num>)]
    pub before_seq: Option<u64>,
}

/// Events matching `query`, newest first.
#[tauri::command]
#[specta::specta]
pub async fn audit_page(
    state: State<'_, AppState>,
    query: AuditQuery,
    page: PageRequest,
) -> Result<AuditPage, ErrorReport> {
    let filter = query.filter()?;
    blocking(&state, move |m| {
        let head = m.audit_head()?;
        let events = m
            .audit_page(&filter, page.limit, page.before_seq)?
            .into_iter()
            .map(TimelineEvent::from)
            .collect();
        Ok(AuditPage { events, head })
    })
    .await
}

/// What the banner above the timeline says.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct AuditCheck {
    pub ok: bool,
    #[specta(type = Num)]
    pub events: u64,
    /// The newest signed checkpoint that verified, if any.
    pub checkpoint: Option<CheckpointInfo>,
    #[specta(type = Num)]
    pub checkpoints_verified: u64,
    /// The first problem found (what broke and where), when not ok.
    pub first_problem: Option<AuditProblem>,
    #[specta(type = Num)]
    pub problem_count: u64,
    /// Remarks that are not failures (for example: checkpoints could not be checked because
    /// the keychain is locked, so only the hash chain was).
    pub notes: Vec<String>,
}

/// Verify the whole trail: hash chain, signed checkpoints, the checkpoint file. When the
/// issuer key cannot be read (keychain locked), the hash chain alone is checked and a note
/// says so.
#[tauri::command]
#[specta::specta]
pub async fn verify_audit(state: State<'_, AppState>) -> Result<AuditCheck, ErrorReport> {
    blocking(&state, |m| match m.verify_audit() {
        Ok(r) => Ok(AuditCheck {
            ok: r.ok(),
            events: r.events,
            checkpoint: r.newest_checkpoint.clone().map(|c| CheckpointInfo {
                size: c.size,
                time: c.time,
                root: c.root,
                key_fingerprint: c.key_fingerprint,
            }),
            checkpoints_verified: r.checkpoints_verified,
            first_problem: r.problems.first().cloned().map(AuditProblem::from),
            problem_count: r.problems.len() as u64,
            notes: r.notes,
        }),
        Err(e) => {
            let chain = m.verify_audit_chain()?;
            let ok = chain.ok();
            Ok(AuditCheck {
                ok,
                events: chain.events,
                checkpoint: None,
                checkpoints_verified: 0,
                first_problem: chain.first_break.map(|b| AuditProblem {
                    kind: ProblemKind::Edited,
                    seq: Some(b.seq),
                    message: b.problem,
                }),
                problem_count: u64::from(!ok),
                notes: vec![format!(
                    "Only the hash chain was checked, not the signed checkpoints: {e}"
                )],
            })
        }
    })
    .await
}

/// What to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, specta::Type)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// The due-diligence report with the evidence bundle attached.
    Pdf,
    /// The sealed evidence bundle (JSON Lines).
    JsonLines,
}

/// Progress for the export's progress bar.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct ExportProgress {
    /// 0 to 100.
    pub percent: u32,
    /// What is happening ("exporting the evidence", "writing the file").
    pub stage: String,
}

/// A finished export.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct ExportDone {
    pub path: String,
    #[specta(type = Num)]
    pub bytes: u64,
    #[specta(type = Num)]
    pub events: u64,
}

/// Environment variable: write exports into this folder without asking (headless use, tests).
pub const EXPORT_DIR_ENV: &str = "MANDATE_EXPORT_DIR";

fn io_error(action: &str, path: &Path, e: impl std::fmt::Display) -> ErrorReport {
    ErrorReport {
        code: ErrorCode::Io,
        message: format!(
            "could not {action} {}: {e}; choose another folder and try again",
            path.display()
        ),
    }
}

/// Write `bytes` next to `path` first and move it into place, so a failed export never leaves
/// half a file under the chosen name.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ErrorReport> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).map_err(|e| io_error("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_error("write", path, e)
    })
}

fn choose_path(app: &AppHandle, format: ExportFormat, stamp: &str) -> Option<PathBuf> {
    let (name, filter, ext) = match format {
        ExportFormat::Pdf => (format!("mandate-audit-{stamp}.pdf"), "PDF report", "pdf"),
        ExportFormat::JsonLines => (
            format!("mandate-audit-{stamp}.jsonl"),
            "Evidence bundle (JSON Lines)",
            "jsonl",
        ),
    };
    if let Some(dir) = std::env::var_os(EXPORT_DIR_ENV).filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join(name));
    }
    app.dialog()
        .file()
        .set_title("Export the audit trail")
        .set_file_name(name)
        .add_filter(filter, &[ext])
        .blocking_save_file()
        .and_then(|p| p.into_path().ok())
}

/// Export the trail (or one agent's part of it, or a time window: `since` inclusive, `until`
/// exclusive, RFC 3339 or a date) to a file the user picks in a native save dialog. Returns
/// null when the dialog was cancelled.
#[tauri::command]
#[specta::specta]
pub async fn export_audit(
    app: AppHandle,
    state: State<'_, AppState>,
    format: ExportFormat,
    agent: Option<String>,
    since: Option<String>,
    until: Option<String>,
    on_progress: Channel<ExportProgress>,
) -> Result<Option<ExportDone>, ErrorReport> {
    let since = parse_time("the start of the range", since.as_deref())?;
    let until = parse_time("the end of the range", until.as_deref())?;
    let m = super::mandate(&state)?;
    let organisation = blocking(&state, |m| m.organisation_name()).await?;
    tauri::async_runtime::spawn_blocking(move || {
        let stamp = m.now().format("%Y-%m-%d").to_string();
        let Some(path) = choose_path(&app, format, &stamp) else {
            return Ok(None);
        };
        let send = |percent: u32, stage: &str| {
            let _ = on_progress.send(ExportProgress {
                percent: percent.min(100),
                stage: stage.to_string(),
            });
        };
        let selection = ExportSelection {
            agent: agent.filter(|a| !a.trim().is_empty()),
            since,
            until,
        };
        let core = |e: &mandate_core::Error| ErrorReport::from(e);
        let (bytes, events) = match format {
            ExportFormat::Pdf => {
                let mut p = |pct: u32, stage: &str| send(pct * 95 / 100, stage);
                let built = mandate_report::build(
                    &m,
                    &mandate_report::PdfOptions {
                        organisation,
                        selection,
                    },
                    &mut p,
                )
                .map_err(|e| match e {
                    mandate_report::ReportError::Core(c) => core(&c),
                    other => ErrorReport {
                        code: ErrorCode::Io,
                        message: other.to_string(),
                    },
                })?;
                let n = built.data.events.len() as u64;
                (built.pdf, n)
            }
            ExportFormat::JsonLines => {
                send(0, "exporting the evidence");
                let mut p = |done: u64, total: u64| {
                    send((done * 95 / total.max(1)) as u32, "exporting the evidence")
                };
                let export = m
                    .export_audit(&selection, Some(&mut p))
                    .map_err(|e| core(&e))?;
                let n = export.events.len() as u64;
                (export.bundle, n)
            }
        };
        send(96, "writing the file");
        write_file(&path, &bytes)?;
        if let Ok(mut done) = EXPORTED.lock() {
            done.push(path.clone());
        }
        send(100, "done");
        Ok(Some(ExportDone {
            path: path.display().to_string(),
            bytes: bytes.len() as u64,
            events,
        }))
    })
    .await
    .map_err(|e| ErrorReport {
        code: ErrorCode::Storage,
        message: format!("the export stopped unexpectedly ({e}); try again"),
    })?
}

/// The files this app exported since it started: the only ones "Show in folder" reveals, so the
/// window cannot have the file manager open an arbitrary path.
static EXPORTED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Show an exported file in the system's file manager (selected in its folder).
#[tauri::command]
#[specta::specta]
pub async fn show_export_in_folder(app: AppHandle, path: String) -> Result<(), ErrorReport> {
    use tauri_plugin_opener::OpenerExt;
    let path = PathBuf::from(path);
    let ours = EXPORTED.lock().map(|d| d.contains(&path)).unwrap_or(false);
    if !ours {
        return Err(ErrorReport {
            code: ErrorCode::InvalidInput,
            message: "only a file exported from this window can be shown in its folder".into(),
        });
    }
    if !path.exists() {
        return Err(io_error(
            "find",
            &path,
            "it was moved or deleted since the export; export again",
        ));
    }
    // The plugin speaks D-Bus through blocking zbus, which must not run on the async runtime.
    let shown = path.clone();
    tauri::async_runtime::spawn_blocking(move || app.opener().reveal_item_in_dir(&shown))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
        .map_err(|e| ErrorReport {
            code: ErrorCode::Io,
            message: format!(
                "the file manager could not be opened ({e}); the file is {}",
                path.display()
            ),
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::AuditQuery;

    fn query(since: &str, until: &str) -> AuditQuery {
        AuditQuery {
            since: Some(since.into()),
            until: Some(until.into()),
            ..AuditQuery::default()
        }
    }

    #[test]
    fn time_ranges_read_rfc3339_or_dates_and_refuse_anything_else() {
        let f = query("2026-11-01T09:00:00+01:00", "2026-11-02")
            .filter()
            .unwrap();
        assert_eq!(f.since.unwrap().to_rfc3339(), "2026-11-01T08:00:00+00:00");
        assert_eq!(f.until.unwrap().to_rfc3339(), "2026-11-02T00:00:00+00:00");
        let f = query(" ", "").filter().unwrap();
        assert!(f.since.is_none() && f.until.is_none());
        let err = query("yesterday", "").filter().unwrap_err();
        assert!(err.message.contains("'yesterday'"), "{}", err.message);
        assert!(query("", "2026-13-01").filter().is_err());
    }
}
