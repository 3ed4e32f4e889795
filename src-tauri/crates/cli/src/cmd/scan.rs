//! `mandate scan PATH`: find credentials an agent's project holds today (the wizard's
//! Inventory step, from the command line). Reads only and prints masked values only, unless
//! `--move FILE:LINE --to CONNECTION` asks to move one finding into the OS keychain (the
//! wizard's Rotate step; see `mandate_core::migrate`). A move that would replace a connection's
//! credential asks first (or needs `--replace`), and any move can be undone for 24 hours with
//! `mandate scan --undo MOVE` (`--moves` lists them).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use clap::Args;
use mandate_core::migrate::{MoveFinding, MovePlan};
use mandate_core::scan::{Finding, FindingRef, Scanner};

use crate::context::{CliError, CliResult, Ctx};
use crate::output;

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// The agent's project folder.
    #[arg(required_unless_present_any = ["undo", "moves"])]
    pub path: Option<PathBuf>,
    /// Move the credential found at FILE:LINE (or FILE:LINE:COLUMN when a line holds several;
    /// FILE relative to PATH) into the OS keychain as the secret of --to.
    #[arg(long = "move", value_name = "FILE:LINE", requires = "to")]
    pub move_at: Option<String>,
    /// The connection that gets the moved credential. It must be of the credential's kind (a
    /// GitHub token into a GitHub connection, a database URL into a database connection); it
    /// is made when it does not exist yet, from the finding's preset or as a database
    /// connection. `mandate scan PATH` shows the suggested one.
    #[arg(long, value_name = "CONNECTION", requires = "move_at")]
    pub to: Option<String>,
    /// Also replace the line with a comment saying to run AGENT with `mandate exec`
    /// (plain assignments in .env, shell, YAML, TOML and INI files only).
    #[arg(long, value_name = "AGENT", requires = "move_at")]
    pub rewrite_for: Option<String>,
    /// Replace the credential the connection already holds without asking (it is kept for
    /// 24 hours so that `--undo` can give it back).
    #[arg(long, requires = "move_at")]
    pub replace: bool,
    /// Undo a move: the line comes back into its file and the connection gets back the
    /// credential it held before. MOVE is the id a move printed, or `last`.
    #[arg(long, value_name = "MOVE", conflicts_with_all = ["move_at", "moves", "path"])]
    pub undo: Option<String>,
    /// List the moves that can still be undone.
    #[arg(long, conflicts_with_all = ["move_at", "path"])]
    pub moves: bool,
}

pub fn run(ctx: &mut Ctx, args: ScanArgs) -> CliResult {
    if let Some(id) = &args.undo {
        return undo(ctx, id);
    }
    if args.moves {
        return list_moves(ctx);
    }
    let Some(path) = &args.path else {
        return Err(usage("give the project folder to scan".into()));
    };
    let report = Scanner::new(path)?.scan()?;
    if let (Some(at), Some(to)) = (&args.move_at, &args.to) {
        let f = pick(&report.findings, at, path)?;
        return move_one(ctx, path, f, to, &args);
    }
    let mcp = mcp_configs(path);
    if ctx.json {
        let mut v = serde_json::to_value(&report).unwrap_or_default();
        v["mcp_configs"] = serde_json::to_value(&mcp).unwrap_or_default();
        return output::json(&v);
    }
    print_mcp_configs(&mcp);
    if report.findings.is_empty() {
        println!(
            "No credentials in known formats found in {} ({} files read).",
            report.root, report.files_scanned
        );
        return Ok(());
    }
    let mut t = output::table(&[
        "FILE:LINE",
        "KIND",
        "VARIABLE",
        "VALUE (masked)",
        "GOES INTO",
    ]);
    for f in &report.findings {
        t.add_row(vec![
            format!("{}:{}", f.file, f.line),
            f.label.clone(),
            f.variable.clone().unwrap_or_default(),
            f.masked.clone(),
            goes_into(f),
        ]);
    }
    println!("{t}");
    println!(
        "{} credential(s) in {} files. Move one into the keychain with \
         `mandate scan PATH --move FILE:LINE --to CONNECTION [--rewrite-for AGENT]` and give \
         the agent its own identity with `mandate agent add`.",
        report.findings.len(),
        report.files_scanned
    );
    if report.truncated {
        println!(
            "The scan stopped after {} files; scan a narrower folder.",
            report.files_scanned
        );
    }
    Ok(())
}

