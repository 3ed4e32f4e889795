//! `mandate approvals list|approve|deny`: answer the calls that wait for a person (the
//! desktop app's Approvals inbox does the same). Adapters only: the rules are in
//! `mandate_core::approvals`.

use clap::Subcommand;
use mandate_core::approvals::{Approval, ApprovalWindow};

use crate::context::{CliResult, Ctx};
use crate::output;

#[derive(Debug, Subcommand)]
pub enum ApprovalsCmd {
    /// The requests waiting for a person (--all: every one of the last 7 days).
    List {
        #[arg(long)]
        all: bool,
    },
    /// Approve a request: the one call (default), or the same calls for a time box.
    Approve {
        id: String,
        /// once, 15m, 1h or today (until 00:00 UTC).
        #[arg(long = "for", value_name = "WINDOW", default_value = "once")]
        window: String,
    },
    /// Deny a request; the agent is told your reason.
    Deny {
        id: String,
        #[arg(long)]
        reason: String,
    },
}

pub fn run(ctx: &mut Ctx, cmd: ApprovalsCmd) -> CliResult {
    let m = ctx.mandate()?;
    let a: Approval = match cmd {
        ApprovalsCmd::List { all } => {
            let list = m.list_approvals(all)?;
            if ctx.json {
                return output::json(&list);
            }
            if list.is_empty() {
                println!("Nothing waits for a person.");
                return Ok(());
            }
            let mut t = output::table(&[
                "ID", "AGENT", "ACTION", "FOR", "WHY", "TRUST", "STATUS", "ASKED",
            ]);
            let now = m.now();
            for a in list {
                t.add_row(vec![
                    a.id.clone(),
                    a.agent.clone(),
                    a.action.clone(),
                    a.on_behalf_of.clone().unwrap_or_else(|| "-".into()),
                    a.why.clone(),
                    format!("{} ({})", a.trust_state, a.trust_score),
                    a.status.as_str().to_string(),
                    output::ago(a.requested_at, now),
                ]);
            }
            println!("{t}");
            return Ok(());
        }
        ApprovalsCmd::Approve { id, window } => {
            let w: ApprovalWindow = window.parse()?;
            m.approve(&id, w)?
        }
        ApprovalsCmd::Deny { id, reason } => m.deny_approval(&id, &reason)?,
    };
    if ctx.json {
        return output::json(&a);
    }
    match (&a.status, a.valid_until) {
        (mandate_core::approvals::ApprovalStatus::Approved, Some(until)) => println!(
            "Approved: '{}' may call {} until {}.",
            a.agent,
            a.action,
            until.format("%Y-%m-%d %H:%M UTC")
        ),
        (mandate_core::approvals::ApprovalStatus::Approved, None) => {
            println!(
                "Approved once: '{}' may make this call of {}.",
                a.agent, a.action
            )
        }
        _ => println!("Denied: '{}' is told why.", a.agent),
    }
    Ok(())
}
