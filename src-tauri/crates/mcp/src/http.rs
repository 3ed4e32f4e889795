//! The Streamable HTTP side of the gateway: `/mcp/{server}` sessions on the local endpoint.
//!
//! Each session is one agent talking to one server: a local one started for the session with
//! its secrets from the keychain and stopped when the session ends, or a remote one reached
//! with its own credential (`crate::remote`). Inside, it is the same relay
//! as `mandate mcp run` ([`crate::bridge::relay`]): the HTTP side writes each POSTed message
//! into the relay's client end and waits for the answer with that id, so the gate, the masking,
//! the list filtering and the audit are exactly the bridge's. Answers are plain JSON
//! (`application/json`), which the transport allows in place of an event stream; messages the
//! server sends on its own (progress, logging, list changes, sampling requests) are not
//! delivered, since there is no `GET` stream.
//!
//! Sessions are bound to the agent whose token created them: a request for a session with
//! another agent's token finds no session. At most [`MAX_SESSIONS`] run at once; one idle for
//! [`IDLE`] is ended when the next session starts.
//!
//! What it is not: HTTP or authentication. The endpoint (`mandate-server`'s `mcp.rs`) checks
//! the token, its audience and its DPoP proof, and maps [`Answer`] to a response.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mandate_core::Mandate;
use mandate_core::mcp::{McpCall, McpDenial, McpSession, Need};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

use crate::bridge::{self, RelayOptions};
use crate::gate::{self, codes};
use crate::mask::Needles;
use crate::message::{self, Invalid, Message};

/// Most sessions at once.
pub const MAX_SESSIONS: usize = 64;
/// A session unused this long is ended when a new one starts.
pub const IDLE: Duration = Duration::from_secs(15 * 60);

/// What to answer an HTTP request with.
#[derive(Debug)]
pub struct Answer {
    /// 200 with a JSON body, 202 (accepted, no body), 400, 404, 503.
    pub status: u16,
    pub body: Option<String>,
    /// The session the request belongs to (`Mcp-Session-Id`).
    pub session: Option<String>,
}

impl Answer {
    fn json(status: u16, body: String, session: Option<String>) -> Self {
        Answer {
            status,
            body: Some(body),
            session,
        }
    }
}

struct Session {
    agent_id: String,
    server: String,
    mcp: Arc<McpSession>,
    to_relay: mpsc::UnboundedSender<String>,
    waiters: Arc<Mutex<HashMap<String, oneshot::Sender<String>>>>,
    last_used: Mutex<Instant>,
    timeout: Duration,
}

/// Every running session of one endpoint.
#[derive(Default)]
pub struct HttpGateway {
    sessions: Mutex<HashMap<String, Arc<Session>>>,
}

impl std::fmt::Debug for HttpGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpGateway").finish_non_exhaustive()
    }
}

fn key_of(id: &serde_json::value::RawValue) -> String {
    serde_json::from_str::<serde_json::Value>(id.get())
        .ok()
        .and_then(|v| serde_json_canonicalizer::to_string(&v).ok())
        .unwrap_or_else(|| id.get().to_string())
}

impl HttpGateway {
    pub fn new() -> Self {
        HttpGateway::default()
    }

    /// The session `id` of `agent_id` on `server`, if it runs.
    fn find(&self, id: &str, agent_id: &str, server: &str) -> Option<Arc<Session>> {
        let s = self.sessions.lock().ok()?.get(id).cloned()?;
        (s.agent_id == agent_id && s.server == server).then_some(s)
    }

    /// End a session (the client's DELETE): the server's input closes and it is stopped.
    pub fn end(&self, id: &str, agent_id: &str, server: &str) -> bool {
        if self.find(id, agent_id, server).is_none() {
            return false;
        }
        self.sessions
            .lock()
            .map(|mut s| s.remove(id).is_some())
            .unwrap_or(false)
    }

