//! The desktop shell: the only code that imports `tauri`.
//!
//! It opens the Mandate installation (the same core the CLI uses), exposes a few commands to the
//! web UI, and nothing else. Each command is an adapter: call the core, map the error to an
//! `ErrorReport` (a stable code and a sentence). The TypeScript side calls these only through
//! the generated `ui/src/lib/backend/bindings.ts`.

mod commands;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use mandate_core::audit::Actor;
use mandate_core::secret::{Keychain, KeychainError, UnavailableKeychain};
use mandate_core::{ErrorReport, Mandate, OpenOptions, paths};

/// What the commands share: the open installation, or why it could not be opened, and the
/// keychain's status.
#[derive(Debug)]
pub struct AppState {
    pub mandate: Result<Arc<Mandate>, ErrorReport>,
    pub keychain: Result<(), KeychainError>,
}

fn os_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

fn open_state() -> AppState {
    let (keychain, status): (Arc<dyn Keychain>, _) =
        match mandate_keychain::OsKeychain::open(&paths::keychain_service()) {
            Ok(k) => {
                let status = k.status();
                (Arc::new(k), status)
            }
            Err(e) => (Arc::new(UnavailableKeychain(e.clone())), Err(e)),
        };
    let mandate = paths::data_dir()
        .and_then(|dir| {
            Mandate::open(OpenOptions::new(
                dir,
                keychain,
                Actor::app("desktop", &os_user()),
            ))
        })
        .map(Arc::new)
        .map_err(|e| ErrorReport::from(&e));
    AppState {
        mandate,
        keychain: status,
    }
}

fn specta_builder() -> tauri_specta::Builder<tauri::Wry> {
    tauri_specta::Builder::<tauri::Wry>::new().commands(tauri_specta::collect_commands![
        commands::app_info,
        commands::list_agents
    ])
}

/// Where the UI keeps the generated bindings (committed, checked for drift in CI).
pub const BINDINGS_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/ui/src/lib/backend/bindings.ts"
);

/// Write the TypeScript bindings for the UI to `path`.
///
/// Run `cargo run -p mandate-desktop -- --export-bindings` after changing a command or a type it
/// uses; `scripts/check-bindings` (part of `scripts/test`) fails when the committed file drifts.
/// The app itself never writes into the source tree.
pub fn export_bindings(path: &Path) -> Result<(), String> {
    specta_builder()
        .export(
            specta_typescript::Typescript::default().header(
                "// Generated from the Rust commands by `mandate-desktop --export-bindings`; do not edit.\n",
            ),
            path,
        )
        .map_err(|e| format!("could not export the bindings to {}: {e}", path.display()))
}

/// Run the app until its window closes.
pub fn run() -> ExitCode {
    let builder = specta_builder();
    let state = open_state();
    let result = tauri::Builder::default()
        .manage(state)
        .invoke_handler(builder.invoke_handler())
        .run(tauri::generate_context!());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Mandate could not start: {e}");
            ExitCode::FAILURE
        }
    }
}
