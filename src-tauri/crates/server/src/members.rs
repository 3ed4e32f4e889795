//! The member API of a team server (issue 21 §1): `POST /team/join` redeems an invite and
//! enrols a member's key; everything under `/team/v1/` is called by a signed-in member with
//! `Authorization: DPoP TOKEN` and a fresh `DPoP` proof, and answers JSON.
//!
//! | Route | Who |
//! |---|---|
//! | `GET /team/v1/me` | any member: who the server thinks you are |
//! | `GET /team/v1/agents` | any member |
//! | `POST /team/v1/agents/{name}/{suspend,resume,revoke}` | its owner, or an admin |
//! | `GET /team/v1/approvals` | what you may decide |
//! | `POST /team/v1/approvals/{id}/{approve,deny}` | the asking agent's owner, or an admin |
//! | `GET /team/v1/audit?limit=N&before=SEQ` | any member: the events they may read |
//! | `GET /team/v1/events` | any member: those events as they happen (server-sent events, [`crate::events`]) |
//! | `GET /team/v1/audit/export` | admins and auditors: the evidence bundle, signed |
//! | `GET /team/v1/connections`; `POST`, `DELETE /team/v1/connections/{name}` | read: any; add, remove: admins |
//! | `PUT /team/v1/connections/{name}/secret` | admins: the credential, kept in the server's keychain |
//! | `GET /team/v1/mcp-servers`; `POST`, `DELETE /team/v1/mcp-servers/{name}` | read: any; add (remote servers only), remove: admins |
//! | `GET /team/v1/members`, `POST /team/v1/members`, `DELETE /team/v1/members/{name}` | read: any; invite, remove: admins |
//! | `GET /team/v1/witnesses`, `POST /team/v1/witnesses` | any member: enrol their machine as a witness of the log |
//! | `DELETE /team/v1/witnesses/{name}` | an admin, or the member who enrolled it |
//!
//! Each handler checks the token and proof (`TokenService::member_session`, which re-reads
//! membership every time) and calls one core method (`team_access.rs`) on a blocking thread;
//! the rules and the audit events are the core's. Only a team server serves these routes: on
//! a laptop's loopback endpoint they are 404.
//!
//! What it is not: checkpoints or witnesses (those are their own routes), or the desktop app's
//! client.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use mandate_core::NewConnection;
use mandate_core::approvals::ApprovalWindow;
use mandate_core::broker::CredentialPlacement;
use mandate_core::mcp::{McpTransport, NewMcpServer};
use mandate_core::model::TrustState;
use mandate_core::oauth::member::NotSignedIn;
use mandate_core::secret::Sensitive;
use mandate_core::team::{DEFAULT_INVITE_TTL, Role};
use mandate_core::team_access::{AgentChange, ApprovalAnswer, SignedIn};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{AppState, Exposure, MAX_BODY_BYTES};

/// The member API's routes (answered only on a team server).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/team/join", post(join))
        .route("/team/v1/me", get(me))
        .route("/team/v1/agents", get(agents))
        .route("/team/v1/agents/{name}/{change}", post(change_agent))
        .route("/team/v1/approvals", get(approvals))
        .route("/team/v1/approvals/{id}/{answer}", post(decide))
        .route("/team/v1/audit", get(audit))
        .route("/team/v1/events", get(events))
        .route("/team/v1/audit/export", get(export))
        .route(
            "/team/v1/connections",
            get(connections).post(add_connection),
        )
        .route("/team/v1/connections/{name}", delete(remove_connection))
        .route(
            "/team/v1/connections/{name}/secret",
            put(set_connection_secret),
        )
        .route(
            "/team/v1/mcp-servers",
            get(mcp_servers).post(add_mcp_server),
        )
        .route("/team/v1/mcp-servers/{name}", delete(remove_mcp_server))
        .route("/team/v1/members", get(members).post(invite))
        .route("/team/v1/members/{name}", delete(remove))
        .route("/team/v1/witnesses", get(witnesses).post(add_witness))
        .route("/team/v1/witnesses/{name}", delete(remove_witness))
}

