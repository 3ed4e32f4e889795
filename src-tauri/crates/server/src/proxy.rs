//! The secret broker's HTTP side: `/proxy/{connection}/{path...}` forwards an agent's call to
//! the connection's API with the real credential added, and returns the upstream response.
//!
//! Every decision is the core's ([`mandate_core::broker::Broker::authorize`]); this module
//! owns only HTTP:
//!
//! - **Request**: the method, the raw path (never decoded or "cleaned" here: the core refuses
//!   tricks instead of repairing them) and the query go to base URL + path + query, nothing
//!   else. Inbound `Authorization`, `DPoP`, `Cookie`, `Proxy-Authorization`, `Host`,
//!   `Forwarded`/`X-Forwarded-*`, `Sec-Fetch-*`, hop-by-hop headers (and any named in
//!   `Connection`) and the agent's own copy of the credential header are dropped; the
//!   credential is set with `HeaderValue::set_sensitive`. `Accept-Encoding: identity` is sent
//!   so that the response can be checked for echoes of the credential. Bodies stream both
//!   ways; a request body over the limit (`ServeOptions::max_proxy_body`, 32 MiB by default)
//!   is answered 413, before authorization when its length is declared, or by cutting the
//!   upstream request off when it is streamed past the limit.
//! - **Upstream**: reqwest, no redirects followed (a 3xx goes back to the agent, its
//!   `Location` mapped onto the proxy when it points under the base URL), 10 s to connect,
//!   [`READ_TIMEOUT`] between reads.
//! - **Response**: hop-by-hop headers and `Set-Cookie` are dropped. Set-Cookie is dropped on
//!   purpose: a cookie the upstream sets is a session minted for the *real* credential, and
//!   handing it to the agent would give it a credential that bypasses the broker. Any echo of
//!   the credential (raw, as the header value sent, base64 for basic, encoded for query) in a
//!   response header or body is overwritten with `*` of the same length (so `Content-Length`
//!   stays right), across chunk boundaries.
//! - **Audit**: the core writes `proxy.allowed` (before anything leaves) or `proxy.denied`;
//!   this module adds `proxy.completed` (status, bytes, latency, how it ended) when the
//!   response body ends, fails, or the agent hangs up.
//!
//! What it is not: a general forward proxy. It reaches only registered connections' base
//! URLs, and never reads a credential from the agent.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use futures_util::{Stream, StreamExt};
use mandate_core::Mandate;
use mandate_core::broker::{Broker, CallOutcome, CallRecord, Denial, Injection, ProxyRequest};
use mandate_core::secret::Sensitive;

use crate::AppState;

/// Longest wait between two reads from the upstream (an LLM may think for minutes).
pub const READ_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest wait for the upstream's TCP/TLS connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Headers never forwarded in either direction (RFC 9110 §7.6.1 hop-by-hop, and proxy ones).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Agent headers that never reach the upstream.
const STRIP_INBOUND: [&str; 9] = [
    "host",
    "mandate-approval",
    "authorization",
    "dpop",
    "cookie",
    "forwarded",
    "accept-encoding",
    "origin",
    "referer",
];

/// Upstream headers that never reach the agent.
const STRIP_OUTBOUND: [&str; 2] = ["set-cookie", "set-cookie2"];

/// What the proxy routes share.
#[derive(Debug)]
struct ProxyState {
    app: Arc<AppState>,
    broker: Broker,
    client: Option<reqwest::Client>,
}

/// The `/proxy/...` routes, to merge into the endpoint's router (inside its guard).
/// How long a call that needs a person's approval is held: `MANDATE_APPROVAL_HOLD_SECS`
/// (0 to 600), else 60 s.
fn approval_hold() -> std::time::Duration {
    mandate_core::approvals::hold_from_env()
}

pub fn routes(app: Arc<AppState>) -> Router<Arc<AppState>> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .build()
        .map_err(|e| tracing::error!(error = %e.without_url(), "the broker's HTTP client could not start"))
        .ok();
    let state = Arc::new(ProxyState {
        app,
        broker: Broker::with_hold(approval_hold()),
        client,
    });
    Router::new()
        .route("/proxy/{*rest}", any(proxy))
        .with_state(state)
}

fn denial(d: &Denial) -> Response {
    let status = StatusCode::from_u16(d.status).unwrap_or(StatusCode::FORBIDDEN);
    let mut r = crate::plain_error(status, d.code, &d.description);
    if let Some(c) = d.challenge {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
    }
    if let Some(s) = d.retry_after
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    if let Some(id) = &d.approval
        && let Ok(v) = HeaderValue::from_str(id)
    {
        r.headers_mut().insert("mandate-approval", v);
    }
    r
}

