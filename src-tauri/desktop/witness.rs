//! The desktop witnesses its team's log (issue 21 §3): while this installation is a member of
//! a team server and has a witness key (`mandate team join` or the app's Connect made both),
//! it checks the server's newest checkpoint against the last one it saw (an RFC 9162
//! consistency proof) and cosigns it, once soon after start and then every minute.
//!
//! A server that forked or rewrote its log is refused by the core (nothing cosigned, the
//! checkpoint seen is kept, `witness.log_forked` in this machine's own trail). Here that is
//! made loud: an OS notification (once per distinct refusal, not every minute) and the
//! `team-witness` event, which the window shows as a banner. An unreachable server is quiet:
//! it is reported in the status, and the next sync tries again.
//!
//! What it is not: the checks (`mandate_core::witness::watch`) or the HTTP
//! (`mandate_server::witness_client`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mandate_core::Mandate;
use mandate_server::remote::{RemoteServer, ServerTrust};
use mandate_server::witness_client::{self, SyncError};
use serde::Serialize;
use tauri::{AppHandle, Emitter, Manager};
use tauri_plugin_notification::NotificationExt;

/// The event the window listens to for the witness's state.
pub const WITNESS_STATUS: &str = "team-witness";

/// How often the log is checked, unless `MANDATE_WITNESS_SYNC_SECS` says otherwise (tests).
const EVERY: Duration = Duration::from_secs(60);

/// What the last check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
#[serde(rename_all = "snake_case")]
pub enum WitnessState {
    /// The newest checkpoint extends what was seen, and this machine cosigned it.
    Cosigned,
    /// The server's log does not extend what this machine saw (or is signed by another key):
    /// nothing was cosigned. A person must look.
    Refused,
    /// The server could not be reached or did not keep the cosignature; tried again later.
    Unreachable,
}

/// The witness's state as the window shows it.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct WitnessStatus {
    pub state: WitnessState,
    /// The witness's name (its key's name).
    pub witness: String,
    /// The size of the checkpoint cosigned, when one was.
    pub size: Option<u32>,
    /// What happened, as a sentence (and what to do, when something is wrong).
    pub message: String,
    /// When (RFC 3339, UTC).
    pub at: String,
}

/// The latest status, for a window that opens after it was sent.
#[derive(Debug, Default)]
pub struct Latest(pub Mutex<Option<WitnessStatus>>);

/// The witness's latest status (none until the first check, or when this installation
/// witnesses no team log).
#[tauri::command]
#[specta::specta]
pub fn witness_status(latest: tauri::State<'_, Latest>) -> Option<WitnessStatus> {
    latest.0.lock().ok().and_then(|s| s.clone())
}

fn interval() -> Duration {
    std::env::var("MANDATE_WITNESS_SYNC_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map_or(EVERY, Duration::from_secs)
}

/// The team server this installation joined, and its witness's name; `None` when it is no
/// member of a team or has no witness key (nothing to do).
fn joined(m: &Mandate) -> Option<(RemoteServer, String)> {
    let membership = m.team_membership().ok()??;
    let (key, _) = m.witness_key(None).ok()?;
    let trust = ServerTrust::from_record(&membership.trust).ok()?;
    let server = RemoteServer::new(&membership.url, trust).ok()?;
    Some((server, key.name))
}

/// One check: the status it ends in, or `None` when there is nothing to witness.
async fn check(m: &Arc<Mandate>) -> Option<WitnessStatus> {
    let (server, witness) = {
        let m = m.clone();
        tauri::async_runtime::spawn_blocking(move || joined(&m))
            .await
            .ok()??
    };
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let status = |state, size, message| WitnessStatus {
        state,
        witness: witness.clone(),
        size,
        message,
        at: at.clone(),
    };
    Some(match witness_client::sync(m.clone(), &server, None).await {
        Ok(done) => status(
            WitnessState::Cosigned,
            u32::try_from(done.cosigned.size).ok(),
            format!(
                "Cosigned the team log's checkpoint of {} events: it extends the {} events \
                     this computer saw before.",
                done.cosigned.size, done.cosigned.previous_size
            ),
        ),
        Err(SyncError::Core(e)) => status(
            WitnessState::Refused,
            None,
            format!(
                "This computer refused to cosign the team server's log: {e}. Nothing was \
                     cosigned. Tell your team's admins: the server's history may have been \
                     rewritten."
            ),
        ),
        Err(e) => status(
            WitnessState::Unreachable,
            None,
            format!("The team log was not checked this time ({e}); the next check is in a minute."),
        ),
    })
}

/// Check the team's log now and every minute while the app runs.
pub fn spawn(app: AppHandle, m: Arc<Mandate>) {
    tauri::async_runtime::spawn(async move {
        // Let the window and the endpoint start first.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut last_alert: Option<String> = None;
        loop {
            if let Some(s) = check(&m).await {
                if s.state == WitnessState::Refused && last_alert.as_deref() != Some(&s.message) {
                    last_alert = Some(s.message.clone());
                    if let Err(e) = app
                        .notification()
                        .builder()
                        .title("The team's audit log was rewritten")
                        .body(&s.message)
                        .show()
                    {
                        tracing::warn!(error = %e, "the witness alert could not be shown");
                    }
                }
                if s.state == WitnessState::Refused {
                    tracing::error!(message = %s.message, "the team log was refused");
                }
                if let Some(latest) = app.try_state::<Latest>()
                    && let Ok(mut l) = latest.0.lock()
                {
                    *l = Some(s.clone());
                }
                if let Err(e) = app.emit(WITNESS_STATUS, &s) {
                    tracing::debug!(error = %e, "the window was not told the witness's state");
                }
            }
            tokio::time::sleep(interval()).await;
        }
    });
}
