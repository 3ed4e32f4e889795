//! Agents: the table, the detail screen and the actions on one agent.

use chrono::Duration;
use mandate_core::model::{Agent, AgentStatus, Member, TrustState};
use mandate_core::oauth::Delegation;
use mandate_core::views::{OutstandingToken, StatusChange};
use mandate_core::{AgentEdit, ErrorReport, KeyChoice, NewAgent};
use serde::{Deserialize, Serialize};
use tauri::State;

use super::blocking;
use crate::AppState;

#[tauri::command]
#[specta::specta]
pub async fn list_agents(state: State<'_, AppState>) -> Result<Vec<Agent>, ErrorReport> {
    blocking(&state, |m| m.list_agents()).await
}

/// Everything the detail screen shows about one agent.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct AgentDetail {
    pub agent: Agent,
    pub tokens: Vec<OutstandingToken>,
    pub delegations: Vec<Delegation>,
    /// Today's calls and budget on each connection it holds scopes on.
    pub usage: Vec<super::connections::UsageView>,
    /// Its newest suspension or revocation: who, when, why.
    pub status_change: Option<StatusChange>,
}

#[tauri::command]
#[specta::specta]
pub async fn get_agent(
    state: State<'_, AppState>,
    name: String,
) -> Result<AgentDetail, ErrorReport> {
    blocking(&state, move |m| {
        let agent = m.get_agent(&name)?;
        Ok(AgentDetail {
            status_change: match agent.status {
                AgentStatus::Active => None,
                _ => m.last_status_change(agent.id.as_str())?,
            },
            tokens: m.outstanding_tokens(Some(agent.id.as_str()))?,
            delegations: m.list_delegations(Some(agent.id.as_str()))?,
            usage: m
                .broker_usage(agent.name.as_str())?
                .into_iter()
                .map(Into::into)
                .collect(),
            agent,
        })
    })
    .await
}

/// Tokens issued, unrevoked and unexpired, soonest to expire first (every agent's when `agent`
/// is null).
#[tauri::command]
#[specta::specta]
pub async fn outstanding_tokens(
    state: State<'_, AppState>,
    agent: Option<String>,
) -> Result<Vec<OutstandingToken>, ErrorReport> {
    blocking(&state, move |m| m.outstanding_tokens(agent.as_deref())).await
}

#[tauri::command]
#[specta::specta]
pub async fn list_members(state: State<'_, AppState>) -> Result<Vec<Member>, ErrorReport> {
    blocking(&state, |m| m.list_members()).await
}

#[tauri::command]
#[specta::specta]
pub async fn add_member(
    state: State<'_, AppState>,
    name: String,
    email: Option<String>,
) -> Result<Member, ErrorReport> {
    blocking(&state, move |m| {
        m.add_member(&name, email.as_deref().filter(|e| !e.trim().is_empty()))
    })
    .await
}

/// A new agent as the UI's form gives it.
#[derive(Debug, Clone, Deserialize, specta::Type)]
pub struct NewAgentInput {
    pub name: String,
    pub purpose: String,
    pub owner: String,
    pub scopes: Vec<String>,
    /// Generate a key pair and keep the private key in the OS keychain.
    pub generate_key: bool,
}

#[tauri::command]
#[specta::specta]
pub async fn add_agent(
    state: State<'_, AppState>,
    input: NewAgentInput,
) -> Result<Agent, ErrorReport> {
    blocking(&state, move |m| {
        m.add_agent(NewAgent {
            name: input.name,
            purpose: input.purpose,
            owner: input.owner,
            parent: None,
            scopes: input.scopes,
            key: if input.generate_key {
                KeyChoice::GenerateInKeychain
            } else {
                KeyChoice::None
            },
        })
    })
    .await
}

