//! Moving a borrowed credential out of an agent's project and into the OS keychain (the
//! migration wizard's Rotate step and `mandate scan --move`), and undoing such a move.
//!
//! The client names a finding by place (file, line, column, kind), never by value. The core
//! re-reads that file itself ([`Scanner::locate`]: inside the scanned folder only, symlinks
//! resolved) and stores the value as a connection's credential. Three rules keep a default
//! click from losing anything (issue 17):
//!
//! - **Only into a connection of its own kind** (`crate::fit`): a GitHub token into a
//!   GitHub-shaped connection, a database URL into a database connection, a credential of a
//!   kind Mandate cannot tell only where the person chose. [`Mandate::move_choices`] offers
//!   those connections, and a default only when the kind is known.
//! - **Replacing asks first.** Moving into a connection that holds a credential is refused
//!   unless the caller confirms; [`Mandate::plan_move`] gives what the confirmation shows
//!   (both values masked, the agents and scopes that use the connection). It is audited as
//!   `connection.secret_replaced`.
//! - **A move can be undone for [`UNDO_WINDOW`].** The credential the connection held is kept
//!   in the keychain (`moved-previous/<move id>`) until the window closes: 24 hours after the
//!   move, or earlier when a later move into the same connection replaces it again.
//!   [`Mandate::undo_move`] puts the line back into the file and the previous credential back
//!   into the connection. Kept credentials are deleted when their window closes
//!   ([`Mandate::close_expired_moves`], which the app and `mandate serve` run periodically and
//!   every move or undo runs first).
//!
//! If asked, the moved line is replaced by a comment that points at `mandate exec`. The file
//! is rewritten atomically (a temporary file in the same folder, flushed, then renamed over the
//! original), so it is either the old file or the new one; every other byte stays as it was.
//!
//! What it is not: a code rewriter. Only lines that are a plain assignment of the credential
//! (`NAME=value`, `export NAME="value"`, `name: value`) in files with `#` comments (`.env`,
//! shell, YAML, TOML, INI) are rewritten; anywhere else the wizard says which line to delete.
//! Nothing here returns, logs or audits a credential: confirmations show masked values.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::store::{Tx, params};
use chrono::{DateTime, Duration, Utc};
use regex::Regex;
use serde::Serialize;
use serde_json::json;
use zeroize::Zeroizing;

use crate::Mandate;
use crate::audit::{self, Actor, Decision, NewEvent, Target};
use crate::error::{Error, Result};
use crate::fit::{self, Home};
use crate::model::{AgentName, AgentUse, Connection, ConnectionKind, ConnectionName};
use crate::scan::{self, Finding, FindingRef, Located, Scanner};
use crate::secret::{SecretRef, Sensitive};

/// How long a move can be undone. Until then the credential it replaced stays in the keychain.
pub const UNDO_WINDOW: Duration = Duration::hours(24);

/// What to move where.
#[derive(Debug, Clone, Copy)]
pub struct MoveFinding<'a> {
    /// The folder that was scanned; the finding's file must be inside it.
    pub root: &'a Path,
    pub finding: &'a FindingRef,
    /// The connection that gets the credential. Created when no connection has this name yet:
    /// from the finding's preset, or as a database connection for a database URL.
    pub connection: &'a str,
    /// Replace the line with a comment naming this agent's `mandate exec` command.
    pub rewrite_for_agent: Option<&'a str>,
    /// The person confirmed replacing the credential the connection holds (see
    /// [`Mandate::plan_move`]). Without it, moving into a connection that has one is refused.
    pub replace: bool,
}

/// A credential as a confirmation shows it: what it is and a masked value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct MaskedCredential {
    /// "GitHub token", "Database URL with a password", or "credential" when unknown.
    pub label: String,
    pub masked: String,
}

/// What replacing a connection's credential would do.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Replacement {
    /// The credential the connection holds now, masked; `None` when the keychain has lost it.
    pub current: Option<MaskedCredential>,
    /// The agents that use the connection, with their scopes on it: from their next call
    /// they use the new credential, and whatever only the current one allowed stops working.
    pub affected: Vec<AgentUse>,
    /// The same, in one sentence.
    pub summary: String,
}

/// What a move would do, shown before anything changes. Holds no secret.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct MovePlan {
    pub connection: String,
    pub kind: ConnectionKind,
    /// The connection does not exist yet: the move makes it (from the finding's preset, or as
    /// a database connection).
    pub creates: bool,
    pub incoming: MaskedCredential,
    /// Set when the connection holds a credential: the move replaces it, and needs
    /// `replace: true`.
    pub replaces: Option<Replacement>,
    /// The line can be replaced by a comment.
    pub rewritable: bool,
    /// Until when the move could be undone, if made now.
    pub undo_until: DateTime<Utc>,
}

/// What moving did. Holds no secret.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct MovedCredential {
    /// Names the move for [`Mandate::undo_move`] (`mandate scan --undo ID`).
    pub move_id: String,
    pub connection: String,
    pub kind: ConnectionKind,
    /// The connection did not exist and was made for this credential.
    pub created_connection: bool,
    /// The connection had a credential already; it was replaced (and is kept until
    /// `undo_until`).
    pub replaced_secret: bool,
    pub file: String,
    pub line: u32,
    /// The line in the file was replaced by `comment`.
    pub rewritten: bool,
    pub comment: Option<String>,
    /// Until when the move can be undone.
    pub undo_until: DateTime<Utc>,
    /// What the person should do next, as a sentence.
    pub next_step: String,
}

/// Where a finding could go: the connections of its kind and which one to use by default.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct MoveChoices {
    /// `vendor`, `database`, or `unknown` (Mandate cannot tell what it is for).
    pub home: String,
    /// The connections it may go into, existing ones first, then one to create.
    pub options: Vec<MoveOption>,
    /// The choice a person who accepts every default makes; `None` when the kind is unknown
    /// (the person must choose) or nothing fits.
    pub default: Option<String>,
    /// Why there is no default, or what to do when there are no options, as a sentence.
    pub note: Option<String>,
}

/// One connection a finding may go into.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct MoveOption {
    pub connection: String,
    pub kind: ConnectionKind,
    /// False: moving makes this connection.
    pub exists: bool,
    /// It holds a credential: moving into it replaces that one (after a confirmation).
    pub has_secret: bool,
}

/// A move that can still be undone.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct OpenMove {
    pub id: String,
    pub moved_at: DateTime<Utc>,
    pub undo_until: DateTime<Utc>,
    /// The scanned folder and the file inside it.
    pub root: String,
    pub file: String,
    pub line: u32,
    pub kind: String,
    pub label: String,
    pub variable: Option<String>,
    pub connection: String,
    /// The connection held a credential that the move replaced; undoing gives it back.
    pub replaced_secret: bool,
    pub rewritten: bool,
}

/// What an undo did.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct UndoneMove {
    pub move_id: String,
    pub connection: String,
    pub file: String,
    pub line: u32,
    /// The line is back in the file (it had been replaced by a comment).
    pub file_restored: bool,
    /// The connection has its previous credential back; false: it now has none.
    pub previous_restored: bool,
    /// What happened, as a sentence.
    pub summary: String,
}

/// Files whose comments start with `#` and whose assignments we can recognise.
fn hash_comment_file(file: &str) -> bool {
    let name = file.rsplit('/').next().unwrap_or(file).to_ascii_lowercase();
    if name.starts_with(".env") || name.ends_with(".env") || name == ".envrc" {
        return true;
    }
    match name.rsplit_once('.') {
        None => true,
        Some(("", _)) => false,
        Some((_, ext)) => matches!(
            ext,
            "sh" | "bash"
                | "zsh"
                | "env"
                | "yml"
                | "yaml"
                | "toml"
                | "ini"
                | "cfg"
                | "conf"
                | "properties"
        ),
    }
}

fn assignment_prefix() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        #[allow(clippy::expect_used, reason = "a constant pattern, tested")]
        Regex::new(r#"^(\s*)(?:export\s+)?[A-Za-z_][A-Za-z0-9_.-]*\s*[=:]\s*["']?$"#)
            .expect("valid regex")
    })
}