fn json_answer(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, mandate_core::oauth::jws::json_bytes(body)).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn error(status: StatusCode, code: &str, description: &str) -> Response {
    json_answer(
        status,
        &json!({"error": code, "error_description": description}),
    )
}

/// A core error as an HTTP answer: refusals 403, unknown names 404, bad input 400, conflicts
/// 409, anything of the store or keys 503 (the core failed closed).
fn core_error(e: &mandate_core::Error) -> Response {
    use mandate_core::ErrorCode as C;
    let (status, code) = match e.code() {
        C::Refused => (StatusCode::FORBIDDEN, "access_denied"),
        C::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        C::InvalidInput => (StatusCode::BAD_REQUEST, "invalid_request"),
        C::AlreadyExists | C::Conflict => (StatusCode::CONFLICT, "conflict"),
        _ => {
            tracing::error!(error = %e, "a member API request could not use the store");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the team server could not record this request in its audit trail, so it \
                 refused it; try again later",
            );
        }
    };
    error(status, code, &e.to_string())
}

fn not_signed_in(e: &NotSignedIn) -> Response {
    let mut r = error(StatusCode::UNAUTHORIZED, "invalid_token", &e.0);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("DPoP algs=\"EdDSA\""),
    );
    r
}

fn only_on_team(s: &AppState) -> Option<Response> {
    match s.exposure {
        Exposure::Team(_) => None,
        Exposure::Loopback => Some(error(
            StatusCode::NOT_FOUND,
            "invalid_request",
            "there is no such endpoint here: the member API is a team server's",
        )),
    }
}

/// Run `f` on a blocking thread; a panic is a 500 without detail.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(f).await.map_err(|_| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the team server failed unexpectedly; its logs say more",
        )
    })
}

/// What every member route takes from its request: the method and path its DPoP proof must
/// name, and the headers carrying the token and the proof.
struct MemberCall {
    s: Arc<AppState>,
    method: Method,
    path: String,
    headers: HeaderMap,
}

impl FromRequestParts<Arc<AppState>> for MemberCall {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        s: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        Ok(MemberCall {
            s: s.clone(),
            method: parts.method.clone(),
            path: parts.uri.path().to_string(),
            headers: parts.headers.clone(),
        })
    }
}

impl MemberCall {
    /// Check the member's token and proof, then answer with `f`'s result (see [`as_member`]).
    async fn run<F>(self, f: F) -> Response
    where
        F: FnOnce(&mandate_core::Mandate, &SignedIn) -> Result<Value, mandate_core::Error>
            + Send
            + 'static,
    {
        as_member(self.s, self.method, self.headers, self.path, f).await
    }
}

/// The signed-in member of this request, then `f` with them, both on one blocking thread.
async fn as_member<F>(
    s: Arc<AppState>,
    method: Method,
    headers: HeaderMap,
    path: String,
    f: F,
) -> Response
where
    F: FnOnce(&mandate_core::Mandate, &SignedIn) -> Result<Value, mandate_core::Error>
        + Send
        + 'static,
{
    if let Some(r) = only_on_team(&s) {
        return r;
    }
    let out = blocking(move || {
        let who = match check_member(&s, &method, &headers, &path) {
            Ok(w) => w,
            Err(r) => return *r,
        };
        match f(s.service.mandate(), &who) {
            Ok(v) => json_answer(StatusCode::OK, &v),
            Err(e) => core_error(&e),
        }
    })
    .await;
    match out {
        Ok(r) | Err(r) => r,
    }
}

