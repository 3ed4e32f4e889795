//! `mandate member ...`: the people who own agents, and which of them is using this login.

use clap::Subcommand;

use crate::context::{self, CliError, CliResult, Ctx, PersonSource};
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
    /// Remember that this OS login is this member: changes made here name them (until `--as`
    /// or MANDATE_ACTOR says otherwise). The desktop app uses the same choice.
    Use {
        /// The member's name.
        name: String,
    },
    /// Say who this invocation's changes are attributed to, and why.
    Whoami,
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
                if matches!(ctx.person()?.1, PersonSource::OsUser) {
                    println!(
                        "Your changes name your OS login until you choose a member: if this is \
                         you, run `mandate member use {}`.",
                        member.name
                    );
                }
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
        MemberCmd::Use { name } => {
            m.member_actor(&name)?;
            let Some(login) = context::login() else {
                return Err(CliError::Exit {
                    code: 3,
                    message: "the OS login name is unknown, so there is nothing to remember the \
                              member for; use --as MEMBER on each command instead"
                        .into(),
                });
            };
            let member = m.remember_member(&login, &name)?;
            if ctx.json {
                output::json(&serde_json::json!({"os_user": login, "member": member}))
            } else {
                println!(
                    "Changes made by the OS user '{login}' now name the team member '{}'.",
                    member.name
                );
                Ok(())
            }
        }
        MemberCmd::Whoami => {
            let (actor, source) = ctx.person()?;
            let why = match &source {
                PersonSource::Flag => "named by --as or MANDATE_ACTOR".to_string(),
                PersonSource::Remembered { login } => {
                    format!("remembered for the OS user '{login}' (`mandate member use`)")
                }
                PersonSource::OsUser => "choose a member with `mandate member use NAME`, or \
                                         pass --as NAME"
                    .to_string(),
            };
            if ctx.json {
                output::json(&serde_json::json!({"actor": actor, "because": why}))
            } else {
                println!("Changes name {}: {why}.", actor.describe());
                Ok(())
            }
        }
    }
}
