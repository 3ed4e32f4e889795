//! The token endpoint's life inside the app.
//!
//! When the background service (`mandate service install`) or another `mandate serve` already
//! serves this data folder, the app attaches to that endpoint: it shows it as running, "served
//! by the background service", and offers no pause or resume it could not do. Otherwise the
//! app serves the endpoint itself: started with the window, paused and resumed from the tray
//! or Settings, stopped cleanly (requests in flight finish, their audit writes commit) when the
//! app exits. A watcher follows hand-overs: if the process the app attached to stops, the app
//! starts its own endpoint; when the app closes, a waiting service takes over.
//!
//! Who serves is read from the data folder's lock (`mandate_server::lock`): held means live,
//! and the file names the holder's pid, port, scheme and kind. The endpoint itself is
//! `mandate_server::serve`; this is only its switch.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mandate_core::Mandate;
use mandate_server::lock::{self, Holder, LockError, ServedBy};
use mandate_server::{RunningServer, ServeError, ServeOptions};
use serde::Serialize;
use tauri::{AppHandle, Manager};

use crate::AppState;

/// How often the app looks at who serves the data folder.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// Whether agents can get tokens right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, specta::Type)]
#[serde(rename_all = "snake_case")]
pub enum EndpointState {
    Starting,
    Running,
    Paused,
    Failed,
    /// The installation could not be opened, so there is nothing to serve.
    Unavailable,
}

/// Which process serves the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, specta::Type)]
#[serde(rename_all = "snake_case")]
pub enum ServedByView {
    /// This app: it stops when the app closes, and can be paused here.
    App,
    /// The background service (`mandate service install`): it runs with the window closed.
    Service,
    /// A `mandate serve` started by hand.
    Process,
}

/// The endpoint as the UI and the tray show it.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct EndpointStatus {
    pub state: EndpointState,
    /// The port it listens on, or would listen on.
    pub port: u16,
    /// `http://127.0.0.1:PORT` while running: the issuer agents use.
    pub url: Option<String>,
    /// Why it is not running, as a sentence that says what to do.
    pub message: Option<String>,
    pub served_by: ServedByView,
    /// The serving process when it is not this app.
    pub pid: Option<u32>,
    /// It serves HTTPS only (`mandate serve --tls`).
    pub tls: bool,
}

#[derive(Debug)]
struct Inner {
    state: EndpointState,
    port: u16,
    server: Option<RunningServer>,
    /// Another process's endpoint this app uses.
    attached: Option<Holder>,
    message: Option<String>,
    /// Paused by a person: the watcher does not start an endpoint of its own.
    paused: bool,
}

/// The switch around the running server.
#[derive(Debug, Clone)]
pub struct Endpoint(Arc<Mutex<Inner>>);

impl Default for Endpoint {
    fn default() -> Self {
        let port = ServeOptions::from_env()
            .map(|o| o.port)
            .unwrap_or(mandate_server::DEFAULT_PORT);
        Endpoint(Arc::new(Mutex::new(Inner {
            state: EndpointState::Unavailable,
            port,
            server: None,
            attached: None,
            message: None,
            paused: false,
        })))
    }
}

fn served_by(h: &Holder) -> ServedByView {
    match h.by {
        ServedBy::Service => ServedByView::Service,
        ServedBy::App | ServedBy::Cli => ServedByView::Process,
    }
}

impl Endpoint {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// What the endpoint is doing now.
    pub fn status(&self) -> EndpointStatus {
        self.with(|i| match &i.attached {
            Some(h) => EndpointStatus {
                state: EndpointState::Running,
                port: h.port,
                url: Some(h.url()),
                message: None,
                served_by: served_by(h),
                pid: Some(h.pid),
                tls: h.tls,
            },
            None => EndpointStatus {
                state: i.state,
                port: i.port,
                url: i.server.as_ref().map(RunningServer::url),
                message: i.message.clone(),
                served_by: ServedByView::App,
                pid: None,
                tls: i.server.as_ref().is_some_and(|s| s.tls().is_some()),
            },
        })
    }

    /// Use another process's endpoint.
    fn attach(&self, h: Holder) {
        self.with(|i| {
            i.port = h.port;
            i.attached = Some(h);
            i.state = EndpointState::Running;
            i.message = None;
        });
    }
}

fn changed(app: &AppHandle) {
    crate::tray::refresh(app);
}

