//! What a member signed in to a team server may do, by role (issue 21 §1).
//!
//! - **admin**: manages members (invite, remove), and may act on any agent and any approval;
//! - **member**: manages the agents they own (suspend, resume, revoke) and decides the
//!   approval requests of those agents;
//! - **auditor**: reads (agents, members, the audit trail) and changes nothing.
//!
//! Every method takes the [`SignedIn`] member that the server's token check produced for this
//! request (`oauth/member.rs`, which re-reads membership on every request, so a removed
//! member's next request fails). A change runs as that member ([`Mandate::acting_as`]), so its
//! audit event names them; a refusal is audited as `team.request_denied`, names them, and
//! changes nothing else.
//!
//! What it is not: authentication (`oauth/member.rs`), or HTTP (`mandate-server`'s
//! `members.rs`).

use chrono::Duration;
use serde::Serialize;
use serde_json::json;

use crate::Mandate;
use crate::approvals::{Approval, ApprovalWindow};
use crate::audit::{self, Actor, AuditEvent, Decision, NewEvent, Target};
use crate::error::{Error, Result};
use crate::model::{Agent, MemberId};
use crate::store::params;
use crate::team::{self, Invite, Role};

/// The member a request comes from, as the token check found them in the registry now.
#[derive(Debug, Clone, Serialize)]
pub struct SignedIn {
    pub member: MemberId,
    pub name: String,
    pub role: Role,
    /// The enrolled key the member signed in with.
    pub kid: String,
}

impl SignedIn {
    pub fn actor(&self) -> Actor {
        Actor::member(self.member.as_str(), &self.name)
    }
}

/// A member of the team as the member API lists them.
#[derive(Debug, Clone, Serialize)]
pub struct TeamMember {
    pub name: String,
    pub email: Option<String>,
    pub role: Role,
    pub joined_at: String,
    /// Set once they were removed; they can no longer sign in.
    pub removed_at: Option<String>,
}

/// A change to an agent's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentChange {
    Suspend,
    Resume,
    Revoke,
}

impl AgentChange {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentChange::Suspend => "suspend",
            AgentChange::Resume => "resume",
            AgentChange::Revoke => "revoke",
        }
    }
}

/// A decision on an approval request.
#[derive(Debug, Clone)]
pub enum ApprovalAnswer {
    Approve(ApprovalWindow),
    Deny(String),
}

/// The longest page of audit events one request reads.
pub const MAX_AUDIT_PAGE: u32 = 1000;

impl Mandate {
    /// Refuse `who` doing `action` on `target` with `why`: audited as `team.request_denied`
    /// naming the member, then `Err(Refused)`.
    fn team_refuse(
        &self,
        who: &SignedIn,
        action: &str,
        target: Option<Target>,
        why: String,
    ) -> Error {
        let ev = NewEvent::new(&who.actor(), "team.request_denied", Decision::Deny)
            .reason(why.clone())
            .details(json!({"request": action, "role": who.role.as_str()}));
        let ev = match target {
            Some(t) => ev.target(t),
            None => ev,
        };
        match self.write(|tx, now| audit::append(tx, now, ev)) {
            Ok(_) => Error::Refused(why),
            Err(e) => e,
        }
    }

    /// Every agent (every role may read the registry).
    pub fn team_agents(&self, _who: &SignedIn) -> Result<Vec<Agent>> {
        self.list_agents()
    }

    /// Suspend, resume or revoke `agent` as `who`: an admin any agent, a member only the agents
    /// they own, an auditor none.
    pub fn team_change_agent(
        &self,
        who: &SignedIn,
        agent: &str,
        change: AgentChange,
        reason: Option<&str>,
    ) -> Result<Agent> {
        let a = self.get_agent(agent)?;
        let target = Target::new("agent", a.id.as_str(), a.name.as_str());
        let request = format!("agent.{}", change.as_str());
        match who.role {
            Role::Admin => {}
            Role::Auditor => {
                return Err(self.team_refuse(
                    who,
                    &request,
                    Some(target),
                    format!(
                        "{} is an auditor on this team: auditors read and export, and change \
                         nothing. Ask the agent's owner or an admin",
                        who.name
                    ),
                ));
            }
            Role::Member => {
                if a.owner.as_ref().map(|o| o.as_str()) != Some(who.name.as_str()) {
                    let owner = a
                        .owner
                        .as_ref()
                        .map_or("nobody".to_string(), |o| o.as_str().to_string());
                    return Err(self.team_refuse(
                        who,
                        &request,
                        Some(target),
                        format!(
                            "{} does not own the agent '{}' (its owner is {owner}); members \
                             manage the agents they own. Ask its owner or an admin",
                            who.name, a.name
                        ),
                    ));
                }
            }
        }
        self.acting_as(who.actor(), || match change {
            AgentChange::Suspend => self.suspend_agent(agent, reason),
            AgentChange::Resume => self.resume_agent(agent),
            AgentChange::Revoke => {
                self.revoke_agent(agent, reason.unwrap_or("revoked through the team server"))
            }
        })
    }

