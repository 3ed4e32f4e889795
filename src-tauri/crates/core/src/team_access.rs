//! What a member signed in to a team server may do, by role (issue 21 §1).
//!
//! - **admin**: manages members (invite, remove), connections and MCP servers (remove; adding
//!   them, with their secrets, stays on the server host), and may act on any agent and any
//!   approval;
//! - **member**: manages the agents they own (suspend, resume, revoke) and decides the
//!   approval requests of those agents;
//! - **auditor**: reads (agents, members, connections, MCP servers, the audit trail) and
//!   changes nothing.
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
use crate::mcp::{McpServer, McpTransport, NewMcpServer};
use crate::model::{Agent, Connection, MemberId};
use crate::registry::NewConnection;
use crate::secret::Sensitive;
use crate::store::params;
use crate::team::{self, Invite, Role};
use crate::witness::log::WitnessInfo;

/// The member a request comes from, as the token check found them in the registry now.
#[derive(Debug, Clone, Serialize)]
pub struct SignedIn {
    pub member: MemberId,
    pub name: String,
    pub role: Role,
    /// The enrolled key the member signed in with.
    pub kid: String,
    /// When the member's access token expires (Unix seconds): a long request, such as the
    /// event stream, ends then.
    pub expires_at: i64,
}

impl SignedIn {
    pub fn actor(&self) -> Actor {
        Actor::member(self.member.as_str(), &self.name)
    }
}

/// How many events one read of the trail looks at when filtering by [`Visibility`].
pub const SCAN_BATCH: u32 = 500;

/// The part of the team's audit trail a member may read.
///
/// Admins and auditors read every event. A member reads an event when (a) it concerns an
/// agent they own, (b) they are its actor, or (c) it concerns no agent and is a team-wide
/// change: membership, connections, MCP servers, witnesses, attestors, approval rules, keys,
/// the organisation's settings ([`TEAM_WIDE`]). Another member's agents' tokens, calls, approvals and trust, and
/// refusals of unknown clients, are not theirs to read.
#[derive(Debug, Clone)]
pub enum Visibility {
    All,
    Member {
        member: String,
        agents: std::collections::HashSet<String>,
    },
}

/// Action prefixes of team-wide changes (every member may read them).
pub const TEAM_WIDE: &[&str] = &[
    "team.",
    "member.",
    "connection.",
    "mcp.server_",
    "witness.",
    "settings.",
    "trust.settings",
    "attestor.",
    "approval.rule_set",
    "issuer.",
    "secrets.",
];

