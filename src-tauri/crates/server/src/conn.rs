//! Serving HTTP/1.1 connections with deadlines: hyper's own connection builder, configured.
//!
//! Why not `axum::serve`: it runs hyper without a timer, so hyper's header-read timeout never
//! takes effect, and a client sending one header byte every 2 s (slowloris) or holding an idle
//! keep-alive connection kept it open indefinitely (issue 17 §5: still open after 150 s). Here
//! every connection, plain or TLS, is served by `hyper::server::conn::http1` with a Tokio timer
//! and [`HEADER_TIMEOUT`]: hyper starts that clock whenever it starts waiting for a request
//! head (the first request and every request after a response on a kept-alive connection), and
//! closes the connection without an answer when the head is not complete in time. So the same
//! bound closes slow headers and idle keep-alive connections. Bodies and handlers are bounded
//! by the guard's per-request deadline (`guard.rs`), request heads by [`MAX_HEAD_BYTES`].
//! Graceful shutdown is hyper-util's: stop accepting, let requests in flight finish (their
//! audit writes commit before they answer), close idle connections.
//!
//! What it is not: an HTTP parser. Parsing, chunked decoding and the automatic 400/431
//! answers to malformed heads are hyper's.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tower::ServiceExt as _;

/// Longest the server waits for a complete request head, counted from when it starts waiting:
/// on a new connection, and on a kept-alive connection after each response (so it is also the
/// idle timeout). Real clients on loopback send a head in well under a millisecond.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request head (request line and headers) before hyper answers 431. Assertions
/// travel in the body, so heads are small; a broker call's headers are an agent's own. (At
/// most 100 header fields, hyper's default, likewise answered 431.)
pub const MAX_HEAD_BYTES: usize = 32 * 1024;

/// Serve every connection `listener` accepts with `app` until `stop` completes, then drain.
///
/// Each request carries `ConnectInfo<SocketAddr>` (the peer), which the guard checks.
pub async fn serve<L>(mut listener: L, app: Router, stop: impl Future<Output = ()>)
where
    L: Listener<Addr = SocketAddr>,
    L::Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_header_size(MAX_HEAD_BYTES);
    let mut stop = std::pin::pin!(stop);
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let app = app.clone();
            // A Router's error type is `Infallible`: every request gets a response.
            async move { app.oneshot(req.map(Body::new)).await }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(io), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                // A header timeout, a reset or a malformed head: the client's problem.
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
