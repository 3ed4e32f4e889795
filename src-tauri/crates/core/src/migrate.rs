//! Moving a borrowed credential out of an agent's project and into the OS keychain: the
//! migration wizard's "move it" button, usable by the CLI too.
//!
//! The client names a finding by place (file, line, column, kind), never by value. The core
//! re-reads that file itself ([`Scanner::locate`]: inside the scanned folder only, symlinks
//! resolved), stores the value as a connection's credential (creating the connection from the
//! finding's preset when it does not exist yet) and, if asked, replaces that one line with a
//! comment that points at `mandate exec`. The file is rewritten atomically (a temporary file
//! in the same folder, flushed, then renamed over the original), so it is either the old file
//! or the new one, never half of each; every other byte stays as it was.
//!
//! What it is not: a code rewriter. Only lines that are a plain assignment of the credential
//! (`NAME=value`, `export NAME="value"`, `name: value`) in files with `#` comments (`.env`,
//! shell, YAML, TOML, INI) are rewritten; anywhere else the wizard says which line to delete.
//! Nothing here returns, logs or audits the credential.

use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

use regex::Regex;
use serde::Serialize;
use serde_json::json;
use zeroize::Zeroizing;

use crate::Mandate;
use crate::audit::{Decision, NewEvent, Target};
use crate::error::{Error, Result};
use crate::model::AgentName;
use crate::scan::{FindingRef, Scanner};
use crate::secret::Sensitive;

/// What to move where.
#[derive(Debug, Clone, Copy)]
pub struct MoveFinding<'a> {
    /// The folder that was scanned; the finding's file must be inside it.
    pub root: &'a Path,
    pub finding: &'a FindingRef,
    /// The connection that gets the credential. Created from the finding's preset when no
    /// connection has this name yet.
    pub connection: &'a str,
    /// Replace the line with a comment naming this agent's `mandate exec` command.
    pub rewrite_for_agent: Option<&'a str>,
}

/// What moving did. Holds no secret.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct MovedCredential {
    pub connection: String,
    /// The connection did not exist and was made from the finding's preset.
    pub created_connection: bool,
    /// The connection had a credential already; it was replaced.
    pub replaced_secret: bool,
    pub file: String,
    pub line: u32,
    /// The line in the file was replaced by `comment`.
    pub rewritten: bool,
    pub comment: Option<String>,
    /// What the person should do next, as a sentence.
    pub next_step: String,
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
            "sh" | "bash" | "zsh" | "env" | "yml" | "yaml" | "toml" | "ini" | "cfg" | "conf"
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

impl Mandate {
    /// Move the credential behind a finding into the keychain as `req.connection`'s secret,
    /// and optionally replace its line with a comment (see the module docs). Checks
    /// everything it can before changing anything: the finding is re-read and must still
    /// match, the agent name must be valid, the line must be rewritable if a rewrite is asked
    /// for, and a new connection needs a preset. If the rewrite fails after the credential
    /// was stored, the error says so (the credential stays in the keychain, the file as it
    /// was). Audited as `credential.moved_to_keychain` (file, line, kind, connection; never
    /// the value), besides the connection's own events.
    pub fn move_finding(&self, req: MoveFinding<'_>) -> Result<MovedCredential> {
        let agent = req
            .rewrite_for_agent
            .map(|a| AgentName::parse(a).map(|n| n.as_str().to_string()))
            .transpose()?;
        let located = Scanner::new(req.root)?.locate(req.finding)?;
        let comment = match &agent {
            Some(agent) => Some(
                replacement_comment(
                    &located.relative,
                    located.line_text.expose(),
                    located.span,
                    located.variable.as_deref(),
                    req.connection,
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
        let (connection, created) = match self.get_connection(req.connection) {
            Ok(c) => (c, false),
            Err(Error::NotFound { .. }) => {
                let preset = located.preset.ok_or_else(|| {
                    Error::invalid(format!(
                        "there is no connection '{}', and a {} has no preset to create one \
                         from; add the connection first (Connections screen or `mandate \
                         connection add`), then move the credential into it",
                        req.connection,
                        crate::scan::label_of(located.kind)
                    ))
                })?;
                (self.add_preset_connection(req.connection, preset)?, true)
            }
            Err(e) => return Err(e),
        };
        let replaced = connection.has_secret;
        self.set_connection_secret(connection.name.as_str(), located.secret)?;
        let rewrite = match &comment {
            Some(c) => Some(replace_line(
                &located.path,
                located.line,
                &located.line_text,
                c,
            )),
            None => None,
        };
        let rewritten = matches!(rewrite, Some(Ok(())));
        self.record(
            NewEvent::new(self.actor(), "credential.moved_to_keychain", Decision::Allow)
                .target(Target::new(
                    "connection",
                    connection.id.as_str(),
                    connection.name.as_str(),
                ))
                .details(json!({
                    "file": located.relative,
                    "line": located.line,
                    "kind": located.kind,
                    "variable": located.variable,
                    "file_rewritten": rewritten,
                    "connection_created": created,
                })),
        )?;
        if let Some(Err(e)) = rewrite {
            return Err(Error::Conflict(format!(
                "the credential is now in the OS keychain (connection '{}'), but {} was not \
                 changed: {e}. Delete line {} by hand",
                connection.name, located.relative, located.line
            )));
        }
        let exec = format!(
            "mandate exec {} -- <command>",
            agent.as_deref().unwrap_or("AGENT")
        );
        let next_step = if rewritten {
            format!(
                "Line {} of {} now says where the credential went. Start the agent with `{exec}`: \
                 it gets a short-lived token instead of the key.",
                located.line, located.relative
            )
        } else {
            format!(
                "Delete line {} of {}{}, then start the agent with `{exec}`: it gets a \
                 short-lived token instead of the key.",
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
            connection: connection.name.as_str().to_string(),
            created_connection: created,
            replaced_secret: replaced,
            file: located.relative.clone(),
            line: located.line,
            rewritten,
            comment,
            next_step,
        })
    }
}
