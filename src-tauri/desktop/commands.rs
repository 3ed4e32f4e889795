//! Tauri commands: thin adapters over the core, typed for TypeScript by tauri-specta.

use std::sync::Arc;

use mandate_core::model::Agent;
use mandate_core::{ErrorReport, Mandate};
use serde::Serialize;
use tauri::State;

use crate::AppState;

fn mandate(state: &AppState) -> Result<Arc<Mandate>, ErrorReport> {
    state.mandate.clone()
}

/// The keychain's state as the UI shows it.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct KeychainStatus {
    pub ok: bool,
    /// What the keychain is, or what is wrong and how to fix it.
    pub message: String,
}

/// Facts about this installation for the status bar and Settings.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct AppInfo {
    pub version: String,
    pub data_dir: Option<String>,
    /// Why the installation could not be opened, if it could not.
    pub open_error: Option<ErrorReport>,
    pub keychain: KeychainStatus,
}

#[tauri::command]
#[specta::specta]
pub fn app_info(state: State<'_, AppState>) -> AppInfo {
    let keychain = match (&state.keychain, &state.mandate) {
        (Ok(()), Ok(m)) => KeychainStatus {
            ok: true,
            message: m.keychain_description(),
        },
        (Ok(()), Err(_)) => KeychainStatus {
            ok: true,
            message: "reachable".into(),
        },
        (Err(e), _) => KeychainStatus {
            ok: false,
            message: e.to_string(),
        },
    };
    AppInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        data_dir: state
            .mandate
            .as_ref()
            .ok()
            .map(|m| m.data_dir().display().to_string()),
        open_error: state.mandate.as_ref().err().cloned(),
        keychain,
    }
}

#[tauri::command]
#[specta::specta]
pub fn list_agents(state: State<'_, AppState>) -> Result<Vec<Agent>, ErrorReport> {
    mandate(&state)?
        .list_agents()
        .map_err(|e| ErrorReport::from(&e))
}
