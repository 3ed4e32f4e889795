//! Settings: the data folder, the keychain, the endpoint and the organisation name.

use mandate_core::ErrorReport;
use mandate_core::oauth::DEFAULT_TTL_SECS;
use serde::Serialize;
use tauri::{AppHandle, State};

use super::{KeychainStatus, blocking, keychain_status};
use crate::AppState;
use crate::endpoint::{self, EndpointStatus};

/// Everything the Settings screen shows.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct Settings {
    pub version: String,
    pub data_dir: String,
    pub keychain: KeychainStatus,
    pub endpoint: EndpointStatus,
    /// Printed on audit reports; null shows "Mandate installation <id>".
    pub organisation: Option<String>,
    pub install_id: String,
    /// Lifetime of a token when the agent has no maximum of its own.
    pub default_token_ttl_secs: u32,
    /// The longest lifetime any agent may be given.
    pub max_token_ttl_secs: u32,
}

#[tauri::command]
#[specta::specta]
pub async fn settings(state: State<'_, AppState>) -> Result<Settings, ErrorReport> {
    let keychain = keychain_status(&state);
    let endpoint = state.endpoint.status();
    blocking(&state, move |m| {
        Ok(Settings {
            version: env!("CARGO_PKG_VERSION").into(),
            data_dir: m.data_dir().display().to_string(),
            keychain,
            endpoint,
            organisation: m.organisation_name()?,
            install_id: m.install_id().to_string(),
            default_token_ttl_secs: DEFAULT_TTL_SECS,
            max_token_ttl_secs: mandate_core::views::MAX_TTL_SECS,
        })
    })
    .await
}

/// Set (or with an empty name clear) the organisation name printed on reports.
#[tauri::command]
#[specta::specta]
pub async fn set_organisation(
    state: State<'_, AppState>,
    name: String,
) -> Result<Option<String>, ErrorReport> {
    blocking(&state, move |m| m.set_organisation_name(&name)).await
}

#[tauri::command]
#[specta::specta]
pub fn endpoint_status(state: State<'_, AppState>) -> EndpointStatus {
    state.endpoint.status()
}

/// Pause (`false`) or start (`true`) the app's own token endpoint; refused when the background
/// service (or another `mandate serve`) serves it.
#[tauri::command]
#[specta::specta]
pub async fn set_endpoint_running(
    app: AppHandle,
    state: State<'_, AppState>,
    running: bool,
) -> Result<EndpointStatus, ErrorReport> {
    let done = if running {
        endpoint::resume(&app)
    } else {
        endpoint::pause(&app).await
    };
    done.map_err(|message| ErrorReport {
        code: mandate_core::ErrorCode::Conflict,
        message,
    })?;
    Ok(state.endpoint.status())
}
