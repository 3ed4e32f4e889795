//! The team server's routes for witnesses (issue 21 §3), an HTTP adapter over
//! `mandate_core::witness::log`:
//!
//! - `GET /witness/checkpoint`: the newest checkpoint (a C2SP signed note) and the log's
//!   checkpoint key, as JSON `{"checkpoint": NOTE, "log_key": VKEY}`;
//! - `GET /witness/consistency?old=M&new=N`: the RFC 9162 §2.1.4 consistency proof from the
//!   first M events to the checkpoint of N, `{"old": M, "new": N, "proof": [base64 hashes]}`;
//! - `POST /witness/cosignature` (form: `size`, `cosignature` = the note signature line): a
//!   witness hands in its cosignature of the checkpoint of `size` events.
//!
//! None needs a session: the checkpoint and the proofs are public statements about the log,
//! and a cosignature authenticates itself (it must verify under a witness key an admin
//! registered). The guard's rate limits, body limit and refusal of browser requests apply as
//! to every route. Served by team servers only; a laptop's endpoint has no witnesses.
//!
//! What it is not: the checks (the core), or the witness's client (`witness_client`).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mandate_core::Error;
use mandate_core::oauth::OAuthError;
use serde_json::json;

use crate::{AppState, blocking, form_body, no_store, oauth_error, plain_error};

/// The newest checkpoint.
pub const CHECKPOINT_PATH: &str = "/witness/checkpoint";
/// Consistency proofs.
pub const CONSISTENCY_PATH: &str = "/witness/consistency";
/// Cosignatures handed in.
pub const COSIGNATURE_PATH: &str = "/witness/cosignature";

/// The witness routes (merged into a team server's router).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(CHECKPOINT_PATH, get(checkpoint))
        .route(CONSISTENCY_PATH, get(consistency))
        .route(COSIGNATURE_PATH, post(cosignature))
}

/// A core error as an answer: bad input 400, a refused cosignature 403, a log that no longer
/// matches its own checkpoint 409, anything else as the token endpoint maps it (a store that
/// is down is 503 with `Retry-After`).
fn answer_error(e: Error) -> Response {
    match &e {
        Error::Invalid(m) => plain_error(StatusCode::BAD_REQUEST, "invalid_request", m),
        Error::NotFound { .. } => plain_error(StatusCode::NOT_FOUND, "not_found", &e.to_string()),
        Error::Refused(m) => plain_error(StatusCode::FORBIDDEN, "cosignature_refused", m),
        Error::AuditFailed(_) => {
            plain_error(StatusCode::CONFLICT, "log_inconsistent", &e.to_string())
        }
        _ => oauth_error(&OAuthError::from(e)),
    }
}

async fn checkpoint(State(s): State<Arc<AppState>>) -> Response {
    let m = s.service.mandate().clone();
    match blocking(move || m.witness_checkpoint()).await {
        Ok(Ok(c)) => no_store(StatusCode::OK, &json!(c)),
        Ok(Err(e)) => answer_error(e),
        Err(r) => r,
    }
}

async fn consistency(State(s): State<Arc<AppState>>, req: Request) -> Response {
    let mut old = None;
    let mut new = None;
    for (k, v) in url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "old" => old = v.parse::<u64>().ok(),
            "new" => new = v.parse::<u64>().ok(),
            _ => {}
        }
    }
    let (Some(old), Some(new)) = (old, new) else {
        return plain_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "give the two tree sizes as ?old=M&new=N (decimal numbers of events)",
        );
    };
    let m = s.service.mandate().clone();
    match blocking(move || m.witness_consistency(old, new)).await {
        Ok(Ok(proof)) => no_store(
            StatusCode::OK,
            &json!({
                "old": old,
                "new": new,
                "proof": proof.iter().map(|h| STANDARD.encode(h)).collect::<Vec<_>>(),
            }),
        ),
        Ok(Err(e)) => answer_error(e),
        Err(r) => r,
    }
}

async fn cosignature(State(s): State<Arc<AppState>>, req: Request) -> Response {
    let (_, body) = match form_body(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut size = None;
    let mut line = None;
    for (k, v) in url::form_urlencoded::parse(&body) {
        match k.as_ref() {
            "size" => size = v.parse::<u64>().ok(),
            "cosignature" => line = Some(v.into_owned()),
            _ => {}
        }
    }
    let (Some(size), Some(line)) = (size, line) else {
        return plain_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "give the checkpoint's size and the cosignature line (form fields size and \
             cosignature)",
        );
    };
    let m = s.service.mandate().clone();
    match blocking(move || m.accept_cosignature(size, &line)).await {
        Ok(Ok(r)) => no_store(StatusCode::OK, &json!(r)),
        Ok(Err(e)) => answer_error(e),
        Err(r) => r,
    }
}
