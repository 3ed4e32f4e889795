//! Remote MCP servers (`mandate mcp add NAME --url URL`): the server's end of the relay as a
//! Streamable HTTP client, with the server's credential added to every request.
//!
//! [`connect`] returns a pair of byte streams that look to the relay (and to rmcp's client,
//! for reading the tools) exactly like a local server's standard input and output: each line
//! written is POSTed to the URL as one JSON-RPC message (`Accept: application/json,
//! text/event-stream`, the `Mcp-Session-Id` the server gave, the negotiated
//! `MCP-Protocol-Version`), and each message of the answer, a JSON body or the events of an
//! SSE stream (parsed by `sse-stream`), comes back as one line. The credential comes from the
//! keychain and is placed as the connection says (`bearer`, `header:NAME`, `basic`,
//! `query:NAME`) in a header marked sensitive; an HTTP failure answers the request with a
//! JSON-RPC error naming the status. When the relay closes its side, the session is ended with
//! a `DELETE`.
//!
//! What it is not: a GET event stream for messages the server sends on its own; those are not
//! received.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use mandate_core::broker::Injection;
use mandate_core::mcp::McpTransport;
use mandate_core::secret::Sensitive;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::mpsc;

use crate::gate::{self, codes};
use crate::mask::Needles;
use crate::message::{self, Message};
use crate::stdio::RunError;

/// The relay's ends of a remote server: (what the relay writes to, what it reads from), and
/// the spellings of the credential to mask.
pub type RemoteEnds = (DuplexStream, DuplexStream, Needles);

#[derive(Default)]
struct SessionState {
    id: Option<String>,
    protocol: Option<String>,
}

/// Connect to the remote server registered as `server`.
pub fn connect(mandate: &mandate_core::Mandate, server: &str) -> Result<RemoteEnds, RunError> {
    let s = mandate.get_mcp_server(server)?;
    let McpTransport::Http { url } = &s.transport else {
        return Err(RunError::Start(format!("'{}' is a local server", s.name)));
    };
    let placement = s.auth.clone().unwrap_or_default();
    let secret = if s.has_secret {
        mandate.connection_secret(s.name.as_str())?
    } else {
        None
    };
    let (injection, needles) = match &secret {
        Some(sec) => {
            let inj = placement.inject(sec);
            let n = inj.needles(sec);
            (
                Some(inj),
                Needles::new(n.iter().chain(std::iter::once(sec))),
            )
        }
        None => (None, Needles::default()),
    };
    drop(secret);
    let mut target = url.clone();
    let mut header: Option<(HeaderName, HeaderValue)> = None;
    match injection {
        Some(Injection::Header { name, value }) => {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| RunError::Start(format!("'{name}' is not a header name")))?;
            let mut v = HeaderValue::from_str(value.expose()).map_err(|_| {
                RunError::Start("the stored credential cannot be sent in a header".into())
            })?;
            v.set_sensitive(true);
            header = Some((n, v));
        }
        Some(Injection::Query { name, encoded }) => {
            let sep = if target.contains('?') { '&' } else { '?' };
            target = format!("{target}{sep}{name}={}", encoded.expose());
        }
        None => {}
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(u64::from(s.call_timeout_secs) + 5))
        .build()
        .map_err(|e| RunError::Start(format!("the HTTP client could not start: {e}")))?;
    let (relay_in, pump_in) = tokio::io::duplex(256 * 1024);
    let (pump_out, relay_out) = tokio::io::duplex(256 * 1024);
    let pump = Pump {
        client,
        url: Sensitive::new(target),
        header,
        state: Arc::new(Mutex::new(SessionState::default())),
    };
    tokio::spawn(pump.run(pump_in, pump_out));
    Ok((relay_in, relay_out, needles))
}

struct Pump {
    client: reqwest::Client,
    /// With a `query:` credential in it, hence sensitive.
    url: Sensitive<String>,
    header: Option<(HeaderName, HeaderValue)>,
    state: Arc<Mutex<SessionState>>,
}

