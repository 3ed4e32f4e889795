//! The MCP gateway over HTTP: `/mcp/{server}` is a Streamable HTTP MCP endpoint for each
//! registered (stdio) MCP server, following the MCP authorization spec with Mandate as the
//! authorization server.
//!
//! - `GET /.well-known/oauth-protected-resource/mcp/{server}`: RFC 9728 protected resource
//!   metadata naming this endpoint's issuer as the authorization server and the server's
//!   scopes.
//! - `POST /mcp/{server}`: one JSON-RPC message. The access token (`Authorization: Bearer` or
//!   `DPoP` with a proof for this method and URL, RFC 9449) is checked by the endpoint's own
//!   code; its audience must name this server (RFC 8707: a token asked for with
//!   `resource=http://127.0.0.1:PORT/mcp/{server}` carries `mcp://{server}`); it must still be
//!   active. Failures answer 401 with `WWW-Authenticate` pointing at the metadata. The message
//!   then goes through the same gate and relay as `mandate mcp run`
//!   (`mandate_mcp::http::HttpGateway`), in the session named by `Mcp-Session-Id` (a new one
//!   when none is named), and its answer comes back as `application/json`.
//! - `DELETE /mcp/{server}`: ends the session. `GET` (a server-sent event stream) is not
//!   offered: 405.
//!
//! Every refused token is audited (`mcp.denied`), as the gate audits every refused message.
//! A remote server (`mandate mcp add --url`) is reached the same way as from the bridge, with its
//! own credential (`mandate_mcp::remote`); the agent's token never goes to it.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use mandate_core::audit::{Actor, Decision, NewEvent, Target};
use mandate_core::mcp::McpSession;
use mandate_core::oauth::resource::{ResourceToken, ResourceTokenError};
use mandate_core::secret::Sensitive;
use mandate_mcp::http::HttpGateway;
use serde_json::json;

use crate::AppState;

/// Largest message accepted (the bridge's limit for a client message).
pub const MAX_MESSAGE_BYTES: usize = mandate_mcp::bridge::MAX_CLIENT_MESSAGE;

#[derive(Debug)]
struct McpState {
    app: Arc<AppState>,
    gateway: HttpGateway,
}

/// The `/mcp/...` routes and their metadata, to merge into the endpoint's router.
pub fn routes(app: Arc<AppState>) -> Router<Arc<AppState>> {
    let state = Arc::new(McpState {
        app,
        gateway: HttpGateway::new(),
    });
    Router::new()
        .route(
            "/.well-known/oauth-protected-resource/mcp/{server}",
            get(metadata),
        )
        .route("/mcp/{server}", any(endpoint))
        .with_state(state)
}

