//! Live updates of the team workspace: one event stream from the team server per app
//! (`MemberSession::watch`, server-sent events), turned into window events.
//!
//! - Each audit event the member may read becomes `team-event` (`{seq, action}`); the
//!   window reloads what it shows. An approval's event also raises `approvals-changed`, as
//!   the local watcher does, so the inbox reloads the same way.
//! - `team-connection` says whether the stream is up (`online`) and, when it is not, why;
//!   the window shows the offline banner from it.
//! - The stream resumes after the last event seen: with a new token after `token_expired`,
//!   after 1, 2, 4... up to 10 s when the server cannot be reached or dropped the
//!   connection. It stops for good when the member is removed (and says so).
//! - A session this computer cannot open (its keychain is locked, the member key is gone) is
//!   tried again only every two minutes: each try may ask the person to unlock the keychain.
//! - The resume point belongs to one membership: a new server or member starts at that
//!   server's head.
//!
//! What it is not: polling. Nothing is read on a timer while the stream is up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mandate_core::Mandate;
use mandate_server::member_session::{MemberSession, SessionError};
use serde::Serialize;
use tauri::{AppHandle, Emitter, Manager};
use tokio::sync::Notify;

/// The window event for each team event.
pub const TEAM_EVENT: &str = "team-event";
/// The window event for the stream's state.
pub const TEAM_CONNECTION: &str = "team-connection";

/// One event of the team's trail, as the window needs it to know what to reload.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct TeamEventNote {
    pub seq: u32,
    pub action: String,
}

/// Whether the team server's stream is up.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct TeamConnection {
    pub online: bool,
    /// Why not, as a sentence (and what happens next).
    pub message: Option<String>,
    /// When it was last up (RFC 3339), for "showing what was read at ...".
    pub last_online: Option<String>,
}

/// The live stream's shared state: a wake-up for a new membership, and the latest state.
#[derive(Debug, Default)]
pub struct Live {
    wake: Notify,
    latest: Mutex<Option<TeamConnection>>,
}

/// The stream's latest state (none while this computer has joined no team).
#[tauri::command]
#[specta::specta]
pub fn team_connection(live: tauri::State<'_, Arc<Live>>) -> Option<TeamConnection> {
    live.latest.lock().ok().and_then(|l| l.clone())
}

/// Start following at once (a membership was just made).
pub fn restart(app: &AppHandle) {
    if let Some(live) = app.try_state::<Arc<Live>>() {
        live.wake.notify_one();
    }
}

fn tell(app: &AppHandle, live: &Live, c: TeamConnection) {
    if let Ok(mut l) = live.latest.lock() {
        *l = Some(c.clone());
    }
    let _ = app.emit(TEAM_CONNECTION, c);
}

