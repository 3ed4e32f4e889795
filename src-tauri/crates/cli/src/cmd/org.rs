//! `mandate org [NAME]`: the organisation name on the cover of audit reports, shared with the
//! app's Settings. Every export (PDF) uses it unless `--org` says otherwise.

use clap::Args;

use crate::context::{CliResult, Ctx};
use crate::output;

#[derive(Debug, Args)]
pub struct OrgArgs {
    /// The new name (for example "Example Robotics Ltd"); without it, print the current one.
    #[arg(conflicts_with = "clear")]
    name: Option<String>,
    /// Remove the name: reports then name the installation instead.
    #[arg(long)]
    clear: bool,
}

pub fn run(ctx: &mut Ctx, a: OrgArgs) -> CliResult {
    let m = ctx.mandate()?;
    let value = match (&a.name, a.clear) {
        (Some(name), _) => m.set_organisation_name(name)?,
        (None, true) => m.set_organisation_name("")?,
        (None, false) => m.organisation_name()?,
    };
    if ctx.json {
        return output::json(&serde_json::json!({"organisation": value}));
    }
    match value {
        Some(v) => println!("{v}"),
        None if a.clear => println!("Cleared: reports name the installation instead."),
        None => println!(
            "No organisation name yet: reports name the installation. Set one with `mandate org \
             \"Example Robotics Ltd\"`."
        ),
    }
    Ok(())
}
