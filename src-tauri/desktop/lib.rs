//! The desktop shell: the only code that imports `tauri`.
//!
//! It opens the Mandate installation (the same core the CLI uses), starts the token endpoint
//! with the window and stops it cleanly with it, shows a tray icon that says whether the
//! endpoint runs, raises notifications for events that need a person, and exposes commands to
//! the web UI. Each command is an adapter: call the core, map the error to an `ErrorReport` (a
//! stable code and a sentence). The TypeScript side calls these only through the generated
//! `ui/src/lib/backend/bindings.ts`.
//!
//! What it is not: a place for rules. Validation, trust and policy live in `mandate-core`.

mod commands;
mod endpoint;
mod team_live;
mod tray;
mod watch;
mod witness;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use mandate_core::audit::Actor;
use mandate_core::secret::{Keychain, KeychainError, UnavailableKeychain};
use mandate_core::{ErrorReport, Mandate, OpenOptions, paths, people};
use tauri::Manager;

pub use endpoint::Endpoint;

/// What the commands share: the open installation, or why it could not be opened, the
/// keychain's status and the token endpoint.
#[derive(Debug)]
pub struct AppState {
    pub mandate: Result<Arc<Mandate>, ErrorReport>,
    pub keychain: Result<(), KeychainError>,
    pub endpoint: Endpoint,
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
    // Nobody is named until the person says who they are (the first-run prompt), or the
    // member this OS login chose before is remembered: no change is made in nobody's name.
    let mandate = paths::data_dir()
        .and_then(|dir| Mandate::open(OpenOptions::without_person(dir, keychain)))
        .and_then(|m| {
            if let Some(login) = people::current_login()
                && let Some(member) = m.remembered_member(&login)?
            {
                m.set_actor(Actor::member(member.id.as_str(), member.name.as_str()));
            }
            Ok(m)
        })
        .map(Arc::new)
        .map_err(|e| ErrorReport::from(&e));
    AppState {
        mandate,
        keychain: status,
        endpoint: Endpoint::default(),
    }
}

fn specta_builder() -> tauri_specta::Builder<tauri::Wry> {
    use commands::*;
    tauri_specta::Builder::<tauri::Wry>::new().commands(tauri_specta::collect_commands![
        app_info,
        agents::list_agents,
        agents::get_agent,
        agents::outstanding_tokens,
        agents::list_members,
        agents::add_member,
        agents::add_agent,
        agents::edit_agent,
        agents::suspend_agent,
        agents::resume_agent,
        agents::revoke_agent,
        agents::rotate_agent_key,
        agents::set_trust_override,
        agents::add_delegation,
        agents::revoke_delegation,
        audit::audit_page,
        audit::verify_audit,
        audit::export_audit,
        audit::show_export_in_folder,
        connections::list_connections,
        connections::add_connection,
        connections::set_connection_secret,
        connections::remove_connection,
        connections::broker_settings,
        connections::set_connection_limits,
        connections::set_trust_floor,
        mcp::list_mcp_servers,
        mcp::add_mcp_server,
        mcp::read_mcp_tools,
        mcp::remove_mcp_server,
        mcp::find_mcp_configs,
        mcp::import_mcp_entry,
        mcp::list_mcp_imports,
        mcp::undo_mcp_import,
        settings::settings,
        settings::set_organisation,
        trust::list_approvals,
        trust::approve_request,
        trust::deny_request,
        trust::review_agent,
        trust::list_attestations,
        trust::trust_settings,
        trust::set_trust_settings,
        settings::endpoint_status,
        settings::set_endpoint_running,
        person::current_person,
        person::choose_person,
        wizard::pick_folder,
        wizard::scan_folder,
        wizard::move_choices,
        wizard::plan_move,
        wizard::move_finding,
        wizard::undo_move,
        wizard::open_moves,
        wizard::list_presets,
        wizard::check_owner,
        wizard::create_wizard_agent,
        wizard::wizard_test_token,
        witness::witness_status,
        team::team_status,
        team::team_peek,
        team::team_join,
        team::team_call,
        team_live::team_connection,
    ])
}

/// Where the UI keeps the generated bindings (committed, checked for drift in CI).
pub const BINDINGS_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/ui/src/lib/backend/bindings.ts"
);

/// Write the TypeScript bindings for the UI to `path`.
///
/// Run `mandate-desktop --export-bindings` after changing a command or a type it uses;
/// `scripts/check-bindings` (part of `scripts/test`) fails when the committed file drifts.
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

/// The D-Bus name that makes the app single-instance *per installation*: a second launch on
/// the same data folder focuses the first window, while a development or test installation
/// (another `MANDATE_DATA_DIR`) runs beside it.
fn instance_id(state: &AppState) -> String {
    let key = match &state.mandate {
        Ok(m) => m.install_id().to_string(),
        Err(_) => paths::data_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
    };
    // FNV-1a: stable across builds, unlike std's hasher.
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("dev.mandate.app.i{hash:016x}")
}

/// The session bus exists (the single-instance plugin needs one and panics without it).
fn has_session_bus() -> bool {
    std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some()
        || std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| Path::new(&d).join("bus").exists())
}

fn focus_main(app: &tauri::AppHandle) {
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.unminimize();
        let _ = w.show();
        let _ = w.set_focus();
    }
}

/// Run the app until its window closes.
pub fn run() -> ExitCode {
    let builder = specta_builder();
    let state = open_state();
    let mut app = tauri::Builder::default();
    if cfg!(target_os = "linux") && !has_session_bus() {
        tracing::warn!("no D-Bus session bus: a second launch will open a second window");
    } else {
        app = app.plugin(
            tauri_plugin_single_instance::Builder::new()
                .dbus_id(instance_id(&state))
                .callback(|app, _argv, _cwd| focus_main(app))
                .build(),
        );
    }
    let result = app
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_opener::init())
        .manage(state)
        .manage(witness::Latest::default())
        .manage(Arc::new(team_live::Live::default()))
        .invoke_handler(builder.invoke_handler())
        .setup(|app| {
            let handle = app.handle().clone();
            let state = app.state::<AppState>();
            if let Ok(m) = &state.mandate {
                endpoint::start(&handle, m.clone());
                watch::spawn(handle.clone(), m.clone());
                witness::spawn(handle.clone(), m.clone());
                let live = app.state::<Arc<team_live::Live>>().inner().clone();
                team_live::spawn(handle.clone(), m.clone(), live);
            }
            if let Err(e) = tray::create(&handle) {
                tracing::warn!(error = %e, "no tray icon");
            }
            Ok(())
        })
        .build(tauri::generate_context!());
    let app = match result {
        Ok(app) => app,
        Err(e) => {
            eprintln!("Mandate could not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    app.run(|handle, event| {
        if let tauri::RunEvent::Exit = event {
            // Finish the requests in flight (their audit writes commit) before the process ends.
            endpoint::stop_blocking(handle);
        }
    });
    ExitCode::SUCCESS
}