/// The comment that replaces `line` when it is a plain assignment of the credential at
/// `span` in a file with `#` comments; `None` when the line cannot be rewritten safely.
pub fn replacement_comment(
    file: &str,
    line: &str,
    span: (usize, usize),
    variable: Option<&str>,
    connection: &str,
    agent: &str,
) -> Option<String> {
    if !hash_comment_file(file) {
        return None;
    }
    let (before, after) = (line.get(..span.0)?, line.get(span.1..)?);
    let indent = assignment_prefix().captures(before)?.get(1)?.as_str();
    let quote = before.chars().last().filter(|c| *c == '"' || *c == '\'');
    let rest = after.trim_end();
    let closed = match quote {
        Some(q) => rest.len() == 1 && rest.starts_with(q),
        None => rest.is_empty(),
    };
    if !closed {
        return None;
    }
    let what = variable.unwrap_or("a credential");
    Some(format!(
        "{indent}# {what} moved to the OS keychain by Mandate (connection '{connection}'); \
         run the agent with: mandate exec {agent} -- <command>"
    ))
}

/// Whether [`replacement_comment`] would rewrite this line (for the scan's findings).
pub(crate) fn rewritable(file: &str, line: &str, span: (usize, usize)) -> bool {
    replacement_comment(file, line, span, None, "c", "a").is_some()
}

/// Replace line `line_no` (1-based) of `path` with `replacement`, atomically, keeping its
/// line ending, every other byte and the file's permissions. Refuses (changing nothing) when
/// the line is no longer `expected`.
pub fn replace_line(
    path: &Path,
    line_no: u32,
    expected: &Sensitive<String>,
    replacement: &str,
) -> Result<()> {
    let io = |action: &'static str, e: std::io::Error| Error::Io {
        action,
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    // Both copies of the file hold secrets (this one and others): zeroized on drop.
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| io("could not read", e))?);
    // Never reallocates: the result is at most the old text plus the replacement.
    let mut out = Zeroizing::new(String::with_capacity(text.len() + replacement.len()));
    let mut found = false;
    for (i, piece) in text.split_inclusive('\n').enumerate() {
        let body = piece.strip_suffix('\n').unwrap_or(piece);
        let body = body.strip_suffix('\r').unwrap_or(body);
        let ending = &piece[body.len()..];
        if i + 1 == line_no as usize {
            if body != expected.expose() {
                break;
            }
            found = true;
            out.push_str(replacement);
            out.push_str(ending);
        } else {
            out.push_str(piece);
        }
    }
    if !found {
        return Err(Error::Conflict(format!(
            "line {line_no} of {} changed since the scan; nothing was rewritten. Scan the \
             folder again",
            path.display()
        )));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let perms = std::fs::metadata(path)
        .map_err(|e| io("could not read", e))?
        .permissions();
    let mut tmp = tempfile::Builder::new()
        .prefix(".mandate-rewrite-")
        .tempfile_in(dir)
        .map_err(|e| io("could not write a temporary file beside", e))?;
    tmp.write_all(out.as_bytes())
        .and_then(|()| tmp.as_file().set_permissions(perms))
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| io("could not write a temporary file beside", e))?;
    tmp.persist(path)
        .map_err(|e| io("could not replace", e.error))?;
    // The rename itself is durable once the folder is flushed (not possible on Windows).
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Where a move goes: an existing connection, or one to make.
#[derive(Debug)]
enum Destination {
    Existing(Connection),
    NewPreset {
        name: String,
        preset: &'static str,
    },
    NewDatabase {
        name: String,
        variable: Option<String>,
    },
}

impl Destination {
    fn name(&self) -> &str {
        match self {
            Destination::Existing(c) => c.name.as_str(),
            Destination::NewPreset { name, .. } | Destination::NewDatabase { name, .. } => name,
        }
    }
    fn kind(&self) -> ConnectionKind {
        match self {
            Destination::Existing(c) => c.kind,
            Destination::NewPreset { .. } => ConnectionKind::Http,
            Destination::NewDatabase { .. } => ConnectionKind::Database,
        }
    }
}

/// A move row as stored (no secret).
#[derive(Debug)]
struct MoveRow {
    id: String,
    moved_at: String,
    undo_until: String,
    state: String,
    root: String,
    file: String,
    line: u32,
    kind: String,
    variable: Option<String>,
    connection_id: String,
    connection: String,
    secret_version: i64,
    kept_previous: bool,
    comment: Option<String>,
    line_before: Option<String>,
    line_after: Option<String>,
}

const MOVE_COLUMNS: &str = "id, moved_at, undo_until, state, root, file, line, kind, variable, \
     connection_id, connection, secret_version, kept_previous, comment, line_before, line_after";

fn move_row(r: &crate::store::Row<'_>) -> Result<MoveRow> {
    Ok(MoveRow {
        id: r.get(0)?,
        moved_at: r.get(1)?,
        undo_until: r.get(2)?,
        state: r.get(3)?,
        root: r.get(4)?,
        file: r.get(5)?,
        line: r.get(6)?,
        kind: r.get(7)?,
        variable: r.get(8)?,
        connection_id: r.get(9)?,
        connection: r.get(10)?,
        secret_version: r.get(11)?,
        kept_previous: r.get(12)?,
        comment: r.get(13)?,
        line_before: r.get(14)?,
        line_after: r.get(15)?,
    })
}

fn ts(t: DateTime<Utc>) -> String {
    audit::format_time(t)
}

/// Every agent and its scopes, as one sentence.
fn affected_summary(connection: &str, affected: &[AgentUse]) -> String {
    if affected.is_empty() {
        return format!(
            "No agent holds a scope on '{connection}' yet, so nothing that runs now uses its \
             credential."
        );
    }
    let who: Vec<String> = affected
        .iter()
        .map(|u| {
            let scopes: Vec<&str> = u.scopes.iter().map(|s| s.as_str()).collect();
            format!("{} ({})", u.agent, scopes.join(", "))
        })
        .collect();
    let one = affected.len() == 1;
    format!(
        "{} use{} '{connection}'. From {} next call, {} the new credential, and whatever only \
         the current one allowed stops working.",
        who.join(", "),
        if one { "s" } else { "" },
        if one { "its" } else { "their" },
        if one { "it uses" } else { "they use" },
    )
}

/// The line of `path` (1-based) that is exactly `text`: `hint` if it is, else the only such
/// line; `None` when there is none or more than one.
fn find_line(path: &Path, text: &str, hint: u32) -> Result<Option<u32>> {
    let content = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| Error::Io {
        action: "could not read",
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?);
    let mut hits = Vec::new();
    for (i, l) in content.lines().enumerate() {
        let l = l.strip_suffix('\r').unwrap_or(l);
        if l == text {
            if i + 1 == hint as usize {
                return Ok(Some(hint));
            }
            hits.push((i + 1) as u32);
        }
    }
    Ok(match hits.as_slice() {
        [one] => Some(*one),
        _ => None,
    })
}