/// The suggested connection, as the listing shows it.
fn goes_into(f: &Finding) -> String {
    match (&f.suggested_connection, f.kind.as_str()) {
        (Some(c), mandate_core::scan::DATABASE_URL) => format!("{c} (database)"),
        (Some(c), _) => c.clone(),
        (None, "private_key") => "(move the file by hand)".into(),
        (None, _) => "(you choose)".into(),
    }
}

/// The one finding at `at` (`FILE:LINE` or `FILE:LINE:COLUMN`).
fn pick<'a>(findings: &'a [Finding], at: &str, root: &std::path::Path) -> CliResult<&'a Finding> {
    let wanted = parse_place(at)?;
    let hits: Vec<_> = findings
        .iter()
        .filter(|f| {
            f.file == wanted.0 && f.line == wanted.1 && wanted.2.is_none_or(|c| c == f.column)
        })
        .collect();
    match hits.as_slice() {
        [f] => Ok(*f),
        [] => Err(CliError::Exit {
            code: 4,
            message: format!(
                "no credential was found at {at}; run `mandate scan {}` to list them",
                root.display()
            ),
        }),
        _ => Err(usage(format!(
            "line {} of {} holds {} credentials; add the column: {}",
            wanted.1,
            wanted.0,
            hits.len(),
            hits.iter()
                .map(|f| format!("{}:{}:{}", f.file, f.line, f.column))
                .collect::<Vec<_>>()
                .join(" or ")
        ))),
    }
}

/// The confirmation a replacement needs, in words.
fn describe_replacement(plan: &MovePlan) -> Option<String> {
    let r = plan.replaces.as_ref()?;
    let current = r.current.as_ref().map_or(
        "a credential the keychain no longer holds".to_string(),
        |c| format!("{} {}", c.label, c.masked),
    );
    Some(format!(
        "'{}' already holds {current}.\nMoving this {} {} into it replaces that one.\n{}\n\
         The current credential is kept until {} so the move can be undone \
         (`mandate scan --undo`).",
        plan.connection,
        plan.incoming.label,
        plan.incoming.masked,
        r.summary,
        plan.undo_until.format("%Y-%m-%d %H:%M UTC"),
    ))
}

/// Ask on the terminal; anything but yes is no.
fn confirm(question: &str) -> bool {
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).is_ok()
        && matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

fn move_one(
    ctx: &mut Ctx,
    root: &std::path::Path,
    f: &Finding,
    to: &str,
    args: &ScanArgs,
) -> CliResult {
    let m = ctx.mandate()?;
    let finding = FindingRef::from(f);
    let mut req = MoveFinding {
        root,
        finding: &finding,
        connection: to,
        rewrite_for_agent: args.rewrite_for.as_deref(),
        replace: args.replace,
    };
    let plan = m.plan_move(&req)?;
    if let Some(words) = describe_replacement(&plan)
        && !args.replace
    {
        let interactive = !ctx.json && std::io::stdin().is_terminal();
        if !(interactive && {
            eprintln!("{words}");
            confirm("Replace it?")
        }) {
            return Err(CliError::Exit {
                code: 5,
                message: format!(
                    "{words}\nNothing was changed. To replace it, run the same command with \
                     --replace; to keep it, choose another connection with --to."
                ),
            });
        }
        req.replace = true;
    }
    let moved = m.move_finding(req)?;
    if ctx.json {
        return output::json(&moved);
    }
    println!(
        "Moved the {} from {}:{} into the OS keychain as the {} of connection '{}'{}.",
        f.label,
        moved.file,
        moved.line,
        if moved.replaced_secret {
            "new secret (replacing the one it had)"
        } else {
            "secret"
        },
        moved.connection,
        if moved.created_connection {
            match moved.kind {
                mandate_core::model::ConnectionKind::Database => " (a new database connection)",
                mandate_core::model::ConnectionKind::Http => " (created from its preset)",
            }
        } else {
            ""
        }
    );
    println!("{}", moved.next_step);
    println!(
        "Undo until {}: mandate scan --undo {}",
        moved.undo_until.format("%Y-%m-%d %H:%M UTC"),
        moved.move_id
    );
    Ok(())
}

