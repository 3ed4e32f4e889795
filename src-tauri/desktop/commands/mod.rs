//! Tauri commands: thin adapters over the core, typed for TypeScript by tauri-specta.
//!
//! Every command that touches the database or the keychain is `async` and runs the core call on
//! a blocking thread, so the window never waits on SQLite, the keychain or a PDF. Errors reach
//! the UI as an `ErrorReport`: a stable code to branch on and a sentence to show.

pub mod agents;
pub mod audit;
pub mod connections;
pub mod mcp;
pub mod person;
pub mod settings;
pub mod team;
pub mod trust;
pub mod wizard;

use std::sync::Arc;

use mandate_core::{ErrorCode, ErrorReport, Mandate};
use serde::Serialize;
use tauri::State;

use crate::AppState;

/// The open installation, or why it could not be opened.
pub(crate) fn mandate(state: &AppState) -> Result<Arc<Mandate>, ErrorReport> {
    state.mandate.clone()
}

/// Run `f` on a blocking thread and map its error.
pub(crate) async fn blocking<T, F>(state: &AppState, f: F) -> Result<T, ErrorReport>
where
    T: Send + 'static,
    F: FnOnce(&Mandate) -> mandate_core::Result<T> + Send + 'static,
{
    let m = mandate(state)?;
    tauri::async_runtime::spawn_blocking(move || f(&m).map_err(|e| ErrorReport::from(&e)))
        .await
        .map_err(|e| ErrorReport {
            code: ErrorCode::Storage,
            message: format!(
                "Mandate stopped an operation that failed unexpectedly ({e}); nothing was \
                 changed. Try again, and restart Mandate if it happens again"
            ),
        })?
}

/// The keychain's state as the UI shows it.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct KeychainStatus {
    pub ok: bool,
    /// What the keychain is, or what is wrong and how to fix it.
    pub message: String,
}

pub(crate) fn keychain_status(state: &AppState) -> KeychainStatus {
    match (&state.keychain, &state.mandate) {
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
    }
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
    AppInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        data_dir: state
            .mandate
            .as_ref()
            .ok()
            .map(|m| m.data_dir().display().to_string()),
        open_error: state.mandate.as_ref().err().cloned(),
        keychain: keychain_status(&state),
    }
}