/// Changes from the detail screen; empty fields leave things as they are.
#[derive(Debug, Clone, Default, Deserialize, specta::Type)]
pub struct AgentEditInput {
    pub purpose: Option<String>,
    pub add_scopes: Vec<String>,
    pub remove_scopes: Vec<String>,
}

#[tauri::command]
#[specta::specta]
pub async fn edit_agent(
    state: State<'_, AppState>,
    name: String,
    edit: AgentEditInput,
) -> Result<Agent, ErrorReport> {
    blocking(&state, move |m| {
        m.edit_agent(
            &name,
            AgentEdit {
                purpose: edit.purpose,
                add_scopes: edit.add_scopes,
                remove_scopes: edit.remove_scopes,
                ..AgentEdit::default()
            },
        )
    })
    .await
}

#[tauri::command]
#[specta::specta]
pub async fn suspend_agent(
    state: State<'_, AppState>,
    name: String,
    reason: Option<String>,
) -> Result<Agent, ErrorReport> {
    blocking(&state, move |m| m.suspend_agent(&name, reason.as_deref())).await
}

#[tauri::command]
#[specta::specta]
pub async fn resume_agent(state: State<'_, AppState>, name: String) -> Result<Agent, ErrorReport> {
    blocking(&state, move |m| m.resume_agent(&name)).await
}

#[tauri::command]
#[specta::specta]
pub async fn revoke_agent(
    state: State<'_, AppState>,
    name: String,
    reason: String,
) -> Result<Agent, ErrorReport> {
    blocking(&state, move |m| m.revoke_agent(&name, &reason)).await
}

/// Give the agent a new key generated into the OS keychain; its current keys stay accepted
/// for `overlap_hours` (at most 30 days).
#[tauri::command]
#[specta::specta]
pub async fn rotate_agent_key(
    state: State<'_, AppState>,
    name: String,
    overlap_hours: u32,
) -> Result<Agent, ErrorReport> {
    blocking(&state, move |m| {
        m.rotate_agent_key(
            &name,
            KeyChoice::GenerateInKeychain,
            Duration::hours(i64::from(overlap_hours)),
        )
    })
    .await
}

/// Set (`state`) or clear (null) a manual trust decision.
#[tauri::command]
#[specta::specta]
pub async fn set_trust_override(
    state: State<'_, AppState>,
    name: String,
    trust: Option<TrustState>,
    reason: String,
) -> Result<Agent, ErrorReport> {
    blocking(&state, move |m| m.set_trust_override(&name, trust, &reason)).await
}

/// A delegation as the agent page's form gives it.
#[derive(Debug, Clone, Deserialize, specta::Type)]
pub struct NewDelegationInput {
    pub agent: String,
    /// The team member the agent acts for.
    pub member: String,
    pub scopes: Vec<String>,
    /// RFC 3339, in the future.
    pub until: String,
    pub task: String,
}

/// Let `agent` act for a team member, with some of its scopes, until a time, for one task.
#[tauri::command]
#[specta::specta]
pub async fn add_delegation(
    state: State<'_, AppState>,
    input: NewDelegationInput,
) -> Result<Delegation, ErrorReport> {
    blocking(&state, move |m| {
        let until = chrono::DateTime::parse_from_rfc3339(input.until.trim())
            .map_err(|_| {
                mandate_core::Error::Invalid(format!(
                    "'{}' is not a date and time; choose when the delegation ends",
                    input.until
                ))
            })?
            .with_timezone(&chrono::Utc);
        m.add_delegation(mandate_core::oauth::NewDelegation {
            agent: input.agent,
            member: input.member,
            scopes: input.scopes,
            until,
            task: input.task,
        })
    })
    .await
}

/// End a delegation now; tokens minted under it stop working at once.
#[tauri::command]
#[specta::specta]
pub async fn revoke_delegation(
    state: State<'_, AppState>,
    id: String,
    reason: String,
) -> Result<Delegation, ErrorReport> {
    blocking(&state, move |m| m.revoke_delegation(&id, &reason)).await
}