impl Visibility {
    /// Whether the event is readable.
    pub fn event(&self, e: &AuditEvent) -> bool {
        match self {
            Visibility::All => true,
            Visibility::Member { member, agents } => {
                e.agent.as_ref().is_some_and(|a| agents.contains(a))
                    || e.actor.id == *member
                    || (e.agent.is_none() && TEAM_WIDE.iter().any(|p| e.action.starts_with(p)))
            }
        }
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

    /// Every connection (every role may read; no secret is in it, only whether it has one).
    pub fn team_connections(&self, _who: &SignedIn) -> Result<Vec<Connection>> {
        self.list_connections()
    }

    /// Every MCP server (every role may read; secret environment values are never in it).
    pub fn team_mcp_servers(&self, _who: &SignedIn) -> Result<Vec<McpServer>> {
        self.list_mcp_servers()
    }

    /// Add a connection as `who` (admins only), from a preset when one is named. Its
    /// credential is set apart
    /// ([`Mandate::team_set_connection_secret`]), so the request that names it carries no
    /// secret.
    pub fn team_add_connection(
        &self,
        who: &SignedIn,
        new: NewConnection,
        preset: Option<&str>,
    ) -> Result<Connection> {
        self.admin_only(who, "connection.add", "add connections")?;
        self.acting_as(who.actor(), || self.add_connection_from(new, preset))
    }

    /// Store (or replace) connection `name`'s credential as `who` (admins only): it goes to the
    /// server's keychain; nothing else keeps it, and no answer or event repeats it.
    pub fn team_set_connection_secret(
        &self,
        who: &SignedIn,
        name: &str,
        secret: Sensitive<String>,
    ) -> Result<()> {
        self.admin_only(who, "connection.secret_set", "set connection credentials")?;
        self.acting_as(who.actor(), || self.set_connection_secret(name, secret))
    }

    /// Add a remote (Streamable HTTP) MCP server as `who` (admins only). A stdio server is a
    /// command the server host would run: that is added on the host itself
    /// (`mandate mcp add`), never through the member API.
    pub fn team_add_mcp_server(&self, who: &SignedIn, new: NewMcpServer) -> Result<McpServer> {
        self.admin_only(who, "mcp_server.add", "add MCP servers")?;
        if !matches!(new.transport, McpTransport::Http { .. }) || !new.secret_env.is_empty() {
            return Err(self.team_refuse(
                who,
                "mcp_server.add",
                None,
                "only a remote MCP server (a URL) can be added through the team server: a \
                 command would run on the server host; add it there with `mandate mcp add`"
                    .into(),
            ));
        }
        self.acting_as(who.actor(), || self.add_mcp_server(new))
    }

    /// Remove connection `name` as `who` (admins only). The agents whose scopes on it were
    /// dropped are returned.
    pub fn team_remove_connection(&self, who: &SignedIn, name: &str) -> Result<Vec<String>> {
        self.admin_only(who, "connection.remove", "remove connections")?;
        self.acting_as(who.actor(), || self.remove_connection(name))
            .map(|v| v.into_iter().map(|a| a.as_str().to_string()).collect())
    }

    /// Remove MCP server `name` as `who` (admins only).
    pub fn team_remove_mcp_server(&self, who: &SignedIn, name: &str) -> Result<Vec<String>> {
        self.admin_only(who, "mcp_server.remove", "remove MCP servers")?;
        self.acting_as(who.actor(), || self.remove_mcp_server(name))
    }

    /// The witnesses of the team's log (every role may read them).
    pub fn team_witnesses(&self, _who: &SignedIn) -> Result<Vec<WitnessInfo>> {
        self.witnesses()
    }

    /// Register a witness of the team's log as `who`: any member may enrol their own machine
    /// (a witness can only cosign checkpoints the log signed; it changes nothing), so every
    /// connected desktop witnesses by default. The event names the member.
    pub fn team_add_witness(
        &self,
        who: &SignedIn,
        name: &str,
        public_key: &str,
    ) -> Result<WitnessInfo> {
        self.acting_as(who.actor(), || self.add_witness(name, public_key))
    }

    /// Remove a witness as `who`: an admin any, a member only one they enrolled.
    pub fn team_remove_witness(&self, who: &SignedIn, name: &str) -> Result<WitnessInfo> {
        let w = self.witness(name)?;
        if who.role != Role::Admin && w.added_by != who.actor().describe() {
            return Err(self.team_refuse(
                who,
                "witness.remove",
                None,
                format!(
                    "only an admin, or the member who enrolled it, may remove the witness \
                     '{name}'"
                ),
            ));
        }
        self.acting_as(who.actor(), || self.remove_witness(name))
    }

    /// Refuse (and audit) anyone but an admin doing `what`.
    fn admin_only(&self, who: &SignedIn, request: &str, what: &str) -> Result<()> {
        if who.role == Role::Admin {
            return Ok(());
        }
        Err(self.team_refuse(
            who,
            request,
            None,
            format!(
                "{} is {} on this team; only admins {what}",
                who.name,
                article(who.role)
            ),
        ))
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

    /// The audit events `who` may see ([`Visibility`]), newest first.
    pub fn team_audit(
        &self,
        who: &SignedIn,
        limit: u32,
        before_seq: Option<u64>,
    ) -> Result<Vec<AuditEvent>> {
        let limit = limit.clamp(1, MAX_AUDIT_PAGE) as usize;
        let sees = self.visibility(who)?;
        let mut out = Vec::new();
        let mut before = before_seq;
        loop {
            let page = self.audit_events(None, SCAN_BATCH, before)?;
            let Some(last) = page.last() else { break };
            before = Some(last.seq);
            let done = page.len() < SCAN_BATCH as usize;
            out.extend(page.into_iter().filter(|e| sees.event(e)));
            if out.len() >= limit || done {
                break;
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    /// The audit events after `after` that `who` may see, oldest first, reading at most
    /// [`SCAN_BATCH`] events; and the newest seq read (the next call's `after`, which moves
    /// past events `who` may not see).
    pub fn team_events_after(&self, who: &SignedIn, after: u64) -> Result<(Vec<AuditEvent>, u64)> {
        let sees = self.visibility(who)?;
        let page = self.read(|tx| {
            let rows = tx.query_map(
                "SELECT body FROM audit_events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                params![after as i64, i64::from(SCAN_BATCH)],
                |r| r.get::<Vec<u8>>(0),
            )?;
            rows.iter()
                .map(|b| {
                    serde_json::from_slice::<AuditEvent>(b)
                        .map_err(|e| Error::Storage(format!("an audit event is unreadable: {e}")))
                })
                .collect::<Result<Vec<_>>>()
        })?;
        let last = page.last().map_or(after, |e| e.seq);
        Ok((page.into_iter().filter(|e| sees.event(e)).collect(), last))
    }

    /// Whether `who` is still on the team with the key they signed in with, in the role they
    /// had (a long request re-checks this: removal, a replaced key or a changed role ends it).
    pub fn still_signed_in(&self, who: &SignedIn) -> Result<bool> {
        let found = self.read(|tx| active_member(tx, who.member.as_str(), &who.kid))?;
        Ok(found.is_some_and(|(_, role, _)| role == who.role))
    }

    /// Which events `who` may read (see [`Visibility`]).
    pub fn visibility(&self, who: &SignedIn) -> Result<Visibility> {
        if who.role != Role::Member {
            return Ok(Visibility::All);
        }
        let owned: Vec<String> = self.read(|tx| {
            tx.query_map(
                "SELECT a.id FROM agents a JOIN members m ON m.id = a.owner_id WHERE m.id = ?1",
                params![who.member.as_str()],
                |r| r.get(0),
            )
        })?;
        Ok(Visibility::Member {
            member: who.member.as_str().to_string(),
            agents: owned.into_iter().collect(),
        })
    }

    /// The whole trail as an evidence bundle signed with the issuer key: admins and auditors
    /// only (it holds every event, and members see only their part); verifiable anywhere with
    /// `mandate audit verify FILE --key SHA256:...`. Audited: who exported, and how much.
    pub fn team_export(&self, who: &SignedIn) -> Result<crate::audit::Export> {
        if who.role == Role::Member {
            return Err(self.team_refuse(
                who,
                "audit.export",
                None,
                format!(
                    "{} is a member of this team; the whole trail is exported by admins and \
                     auditors (members read their part with `mandate team audit`)",
                    who.name
                ),
            ));
        }
        let e = self.export_audit(&crate::audit::ExportSelection::default(), None)?;
        let ev = NewEvent::new(&who.actor(), "audit.exported", Decision::Allow).details(json!({
            "events": e.events.len(),
            "checkpoint_size": e.checkpoint.checkpoint.size,
            "via": "team server",
        }));
        self.write(|tx, now| audit::append(tx, now, ev))?;
        Ok(e)
    }

    /// Record that `who` opened the team's event stream (reads are not audited one by one:
    /// auditing each would feed the stream its own reads; opening it is).
    pub fn team_watch_started(&self, who: &SignedIn, after: u64) -> Result<()> {
        let ev = NewEvent::new(&who.actor(), "member.watch_started", Decision::Allow)
            .details(json!({"after": after, "role": who.role.as_str()}));
        self.write(|tx, now| audit::append(tx, now, ev))?;
        Ok(())
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
        self.admin_only(who, "member.invite", "invite members")?;
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
        self.admin_only(who, "member.remove", "remove members")?;
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
        self.team_members(who)?
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests")]
mod tests {
    use std::sync::Arc;

    use chrono::Utc;
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::approvals::{ApprovalMode, Ask, Outcome};
    use crate::clock::ManualClock;
    use crate::oauth::dpop::make_proof;
    use crate::oauth::member::MEMBER_CLIENT_PREFIX;
    use crate::oauth::{EndpointConfig, HttpContext, TokenService, client_assertion};
    use crate::secret::{MemoryKeychain, Sensitive};
    use crate::store::testing::each_store;
    use crate::{KeyChoice, NewAgent, NewConnection};

    const ISSUER: &str = "https://mandate.test:8443";

    /// Sign in as `name` with `key` through the token endpoint's member path and the
    /// per-request session check, as the server does for every member request.
    fn sign_in(svc: &TokenService, name: &str, key: &SigningKey) -> Result<SignedIn> {
        let m = svc.mandate();
        let now = m.now().timestamp();
        let kid = crate::keys::thumbprint(&key.verifying_key());
        let token_at = format!("{ISSUER}/oauth2/token");
        let client = format!("{MEMBER_CLIENT_PREFIX}{name}");
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &client)
            .append_pair(
                "client_assertion_type",
                crate::oauth::ASSERTION_TYPE_JWT_BEARER,
            )
            .append_pair(
                "client_assertion",
                &client_assertion(&client, &kid, key, &token_at, now),
            )
            .finish();
        let http = HttpContext {
            method: "POST".into(),
            url: token_at.clone(),
            dpop: vec![Sensitive::new(make_proof(
                key, "POST", &token_at, now, None,
            ))],
        };
        let t = svc
            .member_token(body.as_bytes(), &http)
            .map_err(|e| Error::Refused(e.to_string()))?;
        let at = format!("{ISSUER}/team/v1/agents");
        let proof = make_proof(key, "GET", &at, now, Some(t.access_token.expose()));
        let auth = format!("DPoP {}", t.access_token.expose());
        svc.member_session(Some(&auth), &[Sensitive::new(proof)], "GET", &at)?
            .map_err(|e| Error::Refused(e.0))
    }

    fn agent(name: &str, owner: &str) -> NewAgent {
        NewAgent {
            name: name.into(),
            purpose: "nightly reconciliation".into(),
            owner: owner.into(),
            parent: None,
            scopes: vec!["billing:read".into()],
            key: KeyChoice::GenerateInKeychain,
        }
    }

    #[test]
    fn roles_decide_what_a_signed_in_member_may_change_and_refusals_change_nothing() {
        each_store(|s| {
            let clock = Arc::new(ManualClock::new(Utc::now()));
            let m = Arc::new(
                Mandate::open(
                    s.options(Arc::new(MemoryKeychain::new()), Actor::app("cli", "root"))
                        .clock(clock.clone()),
                )
                .unwrap(),
            );
            let init = m
                .init_team(ISSUER, "alice", None, team::DEFAULT_INVITE_TTL)
                .unwrap();
            let svc = TokenService::new(m.clone(), EndpointConfig::new(ISSUER)).unwrap();
            let alice_key = SigningKey::from_bytes(&[1; 32]);
            // Not joined yet: no sign-in.
            assert!(sign_in(&svc, "alice", &alice_key).is_err());
            m.join_team(&init.invite_code, &alice_key.verifying_key())
                .unwrap();
            let alice = sign_in(&svc, "alice", &alice_key).unwrap();
            assert_eq!(alice.role, Role::Admin);
            // The server host invites no more once an admin joined.
            let e = m
                .invite_member("eve", None, Role::Admin, team::DEFAULT_INVITE_TTL)
                .unwrap_err();
            assert_eq!(e.code(), crate::ErrorCode::Conflict);

            let bob_key = SigningKey::from_bytes(&[2; 32]);
            let carol_key = SigningKey::from_bytes(&[3; 32]);
            let inv = m
                .team_invite(&alice, "bob", None, Role::Member, team::DEFAULT_INVITE_TTL)
                .unwrap();
            m.join_team(&inv.code, &bob_key.verifying_key()).unwrap();
            let inv = m
                .team_invite(
                    &alice,
                    "carol",
                    None,
                    Role::Auditor,
                    team::DEFAULT_INVITE_TTL,
                )
                .unwrap();
            m.join_team(&inv.code, &carol_key.verifying_key()).unwrap();
            let bob = sign_in(&svc, "bob", &bob_key).unwrap();
            let carol = sign_in(&svc, "carol", &carol_key).unwrap();

            m.add_connection(NewConnection {
                name: "billing".into(),
                base_url: "https://billing.example/".into(),
                actions: vec!["read=GET:/invoices/**".into()],
                trust_floor: None,
            })
            .unwrap();
            let alices = m.add_agent(agent("ledger-bot", "alice")).unwrap();
            let bobs = m.add_agent(agent("ops-bot", "bob")).unwrap();

            // An approval request from each agent.
            m.set_approval_rule("billing", Some("read"), Some(ApprovalMode::Always))
                .unwrap();
            let conn = m.get_connection("billing").unwrap();
            let ask = |a: &Agent| {
                let ask = Ask {
                    agent_id: a.id.as_str(),
                    agent: a.name.as_str(),
                    connection_id: conn.id.as_str(),
                    connection: "billing",
                    action: "billing:read",
                    on_behalf_of: None,
                    why: "this action always asks a person",
                    trust_state: "PENDING",
                    trust_score: a.trust.score,
                    retry_id: None,
                };
                match m
                    .hold_for_approval(&ask, std::time::Duration::ZERO)
                    .unwrap()
                {
                    Outcome::Pending(id) => id,
                    other => panic!("{other:?}"),
                }
            };
            let alices_req = ask(&alices);
            let bobs_req = ask(&bobs);
            // Each sees what they may decide.
            let ids = |w: &SignedIn| -> Vec<String> {
                m.team_approvals(w)
                    .unwrap()
                    .into_iter()
                    .map(|a| a.id)
                    .collect()
            };
            assert_eq!(ids(&bob), vec![bobs_req.clone()]);
            assert!(ids(&carol).is_empty());
            assert_eq!(ids(&alice).len(), 2);

            let events_before = m.audit_events(None, 1, None).unwrap()[0].seq;
            let agents_before: Vec<_> = m
                .list_agents()
                .unwrap()
                .into_iter()
                .map(|a| (a.name, a.status))
                .collect();
            let refusals: Vec<Error> = vec![
                m.team_change_agent(&bob, "ledger-bot", AgentChange::Revoke, Some("x"))
                    .unwrap_err(),
                m.team_change_agent(&carol, "ops-bot", AgentChange::Suspend, None)
                    .unwrap_err(),
                m.team_decide(
                    &bob,
                    &alices_req,
                    ApprovalAnswer::Approve(ApprovalWindow::Once),
                )
                .unwrap_err(),
                m.team_decide(&carol, &bobs_req, ApprovalAnswer::Deny("no".into()))
                    .unwrap_err(),
                m.team_invite(&bob, "eve", None, Role::Admin, team::DEFAULT_INVITE_TTL)
                    .unwrap_err(),
                m.team_remove(&carol, "bob").unwrap_err(),
            ];
            for e in &refusals {
                assert_eq!(e.code(), crate::ErrorCode::Refused, "{e}");
            }
            let after: Vec<_> = m
                .list_agents()
                .unwrap()
                .into_iter()
                .map(|a| (a.name, a.status))
                .collect();
            assert_eq!(agents_before, after, "no refused change left a trace");
            assert_eq!(m.approval(&alices_req).unwrap().decided_by, None);
            let new_events = m.audit_events(None, 50, None).unwrap();
            let denied: Vec<&AuditEvent> = new_events
                .iter()
                .filter(|e| e.seq > events_before)
                .collect();
            assert_eq!(denied.len(), refusals.len(), "one event per refusal");
            assert!(
                denied
                    .iter()
                    .all(|e| e.action == "team.request_denied" && e.actor.kind == "member")
            );

            // Connections: everyone reads them, only admins remove them.
            assert_eq!(m.team_connections(&carol).unwrap().len(), 1);
            let e = m.team_remove_connection(&bob, "billing").unwrap_err();
            assert_eq!(e.code(), crate::ErrorCode::Refused);
            assert_eq!(m.list_connections().unwrap().len(), 1);

            // Within their roles: the change names the member who made it.
            m.team_decide(
                &bob,
                &bobs_req,
                ApprovalAnswer::Approve(ApprovalWindow::Once),
            )
            .unwrap();
            m.team_change_agent(&bob, "ops-bot", AgentChange::Suspend, Some("paused"))
                .unwrap();
            let last = &m.audit_events(None, 1, None).unwrap()[0];
            assert_eq!(last.action, "agent.suspended");
            assert_eq!(last.actor, bob.actor());
            assert_eq!(m.team_audit(&carol, 3, None).unwrap().len(), 3);

            // What each may read: the auditor and the admin everything; bob his agent's
            // events, his own acts and team-wide changes, never alice's agent's.
            let all = m.audit_events(None, 1000, None).unwrap();
            let about =
                |evs: &[AuditEvent], id: &str| evs.iter().any(|e| e.agent.as_deref() == Some(id));
            assert_eq!(m.team_audit(&carol, 1000, None).unwrap().len(), all.len());
            assert_eq!(m.team_audit(&alice, 1000, None).unwrap().len(), all.len());
            let bobs_view = m.team_audit(&bob, 1000, None).unwrap();
            assert!(
                about(&bobs_view, bobs.id.as_str()),
                "bob reads his agent's events"
            );
            assert!(
                !about(&bobs_view, alices.id.as_str()),
                "bob never reads alice's agent's"
            );
            assert!(
                bobs_view.iter().any(|e| e.action == "connection.added"),
                "team-wide"
            );
            assert!(
                bobs_view
                    .iter()
                    .any(|e| e.action == "team.request_denied" && e.actor == bob.actor())
            );
            assert!(bobs_view.len() < all.len());
            // Pages of bob's view are his view, newest first, continuing with `before`.
            let first = m.team_audit(&bob, 2, None).unwrap();
            let next = m.team_audit(&bob, 2, Some(first[1].seq)).unwrap();
            assert_eq!(
                [&first[..], &next[..]]
                    .concat()
                    .iter()
                    .map(|e| e.seq)
                    .collect::<Vec<_>>(),
                bobs_view.iter().take(4).map(|e| e.seq).collect::<Vec<_>>()
            );
            // The stream's reads: the same rule, oldest first, and the cursor moves past
            // events bob may not read.
            let (seen, last) = m.team_events_after(&bob, 0).unwrap();
            assert_eq!(last, all[0].seq.min(u64::from(SCAN_BATCH)));
            assert!(seen.windows(2).all(|w| w[0].seq < w[1].seq));
            assert!(!about(&seen, alices.id.as_str()));
            let (carols, _) = m.team_events_after(&carol, 0).unwrap();
            assert!(about(&carols, alices.id.as_str()));
            // The whole trail is exported by admins and auditors, not by members.
            let e = m.team_export(&bob).unwrap_err();
            assert_eq!(e.code(), crate::ErrorCode::Refused, "{e}");
            m.team_export(&carol).unwrap();
            let last = &m.audit_events(None, 1, None).unwrap()[0];
            assert_eq!(
                (last.action.as_str(), &last.actor),
                ("audit.exported", &carol.actor())
            );
            assert_eq!(
                m.person().unwrap(),
                Some(Actor::app("cli", "root")),
                "acting as a member leaves the handle's person as it was"
            );

            let cut = m.team_remove_connection(&alice, "billing").unwrap();
            assert_eq!(cut.len(), 2, "{cut:?}");
            let last = &m.audit_events(None, 1, None).unwrap()[0];
            assert_eq!(last.actor, alice.actor(), "{}", last.action);

            // Removal bites on the next request, whatever token bob still holds.
            m.team_remove(&alice, "bob").unwrap();
            let e = sign_in(&svc, "bob", &bob_key).unwrap_err();
            assert!(e.to_string().contains("removed"), "{e}");
            // The last admin stays.
            let e = m.team_remove(&alice, "alice").unwrap_err();
            assert_eq!(e.code(), crate::ErrorCode::Conflict);
        });
    }
}