/// Header values as secrets (they are tokens and proofs).
fn secrets(h: &HeaderMap, name: &str) -> Vec<Sensitive<String>> {
    h.get_all(name)
        .iter()
        .map(|v| Sensitive::new(String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect()
}

/// Names listed in `Connection` (also hop-by-hop).
fn connection_listed(h: &HeaderMap) -> Vec<String> {
    h.get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect()
}

async fn proxy(State(ps): State<Arc<ProxyState>>, req: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let full = parts.uri.path().to_string();
    let rest = full.strip_prefix("/proxy/").unwrap_or("");
    let (connection, raw_path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let preq = ProxyRequest {
        connection: connection.to_string(),
        method: parts.method.as_str().to_string(),
        raw_path: raw_path.to_string(),
        raw_query: parts.uri.query().map(String::from),
        url: crate::request_url(&ps.app, &parts.headers, &full),
        authorization: secrets(&parts.headers, "authorization"),
        dpop: secrets(&parts.headers, "dpop"),
        approval: parts
            .headers
            .get("mandate-approval")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().chars().take(64).collect()),
    };
    let proxy_base = format!("{}/proxy/{connection}", ps.app.base_url(&parts.headers));
    // A body declared larger than the limit is refused before anything else happens.
    let limit = ps.app.max_proxy_body;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return too_large(limit);
    }
    let st = ps.clone();
    let permit = match crate::blocking(move || st.broker.authorize(&st.app.service, &preq)).await {
        Ok(Ok(p)) => p,
        Ok(Err(d)) => return denial(&d),
        Err(r) => return r,
    };
    let mandate = ps.app.service.mandate().clone();
    let Some(client) = ps.client.clone() else {
        let outcome = outcome(None, 0, 0, started, "upstream_error");
        finish(mandate, permit.call, outcome).await;
        return crate::plain_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "the broker's HTTP client could not start; the logs say why",
        );
    };

    // The request: the agent's headers minus what must not pass, plus the credential.
    let mut drop_names: Vec<String> = connection_listed(&parts.headers);
    let mut headers = reqwest::header::HeaderMap::new();
    let inject_name = match &permit.injection {
        Injection::Header { name, .. } => Some(name.clone()),
        Injection::Query { .. } => None,
    };
    if let Some(n) = &inject_name {
        drop_names.push(n.clone());
    }
    for (name, value) in &parts.headers {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n)
            || STRIP_INBOUND.contains(&n)
            || n.starts_with("x-forwarded-")
            || n.starts_with("sec-fetch-")
            || drop_names.iter().any(|d| d == n)
        {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    if let Injection::Header { name, value } = &permit.injection {
        let (Ok(n), Ok(mut v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value.expose()),
        ) else {
            let outcome = outcome(None, 0, 0, started, "upstream_error");
            finish(mandate, permit.call, outcome).await;
            return crate::plain_error(
                StatusCode::BAD_GATEWAY,
                "credential_unusable",
                "the connection's credential cannot be sent as an HTTP header (it contains \
                 characters headers do not allow); store it again with `mandate connection \
                 set-secret`",
            );
        };
        v.set_sensitive(true);
        headers.insert(n, v);
    }
    let has_body = parts.headers.contains_key(header::CONTENT_LENGTH)
        || parts.headers.contains_key(header::TRANSFER_ENCODING);
    let sent = Arc::new(AtomicU64::new(0));
    let over_limit = Arc::new(AtomicBool::new(false));
    let mut rb = client
        .request(parts.method.clone(), permit.url.expose().as_str())
        .headers(headers);
    if has_body {
        let (counter, over) = (sent.clone(), over_limit.clone());
        // A streamed (chunked) body is cut off at the limit: the upstream sees the request
        // fail, never a whole body over the limit.
        type BoxError = Box<dyn std::error::Error + Send + Sync>;
        let stream = body
            .into_data_stream()
            .map(move |chunk| -> Result<_, BoxError> {
                let c = chunk.map_err(|e| -> BoxError { Box::new(e) })?;
                let total = counter.fetch_add(c.len() as u64, Ordering::Relaxed) + c.len() as u64;
                if total > limit {
                    over.store(true, Ordering::Relaxed);
                    return Err("the request body is larger than the broker's limit".into());
                }
                Ok(c)
            });
        rb = rb.body(reqwest::Body::wrap_stream(stream));
    }
    let upstream = match rb.send().await {
        Ok(r) => r,
        Err(_) if over_limit.load(Ordering::Relaxed) => {
            let o = outcome(
                None,
                sent.load(Ordering::Relaxed),
                0,
                started,
                "request_too_large",
            );
            finish(mandate, permit.call, o).await;
            return too_large(limit);
        }
        Err(e) => {
            // The error's text may hold the URL (and a query credential): never print it.
            let (status, code, result, why) = if e.is_timeout() {
                (
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream_timeout",
                    "upstream_timeout",
                    "the connection's API did not answer in time",
                )
            } else if e.is_connect() {
                (
                    StatusCode::BAD_GATEWAY,
                    "upstream_unreachable",
                    "upstream_unreachable",
                    "the connection's API could not be reached",
                )
            } else {
                (
                    StatusCode::BAD_GATEWAY,
                    "upstream_error",
                    "upstream_error",
                    "the call to the connection's API failed",
                )
            };
            let o = outcome(None, sent.load(Ordering::Relaxed), 0, started, result);
            finish(mandate, permit.call, o).await;
            return crate::plain_error(status, code, why);
        }
    };

    // The response: status, filtered and masked headers, masked streamed body.
    let status = upstream.status();
    let masker = Masker::new(&permit.needles);
    let mut out_headers = HeaderMap::new();
    let up_listed = connection_listed(upstream.headers());
    for (name, value) in upstream.headers() {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n)
            || STRIP_OUTBOUND.contains(&n)
            || up_listed.iter().any(|d| d == n)
        {
            continue;
        }
        let mut bytes = value.as_bytes().to_vec();
        masker.mask_in_place(&mut bytes);
        if n == "location" {
            bytes = map_location(&bytes, &permit.base_url, &proxy_base);
        }
        if let Ok(v) = HeaderValue::from_bytes(&bytes) {
            out_headers.append(name.clone(), v);
        }
    }
    let expected = upstream.content_length();
    let relay = Relay {
        expected,
        upstream_done: false,
        upstream: Box::pin(upstream.bytes_stream()),
        masker,
        received: 0,
        sent,
        started,
        status: status.as_u16(),
        finish: Some((mandate, permit.call)),
    };
    let mut resp = Body::from_stream(relay.into_stream()).into_response();
    *resp.status_mut() = status;
    *resp.headers_mut() = out_headers;
    resp
}