    /// The approval requests `who` may decide: an admin every open one, a member those of the
    /// agents they own, an auditor none (auditors read decisions in the audit trail).
    pub fn team_approvals(&self, who: &SignedIn) -> Result<Vec<Approval>> {
        if who.role == Role::Auditor {
            return Ok(Vec::new());
        }
        let all = self.list_approvals(false)?;
        if who.role == Role::Admin {
            return Ok(all);
        }
        let owned: std::collections::HashSet<String> = self
            .list_agents()?
            .into_iter()
            .filter(|a| a.owner.as_ref().map(|o| o.as_str()) == Some(who.name.as_str()))
            .map(|a| a.name.as_str().to_string())
            .collect();
        Ok(all
            .into_iter()
            .filter(|a| owned.contains(&a.agent))
            .collect())
    }

    /// Approve or deny approval request `id` as `who` (the same rule as for agents: the owner
    /// of the agent that asks, or an admin).
    pub fn team_decide(
        &self,
        who: &SignedIn,
        id: &str,
        answer: ApprovalAnswer,
    ) -> Result<Approval> {
        let req = self.approval(id)?;
        let agent = self.get_agent(&req.agent)?;
        let target = Target::new("approval", &req.id, &req.action);
        let request = match answer {
            ApprovalAnswer::Approve(_) => "approval.approve",
            ApprovalAnswer::Deny(_) => "approval.deny",
        };
        let allowed = match who.role {
            Role::Admin => Ok(()),
            Role::Auditor => Err(format!(
                "{} is an auditor on this team: auditors read and export, and decide nothing",
                who.name
            )),
            Role::Member => {
                if agent.owner.as_ref().map(|o| o.as_str()) == Some(who.name.as_str()) {
                    Ok(())
                } else {
                    Err(format!(
                        "{} does not own the agent '{}' that asks; its owner or an admin decides",
                        who.name, agent.name
                    ))
                }
            }
        };
        if let Err(why) = allowed {
            return Err(self.team_refuse(who, request, Some(target), why));
        }
        self.acting_as(who.actor(), || match answer {
            ApprovalAnswer::Approve(w) => self.approve(id, w),
            ApprovalAnswer::Deny(reason) => self.deny_approval(id, &reason),
        })
    }

    /// Audit events, newest first (every role).
    pub fn team_audit(
        &self,
        _who: &SignedIn,
        limit: u32,
        before_seq: Option<u64>,
    ) -> Result<Vec<AuditEvent>> {
        self.audit_events(None, limit.clamp(1, MAX_AUDIT_PAGE), before_seq)
    }

    /// Everyone who joined the team, removed members included (every role).
    pub fn team_members(&self, _who: &SignedIn) -> Result<Vec<TeamMember>> {
        self.read(|tx| {
            let rows = tx.query_map(
                "SELECT m.name, m.email, r.role, r.joined_at, r.removed_at
                 FROM team_roles r JOIN members m ON m.id = r.member_id ORDER BY m.name",
                params![],
                |r| {
                    Ok((
                        r.get::<String>(0)?,
                        r.get::<Option<String>>(1)?,
                        r.get::<String>(2)?,
                        r.get::<String>(3)?,
                        r.get::<Option<String>>(4)?,
                    ))
                },
            )?;
            rows.into_iter()
                .map(|(name, email, role, joined_at, removed_at)| {
                    Ok(TeamMember {
                        name,
                        email,
                        role: Role::parse(&role).ok_or_else(|| {
                            Error::Storage(format!("a team member has an unknown role '{role}'"))
                        })?,
                        joined_at,
                        removed_at,
                    })
                })
                .collect()
        })
    }

