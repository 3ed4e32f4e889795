//! HTTPS on loopback (`mandate serve --tls`): a rustls listener for `axum::serve`.
//!
//! Some clients refuse an authorization server that is not HTTPS (the MCP authorization spec
//! requires it). The certificate and key come from the core (`Mandate::loopback_tls`: a
//! self-signed certificate for `127.0.0.1`, `::1` and `localhost`, its key in the OS
//! keychain). Handshakes run in their own tasks with a deadline, so a client that connects and
//! says nothing never holds up the others; a connection whose handshake fails (plain HTTP, a
//! client that does not trust the certificate) is closed without an HTTP answer. Only
//! HTTP/1.1 is offered by ALPN, the one protocol the endpoint speaks.
//!
//! What it is not: another set of rules. Everything after the handshake is the same router
//! and the same guard (loopback peer, Host allow-list, no Origin) as over plain HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mandate_core::tls::LoopbackTls;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::server::TlsStream;

/// Longest a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes finished but not yet taken by the server.
const QUEUE: usize = 64;

/// The rustls server configuration for `tls`: TLS 1.2 and 1.3 with ring's safe defaults,
/// no client certificates, ALPN `http/1.1`.
pub fn server_config(tls: &LoopbackTls) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(vec![tls.certificate_der()], tls.private_key_der())
        .map_err(|e| format!("the certificate and its key do not fit together: {e}"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Accepts TCP connections and hands `axum::serve` the ones whose TLS handshake succeeded.
#[derive(Debug)]
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    acceptor: JoinHandle<()>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        // The server stopped: stop accepting too (the port is released with the listener).
        self.acceptor.abort();
    }
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(QUEUE);
        let acceptor = TlsAcceptor::from(config);
        let task = tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::warn!("could not accept a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                // TCP_NODELAY for the same reason as over plain HTTP (streamed responses).
                let _ = stream.set_nodelay(true);
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            ready,
            local,
            acceptor: task,
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(x) => x,
            // The accept task is gone (only when aborted): accept nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