/// 413 for a body over the broker's limit (`ServeOptions::max_proxy_body`).
fn too_large(limit: u64) -> Response {
    crate::plain_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_request",
        &format!(
            "the request body is larger than the broker forwards ({limit} bytes); send less, or \
             raise the limit with `mandate serve --max-proxy-body` or MANDATE_PROXY_MAX_BODY"
        ),
    )
}

fn outcome(
    status: Option<u16>,
    sent: u64,
    received: u64,
    started: Instant,
    result: &'static str,
) -> CallOutcome {
    CallOutcome {
        status,
        bytes_sent: sent,
        bytes_received: received,
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        result,
    }
}

/// Write `proxy.completed`; a failure is logged (the call already happened). Through the
/// server's work permits like every other blocking write: unbounded, a burst of calls ending
/// at once each held a blocking-pool thread waiting for its commit (48 threads where the
/// permits allow 16, each with allocator caches of its own that outlived the burst).
async fn finish(m: Arc<Mandate>, call: CallRecord, o: CallOutcome) {
    let res = crate::blocking(move || m.record_proxy_outcome(&call, &o)).await;
    if !matches!(res, Ok(Ok(()))) {
        tracing::error!("the broker could not record how a call ended in the audit trail");
    }
}

/// A `Location` under the connection's base URL, mapped onto the proxy; others unchanged.
fn map_location(raw: &[u8], base_url: &str, proxy_base: &str) -> Vec<u8> {
    let Ok(loc) = std::str::from_utf8(raw) else {
        return raw.to_vec();
    };
    let base = base_url.trim_end_matches('/');
    let base_path = url::Url::parse(base)
        .map(|u| u.path().trim_end_matches('/').to_string())
        .unwrap_or_default();
    let tail = if let Some(t) = loc.strip_prefix(base) {
        Some(t)
    } else if loc.starts_with('/') && !loc.starts_with("//") {
        loc.strip_prefix(base_path.as_str())
    } else {
        None
    };
    match tail {
        Some(t) if t.is_empty() || t.starts_with('/') || t.starts_with('?') => {
            format!("{proxy_base}{t}").into_bytes()
        }
        _ => raw.to_vec(),
    }
}

/// Overwrites every occurrence of the credential's spellings with `*`, keeping the length.
struct Masker {
    needles: Vec<Sensitive<String>>,
    carry: Vec<u8>,
    keep: usize,
}

impl Masker {
    fn new(needles: &[Sensitive<String>]) -> Self {
        let keep = needles
            .iter()
            .map(|n| n.expose().len())
            .max()
            .unwrap_or(1)
            .saturating_sub(1);
        Masker {
            needles: needles.to_vec(),
            carry: Vec::new(),
            keep,
        }
    }