    /// Invite `name` as `role` (admins only). The code is returned once, never stored.
    pub fn team_invite(
        &self,
        who: &SignedIn,
        name: &str,
        email: Option<&str>,
        role: Role,
        ttl: Duration,
    ) -> Result<Invite> {
        if who.role != Role::Admin {
            return Err(self.team_refuse(
                who,
                "member.invite",
                None,
                format!(
                    "{} is {} on this team; only admins invite members",
                    who.name,
                    article(who.role)
                ),
            ));
        }
        let code = team::new_code();
        let hash = team::code_hash(code.expose());
        let actor = who.actor();
        let (member, expires) =
            self.write(|tx, now| team::invite_in(tx, now, &actor, name, email, role, ttl, &hash))?;
        Ok(Invite {
            member,
            role,
            code,
            expires_at: expires,
        })
    }

    /// Remove `name` from the team (admins only): their keys stop working at their next
    /// request. The last admin cannot be removed (nobody could invite again but the server
    /// host).
    pub fn team_remove(&self, who: &SignedIn, name: &str) -> Result<TeamMember> {
        if who.role != Role::Admin {
            return Err(self.team_refuse(
                who,
                "member.remove",
                None,
                format!(
                    "{} is {} on this team; only admins remove members",
                    who.name,
                    article(who.role)
                ),
            ));
        }
        let actor = who.actor();
        self.write(|tx, now| {
            let row: Option<(String, String)> = tx.query_opt(
                "SELECT m.id, r.role FROM members m JOIN team_roles r ON r.member_id = m.id
                 WHERE m.name = ?1 AND r.removed_at IS NULL",
                params![name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let Some((id, role)) = row else {
                return Err(Error::not_found_hint(
                    "team member",
                    name,
                    "`mandate team members` lists who is on the team".to_string(),
                ));
            };
            if role == "admin" {
                let admins: i64 = tx.query_row(
                    "SELECT count(*) FROM team_roles WHERE role = 'admin' AND removed_at IS NULL",
                    params![],
                    |r| r.get(0),
                )?;
                if admins <= 1 {
                    return Err(Error::Conflict(format!(
                        "{name} is the team's only admin; invite another admin first. Nothing \
                         was changed"
                    )));
                }
            }
            let t = audit::format_time(now);
            tx.execute(
                "UPDATE team_roles SET removed_at = ?2 WHERE member_id = ?1",
                params![id, t],
            )?;
            tx.execute(
                "UPDATE member_keys SET revoked_at = ?2 WHERE member_id = ?1 AND revoked_at IS NULL",
                params![id, t],
            )?;
            audit::append(
                tx,
                now,
                NewEvent::new(&actor, "member.removed", Decision::Allow)
                    .target(Target::new("member", &id, name))
                    .details(json!({"role": role})),
            )?;
            Ok(())
        })?;
        let who_ = who.clone();
        self.team_members(&who_)?
            .into_iter()
            .find(|m| m.name == name)
            .ok_or_else(|| Error::Storage("a removed member vanished".into()))
    }
}

fn article(role: Role) -> &'static str {
    match role {
        Role::Admin => "an admin",
        Role::Member => "a member",
        Role::Auditor => "an auditor",
    }
}

/// The member enrolled with key `kid`, if they are on the team now and the key is not
/// revoked: what every member request re-reads.
pub(crate) fn active_member(
    tx: &crate::store::Tx<'_>,
    member_id: &str,
    kid: &str,
) -> Result<Option<(String, Role, Vec<u8>)>> {
    let row: Option<(String, String, Vec<u8>)> = tx.query_opt(
        "SELECT m.name, r.role, k.public_key
         FROM member_keys k
         JOIN team_roles r ON r.member_id = k.member_id
         JOIN members m ON m.id = k.member_id
         WHERE k.kid = ?1 AND k.member_id = ?2 AND k.revoked_at IS NULL AND r.removed_at IS NULL",
        params![kid, member_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok(match row {
        Some((name, role, pk)) => Role::parse(&role).map(|r| (name, r, pk)),
        None => None,
    })
}
