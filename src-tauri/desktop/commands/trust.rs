//! Trust and approvals for the window: the Approvals inbox (who asks, for what, on whose
//! behalf, with what trust), approving once or for a time box or denying with a reason,
//! reviewing an agent's changed configuration, and the thresholds and organisation floor.
//! Adapters only: each command calls one `Mandate` method on a blocking thread.

use mandate_core::ErrorReport;
use mandate_core::approvals::{Approval, ApprovalWindow};
use mandate_core::model::Agent;
use mandate_core::trust::{AttestationView, TrustSettings};
use tauri::State;

use super::blocking;
use crate::AppState;

/// Requests waiting for a person (with `all`: every one of the last 7 days), newest first.
#[tauri::command]
#[specta::specta]
pub async fn list_approvals(
    state: State<'_, AppState>,
    all: bool,
) -> Result<Vec<Approval>, ErrorReport> {
    blocking(&state, move |m| m.list_approvals(all)).await
}

/// Approve a request for one call or a time box.
#[tauri::command]
#[specta::specta]
pub async fn approve_request(
    state: State<'_, AppState>,
    id: String,
    window: ApprovalWindow,
) -> Result<Approval, ErrorReport> {
    blocking(&state, move |m| m.approve(&id, window)).await
}

/// Deny a request; the agent is told the reason.
#[tauri::command]
#[specta::specta]
pub async fn deny_request(
    state: State<'_, AppState>,
    id: String,
    reason: String,
) -> Result<Approval, ErrorReport> {
    blocking(&state, move |m| m.deny_approval(&id, &reason)).await
}

/// A member reviews an agent's changed configuration.
#[tauri::command]
#[specta::specta]
pub async fn review_agent(
    state: State<'_, AppState>,
    name: String,
    note: Option<String>,
) -> Result<Agent, ErrorReport> {
    blocking(&state, move |m| m.review_agent(&name, note.as_deref())).await
}

/// An agent's review attestations, newest first, each saying whether it counts now.
#[tauri::command]
#[specta::specta]
pub async fn list_attestations(
    state: State<'_, AppState>,
    name: String,
) -> Result<Vec<AttestationView>, ErrorReport> {
    blocking(&state, move |m| m.list_attestations(&name)).await
}

/// The thresholds and the organisation's minimum score.
#[tauri::command]
#[specta::specta]
pub async fn trust_settings(state: State<'_, AppState>) -> Result<TrustSettings, ErrorReport> {
    blocking(&state, move |m| m.trust_settings()).await
}

/// Change the thresholds and the organisation's minimum score.
#[tauri::command]
#[specta::specta]
pub async fn set_trust_settings(
    state: State<'_, AppState>,
    trusted_min: i32,
    pending_min: i32,
    organisation_floor: i32,
) -> Result<TrustSettings, ErrorReport> {
    blocking(&state, move |m| {
        m.set_trust_settings(
            Some(trusted_min),
            Some(pending_min),
            Some(organisation_floor),
        )
    })
    .await
}
