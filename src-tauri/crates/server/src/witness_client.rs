//! A witness's sync with a team server: `mandate team witness sync URL` (and, later, the
//! desktop app, which calls [`sync`] too).
//!
//! On one TLS connection, trusted as the person said (`--server-ca`, `--server-fingerprint`,
//! or the Web PKI), after checking the server's RFC 8414 metadata names exactly that URL:
//! fetch the newest checkpoint, let the core check it against the pinned log key and what
//! this witness saw ([`Mandate::witness_begin`]), fetch the consistency proof it needs, let
//! the core check it and cosign ([`Mandate::witness_finish`]), and hand the cosignature in.
//!
//! A server that answers a proof request with 409 (`log_inconsistent`: its own events no
//! longer give its checkpoint's root) has admitted its history changed; that is checked as an
//! empty proof, so it is refused and recorded as a fork like any other. Any other failure to
//! answer (down, 503) cosigns nothing and records nothing: the next sync tries again.
//!
//! What it is not: the decisions (the core's `witness::watch`), or the server's routes.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http_body_util::Full;
use mandate_core::Mandate;
use mandate_core::audit::merkle::Hash;
use mandate_core::witness::log::ServedCheckpoint;
use mandate_core::witness::watch::Cosigned;
use serde::Deserialize;

use crate::client::{ClientError, TIMEOUT, send};
use crate::remote::{Connection, RemoteServer};
use crate::witness::{CHECKPOINT_PATH, CONSISTENCY_PATH, COSIGNATURE_PATH};

/// Why a sync did not end with a kept cosignature.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The server could not be reached or answered nonsense.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// This witness refused (a fork, a wrong key) or could not decide; the core's message.
    #[error(transparent)]
    Core(#[from] mandate_core::Error),
    /// The checkpoint was consistent and cosigned, but the server did not keep the
    /// cosignature (this witness is not registered there, say).
    #[error(
        "the checkpoint of {size} events is consistent with what this witness saw and was \
         cosigned, but the server did not accept the cosignature: {reason}"
    )]
    NotAccepted { size: u64, reason: String },
}

/// A sync that ended with the server keeping the cosignature.
#[derive(Debug, Clone)]
pub struct Synced {
    pub url: String,
    pub cosigned: Cosigned,
    /// Whether the server had not kept this cosignature before.
    pub new: bool,
}

#[derive(Deserialize)]
struct ProofAnswer {
    proof: Vec<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

#[derive(Deserialize)]
struct Receipt {
    new: bool,
}

fn describe(status: StatusCode, body: &[u8]) -> (String, String) {
    match serde_json::from_slice::<ErrorAnswer>(body) {
        Ok(e) if !e.error.is_empty() => (e.error, e.error_description),
        _ => (String::new(), format!("HTTP {status}")),
    }
}

async fn get(
    server: &RemoteServer,
    conn: &mut Connection,
    path: &str,
) -> Result<(StatusCode, Bytes), ClientError> {
    let req = Request::get(path)
        .header(header::HOST, &conn.authority)
        .header(header::ACCEPT, "application/json")
        .body(Full::new(Bytes::new()))
        .map_err(|e| ClientError::BadAnswer(e.to_string()))?;
    send(&mut conn.sender, req)
        .await
        .map_err(|reason| ClientError::Unreachable {
            base: server.url().to_string(),
            reason,
        })
}

/// Sync this installation's witness with the team server `server`: check its newest
/// checkpoint, cosign it when it is consistent with what was seen, and hand the cosignature
/// in. `log_key` pins the log's checkpoint key on the first sync (else the one the server
/// offers is pinned).
pub async fn sync(
    m: Arc<Mandate>,
    server: &RemoteServer,
    log_key: Option<String>,
) -> Result<Synced, SyncError> {
    match tokio::time::timeout(TIMEOUT, exchange(m, server, log_key)).await {
        Ok(r) => r,
        Err(_) => Err(ClientError::Unreachable {
            base: server.url().to_string(),
            reason: format!("no answer within {} s", TIMEOUT.as_secs()),
        }
        .into()),
    }
}

async fn on_blocking<T: Send + 'static>(
    f: impl FnOnce() -> mandate_core::Result<T> + Send + 'static,
) -> Result<T, SyncError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SyncError::Core(mandate_core::Error::Storage(e.to_string())))?
        .map_err(SyncError::Core)
}