/// Check the request's member token and proof (on a blocking thread: it reads the registry
/// and records the proof's `jti`): who they are, or the refusal to answer.
fn check_member(
    s: &AppState,
    method: &Method,
    headers: &HeaderMap,
    path: &str,
) -> Result<SignedIn, Box<Response>> {
    let url = format!("{}{path}", s.base_url(headers));
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let dpop: Vec<Sensitive<String>> = headers
        .get_all("dpop")
        .iter()
        .map(|v| Sensitive::new(String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    match s.service.member_session(auth, &dpop, method.as_str(), &url) {
        Ok(Ok(w)) => Ok(w),
        Ok(Err(e)) => Err(Box::new(not_signed_in(&e))),
        Err(e) => Err(Box::new(core_error(&e))),
    }
}

/// `GET /team/v1/events`: the audit trail as it grows, as server-sent events
/// ([`crate::events`]).
async fn events(call: MemberCall, RawQuery(query): RawQuery) -> Response {
    if let Some(r) = only_on_team(&call.s) {
        return r;
    }
    // Where to start: a reconnecting client's Last-Event-ID, else ?after=SEQ, else now.
    let mut after = call
        .headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    for (k, v) in url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()) {
        if k == "after" && after.is_none() {
            match v.parse::<u64>() {
                Ok(n) => after = Some(n),
                Err(_) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "after must be an event's sequence number",
                    );
                }
            }
        }
    }
    let who = {
        let (s, method, headers, path) = (call.s.clone(), call.method, call.headers, call.path);
        match blocking(move || check_member(&s, &method, &headers, &path)).await {
            Ok(Ok(w)) => w,
            Ok(Err(r)) => return *r,
            Err(r) => return r,
        }
    };
    let m = call.s.service.mandate().clone();
    match crate::events::open(&call.s.streams, m, who, after).await {
        Ok(sse) => sse,
        Err(crate::events::Refused::Busy(why)) => {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                why,
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
            r
        }
        Err(crate::events::Refused::Core(e)) => core_error(&e),
    }
}

async fn body_json<T: for<'de> Deserialize<'de>>(req: Request) -> Result<(HeaderMap, T), Response> {
    let (parts, body) = req.into_parts();
    let bytes: Bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "the request body is too large",
            )
        })?;
    let v = if bytes.is_empty() {
        serde_json::from_slice(b"{}")
    } else {
        serde_json::from_slice(&bytes)
    }
    .map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("the request body is not the JSON this route takes ({e})"),
        )
    })?;
    Ok((parts.headers, v))
}

fn to_json<T: serde::Serialize>(v: T) -> Result<Value, mandate_core::Error> {
    serde_json::to_value(v).map_err(|e| mandate_core::Error::Storage(e.to_string()))
}

#[derive(Deserialize)]
struct JoinBody {
    code: String,
    /// The member's Ed25519 public key: 32 bytes, base64url.
    public_key: String,
}

async fn join(State(s): State<Arc<AppState>>, req: Request) -> Response {
    if let Some(r) = only_on_team(&s) {
        return r;
    }
    let (_, body) = match body_json::<JoinBody>(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let code = Sensitive::new(body.code);
    let key = mandate_core::keys::b64url_decode(&body.public_key)
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .and_then(|b| ed25519_dalek::VerifyingKey::from_bytes(&b).ok());
    let Some(key) = key else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "public_key must be an Ed25519 public key: 32 bytes, base64url",
        );
    };
    let issuer = s.service.config().issuer.clone();
    let out = blocking(move || s.service.mandate().join_team(&code, &key)).await;
    match out {
        Ok(Ok(j)) => json_answer(
            StatusCode::OK,
            &json!({
                "member": j.member_name, "role": j.role.as_str(), "kid": j.kid,
                "issuer": issuer,
            }),
        ),
        Ok(Err(e)) => core_error(&e),
        Err(r) => r,
    }
}

async fn me(call: MemberCall) -> Response {
    call.run(|_, who| to_json(who)).await
}

async fn agents(call: MemberCall) -> Response {
    call.run(|m, who| to_json(m.team_agents(who)?)).await
}

#[derive(Deserialize, Default)]
struct ReasonBody {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    window: Option<String>,
}

async fn change_agent(
    call: MemberCall,
    Path((name, change)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (_, body) = match body_json::<ReasonBody>(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let change = match change.as_str() {
        "suspend" => AgentChange::Suspend,
        "resume" => AgentChange::Resume,
        "revoke" => AgentChange::Revoke,
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "invalid_request",
                "an agent can be suspended, resumed or revoked here",
            );
        }
    };
    call.run(move |m, who| {
        to_json(m.team_change_agent(who, &name, change, body.reason.as_deref())?)
    })
    .await
}

