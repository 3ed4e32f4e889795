//! Self-defence of a localhost server that browsers can reach.
//!
//! Any web page the user opens can make the browser send requests to 127.0.0.1, and a DNS
//! rebinding attack can make such requests look same-origin. So, on every request and before
//! any routing: the peer must be a loopback address (even if someone changes the bind
//! address); `Host` must be exactly `127.0.0.1:PORT`, `[::1]:PORT` or `localhost:PORT` (421
//! otherwise: checking `Origin` against `Host` is not enough, the rebinding page controls
//! both), and so must the authority of an absolute-form target, which RFC 9112 §3.2.2 puts
//! above `Host`; a request carrying any `Origin` header comes from a browser page and is refused (403),
//! as is `Sec-Fetch-Site: cross-site` on anything but GET/HEAD; no CORS header is ever sent, so
//! no page can read a response; and every request has a deadline.
//!
//! A team server (`mandate server`, [`crate::team`]) takes requests from other machines: the
//! peer check gives way to a rate limit per source address, and the Host allow-list is the
//! public URL's host and port. Everything else is the same.
//!
//! What it is not: authentication. Clients authenticate in the core (`private_key_jwt`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::{AppState, Exposure, REQUEST_TIMEOUT, plain_error};

/// Milliseconds since the Unix epoch, for the per-source buckets (a monotonic-enough wall
/// clock: a step back only refills a bucket later).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Whether `host` (a Host header value) names this server on a loopback name.
pub fn host_allowed(host: &str, port: u16) -> bool {
    let host = host.to_ascii_lowercase();
    [
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        format!("localhost:{port}"),
    ]
    .contains(&host)
}

/// The middleware. Runs before routing, body reading and any crypto.
pub async fn guard(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let refuse = |status: StatusCode, why: &str| plain_error(status, "access_denied", why);
    // Without connection info (a test calling the router directly) there is no peer to
    // trust: refuse.
    let peer = match req.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(p)) => *p,
        None => {
            return refuse(
                StatusCode::FORBIDDEN,
                "only this computer may use this endpoint",
            );
        }
    };
    let team = match &state.exposure {
        Exposure::Loopback if !peer.ip().is_loopback() => {
            return refuse(
                StatusCode::FORBIDDEN,
                "only this computer may use this endpoint",
            );
        }
        Exposure::Loopback => None,
        Exposure::Team(t) => Some(t),
    };
    // A team server's per-source limit runs before anything else is read.
    if let Some(t) = team
        && let Err(wait) = t.take(peer.ip(), now_ms())
    {
        let mut r = plain_error(
            StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable",
            &format!("too many requests from this address; retry in {wait} s"),
        );
        if let Ok(v) = header::HeaderValue::from_str(&wait.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let hosts: Vec<_> = req.headers().get_all(header::HOST).iter().collect();
    let allowed = |h: &str| match team {
        Some(t) => t.host_allowed(h),
        None => host_allowed(h, state.port),
    };
    match hosts.as_slice() {
        [h] if h.to_str().is_ok_and(allowed) => {}
        [] => {
            return plain_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the request has no Host header",
            );
        }
        _ => {
            let why = match team {
                Some(t) => format!(
                    "the Host header must name this server as its public URL does ({})",
                    t.hosts().join(" or ")
                ),
                None => {
                    "the Host header must be 127.0.0.1, [::1] or localhost with this port".into()
                }
            };
            return refuse(StatusCode::MISDIRECTED_REQUEST, &why);
        }
    }
    // An absolute-form (or authority-form) target names the host itself, and RFC 9112 §3.2.2
    // makes it win over `Host`: it must be one of ours too.
    if let Some(authority) = req.uri().authority()
        && !host_allowed(authority.as_str(), state.port)
    {
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "the request target must name 127.0.0.1, [::1] or localhost with this port",
        );
    }
    if req.headers().contains_key(header::ORIGIN) {
        return refuse(
            StatusCode::FORBIDDEN,
            "requests from web pages (with an Origin header) are refused",
        );
    }
    let safe_method = req.method() == Method::GET || req.method() == Method::HEAD;
    let cross_site = req
        .headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"));
    if cross_site && !safe_method {
        return refuse(StatusCode::FORBIDDEN, "cross-site requests are refused");
    }
    // The secret broker waits on remote APIs (an LLM may think for minutes) and sets its own
    // upstream timeouts (`proxy.rs`).
    // So does the MCP gateway (a tool call may run for minutes; each server has its own call
    // timeout, `mandate mcp edit --call-timeout`).
    let deadline =
        if req.uri().path().starts_with("/proxy/") || req.uri().path().starts_with("/mcp/") {
            crate::proxy::READ_TIMEOUT
        } else {
            REQUEST_TIMEOUT
        };
    let mut res = match tokio::time::timeout(deadline, next.run(req)).await {
        Ok(r) => r,
        Err(_) => plain_error(
            StatusCode::REQUEST_TIMEOUT,
            "temporarily_unavailable",
            "the request took too long",
        ),
    };
    // Belt and braces: no handler sets CORS headers, and none may.
    let cors: Vec<_> = res
        .headers()
        .keys()
        .filter(|k| k.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for k in cors {
        res.headers_mut().remove(k);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::host_allowed;

    #[test]
    fn only_loopback_names_with_our_port() {
        for ok in [
            "127.0.0.1:6263",
            "[::1]:6263",
            "localhost:6263",
            "LOCALHOST:6263",
        ] {
            assert!(host_allowed(ok, 6263), "{ok}");
        }
        for bad in [
            "evil.example:6263",
            "127.0.0.1",
            "127.0.0.1:80",
            "localhost",
            "127.0.0.2:6263",
            "localhost.:6263",
            "127.0.0.1:6263.evil.example",
            "",
        ] {
            assert!(!host_allowed(bad, 6263), "{bad}");
        }
    }
}