impl Mandate {
    /// Resolve where a move goes, checking that the credential fits there (`crate::fit`).
    fn destination(&self, name: &str, located: &Located) -> Result<Destination> {
        match self.get_connection(name) {
            Ok(c) => {
                fit::check(&c, located.kind)?;
                Ok(Destination::Existing(c))
            }
            Err(Error::NotFound { .. }) => {
                let name = ConnectionName::parse(name)?.as_str().to_string();
                match fit::home_of(located.kind) {
                    Home::Vendor(preset) => Ok(Destination::NewPreset { name, preset }),
                    Home::Database => Ok(Destination::NewDatabase {
                        name,
                        variable: located
                            .variable
                            .clone()
                            .filter(|v| crate::model::validate_variable(v).is_ok()),
                    }),
                    Home::Unknown => Err(Error::invalid(format!(
                        "there is no connection '{name}', and Mandate cannot tell which system a \
                         {} is for, so it will not make one; add the connection first \
                         (Connections screen or `mandate connection add {name} --base-url \
                         URL`), then move the credential into it",
                        scan::label_of(located.kind)
                    ))),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The connections a finding may go into and the default choice (see the module docs).
    /// Reads only.
    pub fn move_choices(&self, finding: &Finding) -> Result<MoveChoices> {
        let connections = self.list_connections()?;
        let home = fit::home_of(&finding.kind);
        let label = scan::label_of(&finding.kind);
        let fitting: Vec<&Connection> = connections
            .iter()
            .filter(|c| fit::check(c, &finding.kind).is_ok())
            .collect();
        let mut options: Vec<MoveOption> = fitting
            .iter()
            .map(|c| MoveOption {
                connection: c.name.to_string(),
                kind: c.kind,
                exists: true,
                has_secret: c.has_secret,
            })
            .collect();
        let taken = |n: &str| connections.iter().any(|c| c.name.as_str() == n);
        // A name for a new connection: the suggestion, or with a suffix when another
        // connection (of another kind) has it.
        let fresh = |base: &str, suffix: &str| -> Option<String> {
            if !taken(base) {
                return Some(base.to_string());
            }
            let with = format!("{base}-{suffix}");
            if ConnectionName::parse(&with).is_ok() && !taken(&with) {
                return Some(with);
            }
            (2..100)
                .map(|i| format!("{base}-{i}"))
                .find(|n| ConnectionName::parse(n).is_ok() && !taken(n))
        };
        let suggested = finding.suggested_connection.as_deref();
        let (default, note, new) = match home {
            Home::Unknown => (
                None,
                Some(if fitting.is_empty() {
                    format!(
                        "Mandate cannot tell which system a {label} is for. Add a connection for \
                         it on the Connections screen, then move it; until then it stays in the \
                         file."
                    )
                } else {
                    format!(
                        "Mandate cannot tell which system a {label} is for: choose its \
                         connection, or leave it in the file."
                    )
                }),
                None,
            ),
            Home::Vendor(preset) => {
                let by_name = fitting
                    .iter()
                    .find(|c| Some(c.name.as_str()) == suggested)
                    .or_else(|| fitting.iter().find(|c| !c.has_secret))
                    .or_else(|| fitting.first());
                match by_name {
                    Some(c) => (Some(c.name.to_string()), None, None),
                    None => {
                        let n = fresh(suggested.unwrap_or(preset), "2");
                        (n.clone(), None, n)
                    }
                }
            }
            Home::Database => {
                let pick = fitting
                    .iter()
                    .find(|c| Some(c.name.as_str()) == suggested)
                    .or_else(|| {
                        fitting.iter().find(|c| {
                            !c.has_secret && c.variable.is_some() && c.variable == finding.variable
                        })
                    });
                match pick {
                    Some(c) => (Some(c.name.to_string()), None, None),
                    None => {
                        let n = fresh(suggested.unwrap_or("database"), "db");
                        (n.clone(), None, n)
                    }
                }
            }
        };
        if let Some(n) = new {
            options.push(MoveOption {
                connection: n,
                kind: if home == Home::Database {
                    ConnectionKind::Database
                } else {
                    ConnectionKind::Http
                },
                exists: false,
                has_secret: false,
            });
        }
        Ok(MoveChoices {
            home: match home {
                Home::Vendor(_) => "vendor",
                Home::Database => "database",
                Home::Unknown => "unknown",
            }
            .into(),
            options,
            default,
            note,
        })
    }

    /// What [`Mandate::move_finding`] would do with `req`, for the confirmation: the
    /// connection, whether it is made, both credentials masked, and which agents use the
    /// connection. Refuses exactly what the move would refuse (a stale finding, a connection
    /// of another kind). Reads the connection's current credential from the keychain to mask
    /// it; changes nothing.
    pub fn plan_move(&self, req: &MoveFinding<'_>) -> Result<MovePlan> {
        let located = Scanner::new(req.root)?.locate(req.finding)?;
        let dest = self.destination(req.connection, &located)?;
        let (label, masked) = scan::describe_value(&located.secret);
        let replaces = match &dest {
            Destination::Existing(c) if c.has_secret => Some(self.replacement(c)?),
            _ => None,
        };
        Ok(MovePlan {
            connection: dest.name().to_string(),
            kind: dest.kind(),
            creates: !matches!(dest, Destination::Existing(_)),
            incoming: MaskedCredential { label, masked },
            replaces,
            rewritable: replacement_comment(
                &located.relative,
                located.line_text.expose(),
                located.span,
                None,
                "c",
                "a",
            )
            .is_some(),
            undo_until: self.now() + UNDO_WINDOW,
        })
    }

    fn replacement(&self, c: &Connection) -> Result<Replacement> {
        let current = self
            .keychain_get(SecretRef::connection(c.id.as_str()))?
            .map(|s| {
                let (label, masked) = scan::describe_value(&s);
                MaskedCredential { label, masked }
            });
        let affected = self.agents_using(c.id.as_str())?;
        Ok(Replacement {
            current,
            summary: affected_summary(c.name.as_str(), &affected),
            affected,
        })
    }

    /// Move the credential behind a finding into the keychain as `req.connection`'s secret,
    /// and optionally replace its line with a comment (see the module docs). Checks
    /// everything it can before changing anything: the finding is re-read and must still
    /// match, the credential must fit the connection, a connection holding a credential needs
    /// `req.replace`, the agent name must be valid, and the line must be rewritable if a
    /// rewrite is asked for. The replaced credential is kept in the keychain until
    /// `undo_until`. If the rewrite fails after the credential was stored, the error says so
    /// (the credential stays in the keychain, the file as it was, and the move can be
    /// undone). Audited as `credential.moved_to_keychain` (file, line, kind, connection; never
    /// the value), besides the connection's own `connection.secret_set` or
    /// `connection.secret_replaced`.
    pub fn move_finding(&self, req: MoveFinding<'_>) -> Result<MovedCredential> {
        // Nothing moves in nobody's name: a person is needed before anything changes.
        let actor = self.actor()?;
        let agent = req
            .rewrite_for_agent
            .map(|a| AgentName::parse(a).map(|n| n.as_str().to_string()))
            .transpose()?;
        let located = Scanner::new(req.root)?.locate(req.finding)?;
        let dest = self.destination(req.connection, &located)?;
        if let Destination::Existing(c) = &dest
            && c.has_secret
            && !req.replace
        {
            let r = self.replacement(c)?;
            let current = r
                .current
                .as_ref()
                .map_or(String::new(), |m| format!(" ({} {})", m.label, m.masked));
            return Err(Error::Conflict(format!(
                "'{}' already holds a credential{current}, and moving this {} into it would \
                 replace it. {} Confirm the replacement to go on (the current credential is \
                 kept for {} hours so the move can be undone), or choose another connection. \
                 Nothing was changed",
                c.name,
                scan::label_of(located.kind),
                r.summary,
                UNDO_WINDOW.num_hours()
            )));
        }
        let comment = match &agent {
            Some(agent) => Some(
                replacement_comment(
                    &located.relative,
                    located.line_text.expose(),
                    located.span,
                    located.variable.as_deref(),
                    dest.name(),
                    agent,
                )
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "line {} of {} is not a plain assignment in a file with # comments, so \
                         Mandate will not rewrite it; move the credential without rewriting and \
                         delete the line by hand",
                        located.line, located.relative
                    ))
                })?,
            ),
            None => None,
        };
        if let Err(e) = self.close_expired_moves() {
            tracing::warn!(error = %e, "expired credential moves could not be closed yet");
        }
        let root = req
            .root
            .canonicalize()
            .map_err(|e| Error::Io {
                action: "could not read",
                path: req.root.to_path_buf(),
                reason: e.to_string(),
            })?
            .display()
            .to_string();
        let move_id = uuid::Uuid::now_v7().to_string();
        let kept_slot = SecretRef::moved_previous(&move_id);

        // 1. Keep the credential the connection holds, so the move can be undone.
        let previous = match &dest {
            Destination::Existing(c) if c.has_secret => {
                self.keychain_get(SecretRef::connection(c.id.as_str()))?
            }
            _ => None,
        };
        if let Some(p) = &previous {
            self.keychain_set(kept_slot.clone(), p)?;
        }
        let forget_kept = |m: &Mandate| {
            if previous.is_some()
                && let Err(e) = m.keychain_delete(kept_slot.clone())
            {
                tracing::warn!(error = %e, "a kept credential could not be deleted");
            }
        };
        // 2. The connection, made when it does not exist.
        let (connection, created) = match &dest {
            Destination::Existing(c) => (c.clone(), false),
            Destination::NewPreset { name, preset } => {
                (self.add_preset_connection(name, preset)?, true)
            }
            Destination::NewDatabase { name, variable } => (
                self.add_database_connection(name, variable.as_deref(), None)?,
                true,
            ),
        };
        let unmake = |m: &Mandate| {
            if created && let Err(e) = m.remove_connection(connection.id.as_str()) {
                tracing::warn!(error = %e, "a connection made for a failed move could not be removed");
            }
        };
        // 3. The credential into the keychain.
        let slot = SecretRef::connection(connection.id.as_str());
        if let Err(e) = self.keychain_set(slot.clone(), &located.secret) {
            forget_kept(self);
            unmake(self);
            return Err(e);
        }
        // 4. The line, if asked.
        let rewrite = comment
            .as_ref()
            .map(|c| replace_line(&located.path, located.line, &located.line_text, c));
        let rewritten = matches!(rewrite, Some(Ok(())));
        // 5. The record and its events, in one transaction.
        let now_for_window = self.now();
        let undo_until = now_for_window + UNDO_WINDOW;
        let (before, after) = (
            located
                .line_text
                .expose()
                .get(..located.span.0)
                .map(String::from),
            located
                .line_text
                .expose()
                .get(located.span.1..)
                .map(String::from),
        );
        let written = self.write(|tx, now| {
            let version = crate::registry::record_secret_stored(
                tx,
                now,
                &actor,
                &connection,
                json!({
                    "source": "moved_from_file",
                    "file": located.relative,
                    "line": located.line,
                    "previous_kept_until": previous.as_ref().map(|_| ts(undo_until)),
                }),
            )?;
            // An earlier move into this connection can no longer be undone.
            let closed: Vec<(String, bool)> = tx
                .query_map("UPDATE credential_moves SET state = 'closed', closed_at = ?2
                     WHERE connection_id = ?1 AND state = 'open'
                     RETURNING id, kept_previous", params![connection.id.as_str(), ts(now)], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
            tx.execute(
                &format!(
                    "INSERT INTO credential_moves ({MOVE_COLUMNS}, connection_created)
                     VALUES (?1, ?2, ?3, 'open', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,
                             ?15, ?16)"
                ),
                params![
                    move_id,
                    ts(now),
                    ts(undo_until),
                    root,
                    located.relative,
                    located.line,
                    located.kind,
                    located.variable,
                    connection.id.as_str(),
                    connection.name.as_str(),
                    version,
                    previous.is_some(),
                    comment.as_ref().filter(|_| rewritten),
                    before.as_ref().filter(|_| rewritten),
                    after.as_ref().filter(|_| rewritten),
                    created,
                ],
            )?;
            audit::append(
                tx,
                now,
                NewEvent::new(&actor, "credential.moved_to_keychain", Decision::Allow)
                    .target(Target::new(
                        "connection",
                        connection.id.as_str(),
                        connection.name.as_str(),
                    ))
                    .details(json!({
                        "move_id": move_id,
                        "file": located.relative,
                        "line": located.line,
                        "kind": located.kind,
                        "variable": located.variable,
                        "file_rewritten": rewritten,
                        "connection_created": created,
                        "replaced_secret": connection.has_secret,
                        "undo_until": ts(undo_until),
                        "closed_moves": closed.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
                    })),
            )?;
            Ok(closed)
        });
        let closed = match written {
            Ok(c) => c,
            Err(e) => {
                if rewritten && let Some(c) = &comment {
                    let back = replace_line(
                        &located.path,
                        located.line,
                        &Sensitive::new(c.clone()),
                        located.line_text.expose(),
                    );
                    if let Err(u) = back {
                        tracing::warn!(error = %u, "a rewritten line could not be put back");
                    }
                }
                self.restore_slot(slot, previous.clone());
                forget_kept(self);
                unmake(self);
                return Err(e);
            }
        };
        for (id, kept) in closed {
            if kept && let Err(e) = self.keychain_delete(SecretRef::moved_previous(&id)) {
                tracing::warn!(error = %e, "a kept credential could not be deleted");
            }
        }
        if let Some(Err(e)) = rewrite {
            return Err(Error::Conflict(format!(
                "the credential is now in the OS keychain (connection '{}'), but {} was not \
                 changed: {e}. Delete line {} by hand, or undo the move (`mandate scan --undo \
                 {move_id}`)",
                connection.name, located.relative, located.line
            )));
        }
        let exec = format!(
            "mandate exec {} -- <command>",
            agent.as_deref().unwrap_or("AGENT")
        );
        let gets = if connection.kind == ConnectionKind::Database {
            format!(
                "it is handed {} while it runs, if it holds the scope {}:connect",
                connection
                    .variable
                    .as_deref()
                    .unwrap_or(crate::model::DEFAULT_DATABASE_VARIABLE),
                connection.name
            )
        } else {
            "it gets a short-lived token instead of the key".to_string()
        };
        let next_step = if rewritten {
            format!(
                "Line {} of {} now says where the credential went. Start the agent with `{exec}`: \
                 {gets}.",
                located.line, located.relative
            )
        } else {
            format!(
                "Delete line {} of {}{}, then start the agent with `{exec}`: {gets}.",
                located.line,
                located.relative,
                located
                    .variable
                    .as_deref()
                    .map(|v| format!(" ({v})"))
                    .unwrap_or_default()
            )
        };
        Ok(MovedCredential {
            move_id,
            connection: connection.name.as_str().to_string(),
            kind: connection.kind,
            created_connection: created,
            replaced_secret: connection.has_secret,
            file: located.relative.clone(),
            line: located.line,
            rewritten,
            comment: comment.filter(|_| rewritten),
            undo_until,
            next_step,
        })
    }

    /// Moves that can still be undone, newest first.
    pub fn open_moves(&self) -> Result<Vec<OpenMove>> {
        let now = ts(self.now());
        let rows: Vec<MoveRow> = {
            let mut guard = self.lock()?;
            let conn = guard.tx()?;
            conn.query_map(
                &format!(
                    "SELECT {MOVE_COLUMNS} FROM credential_moves
                 WHERE state = 'open' AND undo_until > ?1 ORDER BY moved_at DESC, id DESC"
                ),
                params![now],
                move_row,
            )?
        };
        rows.into_iter()
            .map(|r| {
                Ok(OpenMove {
                    moved_at: crate::registry::parse_time(&r.moved_at)?,
                    undo_until: crate::registry::parse_time(&r.undo_until)?,
                    label: scan::label_of(&r.kind).to_string(),
                    rewritten: r.comment.is_some(),
                    replaced_secret: r.kept_previous,
                    id: r.id,
                    root: r.root,
                    file: r.file,
                    line: r.line,
                    kind: r.kind,
                    variable: r.variable,
                    connection: r.connection,
                })
            })
            .collect()
    }

    /// Close the moves whose undo window has passed: delete the credentials kept for them
    /// from the keychain and record `credential.undo_expired` for each. Returns how many were
    /// closed. A move whose kept credential cannot be deleted (keychain locked) stays open
    /// and is tried again next time; nothing else depends on it.
    pub fn close_expired_moves(&self) -> Result<usize> {
        let now = ts(self.now());
        let due: Vec<MoveRow> = {
            let mut guard = self.lock()?;
            let conn = guard.tx()?;
            conn.query_map(
                &format!(
                    "SELECT {MOVE_COLUMNS} FROM credential_moves
                 WHERE state = 'open' AND undo_until <= ?1 ORDER BY moved_at"
                ),
                params![now],
                move_row,
            )?
        };
        let mut deleted = Vec::new();
        let mut failure = None;
        for r in due {
            if r.kept_previous
                && let Err(e) = self.keychain_delete(SecretRef::moved_previous(&r.id))
            {
                failure = Some(e);
                break;
            }
            deleted.push(r);
        }
        if !deleted.is_empty() {
            // Nobody acted: the undo window ran out (docs/ARCHITECTURE.md, system actors).
            let actor = Actor::system("keychain", "undo window closed");
            self.write(|tx, now| {
                for r in &deleted {
                    tx.execute(
                        "UPDATE credential_moves SET state = 'closed', closed_at = ?2
                         WHERE id = ?1 AND state = 'open'",
                        params![r.id, ts(now)],
                    )?;
                    audit::append(
                        tx,
                        now,
                        NewEvent::new(&actor, "credential.undo_expired", Decision::Allow)
                            .target(Target::new("connection", &r.connection_id, &r.connection))
                            .details(json!({
                                "move_id": r.id,
                                "file": r.file,
                                "line": r.line,
                                "undo_until": r.undo_until,
                                "previous_secret_deleted": r.kept_previous,
                            })),
                    )?;
                }
                Ok(())
            })?;
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(deleted.len()),
        }
    }

    /// Undo a move (`id`, or `last` for the newest open one): the moved line comes back into
    /// its file (when it had been replaced by a comment), and the connection gets back the
    /// credential it held before, or none if it had none. Refused, changing nothing, when the
    /// window has closed, the connection's credential changed since the move (undoing would
    /// overwrite that change), the comment is no longer in the file, or (for a line that was
    /// not rewritten) the file no longer holds the credential, since undoing would then leave
    /// it nowhere. Audited as `credential.move_undone`.
    pub fn undo_move(&self, id: &str) -> Result<UndoneMove> {
        let actor = self.actor()?;
        if let Err(e) = self.close_expired_moves() {
            tracing::warn!(error = %e, "expired credential moves could not be closed yet");
        }
        let row: Option<MoveRow> = {
            let mut guard = self.lock()?;
            let conn = guard.tx()?;
            if id == "last" {
                conn.query_opt(
                    &format!(
                        "SELECT {MOVE_COLUMNS} FROM credential_moves WHERE state = 'open'
                         ORDER BY moved_at DESC, id DESC LIMIT 1"
                    ),
                    params![],
                    move_row,
                )?
            } else {
                conn.query_opt(
                    &format!("SELECT {MOVE_COLUMNS} FROM credential_moves WHERE id = ?1"),
                    params![id],
                    move_row,
                )?
            }
        };
        let r = row.ok_or_else(|| {
            if id == "last" {
                Error::Conflict(
                    "no move can be undone: none was made in the last 24 hours, or each was \
                     undone or replaced by a later move"
                        .into(),
                )
            } else {
                Error::not_found_hint(
                    "credential move",
                    id,
                    "`mandate scan --moves` lists the moves that can be undone",
                )
            }
        })?;
        let now = self.now();
        match r.state.as_str() {
            "undone" => {
                return Err(Error::Conflict(format!(
                    "the move of {}:{} into '{}' was already undone",
                    r.file, r.line, r.connection
                )));
            }
            "closed" => {
                return Err(Error::Conflict(format!(
                    "the move of {}:{} into '{}' can no longer be undone: its window closed (a \
                     later move into '{}', or 24 hours passed). The credential stays in the \
                     keychain as the secret of '{}'",
                    r.file, r.line, r.connection, r.connection, r.connection
                )));
            }
            // Past its window but not yet closed (the keychain was locked at the sweep).
            _ if r.undo_until <= ts(now) => {
                return Err(Error::Conflict(format!(
                    "the move of {}:{} into '{}' can no longer be undone: 24 hours have passed. \
                     The credential stays in the keychain as the secret of '{}'",
                    r.file, r.line, r.connection, r.connection
                )));
            }
            _ => {}
        }
        let c = self.get_connection(&r.connection_id).map_err(|_| {
            Error::Conflict(format!(
                "the connection '{}' was removed after the move, and its credential with it, so \
                 the move cannot be undone",
                r.connection
            ))
        })?;
        let version: i64 = {
            let mut guard = self.lock()?;
            let conn = guard.tx()?;
            conn.query_row(
                "SELECT secret_version FROM connections WHERE id = ?1",
                params![c.id.as_str()],
                |x| x.get(0),
            )?
        };
        if version != r.secret_version {
            return Err(Error::Conflict(format!(
                "the credential of '{}' changed after this move (set again on the Connections \
                 screen or with `mandate connection set-secret`), so undoing the move would \
                 overwrite that change; nothing was undone",
                c.name
            )));
        }
        let slot = SecretRef::connection(c.id.as_str());
        let moved = self.keychain_get(slot.clone())?.ok_or_else(|| {
            Error::Conflict(format!(
                "the OS keychain no longer holds the credential of '{}', so there is nothing to \
                 put back into {}; nothing was undone",
                c.name, r.file
            ))
        })?;
        let kept_slot = SecretRef::moved_previous(&r.id);
        let previous = if r.kept_previous {
            Some(self.keychain_get(kept_slot.clone())?.ok_or_else(|| {
                Error::Conflict(format!(
                    "the OS keychain no longer holds the credential '{}' had before the move, so \
                     undoing would leave it with none; nothing was undone",
                    c.name
                ))
            })?)
        } else {
            None
        };
        // The file: back to the line it had, checked inside the scanned folder again.
        let root = PathBuf::from(&r.root);
        let path = root.join(&r.file);
        let inside = path
            .canonicalize()
            .ok()
            .zip(root.canonicalize().ok())
            .is_some_and(|(p, root)| p.starts_with(root));
        if !inside {
            return Err(Error::Conflict(format!(
                "{} is no longer in {}, so the line cannot come back; nothing was undone. The \
                 credential stays in the keychain as the secret of '{}'",
                r.file, r.root, c.name
            )));
        }
        let restored_at = match (&r.comment, &r.line_before, &r.line_after) {
            (Some(comment), Some(before), Some(after)) => {
                let at = find_line(&path, comment, r.line)?.ok_or_else(|| {
                    Error::Conflict(format!(
                        "the comment Mandate wrote in {} is no longer there (edited by hand?), so \
                         the line cannot come back; nothing was undone. The credential stays in \
                         the keychain as the secret of '{}'",
                        r.file, c.name
                    ))
                })?;
                let line = Sensitive::new(format!("{before}{}{after}", moved.expose()));
                replace_line(&path, at, &Sensitive::new(comment.clone()), line.expose())?;
                Some((at, comment.clone(), line))
            }
            _ => {
                let text =
                    Zeroizing::new(std::fs::read_to_string(&path).map_err(|e| Error::Io {
                        action: "could not read",
                        path: path.clone(),
                        reason: e.to_string(),
                    })?);
                if !text.contains(moved.expose().as_str()) {
                    return Err(Error::Conflict(format!(
                        "{} no longer holds the credential (line {} was deleted?), and undoing \
                         would take it out of the keychain too; nothing was undone. Put the line \
                         back first, or keep the credential where it is",
                        r.file, r.line
                    )));
                }
                None
            }
        };
        let put_comment_back = || {
            if let Some((at, comment, line)) = &restored_at
                && let Err(e) = replace_line(&path, *at, line, comment)
            {
                tracing::warn!(error = %e, "an undone line could not be put back to its comment");
            }
        };
        // The keychain: the previous credential, or none.
        if let Err(e) = match &previous {
            Some(p) => self.keychain_set(slot.clone(), p),
            None => self.keychain_delete(slot.clone()),
        } {
            put_comment_back();
            return Err(e);
        }
        let file_restored = restored_at.is_some();
        let written = self.write(|tx, now| {
            tx.execute(
                "UPDATE connections SET has_secret = ?2, secret_version = secret_version + 1,
                        secret_changed_at = ?3, updated_at = ?3
                 WHERE id = ?1",
                params![c.id.as_str(), previous.is_some(), ts(now)],
            )?;
            tx.execute(
                "UPDATE credential_moves SET state = 'undone', closed_at = ?2 WHERE id = ?1",
                params![r.id, ts(now)],
            )?;
            audit::append(
                tx,
                now,
                NewEvent::new(&actor, "credential.move_undone", Decision::Allow)
                    .target(Target::new("connection", c.id.as_str(), c.name.as_str()))
                    .details(json!({
                        "move_id": r.id,
                        "file": r.file,
                        "line": r.line,
                        "file_restored": file_restored,
                        "previous_secret_restored": previous.is_some(),
                    })),
            )?;
            Ok(())
        });
        if let Err(e) = written {
            if let Err(u) = self.keychain_set(slot, &moved) {
                tracing::warn!(error = %u, "a moved credential could not be put back");
            }
            put_comment_back();
            return Err(e);
        }
        if previous.is_some()
            && let Err(e) = self.keychain_delete(kept_slot)
        {
            tracing::warn!(error = %e, "a kept credential could not be deleted");
        }
        let summary = format!(
            "{}{}",
            if file_restored {
                format!("Line {} of {} holds the credential again", r.line, r.file)
            } else {
                format!("The credential stays in {} (line {})", r.file, r.line)
            },
            if previous.is_some() {
                format!(", and '{}' has its previous credential back.", c.name)
            } else {
                format!(
                    ", and '{}' has no credential now (it had none before the move).",
                    c.name
                )
            }
        );
        Ok(UndoneMove {
            move_id: r.id,
            connection: c.name.to_string(),
            file: r.file,
            line: r.line,
            file_restored,
            previous_restored: previous.is_some(),
            summary,
        })
    }
}

/// Inside a write that removes a connection: close its open moves. Returns the ids whose
/// kept credentials the caller deletes from the keychain after the commit.
pub(crate) fn close_moves_of(
    tx: &Tx<'_>,
    connection_id: &str,
    now: DateTime<Utc>,
) -> Result<Vec<String>> {
    let ids: Vec<(String, bool)> = tx.query_map(
        "UPDATE credential_moves SET state = 'closed', closed_at = ?2
             WHERE connection_id = ?1 AND state = 'open' RETURNING id, kept_previous",
        params![connection_id, ts(now)],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(ids
        .into_iter()
        .filter(|(_, k)| *k)
        .map(|(id, _)| id)
        .collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::audit::Actor;
    use crate::scan::Finding;
    use crate::secret::MemoryKeychain;
    use crate::store::testing::{TestStore, each_store};
    use serde_json::json;

    // Fake credentials built at run time so this file holds no literal that looks real.
    fn ghp() -> String {
        format!("ghp_{}", "a1B2".repeat(9))
    }

    fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = d.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        d
    }

    fn only_finding(root: &Path) -> Finding {
        let mut r = Scanner::new(root).unwrap().scan().unwrap();
        assert_eq!(r.findings.len(), 1, "{:?}", r.findings);
        r.findings.remove(0)
    }

    #[test]
    fn comments_replace_plain_assignments_only() {
        let s = ghp();
        let line = format!("export GITHUB_TOKEN=\"{s}\"");
        let start = line.find("ghp_").unwrap();
        let span = (start, start + s.len());
        let c = replacement_comment(".env", &line, span, Some("GITHUB_TOKEN"), "github", "bot")
            .unwrap();
        assert!(
            c.starts_with("# GITHUB_TOKEN moved to the OS keychain"),
            "{c}"
        );
        assert!(c.contains("mandate exec bot -- <command>"), "{c}");
        assert!(!c.contains(&s));
        // Indentation is kept (YAML).
        let y = format!("  token: {s}");
        let st = y.find("ghp_").unwrap();
        let c = replacement_comment("ci.yml", &y, (st, st + s.len()), None, "g", "a").unwrap();
        assert!(c.starts_with("  # a credential moved"), "{c}");
        // Not rewritable: code, a value followed by more text, an unclosed quote, `//` files.
        for (file, l) in [
            ("app.py", format!("client = Github(\"{s}\")")),
            (".env", format!("TOKEN={s} # mine")),
            (".env", format!("TOKEN=\"{s}")),
            ("index.js", format!("TOKEN={s}")),
            ("config.json", format!("\"token\": \"{s}\"")),
        ] {
            let st = l.find("ghp_").unwrap();
            assert_eq!(
                replacement_comment(file, &l, (st, st + s.len()), None, "g", "a"),
                None,
                "{file}: {l}"
            );
        }
    }

    #[test]
    fn moving_stores_the_secret_rewrites_the_line_atomically_and_audits_without_the_value() {
        each_store(|st| {
            let m = st.open();
            let s = ghp();
            let env = format!("# tokens\r\nGITHUB_TOKEN={s}\r\nOTHER=1\r\n");
            let p = project(&[(".env", &env)]);
            let f = only_finding(p.path());
            assert!(f.rewritable);
            let moved = m
                .move_finding(MoveFinding {
                    root: p.path(),
                    finding: &FindingRef::from(&f),
                    connection: "github",
                    rewrite_for_agent: Some("billing-report-agent"),
                    replace: false,
                })
                .unwrap();
            assert!(moved.created_connection && moved.rewritten && !moved.replaced_secret);
            assert_eq!(
                m.connection_secret("github").unwrap().unwrap().expose(),
                &s,
                "the keychain holds the value from the file"
            );
            let after = std::fs::read_to_string(p.path().join(".env")).unwrap();
            assert!(!after.contains(&s));
            let lines: Vec<_> = after.split("\r\n").collect();
            assert_eq!(lines[0], "# tokens");
            assert!(lines[1].starts_with("# GITHUB_TOKEN moved to the OS keychain"));
            assert!(lines[1].contains("mandate exec billing-report-agent"));
            assert_eq!(lines[2], "OTHER=1", "every other byte stays");
            assert!(after.ends_with("OTHER=1\r\n"));
            // No temporary file is left beside it.
            let names: Vec<_> = std::fs::read_dir(p.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            assert_eq!(names, vec![".env".to_string()]);
            // The event names the place, never the value.
            assert!(!st.holds(&s), "the credential reached the database");
            let ev = m
                .audit_events(None, 100, None)
                .unwrap()
                .into_iter()
                .find(|e| e.action == "credential.moved_to_keychain")
                .expect("audited");
            let text = serde_json::to_string(&ev).unwrap();
            assert!(text.contains("\".env\"") && !text.contains(&s), "{text}");
            // Scanning again finds nothing.
            assert!(
                Scanner::new(p.path())
                    .unwrap()
                    .scan()
                    .unwrap()
                    .findings
                    .is_empty()
            );
        });
    }

    #[test]
    fn a_stale_or_foreign_finding_changes_nothing() {
        each_store(|st| {
            let m = st.open();
            let s = ghp();
            let p = project(&[("a/.env", &format!("T={s}\n"))]);
            let f = only_finding(p.path());
            let outside = project(&[(".env", &format!("T={s}\n"))]);
            // A path that escapes the scanned folder.
            for file in ["../x/.env", "/etc/passwd", ""] {
                let mut r = FindingRef::from(&f);
                r.file = file.into();
                let e = m
                    .move_finding(MoveFinding {
                        root: p.path(),
                        finding: &r,
                        connection: "github",
                        rewrite_for_agent: None,
                        replace: false,
                    })
                    .unwrap_err();
                assert!(
                    e.to_string().contains("outside the scanned folder")
                        || e.to_string().contains("could not"),
                    "{file}: {e}"
                );
            }
            // A symlink inside the folder that points out of it.
            #[cfg(unix)]
            {
                std::os::unix::fs::symlink(outside.path().join(".env"), p.path().join("link.env"))
                    .unwrap();
                let mut r = FindingRef::from(&f);
                r.file = "link.env".into();
                let e = m
                    .move_finding(MoveFinding {
                        root: p.path(),
                        finding: &r,
                        connection: "github",
                        rewrite_for_agent: None,
                        replace: false,
                    })
                    .unwrap_err();
                assert!(e.to_string().contains("outside"), "{e}");
            }
            // The file changed since the scan.
            std::fs::write(p.path().join("a/.env"), "T=nothing\n").unwrap();
            let e = m
                .move_finding(MoveFinding {
                    root: p.path(),
                    finding: &FindingRef::from(&f),
                    connection: "github",
                    rewrite_for_agent: Some("bot"),
                    replace: false,
                })
                .unwrap_err();
            assert!(!e.to_string().contains(&s));
            assert!(m.list_connections().unwrap().is_empty(), "nothing created");
            assert!(
                m.audit_events(None, 100, None)
                    .unwrap()
                    .iter()
                    .all(|e| e.action != "credential.moved_to_keychain")
            );
        });
    }

    #[test]
    fn a_line_that_cannot_be_rewritten_is_refused_before_anything_is_stored() {
        each_store(|st| {
            let m = st.open();
            let s = ghp();
            let p = project(&[("bot.py", &format!("gh = Github(\"{s}\")\n"))]);
            let f = only_finding(p.path());
            assert!(!f.rewritable);
            let e = m
                .move_finding(MoveFinding {
                    root: p.path(),
                    finding: &FindingRef::from(&f),
                    connection: "github",
                    rewrite_for_agent: Some("bot"),
                    replace: false,
                })
                .unwrap_err();
            assert!(e.to_string().contains("delete the line by hand"), "{e}");
            assert!(m.list_connections().unwrap().is_empty());
            // Without the rewrite it moves, and says which line to delete.
            let moved = m
                .move_finding(MoveFinding {
                    root: p.path(),
                    finding: &FindingRef::from(&f),
                    connection: "github",
                    rewrite_for_agent: None,
                    replace: false,
                })
                .unwrap();
            assert!(!moved.rewritten);
            assert!(
                moved.next_step.starts_with("Delete line 1 of bot.py"),
                "{}",
                moved.next_step
            );
            assert!(
                std::fs::read_to_string(p.path().join("bot.py"))
                    .unwrap()
                    .contains(&s)
            );
        });
    }

    #[test]
    fn a_database_url_makes_a_database_connection_and_an_unknown_kind_needs_one_chosen() {
        each_store(|st| {
            let m = st.open();
            let url = format!(
                "postgres://app:{}@db.internal:5432/warehouse",
                "x7".repeat(6)
            );
            let aws = format!("AKIA{}", "QWERTYUIOPASDFGH");
            let p = project(&[(
                ".env",
                &format!("DATABASE_URL={url}\nAWS_ACCESS_KEY_ID={aws}\n"),
            )]);
            let found = Scanner::new(p.path()).unwrap().scan().unwrap().findings;
            let (db, key) = (&found[0], &found[1]);
            assert_eq!(db.suggested_connection.as_deref(), Some("warehouse"));
            assert_eq!(key.suggested_connection, None);
            let moved = m
                .move_finding(MoveFinding {
                    root: p.path(),
                    finding: &FindingRef::from(db),
                    connection: "warehouse",
                    rewrite_for_agent: None,
                    replace: false,
                })
                .unwrap();
            assert!(moved.created_connection);
            assert_eq!(moved.kind, ConnectionKind::Database);
            let c = m.get_connection("warehouse").unwrap();
            assert_eq!(c.kind, ConnectionKind::Database);
            assert_eq!(c.variable.as_deref(), Some("DATABASE_URL"));
            assert_eq!(c.actions[0].name, "connect");
            assert_eq!(
                m.connection_secret("warehouse").unwrap().unwrap().expose(),
                &url
            );
            // No connection is made for a kind Mandate cannot tell, and none is suggested.
            let e = m
                .move_finding(MoveFinding {
                    root: p.path(),
                    finding: &FindingRef::from(key),
                    connection: "aws",
                    rewrite_for_agent: None,
                    replace: false,
                })
                .unwrap_err();
            assert!(e.to_string().contains("add the connection first"), "{e}");
            assert!(!e.to_string().contains(&aws));
            let choices = m.move_choices(key).unwrap();
            assert_eq!(choices.home, "unknown");
            assert_eq!(choices.default, None);
            assert!(choices.options.is_empty(), "{:?}", choices.options);
            assert!(m.get_connection("aws").is_err());
        });
    }

    // ----- issue 17: never lose a credential ------------------------------------------------

    const OLD_GITHUB: &str = "ghp_0ldF0underT0kenFromLastMonth00000001";

    /// The founder's installation before the walk: a GitHub connection holding their token,
    /// an agent using it, and the agent's project with the walk's four lines.
    fn walk_setup(m: &Mandate) -> (tempfile::TempDir, [String; 3]) {
        m.add_member("founder", None).unwrap();
        m.add_preset_connection("github", "github").unwrap();
        m.set_connection_secret("github", Sensitive::new(OLD_GITHUB.into()))
            .unwrap();
        m.add_agent(crate::NewAgent {
            name: "billing-report-agent".into(),
            purpose: "monthly billing report".into(),
            owner: "founder".into(),
            parent: None,
            scopes: vec!["github:repo.read".into()],
            key: crate::KeyChoice::None,
        })
        .unwrap();
        let github = ghp();
        let openai = format!("sk-proj-{}", "Op3n".repeat(12));
        let db = format!("postgres://app:{}@db.internal:5432/app", "Pg5ql".repeat(4));
        let env = format!(
            "GITHUB_TOKEN={github}\nOPENAI_API_KEY={openai}\nDATABASE_URL={db}\n\
             AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n"
        );
        (project(&[(".env", &env)]), [github, openai, db])
    }

    #[test]
    fn the_walk_accepting_every_default_loses_no_credential() {
        each_store(|st| {
            let m = st.open();
            let (p, [github, openai, db]) = walk_setup(&m);
            let findings = Scanner::new(p.path()).unwrap().scan().unwrap().findings;
            // AWS's documented example is not offered.
            let kinds: Vec<&str> = findings.iter().map(|f| f.kind.as_str()).collect();
            assert_eq!(kinds, ["github_token", "openai_api_key", "database_url"]);
            // What broke in the walk: the database URL into the GitHub connection.
            let e = m
                .move_finding(MoveFinding {
                    root: p.path(),
                    finding: &FindingRef::from(&findings[2]),
                    connection: "github",
                    rewrite_for_agent: Some("billing-report-agent"),
                    replace: true,
                })
                .unwrap_err();
            assert!(
                e.to_string().contains("'github' is a GitHub connection"),
                "{e}"
            );
            // Every default: the offered connection, the rewrite, and at a confirmation the
            // safe answer (no).
            for f in &findings {
                let choices = m.move_choices(f).unwrap();
                let into = choices.default.expect("a known kind has a default");
                let req = MoveFinding {
                    root: p.path(),
                    finding: &FindingRef::from(f),
                    connection: &into,
                    rewrite_for_agent: Some("billing-report-agent"),
                    replace: false,
                };
                let plan = m.plan_move(&req).unwrap();
                if let Some(r) = &plan.replaces {
                    // The confirmation shows both masked and names who uses the connection.
                    assert_eq!(plan.connection, "github");
                    assert_eq!(r.current.as_ref().unwrap().masked, "ghp_••••••••0001");
                    assert_eq!(
                        plan.incoming.masked,
                        format!("ghp_••••••••{}", &github[36..])
                    );
                    assert_eq!(r.affected[0].agent.as_str(), "billing-report-agent");
                    assert!(r.summary.contains("github:repo.read"), "{}", r.summary);
                    let refused = m.move_finding(req).unwrap_err();
                    assert!(matches!(refused, Error::Conflict(_)), "{refused}");
                    assert!(!refused.to_string().contains(OLD_GITHUB));
                    continue;
                }
                m.move_finding(req).unwrap();
            }
            // Every real secret is in its file or in the keychain under the right connection.
            let env = std::fs::read_to_string(p.path().join(".env")).unwrap();
            assert!(
                env.contains(&github),
                "the declined move left the token in the file"
            );
            assert_eq!(
                m.connection_secret("github").unwrap().unwrap().expose(),
                OLD_GITHUB
            );
            assert!(!env.contains(&openai));
            assert_eq!(
                m.connection_secret("openai").unwrap().unwrap().expose(),
                &openai
            );
            assert!(!env.contains(&db));
            let app = m.get_connection("app").unwrap();
            assert_eq!(
                (app.kind, app.variable.as_deref()),
                (ConnectionKind::Database, Some("DATABASE_URL"))
            );
            assert_eq!(m.connection_secret("app").unwrap().unwrap().expose(), &db);
            assert!(env.contains("AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE"));
            // The trail says so, and never holds a value.
            let events = m.audit_events(None, 100, None).unwrap();
            let text = serde_json::to_string(&events).unwrap();
            for v in [OLD_GITHUB, &github, &openai, &db] {
                assert!(!text.contains(v));
            }
            assert!(
                events
                    .iter()
                    .all(|e| e.action != "connection.secret_replaced")
            );
        });
    }

    fn keychain_m(
        st: &TestStore,
    ) -> (Mandate, Arc<MemoryKeychain>, Arc<crate::clock::ManualClock>) {
        let k = Arc::new(MemoryKeychain::new());
        let clock = Arc::new(crate::clock::ManualClock::new(
            chrono::DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z")
                .unwrap()
                .with_timezone(&chrono::Utc),
        ));
        let m = Mandate::open(
            st.options(k.clone(), Actor::app("test", "t"))
                .clock(clock.clone()),
        )
        .unwrap();
        (m, k, clock)
    }

    fn kept(k: &MemoryKeychain) -> usize {
        k.accounts()
            .iter()
            .filter(|a| a.contains("/moved-previous/"))
            .count()
    }

    #[test]
    fn a_confirmed_replacement_is_audited_and_undone_from_the_same_place() {
        each_store(|st| {
            let (m, k, _) = keychain_m(st);
            let (p, [github, ..]) = walk_setup(&m);
            let before = std::fs::read(p.path().join(".env")).unwrap();
            let f = &Scanner::new(p.path()).unwrap().scan().unwrap().findings[0];
            let moved = m
                .move_finding(MoveFinding {
                    root: p.path(),
                    finding: &FindingRef::from(f),
                    connection: "github",
                    rewrite_for_agent: Some("billing-report-agent"),
                    replace: true,
                })
                .unwrap();
            assert!(moved.replaced_secret && moved.rewritten);
            assert_eq!(
                m.connection_secret("github").unwrap().unwrap().expose(),
                &github
            );
            assert_eq!(kept(&k), 1, "the founder's token is kept for the undo");
            let ev = m
                .audit_events(None, 100, None)
                .unwrap()
                .into_iter()
                .find(|e| e.action == "connection.secret_replaced")
                .expect("the replacement is its own event");
            assert_eq!(
                ev.details["agents_affected"],
                json!(["billing-report-agent"])
            );
            assert_eq!(ev.details["scopes_affected"], json!(["github:repo.read"]));
            assert_eq!(ev.details["source"], "moved_from_file");
            assert!(ev.details["previous_kept_until"].is_string());
            let c = m.get_connection("github").unwrap();
            assert!(c.secret_changed_at.is_some());
            assert_eq!(m.open_moves().unwrap().len(), 1);

            let undone = m.undo_move(&moved.move_id).unwrap();
            assert!(
                undone.file_restored && undone.previous_restored,
                "{undone:?}"
            );
            assert_eq!(
                std::fs::read(p.path().join(".env")).unwrap(),
                before,
                "byte for byte"
            );
            assert_eq!(
                m.connection_secret("github").unwrap().unwrap().expose(),
                OLD_GITHUB
            );
            assert_eq!(kept(&k), 0, "nothing is kept after the undo");
            assert!(m.open_moves().unwrap().is_empty());
            let e = m.undo_move(&moved.move_id).unwrap_err();
            assert!(e.to_string().contains("already undone"), "{e}");
            let actions: Vec<String> = m
                .audit_events(None, 3, None)
                .unwrap()
                .into_iter()
                .map(|e| e.action)
                .collect();
            assert_eq!(actions[0], "credential.move_undone");
            // The finding is where it was, so it can move again.
            let again = Scanner::new(p.path()).unwrap().scan().unwrap().findings;
            assert_eq!(FindingRef::from(&again[0]), FindingRef::from(f));
        });
    }

    #[test]
    fn the_undo_window_closes_after_a_day_or_at_the_next_move_and_the_kept_value_goes() {
        each_store(|st| {
            let (m, k, clock) = keychain_m(st);
            let (p, _) = walk_setup(&m);
            let f = Scanner::new(p.path()).unwrap().scan().unwrap().findings[0].clone();
            let mv = |replace| {
                m.move_finding(MoveFinding {
                    root: p.path(),
                    finding: &FindingRef::from(&f),
                    connection: "github",
                    rewrite_for_agent: None,
                    replace,
                })
            };
            let first = mv(true).unwrap();
            assert_eq!(kept(&k), 1);
            // A second move into the same connection closes the first one's window.
            let second = mv(true).unwrap();
            assert_eq!(kept(&k), 1, "only the latest previous value is kept");
            let e = m.undo_move(&first.move_id).unwrap_err();
            assert!(e.to_string().contains("can no longer be undone"), "{e}");
            // A day later the second closes too, and its kept value is deleted.
            clock.advance(UNDO_WINDOW - Duration::seconds(1));
            assert_eq!(m.close_expired_moves().unwrap(), 0);
            assert_eq!(m.open_moves().unwrap().len(), 1);
            clock.advance(Duration::seconds(1));
            assert!(m.open_moves().unwrap().is_empty());
            // A locked keychain keeps the value a little longer, but the undo is over.
            k.fail_with(Some(crate::secret::KeychainError::Locked {
                detail: "locked".into(),
                fix: "unlock it".into(),
            }));
            assert!(m.close_expired_moves().is_err());
            let e = m.undo_move(&second.move_id).unwrap_err();
            assert!(e.to_string().contains("24 hours have passed"), "{e}");
            k.fail_with(None);
            assert_eq!(kept(&k), 1);
            assert_eq!(m.close_expired_moves().unwrap(), 1);
            assert_eq!(kept(&k), 0);
            let e = m.undo_move(&second.move_id).unwrap_err();
            assert!(e.to_string().contains("can no longer be undone"), "{e}");
            assert!(
                m.audit_events(None, 5, None)
                    .unwrap()
                    .iter()
                    .any(|e| e.action == "credential.undo_expired")
            );
            let e = m.undo_move("last").unwrap_err();
            assert!(e.to_string().contains("no move can be undone"), "{e}");
        });
    }

    #[test]
    fn an_undo_that_would_lose_something_changes_nothing() {
        each_store(|st| {
            let (m, k, _) = keychain_m(st);
            let (p, [github, ..]) = walk_setup(&m);
            let f = Scanner::new(p.path()).unwrap().scan().unwrap().findings[0].clone();
            let go = |rewrite: Option<&str>| {
                m.move_finding(MoveFinding {
                    root: p.path(),
                    finding: &FindingRef::from(&f),
                    connection: "github",
                    rewrite_for_agent: rewrite,
                    replace: true,
                })
                .unwrap()
            };
            // The credential changed after the move: undoing would overwrite that change.
            let moved = go(Some("billing-report-agent"));
            m.set_connection_secret(
                "github",
                Sensitive::new(format!("ghp_{}", "n3w".repeat(12))),
            )
            .unwrap();
            let e = m.undo_move(&moved.move_id).unwrap_err();
            assert!(e.to_string().contains("changed after this move"), "{e}");
            assert!(
                !std::fs::read_to_string(p.path().join(".env"))
                    .unwrap()
                    .contains(&github)
            );
            assert_eq!(kept(&k), 1, "kept until the window closes");
            // The comment was edited away: the line cannot come back, and nothing moves.
            std::fs::write(p.path().join(".env"), format!("GITHUB_TOKEN={github}\n")).unwrap();
            let f2 = Scanner::new(p.path()).unwrap().scan().unwrap().findings[0].clone();
            let moved = m
                .move_finding(MoveFinding {
                    root: p.path(),
                    finding: &FindingRef::from(&f2),
                    connection: "github",
                    rewrite_for_agent: Some("billing-report-agent"),
                    replace: true,
                })
                .unwrap();
            std::fs::write(p.path().join(".env"), "# edited by hand\n").unwrap();
            let e = m.undo_move(&moved.move_id).unwrap_err();
            assert!(e.to_string().contains("no longer there"), "{e}");
            assert_eq!(
                m.connection_secret("github").unwrap().unwrap().expose(),
                &github
            );
            // A line that was not rewritten and then deleted: undoing would leave it nowhere.
            std::fs::write(p.path().join(".env"), format!("GITHUB_TOKEN={github}\n")).unwrap();
            let f3 = Scanner::new(p.path()).unwrap().scan().unwrap().findings[0].clone();
            let moved = m
                .move_finding(MoveFinding {
                    root: p.path(),
                    finding: &FindingRef::from(&f3),
                    connection: "github",
                    rewrite_for_agent: None,
                    replace: true,
                })
                .unwrap();
            std::fs::write(p.path().join(".env"), "").unwrap();
            let e = m.undo_move(&moved.move_id).unwrap_err();
            assert!(
                e.to_string().contains("would take it out of the keychain"),
                "{e}"
            );
            assert_eq!(
                m.connection_secret("github").unwrap().unwrap().expose(),
                &github
            );
            // Put back by hand, the undo works and the connection gets its previous value.
            std::fs::write(p.path().join(".env"), format!("GITHUB_TOKEN={github}\n")).unwrap();
            let undone = m.undo_move("last").unwrap();
            assert!(!undone.file_restored && undone.previous_restored);
            assert_eq!(
                m.connection_secret("github").unwrap().unwrap().expose(),
                &github
            );
            assert!(!e.to_string().contains(&github));
        });
    }

    #[test]
    fn removing_a_connection_deletes_what_its_moves_kept() {
        each_store(|st| {
            let (m, k, _) = keychain_m(st);
            let (p, _) = walk_setup(&m);
            let f = Scanner::new(p.path()).unwrap().scan().unwrap().findings[0].clone();
            let moved = m
                .move_finding(MoveFinding {
                    root: p.path(),
                    finding: &FindingRef::from(&f),
                    connection: "github",
                    rewrite_for_agent: None,
                    replace: true,
                })
                .unwrap();
            assert_eq!(kept(&k), 1);
            m.remove_connection("github").unwrap();
            assert_eq!(kept(&k), 0);
            assert!(m.undo_move(&moved.move_id).is_err());
        });
    }
}
