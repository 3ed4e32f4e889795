//! `mandate member ...`: the people who own agents.

use clap::Subcommand;

use crate::context::{CliResult, Ctx};
use crate::output;

#[derive(Debug, Subcommand)]
pub enum MemberCmd {
    /// Add a team member.
    Add {
        /// Their handle: lowercase letters, digits and dashes (e.g. `founder`, `ana`).
        name: String,
        /// Their email address.
        #[arg(long)]
        email: Option<String>,
    },
    /// List team members.
    List,
}

pub fn run(ctx: &mut Ctx, cmd: MemberCmd) -> CliResult {
    let m = ctx.mandate()?;
    match cmd {
        MemberCmd::Add { name, email } => {
            let member = m.add_member(&name, email.as_deref())?;
            if ctx.json {
                output::json(&member)
            } else {
                println!("Added team member '{}'.", member.name);
                Ok(())
            }
        }
        MemberCmd::List => {
            let members = m.list_members()?;
            if ctx.json {
                return output::json(&members);
            }
            if members.is_empty() {
                println!("No team members yet. Add one with `mandate member add NAME`.");
                return Ok(());
            }
            let mut t = output::table(&["NAME", "EMAIL", "ADDED"]);
            for mem in members {
                t.add_row(vec![
                    mem.name.to_string(),
                    mem.email.unwrap_or_default(),
                    mem.created_at.format("%Y-%m-%d").to_string(),
                ]);
            }
            println!("{t}");
            Ok(())
        }
    }
}