/// Serve (in the background), or attach to the endpoint that already serves the data folder;
/// the tray and `endpoint_status` follow. Also starts the watcher (once).
pub fn start(app: &AppHandle, mandate: Arc<Mandate>) {
    let ep = app.state::<AppState>().endpoint.clone();
    static WATCHING: std::sync::Once = std::sync::Once::new();
    WATCHING.call_once(|| watch(app.clone(), mandate.clone()));
    // (A lock held by this very process is the app's own endpoint, already running.)
    if let Some(h) = lock::running(mandate.data_dir()).filter(|h| h.pid != std::process::id()) {
        ep.attach(h);
        changed(app);
        return;
    }
    let opts = match ServeOptions::from_env() {
        Ok(mut o) => {
            o.served_by = ServedBy::App;
            o
        }
        Err(e) => {
            ep.with(|i| {
                i.state = EndpointState::Failed;
                i.message = Some(format!("{e}; fix the variable and restart Mandate"));
            });
            changed(app);
            return;
        }
    };
    let go = ep.with(|i| {
        if i.attached.is_some()
            || matches!(i.state, EndpointState::Running | EndpointState::Starting)
        {
            return false;
        }
        i.state = EndpointState::Starting;
        i.port = opts.port;
        i.message = None;
        i.paused = false;
        true
    });
    if !go {
        return;
    }
    changed(app);
    let app = app.clone();
    let dir = mandate.data_dir().to_path_buf();
    tauri::async_runtime::spawn(async move {
        let result = mandate_server::serve(mandate, opts).await;
        match result {
            Ok(server) => ep.with(|i| {
                i.port = server.addr().port();
                i.server = Some(server);
                i.state = EndpointState::Running;
            }),
            // Someone took the data folder between the look and the start: use theirs.
            Err(ServeError::Locked(LockError::Held { .. }))
                if lock::running(&dir).is_some_and(|h| h.pid != std::process::id()) =>
            {
                if let Some(h) = lock::running(&dir) {
                    ep.attach(h);
                }
            }
            Err(e) => ep.with(|i| {
                i.state = EndpointState::Failed;
                i.message = Some(e.to_string());
            }),
        }
        changed(&app);
    });
}

/// Every [`WATCH_EVERY`]: if the endpoint the app attached to has gone (the service was
/// stopped), serve it here (unless a person paused it); if another process now serves the
/// data folder while the app serves nothing, attach to it.
fn watch(app: AppHandle, mandate: Arc<Mandate>) {
    tauri::async_runtime::spawn(async move {
        loop {
            tokio::time::sleep(WATCH_EVERY).await;
            let Some(state) = app.try_state::<AppState>() else {
                return;
            };
            let ep = state.endpoint.clone();
            let now = lock::running(mandate.data_dir());
            let (attached, own, paused) =
                ep.with(|i| (i.attached.clone(), i.server.is_some(), i.paused));
            match (attached, now) {
                (Some(was), Some(h)) if was != h => {
                    ep.attach(h);
                    changed(&app);
                }
                (Some(_), None) => {
                    ep.with(|i| {
                        i.attached = None;
                        i.state = if paused {
                            EndpointState::Paused
                        } else {
                            EndpointState::Unavailable
                        };
                    });
                    if !paused {
                        start(&app, mandate.clone());
                    }
                    changed(&app);
                }
                (None, Some(h)) if !own && h.pid != std::process::id() => {
                    ep.attach(h);
                    changed(&app);
                }
                _ => {}
            }
        }
    });
}

/// Why the app cannot pause or start an endpoint another process serves, or `None`.
pub fn not_ours(status: &EndpointStatus) -> Option<String> {
    match status.served_by {
        ServedByView::App => None,
        ServedByView::Service => Some(
            "the endpoint is served by the background service, which keeps it running while \
             Mandate is closed; stop it with `mandate service uninstall` (or `systemctl --user \
             stop mandate`), and the app serves the endpoint itself"
                .into(),
        ),
        ServedByView::Process => Some(format!(
            "the endpoint is served by another Mandate process{}; stop that process to control \
             the endpoint from here",
            status.pid.map(|p| format!(" ({p})")).unwrap_or_default()
        )),
    }
}

/// Stop serving; requests in flight finish first. Refused for an endpoint another process
/// serves.
pub async fn pause(app: &AppHandle) -> Result<(), String> {
    let ep = app.state::<AppState>().endpoint.clone();
    if let Some(why) = not_ours(&ep.status()) {
        return Err(why);
    }
    let server = ep.with(|i| {
        i.paused = true;
        i.server.take()
    });
    if let Some(s) = server
        && let Err(e) = s.shutdown().await
    {
        tracing::warn!(error = %e, "the endpoint stopped with an error");
    }
    ep.with(|i| {
        i.state = EndpointState::Paused;
        i.message = None;
    });
    changed(app);
    Ok(())
}

/// Resume after a pause (or retry after a failure).
pub fn resume(app: &AppHandle) -> Result<(), String> {
    let state = app.state::<AppState>();
    if let Some(why) = not_ours(&state.endpoint.status()) {
        return Err(why);
    }
    if let Ok(m) = state.mandate.clone() {
        start(app, m);
    }
    Ok(())
}

/// Stop on exit, waiting for requests in flight.
pub fn stop_blocking(app: &AppHandle) {
    let Some(state) = app.try_state::<AppState>() else {
        return;
    };
    let server = state.endpoint.with(|i| i.server.take());
    if let Some(s) = server
        && let Err(e) = tauri::async_runtime::block_on(s.shutdown())
    {
        tracing::warn!(error = %e, "the endpoint stopped with an error");
    }
}