fn list_moves(ctx: &mut Ctx) -> CliResult {
    let m = ctx.mandate()?;
    if let Err(e) = m.close_expired_moves() {
        eprintln!("warning: expired moves could not be closed yet: {e}");
    }
    let moves = m.open_moves()?;
    if ctx.json {
        return output::json(&moves);
    }
    if moves.is_empty() {
        println!(
            "No move can be undone: none was made in the last 24 hours, or each was undone or \
             replaced by a later move into the same connection."
        );
        return Ok(());
    }
    let mut t = output::table(&["MOVE", "FROM", "KIND", "INTO", "REPLACED", "UNDO UNTIL"]);
    for mv in &moves {
        t.add_row(vec![
            mv.id.clone(),
            format!("{}:{}", mv.file, mv.line),
            mv.label.clone(),
            mv.connection.clone(),
            if mv.replaced_secret {
                "yes (kept)"
            } else {
                "no"
            }
            .into(),
            mv.undo_until.format("%Y-%m-%d %H:%M UTC").to_string(),
        ]);
    }
    println!("{t}");
    println!("Undo one with `mandate scan --undo MOVE` (or `--undo last`).");
    Ok(())
}

fn undo(ctx: &mut Ctx, id: &str) -> CliResult {
    let m = ctx.mandate()?;
    let done = m.undo_move(id)?;
    if ctx.json {
        return output::json(&done);
    }
    println!("{}", done.summary);
    Ok(())
}

/// `FILE:LINE` or `FILE:LINE:COLUMN`.
fn parse_place(s: &str) -> Result<(String, u32, Option<u32>), CliError> {
    let bad = || {
        usage(format!(
            "'{s}' is not FILE:LINE or FILE:LINE:COLUMN (e.g. .env:3), as `mandate scan` lists them"
        ))
    };
    let (rest, last) = s.rsplit_once(':').ok_or_else(bad)?;
    let last: u32 = last.parse().map_err(|_| bad())?;
    match rest.rsplit_once(':').map(|(f, l)| (f, l.parse::<u32>())) {
        Some((file, Ok(line))) if !file.is_empty() => Ok((file.into(), line, Some(last))),
        _ if !rest.is_empty() => Ok((rest.into(), last, None)),
        _ => Err(bad()),
    }
}

fn usage(message: String) -> CliError {
    CliError::Exit { code: 2, message }
}

/// MCP client configs in the project and the user's home that start servers with inline
/// secrets (masked), for `mandate mcp import`.
fn mcp_configs(project: &std::path::Path) -> Vec<mandate_core::mcp::ConfigFile> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    mandate_core::mcp::config_locations(Some(project), home.as_deref())
        .iter()
        .filter_map(|p| mandate_core::mcp::read_config(p).ok())
        .filter(|c| {
            c.entries
                .iter()
                .any(|e| e.has_inline_secret() && !e.bridged)
        })
        .collect()
}

fn print_mcp_configs(configs: &[mandate_core::mcp::ConfigFile]) {
    for c in configs {
        for e in c
            .entries
            .iter()
            .filter(|e| e.has_inline_secret() && !e.bridged)
        {
            let secrets: Vec<String> = e
                .env
                .iter()
                .filter(|v| v.secret)
                .map(|v| format!("{}={}", v.name, v.shown))
                .collect();
            println!(
                "MCP server '{}' in {} holds {} in plain text.",
                e.key,
                c.path,
                secrets.join(", ")
            );
            println!(
                "  Move it into the keychain and route it through Mandate: mandate mcp import \"{}\" --agent AGENT --server {}",
                c.path, e.key
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_place;

    #[test]
    fn places_parse_with_and_without_a_column() {
        assert_eq!(parse_place(".env:3").unwrap(), (".env".into(), 3, None));
        assert_eq!(
            parse_place("a/b.yml:4:9").unwrap(),
            ("a/b.yml".into(), 4, Some(9))
        );
        for bad in ["", ".env", ":3", ".env:x", ".env:3:"] {
            assert!(parse_place(bad).is_err(), "{bad}");
        }
    }
}
