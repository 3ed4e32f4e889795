//! `mandate delegation ...`: let an agent act for a team member, for one task, until a time.
//!
//! Tokens minted under a delegation (through token exchange) carry `sub` = the member and
//! `act.sub` = the agent; revoking the delegation makes them inactive at once.

use clap::Subcommand;
use mandate_core::oauth::{Delegation, NewDelegation};

use crate::cmd::parse_duration;
use crate::context::{CliError, CliResult, Ctx};
use crate::output;

#[derive(Debug, Subcommand)]
pub enum DelegationCmd {
    /// Let AGENT act for a member with some of its scopes, until a time, for a task.
    Add {
        /// The agent that will act.
        agent: String,
        /// The team member it acts for.
        #[arg(long = "for", value_name = "MEMBER")]
        member: String,
        /// A scope it may use for them (repeatable; must be among the agent's grants).
        #[arg(long = "scope", value_name = "S", required = true)]
        scopes: Vec<String>,
        /// When it ends: an RFC 3339 time (2026-12-01T18:00:00Z) or a duration from now (8h, 7d).
        #[arg(long, value_name = "T")]
        until: String,
        /// What it is for, in a few words (recorded in the audit trail).
        #[arg(long, value_name = "K")]
        task: String,
    },
    /// List delegations (of one agent if given).
    List { agent: Option<String> },
    /// Revoke a delegation: every token minted under it stops working at once.
    Revoke {
        /// The delegation's id (see `mandate delegation list`).
        id: String,
        /// Why (recorded in the audit trail).
        #[arg(long)]
        reason: String,
    },
}

fn parse_until(
    raw: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> CliResult<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    parse_duration(raw)
        .map(|d| now + d)
        .map_err(|_| CliError::Exit {
            code: 3,
            message: format!(
                "'{raw}' is neither an RFC 3339 time (2026-12-01T18:00:00Z) nor a duration (8h, 7d)"
            ),
        })
}

pub fn run(ctx: &mut Ctx, cmd: DelegationCmd) -> CliResult {
    let m = ctx.mandate()?;
    match cmd {
        DelegationCmd::Add {
            agent,
            member,
            scopes,
            until,
            task,
        } => {
            let until = parse_until(&until, m.now())?;
            let d = m.add_delegation(NewDelegation {
                agent,
                member,
                scopes,
                until,
                task,
            })?;
            if ctx.json {
                return output::json(&d);
            }
            println!(
                "Delegation {}: '{}' may act for '{}' with {} until {} (task: {}).",
                d.id,
                d.agent,
                d.member,
                d.scopes.join(" "),
                d.until.to_rfc3339(),
                d.task
            );
            Ok(())
        }
        DelegationCmd::List { agent } => {
            let list = m.list_delegations(agent.as_deref())?;
            if ctx.json {
                return output::json(&list);
            }
            if list.is_empty() {
                println!(
                    "No delegations. Add one with `mandate delegation add AGENT --for MEMBER ...`."
                );
                return Ok(());
            }
            let mut t = output::table(&["id", "agent", "for", "scopes", "until", "task", "state"]);
            for d in &list {
                t.add_row(row(d));
            }
            println!("{t}");
            Ok(())
        }
        DelegationCmd::Revoke { id, reason } => {
            let d = m.revoke_delegation(&id, &reason)?;
            if ctx.json {
                return output::json(&d);
            }
            println!(
                "Revoked delegation {} ('{}' for '{}').",
                d.id, d.agent, d.member
            );
            Ok(())
        }
    }
}

fn row(d: &Delegation) -> Vec<String> {
    let state = if d.revoked_at.is_some() {
        "revoked"
    } else if d.active {
        "active"
    } else {
        "ended"
    };
    vec![
        d.id.clone(),
        d.agent.clone(),
        d.member.clone(),
        d.scopes.join(" "),
        d.until.to_rfc3339(),
        d.task.clone(),
        state.into(),
    ]
}
