//! The token endpoint's life inside the app: started with the window, paused and resumed from
//! the tray or Settings, stopped cleanly (requests in flight finish, their audit writes commit)
//! when the app exits. The endpoint itself is `mandate_server::serve`; this is only its switch.

use std::sync::{Arc, Mutex};

use mandate_core::Mandate;
use mandate_server::{RunningServer, ServeOptions};
use serde::Serialize;
use tauri::{AppHandle, Manager};

use crate::AppState;

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
}

#[derive(Debug)]
struct Inner {
    state: EndpointState,
    port: u16,
    server: Option<RunningServer>,
    message: Option<String>,
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
            message: None,
        })))
    }
}

impl Endpoint {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// What the endpoint is doing now.
    pub fn status(&self) -> EndpointStatus {
        self.with(|i| EndpointStatus {
            state: i.state,
            port: i.port,
            url: i.server.as_ref().map(RunningServer::url),
            message: i.message.clone(),
        })
    }
}

fn changed(app: &AppHandle) {
    crate::tray::refresh(app);
}

/// Start serving (in the background); the tray and `endpoint_status` follow its state.
pub fn start(app: &AppHandle, mandate: Arc<Mandate>) {
    let ep = app.state::<AppState>().endpoint.clone();
    let opts = match ServeOptions::from_env() {
        Ok(o) => o,
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
        if matches!(i.state, EndpointState::Running | EndpointState::Starting) {
            return false;
        }
        i.state = EndpointState::Starting;
        i.port = opts.port;
        i.message = None;
        true
    });
    if !go {
        return;
    }
    changed(app);
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let result = mandate_server::serve(mandate, opts).await;
        ep.with(|i| match result {
            Ok(server) => {
                i.port = server.addr().port();
                i.server = Some(server);
                i.state = EndpointState::Running;
            }
            Err(e) => {
                i.state = EndpointState::Failed;
                i.message = Some(e.to_string());
            }
        });
        changed(&app);
    });
}

/// Stop serving; requests in flight finish first.
pub async fn pause(app: &AppHandle) {
    let ep = app.state::<AppState>().endpoint.clone();
    let server = ep.with(|i| i.server.take());
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
}

/// Resume after a pause (or retry after a failure).
pub fn resume(app: &AppHandle) {
    let m = app.state::<AppState>().mandate.clone();
    if let Ok(m) = m {
        start(app, m);
    }
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
