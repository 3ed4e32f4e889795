//! The team workspace: this app as a client of the team server its person joined (issue 21
//! §2).
//!
//! - **Connect** is two steps: [`team_peek`] reads the certificate the server presents (the
//!   handshake is abandoned there, nothing is sent) and shows its SHA-256 fingerprint for the
//!   person to compare with the one the admin gave them; only after they confirm does
//!   [`team_join`] make the member key in the OS keychain, redeem the invite over a connection
//!   pinned to that fingerprint, remember the server, and enrol this computer as a witness of
//!   the team's log. A refused code leaves nothing behind.
//! - **Screens**: [`team_call`] is the one way the window reads and changes the team's
//!   registry, through the member API, signed in as the member (`MemberSession`). The server
//!   answers with the same JSON the local commands return (the core's types, serialised the
//!   same way), so the same components show it.
//! - **Offline**: a server that cannot be reached is `ErrorCode::Unreachable` with a sentence
//!   saying nothing was changed; the window shows the last data it read, marked as such. No
//!   change is queued. An answer that came but could not be used is `ErrorCode::BadAnswer`:
//!   the server is there, so the window shows the error, not what it read before.
//!
//! What it is not: the rules (the server decides and audits), or the live updates
//! (`team_live.rs`).

use mandate_core::{ErrorCode, ErrorReport};
use mandate_server::client::ClientError;
use mandate_server::member_client::Method;
use mandate_server::member_session::{self, MemberSession, SessionError};
use serde::Serialize;
use tauri::{AppHandle, State};

use super::mandate;
use crate::AppState;

/// Who this installation is on its team server.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct TeamIdentity {
    /// The server's URL (`https://host[:port]`).
    pub url: String,
    /// Its host, for the workspace switch.
    pub host: String,
    pub member: String,
    /// `admin`, `member` or `auditor`.
    pub role: String,
    /// The certificate fingerprint this installation trusts the server by, when pinned.
    pub fingerprint: Option<String>,
}

/// What the server at a URL presents, before anything is trusted.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct TeamPeek {
    /// The URL as it will be used (normalised).
    pub url: String,
    /// SHA-256 of its certificate, `AB:CD:...`.
    pub fingerprint: String,
}

/// The outcome of joining.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct TeamJoined {
    pub identity: TeamIdentity,
    /// This computer's witness name, when it enrolled as a witness of the team's log.
    pub witness: Option<String>,
    /// Why it did not enrol as a witness (the join itself stands).
    pub witness_error: Option<String>,
}

/// A member API answer, as the server sent it.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct TeamAnswer {
    #[specta(type = specta_typescript::Unknown)]
    pub value: serde_json::Value,
}

pub(crate) fn report(e: SessionError) -> ErrorReport {
    match e {
        SessionError::Client(ClientError::Refused { description, .. }) => ErrorReport {
            code: ErrorCode::Refused,
            message: format!("The team server refused: {description}"),
        },
        SessionError::Client(
            e @ (ClientError::NotRunning { .. } | ClientError::Unreachable { .. }),
        ) => ErrorReport {
            code: ErrorCode::Unreachable,
            message: format!(
                "The team server cannot be reached ({e}); nothing was changed. Check your \
                 network, or ask your team's admin whether the server is up"
            ),
        },
        SessionError::Client(e) => ErrorReport {
            code: ErrorCode::BadAnswer,
            message: format!(
                "The team server's answer could not be used ({e}); nothing was changed"
            ),
        },
        SessionError::Core(e) => ErrorReport::from(&e),
        SessionError::NotJoined(why) => ErrorReport {
            code: ErrorCode::InvalidInput,
            message: why,
        },
    }
}

fn identity(m: &mandate_core::team_client::Membership) -> TeamIdentity {
    let host = url_host(&m.url);
    TeamIdentity {
        url: m.url.clone(),
        host,
        member: m.member.clone(),
        role: m.role.clone(),
        fingerprint: match &m.trust {
            mandate_core::team_client::ServerTrustRecord::Fingerprint(f) => Some(f.clone()),
            _ => None,
        },
    }
}

fn url_host(url: &str) -> String {
    url.trim_start_matches("https://").to_string()
}

/// The team server this installation joined, if any.
#[tauri::command]
#[specta::specta]
pub async fn team_status(state: State<'_, AppState>) -> Result<Option<TeamIdentity>, ErrorReport> {
    let m = mandate(&state)?;
    Ok(m.team_membership()
        .map_err(|e| ErrorReport::from(&e))?
        .as_ref()
        .map(identity))
}