async fn exchange(
    m: Arc<Mandate>,
    server: &RemoteServer,
    log_key: Option<String>,
) -> Result<Synced, SyncError> {
    let url = server.url().to_string();
    let mut conn = server.connect().await?;
    server.check_metadata(&mut conn).await?;

    // 1. The newest checkpoint, checked against the pinned key and what was seen.
    let (status, body) = get(server, &mut conn, CHECKPOINT_PATH).await?;
    if status != StatusCode::OK {
        let (_, why) = describe(status, &body);
        return Err(ClientError::BadAnswer(format!(
            "the server did not serve its checkpoint ({why}); is {url} a Mandate team server?"
        ))
        .into());
    }
    let served: ServedCheckpoint = serde_json::from_slice(&body).map_err(|_| {
        ClientError::BadAnswer("its checkpoint answer is not the JSON a team server sends".into())
    })?;
    let plan = {
        let (m, url) = (m.clone(), url.clone());
        on_blocking(move || m.witness_begin(&url, &served, log_key.as_deref())).await?
    };

    // 2. The consistency proof from what was seen to it.
    let mut proof: Vec<Hash> = Vec::new();
    if let Some((old, new)) = plan.proof_needed() {
        let path = format!("{CONSISTENCY_PATH}?old={old}&new={new}");
        let (status, body) = get(server, &mut conn, &path).await?;
        match status {
            StatusCode::OK => {
                let a: ProofAnswer = serde_json::from_slice(&body).map_err(|_| {
                    ClientError::BadAnswer("its consistency proof is not readable JSON".into())
                })?;
                for h in a.proof {
                    let hash: Hash = STANDARD
                        .decode(&h)
                        .ok()
                        .and_then(|v| v.try_into().ok())
                        .ok_or_else(|| {
                            ClientError::BadAnswer(
                                "its consistency proof holds a value that is not a SHA-256 hash"
                                    .into(),
                            )
                        })?;
                    proof.push(hash);
                }
            }
            // The server says its events no longer give its own checkpoint: no proof exists.
            StatusCode::CONFLICT => {}
            _ => {
                let (_, why) = describe(status, &body);
                return Err(ClientError::BadAnswer(format!(
                    "the server did not give a consistency proof from {old} to {new} events \
                     ({why}); nothing was cosigned, try again later"
                ))
                .into());
            }
        }
    }

    // 3. The decision: cosign, or refuse loudly (recorded in this installation's trail).
    let cosigned = {
        let m = m.clone();
        let plan = plan.clone();
        on_blocking(move || m.witness_finish(&plan, &proof)).await?
    };

    // 4. Hand it in.
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("size", &cosigned.size.to_string())
        .append_pair("cosignature", &cosigned.cosignature.line())
        .finish();
    let post = Request::post(COSIGNATURE_PATH)
        .header(header::HOST, &conn.authority)
        .header(header::ACCEPT, "application/json")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form)))
        .map_err(|e| ClientError::BadAnswer(e.to_string()))?;
    let (status, body) =
        send(&mut conn.sender, post)
            .await
            .map_err(|reason| ClientError::Unreachable {
                base: url.clone(),
                reason,
            })?;
    if status != StatusCode::OK {
        let (_, why) = describe(status, &body);
        return Err(SyncError::NotAccepted {
            size: cosigned.size,
            reason: why,
        });
    }
    let receipt: Receipt = serde_json::from_slice(&body)
        .map_err(|_| ClientError::BadAnswer("its receipt is not readable JSON".into()))?;
    Ok(Synced {
        url,
        cosigned,
        new: receipt.new,
    })
}
