//! `mandate scan PATH`: find credentials an agent's project holds today (the wizard's
//! Inventory step, from the command line). Reads only; prints masked values only.

use std::path::PathBuf;

use clap::Args;
use mandate_core::scan::Scanner;

use crate::context::{CliResult, Ctx};
use crate::output;

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// The agent's project folder.
    pub path: PathBuf,
}

pub fn run(ctx: &mut Ctx, args: ScanArgs) -> CliResult {
    let report = Scanner::new(&args.path)?.scan()?;
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
        "{} credential(s) in {} files. Move each into the keychain with \
         `mandate connection set-secret NAME` and give the agent its own identity with \
         `mandate agent add`.",
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
