//! Connections: the systems agents reach, with their credentials in the OS keychain.
//!
//! A secret travels once, from the password field to [`set_connection_secret`], where it is
//! moved into a `Sensitive` (zeroized on drop, never serialised) and handed to the keychain.
//! No command ever returns it.

use mandate_core::broker::{BudgetState, ConnectionEdit, CredentialPlacement};
use mandate_core::model::{AgentName, Connection, ConnectionKind, TrustState};
use mandate_core::secret::Sensitive;
use mandate_core::{ErrorReport, NewConnection};
use serde::{Deserialize, Serialize};
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
    /// The preset it starts from (`github`, `anthropic`...): where the credential goes, the
    /// cost of each action and which actions stay essential, for the actions kept.
    pub preset: Option<String>,
    /// `database` for a database connection (no base URL or actions; its URL is handed to
    /// programs by `mandate exec`); absent or `http` for an API.
    pub kind: Option<ConnectionKind>,
    /// For a database: the variable its URL is handed over in (default `DATABASE_URL`).
    pub variable: Option<String>,
}

#[tauri::command]
#[specta::specta]
pub async fn add_connection(
    state: State<'_, AppState>,
    input: NewConnectionInput,
) -> Result<Connection, ErrorReport> {
    blocking(&state, move |m| {
        if input.kind == Some(ConnectionKind::Database) {
            return m.add_database_connection(
                &input.name,
                input.variable.as_deref().filter(|v| !v.trim().is_empty()),
                input.trust_floor,
            );
        }
        let new = NewConnection {
            name: input.name,
            base_url: input.base_url,
            actions: input.actions,
            trust_floor: input.trust_floor,
        };
        m.add_connection_from(new, input.preset.as_deref())
    })
    .await
}

/// A connection's broker settings as the Connections screen shows them.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct BrokerView {
    pub connection: String,
    pub auth: CredentialPlacement,
    pub preset: Option<String>,
    pub rate_per_minute: Option<u32>,
    /// Cost units per agent per UTC day.
    #[specta(type = Option<specta_typescript::Number>)]
    pub daily_budget: Option<u64>,
    /// Actions that stay allowed past 90 % of the budget.
    pub essential: Vec<String>,
    /// `(action, cost)` for actions that cost more than one unit.
    pub costs: Vec<(String, u32)>,
}

/// Every connection's broker settings (where the credential goes, rate limit, daily budget).
#[tauri::command]
#[specta::specta]
pub async fn broker_settings(state: State<'_, AppState>) -> Result<Vec<BrokerView>, ErrorReport> {
    blocking(&state, |m| {
        m.list_connections()?
            .iter()
            .map(|c| {
                let b = m.broker_config(c.name.as_str())?;
                Ok(BrokerView {
                    essential: b
                        .actions
                        .iter()
                        .filter(|a| a.essential)
                        .map(|a| a.name.clone())
                        .collect(),
                    costs: b
                        .actions
                        .iter()
                        .filter(|a| a.cost != 1)
                        .map(|a| (a.name.clone(), a.cost))
                        .collect(),
                    connection: b.connection,
                    auth: b.auth,
                    preset: b.preset,
                    rate_per_minute: b.rate_per_minute,
                    daily_budget: b.daily_budget,
                })
            })
            .collect()
    })
    .await
}

/// Set a connection's limits; null removes a limit. Audited by the core.
#[tauri::command]
#[specta::specta]
pub async fn set_connection_limits(
    state: State<'_, AppState>,
    name: String,
    rate_per_minute: Option<u32>,
    daily_budget: Option<u32>,
) -> Result<(), ErrorReport> {
    blocking(&state, move |m| {
        m.edit_connection(
            &name,
            ConnectionEdit {
                rate_per_minute: Some(rate_per_minute),
                daily_budget: Some(daily_budget.map(u64::from)),
                ..ConnectionEdit::default()
            },
        )
        .map(|_| ())
    })
    .await
}

/// Set the lowest trust state that still gets tokens for a connection; applies from the next
/// token request. Audited by the core.
#[tauri::command]
#[specta::specta]
pub async fn set_trust_floor(
    state: State<'_, AppState>,
    name: String,
    floor: TrustState,
) -> Result<Connection, ErrorReport> {
    blocking(&state, move |m| {
        m.edit_connection(
            &name,
            ConnectionEdit {
                trust_floor: Some(floor),
                ..ConnectionEdit::default()
            },
        )?;
        m.get_connection(&name)
    })
    .await
}

/// One agent's use of one connection today, as the agent's page shows it.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct UsageView {
    pub connection: String,
    /// The UTC day (`YYYY-MM-DD`).
    pub day: String,
    pub rate_per_minute: Option<u32>,
    #[specta(type = Option<specta_typescript::Number>)]
    pub daily_budget: Option<u64>,
    #[specta(type = specta_typescript::Number)]
    pub used: u64,
    #[specta(type = specta_typescript::Number)]
    pub calls: u64,
    #[specta(type = specta_typescript::Number)]
    pub denied: u64,
    pub state: BudgetState,
}

impl From<mandate_core::broker::BudgetUsage> for UsageView {
    fn from(u: mandate_core::broker::BudgetUsage) -> Self {
        UsageView {
            connection: u.connection,
            day: u.day,
            rate_per_minute: u.rate_per_minute,
            daily_budget: u.daily_budget,
            used: u.used,
            calls: u.calls,
            denied: u.denied,
            state: u.state,
        }
    }
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
