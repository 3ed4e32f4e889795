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
            NewEvent::new(
                self.actor(),
                "credential.moved_to_keychain",
                Decision::Allow,
            )
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::audit::Actor;
    use crate::secret::MemoryKeychain;
    use crate::{OpenOptions, scan::Finding};

    // Fake credentials built at run time so this file holds no literal that looks real.
    fn ghp() -> String {
        format!("ghp_{}", "a1B2".repeat(9))
    }

    fn open(dir: &Path) -> Mandate {
        Mandate::open(OpenOptions::new(
            dir,
            Arc::new(MemoryKeychain::new()),
            Actor::app("test", "t"),
        ))
        .unwrap()
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
        let data = tempfile::tempdir().unwrap();
        let m = open(data.path());
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
        let store = std::fs::read(data.path().join(crate::store::DB_FILE)).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&store).contains(&s));
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
    }

    #[test]
    fn a_stale_or_foreign_finding_changes_nothing() {
        let data = tempfile::tempdir().unwrap();
        let m = open(data.path());
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
    }

    #[test]
    fn a_line_that_cannot_be_rewritten_is_refused_before_anything_is_stored() {
        let data = tempfile::tempdir().unwrap();
        let m = open(data.path());
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
    }

    #[test]
    fn a_kind_without_a_preset_needs_an_existing_connection() {
        let data = tempfile::tempdir().unwrap();
        let m = open(data.path());
        let url = format!("postgres://app:{}@db.internal:5432/app", "x7".repeat(6));
        let p = project(&[(".env", &format!("DATABASE_URL={url}\n"))]);
        let f = only_finding(p.path());
        let e = m
            .move_finding(MoveFinding {
                root: p.path(),
                finding: &FindingRef::from(&f),
                connection: "db",
                rewrite_for_agent: None,
            })
            .unwrap_err();
        assert!(e.to_string().contains("add the connection first"), "{e}");
        assert!(!e.to_string().contains(&url));
    }
}
