//! The relay between an MCP client and an MCP server, with the gate in the middle.
//!
//! Messages are newline-delimited JSON (the MCP stdio transport), split by rmcp's
//! `JsonRpcMessageCodec` with a size limit per message. From the client, each message is
//! parsed (`message`), classified (`gate`) and decided (`McpSession::authorize`) before it is
//! passed on; a refusal is answered to the client with a JSON-RPC error and never reaches the
//! server. From the server, each message is masked for the server's own secrets (`mask`);
//! answers to `tools/list` and `prompts/list` are filtered to what the agent holds, and the
//! answer to each allowed call is audited (`mcp.tool_completed`: `isError`, bytes, latency).
//!
//! Every allowed call ends in exactly one completion event, whichever comes first: the
//! server's answer, the call's timeout (the client gets an error, the server a
//! `notifications/cancelled`), the server's exit, or the client's. The relay waits for every
//! audit write before it returns, so none is lost when either side goes away.
//!
//! Generic over the four byte streams, so it runs on a process's stdin/stdout and a child's
//! pipes (`stdio`) as well as on in-memory pipes in tests. What it is not: a process manager
//! (`stdio` starts and stops the server).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mandate_core::mcp::{McpCall, McpCallOutcome, McpDenial, McpPermit, McpSession, Need};
use rmcp::transport::async_rw::{JsonRpcMessageCodec, JsonRpcMessageCodecError};
use serde_json::json;
use serde_json::value::RawValue;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::codec::Decoder;
use tokio_util::task::TaskTracker;

use crate::gate::{self, ListKind, codes};
use crate::mask::Needles;
use crate::message::{self, Invalid, Message};

/// Largest message a client may send (a tool's arguments can hold a file).
pub const MAX_CLIENT_MESSAGE: usize = 4 * 1024 * 1024;
/// Largest message relayed from a server (rmcp's own default).
pub const MAX_SERVER_MESSAGE: usize = 16 * 1024 * 1024;

/// How the relay behaves.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    pub max_client_message: usize,
    pub max_server_message: usize,
    /// Longest wait for the server's answer to one request.
    pub call_timeout: Duration,
}

impl Default for RelayOptions {
    fn default() -> Self {
        RelayOptions {
            max_client_message: MAX_CLIENT_MESSAGE,
            max_server_message: MAX_SERVER_MESSAGE,
            call_timeout: Duration::from_secs(120),
        }
    }
}

/// Which side ended the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayEnd {
    /// The client closed its side (or its stream failed).
    ClientClosed,
    /// The server closed its output (it exited or crashed).
    ServerClosed,
}

/// A request passed to the server and not yet answered.
struct Pending {
    id: Box<RawValue>,
    permit: McpPermit,
    list: Option<ListKind>,
    started: Instant,
}

/// The key of a pending request: its id in RFC 8785 form, so `1` and `1.0` (which a server in
/// JavaScript echoes as `1`) are the same request.
fn id_key(id: &RawValue) -> String {
    serde_json::from_str::<serde_json::Value>(id.get())
        .ok()
        .and_then(|v| serde_json_canonicalizer::to_string(&v).ok())
        .unwrap_or_else(|| id.get().to_string())
}

struct Shared {
    session: Arc<McpSession>,
    pending: Mutex<HashMap<String, Pending>>,
    to_client: mpsc::UnboundedSender<String>,
    to_server: mpsc::UnboundedSender<String>,
    audits: TaskTracker,
    server_name: String,
}

impl Shared {
    fn take(&self, key: &str) -> Option<Pending> {
        self.pending.lock().ok()?.remove(key)
    }

    fn take_all(&self) -> Vec<Pending> {
        self.pending
            .lock()
            .map(|mut p| p.drain().map(|(_, v)| v).collect())
            .unwrap_or_default()
    }

    fn send_client(&self, line: String) {
        let _ = self.to_client.send(line);
    }