    fn mask_in_place(&self, buf: &mut [u8]) {
        for n in &self.needles {
            let n = n.expose().as_bytes();
            if n.is_empty() || buf.len() < n.len() {
                continue;
            }
            let mut i = 0;
            while i + n.len() <= buf.len() {
                if &buf[i..i + n.len()] == n {
                    buf[i..i + n.len()].fill(b'*');
                    i += n.len();
                } else {
                    i += 1;
                }
            }
        }
    }

    /// Take a chunk; return what can be released (the tail that could start a match waits).
    fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.needles.is_empty() {
            return chunk.to_vec();
        }
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(chunk);
        self.mask_in_place(&mut buf);
        let cut = buf.len().saturating_sub(self.keep);
        self.carry = buf.split_off(cut);
        buf
    }

    fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.carry)
    }
}

type Upstream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// The response body on its way to the agent; writes `proxy.completed` when it ends, fails,
/// or is dropped early (the agent hung up).
struct Relay {
    upstream: Upstream,
    masker: Masker,
    received: u64,
    sent: Arc<AtomicU64>,
    started: Instant,
    status: u16,
    /// The upstream's `Content-Length`, if it sent one.
    expected: Option<u64>,
    upstream_done: bool,
    finish: Option<(Arc<Mandate>, CallRecord)>,
}

impl Relay {
    async fn end(&mut self, result: &'static str) {
        if let Some((m, call)) = self.finish.take() {
            let o = outcome(
                Some(self.status),
                self.sent.load(Ordering::Relaxed),
                self.received,
                self.started,
                result,
            );
            finish(m, call, o).await;
        }
    }

    /// Whether the agent got the whole body (the upstream ended, or all the bytes its
    /// `Content-Length` announced were relayed: hyper may drop a length-framed body without
    /// polling it to its end).
    fn complete(&self) -> bool {
        self.upstream_done || self.expected.is_some_and(|n| n == self.received)
    }

    /// The body stream. The last bytes go to the agent *before* `proxy.completed` is written,
    /// so the audit write is off the response's critical path.
    fn into_stream(self) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
        futures_util::stream::unfold(self, |mut r| async move {
            r.finish.as_ref()?;
            if r.upstream_done {
                r.end("completed").await;
                return None;
            }
            loop {
                match r.upstream.next().await {
                    Some(Ok(chunk)) => {
                        r.received += chunk.len() as u64;
                        let out = r.masker.push(&chunk);
                        if !out.is_empty() {
                            return Some((Ok(Bytes::from(out)), r));
                        }
                    }
                    Some(Err(_)) => {
                        r.end("upstream_error").await;
                        return Some((
                            Err(std::io::Error::other("the upstream response failed")),
                            r,
                        ));
                    }
                    None => {
                        r.upstream_done = true;
                        let tail = r.masker.finish();
                        if tail.is_empty() {
                            r.end("completed").await;
                            return None;
                        }
                        return Some((Ok(Bytes::from(tail)), r));
                    }
                }
            }
        })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let result = if self.complete() {
            "completed"
        } else {
            "client_disconnected"
        };
        if let Some((m, call)) = self.finish.take() {
            let o = outcome(
                Some(self.status),
                self.sent.load(Ordering::Relaxed),
                self.received,
                self.started,
                result,
            );
            if let Ok(h) = tokio::runtime::Handle::try_current() {
                h.spawn(finish(m, call, o));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_across_chunk_boundaries_keeping_length() {
        let secret = Sensitive::new("sk-live-0123456789".to_string());
        let mut m = Masker::new(std::slice::from_ref(&secret));
        let body = b"before sk-live-0123456789 middle sk-live-0123456789 after";
        let mut out = Vec::new();
        for chunk in body.chunks(5) {
            out.extend(m.push(chunk));
        }
        out.extend(m.finish());
        assert_eq!(out.len(), body.len());
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("sk-live"), "{text}");
        assert!(text.starts_with("before ****"), "{text}");
    }

    #[test]
    fn maps_redirects_under_the_base_only() {
        let p = "http://127.0.0.1:6263/proxy/gh";
        let m = |l: &str| {
            String::from_utf8(map_location(l.as_bytes(), "https://api.x.com/v1", p)).unwrap()
        };
        assert_eq!(m("https://api.x.com/v1/a?b=1"), format!("{p}/a?b=1"));
        assert_eq!(m("/v1/a"), format!("{p}/a"));
        assert_eq!(m("https://cdn.example/a"), "https://cdn.example/a");
        assert_eq!(m("https://api.x.com/v10"), "https://api.x.com/v10");
        assert_eq!(m("//evil.example/v1/a"), "//evil.example/v1/a");
    }
}