/// The resource's URL and its metadata URL, on the base the client addressed (a team
/// server's public URL, or this machine's scheme and Host).
fn urls(st: &McpState, h: &HeaderMap, server: &str) -> (String, String) {
    let base = st.app.base_url(h);
    (
        format!("{base}/mcp/{server}"),
        format!("{base}/.well-known/oauth-protected-resource/mcp/{server}"),
    )
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn not_an_mcp_server(server: &str) -> Response {
    crate::plain_error(
        StatusCode::NOT_FOUND,
        "invalid_request",
        &format!(
            "there is no MCP server named '{}' here; `mandate mcp list` shows them",
            server.escape_default()
        ),
    )
}

async fn metadata(
    State(st): State<Arc<McpState>>,
    Path(server): Path<String>,
    req: Request,
) -> Response {
    let m = st.app.service.mandate().clone();
    let Ok(s) = m.get_mcp_server(&server) else {
        return not_an_mcp_server(&server);
    };
    let (resource, _) = urls(&st, req.headers(), &server);
    let issuer = st.app.service.metadata()["issuer"].clone();
    let body = json!({
        "resource": resource,
        "authorization_servers": [issuer],
        "scopes_supported": s.tools.iter().map(|t| t.scope.clone()).collect::<Vec<_>>(),
        "bearer_methods_supported": ["header"],
        "dpop_signing_alg_values_supported": ["EdDSA", "Ed25519"],
        "resource_name": format!("MCP server {} through Mandate", s.name),
    });
    let mut r = axum::Json(body).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn secrets(h: &HeaderMap, name: &str) -> Vec<Sensitive<String>> {
    h.get_all(name)
        .iter()
        .map(|v| Sensitive::new(String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect()
}

/// A 401 with the RFC 6750/9449 challenge and the RFC 9728 pointer, audited.
async fn unauthorized(
    st: &McpState,
    server: &str,
    meta: &str,
    code: &'static str,
    description: String,
    dpop: bool,
    agent: Option<(&str, &str)>,
) -> Response {
    let scheme = if dpop { "DPoP" } else { "Bearer" };
    let challenge = if code == "invalid_request" {
        format!("{scheme} resource_metadata=\"{meta}\"")
    } else {
        format!(
            "{scheme} error=\"{code}\", error_description=\"{}\", resource_metadata=\"{meta}\"",
            description.replace(['"', '\\'], "'")
        )
    };
    let m = st.app.service.mandate().clone();
    let actor = match agent {
        Some((id, name)) => Actor::agent(id, name),
        // No agent could be identified from the request: the gateway's own refusal.
        None => Actor::system("mcp-gateway", "MCP gateway, no agent identified"),
    };
    let mut ev = NewEvent::new(&actor, "mcp.denied", Decision::Deny)
        .reason(description.clone())
        .details(json!({"server": server.chars().take(64).collect::<String>(), "via": "http", "error": code}));
    if let Some((id, _)) = agent {
        ev = ev.agent(id);
    }
    if let Ok(s) = m.get_mcp_server(server) {
        ev = ev.target(Target::new("connection", s.id.as_str(), s.name.as_str()));
    }
    if let Err(e) = m
        .submit_grouped(move |tx, now| mandate_core::audit::append(tx, now, ev))
        .await
    {
        tracing::error!(error = %e, "the MCP gateway could not audit a refused token");
        return crate::plain_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "Mandate could not record this decision in its audit trail; try again later",
        );
    }
    let mut r = crate::plain_error(StatusCode::UNAUTHORIZED, code, &description);
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// Check the request's token for `server`: signature, DPoP, audience, still active.
async fn authenticate(
    st: &McpState,
    h: &HeaderMap,
    method: &Method,
    server: &str,
) -> Result<ResourceToken, Response> {
    let (url, meta) = urls(st, h, server);
    let svc = &st.app.service;
    let checked = svc.check_resource_token(
        &secrets(h, "authorization"),
        &secrets(h, "dpop"),
        method.as_str(),
        &url,
    );
    let token = match checked {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            let (code, dpop) = match &e {
                ResourceTokenError::Missing(_) => ("invalid_request", false),
                ResourceTokenError::Invalid(_) => ("invalid_token", false),
                ResourceTokenError::Dpop(_) => ("invalid_dpop_proof", true),
            };
            let description = match &e {
                ResourceTokenError::Missing(_) => format!(
                    "send a Mandate access token for this MCP server: get one with resource={url} \
                     (its metadata: {meta})"
                ),
                other => other.to_string(),
            };
            return Err(unauthorized(st, server, &meta, code, description, dpop, None).await);
        }
        Err(e) => {
            tracing::error!(error = %e, "the MCP gateway could not check a token");
            return Err(crate::plain_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "Mandate could not check the token; try again later",
            ));
        }
    };
    let agent = (token.agent_id.clone(), token.client_id.clone());
    let aud = mandate_core::mcp::audience(server);
    if !token.aud.contains(&aud) {
        return Err(unauthorized(
            st,
            server,
            &meta,
            "invalid_token",
            format!(
                "this token is not for the MCP server '{server}': ask for one with \
                 resource={url}"
            ),
            token.proof.is_some(),
            Some((&agent.0, &agent.1)),
        )
        .await);
    }
    match svc.confirm_resource_token(&token).await {
        Ok(Ok(())) => Ok(token),
        Ok(Err(why)) => Err(unauthorized(
            st,
            server,
            &meta,
            if why.contains("DPoP") {
                "invalid_dpop_proof"
            } else {
                "invalid_token"
            },
            why,
            token.proof.is_some(),
            Some((&agent.0, &agent.1)),
        )
        .await),
        Err(e) => {
            tracing::error!(error = %e, "the MCP gateway could not confirm a token");
            Err(crate::plain_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "Mandate could not record this decision in its audit trail; try again later",
            ))
        }
    }
}

async fn endpoint(
    State(st): State<Arc<McpState>>,
    Path(server): Path<String>,
    req: Request,
) -> Response {
    let m = st.app.service.mandate().clone();
    if m.get_mcp_server(&server).is_err() {
        return not_an_mcp_server(&server);
    }
    let (parts, body) = req.into_parts();
    if parts.method == Method::GET {
        let mut r = crate::plain_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "this endpoint answers each POST with JSON and offers no event stream",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST, DELETE"));
        return r;
    }
    if parts.method != Method::POST && parts.method != Method::DELETE {
        return crate::plain_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "use POST (one JSON-RPC message) or DELETE (end the session)",
        );
    }
    let token = match authenticate(&st, &parts.headers, &parts.method, &server).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let session_id = parts
        .headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    if parts.method == Method::DELETE {
        return match session_id {
            Some(id) if st.gateway.end(&id, &token.agent_id, &server) => {
                StatusCode::NO_CONTENT.into_response()
            }
            _ => crate::plain_error(
                StatusCode::NOT_FOUND,
                "invalid_request",
                "there is no such MCP session",
            ),
        };
    }
    let ct_ok = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        });
    if !ct_ok {
        return crate::plain_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request",
            "send one JSON-RPC message as application/json",
        );
    }
    let too_big = || {
        json_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            mandate_mcp::gate::error_response(
                None,
                mandate_mcp::gate::codes::INVALID_REQUEST,
                &format!(
                    "the message is larger than {MAX_MESSAGE_BYTES} bytes, the gateway's limit"
                ),
                None,
            ),
        )
    };
    let bytes = match axum::body::to_bytes(Body::new(body), MAX_MESSAGE_BYTES).await {
        Ok(b) => b,
        Err(_) => return too_big(),
    };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let delegation = token.delegation_id.clone();
    let (agent_id, srv) = (token.agent_id.clone(), server.clone());
    let mm = m.clone();
    let open = move || {
        let mut session = McpSession::open(mm.clone(), &agent_id, &srv, "http")?;
        if let Some(d) = delegation
            && let Some(member) = mm.delegation_member(&d)
        {
            session = session.acting_for(member);
        }
        Ok(session)
    };
    let agent_id = token.agent_id.clone();
    let answer = st
        .gateway
        .post(
            session_id.as_deref(),
            &agent_id,
            &server,
            open,
            token,
            &text,
        )
        .await;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = match answer.body {
        Some(b) => json_response(status, b),
        None => status.into_response(),
    };
    if let Some(id) = answer.session
        && let Ok(v) = HeaderValue::from_str(&id)
    {
        r.headers_mut().insert("mcp-session-id", v);
    }
    r
}