    /// Audit how a call ended, on a task the relay waits for before it returns.
    fn complete(
        &self,
        p: &Pending,
        result: &'static str,
        is_error: Option<bool>,
        error_code: Option<i64>,
        bytes: u64,
    ) {
        if p.permit.scope.is_none() {
            return;
        }
        let outcome = McpCallOutcome {
            result,
            is_error,
            error_code,
            bytes,
            latency_ms: u64::try_from(p.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        let session = self.session.clone();
        let permit = p.permit.clone();
        self.audits.spawn(async move {
            if let Err(e) = session.record_outcome(&permit, &outcome).await {
                tracing::error!(error = %e, "the MCP gateway could not audit how a call ended");
            }
        });
    }
}

fn call_of(method: &str, id: Option<&RawValue>, need: Need, bytes: usize) -> McpCall {
    McpCall {
        method: method
            .chars()
            .take(128)
            .collect::<String>()
            .escape_default()
            .to_string(),
        need,
        request_id: id.map(|i| i.get().chars().take(200).collect()),
        arguments_sha256: None,
        arguments: None,
        bytes: bytes as u64,
    }
}

fn denial_response(id: Option<&RawValue>, d: &McpDenial) -> String {
    let code = if d.code == "temporarily_unavailable" {
        codes::INTERNAL_ERROR
    } else {
        codes::REFUSED
    };
    let mut data = json!({"mandate_error": d.code});
    if let Some(s) = &d.scope {
        data["missing_scope"] = json!(s);
    }
    gate::error_response(id, code, &d.message, Some(data))
}

/// Relay between a client (`client_in`/`client_out`) and a server (`server_out` is what the
/// server writes, `server_in` what it reads) until one side closes. Returns after every
/// audit event of the session is durable.
pub async fn relay<CI, CO, SI, SO>(
    session: Arc<McpSession>,
    client_in: CI,
    client_out: CO,
    server_in: SI,
    server_out: SO,
    needles: Needles,
    opts: RelayOptions,
) -> RelayEnd
where
    CI: AsyncRead + Unpin + Send + 'static,
    CO: AsyncWrite + Unpin + Send + 'static,
    SI: AsyncWrite + Unpin + Send + 'static,
    SO: AsyncRead + Unpin + Send + 'static,
{
    let (to_client, client_rx) = mpsc::unbounded_channel::<String>();
    let (to_server, server_rx) = mpsc::unbounded_channel::<String>();
    let client_writer = tokio::spawn(write_lines(client_out, client_rx));
    let server_writer = tokio::spawn(write_lines(server_in, server_rx));
    let shared = Arc::new(Shared {
        server_name: session.server().to_string(),
        session,
        pending: Mutex::new(HashMap::new()),
        to_client,
        to_server,
        audits: TaskTracker::new(),
    });
    let mut server_task = tokio::spawn(from_server(
        shared.clone(),
        server_out,
        needles,
        opts.max_server_message,
    ));
    let client_task = from_client(shared.clone(), client_in, &opts);
    tokio::pin!(client_task);
    let end = tokio::select! {
        _ = &mut client_task => {
            for p in shared.take_all() {
                shared.complete(&p, "client_disconnected", None, None, 0);
            }
            server_task.abort();
            RelayEnd::ClientClosed
        }
        _ = &mut server_task => RelayEnd::ServerClosed,
    };
    shared.audits.close();
    shared.audits.wait().await;
    // An empty line tells a writer to write out what is queued, then close its side (the
    // server's standard input closes, which asks it to exit).
    shared.send_client(String::new());
    let _ = shared.to_server.send(String::new());
    let _ = tokio::time::timeout(Duration::from_secs(2), server_writer).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), client_writer).await;
    end
}

async fn write_lines<W: AsyncWrite + Unpin>(mut w: W, mut rx: mpsc::UnboundedReceiver<String>) {
    'outer: while let Some(line) = rx.recv().await {
        let mut next = Some(line);
        // Write out everything already queued, then flush once.
        while let Some(mut l) = next.take() {
            if l.is_empty() {
                break 'outer;
            }
            l.push('\n');
            if w.write_all(l.as_bytes()).await.is_err() {
                return;
            }
            next = rx.try_recv().ok();
        }
        if w.flush().await.is_err() {
            return;
        }
    }
    let _ = w.flush().await;
    let _ = w.shutdown().await;
}

/// What a decoded line turned out to be.
enum Line {
    Text(String),
    Oversized,
    NotJson,
}

/// Split a stream into lines with rmcp's codec (limit, `\r\n`, BOM); each line comes back as
/// its text. Keeps going after a bad line.
struct Lines<R> {
    reader: R,
    buf: BytesMut,
    codec: JsonRpcMessageCodec<Box<RawValue>>,
    eof: bool,
}

impl<R: AsyncRead + Unpin> Lines<R> {
    fn new(reader: R, max: usize) -> Self {
        Lines {
            reader,
            buf: BytesMut::with_capacity(8 * 1024),
            codec: JsonRpcMessageCodec::new_with_max_length(max),
            eof: false,
        }
    }

