//! Connections: the systems agents reach, with their credentials in the OS keychain.
//!
//! A secret travels once, from the password field to [`set_connection_secret`], where it is
//! moved into a `Sensitive` (zeroized on drop, never serialised) and handed to the keychain.
//! No command ever returns it.

use mandate_core::model::{AgentName, Connection, TrustState};
use mandate_core::secret::Sensitive;
use mandate_core::{ErrorReport, NewConnection};
use serde::Deserialize;
use tauri::State;

use super::blocking;
use crate::AppState;

#[tauri::command]
#[specta::specta]
pub async fn list_connections(state: State<'_, AppState>) -> Result<Vec<Connection>, ErrorReport> {
    blocking(&state, |m| m.list_connections()).await
}

/// A new connection as the UI's form gives it.
#[derive(Debug, Clone, Deserialize, specta::Type)]
pub struct NewConnectionInput {
    pub name: String,
    pub base_url: String,
    /// `NAME=METHOD:PATH` strings, e.g. `repo.read=GET:/repos/**`.
    pub actions: Vec<String>,
    pub trust_floor: Option<TrustState>,
}

#[tauri::command]
#[specta::specta]
pub async fn add_connection(
    state: State<'_, AppState>,
    input: NewConnectionInput,
) -> Result<Connection, ErrorReport> {
    blocking(&state, move |m| {
        m.add_connection(NewConnection {
            name: input.name,
            base_url: input.base_url,
            actions: input.actions,
            trust_floor: input.trust_floor,
        })
    })
    .await
}

/// Store or replace a connection's credential. The value is never returned or shown again.
#[tauri::command]
#[specta::specta]
pub async fn set_connection_secret(
    state: State<'_, AppState>,
    name: String,
    secret: String,
) -> Result<Connection, ErrorReport> {
    let secret = Sensitive::from(secret);
    blocking(&state, move |m| {
        m.set_connection_secret(&name, secret)?;
        m.get_connection(&name)
    })
    .await
}

/// Remove a connection, its credential and every scope on it; returns the agents that lost
/// scopes.
#[tauri::command]
#[specta::specta]
pub async fn remove_connection(
    state: State<'_, AppState>,
    name: String,
) -> Result<Vec<AgentName>, ErrorReport> {
    blocking(&state, move |m| m.remove_connection(&name)).await
}