/// Read the certificate the server at `url` presents, for the person to compare.
#[tauri::command]
#[specta::specta]
pub async fn team_peek(url: String) -> Result<TeamPeek, ErrorReport> {
    let url = url.trim().trim_end_matches('/').to_string();
    let fingerprint = mandate_server::remote::peek_fingerprint(&url)
        .await
        .map_err(|message| ErrorReport {
            code: if message.contains("not a URL")
                || message.contains("https://")
                || message.contains("only the server's URL")
            {
                ErrorCode::InvalidInput
            } else {
                ErrorCode::Unreachable
            },
            message,
        })?;
    Ok(TeamPeek { url, fingerprint })
}

/// Join the team server at `url`, pinned to `fingerprint` (the one the person confirmed),
/// with the one-time invite `code`; then enrol this computer as a witness of its log.
#[tauri::command]
#[specta::specta]
pub async fn team_join(
    app: AppHandle,
    state: State<'_, AppState>,
    url: String,
    fingerprint: String,
    code: String,
) -> Result<TeamJoined, ErrorReport> {
    let m = mandate(&state)?;
    if m.team_membership()
        .map_err(|e| ErrorReport::from(&e))?
        .is_some()
    {
        return Err(ErrorReport {
            code: ErrorCode::Conflict,
            message: "This computer has already joined a team server; one is the most it joins"
                .into(),
        });
    }
    let code = mandate_core::secret::Sensitive::new(code.trim().to_string());
    if code.expose().is_empty() {
        return Err(ErrorReport {
            code: ErrorCode::InvalidInput,
            message: "Paste the invite code your team's admin gave you".into(),
        });
    }
    let trust =
        mandate_core::team_client::ServerTrustRecord::Fingerprint(fingerprint.trim().into());
    let joined = member_session::join(&m, url.trim(), trust, code)
        .await
        .map_err(report)?;
    let (witness, witness_error) = match MemberSession::open(m.clone()) {
        Ok(Some(s)) => match s.enrol_witness(None).await {
            Ok(w) => (Some(w.name), None),
            Err(e) => (None, Some(report(e).message)),
        },
        Ok(None) => (None, None),
        Err(e) => (None, Some(report(e).message)),
    };
    crate::team_live::restart(&app);
    Ok(TeamJoined {
        identity: identity(&joined),
        witness,
        witness_error,
    })
}

/// One member API request (`path` under `/team/v1/`, with its query; `body` JSON text),
/// signed in as this installation's member.
#[tauri::command]
#[specta::specta]
pub async fn team_call(
    state: State<'_, AppState>,
    method: String,
    path: String,
    body: Option<String>,
) -> Result<TeamAnswer, ErrorReport> {
    if !path.starts_with("/team/v1/") || path.contains("..") {
        return Err(ErrorReport {
            code: ErrorCode::InvalidInput,
            message: "only the team server's member API (/team/v1/...) is called from here".into(),
        });
    }
    let method = match method.as_str() {
        "GET" => Method::GET,
        "POST" => Method::POST,
        "PUT" => Method::PUT,
        "DELETE" => Method::DELETE,
        other => {
            return Err(ErrorReport {
                code: ErrorCode::InvalidInput,
                message: format!("'{other}' is not a method of the member API"),
            });
        }
    };
    let body = match body {
        Some(b) => {
            Some(
                serde_json::from_str::<serde_json::Value>(&b).map_err(|e| ErrorReport {
                    code: ErrorCode::InvalidInput,
                    message: format!("the request body is not JSON ({e})"),
                })?,
            )
        }
        None => None,
    };
    let m = mandate(&state)?;
    let session = MemberSession::open(m)
        .map_err(report)?
        .ok_or_else(|| ErrorReport {
            code: ErrorCode::InvalidInput,
            message: "This computer has not joined a team server: Settings → Connect to a team \
                      server"
                .into(),
        })?;
    let value = session
        .call(method, &path, body.as_ref())
        .await
        .map_err(report)?;
    Ok(TeamAnswer { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The window answers from what it read before only for `unreachable`: a server that
    /// answered with something unusable is there, and its error must show.
    #[test]
    fn a_server_that_answered_badly_is_not_reported_as_unreachable() {
        let down = report(SessionError::Client(ClientError::Unreachable {
            base: "https://team.example".into(),
            reason: "connection refused".into(),
        }));
        assert_eq!(down.code, ErrorCode::Unreachable);
        assert!(
            down.message.contains("cannot be reached"),
            "{}",
            down.message
        );
        let bad = report(SessionError::Client(ClientError::BadAnswer(
            "HTTP 502 Bad Gateway without a JSON body".into(),
        )));
        assert_eq!(bad.code, ErrorCode::BadAnswer);
        assert!(bad.message.contains("could not be used"), "{}", bad.message);
        assert!(
            bad.message.contains("nothing was changed"),
            "{}",
            bad.message
        );
    }
}