async fn approvals(call: MemberCall) -> Response {
    call.run(|m, who| to_json(m.team_approvals(who)?)).await
}

async fn decide(
    call: MemberCall,
    Path((id, answer)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (_, body) = match body_json::<ReasonBody>(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let answer = match answer.as_str() {
        "approve" => {
            let w = body.window.as_deref().unwrap_or("once");
            match w.parse::<ApprovalWindow>() {
                Ok(w) => ApprovalAnswer::Approve(w),
                Err(e) => return core_error(&e),
            }
        }
        "deny" => ApprovalAnswer::Deny(body.reason.unwrap_or_default()),
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "invalid_request",
                "an approval request can be approved or denied here",
            );
        }
    };
    call.run(move |m, who| to_json(m.team_decide(who, &id, answer)?))
        .await
}

async fn audit(call: MemberCall, RawQuery(query): RawQuery) -> Response {
    let (mut limit, mut before) = (50u32, None::<u64>);
    for (k, v) in url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "limit" => limit = v.parse().unwrap_or(50),
            "before" => before = v.parse().ok(),
            _ => {}
        }
    }
    call.run(move |m, who| to_json(m.team_audit(who, limit, before)?))
        .await
}

async fn members(call: MemberCall) -> Response {
    call.run(|m, who| to_json(m.team_members(who)?)).await
}

#[derive(Deserialize)]
struct InviteBody {
    name: String,
    role: String,
    #[serde(default)]
    email: Option<String>,
}

async fn invite(call: MemberCall, req: Request) -> Response {
    let (_, body) = match body_json::<InviteBody>(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(role) = Role::parse(&body.role) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "role must be admin, member or auditor",
        );
    };
    call.run(move |m, who| {
        let inv = m.team_invite(
            who,
            &body.name,
            body.email.as_deref(),
            role,
            DEFAULT_INVITE_TTL,
        )?;
        Ok(json!({
            "member": inv.member.name.as_str(),
            "role": inv.role.as_str(),
            "code": inv.code.expose(),
            "expires_at": inv.expires_at.to_rfc3339(),
        }))
    })
    .await
}

async fn remove(call: MemberCall, Path(name): Path<String>) -> Response {
    call.run(move |m, who| to_json(m.team_remove(who, &name)?))
        .await
}

async fn connections(call: MemberCall) -> Response {
    call.run(|m, who| to_json(m.team_connections(who)?)).await
}

async fn remove_connection(call: MemberCall, Path(name): Path<String>) -> Response {
    call.run(move |m, who| {
        Ok(json!({"removed": name, "scopes_removed_from": m.team_remove_connection(who, &name)?}))
    })
    .await
}

async fn mcp_servers(call: MemberCall) -> Response {
    call.run(|m, who| to_json(m.team_mcp_servers(who)?)).await
}

async fn remove_mcp_server(call: MemberCall, Path(name): Path<String>) -> Response {
    call.run(move |m, who| {
        Ok(json!({"removed": name, "scopes_removed_from": m.team_remove_mcp_server(who, &name)?}))
    })
    .await
}

async fn export(call: MemberCall) -> Response {
    call.run(|m, who| {
        let e = m.team_export(who)?;
        Ok(json!({
            "bundle": String::from_utf8_lossy(&e.bundle),
            "key_fingerprint": e.key_fingerprint,
            "events": e.events.len(),
            "checkpoint_size": e.checkpoint.checkpoint.size,
        }))
    })
    .await
}

async fn witnesses(call: MemberCall) -> Response {
    call.run(|m, who| to_json(m.team_witnesses(who)?)).await
}

#[derive(Deserialize)]
struct WitnessBody {
    /// The witness's name (schema-less URL-like, as in its verifier key).
    name: String,
    /// Its cosignature verifier key, `NAME+KEYID+BASE64`.
    public_key: String,
}