/// Follow the team's stream while the app runs.
pub fn spawn(app: AppHandle, m: Arc<Mandate>, live: Arc<Live>) {
    tauri::async_runtime::spawn(async move {
        let mut after: Option<u64> = None;
        // Whose stream `after` is a point in (server URL and member).
        let mut after_of: Option<(String, String)> = None;
        let mut fresh = false;
        let mut backoff = 1u64;
        // When the stream was last accepted (the offline banner says what it shows is from then).
        let online_at: Arc<Mutex<Option<String>>> = Arc::default();
        let last_online = |at: &Arc<Mutex<Option<String>>>| at.lock().ok().and_then(|a| a.clone());
        loop {
            let opened = {
                let m = m.clone();
                tauri::async_runtime::spawn_blocking(move || MemberSession::open(m)).await
            };
            let session = match opened {
                Ok(Ok(Some(session))) => session,
                Ok(Ok(None)) => {
                    // Not joined: wait for a join (or look again in a while).
                    let _ =
                        tokio::time::timeout(Duration::from_secs(30), live.wake.notified()).await;
                    continue;
                }
                // Joined, but the session cannot be opened (the keychain is locked, the
                // member key is missing): say so, and try again rarely (a locked keychain may
                // prompt at each try) or at once after a new join.
                Ok(Err(e)) => {
                    let why = crate::commands::team::report(e).message;
                    unopened(&app, &live, &why, last_online(&online_at)).await;
                    continue;
                }
                Err(e) => {
                    let why = format!("The team session could not be opened ({e})");
                    unopened(&app, &live, &why, last_online(&online_at)).await;
                    continue;
                }
            };
            let whose = (
                session.membership.url.clone(),
                session.membership.member.clone(),
            );
            if after_of.as_ref() != Some(&whose) {
                after = None;
                after_of = Some(whose);
            }
            let app2 = app.clone();
            // Online only once the server accepted the stream (not at each attempt: the window
            // reloads what it shows when the server comes back).
            let accepted = Arc::new(AtomicBool::new(false));
            let (app3, live3, at3, acc3) = (
                app.clone(),
                live.clone(),
                online_at.clone(),
                accepted.clone(),
            );
            let on_open = move || {
                acc3.store(true, Ordering::Relaxed);
                let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                if let Ok(mut at) = at3.lock() {
                    *at = Some(now.clone());
                }
                tell(
                    &app3,
                    &live3,
                    TeamConnection {
                        online: true,
                        message: None,
                        last_online: Some(now),
                    },
                );
            };
            let ended = session
                .watch(after, fresh, on_open, move |e| {
                    let action = e.event["action"].as_str().unwrap_or_default().to_string();
                    if action.starts_with("approval.") {
                        let _ = app2.emit(crate::watch::APPROVALS_CHANGED, ());
                    }
                    let _ = app2.emit(
                        TEAM_EVENT,
                        TeamEventNote {
                            seq: u32::try_from(e.seq).unwrap_or(u32::MAX),
                            action,
                        },
                    );
                })
                .await;
            fresh = false;
            // A server that accepted the stream is up: the next try after it ends is quick.
            if accepted.load(Ordering::Relaxed) {
                backoff = 1;
            }
            let why = match ended {
                Ok(end) => {
                    // The server says where each stream starts and ends, so this is set even
                    // when no event came: the next stream misses nothing in between.
                    after = end.last_seq.or(after);
                    match end.reason.as_str() {
                        "token_expired" => {
                            fresh = true;
                            continue;
                        }
                        "member_removed" => {
                            tell(
                                &app,
                                &live,
                                TeamConnection {
                                    online: false,
                                    message: Some(format!(
                                        "The team server ended your session: {}",
                                        end.message
                                    )),
                                    last_online: last_online(&online_at),
                                },
                            );
                            // Removal is final for this key: look again only after a new join.
                            after = None;
                            after_of = None;
                            live.wake.notified().await;
                            continue;
                        }
                        _ => end.message,
                    }
                }
                Err(SessionError::Client(mandate_server::client::ClientError::Refused {
                    error,
                    ..
                })) if error == "invalid_token" => {
                    session.forget_token();
                    fresh = true;
                    continue;
                }
                Err(e) => crate::commands::team::report(e).message,
            };
            // `after` stays: the stream resumes after the last event seen, so nothing missed
            // while offline stays unseen.
            tell(&app, &live, offline(&why, backoff, last_online(&online_at)));
            wait(&live, &mut backoff).await;
        }
    });
}

/// Seconds between tries to open a session this computer could not open.
const LOCAL_RETRY_SECS: u64 = 120;

/// A session this computer could not open: say why, then wait [`LOCAL_RETRY_SECS`] (or for a
/// new join).
async fn unopened(app: &AppHandle, live: &Live, why: &str, last_online: Option<String>) {
    tell(app, live, offline(why, LOCAL_RETRY_SECS, last_online));
    let _ = tokio::time::timeout(Duration::from_secs(LOCAL_RETRY_SECS), live.wake.notified()).await;
}

/// The offline state, with when the next try is.
fn offline(why: &str, backoff: u64, last_online: Option<String>) -> TeamConnection {
    TeamConnection {
        online: false,
        message: Some(format!(
            "{}. Trying again in {backoff} s.",
            why.trim_end_matches('.')
        )),
        last_online,
    }
}

/// Wait before the next try (1, 2, 4... up to 10 s; a new membership ends the wait at once).
async fn wait(live: &Live, backoff: &mut u64) {
    let _ = tokio::time::timeout(Duration::from_secs(*backoff), live.wake.notified()).await;
    *backoff = (*backoff * 2).min(10);
}
