//! `mandate scan PATH`: find credentials an agent's project holds today (the wizard's
//! Inventory step, from the command line). Reads only and prints masked values only, unless
//! `--move FILE:LINE --to CONNECTION` asks to move one finding into the OS keychain (the
//! wizard's Rotate step; see `mandate_core::migrate`).

use std::path::PathBuf;

use clap::Args;
use mandate_core::migrate::MoveFinding;
use mandate_core::scan::{FindingRef, Scanner};

use crate::context::{CliError, CliResult, Ctx};
use crate::output;

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// The agent's project folder.
    pub path: PathBuf,
    /// Move the credential found at FILE:LINE (or FILE:LINE:COLUMN when a line holds several;
    /// FILE relative to PATH) into the OS keychain as the secret of --to.
    #[arg(long = "move", value_name = "FILE:LINE", requires = "to")]
    pub move_at: Option<String>,
    /// The connection that gets the moved credential; made from the finding's preset
    /// (github, slack, stripe, openai, anthropic) when it does not exist yet.
    #[arg(long, value_name = "CONNECTION", requires = "move_at")]
    pub to: Option<String>,
    /// Also replace the line with a comment saying to run AGENT with `mandate exec`
    /// (plain assignments in .env, shell, YAML, TOML and INI files only).
    #[arg(long, value_name = "AGENT", requires = "move_at")]
    pub rewrite_for: Option<String>,
}

pub fn run(ctx: &mut Ctx, args: ScanArgs) -> CliResult {
    let report = Scanner::new(&args.path)?.scan()?;
    if let (Some(at), Some(to)) = (&args.move_at, &args.to) {
        let wanted = parse_place(at)?;
        let hits: Vec<_> = report
            .findings
            .iter()
            .filter(|f| {
                f.file == wanted.0 && f.line == wanted.1 && wanted.2.is_none_or(|c| c == f.column)
            })
            .collect();
        let f = match hits.as_slice() {
            [f] => *f,
            [] => {
                return Err(CliError::Exit {
                    code: 4,
                    message: format!(
                        "no credential was found at {at}; run `mandate scan {}` to list them",
                        args.path.display()
                    ),
                });
            }
            _ => {
                return Err(usage(format!(
                    "line {} of {} holds {} credentials; add the column: {}",
                    wanted.1,
                    wanted.0,
                    hits.len(),
                    hits.iter()
                        .map(|f| format!("{}:{}:{}", f.file, f.line, f.column))
                        .collect::<Vec<_>>()
                        .join(" or ")
                )));
            }
        };
        let moved = ctx.mandate()?.move_finding(MoveFinding {
            root: &args.path,
            finding: &FindingRef::from(f),
            connection: to,
            rewrite_for_agent: args.rewrite_for.as_deref(),
        })?;
        if ctx.json {
            return output::json(&moved);
        }
        println!(
            "Moved the {} from {}:{} into the OS keychain as the secret of connection '{}'{}.",
            f.label,
            moved.file,
            moved.line,
            moved.connection,
            if moved.created_connection {
                " (created from its preset)"
            } else {
                ""
            }
        );
        println!("{}", moved.next_step);
        return Ok(());
    }
    if ctx.json {
        return output::json(&report);
    }
    if report.findings.is_empty() {
        println!(
            "No credentials in known formats found in {} ({} files read).",
            report.root, report.files_scanned
        );
        return Ok(());
    }
    let mut t = output::table(&["FILE:LINE", "KIND", "VARIABLE", "VALUE (masked)"]);
    for f in &report.findings {
        t.add_row(vec![
            format!("{}:{}", f.file, f.line),
            f.label.clone(),
            f.variable.clone().unwrap_or_default(),
            f.masked.clone(),
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