async fn add_witness(call: MemberCall, req: Request) -> Response {
    let (_, body) = match body_json::<WitnessBody>(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    call.run(move |m, who| to_json(m.team_add_witness(who, &body.name, &body.public_key)?))
        .await
}

async fn remove_witness(call: MemberCall, Path(name): Path<String>) -> Response {
    call.run(move |m, who| to_json(m.team_remove_witness(who, &name)?))
        .await
}

#[derive(Deserialize)]
struct ConnectionBody {
    name: String,
    base_url: String,
    /// `NAME=METHOD:PATH` strings.
    #[serde(default)]
    actions: Vec<String>,
    #[serde(default)]
    trust_floor: Option<String>,
    /// The preset it starts from (`github`, `anthropic`...): credential placement, costs and
    /// essential actions.
    #[serde(default)]
    preset: Option<String>,
}

/// A trust state as the member API takes it (`TRUSTED`, `PENDING`, `UNTRUSTED`, any case).
fn trust_floor(raw: Option<&str>) -> Result<Option<TrustState>, Box<Response>> {
    raw.map(|t| {
        t.parse::<TrustState>().map_err(|_| {
            Box::new(error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "trust_floor must be TRUSTED, PENDING or UNTRUSTED",
            ))
        })
    })
    .transpose()
}

async fn add_connection(call: MemberCall, req: Request) -> Response {
    let (_, body) = match body_json::<ConnectionBody>(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let floor = match trust_floor(body.trust_floor.as_deref()) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    call.run(move |m, who| {
        to_json(m.team_add_connection(
            who,
            NewConnection {
                name: body.name,
                base_url: body.base_url,
                actions: body.actions,
                trust_floor: floor,
            },
            body.preset.as_deref(),
        )?)
    })
    .await
}

async fn set_connection_secret(
    call: MemberCall,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    // Read as a plain object so that no parser message can quote the credential back.
    let secret = match body_json::<Value>(req).await {
        Ok((_, mut v)) => match v.get_mut("secret").map(Value::take) {
            Some(Value::String(s)) => Sensitive::new(s),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "the body must be {\"secret\": \"...\"}: the credential as a string",
                );
            }
        },
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the body must be {\"secret\": \"...\"}: the credential as a string",
            );
        }
    };
    call.run(move |m, who| {
        m.team_set_connection_secret(who, &name, secret)?;
        Ok(json!({"connection": name, "secret": "stored"}))
    })
    .await
}

#[derive(Deserialize)]
struct McpServerBody {
    name: String,
    /// The remote server's Streamable HTTP URL.
    url: String,
    /// Where its credential (the body's `secret`, kept in the server's keychain) goes:
    /// `bearer`, `basic`, `header:NAME` or `query:NAME`.
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    trust_floor: Option<String>,
    #[serde(default)]
    call_timeout_secs: Option<u32>,
    #[serde(default)]
    audit_arguments: bool,
}

async fn add_mcp_server(call: MemberCall, req: Request) -> Response {
    // The credential is taken out before the rest is parsed, so that no parser message can
    // quote it back.
    let (_, mut raw) = match body_json::<Value>(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let secret = match raw.as_object_mut().and_then(|o| o.remove("secret")) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(Sensitive::new(s)),
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "secret must be the MCP server's credential as a string",
            );
        }
    };
    let body: McpServerBody = match serde_json::from_value(raw) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("the request body is not the JSON this route takes ({e})"),
            );
        }
    };
    let floor = match trust_floor(body.trust_floor.as_deref()) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let auth = match body.auth.as_deref().map(str::parse::<CredentialPlacement>) {
        None => None,
        Some(Ok(a)) => Some(a),
        Some(Err(e)) => return core_error(&e),
    };
    call.run(move |m, who| {
        to_json(m.team_add_mcp_server(
            who,
            NewMcpServer {
                name: body.name,
                transport: McpTransport::Http { url: body.url },
                env: Vec::new(),
                secret_env: Vec::new(),
                http_secret: secret,
                auth,
                trust_floor: floor,
                call_timeout_secs: body.call_timeout_secs,
                audit_arguments: body.audit_arguments,
            },
        )?)
    })
    .await
}