    async fn next(&mut self) -> Option<Line> {
        loop {
            let decoded = if self.eof {
                self.codec.decode_eof(&mut self.buf)
            } else {
                self.codec.decode(&mut self.buf)
            };
            match decoded {
                Ok(Some(raw)) => return Some(Line::Text(raw.get().to_string())),
                Ok(None) if self.eof => return None,
                Ok(None) => {}
                Err(JsonRpcMessageCodecError::MaxLineLengthExceeded) => {
                    return Some(Line::Oversized);
                }
                Err(JsonRpcMessageCodecError::Serde(_)) => return Some(Line::NotJson),
                Err(_) => return None,
            }
            match self.reader.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => self.eof = true,
                Ok(_) => {}
            }
        }
    }
}

async fn from_client<R: AsyncRead + Unpin>(shared: Arc<Shared>, reader: R, opts: &RelayOptions) {
    let mut lines = Lines::new(reader, opts.max_client_message);
    while let Some(line) = lines.next().await {
        let session = &shared.session;
        let text = match line {
            Line::Text(t) => t,
            Line::Oversized => {
                let msg = format!(
                    "the message is larger than {} bytes, the gateway's limit; it was not passed on",
                    opts.max_client_message
                );
                let d = session
                    .refuse(
                        &call_of("(oversized)", None, Need::Nothing, opts.max_client_message),
                        McpDenial {
                            code: "message_too_large",
                            message: msg.clone(),
                            scope: None,
                            trust_gate: false,
                        },
                    )
                    .await;
                shared.send_client(gate::error_response(
                    None,
                    codes::INVALID_REQUEST,
                    &d.message,
                    Some(json!({"mandate_error": d.code})),
                ));
                continue;
            }
            Line::NotJson => {
                let d = session
                    .refuse(
                        &call_of("(not json)", None, Need::Nothing, 0),
                        McpDenial {
                            code: "parse_error",
                            message: "the message is not valid JSON; it was not passed on".into(),
                            scope: None,
                            trust_gate: false,
                        },
                    )
                    .await;
                shared.send_client(gate::error_response(
                    None,
                    codes::PARSE_ERROR,
                    &d.message,
                    Some(json!({"mandate_error": d.code})),
                ));
                continue;
            }
        };
        let bytes = text.len();
        match message::parse(&text) {
            Err(inv) => {
                let (rpc, code, msg, id) = match inv {
                    Invalid::Parse(m) => (codes::PARSE_ERROR, "parse_error", m, None),
                    Invalid::Batch => (
                        codes::INVALID_REQUEST,
                        "batch_refused",
                        "JSON-RPC batches are not relayed (MCP removed them in 2025-06-18): send \
                         one message per line"
                            .to_string(),
                        None,
                    ),
                    Invalid::Request { reason, id } => {
                        (codes::INVALID_REQUEST, "invalid_request", reason, id)
                    }
                };
                let d = session
                    .refuse(
                        &call_of("(invalid)", id.as_deref(), Need::Nothing, bytes),
                        McpDenial {
                            code,
                            message: msg,
                            scope: None,
                            trust_gate: false,
                        },
                    )
                    .await;
                shared.send_client(gate::error_response(
                    id.as_deref(),
                    rpc,
                    &d.message,
                    Some(json!({"mandate_error": d.code})),
                ));
            }
            Ok(Message::Request { id, method, params }) => {
                let classified = match gate::classify_request(&method, params.as_deref()) {
                    Ok(c) => c,
                    Err(r) => {
                        let d = session
                            .refuse(
                                &call_of(&method, Some(&id), Need::Nothing, bytes),
                                McpDenial {
                                    code: r.code,
                                    message: r.message,
                                    scope: None,
                                    trust_gate: false,
                                },
                            )
                            .await;
                        shared.send_client(gate::error_response(
                            Some(&id),
                            r.rpc_code,
                            &d.message,
                            Some(json!({"mandate_error": d.code})),
                        ));
                        continue;
                    }
                };
                let key = id_key(&id);
                let in_use = shared
                    .pending
                    .lock()
                    .map(|p| p.contains_key(&key))
                    .unwrap_or(true);
                if in_use {
                    shared.send_client(gate::error_response(
                        Some(&id),
                        codes::INVALID_REQUEST,
                        "a request with this id is still waiting for its answer; use a new id",
                        None,
                    ));
                    continue;
                }
                let mut call = call_of(&method, Some(&id), classified.need.clone(), bytes);
                call.arguments_sha256 = classified.arguments_sha256.clone();
                call.arguments = classified.arguments.clone();
                match session.authorize(&call).await {
                    Err(d) => shared.send_client(denial_response(Some(&id), &d)),
                    Ok(permit) => {
                        let timed = permit.scope.is_some();
                        if let Ok(mut p) = shared.pending.lock() {
                            p.insert(
                                key.clone(),
                                Pending {
                                    id: id.clone(),
                                    permit,
                                    list: classified.list,
                                    started: Instant::now(),
                                },
                            );
                        }
                        let _ = shared.to_server.send(text);
                        if timed {
                            tokio::spawn(time_out(shared.clone(), key, opts.call_timeout));
                        }
                    }
                }
            }
            Ok(Message::Notification { method, .. }) => {
                if gate::notification_passes(&method) {
                    let _ = shared.to_server.send(text);
                } else {
                    let _ = session
                        .refuse(
                            &call_of(&method, None, Need::Nothing, bytes),
                            McpDenial {
                                code: "method_not_relayed",
                                message: format!(
                                    "Mandate's MCP gateway does not pass the notification '{}' to the server",
                                    method.escape_default()
                                ),
                                scope: None,
                                trust_gate: false,
                            },
                        )
                        .await;
                }
            }
            // An answer to one of the server's requests (sampling, roots, elicitation).
            Ok(Message::Response { .. }) => {
                let _ = shared.to_server.send(text);
            }
        }
    }
}