impl Pump {
    fn request(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        let mut r = self.client.request(method, self.url.expose().as_str());
        if let Some((n, v)) = &self.header {
            r = r.header(n.clone(), v.clone());
        }
        if let Ok(st) = self.state.lock() {
            if let Some(id) = &st.id {
                r = r.header("mcp-session-id", id.as_str());
            }
            if let Some(p) = &st.protocol {
                r = r.header("mcp-protocol-version", p.as_str());
            }
        }
        r
    }

    async fn run(self, input: DuplexStream, output: DuplexStream) {
        let this = Arc::new(self);
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let writer = tokio::spawn(async move {
            let mut out = output;
            while let Some(mut line) = rx.recv().await {
                line.push('\n');
                if out.write_all(line.as_bytes()).await.is_err() || out.flush().await.is_err() {
                    break;
                }
            }
        });
        let mut lines = BufReader::new(input).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let p = this.clone();
            let tx = tx.clone();
            // Each message is its own POST, so a slow call does not hold up the next.
            tokio::spawn(async move { p.post(line, tx).await });
        }
        // The relay is done: end the remote session.
        let has_session = this.state.lock().map(|s| s.id.is_some()).unwrap_or(false);
        if has_session {
            let _ = this.request(reqwest::Method::DELETE).send().await;
        }
        drop(tx);
        let _ = writer.await;
    }

    async fn post(&self, line: String, tx: mpsc::UnboundedSender<String>) {
        let parsed = message::parse(&line);
        let (id, is_init) = match &parsed {
            Ok(Message::Request { id, method, .. }) => (Some(id.clone()), method == "initialize"),
            _ => (None, false),
        };
        let fail = |why: String| {
            if let Some(id) = &id {
                let _ = tx.send(gate::error_response(
                    Some(id),
                    codes::INTERNAL_ERROR,
                    &why,
                    Some(json!({"mandate_error": "remote_failed"})),
                ));
            }
        };
        let resp = self
            .request(reqwest::Method::POST)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream")
            .body(line)
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                return fail(format!(
                    "the remote MCP server could not be reached: {}",
                    e.without_url()
                ));
            }
        };
        if let Some(sid) = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            && let Ok(mut st) = self.state.lock()
        {
            st.id = Some(sid.to_string());
        }
        let status = resp.status();
        if status == reqwest::StatusCode::ACCEPTED {
            return;
        }
        if !status.is_success() {
            return fail(format!(
                "the remote MCP server answered HTTP {}{}",
                status.as_u16(),
                if status == reqwest::StatusCode::UNAUTHORIZED
                    || status == reqwest::StatusCode::FORBIDDEN
                {
                    "; check its credential (`mandate mcp edit NAME --credential`)"
                } else {
                    ""
                }
            ));
        }
        let sse = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let emit = |data: &str| {
            // One message per line: re-serialised compactly (an answer may be pretty-printed).
            match serde_json::from_str::<serde_json::Value>(data) {
                Ok(v) => {
                    if is_init
                        && let Some(p) = v["result"]["protocolVersion"].as_str()
                        && let Ok(mut st) = self.state.lock()
                    {
                        st.protocol = Some(p.to_string());
                    }
                    let _ = tx.send(v.to_string());
                }
                Err(_) => tracing::warn!("the remote MCP server sent something that is not JSON"),
            }
        };
        if sse {
            let mut events = sse_stream::SseByteStream::new(resp.bytes_stream());
            while let Some(ev) = events.next().await {
                match ev {
                    Ok(e) => {
                        if let Some(d) = e.data.as_deref().filter(|d| !d.trim().is_empty()) {
                            emit(d);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the remote MCP server's event stream broke");
                        break;
                    }
                }
            }
        } else {
            match resp.text().await {
                Ok(body) if !body.trim().is_empty() => emit(&body),
                Ok(_) => {}
                Err(e) => fail(format!(
                    "the remote MCP server's answer could not be read: {}",
                    e.without_url()
                )),
            }
        }
    }
}