    /// Start a session: the server process and the relay.
    fn start(&self, mcp: McpSession) -> Result<(String, Arc<Session>), Answer> {
        let busy = |msg: &str| {
            Answer::json(
                503,
                gate::error_response(None, codes::INTERNAL_ERROR, msg, None),
                None,
            )
        };
        if let Ok(mut all) = self.sessions.lock() {
            all.retain(|_, s| {
                s.last_used
                    .lock()
                    .map(|t| t.elapsed() < IDLE)
                    .unwrap_or(false)
            });
            if all.len() >= MAX_SESSIONS {
                return Err(busy(
                    "too many MCP sessions are open; end one (DELETE) or retry later",
                ));
            }
        }
        let m: Arc<Mandate> = mcp.mandate().clone();
        let server = m
            .get_mcp_server(mcp.server())
            .map_err(|e| busy(&e.to_string()))?;
        let (client_in_w, client_in_r) = tokio::io::duplex(256 * 1024);
        let (client_out_w, client_out_r) = tokio::io::duplex(256 * 1024);
        let mcp = Arc::new(mcp);
        let timeout = Duration::from_secs(u64::from(server.call_timeout_secs));
        let opts = RelayOptions {
            call_timeout: timeout,
            ..RelayOptions::default()
        };
        let relay_session = mcp.clone();
        if matches!(
            server.transport,
            mandate_core::mcp::McpTransport::Http { .. }
        ) {
            let (server_in, server_out, needles) =
                crate::remote::connect(&m, mcp.server()).map_err(|e| busy(&e.to_string()))?;
            tokio::spawn(async move {
                let _ = bridge::relay(
                    relay_session,
                    client_in_r,
                    client_out_w,
                    server_in,
                    server_out,
                    needles,
                    opts,
                )
                .await;
            });
        } else {
            let (mut cmd, secrets) =
                crate::stdio::command(&m, mcp.server()).map_err(|e| busy(&e.to_string()))?;
            let mut child = cmd.spawn().map_err(|e| {
                busy(&format!(
                    "could not start the MCP server '{}': {e}",
                    server.name
                ))
            })?;
            let (Some(stdin), Some(stdout), Some(stderr)) =
                (child.stdin.take(), child.stdout.take(), child.stderr.take())
            else {
                return Err(busy("the server's standard streams could not be opened"));
            };
            tokio::spawn(crate::stdio::relay_stderr(
                stderr,
                Needles::new(secrets.iter()),
            ));
            let needles = Needles::new(secrets.iter());
            tokio::spawn(async move {
                let _ = bridge::relay(
                    relay_session,
                    client_in_r,
                    client_out_w,
                    stdin,
                    stdout,
                    needles,
                    opts,
                )
                .await;
                if tokio::time::timeout(Duration::from_secs(2), child.wait())
                    .await
                    .is_err()
                {
                    let _ = child.kill().await;
                }
            });
        }
        // Lines for the relay's client end.
        let (to_relay, mut rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            let mut w = client_in_w;
            while let Some(mut line) = rx.recv().await {
                line.push('\n');
                if w.write_all(line.as_bytes()).await.is_err() || w.flush().await.is_err() {
                    break;
                }
            }
            let _ = w.shutdown().await;
        });
        // Answers from the relay, to whoever waits for their id.
        let waiters: Arc<Mutex<HashMap<String, oneshot::Sender<String>>>> = Arc::default();
        let w2 = waiters.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(client_out_r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(Message::Response { id, .. }) = message::parse(&line) {
                    let tx = w2.lock().ok().and_then(|mut w| w.remove(&key_of(&id)));
                    if let Some(tx) = tx {
                        let _ = tx.send(line);
                    }
                }
                // Messages the server sends on its own have no stream to go to.
            }
            // The relay ended: nobody will answer the rest.
            if let Ok(mut w) = w2.lock() {
                w.clear();
            }
        });
        let id = uuid_like();
        let s = Arc::new(Session {
            agent_id: mcp.agent_id().to_string(),
            server: mcp.server().to_string(),
            mcp,
            to_relay,
            waiters,
            last_used: Mutex::new(Instant::now()),
            timeout,
        });
        if let Ok(mut all) = self.sessions.lock() {
            all.insert(id.clone(), s.clone());
        }
        Ok((id, s))
    }

    /// Handle one POSTed message. `open` makes the session when the request names none (the
    /// endpoint has checked the token; the session is bound to its agent).
    pub async fn post(
        &self,
        session_id: Option<&str>,
        agent_id: &str,
        server: &str,
        open: impl FnOnce() -> Result<McpSession, mandate_core::Error>,
        token: mandate_core::oauth::resource::ResourceToken,
        body: &str,
    ) -> Answer {
        let (id, s) = match session_id {
            Some(sid) => match self.find(sid, agent_id, server) {
                Some(s) => (sid.to_string(), s),
                None => {
                    return Answer::json(
                        404,
                        gate::error_response(
                            None,
                            codes::INVALID_REQUEST,
                            "there is no such MCP session (it ended, or belongs to another agent); start a new one without Mcp-Session-Id",
                            None,
                        ),
                        None,
                    );
                }
            },
            None => {
                let mcp = match open() {
                    Ok(m) => m,
                    Err(e) => {
                        return Answer::json(
                            404,
                            gate::error_response(
                                None,
                                codes::INVALID_REQUEST,
                                &e.to_string(),
                                None,
                            ),
                            None,
                        );
                    }
                };
                match self.start(mcp) {
                    Ok(x) => x,
                    Err(a) => return a,
                }
            }
        };
        if let Ok(mut t) = s.last_used.lock() {
            *t = Instant::now();
        }
        s.mcp.use_token(token);
        let sid = Some(id);
        match message::parse(body) {
            Err(inv) => {
                let (rpc, code, msg, rid) = match inv {
                    Invalid::Parse(m) => (codes::PARSE_ERROR, "parse_error", m, None),
                    Invalid::Batch => (
                        codes::INVALID_REQUEST,
                        "batch_refused",
                        "JSON-RPC batches are not relayed (MCP removed them in 2025-06-18): send one message per request".to_string(),
                        None,
                    ),
                    Invalid::Request { reason, id } => (codes::INVALID_REQUEST, "invalid_request", reason, id),
                };
                let call = McpCall {
                    method: "(invalid)".into(),
                    need: Need::Nothing,
                    request_id: rid.as_ref().map(|i| i.get().chars().take(200).collect()),
                    arguments_sha256: None,
                    arguments: None,
                    bytes: body.len() as u64,
                };
                let d = s
                    .mcp
                    .refuse(
                        &call,
                        McpDenial {
                            code,
                            message: msg,
                            scope: None,
                            trust_gate: false,
                        },
                    )
                    .await;
                Answer::json(
                    400,
                    gate::error_response(
                        rid.as_deref(),
                        rpc,
                        &d.message,
                        Some(json!({"mandate_error": d.code})),
                    ),
                    sid,
                )
            }
            Ok(Message::Request { id, .. }) => {
                let (tx, rx) = oneshot::channel();
                let key = key_of(&id);
                let taken = s
                    .waiters
                    .lock()
                    .map(|mut w| {
                        if w.contains_key(&key) {
                            true
                        } else {
                            w.insert(key.clone(), tx);
                            false
                        }
                    })
                    .unwrap_or(true);
                if taken {
                    return Answer::json(
                        400,
                        gate::error_response(
                            Some(&id),
                            codes::INVALID_REQUEST,
                            "a request with this id is still waiting for its answer; use a new id",
                            None,
                        ),
                        sid,
                    );
                }
                let _ = s.to_relay.send(body.to_string());
                // The relay answers every request (its own timeout ends a call); this bound
                // only covers a relay that ended.
                match tokio::time::timeout(s.timeout + Duration::from_secs(5), rx).await {
                    Ok(Ok(line)) => Answer::json(200, line, sid),
                    _ => {
                        if let Ok(mut w) = s.waiters.lock() {
                            w.remove(&key);
                        }
                        Answer::json(
                            503,
                            gate::error_response(
                                Some(&id),
                                codes::INTERNAL_ERROR,
                                &format!(
                                    "the MCP server '{}' ended before answering; start a new session",
                                    s.server
                                ),
                                None,
                            ),
                            sid,
                        )
                    }
                }
            }
            Ok(_) => {
                let _ = s.to_relay.send(body.to_string());
                Answer {
                    status: 202,
                    body: None,
                    session: sid,
                }
            }
        }
    }
}

/// A session id: a random (v4) UUID, as the transport wants it unguessable.
fn uuid_like() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