async fn time_out(shared: Arc<Shared>, key: String, after: Duration) {
    tokio::time::sleep(after).await;
    let Some(p) = shared.take(&key) else { return };
    let secs = after.as_secs();
    shared.send_client(gate::error_response(
        Some(&p.id),
        codes::INTERNAL_ERROR,
        &format!(
            "the MCP server '{}' did not answer within {secs} s, so Mandate gave up on this call \
             (the server was asked to cancel it); a person can raise the limit with `mandate mcp \
             edit {} --call-timeout N`",
            shared.server_name, shared.server_name
        ),
        Some(json!({"mandate_error": "timeout"})),
    ));
    let cancel = json!({
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": serde_json::from_str::<serde_json::Value>(p.id.get()).unwrap_or_default(), "reason": "timed out at the gateway"}
    });
    let _ = shared.to_server.send(cancel.to_string());
    shared.complete(&p, "timeout", None, None, 0);
}

async fn from_server<R: AsyncRead + Unpin>(
    shared: Arc<Shared>,
    reader: R,
    needles: Needles,
    max: usize,
) {
    let mut lines = Lines::new(reader, max);
    while let Some(line) = lines.next().await {
        let mut text = match line {
            Line::Text(t) => t,
            Line::Oversized => {
                tracing::warn!(server = %shared.server_name, max, "the server sent a message larger than the limit; dropped");
                continue;
            }
            Line::NotJson => {
                tracing::warn!(server = %shared.server_name, "the server sent a line that is not JSON; dropped");
                continue;
            }
        };
        needles.mask(&mut text);
        match message::parse(&text) {
            Ok(Message::Response { id, result, error }) => {
                let Some(p) = shared.take(&id_key(&id)) else {
                    tracing::debug!("an answer to a request that is no longer waiting; dropped");
                    continue;
                };
                let out = match (p.list, &result) {
                    (Some(kind), Some(r)) => {
                        let granted: BTreeSet<String> =
                            shared.session.granted_actions().into_iter().collect();
                        match gate::filter_list(r, kind, &granted) {
                            Some(filtered) => gate::result_response(&id, &filtered),
                            None => gate::error_response(
                                Some(&id),
                                codes::INTERNAL_ERROR,
                                "the server's answer to this list is not a list; Mandate did not pass it on",
                                None,
                            ),
                        }
                    }
                    _ => text,
                };
                let (result_s, is_error, code) =
                    gate::outcome_of(result.as_deref(), error.as_deref());
                shared.complete(&p, result_s, is_error, code, out.len() as u64);
                shared.send_client(out);
            }
            Ok(_) => shared.send_client(text),
            Err(_) => {
                tracing::warn!(server = %shared.server_name, "the server sent something that is not a JSON-RPC message; dropped");
            }
        }
    }
    // The server is gone: every waiting request gets an answer and an audit event.
    for p in shared.take_all() {
        shared.send_client(gate::error_response(
            Some(&p.id),
            codes::INTERNAL_ERROR,
            &format!(
                "the MCP server '{}' exited before answering; the client may start it again",
                shared.server_name
            ),
            Some(json!({"mandate_error": "server_exited"})),
        ));
        shared.complete(&p, "server_exited", None, None, 0);
    }
}
